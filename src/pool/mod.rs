//! [`Pool`] (and [`LocalPool`], the same type with another codec) and
//! [`PoolBuilder`]: the typed front door.
//!
//! There is one implementation of every call, generic over the pool's
//! codec `C` ([`Carries`]): it only decides how results travel, and so
//! which bounds a call has. All generic code lives here and in the `job`
//! module: a call collects its
//! items, makes a [`ChunkPlan`], wraps everything in a job and hands
//! `&dyn ChunkJob` to the backend; a stream or session hands it an
//! `Arc<dyn StreamJob>`. Settings come from the builder, then from the
//! environment (`PARPOOL_BACKEND`, `PARPOOL_WORKERS`), then from CPU
//! detection.

use crate::backend::{Backend, BackendKind, Capabilities, Driver, SerialBackend};
use crate::cancel::CancelToken;
use crate::carries::sealed::{CodecFor, Named};
use crate::carries::{Carries, Local, Portable};
use crate::error::Error;
use crate::job::map::MapJob;
use crate::job::reduce::ReduceJob;
use crate::job::{self, ChunkJob, TaskLimits, TypedStreamJob, Watch, unwind};
use crate::plan::ChunkPlan;
use crate::progress::{Meter, ProgressMode};
use crate::stream::{self, Imap, ImapUnordered, Session, StreamSettings};

mod builder;
mod local;
pub use builder::PoolBuilder;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub(crate) use crate::env::BACKEND as BACKEND_VARIABLE;

/// A parallel map-reduce pool. Cheap to clone (clones share the workers),
/// `Send + Sync`, usable from many threads at once.
///
/// `Pool` is `PoolOf<Portable>`: its tasks may run in worker processes or
/// on MPI ranks, so results must be serializable. [`LocalPool`]
/// (`PoolOf<Local>`, made by [`Pool::local`]) has the same methods for
/// results that never leave the process; see [`Carries`]. The methods are
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
        Pool::from_parts(
            crate::backend::driver::adopt(backend),
            PoolSettings::default(),
        )
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

    /// Applies `f` to every item, in parallel; the results come back in
    /// input order.
    ///
    /// Fails fast: at the first task that fails (panics, or on some backends
    /// crashes or times out) no new chunks are started and the call returns
    /// that failure, naming the item. Use [`map_results`](Pool::map_results)
    /// to get every result that can be computed.
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
        R: Send,
        C: Carries<R>,
    {
        self.map_init(|| (), |_: &mut (), item| f(item), items)
    }

    /// Like [`map`](Pool::map), with per-worker state: `init` runs once per
    /// worker that takes part (per thread, per worker process, per MPI
    /// rank; never more than [`workers`](Pool::workers) times per call) and
    /// `f` gets `&mut` to that worker's state with each item. Use it for a
    /// scratch buffer, a random generator or a connection that is costly to
    /// make. Like rayon's `map_init`.
    ///
    /// Which items share a state depends on scheduling, so results stay
    /// deterministic only where the state does not change them (a buffer
    /// that is cleared before use, not a generator whose draws end up in
    /// the results; derive per-item streams from the item index for that).
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// // One scratch buffer per worker, reused for every item it runs.
    /// let lengths = pool.map_init(
    ///     || String::with_capacity(64),
    ///     |buffer: &mut String, n: usize| {
    ///         buffer.clear();
    ///         for _ in 0..n {
    ///             buffer.push('x');
    ///         }
    ///         buffer.len()
    ///     },
    ///     [3, 1, 4],
    /// )?;
    /// assert_eq!(lengths, [3, 1, 4]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn map_init<T, S, R, I, F>(
        &self,
        init: I,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, Error>
    where
        I: Fn() -> S + Sync,
        F: Fn(&mut S, T) -> R + Sync,
        T: Send,
        S: Send,
        R: Send,
        C: Carries<R>,
    {
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.plan(items.len());
        let job = MapJob::new(
            items,
            plan,
            (init, f),
            (None, <C as CodecFor<R>>::values()),
            self.watch(plan),
            self.limits,
        );
        self.execute(&job)?;
        job.into_outputs()
    }

    /// [`map`](Pool::map), with the results wanted on rank 0 only: MPI's
    /// `comm.gather(root=0)`. On rank 0 it returns `Some(results)`, in
    /// input order; on every other MPI rank `None`, and that rank held only
    /// the results of the chunks it ran while the call lasted, never the
    /// whole (with `map`, every rank ends up holding every result). A
    /// failure is the same `Err` on every rank, as with `map`. On every
    /// backend but MPI there is one rank, and it is `Some(map(..))`.
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// if let Some(squares) = pool.map_gather(|x: u64| x * x, 0..5)? {
    ///     // Rank 0 (the only rank here) has every result.
    ///     assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// }
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn map_gather<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Option<Vec<R>>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send,
        C: Carries<R>,
    {
        // A nested call runs serially, here: its results are here too.
        let here = self.rank() == 0 || job::inside_task();
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(here.then(Vec::new));
        }
        let plan = self.plan(items.len());
        let job = MapJob::new(
            items,
            plan,
            (|| (), |_: &mut (), item| f(item)),
            (None, <C as CodecFor<R>>::values()),
            self.watch(plan),
            self.limits,
        )
        .gathered_to_root();
        self.execute(&job)?;
        if here {
            return job.into_outputs().map(Some);
        }
        match job.failure() {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    /// Applies `f` to every item and returns one result per item, in input
    /// order: `Ok(value)` or the `Err` of that item's task. Keeps going
    /// past failures; nothing computed is thrown away. (Unlike a `try_`
    /// method in std or rayon, which stops at the first error: that is
    /// [`map`](Pool::map).)
    ///
    /// ```
    /// use parpool::{BackendKind, Pool};
    ///
    /// let pool = Pool::builder().kind(BackendKind::Threads).workers(2).build()?;
    /// let results = pool.map_results(|x: i32| if x == 2 { panic!("two") } else { x * 10 }, 0..4);
    /// assert_eq!(results[1].as_ref().ok(), Some(&10));
    /// assert!(results[2].as_ref().unwrap_err().is_panic());
    /// assert_eq!(results[3].as_ref().ok(), Some(&30));
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn map_results<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Vec<Result<R, Error>>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send,
        C: Carries<R>,
    {
        let items: Vec<(usize, T)> = items.into_iter().enumerate().collect();
        if items.is_empty() {
            return Vec::new();
        }
        let total = items.len();
        let plan = self.plan(total);
        // Each task's panic is caught here, so one failed item does not end
        // its chunk.
        let guarded =
            |_: &mut (), (index, item): (usize, T)| unwind::run_task(index, total, || f(item));
        let job = MapJob::new(
            items,
            plan,
            (|| (), guarded),
            (Some(Err), <C as CodecFor<R>>::results()),
            self.watch(plan),
            self.limits,
        );
        match self.execute(&job) {
            Ok(()) => job.into_outputs_or(|_, why| Err(why.clone())),
            Err(error) => job.into_outputs_or(|_, _| Err(error.clone())),
        }
    }

    /// [`map`](Pool::map) for async code: a future of the same result,
    /// which any executor can await. The tasks run where `map`'s run (the
    /// pool's threads, worker processes or MPI ranks), driven by a helper
    /// thread, so the runtime's threads never block; dropping the future
    /// cancels the call (no chunk starts afterwards). Unlike `map`, the
    /// function, items and results must be `'static` (owned) and `Send`:
    /// they move to the helper thread. Feature `async`; see
    /// [`parpool::future`](crate::future).
    ///
    /// On MPI every rank must await the same calls in the same order, as
    /// with the blocking calls; an MPI library at `MPI_THREAD_FUNNELED`
    /// refuses the call (the helper thread is not MPI's main thread).
    ///
    /// ```
    /// # fn main() -> Result<(), parpool::Error> {
    /// # // Any executor's block_on; this one parks the thread.
    /// # fn block_on<F: std::future::Future>(future: F) -> F::Output {
    /// #     struct Wake(std::thread::Thread);
    /// #     impl std::task::Wake for Wake { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(Wake(std::thread::current())).into();
    /// #     let mut context = std::task::Context::from_waker(&waker);
    /// #     let mut future = std::pin::pin!(future);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) { return value; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let pool = parpool::Pool::new();
    /// // In async code: `pool.map_async(..).await?`.
    /// let squares = block_on(pool.map_async(|x: u64| x * x, 0..5))?;
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_async<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> crate::future::CallFuture<Result<Vec<R>, Error>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        self.spawn_call(move |pool| pool.map(f, items))
    }

    /// [`map_reduce`](Pool::map_reduce) for async code; see
    /// [`map_async`](Pool::map_async). Feature `async`.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_reduce_async<T, R, F, Op>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        identity: R,
        op: Op,
    ) -> crate::future::CallFuture<Result<R, Error>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        Op: Fn(R, R) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + Clone + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        self.spawn_call(move |pool| pool.map_reduce(f, items, identity, op))
    }

    /// [`map_results`](Pool::map_results) for async code: one result per
    /// item, keeping going past failures; see [`map_async`](Pool::map_async).
    /// Dropped before it is ready, the call is cancelled and its results
    /// are lost with the future. Feature `async`.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_results_async<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> crate::future::CallFuture<Vec<Result<R, Error>>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        self.spawn_call(move |pool| pool.map_results(f, items))
    }

    /// Runs `call` on a copy of this pool that watches a token of its own
    /// (and this pool's token, if it has one), on a helper thread.
    #[cfg(feature = "async")]
    fn spawn_call<V: Send + 'static>(
        &self,
        call: impl FnOnce(PoolOf<C>) -> V + Send + 'static,
    ) -> crate::future::CallFuture<V>
    where
        C: 'static,
    {
        let token = self
            .cancel
            .as_ref()
            .map_or_else(CancelToken::new, CancelToken::child);
        let pool = self.with_cancel(&token);
        crate::future::CallFuture::spawn(token, move || call(pool))
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
        R: Send + Clone,
        C: Carries<R>,
    {
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(identity);
        }
        let plan = self.plan(items.len());
        let job = ReduceJob::new(
            items,
            plan,
            (f, identity, op),
            <C as CodecFor<R>>::values(),
            self.watch(plan),
            self.limits,
        );
        self.execute(&job)?;
        job.into_result()
    }

    /// Applies `f` to the items of `input` lazily, in parallel, and returns
    /// an iterator of the results in input order; see [`Imap`].
    ///
    /// The input is pulled in chunks of [`chunk_size`](PoolBuilder::chunk_size)
    /// items (default [`STREAM_CHUNK_SIZE`](crate::STREAM_CHUNK_SIZE))
    /// only while fewer than [`in_flight`](PoolBuilder::in_flight) chunks are
    /// running or waiting to be handed out, so an input of any length (an
    /// iterator of 10^9 items, the lines of a file) is processed in constant
    /// memory. Dropping the iterator cancels the rest promptly.
    ///
    /// On the process backend the stream forks its workers once and sends
    /// them each chunk's items, encoded with postcard: that is why a
    /// [`Pool`]'s `T` must be `Serialize + DeserializeOwned` (on every
    /// backend, since the backend is chosen at run time; a [`LocalPool`]'s
    /// need not be). `f` must be `'static` because it keeps running while
    /// the iterator is alive; move what it needs into it (an `Arc` for
    /// shared data). To reuse the same workers for several streams or
    /// calls, make a [`session`](Pool::session).
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let lengths: Vec<usize> = pool
    ///     .imap(|line: String| line.len(), ["a", "bb", "ccc"].map(String::from))?
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(lengths, [1, 2, 3]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Starting the stream's workers failed (on the process backend: a
    /// `fork`). Task failures are items of the iterator.
    pub fn imap<T, R, F, I>(&self, f: F, input: I) -> Result<Imap<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let settings = self.stream_settings();
        let engine = settings.open(self.stream_job(f))?;
        Ok(stream::imap(&settings, input.into_iter(), engine))
    }

    /// Like [`imap`](Pool::imap), but yields `(index, result)` as soon as
    /// each chunk finishes, in no particular order; see [`ImapUnordered`].
    ///
    /// ```
    /// let pool = parpool::Pool::new();
    /// let mut done: Vec<(usize, u64)> = pool
    ///     .imap_unordered(|x: u64| x * x, 0..5u64)?
    ///     .map(|(index, result)| result.map(|square| (index, square)))
    ///     .collect::<Result<_, _>>()?;
    /// done.sort();
    /// assert_eq!(done, [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]);
    /// # Ok::<(), parpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`imap`](Pool::imap).
    pub fn imap_unordered<T, R, F, I>(
        &self,
        f: F,
        input: I,
    ) -> Result<ImapUnordered<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let settings = self.stream_settings();
        let engine = settings.open(self.stream_job(f))?;
        Ok(stream::imap_unordered(&settings, input.into_iter(), engine))
    }

    /// Starts workers for `f` that serve many calls: see [`Session`]. On
    /// the process backend this forks the workers once, now, instead of on
    /// every call. On a [`LocalPool`] (threads) a session keeps nothing
    /// between calls that a plain call would not have; it is there so code
    /// written for [`Session`] runs on either.
    ///
    /// # Errors
    ///
    /// Starting the workers failed (a `fork`).
    pub fn session<T, R, F>(&self, f: F) -> Result<Session<T, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        Session::new(self.stream_settings(), self.stream_job(f))
    }

    /// The type-erased job of a stream or session of `f`.
    fn stream_job<T, R, F>(&self, f: F) -> Arc<dyn job::StreamJob>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<T> + Carries<R>,
    {
        let codecs = (<C as CodecFor<T>>::values(), <C as CodecFor<R>>::results());
        Arc::new(TypedStreamJob::new(f, self.limits, codecs))
    }

    /// What a stream or session of this pool runs with. Inside a task
    /// (nested use) it runs on the serial backend, as every call does.
    fn stream_settings(&self) -> StreamSettings {
        let backend: Arc<dyn Driver> = if job::inside_task() {
            Arc::new(SerialBackend)
        } else {
            self.backend.clone()
        };
        let workers = backend.workers();
        let in_flight = self
            .in_flight
            .unwrap_or(backend.capabilities().in_flight_per_worker * workers)
            .max(1);
        StreamSettings {
            backend,
            chunk_size: self.chunk_size,
            in_flight,
            workers,
            cancel: self.cancel.clone(),
            progress: self.progress_mode(),
        }
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
