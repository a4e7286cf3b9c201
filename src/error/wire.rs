//! How an [`Error`] travels between processes (worker sockets, MPI ranks):
//! its private `Repr`, encoded with postcard. Crate-private, so the public
//! `Error` promises no wire format.
//!
//! An OS error's `io::Error` cannot travel; its text is appended to the
//! message on the way ("socketpair failed for worker 0: Too many open
//! files (os error 24)"), so nothing is lost, and the receiving side,
//! which has no `source()` to show it, shows it once.

use super::{Error, Repr};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// An [`Error`] in its wire form, decoded. Boxed like `Error`, so a
/// decoded `Result<R, ErrorWire>` is no bigger than a `Result<R, Error>`.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct ErrorWire(Box<Repr>);

/// An [`Error`] for encoding in its wire form (borrowed unless it has an
/// OS error to fold into its message).
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct ErrorWireRef<'a>(Cow<'a, Repr>);

impl Error {
    /// This error's wire form, for encoding.
    pub(crate) fn wire(&self) -> ErrorWireRef<'_> {
        match (&self.source, &*self.repr) {
            (Some(source), Repr::Backend { backend, message }) => {
                ErrorWireRef(Cow::Owned(Repr::Backend {
                    backend: backend.clone(),
                    message: format!("{message}: {source}"),
                }))
            }
            _ => ErrorWireRef(Cow::Borrowed(&self.repr)),
        }
    }

    /// This error in its wire form (postcard bytes).
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        // Encoding a plain enum of strings and integers into a Vec cannot
        // fail; an empty vector would decode as a garbled report.
        postcard::to_stdvec(&self.wire()).unwrap_or_default()
    }

    /// An error from its wire form; garbled bytes are a backend error that
    /// says so.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn from_wire(bytes: &[u8], backend: &str) -> Error {
        postcard::from_bytes::<ErrorWire>(bytes)
            .map(Error::from)
            .unwrap_or_else(|e| {
                Error::backend(backend, format!("a failure report was garbled: {e}"))
            })
    }
}

impl From<ErrorWire> for Error {
    fn from(wire: ErrorWire) -> Error {
        Error {
            repr: wire.0,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_a_round_trip_through_their_wire_form() {
        let err = Error::panic(7, 8, "lost".into(), Some("src/lib.rs:1:2".into()));
        let back = Error::from_wire(&err.to_wire(), "test");
        assert_eq!(back.repr, err.repr);
        assert_eq!(back.panic_location(), Some("src/lib.rs:1:2"));
        assert_eq!(
            back.to_string(),
            "task 7 of 8 panicked at src/lib.rs:1:2: lost"
        );
        let garbled = Error::from_wire(&[0xff, 0xff], "processes");
        assert!(garbled.to_string().contains("garbled"), "{garbled}");
    }

    #[test]
    fn an_os_error_keeps_its_text_across_the_wire() {
        let err = Error::os("processes", "fork", std::io::Error::from_raw_os_error(11))
            .context("for worker 2");
        let back = Error::from_wire(&err.to_wire(), "test");
        let text = back.to_string();
        assert!(
            text.starts_with("processes backend failed: fork failed for worker 2: "),
            "{text}"
        );
        assert!(
            text.contains(&std::io::Error::from_raw_os_error(11).to_string()),
            "{text}"
        );
    }
}
