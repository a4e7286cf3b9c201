//! The thread backend: rayon thread pools, one shared by the process.
//!
//! A pool that asks for nothing special runs on one thread pool shared by
//! every such pool of the process, as rayon's global pool is shared: it is
//! sized once, the first time it is asked for (by
//! [`cpus::available`](crate::cpus::available), which honours
//! `PARPOOL_WORKERS`), and its threads start at the first call that runs
//! on it, not when a `Pool` is made. `Pool::new()` in a function that runs
//! often therefore costs no thread start. A pool with another worker count,
//! or one that asks for [dedicated
//! threads](crate::PoolBuilder::dedicated_threads), gets a rayon pool of
//! its own, also started at its first call. It is never rayon's global
//! pool, so a parpool call cannot be starved by, or starve, other rayon
//! users in the program.
//!
//! Threads start only for a call that runs on them: a pool made inside a
//! task runs its calls serially (nested use), so it never starts any.
//!
//! A call broadcasts one claim loop to every thread; each loop takes the
//! next chunk index from an atomic counter until none are left or the job
//! says stop. So chunks are claimed dynamically: a slow chunk holds up one
//! thread, not a precomputed share of the work.
//!
//! A stream's engine spawns each chunk as a task on the same threads; a
//! stop flag checked before each item lets `cancel` (and dropping the
//! stream) end the running chunks after their current item.
//!
//! The shared pool's threads live as long as the process. A dedicated
//! pool's threads live as long as the pool (and its clones, and any stream
//! still running on it); dropping the last of them never waits for them:
//! they exit soon after, as a dropped `rayon::ThreadPool`'s do.

use super::{
    BackendKind, Capabilities, Driver, SpawnedCall, StreamContext, StreamEngine, stream_cancelled,
};
use crate::cpus;
use crate::error::Error;
use crate::job::{ChunkJob, ChunkResults, StreamChunk, StreamJob};
use crate::sync::LockUnpoisoned;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

/// Runs chunks on rayon threads: the process's shared pool, or one of its
/// own.
#[derive(Debug, Clone)]
pub struct ThreadsBackend {
    threads: LazyThreads,
}

/// A rayon thread pool started at its first use. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct LazyThreads {
    pool: Arc<OnceLock<Arc<rayon::ThreadPool>>>,
    workers: usize,
    /// The start of the threads' names (`parpool-worker` gives
    /// `parpool-worker-0`, ...).
    name: &'static str,
}

impl LazyThreads {
    /// `workers` threads named `{name}-{index}`, not started yet.
    pub(crate) fn new(workers: usize, name: &'static str) -> Result<LazyThreads, Error> {
        super::check_workers(workers)?;
        Ok(LazyThreads {
            pool: Arc::new(OnceLock::new()),
            workers,
            name,
        })
    }

    /// How many threads the pool has (or will have).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `call` as a task of these threads (started now if this is
    /// their first use), or gives it back if they cannot start.
    pub(crate) fn spawn(&self, call: SpawnedCall) -> Result<(), SpawnedCall> {
        match self.get() {
            Ok(pool) => {
                pool.spawn(move || call()());
                Ok(())
            }
            Err(_) => Err(call),
        }
    }

    /// The pool, started now if this is its first use.
    pub(crate) fn get(&self) -> Result<&Arc<rayon::ThreadPool>, Error> {
        if let Some(pool) = self.pool.get() {
            return Ok(pool);
        }
        let name = self.name;
        let started = rayon::ThreadPoolBuilder::new()
            .num_threads(self.workers)
            .thread_name(move |index| format!("{name}-{index}"))
            .build()
            .map_err(|e| Error::backend("threads", format!("could not start threads: {e}")))?;
        // Two first uses at once: one pool wins, the other is dropped
        // before it ran anything.
        Ok(self.pool.get_or_init(|| Arc::new(started)))
    }
}

/// The size of the shared pool, fixed the first time it is asked for: a
/// default pool's worker count then (`PARPOOL_WORKERS`, else CPU
/// detection), as rayon's global pool reads `RAYON_NUM_THREADS` once.
pub(crate) fn shared_size() -> usize {
    static SIZE: OnceLock<usize> = OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var(crate::env::WORKERS)
            .ok()
            .and_then(|text| cpus::parse_count(&text).ok())
            .unwrap_or_else(cpus::detected_count)
    })
}

/// The shared pool's threads (started if they were not), for work of the
/// crate's own that a call does before its tasks (a journal's digests).
pub(crate) fn shared_threads() -> Result<Arc<rayon::ThreadPool>, Error> {
    ThreadsBackend::shared().threads.get().cloned()
}

impl ThreadsBackend {
    /// A backend with `workers` threads (at least 1) of its own, started
    /// at its first call. See [`shared`](ThreadsBackend::shared) for the
    /// pool every default `Pool` runs on.
    pub fn new(workers: usize) -> Result<ThreadsBackend, Error> {
        Ok(ThreadsBackend {
            threads: LazyThreads::new(workers, "parpool-worker")?,
        })
    }

    /// The process's shared thread pool, the one `Pool::new()` runs on:
    /// [`cpus::available`](crate::cpus::available) threads (counted the
    /// first time it is asked for), started at the first call that runs on
    /// it, living as long as the process.
    pub fn shared() -> ThreadsBackend {
        static SHARED: OnceLock<LazyThreads> = OnceLock::new();
        let threads = SHARED.get_or_init(|| LazyThreads {
            pool: Arc::new(OnceLock::new()),
            workers: shared_size(),
            name: "parpool-shared",
        });
        ThreadsBackend {
            threads: threads.clone(),
        }
    }
}

backend_through_driver!(ThreadsBackend);

impl Driver for ThreadsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Threads
    }

    fn workers(&self) -> usize {
        self.threads.workers()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shares_memory: true,
            ..Capabilities::default()
        }
    }

    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        let threads = self.threads.get()?;
        let chunk_count = job.plan().chunk_count();
        let next_chunk = AtomicUsize::new(0);
        // Chunks read back from a journal are done already: skipped.
        let claim_next_chunk = || loop {
            let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
            if chunk >= chunk_count || job.should_stop() {
                return None;
            }
            if !job.is_chunk_done(chunk) {
                return Some(chunk);
            }
        };
        if chunk_count == 1 {
            // Nothing to share: skip waking the other threads.
            if !job.is_chunk_done(0) {
                threads.install(|| {
                    let _ = job.run_chunk(0, None);
                });
            }
            return Ok(());
        }
        threads.broadcast(|_| {
            while let Some(chunk) = claim_next_chunk() {
                // Failures are recorded in the job (and stop a fail-fast
                // job through `should_stop`).
                let _ = job.run_chunk(chunk, None);
            }
        });
        Ok(())
    }

    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(ThreadEngine::new(
            self.threads.get()?.clone(),
            job,
        )))
    }

    fn spawn_call(&self, call: SpawnedCall) -> Result<(), SpawnedCall> {
        self.threads.spawn(call)
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
    /// The waker of a caller that polls (`poll_done`), woken by the next
    /// task to finish.
    waker: Arc<Mutex<Option<Waker>>>,
    /// Set by `abandon`: dropping the engine does not wait for its tasks.
    abandoned: bool,
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
            waker: Arc::default(),
            abandoned: false,
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
        let waker = self.waker.clone();
        self.running += 1;
        self.threads.spawn(move || {
            let results = job.run_chunk(chunk, &|| stop.load(Ordering::Acquire));
            // The receiver is gone only if the engine is; nothing to report.
            let _ = sender.send(results);
            // Sent first, then woken: a poller registers its waker first,
            // then looks (see `poll_done`), so it cannot miss this chunk.
            if let Some(waker) = waker.lock_unpoisoned().take() {
                waker.wake();
            }
        });
        Ok(())
    }

    fn poll_done(&mut self, waker: &Waker) -> Option<Poll<Result<ChunkResults, Error>>> {
        if let Some(done) = self.try_receive() {
            return Some(Poll::Ready(done));
        }
        *self.waker.lock_unpoisoned() = Some(waker.clone());
        Some(match self.try_receive() {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        })
    }

    fn abandon(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.abandoned = true;
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
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(vanished()),
            }
        }
    }

    fn cancel(&mut self) {
        self.stop_and_wait();
        self.stop = Arc::new(AtomicBool::new(false));
    }
}

impl ThreadEngine {
    /// A finished chunk, if one came.
    fn try_receive(&mut self) -> Option<Result<ChunkResults, Error>> {
        match self.receiver.try_recv() {
            Ok(chunk) => {
                self.running -= 1;
                Some(Ok(chunk))
            }
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(vanished())),
        }
    }
}

/// The error of a stream task that ended without sending its results.
fn vanished() -> Error {
    Error::backend("threads", "a stream task vanished")
}

impl Drop for ThreadEngine {
    fn drop(&mut self) {
        // The same as cancel: nothing of the engine runs after it is gone;
        // unless abandoned, when its tasks end on their own (their stop
        // flag is up, and they borrow nothing).
        if !self.abandoned {
            self.stop_and_wait();
        }
    }
}
