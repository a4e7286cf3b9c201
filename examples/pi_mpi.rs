//! The lesson's Parallel-3 exercise with parpool: Monte-Carlo pi across MPI
//! ranks, with threads inside each rank. Every rank runs this whole program
//! (SPMD); each task runs on whichever rank's thread claims it first,
//! prints its count before the gather, and `map_gather` brings the counts
//! to rank 0 only (the lesson's `comm.gather(root=0)`), which prints the
//! full list, the estimate, the darts and the time.
//!
//! ```text
//! cargo build --release --features mpi --example pi_mpi
//! mpiexec -n 2 target/release/examples/pi_mpi
//! mpiexec -n 2 target/release/examples/pi_mpi --tasks 8 --samples 10000000 --seed 1
//! mpiexec -n 2 target/release/examples/pi_mpi --workers 1   # one thread per rank
//! mpiexec -n 2 target/release/examples/pi_mpi --abort-rank 1  # a rank dies: the job must end
//! ```
//!
//! `--workers` is the threads per rank; the default is the CPUs this rank
//! may use (`mpiexec -bind-to core` or `srun --cpu-bind=cores` narrow
//! that). The counts depend only on the seed and the task list, so any
//! number of ranks and threads (and the serial backend) print the same
//! estimate. `--abort-rank R` makes rank R abort once the pool is made,
//! while the others wait for it in the first call: a launcher must then
//! end the job with an error rather than leave it hanging (`srun` needs
//! `--kill-on-bad-exit=1` for that, see docs/slurm.md).

use parpool::{BackendKind, Pool};
use parpool_workloads::pi::{self, PiStream};
use std::time::Instant;

fn main() -> Result<(), parpool::Error> {
    let (mut tasks, mut samples, mut seed) = (8u64, 1_000_000u64, 2026u64);
    let mut workers: Option<usize> = None;
    let mut abort_rank: Option<usize> = None;
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--");
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| usage(&format!("{flag} needs a number")));
        match flag.as_str() {
            "--tasks" => tasks = value,
            "--samples" => samples = value,
            "--seed" => seed = value,
            "--workers" => workers = Some(value as usize),
            "--abort-rank" => abort_rank = Some(value as usize),
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    // One task per chunk: ranks claim tasks one at a time.
    let mut builder = Pool::builder().kind(BackendKind::Mpi).chunk_size(1);
    if let Some(workers) = workers {
        builder = builder.workers(workers);
    }
    let pool = builder.build()?;
    let (rank, size) = (pool.rank(), pool.ranks());
    if abort_rank == Some(rank) {
        eprintln!("rank {rank}: aborting, as --abort-rank asked");
        std::process::abort();
    }
    // Ranks start at slightly different times: meet once before timing.
    pool.map(|_: usize| (), 0..size)?;
    let started = Instant::now();
    let counts = pool.map_gather(
        |task: u64| {
            let (n, inside) = pi::sample(samples, &mut PiStream::new(seed, task));
            println!("rank {rank}/{size}: task {task}: {inside} of {n} inside (before gather)");
            (n, inside)
        },
        0..tasks,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    // Only rank 0 has the counts.
    if let Some(counts) = counts {
        let darts: u64 = counts.iter().map(|(n, _)| n).sum();
        let inside: u64 = counts.iter().map(|(_, inside)| inside).sum();
        let estimate = 4.0 * inside as f64 / darts as f64;
        println!("rank 0: after gather: {counts:?}");
        println!(
            "pi ~ {estimate:.10} (|error| {:.2e}) from {darts} darts on {size} rank(s) x {} thread(s) in {seconds:.4} s",
            (estimate - std::f64::consts::PI).abs(),
            pool.workers()
        );
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: pi_mpi [--tasks N] [--samples N] [--seed N] [--workers N] [--abort-rank R]"
    );
    std::process::exit(2)
}
