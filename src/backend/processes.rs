//! The process backend: forked workers with fault isolation, timeouts and
//! retries (Unix).
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
//!  pipe per child  ◄──── frame ──────────         job.run_chunk(chunk, &slot.current_item)
//!  poll(): read frames, accept_chunk              write frame: encoded results or failure
//!  waitpid(WNOHANG): who died, on what?           slot.current_chunk = idle
//!  timeouts: SIGKILL, then treat as a crash  _exit(0): no atexit, no destructors
//! ```
//!
//! - **Load balancing**: children claim chunk indices from an atomic counter
//!   in an anonymous `MAP_SHARED` mapping, so one slow item holds up one
//!   worker, not a precomputed share.
//! - **Results** travel as length-prefixed frames (kind, chunk, length,
//!   postcard bytes) over one pipe per child. A frame that fails to encode
//!   or decode is an `Err` naming the chunk's first item, never a panic.
//! - **Fault isolation**: before each item the child stores the item index in
//!   its slot of the shared mapping. When a child dies (a panic in a task is
//!   caught inside the child and reported as a frame; a segfault, `abort()`,
//!   `SIGKILL` or the OOM killer is not), the parent reads the slot and
//!   reports `task i of n crashed: worker killed by signal 11 (SIGSEGV)`.
//! - **Timeouts**: the parent watches how long each child has been on the same
//!   item; past the limit it kills the child with `SIGKILL` and reports
//!   `is_timeout()` for that item.
//! - **Retries**: a chunk whose worker crashed or timed out is run again on a
//!   fresh child, up to `retries` times per item, before the failure counts.
//!   Panics are not retried: they are bugs, and would fail again.
//! - **Fail fast, lose nothing**: for `map` and `map_reduce` the child that
//!   hits the first failure raises `stop` in the shared mapping itself, so
//!   no worker claims another chunk; the parent then kills the remaining
//!   children. For `try_map` the
//!   failed item is recorded and its chunk is run again on a fresh child,
//!   which skips the recorded items, so every other result still arrives.
//! - **No leaks**: every path out of `run` (success, failure, or an error of
//!   the backend itself) kills and reaps every child, closes every pipe and
//!   unmaps the shared memory. Children die with the parent
//!   (`PR_SET_PDEATHSIG` on Linux) and exit at once if the parent is already
//!   gone when they start.
//!
//! # Fork hazards, and what this backend does about them
//!
//! `fork` copies the calling thread only. Locks held by *other* threads at
//! that moment stay locked forever in the child, so a child that touches
//! such a lock deadlocks:
//!
//! - **stdout/stderr**: the parent takes both locks (and flushes stdout)
//!   around `fork`, so no other thread holds them and no buffered output is
//!   copied into the children (it would be printed twice). Children flush
//!   before `_exit`, so their own output is not lost.
//! - **malloc**: glibc's allocator resets its locks in the child (it
//!   registers `pthread_atfork` handlers), so allocating in a task is safe.
//! - **this crate's own forks**: concurrent calls from several threads fork
//!   one at a time (a global lock). A child may still inherit another
//!   call's pipe; nothing waits for end-of-file on a pipe (exits are seen
//!   with `waitpid`), so that delays nothing.
//! - **the panic hook**: the default hook takes a process-wide backtrace
//!   lock, which another thread of the parent may hold while it panics. The
//!   backend wraps the panic hook once (before its first fork) so that in a
//!   worker the message goes straight to stderr, lock-free; elsewhere your
//!   hook runs as before. A hook you install *after* that replaces the
//!   wrapper and brings the hazard back.
//! - **your locks**: a `Mutex` that your function locks, held by another
//!   thread of your program at the moment of the fork, stays locked in the
//!   child. Set a [`timeout`](crate::PoolBuilder::timeout) if your tasks
//!   share locks with threads that keep running during a `map`.
//! - **other threads' work** (a rayon pool, a runtime) does not exist in
//!   the child. Pools used inside a task run serially there.
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
//! the parent is small or the items are large. Streams
//! ([`Pool::imap`](crate::Pool::imap)) run on a session of their own; the
//! `session` submodule has the details.

mod session;

pub(crate) use session::ProcessEngine;

use super::{Backend, BackendKind};
use crate::error::Error;
use crate::job::{self, Job};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs chunks in forked worker processes.
#[derive(Debug, Clone)]
pub struct ProcessesBackend {
    workers: usize,
    timeout: Option<Duration>,
    retries: u32,
}

impl ProcessesBackend {
    /// A backend with `workers` worker processes (at least 1), an optional
    /// per-task time limit, and `retries` re-runs of a crashed or timed-out
    /// task.
    pub fn new(
        workers: usize,
        timeout: Option<Duration>,
        retries: u32,
    ) -> Result<ProcessesBackend, Error> {
        super::check_workers(workers)?;
        Ok(ProcessesBackend {
            workers,
            timeout,
            retries,
        })
    }
}

impl Backend for ProcessesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Processes
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, job: &dyn Job) -> Result<(), Error> {
        let chunk_count = job.plan().chunk_count();
        if chunk_count == 0 {
            return Ok(());
        }
        let mut supervisor = Supervisor::new(job, self, self.workers.min(chunk_count))?;
        let outcome = supervisor.supervise();
        // Dropping the supervisor kills and reaps whatever is still running.
        drop(supervisor);
        outcome
    }
}

// --- memory shared with the children ----------------------------------------

/// Slot value meaning "no chunk" / "no item".
const IDLE: usize = usize::MAX;

/// The head of the shared mapping.
#[repr(C)]
struct SharedHeader {
    next_chunk: AtomicUsize,
    stop: AtomicBool,
}

/// What one worker is doing, written by the child, read by the parent.
#[repr(C)]
struct WorkerSlot {
    current_chunk: AtomicUsize,
    current_item: AtomicUsize,
}

/// An anonymous `MAP_SHARED` mapping: a header and one slot per worker.
struct SharedMemory {
    base: *mut libc::c_void,
    length: usize,
    slots: usize,
}

// SAFETY: the mapping is owned by this value and only reached through it;
// everything in it is an atomic, so moving the owner to another thread is
// fine.
unsafe impl Send for SharedMemory {}

impl SharedMemory {
    fn new(slots: usize) -> Result<SharedMemory, Error> {
        let length =
            std::mem::size_of::<SharedHeader>() + slots * std::mem::size_of::<WorkerSlot>();
        // SAFETY: an anonymous mapping with no address hint touches no
        // existing memory; the result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        // The mapping is zero-filled: next_chunk 0, stop false; slots are
        // set to IDLE by `reset_slot` before each fork.
        Ok(SharedMemory {
            base,
            length,
            slots,
        })
    }

    fn header(&self) -> &SharedHeader {
        // SAFETY: the mapping is page-aligned, at least as long as the
        // header, zero-initialized (a valid SharedHeader) and lives as long
        // as `self`. The fields are atomics, so sharing with children is fine.
        unsafe { &*self.base.cast::<SharedHeader>() }
    }

    fn slot(&self, index: usize) -> &WorkerSlot {
        assert!(index < self.slots, "worker slot {index} out of range");
        // SAFETY: index < slots, so the slot lies inside the mapping; the
        // offset keeps the alignment of the atomics (both structs hold only
        // usize-sized atomics, the header padded to a usize multiple).
        unsafe {
            &*self
                .base
                .cast::<u8>()
                .add(std::mem::size_of::<SharedHeader>())
                .cast::<WorkerSlot>()
                .add(index)
        }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: base and length come from the successful mmap in `new`,
        // and no reference into the mapping outlives `self`.
        unsafe { libc::munmap(self.base, self.length) };
    }
}

// --- frames -----------------------------------------------------------------------

/// A chunk's encoded results.
const FRAME_RESULT: u8 = 0;
/// An encoded `Error` for a chunk.
const FRAME_FAILURE: u8 = 1;
/// kind (1) + chunk (8) + payload length (8), little-endian.
const FRAME_HEADER: usize = 17;

fn frame_header(kind: u8, chunk: usize, length: usize) -> [u8; FRAME_HEADER] {
    let mut header = [0u8; FRAME_HEADER];
    header[0] = kind;
    header[1..9].copy_from_slice(&(chunk as u64).to_le_bytes());
    header[9..17].copy_from_slice(&(length as u64).to_le_bytes());
    header
}

/// A complete frame at the start of `buffer`: (kind, chunk, payload range).
fn parse_frame(buffer: &[u8]) -> Option<(u8, usize, std::ops::Range<usize>)> {
    let header = buffer.get(..FRAME_HEADER)?.try_into().ok()?;
    let (kind, chunk, length) = parse_frame_header(header);
    let end = FRAME_HEADER.checked_add(length)?;
    (buffer.len() >= end).then_some((kind, chunk, FRAME_HEADER..end))
}

/// (kind, chunk, payload length) of a frame header.
fn parse_frame_header(header: &[u8; FRAME_HEADER]) -> (u8, usize, usize) {
    let word = |range: std::ops::Range<usize>| {
        u64::from_le_bytes(header[range].try_into().expect("8 bytes")) as usize
    };
    (header[0], word(1..9), word(9..17))
}

// --- the parent side ----------------------------------------------------------------

/// Serializes this crate's forks, so no child inherits another call's pipe.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Forks a child that runs `child` (which never returns) and returns its
/// pid. Holds the fork lock and the stdio locks across the fork: no other
/// thread can be inside them, and nothing buffered is copied into the
/// child.
fn fork_child(child: impl FnOnce() -> std::convert::Infallible) -> Result<libc::pid_t, Error> {
    install_worker_panic_hook();
    let _forking = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = std::io::stdout();
    let mut stdout_lock = stdout.lock();
    let _ = stdout_lock.flush();
    let stderr_lock = std::io::stderr().lock();
    // SAFETY: fork has no memory-safety preconditions; the child only runs
    // `child`, which never returns (it ends in `_exit`), and the hazards of
    // forking a threaded process are handled as the module docs describe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // `child` returns `Infallible`: it never comes back.
        child();
    }
    drop(stderr_lock);
    drop(stdout_lock);
    if pid < 0 {
        return Err(os_error("fork"));
    }
    Ok(pid)
}

/// A running child, as the parent sees it.
struct Worker {
    pid: libc::pid_t,
    pipe: OwnedFd,
    slot: usize,
    buffer: Vec<u8>,
    watchdog: Watchdog,
}

/// Watches how long a worker stays on one item, for the per-task timeout.
#[derive(Debug, Default)]
struct Watchdog {
    /// (chunk, item) the worker was last seen on, and since when.
    seen: Option<((usize, usize), Instant)>,
    /// Set when the parent killed the worker for running past the limit:
    /// (item, time spent on it).
    timed_out: Option<(usize, Duration)>,
}

impl Watchdog {
    /// Reads the worker's slot and kills `pid` if the worker has been on
    /// the same item for longer than `limit`.
    fn check(&mut self, slot: &WorkerSlot, pid: libc::pid_t, limit: Duration, now: Instant) {
        if self.timed_out.is_some() {
            return;
        }
        let chunk = slot.current_chunk.load(Ordering::Acquire);
        let item = slot.current_item.load(Ordering::Acquire);
        if chunk == IDLE {
            self.seen = None;
            return;
        }
        match self.seen {
            Some((key, since)) if key == (chunk, item) => {
                let elapsed = now - since;
                if elapsed > limit {
                    kill(pid);
                    self.timed_out = Some((item, elapsed));
                }
            }
            _ => self.seen = Some(((chunk, item), now)),
        }
    }

    /// Why the worker that was on `item` (of `total`) ended with `status`:
    /// a timeout if this watchdog killed it, else a crash.
    fn death_error(
        &self,
        item: usize,
        total: usize,
        status: libc::c_int,
        limit: Option<Duration>,
    ) -> Error {
        match self.timed_out {
            Some((timed_item, elapsed)) => {
                Error::timeout(timed_item, total, elapsed, limit.unwrap_or(elapsed))
            }
            None => Error::crash(item, total, describe_exit(status)),
        }
    }
}

/// Sleeps until one of `fds` can be read or hangs up, or until a quarter
/// of the per-task `timeout` (at least 1 ms, at most `cap`) has passed.
fn wait_readable(fds: impl Iterator<Item = RawFd>, timeout: Option<Duration>, cap: Duration) {
    let mut fds: Vec<libc::pollfd> = fds
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let interval = match timeout {
        Some(limit) => (limit / 4).clamp(Duration::from_millis(1), cap),
        None => cap,
    };
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            interval.as_millis() as libc::c_int,
        )
    };
}

/// Forks, watches and reaps the children of one `run`.
struct Supervisor<'a> {
    job: &'a dyn Job,
    settings: &'a ProcessesBackend,
    shared: SharedMemory,
    workers: Vec<Worker>,
    free_slots: Vec<usize>,
    /// Chunks to run again on a fresh child (crash or timeout).
    retry_queue: VecDeque<usize>,
    /// Crashes and timeouts per item, for `retries`.
    attempts: HashMap<usize, u32>,
    /// Times a chunk was found unclaimed-but-not-done at the end.
    orphan_requeues: HashMap<usize, u32>,
    /// Set by `stop`.
    stopping: bool,
    parent_pid: libc::pid_t,
}

impl<'a> Supervisor<'a> {
    fn new(
        job: &'a dyn Job,
        settings: &'a ProcessesBackend,
        worker_count: usize,
    ) -> Result<Self, Error> {
        Ok(Supervisor {
            job,
            settings,
            shared: SharedMemory::new(worker_count)?,
            workers: Vec::with_capacity(worker_count),
            free_slots: (0..worker_count).rev().collect(),
            retry_queue: VecDeque::new(),
            attempts: HashMap::new(),
            orphan_requeues: HashMap::new(),
            stopping: false,
            // SAFETY: getpid has no preconditions and cannot fail.
            parent_pid: unsafe { libc::getpid() },
        })
    }

    /// True once the parent has decided to stop (a fail-fast failure):
    /// from then on frames are ignored and children are killed.
    fn stopped(&self) -> bool {
        self.stopping
    }

    /// True once anyone has raised the shared stop flag; a child raises it
    /// at its first fail-fast failure, before the parent has read it.
    fn claiming_stopped(&self) -> bool {
        self.shared.header().stop.load(Ordering::Acquire)
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.shared.header().stop.store(true, Ordering::Release);
        for worker in &self.workers {
            kill(worker.pid);
        }
    }

    /// True while some chunk still needs a worker.
    fn work_left(&self) -> bool {
        !self.retry_queue.is_empty()
            || self.shared.header().next_chunk.load(Ordering::Acquire)
                < self.job.plan().chunk_count()
    }

    fn supervise(&mut self) -> Result<(), Error> {
        loop {
            if self.job.should_stop() && !self.stopped() {
                self.stop();
            }
            while !self.claiming_stopped() && !self.free_slots.is_empty() && self.work_left() {
                let initial_chunk = self.retry_queue.pop_front();
                self.spawn(initial_chunk)?;
            }
            if self.workers.is_empty() && !self.requeue_orphans() {
                return Ok(());
            }
            if self.workers.is_empty() {
                continue;
            }
            self.wait_for_events();
            self.read_frames()?;
            self.reap_finished()?;
            self.enforce_timeout();
        }
    }

    /// Forks a child that runs `initial_chunk` (if any) and then claims
    /// chunks until none are left.
    fn spawn(&mut self, initial_chunk: Option<usize>) -> Result<(), Error> {
        let slot = self
            .free_slots
            .pop()
            .expect("spawn is called with a free slot");
        self.shared
            .slot(slot)
            .current_chunk
            .store(IDLE, Ordering::Release);
        self.shared
            .slot(slot)
            .current_item
            .store(IDLE, Ordering::Release);
        let inherited: Vec<RawFd> = self.workers.iter().map(|w| w.pipe.as_raw_fd()).collect();

        let (read_end, write_end) = match pipe() {
            Ok(ends) => ends,
            Err(error) => {
                self.free_slots.push(slot);
                return Err(error);
            }
        };
        let forked = fork_child(|| {
            child_main(ChildContext {
                job: self.job,
                shared: &self.shared,
                slot,
                pipe: write_end.as_raw_fd(),
                initial_chunk,
                inherited: &inherited,
                read_end: read_end.as_raw_fd(),
                parent_pid: self.parent_pid,
            })
        });
        drop(write_end);
        let pid = match forked {
            Ok(pid) => pid,
            Err(error) => {
                self.free_slots.push(slot);
                return Err(error);
            }
        };
        set_nonblocking(&read_end)?;
        self.workers.push(Worker {
            pid,
            pipe: read_end,
            slot,
            buffer: Vec::new(),
            watchdog: Watchdog::default(),
        });
        Ok(())
    }

    /// Sleeps until a child writes or hangs up, or the poll interval ends.
    fn wait_for_events(&self) {
        let fds = self.workers.iter().map(|worker| worker.pipe.as_raw_fd());
        wait_readable(fds, self.settings.timeout, Duration::from_millis(50));
    }

    /// Reads whatever the children have written and handles complete frames.
    fn read_frames(&mut self) -> Result<(), Error> {
        for index in 0..self.workers.len() {
            drain_pipe(&mut self.workers[index])?;
            self.handle_frames(index);
        }
        Ok(())
    }

    fn handle_frames(&mut self, index: usize) {
        let job = self.job;
        let total = job.plan().item_count();
        let mut consumed = 0;
        while let Some((kind, chunk, payload)) =
            parse_frame(&self.workers[index].buffer[consumed..])
        {
            let start = consumed;
            consumed += payload.end;
            if self.stopped() || chunk >= job.plan().chunk_count() {
                continue;
            }
            let bytes = &self.workers[index].buffer[start + payload.start..start + payload.end];
            let failure = match kind {
                FRAME_RESULT => job.accept_chunk(chunk, bytes).err(),
                FRAME_FAILURE => Some(postcard::from_bytes::<Error>(bytes).unwrap_or_else(|e| {
                    Error::backend("processes", format!("a failure report was garbled: {e}"))
                })),
                other => Some(Error::backend(
                    "processes",
                    format!("unknown frame kind {other} from a worker"),
                )),
            };
            if let Some(error) = failure {
                if job.keeps_going() {
                    // The chunk as a whole could not travel: every item in it
                    // gets the error, then the chunk runs again, skipping them.
                    for item in job.plan().chunk_range(chunk) {
                        job.record_failure(same_failure_for(&error, item, total));
                    }
                    self.retry_queue.push_back(chunk);
                } else {
                    job.record_failure(error);
                }
            }
        }
        self.workers[index].buffer.drain(..consumed);
        if job.should_stop() && !self.stopped() {
            self.stop();
        }
    }

    /// Reaps children that have exited and deals with the work they lost.
    fn reap_finished(&mut self) -> Result<(), Error> {
        let mut index = 0;
        while index < self.workers.len() {
            let Some(status) = try_wait(self.workers[index].pid)? else {
                index += 1;
                continue;
            };
            // The child is gone: everything it wrote is in the pipe now.
            drain_pipe(&mut self.workers[index])?;
            self.handle_frames(index);
            let worker = self.workers.swap_remove(index);
            self.after_exit(&worker, status);
            self.free_slots.push(worker.slot);
        }
        Ok(())
    }

    /// Decides what a child's exit means for the job.
    fn after_exit(&mut self, worker: &Worker, status: libc::c_int) {
        let slot = self.shared.slot(worker.slot);
        let chunk = slot.current_chunk.load(Ordering::Acquire);
        if self.stopped() || chunk == IDLE || self.job.is_chunk_done(chunk) {
            // Nothing in progress was lost. A child that died between chunks
            // is replaced if work is left; a chunk it had just claimed is
            // found by `requeue_orphans`.
            return;
        }
        let plan = self.job.plan();
        let range = plan.chunk_range(chunk);
        let item = slot.current_item.load(Ordering::Acquire);
        let item = if range.contains(&item) {
            item
        } else {
            range.start
        };
        let total = plan.item_count();
        let error = worker
            .watchdog
            .death_error(item, total, status, self.settings.timeout);
        let item = error.task_index().unwrap_or(item);
        let attempts = self.attempts.entry(item).or_insert(0);
        *attempts += 1;
        if *attempts <= self.settings.retries {
            self.retry_queue.push_back(chunk);
            return;
        }
        self.job.record_failure(error);
        if self.job.keeps_going() {
            // Run the rest of the chunk again; the job skips the failed item.
            self.retry_queue.push_back(chunk);
        } else {
            self.stop();
        }
    }

    /// Queues chunks that were claimed by a child that died before saying
    /// which chunk it took (a window of a few instructions), so they still
    /// run. Gives up on a chunk after a few tries, leaving the job to report
    /// it as never run. Returns true if anything was queued.
    fn requeue_orphans(&mut self) -> bool {
        if self.stopped() || self.job.should_stop() {
            return false;
        }
        let mut queued = false;
        for chunk in 0..self.job.plan().chunk_count() {
            if !self.job.is_chunk_done(chunk) {
                let tries = self.orphan_requeues.entry(chunk).or_insert(0);
                if *tries < 3 {
                    *tries += 1;
                    self.retry_queue.push_back(chunk);
                    queued = true;
                }
            }
        }
        queued
    }

    /// Kills children that have been on one item for longer than the limit.
    fn enforce_timeout(&mut self) {
        let Some(limit) = self.settings.timeout else {
            return;
        };
        let now = Instant::now();
        for worker in &mut self.workers {
            let slot = self.shared.slot(worker.slot);
            worker.watchdog.check(slot, worker.pid, limit, now);
        }
    }
}

impl Drop for Supervisor<'_> {
    fn drop(&mut self) {
        // Normal returns have no children left; error paths and stops do.
        for worker in &self.workers {
            kill(worker.pid);
        }
        for worker in self.workers.drain(..) {
            wait_blocking(worker.pid);
            // `worker.pipe` closes here.
        }
    }
}

/// The same failure as `error`, for another item of its chunk.
fn same_failure_for(error: &Error, item: usize, total: usize) -> Error {
    if error.task_index().is_some() {
        Error::encoding(item, total, "transferred", error)
    } else {
        error.clone()
    }
}

/// Wraps the process's panic hook, once, so that in a worker process a
/// panic message is written straight to stderr without the default hook's
/// locks. The default hook takes a process-wide backtrace lock; if another
/// thread of the parent was panicking at the moment of a fork, that lock is
/// held forever in the child, and a panicking task would hang its worker.
/// Outside worker processes the previous hook runs unchanged.
fn install_worker_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if job::inside_worker_process() {
                let message = format!(
                    "parpool worker {}: {info}\n",
                    // SAFETY: getpid has no preconditions.
                    unsafe { libc::getpid() }
                );
                write_stderr_unlocked(message.as_bytes());
            } else {
                previous(info);
            }
        }));
    });
}

/// Writes to file descriptor 2 directly, taking no lock.
fn write_stderr_unlocked(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of the length passed.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[written as usize..];
    }
}

// --- the child side ------------------------------------------------------------------

/// What a freshly forked child needs.
struct ChildContext<'a> {
    job: &'a dyn Job,
    shared: &'a SharedMemory,
    slot: usize,
    pipe: RawFd,
    initial_chunk: Option<usize>,
    /// The parent's read ends of other children's pipes, to close.
    inherited: &'a [RawFd],
    /// This child's own read end, to close.
    read_end: RawFd,
    parent_pid: libc::pid_t,
}

/// The life of a worker process. Never returns.
fn child_main(context: ChildContext<'_>) -> std::convert::Infallible {
    let mut close = context.inherited.to_vec();
    close.push(context.read_end);
    enter_child(context.parent_pid, &close);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child_loop(&context)));
    exit_child(outcome)
}

/// Prepares a freshly forked worker: dies with the parent, closes the
/// parent's descriptors it does not use, marks itself as a worker.
fn enter_child(parent_pid: libc::pid_t, close: &[RawFd]) {
    die_with_parent(parent_pid);
    for &fd in close {
        // SAFETY: these descriptors are the parent's, copied by fork; this
        // child never uses them, and nothing else in it owns them.
        unsafe { libc::close(fd) };
    }
    job::mark_worker_process();
}

/// Ends a worker process: flushes stdout, then `_exit` with a code that
/// says how the worker's loop ended.
fn exit_child(outcome: std::thread::Result<std::io::Result<()>>) -> std::convert::Infallible {
    let _ = std::io::stdout().flush();
    let code = match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 3, // the pipe broke: the parent is gone or stopped us
        Err(_) => 70,    // a bug in this backend, not in a task
    };
    // SAFETY: _exit ends the process at once, without running atexit
    // handlers or destructors that belong to the parent's state.
    unsafe { libc::_exit(code) }
}

/// Claims and runs chunks, sending each chunk's frame to the parent.
fn child_loop(context: &ChildContext<'_>) -> std::io::Result<()> {
    let job = context.job;
    let header = context.shared.header();
    let slot = context.shared.slot(context.slot);
    let chunk_count = job.plan().chunk_count();
    // SAFETY: the write end is open and owned by this child alone; the File
    // is forgotten (never closed) because the process ends with _exit.
    let pipe = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(context.pipe) });
    let mut pipe: &std::fs::File = &pipe;
    let mut next = context.initial_chunk;
    loop {
        let chunk = match next.take() {
            Some(chunk) => chunk,
            None => {
                if header.stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                let chunk = header.next_chunk.fetch_add(1, Ordering::AcqRel);
                if chunk >= chunk_count {
                    return Ok(());
                }
                chunk
            }
        };
        let start = job.plan().chunk_range(chunk).start;
        slot.current_item.store(start, Ordering::Release);
        slot.current_chunk.store(chunk, Ordering::Release);
        let frame = match job.run_chunk(chunk, Some(&slot.current_item)) {
            Ok(()) => job.encode_chunk(chunk).map(|bytes| (FRAME_RESULT, bytes)),
            Err(error) => Err(error),
        };
        let (kind, payload) = match frame {
            Ok(frame) => frame,
            Err(error) => {
                if !job.keeps_going() {
                    // Stop the other workers claiming chunks now, without
                    // waiting for the parent to read this failure.
                    header.stop.store(true, Ordering::Release);
                }
                (
                    FRAME_FAILURE,
                    postcard::to_stdvec(&error).unwrap_or_default(),
                )
            }
        };
        pipe.write_all(&frame_header(kind, chunk, payload.len()))?;
        pipe.write_all(&payload)?;
        slot.current_chunk.store(IDLE, Ordering::Release);
        if kind == FRAME_FAILURE && !job.keeps_going() {
            return Ok(());
        }
    }
}

/// Asks the kernel to kill this child when its parent dies, and exits if
/// the parent already has (it would otherwise have been reparented).
fn die_with_parent(parent_pid: libc::pid_t) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and has no memory
    // effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent_pid {
        // SAFETY: as in child_main.
        unsafe { libc::_exit(4) };
    }
}

// --- small safe wrappers over the OS ------------------------------------------------

fn os_error(call: &str) -> Error {
    Error::backend(
        "processes",
        format!("{call} failed: {}", std::io::Error::last_os_error()),
    )
}

/// A pipe with both ends close-on-exec: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), Error> {
    // SAFETY: fcntl on an open descriptor we own; no pointers involved.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(os_error("fcntl"));
    }
    Ok(())
}

/// Reads everything available from a worker's pipe into its buffer.
fn drain_pipe(worker: &mut Worker) -> Result<(), Error> {
    drain(&worker.pipe, &mut worker.buffer)
}

/// Reads everything available from a non-blocking descriptor into
/// `buffer`, until it would block or reaches end-of-file.
fn drain(fd: &OwnedFd, buffer: &mut Vec<u8>) -> Result<(), Error> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // SAFETY: `chunk` is a writable buffer of the length passed.
        let read = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        match read {
            0 => return Ok(()),
            n if n > 0 => buffer.extend_from_slice(&chunk[..n as usize]),
            _ => {
                let error = std::io::Error::last_os_error();
                match error.kind() {
                    std::io::ErrorKind::WouldBlock => return Ok(()),
                    std::io::ErrorKind::Interrupted => continue,
                    // A socket whose worker died with data unread: the end.
                    std::io::ErrorKind::ConnectionReset => return Ok(()),
                    _ => return Err(Error::backend("processes", format!("read failed: {error}"))),
                }
            }
        }
    }
}

fn kill(pid: libc::pid_t) {
    // SAFETY: kill has no memory effects; `pid` is our unreaped child, so it
    // cannot name an unrelated process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The exit status of `pid` if it has exited, without blocking.
fn try_wait(pid: libc::pid_t) -> Result<Option<libc::c_int>, Error> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to write.
        let result = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match result {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(status)),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(os_error("waitpid")),
        }
    }
}

/// Waits for `pid` to exit (it has been sent SIGKILL).
fn wait_blocking(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to write.
        let result = unsafe { libc::waitpid(pid, &mut status, 0) };
        if result == pid
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// "killed by signal 11 (SIGSEGV)" or "exited with status 3".
fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        format!("killed by signal {signal} ({})", signal_name(signal))
    } else if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else {
        format!("ended with wait status {status:#x}")
    }
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_only_when_complete() {
        let mut buffer = frame_header(FRAME_RESULT, 7, 3).to_vec();
        assert_eq!(parse_frame(&buffer), None);
        buffer.extend_from_slice(b"abc");
        assert_eq!(parse_frame(&buffer), Some((FRAME_RESULT, 7, 17..20)));
        buffer.push(1);
        assert_eq!(parse_frame(&buffer), Some((FRAME_RESULT, 7, 17..20)));
    }

    #[test]
    fn exits_are_described_with_signal_names() {
        // Wait statuses as Linux encodes them.
        assert_eq!(describe_exit(9), "killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit(11), "killed by signal 11 (SIGSEGV)");
        assert_eq!(describe_exit(3 << 8), "exited with status 3");
    }

    #[test]
    fn the_shared_header_keeps_slots_aligned() {
        assert_eq!(
            std::mem::size_of::<SharedHeader>() % std::mem::align_of::<WorkerSlot>(),
            0
        );
        let shared = SharedMemory::new(3).unwrap();
        assert_eq!(shared.header().next_chunk.load(Ordering::Relaxed), 0);
        shared.slot(2).current_item.store(5, Ordering::Relaxed);
        assert_eq!(shared.slot(2).current_item.load(Ordering::Relaxed), 5);
    }
}
