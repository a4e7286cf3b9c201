//! Streaming: [`Imap`] (lazy, bounded `imap` / `imap_unordered`, in
//! `imap.rs`) and [`Session`] (workers that start once and serve many
//! calls, in `session.rs`), and the settings both take from their pool.
//!
//! Both drive a [`StreamEngine`] that the pool's backend opened
//! (the driver's `open_stream`): something that
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

mod imap;
#[cfg(feature = "async")]
mod relay;
mod session;

#[cfg(feature = "async")]
pub(crate) use imap::Source;
pub use imap::{Imap, ImapUnordered};
pub(crate) use imap::{StreamRecords, imap, imap_journaled, imap_unordered};
#[cfg(feature = "async")]
pub(crate) use relay::Relay;
pub use session::Session;

use crate::backend::{DEFAULT_IN_FLIGHT_PER_WORKER, Driver, StreamEngine};
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::job::StreamJob;
use crate::progress::ProgressMode;
use std::sync::Arc;

/// Items per chunk of a stream when the pool has no
/// [`chunk_size`](crate::PoolBuilder::chunk_size).
pub const STREAM_CHUNK_SIZE: usize = 256;

/// What a stream or session takes from its pool.
#[derive(Clone)]
pub(crate) struct StreamSettings {
    /// The backend that opens the engine (the serial one for nested use).
    pub(crate) backend: Arc<dyn Driver>,
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
    pub(crate) fn stream_chunk_size(&self) -> usize {
        self.chunk_size.unwrap_or(STREAM_CHUNK_SIZE)
    }

    /// Items per chunk of a session call over `total` items: the pool's
    /// chunk size, else `ceil(total / (4 * workers))`, the rule of Python's
    /// `Pool.map`. A session's chunk costs a round trip through a socket,
    /// so fewer, larger chunks than a plain call's pay off; a session's
    /// `map` combines nothing, so the grouping cannot change a result.
    pub(super) fn batch_chunk_size(&self, total: usize) -> usize {
        self.chunk_size.unwrap_or_else(|| {
            total
                .div_ceil(DEFAULT_IN_FLIGHT_PER_WORKER * self.workers)
                .max(1)
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
