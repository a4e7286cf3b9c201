//! [`StreamJournal`]: a journal's side of an `imap` stream. Chunk `seq` of
//! the stream is the journal's chunk `seq`: read back before it would be
//! submitted, if the journal holds it for the same inputs, and recorded
//! when its results come back (unless an item failed).

use super::{CallReport, Journal, identity};
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
    /// Only rank 0 reads and writes (MPI); elsewhere nothing is read back.
    rank: usize,
    codec: Codec<Result<O, Error>>,
    /// The inputs' digest of each chunk submitted and not yet recorded.
    digests: HashMap<u64, u128>,
    read_back: usize,
    ran: usize,
    finished: bool,
}

impl<O: Serialize + DeserializeOwned> StreamJournal<O> {
    pub(crate) fn new(journal: Journal, call: u128, rank: usize) -> Self {
        StreamJournal {
            journal,
            call,
            rank,
            codec: Codec::results(),
            digests: HashMap::new(),
            read_back: 0,
            ran: 0,
            finished: false,
        }
    }
}

impl<T: Serialize, O: Serialize + DeserializeOwned> StreamRecords<T, O> for StreamJournal<O> {
    fn read_back(&mut self, seq: u64, start: usize, items: &[T]) -> Option<Vec<Result<O, Error>>> {
        let digest = identity::digest_items(items).ok()?;
        self.digests.insert(seq, digest);
        if self.rank != 0 {
            return None;
        }
        let entry = self.journal.lookup(self.call, seq, digest).ok()??;
        let bytes = self.journal.read(&entry).ok()?;
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
