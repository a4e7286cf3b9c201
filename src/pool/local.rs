//! [`LocalPool`]'s constructors: a pool whose tasks run in this process.
//! Its calls are [`Pool`]'s own (the same type, with the [`Local`] codec).

use super::{BACKEND_VARIABLE, LocalPool, Pool, PoolBuilder};
use crate::backend::BackendKind;
use crate::carries::Local;
use crate::error::Error;

impl Pool {
    /// A pool that runs in this process: on threads, or serially if
    /// `PARPOOL_BACKEND=serial`; workers from `PARPOOL_WORKERS` or CPU
    /// detection. `PARPOOL_BACKEND=processes` or `mpi` gives threads here:
    /// a local pool's results never leave the process. See [`LocalPool`].
    ///
    /// # Panics
    ///
    /// If an environment variable holds an invalid value, as
    /// [`Pool::new`] does; [`PoolBuilder::build_local`] returns an `Err`
    /// instead.
    pub fn local() -> LocalPool {
        Pool::builder()
            .build_local()
            .unwrap_or_else(|error| panic!("parpool: {error}"))
    }
}

impl PoolBuilder {
    /// Checks the settings and starts a [`LocalPool`]: threads, or the
    /// serial backend if [`kind`](PoolBuilder::kind) or `PARPOOL_BACKEND`
    /// says `serial`.
    ///
    /// # Errors
    ///
    /// As for [`build`](PoolBuilder::build); and settings that ask for
    /// tasks outside this process: `kind(Processes)` or `kind(Mpi)`, a
    /// [`timeout`](PoolBuilder::timeout) or
    /// [`max_tasks_per_worker`](PoolBuilder::max_tasks_per_worker) (they
    /// need worker processes), or a [backend](PoolBuilder::backend) whose
    /// tasks do not share this process's memory. From the environment,
    /// `processes` and `mpi` give threads.
    pub fn build_local(self) -> Result<LocalPool, Error> {
        let kind = match self.kind {
            Some(kind) => kind,
            None if self.backend.is_some() => BackendKind::Custom,
            // `processes` and `mpi` (compiled in or not) mean threads here.
            None if from_environment_leaves_the_process() => BackendKind::Threads,
            None => match self.resolve_kind()? {
                BackendKind::Serial => BackendKind::Serial,
                _ => BackendKind::Threads,
            },
        };
        if !matches!(kind, BackendKind::Serial | BackendKind::Threads) && self.backend.is_none() {
            return Err(Error::invalid_config(
                "kind",
                kind.name(),
                "a local pool runs in this process: serial or threads (use Pool for \
                 processes or MPI)",
            ));
        }
        let builder = match self.backend {
            Some(_) => self,
            None => self.kind(kind),
        };
        let pool = builder.build_as::<Local>()?;
        if !pool.capabilities().shares_memory {
            return Err(Error::invalid_config(
                "backend",
                pool.kind().name(),
                "a local pool's tasks must run in this process (Capabilities::shares_memory)",
            ));
        }
        Ok(pool)
    }
}

/// True if `PARPOOL_BACKEND` asks for a backend outside this process.
fn from_environment_leaves_the_process() -> bool {
    std::env::var(BACKEND_VARIABLE).is_ok_and(|name| {
        matches!(
            name.trim().to_ascii_lowercase().as_str(),
            "processes" | "mpi"
        )
    })
}
