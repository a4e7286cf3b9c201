//! The MPI backend: the same `Pool` across the ranks of an MPI job
//! (feature `mpi`, on the `mpi` crate, rsmpi).
//!
//! # SPMD: every rank runs the whole program
//!
//! Under `mpiexec -n 4 program`, four copies of `program` run, and every one
//! of them builds the same inputs and calls the same `pool.map(f, items)`.
//! Chunk `i` of the [`ChunkPlan`](crate::ChunkPlan) runs on rank
//! `i % size`; each rank runs its own chunks (on its calling thread), then
//! the encoded chunk results are all-gathered, so **every rank returns the
//! same full, ordered `Vec<R>`** from `map` (and the same value from
//! `map_reduce`), bit-identical to the serial backend's. Print from one
//! rank only with [`Pool::rank`](crate::Pool::rank):
//!
//! ```no_run
//! use parpool::{BackendKind, Pool};
//!
//! let pool = Pool::builder().kind(BackendKind::Mpi).build()?;
//! let squares = pool.map(|x: u64| x * x, 0..100)?;
//! if pool.rank() == 0 {
//!     println!("{} ranks computed {:?}", pool.ranks(), &squares[..6]);
//! }
//! # Ok::<(), parpool::Error>(())
//! ```
//!
//! Inputs never cross the network (each rank has its own copy); results do,
//! which is why they are serializable.
//!
//! # Starting and stopping MPI
//!
//! The first MPI pool of a process initialises MPI (thread level
//! "serialized": this backend makes its MPI calls one at a time, under a
//! lock); later pools reuse it. MPI is finalised once, when the process
//! exits normally (an `atexit` handler). A program started without
//! `mpiexec` runs as a single rank.
//!
//! # Failures: agree first, then exchange
//!
//! After running its chunks and encoding their results, every rank shares
//! one small status: its first failure (a panic in a task, or a result that
//! would not encode), or none. If any rank failed, no results are exchanged:
//! every rank records every failure and returns the same `Err`, naming the
//! item with the lowest index, so no rank waits in a collective for a rank
//! that gave up. A failure that cannot be reported this way (a bug that
//! panics inside this backend, or a rank that dies: segfault, `abort()`,
//! OOM) ends the job: the backend aborts the communicator, or `mpiexec`
//! notices the dead rank and stops the others; either way `mpiexec` exits
//! non-zero instead of hanging.
//!
//! Failing fast is per rank: a rank stops at its own first failure, but the
//! other ranks learn of it only at the agreement step, after their own
//! chunks.
//!
//! # Large results
//!
//! MPI counts are 32-bit. Results are exchanged as bytes in rounds of at
//! most `min(1 GiB, (2³¹ − 1) / size)` bytes per rank, as many rounds as the
//! largest rank needs, so there is no 2 GiB limit per rank; memory is the
//! limit (every rank ends up holding every result, as `map` promises).

use super::wire::{self, FrameKind};
use super::{Backend, BackendKind, Capabilities};
use crate::error::Error;
use crate::job::Job;
use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Mutex;

/// Runs chunks across the ranks of `MPI_COMM_WORLD`.
#[derive(Debug)]
pub struct MpiBackend {
    rank: usize,
    size: usize,
}

/// The MPI universe: initialised by the first MPI pool, finalised at exit.
/// The lock also serialises every MPI call this backend makes.
static UNIVERSE: Mutex<Option<mpi::environment::Universe>> = Mutex::new(None);

/// Finalises MPI at normal process exit.
extern "C" fn finalize_at_exit() {
    let mut universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
    // Dropping the Universe calls MPI_Finalize.
    drop(universe.take());
}

impl MpiBackend {
    /// Joins the MPI job (initialising MPI if this is the first MPI pool).
    pub fn new() -> Result<MpiBackend, Error> {
        let mut universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
        if universe.is_none() {
            if mpi::environment::is_finalized() {
                return Err(Error::backend("mpi", "MPI was already finalized"));
            }
            if mpi::environment::is_initialized() {
                return Err(Error::backend(
                    "mpi",
                    "MPI was initialized outside parpool; create parpool's MPI pool first",
                ));
            }
            let (started, _level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                .ok_or_else(|| Error::backend("mpi", "MPI could not be initialized"))?;
            *universe = Some(started);
            // SAFETY: registering a plain extern "C" function with atexit
            // has no preconditions; it runs once, at normal exit.
            unsafe { libc::atexit(finalize_at_exit) };
        }
        let world = SimpleCommunicator::world();
        Ok(MpiBackend {
            rank: world.rank() as usize,
            size: world.size() as usize,
        })
    }
}

impl Backend for MpiBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Mpi
    }

    fn workers(&self) -> usize {
        self.size
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rank: self.rank,
            ranks: self.size,
            ..Capabilities::default()
        }
    }

    fn run(&self, job: &dyn Job) -> Result<(), Error> {
        let _serialized = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
        let world = SimpleCommunicator::world();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_spmd(&world, job)));
        match outcome {
            Ok(result) => result,
            Err(_) => {
                eprintln!(
                    "parpool: the MPI backend failed on rank {} outside any task; aborting the \
                     MPI job so the other ranks do not wait forever",
                    self.rank
                );
                world.abort(70)
            }
        }
    }
}

impl MpiBackend {
    fn run_spmd(&self, world: &SimpleCommunicator, job: &dyn Job) -> Result<(), Error> {
        let chunk_count = job.plan().chunk_count();
        let mine = (self.rank..chunk_count).step_by(self.size);
        // 1. Run this rank's chunks and encode their results.
        let mut first_failure: Option<Error> = None;
        let mut blob = Vec::new();
        for chunk in mine {
            if first_failure.is_some() && !job.keeps_going() {
                break;
            }
            let encoded = job
                .run_chunk(chunk, None)
                .and_then(|()| job.encode_chunk(chunk));
            match encoded {
                Ok(bytes) => wire::push(&mut blob, FrameKind::Results, chunk, &bytes),
                Err(error) => {
                    let lower = first_failure
                        .as_ref()
                        .is_none_or(|seen| error.task_index() < seen.task_index());
                    if lower {
                        first_failure = Some(error);
                    }
                }
            }
        }
        // 2. Agree: everyone learns every rank's first failure (no bytes
        // for none, else the error's wire form).
        let status = first_failure
            .map(|error| error.to_wire())
            .unwrap_or_default();
        let statuses = all_gather_bytes(world, &status)?;
        let mut any_failed = false;
        for status in statuses.iter().filter(|status| !status.is_empty()) {
            any_failed = true;
            job.record_failure(Error::from_wire(status, "mpi"));
        }
        if any_failed {
            return Ok(());
        }
        // 3. Exchange results; accept the chunks the other ranks ran.
        let blobs = all_gather_bytes(world, &blob)?;
        for (rank, blob) in blobs.iter().enumerate() {
            if rank == self.rank {
                continue;
            }
            let frames = wire::split(blob).ok_or_else(|| {
                Error::backend("mpi", format!("truncated results from rank {rank}"))
            })?;
            for (header, bytes) in frames {
                if let Err(error) = job.accept_chunk(header.id, bytes) {
                    job.record_failure(error);
                }
            }
        }
        Ok(())
    }
}

/// The largest piece one rank sends in one all-gather round: the whole
/// receive buffer of a round must stay within a 32-bit count.
fn round_limit(size: usize) -> usize {
    (1usize << 30).min(i32::MAX as usize / size.max(1))
}

/// Every rank's `local` bytes, in rank order, on every rank, in as many
/// rounds as the largest contribution needs.
fn all_gather_bytes(world: &SimpleCommunicator, local: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    all_gather_bytes_in_rounds(world, local, round_limit(world.size() as usize))
}

/// [`all_gather_bytes`] with at most `limit` bytes per rank per round.
fn all_gather_bytes_in_rounds(
    world: &SimpleCommunicator,
    local: &[u8],
    limit: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    let size = world.size() as usize;
    let mut lengths = vec![0u64; size];
    world.all_gather_into(&(local.len() as u64), &mut lengths[..]);
    let rounds = lengths
        .iter()
        .map(|&length| (length as usize).div_ceil(limit))
        .max()
        .unwrap_or(0);
    let mut gathered: Vec<Vec<u8>> = lengths
        .iter()
        .map(|&length| Vec::with_capacity(length as usize))
        .collect();
    for round in 0..rounds {
        let piece = |length: u64| -> usize {
            let start = (round * limit).min(length as usize);
            (length as usize - start).min(limit)
        };
        let counts: Vec<Count> = lengths.iter().map(|&l| piece(l) as Count).collect();
        let displacements: Vec<Count> = counts
            .iter()
            .scan(0 as Count, |offset, &count| {
                let start = *offset;
                *offset += count;
                Some(start)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut receive = vec![0u8; total];
        let start = (round * limit).min(local.len());
        let send = &local[start..start + piece(local.len() as u64)];
        {
            let mut partition =
                PartitionMut::new(&mut receive[..], &counts[..], &displacements[..]);
            world.all_gather_varcount_into(send, &mut partition);
        }
        for (rank, (&offset, &count)) in displacements.iter().zip(&counts).enumerate() {
            gathered[rank].extend_from_slice(&receive[offset as usize..(offset + count) as usize]);
        }
    }
    Ok(gathered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_the_receive_buffer_within_32_bits() {
        assert_eq!(round_limit(1), 1 << 30);
        assert!(round_limit(2) * 2 <= i32::MAX as usize);
        assert!(round_limit(4) * 4 <= i32::MAX as usize);
        assert!(round_limit(1000) * 1000 <= i32::MAX as usize);
    }

    #[test]
    fn contributions_larger_than_a_round_arrive_whole() {
        // A single-rank MPI job (no mpiexec): enough to run the rounds.
        let backend = MpiBackend::new().expect("MPI starts as a singleton");
        let capabilities = backend.capabilities();
        assert_eq!((capabilities.rank, capabilities.ranks), (0, 1));
        let _serialized = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
        let world = SimpleCommunicator::world();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for limit in [1, 7, 999, 1000, 4096] {
            let gathered = all_gather_bytes_in_rounds(&world, &data, limit).unwrap();
            assert_eq!(gathered, vec![data.clone()], "limit {limit}");
        }
        assert_eq!(
            all_gather_bytes(&world, &[]).unwrap(),
            vec![Vec::<u8>::new()]
        );
    }
}
