//! The MPI backend: the same `Pool` across the ranks of an MPI job
//! (feature `mpi`, on the `mpi` crate, rsmpi), with threads inside every
//! rank.
//!
//! # SPMD: every rank runs the whole program
//!
//! Under `mpiexec -n 4 program`, four copies of `program` run, and every one
//! of them builds the same inputs and calls the same `pool.map(f, items)`.
//! Every rank returns the same full, ordered `Vec<R>` from `map` (and the
//! same value from `map_reduce`), bit-identical to the serial backend's for
//! any number of ranks and threads. Print from one rank only with
//! [`Pool::rank`](crate::Pool::rank):
//!
//! ```no_run
//! use parpool::{BackendKind, Pool};
//!
//! let pool = Pool::builder().kind(BackendKind::Mpi).build()?;
//! let squares = pool.map(|x: u64| x * x, 0..100)?;
//! if pool.rank() == 0 {
//!     println!(
//!         "{} ranks x {} threads computed {:?}",
//!         pool.ranks(),
//!         pool.workers(),
//!         &squares[..6]
//!     );
//! }
//! # Ok::<(), parpool::Error>(())
//! ```
//!
//! Inputs never cross the network (each rank has its own copy); results do,
//! which is why they are serializable. Calls, streams and sessions are
//! collective: every rank makes the same calls in the same order, as with
//! any MPI collective.
//!
//! # Threads inside each rank
//!
//! Each rank runs its chunks on its own pool of
//! [`workers`](crate::PoolBuilder::workers) threads. The default is
//! [`cpus::available()`](crate::cpus::available) inside the rank, which
//! honours the CPU binding that `mpiexec` or `srun` gives each rank
//! (`mpiexec -bind-to core`, `srun --cpu-bind=cores`) and Slurm's
//! `--cpus-per-task`. Ranks started without binding each see the whole
//! node: set the threads per rank yourself then (`PARPOOL_WORKERS`, or
//! [`workers`](crate::PoolBuilder::workers)), or several ranks on one node
//! share its cores. Only the thread that calls the pool makes MPI calls;
//! the worker threads never do.
//!
//! # Balance at run time
//!
//! Ranks claim chunks while the call runs, from one counter on rank 0 that
//! every rank advances with `MPI_Fetch_and_op` (one-sided: rank 0 need not
//! take part), the cross-rank twin of the thread backend's atomic counter.
//! A rank claims a chunk whenever one of its threads is free, so a rank
//! that drew slow chunks simply claims fewer, and no rank idles while
//! chunks remain. Which rank ran a chunk never changes its results: after
//! the last chunk the encoded results are all-gathered, and every rank
//! puts every chunk in its place.
//!
//! When every rank runs on one node, the counter lives in MPI shared
//! memory and ranks advance it with an atomic instruction; across nodes it
//! is an `MPI_Fetch_and_op` on rank 0, which then calls MPI every 200 µs
//! while its threads are busy, because many MPI libraries complete another
//! rank's atomic only while the host is inside MPI.
//! [`PARPOOL_MPI_RMA`](crate::env::MPI_RMA) forces the cross-node path on one machine.
//!
//! # Failures: stop everyone, agree, then exchange
//!
//! The counter also carries the stop signal. A rank whose chunk fails in a
//! fail-fast call (`map`, `map_reduce`), or whose call is cancelled, adds a
//! large constant to it: from then on no rank's claim returns a chunk, and
//! ranks that are waiting on their threads look at the counter every few
//! milliseconds and halt their running chunks before the next item (or
//! block of fast items). Then
//! every rank shares one small status (its first failure, or none); if any
//! rank failed, no results are exchanged, and every rank returns the same
//! `Err`, naming the item with the lowest index. A failure that cannot be
//! reported this way (a bug that panics inside this backend, or a rank that
//! dies: segfault, `abort()`, OOM) ends the job: the backend aborts the
//! communicator, or `mpiexec` notices the dead rank and stops the others;
//! either way `mpiexec` exits non-zero instead of hanging.
//!
//! # Streams and sessions
//!
//! [`imap`](crate::Pool::imap), [`imap_unordered`](crate::Pool::imap_unordered)
//! and sessions claim chunks the same way, without a barrier between
//! chunks: a rank runs a chunk as soon as a thread is free and sends its
//! encoded results to every other rank, so chunks overlap across ranks and
//! each rank holds no more than the stream's
//! [`in_flight`](crate::PoolBuilder::in_flight) chunks. Dropping a stream
//! lets the chunks already running finish (another rank may be waiting for
//! them) and starts no new one.
//!
//! # Starting and stopping MPI
//!
//! The first MPI pool of a process initialises MPI, asking for
//! `MPI_THREAD_SERIALIZED` (the backend's MPI calls come from whichever
//! thread calls the pool, one at a time, under a lock). A library that
//! offers only `MPI_THREAD_FUNNELED` is accepted, and then calls must come
//! from the thread that initialised MPI; one that offers only
//! `MPI_THREAD_SINGLE` is refused with an error. Later pools reuse MPI. MPI
//! is finalised once, when the process exits normally (an `atexit`
//! handler). A program started without `mpiexec` runs as a single rank.
//!
//! A program that initialised MPI itself (rsmpi's
//! `mpi::initialize_with_threading`, or C or Fortran code linked in) keeps
//! it: the pool uses that MPI if it offers `MPI_THREAD_FUNNELED` or more
//! (else its error names the level it needs), never finalises it, and can
//! run on a communicator of the program's
//! ([`MpiBackend::with_communicator`]). Its messages travel on its own
//! duplicate of the communicator, so they never meet the program's. With
//! `MPI_THREAD_SERIALIZED`, do not call MPI on another thread while a pool
//! call runs.
//!
//! When a launcher started several tasks (`OMPI_COMM_WORLD_SIZE`,
//! `PMI_SIZE`, `SLURM_STEP_NUM_TASKS`) but MPI's world has one rank, the
//! binary's MPI did not join the launcher's job (`srun` without `--mpi`,
//! the `mpiexec` of another MPI), and every task would silently run the
//! whole job alone: making the pool is an error that names both numbers
//! and the fix.
//!
//! # Large results
//!
//! MPI counts are 32-bit. Results are exchanged as bytes in rounds of at
//! most `min(1 GiB, (2³¹ − 1) / size)` bytes per rank, as many rounds as the
//! largest rank needs, so there is no 2 GiB limit per rank; memory is the
//! limit (every rank ends up holding every result, as `map` promises).

mod call;
mod counter;
mod env;
mod gather;
mod records;
mod stream;

use super::threads::LazyThreads;
use super::{BackendKind, Capabilities, DEFAULT_IN_FLIGHT_PER_WORKER, Driver, StreamEngine};
use crate::error::Error;
use crate::job::{ChunkJob, StreamJob};
use env::{Entered, enter, start_mpi};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Arc;

/// Runs chunks across the ranks of `MPI_COMM_WORLD` (or of a communicator
/// the program gives it), on `workers` threads in every rank.
#[derive(Debug)]
pub struct MpiBackend {
    rank: usize,
    size: usize,
    /// This rank's threads, started at the first call.
    threads: LazyThreads,
    /// Every rank runs on this node (the chunk counter can live in shared
    /// memory).
    one_node: bool,
    /// The communicator it runs on (its own duplicate).
    comm: OwnComm,
}

use crate::env::MPI_RMA as RMA_VARIABLE;

impl MpiBackend {
    /// Joins the MPI job on `MPI_COMM_WORLD` (initialising MPI if this is
    /// the first MPI pool and the program did not), with `workers` threads
    /// (at least 1) to run this rank's chunks.
    ///
    /// Collective: every rank of the world calls it.
    pub fn new(workers: usize) -> Result<MpiBackend, Error> {
        Self::build(workers, |_| SimpleCommunicator::world().duplicate())
    }

    /// Runs on the ranks of `communicator` instead of the whole world, so
    /// a program can give parpool part of its ranks (a sub-communicator from
    /// `split_by_color`) and keep the rest for its own work. MPI must have
    /// been initialised by the program, at `MPI_THREAD_FUNNELED` or above
    /// (rsmpi: `mpi::initialize_with_threading(Threading::Funneled)`);
    /// parpool then never finalises it. The backend works on its own
    /// duplicate of `communicator`, so its messages never meet the
    /// program's, and frees it when dropped.
    ///
    /// Collective over `communicator`: every rank of it calls this.
    ///
    /// ```no_run
    /// use mpi::traits::*;
    /// use parpool::backend::MpiBackend;
    /// use parpool::Pool;
    ///
    /// let (universe, _level) = mpi::initialize_with_threading(mpi::Threading::Funneled).unwrap();
    /// let world = universe.world();
    /// // Even ranks run a pool; odd ranks do something else.
    /// let color = mpi::topology::Color::with_value(world.rank() % 2);
    /// let half = world.split_by_color(color).unwrap();
    /// if world.rank() % 2 == 0 {
    ///     let pool = Pool::with_backend(MpiBackend::with_communicator(&half, 2)?);
    ///     let squares = pool.map(|x: u64| x * x, 0..100)?;
    ///     assert_eq!(squares[9], 81);
    /// }
    /// # Ok::<(), parpool::Error>(())
    /// ```
    pub fn with_communicator(
        communicator: &impl Communicator,
        workers: usize,
    ) -> Result<MpiBackend, Error> {
        if !mpi::environment::is_initialized() {
            return Err(Error::backend(
                "mpi",
                "MpiBackend::with_communicator needs MPI initialized by the program (a \
                 communicator cannot exist before); use MpiBackend::new for the world",
            ));
        }
        Self::build(workers, |_| communicator.duplicate())
    }

    /// A backend on the communicator `duplicate` makes (with the MPI lock
    /// held).
    fn build(
        workers: usize,
        duplicate: impl FnOnce(&Entered) -> SimpleCommunicator,
    ) -> Result<MpiBackend, Error> {
        super::check_workers(workers)?;
        start_mpi()?;
        let threads = LazyThreads::new(workers, "parpool-mpi")?;
        let entered = enter()?;
        let comm = duplicate(&entered);
        let forced_rma = std::env::var_os(RMA_VARIABLE).is_some_and(|value| value == "1");
        let one_node = !forced_rma && comm.split_shared(0).size() == comm.size();
        Ok(MpiBackend {
            rank: comm.rank() as usize,
            size: comm.size() as usize,
            threads,
            one_node,
            comm: OwnComm(Some(comm)),
        })
    }

    /// Runs `body` with the MPI lock held; a panic inside it is a bug in
    /// this backend that would leave the other ranks waiting in a
    /// collective, so it aborts the MPI job instead.
    fn collective<R>(
        &self,
        body: impl FnOnce(&Entered, &SimpleCommunicator) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let entered = enter()?;
        let comm = self.comm.get();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&entered, comm)));
        match outcome {
            Ok(result) => result,
            Err(_) => {
                eprintln!(
                    "parpool: the MPI backend failed on rank {} outside any task; aborting the \
                     MPI job so the other ranks do not wait forever",
                    self.rank
                );
                SimpleCommunicator::world().abort(70)
            }
        }
    }
}

/// The communicator a backend works on: its own duplicate (of the world or
/// of the program's communicator), freed when the backend is dropped.
struct OwnComm(Option<SimpleCommunicator>);

// SAFETY: a communicator handle is an opaque identifier (an integer in
// MPICH, a pointer in Open MPI) that any thread may pass to MPI; every MPI
// call on it is made with the backend's lock held.
unsafe impl Send for OwnComm {}
// SAFETY: as above: shared references only pass the handle to MPI, under
// the lock.
unsafe impl Sync for OwnComm {}

impl OwnComm {
    fn get(&self) -> &SimpleCommunicator {
        self.0.as_ref().expect("freed only when dropped")
    }
}

impl std::fmt::Debug for OwnComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnComm")
    }
}

impl Drop for OwnComm {
    fn drop(&mut self) {
        let Some(comm) = self.0.take() else {
            return;
        };
        // Freed under the lock, on a thread MPI allows calls from, and only
        // while MPI lives; otherwise left to MPI_Finalize (or to the exit).
        match enter() {
            Ok(_entered) => drop(comm),
            Err(_) => std::mem::forget(comm),
        }
    }
}

backend_through_driver!(MpiBackend);

impl Driver for MpiBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Mpi
    }

    /// The threads in this rank.
    fn workers(&self) -> usize {
        self.threads.workers()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rank: self.rank,
            ranks: self.size,
            // A stream's chunks are shared by every rank's threads.
            in_flight_per_worker: DEFAULT_IN_FLIGHT_PER_WORKER * self.size,
            ..Capabilities::default()
        }
    }

    fn run(&self, job: &dyn ChunkJob) -> Result<(), Error> {
        let threads = self.threads.get()?;
        let workers = self.threads.workers();
        self.collective(|_, world| call::run(world, self.one_node, (threads, workers), job))
    }

    fn share_from_root(&self, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.collective(|_entered, world| Ok(gather::broadcast_bytes_from_root(world, bytes)))
    }

    fn open_stream(&self, job: Arc<dyn StreamJob>) -> Result<Box<dyn StreamEngine>, Error> {
        let threads = self.threads.get()?.clone();
        let workers = self.threads.workers();
        let engine = self.collective(|entered, world| {
            Ok(stream::MpiEngine::new(
                (entered, world),
                self.one_node,
                (threads, workers),
                job,
            ))
        })?;
        Ok(Box::new(engine))
    }
}
