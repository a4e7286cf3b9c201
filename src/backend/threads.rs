//! The thread backend: a dedicated rayon thread pool.
//!
//! Each `Pool` with this backend owns a `rayon::ThreadPool` of exactly
//! `workers` threads (never rayon's global pool, so a parpool call cannot be
//! starved by, or starve, other rayon users in the program). A call
//! broadcasts one claim loop to every thread; each loop takes the next chunk
//! index from an atomic counter until none are left or the job says stop. So
//! chunks are claimed dynamically: a slow chunk holds up one thread, not a
//! precomputed share of the work.
//!
//! The threads live as long as the pool (and its clones, and any stream
//! still running on it) and exit when the last of them is dropped.

use super::{Backend, BackendKind};
use crate::error::Error;
use crate::job::Job;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs chunks on its own rayon thread pool.
#[derive(Debug)]
pub struct ThreadsBackend {
    pool: Arc<rayon::ThreadPool>,
    workers: usize,
}

impl ThreadsBackend {
    /// A backend with `workers` threads (at least 1).
    pub fn new(workers: usize) -> Result<ThreadsBackend, Error> {
        super::check_workers(workers)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|index| format!("parpool-worker-{index}"))
            .build()
            .map_err(|e| Error::backend("threads", e))?;
        Ok(ThreadsBackend {
            pool: Arc::new(pool),
            workers,
        })
    }

    /// The rayon pool, shared with the streams (`imap`) of this backend.
    pub(crate) fn rayon_pool(&self) -> Arc<rayon::ThreadPool> {
        self.pool.clone()
    }
}

impl Backend for ThreadsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Threads
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, job: &dyn Job) -> Result<(), Error> {
        let chunk_count = job.plan().chunk_count();
        let next_chunk = AtomicUsize::new(0);
        let claim_next_chunk = || {
            let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
            (chunk < chunk_count && !job.should_stop()).then_some(chunk)
        };
        if chunk_count == 1 {
            // Nothing to share: skip waking the other threads.
            self.pool.install(|| {
                let _ = job.run_chunk(0, None);
            });
            return Ok(());
        }
        self.pool.broadcast(|_| {
            while let Some(chunk) = claim_next_chunk() {
                // Failures are recorded in the job (and stop a fail-fast
                // job through `should_stop`).
                let _ = job.run_chunk(chunk, None);
            }
        });
        Ok(())
    }
}
