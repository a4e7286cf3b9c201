//! [`Pool`] and [`PoolBuilder`]: the typed front door.
//!
//! All generic code lives here and in `job.rs`: a call collects its items,
//! makes a [`ChunkPlan`], wraps everything in a job and hands `&dyn Job` to
//! the backend. Settings come from the builder, then from the environment
//! (`PARPOOL_BACKEND`, `PARPOOL_WORKERS`), then from CPU detection.

use crate::backend::{self, Backend, BackendKind, BackendSettings, SerialBackend};
use crate::cpus;
use crate::error::{Error, panic_payload_message};
use crate::job::{self, Job, MapJob, ReduceJob};
use crate::plan::ChunkPlan;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that picks the backend.
pub const BACKEND_VARIABLE: &str = "PARPOOL_BACKEND";

/// A parallel map-reduce pool. Cheap to clone (clones share the workers),
/// `Send + Sync`, usable from many threads at once.
///
/// ```
/// use parpool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new();
/// let squares = pool.map(square, vec![1, 2, 3, 4, 5, 6])?;
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
///
/// let sum = pool.map_reduce(square, 1..=6, 0, |a, b| a + b)?;
/// assert_eq!(sum, 91);
/// # Ok::<(), parpool::Error>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    backend: Arc<dyn Backend>,
    chunk_size: Option<usize>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("kind", &self.kind())
            .field("workers", &self.workers())
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

impl Default for Pool {
    /// The same as [`Pool::new`].
    fn default() -> Pool {
        Pool::new()
    }
}

impl Pool {
    /// A pool configured from the environment: backend from
    /// `PARPOOL_BACKEND` (default `threads`), workers from `PARPOOL_WORKERS`
    /// or [CPU detection](crate::cpus).
    ///
    /// # Panics
    ///
    /// If an environment variable holds an invalid value; the message names
    /// the variable and the accepted values. Use [`Pool::from_env`] to get
    /// an `Err` instead.
    pub fn new() -> Pool {
        Pool::from_env().unwrap_or_else(|error| panic!("parpool: {error}"))
    }

    /// Like [`Pool::new`], but an invalid environment is an `Err`.
    pub fn from_env() -> Result<Pool, Error> {
        Pool::builder().build()
    }

    /// A builder for a pool with explicit settings; unset ones come from the
    /// environment as in [`Pool::new`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// A pool that runs on a backend of your own; see [`Backend`].
    pub fn with_backend(backend: impl Backend + 'static) -> Pool {
        Pool {
            backend: Arc::new(backend),
            chunk_size: None,
        }
    }

    /// How many tasks can run at once.
    pub fn workers(&self) -> usize {
        self.backend.workers()
    }

    /// Which backend runs the tasks.
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// This process's MPI rank (0 unless the backend is MPI). Every rank
    /// gets the same results; use this to print from one rank only.
    pub fn rank(&self) -> usize {
        self.backend.rank()
    }

    /// The number of MPI ranks running the program (1 unless the backend is
    /// MPI).
    pub fn size(&self) -> usize {
        self.backend.size()
    }

    /// Applies `f` to every item, in parallel; the results come back in
    /// input order.
    ///
    /// Fails fast: at the first task that fails (panics, or on some backends
    /// crashes or times out) no new chunks are started and the call returns
    /// that failure, naming the item. Use [`try_map`](Pool::try_map) to get
    /// every result that can be computed.
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let lengths = pool.map(|word: &str| word.len(), ["map", "reduce"])?;
    /// assert_eq!(lengths, [3, 6]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn map<T, R, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send + Serialize + DeserializeOwned,
    {
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.plan(items.len());
        let job = MapJob::new(items, plan, f, None);
        self.execute(&job)?;
        job.into_outputs()
    }

    /// Applies `f` to every item and returns one result per item, in input
    /// order: `Ok(value)` or the `Err` of that item's task. Keeps going past
    /// failures; nothing computed is thrown away.
    ///
    /// ```
    /// use parpool::{BackendKind, Pool};
    ///
    /// let pool = Pool::builder().kind(BackendKind::Threads).workers(2).build()?;
    /// let results = pool.try_map(|x: i32| if x == 2 { panic!("two") } else { x * 10 }, 0..4);
    /// assert_eq!(results[1].as_ref().ok(), Some(&10));
    /// assert!(results[2].as_ref().unwrap_err().is_panic());
    /// assert_eq!(results[3].as_ref().ok(), Some(&30));
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn try_map<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Vec<Result<R, Error>>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send + Serialize + DeserializeOwned,
    {
        let items: Vec<(usize, T)> = items.into_iter().enumerate().collect();
        if items.is_empty() {
            return Vec::new();
        }
        let total = items.len();
        let plan = self.plan(total);
        let guarded = |(index, item): (usize, T)| -> Result<R, Error> {
            catch_unwind(AssertUnwindSafe(|| f(item)))
                .map_err(|payload| Error::panic(index, total, panic_payload_message(&*payload)))
        };
        let job = MapJob::new(items, plan, guarded, Some(Err));
        match self.execute(&job) {
            Ok(()) => job.into_outputs_or(|index| {
                Err(Error::backend(
                    self.kind().name(),
                    format!("task {index} of {total} was never run"),
                ))
            }),
            Err(error) => job.into_outputs_or(|_| Err(error.clone())),
        }
    }

    /// Applies `f` to every item and combines the results with `op`.
    ///
    /// Each chunk folds its items in order starting from a clone of
    /// `identity`; the chunk partials are then folded in chunk order, again
    /// from `identity`. `op` must be associative and `identity` neutral for
    /// the result to equal a sequential fold; the grouping depends only on
    /// the item count and chunk size, so even a floating-point sum is
    /// bit-identical on every backend and worker count.
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let sum_of_squares = pool.map_reduce(|x: f64| x * x, (1..=100).map(f64::from), 0.0, |a, b| a + b)?;
    /// assert_eq!(sum_of_squares, 338_350.0);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn map_reduce<T, R, F, Op>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        identity: R,
        op: Op,
    ) -> Result<R, Error>
    where
        F: Fn(T) -> R + Sync,
        Op: Fn(R, R) -> R + Sync,
        T: Send,
        R: Send + Clone + Serialize + DeserializeOwned,
    {
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(identity);
        }
        let plan = self.plan(items.len());
        let job = ReduceJob::new(items, plan, f, identity, op);
        self.execute(&job)?;
        job.into_result()
    }

    /// The chunk plan for `item_count` items.
    fn plan(&self, item_count: usize) -> ChunkPlan {
        match self.chunk_size {
            Some(size) => ChunkPlan::new(item_count, size),
            None => ChunkPlan::with_default_size(item_count),
        }
    }

    /// Runs `job` on this pool's backend, or serially when called from
    /// inside a task of any pool (nested use).
    fn execute(&self, job: &dyn Job) -> Result<(), Error> {
        if job::inside_task() {
            SerialBackend.run(job)
        } else {
            self.backend.run(job)
        }
    }
}

/// Settings for a [`Pool`]. Every setting is optional; [`build`] checks
/// them all and says which one is wrong.
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
    kind: Option<BackendKind>,
    workers: Option<usize>,
    chunk_size: Option<usize>,
    timeout: Option<Duration>,
    retries: u32,
}

impl PoolBuilder {
    /// The backend. Default: `PARPOOL_BACKEND`, else
    /// [`BackendKind::Threads`].
    pub fn kind(mut self, kind: BackendKind) -> PoolBuilder {
        self.kind = Some(kind);
        self
    }

    /// How many tasks run at once (threads, processes). Default:
    /// `PARPOOL_WORKERS`, else [`cpus::available`]. Must be at least 1.
    pub fn workers(mut self, workers: usize) -> PoolBuilder {
        self.workers = Some(workers);
        self
    }

    /// Items per chunk, the unit of scheduling. Default: see
    /// [`ChunkPlan`](crate::ChunkPlan) (`ceil(n / 128)` clamped to
    /// `1..=4096`). Must be at least 1. Larger chunks cost less per item;
    /// smaller chunks balance uneven items better.
    pub fn chunk_size(mut self, chunk_size: usize) -> PoolBuilder {
        self.chunk_size = Some(chunk_size);
        self
    }

    /// A time limit per task: a task still running after `limit` has its
    /// worker killed and fails with [`Error::is_timeout`]. Needs a backend
    /// that can stop a running task (the process backend); `build` rejects
    /// it for the others. Must be more than zero.
    pub fn timeout(mut self, limit: Duration) -> PoolBuilder {
        self.timeout = Some(limit);
        self
    }

    /// How many times a task whose worker crashed (a signal, an unexpected
    /// exit) or timed out is run again on a fresh worker before the failure
    /// counts. Default 0. Panics are never retried: a panic is a bug in the
    /// task and would happen again. Only backends whose workers can crash
    /// without taking the caller down (processes) ever retry.
    pub fn retries(mut self, retries: u32) -> PoolBuilder {
        self.retries = retries;
        self
    }

    /// Checks the settings and starts the backend's workers.
    ///
    /// # Errors
    ///
    /// An invalid setting or environment variable (`workers(0)`, an unknown
    /// `PARPOOL_BACKEND`, a `PARPOOL_WORKERS` that is not a positive
    /// integer, a backend not compiled in), or a backend that cannot start.
    pub fn build(self) -> Result<Pool, Error> {
        let kind = match self.kind {
            Some(kind) => kind,
            None => match std::env::var(BACKEND_VARIABLE) {
                Ok(text) => backend::parse_backend_name(&text, BACKEND_VARIABLE)?,
                Err(std::env::VarError::NotPresent) => BackendKind::Threads,
                Err(std::env::VarError::NotUnicode(text)) => {
                    backend::parse_backend_name(&text.to_string_lossy(), BACKEND_VARIABLE)?
                }
            },
        };
        let workers = match self.workers {
            Some(workers) => backend::check_workers(workers)?,
            None => match std::env::var(cpus::WORKERS_VARIABLE) {
                Ok(text) => cpus::parse_count(&text).map_err(|reason| {
                    Error::invalid_config(cpus::WORKERS_VARIABLE, text.clone(), reason)
                })?,
                Err(_) => cpus::available().count(),
            },
        };
        if self.chunk_size == Some(0) {
            return Err(Error::invalid_config(
                "chunk_size",
                "0",
                "a chunk holds at least 1 item",
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::invalid_config(
                "timeout",
                "0s",
                "a per-task time limit must be more than zero",
            ));
        }
        let settings = BackendSettings {
            workers,
            timeout: self.timeout,
            retries: self.retries,
        };
        let backend = backend::build(kind, &settings)?;
        Ok(Pool {
            backend,
            chunk_size: self.chunk_size,
        })
    }
}
