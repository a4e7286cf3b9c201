//! [`Pool`] (and [`LocalPool`], the same type with another codec) and
//! [`PoolBuilder`]: the typed front door.
//!
//! There is one implementation of every call, generic over the pool's
//! codec `C` ([`Carries`](crate::carries::Carries)): it only decides how results travel, and so
//! which bounds a call has. All generic code lives here and in the `job`
//! module: a call collects its
//! items, makes a [`ChunkPlan`], wraps everything in a job and hands
//! `&dyn ChunkJob` to the backend; a stream or session hands it an
//! `Arc<dyn StreamJob>`. Settings come from the builder, then from the
//! environment (`PARPOOL_BACKEND`, `PARPOOL_WORKERS`), then from CPU
//! detection.

use crate::backend::{Backend, BackendKind, Capabilities, Driver, SerialBackend};
use crate::cancel::CancelToken;
use crate::carries::sealed::Named;
use crate::carries::{Local, Portable};
use crate::error::Error;
use crate::job::{self, ChunkJob, TaskLimits, Watch};
use crate::plan::ChunkPlan;
use crate::progress::{Meter, ProgressMode};

mod batch;
mod builder;
mod journaled;
mod local;
mod streams;
pub use builder::PoolBuilder;
pub use journaled::JournaledPool;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub(crate) use crate::env::BACKEND as BACKEND_VARIABLE;

/// A call's items in a vector, as `collect` makes it, on 2 MiB pages when
/// it is large (Linux, `MADV_HUGEPAGE`; `sys::advise_huge_pages`). A
/// million 8-byte items are 2,000 fresh pages of 4 KiB, whose faults cost
/// more than the tasks: a plain `map` of 10^6 tiny items took a median of
/// 8.2-9.9 ms, and 4.0-4.2 ms with its items and outputs on huge pages
/// (60 calls, three runs each, 2 CPUs).
pub(crate) fn collect_items<T>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let items = items.into_iter();
    let mut collected: Vec<T> = Vec::with_capacity(items.size_hint().0);
    crate::sys::advise_huge_pages(
        collected.as_ptr().cast(),
        collected.capacity().saturating_mul(size_of::<T>()),
    );
    collected.extend(items);
    collected
}

/// A parallel map-reduce pool. Cheap to clone (clones share the workers),
/// `Send + Sync`, usable from many threads at once.
///
/// `Pool` is `PoolOf<Portable>`: its tasks may run in worker processes or
/// on MPI ranks, so results must be serializable. [`LocalPool`]
/// (`PoolOf<Local>`, made by [`Pool::local`]) has the same methods for
/// results that never leave the process; see [`Carries`](crate::carries::Carries). The methods are
/// documented on [`PoolOf`].
///
/// `Pool::new()`, `Pool::default()`, `Pool::from_env()` and
/// `Pool::local()` are cheap: on threads they all run on one thread pool
/// per process, started at the first call (see
/// [`PoolBuilder`](PoolBuilder#which-pools-share-threads) for which pools
/// share it).
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
pub type Pool = PoolOf<Portable>;

/// The one pool type behind [`Pool`] and [`LocalPool`], with the codec `C`
/// ([`Portable`] or [`Local`]) as a type parameter: every call has one
/// implementation, and `C` only decides how results travel, and so which
/// bounds a call has (`C: Carries<R>`). Use the names [`Pool`] and
/// [`LocalPool`]; this page holds their methods.
pub struct PoolOf<C> {
    backend: Arc<dyn Driver>,
    limits: TaskLimits,
    chunk_size: Option<usize>,
    in_flight: Option<usize>,
    progress: ProgressMode,
    cancel: Option<CancelToken>,
    codec: PhantomData<fn() -> C>,
}

/// A pool whose tasks run in this process, on threads (or serially), with
/// no serde bounds: made by [`Pool::local`] or
/// [`PoolBuilder::build_local`].
///
/// It has the methods of [`Pool`] (it is the same type, with the [`Local`]
/// codec), so results can be anything `Send`: an `io::Result`, a
/// `ParseIntError`, a file handle, a struct without serde. Batch calls
/// (`map`, `map_results`, `map_init`, `map_reduce`) take borrowed items and
/// closures that borrow local data, as rayon's do (so do a [`Pool`]'s).
///
/// Choose it when results cannot be serialized; choose [`Pool`] when the
/// same code must also run in worker processes or across MPI ranks.
///
/// ```
/// use std::path::PathBuf;
///
/// let pool = parpool::Pool::local();
/// let paths: Vec<PathBuf> = vec!["Cargo.toml".into(), "no such file".into()];
/// let contents: Vec<std::io::Result<Vec<u8>>> = pool.map(|path: &PathBuf| std::fs::read(path), &paths)?;
/// assert!(contents[0].is_ok() && contents[1].is_err());
///
/// // Closures may borrow local data, and items may be references.
/// let words = ["map", "reduce"];
/// let offset = 10;
/// let lengths = pool.map(|word: &&str| word.len() + offset, &words)?;
/// assert_eq!(lengths, [13, 16]);
/// # Ok::<(), parpool::Error>(())
/// ```
pub type LocalPool = PoolOf<Local>;

impl<C> Clone for PoolOf<C> {
    fn clone(&self) -> Self {
        PoolOf {
            backend: self.backend.clone(),
            limits: self.limits,
            chunk_size: self.chunk_size,
            in_flight: self.in_flight,
            progress: self.progress,
            cancel: self.cancel.clone(),
            codec: PhantomData,
        }
    }
}

impl<C: Named> fmt::Debug for PoolOf<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(C::POOL_NAME)
            .field("kind", &self.kind())
            .field("workers", &self.workers())
            .field("chunk_size", &self.chunk_size)
            .field("in_flight", &self.in_flight)
            .field("progress", &self.progress)
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl Default for Pool {
    /// The same as [`Pool::new`].
    fn default() -> Pool {
        Pool::new()
    }
}

impl Default for LocalPool {
    /// The same as [`Pool::local`].
    fn default() -> LocalPool {
        Pool::local()
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

    /// A pool that runs on a backend of your own, with default settings;
    /// see [`Backend`]. The shorthand of
    /// `Pool::builder().backend(backend).build()`, which also takes every
    /// other setting.
    pub fn with_backend(backend: impl Backend + 'static) -> Pool {
        Pool::from_parts(crate::backend::adopt(backend), PoolSettings::default())
    }
}

/// The settings a built pool keeps besides its backend.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolSettings {
    pub(crate) limits: TaskLimits,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) in_flight: Option<usize>,
    pub(crate) progress: ProgressMode,
}

impl<C> PoolOf<C> {
    /// A pool of `backend` with `settings`, no cancel token.
    pub(crate) fn from_parts(backend: Arc<dyn Driver>, settings: PoolSettings) -> PoolOf<C> {
        PoolOf {
            backend,
            limits: settings.limits,
            chunk_size: settings.chunk_size,
            in_flight: settings.in_flight,
            progress: settings.progress,
            cancel: None,
            codec: PhantomData,
        }
    }

    /// The backend, as the crate drives it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn driver(&self) -> &dyn Driver {
        &*self.backend
    }

    /// The token this pool's calls watch, if it has one.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn cancel_token(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    /// A pool that shares this one's workers and whose calls stop when
    /// `token` is cancelled; see [`CancelToken`]. This pool is unaffected.
    pub fn with_cancel(&self, token: &CancelToken) -> PoolOf<C> {
        PoolOf {
            cancel: Some(token.clone()),
            ..self.clone()
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

    /// What the pool's backend can do: time out tasks, share memory with
    /// the caller, its MPI rank and ranks; see [`Capabilities`].
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// This process's MPI rank (0 unless the backend is MPI). Every rank
    /// gets the same results; use this to print from one rank only.
    pub fn rank(&self) -> usize {
        self.capabilities().rank
    }

    /// The number of MPI ranks running the program (1 unless the backend is
    /// MPI).
    pub fn ranks(&self) -> usize {
        self.capabilities().ranks
    }

    /// What a call over `plan` is watched by.
    fn watch(&self, plan: ChunkPlan) -> Watch {
        Watch {
            cancel: self.cancel.clone(),
            meter: Meter::start(self.progress_mode(), Some(plan.item_count())),
        }
    }

    fn progress_mode(&self) -> ProgressMode {
        if self.rank() == 0 {
            self.progress
        } else {
            ProgressMode::Off
        }
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
    fn execute(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        if job::inside_task() {
            Driver::run(&SerialBackend, job)
        } else {
            self.backend.run(job)
        }
    }
}
