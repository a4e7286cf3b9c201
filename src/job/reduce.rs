//! `ReduceJob`: the job behind `map_reduce`, one partial result per chunk.

use super::book::ChunkBook;
use super::codec::{Codec, EncodedChunk, Received};
use super::slots::{Inputs, Outputs};
use super::{ChunkJob, TaskLimits, Watch, unwind};
use crate::error::Error;
use crate::plan::ChunkPlan;
use crate::sync::LockUnpoisoned;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

/// A `map_reduce` call: each chunk folds its items from a clone of the
/// identity into one partial; the partials are combined in chunk order.
pub(crate) struct ReduceJob<T, R, F, Op> {
    book: ChunkBook,
    inputs: Inputs<T>,
    /// One slot per chunk.
    partials: Outputs<R>,
    /// Behind a Mutex so R need only be Send.
    identity: Mutex<R>,
    function: F,
    op: Op,
    codec: Codec<R>,
    limits: TaskLimits,
}

impl<T, R, F, Op> ReduceJob<T, R, F, Op>
where
    T: Send,
    R: Send + Clone,
    F: Fn(T) -> R + Sync,
    Op: Fn(R, R) -> R + Sync,
{
    pub(crate) fn new(
        items: Vec<T>,
        plan: ChunkPlan,
        (function, identity, op): (F, R, Op),
        codec: Codec<R>,
        watch: Watch,
        limits: TaskLimits,
    ) -> Self {
        ReduceJob {
            book: ChunkBook::new(plan, watch),
            inputs: Inputs::new(items, plan),
            partials: Outputs::new(ChunkPlan::new(plan.chunk_count(), 1)),
            identity: Mutex::new(identity),
            function,
            op,
            codec,
            limits,
        }
    }

    fn identity(&self) -> R {
        self.identity.lock_unpoisoned().clone()
    }

    /// Combines the chunk partials in chunk order, starting from the
    /// identity. A panic in `op` here is an error naming the first item of
    /// the partial being combined, as a panic in `op` inside a chunk names
    /// the item it was combining: the caller never sees an unwind, however
    /// the items were chunked.
    pub(crate) fn into_result(self) -> Result<R, Error> {
        if let Some(error) = self.book.completion_error(false) {
            return Err(error);
        }
        let plan = self.book.plan();
        let mut total = self.identity();
        // SAFETY: no completion error: every chunk is done.
        let partials = unsafe { self.partials.into_vec() };
        for (chunk, partial) in partials.into_iter().enumerate() {
            let first = plan.chunk_range(chunk).start;
            total = unwind::run_task(first, plan.item_count(), || (self.op)(total, partial))?;
        }
        Ok(total)
    }
}

impl<T, R, F, Op> ChunkJob for ReduceJob<T, R, F, Op>
where
    T: Send,
    R: Send + Clone,
    F: Fn(T) -> R + Sync,
    Op: Fn(R, R) -> R + Sync,
{
    fn plan(&self) -> ChunkPlan {
        self.book.plan()
    }

    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error> {
        let claim = self
            .book
            .claim(chunk, Some(&self.inputs), &self.partials, current_item)?;
        claim.run(false, |claim| {
            let mut accumulator = self.identity();
            while let Some((index, item)) = claim.next_task()? {
                claim.publish(index);
                accumulator = (self.op)(accumulator, (self.function)(item));
            }
            claim.put(accumulator);
            Ok(())
        })
    }

    fn encode_chunk_in_pieces(&self, chunk: usize) -> Result<EncodedChunk<'_>, Error> {
        self.book
            .encode_done(chunk, (&self.partials, self.codec), None)
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        let partials = (&self.partials, self.codec);
        self.book
            .accept_encoded::<T, R>(chunk, Received::whole(bytes), partials, false)
    }

    fn record_failure(&self, error: Error) {
        self.book.record_failure(error, false);
    }

    fn keeps_going(&self) -> bool {
        false
    }

    fn should_stop(&self) -> bool {
        self.book.should_stop()
    }

    fn stop(&self) {
        self.book.stop();
    }

    fn hold_progress(&self, hold: bool) {
        self.book.watch.hold_progress(hold);
    }

    fn is_chunk_done(&self, chunk: usize) -> bool {
        self.book.is_done(chunk)
    }

    fn chunk_has_failures(&self, chunk: usize) -> bool {
        !self
            .book
            .failures_in(&self.book.plan().chunk_range(chunk))
            .is_empty()
    }

    fn limits(&self) -> TaskLimits {
        self.limits
    }
}
