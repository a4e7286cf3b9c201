//! Per-chunk bookkeeping shared by every job type: chunk states, the
//! failure record, and the claim that hands a chunk to one holder.

use super::Watch;
use super::codec::{Codec, EncodedChunk, Received};
use super::slots::{Inputs, Outputs};
use super::unwind;
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::plan::ChunkPlan;
use crate::sync::LockUnpoisoned;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
/// Done, and its results dropped after they were sent elsewhere.
const RELEASED: u8 = 4;

/// Per-chunk state and the failure record, common to all job types.
///
/// Each chunk moves PENDING → RUNNING (claimed) → DONE or FAILED, once.
/// The move out of PENDING is a compare-and-swap, so even a buggy custom
/// backend cannot run a chunk twice at once: it gets an `Err` instead of a
/// data race.
pub(super) struct ChunkBook {
    plan: ChunkPlan,
    pub(super) watch: Watch,
    states: Box<[AtomicU8]>,
    /// Fail-fast: set at the first failure.
    stopped: AtomicBool,
    /// Set by [`stop`](ChunkBook::stop): running chunks end before their
    /// next item.
    halted: AtomicBool,
    /// Failures recorded so far, any order.
    failures: Mutex<Vec<Error>>,
    /// True once `failures` is non-empty (checked without the lock).
    has_failures: AtomicBool,
}

/// The right to work on one chunk: the only way to take the chunk's inputs
/// or write its output slots.
///
/// # The invariant
///
/// A claim exists only for a chunk that [`ChunkBook::claim`] moved out of
/// PENDING with a compare-and-swap, so at most one claim per chunk ever
/// exists. Its holder, and nobody else, moves the chunk's inputs out and
/// writes its output slots, each once and in order; the claim counts both
/// and stores the counts when it is dropped (also while unwinding), so the
/// storage drops exactly what is left. Slots are read only after the claim
/// has [settled](ChunkClaim::settle) the chunk as DONE, with Release on the
/// state and Acquire on every read of it. Every `unsafe` block of
/// `slots.rs` and of the jobs rests on this paragraph.
pub(super) struct ChunkClaim<'a, T, O> {
    book: &'a ChunkBook,
    chunk: usize,
    inputs: Option<&'a Inputs<T>>,
    items: Range<usize>,
    taken: usize,
    outputs: &'a Outputs<O>,
    slots: Range<usize>,
    written: usize,
    current_item: Option<&'a AtomicUsize>,
    /// The call's cancel token, looked up once per chunk.
    cancel: Option<&'a CancelToken>,
    /// The chunk ended early because the job was [stopped](ChunkBook::stop).
    halted: bool,
    settled: bool,
}

impl ChunkBook {
    pub(super) fn new(plan: ChunkPlan, watch: Watch) -> ChunkBook {
        ChunkBook {
            plan,
            watch,
            states: (0..plan.chunk_count())
                .map(|_| AtomicU8::new(PENDING))
                .collect(),
            stopped: AtomicBool::new(false),
            halted: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            has_failures: AtomicBool::new(false),
        }
    }

    pub(super) fn plan(&self) -> ChunkPlan {
        self.plan
    }

    pub(super) fn total(&self) -> usize {
        self.plan.item_count()
    }

    /// Claims `chunk`: its items come from `inputs` (`None` when its
    /// results arrive from another process) and its values go to
    /// `outputs`, into the slots `outputs`' plan gives the chunk.
    /// `current_item`, if given, is told each item's index before it runs.
    pub(super) fn claim<'a, T, O>(
        &'a self,
        chunk: usize,
        inputs: Option<&'a Inputs<T>>,
        outputs: &'a Outputs<O>,
        current_item: Option<&'a AtomicUsize>,
    ) -> Result<ChunkClaim<'a, T, O>, Error> {
        let state = self.states.get(chunk).ok_or_else(|| {
            Error::backend(
                "job",
                format!(
                    "chunk {chunk} does not exist: the job has {} chunks",
                    self.states.len()
                ),
            )
        })?;
        state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| {
                Error::backend(
                    "job",
                    format!("chunk {chunk} was handed out twice (it is no longer pending)"),
                )
            })?;
        let items = self.plan.chunk_range(chunk);
        Ok(ChunkClaim {
            book: self,
            chunk,
            inputs,
            taken: 0,
            slots: outputs.plan().chunk_range(chunk),
            written: 0,
            outputs,
            items,
            current_item,
            cancel: self.watch.cancel.as_ref(),
            halted: false,
            settled: false,
        })
    }

    fn finish(&self, chunk: usize, state: u8) {
        self.states[chunk].store(state, Ordering::Release);
        if state == DONE {
            self.watch.items_done(self.plan.chunk_range(chunk).len());
        }
    }

    /// True once a fail-fast job has a failure or the call was cancelled.
    pub(super) fn should_stop(&self) -> bool {
        self.stopped.load(Ordering::Acquire) || self.watch.cancelled()
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Stops the job from outside (another process of the call failed):
    /// no more chunks, and running ones end before their next item.
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.halted.store(true, Ordering::Release);
    }

    /// The error a chunk ends with when [`stop`](ChunkBook::stop) halts it.
    /// It is not recorded: the failure that stopped the job is.
    #[cold]
    #[inline(never)]
    fn halted_error(&self) -> Error {
        Error::cancelled("the call was stopped by a failure elsewhere")
    }

    /// The error of a cancelled call (out of line: tasks check between
    /// items, and the check must stay cheap).
    #[cold]
    #[inline(never)]
    fn cancelled_error(&self) -> Error {
        Error::cancelled("the call was cancelled before all tasks ran")
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Marks done chunk `chunk` released; true if it was done (the caller
    /// may then drop its outputs, which nobody reads any more).
    pub(super) fn release(&self, chunk: usize) -> bool {
        self.states.get(chunk).is_some_and(|state| {
            state
                .compare_exchange(DONE, RELEASED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    pub(super) fn is_done(&self, chunk: usize) -> bool {
        self.states
            .get(chunk)
            .is_some_and(|state| state.load(Ordering::Acquire) == DONE)
    }

    /// `Ok` if chunk `chunk` has results here, else why it cannot be
    /// encoded.
    fn check_done(&self, chunk: usize) -> Result<(), Error> {
        if self.is_done(chunk) {
            Ok(())
        } else {
            Err(Error::backend(
                "job",
                format!("chunk {chunk} cannot be encoded: it has not run here"),
            ))
        }
    }

    pub(super) fn record_failure(&self, error: Error, keeps_going: bool) {
        if !keeps_going {
            self.stopped.store(true, Ordering::Release);
        }
        let mut failures = self.failures.lock_unpoisoned();
        failures.push(error);
        self.has_failures.store(true, Ordering::Release);
    }

    /// The failure with the lowest item index (errors without an index last).
    pub(super) fn first_failure(&self) -> Option<Error> {
        let failures = self.failures.lock_unpoisoned();
        failures
            .iter()
            .min_by_key(|error| error.task_index().unwrap_or(usize::MAX))
            .cloned()
    }

    /// Recorded failures of items in `range`, sorted by item index.
    pub(super) fn failures_in(&self, range: &Range<usize>) -> Vec<(usize, Error)> {
        if !self.has_failures.load(Ordering::Acquire) {
            return Vec::new();
        }
        let failures = self.failures.lock_unpoisoned();
        let mut found: Vec<(usize, Error)> = failures
            .iter()
            .filter_map(|error| error.task_index().map(|index| (index, error.clone())))
            .filter(|(index, _)| range.contains(index))
            .collect();
        found.sort_by_key(|(index, _)| *index);
        found.dedup_by_key(|(index, _)| *index);
        found
    }

    /// Why the call cannot return a complete result, if it cannot. A job
    /// that keeps going carries its failures in its outputs instead.
    pub(super) fn completion_error(&self, keeps_going: bool) -> Option<Error> {
        if !keeps_going && let Some(failure) = self.first_failure() {
            return Some(failure);
        }
        let unfinished = self
            .states
            .iter()
            .position(|state| state.load(Ordering::Acquire) != DONE)?;
        Some(self.unfinished_error(unfinished))
    }

    /// Why chunk `chunk` has no results: the call was cancelled, or the
    /// backend broke its contract.
    pub(super) fn unfinished_error(&self, chunk: usize) -> Error {
        if self.watch.cancelled() {
            self.cancelled_error()
        } else {
            Error::backend(
                "job",
                format!("the backend returned without running chunk {chunk}"),
            )
        }
    }
}

impl ChunkBook {
    /// The values of done chunk `chunk` in `outputs`, encoded for another
    /// process. A value that cannot be encoded (its `Serialize` fails or
    /// panics) is named; with `replace` (a job that keeps going) only that
    /// item fails: its value is replaced by `replace(error)`.
    pub(super) fn encode_done<'a, O>(
        &self,
        chunk: usize,
        (outputs, codec): (&'a Outputs<O>, Codec<O>),
        replace: Option<fn(Error) -> O>,
    ) -> Result<EncodedChunk<'a>, Error> {
        self.check_done(chunk)?;
        // SAFETY: the chunk is done: its slots are written and immutable.
        let values = unsafe { outputs.chunk(chunk) };
        let start = self.plan.chunk_range(chunk).start;
        codec.encode_parts_checked(values, (start, self.total()), replace)
    }

    /// Accepts the encoded values of chunk `chunk`, which ran in another
    /// process, into its slots of `outputs`; the chunk must be pending. A
    /// value that cannot be decoded is named by the error.
    pub(super) fn accept_encoded<T, O>(
        &self,
        chunk: usize,
        received: Received<'_>,
        (outputs, codec): (&Outputs<O>, Codec<O>),
        keeps_going: bool,
    ) -> Result<(), Error> {
        let start = self.plan.chunk_range(chunk).start;
        let expected = outputs.plan().chunk_range(chunk).len();
        let decoded = codec.decode_received_checked(received, (start, self.total()), expected)?;
        let mut claim = self.claim::<T, O>(chunk, None, outputs, None)?;
        for value in decoded {
            claim.put(value);
        }
        claim.settle(Ok(()), keeps_going)
    }
}

impl<T, O> ChunkClaim<'_, T, O> {
    /// Runs the chunk's tasks, `body`, as task code: a panic is caught and
    /// becomes the error of the item that was running. Then settles the
    /// chunk with the outcome.
    pub(super) fn run(
        mut self,
        keeps_going: bool,
        body: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let outcome = match unwind::catch_task(|| body(&mut self)) {
            Ok(outcome) => outcome,
            Err(panicked) => Err(unwind::panic_error(
                panicked,
                self.current(),
                self.book.total(),
            )),
        };
        self.settle(outcome, keeps_going)
    }

    /// The next item to run, or `None` at the end of the chunk; `Err` once
    /// the call is cancelled (checked before each item).
    #[inline]
    pub(super) fn next_task(&mut self) -> Result<Option<(usize, T)>, Error> {
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(self.book.cancelled_error());
        }
        if self.book.halted.load(Ordering::Relaxed) {
            self.halted = true;
            return Err(self.book.halted_error());
        }
        Ok(self.take())
    }

    /// The chunk's item indices.
    pub(super) fn items(&self) -> Range<usize> {
        self.items.clone()
    }

    /// The index of the item taken last (the one running), or the chunk's
    /// first item before any was taken.
    pub(super) fn current(&self) -> usize {
        self.items.start + self.taken.saturating_sub(1)
    }

    /// Tells the supervisor (if any) that item `index` runs now. Called
    /// only for items that run: a supervisor blames a worker's death on the
    /// item published last.
    #[inline]
    pub(super) fn publish(&self, index: usize) {
        if let Some(current_item) = self.current_item {
            current_item.store(index, Ordering::Relaxed);
        }
    }

    /// Moves the chunk's next item out. `None` once every item was taken,
    /// or for a claim without inputs.
    #[inline]
    pub(super) fn take(&mut self) -> Option<(usize, T)> {
        let inputs = self.inputs?;
        let index = self.items.start + self.taken;
        if index >= self.items.end {
            return None;
        }
        // SAFETY: the claim invariant: this claim holds the chunk, and it
        // takes the chunk's items in order, each once, counting them.
        let item = unsafe { inputs.take(index) };
        self.taken += 1;
        Some((index, item))
    }

    /// True if the items must run one at a time, each published to a
    /// supervisor (a worker process) before it runs.
    #[inline]
    pub(super) fn publishes(&self) -> bool {
        self.current_item.is_some()
    }

    /// The error that ends the chunk here if the call was cancelled or the
    /// job halted; the same checks [`next_task`](ChunkClaim::next_task)
    /// makes before each item.
    #[inline]
    pub(super) fn check(&mut self) -> Result<(), Error> {
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(self.book.cancelled_error());
        }
        if self.book.halted.load(Ordering::Relaxed) {
            self.halted = true;
            return Err(self.book.halted_error());
        }
        Ok(())
    }

    /// Runs up to `limit` of the chunk's next items through `f`, each result
    /// into the next slot, in one loop without per-item checks, so the
    /// compiler can unroll and vectorize it. Returns how many ran: 0 once
    /// every item was taken. For chunks whose items all run and whose
    /// claim does not [publish](ChunkClaim::publishes) items; the caller
    /// makes the [checks](ChunkClaim::check) between blocks.
    #[inline]
    pub(super) fn map_block(&mut self, limit: usize, f: &mut impl FnMut(T) -> O) -> usize {
        let Some(inputs) = self.inputs else {
            return 0;
        };
        let first_item = self.items.start + self.taken;
        let first_slot = self.slots.start + self.written;
        let count = limit
            .min(self.items.end - first_item)
            .min(self.slots.end - first_slot);
        /// Stores the counts when the block ends, also when `f` unwinds
        /// (then its item was taken and its slot not written).
        struct Counts<'c> {
            taken: &'c mut usize,
            written: &'c mut usize,
            took: usize,
            wrote: usize,
        }
        impl Drop for Counts<'_> {
            fn drop(&mut self) {
                *self.taken += self.took;
                *self.written += self.wrote;
            }
        }
        // Pointers taken once, so the loop reads and writes plain memory.
        let items = inputs.items_from(first_item);
        let slots = self.outputs.slots_from(first_slot);
        let mut counts = Counts {
            taken: &mut self.taken,
            written: &mut self.written,
            took: 0,
            wrote: 0,
        };
        for offset in 0..count {
            // SAFETY: the claim invariant: this claim holds the chunk and
            // takes its items and writes its slots in order, each once;
            // `count` keeps both within the chunk (so within the storage),
            // and `Counts` records exactly what was taken and written.
            let item = unsafe { items.add(offset).read().assume_init() };
            counts.took = offset + 1;
            let value = f(item);
            // SAFETY: as above.
            unsafe { slots.add(offset).write(std::mem::MaybeUninit::new(value)) };
            counts.wrote = offset + 1;
        }
        count
    }

    /// Writes the chunk's next output slot.
    ///
    /// # Panics
    ///
    /// If every slot of the chunk is written already (a bug in this crate).
    #[inline]
    pub(super) fn put(&mut self, value: O) {
        let index = self.slots.start + self.written;
        assert!(
            index < self.slots.end,
            "chunk {} has no slot left",
            self.chunk
        );
        // SAFETY: the claim invariant: this claim holds the chunk and
        // writes its slots in order, each once, counting them.
        unsafe { self.outputs.write(index, value) };
        self.written += 1;
    }

    /// Ends the claim: DONE if `outcome` is `Ok` and every slot was
    /// written, else FAILED with the failure recorded (stopping a fail-fast
    /// job). Returns the outcome.
    pub(super) fn settle(
        mut self,
        outcome: Result<(), Error>,
        keeps_going: bool,
    ) -> Result<(), Error> {
        let outcome = outcome.and_then(|()| {
            if self.written == self.slots.len() {
                Ok(())
            } else {
                Err(Error::backend(
                    "job",
                    format!(
                        "chunk {} finished with {} of {} results",
                        self.chunk,
                        self.written,
                        self.slots.len()
                    ),
                ))
            }
        });
        self.store_counts();
        self.settled = true;
        match outcome {
            Ok(()) => {
                self.book.finish(self.chunk, DONE);
                Ok(())
            }
            Err(error) => {
                self.book.finish(self.chunk, FAILED);
                if !self.halted {
                    self.book.record_failure(error.clone(), keeps_going);
                }
                Err(error)
            }
        }
    }

    fn store_counts(&self) {
        if let Some(inputs) = self.inputs {
            inputs.set_taken(self.chunk, self.taken);
        }
        self.outputs.set_written(self.chunk, self.written);
    }
}

impl<T, O> Drop for ChunkClaim<'_, T, O> {
    fn drop(&mut self) {
        if !self.settled {
            // Left without settling (unwinding through this crate's code):
            // the counts still say what to drop, and the chunk never counts
            // as done.
            self.store_counts();
            self.book.finish(self.chunk, FAILED);
        }
    }
}
