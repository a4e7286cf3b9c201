//! # parpool: parallel map-reduce from a laptop to a cluster
//!
//! One [`Pool`], one [`map`](Pool::map), one [`map_reduce`](Pool::map_reduce);
//! where the work runs is a backend chosen in code or by the
//! `PARPOOL_BACKEND` environment variable, without touching your code.
//!
//! ```
//! use parpool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::new(); // threads, one per usable CPU
//! let squares = pool.map(square, vec![1, 2, 3, 4, 5, 6])?;
//! assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
//! # Ok::<(), parpool::Error>(())
//! ```
//!
//! ## What you can rely on
//!
//! - **Same answer everywhere.** Results come back in input order, and
//!   `map_reduce` groups its combining steps by a
//!   [chunk plan](backend::ChunkPlan) that depends only on the number of
//!   items, so even floating-point sums are
//!   bit-identical on every backend and worker count.
//! - **Errors name the item.** A panicking task comes back as an [`Error`]
//!   such as `task 3 of 10 panicked at src/main.rs:5:36: boom`; it never
//!   unwinds into your code.
//!   [`map`](Pool::map) stops at the first failure,
//!   [`map_results`](Pool::map_results) keeps going and returns every result.
//! - **Sane defaults on shared machines.** The worker count comes from
//!   [`cpus::available`], which honours `PARPOOL_WORKERS`, Slurm/PBS
//!   allocations, the affinity mask and cgroup quotas, and says which one it
//!   used.
//! - **Nested use is safe.** A pool used inside a task runs serially.
//!
//! ## Beyond `map`
//!
//! - [`Pool::local`]: a pool in this process ([`LocalPool`]) with no serde
//!   bounds, for results such as `io::Result` and items that borrow.
//! - [`imap`](Pool::imap) and [`imap_unordered`](Pool::imap_unordered):
//!   lazy, bounded streams over inputs of any length ([`Imap`]).
//! - [`session`](Pool::session): workers (forked processes) that start
//!   once and serve many calls ([`Session`]).
//! - [`map_init`](Pool::map_init): per-worker state.
//! - [`CancelToken`]: stop a running call from another thread.
//! - `PoolBuilder::progress`: a progress bar (cargo feature `progress`,
//!   on by default).
//! - `Pool::map_async` and friends, and `Imap` as a `futures_core::Stream`,
//!   for async code on any runtime (cargo feature `async`, off by
//!   default; see the `future` module).
//! - [`map_gather`](Pool::map_gather): results on MPI rank 0 only.
//! - [`Journal`] and [`Pool::with_journal`]: a killed run resumes where it
//!   stopped, with the same bits; [`CancelToken::on_signals`] stops a call
//!   at the scheduler's `SIGTERM`.
//!
//! ## Backends
//!
//! | [`BackendKind`] | `PARPOOL_BACKEND` | runs chunks |
//! |---|---|---|
//! | `Serial` | `serial` | in order on the calling thread |
//! | `Threads` | `threads` (default) | on the process's shared rayon thread pool, or one of the pool's own |
//! | `Mpi` | `mpi` (feature `mpi`) | across MPI ranks, results all-gathered to every rank (or gathered to rank 0, `map_gather`) |
//! | `Processes` | `processes` (every Unix) | in forked worker processes, with crash isolation, [timeouts](PoolBuilder::timeout) and [retries](PoolBuilder::retries) |
//!
//! Write your own with the [`Backend`] trait: implementing
//! [`run`](Backend::run) alone gives it every call, streams, sessions,
//! cancellation and progress. Everything a backend author needs is in
//! [`backend`], apart from the pools users name; that protocol is
//! unstable before 1.0.
//!
//! ## What parpool does to your process
//!
//! Everything parpool changes outside the pools you make, in one place:
//!
//! - **One shared thread pool.** Pools on the threads backend that ask for
//!   nothing special ([`Pool::new`], `Pool::default()`, [`Pool::from_env`],
//!   [`Pool::local`], and builders with no other worker count) run on one
//!   rayon thread pool per process, not rayon's global one. It is sized
//!   the first time it is asked for (`PARPOOL_WORKERS`, else
//!   [`cpus::available`]; both read once), its threads (`parpool-shared-N`)
//!   start at the first call that runs on it and live as long as the
//!   process, as rayon's global pool's do. Other pools' threads
//!   (`parpool-worker-N`, `parpool-mpi-N`) start at their first call and
//!   exit soon after the pool is dropped; no drop waits for them. See
//!   [`PoolBuilder`](PoolBuilder#which-pools-share-threads).
//! - **The panic hook.** The first call of any pool wraps the process's
//!   panic hook, once, chaining to the hook that was there: inside a task
//!   it notes where the panic happened (for [`Error::panic_location`]); in
//!   a worker process it writes the message to stderr without taking a
//!   lock; everywhere else it calls your hook. A hook you set later
//!   replaces it. [`leave_panic_hook_alone`] opts out.
//! - **Child processes** (process backend): forked per call or per
//!   session, reaped before the call or session returns; they die with the
//!   caller (Linux: `PR_SET_PDEATHSIG`; other Unix systems: each worker
//!   watches a pipe whose write end only the caller holds, and the caller
//!   keeps that pipe, two descriptors, from the first fork to its end).
//!   Workers ignore `SIGPIPE`; your process's disposition is left alone.
//!   A helper thread (`parpool-fork`) may fork on the caller's behalf
//!   while another thread holds stdout; it ends with the backend. On
//!   Linux, results over 16 MiB are read from a worker's memory by up to
//!   four threads at once (`parpool-read`), which end before the read
//!   returns.
//! - **MPI** (feature `mpi`): the first MPI pool initializes MPI and
//!   registers an `atexit` handler that finalizes it; a helper thread
//!   (`parpool-mpi-progress`) drives MPI progress while a stream is open.
//! - **Environment variables** read, never written: every one is listed
//!   in [`env`](mod@env).
//!
//! No signal handler is installed in your process, and nothing else is
//! changed.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
mod cancel;
pub mod carries;
pub mod cpus;
pub mod env;
mod error;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod future;
mod job;
mod journal;
// Only the process backend (Unix) shares large reads between threads.
#[cfg(unix)]
mod parts;
mod plan;
mod pool;
mod progress;
mod stream;
mod sync;
mod sys;

pub use backend::Backend;
pub use backend::kind::BackendKind;
pub use cancel::CancelToken;
pub use error::{Error, ErrorKind};
pub use job::unwind::leave_panic_hook_alone;
pub use journal::{CallReport, Journal, SYNC_INTERVAL};
pub use pool::{JournaledPool, LocalPool, Pool, PoolBuilder, PoolOf};
pub use stream::{Imap, ImapUnordered, STREAM_CHUNK_SIZE, Session};

/// The README's Rust examples, compiled and run as doctests, so a moved
/// name cannot leave the README behind.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
