//! Records that rank 0 reads, on every rank: a batch call's chunks found
//! in the journal, or a stream's records when it opens. Collective on
//! several MPI ranks, so rank 0 shares even when it cannot read the
//! journal (nothing, then its error), and leaves out a record it cannot
//! read (that chunk runs again): returning early there would leave the
//! other ranks waiting.

use super::{Entry, Journal};
use crate::backend::Driver;
use crate::backend::wire::{self, FrameKind};
use crate::error::Error;

/// What rank 0 shared: one frame per record, its inputs' digest (16 bytes)
/// before its results.
pub(crate) struct SharedRecords {
    frames: Vec<u8>,
}

/// Rank 0's `found` records of `journal`, read and shared with every rank
/// through `driver` (`found` is ignored elsewhere).
pub(crate) fn share_records(
    journal: &Journal,
    driver: &dyn Driver,
    found: Result<Vec<(usize, Entry)>, Error>,
) -> Result<SharedRecords, Error> {
    let mut frames = Vec::new();
    let failure = match found {
        Ok(found) => {
            for (chunk, entry) in found {
                if let Ok(results) = journal.read(&entry) {
                    let body = [&entry.inputs.to_le_bytes()[..], &results].concat();
                    wire::push(&mut frames, FrameKind::Results, chunk, &body);
                }
            }
            None
        }
        Err(error) => Some(error),
    };
    let frames = driver.share_from_root(frames)?;
    match failure {
        Some(error) => Err(error),
        None => Ok(SharedRecords { frames }),
    }
}

impl SharedRecords {
    /// Each record as (chunk, inputs' digest, results); `Err` if the
    /// bytes came cut short.
    pub(crate) fn records(
        &self,
        journal: &Journal,
    ) -> Result<impl Iterator<Item = (usize, u128, &[u8])>, Error> {
        let frames = wire::split(&self.frames)
            .ok_or_else(|| Error::journal(journal.path(), "was shared cut short"))?;
        Ok(frames.into_iter().filter_map(|(header, body)| {
            let (inputs, results) = body.split_first_chunk::<16>()?;
            Some((header.id, u128::from_le_bytes(*inputs), results))
        }))
    }
}
