//! The one public error type, [`Error`], over a private kind enum.
//!
//! Every failure a caller can see is an `Error`: a task that panicked, a
//! worker that died or ran past its timeout, a result that could not be
//! encoded, an invalid configuration. Task failures name the item index (the
//! position of the item in the input, counting from 0) and the total number
//! of items, so the message reads `task 3 of 10 panicked at src/main.rs:5:36:
//! boom`.
//!
//! `Error` is `Clone` (so `map_results` can hand the same backend failure to
//! every item it affected). Its wire form, [`ErrorWire`], is private to the
//! crate: a failure in a worker process or on another MPI rank travels to
//! the caller as that, and the public type promises no encoding.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error from a [`Pool`](crate::Pool) call or from building a pool.
///
/// The type is opaque: ask it questions with [`task_index`](Error::task_index),
/// [`is_panic`](Error::is_panic), [`is_crash`](Error::is_crash),
/// [`is_timeout`](Error::is_timeout) and
/// [`is_invalid_config`](Error::is_invalid_config), and print it for the
/// full story.
///
/// ```
/// use parpool::{BackendKind, Pool};
///
/// let pool = Pool::builder().kind(BackendKind::Serial).build()?;
/// let err = pool
///     .map(|x: u32| if x == 3 { panic!("boom") } else { x }, 0..10)
///     .unwrap_err();
/// assert_eq!(err.task_index(), Some(3));
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("boom"));
/// // "task 3 of 10 panicked at src/main.rs:5:36: boom"
/// assert!(err.to_string().starts_with("task 3 of 10 panicked at "));
/// assert!(err.to_string().ends_with(": boom"));
/// # Ok::<(), parpool::Error>(())
/// ```
#[derive(Clone)]
pub struct Error {
    kind: Box<ErrorKind>,
    /// The OS error behind a backend failure, for [`source`](std::error::Error::source).
    /// Stays in the process that saw it: the wire form carries only its text.
    source: Option<Arc<std::io::Error>>,
}

/// How an [`Error`] travels between processes (worker sockets, MPI ranks):
/// the private kind, encoded with postcard. Crate-private, so the public
/// `Error` promises no wire format. Boxed like `Error`, so a decoded
/// `Result<R, ErrorWire>` is no bigger than a `Result<R, Error>`.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct ErrorWire(Box<ErrorKind>);

/// An [`Error`] borrowed for encoding in its wire form (no clone).
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct ErrorWireRef<'a>(&'a ErrorKind);

impl Error {
    /// This error's wire form, borrowed, for encoding.
    pub(crate) fn wire(&self) -> ErrorWireRef<'_> {
        ErrorWireRef(&self.kind)
    }
}

impl From<ErrorWire> for Error {
    fn from(wire: ErrorWire) -> Error {
        Error {
            kind: wire.0,
            source: None,
        }
    }
}

impl Error {
    /// This error in its wire form (postcard bytes).
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        // Encoding a plain enum of strings and integers into a Vec cannot
        // fail; an empty vector would decode as a garbled report.
        postcard::to_stdvec(&self.wire()).unwrap_or_default()
    }

    /// An error from its wire form; garbled bytes are a backend error that
    /// says so.
    pub(crate) fn from_wire(bytes: &[u8], backend: &str) -> Error {
        postcard::from_bytes::<ErrorWire>(bytes)
            .map(Error::from)
            .unwrap_or_else(|e| {
                Error::backend(backend, format!("a failure report was garbled: {e}"))
            })
    }
}

/// What went wrong. Private so variants can be added without breaking users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum ErrorKind {
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
        what: String,
        action: String,
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
    fn new(kind: ErrorKind) -> Error {
        Error {
            kind: Box::new(kind),
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
        Error::new(ErrorKind::Panic {
            index,
            total,
            message,
            location,
        })
    }

    /// The worker running task `index` died; `how` says how ("killed by
    /// signal 9 (SIGKILL)").
    pub fn crash(index: usize, total: usize, how: impl Into<String>) -> Error {
        Error::new(ErrorKind::Crash {
            index,
            total,
            how: how.into(),
        })
    }

    /// Task `index` was still running after `elapsed`, past `limit`.
    pub fn timeout(index: usize, total: usize, elapsed: Duration, limit: Duration) -> Error {
        Error::new(ErrorKind::Timeout {
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
        action: &str,
        message: impl fmt::Display,
    ) -> Error {
        Error::encoding_of("result", index, total, action, message)
    }

    /// The input of task `index` could not be encoded or decoded on its way
    /// to a worker process.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn input_encoding(
        index: usize,
        total: usize,
        action: &str,
        message: impl fmt::Display,
    ) -> Error {
        Error::encoding_of("input", index, total, action, message)
    }

    /// The same encoding error for an input rather than a result (the
    /// codec names neither).
    pub(crate) fn into_input(mut self) -> Error {
        if let ErrorKind::Encoding { what, .. } = &mut *self.kind {
            *what = "input".to_string();
        }
        self
    }

    fn encoding_of(
        what: &str,
        index: usize,
        total: usize,
        action: &str,
        message: impl fmt::Display,
    ) -> Error {
        Error::new(ErrorKind::Encoding {
            index,
            total,
            what: what.to_string(),
            action: action.to_string(),
            message: message.to_string(),
        })
    }

    /// A configuration value was rejected; `reason` says what is accepted.
    pub(crate) fn invalid_config(
        setting: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::new(ErrorKind::InvalidConfig {
            setting: setting.into(),
            value: value.into(),
            reason: reason.into(),
        })
    }

    /// A call was cancelled; `what` says what was left undone.
    pub(crate) fn cancelled(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::Cancelled { what: what.into() })
    }

    /// The same error for item `index` of `total` (a task of a batch that
    /// is part of a longer stream).
    pub(crate) fn for_task(mut self, index: usize, total: usize) -> Error {
        match &mut *self.kind {
            ErrorKind::Panic {
                index: i, total: t, ..
            }
            | ErrorKind::Crash {
                index: i, total: t, ..
            }
            | ErrorKind::Timeout {
                index: i, total: t, ..
            }
            | ErrorKind::Encoding {
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
    /// (for use by [`Backend`](crate::Backend) implementations).
    pub fn backend(backend: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Backend {
            backend: backend.into(),
            message: message.to_string(),
        })
    }

    /// The backend named `backend` failed in the OS call `call`; the
    /// `io::Error` stays reachable through
    /// [`source`](std::error::Error::source).
    pub(crate) fn os(backend: &str, call: &str, error: std::io::Error) -> Error {
        let mut wrapped = Error::backend(backend, format!("{call} failed: {error}"));
        wrapped.source = Some(Arc::new(error));
        wrapped
    }

    /// The index of the item whose task failed, if the error belongs to one.
    pub fn task_index(&self) -> Option<usize> {
        match &*self.kind {
            ErrorKind::Panic { index, .. }
            | ErrorKind::Crash { index, .. }
            | ErrorKind::Timeout { index, .. }
            | ErrorKind::Encoding { index, .. } => Some(*index),
            ErrorKind::InvalidConfig { .. }
            | ErrorKind::Cancelled { .. }
            | ErrorKind::Backend { .. } => None,
        }
    }

    /// True if the task's function panicked.
    pub fn is_panic(&self) -> bool {
        matches!(*self.kind, ErrorKind::Panic { .. })
    }

    /// True if the worker running the task died (killed by a signal such as
    /// SIGSEGV, SIGABRT or SIGKILL, or exited unexpectedly).
    pub fn is_crash(&self) -> bool {
        matches!(*self.kind, ErrorKind::Crash { .. })
    }

    /// True if the task ran past the pool's per-task timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.kind, ErrorKind::Timeout { .. })
    }

    /// True if the call was stopped through a
    /// [`CancelToken`](crate::CancelToken).
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.kind, ErrorKind::Cancelled { .. })
    }

    /// True if a builder setting or environment variable was invalid.
    pub fn is_invalid_config(&self) -> bool {
        matches!(*self.kind, ErrorKind::InvalidConfig { .. })
    }

    /// Where the task panicked (`file:line:column`), if it panicked and
    /// parpool's panic hook saw it. The hook is installed by the first
    /// pool call; a hook you install after that replaces it, and then the
    /// location is not known.
    pub fn panic_location(&self) -> Option<&str> {
        match &*self.kind {
            ErrorKind::Panic { location, .. } => location.as_deref(),
            _ => None,
        }
    }

    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.kind {
            ErrorKind::Panic { message, .. } => Some(message),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug shows the message too, so `?` in `main` prints something useful.
        write!(f, "Error({:?}: {})", self.kind_name(), self)
    }
}

impl Error {
    fn kind_name(&self) -> &'static str {
        match &*self.kind {
            ErrorKind::Panic { .. } => "Panic",
            ErrorKind::Crash { .. } => "Crash",
            ErrorKind::Timeout { .. } => "Timeout",
            ErrorKind::Encoding { .. } => "Encoding",
            ErrorKind::InvalidConfig { .. } => "InvalidConfig",
            ErrorKind::Cancelled { .. } => "Cancelled",
            ErrorKind::Backend { .. } => "Backend",
        }
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
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_task_and_what_happened() {
        assert_eq!(
            Error::panic(3, 10, "boom".into(), None).to_string(),
            "task 3 of 10 panicked: boom"
        );
        assert_eq!(
            Error::crash(1, 4, "killed by signal 9 (SIGKILL)").to_string(),
            "task 1 of 4 crashed: worker killed by signal 9 (SIGKILL)"
        );
        let timeout = Error::timeout(2, 5, Duration::from_millis(1500), Duration::from_secs(1));
        assert_eq!(
            timeout.to_string(),
            "task 2 of 5 timed out: still running after 1.500 s (limit 1.000 s), worker killed"
        );
        assert!(timeout.is_timeout() && !timeout.is_panic() && !timeout.is_crash());
        assert_eq!(timeout.task_index(), Some(2));
        assert_eq!(
            Error::panic(3, 10, "boom".into(), None)
                .for_task(12, UNKNOWN_TOTAL)
                .to_string(),
            "task 12 panicked: boom"
        );
    }

    #[test]
    fn config_errors_have_no_task() {
        let err = Error::invalid_config("workers", "0", "must be at least 1");
        assert!(err.is_invalid_config());
        assert_eq!(err.task_index(), None);
        assert_eq!(
            err.to_string(),
            "invalid workers = \"0\": must be at least 1"
        );
    }

    #[test]
    fn errors_survive_a_round_trip_through_their_wire_form() {
        let err = Error::panic(7, 8, "lost".into(), Some("src/lib.rs:1:2".into()));
        let back = Error::from_wire(&err.to_wire(), "test");
        assert_eq!(back.kind, err.kind);
        assert_eq!(back.panic_location(), Some("src/lib.rs:1:2"));
        assert_eq!(
            back.to_string(),
            "task 7 of 8 panicked at src/lib.rs:1:2: lost"
        );
        let garbled = Error::from_wire(&[0xff, 0xff], "processes");
        assert!(garbled.to_string().contains("garbled"), "{garbled}");
    }

    #[test]
    fn os_errors_keep_their_source() {
        use std::error::Error as _;
        let err = Error::os("processes", "fork", std::io::Error::from_raw_os_error(11));
        let source = err.source().expect("an io::Error");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(
            err.to_string()
                .starts_with("processes backend failed: fork failed")
        );
        assert!(Error::panic(1, 2, "x".into(), None).source().is_none());
    }
}
