//! Appending records, and the thread that syncs them. Every write to the
//! file is made by the thread that holds the journal's lock
//! (`Shared::state`), at the end of the file.
//!
//! A worker that finishes a chunk of small results while another thread
//! is writing does not wait for the file: it leaves its record (already
//! encoded and checksummed) in `Shared::waiting` and goes on to its next
//! chunk, and the thread that holds the file writes it before letting
//! go. Waiting for the file meant sleeping and being woken, which on a
//! call of a million tiny items cost more than the writes themselves.
//!
//! No record is left behind: a thread that leaves one then takes the file
//! if it has become free, the thread that held the file looks again once
//! it has let go, and a call writes whatever is still waiting before it
//! returns ([`Journal::settle`]). At most [`MAX_WAITING`] records wait at
//! once: a process killed meanwhile loses those chunks as it loses the
//! ones running, and they run again.

use super::{Entry, Journal, SYNC_INTERVAL, Shared, State, file};
use crate::error::Error;
use crate::sync::LockUnpoisoned;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// At most this many records wait for the file at once.
const MAX_WAITING: usize = 2;

/// Only records of at most this many bytes are left to wait; the thread
/// of a larger one writes it (its write takes long enough that waiting
/// for the file first adds little, and its memory is not held longer).
const MAX_WAITING_BYTES: usize = 1 << 20;

/// Where the failure to write a record left waiting is reported: the
/// first such error of a call.
pub(crate) type WriteFailure = Arc<Mutex<Option<Error>>>;

/// A record left for the thread that holds the file.
pub(crate) struct Waiting {
    /// Call, chunk and inputs digest.
    key: (u128, u64, u128),
    head: Vec<u8>,
    results: Vec<u8>,
    failure: WriteFailure,
}

impl Journal {
    /// Appends the results of chunk `chunk` of call `call`, whose inputs
    /// had digest `inputs`, waiting for the file if another thread is
    /// writing to it; syncs if the last sync is [`SYNC_INTERVAL`] old.
    pub(crate) fn append(
        &self,
        call: u128,
        chunk: usize,
        inputs: u128,
        results: &[u8],
    ) -> Result<(), Error> {
        let head = file::record_head(call, chunk as u64, inputs, results);
        let state = self.shared.state.lock_unpoisoned();
        self.write_and_let_go(state, (call, chunk as u64, inputs), &head, results)
    }

    /// [`append`](Journal::append), except that if another thread is
    /// writing to the file, a small record is left for it to write (see
    /// the module docs) and this returns at once; a failure to write it
    /// then goes to `failure`.
    pub(crate) fn append_or_leave(
        &self,
        call: u128,
        chunk: usize,
        inputs: u128,
        results: Vec<u8>,
        failure: &WriteFailure,
    ) -> Result<(), Error> {
        let shared = &*self.shared;
        let key = (call, chunk as u64, inputs);
        let head = file::record_head(call, chunk as u64, inputs, &results);
        let state = match shared.state.try_lock_unpoisoned() {
            Some(state) => state,
            None => {
                if results.len() <= MAX_WAITING_BYTES {
                    let mut waiting = shared.waiting.lock_unpoisoned();
                    if waiting.len() < MAX_WAITING {
                        waiting.push(Waiting {
                            key,
                            head,
                            results,
                            failure: Arc::clone(failure),
                        });
                        drop(waiting);
                        // The thread that held the file may have let go
                        // before it could see this record.
                        self.write_left_waiting();
                        return Ok(());
                    }
                }
                shared.state.lock_unpoisoned()
            }
        };
        self.write_and_let_go(state, key, &head, &results)
    }

    /// Writes every record still waiting for the file: a call does this
    /// before it returns, so that its chunks are all in the file.
    pub(crate) fn settle(&self) -> Result<(), Error> {
        let mut state = self.shared.state.lock_unpoisoned();
        write_waiting(&self.shared.path, &self.shared.waiting, &mut state);
        self.keep_synced(&mut state)
    }

    /// Writes one record with the file held (`state`), then the records
    /// left waiting meanwhile, keeps them synced, lets the file go, and
    /// writes any left just before that. The result is that of the first
    /// record and the sync.
    fn write_and_let_go(
        &self,
        mut state: MutexGuard<'_, State>,
        key: (u128, u64, u128),
        head: &[u8],
        results: &[u8],
    ) -> Result<(), Error> {
        let shared = &*self.shared;
        let written = write(&shared.path, &mut state, key, head, results);
        write_waiting(&shared.path, &shared.waiting, &mut state);
        let synced = self.keep_synced(&mut state);
        drop(state);
        self.write_left_waiting();
        written.and(synced)
    }

    /// After the file was let go: while records wait and the file is
    /// free, takes it and writes them. If it is not free, whoever holds
    /// it writes them.
    fn write_left_waiting(&self) {
        let shared = &*self.shared;
        while !shared.waiting.lock_unpoisoned().is_empty() {
            let Some(mut state) = shared.state.try_lock_unpoisoned() else {
                return;
            };
            write_waiting(&shared.path, &shared.waiting, &mut state);
            // A failed sync is tried again by the next append, the
            // flusher or the drop (the file stays marked unsynced).
            let _ = self.keep_synced(&mut state);
        }
    }

    /// After records were written: syncs if the last sync is
    /// [`SYNC_INTERVAL`] old, else makes sure a thread will sync them
    /// within that.
    fn keep_synced(&self, state: &mut State) -> Result<(), Error> {
        let path = &self.shared.path;
        let Some(open) = state.open.as_mut().filter(|open| open.unsynced) else {
            return Ok(());
        };
        if open.last_sync.elapsed() >= SYNC_INTERVAL {
            open.sync(path)?;
        } else if !state.flusher {
            // Synced within SYNC_INTERVAL by a thread, not by the call.
            state.flusher = true;
            if !start_flusher(Arc::downgrade(&self.shared)) {
                state.flusher = false;
                if let Some(open) = state.open.as_mut() {
                    open.sync(path)?;
                }
            }
        }
        Ok(())
    }
}

/// Starts the thread (`parpool-journal`) that syncs the journal every
/// [`SYNC_INTERVAL`] while it has unsynced records, and ends when it has
/// none or the journal is gone (first writing any records left
/// waiting). False if no thread could start.
pub(super) fn start_flusher(shared: Weak<Shared>) -> bool {
    std::thread::Builder::new()
        .name("parpool-journal".to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(SYNC_INTERVAL);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut state = shared.state.lock_unpoisoned();
                write_waiting(&shared.path, &shared.waiting, &mut state);
                match state.open.as_mut() {
                    Some(open) if open.unsynced => {
                        // A failed sync is tried again at the next turn,
                        // and by `Journal::sync` or the drop.
                        let _ = open.sync(&shared.path);
                    }
                    _ => {
                        state.flusher = false;
                        return;
                    }
                }
            }
        })
        .is_ok()
}

/// Writes the records waiting, with the file held (`state`); a failure
/// goes to the record's call.
pub(super) fn write_waiting(path: &Path, waiting: &Mutex<Vec<Waiting>>, state: &mut State) {
    loop {
        let records = std::mem::take(&mut *waiting.lock_unpoisoned());
        if records.is_empty() {
            return;
        }
        for record in records {
            if let Err(error) = write(path, state, record.key, &record.head, &record.results) {
                record.failure.lock_unpoisoned().get_or_insert(error);
            }
        }
    }
}

/// Writes the record of chunk `chunk` of call `call` (inputs `inputs`):
/// `head` (from `file::record_head`) and `results`, at the end of the
/// file held (`state`).
fn write(
    path: &Path,
    state: &mut State,
    (call, chunk, inputs): (u128, u64, u128),
    head: &[u8],
    results: &[u8],
) -> Result<(), Error> {
    let open = state
        .open
        .as_mut()
        .ok_or_else(|| Error::journal(path, "is not open on this rank"))?;
    let at = open.end;
    if let Err(error) = file::write_at(&open.file, &[head, results], at) {
        // Leave no half record behind a good one.
        let _ = open.file.set_len(at);
        return Err(Error::journal_io(path, "append to", error));
    }
    let offset = at + head.len() as u64;
    open.end = offset + results.len() as u64;
    open.index.insert(
        (call, chunk),
        Entry {
            inputs,
            offset,
            len: results.len() as u64,
        },
    );
    open.unsynced = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A fresh journal in a directory of its own, removed by the caller.
    fn fresh(name: &str) -> (std::path::PathBuf, Journal) {
        let dir =
            std::env::temp_dir().join(format!("parpool-append-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let journal = Journal::open(dir.join("j.journal")).unwrap();
        (dir, journal)
    }

    fn results(chunk: usize) -> Vec<u8> {
        (0..100 + chunk % 50).map(|i| (i + chunk) as u8).collect()
    }

    fn recorded(journal: &Journal) -> usize {
        let state = journal.shared.state.lock_unpoisoned();
        state.open.as_ref().unwrap().index.len()
    }

    #[test]
    fn records_left_by_busy_threads_are_all_written_and_read_back() {
        let (dir, journal) = fresh("busy");
        let failure = WriteFailure::default();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (journal, failure) = (&journal, &failure);
                scope.spawn(move || {
                    for chunk in (thread..2000).step_by(4) {
                        journal
                            .append_or_leave(7, chunk, chunk as u128, results(chunk), failure)
                            .unwrap();
                    }
                });
            }
        });
        journal.settle().unwrap();
        assert!(failure.lock_unpoisoned().is_none());
        assert_eq!(recorded(&journal), 2000);
        let path = journal.path().to_path_buf();
        drop(journal);
        let again = Journal::open(&path).unwrap();
        let records = again.records_of(7).unwrap();
        assert_eq!(records.len(), 2000);
        for (chunk, entry) in records {
            assert_eq!(entry.inputs, chunk as u128);
            assert_eq!(again.read(&entry).unwrap(), results(chunk));
        }
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn at_most_two_records_wait_and_the_next_waits_for_the_file() {
        let (dir, journal) = fresh("bound");
        let failure = WriteFailure::default();
        let (done, returned) = mpsc::channel();
        let held = journal.shared.state.lock_unpoisoned();
        std::thread::scope(|scope| {
            let (journal, failure) = (&journal, &failure);
            scope.spawn(move || {
                for chunk in 0..3 {
                    journal
                        .append_or_leave(9, chunk, 0, results(chunk), failure)
                        .unwrap();
                    done.send(chunk).unwrap();
                }
            });
            // Two are left while the file is held; the third waits for it.
            for chunk in 0..2 {
                assert_eq!(returned.recv_timeout(Duration::from_secs(60)), Ok(chunk));
            }
            assert!(returned.recv_timeout(Duration::from_millis(300)).is_err());
            assert_eq!(journal.shared.waiting.lock_unpoisoned().len(), MAX_WAITING);
            drop(held);
            assert_eq!(returned.recv_timeout(Duration::from_secs(60)), Ok(2));
        });
        // The thread that wrote its own record wrote those waiting too.
        assert!(journal.shared.waiting.lock_unpoisoned().is_empty());
        assert_eq!(recorded(&journal), 3);
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_record_left_that_cannot_be_written_fails_its_call() {
        let (dir, journal) = fresh("failure");
        let failure = WriteFailure::default();
        let mut held = journal.shared.state.lock_unpoisoned();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                journal
                    .append_or_leave(3, 0, 0, results(0), &failure)
                    .unwrap();
            });
        });
        // The file goes away before the record is written.
        let open = held.open.take();
        drop(held);
        journal.settle().unwrap();
        let error = failure.lock_unpoisoned().clone().expect("the failure kept");
        assert!(error.to_string().contains("j.journal"), "{error}");
        journal.shared.state.lock_unpoisoned().open = open;
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
