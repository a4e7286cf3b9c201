//! The two items every user names, [`Backend`] and [`BackendKind`]:
//! exported once, at the crate root. The rest of the backend API (what an
//! implementor needs) is in [`backend`](crate::backend), whose module docs
//! hold the contract.

use super::{Capabilities, StreamEngine, batch};
use crate::error::Error;
use crate::job::{Job, StreamJob};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Where the chunks of a job run. Implement it to plug in a new execution
/// engine; see the [`backend`](crate::backend) module docs for the contract. Only
/// [`run`](Backend::run) is required: the defaults give a backend streams
/// and sessions (in batches on `run`) and conservative capabilities.
///
/// ```
/// use parpool::{Backend, BackendKind, Error, Job, Pool};
///
/// /// Runs chunks last to first, on the calling thread.
/// #[derive(Debug)]
/// struct Backwards;
///
/// impl Backend for Backwards {
///     fn run(&self, job: &dyn Job) -> Result<(), Error> {
///         for chunk in (0..job.plan().chunk_count()).rev() {
///             if job.should_stop() {
///                 break;
///             }
///             let _ = job.run_chunk(chunk, None);
///         }
///         Ok(())
///     }
/// }
///
/// let pool = Pool::with_backend(Backwards);
/// assert_eq!(pool.kind(), BackendKind::Custom);
/// assert_eq!(pool.map(|x: u32| x + 1, vec![1, 2, 3])?, [2, 3, 4]);
/// let doubled: Vec<u32> = pool.imap(|x: u32| x * 2, 0..5)?.collect::<Result<_, _>>()?;
/// assert_eq!(doubled, [0, 2, 4, 6, 8]);
/// # Ok::<(), Error>(())
/// ```
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs the chunks of `job` as the module docs describe.
    fn run(&self, job: &dyn Job) -> Result<(), Error>;

    /// Which kind of backend this is; [`BackendKind::Custom`] unless it is
    /// one of the crate's own.
    fn kind(&self) -> BackendKind {
        BackendKind::Custom
    }

    /// How many chunks can run at once.
    fn workers(&self) -> usize {
        1
    }

    /// What this backend can do; see [`Capabilities`]. The default claims
    /// nothing: no timeouts, no shared memory, one rank.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Starts an engine that runs the chunks of a stream or session of
    /// `job` (`imap`, `imap_unordered`, [`Session`](crate::Session)). The
    /// engine lives as long as the stream or session; a session's engine
    /// serves many calls.
    ///
    /// The default engine collects the chunks submitted so far and runs
    /// them as one batch job on [`run`](Backend::run) when a result is
    /// wanted (through the [`StreamContext`](super::StreamContext) given to
    /// [`next_done`](StreamEngine::next_done)).
    ///
    /// # Errors
    ///
    /// Starting the engine's workers failed.
    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        Ok(Box::new(batch::BatchEngine::new(job)))
    }
}

/// The built-in backends, as chosen in code or by `PARPOOL_BACKEND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// On the calling thread, in order (`serial`).
    Serial,
    /// On rayon threads: the process's shared pool, or the pool's own (`threads`, the default).
    Threads,
    /// In forked worker processes (`processes`; every Unix: on Windows,
    /// which has no `fork`, building it is an error).
    Processes,
    /// Across MPI ranks (`mpi`; without the `mpi` feature, building it is
    /// an error that says how to get it).
    Mpi,
    /// A backend given to [`Pool::with_backend`](crate::Pool::with_backend).
    Custom,
}

impl BackendKind {
    /// Every backend that can run in this build on this platform, in the
    /// order of the docs.
    pub const AVAILABLE: &'static [BackendKind] = &[
        BackendKind::Serial,
        BackendKind::Threads,
        #[cfg(unix)]
        BackendKind::Processes,
        #[cfg(feature = "mpi")]
        BackendKind::Mpi,
    ];

    /// The name used by `PARPOOL_BACKEND` (`"threads"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Serial => "serial",
            BackendKind::Threads => "threads",
            BackendKind::Processes => "processes",
            BackendKind::Mpi => "mpi",
            BackendKind::Custom => "custom",
        }
    }

    fn accepted_names() -> String {
        BackendKind::AVAILABLE
            .iter()
            .map(|kind| kind.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    /// Parses a backend name, case-insensitively. Names of backends not
    /// compiled into this build are an error that says how to get them.
    fn from_str(text: &str) -> Result<BackendKind, Error> {
        parse_backend_name(text, "backend")
    }
}

/// Parses a backend name for the setting called `setting` (the builder's
/// `backend` or the `PARPOOL_BACKEND` variable), so the error names it.
pub(crate) fn parse_backend_name(text: &str, setting: &str) -> Result<BackendKind, Error> {
    let name = text.trim().to_ascii_lowercase();
    if let Some(kind) = BackendKind::AVAILABLE
        .iter()
        .find(|kind| kind.name() == name)
    {
        return Ok(*kind);
    }
    let reason = match name.as_str() {
        "mpi" | "processes" => unavailable(&name),
        _ => format!("expected one of: {}", BackendKind::accepted_names()),
    };
    Err(Error::invalid_config(setting, text, reason))
}

/// Why the built-in backend `name` cannot run in this build on this
/// platform, and what can.
pub(crate) fn unavailable(name: &str) -> String {
    let why = match name {
        "mpi" => "the mpi backend is not in this build of parpool: build with `--features mpi` \
                  (needs an MPI library, see the README)"
            .to_string(),
        _ => format!(
            "the processes backend needs fork, which {} does not have; the threads backend \
             runs the same code",
            std::env::consts::OS
        ),
    };
    format!("{why}; available: {}", BackendKind::accepted_names())
}
