//! [`Recording`]: a job that appends each chunk to the journal as it
//! finishes, in the process that called the pool (never in a forked
//! worker), on the rank that holds the journal (never on the others).
//!
//! A chunk is appended when it is done here: run here (its results are
//! encoded with the job's `encode_chunk`) or accepted from another process
//! (the bytes that came are appended as they are, or, for results that
//! came partly in blocks (`Received`), encoded from the results the job
//! took them over as; an MPI rank sends each
//! chunk to rank 0 as it finishes, see [`ChunkJob::records_at_root`]). A
//! chunk with a failed
//! item (a job that keeps going records the failure as that item's
//! result) is not appended: the next run runs it again.

use super::Journal;
use super::append::WriteFailure;
use crate::error::Error;
use crate::job::{ChunkJob, EncodedChunk, Received, TaskLimits};
use crate::plan::ChunkPlan;
use crate::sync::LockUnpoisoned;
use std::sync::atomic::AtomicUsize;

/// A job whose finished chunks go to a journal; see the module docs.
pub(crate) struct Recording<'a> {
    job: &'a dyn ChunkJob,
    /// `None` where this process does not write (an MPI rank other than 0).
    journal: Option<&'a Journal>,
    call: u128,
    digests: &'a [u128],
    /// The first error writing the journal: the call fails with it.
    write_error: WriteFailure,
}

impl<'a> Recording<'a> {
    pub(crate) fn new(
        job: &'a dyn ChunkJob,
        journal: Option<&'a Journal>,
        call: u128,
        digests: &'a [u128],
    ) -> Recording<'a> {
        Recording {
            job,
            journal,
            call,
            digests,
            write_error: WriteFailure::default(),
        }
    }

    /// The first error writing the journal, if any.
    pub(crate) fn write_error(&self) -> Option<Error> {
        self.write_error.lock_unpoisoned().clone()
    }

    /// Appends chunk `chunk`'s results, `bytes` if given, else encoded
    /// here (and left for the thread writing to the file, if one is: see
    /// `append.rs`); nothing in a worker process, or for a chunk with a
    /// failure. After a failure to write (this record or one left
    /// earlier), a job that stops at the first failure stops.
    fn append(&self, chunk: usize, bytes: Option<&[u8]>) {
        let Some(journal) = self.journal else {
            return;
        };
        if crate::job::inside_worker_process() || self.job.chunk_has_failures(chunk) {
            return;
        }
        let (call, inputs) = (self.call, self.digests[chunk]);
        let written = match bytes {
            Some(bytes) => journal.append(call, chunk, inputs, bytes),
            None => self.job.encode_chunk(chunk).and_then(|bytes| {
                journal.append_or_leave(call, chunk, inputs, bytes, &self.write_error)
            }),
        };
        if let Err(error) = written {
            self.write_error.lock_unpoisoned().get_or_insert(error);
        }
        // Nothing more can be kept: stop, and say why.
        if let Some(error) = self.write_error()
            && !self.job.keeps_going()
        {
            self.job.record_failure(error);
        }
    }
}

impl ChunkJob for Recording<'_> {
    fn plan(&self) -> ChunkPlan {
        self.job.plan()
    }

    fn run_chunk(&self, chunk: usize, current_item: Option<&AtomicUsize>) -> Result<(), Error> {
        self.job.run_chunk(chunk, current_item)?;
        if !crate::job::inside_worker_process() {
            self.append(chunk, None);
        }
        Ok(())
    }

    fn encode_chunk_in_pieces(&self, chunk: usize) -> Result<EncodedChunk<'_>, Error> {
        self.job.encode_chunk_in_pieces(chunk)
    }

    fn accept_chunk(&self, chunk: usize, bytes: &[u8]) -> Result<(), Error> {
        self.job.accept_chunk(chunk, bytes)?;
        self.append(chunk, Some(bytes));
        Ok(())
    }

    fn accept_received(&self, chunk: usize, received: Received<'_>) -> Result<(), Error> {
        if !received.has_blocks() {
            return self.accept_chunk(chunk, received.bytes());
        }
        // The job takes the blocks over as its results; the record is
        // encoded from them (the same bytes), so nothing is joined first.
        self.job.accept_received(chunk, received)?;
        self.append(chunk, None);
        Ok(())
    }

    fn record_failure(&self, error: Error) {
        self.job.record_failure(error);
    }

    fn keeps_going(&self) -> bool {
        self.job.keeps_going()
    }

    fn should_stop(&self) -> bool {
        self.job.should_stop()
    }

    fn stop(&self) {
        self.job.stop();
    }

    fn is_chunk_done(&self, chunk: usize) -> bool {
        self.job.is_chunk_done(chunk)
    }

    fn chunk_has_failures(&self, chunk: usize) -> bool {
        self.job.chunk_has_failures(chunk)
    }

    fn limits(&self) -> TaskLimits {
        self.job.limits()
    }

    fn gathers_to_root(&self) -> bool {
        self.job.gathers_to_root()
    }

    fn release_chunk(&self, chunk: usize) {
        self.job.release_chunk(chunk);
    }

    fn hold_progress(&self, hold: bool) {
        self.job.hold_progress(hold);
    }

    fn records_at_root(&self) -> bool {
        true
    }
}
