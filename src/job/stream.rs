//! The type-erased job of a stream or session: [`StreamJob`], and the
//! chunks that travel through a backend's stream engine.
//!
//! A batch [`ChunkJob`] owns all its items up front; a stream's items arrive a
//! chunk at a time, so its job is the *function*, and each chunk carries its
//! items: a [`StreamChunk`] in, a [`ChunkResults`] out. A backend's stream
//! engine runs a chunk in this process ([`StreamJob::run_chunk`]), in
//! another process ([`StreamJob::encode_items`], then
//! [`StreamJob::run_encoded`] there and [`StreamJob::decode_results`] here),
//! or as part of a batch job on [`Backend::run`](crate::Backend::run)
//! ([`StreamJob::run_batch`]).

// The encoded path serves the out-of-process engines: the process backend
// (Unix) and MPI. A Windows build without MPI has neither.
#![cfg_attr(not(any(unix, feature = "mpi")), allow(dead_code))]

use super::codec::Codec;
use super::map::MapJob;
use super::{ChunkJob, TaskLimits, Watch, unwind};
use crate::error::{Error, Step, UNKNOWN_TOTAL};
use crate::plan::ChunkPlan;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a chunk sits in its stream: its position, first item and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Position of the chunk in the stream: 0, 1, 2, ...
    pub seq: u64,
    /// Index of the chunk's first item in the stream.
    pub start: usize,
    /// Number of items.
    pub len: usize,
}

impl ChunkSpan {
    /// The stream indices of the chunk's items.
    pub fn items(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// A chunk of consecutive items of a stream, on its way to a worker. The
/// items are typed inside and opaque to a backend: it runs, encodes or
/// batches them through the [`StreamJob`].
pub struct StreamChunk {
    span: ChunkSpan,
    /// A `Vec<T>` of the job's item type.
    items: Box<dyn Any + Send>,
}

impl StreamChunk {
    pub(crate) fn new<T: Send + 'static>(seq: u64, start: usize, items: Vec<T>) -> StreamChunk {
        StreamChunk {
            span: ChunkSpan {
                seq,
                start,
                len: items.len(),
            },
            items: Box::new(items),
        }
    }

    /// Where the chunk sits in its stream.
    pub fn span(&self) -> ChunkSpan {
        self.span
    }

    fn into_items<T: 'static>(self) -> Vec<T> {
        match self.items.downcast::<Vec<T>>() {
            Ok(items) => *items,
            // Chunks are made by the stream for its own job's item type.
            Err(_) => unreachable!("a stream chunk of another item type"),
        }
    }
}

impl fmt::Debug for StreamChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamChunk")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

/// The results of a stream chunk: one per item, in item order, typed
/// inside. A backend's engine can also fail items it could not run (a
/// worker that died on them, a timeout) with [`set_failure`], or make a
/// chunk of nothing but failures with [`failed`].
///
/// [`set_failure`]: ChunkResults::set_failure
/// [`failed`]: ChunkResults::failed
pub struct ChunkResults {
    span: ChunkSpan,
    /// A `Vec<Result<O, Error>>` of the job's result type; `None` for a
    /// chunk of failures only.
    values: Option<Box<dyn Any + Send>>,
    /// Failures that replace values, by stream index.
    failures: BTreeMap<usize, Error>,
}

impl ChunkResults {
    fn new<O: Send + 'static>(span: ChunkSpan, values: Vec<Result<O, Error>>) -> ChunkResults {
        ChunkResults {
            span,
            values: Some(Box::new(values)),
            failures: BTreeMap::new(),
        }
    }

    /// A chunk whose every item failed: `error(index)` for each stream
    /// index of `span`.
    pub fn failed(span: ChunkSpan, error: impl Fn(usize) -> Error) -> ChunkResults {
        ChunkResults {
            span,
            values: None,
            failures: span.items().map(|index| (index, error(index))).collect(),
        }
    }

    /// Replaces the result of item `index` (a stream index in the chunk)
    /// with `error`.
    pub fn set_failure(&mut self, index: usize, error: Error) {
        if self.span.items().contains(&index) {
            self.failures.insert(index, error);
        }
    }

    /// Where the chunk sits in its stream.
    pub fn span(&self) -> ChunkSpan {
        self.span
    }

    /// The typed results, with the failures in their places. Items with
    /// neither a value nor a failure (a chunk stopped early) are missing
    /// from the end.
    pub(crate) fn into_typed<O: 'static>(self) -> Vec<Result<O, Error>> {
        let mut values: Vec<Result<O, Error>> = match self.values {
            Some(values) => match values.downcast::<Vec<Result<O, Error>>>() {
                Ok(values) => *values,
                Err(_) => unreachable!("stream results of another result type"),
            },
            None => Vec::new(),
        };
        for (index, error) in self.failures {
            let offset = index - self.span.start;
            if offset < values.len() {
                values[offset] = Err(error);
            } else if offset == values.len() {
                values.push(Err(error));
            }
        }
        values
    }
}

impl fmt::Debug for ChunkResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkResults")
            .field("span", &self.span)
            .field("failures", &self.failures.len())
            .finish_non_exhaustive()
    }
}

/// The function of a stream or session, as a backend's stream engine sees
/// it. Implemented only inside this crate; engines (including a custom
/// backend's) call it. See the crate-private `Driver::open_stream`.
pub(crate) trait StreamJob: Send + Sync {
    /// Runs `chunk` on the calling thread, item by item, each task's panic
    /// caught as its item's error. Checks `stop` before each item and
    /// returns early (with fewer results) once it is true.
    fn run_chunk(&self, chunk: StreamChunk, stop: &dyn Fn() -> bool) -> ChunkResults;

    /// The chunk's items encoded for a worker process, or, if they cannot
    /// be encoded, the chunk's results: every item failed.
    fn encode_items(&self, chunk: StreamChunk) -> Result<Vec<u8>, ChunkResults>;

    /// In a worker process: decodes items encoded by
    /// [`encode_items`](StreamJob::encode_items) (the chunk's length is
    /// taken from them, not from `span`), runs each one whose
    /// stream index is not in `skip` (storing the index in `current_item`
    /// first, and a marker past every index while it encodes the results),
    /// and encodes the results for
    /// [`decode_results`](StreamJob::decode_results). `Err` if the items
    /// cannot be decoded.
    fn run_encoded(
        &self,
        span: ChunkSpan,
        items: &[u8],
        skip: &[usize],
        current_item: &AtomicUsize,
    ) -> Result<Vec<u8>, Error>;

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Runs `chunk` here, every item, and encodes its results for
    /// [`decode_results`](StreamJob::decode_results) in other copies of
    /// this job (the MPI backend's ranks). `Err` only if the results cannot
    /// be encoded at all.
    fn run_and_encode(&self, chunk: StreamChunk) -> Result<Vec<u8>, Error>;

    /// Decodes what [`run_encoded`](StreamJob::run_encoded) returned for
    /// `span`; bytes that cannot be decoded fail every item.
    fn decode_results(&self, span: ChunkSpan, bytes: &[u8]) -> ChunkResults;

    /// Runs `chunks` together as one batch [`ChunkJob`] through `run` (a
    /// backend's [`run`](crate::Backend::run)) and returns their results,
    /// in the order given. If `run` fails, the items it did not run get its
    /// error.
    fn run_batch(
        &self,
        chunks: Vec<StreamChunk>,
        run: &mut dyn FnMut(&dyn ChunkJob) -> Result<(), Error>,
    ) -> Vec<ChunkResults>;

    /// The per-task limits of the stream's pool.
    fn limits(&self) -> TaskLimits;
}

/// A stream's function `F: Fn(T) -> O`, typed, with the codecs its items
/// and results travel by (a local pool's never travel: `Codec::local`).
pub(crate) struct TypedStreamJob<T, O, F> {
    function: F,
    limits: TaskLimits,
    items: Codec<T>,
    results: Codec<Result<O, Error>>,
}

impl<T, O, F> TypedStreamJob<T, O, F> {
    pub(crate) fn new(
        function: F,
        limits: TaskLimits,
        (items, results): (Codec<T>, Codec<Result<O, Error>>),
    ) -> Self {
        TypedStreamJob {
            function,
            limits,
            items,
            results,
        }
    }
}

impl<T, O: Send, F: Fn(T) -> O> TypedStreamJob<T, O, F> {
    /// Runs `items` (stream indices from `start`), each index in `skip`
    /// failing as skipped, telling `current_item` (a supervisor) which one
    /// runs and then that results are being sent, and encodes the results
    /// for [`decode_results`](StreamJob::decode_results).
    fn run_items_encoded(
        &self,
        start: usize,
        items: Vec<T>,
        skip: &[usize],
        current_item: Option<&AtomicUsize>,
    ) -> Result<Vec<u8>, Error> {
        let results: Vec<Result<O, Error>> = (start..)
            .zip(items)
            .map(|(index, item)| {
                if skip.contains(&index) {
                    return Err(skipped());
                }
                if let Some(current_item) = current_item {
                    current_item.store(index, Ordering::Release);
                }
                unwind::run_task(index, UNKNOWN_TOTAL, || (self.function)(item))
            })
            .collect();
        if let Some(current_item) = current_item {
            current_item.store(super::SENDING_RESULTS, Ordering::Release);
        }
        self.results
            .encode_checked(&results, (start, UNKNOWN_TOTAL), Some(Err))
    }
}

impl<T, O, F> StreamJob for TypedStreamJob<T, O, F>
where
    T: Send + 'static,
    O: Send + 'static,
    F: Fn(T) -> O + Send + Sync,
{
    fn run_chunk(&self, chunk: StreamChunk, stop: &dyn Fn() -> bool) -> ChunkResults {
        let span = chunk.span();
        let mut results = Vec::with_capacity(span.len);
        for (index, item) in span.items().zip(chunk.into_items::<T>()) {
            if stop() {
                break;
            }
            results.push(unwind::run_task(index, UNKNOWN_TOTAL, || {
                (self.function)(item)
            }));
        }
        ChunkResults::new(span, results)
    }

    fn encode_items(&self, chunk: StreamChunk) -> Result<Vec<u8>, ChunkResults> {
        let span = chunk.span();
        let items = chunk.into_items::<T>();
        self.items
            .encode_checked(&items, (span.start, UNKNOWN_TOTAL), None)
            .map_err(|error| {
                let failure = input_failure(&error, Step::Encoded);
                ChunkResults::failed(span, |index| {
                    if failure.task_index() == Some(index) {
                        failure.clone()
                    } else {
                        let why = format!("its chunk could not travel: {failure}");
                        Error::input_encoding(index, UNKNOWN_TOTAL, Step::Encoded, why)
                    }
                })
            })
    }

    fn run_encoded(
        &self,
        span: ChunkSpan,
        items: &[u8],
        skip: &[usize],
        current_item: &AtomicUsize,
    ) -> Result<Vec<u8>, Error> {
        let decoded = self.items.decode_prefix(items, (span.start, UNKNOWN_TOTAL));
        let items: Vec<T> = match decoded {
            Ok(items) => items,
            Err((_, error)) => return Err(input_failure(&error, Step::Decoded)),
        };
        self.run_items_encoded(span.start, items, skip, Some(current_item))
    }

    fn run_and_encode(&self, chunk: StreamChunk) -> Result<Vec<u8>, Error> {
        let start = chunk.span().start;
        self.run_items_encoded(start, chunk.into_items::<T>(), &[], None)
    }

    fn decode_results(&self, span: ChunkSpan, bytes: &[u8]) -> ChunkResults {
        let decoded = self
            .results
            .decode_prefix(bytes, (span.start, UNKNOWN_TOTAL));
        let (mut results, failure) = match decoded {
            Ok(results) if results.len() == span.len => (results, None),
            Ok(results) => {
                let error = Error::encoding(
                    span.start,
                    UNKNOWN_TOTAL,
                    Step::Decoded,
                    format!("{} results for a chunk of {}", results.len(), span.len),
                );
                (Vec::new(), Some(error))
            }
            Err((decoded, error)) => (decoded, Some(error)),
        };
        if let Some(error) = failure {
            // The item that failed gets its error; the ones after it, which
            // cannot be read past it, get the same, renamed.
            results.truncate(span.len);
            let failed_at = span.start + results.len();
            results.extend((failed_at..span.items().end).map(|index| {
                if error.task_index() == Some(index) {
                    Err(error.clone())
                } else {
                    Err(Error::encoding(index, UNKNOWN_TOTAL, Step::Decoded, &error))
                }
            }));
        }
        ChunkResults::new(span, results)
    }

    fn run_batch(
        &self,
        chunks: Vec<StreamChunk>,
        run: &mut dyn FnMut(&dyn ChunkJob) -> Result<(), Error>,
    ) -> Vec<ChunkResults> {
        let spans: Vec<ChunkSpan> = chunks.iter().map(StreamChunk::span).collect();
        // Items carry their position in the batch; errors are renamed to
        // stream indices below.
        let items: Vec<(usize, T)> = chunks
            .into_iter()
            .flat_map(StreamChunk::into_items::<T>)
            .enumerate()
            .collect();
        let total = items.len();
        let function = |_: &mut (), (position, item): (usize, T)| {
            unwind::run_task(position, total, || (self.function)(item))
        };
        let job = MapJob::new(
            items,
            batch_plan(&spans, total),
            (|| (), function),
            (Some(Err), self.results),
            Watch::default(),
            self.limits,
        );
        let outputs = match run(&job) {
            Ok(()) => job.into_outputs_or(|_, why| Err(why.clone())),
            Err(error) => job.into_outputs_or(|_, _| Err(error.clone())),
        };
        let mut outputs = outputs.into_iter();
        spans
            .into_iter()
            .map(|span| {
                let results = span
                    .items()
                    .zip(outputs.by_ref())
                    .map(|(index, result)| {
                        result.map_err(|error| error.for_task(index, UNKNOWN_TOTAL))
                    })
                    .collect();
                ChunkResults::new(span, results)
            })
            .collect()
    }

    fn limits(&self) -> TaskLimits {
        self.limits
    }
}

/// The plan of a batch of stream chunks: the chunks themselves where they
/// have one size (all but a last, shorter one), else the default plan.
fn batch_plan(spans: &[ChunkSpan], total: usize) -> ChunkPlan {
    let Some(first) = spans.first() else {
        return ChunkPlan::with_default_size(total);
    };
    let uniform = spans.len() <= 1
        || (spans[..spans.len() - 1]
            .iter()
            .all(|span| span.len == first.len)
            && spans[spans.len() - 1].len <= first.len);
    if uniform {
        ChunkPlan::new(total, first.len)
    } else {
        ChunkPlan::with_default_size(total)
    }
}

/// The error of an input that could not be `action` (encoded or
/// decoded): the codec's error, as an input's; a panic in the item's
/// `Serialize` or `Deserialize` with the panic's message.
fn input_failure(error: &Error, action: Step) -> Error {
    match error.task_index() {
        Some(index) if error.is_panic() => {
            let which = match action {
                Step::Decoded => "Deserialize",
                _ => "Serialize",
            };
            let message = error.panic_message().unwrap_or_default();
            Error::input_encoding(
                index,
                UNKNOWN_TOTAL,
                action,
                format!("{which} panicked: {message}"),
            )
        }
        _ => error.clone().into_input(),
    }
}

/// Stands in for an item a worker was told to skip; the engine replaces it
/// with the item's recorded failure.
fn skipped() -> Error {
    Error::backend("processes", "skipped: failed earlier")
}
