//! Small safe wrappers over the libc calls of the process backend: socket
//! pairs, non-blocking reads and sends, `poll`, `kill`, `waitpid`.
//!
//! Linux only, like the backend: `SOCK_CLOEXEC` and `MSG_NOSIGNAL` make
//! the descriptors close-on-exec atomically and keep a dead peer from
//! raising `SIGPIPE`, and `PR_SET_PDEATHSIG` (in `fork.rs`) ties a worker's
//! life to its parent's. macOS has none of the three.

use crate::error::Error;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The error of a failed OS call named `call`, with the OS error kept as
/// its source.
pub(super) fn os_error(call: &str) -> Error {
    Error::os("processes", call, std::io::Error::last_os_error())
}

/// A connected pair of Unix stream sockets, close-on-exec:
/// (parent end, child end).
pub(super) fn socket_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let result = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if result != 0 {
        return Err(os_error("socketpair"));
    }
    // SAFETY: socketpair succeeded: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(super) fn set_nonblocking(fd: &OwnedFd) -> Result<(), Error> {
    // SAFETY: fcntl on an open descriptor we own; no pointers involved.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(os_error("fcntl"));
    }
    // SAFETY: as above.
    let set = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if set < 0 {
        return Err(os_error("fcntl"));
    }
    Ok(())
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
            crate::sys::advise_huge_pages(buffer.as_ptr(), buffer.capacity());
        }
        let spare = buffer.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of the length passed; read()
        // initialises the bytes it reports.
        let read = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match read {
            0 => return Ok(()),
            // SAFETY: read() wrote `n` bytes at the end of the buffer.
            n if n > 0 => unsafe { buffer.set_len(buffer.len() + n as usize) },
            _ => {
                let error = std::io::Error::last_os_error();
                match error.kind() {
                    std::io::ErrorKind::WouldBlock => return Ok(()),
                    std::io::ErrorKind::Interrupted => continue,
                    // A socket whose worker died with data unread: the end.
                    std::io::ErrorKind::ConnectionReset => return Ok(()),
                    _ => return Err(Error::os("processes", "read", error)),
                }
            }
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
        // SAFETY: `bytes` is a valid buffer of the length passed.
        let sent = unsafe {
            libc::send(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(Sent::Bytes(sent as usize));
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => {}
            std::io::ErrorKind::WouldBlock => return Ok(Sent::WouldBlock),
            _ => return Err(Error::os("processes", "send", error)),
        }
    }
}

/// Sleeps until one of `fds` has `events` (or hangs up), or `interval`
/// has passed.
pub(super) fn poll(fds: impl Iterator<Item = RawFd>, events: libc::c_short, interval: Duration) {
    let mut fds: Vec<libc::pollfd> = fds
        .map(|fd| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            interval.as_millis().min(i32::MAX as u128) as libc::c_int,
        )
    };
}

/// Shuts down the sending side of a socket: its peer reads end of file.
pub(super) fn shutdown_sending(fd: &OwnedFd) {
    // SAFETY: shutdown on an open socket we own; no pointers involved.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

pub(super) fn kill(pid: libc::pid_t) {
    // SAFETY: kill has no memory effects; `pid` is our unreaped child, so it
    // cannot name an unrelated process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The wait status of `pid` if it has exited (reaping it), without
/// blocking.
pub(super) fn try_wait(pid: libc::pid_t) -> Result<Option<libc::c_int>, Error> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to write.
        let result = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match result {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(status)),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(os_error("waitpid")),
        }
    }
}

/// True if `pid` has not exited (without reaping it).
pub(super) fn is_alive(pid: libc::pid_t) -> bool {
    // SAFETY: siginfo_t is a plain C struct for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid siginfo_t for waitid to fill; WNOWAIT leaves
    // the child to be reaped later.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed, pid 0: still alive).
    result == 0 && unsafe { info.si_pid() } == 0
}

/// Waits for `pid` to exit (it has been sent SIGKILL) and reaps it.
pub(super) fn wait_blocking(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to write.
        let result = unsafe { libc::waitpid(pid, &mut status, 0) };
        if result == pid
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// This process's id.
pub(super) fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// "killed by signal 11 (SIGSEGV)" or "exited with status 3".
pub(super) fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        format!("killed by signal {signal} ({})", signal_name(signal))
    } else if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else {
        format!("ended with wait status {status:#x}")
    }
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_with_signal_names() {
        // Wait statuses as Linux encodes them.
        assert_eq!(describe_exit(9), "killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit(11), "killed by signal 11 (SIGSEGV)");
        assert_eq!(describe_exit(3 << 8), "exited with status 3");
    }
}
