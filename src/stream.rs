//! Streaming: [`Imap`] (lazy, bounded `imap` / `imap_unordered`) and
//! [`Session`] (workers that start once and serve many calls).
//!
//! Both sit on an *engine*: something that accepts chunks of items, runs
//! them on workers, and hands back finished chunks. [`Imap`] pulls chunks
//! from the input iterator only while fewer than
//! [`in_flight`](crate::PoolBuilder::in_flight) chunks are submitted but not
//! yet handed to the caller, so memory stays bounded whatever the length of
//! the input.
//!
//! | backend | engine |
//! |---|---|
//! | threads | each chunk is a task on the pool's own rayon threads |
//! | processes | worker processes forked once per session; each chunk's items are encoded (postcard) and sent to an idle worker, results come back the same way |
//! | serial, MPI, custom | submitted chunks are run together as one ordinary call (`try_map`) when the caller asks for the next result |
//!
//! Dropping an [`Imap`] cancels what is still running: thread tasks stop
//! before their next item, busy worker processes are killed. Nothing the
//! stream started outlives it.

#[cfg(test)]
use crate::backend::BackendKind;
use crate::error::{Error, UNKNOWN_TOTAL};
use crate::job::{self, Watch};
use crate::pool::Pool;
use crate::progress::Meter;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Items per chunk of a stream when the pool has no
/// [`chunk_size`](crate::PoolBuilder::chunk_size).
pub const STREAM_CHUNK_SIZE: usize = 256;

/// Chunks in flight per worker when the pool has no
/// [`in_flight`](crate::PoolBuilder::in_flight) setting.
pub const IN_FLIGHT_PER_WORKER: usize = 4;

/// How often a waiting engine looks at the cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// A chunk of consecutive items of a stream.
pub(crate) struct ChunkIn<T> {
    /// Position of the chunk in the stream: 0, 1, 2, ...
    pub(crate) seq: u64,
    /// Index of the first item in the stream.
    pub(crate) start: usize,
    pub(crate) items: Vec<T>,
}

/// The results of a chunk, one per item, in item order.
pub(crate) struct ChunkOut<O> {
    pub(crate) seq: u64,
    pub(crate) start: usize,
    pub(crate) results: Vec<Result<O, Error>>,
}

/// Runs chunks for a stream. Item failures travel inside [`ChunkOut`];
/// `Err` from a method means the engine itself failed or the wait was
/// cancelled.
pub(crate) trait Engine<T, O>: Send {
    /// Starts (or queues) a chunk.
    fn submit(&mut self, chunk: ChunkIn<T>) -> Result<(), Error>;

    /// Blocks until a submitted chunk is finished and returns it, in any
    /// order. Returns `Err(cancelled)` soon after `cancelled()` turns true.
    /// Called only while some submitted chunk has not been returned.
    fn next_done(&mut self, cancelled: &dyn Fn() -> bool) -> Result<ChunkOut<O>, Error>;

    /// Abandons every submitted chunk, stopping what runs as soon as it
    /// can, and waits until nothing runs. The engine stays usable.
    fn cancel(&mut self);
}

/// The function a stream runs, shared with its workers.
pub(crate) type SharedFn<T, O> = Arc<dyn Fn(T) -> O + Send + Sync>;

/// Builds the engine for `pool`'s backend.
pub(crate) fn engine_for<T, O>(
    pool: &Pool,
    function: SharedFn<T, O>,
) -> Result<Box<dyn Engine<T, O>>, Error>
where
    T: Send + Serialize + DeserializeOwned + 'static,
    O: Send + Serialize + DeserializeOwned + 'static,
{
    if job::inside_task() {
        // Nested use runs serially, as for every other call.
        let serial = Pool::with_backend(crate::backend::SerialBackend);
        return Ok(Box::new(BatchEngine::new(serial, function)));
    }
    if let Some(threads) = pool.rayon_pool() {
        return Ok(Box::new(ThreadEngine::new(threads, function)));
    }
    #[cfg(unix)]
    if let Some(settings) = pool.process_settings() {
        return Ok(Box::new(crate::backend::ProcessEngine::start(
            function, settings,
        )?));
    }
    Ok(Box::new(BatchEngine::new(
        pool.without_progress(),
        function,
    )))
}

// --- the batch engine: serial, MPI, custom backends ----------------------------

/// Runs the chunks submitted so far as one `try_map` call when a result is
/// wanted. Works on any backend; on MPI every rank submits the same chunks
/// in the same order (the program is SPMD), so the calls match up.
struct BatchEngine<T, O> {
    pool: Pool,
    function: SharedFn<T, O>,
    pending: Vec<ChunkIn<T>>,
    done: VecDeque<ChunkOut<O>>,
}

impl<T, O> BatchEngine<T, O> {
    fn new(pool: Pool, function: SharedFn<T, O>) -> Self {
        BatchEngine {
            pool,
            function,
            pending: Vec::new(),
            done: VecDeque::new(),
        }
    }
}

impl<T, O> Engine<T, O> for BatchEngine<T, O>
where
    T: Send,
    O: Send + Serialize + DeserializeOwned,
{
    fn submit(&mut self, chunk: ChunkIn<T>) -> Result<(), Error> {
        self.pending.push(chunk);
        Ok(())
    }

    fn next_done(&mut self, cancelled: &dyn Fn() -> bool) -> Result<ChunkOut<O>, Error> {
        if let Some(chunk) = self.done.pop_front() {
            return Ok(chunk);
        }
        if cancelled() {
            return Err(stream_cancelled());
        }
        let chunks = std::mem::take(&mut self.pending);
        let shape: Vec<(u64, usize, usize)> = chunks
            .iter()
            .map(|chunk| (chunk.seq, chunk.start, chunk.items.len()))
            .collect();
        let items = chunks.into_iter().flat_map(|chunk| {
            let start = chunk.start;
            chunk
                .items
                .into_iter()
                .enumerate()
                .map(move |(offset, item)| (start + offset, item))
        });
        let function = &self.function;
        let mut results = self
            .pool
            .try_map(|(_, item): (usize, T)| function(item), items)
            .into_iter();
        for (seq, start, len) in shape {
            let results = results
                .by_ref()
                .take(len)
                .enumerate()
                .map(|(offset, result)| {
                    result.map_err(|error| error.for_task(start + offset, UNKNOWN_TOTAL))
                })
                .collect();
            self.done.push_back(ChunkOut {
                seq,
                start,
                results,
            });
        }
        self.done
            .pop_front()
            .ok_or_else(|| Error::backend("stream", "waited with no chunk submitted"))
    }

    fn cancel(&mut self) {
        self.pending.clear();
        self.done.clear();
    }
}

// --- the thread engine --------------------------------------------------------------

/// Runs each chunk as a task on the pool's rayon threads.
struct ThreadEngine<T, O> {
    threads: Arc<rayon::ThreadPool>,
    function: SharedFn<T, O>,
    sender: mpsc::Sender<ChunkOut<O>>,
    receiver: mpsc::Receiver<ChunkOut<O>>,
    /// Raised by `cancel`: running tasks stop before their next item.
    stop: Arc<AtomicBool>,
    /// Tasks spawned whose message has not been received.
    running: usize,
}

impl<T, O> ThreadEngine<T, O> {
    fn new(threads: Arc<rayon::ThreadPool>, function: SharedFn<T, O>) -> Self {
        let (sender, receiver) = mpsc::channel();
        ThreadEngine {
            threads,
            function,
            sender,
            receiver,
            stop: Arc::new(AtomicBool::new(false)),
            running: 0,
        }
    }
}

impl<T, O> Engine<T, O> for ThreadEngine<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
{
    fn submit(&mut self, chunk: ChunkIn<T>) -> Result<(), Error> {
        let function = self.function.clone();
        let sender = self.sender.clone();
        let stop = self.stop.clone();
        self.running += 1;
        self.threads.spawn(move || {
            let mut results = Vec::with_capacity(chunk.items.len());
            for (offset, item) in chunk.items.into_iter().enumerate() {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                results.push(job::run_stream_task(&*function, item, chunk.start + offset));
            }
            // The receiver is gone only if the engine is; nothing to report.
            let _ = sender.send(ChunkOut {
                seq: chunk.seq,
                start: chunk.start,
                results,
            });
        });
        Ok(())
    }

    fn next_done(&mut self, cancelled: &dyn Fn() -> bool) -> Result<ChunkOut<O>, Error> {
        loop {
            if cancelled() {
                return Err(stream_cancelled());
            }
            match self.receiver.recv_timeout(CANCEL_POLL) {
                Ok(chunk) => {
                    self.running -= 1;
                    return Ok(chunk);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::backend("threads", "a stream task vanished"));
                }
            }
        }
    }

    fn cancel(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wait_for_tasks();
        self.stop = Arc::new(AtomicBool::new(false));
    }
}

impl<T, O> Drop for ThreadEngine<T, O> {
    fn drop(&mut self) {
        // The same as cancel: nothing of the engine runs after it is gone.
        self.stop.store(true, Ordering::Release);
        self.wait_for_tasks();
    }
}

impl<T, O> ThreadEngine<T, O> {
    /// Waits until every spawned task has sent its one message (early or
    /// not), so nothing of this engine runs after it returns.
    fn wait_for_tasks(&mut self) {
        while self.running > 0 && self.receiver.recv().is_ok() {
            self.running -= 1;
        }
    }
}

fn stream_cancelled() -> Error {
    Error::cancelled("the stream was cancelled")
}

// --- Imap -------------------------------------------------------------------------

/// The engine a stream runs on: its own, or a [`Session`]'s.
enum EngineRef<'a, T, O> {
    Owned(Box<dyn Engine<T, O>>),
    Borrowed(&'a mut dyn Engine<T, O>),
}

impl<T, O> EngineRef<'_, T, O> {
    fn get(&mut self) -> &mut dyn Engine<T, O> {
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
/// [`CancelToken`](crate::CancelToken) fires, the next item is an error for
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
    engine: EngineRef<'a, I::Item, O>,
    chunk_size: usize,
    in_flight: usize,
    ordered: bool,
    watch: Watch,
    next_seq: u64,
    next_start: usize,
    /// Submitted chunks not yet returned by the engine: seq -> start.
    running: BTreeMap<u64, usize>,
    /// Finished chunks waiting for their turn (ordered streams).
    finished: BTreeMap<u64, ChunkOut<O>>,
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
{
    fn new(pool: &Pool, input: I, engine: EngineRef<'a, I::Item, O>, ordered: bool) -> Self {
        let total = match input.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        Stream {
            input: Some(input),
            engine,
            chunk_size: pool.stream_chunk_size(),
            in_flight: pool.in_flight(),
            ordered,
            watch: Watch {
                cancel: pool.cancel_token().cloned(),
                meter: Meter::start(pool.progress_mode(), total),
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
            let chunk = ChunkIn {
                seq: self.next_seq,
                start: self.next_start,
                items,
            };
            self.running.insert(chunk.seq, chunk.start);
            self.next_seq += 1;
            self.next_start += chunk.items.len();
            self.engine.get().submit(chunk)?;
        }
        Ok(())
    }

    /// Moves a finished chunk's results to `ready`.
    fn hand_out(&mut self, chunk: ChunkOut<O>) {
        self.watch.items_done(chunk.results.len());
        let start = chunk.start;
        self.ready.extend(
            chunk
                .results
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
                && let Some(chunk) = self.finished.remove(&self.next_out)
            {
                self.next_out += 1;
                self.hand_out(chunk);
                continue;
            }
            if self.running.is_empty() {
                self.ended = true;
                continue;
            }
            let watch = &self.watch;
            match self.engine.get().next_done(&|| watch.cancelled()) {
                Ok(chunk) => {
                    self.running.remove(&chunk.seq);
                    if self.ordered {
                        self.finished.insert(chunk.seq, chunk);
                    } else {
                        self.hand_out(chunk);
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

impl<I: Iterator, O> Iterator for Imap<'_, I, O> {
    type Item = Result<O, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next_result().map(|(_, result)| result)
    }
}

impl<I: Iterator, O> Iterator for ImapUnordered<'_, I, O> {
    type Item = (usize, Result<O, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next_result()
    }
}

impl<I: Iterator, O> std::iter::FusedIterator for Imap<'_, I, O> {}

impl<I: Iterator, O> std::iter::FusedIterator for ImapUnordered<'_, I, O> {}

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
pub(crate) fn imap<'a, I: Iterator, O>(
    pool: &Pool,
    input: I,
    engine: Box<dyn Engine<I::Item, O>>,
) -> Imap<'a, I, O> {
    let stream = Stream::new(pool, input, EngineRef::Owned(engine), true);
    Imap { stream }
}

/// An unordered stream over `input` on an engine of its own.
pub(crate) fn imap_unordered<'a, I: Iterator, O>(
    pool: &Pool,
    input: I,
    engine: Box<dyn Engine<I::Item, O>>,
) -> ImapUnordered<'a, I, O> {
    let stream = Stream::new(pool, input, EngineRef::Owned(engine), false);
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
    pool: Pool,
    engine: Box<dyn Engine<T, O>>,
}

impl<T, O> fmt::Debug for Session<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.pool.kind())
            .field("workers", &self.pool.workers())
            .finish()
    }
}

impl<T, O> Session<T, O>
where
    T: Send + Serialize + DeserializeOwned + 'static,
    O: Send + Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn new(pool: &Pool, function: SharedFn<T, O>) -> Result<Self, Error> {
        Ok(Session {
            pool: pool.clone(),
            engine: engine_for(pool, function)?,
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
    pub fn try_map(&mut self, items: impl IntoIterator<Item = T>) -> Vec<Result<O, Error>> {
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
            &self.pool,
            input,
            EngineRef::Borrowed(&mut *self.engine),
            ordered,
        )
    }

    /// A call over `total` known items: chunks of
    /// [`batch_chunk_size`](Pool::batch_chunk_size), errors naming
    /// `task i of total`.
    fn batch(&mut self, items: Vec<T>, total: usize) -> impl Iterator<Item = Result<O, Error>> {
        let chunk_size = self.pool.batch_chunk_size(total);
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
    use super::*;
    use std::collections::BTreeSet;

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
