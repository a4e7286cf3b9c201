//! The process backend: forked workers with fault isolation, timeouts and
//! retries (every Unix).
//!
//! # How a call runs
//!
//! Each `run` forks its workers *after* the job exists, so every child
//! inherits the user's function and the items copy-on-write: closures that
//! capture anything work, and inputs never need to be serializable. There is
//! no `init()` to call in `main`, and `main` never runs twice.
//!
//! ```text
//!  parent                                   child k (one per worker)
//!  ──────                                   ───────
//!  shared mapping: next_chunk, stop,        loop: chunk = next_chunk++ (or the
//!    one slot per worker:                          retried chunk it was forked for)
//!    current_chunk, current_item                  slot.current_chunk = chunk
//!  socket per child ◄──── frame ─────────         job.run_chunk(chunk, &slot.current_item)
//!  poll(): read frames, accept_chunk              write frame: encoded results or failure
//!  waitpid(WNOHANG): who died, on what?           slot.current_chunk = idle
//!  timeouts: SIGKILL, then treat as a crash  _exit(0): no atexit, no destructors
//! ```
//!
//! - **Load balancing**: children claim chunk indices from an atomic counter
//!   in an anonymous `MAP_SHARED` mapping, so one slow item holds up one
//!   worker, not a precomputed share.
//! - **Results** travel as length-prefixed frames (kind, chunk, length,
//!   postcard bytes; see `backend/wire.rs`) over one socket per child. A frame that fails to encode
//!   or decode is an `Err` naming the chunk's first item, never a panic.
//!   On Linux a chunk's results of 1 MiB or more are lent instead
//!   (`lend.rs`): the frame says where they lie in the worker's memory,
//!   the parent reads them from there in one copy (`process_vm_readv`)
//!   while the worker waits, and no byte of them crosses the socket.
//! - **Fault isolation**: before each item the child stores the item index in
//!   its slot of the shared mapping. When a child dies (a panic in a task is
//!   caught inside the child and reported as a frame; a segfault, `abort()`,
//!   `SIGKILL` or the OOM killer is not), the parent reads the slot and
//!   reports `task i of n crashed: worker killed by signal 11 (SIGSEGV)`.
//! - **Timeouts**: the parent watches how long each child has been on the same
//!   item; past the limit it kills the child with `SIGKILL` and reports
//!   `is_timeout()` for that item.
//! - **Retries**: a chunk whose worker crashed or timed out is run again on a
//!   fresh child, up to `retries` times per item, before the failure counts;
//!   a chunk that kills its workers before it starts fails after three
//!   tries. Plain calls, sessions and streams share this one policy (in
//!   `retry.rs`). Panics are not retried: they are bugs, and would fail
//!   again.
//! - **Fail fast, lose nothing**: for `map` and `map_reduce` the child that
//!   hits the first failure raises `stop` in the shared mapping itself, so
//!   no worker claims another chunk; the parent then kills the remaining
//!   children. For `map_results` the
//!   failed item is recorded and its chunk is run again on a fresh child,
//!   which skips the recorded items, so every other result still arrives.
//! - **No leaks**: every path out of `run` (success, failure, or an error of
//!   the backend itself) kills and reaps every child, closes every pipe and
//!   unmaps the shared memory. Children die with the parent
//!   (`PR_SET_PDEATHSIG` on Linux; elsewhere a thread of theirs reads
//!   end-of-file on a pipe whose write end only the parent holds) and exit
//!   at once if the parent is already gone when they start.
//!
//! # Fork hazards, and what this backend does about them
//!
//! `fork` copies the calling thread only. Locks held by *other* threads at
//! that moment stay locked forever in the child, so a child that touches
//! such a lock deadlocks:
//!
//! - **stdout/stderr**: every fork is made by a thread that holds both
//!   locks (and flushed stdout): the caller itself when it is the
//!   process's only thread, else the backend's forker thread (started at
//!   its first such call, ended when the pool and its sessions are dropped,
//!   after their workers). So no other thread
//!   holds them at the fork and no buffered output is copied into a child
//!   (it would be printed twice); the child, a copy of the forker, lets go
//!   of them at once, so every thread of a worker (a task's helper thread
//!   too) can print. If another thread holds stdout for long (a logging
//!   thread that keeps its `StdoutLock`), the call does not wait for it:
//!   after 100 ms it forks without the locks, and a task that then prints
//!   to stdout waits in its worker for a lock nobody will release. Set a
//!   [`timeout`](crate::PoolBuilder::timeout) if that can happen. Children
//!   flush before `_exit`, so their own output is not lost.
//! - **malloc**: glibc's allocator resets its locks in the child (it
//!   registers `pthread_atfork` handlers), so allocating in a task is safe.
//! - **this crate's own forks**: concurrent calls from several threads fork
//!   one at a time (a global lock). A child may still inherit another
//!   call's socket; nothing waits for end-of-file on a plain call's socket
//!   (exits are seen with `waitpid`), so that delays nothing.
//! - **the panic hook**: the default hook takes a process-wide backtrace
//!   lock, which another thread of the parent may hold while it panics. The
//!   first pool call wraps the panic hook once so that in a worker the
//!   message goes straight to stderr, lock-free; elsewhere your hook runs
//!   as before. A hook you install *after* that replaces the wrapper and
//!   brings the hazard back.
//! - **rayon**: the child inherits rayon's global pool but none of its
//!   threads, so a `par_iter` there would wait for ever. Each worker runs
//!   its tasks on the one thread of a rayon pool made in the child, so a
//!   task's `par_iter` (or that of a library built on rayon: faer, polars,
//!   image) runs there, serially, as the nested-use rule asks. A `Pool`
//!   used inside a task runs serially too.
//! - **other runtimes with threads of their own** remain hazards: a tokio
//!   runtime, a thread pool of another library, or a connection pool made
//!   in the parent exists in the child without its threads, so a task that
//!   hands it work (`runtime.block_on`, `handle.spawn`) waits for ever.
//!   Make such a runtime inside the task (or in
//!   [`map_init`](crate::Pool::map_init)'s `init`, once per worker), not
//!   in the parent; or use the thread backend; and set a
//!   [`timeout`](crate::PoolBuilder::timeout) to bound what is left.
//! - **your locks**: a `Mutex` that your function locks, held by another
//!   thread of your program at the moment of the fork, stays locked in the
//!   child. Set a [`timeout`](crate::PoolBuilder::timeout) if your tasks
//!   share locks with threads that keep running during a `map`.
//!
//! # Cost
//!
//! One `fork` per call, per worker. Forking copies the parent's page
//! tables, so the cost grows with the parent's resident memory (on the
//! reference machine a 1000-item call of 2 workers takes 17 ms from a
//! parent with 256 MiB of touched heap and 58 ms at 1 GiB; see
//! `docs/benchmarks.md`). A program that calls `map` in a loop from a big
//! process avoids that with a [`Session`](crate::Session)
//! ([`Pool::session`](crate::Pool::session)): its workers fork once, when
//! it is made, and each call sends its items to them over a socket (the
//! same 1000-item call: 0.10 ms at 1 GiB). The price is that items must be
//! serializable and travel, so a plain call is still the cheaper one when
//! the parent is small or the items are large. The other way keeps plain
//! calls: put the parent's large buffers on transparent huge pages
//! (`madvise(MADV_HUGEPAGE)` before filling them, or `MADV_COLLAPSE` on
//! Linux 6.1+ after), which have one page-table entry per 2 MiB instead of
//! per 4 KiB; results this backend returns are already there. How, and
//! what it costs: `docs/performance-notes.md`, "Large parents", and
//! `examples/large_dataset.rs`. Streams
//! ([`Pool::imap`](crate::Pool::imap)) run on a session of their own; the
//! `session` submodule has the details.
//!
//! # Worker recycling
//!
//! With [`max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker)
//! a worker retires after that many tasks (between chunks) and a fresh fork
//! takes its place: a plain call's worker exits by itself; a session's gets
//! no more chunks and is told to exit (end of file on its socket) once it
//! has finished the ones it holds. A retirement costs no retry; each
//! replacement costs a fork (see above).
//!
//! # Layout
//!
//! | file | owns |
//! |---|---|
//! | `os.rs` | the OS calls of [`crate::sys`] (sockets, `poll`, `waitpid`, `kill`) with this crate's errors |
//! | `shm.rs` | the shared mapping: claim counter, stop flag, worker slots |
//! | `fork.rs` | the child side: `fork` with its `# Safety` contract, start and exit of a worker |
//! | `fleet.rs` | the one supervisor: spawn, poll, reap, watchdog, crash attribution |
//! | `retry.rs` | the one retry and replacement policy, for every driver |
//! | `call.rs` | the driver of a plain call |
//! | `session.rs` | the driver of streams and sessions |
//!
//! # Platforms
//!
//! Every Unix: the OS calls are in `crate::sys`, which keeps Linux's fast
//! paths and gives every other Unix a fallback for each (tested on Linux
//! with `--cfg parpool_portable_unix`). Without `fork` (Windows),
//! `ProcessesBackend::new`, the builder and `PARPOOL_BACKEND=processes`
//! are an error that names the platform.

mod call;
mod death;
mod fleet;
mod fork;
mod frames;
mod lend;
mod os;
mod retry;
mod session;
mod shm;

use super::{BackendKind, Capabilities, Driver, StreamEngine};
use crate::error::Error;
use crate::job::{ChunkJob, StreamJob};
use std::sync::Arc;

/// Runs chunks in forked worker processes.
///
/// The per-task [timeout](crate::PoolBuilder::timeout) and
/// [retries](crate::PoolBuilder::retries) come with each call
/// ([`Job::limits`](crate::backend::Job::limits)), so one backend serves pools with different limits.
#[derive(Debug, Clone)]
pub struct ProcessesBackend {
    workers: usize,
    /// Forks the workers of every call, stream and session of this backend
    /// (a thread started at the first fork, ended with the backend).
    forker: Arc<fork::Forker>,
}

impl ProcessesBackend {
    /// A backend with `workers` worker processes (at least 1).
    pub fn new(workers: usize) -> Result<ProcessesBackend, Error> {
        super::check_workers(workers)?;
        Ok(ProcessesBackend {
            workers,
            forker: Arc::default(),
        })
    }
}

backend_through_driver!(ProcessesBackend);

impl Driver for ProcessesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Processes
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            can_time_out: true,
            isolates_crashes: true,
            recycles_workers: true,
            ..Capabilities::default()
        }
    }

    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        call::run(job, self.workers, &self.forker)
    }

    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(session::SessionEngine::start(
            job,
            self.workers,
            &self.forker,
        )?))
    }
}
