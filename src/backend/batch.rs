//! The default stream engine: chunks submitted so far run together as one
//! batch job on the backend's [`run`](super::Backend::run) when a result is
//! wanted. It works on any backend, so a backend that implements only
//! `run` still gets streams and sessions. On MPI every rank submits the
//! same chunks in the same order (the program is SPMD), so the batch calls
//! match up across ranks.

use super::{StreamContext, StreamEngine, stream_cancelled};
use crate::error::Error;
use crate::job::{ChunkResults, StreamChunk, StreamJob};
use std::collections::VecDeque;
use std::sync::Arc;

/// Runs submitted chunks as one batch job; see the module docs.
pub(crate) struct BatchEngine {
    job: Arc<dyn StreamJob>,
    pending: Vec<StreamChunk>,
    done: VecDeque<ChunkResults>,
}

impl BatchEngine {
    pub(crate) fn new(job: Arc<dyn StreamJob>) -> BatchEngine {
        BatchEngine {
            job,
            pending: Vec::new(),
            done: VecDeque::new(),
        }
    }
}

impl StreamEngine for BatchEngine {
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error> {
        self.pending.push(chunk);
        Ok(())
    }

    fn next_done(&mut self, context: &StreamContext<'_>) -> Result<ChunkResults, Error> {
        if let Some(chunk) = self.done.pop_front() {
            return Ok(chunk);
        }
        if context.is_cancelled() {
            return Err(stream_cancelled());
        }
        let chunks = std::mem::take(&mut self.pending);
        let results = self.job.run_batch(chunks, &mut |job| context.run(job));
        self.done.extend(results);
        self.done
            .pop_front()
            .ok_or_else(|| Error::backend("stream", "waited with no chunk submitted"))
    }

    fn cancel(&mut self) {
        self.pending.clear();
        self.done.clear();
    }
}
