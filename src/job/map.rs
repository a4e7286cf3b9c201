//! `MapJob`: the job behind `map`, `map_results` and `map_init`.

use super::book::{ChunkBook, ChunkClaim};
use super::codec::{Codec, EncodedChunk, Received};
use super::slots::{Inputs, Outputs};
use super::{ChunkJob, TaskLimits, Watch};
use crate::error::Error;
use crate::plan::ChunkPlan;
use crate::sync::LockUnpoisoned;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

/// How a map job's outputs are made and travel: `Some(to_output)` for a
/// job that keeps going (a recorded failure becomes that item's output),
/// and the codec of the outputs.
pub(crate) type Delivery<O> = (Option<fn(Error) -> O>, Codec<O>);

/// A `map`, `map_results` or `map_init` call: one output slot per item.
///
/// The function gets `&mut S`, a per-worker state made by `init`: a chunk
/// run takes a state left by an earlier chunk run in this process, or makes
/// one, and puts it back when the chunk is done. So at most one state exists
/// per worker running at once (per thread, per worker process), and plain
/// `map` is the case `S = ()`.
pub(crate) struct MapJob<T, O, S, I, F> {
    book: ChunkBook,
    inputs: Inputs<T>,
    outputs: Outputs<O>,
    init: I,
    states: Mutex<Vec<S>>,
    function: F,
    /// `Some` for `map_results`: turns a recorded failure into the item's output.
    failure_output: Option<fn(Error) -> O>,
    codec: Codec<O>,
    limits: TaskLimits,
    /// Set for `map_gather`: results are wanted on rank 0 only.
    to_root: bool,
    /// Tells an output that is a failure (`map_results`' `Err`).
    is_failure: Option<fn(&O) -> bool>,
}

impl<T, O, S, I, F> MapJob<T, O, S, I, F>
where
    T: Send,
    O: Send,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, T) -> O + Sync,
{
    /// A job over `items` whose function gets a per-worker state made by
    /// `init`; `failure_output` is `Some` for a job that keeps going past
    /// failures (`map_results`).
    pub(crate) fn new(
        items: Vec<T>,
        plan: ChunkPlan,
        (init, function): (I, F),
        (failure_output, codec): Delivery<O>,
        watch: Watch,
        limits: TaskLimits,
    ) -> Self {
        MapJob {
            book: ChunkBook::new(plan, watch),
            inputs: Inputs::new(items, plan),
            outputs: Outputs::new(plan),
            init,
            states: Mutex::new(Vec::new()),
            function,
            failure_output,
            codec,
            limits,
            to_root: false,
            is_failure: None,
        }
    }

    /// Tells which outputs are failures, for
    /// [`chunk_has_failures`](ChunkJob::chunk_has_failures).
    pub(crate) fn failed_when(mut self, is_failure: fn(&O) -> bool) -> Self {
        self.is_failure = Some(is_failure);
        self
    }

    /// Asks for the results on rank 0 only (`map_gather`).
    pub(crate) fn gathered_to_root(mut self) -> Self {
        self.to_root = true;
        self
    }

    /// The failure of a call whose results went elsewhere (`map_gather` on
    /// a rank other than 0): the first failure recorded, if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.book.first_failure()
    }

    /// `Ok(outputs)` if every chunk is done, else the first failure.
    pub(crate) fn into_outputs(self) -> Result<Vec<O>, Error> {
        match self.book.completion_error(self.keeps_going()) {
            Some(error) => Err(error),
            // SAFETY: no completion error: every chunk is done.
            None => Ok(unsafe { self.outputs.into_vec() }),
        }
    }

    /// Every output, with `fill(index, why)` standing in for items of chunks
    /// that never completed (the call was cancelled, or a backend failed
    /// under `map_results`).
    pub(crate) fn into_outputs_or(mut self, fill: impl Fn(usize, &Error) -> O) -> Vec<O> {
        if self.book.completion_error(self.keeps_going()).is_none() {
            // SAFETY: no completion error: every chunk is done.
            return unsafe { self.outputs.into_vec() };
        }
        let plan = self.book.plan();
        let mut result = Vec::with_capacity(plan.item_count());
        for chunk in 0..plan.chunk_count() {
            if self.book.is_done(chunk) {
                // SAFETY: the chunk is done, and its values are moved out
                // once, here.
                result.extend(unsafe { self.outputs.take_chunk(chunk) });
            } else {
                let why = self.book.unfinished_error(chunk);
                result.extend(plan.chunk_range(chunk).map(|index| fill(index, &why)));
            }
        }
        result
    }
}

impl<T, O, S, I, F> MapJob<T, O, S, I, F>
where
    F: Fn(&mut S, T) -> O,
{
    /// Runs the claim's items one at a time: each checked for cancel and
    /// halt, published to the supervisor, or skipped (its recorded failure
    /// becomes its output).
    fn run_one_by_one(
        &self,
        claim: &mut ChunkClaim<'_, T, O>,
        state: &mut S,
        skipped: &[(usize, Error)],
    ) -> Result<(), Error> {
        let mut skipped = skipped.iter().peekable();
        loop {
            let (index, item) = match claim.next_task()? {
                Some(task) => task,
                None => return Ok(()),
            };
            let output = match skipped.next_if(|(skip, _)| *skip == index) {
                Some((_, error)) => {
                    drop(item);
                    // `skipped` is only non-empty when failure_output is set.
                    let to_output = self.failure_output.unwrap_or(|_| unreachable!());
                    to_output(error.clone())
                }
                None => {
                    claim.publish(index);
                    (self.function)(state, item)
                }
            };
            claim.put(output);
        }
    }
}

/// How long a block of items may run before the next cancel check, about:
/// blocks grow while they finish faster than this and shrink when they do
/// not, so fast items run in long vectorizable loops and a cancel still
/// lands within a fraction of a millisecond after the current item.
const BLOCK_TIME: Duration = Duration::from_micros(100);

/// The largest block.
const MAX_BLOCK: usize = 4096;

/// Runs the claim's items through `f` in blocks (see [`BLOCK_TIME`]),
/// checking for cancel and halt before each block.
fn run_in_blocks<T, O>(
    claim: &mut ChunkClaim<'_, T, O>,
    f: &mut impl FnMut(T) -> O,
) -> Result<(), Error> {
    // Blocks restart small in every chunk: a cancel never waits for more
    // than a few items of a kind slower than the last chunk's.
    let mut block = 1;
    loop {
        claim.check()?;
        let started = Instant::now();
        if claim.map_block(block, f) == 0 {
            return Ok(());
        }
        block = if started.elapsed() < BLOCK_TIME {
            (block * 2).min(MAX_BLOCK)
        } else {
            (block / 2).max(1)
        };
    }
}

impl<T, O, S, I, F> ChunkJob for MapJob<T, O, S, I, F>
where
    T: Send,
    O: Send,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, T) -> O + Sync,
{
    fn plan(&self) -> ChunkPlan {
        self.book.plan()
    }

    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error> {
        let claim = self
            .book
            .claim(chunk, Some(&self.inputs), &self.outputs, current_item)?;
        let skipped = if self.keeps_going() {
            self.book.failures_in(&claim.items())
        } else {
            Vec::new()
        };
        claim.run(self.keeps_going(), |claim| {
            let taken = self.states.lock_unpoisoned().pop();
            let mut state = taken.unwrap_or_else(&self.init);
            let outcome = if skipped.is_empty() && !claim.publishes() {
                run_in_blocks(claim, &mut |item| (self.function)(&mut state, item))
            } else {
                self.run_one_by_one(claim, &mut state, &skipped)
            };
            // A state whose task panicked is dropped with the unwinding.
            self.states.lock_unpoisoned().push(state);
            outcome
        })
    }

    fn encode_chunk_in_pieces(&self, chunk: usize) -> Result<EncodedChunk<'_>, Error> {
        let outputs = (&self.outputs, self.codec);
        self.book.encode_done(chunk, outputs, self.failure_output)
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        self.accept_received(chunk, Received::whole(bytes))
    }

    fn accept_received(&self, chunk: usize, received: Received<'_>) -> Result<(), Error> {
        let outputs = (&self.outputs, self.codec);
        self.book
            .accept_encoded::<T, O>(chunk, received, outputs, self.keeps_going())
    }

    fn record_failure(&self, error: Error) {
        self.book.record_failure(error, self.keeps_going());
    }

    fn keeps_going(&self) -> bool {
        self.failure_output.is_some()
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
        if !self
            .book
            .failures_in(&self.book.plan().chunk_range(chunk))
            .is_empty()
        {
            return true;
        }
        match self.is_failure {
            Some(is_failure) if self.book.is_done(chunk) => {
                // SAFETY: the chunk is done: its slots are written and
                // immutable.
                let outputs = unsafe { self.outputs.chunk(chunk) };
                outputs.iter().any(is_failure)
            }
            _ => false,
        }
    }

    fn limits(&self) -> TaskLimits {
        self.limits
    }

    fn gathers_to_root(&self) -> bool {
        self.to_root
    }

    fn release_chunk(&self, chunk: usize) {
        if self.book.release(chunk) {
            // SAFETY: the chunk was done and is now released, so nobody
            // reads its slots (encoding and collecting need it done), and the
            // state change happened once, here.
            unsafe { self.outputs.release_chunk(chunk) };
        }
    }
}
