//! [`JournaledPool`]: a pool's batch calls with a [`Journal`], made by
//! [`Pool::with_journal`].

use super::Pool;
use crate::error::Error;
use crate::journal::Journal;
use crate::journal::call::JournalCall;
use crate::journal::identity::{self, CallIdentity};
use crate::journal::stream::StreamJournal;
use crate::stream::{self, Imap};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::panic::Location;

impl Pool {
    /// This pool's batch calls, recording every chunk that finishes in
    /// `journal` and reading back the chunks a previous run of the same
    /// calls finished; see [`Journal`] for what makes two calls the same
    /// and what survives a kill. A resumed call returns exactly what an
    /// uninterrupted one returns, on any backend, worker count or MPI
    /// rank count.
    ///
    /// Journaled calls ask one more thing of the items: `Serialize`, so
    /// that each chunk's inputs can be compared with the run that recorded
    /// it. A [`LocalPool`](crate::LocalPool) has no journal: its results
    /// need not be serializable, so they could not be recorded.
    ///
    /// A journaled call made inside a task (nested use) runs without the
    /// journal.
    pub fn with_journal<'j>(&self, journal: &'j Journal) -> JournaledPool<'j> {
        JournaledPool {
            pool: self.clone(),
            journal,
            key: None,
        }
    }
}

/// A pool's batch calls with a [`Journal`]: made by
/// [`Pool::with_journal`]. The methods are [`Pool`]'s, with items that are
/// also `Serialize`.
#[derive(Clone, Debug)]
pub struct JournaledPool<'j> {
    pool: Pool,
    journal: &'j Journal,
    key: Option<String>,
}

/// The types a call's identity names: function, items, results.
fn types<F, T, R>() -> [&'static str; 3] {
    [
        std::any::type_name::<F>(),
        std::any::type_name::<T>(),
        std::any::type_name::<R>(),
    ]
}

impl JournaledPool<'_> {
    /// The same pool with calls named by `key` instead of their place in
    /// the program and the function's type (a closure's type is named
    /// after where it is written): records then survive moving the call,
    /// and a new key (`"squares-v2"`) starts afresh when the function's
    /// code changes. Calls with the same key are told apart by their order
    /// in the run.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The pool the calls run on.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The id of a call of `method` at `place` (or under the key) with
    /// these types and `extra`, over `(items, chunk_size)`; counts the call
    /// as one more at its place.
    fn identity(
        &self,
        method: &'static str,
        place: &Location<'_>,
        (types, extra): ([&'static str; 3], u128),
        (items, chunk_size): (u64, u64),
    ) -> u128 {
        // A key names the computation: the function's type, which a
        // closure takes from where it is written, is left out with it.
        let (place, types) = match &self.key {
            Some(key) => (format!("key {key}"), ["", types[1], types[2]]),
            None => (
                format!("{}:{}:{}", place.file(), place.line(), place.column()),
                types,
            ),
        };
        CallIdentity {
            // 2: chunks of plain numbers are digested as their memory.
            format: 2,
            method,
            place: &place,
            occurrence: self.journal.next_occurrence(identity::place_id(&place)),
            types,
            extra,
            items,
            chunk_size,
        }
        .id()
    }

    /// The journal of a call of `method` at `place` over `items`, or
    /// `None` inside a task (nested calls run without it).
    fn call<T: Serialize + Send>(
        &self,
        method: &'static str,
        place: &Location<'_>,
        (types, extra): ([&'static str; 3], u128),
        items: &mut [T],
    ) -> Result<Option<JournalCall<'_>>, Error> {
        if crate::job::inside_task() {
            return Ok(None);
        }
        let plan = self.pool.plan(items.len());
        let digests =
            identity::chunk_digests(items, plan, self.pool.workers()).map_err(|item| {
                Error::journal(
                    self.journal.path(),
                    format!(
                        "cannot take item {item}: its Serialize failed, and a journaled call \
                     compares each chunk's inputs through it"
                    ),
                )
            })?;
        let shape = (items.len() as u64, plan.chunk_size() as u64);
        let call = self.identity(method, place, (types, extra), shape);
        Ok(Some(JournalCall {
            journal: self.journal,
            call,
            digests,
        }))
    }

    /// [`Pool::map`], journaled.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("parpool-doc-map-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let journal = parpool::Journal::open(dir.join("map.journal"))?;
    /// let pool = parpool::Pool::new();
    /// let squares = pool.with_journal(&journal).map(|x: u64| x * x, 0..10u64)?;
    /// assert_eq!(squares[9], 81);
    /// # drop(journal);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), parpool::Error>(())
    /// ```
    #[track_caller]
    pub fn map<T, R, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send + Serialize,
        R: Send + Serialize + DeserializeOwned,
    {
        let place = Location::caller();
        let mut items: Vec<T> = super::collect_items(items);
        let journal = self.call("map", place, (types::<F, T, R>(), 0), &mut items)?;
        self.pool
            .map_init_in(|| (), |_: &mut (), item| f(item), items, journal.as_ref())
    }

    /// [`Pool::map_init`], journaled. The state's type is part of the
    /// call's identity; its values are not recorded.
    #[track_caller]
    pub fn map_init<T, S, R, I, F>(
        &self,
        init: I,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, Error>
    where
        I: Fn() -> S + Sync,
        F: Fn(&mut S, T) -> R + Sync,
        T: Send + Serialize,
        S: Send,
        R: Send + Serialize + DeserializeOwned,
    {
        let place = Location::caller();
        let mut items: Vec<T> = super::collect_items(items);
        let extra = identity::digest_of(std::any::type_name::<I>());
        let journal = self.call("map_init", place, (types::<F, T, R>(), extra), &mut items)?;
        self.pool.map_init_in(init, f, items, journal.as_ref())
    }

    /// [`Pool::map_gather`], journaled: on MPI, rank 0 records and reads
    /// back every chunk.
    #[track_caller]
    pub fn map_gather<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Option<Vec<R>>, Error>
    where
        F: Fn(T) -> R + Sync,
        T: Send + Serialize,
        R: Send + Serialize + DeserializeOwned,
    {
        let place = Location::caller();
        let mut items: Vec<T> = super::collect_items(items);
        let journal = self.call("map_gather", place, (types::<F, T, R>(), 0), &mut items)?;
        self.pool.map_gather_in(f, items, journal.as_ref())
    }

    /// [`Pool::map_results`], journaled. A chunk with a failed item is not
    /// recorded: the next run runs it again (with
    /// [`chunk_size(1)`](crate::PoolBuilder::chunk_size), only the failed
    /// items), as GNU parallel's `--resume-failed` does.
    #[track_caller]
    pub fn map_results<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Vec<Result<R, Error>>
    where
        F: Fn(T) -> R + Sync,
        T: Send + Serialize,
        R: Send + Serialize + DeserializeOwned,
    {
        let place = Location::caller();
        let mut items: Vec<T> = super::collect_items(items);
        match self.call("map_results", place, (types::<F, T, R>(), 0), &mut items) {
            Ok(journal) => self.pool.map_results_in(f, items, journal.as_ref()),
            // The journal cannot take this call: every item says why.
            Err(error) => items.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    /// [`Pool::imap`], journaled: chunk `n` of the stream (of the pool's
    /// [`chunk_size`](crate::PoolBuilder::chunk_size), default
    /// [`STREAM_CHUNK_SIZE`](crate::STREAM_CHUNK_SIZE)) is read back
    /// instead of run if the journal holds it for the same items, and
    /// recorded when its results come back (unless one failed). The
    /// stream's length is not part of its identity, so a longer input
    /// resumes the chunks it shares with a shorter one. The journal's
    /// [`last_call`](Journal::last_call) is the stream's once the stream is
    /// dropped.
    ///
    /// # Errors
    ///
    /// As for [`Pool::imap`].
    #[track_caller]
    pub fn imap<T, R, F, I>(&self, f: F, input: I) -> Result<Imap<'static, I::IntoIter, R>, Error>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        T: Send + Serialize + DeserializeOwned + 'static,
        R: Send + Serialize + DeserializeOwned + 'static,
    {
        let place = Location::caller();
        if crate::job::inside_task() {
            return self.pool.imap(f, input);
        }
        let settings = self.pool.stream_settings();
        let types = types::<F, T, R>();
        let shape = (0, settings.stream_chunk_size() as u64);
        let call = self.identity("imap", place, (types, 0), shape);
        let records = StreamJournal::<R>::new(self.journal.clone(), call, self.pool.driver())?;
        let engine = settings.open(self.pool.stream_job(f))?;
        Ok(stream::imap_journaled(
            &settings,
            input.into_iter(),
            engine,
            Box::new(records),
        ))
    }

    /// [`Pool::map_reduce`], journaled: each chunk's partial result is
    /// recorded, and a resumed call combines the read-back partials with
    /// the new ones in chunk order, so the result has the same bits. The
    /// identity value is part of the call's identity.
    #[track_caller]
    pub fn map_reduce<T, R, F, Op>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        identity: R,
        op: Op,
    ) -> Result<R, Error>
    where
        F: Fn(T) -> R + Sync,
        Op: Fn(R, R) -> R + Sync,
        T: Send + Serialize,
        R: Send + Clone + Serialize + DeserializeOwned,
    {
        let place = Location::caller();
        let mut items: Vec<T> = super::collect_items(items);
        let extra =
            identity::digest_of(&(std::any::type_name::<Op>(), identity::digest_of(&identity)));
        let journal = self.call("map_reduce", place, (types::<F, T, R>(), extra), &mut items)?;
        self.pool
            .map_reduce_in(f, items, identity, op, journal.as_ref())
    }
}
