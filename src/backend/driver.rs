//! The crate's own side of the backend seam: [`Driver`], which a pool
//! holds.
//!
//! A built-in backend implements `Driver` over the full job
//! ([`ChunkJob`]: the current item published for a supervisor, results
//! encoded in pieces, MPI's gather to the root) and opens stream engines
//! of its own (`engine.rs`). A third-party [`Backend`] is wrapped in
//! [`Custom`], which hands it the narrow [`Job`] and gives it the default
//! batch engine. None of this is public, so it may change in any release.

use super::batch::BatchEngine;
use super::engine::StreamEngine;
use super::{Backend, BackendKind, Capabilities, Job};
use crate::error::Error;
use crate::job::{ChunkJob, StreamJob};
use std::fmt;
use std::sync::Arc;

/// What a pool drives: a built-in backend, or a third-party one wrapped in
/// [`Custom`].
pub(crate) trait Driver: Send + Sync + fmt::Debug {
    /// Runs the chunks of `job`, keeping the contract of the module docs.
    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error>;

    /// Which kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// How many chunks can run at once.
    fn workers(&self) -> usize;

    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Starts an engine that runs the chunks of a stream or session of
    /// `job`; the engine lives as long as the stream or session.
    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(BatchEngine::new(job)))
    }

    /// Rank 0's `bytes`, on every rank (a broadcast; collective on MPI,
    /// where every rank calls it with its own `bytes`, ignored but on rank
    /// 0). One rank: `bytes` as they are.
    fn share_from_root(&self, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(bytes)
    }

    /// Runs `call` (a whole blocking call, for an async caller) on the
    /// backend's own threads, where the call's chunks run too, so it
    /// needs no thread of its own; or gives it back where the backend has
    /// no threads to lend (its calls block a thread: processes, MPI, a
    /// custom backend), for a helper to run.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn spawn_call(&self, call: SpawnedCall) -> Result<(), SpawnedCall> {
        Err(call)
    }
}

/// A whole call of an async caller, for [`Driver::spawn_call`], in two
/// steps: the call, then what hands its result to the caller (run once the
/// thread that ran the call is free for other work, so a caller who sees
/// the result and starts the next call finds that thread free).
pub(crate) type SpawnedCall = Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send>;

/// A third-party [`Backend`], driven through the public protocol.
#[derive(Debug)]
pub(crate) struct Custom<B>(pub(crate) B);

impl<B: Backend> Driver for Custom<B> {
    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        self.0.run(&Job::new(job))
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Custom
    }

    fn workers(&self) -> usize {
        self.0.workers()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}
