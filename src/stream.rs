//! Streaming: [`Imap`] (lazy, bounded `imap` / `imap_unordered`) and
//! [`Session`] (workers that start once and serve many calls).
//!
//! Both drive a [`StreamEngine`] that the pool's backend opened
//! ([`Backend::open_stream`]): something that
//! accepts chunks of items, runs them on workers, and hands back finished
//! chunks. [`Imap`] pulls chunks from the input iterator only while fewer
//! than [`in_flight`](crate::PoolBuilder::in_flight) chunks are submitted but
//! not yet handed to the caller, so memory stays bounded whatever the length
//! of the input.
//!
//! | backend | engine |
//! |---|---|
//! | threads | each chunk is a task on the pool's own rayon threads |
//! | processes | worker processes forked once per stream or session; each chunk's items are encoded (postcard) and sent to an idle worker, results come back the same way |
//! | MPI | ranks claim chunks from a counter shared by every rank and run them on their threads; each chunk's encoded results go to every rank, with no barrier between chunks |
//! | serial, custom (the default engine) | submitted chunks are run together as one batch job on the backend's `run` when the caller asks for the next result |
//!
//! Dropping an [`Imap`] cancels what is still running: thread tasks stop
//! before their next item, busy worker processes are killed. Nothing the
//! stream started outlives it.

use crate::backend::{
    Backend, DEFAULT_IN_FLIGHT_PER_WORKER, StreamContext, StreamEngine, stream_cancelled,
};
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::job::{StreamChunk, StreamJob, Watch};
use crate::progress::{Meter, ProgressMode};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// Items per chunk of a stream when the pool has no
/// [`chunk_size`](crate::PoolBuilder::chunk_size).
pub const STREAM_CHUNK_SIZE: usize = 256;

/// What a stream or session takes from its pool.
#[derive(Clone)]
pub(crate) struct StreamSettings {
    /// The backend that opens the engine (the serial one for nested use).
    pub(crate) backend: Arc<dyn Backend>,
    /// The pool's chunk size, if it has one.
    pub(crate) chunk_size: Option<usize>,
    /// Chunks kept in flight.
    pub(crate) in_flight: usize,
    pub(crate) workers: usize,
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) progress: ProgressMode,
}

impl StreamSettings {
    /// Opens an engine for `job` on the backend.
    pub(crate) fn open(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        self.backend.open_stream(job)
    }

    /// Items per chunk of a stream of unknown length.
    fn stream_chunk_size(&self) -> usize {
        self.chunk_size.unwrap_or(STREAM_CHUNK_SIZE)
    }

    /// Items per chunk of a session call over `total` items: the pool's
    /// chunk size, else `ceil(total / (4 * workers))`, the rule of Python's
    /// `Pool.map`. A session's chunk costs a round trip through a socket,
    /// so fewer, larger chunks than a plain call's pay off; a session's
    /// `map` combines nothing, so the grouping cannot change a result.
    fn batch_chunk_size(&self, total: usize) -> usize {
        self.chunk_size.unwrap_or_else(|| {
            total
                .div_ceil(DEFAULT_IN_FLIGHT_PER_WORKER * self.workers)
                .max(1)
        })
    }
}

// --- Imap -------------------------------------------------------------------------

/// The engine a stream runs on: its own, or a [`Session`]'s.
enum EngineRef<'a> {
    Owned(Box<dyn StreamEngine>),
    Borrowed(&'a mut dyn StreamEngine),
}

impl EngineRef<'_> {
    fn get(&mut self) -> &mut dyn StreamEngine {
        match self {
            EngineRef::Owned(engine) => &mut **engine,
            EngineRef::Borrowed(engine) => &mut **engine,
        }
    }
}

/// The iterator returned by [`Pool::imap`](crate::Pool::imap) and
/// [`Session::imap`]: one `Result` per input item, in input order.
///
/// Each item is `Ok(result)` or the `Err` of that item's task (a panic, a
/// crash or timeout on the process backend); the stream carries on past
/// failures, so `collect::<Result<Vec<_>, _>>()` stops at the first one
/// (and, by dropping the iterator, cancels the rest). If the pool's
/// [`CancelToken`] fires, the next item is an error for
/// which [`Error::is_cancelled`] is true, and the iterator ends.
///
/// Dropping the iterator cancels the chunks still running and waits until
/// none of them runs.
pub struct Imap<'a, I: Iterator, O> {
    stream: Stream<'a, I, O>,
}

/// The iterator returned by [`Pool::imap_unordered`](crate::Pool::imap_unordered)
/// and [`Session::imap_unordered`]: `(index, result)` pairs in the order
/// they finish. Otherwise the same as [`Imap`]; a cancellation is reported
/// with the index of the first item not handed out yet.
pub struct ImapUnordered<'a, I: Iterator, O> {
    stream: Stream<'a, I, O>,
}

/// The machinery behind both iterators.
struct Stream<'a, I: Iterator, O> {
    input: Option<I>,
    engine: EngineRef<'a>,
    backend: Arc<dyn Backend>,
    chunk_size: usize,
    in_flight: usize,
    ordered: bool,
    watch: Watch,
    next_seq: u64,
    next_start: usize,
    /// Submitted chunks not yet returned by the engine: seq -> start.
    running: BTreeMap<u64, usize>,
    /// Finished chunks waiting for their turn (ordered streams): start and
    /// results.
    finished: BTreeMap<u64, (usize, Vec<Result<O, Error>>)>,
    /// Results of the chunk being handed out.
    ready: VecDeque<(usize, Result<O, Error>)>,
    /// The next chunk to hand out (ordered streams).
    next_out: u64,
    /// Set once the stream has nothing more to give.
    ended: bool,
}

impl<'a, I, O> Stream<'a, I, O>
where
    I: Iterator,
    I::Item: Send + 'static,
    O: 'static,
{
    fn new(settings: &StreamSettings, input: I, engine: EngineRef<'a>, ordered: bool) -> Self {
        let total = match input.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        Stream {
            input: Some(input),
            engine,
            backend: settings.backend.clone(),
            chunk_size: settings.stream_chunk_size(),
            in_flight: settings.in_flight,
            ordered,
            watch: Watch {
                cancel: settings.cancel.clone(),
                meter: Meter::start(settings.progress, total),
            },
            next_seq: 0,
            next_start: 0,
            running: BTreeMap::new(),
            finished: BTreeMap::new(),
            ready: VecDeque::new(),
            next_out: 0,
            ended: false,
        }
    }

    /// Chunks held: submitted, finished but waiting, or being handed out.
    fn held(&self) -> usize {
        self.running.len() + self.finished.len() + usize::from(!self.ready.is_empty())
    }

    /// Pulls chunks from the input while there is room.
    fn refill(&mut self) -> Result<(), Error> {
        while self.held() < self.in_flight {
            let Some(input) = self.input.as_mut() else {
                return Ok(());
            };
            let items: Vec<I::Item> = input.by_ref().take(self.chunk_size).collect();
            if items.is_empty() {
                self.input = None;
                return Ok(());
            }
            let (seq, start) = (self.next_seq, self.next_start);
            self.running.insert(seq, start);
            self.next_seq += 1;
            self.next_start += items.len();
            self.engine
                .get()
                .submit(StreamChunk::new(seq, start, items))?;
        }
        Ok(())
    }

    /// Moves a finished chunk's results to `ready`.
    fn hand_out(&mut self, start: usize, results: Vec<Result<O, Error>>) {
        self.watch.items_done(results.len());
        self.ready.extend(
            results
                .into_iter()
                .enumerate()
                .map(|(offset, result)| (start + offset, result)),
        );
    }

    /// Stops everything and ends the stream with `error`, reported at the
    /// first item not handed out.
    fn fail(&mut self, error: Error) -> (usize, Result<O, Error>) {
        let index = if self.ordered {
            self.running
                .get(&self.next_out)
                .copied()
                .unwrap_or(self.next_start)
        } else {
            self.running
                .values()
                .next()
                .copied()
                .unwrap_or(self.next_start)
        };
        self.stop();
        (index, Err(error))
    }

    /// Cancels what runs and forgets what is held.
    fn stop(&mut self) {
        if !self.running.is_empty() {
            self.engine.get().cancel();
        }
        self.running.clear();
        self.finished.clear();
        self.ready.clear();
        self.input = None;
        self.ended = true;
    }

    fn next_result(&mut self) -> Option<(usize, Result<O, Error>)> {
        loop {
            if let Some(result) = self.ready.pop_front() {
                return Some(result);
            }
            if self.ended {
                return None;
            }
            if self.watch.cancelled() {
                return Some(self.fail(stream_cancelled()));
            }
            if let Err(error) = self.refill() {
                return Some(self.fail(error));
            }
            if self.ordered
                && let Some((start, results)) = self.finished.remove(&self.next_out)
            {
                self.next_out += 1;
                self.hand_out(start, results);
                continue;
            }
            if self.running.is_empty() {
                self.ended = true;
                continue;
            }
            let watch = &self.watch;
            let cancelled = || watch.cancelled();
            let context = StreamContext::new(&*self.backend, &cancelled);
            match self.engine.get().next_done(&context) {
                Ok(chunk) => {
                    let span = chunk.span();
                    let mut results = chunk.into_typed::<O>();
                    // An engine that lost results must not make items
                    // vanish from the stream.
                    results.resize_with(span.len, || {
                        Err(Error::backend(
                            "stream",
                            "no result came back for this item",
                        ))
                    });
                    self.running.remove(&span.seq);
                    if self.ordered {
                        self.finished.insert(span.seq, (span.start, results));
                    } else {
                        self.hand_out(span.start, results);
                    }
                }
                Err(error) => return Some(self.fail(error)),
            }
        }
    }
}

impl<I: Iterator, O> Drop for Stream<'_, I, O> {
    fn drop(&mut self) {
        if !self.running.is_empty() {
            self.engine.get().cancel();
        }
    }
}

impl<I, O> Iterator for Imap<'_, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    type Item = Result<O, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next_result().map(|(_, result)| result)
    }
}

impl<I, O> Iterator for ImapUnordered<'_, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    type Item = (usize, Result<O, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next_result()
    }
}

impl<I, O> std::iter::FusedIterator for Imap<'_, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
}

impl<I, O> std::iter::FusedIterator for ImapUnordered<'_, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
}

impl<I: Iterator, O> fmt::Debug for Imap<'_, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stream.describe("Imap", f)
    }
}

impl<I: Iterator, O> fmt::Debug for ImapUnordered<'_, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stream.describe("ImapUnordered", f)
    }
}

impl<I: Iterator, O> Stream<'_, I, O> {
    fn describe(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("chunk_size", &self.chunk_size)
            .field("in_flight", &self.in_flight)
            .field("items_submitted", &self.next_start)
            .field("chunks_running", &self.running.len())
            .field("ended", &self.ended)
            .finish()
    }
}

/// An ordered stream over `input` on an engine of its own.
pub(crate) fn imap<'a, I, O>(
    settings: &StreamSettings,
    input: I,
    engine: Box<dyn StreamEngine>,
) -> Imap<'a, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    let stream = Stream::new(settings, input, EngineRef::Owned(engine), true);
    Imap { stream }
}

/// An unordered stream over `input` on an engine of its own.
pub(crate) fn imap_unordered<'a, I, O>(
    settings: &StreamSettings,
    input: I,
    engine: Box<dyn StreamEngine>,
) -> ImapUnordered<'a, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    let stream = Stream::new(settings, input, EngineRef::Owned(engine), false);
    ImapUnordered { stream }
}

// --- Session ------------------------------------------------------------------------

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
            stream: self.stream(input.into_iter(), true),
        }
    }

    /// An unordered stream over `input` on this session's workers; see
    /// [`Pool::imap_unordered`](crate::Pool::imap_unordered).
    pub fn imap_unordered<I>(&mut self, input: I) -> ImapUnordered<'_, I::IntoIter, O>
    where
        I: IntoIterator<Item = T>,
    {
        ImapUnordered {
            stream: self.stream(input.into_iter(), false),
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

#[cfg(test)]
mod tests {
    use crate::{BackendKind, Pool};
    use std::collections::BTreeSet;
    use std::sync::atomic::Ordering;

    /// Indices handed out by an unordered stream.
    fn sorted(indices: impl Iterator<Item = usize>) -> BTreeSet<usize> {
        indices.collect()
    }

    fn pool(kind: BackendKind) -> Pool {
        Pool::builder()
            .kind(kind)
            .workers(2)
            .chunk_size(3)
            .in_flight(2)
            .build()
            .unwrap()
    }

    #[test]
    fn streams_are_ordered_and_complete_on_in_process_backends() {
        for kind in [BackendKind::Serial, BackendKind::Threads] {
            let pool = pool(kind);
            let out: Vec<u64> = pool
                .imap(|x: u64| x * 2, 0..100u64)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>(), "{kind}");
            let unordered = pool.imap_unordered(|x: u64| x + 1, 0..50u64).unwrap();
            let seen = sorted(unordered.map(|(index, result)| {
                assert_eq!(result.unwrap(), index as u64 + 1);
                index
            }));
            assert_eq!(seen, (0..50).collect(), "{kind}");
        }
    }

    #[test]
    fn at_most_in_flight_chunks_are_pulled_ahead() {
        let pulled = std::sync::atomic::AtomicUsize::new(0);
        let pool = pool(BackendKind::Threads);
        let input = (0..1000u64).inspect(|_| {
            pulled.fetch_add(1, Ordering::Relaxed);
        });
        let mut stream = pool.imap(|x: u64| x, input).unwrap();
        assert_eq!(stream.next().unwrap().unwrap(), 0);
        // in_flight 2 chunks of 3, plus the one being handed out.
        assert!(pulled.load(Ordering::Relaxed) <= 3 * 3, "{pulled:?}");
    }
}
