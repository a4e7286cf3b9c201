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
/// A hint only; nothing changes where it is refused. Buffers from 4 MiB:
/// the items and outputs of a million 8-byte values (7.6 MiB) are among
/// them.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
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

/// A parent can read its workers' memory here (`process_vm_readv`).
pub(crate) const REMOTE_READS: bool = true;

/// Reads the memory of process `pid` at `pieces` (address, length) into
/// `into`, in order, filling it: one copy, from the other process's pages
/// straight into this one's. `into` is exactly as long as the pieces
/// together. `ESRCH` if the process is gone; `EFAULT` if a piece is not
/// its memory; `EPERM` where the system forbids it (a `ptrace` policy, a
/// seccomp filter): the caller then takes the bytes another way. On `Ok`
/// every byte of `into` was written.
pub(crate) fn read_remote(
    pid: super::Pid,
    pieces: &[(usize, usize)],
    into: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<()> {
    let total = pieces
        .iter()
        .try_fold(0usize, |total, &(_, len)| total.checked_add(len));
    if total != Some(into.len()) {
        return Err(io::Error::other("pieces that do not fill the buffer"));
    }
    let mut pieces = pieces.iter().copied().filter(|&(_, len)| len > 0);
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut done = 0;
    loop {
        // At most IOV_MAX (1024) remote pieces per call.
        pending.extend(pieces.by_ref().take(1024 - pending.len()));
        if pending.is_empty() {
            return Ok(());
        }
        let wanted: usize = pending.iter().map(|&(_, len)| len).sum();
        let local = libc::iovec {
            iov_base: into[done..done + wanted].as_mut_ptr().cast(),
            iov_len: wanted,
        };
        let remote: Vec<libc::iovec> = pending
            .iter()
            .map(|&(address, len)| libc::iovec {
                iov_base: address as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: the local iovec is `wanted` bytes of `into` from `done`
        // (the pieces pending, which with those read add up to at most
        // its length, checked above); the kernel checks the remote
        // addresses against the other process's mappings and fails with
        // EFAULT rather than touch anything else.
        let read = unsafe {
            libc::process_vm_readv(
                pid.as_raw_nonzero().get(),
                &local,
                1,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        let read = read as usize;
        if read == 0 {
            return Err(io::Error::other("a worker's memory read short"));
        }
        done += read;
        // Drop what was read; a partial read ends on a piece's boundary or
        // inside one, which is kept for the next call.
        let mut left = read;
        pending.retain_mut(|(address, len)| {
            if left >= *len {
                left -= *len;
                false
            } else {
                *address += left;
                *len -= left;
                left = 0;
                true
            }
        });
    }
}
