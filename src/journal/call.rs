//! [`JournalCall`]: one journaled call, from reading back the chunks the
//! journal holds to appending the ones that run.

use super::record::Recording;
use super::share::share_records;
use super::{CallReport, Entry, Journal};
use crate::backend::Driver;
use crate::error::Error;
use crate::job::ChunkJob;

/// A call about to run with a journal: its id, and the digest of each
/// chunk's inputs.
pub(crate) struct JournalCall<'a> {
    pub(crate) journal: &'a Journal,
    pub(crate) call: u128,
    pub(crate) digests: Vec<u128>,
}

impl JournalCall<'_> {
    /// Runs `job` on `driver` through `execute`: first the chunks the
    /// journal holds for this call, with these inputs, are accepted into
    /// the job (on MPI, rank 0 reads them and every rank accepts them);
    /// then, if any chunk is left, `execute` runs the job with every
    /// chunk that finishes appended. A record that no longer decodes into
    /// the job is left for its chunk to run again.
    pub(crate) fn run(
        &self,
        driver: &dyn Driver,
        job: &dyn ChunkJob,
        execute: impl FnOnce(&dyn ChunkJob) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let capabilities = driver.capabilities();
        let rank = capabilities.rank;
        // Not `?`: on MPI, rank 0 shares even a failure (see `share.rs`).
        let found = self.journal.begin(self.call, rank, &self.digests);
        // The progress bar starts at what was read back.
        job.hold_progress(true);
        let read_back = self.read_back(driver, job, found);
        job.hold_progress(false);
        let read_back = read_back?;
        let chunks = job.plan().chunk_count();
        let writer = (rank == 0).then_some(self.journal);
        let recording = Recording::new(job, writer, self.call, &self.digests);
        let outcome = if read_back < chunks {
            execute(&recording)
        } else {
            Ok(())
        };
        // Records left for another thread to write are in the file now.
        let settled = writer.map_or(Ok(()), Journal::settle);
        // A call that did not stop ran every chunk it did not read back
        // (on MPI's other ranks a `map_gather` keeps none of them); one
        // that failed or was cancelled ran those done here.
        let done = match outcome {
            Ok(()) if !job.should_stop() => chunks,
            _ => (0..chunks)
                .filter(|&chunk| job.is_chunk_done(chunk))
                .count(),
        };
        let finished = self.journal.finish(CallReport {
            chunks,
            read_back,
            ran: done.saturating_sub(read_back),
        });
        outcome?;
        finished?;
        settled?;
        match recording.write_error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Accepts the chunks `found` in the journal into `job`; returns how
    /// many were accepted. On MPI, rank 0 reads them and every rank
    /// accepts them (see `share.rs`).
    fn read_back(
        &self,
        driver: &dyn Driver,
        job: &dyn ChunkJob,
        found: Result<Vec<(usize, Entry)>, Error>,
    ) -> Result<usize, Error> {
        let mut read_back = 0;
        if driver.capabilities().ranks > 1 {
            let shared = share_records(self.journal, driver, found)?;
            for (chunk, _, results) in shared.records(self.journal)? {
                read_back += usize::from(job.accept_chunk(chunk, results).is_ok());
            }
        } else {
            for (chunk, entry) in found? {
                let results = self.journal.read(&entry)?;
                read_back += usize::from(job.accept_chunk(chunk, &results).is_ok());
            }
        }
        Ok(read_back)
    }
}
