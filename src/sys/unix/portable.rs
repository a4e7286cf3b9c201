//! The paths of every Unix but Linux (macOS, the BSDs, illumos), taken on
//! Linux too with `--cfg parpool_portable_unix` so they are tested there.
//!
//! Symbols used here, checked in the libc 0.2 and rustix 1.1 sources for
//! Apple and FreeBSD: `socketpair`, `pipe`, `fcntl(F_SETFD, FD_CLOEXEC)`,
//! `read`, `getppid` are POSIX; `MSG_NOSIGNAL` is POSIX.1-2008 and in
//! rustix's `SendFlags` for every Unix but Apple, where rustix's
//! `set_socket_nosigpipe` (`SO_NOSIGPIPE`, also FreeBSD, NetBSD and
//! DragonFly) takes its place; `sched_getaffinity` is in rustix for
//! FreeBSD and DragonFly (their `cpuset_getaffinity`).

use crate::sync::LockUnpoisoned;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

/// Sends never raise `SIGPIPE`: `MSG_NOSIGNAL` where it exists.
#[cfg(not(target_vendor = "apple"))]
pub(super) const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
/// Apple has no `MSG_NOSIGNAL`: the parent's socket ends carry
/// `SO_NOSIGPIPE` instead (see [`socket_pair`]).
#[cfg(target_vendor = "apple")]
pub(super) const SEND_FLAGS: SendFlags = SendFlags::empty();

/// A connected pair of Unix stream sockets, made close-on-exec right after
/// they are made: (parent end, child end). On Apple both ends carry
/// `SO_NOSIGPIPE`.
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (parent, child) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )?;
    for end in [&parent, &child] {
        super::set_cloexec(end)?;
        #[cfg(target_vendor = "apple")]
        rustix::net::sockopt::set_socket_nosigpipe(end, true)?;
    }
    Ok((parent, child))
}

/// The pipe a worker watches for its parent's death: (read end, write
/// end), both kept open by the parent for the life of the process. Every
/// worker closes its copy of the write end at once, so the parent holds
/// the only one; when the parent dies, however it dies, the kernel closes
/// it and the workers read end-of-file.
static DEATH_PIPE: OnceLock<(RawFd, RawFd)> = OnceLock::new();

/// In the parent, before forking: makes the death pipe, once per process
/// (two descriptors, kept until the process ends, like the shared thread
/// pool).
pub(crate) fn before_fork() -> io::Result<()> {
    static MAKING: Mutex<()> = Mutex::new(());
    if DEATH_PIPE.get().is_some() {
        return Ok(());
    }
    let _making = MAKING.lock_unpoisoned();
    if DEATH_PIPE.get().is_none() {
        let (read, write) = rustix::pipe::pipe()?;
        super::set_cloexec(&read)?;
        super::set_cloexec(&write)?;
        // Kept open for ever: the raw descriptors are never closed here.
        let _ = DEATH_PIPE.set((read.into_raw_fd(), write.into_raw_fd()));
    }
    Ok(())
}

/// In a freshly forked child: closes its copy of the death pipe's write
/// end, exits if the parent is already gone, and starts a thread that
/// waits on the pipe's read end and ends the process at end-of-file (the
/// parent died). A worker waiting for work also notices through its
/// socket; the thread covers one busy in a long task.
pub(crate) fn die_with_parent(parent: super::Pid) {
    let Some(&(read, write)) = DEATH_PIPE.get() else {
        // `before_fork` failed, and the backend reported it before forking.
        return;
    };
    // SAFETY: the write end belongs to the parent; this child never uses
    // it, and the static that names it never closes it.
    unsafe { super::close_inherited(write) };
    if rustix::process::getppid() != Some(parent) {
        super::exit_now(4);
    }
    let watch = std::thread::Builder::new()
        .name("parpool-parent-watch".to_string())
        .spawn(move || {
            // SAFETY: the read end stays open for the life of this process
            // (nothing closes it).
            let read = unsafe { BorrowedFd::borrow_raw(read) };
            let mut byte = [0u8; 1];
            loop {
                match rustix::io::read(read, &mut byte) {
                    Err(rustix::io::Errno::INTR) => {}
                    // Nobody writes to the pipe: end-of-file (or an error)
                    // means the parent has gone.
                    _ => super::exit_now(4),
                }
            }
        });
    // Without the thread (out of threads), the worker still notices at the
    // end of its task, when its socket reads end-of-file.
    drop(watch);
}

/// Whether this process has one thread is not asked here: the process
/// backend always forks from its forker thread, which is correct with any
/// number of threads (only a little slower for a process with one).
pub(crate) fn single_threaded() -> bool {
    false
}

/// The CPUs in this thread's affinity set (FreeBSD and DragonFly's
/// `cpuset_getaffinity`, through rustix).
#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
pub(crate) fn affinity_count() -> Option<usize> {
    use rustix::thread::CpuSet;
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    // rustix counts a set only on Linux.
    let count = (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).count();
    Some(count).filter(|&count| count > 0)
}

/// No affinity API here (macOS has none that restricts a process; Linux
/// under `parpool_portable_unix` pretends to be such a system): the CPU
/// count falls back on the CPUs online.
#[cfg(not(any(target_os = "freebsd", target_os = "dragonfly")))]
pub(crate) fn affinity_count() -> Option<usize> {
    None
}

/// Huge pages are Linux's hint; FreeBSD promotes superpages by itself and
/// macOS has none for user allocations.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    let _ = (start, len);
}

/// No portable way to read another process's memory: workers send their
/// results through their sockets.
pub(crate) const REMOTE_READS: bool = false;

/// Never called where [`REMOTE_READS`] is false.
pub(crate) fn read_remote(
    _pid: super::Pid,
    _pieces: &[(usize, usize)],
    _into: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}
