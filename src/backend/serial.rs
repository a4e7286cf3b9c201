//! The serial backend: every chunk in order on the calling thread.
//!
//! The reference the other backends are tested against, the backend a pool
//! falls back to inside a task of another pool (nested use), and the one to
//! choose when debugging (`PARPOOL_BACKEND=serial`): a panic's backtrace
//! points straight at the caller. Its streams use the default batch engine
//! with one chunk in flight: reading ahead would gain nothing and cost
//! cache.

use super::{BackendKind, Capabilities, Driver, SpawnedCall};
use crate::error::Error;
use crate::job::ChunkJob;

/// Runs chunks one after another on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct SerialBackend;

backend_through_driver!(SerialBackend);

impl Driver for SerialBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Serial
    }

    fn workers(&self) -> usize {
        1
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shares_memory: true,
            in_flight_per_worker: 1,
            ..Capabilities::default()
        }
    }

    /// An awaited serial call runs as one task of the process's shared
    /// thread pool: still serial, in chunk order, and no thread of its own.
    fn spawn_call(&self, call: SpawnedCall) -> Result<(), SpawnedCall> {
        super::ThreadsBackend::shared().spawn_call(call)
    }

    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        for chunk in 0..job.plan().chunk_count() {
            if job.should_stop() {
                break;
            }
            if job.is_chunk_done(chunk) {
                continue; // read back from a journal
            }
            // A failing task is recorded in the job; `should_stop` then ends
            // the loop for fail-fast jobs.
            let _ = job.run_chunk(chunk, None);
        }
        Ok(())
    }
}
