//! How much memory each MPI rank needs for the results of one call:
//! `map`, which leaves every result on every rank, against `map_gather`,
//! which brings them to rank 0 only (the lesson's `comm.gather(root=0)`).
//!
//! ```text
//! cargo build --release --features mpi --example mpi_gather_memory
//! mpiexec -n 4 target/release/examples/mpi_gather_memory --total-mib 1024 --call map
//! mpiexec -n 4 target/release/examples/mpi_gather_memory --total-mib 1024 --call gather
//! ```
//!
//! The call returns `--total-mib` of results in all (32 results of
//! `Vec<u8>`, one per chunk, one thread per rank). Each rank prints its
//! peak resident memory (Linux's `VmHWM`) before and after the call; the
//! difference is what the call cost that rank. Run each call in a fresh
//! job: the peak of a process never goes down.

use parpool::{BackendKind, Pool};

fn main() -> Result<(), parpool::Error> {
    let (mut total_mib, mut gather) = (1024usize, false);
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--");
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--total-mib" => {
                total_mib = value
                    .parse()
                    .unwrap_or_else(|_| usage("--total-mib needs a number"))
            }
            "--call" => {
                gather = match value.as_str() {
                    "map" => false,
                    "gather" => true,
                    _ => usage("--call is map or gather"),
                }
            }
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    const RESULTS: usize = 32;
    let bytes_each = (total_mib << 20) / RESULTS;
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(1)
        .chunk_size(1)
        .build()?;
    let (rank, size) = (pool.rank(), pool.ranks());
    // Everyone is up (and MPI's own buffers are made) before the baseline.
    pool.map(|_: usize| (), 0..size)?;
    let before = peak_mib();
    let make = move |i: usize| vec![i as u8; bytes_each];
    let held = if gather {
        pool.map_gather(make, 0..RESULTS)?
            .map_or(0, |results| results.iter().map(Vec::len).sum::<usize>())
    } else {
        let results = pool.map(make, 0..RESULTS)?;
        results.iter().map(Vec::len).sum::<usize>()
    };
    let after = peak_mib();
    println!(
        "rank {rank}/{size}: {} of {total_mib} MiB of results: peak RSS {after} MiB, {before} MiB before the call: the call cost {} MiB; holds {} MiB of results after it",
        if gather { "map_gather" } else { "map" },
        after.saturating_sub(before),
        held >> 20
    );
    Ok(())
}

/// This process's peak resident memory in MiB (`VmHWM`), 0 where there is
/// no `/proc`.
fn peak_mib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kib = line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<usize>().ok()
            })
        })
        .map_or(0, |kib| kib / 1024)
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: mpi_gather_memory [--total-mib N] [--call map|gather]");
    std::process::exit(2)
}
