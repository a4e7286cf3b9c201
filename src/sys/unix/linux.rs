//! Linux's fast paths: flags that make a descriptor close-on-exec and a
//! send signal-free in the same call, the kernel's parent-death signal,
//! the affinity mask, `/proc`, transparent huge pages.

use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;

/// Sends never raise `SIGPIPE`.
pub(super) const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;

/// A connected pair of Unix stream sockets, close-on-exec from the start
/// (`SOCK_CLOEXEC`): (parent end, child end).
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Nothing to prepare in the parent: the kernel tells the child.
pub(crate) fn before_fork() -> io::Result<()> {
    Ok(())
}

/// In a freshly forked child: asks the kernel to kill it when its parent
/// dies (`PR_SET_PDEATHSIG`), and exits if the parent already has (the
/// child would have been reparented before the request).
///
/// The signal fires when the parent *thread* that forked the child ends,
/// which is why the process backend forks from a thread that outlives its
/// workers.
pub(crate) fn die_with_parent(parent: super::Pid) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != Some(parent) {
        super::exit_now(4);
    }
}

/// True if this process has one thread, the caller (from
/// `/proc/self/stat`; false if it cannot be read).
pub(crate) fn single_threaded() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    // "pid (comm) state ppid ...": comm may hold anything, so count the
    // fields after its closing parenthesis; num_threads is field 20.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .is_some_and(|threads| threads == "1")
}

/// The number of CPUs in this thread's affinity mask (`sched_getaffinity`),
/// or `None` if it cannot be read (more CPUs than the set holds).
pub(crate) fn affinity_count() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    Some(set.count() as usize).filter(|&count| count > 0)
}

/// Asks Linux to back `len` bytes at `start`, a fresh allocation about to
/// be written in full, with transparent huge pages where it allows them
/// (`madvise` mode): one fault and one clear per 2 MiB instead of per
/// 4 KiB, which is most of the cost of a fresh buffer of hundreds of MB.
/// A hint only; nothing changes where it is refused.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 4 * HUGE {
        return;
    }
    let first = (start as usize).next_multiple_of(HUGE);
    let end = (start as usize + len) / HUGE * HUGE;
    if end > first {
        // SAFETY: MADV_HUGEPAGE only changes how the kernel backs pages of
        // this process's own mapping, inside an allocation of `len` bytes;
        // it never changes their contents.
        let _ = unsafe {
            rustix::mm::madvise(
                first as *mut std::ffi::c_void,
                end - first,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
    }
}
