//! [`StreamJournal`]: a journal's side of an `imap` stream. Chunk `seq` of
//! the stream is the journal's chunk `seq`: read back before it would be
//! submitted, if the journal holds it for the same inputs, and recorded
//! when its results come back (unless an item failed).
//!
//! On several MPI ranks every rank must submit the same chunks, so every
//! rank must read back the same ones: when the stream opens, rank 0 reads
//! the call's records and shares them with every rank, and each rank
//! decides from those (and its own items, the same on every rank).

use super::{CallReport, Journal, identity, share};
use crate::backend::Driver;
use crate::error::{Error, UNKNOWN_TOTAL};
use crate::job::codec::Codec;
use crate::stream::StreamRecords;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The journal of one stream; see the module docs.
pub(crate) struct StreamJournal<O> {
    journal: Journal,
    call: u128,
    /// Only rank 0 writes (MPI).
    rank: usize,
    /// On several ranks: the call's records as rank 0 shared them when the
    /// stream opened, by chunk (inputs' digest, results), taken as read.
    shared: Option<HashMap<u64, (u128, Vec<u8>)>>,
    codec: Codec<Result<O, Error>>,
    /// The inputs' digest of each chunk submitted and not yet recorded.
    digests: HashMap<u64, u128>,
    read_back: usize,
    ran: usize,
    finished: bool,
}

impl<O: Serialize + DeserializeOwned> StreamJournal<O> {
    /// The journal of a stream about to open on `driver` (collective on
    /// several MPI ranks: rank 0 shares the call's records).
    pub(crate) fn new(journal: Journal, call: u128, driver: &dyn Driver) -> Result<Self, Error> {
        let capabilities = driver.capabilities();
        let shared = if capabilities.ranks > 1 {
            Some(share_records(&journal, call, capabilities.rank, driver)?)
        } else {
            None
        };
        Ok(StreamJournal {
            journal,
            call,
            rank: capabilities.rank,
            shared,
            codec: Codec::results(),
            digests: HashMap::new(),
            read_back: 0,
            ran: 0,
            finished: false,
        })
    }

    /// The recorded results of chunk `seq`, if held for inputs `digest`.
    fn recorded(&mut self, seq: u64, digest: u128) -> Option<Vec<u8>> {
        match &mut self.shared {
            Some(shared) => match shared.remove(&seq) {
                Some((inputs, bytes)) if inputs == digest => Some(bytes),
                _ => None,
            },
            None => {
                let entry = self.journal.lookup(self.call, seq, digest).ok()??;
                self.journal.read(&entry).ok()
            }
        }
    }
}

/// Rank 0's records of call `call`, on every rank (collective; see
/// `share.rs`), by chunk.
fn share_records(
    journal: &Journal,
    call: u128,
    rank: usize,
    driver: &dyn Driver,
) -> Result<HashMap<u64, (u128, Vec<u8>)>, Error> {
    let found = if rank == 0 {
        journal.records_of(call)
    } else {
        Ok(Vec::new())
    };
    let shared = share::share_records(journal, driver, found)?;
    Ok(shared
        .records(journal)?
        .map(|(chunk, inputs, results)| (chunk as u64, (inputs, results.to_vec())))
        .collect())
}

impl<T: Serialize, O: Serialize + DeserializeOwned> StreamRecords<T, O> for StreamJournal<O> {
    fn read_back(&mut self, seq: u64, start: usize, items: &[T]) -> Option<Vec<Result<O, Error>>> {
        let digest = identity::digest_items(items).ok()?;
        self.digests.insert(seq, digest);
        let bytes = self.recorded(seq, digest)?;
        let values = self
            .codec
            .decode_checked(&bytes, (start, UNKNOWN_TOTAL), items.len())
            .ok()?;
        self.digests.remove(&seq);
        self.read_back += 1;
        Some(values)
    }

    fn record(&mut self, seq: u64, start: usize, results: &[Result<O, Error>]) {
        let Some(digest) = self.digests.remove(&seq) else {
            return;
        };
        self.ran += 1;
        if self.rank != 0
            || crate::job::inside_worker_process()
            || results.iter().any(Result::is_err)
        {
            return;
        }
        if let Ok(bytes) = self
            .codec
            .encode_checked(results, (start, UNKNOWN_TOTAL), None)
        {
            // A chunk that cannot be recorded runs again next time.
            let _ = self.journal.append(self.call, seq as usize, digest, &bytes);
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let _ = self.journal.finish(CallReport {
            chunks: self.read_back + self.ran,
            read_back: self.read_back,
            ran: self.ran,
        });
    }
}
