//! The pool's async calls: [`map_async`](PoolOf::map_async),
//! [`map_reduce_async`](PoolOf::map_reduce_async) and
//! [`map_results_async`](PoolOf::map_results_async), each the blocking
//! call of the same name started as a [`CallFuture`].

use super::CallFuture;
use crate::cancel::CancelToken;
use crate::carries::Carries;
use crate::error::Error;
use crate::pool::PoolOf;
#[cfg(doc)]
use crate::{LocalPool, Pool};

impl<C> PoolOf<C> {
    /// [`map`](Pool::map) for async code: a future of the same result,
    /// which any executor can await. The tasks run where `map`'s run (the
    /// pool's threads, worker processes or MPI ranks), and the runtime's
    /// threads never block: on threads the pool's own last chunk completes
    /// the future; elsewhere a reused helper thread waits for the call (see
    /// [`parpool::future`](crate::future)). Dropping the future cancels the
    /// call (no chunk starts afterwards). Unlike `map`, the function, items
    /// and results must be `'static` (owned) and `Send`: the call outlives
    /// this method. Feature `async`.
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
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_async<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> CallFuture<Result<Vec<R>, Error>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = crate::pool::collect_items(items);
        self.spawn_call(move |pool| pool.map(f, items))
    }

    /// [`map_reduce`](Pool::map_reduce) for async code; see
    /// [`map_async`](Pool::map_async). Feature `async`.
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_reduce_async<T, R, F, Op>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        identity: R,
        op: Op,
    ) -> CallFuture<Result<R, Error>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        Op: Fn(R, R) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + Clone + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = crate::pool::collect_items(items);
        self.spawn_call(move |pool| pool.map_reduce(f, items, identity, op))
    }

    /// [`map_results`](Pool::map_results) for async code: one result per
    /// item, keeping going past failures; see [`map_async`](Pool::map_async).
    /// Dropped before it is ready, the call is cancelled and its results
    /// are lost with the future. Feature `async`.
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn map_results_async<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> CallFuture<Vec<Result<R, Error>>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        T: Send + 'static,
        R: Send + 'static,
        C: Carries<R> + 'static,
    {
        let items: Vec<T> = crate::pool::collect_items(items);
        self.spawn_call(move |pool| pool.map_results(f, items))
    }

    /// Starts `call` on a copy of this pool that watches a token of its
    /// own (and this pool's token, if it has one); see the module docs for
    /// where it runs.
    fn spawn_call<V: Send + 'static>(
        &self,
        call: impl FnOnce(PoolOf<C>) -> V + Send + 'static,
    ) -> CallFuture<V>
    where
        C: 'static,
    {
        let token = self
            .cancel_token()
            .map_or_else(CancelToken::new, CancelToken::child);
        let pool = self.with_cancel(&token);
        CallFuture::start(self.driver(), token, move || call(pool))
    }
}
