//! [`StreamEngine`]: what runs the chunks of a stream or session, and the
//! [`StreamContext`] a stream hands it while it waits. Each built-in
//! backend has an engine of its own; `batch.rs` is the default.

use crate::error::Error;
use crate::job::{ChunkJob, ChunkResults, StreamChunk};
use std::fmt;
use std::task::{Poll, Waker};

/// Runs the chunks of one stream or session: made by
/// `Driver::open_stream`, driven by the stream.
///
/// Every submitted chunk comes back from [`next_done`](StreamEngine::next_done)
/// exactly once (in any order), with one result per item, failures in
/// their places. Item failures travel inside [`ChunkResults`]; `Err` from
/// a method means the engine itself failed or the wait was cancelled.
pub(crate) trait StreamEngine: Send {
    /// Starts (or queues) a chunk.
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error>;

    /// Chunk `seq` will not be submitted: the stream has its results (read
    /// back from a journal, as on every other rank of an MPI stream). An
    /// engine that numbers chunks across processes counts it as handed
    /// out; others need nothing.
    fn skip(&mut self, seq: u64) -> Result<(), Error> {
        let _ = seq;
        Ok(())
    }

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

/// What a stream gives its engine while it waits for a chunk: a way to
/// run a batch job on the backend that opened the engine, and whether the
/// stream was cancelled.
pub(crate) struct StreamContext<'a> {
    run: &'a dyn Fn(&dyn ChunkJob) -> Result<(), Error>,
    cancelled: &'a dyn Fn() -> bool,
}

impl<'a> StreamContext<'a> {
    pub(crate) fn new(
        run: &'a dyn Fn(&dyn ChunkJob) -> Result<(), Error>,
        cancelled: &'a dyn Fn() -> bool,
    ) -> Self {
        StreamContext { run, cancelled }
    }

    /// True once the stream's [`CancelToken`](crate::CancelToken) fired.
    pub(crate) fn is_cancelled(&self) -> bool {
        (self.cancelled)()
    }

    /// Runs a batch job on the backend that opened the engine.
    pub(crate) fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        (self.run)(job)
    }
}

impl fmt::Debug for StreamContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamContext").finish_non_exhaustive()
    }
}
