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
//! A stream's engine spawns each chunk as a task on the same threads; a
//! stop flag checked before each item lets `cancel` (and dropping the
//! stream) end the running chunks after their current item.
//!
//! The threads live as long as the pool (and its clones, and any stream
//! still running on it) and exit when the last of them is dropped.

use super::{Backend, BackendKind, Capabilities, StreamContext, StreamEngine, stream_cancelled};
use crate::error::Error;
use crate::job::{ChunkResults, Job, StreamChunk, StreamJob};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

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
}

impl Backend for ThreadsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Threads
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shares_memory: true,
            ..Capabilities::default()
        }
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

    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(ThreadEngine::new(self.pool.clone(), job)))
    }
}

/// How often a waiting stream looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Runs each chunk of a stream as a task on the pool's rayon threads.
struct ThreadEngine {
    threads: Arc<rayon::ThreadPool>,
    job: Arc<dyn StreamJob>,
    sender: mpsc::Sender<ChunkResults>,
    receiver: mpsc::Receiver<ChunkResults>,
    /// Raised by `cancel`: running tasks stop before their next item.
    stop: Arc<AtomicBool>,
    /// Tasks spawned whose message has not been received.
    running: usize,
}

impl ThreadEngine {
    fn new(threads: Arc<rayon::ThreadPool>, job: Arc<dyn StreamJob>) -> ThreadEngine {
        let (sender, receiver) = mpsc::channel();
        ThreadEngine {
            threads,
            job,
            sender,
            receiver,
            stop: Arc::new(AtomicBool::new(false)),
            running: 0,
        }
    }

    /// Stops the running tasks and waits until every spawned task has sent
    /// its one message (early or not), so nothing of this engine runs after
    /// it returns.
    fn stop_and_wait(&mut self) {
        self.stop.store(true, Ordering::Release);
        while self.running > 0 && self.receiver.recv().is_ok() {
            self.running -= 1;
        }
    }
}

impl StreamEngine for ThreadEngine {
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error> {
        let job = self.job.clone();
        let sender = self.sender.clone();
        let stop = self.stop.clone();
        self.running += 1;
        self.threads.spawn(move || {
            let results = job.run_chunk(chunk, &|| stop.load(Ordering::Acquire));
            // The receiver is gone only if the engine is; nothing to report.
            let _ = sender.send(results);
        });
        Ok(())
    }

    fn next_done(&mut self, context: &StreamContext<'_>) -> Result<ChunkResults, Error> {
        loop {
            if context.is_cancelled() {
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
        self.stop_and_wait();
        self.stop = Arc::new(AtomicBool::new(false));
    }
}

impl Drop for ThreadEngine {
    fn drop(&mut self) {
        // The same as cancel: nothing of the engine runs after it is gone.
        self.stop_and_wait();
    }
}
