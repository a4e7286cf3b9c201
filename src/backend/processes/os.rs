//! The process backend's OS calls, as [`crate::sys`] makes them on every
//! Unix, with their failures turned into this crate's errors.

use crate::error::Error;
use crate::sys;
use std::os::fd::OwnedFd;

pub(super) use crate::sys::{ExitStatus, Pid, Ready, getpid, is_alive, kill, poll, wait_blocking};

/// The error of the failed OS call `call`, with the OS error kept as its
/// source.
pub(super) fn os_error(call: &str, error: std::io::Error) -> Error {
    Error::os("processes", call, error)
}

/// A connected pair of Unix stream sockets, close-on-exec, that never
/// raise `SIGPIPE`: (parent end, child end), the parent's non-blocking.
pub(super) fn socket_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    let (parent, child) = sys::socket_pair().map_err(|e| os_error("socketpair", e))?;
    sys::set_nonblocking(&parent).map_err(|e| os_error("fcntl", e))?;
    Ok((parent, child))
}

/// Reads everything available from a non-blocking descriptor into
/// `buffer`, until it would block or reaches end-of-file.
pub(super) fn drain(fd: &OwnedFd, buffer: &mut Vec<u8>) -> Result<(), Error> {
    loop {
        // Read straight into the buffer: room for the rest of the frame
        // being received (its header says how long it is), at least 64 KiB
        // and, should a header be garbage, at most 256 MiB at a time.
        let frame_left = super::super::wire::frame_length(buffer)
            .map_or(0, |length| length.saturating_sub(buffer.len()));
        let capacity = buffer.capacity();
        buffer.reserve(frame_left.clamp(64 << 10, 256 << 20));
        if buffer.capacity() != capacity {
            sys::advise_huge_pages(buffer.as_ptr(), buffer.capacity());
        }
        match sys::read_into(fd, buffer) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(error) => match error.kind() {
                std::io::ErrorKind::WouldBlock => return Ok(()),
                std::io::ErrorKind::Interrupted => {}
                // A socket whose worker died with data unread: the end.
                std::io::ErrorKind::ConnectionReset => return Ok(()),
                _ => return Err(os_error("read", error)),
            },
        }
    }
}

/// What one non-blocking send did.
pub(super) enum Sent {
    /// This many bytes went out.
    Bytes(usize),
    /// The socket is full; try again once it drains.
    WouldBlock,
}

/// One non-blocking send, without `SIGPIPE` if the peer is gone.
pub(super) fn send(fd: &OwnedFd, bytes: &[u8]) -> Result<Sent, Error> {
    loop {
        match sys::send(fd, bytes) {
            Ok(sent) => return Ok(Sent::Bytes(sent)),
            Err(error) => match error.kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock => return Ok(Sent::WouldBlock),
                _ => return Err(os_error("send", error)),
            },
        }
    }
}

/// The exit status of `pid` if it has exited (reaping it), without
/// blocking.
pub(super) fn try_wait(pid: Pid) -> Result<Option<ExitStatus>, Error> {
    sys::try_wait(pid).map_err(|e| os_error("waitpid", e))
}

/// Shuts down the sending side of a socket: its peer reads end of file.
pub(super) fn shutdown_sending(fd: &OwnedFd) {
    sys::shutdown_sending(fd);
}
