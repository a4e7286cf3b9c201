//! `ReduceJob`: the job behind `map_reduce`, one partial result per chunk.

use super::book::ChunkBook;
use super::codec::Codec;
use super::slots::{Inputs, Outputs};
use super::{Job, TaskLimits, Watch, sealed, unwind};
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::plan::ChunkPlan;
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
        self.identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Combines the chunk partials in chunk order, starting from the identity.
    pub(crate) fn into_result(self) -> Result<R, Error> {
        if let Some(error) = self.book.completion_error(false) {
            return Err(error);
        }
        let mut total = self.identity();
        // SAFETY: no completion error: every chunk is done.
        for partial in unsafe { self.partials.into_vec() } {
            total = (self.op)(total, partial);
        }
        Ok(total)
    }
}

impl<T, R, F, Op> sealed::Sealed for ReduceJob<T, R, F, Op> {}

impl<T, R, F, Op> Job for ReduceJob<T, R, F, Op>
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
        let mut claim = self
            .book
            .claim(chunk, Some(&self.inputs), &self.partials, current_item)?;
        let mut cancelled = Ok(());
        let ran = unwind::catch_task(|| {
            let mut accumulator = self.identity();
            let cancel = self.book.watch.cancel.as_ref();
            loop {
                if cancel.is_some_and(CancelToken::is_cancelled) {
                    cancelled = self.book.check_cancelled();
                    return;
                }
                let Some((_, item)) = claim.take() else {
                    break;
                };
                accumulator = (self.op)(accumulator, (self.function)(item));
            }
            claim.put(accumulator);
        });
        let outcome = match ran {
            Ok(()) => cancelled,
            Err(payload) => Err(unwind::panic_error(
                &*payload,
                claim.current(),
                self.book.total(),
            )),
        };
        claim.settle(outcome, false)
    }

    fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error> {
        self.book.check_done(chunk)?;
        // SAFETY: the chunk is done: its partial is written and immutable.
        let partial = unsafe { self.partials.chunk(chunk) };
        let start = self.book.plan().chunk_range(chunk).start;
        self.codec
            .encode(partial)
            .map_err(|e| Error::encoding(start, self.book.total(), "encoded", e))
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        let start = self.book.plan().chunk_range(chunk).start;
        let mut partials = self
            .codec
            .decode(bytes)
            .map_err(|e| Error::encoding(start, self.book.total(), "decoded", e))?;
        let (Some(partial), None) = (partials.pop(), partials.pop()) else {
            return Err(Error::encoding(
                start,
                self.book.total(),
                "decoded",
                format!("chunk {chunk} did not arrive as one partial result"),
            ));
        };
        let mut claim = self.book.claim::<T, R>(chunk, None, &self.partials, None)?;
        claim.put(partial);
        claim.settle(Ok(()), false)
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

    fn is_chunk_done(&self, chunk: usize) -> bool {
        self.book.is_done(chunk)
    }

    fn limits(&self) -> TaskLimits {
        self.limits
    }
}
