//! [`Imap`] and [`ImapUnordered`]: a lazy, bounded stream over an input
//! iterator, on an engine of its own or a [`Session`](super::Session)'s.

use super::StreamSettings;
use crate::backend::{Driver, StreamContext, StreamEngine, stream_cancelled};
use crate::error::Error;
use crate::job::{ChunkJob, StreamChunk, Watch};
use crate::progress::Meter;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// The engine a stream runs on: its own, or a [`Session`]'s.
pub(super) enum EngineRef<'a> {
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
/// [`Session::imap`](super::Session::imap): one `Result` per input item, in input order.
///
/// Each item is `Ok(result)` or the `Err` of that item's task (a panic, a
/// crash or timeout on the process backend); the stream carries on past
/// failures, so `collect::<Result<Vec<_>, _>>()` stops at the first one
/// (and, by dropping the iterator, cancels the rest). If the pool's
/// [`CancelToken`](crate::CancelToken) fires, the next item is an error for
/// which [`Error::is_cancelled`] is true, and the iterator ends.
///
/// Dropping the iterator cancels the chunks still running and waits until
/// none of them runs.
///
/// [`size_hint`](Iterator::size_hint) is the input's plus the items
/// pulled from it and not handed out yet: exact when the input's is
/// (failed items included), so `collect` reserves once and a progress
/// adapter knows the total. A cancellation or a backend failure ends the
/// stream early, with one `Err`.
pub struct Imap<'a, I: Iterator, O> {
    pub(crate) stream: Source<'a, I, O>,
}

/// The iterator returned by [`Pool::imap_unordered`](crate::Pool::imap_unordered)
/// and [`Session::imap_unordered`](super::Session::imap_unordered): `(index, result)` pairs in the order
/// they finish. Otherwise the same as [`Imap`]; a cancellation is reported
/// with the index of the first item not handed out yet.
pub struct ImapUnordered<'a, I: Iterator, O> {
    pub(crate) stream: Source<'a, I, O>,
}

/// Where a stream's results come from: the stream itself, driven by the
/// caller's `next` or polled (feature `async`), or a helper thread that
/// drives it, for a `futures_core::Stream` whose engine cannot be polled.
pub(crate) enum Source<'a, I: Iterator, O> {
    Here(Stream<'a, I, O>),
    #[cfg(feature = "async")]
    Relayed(super::Relay<(usize, Result<O, Error>)>),
    /// Between the two, for a moment.
    #[cfg(feature = "async")]
    Moving,
}

impl<'a, I: Iterator, O> From<Stream<'a, I, O>> for Source<'a, I, O> {
    fn from(stream: Stream<'a, I, O>) -> Self {
        Source::Here(stream)
    }
}

impl<I, O> Source<'_, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    fn next_result(&mut self) -> Option<(usize, Result<O, Error>)> {
        match self {
            Source::Here(stream) => stream.next_result(),
            #[cfg(feature = "async")]
            Source::Relayed(relay) => relay.next_blocking(),
            #[cfg(feature = "async")]
            Source::Moving => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Source::Here(stream) => stream.size_hint(),
            #[cfg(feature = "async")]
            Source::Relayed(relay) => relay.size_hint(),
            #[cfg(feature = "async")]
            Source::Moving => (0, None),
        }
    }
}

impl<I: Iterator, O> Source<'_, I, O> {
    fn describe(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Here(stream) => stream.describe(name, f),
            #[cfg(feature = "async")]
            _ => f
                .debug_struct(name)
                .field("polled_as_a_stream", &true)
                .finish(),
        }
    }
}

// Neither stream is structurally pinned (nothing projects a pin into it),
// so both may be moved after a poll, whatever their input and outputs are.
impl<I: Iterator, O> Unpin for Imap<'_, I, O> {}
impl<I: Iterator, O> Unpin for ImapUnordered<'_, I, O> {}

/// A result with the index of its item.
pub(crate) type Indexed<O> = (usize, Result<O, Error>);

/// The machinery behind both iterators.
pub(crate) struct Stream<'a, I: Iterator, O> {
    input: Option<I>,
    engine: EngineRef<'a>,
    backend: Arc<dyn Driver>,
    pub(super) chunk_size: usize,
    in_flight: usize,
    ordered: bool,
    watch: Watch,
    next_seq: u64,
    /// Items pulled from the input and submitted so far.
    next_start: usize,
    /// Items handed to the caller so far.
    handed_out: usize,
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
    /// Set once polled without blocking (feature `async`): stopping then
    /// never waits for running chunks (see [`StreamEngine::abandon`]).
    polled: bool,
    /// A journal's side of the stream: reads chunks back before they are
    /// submitted, records them when they are done.
    journal: Option<Box<dyn StreamRecords<I::Item, O> + Send + 'a>>,
}

/// What a journal does for a stream (see `journal/stream.rs`).
pub(crate) trait StreamRecords<T, O> {
    /// The results of chunk `seq` (items `items`), if the journal holds
    /// them for these inputs; remembers the inputs' digest otherwise.
    fn read_back(&mut self, seq: u64, start: usize, items: &[T]) -> Option<Vec<Result<O, Error>>>;

    /// Records chunk `seq`'s results, unless an item failed.
    fn record(&mut self, seq: u64, start: usize, results: &[Result<O, Error>]);

    /// The stream ended (or was dropped): the journal's report.
    fn finish(&mut self);
}

impl<'a, I, O> Stream<'a, I, O>
where
    I: Iterator,
    I::Item: Send + 'static,
    O: 'static,
{
    pub(super) fn new(
        settings: &StreamSettings,
        input: I,
        engine: EngineRef<'a>,
        ordered: bool,
    ) -> Self {
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
            handed_out: 0,
            running: BTreeMap::new(),
            finished: BTreeMap::new(),
            ready: VecDeque::new(),
            next_out: 0,
            ended: false,
            polled: false,
            journal: None,
        }
    }

    /// Gives the stream a journal.
    pub(crate) fn with_journal(
        mut self,
        journal: Box<dyn StreamRecords<I::Item, O> + Send + 'a>,
    ) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Makes the stream watch a token of its own (and its pool's, if it
    /// has one) and returns it: cancelling it cancels this stream only.
    #[cfg(feature = "async")]
    pub(crate) fn own_token(&mut self) -> crate::CancelToken {
        let token = self
            .watch
            .cancel
            .as_ref()
            .map_or_else(crate::CancelToken::new, crate::CancelToken::child);
        self.watch.cancel = Some(token.clone());
        token
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
            self.next_seq += 1;
            self.next_start += items.len();
            if let Some(journal) = self.journal.as_mut()
                && let Some(results) = journal.read_back(seq, start, &items)
            {
                // Read back: done without running, in its place.
                self.engine.get().skip(seq)?;
                if self.ordered {
                    self.finished.insert(seq, (start, results));
                } else {
                    self.hand_out(start, results);
                }
                continue;
            }
            self.running.insert(seq, start);
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
        self.stop_running();
        self.running.clear();
        self.finished.clear();
        self.ready.clear();
        self.input = None;
        self.ended = true;
    }

    pub(crate) fn next_result(&mut self) -> Option<(usize, Result<O, Error>)> {
        match self.step(None) {
            Some(Poll::Ready(result)) => result,
            // Blocking in the engine never leaves a step pending.
            _ => None,
        }
    }

    /// The next result: waiting for it in the engine (`waker` `None`), or
    /// polling the engine, which wakes `waker` when a chunk is done.
    /// `None` if the engine cannot be polled (nothing is lost: the stream
    /// goes on where it was, blocking or on a helper).
    pub(crate) fn step(&mut self, waker: Option<&Waker>) -> Option<Poll<Option<Indexed<O>>>> {
        self.polled |= waker.is_some();
        loop {
            if let Some(result) = self.ready.pop_front() {
                self.handed_out += 1;
                return Some(Poll::Ready(Some(result)));
            }
            if self.ended {
                return Some(Poll::Ready(None));
            }
            if self.watch.cancelled() {
                return Some(Poll::Ready(Some(self.fail(stream_cancelled()))));
            }
            if let Err(error) = self.refill() {
                return Some(Poll::Ready(Some(self.fail(error))));
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
            let backend = &*self.backend;
            let run = |job: &dyn ChunkJob| backend.run(job);
            let context = StreamContext::new(&run, &cancelled);
            let done = match waker {
                None => self.engine.get().next_done(&context),
                Some(waker) => match self.engine.get().poll_done(waker)? {
                    Poll::Ready(done) => done,
                    Poll::Pending => return Some(Poll::Pending),
                },
            };
            match done {
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
                    if let Some(journal) = self.journal.as_mut() {
                        journal.record(span.seq, span.start, &results);
                    }
                    if self.ordered {
                        self.finished.insert(span.seq, (span.start, results));
                    } else {
                        self.hand_out(span.start, results);
                    }
                }
                Err(error) => return Some(Poll::Ready(Some(self.fail(error)))),
            }
        }
    }
}

impl<I: Iterator, O> Stream<'_, I, O> {
    /// The items still to come: those submitted but not handed out, plus
    /// what the input says it has left. Exact when the input's hint is;
    /// failed items count, since each is handed out as an `Err`. Only a
    /// cancellation or a failure of the backend itself ends a stream
    /// sooner (with one `Err`). An input with no upper bound gives only
    /// the held items as the lower bound.
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            return (self.ready.len(), Some(self.ready.len()));
        }
        let held = self.next_start - self.handed_out;
        let (low, high) = self
            .input
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint);
        match high.and_then(|high| high.checked_add(held)) {
            Some(high) => (low.saturating_add(held), Some(high)),
            // An endless input (`0..`, whose lower bound is usize::MAX)
            // ends only by cancellation: promise only what is held, so a
            // `collect` does not reserve for ever.
            None => (held, None),
        }
    }
}

impl<I: Iterator, O> Stream<'_, I, O> {
    /// Stops the chunks still running: waiting until none runs, or, for a
    /// stream that was polled (whose caller must not block), without
    /// waiting.
    fn stop_running(&mut self) {
        if self.running.is_empty() {
            return;
        }
        if self.polled {
            self.engine.get().abandon();
        } else {
            self.engine.get().cancel();
        }
    }
}

impl<I: Iterator, O> Drop for Stream<'_, I, O> {
    fn drop(&mut self) {
        self.stop_running();
        if let Some(journal) = self.journal.as_mut() {
            journal.finish();
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

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
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

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
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

/// An ordered stream over `input` on an engine of its own, with its
/// chunks read back from and recorded in `journal`.
pub(crate) fn imap_journaled<'a, I, O>(
    settings: &StreamSettings,
    input: I,
    engine: Box<dyn StreamEngine>,
    journal: Box<dyn StreamRecords<I::Item, O> + Send + 'a>,
) -> Imap<'a, I, O>
where
    I: Iterator<Item: Send + 'static>,
    O: 'static,
{
    let stream = Stream::new(settings, input, EngineRef::Owned(engine), true).with_journal(journal);
    Imap {
        stream: stream.into(),
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
    Imap {
        stream: stream.into(),
    }
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
    ImapUnordered {
        stream: stream.into(),
    }
}
