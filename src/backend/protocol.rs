//! What a third-party backend implements and calls: the [`Backend`] trait,
//! the [`Job`] it is handed, and the errors it may report. This is the
//! whole public protocol; the crate's own backends use more (the private
//! `Driver` trait in `driver.rs`), which is free to change.

use super::Capabilities;
use crate::error::Error;
use crate::job::{ChunkJob, TaskLimits};
use crate::plan::ChunkPlan;
use std::fmt;
use std::time::Duration;

/// Where the chunks of a job run. Implement it to plug in an execution
/// engine of your own and give it to [`Pool::with_backend`](crate::Pool::with_backend)
/// or [`PoolBuilder::backend`](crate::PoolBuilder::backend); see the
/// [`backend`](crate::backend) module docs for the contract. Only
/// [`run`](Backend::run) is required: every call, stream, session,
/// cancellation and progress bar of the pool then works on it (streams and
/// sessions run their chunks in batches through `run`).
///
/// ```
/// use parpool::backend::{Backend, Job};
/// use parpool::{BackendKind, Error, Pool};
///
/// /// Runs chunks last to first, on the calling thread.
/// #[derive(Debug)]
/// struct Backwards;
///
/// impl Backend for Backwards {
///     fn run(&self, job: &Job<'_>) -> Result<(), Error> {
///         for chunk in (0..job.plan().chunk_count()).rev() {
///             if job.should_stop() {
///                 break;
///             }
///             // A task's failure is recorded in the job itself.
///             let _ = job.run_chunk(chunk);
///         }
///         Ok(())
///     }
/// }
///
/// let pool = Pool::with_backend(Backwards);
/// assert_eq!(pool.kind(), BackendKind::Custom);
/// assert_eq!(pool.map(|x: u32| x + 1, vec![1, 2, 3])?, [2, 3, 4]);
/// let doubled: Vec<u32> = pool.imap(|x: u32| x * 2, 0..5)?.collect::<Result<_, _>>()?;
/// assert_eq!(doubled, [0, 2, 4, 6, 8]);
/// # Ok::<(), Error>(())
/// ```
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs the chunks of `job` as the [module docs](crate::backend)
    /// describe.
    ///
    /// # Errors
    ///
    /// Only the backend's own failures (an OS call, a lost connection:
    /// see [`backend_error`](crate::backend::backend_error)); a task's
    /// failure travels inside the job.
    fn run(&self, job: &Job<'_>) -> Result<(), Error>;

    /// How many chunks can run at once.
    fn workers(&self) -> usize {
        1
    }

    /// What this backend can do; see [`Capabilities`]. The default claims
    /// nothing: no timeouts, no shared memory, one rank.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
}

/// The work of one batch call, as a backend is handed it: a [`ChunkPlan`]
/// and operations on chunk indices. The items, the function and the typed
/// results stay inside; a backend sees only chunk numbers (and, to move
/// results between processes, encoded bytes).
pub struct Job<'a> {
    job: &'a dyn ChunkJob,
}

impl<'a> Job<'a> {
    /// The handle third-party backends get to the crate's job.
    pub(crate) fn new(job: &'a dyn ChunkJob) -> Job<'a> {
        Job { job }
    }

    /// The full job behind the handle, for the crate's own backends.
    pub(crate) fn chunk_job(&self) -> &'a dyn ChunkJob {
        self.job
    }

    /// How the items are cut into chunks: chunk indices run over
    /// `0..plan().chunk_count()`.
    pub fn plan(&self) -> ChunkPlan {
        self.job.plan()
    }

    /// Runs chunk `chunk` on the calling thread, in item order. A panic in
    /// the user's function is caught, recorded in the job and returned as
    /// `Err`; so is running a chunk twice. A chunk that is
    /// [done](Job::is_chunk_done) before the backend ran it (read back from
    /// a [`Journal`](crate::Journal)) is skipped: `Ok` at once.
    ///
    /// # Errors
    ///
    /// The chunk's failure, already recorded: the backend need not report
    /// it again.
    pub fn run_chunk(&self, chunk: usize) -> Result<(), Error> {
        if self.job.is_chunk_done(chunk) {
            return Ok(());
        }
        self.job.run_chunk(chunk, None)
    }

    /// True once chunk `chunk` has its results here: run, accepted, or read
    /// back from a journal before the call reached the backend. A backend
    /// that hands chunks to other processes skips the done ones.
    pub fn is_chunk_done(&self, chunk: usize) -> bool {
        self.job.is_chunk_done(chunk)
    }

    /// True once a fail-fast job has a failure or the call was cancelled:
    /// hand out no more chunks, and return once the running ones end.
    pub fn should_stop(&self) -> bool {
        self.job.should_stop()
    }

    /// True for [`map_results`](crate::Pool::map_results): every chunk
    /// runs despite failures, and a chunk whose worker died runs again
    /// (the items recorded as failed are skipped).
    pub fn keeps_going(&self) -> bool {
        self.job.keeps_going()
    }

    /// The per-task limits of this call (timeout, retries), for a backend
    /// whose [capabilities](Capabilities) say it can enforce them.
    pub fn limits(&self) -> TaskLimits {
        self.job.limits()
    }

    /// The results of chunk `chunk`, run in this copy of the job (for
    /// example in a forked child), encoded to travel to the copy that
    /// called the backend.
    ///
    /// # Errors
    ///
    /// A result could not be encoded, or the chunk has not run here.
    pub fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error> {
        self.job.encode_chunk(chunk)
    }

    /// Accepts the output of [`encode_chunk`](Job::encode_chunk) from
    /// another copy of this job. The chunk must still be pending here.
    ///
    /// # Errors
    ///
    /// The bytes are not a chunk's results (a result that does not decode
    /// is recorded against its item), or the chunk is not pending.
    pub fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        self.job.accept_chunk(chunk, bytes)
    }

    /// Records a task that failed outside [`run_chunk`](Job::run_chunk):
    /// its worker crashed ([`crash_error`](crate::backend::crash_error)) or
    /// ran past its limit ([`timeout_error`](crate::backend::timeout_error)).
    /// On a fail-fast job this stops the job; on a job that [keeps
    /// going](Job::keeps_going) it becomes that item's result.
    pub fn record_failure(&self, error: Error) {
        self.job.record_failure(error)
    }
}

impl fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("plan", &self.plan())
            .field("keeps_going", &self.keeps_going())
            .finish_non_exhaustive()
    }
}

/// The error of a backend that failed for a reason not tied to one task
/// (an OS call, a lost connection), for [`Backend::run`] to return:
/// `"{backend} backend failed: {message}"`, of kind
/// [`ErrorKind::Backend`](crate::ErrorKind::Backend).
pub fn backend_error(backend: &str, message: impl fmt::Display) -> Error {
    Error::backend(backend, message)
}

/// The error of task `item` (of `total`) whose worker died; `how` says how
/// ("killed by signal 9 (SIGKILL)"). Of kind [`ErrorKind::Crash`](crate::ErrorKind::Crash).
pub fn crash_error(item: usize, total: usize, how: impl Into<String>) -> Error {
    Error::crash(item, total, how)
}

/// The error of task `item` (of `total`) still running after `elapsed`,
/// past `limit`, whose worker was stopped. Of kind
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
pub fn timeout_error(item: usize, total: usize, elapsed: Duration, limit: Duration) -> Error {
    Error::timeout(item, total, elapsed, limit)
}
