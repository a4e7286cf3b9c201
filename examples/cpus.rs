//! How many CPUs does the pool take, and why?
//!
//! ```text
//! cargo run --example cpus
//! taskset -c 0 cargo run --example cpus      # pinned to one CPU: says 1
//! SLURM_CPUS_PER_TASK=2 cargo run --example cpus
//! ```

use parpool::cpus::{self, CpuSource};

fn main() -> Result<(), parpool::Error> {
    let cpus = cpus::available();
    println!("parpool will use {} worker(s)", cpus.count());
    println!("  decided by: {}", cpus.source());
    println!("  this machine has {} online CPU(s)", cpus.hardware());
    for note in cpus.ignored() {
        println!("  note: {note}");
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
