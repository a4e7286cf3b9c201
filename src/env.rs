//! Every environment variable parpool reads, in one place. parpool reads
//! them and never writes any.
//!
//! | variable | read by | means |
//! |---|---|---|
//! | [`BACKEND`] (`PARPOOL_BACKEND`) | [`Pool::new`](crate::Pool::new), [`PoolBuilder::build`](crate::PoolBuilder::build) without [`kind`](crate::PoolBuilder::kind) | the backend: `serial`, `threads` (default), `processes`, `mpi` |
//! | [`WORKERS`] (`PARPOOL_WORKERS`) | pools without [`workers`](crate::PoolBuilder::workers), [`cpus::available`](crate::cpus::available) | the worker count, over CPU detection |
//! | [`MPI_RMA`] (`PARPOOL_MPI_RMA`) | MPI pools (feature `mpi`) | `1`: claim chunks with MPI one-sided atomics even on one node (to test the cross-node path) |
//! | [`SCHEDULER_CPUS`] (`SLURM_CPUS_PER_TASK`, `NCPUS`) | [`cpus::available`](crate::cpus::available) | the scheduler's CPU allocation (Slurm, PBS) |
//! | [`LAUNCHER_TASKS`] (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`, `SLURM_STEP_NUM_TASKS`) | MPI pools | how many tasks the launcher started: N tasks over a one-rank MPI world is an error, not N singletons |
//! | [`LAUNCHER_RANK`] (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`, `SLURM_PROCID`) | [`Journal::open`](crate::Journal::open) | this task's rank: only rank 0 opens the journal's file |
//!
//! An invalid `PARPOOL_BACKEND` or `PARPOOL_WORKERS` is an error naming
//! the variable ([`Pool::new`](crate::Pool::new) panics with it,
//! [`Pool::from_env`](crate::Pool::from_env) returns it); an invalid
//! scheduler variable is skipped with a note in
//! [`Cpus::ignored`](crate::cpus::Cpus::ignored).
//!
//! ```
//! assert_eq!(parpool::env::BACKEND, "PARPOOL_BACKEND");
//! assert_eq!(parpool::env::WORKERS, "PARPOOL_WORKERS");
//! ```

/// The backend of pools that do not choose one in code.
pub const BACKEND: &str = "PARPOOL_BACKEND";

/// The worker count of pools that do not set one, and the answer of
/// [`cpus::available`](crate::cpus::available).
pub const WORKERS: &str = "PARPOOL_WORKERS";

/// Set to `1`, the MPI backend's chunk counter uses MPI one-sided atomics
/// even when every rank runs on one node, as it does across nodes: to test
/// that path on one machine. Read when a pool is built; every rank must
/// see the same value.
pub const MPI_RMA: &str = "PARPOOL_MPI_RMA";

/// Schedulers' CPU allocations that [`cpus::available`](crate::cpus::available)
/// honours, in the order they are read, with the scheduler's name.
pub const SCHEDULER_CPUS: &[(&str, &str)] = &[("SLURM_CPUS_PER_TASK", "Slurm"), ("NCPUS", "PBS")];

/// The variables launchers set to the number of tasks they started, in
/// the order they are believed: Open MPI's `mpiexec`
/// (`OMPI_COMM_WORLD_SIZE`), MPICH's Hydra and other PMI launchers
/// (`PMI_SIZE`), and `srun` (the step's task count, `SLURM_STEP_NUM_TASKS`,
/// set for the tasks of a job step and not in the batch script itself, so
/// a one-rank program run from the script is not mistaken for a launch).
pub const LAUNCHER_TASKS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// The variables launchers set to this task's rank (Open MPI, PMI
/// launchers such as MPICH's Hydra, Slurm's `srun`): a
/// [`Journal`](crate::Journal) opened on a rank other than 0 does not touch
/// its file, which rank 0 alone reads and writes.
pub const LAUNCHER_RANK: &[&str] = &["OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"];
