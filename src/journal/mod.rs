//! [`Journal`]: the durable record of finished chunks, so that a killed run
//! resumes where it stopped.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Journal`]: opening and locking the file, looking chunks up, syncing on demand, compaction, the report of the last call |
//! | `file.rs` | the file format: header, checksummed records, recovery on open |
//! | `identity.rs` | what makes two calls the same call, and the digest of a chunk's inputs |
//! | `append.rs` | appending records (a record finished while another is written is left for that thread), the sync policy and the background sync thread |
//! | `record.rs` | the job adapter that appends each chunk as it finishes |
//! | `call.rs` | one journaled call: read back, then run with recording |
//! | `stream.rs` | a journaled `imap`: each stream chunk read back or recorded |
//! | `share.rs` | the records rank 0 reads, shared with every MPI rank |
//! | `system.rs` | the file lock, the directory, the launcher's rank |
//!
//! Read back through a job's `accept_chunk`, written from its
//! `encode_chunk` (or the bytes a worker sent): the journal never sees the
//! user's types.

mod append;
pub(crate) mod call;
mod file;
pub(crate) mod identity;
pub(crate) mod record;
mod share;
pub(crate) mod stream;
mod system;

use crate::error::Error;
use crate::sync::LockUnpoisoned;
pub(crate) use file::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use system::{check_directory, launcher_rank, lock, sync_directory};

/// How long a lock held by someone else is waited for before the journal
/// counts as in use (see `lock`).
pub(super) const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// How long appended records may wait for an `fdatasync`: a thread of the
/// journal's syncs at most once per this interval while records come in
/// (group commit), and the journal syncs when it is dropped.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// A journal of finished chunks, for [`Pool::with_journal`](crate::Pool::with_journal):
/// a killed run, run again with the same journal, reads back every chunk
/// that finished and runs only the rest, with the same bits as a run that
/// was never interrupted.
///
/// ```
/// # fn main() -> Result<(), parpool::Error> {
/// # let dir = std::env::temp_dir().join(format!("parpool-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("squares.journal");
/// use parpool::{Journal, Pool};
///
/// let pool = Pool::new();
/// // The program's one call: the same place in the program on every run.
/// let run = |journal: &Journal| pool.with_journal(journal).map(|x: u64| x * x, 0..1000u64);
/// let squares = {
///     let journal = Journal::open(&path)?; // created, or reopened after a kill
///     run(&journal)?
/// };
/// // Run again (say, after the first run was killed): every chunk is read back.
/// let journal = Journal::open(&path)?;
/// let again = run(&journal)?;
/// assert_eq!(again, squares);
/// let report = journal.last_call().unwrap();
/// assert_eq!((report.read_back, report.ran), (report.chunks, 0));
/// # drop(journal);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
///
/// # What makes two calls the same call
///
/// A chunk is read back only into the same call: the same method (`map`,
/// `map_reduce`, ...), at the same place in the program (the file, line
/// and column of the call, and how many journaled calls were made there
/// before it in this run), with the same type of function, items and
/// results, the same number of items and the same chunk size, and the
/// same inputs in that chunk (a digest of each chunk's items: of their
/// serialized bytes, or of their memory for plain numbers such as `u64`
/// and `f64`; a large call computes them on the shared threads).
/// A [`key`](crate::JournaledPool::key) you give replaces the place in the
/// program and the function's type, so a call that moves keeps its
/// records. The count of calls before it is per run: the same call made
/// twice in one run is two calls (the second does not read the first's
/// records); made once in each of two runs, it is the same call.
///
/// The function's *code* is not part of it: a journal cannot see that
/// `x * x` became `x * x * x` in a closure at the same place. **When you
/// change what a function computes, use a new journal file, or give the
/// call a new key** (`.key("squares-v2")`). Chunks whose inputs changed run
/// again; the others are read back.
///
/// # Durability
///
/// Each finished chunk is appended as one record (length, CRC-32, the
/// chunk's encoded results). A worker that finishes a chunk of small
/// results while another thread is writing leaves its record to that
/// thread and goes on (at most two records wait so; the call returns only
/// when all are in the file). A process killed at any instant (`kill -9`,
/// the OOM killer, a time limit) loses only the chunks that were running
/// and those at most two waiting: what was appended is in the kernel's
/// page cache, and a record cut short by the kill is dropped when the
/// journal is next opened. The records reach the disk with an `fdatasync` within
/// [`SYNC_INTERVAL`] of being appended (a thread of the journal's,
/// `parpool-journal`, syncs at most that often while records come in, and
/// ends when none do), and when the journal is dropped: a machine that
/// crashes (power, kernel) can lose the chunks of the last 200 ms.
/// [`sync`](Journal::sync) syncs now.
/// Damage found on opening costs reruns, never wrong results: see the
/// `file` module's rules, reported by [`damaged_records`](Journal::damaged_records).
///
/// # Locking
///
/// The file is locked for this process (`flock`) when it is opened: a
/// second process opening it gets an error naming the path (within a
/// quarter of a second: a lock held for a moment by a process forked
/// just then is waited for). On a
/// filesystem where locking fails (Lustre mounted without `flock`, NFS with
/// `nolock`) opening is an error too, never silent sharing: put the
/// journal on a local disk or a filesystem that locks.
///
/// # MPI
///
/// Every rank calls `Journal::open` with the same path; only rank 0 opens
/// the file, and the other ranks learn from it which chunks are done. A
/// rank is told apart by its launcher's variables
/// ([`env::LAUNCHER_RANK`](crate::env::LAUNCHER_RANK)): a rank other than 0 does not touch the
/// file at all, so a node-local path on rank 0 works, and a journal opened
/// before MPI is initialized works too. Every other rank sends each chunk
/// to rank 0 as it finishes, so a rank killed mid-call (or a call that
/// fails) loses only the chunks that were running, on any rank. A run
/// killed on some number of ranks resumes on any other number, or on
/// threads, with the same bits.
///
/// # Growth
///
/// Records are only appended; [`compact`](Journal::compact) rewrites the
/// file with only the records of the calls this run made.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) path: PathBuf,
    pub(super) state: Mutex<State>,
    /// Records left by appends that found the file busy, for the thread
    /// that holds it to write (see `append.rs`).
    pub(super) waiting: Mutex<Vec<append::Waiting>>,
}

pub(super) struct State {
    /// The open, locked file: `None` on an MPI rank other than 0, until a
    /// journaled call needs it (it never does there).
    pub(super) open: Option<Open>,
    /// Journaled calls made so far at each place or key, this run.
    occurrences: HashMap<u128, u64>,
    /// Calls this run made, for compaction.
    used: HashSet<u128>,
    last_call: Option<CallReport>,
    damaged: usize,
    /// A flusher thread is running (see [`Journal::append`]).
    pub(super) flusher: bool,
}

pub(super) struct Open {
    /// Registered as the parent's only (see `sys::parent_only`) while open.
    file: File,
    index: HashMap<(u128, u64), Entry>,
    end: u64,
    last_sync: Instant,
    pub(super) unsynced: bool,
}

/// What the last journaled call did: how many of its chunks were read back
/// from the journal and how many ran. From [`Journal::last_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallReport {
    /// Chunks of the call.
    pub chunks: usize,
    /// Chunks read back from the journal instead of run.
    pub read_back: usize,
    /// Chunks that ran (and were appended, unless they failed).
    pub ran: usize,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.lock_unpoisoned();
        f.debug_struct("Journal")
            .field("path", &self.shared.path)
            .field("open_here", &state.open.is_some())
            .field("last_call", &state.last_call)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal at `path`, creating it if it does not exist, and
    /// locks it for this process. A journal left by a killed run is read:
    /// its finished chunks are there for the calls that ask for them.
    ///
    /// On an MPI rank other than 0 (by the launcher's variables) the file
    /// is not touched; only the directory is checked.
    ///
    /// # Errors
    ///
    /// The file is in use by another process; it is not a journal (it is
    /// left exactly as it was); it has damage that cannot be skipped; its
    /// directory does not exist or cannot be written; the filesystem
    /// cannot lock files.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal, Error> {
        let path = path.as_ref().to_path_buf();
        let state = State {
            open: None,
            occurrences: HashMap::new(),
            used: HashSet::new(),
            last_call: None,
            damaged: 0,
            flusher: false,
        };
        let journal = Journal {
            shared: Arc::new(Shared {
                path,
                state: Mutex::new(state),
                waiting: Mutex::new(Vec::new()),
            }),
        };
        if launcher_rank().is_some_and(|rank| rank != 0) {
            check_directory(&journal.shared.path)?;
        } else {
            let mut state = journal.shared.state.lock_unpoisoned();
            journal.open_here(&mut state)?;
        }
        Ok(journal)
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the last journaled call did; `None` before the first one.
    pub fn last_call(&self) -> Option<CallReport> {
        self.shared.state.lock_unpoisoned().last_call
    }

    /// How many damaged records opening the file skipped (their chunks run
    /// again), and how many bytes of a record cut short at its end were
    /// dropped.
    pub fn damaged_records(&self) -> usize {
        self.shared.state.lock_unpoisoned().damaged
    }

    /// The size of the file in bytes (0 on an MPI rank that does not hold
    /// it).
    ///
    /// # Errors
    ///
    /// The file's size could not be read.
    pub fn size(&self) -> Result<u64, Error> {
        let state = self.shared.state.lock_unpoisoned();
        match &state.open {
            Some(open) => Ok(open.end),
            None => Ok(0),
        }
    }

    /// Writes every record appended so far to the disk (`fdatasync`) now,
    /// rather than within [`SYNC_INTERVAL`].
    ///
    /// # Errors
    ///
    /// The sync failed.
    pub fn sync(&self) -> Result<(), Error> {
        let shared = &*self.shared;
        let mut state = shared.state.lock_unpoisoned();
        append::write_waiting(&shared.path, &shared.waiting, &mut state);
        match &mut state.open {
            Some(open) => open.sync(&shared.path),
            None => Ok(()),
        }
    }

    /// Rewrites the file with only the latest records of the calls this
    /// run has made, dropping those of calls it did not make (an earlier
    /// version of the program, calls whose inputs changed), and returns
    /// the bytes it had before and has after. The new file replaces the
    /// old one atomically (a rename), already locked: a kill during
    /// compaction leaves the old file or the new one, whole.
    ///
    /// # Errors
    ///
    /// Reading, writing or renaming failed; the old file is then kept.
    pub fn compact(&self) -> Result<(u64, u64), Error> {
        let mut state = self.shared.state.lock_unpoisoned();
        append::write_waiting(&self.shared.path, &self.shared.waiting, &mut state);
        let used = state.used.clone();
        let path = self.shared.path.clone();
        let Some(open) = state.open.as_mut() else {
            return Ok((0, 0));
        };
        let before = open.end;
        let temporary = path.with_extension("compacting");
        let io = |action: &'static str| {
            let path = path.clone();
            move |error| Error::journal_io(&path, action, error)
        };
        let new = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(io("create a compacted copy of"))?;
        lock(&new, &temporary)?;
        let mut index = HashMap::new();
        let mut end = file::HEADER_LEN;
        let result = (|| {
            file::write_at(&new, &[&file::header()], 0)?;
            let mut entries: Vec<_> = open
                .index
                .iter()
                .filter(|((call, _), _)| used.contains(call))
                .collect();
            entries.sort_by_key(|(_, entry)| entry.offset);
            for (&(call, chunk), entry) in entries {
                let mut results = vec![0u8; entry.len as usize];
                file::read_at(&open.file, &mut results, entry.offset)?;
                let head = file::record_head(call, chunk, entry.inputs, &results);
                file::write_at(&new, &[&head, &results], end)?;
                let offset = end + head.len() as u64;
                index.insert((call, chunk), Entry { offset, ..*entry });
                end = offset + entry.len;
            }
            new.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            sync_directory(&path)
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&temporary);
            return Err(Error::journal_io(&path, "compact", error));
        }
        *open = Open::new(new, index, end);
        Ok((before, end))
    }

    /// Opens and locks the file here, if not yet (see [`Journal::open`]).
    fn open_here(&self, state: &mut State) -> Result<(), Error> {
        if state.open.is_some() {
            return Ok(());
        }
        let path = &self.shared.path;
        check_directory(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|error| Error::journal_io(path, "open", error))?;
        lock(&file, path)?;
        let len = file
            .metadata()
            .map_err(|error| Error::journal_io(path, "read", error))?
            .len();
        let scan = if len == 0 {
            file::write_at(&file, &[&file::header()], 0)
                .and_then(|()| file.sync_all())
                .map_err(|error| Error::journal_io(path, "write", error))?;
            file::Scan {
                end: file::HEADER_LEN,
                ..file::Scan::default()
            }
        } else {
            file::check_header(&file, len, path)?;
            file::scan(&file, path)?
        };
        state.damaged = scan.damaged;
        state.open = Some(Open::new(file, scan.index, scan.end));
        Ok(())
    }

    /// The next occurrence number of the call at `site` this run.
    pub(crate) fn next_occurrence(&self, site: u128) -> u64 {
        let mut state = self.shared.state.lock_unpoisoned();
        let next = state.occurrences.entry(site).or_insert(0);
        let occurrence = *next;
        *next += 1;
        occurrence
    }

    /// Starts call `call` on rank `rank`: opens the file if this rank holds
    /// it, notes the call as used, and returns the record of every chunk
    /// whose inputs digest matches `digests[chunk]` (read them with
    /// [`read`](Journal::read), one at a time).
    pub(crate) fn begin(
        &self,
        call: u128,
        rank: usize,
        digests: &[u128],
    ) -> Result<Vec<(usize, Entry)>, Error> {
        let mut state = self.shared.state.lock_unpoisoned();
        state.used.insert(call);
        if rank != 0 {
            return Ok(Vec::new());
        }
        self.open_here(&mut state)?;
        let open = state.open.as_ref().expect("opened above");
        Ok(digests
            .iter()
            .enumerate()
            .filter_map(|(chunk, digest)| {
                let entry = open.index.get(&(call, chunk as u64))?;
                (entry.inputs == *digest).then_some((chunk, *entry))
            })
            .collect())
    }

    /// The record of chunk `chunk` of call `call` on rank `rank`, if the
    /// journal holds one for inputs `digest`; notes the call as used.
    pub(crate) fn lookup(
        &self,
        call: u128,
        chunk: u64,
        digest: u128,
    ) -> Result<Option<Entry>, Error> {
        let mut state = self.shared.state.lock_unpoisoned();
        state.used.insert(call);
        self.open_here(&mut state)?;
        let open = state.open.as_ref().expect("opened above");
        Ok(open
            .index
            .get(&(call, chunk))
            .filter(|entry| entry.inputs == digest)
            .copied())
    }

    /// Every record of call `call` (rank 0 of an MPI job, or one process),
    /// by chunk; notes the call as used.
    pub(crate) fn records_of(&self, call: u128) -> Result<Vec<(usize, Entry)>, Error> {
        let mut state = self.shared.state.lock_unpoisoned();
        state.used.insert(call);
        self.open_here(&mut state)?;
        let open = state.open.as_ref().expect("opened above");
        let mut records: Vec<(usize, Entry)> = open
            .index
            .iter()
            .filter(|((of, _), _)| *of == call)
            .map(|(&(_, chunk), entry)| (chunk as usize, *entry))
            .collect();
        records.sort_unstable_by_key(|&(chunk, _)| chunk);
        Ok(records)
    }

    /// The results of the record at `entry`.
    pub(crate) fn read(&self, entry: &Entry) -> Result<Vec<u8>, Error> {
        let state = self.shared.state.lock_unpoisoned();
        let path = &self.shared.path;
        let open = state
            .open
            .as_ref()
            .ok_or_else(|| Error::journal(path, "is not open on this rank"))?;
        let mut results = vec![0u8; entry.len as usize];
        crate::sys::advise_huge_pages(results.as_ptr(), results.len());
        file::read_at(&open.file, &mut results, entry.offset)
            .map_err(|error| Error::journal_io(path, "read", error))?;
        Ok(results)
    }

    /// Ends a call: keeps its report. What it appended is synced by the
    /// flusher within [`SYNC_INTERVAL`].
    pub(crate) fn finish(&self, report: CallReport) -> Result<(), Error> {
        self.shared.state.lock_unpoisoned().last_call = Some(report);
        Ok(())
    }
}

impl Open {
    fn new(file: File, index: HashMap<(u128, u64), Entry>, end: u64) -> Open {
        #[cfg(unix)]
        crate::sys::parent_only::register(std::os::fd::AsRawFd::as_raw_fd(&file));
        Open {
            file,
            index,
            end,
            last_sync: Instant::now(),
            unsynced: false,
        }
    }

    pub(super) fn sync(&mut self, path: &Path) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|error| Error::journal_io(path, "sync", error))?;
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        // Every call settles its records; any still waiting are written.
        append::write_waiting(&self.path, &self.waiting, state);
        if let Some(open) = state.open.as_mut()
            && open.unsynced
        {
            let _ = open.sync(&self.path);
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        #[cfg(unix)]
        crate::sys::parent_only::unregister(std::os::fd::AsRawFd::as_raw_fd(&self.file));
    }
}
