//! [`Session`]: workers that start once and serve many calls of one
//! function; its calls are streams ([`imap`](super::imap)) on its engine.

use super::StreamSettings;
use super::imap::{EngineRef, Imap, ImapUnordered, Stream};
use crate::backend::StreamEngine;
use crate::error::Error;
use crate::job::StreamJob;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// Workers that start once and serve many calls of the same function: made
/// by [`Pool::session`](crate::Pool::session).
///
/// On the process backend a session forks its worker processes once, when
/// it is created, and sends each call's items to them (encoded with
/// postcard, so `T` must be serializable). A program that calls `map` in a
/// loop from a process holding a lot of memory then pays the cost of
/// `fork` (copying page tables: tens of milliseconds per GiB) once instead
/// of on every call. On the other backends a session runs each call as the
/// pool would.
///
/// A crashed or timed-out worker is replaced (one new fork), retries and
/// timeouts work as in a plain call, and a failed or cancelled call leaves
/// the session usable. Dropping the session stops its workers.
///
/// ```
/// use parpool::{BackendKind, Pool};
///
/// let pool = Pool::builder().kind(BackendKind::Processes).workers(2).build()?;
/// let mut session = pool.session(|x: u64| x * x)?; // forks here, once
/// for round in 0..3u64 {
///     let squares = session.map((0..100).map(|x| x + round))?;
///     assert_eq!(squares[1], (1 + round) * (1 + round));
/// }
/// # Ok::<(), parpool::Error>(())
/// ```
pub struct Session<T, O> {
    settings: StreamSettings,
    engine: Box<dyn StreamEngine>,
    types: PhantomData<fn(T) -> O>,
}

impl<T, O> fmt::Debug for Session<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.settings.backend.kind())
            .field("workers", &self.settings.workers)
            .finish()
    }
}

impl<T, O> Session<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
{
    /// A session on the engine `settings` opens for `job`.
    pub(crate) fn new(settings: StreamSettings, job: Arc<dyn StreamJob>) -> Result<Self, Error> {
        Ok(Session {
            engine: settings.open(job)?,
            settings,
            types: PhantomData,
        })
    }

    /// Applies the session's function to every item; results in input
    /// order. Fails at the first failed item (the lowest index among the
    /// chunks that ran), cancelling the rest.
    pub fn map(&mut self, items: impl IntoIterator<Item = T>) -> Result<Vec<O>, Error> {
        let items: Vec<T> = items.into_iter().collect();
        let total = items.len();
        let mut outputs = Vec::with_capacity(total);
        for result in self.batch(items, total) {
            outputs.push(result?);
        }
        Ok(outputs)
    }

    /// Applies the session's function to every item and returns one result
    /// per item, in input order, keeping going past failures.
    pub fn map_results(&mut self, items: impl IntoIterator<Item = T>) -> Vec<Result<O, Error>> {
        let items: Vec<T> = items.into_iter().collect();
        let total = items.len();
        self.batch(items, total).collect()
    }

    /// An ordered stream over `input` on this session's workers; see
    /// [`Pool::imap`](crate::Pool::imap).
    pub fn imap<I>(&mut self, input: I) -> Imap<'_, I::IntoIter, O>
    where
        I: IntoIterator<Item = T>,
    {
        Imap {
            stream: self.stream(input.into_iter(), true).into(),
        }
    }

    /// An unordered stream over `input` on this session's workers; see
    /// [`Pool::imap_unordered`](crate::Pool::imap_unordered).
    pub fn imap_unordered<I>(&mut self, input: I) -> ImapUnordered<'_, I::IntoIter, O>
    where
        I: IntoIterator<Item = T>,
    {
        ImapUnordered {
            stream: self.stream(input.into_iter(), false).into(),
        }
    }

    /// A stream over `input` on this session's engine.
    fn stream<I: Iterator<Item = T>>(&mut self, input: I, ordered: bool) -> Stream<'_, I, O> {
        Stream::new(
            &self.settings,
            input,
            EngineRef::Borrowed(&mut *self.engine),
            ordered,
        )
    }

    /// A call over `total` known items: chunks of
    /// [`batch_chunk_size`](StreamSettings::batch_chunk_size), errors naming
    /// `task i of total`.
    fn batch(&mut self, items: Vec<T>, total: usize) -> impl Iterator<Item = Result<O, Error>> {
        let chunk_size = self.settings.batch_chunk_size(total);
        let mut stream = self.stream(items.into_iter(), true);
        stream.chunk_size = chunk_size;
        std::iter::from_fn(move || stream.next_result()).map(move |(index, result)| {
            result.map_err(|error| match error.task_index() {
                Some(_) => error.for_task(index, total),
                None => error,
            })
        })
    }
}
