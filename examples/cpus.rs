//! How many CPUs does the pool take, and why?
//!
//! ```text
//! cargo run --example cpus
//! taskset -c 0 cargo run --example cpus      # pinned to one CPU: says 1
//! SLURM_CPUS_PER_TASK=2 cargo run --example cpus
//! mpiexec -n 2 -bind-to core target/release/examples/cpus   # each MPI rank's share
//! ```
//!
//! Under `mpiexec` or `srun` every line names the rank, and the CPUs the
//! rank may run on are listed, so you can see that ranks do not share
//! cores.

use parpool::cpus::{self, CpuSource};

fn main() -> Result<(), parpool::Error> {
    let cpus = cpus::available();
    if let Some(rank) = launcher_rank() {
        // One line per rank, then the rank's notes, each naming the rank:
        // the lines of several ranks interleave.
        println!(
            "rank {rank}: {} worker(s), decided by {}; may run on CPUs {}",
            cpus.count(),
            cpus.source(),
            allowed_cpus()
        );
        for line in notes(&cpus) {
            println!("rank {rank}:   {line}");
        }
        return Ok(());
    }
    println!("parpool will use {} worker(s)", cpus.count());
    println!("  decided by: {}", cpus.source());
    println!("  this machine has {} online CPU(s)", cpus.hardware());
    for line in notes(&cpus) {
        println!("  {line}");
    }
    println!();
    println!("{}", advice(cpus.source()));

    let pool = parpool::Pool::from_env()?;
    println!();
    println!(
        "Pool::new() here would run the {} backend with {} worker(s).",
        pool.kind(),
        pool.workers()
    );
    Ok(())
}

/// What the other limits said, and the settings that were ignored.
fn notes(cpus: &cpus::Cpus) -> Vec<String> {
    let mut lines: Vec<String> = cpus
        .considered()
        .iter()
        .filter(|(source, _)| source != cpus.source())
        .map(|(source, count)| format!("also considered: {source} allows {count}"))
        .collect();
    lines.extend(cpus.ignored().iter().map(|note| format!("note: {note}")));
    lines
}

/// This process's rank, if an MPI launcher or Slurm started it.
fn launcher_rank() -> Option<String> {
    ["PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"]
        .iter()
        .find_map(|variable| std::env::var(variable).ok())
}

/// The CPUs this process may run on, as Linux lists them ("0-3,8").
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .map(|list| list.trim().to_owned())
        })
        .unwrap_or_else(|| "(unknown on this system)".to_owned())
}

fn advice(source: &CpuSource) -> &'static str {
    match source {
        CpuSource::EnvOverride { .. } => {
            "You chose the number with PARPOOL_WORKERS; unset it to let parpool detect it."
        }
        CpuSource::Scheduler { .. } => {
            "Your batch scheduler allocated these CPUs to this task, so parpool takes exactly \
             those. To get more, ask the scheduler (for Slurm: `srun -c N` or \
             `#SBATCH --cpus-per-task=N`)."
        }
        CpuSource::AffinityMask => {
            "This process may only run on some of the machine's CPUs (taskset, numactl, or a \
             launcher's CPU binding), so parpool takes only those: more workers than allowed \
             CPUs would just take turns."
        }
        CpuSource::CgroupQuota { .. } => {
            "A container or cgroup limits this process's CPU time, so parpool starts as many \
             workers as the quota allows (rounded up) instead of one per CPU of the host."
        }
        _ => {
            "Nothing limits this process, so parpool takes every CPU of the machine. On a \
             shared cluster node, request only part of it (`srun -c N`, `taskset`, a \
             container limit) and parpool will take only what you were given; or set \
             PARPOOL_WORKERS=N."
        }
    }
}
