//! The batch calls of a pool: [`map`](PoolOf::map), [`map_init`](PoolOf::map_init),
//! [`map_gather`](PoolOf::map_gather), [`map_results`](PoolOf::map_results)
//! and [`map_reduce`](PoolOf::map_reduce). Each collects its items, makes
//! a chunk plan, wraps everything in a job and runs it on the backend.

use super::PoolOf;
use crate::carries::Carries;
use crate::carries::sealed::CodecFor;
use crate::error::Error;
use crate::job::map::MapJob;
use crate::job::reduce::ReduceJob;
use crate::job::{self, ChunkJob, unwind};
use crate::journal::call::JournalCall;

#[cfg(doc)]
use super::Pool;

impl<C> PoolOf<C> {
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
        self.map_init_in(init, f, super::collect_items(items), None)
    }

    /// [`map_init`](Pool::map_init) over collected items, with a journal
    /// if the call has one.
    pub(crate) fn map_init_in<T, S, R, I, F>(
        &self,
        init: I,
        f: F,
        items: Vec<T>,
        journal: Option<&JournalCall<'_>>,
    ) -> Result<Vec<R>, Error>
    where
        I: Fn() -> S + Sync,
        F: Fn(&mut S, T) -> R + Sync,
        T: Send,
        S: Send,
        R: Send,
        C: Carries<R>,
    {
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
        self.run_job(&job, journal)?;
        job.into_outputs()
    }

    /// [`map`](Pool::map), with the results wanted on rank 0 only: MPI's
    /// `comm.gather(root=0)`. On rank 0 it returns `Some(results)`, in
    /// input order; on every other MPI rank `None`. Each chunk goes to
    /// rank 0 as it finishes and is decoded there at once: rank 0 holds
    /// the results and one chunk's bytes beside them, the other ranks only
    /// the chunks they are running or sending (with `map`, every rank ends
    /// up holding every result). A
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
        self.map_gather_in(f, super::collect_items(items), None)
    }

    /// [`map_gather`](Pool::map_gather) over collected items, with a
    /// journal if the call has one.
    pub(crate) fn map_gather_in<T, R, F>(
        &self,
        f: F,
        items: Vec<T>,
        journal: Option<&JournalCall<'_>>,
    ) -> Result<Option<Vec<R>>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send,
        R: Send,
        C: Carries<R>,
    {
        // A nested call runs serially, here: its results are here too.
        let here = self.rank() == 0 || job::inside_task();
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
        self.run_job(&job, journal)?;
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
        self.map_results_in(f, super::collect_items(items), None)
    }

    /// [`map_results`](Pool::map_results) over collected items, with a
    /// journal if the call has one.
    pub(crate) fn map_results_in<T, R, F>(
        &self,
        f: F,
        items: Vec<T>,
        journal: Option<&JournalCall<'_>>,
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
        )
        .failed_when(Result::is_err);
        match self.run_job(&job, journal) {
            Ok(()) => job.into_outputs_or(|_, why| Err(why.clone())),
            Err(error) => job.into_outputs_or(|_, _| Err(error.clone())),
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
        R: Send + Clone,
        C: Carries<R>,
    {
        self.map_reduce_in(f, super::collect_items(items), identity, op, None)
    }

    /// [`map_reduce`](Pool::map_reduce) over collected items, with a
    /// journal if the call has one.
    pub(crate) fn map_reduce_in<T, R, F, Op>(
        &self,
        f: F,
        items: Vec<T>,
        identity: R,
        op: Op,
        journal: Option<&JournalCall<'_>>,
    ) -> Result<R, Error>
    where
        F: Fn(T) -> R + Sync,
        Op: Fn(R, R) -> R + Sync,
        T: Send,
        R: Send + Clone,
        C: Carries<R>,
    {
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
        self.run_job(&job, journal)?;
        job.into_result()
    }

    /// Runs `job` on the backend, through `journal` if the call has one.
    fn run_job(&self, job: &dyn ChunkJob, journal: Option<&JournalCall<'_>>) -> Result<(), Error> {
        match journal {
            None => self.execute(job),
            Some(journal) => journal.run(self.driver(), job, |job| self.execute(job)),
        }
    }
}
