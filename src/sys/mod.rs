//! Every operating-system call of the crate, in one place, so the layers
//! above are the same on every platform.
//!
//! | what | Linux | other Unix (macOS, the BSDs, illumos) | not Unix (Windows) |
//! |---|---|---|---|
//! | fork, waitpid, kill, poll, mmap | POSIX, through rustix (libc for `fork`, `_exit`, `signal`) | the same | no process backend |
//! | close-on-exec sockets and pipes | `SOCK_CLOEXEC`, `pipe2(O_CLOEXEC)` | `fcntl(FD_CLOEXEC)` right after | - |
//! | no `SIGPIPE` on a send to a dead worker | `MSG_NOSIGNAL` | `SO_NOSIGPIPE` where it exists (Apple, FreeBSD, NetBSD, DragonFly), else `MSG_NOSIGNAL` (POSIX.1-2008); workers ignore `SIGPIPE` everywhere | - |
//! | a worker dies with its parent | `prctl(PR_SET_PDEATHSIG)` | end-of-file on a pipe only the parent holds the write end of | - |
//! | is this process single-threaded (fork without the forker thread) | `/proc/self/stat` | no: always the forker thread | - |
//! | CPUs this process may use | `sched_getaffinity` | `sched_getaffinity` on FreeBSD (cpuset), else none | none |
//! | CPUs online | `sysconf(_SC_NPROCESSORS_ONLN)` | the same | `available_parallelism` |
//! | huge pages for large buffers | `madvise(MADV_HUGEPAGE)` | nothing (FreeBSD promotes superpages by itself) | nothing |
//! | the parent reads a worker's large results where they lie | `process_vm_readv` | no: they come through the socket | - |
//! | a raw write to stderr (no lock) | `write(2, ...)` | the same | `std::io::stderr` |
//!
//! `RUSTFLAGS="--cfg parpool_portable_unix"` makes Linux take the column
//! of the other Unix systems, so those paths run in this crate's tests on
//! Linux too (`.ci/run` runs the process and fault tests that way).

pub(crate) mod parent_only;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
pub(crate) use other::*;
