//! For backend authors: the [`Backend`] trait, the [`Job`] it is
//! handed, and the built-in backends by type. Users of pools need none of
//! it; they choose a backend with [`BackendKind`] or
//! `PARPOOL_BACKEND`.
//!
//! **Unstable before 1.0.** This protocol may change in any 0.x release;
//! the [CHANGELOG](https://github.com/parpool/parpool/blob/main/CHANGELOG.md)
//! says what moved. The design note beside this file
//! (`src/backend/README.md`) walks through the data flow of a call, a
//! stream and a session; this page holds the contract.
//!
//! # How a call reaches a backend
//!
//! `Pool::map(f, items)` collects the items into a `Vec`, cuts them into a
//! [`ChunkPlan`] (which depends only on the item count and the chunk
//! size), and wraps `f`, the items and one output slot per item into a
//! job. The backend is handed a [`Job`] and sees nothing but chunk
//! indices; all generic code stays in the `pool` and `job` modules.
//! Streams (`imap`) and sessions reach a third-party backend through the
//! same [`run`](Backend::run): the chunks submitted so far run together as
//! one batch job when the stream's caller wants a result. (The built-in
//! backends have stream engines of their own, which are not public.)
//!
//! ```text
//! Pool::map ──► MapJob<T, R, F> ──► Job ──► Backend::run
//!                                                   │
//!                  in this process:  job.run_chunk(i)
//!                  in another one:   copy: job.run_chunk(i), job.encode_chunk(i)
//!                                    caller: job.accept_chunk(i, bytes)
//! ```
//!
//! # The contract
//!
//! `run(job)` must, before it returns:
//!
//! 1. **Give every chunk a result, or stop early on failure.** Each chunk
//!    index in `0..job.plan().chunk_count()` is either run in this process
//!    with [`Job::run_chunk`] or run in another process (a copy of the job
//!    made by `fork`, or the same program on another rank) and brought
//!    back with [`Job::encode_chunk`] and [`Job::accept_chunk`]. Once
//!    [`Job::should_stop`] is true (a fail-fast job has a failure, or the
//!    call was cancelled) the backend hands out no new chunks and returns
//!    promptly. A job that [keeps going](Job::keeps_going) (`map_results`)
//!    never stops early for a failure.
//! 2. **Leave scheduling free, results fixed.** Chunks may run in any order,
//!    on any worker; the job puts results in input order and combines
//!    `map_reduce` partials in chunk order, so the answer never depends on
//!    the backend or the worker count. A backend must not split or merge
//!    chunks.
//! 3. **Report failures it sees and the job cannot.** A task that panics in
//!    `run_chunk` is recorded by the job itself. A worker that dies, or a
//!    task that passes its time limit ([`Job::limits`]), is the backend's
//!    to report, with [`Job::record_failure`] and an error naming the item
//!    ([`crash_error`], [`timeout_error`]). For a job that keeps going,
//!    the backend then runs the rest of that chunk again; the job skips
//!    the items recorded as failed.
//! 4. **Return `Err` only for its own failures** (an OS call that failed, a
//!    lost connection: [`backend_error`]): task failures travel inside the
//!    job.
//! 5. **Leave nothing behind**: no threads still touching the job, no child
//!    processes, no file descriptors, no temporary files. The job borrows
//!    the caller's data and is freed right after `run` returns.
//! 6. **Stay usable** after any failure: the next `run` works.
//! 7. **Do not deadlock when nested.** `Pool` never calls a backend from
//!    inside a task (it runs nested calls serially), so a backend need not
//!    handle re-entry; it must not rely on anything the forking of a child
//!    loses (other threads, held locks) inside that child.
//!
//! # Capabilities
//!
//! What a backend can do is asked of it ([`Backend::capabilities`]), never
//! read off its kind: whether it can stop a running task (so
//! [`PoolBuilder::timeout`](crate::PoolBuilder::timeout) is accepted),
//! whether tasks share the caller's memory, how many chunks a stream keeps
//! in flight per worker, and its MPI rank and ranks.
//!
//! The shared test suite in `tests/contract.rs` checks every built-in
//! backend, and a third-party one, against these rules.

/// `impl Backend` for built-in backends, through their driver: so they can
/// be given to `Pool::with_backend` like any other.
macro_rules! backend_through_driver {
    ($($backend:ty),* $(,)?) => {$(
        impl $crate::backend::Backend for $backend {
            fn run(&self, job: &$crate::backend::Job<'_>) -> Result<(), $crate::Error> {
                $crate::backend::Driver::run(self, job.chunk_job())
            }

            fn workers(&self) -> usize {
                $crate::backend::Driver::workers(self)
            }

            fn capabilities(&self) -> $crate::backend::Capabilities {
                $crate::backend::Driver::capabilities(self)
            }
        }
    )*};
}

mod batch;
mod driver;
mod engine;
pub(crate) mod kind;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(unix)]
mod processes;
#[cfg(not(unix))]
#[path = "processes_unsupported.rs"]
mod processes;
mod protocol;
mod serial;
mod threads;
pub(crate) mod wire;

#[cfg(feature = "mpi")]
#[cfg_attr(docsrs, doc(cfg(feature = "mpi")))]
pub use mpi::MpiBackend;
pub use processes::ProcessesBackend;
pub use serial::SerialBackend;
pub use threads::ThreadsBackend;
pub(crate) use threads::shared_size as shared_threads_size;
pub(crate) use threads::shared_threads;

pub use crate::job::TaskLimits;
pub use crate::plan::ChunkPlan;
pub(crate) use kind::BackendKind;
pub(crate) use kind::parse_backend_name;
pub use protocol::{Backend, Job, backend_error, crash_error, timeout_error};

use crate::error::Error;
pub(crate) use driver::{Driver, SpawnedCall};
pub(crate) use engine::{StreamContext, StreamEngine};
use std::any::Any;
use std::sync::Arc;

/// What a backend can do, as [`Backend::capabilities`] reports it. Read
/// the fields; to describe a backend of your own, start from
/// `Capabilities::default()` and set them.
///
/// ```
/// use parpool::backend::Capabilities;
///
/// let mut capabilities = Capabilities::default();
/// capabilities.shares_memory = true;
/// assert!(!capabilities.can_time_out);
/// assert_eq!(capabilities.ranks, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// It can stop a task that runs past
    /// [`PoolBuilder::timeout`](crate::PoolBuilder::timeout) (its tasks run
    /// in processes it can kill). `build` rejects a timeout otherwise.
    pub can_time_out: bool,
    /// A task that crashes its worker (a signal, an unexpected exit) or
    /// runs past its time limit takes down only that worker, so the task
    /// can be run again on a fresh one:
    /// [`PoolBuilder::retries`](crate::PoolBuilder::retries) means
    /// something. `build` rejects retries otherwise.
    pub isolates_crashes: bool,
    /// Its workers are processes it can replace, so
    /// [`PoolBuilder::max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker)
    /// means something; `build` rejects that setting otherwise.
    pub recycles_workers: bool,
    /// Tasks run in the caller's address space, so what a task writes
    /// through a shared reference (an atomic, a `Mutex`) is seen by the
    /// caller. False where tasks run in copies of the process.
    pub shares_memory: bool,
    /// Chunks a stream keeps in flight per worker when the pool has no
    /// [`in_flight`](crate::PoolBuilder::in_flight) setting.
    pub in_flight_per_worker: usize,
    /// This process's rank among the processes that run the program
    /// together (MPI); 0 elsewhere.
    pub rank: usize,
    /// How many processes run the program together (MPI ranks); 1
    /// elsewhere.
    pub ranks: usize,
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities {
            can_time_out: false,
            isolates_crashes: false,
            recycles_workers: false,
            shares_memory: false,
            in_flight_per_worker: DEFAULT_IN_FLIGHT_PER_WORKER,
            rank: 0,
            ranks: 1,
        }
    }
}

/// Chunks in flight per worker when neither the pool nor the backend says.
pub(crate) const DEFAULT_IN_FLIGHT_PER_WORKER: usize = 4;

/// The driver of a backend given to `Pool::with_backend` or
/// `PoolBuilder::backend`: a built-in backend (made by its own
/// constructor, such as `MpiBackend::with_communicator`) keeps its own
/// driver, with its streams and everything else; any other is `Custom`.
pub(crate) fn adopt<B: Backend + 'static>(backend: B) -> Arc<dyn Driver> {
    let backend: Box<dyn Any> = Box::new(backend);
    let backend = match backend.downcast::<SerialBackend>() {
        Ok(serial) => return Arc::new(*serial),
        Err(other) => other,
    };
    let backend = match backend.downcast::<ThreadsBackend>() {
        Ok(threads) => return Arc::new(*threads),
        Err(other) => other,
    };
    let backend = match backend.downcast::<ProcessesBackend>() {
        Ok(processes) => return Arc::new(*processes),
        Err(other) => other,
    };
    #[cfg(feature = "mpi")]
    let backend = match backend.downcast::<MpiBackend>() {
        Ok(mpi) => return Arc::new(*mpi),
        Err(other) => other,
    };
    match backend.downcast::<B>() {
        Ok(custom) => Arc::new(driver::Custom(*custom)),
        // The box holds a `B` by construction: every other type returned.
        Err(_) => unreachable!("the backend is of the type it was given as"),
    }
}

/// The error of a stream whose wait was cancelled.
pub(crate) fn stream_cancelled() -> Error {
    Error::cancelled("the stream was cancelled")
}

/// Builds the built-in backend `kind` with `workers` workers.
pub(crate) fn build(kind: BackendKind, workers: usize) -> Result<Arc<dyn Driver>, Error> {
    Ok(match kind {
        BackendKind::Serial => Arc::new(SerialBackend),
        BackendKind::Threads => Arc::new(ThreadsBackend::new(workers)?),
        BackendKind::Processes => Arc::new(ProcessesBackend::new(workers)?),
        #[cfg(feature = "mpi")]
        BackendKind::Mpi => Arc::new(MpiBackend::new(workers)?),
        #[cfg(not(feature = "mpi"))]
        BackendKind::Mpi => {
            return Err(Error::invalid_config(
                "backend",
                "mpi",
                kind::unavailable("mpi"),
            ));
        }
        BackendKind::Custom => {
            return Err(Error::invalid_config(
                "backend",
                "custom",
                "a custom backend is given with PoolBuilder::backend or Pool::with_backend, \
                 not built by kind",
            ));
        }
    })
}

/// `workers` if it is a usable worker count (at least 1).
pub(crate) fn check_workers(workers: usize) -> Result<usize, Error> {
    if workers == 0 {
        return Err(Error::invalid_config(
            "workers",
            "0",
            "a pool needs at least 1 worker",
        ));
    }
    Ok(workers)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A third-party backend: chunks in order on the calling thread,
    /// through the public protocol only. It lends no threads, so its
    /// awaited calls and streams need helpers.
    #[derive(Debug)]
    pub(crate) struct Elsewhere;

    impl Backend for Elsewhere {
        fn run(&self, job: &Job<'_>) -> Result<(), Error> {
            for chunk in 0..job.plan().chunk_count() {
                let _ = job.run_chunk(chunk);
            }
            Ok(())
        }
    }

    #[test]
    fn a_built_in_backend_given_as_a_backend_keeps_its_own_driver() {
        assert_eq!(adopt(SerialBackend).kind(), BackendKind::Serial);
        let threads = adopt(ThreadsBackend::new(3).unwrap());
        assert_eq!(threads.kind(), BackendKind::Threads);
        assert_eq!(threads.workers(), 3);
        let custom = adopt(Elsewhere);
        assert_eq!(custom.kind(), BackendKind::Custom);
        assert!(
            custom.spawn_call(Box::new(|| Box::new(|| {}))).is_err(),
            "a custom backend lends no threads"
        );
        #[cfg(unix)]
        assert_eq!(
            adopt(ProcessesBackend::new(1).unwrap()).kind(),
            BackendKind::Processes
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_accepted_ones() {
        for kind in BackendKind::AVAILABLE {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), *kind);
        }
        assert_eq!(
            " Threads ".parse::<BackendKind>().unwrap(),
            BackendKind::Threads
        );
        let error = "gpu".parse::<BackendKind>().unwrap_err();
        assert!(error.is_invalid_config());
        let message = error.to_string();
        assert!(message.contains("\"gpu\""), "{message}");
        assert!(message.contains("serial, threads"), "{message}");
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn a_backend_not_compiled_in_is_named_as_such() {
        let message = "mpi".parse::<BackendKind>().unwrap_err().to_string();
        assert!(message.contains("not in this build"), "{message}");
    }
}
