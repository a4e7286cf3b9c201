//! The process backend where there is no `fork` (Windows): the type
//! exists, so code that names it compiles everywhere, but it cannot be
//! made.

use super::{BackendKind, Capabilities, Driver, StreamEngine};
use crate::error::Error;
use crate::job::{ChunkJob, StreamJob};
use std::convert::Infallible;
use std::sync::Arc;

/// Runs chunks in forked worker processes, on every Unix. Here, without
/// `fork`, [`ProcessesBackend::new`] is an error.
#[derive(Debug, Clone)]
pub struct ProcessesBackend {
    never: Infallible,
}

impl ProcessesBackend {
    /// Always an error here: this platform has no `fork`.
    pub fn new(workers: usize) -> Result<ProcessesBackend, Error> {
        super::check_workers(workers)?;
        Err(Error::invalid_config(
            "backend",
            "processes",
            super::kind::unavailable("processes"),
        ))
    }
}

backend_through_driver!(ProcessesBackend);

impl Driver for ProcessesBackend {
    fn kind(&self) -> BackendKind {
        match self.never {}
    }

    fn workers(&self) -> usize {
        match self.never {}
    }

    fn capabilities(&self) -> Capabilities {
        match self.never {}
    }

    fn run(&self, _job: &dyn ChunkJob) -> Result<(), Error> {
        match self.never {}
    }

    fn open_stream(&self, _job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        match self.never {}
    }
}
