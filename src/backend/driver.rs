//! The crate's own side of the backend seam: [`Driver`], which a pool
//! holds, and the stream engines only the built-in backends provide.
//!
//! A built-in backend implements `Driver` over the full job
//! ([`ChunkJob`]: the current item published for a supervisor, results
//! encoded in pieces, MPI's gather to the root) and [`StreamEngine`]s of its
//! own. A third-party [`Backend`] is wrapped in [`Custom`], which hands it
//! the narrow [`Job`] and gives it the default batch engine. None of this
//! is public, so it may change in any release.

use super::{Backend, Job, ProcessesBackend};
use super::{BackendKind, Capabilities, SerialBackend, ThreadsBackend, batch};
use crate::error::Error;
use crate::job::{ChunkJob, ChunkResults, StreamChunk, StreamJob};
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// What a pool drives: a built-in backend, or a third-party one wrapped in
/// [`Custom`].
pub(crate) trait Driver: Send + Sync + fmt::Debug {
    /// Runs the chunks of `job`, keeping the contract of the module docs.
    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error>;

    /// Which kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// How many chunks can run at once.
    fn workers(&self) -> usize;

    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Starts an engine that runs the chunks of a stream or session of
    /// `job`; the engine lives as long as the stream or session.
    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(batch::BatchEngine::new(job)))
    }

    /// Runs `call` (a whole blocking call, for an async caller) on the
    /// backend's own threads, where the call's chunks run too, so it
    /// needs no thread of its own; or gives it back where the backend has
    /// no threads to lend (its calls block a thread: processes, MPI, a
    /// custom backend), for a helper to run.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn spawn_call(&self, call: SpawnedCall) -> Result<(), SpawnedCall> {
        Err(call)
    }
}

/// A whole call of an async caller, for [`Driver::spawn_call`], in two
/// steps: the call, then what hands its result to the caller (run once the
/// thread that ran the call is free for other work, so a caller who sees
/// the result and starts the next call finds that thread free).
pub(crate) type SpawnedCall = Box<dyn FnOnce() -> HandOver + Send>;

/// The second step of a [`SpawnedCall`].
pub(crate) type HandOver = Box<dyn FnOnce() + Send>;

/// Runs the chunks of one stream or session: made by
/// [`Driver::open_stream`], driven by the stream.
///
/// Every submitted chunk comes back from [`next_done`](StreamEngine::next_done)
/// exactly once (in any order), with one result per item, failures in
/// their places. Item failures travel inside [`ChunkResults`]; `Err` from
/// a method means the engine itself failed or the wait was cancelled.
pub(crate) trait StreamEngine: Send {
    /// Starts (or queues) a chunk.
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error>;

    /// Blocks until a submitted chunk is finished and returns it, in any
    /// order. Returns `Err` (cancelled) soon after
    /// [`StreamContext::is_cancelled`] turns true. Called only while some
    /// submitted chunk has not been returned.
    fn next_done(&mut self, context: &StreamContext<'_>) -> Result<ChunkResults, Error>;

    /// A finished chunk if one is ready, without blocking; else `waker`
    /// is woken when one is (or the engine failed). `None` if this engine
    /// cannot be polled: its chunks finish only while a caller waits in
    /// `next_done`.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn poll_done(&mut self, waker: &Waker) -> Option<Poll<Result<ChunkResults, Error>>> {
        let _ = waker;
        None
    }

    /// Stops every submitted chunk as [`cancel`](StreamEngine::cancel)
    /// does, without waiting for the running ones: for a caller that must
    /// not block (an async task). They end on their own soon after, and
    /// nothing they hold borrows from the caller. The engine is not used
    /// again. By default, `cancel`.
    fn abandon(&mut self) {
        self.cancel();
    }

    /// Abandons every submitted chunk, stopping what runs as soon as it
    /// can, and waits until nothing runs. The engine stays usable.
    fn cancel(&mut self);
}

/// What a stream gives its engine while it waits for a chunk: the backend
/// that opened the engine, and whether the stream was cancelled.
pub(crate) struct StreamContext<'a> {
    driver: &'a dyn Driver,
    cancelled: &'a dyn Fn() -> bool,
}

impl<'a> StreamContext<'a> {
    pub(crate) fn new(driver: &'a dyn Driver, cancelled: &'a dyn Fn() -> bool) -> Self {
        StreamContext { driver, cancelled }
    }

    /// True once the stream's [`CancelToken`](crate::CancelToken) fired.
    pub(crate) fn is_cancelled(&self) -> bool {
        (self.cancelled)()
    }

    /// Runs a batch job on the backend that opened the engine.
    pub(crate) fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        self.driver.run(job)
    }
}

impl fmt::Debug for StreamContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamContext")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// A third-party [`Backend`], driven through the public protocol.
#[derive(Debug)]
pub(crate) struct Custom<B>(B);

impl<B: Backend> Driver for Custom<B> {
    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        self.0.run(&Job::new(job))
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Custom
    }

    fn workers(&self) -> usize {
        self.0.workers()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// The driver of a backend given to `Pool::with_backend` or
/// `PoolBuilder::backend`: a built-in backend (made by its own
/// constructor, such as `MpiBackend::with_communicator`) keeps its own
/// driver, with its streams and everything else; any other is [`Custom`].
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
    let backend = match backend.downcast::<super::MpiBackend>() {
        Ok(mpi) => return Arc::new(*mpi),
        Err(other) => other,
    };
    match backend.downcast::<B>() {
        Ok(custom) => Arc::new(Custom(*custom)),
        // The box holds a `B` by construction: every other type returned.
        Err(_) => unreachable!("the backend is of the type it was given as"),
    }
}

/// `impl Backend` for built-in backends, through their driver: so they can
/// be given to `Pool::with_backend` like any other.
macro_rules! backend_through_driver {
    ($($backend:ty),* $(,)?) => {$(
        impl $crate::backend::Backend for $backend {
            fn run(&self, job: &$crate::backend::Job<'_>) -> Result<(), $crate::Error> {
                $crate::backend::driver::Driver::run(self, job.chunk_job())
            }

            fn workers(&self) -> usize {
                $crate::backend::driver::Driver::workers(self)
            }

            fn capabilities(&self) -> $crate::backend::Capabilities {
                $crate::backend::driver::Driver::capabilities(self)
            }
        }
    )*};
}
pub(crate) use backend_through_driver;
