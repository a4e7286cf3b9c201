//! The calls every Unix shares (POSIX, through rustix; libc only where
//! rustix has no safe form: `fork`, `_exit`, `signal`, `sysconf` and the
//! wait-status macros), and the choice between Linux's fast paths
//! (`linux.rs`) and the paths of every other Unix (`portable.rs`).

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Signal, WaitOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

#[cfg(all(target_os = "linux", not(parpool_portable_unix)))]
#[path = "linux.rs"]
mod imp;
#[cfg(not(all(target_os = "linux", not(parpool_portable_unix))))]
#[path = "portable.rs"]
mod imp;

pub(crate) use imp::{
    REMOTE_READS, advise_huge_pages, affinity_count, before_fork, die_with_parent, read_remote,
    single_threaded, socket_pair,
};

/// A process id.
pub(crate) type Pid = rustix::process::Pid;

/// This process's id.
pub(crate) fn getpid() -> Pid {
    rustix::process::getpid()
}

/// Makes reads and sends on `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Makes `fd` close on `exec`, for systems that cannot ask for it when
/// the descriptor is made: a `fork` and `exec` on another thread in
/// between inherits it, which the Linux path avoids.
#[cfg_attr(all(target_os = "linux", not(parpool_portable_unix)), allow(dead_code))]
fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    Ok(())
}

/// One read into the spare capacity of `buffer` (which must have some),
/// appended to it: the number of bytes read, 0 at end-of-file.
pub(crate) fn read_into(fd: &OwnedFd, buffer: &mut Vec<u8>) -> io::Result<usize> {
    Ok(rustix::io::read(
        fd,
        rustix::buffer::spare_capacity(buffer),
    )?)
}

/// One send of `bytes`: how many went out. A peer that is gone is an
/// `Err` (`EPIPE`), never a `SIGPIPE` (see [`socket_pair`]).
pub(crate) fn send(fd: &OwnedFd, bytes: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(fd, bytes, imp::SEND_FLAGS)?)
}

/// What [`poll`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Something to read (or a hang-up).
    Read,
    /// Something to read, or room to write.
    ReadOrWrite,
}

/// Sleeps until one of `fds` is [`Ready`] (or hangs up), or `interval`
/// has passed.
pub(crate) fn poll<'a>(
    fds: impl Iterator<Item = BorrowedFd<'a>>,
    ready: Ready,
    interval: Duration,
) {
    let flags = match ready {
        Ready::Read => PollFlags::IN,
        Ready::ReadOrWrite => PollFlags::IN | PollFlags::OUT,
    };
    let mut fds: Vec<PollFd<'a>> = fds.map(|fd| PollFd::from_borrowed_fd(fd, flags)).collect();
    let timeout = Timespec::try_from(interval).ok();
    // An interruption or an error is the same as the interval passing: the
    // caller looks at its descriptors either way.
    let _ = rustix::event::poll(&mut fds, timeout.as_ref());
}

/// Shuts down the sending side of a socket: its peer reads end-of-file.
pub(crate) fn shutdown_sending(fd: &OwnedFd) {
    let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Write);
}

/// Sends `SIGKILL` to `pid`, our unreaped child (so the id cannot name an
/// unrelated process).
pub(crate) fn kill(pid: Pid) {
    let _ = rustix::process::kill_process(pid, Signal::KILL);
}

/// How a child process ended: its raw wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExitStatus(i32);

impl ExitStatus {
    /// `exit(0)`.
    pub(crate) const CLEAN: ExitStatus = ExitStatus(0);

    /// A wait status as the OS encodes it (for tests).
    #[cfg(test)]
    pub(crate) fn from_raw(raw: i32) -> ExitStatus {
        ExitStatus(raw)
    }

    /// True for an exit with status 0.
    pub(crate) fn is_clean(self) -> bool {
        libc::WIFEXITED(self.0) && libc::WEXITSTATUS(self.0) == 0
    }

    /// "killed by signal 11 (SIGSEGV)" or "exited with status 3".
    pub(crate) fn describe(self) -> String {
        let status = self.0;
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            format!("killed by signal {signal} ({})", signal_name(signal))
        } else if libc::WIFEXITED(status) {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        } else {
            format!("ended with wait status {status:#x}")
        }
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

/// The exit status of `pid` if it has exited (reaping it), without
/// blocking.
pub(crate) fn try_wait(pid: Pid) -> io::Result<Option<ExitStatus>> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(status) => return Ok(status.map(|(_, status)| ExitStatus(status.as_raw()))),
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// Waits for `pid` to exit (it has been sent `SIGKILL`) and reaps it.
pub(crate) fn wait_blocking(pid: Pid) {
    while let Err(rustix::io::Errno::INTR) =
        rustix::process::waitpid(Some(pid), WaitOptions::empty())
    {}
}

/// True if `pid`, our child, has not exited (without reaping it).
#[cfg(not(target_os = "openbsd"))]
pub(crate) fn is_alive(pid: Pid) -> bool {
    use rustix::process::{WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    // `None`: no exit to report, so it still runs.
    matches!(rustix::process::waitid(WaitId::Pid(pid), options), Ok(None))
}

/// True if `pid`, our child, has not exited. OpenBSD has no `waitid`
/// (rustix's `WaitId` leaves it out): an unreaped child that exited still
/// counts as alive here, and its end shows up at the next reap.
#[cfg(target_os = "openbsd")]
pub(crate) fn is_alive(pid: Pid) -> bool {
    rustix::process::test_kill_process(pid).is_ok()
}

/// Forks this process. `Ok(None)` in the child, the child's id in the
/// parent.
///
/// # Safety
///
/// The child is a copy of the process with only the calling thread: it
/// must keep the contract of the process backend's `Forker::fork_many`
/// (end in [`exit_now`], take no lock another thread may have held).
pub(crate) unsafe fn fork() -> io::Result<Option<Pid>> {
    // SAFETY: fork has no memory-safety preconditions of its own; what the
    // child does is the caller's contract. rustix has no stable fork.
    match unsafe { libc::fork() } {
        0 => Ok(None),
        pid if pid > 0 => Ok(Pid::from_raw(pid)),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Ends this process at once with `code`, running no `atexit` handler and
/// no destructor (they belong to the parent's state, in a forked child).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Closes `fd`, a descriptor a forked child inherited from its parent and
/// does not use.
///
/// # Safety
///
/// Nothing in this process may use or own `fd` afterwards (in a forked
/// child, the parent's descriptors are owned by values that never run
/// their destructors there).
pub(crate) unsafe fn close_inherited(fd: RawFd) {
    // SAFETY: passed on from this function's contract.
    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
}

/// Ignores `SIGPIPE` in this process (a worker): a write to a parent that
/// is gone is an error, as in any Rust program's `main`, not a death by
/// signal.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // and has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// An anonymous shared mapping of zeroed memory, kept across `fork`: the
/// parent and its workers see the same bytes.
pub(crate) struct SharedMapping {
    base: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value and reached only through it;
// what is stored in it is the owner's business (atomics, in this crate).
unsafe impl Send for SharedMapping {}

impl SharedMapping {
    /// `len` zeroed bytes, page-aligned.
    pub(crate) fn new(len: usize) -> io::Result<SharedMapping> {
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: an anonymous mapping with no address hint touches no
        // existing memory.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?
        };
        Ok(SharedMapping { base, len })
    }

    /// The first byte, page-aligned.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.base.cast()
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: base and len come from the successful mmap in `new`, and
        // no reference into the mapping outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.base, self.len) };
    }
}

/// The number of CPUs online.
pub(crate) fn hardware_count() -> usize {
    // SAFETY: sysconf has no preconditions (rustix has no sysconf).
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online > 0 {
        online as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Writes to descriptor 2 directly, taking no lock (in a forked worker,
/// stderr's lock may be held for ever by a thread that is not there).
pub(crate) fn write_stderr_unlocked(mut bytes: &[u8]) {
    // SAFETY: descriptor 2 is only borrowed for these writes; if it is
    // closed, they fail and nothing is written.
    let stderr = unsafe { BorrowedFd::borrow_raw(2) };
    while !bytes.is_empty() {
        match rustix::io::write(stderr.as_fd(), bytes) {
            Ok(0) => return,
            Ok(written) => bytes = &bytes[written..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_with_signal_names() {
        // Wait statuses as Linux encodes them.
        assert_eq!(
            ExitStatus::from_raw(9).describe(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            ExitStatus::from_raw(11).describe(),
            "killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(
            ExitStatus::from_raw(3 << 8).describe(),
            "exited with status 3"
        );
        assert!(ExitStatus::CLEAN.is_clean());
        assert!(!ExitStatus::from_raw(9).is_clean());
    }

    #[test]
    fn a_shared_mapping_is_zeroed_and_writable() {
        let mapping = SharedMapping::new(10_000).unwrap();
        // SAFETY: the mapping has 10,000 bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(mapping.as_ptr(), 10_000) };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[9_999] = 7;
        assert_eq!(bytes[9_999], 7);
    }

    #[test]
    fn sockets_made_here_close_on_exec_and_carry_bytes() {
        let (a, b) = socket_pair().unwrap();
        for fd in [&a, &b] {
            let flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
        set_nonblocking(&b).unwrap();
        let mut buffer = Vec::with_capacity(16);
        let would_block = read_into(&b, &mut buffer).unwrap_err();
        assert_eq!(would_block.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(send(&a, b"hello").unwrap(), 5);
        poll(
            std::iter::once(b.as_fd()),
            Ready::Read,
            Duration::from_secs(5),
        );
        assert_eq!(read_into(&b, &mut buffer).unwrap(), 5);
        assert_eq!(buffer, b"hello");
        shutdown_sending(&a);
        assert_eq!(read_into(&b, &mut buffer).unwrap(), 0);
    }

    #[test]
    fn a_send_to_a_closed_peer_is_an_error_not_a_signal() {
        // With SIGPIPE at its default, a send without the protection would
        // kill this test process. Restored afterwards.
        // SAFETY: dispositions only; no handler is installed.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (a, b) = socket_pair().unwrap();
        drop(b);
        let error = send(&a, b"anyone?").unwrap_err();
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
    }
}
