//! The type-erased job that backends run chunk by chunk.
//!
//! `Pool` turns a typed call (`map`, `try_map`, `map_reduce`) into a value
//! that implements [`Job`]; backends see only `&dyn Job` and chunk indices.
//! This module owns everything that touches the user's types:
//!
//! - the inputs, moved out of the caller's `Vec<T>` one item at a time (an
//!   item a task never took is dropped when the job is);
//! - the outputs: one slot per item for `map`, one partial per chunk for
//!   `map_reduce`;
//! - panic capture, so a panicking task becomes an [`Error`] naming its item;
//! - result encoding with postcard, for backends whose workers live in other
//!   processes;
//! - the failure record that makes `map` stop early and lets `try_map`
//!   carry on.
//!
//! Each chunk has an atomic state (pending, running, done, failed). Running
//! or accepting a chunk first moves it out of "pending" with a
//! compare-and-swap, so even a buggy custom backend cannot run a chunk twice
//! at once: it gets an `Err` instead of a data race.

use crate::cancel::CancelToken;
use crate::error::{Error, UNKNOWN_TOTAL, panic_payload_message};
use crate::plan::ChunkPlan;
use crate::progress::Meter;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::{Cell, UnsafeCell};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// The work of one pool call, as a backend sees it: a [`ChunkPlan`] and
/// operations on chunk indices. Implemented only inside this crate; backends
/// (including custom ones) call it.
///
/// The contract a backend keeps when calling these methods is written down in
/// the [`backend`](crate::backend) module.
pub trait Job: Sync + sealed::Sealed {
    /// How the items are cut into chunks.
    fn plan(&self) -> ChunkPlan;

    /// Runs chunk `chunk` on the calling thread, in item order.
    ///
    /// Before each item the item's index is stored in `current_item`, if
    /// given, so a supervisor in another process can tell which item a
    /// worker died on. A panic in the user's function is caught, recorded
    /// (see [`record_failure`](Job::record_failure)) and returned as `Err`.
    /// Running a chunk that is not pending is an `Err` too.
    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error>;

    /// The results of a chunk this job has run, encoded for another process.
    fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error>;

    /// Accepts the encoded results of a chunk that ran elsewhere (the output
    /// of [`encode_chunk`](Job::encode_chunk) in another copy of this job).
    /// The chunk must still be pending here.
    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error>;

    /// Records that a task failed outside [`run_chunk`](Job::run_chunk): its
    /// worker crashed, timed out, or reported a failure from another process.
    ///
    /// On a fail-fast job (`map`, `map_reduce`) this stops the job. On a job
    /// that [keeps going](Job::keeps_going) (`try_map`) the failure becomes
    /// that item's result: the item is skipped when its chunk is run again.
    fn record_failure(&self, error: Error);

    /// True for `try_map`: the backend runs every chunk despite failures and
    /// re-runs a chunk whose worker died, skipping the items recorded as
    /// failed.
    fn keeps_going(&self) -> bool;

    /// True once a fail-fast job has a failure: claim no more chunks.
    fn should_stop(&self) -> bool;

    /// True once chunk `chunk` has results here (run here or accepted).
    fn is_chunk_done(&self, chunk: usize) -> bool;
}

mod sealed {
    /// Only this crate's job types implement [`Job`](super::Job).
    pub trait Sealed {}
}

// --- nested-use detection --------------------------------------------------

thread_local! {
    /// True while this thread runs a task of some pool.
    static INSIDE_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Set for the whole life of a forked worker process.
static INSIDE_WORKER_PROCESS: AtomicBool = AtomicBool::new(false);

/// True if the caller is running inside a pool task (on a worker thread, the
/// serial backend, or in a worker process). A pool used there runs serially.
pub(crate) fn inside_task() -> bool {
    INSIDE_TASK.with(Cell::get) || INSIDE_WORKER_PROCESS.load(Ordering::Relaxed)
}

/// True in a forked worker process.
#[allow(dead_code)] // used by the process backend on Unix only
pub(crate) fn inside_worker_process() -> bool {
    INSIDE_WORKER_PROCESS.load(Ordering::Relaxed)
}

/// Marks this process as a pool worker process (called in a forked child).
#[allow(dead_code)] // used by the process backend on Unix only
pub(crate) fn mark_worker_process() {
    INSIDE_WORKER_PROCESS.store(true, Ordering::Relaxed);
}

/// Sets [`INSIDE_TASK`] for its lifetime, restoring the old value after.
struct InsideTaskGuard {
    was_inside: bool,
}

impl InsideTaskGuard {
    fn enter() -> InsideTaskGuard {
        InsideTaskGuard {
            was_inside: INSIDE_TASK.with(|flag| flag.replace(true)),
        }
    }
}

impl Drop for InsideTaskGuard {
    fn drop(&mut self) {
        let was_inside = self.was_inside;
        INSIDE_TASK.with(|flag| flag.set(was_inside));
    }
}

// --- chunk bookkeeping shared by every job type ----------------------------

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;

/// What a call is watched by: a cancel token and a progress meter.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) meter: Meter,
}

impl Watch {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    /// Counts `items` more items done, in the process that called the pool
    /// (a worker process's copy of the meter never draws).
    pub(crate) fn items_done(&self, items: usize) {
        if !inside_worker_process() {
            self.meter.advance(items);
        }
    }
}

/// Per-chunk state and the failure record, common to all job types.
struct ChunkBook {
    plan: ChunkPlan,
    watch: Watch,
    states: Box<[AtomicU8]>,
    /// Fail-fast: set at the first failure.
    stopped: AtomicBool,
    /// Failures recorded so far, any order.
    failures: Mutex<Vec<Error>>,
    /// True once `failures` is non-empty (checked without the lock).
    has_failures: AtomicBool,
}

impl ChunkBook {
    fn new(plan: ChunkPlan, watch: Watch) -> ChunkBook {
        ChunkBook {
            plan,
            watch,
            states: (0..plan.chunk_count())
                .map(|_| AtomicU8::new(PENDING))
                .collect(),
            stopped: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            has_failures: AtomicBool::new(false),
        }
    }

    fn total(&self) -> usize {
        self.plan.item_count()
    }

    fn state(&self, chunk: usize) -> Result<&AtomicU8, Error> {
        self.states.get(chunk).ok_or_else(|| {
            Error::backend(
                "job",
                format!(
                    "chunk {chunk} does not exist: the job has {} chunks",
                    self.states.len()
                ),
            )
        })
    }

    /// Moves `chunk` from pending to `to`, or says why it cannot.
    fn claim(&self, chunk: usize, to: u8) -> Result<(), Error> {
        self.state(chunk)?
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|_| {
                Error::backend(
                    "job",
                    format!("chunk {chunk} was handed out twice (it is no longer pending)"),
                )
            })
    }

    fn finish(&self, chunk: usize, state: u8) {
        self.states[chunk].store(state, Ordering::Release);
        if state == DONE {
            self.watch.items_done(self.plan.chunk_range(chunk).len());
        }
    }

    /// True once a fail-fast job has a failure or the call was cancelled.
    fn should_stop(&self) -> bool {
        self.stopped.load(Ordering::Acquire) || self.watch.cancelled()
    }

    /// `Err(cancelled)` if the call's cancel token has been triggered; tasks
    /// check it between items.
    #[cold]
    #[inline(never)]
    fn check_cancelled(&self) -> Result<(), Error> {
        if self.watch.cancelled() {
            Err(Error::cancelled(
                "the call was cancelled before all tasks ran",
            ))
        } else {
            Ok(())
        }
    }

    /// Ends a chunk run: DONE on success; FAILED, recorded (stopping the
    /// job) on failure.
    fn settle(&self, chunk: usize, outcome: Result<(), Error>) -> Result<(), Error> {
        match outcome {
            Ok(()) => {
                self.finish(chunk, DONE);
                Ok(())
            }
            Err(error) => {
                self.finish(chunk, FAILED);
                self.record_failure(error.clone(), false);
                Err(error)
            }
        }
    }

    /// The item range of `chunk`, if its results exist here.
    fn done_range(&self, chunk: usize) -> Result<std::ops::Range<usize>, Error> {
        if self.is_done(chunk) {
            Ok(self.plan.chunk_range(chunk))
        } else {
            Err(Error::backend(
                "job",
                format!("chunk {chunk} cannot be encoded: it has not run here"),
            ))
        }
    }

    fn is_done(&self, chunk: usize) -> bool {
        self.states
            .get(chunk)
            .is_some_and(|state| state.load(Ordering::Acquire) == DONE)
    }

    fn record_failure(&self, error: Error, keeps_going: bool) {
        if !keeps_going {
            self.stopped.store(true, Ordering::Release);
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.push(error);
        self.has_failures.store(true, Ordering::Release);
    }

    /// The failure with the lowest item index (errors without an index last).
    fn first_failure(&self) -> Option<Error> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .iter()
            .min_by_key(|error| error.task_index().unwrap_or(usize::MAX))
            .cloned()
    }

    /// Recorded failures of items in `range`, sorted by item index.
    fn failures_in(&self, range: &std::ops::Range<usize>) -> Vec<(usize, Error)> {
        if !self.has_failures.load(Ordering::Acquire) {
            return Vec::new();
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
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
    fn completion_error(&self, keeps_going: bool) -> Option<Error> {
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
    fn unfinished_error(&self, chunk: usize) -> Error {
        match self.check_cancelled() {
            Err(cancelled) => cancelled,
            Ok(()) => Error::backend(
                "job",
                format!("the backend returned without running chunk {chunk}"),
            ),
        }
    }
}

// --- inputs -------------------------------------------------------------------

/// The caller's items, moved out one at a time by the tasks.
///
/// Items of a chunk are taken in order from its start, so one counter per
/// chunk says which are gone; the rest are dropped with the store.
struct Inputs<T> {
    items: ManuallyDrop<Vec<MaybeUninit<T>>>,
    taken_per_chunk: Box<[AtomicUsize]>,
    plan: ChunkPlan,
}

// SAFETY: items are moved to whichever thread runs their chunk (T: Send); the
// chunk state machine in `ChunkBook` gives each chunk to one runner at a time,
// so no item is read twice.
unsafe impl<T: Send> Sync for Inputs<T> {}

impl<T> Inputs<T> {
    fn new(items: Vec<T>, plan: ChunkPlan) -> Inputs<T> {
        let mut items = ManuallyDrop::new(items);
        let (ptr, len, capacity) = (items.as_mut_ptr(), items.len(), items.capacity());
        // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the pointer,
        // length and capacity come from a live `Vec<T>` we no longer use.
        let items = unsafe { Vec::from_raw_parts(ptr.cast::<MaybeUninit<T>>(), len, capacity) };
        Inputs {
            items: ManuallyDrop::new(items),
            taken_per_chunk: (0..plan.chunk_count())
                .map(|_| AtomicUsize::new(0))
                .collect(),
            plan,
        }
    }

    /// Moves item `index` out.
    ///
    /// # Safety
    ///
    /// The caller holds the chunk of `index` (it is `RUNNING` for this
    /// caller), takes the chunk's items in order, and records how many it
    /// took in `taken_per_chunk` before the store is dropped.
    unsafe fn take(&self, index: usize) -> T {
        let slot = self.items.as_ptr().wrapping_add(index);
        // SAFETY: index < len (it comes from the plan), the item is still
        // initialized (the caller holds the chunk and has not taken it), and
        // no one else reads it (the caller holds the chunk).
        unsafe { (*slot).assume_init_read() }
    }
}

impl<T> Drop for Inputs<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            for chunk in 0..self.plan.chunk_count() {
                let range = self.plan.chunk_range(chunk);
                let taken = self.taken_per_chunk[chunk].load(Ordering::Acquire);
                for slot in &mut self.items[range.start + taken..range.end] {
                    // SAFETY: items past `taken` in a chunk were never moved out.
                    unsafe { slot.assume_init_drop() };
                }
            }
        }
        // SAFETY: dropped once, here; the elements are `MaybeUninit`, so
        // dropping the Vec only frees the buffer.
        unsafe { ManuallyDrop::drop(&mut self.items) };
    }
}

/// Counts items taken and results written during one chunk run and stores
/// the counts when dropped, also when the user's function unwinds.
struct ChunkProgress<'a> {
    taken_total: &'a AtomicUsize,
    written_total: Option<&'a AtomicUsize>,
    taken: usize,
    written: usize,
}

impl<'a> ChunkProgress<'a> {
    /// `written_total` is `None` for jobs whose outputs are all-or-nothing
    /// per chunk (`map_reduce` partials).
    fn new(taken_total: &'a AtomicUsize, written_total: Option<&'a AtomicUsize>) -> Self {
        ChunkProgress {
            taken_total,
            written_total,
            taken: 0,
            written: 0,
        }
    }

    /// Moves item `index` out of `inputs` and counts it, after publishing
    /// the index in `current` (for panic messages) and `shared` (for a
    /// supervising process).
    ///
    /// # Safety
    ///
    /// As for [`Inputs::take`]: the caller holds the chunk of `index` and
    /// takes its items in order, through this one `ChunkProgress`.
    unsafe fn take<T>(
        &mut self,
        inputs: &Inputs<T>,
        index: usize,
        current: &Cell<usize>,
        shared: Option<&AtomicUsize>,
    ) -> T {
        current.set(index);
        if let Some(shared) = shared {
            shared.store(index, Ordering::Relaxed);
        }
        // SAFETY: guaranteed by this function's caller.
        let item = unsafe { inputs.take(index) };
        self.taken += 1;
        item
    }
}

impl Drop for ChunkProgress<'_> {
    fn drop(&mut self) {
        self.taken_total.store(self.taken, Ordering::Release);
        if let Some(written_total) = self.written_total {
            written_total.store(self.written, Ordering::Release);
        }
    }
}

/// Runs `body` with panics caught; a panic becomes an error naming the item
/// that was running (`current` when it unwound).
fn catch_task_panic(total: usize, current: &Cell<usize>, body: impl FnOnce()) -> Result<(), Error> {
    let _inside = InsideTaskGuard::enter();
    catch_unwind(AssertUnwindSafe(body))
        .map_err(|payload| Error::panic(current.get(), total, panic_payload_message(&*payload)))
}

/// Runs task `index` of a stream (`imap`, a session): `function(item)` with
/// a panic caught and turned into an error naming the item, and nested
/// pool use made serial.
pub(crate) fn run_stream_task<T, O>(
    function: &(impl Fn(T) -> O + ?Sized),
    item: T,
    index: usize,
) -> Result<O, Error> {
    let _inside = InsideTaskGuard::enter();
    catch_unwind(AssertUnwindSafe(|| function(item)))
        .map_err(|payload| Error::panic(index, UNKNOWN_TOTAL, panic_payload_message(&*payload)))
}

// --- map / try_map --------------------------------------------------------------

/// A `map`, `try_map` or `map_init` call: one output slot per item.
///
/// The function gets `&mut S`, a per-worker state made by `init`: a chunk
/// run takes a state left by an earlier chunk run in this process, or makes
/// one, and puts it back when the chunk is done. So at most one state exists
/// per worker running at once (per thread, per worker process), and plain
/// `map` is the case `S = ()`.
pub(crate) struct MapJob<T, O, S, I, F> {
    book: ChunkBook,
    inputs: Inputs<T>,
    outputs: ManuallyDrop<Vec<UnsafeCell<MaybeUninit<O>>>>,
    written_per_chunk: Box<[AtomicUsize]>,
    init: I,
    states: Mutex<Vec<S>>,
    function: F,
    /// `Some` for `try_map`: turns a recorded failure into the item's output.
    failure_output: Option<fn(Error) -> O>,
}

// SAFETY: output slots of a chunk are written only by the holder of that
// chunk (see `ChunkBook::claim`), and read only after the chunk is DONE
// (Release/Acquire on the chunk state). O: Send because outputs are created on
// worker threads and handed to the caller; F and I: Sync because every worker
// calls them through a shared reference; S: Send because a state moves
// between threads through the Mutex.
unsafe impl<T: Send, O: Send, S: Send, I: Sync, F: Sync> Sync for MapJob<T, O, S, I, F> {}

/// `function` as the `Fn(&mut (), T) -> O` of a [`MapJob`] without
/// per-worker state (`try_map`).
pub(crate) fn stateless<T, O>(function: impl Fn(T) -> O + Sync) -> impl Fn(&mut (), T) -> O + Sync {
    move |_: &mut (), item| function(item)
}

impl<T, O, S, I, F> MapJob<T, O, S, I, F>
where
    T: Send,
    O: Send + Serialize + DeserializeOwned,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, T) -> O + Sync,
{
    /// A job over `items` whose function gets a per-worker state made by
    /// `init`; `failure_output` is `Some` for a job that keeps going past
    /// failures (`try_map`).
    pub(crate) fn new(
        items: Vec<T>,
        plan: ChunkPlan,
        init: I,
        function: F,
        failure_output: Option<fn(Error) -> O>,
        watch: Watch,
    ) -> Self {
        let count = items.len();
        let mut outputs = Vec::with_capacity(count);
        outputs.resize_with(count, || UnsafeCell::new(MaybeUninit::uninit()));
        MapJob {
            book: ChunkBook::new(plan, watch),
            inputs: Inputs::new(items, plan),
            outputs: ManuallyDrop::new(outputs),
            written_per_chunk: (0..plan.chunk_count())
                .map(|_| AtomicUsize::new(0))
                .collect(),
            init,
            states: Mutex::new(Vec::new()),
            function,
            failure_output,
        }
    }

    fn slot(&self, index: usize) -> *mut MaybeUninit<O> {
        self.outputs[index].get()
    }

    /// Runs the items of `range` (a whole chunk) with `skipped` items
    /// replaced by their recorded failures.
    fn run_items(
        &self,
        chunk: usize,
        range: std::ops::Range<usize>,
        skipped: &[(usize, Error)],
        current_item: Option<&AtomicUsize>,
    ) -> Result<(), Error> {
        let current = Cell::new(range.start);
        let mut progress = ChunkProgress::new(
            &self.inputs.taken_per_chunk[chunk],
            Some(&self.written_per_chunk[chunk]),
        );
        let mut cancelled = Ok(());
        let outcome = catch_task_panic(self.book.total(), &current, || {
            let taken = self.states.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut state = taken.unwrap_or_else(&self.init);
            let mut skipped = skipped.iter().peekable();
            let cancel = self.book.watch.cancel.as_ref();
            for index in range {
                if cancel.is_some_and(CancelToken::is_cancelled) {
                    cancelled = self.book.check_cancelled();
                    break;
                }
                // SAFETY: we hold the chunk (claimed RUNNING in run_chunk)
                // and take its items in order.
                let item = unsafe { progress.take(&self.inputs, index, &current, current_item) };
                let output = match skipped.next_if(|(skip, _)| *skip == index) {
                    Some((_, error)) => {
                        drop(item);
                        // `skipped` is only non-empty when failure_output is set.
                        let to_output = self.failure_output.unwrap_or(|_| unreachable!());
                        to_output(error.clone())
                    }
                    None => (self.function)(&mut state, item),
                };
                // SAFETY: index is in our chunk, which only we write; the
                // slot is uninitialized (first write of this chunk run).
                unsafe { (*self.slot(index)).write(output) };
                progress.written += 1;
            }
            // A state whose task panicked is dropped with the unwinding.
            self.states
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(state);
        });
        outcome.and(cancelled)
    }

    /// The outputs of a job whose chunks are all done.
    fn take_all_outputs(mut self) -> Vec<O> {
        // Mark everything as handed over, so Drop frees nothing twice.
        for written in self.written_per_chunk.iter() {
            written.store(0, Ordering::Relaxed);
        }
        let mut outputs = ManuallyDrop::new(std::mem::take(&mut *self.outputs));
        let (ptr, len, capacity) = (outputs.as_mut_ptr(), outputs.len(), outputs.capacity());
        // SAFETY: every chunk is DONE, so every slot holds an initialized O;
        // UnsafeCell<MaybeUninit<O>> has the layout of O.
        unsafe { Vec::from_raw_parts(ptr.cast::<O>(), len, capacity) }
    }

    /// `Ok(outputs)` if every chunk is done, else the first failure.
    pub(crate) fn into_outputs(self) -> Result<Vec<O>, Error> {
        match self.book.completion_error(self.keeps_going()) {
            Some(error) => Err(error),
            None => Ok(self.take_all_outputs()),
        }
    }

    /// Every output, with `fill(index, why)` standing in for items of chunks
    /// that never completed (the call was cancelled, or a backend failed
    /// under `try_map`).
    pub(crate) fn into_outputs_or(self, fill: impl Fn(usize, &Error) -> O) -> Vec<O> {
        if self.book.completion_error(self.keeps_going()).is_none() {
            return self.take_all_outputs();
        }
        let plan = self.book.plan;
        let mut result = Vec::with_capacity(plan.item_count());
        for chunk in 0..plan.chunk_count() {
            let range = plan.chunk_range(chunk);
            if self.book.is_done(chunk) {
                self.written_per_chunk[chunk].store(0, Ordering::Relaxed);
                for index in range {
                    // SAFETY: the chunk is DONE so the slot is initialized;
                    // its written count is now 0, so Drop will not drop it.
                    result.push(unsafe { (*self.slot(index)).assume_init_read() });
                }
            } else {
                let why = self.book.unfinished_error(chunk);
                result.extend(range.map(|index| fill(index, &why)));
            }
        }
        result
    }
}

impl<T, O, S, I, F> Drop for MapJob<T, O, S, I, F> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<O>() {
            let plan = self.book.plan;
            for chunk in 0..plan.chunk_count().min(self.written_per_chunk.len()) {
                let start = plan.chunk_range(chunk).start;
                let written = self.written_per_chunk[chunk].load(Ordering::Acquire);
                if written == 0 {
                    continue;
                }
                for slot in &mut self.outputs[start..start + written] {
                    // SAFETY: the first `written` slots of the chunk hold
                    // outputs nobody took.
                    unsafe { slot.get_mut().assume_init_drop() };
                }
            }
        }
        // SAFETY: dropped once; the elements are MaybeUninit, so only the
        // buffer is freed.
        unsafe { ManuallyDrop::drop(&mut self.outputs) };
    }
}

impl<T, O, S, I, F> sealed::Sealed for MapJob<T, O, S, I, F> {}

impl<T, O, S, I, F> Job for MapJob<T, O, S, I, F>
where
    T: Send,
    O: Send + Serialize + DeserializeOwned,
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, T) -> O + Sync,
{
    fn plan(&self) -> ChunkPlan {
        self.book.plan
    }

    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error> {
        self.book.claim(chunk, RUNNING)?;
        let range = self.book.plan.chunk_range(chunk);
        let skipped = if self.keeps_going() {
            self.book.failures_in(&range)
        } else {
            Vec::new()
        };
        let outcome = self.run_items(chunk, range, &skipped, current_item);
        self.book.settle(chunk, outcome)
    }

    fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error> {
        let range = self.book.done_range(chunk)?;
        // SAFETY: the chunk is DONE, so its slots are initialized and no
        // longer written; O has the layout of UnsafeCell<MaybeUninit<O>>.
        let outputs: &[O] =
            unsafe { std::slice::from_raw_parts(self.slot(range.start).cast::<O>(), range.len()) };
        postcard::to_stdvec(outputs)
            .map_err(|e| Error::encoding(range.start, self.book.total(), "encoded", e))
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        let range = self.book.plan.chunk_range(chunk);
        let decoded: Vec<O> = postcard::from_bytes(bytes)
            .map_err(|e| Error::encoding(range.start, self.book.total(), "decoded", e))?;
        if decoded.len() != range.len() {
            return Err(Error::encoding(
                range.start,
                self.book.total(),
                "decoded",
                format!(
                    "chunk {chunk} holds {} results, expected {}",
                    decoded.len(),
                    range.len()
                ),
            ));
        }
        self.book.claim(chunk, RUNNING)?;
        for (index, output) in range.clone().zip(decoded) {
            // SAFETY: we hold the chunk; its slots are uninitialized.
            unsafe { (*self.slot(index)).write(output) };
        }
        self.written_per_chunk[chunk].store(range.len(), Ordering::Release);
        self.book.finish(chunk, DONE);
        Ok(())
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

    fn is_chunk_done(&self, chunk: usize) -> bool {
        self.book.is_done(chunk)
    }
}

// --- map_reduce -----------------------------------------------------------------

/// A `map_reduce` call: one partial result per chunk.
pub(crate) struct ReduceJob<T, R, F, Op> {
    book: ChunkBook,
    inputs: Inputs<T>,
    partials: Box<[UnsafeCell<Option<R>>]>,
    identity: Mutex<R>,
    function: F,
    op: Op,
}

// SAFETY: as for MapJob: a chunk's partial is written only by the holder of
// the chunk and read after it is DONE. The identity is behind a Mutex, so R
// need only be Send.
unsafe impl<T: Send, R: Send, F: Sync, Op: Sync> Sync for ReduceJob<T, R, F, Op> {}

impl<T, R, F, Op> ReduceJob<T, R, F, Op>
where
    T: Send,
    R: Send + Clone + Serialize + DeserializeOwned,
    F: Fn(T) -> R + Sync,
    Op: Fn(R, R) -> R + Sync,
{
    pub(crate) fn new(
        items: Vec<T>,
        plan: ChunkPlan,
        function: F,
        (identity, op): (R, Op),
        watch: Watch,
    ) -> Self {
        let chunk_count = plan.chunk_count();
        ReduceJob {
            book: ChunkBook::new(plan, watch),
            inputs: Inputs::new(items, plan),
            partials: (0..chunk_count).map(|_| UnsafeCell::new(None)).collect(),
            identity: Mutex::new(identity),
            function,
            op,
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
        for partial in self.partials.into_vec() {
            let partial = partial
                .into_inner()
                .ok_or_else(|| Error::backend("job", "a finished chunk has no partial result"))?;
            total = (self.op)(total, partial);
        }
        Ok(total)
    }
}

impl<T, R, F, Op> sealed::Sealed for ReduceJob<T, R, F, Op> {}

impl<T, R, F, Op> Job for ReduceJob<T, R, F, Op>
where
    T: Send,
    R: Send + Clone + Serialize + DeserializeOwned,
    F: Fn(T) -> R + Sync,
    Op: Fn(R, R) -> R + Sync,
{
    fn plan(&self) -> ChunkPlan {
        self.book.plan
    }

    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error> {
        self.book.claim(chunk, RUNNING)?;
        let range = self.book.plan.chunk_range(chunk);
        let current = Cell::new(range.start);
        let mut progress = ChunkProgress::new(&self.inputs.taken_per_chunk[chunk], None);
        let mut partial = None;
        let mut cancelled = Ok(());
        let outcome = catch_task_panic(self.book.total(), &current, || {
            let mut accumulator = self.identity();
            let cancel = self.book.watch.cancel.as_ref();
            for index in range {
                if cancel.is_some_and(CancelToken::is_cancelled) {
                    cancelled = self.book.check_cancelled();
                    return;
                }
                // SAFETY: we hold the chunk (claimed RUNNING in run_chunk)
                // and take its items in order.
                let item = unsafe { progress.take(&self.inputs, index, &current, current_item) };
                accumulator = (self.op)(accumulator, (self.function)(item));
            }
            partial = Some(accumulator);
        });
        let outcome = outcome.and(cancelled);
        drop(progress);
        if outcome.is_ok() {
            // SAFETY: we hold the chunk; no one else touches its partial.
            unsafe { *self.partials[chunk].get() = partial };
        }
        self.book.settle(chunk, outcome)
    }

    fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error> {
        let start = self.book.done_range(chunk)?.start;
        // SAFETY: the chunk is DONE: its partial is written and immutable.
        let partial: &Option<R> = unsafe { &*self.partials[chunk].get() };
        postcard::to_stdvec(partial)
            .map_err(|e| Error::encoding(start, self.book.total(), "encoded", e))
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        let start = self.book.plan.chunk_range(chunk).start;
        let partial: Option<R> = postcard::from_bytes(bytes)
            .map_err(|e| Error::encoding(start, self.book.total(), "decoded", e))?;
        if partial.is_none() {
            return Err(Error::encoding(
                start,
                self.book.total(),
                "decoded",
                format!("chunk {chunk} arrived without a partial result"),
            ));
        }
        self.book.claim(chunk, RUNNING)?;
        // SAFETY: we hold the chunk; no one else touches its partial.
        unsafe { *self.partials[chunk].get() = partial };
        self.book.finish(chunk, DONE);
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn square_job(
        n: u64,
        chunk_size: usize,
    ) -> MapJob<u64, u64, (), impl Fn() + Sync, impl Fn(&mut (), u64) -> u64 + Sync> {
        let items: Vec<u64> = (0..n).collect();
        MapJob::new(
            items,
            ChunkPlan::new(n as usize, chunk_size),
            || (),
            stateless(|x: u64| x * x),
            None,
            Watch::default(),
        )
    }

    #[test]
    fn chunks_run_in_any_order_give_ordered_outputs() {
        let job = square_job(10, 3);
        for chunk in [3, 1, 0, 2] {
            job.run_chunk(chunk, None).expect("chunk runs");
        }
        assert_eq!(
            job.into_outputs().expect("complete"),
            [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
        );
    }

    #[test]
    fn a_chunk_cannot_run_twice_or_out_of_range() {
        let job = square_job(4, 2);
        job.run_chunk(0, None).expect("first run");
        assert!(job.run_chunk(0, None).is_err());
        assert!(job.run_chunk(7, None).is_err());
        let error = job.into_outputs().expect_err("chunk 1 never ran");
        assert!(error.to_string().contains("without running chunk 1"));
    }

    #[test]
    fn encoded_chunks_are_accepted_by_another_copy() {
        let worker = square_job(7, 3);
        let parent = square_job(7, 3);
        for chunk in 0..3 {
            worker.run_chunk(chunk, None).expect("runs");
            let bytes = worker.encode_chunk(chunk).expect("encodes");
            parent.accept_chunk(chunk, &bytes).expect("accepts");
        }
        assert!(
            parent
                .accept_chunk(0, &worker.encode_chunk(0).unwrap())
                .is_err()
        );
        assert_eq!(parent.into_outputs().unwrap(), [0, 1, 4, 9, 16, 25, 36]);
    }

    #[test]
    fn garbage_bytes_are_an_encoding_error_naming_the_chunk_start() {
        let job = square_job(7, 3);
        let error = job
            .accept_chunk(1, &[0xff, 0xff, 0xff])
            .expect_err("garbage");
        assert_eq!(error.task_index(), Some(3));
        assert!(error.to_string().contains("could not be decoded"));
        let short = postcard::to_stdvec(&vec![1u64]).unwrap();
        assert!(job.accept_chunk(1, &short).is_err());
        // The failed accept left the chunk pending.
        assert!(!job.is_chunk_done(1));
    }

    #[test]
    fn the_current_item_is_published_before_each_task() {
        let job = square_job(5, 5);
        let current = AtomicUsize::new(usize::MAX);
        job.run_chunk(0, Some(&current)).unwrap();
        assert_eq!(current.load(Ordering::Relaxed), 4);
    }

    /// Counts live values, to prove every input and output is dropped once.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Counted {
        #[serde(skip)]
        live: Option<Arc<AtomicUsize>>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            if let Some(live) = &self.live {
                live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn failed_jobs_drop_every_input_and_output_exactly_once() {
        let live = Arc::new(AtomicUsize::new(0));
        let make = |live: &Arc<AtomicUsize>| {
            live.fetch_add(1, Ordering::Relaxed);
            Counted {
                live: Some(live.clone()),
            }
        };
        let items: Vec<(usize, Counted)> = (0..20).map(|i| (i, make(&live))).collect();
        let outputs_live = live.clone();
        let job = MapJob::new(
            items,
            ChunkPlan::new(20, 4),
            || (),
            stateless(move |(i, item): (usize, Counted)| {
                drop(item);
                if i == 6 {
                    panic!("item six");
                }
                outputs_live.fetch_add(1, Ordering::Relaxed);
                Counted {
                    live: Some(outputs_live.clone()),
                }
            }),
            None,
            Watch::default(),
        );
        job.run_chunk(0, None).unwrap();
        let error = job.run_chunk(1, None).unwrap_err();
        assert_eq!(error.to_string(), "task 6 of 20 panicked: item six");
        assert!(job.should_stop());
        assert!(live.load(Ordering::Relaxed) > 0);
        let error = job.into_outputs().unwrap_err();
        assert_eq!(error.task_index(), Some(6));
        assert_eq!(
            live.load(Ordering::Relaxed),
            0,
            "something leaked or was dropped twice"
        );
    }

    #[test]
    fn keep_going_jobs_skip_recorded_failures() {
        let items: Vec<u64> = (0..6).collect();
        let job = MapJob::new(
            items,
            ChunkPlan::new(6, 3),
            || (),
            stateless(|x: u64| -> Result<u64, Error> { Ok(x + 100) }),
            Some(Err),
            Watch::default(),
        );
        job.record_failure(Error::crash(4, 6, "killed by signal 9 (SIGKILL)"));
        assert!(!job.should_stop());
        job.run_chunk(0, None).unwrap();
        job.run_chunk(1, None).unwrap();
        let outputs = job.into_outputs().unwrap();
        assert_eq!(outputs[3], Ok(103));
        assert!(outputs[4].as_ref().unwrap_err().is_crash());
        assert_eq!(outputs[5], Ok(105));
    }

    #[test]
    fn reduce_partials_travel_and_combine_in_chunk_order() {
        let make = || {
            ReduceJob::new(
                vec!["a", "b", "c", "d", "e"],
                ChunkPlan::new(5, 2),
                |s: &str| s.to_string(),
                (String::new(), |a: String, b: String| a + &b),
                Watch::default(),
            )
        };
        let worker = make();
        let parent = make();
        for chunk in [2, 0, 1] {
            worker.run_chunk(chunk, None).unwrap();
            parent
                .accept_chunk(chunk, &worker.encode_chunk(chunk).unwrap())
                .unwrap();
        }
        assert_eq!(parent.into_result().unwrap(), "abcde");
    }
}
