//! The type-erased jobs that backends run chunk by chunk.
//!
//! `Pool` turns a typed call into a value that implements [`ChunkJob`] (a batch
//! call: `map`, `map_results`, `map_init`, `map_reduce`) or [`StreamJob`] (the
//! function of a stream or session); backends see only `&dyn ChunkJob`,
//! `Arc<dyn StreamJob>` and chunk indices. This module owns everything that
//! touches the user's types:
//!
//! | file | owns |
//! |---|---|
//! | `book.rs` | per-chunk states, the failure record, and [`ChunkClaim`](book::ChunkClaim): the one way to take a chunk's inputs or write its outputs |
//! | `slots.rs` | the storage behind a claim: inputs moved out one at a time, output slots written once |
//! | `codec/` | how values travel between processes (postcard, and a one-copy path for arrays of bytes and floats), chosen when a job is made |
//! | `unwind.rs` | the panic policy: a caught panic becomes an [`Error`] naming its item, in one function; the panic hook and its opt-out |
//! | `map.rs` | `MapJob`: `map`, `map_results`, `map_init` |
//! | `reduce.rs` | `ReduceJob`: `map_reduce` |
//! | `stream.rs` | [`StreamJob`], [`StreamChunk`], [`ChunkResults`]: chunks of a stream, in process or encoded for another |
//!
//! Results cross process boundaries encoded with postcard; a failure that
//! happens outside a task (a worker died, a task timed out) is reported to
//! the job by the backend with [`ChunkJob::record_failure`].

mod book;
pub(crate) mod codec;
pub(crate) mod map;
pub(crate) mod reduce;
mod slots;
mod stream;
pub(crate) mod unwind;

pub(crate) use stream::TypedStreamJob;
#[cfg_attr(not(any(unix, feature = "mpi")), allow(unused_imports))]
pub(crate) use stream::{ChunkResults, ChunkSpan, StreamChunk, StreamJob};

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::plan::ChunkPlan;
use crate::progress::Meter;
#[cfg(unix)]
pub(crate) use codec::{Block, join_blocks};
pub(crate) use codec::{EncodedChunk, Received};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The work of one batch call, as the crate's backends see it: a
/// [`ChunkPlan`] and operations on chunk indices. Third-party backends see
/// the smaller [`backend::Job`](crate::backend::Job) over it.
///
/// The contract a backend keeps when calling these methods is written down in
/// the [`backend`](crate::backend) module.
pub(crate) trait ChunkJob: Sync {
    /// How the items are cut into chunks.
    fn plan(&self) -> ChunkPlan;

    /// Runs chunk `chunk` on the calling thread, in item order.
    ///
    /// Before each item the item's index is stored in `current_item`, if
    /// given, so a supervisor in another process can tell which item a
    /// worker died on. A panic in the user's function is caught, recorded
    /// (see [`record_failure`](ChunkJob::record_failure)) and returned as `Err`.
    /// Running a chunk that is not pending is an `Err` too.
    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error>;

    /// The results of a chunk this job has run, encoded for another process.
    fn encode_chunk(&self, chunk: usize) -> Result<Vec<u8>, Error> {
        self.encode_chunk_in_pieces(chunk)
            .map(EncodedChunk::into_bytes)
    }

    /// [`encode_chunk`](ChunkJob::encode_chunk)'s bytes left in pieces, large
    /// arrays of bytes and floats borrowed from the results instead of
    /// copied: for a backend that writes results to a socket or pipe.
    fn encode_chunk_in_pieces(&self, chunk: usize) -> Result<EncodedChunk<'_>, Error>;

    /// Accepts the encoded results of a chunk that ran elsewhere (the output
    /// of [`encode_chunk`](ChunkJob::encode_chunk) in another copy of this job).
    /// The chunk must still be pending here.
    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error>;

    /// [`accept_chunk`](ChunkJob::accept_chunk) of results received with
    /// blocks in them (see [`Received`]). A job whose results can take the
    /// blocks over does; any other accepts the bytes joined.
    fn accept_received(&self, chunk: usize, received: Received<'_>) -> Result<(), Error> {
        if received.has_blocks() {
            self.accept_chunk(chunk, &received.joined())
        } else {
            self.accept_chunk(chunk, received.bytes())
        }
    }

    /// Records that a task failed outside [`run_chunk`](ChunkJob::run_chunk): its
    /// worker crashed, timed out, or reported a failure from another process.
    ///
    /// On a fail-fast job (`map`, `map_reduce`) this stops the job. On a job
    /// that [keeps going](ChunkJob::keeps_going) (`map_results`) the failure becomes
    /// that item's result: the item is skipped when its chunk is run again.
    fn record_failure(&self, error: Error);

    /// True for `map_results`: the backend runs every chunk despite failures and
    /// re-runs a chunk whose worker died, skipping the items recorded as
    /// failed.
    fn keeps_going(&self) -> bool;

    /// True once a fail-fast job has a failure or the call was cancelled:
    /// claim no more chunks.
    fn should_stop(&self) -> bool;

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Stops the job because another process running the same call failed
    /// or was cancelled (the MPI backend's ranks); that failure arrives
    /// later through [`record_failure`](ChunkJob::record_failure). Chunks running
    /// here end before their next item (or block of fast items), and
    /// [`should_stop`](ChunkJob::should_stop) turns true.
    fn stop(&self);

    /// True once chunk `chunk` has results here (run here or accepted).
    fn is_chunk_done(&self, chunk: usize) -> bool;

    /// True if an item of chunk `chunk` failed: a failure recorded against
    /// it, or (a job that keeps going) an output that is a failure. A
    /// journal does not record such a chunk.
    fn chunk_has_failures(&self, chunk: usize) -> bool;

    /// The per-task limits of this call (timeout, retries), for backends
    /// that can enforce them.
    fn limits(&self) -> TaskLimits;

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// True for [`map_gather`](crate::Pool::map_gather): only rank 0 needs
    /// every result. A backend with several ranks sends the results there
    /// and nowhere else; on the other ranks the job stays incomplete, and
    /// that is expected. A backend of one rank ignores it.
    fn gathers_to_root(&self) -> bool {
        false
    }

    /// Holds the progress bar's count back while chunks are read back from
    /// a journal (`true`), then adds them in one step (`false`).
    fn hold_progress(&self, hold: bool) {
        let _ = hold;
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// True for a journaled call: rank 0 writes the journal, so a backend
    /// with several ranks sends each chunk there as soon as it finishes,
    /// not at the end of the call; a rank killed mid-call then loses only
    /// the chunks it was running. A backend of one rank ignores it.
    fn records_at_root(&self) -> bool {
        false
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Drops the results of done chunk `chunk`, encoded and sent to another
    /// process, which this one will not need (a rank other than 0 in a
    /// call that [gathers to the root](ChunkJob::gathers_to_root)): the rank
    /// then holds only encoded bytes. The chunk is no longer done here. A
    /// job without droppable results ignores it.
    fn release_chunk(&self, chunk: usize) {
        let _ = chunk;
    }
}

/// What a worker's published current item says while it encodes and
/// sends its chunk's results, after every task of the chunk ran: a worker
/// that dies then died on no task.
pub(crate) const SENDING_RESULTS: usize = usize::MAX - 1;

/// Per-task limits of a call, set with
/// [`PoolBuilder::timeout`](crate::PoolBuilder::timeout) and
/// [`PoolBuilder::retries`](crate::PoolBuilder::retries). Only a backend
/// whose [capabilities](crate::backend::Capabilities::can_time_out) say it
/// can stop a running task gets a timeout; retries matter only where a
/// worker can die without taking the caller with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskLimits {
    /// Kill a task still running after this long.
    pub timeout: Option<Duration>,
    /// Run a task whose worker crashed or timed out again, this many times.
    pub retries: u32,
    /// Replace a worker process after it has run this many tasks (checked
    /// between chunks).
    pub max_tasks_per_worker: Option<usize>,
}

// --- nested-use detection --------------------------------------------------

/// Set for the whole life of a forked worker process.
static INSIDE_WORKER_PROCESS: AtomicBool = AtomicBool::new(false);

/// True if the caller is running inside a pool task (on a worker thread, the
/// serial backend, or in a worker process). A pool used there runs serially.
pub(crate) fn inside_task() -> bool {
    unwind::inside_task_thread() || INSIDE_WORKER_PROCESS.load(Ordering::Relaxed)
}

/// True in a forked worker process.
pub(crate) fn inside_worker_process() -> bool {
    INSIDE_WORKER_PROCESS.load(Ordering::Relaxed)
}

/// Marks this process as a pool worker process (called in a forked child).
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn mark_worker_process() {
    INSIDE_WORKER_PROCESS.store(true, Ordering::Relaxed);
}

// --- what watches a call ----------------------------------------------------

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

    /// See [`ChunkJob::hold_progress`].
    pub(crate) fn hold_progress(&self, hold: bool) {
        self.meter.hold(hold);
    }
}

#[cfg(test)]
mod tests;
