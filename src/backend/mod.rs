//! The [`Backend`] trait: where the chunks of a job run.
//!
//! # How a call reaches a backend
//!
//! `Pool::map(f, items)` collects the items into a `Vec`, cuts them into a
//! [`ChunkPlan`](crate::ChunkPlan) (which depends only on the item count and
//! the chunk size), and wraps `f`, the items and one output slot per item
//! into a job. The backend receives `&dyn Job` and sees nothing but chunk
//! indices; all generic code stays in `pool.rs` and `job.rs`. A backend is
//! one file in this directory, plus one line in the private `build`
//! function below.
//!
//! ```text
//! Pool::map ──► MapJob<T, R, F> ──► &dyn Job ──► Backend::run
//!                                                   │
//!                  in this process:  job.run_chunk(i, current_item)
//!                  in another one:   child: job.run_chunk(i), job.encode_chunk(i)
//!                                    parent: job.accept_chunk(i, bytes)
//! ```
//!
//! # The contract
//!
//! `run(job)` must, before it returns:
//!
//! 1. **Give every chunk a result, or stop early on failure.** Each chunk
//!    index in `0..job.plan().chunk_count()` is either run in this process
//!    with [`Job::run_chunk`] or run in another process (a copy of the job
//!    made by `fork`, or the same program on another MPI rank) and brought
//!    back with [`Job::encode_chunk`] and [`Job::accept_chunk`]. Once
//!    [`Job::should_stop`] is true (a fail-fast job has a failure) the
//!    backend hands out no new chunks and returns promptly. A job that
//!    [keeps going](Job::keeps_going) (`try_map`) never stops early.
//! 2. **Leave scheduling free, results fixed.** Chunks may run in any order,
//!    on any worker; the job puts results in input order and combines
//!    `map_reduce` partials in chunk order, so the answer never depends on
//!    the backend or the worker count. A backend must not split or merge
//!    chunks.
//! 3. **Report failures it sees and the job cannot.** A task that panics in
//!    `run_chunk` is recorded by the job itself. A worker that dies, or a
//!    task that passes its time limit, is the backend's to report, with
//!    [`Job::record_failure`] and an error naming the item
//!    ([`Error::crash`], [`Error::timeout`]). The `current_item` argument of
//!    `run_chunk` exists for this: a worker process publishes the item it is
//!    on in memory its supervisor can read. For a job that keeps going, the
//!    backend then runs the rest of that chunk again; the job skips the
//!    items recorded as failed.
//! 4. **Return `Err` only for its own failures** (an OS call that failed, a
//!    lost connection): task failures travel inside the job.
//! 5. **Leave nothing behind**: no threads still touching the job, no child
//!    processes, no file descriptors, no temporary files. The job borrows
//!    the caller's data and is freed right after `run` returns.
//! 6. **Stay usable** after any failure: the next `run` works.
//! 7. **Do not deadlock when nested.** `Pool` never calls a backend from
//!    inside a task (it runs nested calls serially), so a backend need not
//!    handle re-entry; it must not rely on anything the forking of a child
//!    loses (other threads, held locks) inside that child.
//!
//! The shared test suite in `tests/contract.rs` checks every built-in
//! backend against these rules.

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(unix)]
mod processes;
mod serial;
mod threads;

#[cfg(feature = "mpi")]
pub use mpi::MpiBackend;
#[cfg(unix)]
pub(crate) use processes::ProcessEngine;
#[cfg(unix)]
pub use processes::ProcessesBackend;
pub use serial::SerialBackend;
pub use threads::ThreadsBackend;

use crate::error::Error;
use crate::job::Job;
use std::fmt;
use std::str::FromStr;

/// Where the chunks of a job run. Implement it to plug in a new execution
/// engine; see the [module docs](self) for the contract.
///
/// ```
/// use parpool::{Backend, BackendKind, Error, Job, Pool};
///
/// /// Runs chunks last to first, on the calling thread.
/// #[derive(Debug)]
/// struct Backwards;
///
/// impl Backend for Backwards {
///     fn run(&self, job: &dyn Job) -> Result<(), Error> {
///         for chunk in (0..job.plan().chunk_count()).rev() {
///             if job.should_stop() {
///                 break;
///             }
///             let _ = job.run_chunk(chunk, None);
///         }
///         Ok(())
///     }
/// }
///
/// let pool = Pool::with_backend(Backwards);
/// assert_eq!(pool.kind(), BackendKind::Custom);
/// assert_eq!(pool.map(|x: u32| x + 1, vec![1, 2, 3])?, [2, 3, 4]);
/// # Ok::<(), Error>(())
/// ```
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs the chunks of `job` as the module docs describe.
    fn run(&self, job: &dyn Job) -> Result<(), Error>;

    /// Which kind of backend this is; [`BackendKind::Custom`] unless it is
    /// one of the crate's own.
    fn kind(&self) -> BackendKind {
        BackendKind::Custom
    }

    /// How many chunks can run at once.
    fn workers(&self) -> usize {
        1
    }

    /// This process's rank among the processes that run the program
    /// together (MPI); 0 for single-process backends.
    fn rank(&self) -> usize {
        0
    }

    /// How many processes run the program together (MPI ranks); 1 for
    /// single-process backends.
    fn size(&self) -> usize {
        1
    }
}

/// The built-in backends, as chosen in code or by `PARPOOL_BACKEND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// On the calling thread, in order (`serial`).
    Serial,
    /// On a dedicated rayon thread pool (`threads`, the default).
    Threads,
    /// In forked worker processes (`processes`, Unix only).
    #[cfg(unix)]
    Processes,
    /// Across MPI ranks (`mpi`, feature `mpi`).
    #[cfg(feature = "mpi")]
    Mpi,
    /// A backend given to [`Pool::with_backend`](crate::Pool::with_backend).
    Custom,
}

impl BackendKind {
    /// Every backend compiled into this build, in the order of the docs.
    pub const AVAILABLE: &'static [BackendKind] = &[
        BackendKind::Serial,
        BackendKind::Threads,
        #[cfg(unix)]
        BackendKind::Processes,
        #[cfg(feature = "mpi")]
        BackendKind::Mpi,
    ];

    /// The name used by `PARPOOL_BACKEND` (`"threads"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Serial => "serial",
            BackendKind::Threads => "threads",
            #[cfg(unix)]
            BackendKind::Processes => "processes",
            #[cfg(feature = "mpi")]
            BackendKind::Mpi => "mpi",
            BackendKind::Custom => "custom",
        }
    }

    fn accepted_names() -> String {
        BackendKind::AVAILABLE
            .iter()
            .map(|kind| kind.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    /// Parses a backend name, case-insensitively. Names of backends not
    /// compiled into this build are an error that says how to get them.
    fn from_str(text: &str) -> Result<BackendKind, Error> {
        parse_backend_name(text, "backend")
    }
}

/// Parses a backend name for the setting called `setting` (the builder's
/// `backend` or the `PARPOOL_BACKEND` variable), so the error names it.
pub(crate) fn parse_backend_name(text: &str, setting: &str) -> Result<BackendKind, Error> {
    let name = text.trim().to_ascii_lowercase();
    if let Some(kind) = BackendKind::AVAILABLE
        .iter()
        .find(|kind| kind.name() == name)
    {
        return Ok(*kind);
    }
    let reason = match name.as_str() {
        "mpi" => format!(
            "the mpi backend is not in this build of parpool: build with `--features mpi` \
             (needs an MPI library, see the README); available: {}",
            BackendKind::accepted_names()
        ),
        "processes" => format!(
            "the processes backend is not in this build of parpool (it needs Unix); \
             available: {}",
            BackendKind::accepted_names()
        ),
        _ => format!("expected one of: {}", BackendKind::accepted_names()),
    };
    Err(Error::invalid_config(setting, text, reason))
}

/// Settings every built-in backend is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BackendSettings {
    pub(crate) workers: usize,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) retries: u32,
}

/// How streams (`imap`, sessions) run on a pool's backend.
#[derive(Clone)]
pub(crate) enum Streamer {
    /// Chunks submitted so far run together as one ordinary call.
    Batch,
    /// Each chunk is a task on this rayon pool.
    Threads(std::sync::Arc<rayon::ThreadPool>),
    /// Worker processes forked once per stream or session.
    #[cfg(unix)]
    Processes(BackendSettings),
}

/// Builds the built-in backend `kind`, and says how its streams run.
pub(crate) fn build(
    kind: BackendKind,
    settings: &BackendSettings,
) -> Result<(std::sync::Arc<dyn Backend>, Streamer), Error> {
    if let Some(limit) = settings.timeout
        && !kind_can_time_out(kind)
    {
        return Err(Error::invalid_config(
            "timeout",
            format!("{limit:?}"),
            format!(
                "the {kind} backend cannot stop a running task (a thread cannot be killed \
                 safely); per-task timeouts need the processes backend"
            ),
        ));
    }
    Ok(match kind {
        BackendKind::Serial => (std::sync::Arc::new(SerialBackend), Streamer::Batch),
        BackendKind::Threads => {
            let threads = ThreadsBackend::new(settings.workers)?;
            let streamer = Streamer::Threads(threads.rayon_pool());
            (std::sync::Arc::new(threads), streamer)
        }
        #[cfg(unix)]
        BackendKind::Processes => (
            std::sync::Arc::new(ProcessesBackend::new(
                settings.workers,
                settings.timeout,
                settings.retries,
            )?),
            Streamer::Processes(settings.clone()),
        ),
        #[cfg(feature = "mpi")]
        BackendKind::Mpi => (std::sync::Arc::new(MpiBackend::new()?), Streamer::Batch),
        BackendKind::Custom => {
            return Err(Error::invalid_config(
                "backend",
                "custom",
                "a custom backend is given with Pool::with_backend, not built by kind",
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

/// True for backends that can kill a task that runs too long.
fn kind_can_time_out(kind: BackendKind) -> bool {
    #[cfg(unix)]
    if kind == BackendKind::Processes {
        return true;
    }
    let _ = kind;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
