//! [`PoolBuilder`]: settings for a [`Pool`], checked in one place.

use super::{BACKEND_VARIABLE, Pool, PoolOf, PoolSettings};
use crate::backend::{self, Backend, BackendKind, Driver, ThreadsBackend};
use crate::carries::Portable;
use crate::cpus;
use crate::error::Error;
use crate::job::TaskLimits;
use crate::progress::ProgressMode;
use std::sync::Arc;
use std::time::Duration;

/// Settings for a [`Pool`]. Every setting is optional; [`build`] checks
/// them all and says which one is wrong: a setting the chosen backend
/// cannot honour is an error naming it, never silently ignored.
///
/// | setting | serial | threads | processes | MPI | custom |
/// |---|---|---|---|---|---|
/// | [`kind`](PoolBuilder::kind), [`chunk_size`](PoolBuilder::chunk_size), [`in_flight`](PoolBuilder::in_flight), `progress` | yes | yes | yes | yes | yes (not `kind`) |
/// | [`workers`](PoolBuilder::workers) | accepted, runs 1 (so one `--workers` flag serves every backend) | threads | processes | threads per rank | no: the backend has its own |
/// | [`dedicated_threads`](PoolBuilder::dedicated_threads) | no | yes | no | no | no |
/// | [`timeout`](PoolBuilder::timeout) | no | no | yes | no | if [`can_time_out`](crate::backend::Capabilities::can_time_out) |
/// | [`retries`](PoolBuilder::retries) (more than 0) | no | no | yes | no | if [`isolates_crashes`](crate::backend::Capabilities::isolates_crashes) |
/// | [`max_tasks_per_worker`](PoolBuilder::max_tasks_per_worker) | no | no | yes | no | if [`recycles_workers`](crate::backend::Capabilities::recycles_workers) |
///
/// A [`LocalPool`](crate::LocalPool) ([`build_local`](PoolBuilder::build_local))
/// runs on serial or threads, so the same columns apply. Settings from the
/// environment (`PARPOOL_WORKERS`) are never an error for being
/// unneeded: `PARPOOL_WORKERS=4 PARPOOL_BACKEND=serial` runs serially.
///
/// # Which pools share threads
///
/// A threads pool runs on the process's one shared thread pool (like
/// rayon's global pool; see [`ThreadsBackend::shared`]) unless it asks
/// for something else: `Pool::new()`, `Pool::default()`,
/// `Pool::from_env()`, `Pool::local()` and a builder that sets no worker
/// count all share it, and so does an explicit
/// [`workers(n)`](PoolBuilder::workers) equal to the shared pool's size.
/// A different worker count, or
/// [`dedicated_threads(true)`](PoolBuilder::dedicated_threads), gets
/// threads of its own. Either way threads start at the first call, not
/// when the pool is built.
///
/// ```
/// use parpool::{BackendKind, Pool};
///
/// let pool = Pool::builder()
///     .kind(BackendKind::Threads)
///     .workers(2)
///     .chunk_size(100)
///     .build()?;
/// assert_eq!((pool.kind(), pool.workers()), (BackendKind::Threads, 2));
///
/// let error = Pool::builder().workers(0).build().unwrap_err();
/// assert!(error.is_invalid_config());
/// # Ok::<(), parpool::Error>(())
/// ```
///
/// [`build`]: PoolBuilder::build
#[derive(Clone, Debug, Default)]
pub struct PoolBuilder {
    pub(super) kind: Option<BackendKind>,
    pub(super) backend: Option<Arc<dyn Driver>>,
    workers: Option<usize>,
    dedicated_threads: bool,
    chunk_size: Option<usize>,
    timeout: Option<Duration>,
    retries: u32,
    max_tasks_per_worker: Option<usize>,
    in_flight: Option<usize>,
    progress: ProgressMode,
}

impl PoolBuilder {
    /// The backend. Default: `PARPOOL_BACKEND`, else
    /// [`BackendKind::Threads`].
    pub fn kind(mut self, kind: BackendKind) -> PoolBuilder {
        self.kind = Some(kind);
        self
    }

    /// A backend of your own (see [`Backend`]) instead of a built-in
    /// [`kind`](PoolBuilder::kind); every other setting applies to it.
    /// Such a backend has its own worker count: `build` rejects
    /// [`workers`](PoolBuilder::workers) (and ignores `PARPOOL_WORKERS`
    /// and `PARPOOL_BACKEND`), and accepts a
    /// [`timeout`](PoolBuilder::timeout) only if its
    /// [capabilities](crate::backend::Capabilities::can_time_out) say it can stop a task.
    ///
    /// ```
    /// use parpool::{BackendKind, Pool};
    /// use parpool::backend::SerialBackend;
    ///
    /// let pool = Pool::builder().backend(SerialBackend).chunk_size(2).in_flight(1).build()?;
    /// assert_eq!(pool.kind(), BackendKind::Serial);
    /// assert_eq!(pool.map(|x: u8| x + 1, [1, 2, 3])?, [2, 3, 4]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn backend(mut self, backend: impl Backend + 'static) -> PoolBuilder {
        self.backend = Some(backend::adopt(backend));
        self
    }

    /// How many tasks run at once (threads, processes; threads per rank
    /// on MPI). Default: `PARPOOL_WORKERS`, else [`cpus::available`]
    /// (detected once per process, as rayon does). Must be at least 1.
    /// The serial backend accepts any count and runs one task at a time.
    pub fn workers(mut self, workers: usize) -> PoolBuilder {
        self.workers = Some(workers);
        self
    }

    /// Threads of this pool's own instead of the process's shared thread
    /// pool (threads backend only; see [which pools share](PoolBuilder#which-pools-share-threads)).
    /// For work that must not wait behind other pools' calls, or must not
    /// hold them up. Its threads start at its first call and exit soon
    /// after the last clone of the pool is dropped. Default: `false`.
    ///
    /// ```
    /// use parpool::{BackendKind, Pool};
    ///
    /// let own = Pool::builder().kind(BackendKind::Threads).dedicated_threads(true).build()?;
    /// assert_eq!(own.map(|x: u8| x + 1, [1, 2])?, [2, 3]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn dedicated_threads(mut self, dedicated: bool) -> PoolBuilder {
        self.dedicated_threads = dedicated;
        self
    }

    /// Items per chunk, the unit of scheduling. Default: see
    /// [`ChunkPlan`](crate::backend::ChunkPlan) (`ceil(n / 128)` clamped to
    /// `1..=65536`). Must be at least 1. Larger chunks cost less per item;
    /// smaller chunks balance uneven items better.
    pub fn chunk_size(mut self, chunk_size: usize) -> PoolBuilder {
        self.chunk_size = Some(chunk_size);
        self
    }

    /// A time limit per task: a task still running after `limit` has its
    /// worker killed and fails with [`Error::is_timeout`]. Needs a backend
    /// that can stop a running task
    /// ([`Capabilities::can_time_out`](crate::backend::Capabilities::can_time_out): the process backend); `build`
    /// rejects it for the others. Must be more than zero.
    pub fn timeout(mut self, limit: Duration) -> PoolBuilder {
        self.timeout = Some(limit);
        self
    }

    /// How many times a task whose worker crashed (a signal, an unexpected
    /// exit) or timed out is run again on a fresh worker before the failure
    /// counts. Default 0. Panics are never retried: a panic is a bug in the
    /// task and would happen again. Needs a backend whose workers can crash
    /// without taking the caller down (processes;
    /// [`Capabilities::isolates_crashes`](crate::backend::Capabilities::isolates_crashes)):
    /// `build` rejects more than 0 for the others, where nothing could
    /// ever be retried.
    pub fn retries(mut self, retries: u32) -> PoolBuilder {
        self.retries = retries;
        self
    }

    /// Replaces a worker process with a fresh one after it has run `tasks`
    /// tasks, like Python's `maxtasksperchild` (`multiprocessing.Pool`) and
    /// `max_tasks_per_child` (`ProcessPoolExecutor`): for tasks that leak
    /// memory or other resources a long run cannot afford. In plain calls,
    /// sessions and streams. Must be at least 1; needs a backend whose
    /// workers are processes
    /// ([`Capabilities::recycles_workers`](crate::backend::Capabilities::recycles_workers)).
    ///
    /// - Workers retire between chunks, so a worker may run up to a chunk
    ///   (less one item) past its quota; set
    ///   [`chunk_size`](PoolBuilder::chunk_size) smaller for a tight one.
    /// - Results do not change: which worker runs a chunk never does.
    /// - A retiring worker is no failure: it costs no
    ///   [retry](PoolBuilder::retries). A chunk retried after a crash runs
    ///   on a fresh worker and counts toward that worker's quota.
    /// - Each replacement is a `fork` of the caller: from a big parent that
    ///   costs tens of milliseconds per GiB (see the process backend), so a
    ///   [session](Pool::session) forked from one gives up part of its
    ///   advantage with a small quota.
    ///
    /// ```
    /// use parpool::{BackendKind, Pool};
    ///
    /// let pool = Pool::builder()
    ///     .kind(BackendKind::Processes)
    ///     .workers(2)
    ///     .chunk_size(1)
    ///     .max_tasks_per_worker(2)
    ///     .build()?;
    /// let pids = pool.map(|_: u32| std::process::id(), 0..8)?;
    /// let distinct: std::collections::BTreeSet<u32> = pids.into_iter().collect();
    /// assert!(distinct.len() >= 4, "8 tasks, at most 2 per worker");
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn max_tasks_per_worker(mut self, tasks: usize) -> PoolBuilder {
        self.max_tasks_per_worker = Some(tasks);
        self
    }

    /// How many chunks a stream ([`imap`](Pool::imap)) keeps running or
    /// waiting to be handed out at once; it bounds the stream's memory to
    /// about `in_flight * chunk_size` items and results. Default: 4 per
    /// worker (1 on the serial backend). Must be at least 1.
    pub fn in_flight(mut self, chunks: usize) -> PoolBuilder {
        self.in_flight = Some(chunks);
        self
    }

    /// Shows a progress bar on stderr for every call (`map`, `map_results`,
    /// `map_init`, `map_reduce`, `imap`): items done out of the total, rate
    /// and time left; a spinner with a count for a stream of unknown
    /// length. Drawn only when stderr is a terminal (see
    /// [`force_progress`](PoolBuilder::force_progress)). On MPI, rank 0
    /// draws. Needs the cargo feature `progress` (on by default).
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn progress(self, show: bool) -> PoolBuilder {
        self.progress_mode(show, ProgressMode::Auto)
    }

    /// Like [`progress`](PoolBuilder::progress), but also when stderr is
    /// not a terminal (a log file, a batch job's output): then as a log
    /// line at most once a second, and a summary line when the call ends.
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn force_progress(self, show: bool) -> PoolBuilder {
        self.progress_mode(show, ProgressMode::Always)
    }

    #[cfg(feature = "progress")]
    fn progress_mode(mut self, show: bool, mode: ProgressMode) -> PoolBuilder {
        self.progress = if show { mode } else { ProgressMode::Off };
        self
    }

    /// Checks the settings and makes the pool. Worker threads start at
    /// its first call; on MPI, building joins the MPI job.
    ///
    /// # Errors
    ///
    /// An invalid setting or environment variable (`workers(0)`, an unknown
    /// `PARPOOL_BACKEND`, a `PARPOOL_WORKERS` that is not a positive
    /// integer, a backend not compiled in), a setting the backend cannot
    /// honour (see the [table](PoolBuilder)), or a backend that cannot
    /// start.
    pub fn build(self) -> Result<Pool, Error> {
        self.build_as::<Portable>()
    }

    /// [`build`](PoolBuilder::build), for a pool with codec `C`.
    pub(super) fn build_as<C>(self) -> Result<PoolOf<C>, Error> {
        if self.chunk_size == Some(0) {
            return Err(Error::invalid_config(
                "chunk_size",
                "0",
                "a chunk holds at least 1 item",
            ));
        }
        if self.in_flight == Some(0) {
            return Err(Error::invalid_config(
                "in_flight",
                "0",
                "a stream needs at least 1 chunk in flight",
            ));
        }
        if self.max_tasks_per_worker == Some(0) {
            return Err(Error::invalid_config(
                "max_tasks_per_worker",
                "0",
                "a worker runs at least 1 task",
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::invalid_config(
                "timeout",
                "0s",
                "a per-task time limit must be more than zero",
            ));
        }
        let backend = match self.backend.clone() {
            Some(backend) => self.check_custom(backend)?,
            None => self.build_kind(self.resolve_kind()?)?,
        };
        if let Some(limit) = self.timeout
            && !backend.capabilities().can_time_out
        {
            return Err(Error::invalid_config(
                "timeout",
                format!("{limit:?}"),
                format!(
                    "the {} backend cannot stop a running task (a thread cannot be killed \
                     safely); per-task timeouts need the processes backend",
                    backend.kind()
                ),
            ));
        }
        if self.retries > 0 && !backend.capabilities().isolates_crashes {
            return Err(Error::invalid_config(
                "retries",
                self.retries.to_string(),
                format!(
                    "the {} backend has no worker that can crash on its own, so nothing could be \
                     retried (a crash there ends the program); retries need the processes \
                     backend",
                    backend.kind()
                ),
            ));
        }
        if let Some(tasks) = self.max_tasks_per_worker
            && !backend.capabilities().recycles_workers
        {
            return Err(Error::invalid_config(
                "max_tasks_per_worker",
                tasks.to_string(),
                format!(
                    "the {} backend has no worker processes to replace; worker recycling \
                     needs the processes backend",
                    backend.kind()
                ),
            ));
        }
        let settings = PoolSettings {
            limits: TaskLimits {
                timeout: self.timeout,
                retries: self.retries,
                max_tasks_per_worker: self.max_tasks_per_worker,
            },
            chunk_size: self.chunk_size,
            in_flight: self.in_flight,
            progress: self.progress,
        };
        Ok(PoolOf::from_parts(backend, settings))
    }

    /// The built-in backend `kind`, with the workers this builder resolves
    /// to: on threads, the shared pool unless it asks for its own.
    fn build_kind(&self, kind: BackendKind) -> Result<Arc<dyn Driver>, Error> {
        if self.dedicated_threads && kind != BackendKind::Threads {
            return Err(Error::invalid_config(
                "dedicated_threads",
                "true",
                format!(
                    "the {kind} backend has no thread pool to share or not; dedicated threads \
                     are a setting of the threads backend"
                ),
            ));
        }
        let workers = self.resolve_workers()?;
        if kind == BackendKind::Threads
            && !self.dedicated_threads
            && workers == backend::shared_threads_size()
        {
            return Ok(Arc::new(ThreadsBackend::shared()));
        }
        backend::build(kind, workers)
    }

    /// The built-in backend: the builder's, else `PARPOOL_BACKEND`, else
    /// threads.
    pub(super) fn resolve_kind(&self) -> Result<BackendKind, Error> {
        if let Some(kind) = self.kind {
            return Ok(kind);
        }
        match std::env::var(BACKEND_VARIABLE) {
            Ok(text) => backend::parse_backend_name(&text, BACKEND_VARIABLE),
            Err(std::env::VarError::NotPresent) => Ok(BackendKind::Threads),
            Err(std::env::VarError::NotUnicode(text)) => {
                backend::parse_backend_name(&text.to_string_lossy(), BACKEND_VARIABLE)
            }
        }
    }

    /// The worker count: the builder's, else `PARPOOL_WORKERS`, else CPU
    /// detection.
    fn resolve_workers(&self) -> Result<usize, Error> {
        match self.workers {
            Some(workers) => backend::check_workers(workers),
            None => match std::env::var(crate::env::WORKERS) {
                Ok(text) => cpus::parse_count(&text).map_err(|reason| {
                    Error::invalid_config(crate::env::WORKERS, text.clone(), reason)
                }),
                Err(std::env::VarError::NotPresent) => Ok(cpus::detected_count()),
                Err(std::env::VarError::NotUnicode(text)) => Err(Error::invalid_config(
                    crate::env::WORKERS,
                    text.to_string_lossy(),
                    "not valid UTF-8; expected a positive integer",
                )),
            },
        }
    }

    /// A custom backend, if no setting contradicts it.
    fn check_custom(&self, backend: Arc<dyn Driver>) -> Result<Arc<dyn Driver>, Error> {
        if let Some(kind) = self.kind {
            return Err(Error::invalid_config(
                "kind",
                kind.name(),
                "a pool runs on either a built-in kind or a backend of your own; set one",
            ));
        }
        if self.dedicated_threads {
            return Err(Error::invalid_config(
                "dedicated_threads",
                "true",
                "a backend of your own runs on whatever threads it has; dedicated threads are \
                 a setting of the threads backend",
            ));
        }
        if let Some(workers) = self.workers {
            return Err(Error::invalid_config(
                "workers",
                workers.to_string(),
                format!(
                    "a backend of your own has its own worker count ({}); set it when you \
                     make the backend",
                    backend.workers()
                ),
            ));
        }
        Ok(backend)
    }
}
