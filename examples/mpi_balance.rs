//! Uneven tasks across MPI ranks: how close the makespan comes to ideal.
//!
//! 48 tasks, one per chunk: even tasks sleep 100 ms, odd ones 1 ms (sleeping
//! measures scheduling, not CPU, so the figures hold even when ranks ×
//! threads exceed the cores). Ideal is the total work divided by ranks ×
//! threads. Then a fail-fast call where every task that runs on rank 1
//! panics: how long every rank takes to return the error.
//!
//! ```text
//! cargo build --release --features mpi --example mpi_balance
//! mpiexec -n 2 target/release/examples/mpi_balance
//! mpiexec -n 2 target/release/examples/mpi_balance --workers 2
//! mpiexec -n 4 target/release/examples/mpi_balance --tasks 96
//! ```

use parpool::{BackendKind, Pool};
use std::time::{Duration, Instant};

fn main() -> Result<(), parpool::Error> {
    let (mut tasks, mut workers, mut repeats) = (48u64, 1usize, 3usize);
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--");
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|text| text.parse().ok())
            .filter(|&value| value > 0)
            .unwrap_or_else(|| usage(&format!("{flag} needs a positive number")));
        match flag.as_str() {
            "--tasks" => tasks = value,
            "--workers" => workers = value as usize,
            "--repeats" => repeats = value as usize,
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(workers)
        .chunk_size(1)
        .build()?;
    let (rank, ranks) = (pool.rank(), pool.ranks());
    let cost = |task: u64| Duration::from_millis(if task.is_multiple_of(2) { 100 } else { 1 });
    let total: Duration = (0..tasks).map(cost).sum();
    let ideal = total.as_secs_f64() / (ranks * workers) as f64;
    let mut best = f64::INFINITY;
    let mut all = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let ran_on = pool.map(
            |task: u64| {
                std::thread::sleep(cost(task));
                rank
            },
            0..tasks,
        )?;
        let makespan = started.elapsed().as_secs_f64();
        best = best.min(makespan);
        all.push(makespan);
        let slow_per_rank: Vec<usize> = (0..ranks)
            .map(|r| {
                (0..tasks as usize)
                    .filter(|&t| t % 2 == 0 && ran_on[t] == r)
                    .count()
            })
            .collect();
        if rank == 0 {
            println!("slow tasks per rank: {slow_per_rank:?}");
        }
    }

    // Fail fast: every task that lands on rank 1 (or rank 0 alone) panics.
    let failing_rank = 1.min(ranks - 1);
    let started = Instant::now();
    let error = pool
        .map(
            |task: u64| {
                std::thread::sleep(Duration::from_millis(50));
                assert!(rank != failing_rank, "task {task} fails on rank {rank}");
                task
            },
            0..400u64,
        )
        .expect_err("tasks on one rank fail");
    let to_fail = started.elapsed().as_secs_f64();
    // Every rank reports its own time to fail; they all return this error.
    println!(
        "rank {rank}: failed in {to_fail:.3} s with: {}",
        error.to_string().lines().next().unwrap_or("")
    );
    if rank == 0 {
        let spread = all.iter().cloned().fold(0.0, f64::max) / best;
        println!();
        println!("| layout | makespan (best of {repeats}) | ideal | makespan/ideal |");
        println!("|---|---|---|---|");
        println!(
            "| {ranks} ranks x {workers} threads | {best:.3} s | {ideal:.3} s | {:.2}x |",
            best / ideal
        );
        println!(
            "(repeats: slowest/best {spread:.2}; 400 tasks of 50 ms without a stop: {:.1} s)",
            400.0 * 0.05 / (ranks * workers) as f64
        );
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: mpi_balance [--tasks N] [--workers N] [--repeats N]");
    std::process::exit(2)
}
