//! [`BackendKind`]: the built-in backends by name, as users choose them
//! (in code, or by `PARPOOL_BACKEND`), and the errors for names this build
//! cannot run.

use crate::error::Error;
use std::fmt;
use std::str::FromStr;

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
