//! The child side of a fork: how a worker process starts, what it may
//! touch, and how it ends.
//!
//! `fork` copies the calling thread only. Locks held by *other* threads at
//! that moment stay locked forever in the child; the module docs of the
//! process backend list the hazards and what is done about each. This file
//! holds the mechanics: [`fork_child`] (with its preconditions as a
//! `# Safety` contract), [`enter_child`], [`exit_child`].

use super::os;
use crate::error::Error;
use crate::job;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::Mutex;

/// Serializes this crate's forks, so no child inherits another call's
/// half-made channel.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Forks a child that runs `child` (which never returns) and returns its
/// pid. Holds the fork lock and the stdio locks across the fork: no other
/// thread can be inside them, and nothing buffered is copied into the
/// child.
///
/// # Safety
///
/// `child` runs in a copy of this process that has only the calling
/// thread. It must:
///
/// - end in [`exit_child`] (`_exit`), never return or unwind out, so no
///   destructor of the parent's state runs twice;
/// - not wait for anything another thread of the parent would have done
///   (those threads do not exist in the child), nor take a lock another
///   thread may have held at the fork (this crate's own are safe: see the
///   process backend's module docs);
/// - treat the parent's descriptors it does not own as the parent's: close
///   them ([`enter_child`]) and never read or write them.
pub(super) unsafe fn fork_child(child: impl FnOnce() -> Infallible) -> Result<libc::pid_t, Error> {
    install_worker_panic_hook();
    let _forking = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = std::io::stdout();
    let mut stdout_lock = stdout.lock();
    let _ = stdout_lock.flush();
    let stderr_lock = std::io::stderr().lock();
    // SAFETY: fork has no memory-safety preconditions of its own; what the
    // child may do afterwards is this function's contract, passed on to
    // the caller.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // `child` returns `Infallible`: it never comes back.
        child();
    }
    drop(stderr_lock);
    drop(stdout_lock);
    if pid < 0 {
        return Err(os::os_error("fork"));
    }
    Ok(pid)
}

/// Prepares a freshly forked worker: dies with the parent, closes the
/// parent's descriptors it does not use, marks itself as a worker (so pools
/// used inside its tasks run serially and progress meters stay quiet).
pub(super) fn enter_child(parent_pid: libc::pid_t, close: &[RawFd]) {
    die_with_parent(parent_pid);
    for &fd in close {
        // SAFETY: these descriptors are the parent's, copied by fork; this
        // child never uses them, and nothing else in it owns them.
        unsafe { libc::close(fd) };
    }
    job::mark_worker_process();
}

/// Runs a worker's loop with panics caught, then ends the process.
pub(super) fn run_child(body: impl FnOnce() -> std::io::Result<()>) -> Infallible {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    exit_child(outcome)
}

/// Ends a worker process: flushes stdout, then `_exit` with a code that
/// says how the worker's loop ended.
fn exit_child(outcome: std::thread::Result<std::io::Result<()>>) -> Infallible {
    let _ = std::io::stdout().flush();
    let code = match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 3, // the channel broke: the parent is gone or stopped us
        Err(_) => 70,    // a bug in this backend, not in a task
    };
    // SAFETY: _exit ends the process at once, without running atexit
    // handlers or destructors that belong to the parent's state.
    unsafe { libc::_exit(code) }
}

/// Asks the kernel to kill this child when its parent dies, and exits if
/// the parent already has (it would otherwise have been reparented).
fn die_with_parent(parent_pid: libc::pid_t) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and has no memory
    // effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent_pid {
        // SAFETY: as in exit_child.
        unsafe { libc::_exit(4) };
    }
}

/// Wraps the process's panic hook, once, so that in a worker process a
/// panic message is written straight to stderr without the default hook's
/// locks. The default hook takes a process-wide backtrace lock; if another
/// thread of the parent was panicking at the moment of a fork, that lock is
/// held forever in the child, and a panicking task would hang its worker.
/// Outside worker processes the previous hook runs unchanged.
fn install_worker_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if job::inside_worker_process() {
                let message = format!("parpool worker {}: {info}\n", os::getpid());
                write_stderr_unlocked(message.as_bytes());
            } else {
                previous(info);
            }
        }));
    });
}

/// Writes to file descriptor 2 directly, taking no lock.
fn write_stderr_unlocked(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of the length passed.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[written as usize..];
    }
}
