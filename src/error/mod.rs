//! The one public error type, [`Error`], over a private kind enum.
//!
//! Every failure a caller can see is an `Error`: a task that panicked, a
//! worker that died or ran past its timeout, a result that could not be
//! encoded, an invalid configuration. Task failures name the item index (the
//! position of the item in the input, counting from 0) and the total number
//! of items, so the message reads `task 3 of 10 panicked at src/main.rs:5:36:
//! boom`.
//!
//! `Error` is `Clone` (so `map_results` can hand the same backend failure
//! to every item it affected). [`Error::kind`] says what went wrong as a
//! public, non-exhaustive [`ErrorKind`], in the manner of
//! `std::io::Error::kind`; the details stay in a private enum, `Repr`.
//! Its wire form (the `wire` module) is private to the crate: a failure in
//! a worker process or on another MPI rank travels to the caller as that,
//! and the public type promises no encoding.
//!
//! An OS error (a `fork` or `socketpair` that failed) is an `Error` whose
//! message says what parpool was doing ("socketpair failed for worker 2")
//! and whose [`source`](std::error::Error::source) is the `io::Error`, so
//! a report that walks the chain prints each message once.

mod wire;

pub(crate) use wire::{ErrorWire, ErrorWireRef};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error from a [`Pool`](crate::Pool) call or from building a pool.
///
/// The type is opaque: ask it what went wrong with [`kind`](Error::kind)
/// (or an `is_*` method per kind), which item with
/// [`task_index`](Error::task_index), and print it for the full story.
///
/// ```
/// use parpool::{BackendKind, Pool};
///
/// let pool = Pool::builder().kind(BackendKind::Serial).build()?;
/// let err = pool
///     .map(|x: u32| if x == 3 { panic!("boom") } else { x }, 0..10)
///     .unwrap_err();
/// assert_eq!(err.task_index(), Some(3));
/// assert_eq!(err.kind(), parpool::ErrorKind::Panic);
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("boom"));
/// // "task 3 of 10 panicked at src/main.rs:5:36: boom"
/// assert!(err.to_string().starts_with("task 3 of 10 panicked at "));
/// assert!(err.to_string().ends_with(": boom"));
/// # Ok::<(), parpool::Error>(())
/// ```
#[derive(Clone)]
pub struct Error {
    repr: Box<Repr>,
    /// The OS error behind a backend failure, for [`source`](std::error::Error::source).
    /// Stays in the process that saw it: the wire form carries only its text.
    source: Option<Arc<std::io::Error>>,
}

/// What went wrong, in the manner of [`std::io::ErrorKind`]: from
/// [`Error::kind`]. New kinds may be added, so a `match` needs a `_` arm.
///
/// ```
/// use parpool::{ErrorKind, Pool};
///
/// let error = Pool::builder().workers(0).build().unwrap_err();
/// match error.kind() {
///     ErrorKind::InvalidConfig => eprintln!("fix the settings: {error}"),
///     ErrorKind::Panic | ErrorKind::Crash | ErrorKind::Timeout => eprintln!("a task failed: {error}"),
///     _ => eprintln!("{error}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A task's function panicked ([`Error::is_panic`]).
    Panic,
    /// The worker running a task died: a signal such as SIGSEGV, SIGABRT or
    /// SIGKILL, or an unexpected exit ([`Error::is_crash`]).
    Crash,
    /// A task ran past the pool's per-task timeout ([`Error::is_timeout`]).
    Timeout,
    /// A task's result (or a stream's input) could not be encoded or
    /// decoded on its way between processes ([`Error::is_encoding`]).
    Encoding,
    /// A builder setting or environment variable was invalid, or cannot be
    /// honoured by the backend ([`Error::is_invalid_config`]).
    InvalidConfig,
    /// The call was stopped through a [`CancelToken`](crate::CancelToken)
    /// ([`Error::is_cancelled`]).
    Cancelled,
    /// The backend itself failed: an OS call, a lost worker connection, MPI
    /// ([`Error::is_backend`]). An OS failure keeps its `io::Error` as the
    /// [`source`](std::error::Error::source).
    Backend,
    /// A [`Journal`](crate::Journal) could not be opened, read or written:
    /// in use by another process, not a journal, damaged beyond skipping,
    /// its directory missing ([`Error::is_journal`]). An OS failure keeps
    /// its `io::Error` as the [`source`](std::error::Error::source).
    Journal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Panic => "task panicked",
            ErrorKind::Crash => "worker crashed",
            ErrorKind::Timeout => "task timed out",
            ErrorKind::Encoding => "value could not be transferred",
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Backend => "backend failed",
            ErrorKind::Journal => "journal unusable",
        })
    }
}

/// What went wrong, with the details. Private so variants and fields can
/// change without breaking users; [`ErrorKind`] is its public face.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum Repr {
    /// The task's function panicked (at `location`, when the panic hook
    /// saw it).
    #[error("task {index}{} panicked{}: {message}", of_total(*total), at_location(location))]
    Panic {
        index: usize,
        total: usize,
        message: String,
        location: Option<String>,
    },
    /// The worker running the task died (a signal or an unexpected exit).
    #[error("task {index}{} crashed: worker {how}", of_total(*total))]
    Crash {
        index: usize,
        total: usize,
        how: String,
    },
    /// The task ran past the per-task time limit and its worker was killed.
    #[error(
        "task {index}{} timed out: still running after {:.3} s (limit {:.3} s), worker killed",
        of_total(*total),
        elapsed.as_secs_f64(),
        limit.as_secs_f64()
    )]
    Timeout {
        index: usize,
        total: usize,
        elapsed: Duration,
        limit: Duration,
    },
    /// A result could not be encoded or decoded on its way between processes.
    #[error("task {index}{}: {what} could not be {action}: {message}", of_total(*total))]
    Encoding {
        index: usize,
        total: usize,
        /// "result", or "input" for the items of a stream on their way to a
        /// worker process.
        what: Carried,
        action: Step,
        message: String,
    },
    /// A setting (builder call or environment variable) has a bad value.
    #[error("invalid {setting} = {value:?}: {reason}")]
    InvalidConfig {
        setting: String,
        value: String,
        reason: String,
    },
    /// The call was stopped through a [`CancelToken`](crate::CancelToken).
    #[error("cancelled: {what}")]
    Cancelled { what: String },
    /// The backend itself failed (an OS call, a broken pipe, MPI).
    #[error("{backend} backend failed: {message}")]
    Backend { backend: String, message: String },
    /// A journal could not be used.
    #[error("journal {path} {message}")]
    Journal { path: String, message: String },
}

/// What an encoding error was carrying between processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Carried {
    /// A task's result, on its way back.
    Result,
    /// An item of a stream, on its way to a worker process.
    Input,
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Carried::Result => "result",
            Carried::Input => "input",
        })
    }
}

/// Which way an encoding error failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Step {
    Encoded,
    Decoded,
    /// Lost between processes (a frame that did not arrive whole).
    Transferred,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Encoded => "encoded",
            Step::Decoded => "decoded",
            Step::Transferred => "transferred",
        })
    }
}

/// The `total` of a task in a stream (`imap`), whose length is unknown.
pub(crate) const UNKNOWN_TOTAL: usize = usize::MAX;

/// " at src/main.rs:104:44", or nothing where the location is unknown.
fn at_location(location: &Option<String>) -> String {
    match location {
        Some(location) => format!(" at {location}"),
        None => String::new(),
    }
}

/// " of 10", or nothing for a task of a stream.
fn of_total(total: usize) -> String {
    if total == UNKNOWN_TOTAL {
        String::new()
    } else {
        format!(" of {total}")
    }
}

impl Error {
    fn new(kind: Repr) -> Error {
        Error {
            repr: Box::new(kind),
            source: None,
        }
    }

    /// A task's function panicked with `message`.
    pub(crate) fn panic(
        index: usize,
        total: usize,
        message: String,
        location: Option<String>,
    ) -> Error {
        Error::new(Repr::Panic {
            index,
            total,
            message,
            location,
        })
    }

    /// The worker running task `index` died; `how` says how ("killed by
    /// signal 9 (SIGKILL)").
    pub(crate) fn crash(index: usize, total: usize, how: impl Into<String>) -> Error {
        Error::new(Repr::Crash {
            index,
            total,
            how: how.into(),
        })
    }

    /// Task `index` was still running after `elapsed`, past `limit`.
    pub(crate) fn timeout(index: usize, total: usize, elapsed: Duration, limit: Duration) -> Error {
        Error::new(Repr::Timeout {
            index,
            total,
            elapsed,
            limit,
        })
    }

    /// A result of task `index` could not be encoded or decoded.
    pub(crate) fn encoding(
        index: usize,
        total: usize,
        action: Step,
        message: impl fmt::Display,
    ) -> Error {
        Error::encoding_of(Carried::Result, index, total, action, message)
    }

    /// The input of task `index` could not be encoded or decoded on its way
    /// to a worker process.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn input_encoding(
        index: usize,
        total: usize,
        action: Step,
        message: impl fmt::Display,
    ) -> Error {
        Error::encoding_of(Carried::Input, index, total, action, message)
    }

    /// The same encoding error for an input rather than a result (the
    /// codec names neither).
    #[cfg_attr(not(any(unix, feature = "mpi")), allow(dead_code))]
    pub(crate) fn into_input(mut self) -> Error {
        if let Repr::Encoding { what, .. } = &mut *self.repr {
            *what = Carried::Input;
        }
        self
    }

    fn encoding_of(
        what: Carried,
        index: usize,
        total: usize,
        action: Step,
        message: impl fmt::Display,
    ) -> Error {
        Error::new(Repr::Encoding {
            index,
            total,
            what,
            action,
            message: message.to_string(),
        })
    }

    /// A configuration value was rejected; `reason` says what is accepted.
    pub(crate) fn invalid_config(
        setting: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::new(Repr::InvalidConfig {
            setting: setting.into(),
            value: value.into(),
            reason: reason.into(),
        })
    }

    /// A call was cancelled; `what` says what was left undone.
    pub(crate) fn cancelled(what: impl Into<String>) -> Error {
        Error::new(Repr::Cancelled { what: what.into() })
    }

    /// The same error for item `index` of `total` (a task of a batch that
    /// is part of a longer stream).
    pub(crate) fn for_task(mut self, index: usize, total: usize) -> Error {
        match &mut *self.repr {
            Repr::Panic {
                index: i, total: t, ..
            }
            | Repr::Crash {
                index: i, total: t, ..
            }
            | Repr::Timeout {
                index: i, total: t, ..
            }
            | Repr::Encoding {
                index: i, total: t, ..
            } => {
                *i = index;
                *t = total;
            }
            _ => {}
        }
        self
    }

    /// The backend named `backend` failed for a reason not tied to one task
    /// (for backends: [`backend_error`](crate::backend::backend_error)).
    pub(crate) fn backend(backend: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::new(Repr::Backend {
            backend: backend.into(),
            message: message.to_string(),
        })
    }

    /// The backend named `backend` failed in the OS call `call`. The
    /// message says only what parpool was doing ("fork failed"; add to it
    /// with [`context`](Error::context)); the `io::Error` is the
    /// [`source`](std::error::Error::source), so a report that walks the
    /// chain prints it once.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn os(backend: &str, call: &str, error: std::io::Error) -> Error {
        let mut wrapped = Error::backend(backend, format!("{call} failed"));
        wrapped.source = Some(Arc::new(error));
        wrapped
    }

    /// The journal at `path` cannot be used: `message` says why, after the
    /// path ("journal /x/run.journal is in use by another process").
    pub(crate) fn journal(path: &std::path::Path, message: impl fmt::Display) -> Error {
        Error::new(Repr::Journal {
            path: path.display().to_string(),
            message: message.to_string(),
        })
    }

    /// The journal at `path` could not be `action`ed ("read", "append to"):
    /// the `io::Error` is the [`source`](std::error::Error::source).
    pub(crate) fn journal_io(path: &std::path::Path, action: &str, error: std::io::Error) -> Error {
        let mut wrapped = Error::journal(path, format!("could not be {action}"));
        wrapped.source = Some(Arc::new(error));
        wrapped
    }

    /// The same backend error with `context` after its message ("fork
    /// failed" becomes "fork failed for worker 2"); other kinds as they
    /// are.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Error {
        if let Repr::Backend { message, .. } = &mut *self.repr {
            *message = format!("{message} {context}");
        }
        self
    }

    /// What went wrong; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match &*self.repr {
            Repr::Panic { .. } => ErrorKind::Panic,
            Repr::Crash { .. } => ErrorKind::Crash,
            Repr::Timeout { .. } => ErrorKind::Timeout,
            Repr::Encoding { .. } => ErrorKind::Encoding,
            Repr::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Repr::Cancelled { .. } => ErrorKind::Cancelled,
            Repr::Backend { .. } => ErrorKind::Backend,
            Repr::Journal { .. } => ErrorKind::Journal,
        }
    }

    /// The index of the item whose task failed, if the error belongs to one.
    pub fn task_index(&self) -> Option<usize> {
        match &*self.repr {
            Repr::Panic { index, .. }
            | Repr::Crash { index, .. }
            | Repr::Timeout { index, .. }
            | Repr::Encoding { index, .. } => Some(*index),
            Repr::InvalidConfig { .. }
            | Repr::Cancelled { .. }
            | Repr::Backend { .. }
            | Repr::Journal { .. } => None,
        }
    }

    /// True if the task's function panicked ([`ErrorKind::Panic`]).
    pub fn is_panic(&self) -> bool {
        self.kind() == ErrorKind::Panic
    }

    /// True if the worker running the task died (killed by a signal such as
    /// SIGSEGV, SIGABRT or SIGKILL, or exited unexpectedly;
    /// [`ErrorKind::Crash`]).
    pub fn is_crash(&self) -> bool {
        self.kind() == ErrorKind::Crash
    }

    /// True if the task ran past the pool's per-task timeout
    /// ([`ErrorKind::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True if a result or input could not be encoded or decoded
    /// ([`ErrorKind::Encoding`]).
    pub fn is_encoding(&self) -> bool {
        self.kind() == ErrorKind::Encoding
    }

    /// True if the call was stopped through a
    /// [`CancelToken`](crate::CancelToken) ([`ErrorKind::Cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// True if a builder setting or environment variable was invalid
    /// ([`ErrorKind::InvalidConfig`]).
    pub fn is_invalid_config(&self) -> bool {
        self.kind() == ErrorKind::InvalidConfig
    }

    /// True if the backend itself failed ([`ErrorKind::Backend`]).
    pub fn is_backend(&self) -> bool {
        self.kind() == ErrorKind::Backend
    }

    /// True if a journal could not be used ([`ErrorKind::Journal`]).
    pub fn is_journal(&self) -> bool {
        self.kind() == ErrorKind::Journal
    }

    /// Where the task panicked (`file:line:column`), if it panicked and
    /// parpool's panic hook saw it. The hook is installed by the first
    /// pool call; a hook you install after that replaces it, and then the
    /// location is not known.
    pub fn panic_location(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panic { location, .. } => location.as_deref(),
            _ => None,
        }
    }

    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panic { message, .. } => Some(message),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.repr, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug shows the message too, so `?` in `main` prints something useful.
        write!(f, "Error({:?}: {})", self.kind(), self)
    }
}

impl std::error::Error for Error {
    /// The OS error behind a backend failure (a `fork`, `mmap` or `read`
    /// that failed), if there is one.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests;
