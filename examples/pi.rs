//! Monte-Carlo pi on every backend and worker count: the lesson's
//! Parallel-1 exercise, answered with a table.
//!
//! ```text
//! cargo run --release --example pi                     # 10 x 10^5, then 16 x 10^8
//! cargo run --release --example pi -- --tasks 32 --samples 1000000 --backend threads --workers 2
//! cargo run --release --example pi -- --csv            # machine-readable rows
//! ```
//!
//! Flags: `--tasks N`, `--samples N` (darts per task; with either, only that
//! run), `--workers N` (largest worker count tried; default: the CPUs
//! available), `--backend NAME` (default: every backend compiled in),
//! `--seed N`, `--csv` (columns: workload, implementation, workers, size =
//! darts, seconds, rate, unit, residual = |estimate − pi|).

mod support;

use parpool::BackendKind;
use parpool_workloads::pi;
use std::time::Instant;

/// The CSV columns shared with the `invert` and `baselines` examples and
/// `benches/compare/compare.py`.
const CSV_HEADER: &str = "workload,implementation,workers,size,seconds,rate,unit,residual";

struct Options {
    runs: Vec<(u64, u64)>,
    max_workers: usize,
    backends: Vec<BackendKind>,
    seed: u64,
    csv: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut tasks = None;
    let mut samples = None;
    let mut options = Options {
        runs: vec![(10, 100_000), (16, 100_000_000)],
        max_workers: parpool::cpus::available().count(),
        backends: BackendKind::AVAILABLE.to_vec(),
        seed: 2026,
        csv: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--tasks" => tasks = Some(support::number(&flag, args.next())?),
            "--samples" => samples = Some(support::number(&flag, args.next())?),
            "--workers" => {
                options.max_workers = support::number::<usize>(&flag, args.next())?.max(1);
            }
            "--backend" => {
                let name = args.next().ok_or("--backend needs a value")?;
                options.backends = vec![name.parse::<BackendKind>().map_err(|e| e.to_string())?];
            }
            "--seed" => options.seed = support::number(&flag, args.next())?,
            "--csv" => options.csv = true,
            "--help" | "-h" => {
                return Err("usage: pi [--tasks N] [--samples N] [--workers N] \
                            [--backend serial|threads|processes] [--seed N] [--csv]"
                    .to_string());
            }
            other => return Err(format!("unknown flag {other:?}; try --help")),
        }
    }
    if tasks.is_some() || samples.is_some() {
        options.runs = vec![(tasks.unwrap_or(10), samples.unwrap_or(100_000))];
    }
    Ok(options)
}

fn main() {
    support::main_with(parse_options, run);
}

fn run(options: &Options) -> Result<(), parpool::Error> {
    if options.csv {
        println!("{CSV_HEADER}");
    } else {
        println!(
            "Monte-Carlo pi, kernel: {} ({} lanes), seed {}",
            pi::kernel_name(),
            pi::LANES,
            options.seed
        );
    }
    for &(tasks, samples) in &options.runs {
        if !options.csv {
            println!();
            println!(
                "{:<10} {:>7} {:>16} {:>10} {:>8} {:>12} {:>10}",
                "backend",
                "workers",
                "tasks x samples",
                "time (s)",
                "speedup",
                "estimate",
                "|error|"
            );
        }
        let mut serial_seconds = None;
        for (kind, workers) in support::sweep(&options.backends, options.max_workers) {
            let pool = support::pool(kind, workers)?;
            let started = Instant::now();
            let result = pi::estimate(&pool, tasks, samples, options.seed)?;
            let seconds = started.elapsed().as_secs_f64();
            let baseline = *serial_seconds.get_or_insert(seconds);
            let speedup = baseline / seconds;
            let error = (result.value() - std::f64::consts::PI).abs();
            if options.csv {
                println!(
                    "pi,parpool-{},{workers},{},{seconds:.6},{:.3},Mdarts/s,{error:.3e}",
                    kind.name(),
                    tasks * samples,
                    (tasks * samples) as f64 / seconds / 1e6,
                );
            } else {
                println!(
                    "{:<10} {:>7} {:>16} {:>10.4} {:>7.2}x {:>12.8} {:>10.2e}",
                    kind.name(),
                    workers,
                    format!("{tasks} x {samples}"),
                    seconds,
                    speedup,
                    result.value(),
                    error
                );
            }
        }
    }
    if !options.csv {
        println!();
        println!(
            "Speedup is against the first row of each run (serial when it is run). The \
             estimate is the same on every row: each task draws from its own stream of \
             (seed, task), whichever worker runs it."
        );
    }
    Ok(())
}
