//! Inverts the lesson's matrix (`A = R ∘ Rᵀ`, `R` uniform) through the pool
//! and reports time, GFLOP/s (2n³ flops) and the relative residual
//! `‖AX − I‖_F / (‖A‖_F ‖X‖_F)`.
//!
//! ```text
//! cargo run --release --example invert                       # n = 2000, every backend, 1..=CPUs workers
//! cargo run --release --example invert -- --n 4000 --backend threads --workers 2
//! cargo run --release --example invert -- --n 300 --csv
//! ```
//!
//! Flags: `--n N`, `--workers N` (largest worker count tried; default: the
//! CPUs available), `--backend NAME` (default: every backend compiled in),
//! `--block-size N`, `--seed N`, `--csv` (the columns of the `pi`
//! example's; size = n, rate in GFLOP/s, residual = the relative residual).
//!
//! Each backend and worker count inverts once untimed, then once timed.

mod support;

use parpool::BackendKind;
use parpool_workloads::invert::{self, Matrix};
use std::time::Instant;

struct Options {
    n: usize,
    max_workers: usize,
    backends: Vec<BackendKind>,
    block_size: Option<usize>,
    seed: u64,
    csv: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        n: 2000,
        max_workers: parpool::cpus::available().count(),
        backends: BackendKind::AVAILABLE.to_vec(),
        block_size: None,
        seed: 2026,
        csv: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--n" => options.n = support::number(&flag, args.next())?,
            "--workers" => {
                options.max_workers = support::number::<usize>(&flag, args.next())?.max(1);
            }
            "--block-size" => {
                options.block_size = Some(support::number::<usize>(&flag, args.next())?.max(1));
            }
            "--seed" => options.seed = support::number(&flag, args.next())?,
            "--backend" => {
                let name = args.next().ok_or("--backend needs a value")?;
                options.backends = vec![name.parse::<BackendKind>().map_err(|e| e.to_string())?];
            }
            "--csv" => options.csv = true,
            "--help" | "-h" => {
                return Err("usage: invert [--n N] [--workers N] [--backend NAME] \
                            [--block-size N] [--seed N] [--csv]"
                    .to_string());
            }
            other => return Err(format!("unknown flag {other:?}; try --help")),
        }
    }
    Ok(options)
}

fn main() {
    support::main_with(parse_options, run);
}

fn run(options: &Options) -> Result<(), parpool_workloads::Error> {
    let n = options.n;
    let a = Matrix::lesson(n, options.seed);
    let block_size = options
        .block_size
        .unwrap_or_else(|| invert::default_block_size(n));
    if options.csv {
        println!("workload,implementation,workers,size,seconds,rate,unit,residual");
    } else {
        println!(
            "Inverting the lesson's {n} x {n} matrix (A = R∘Rᵀ, seed {}), block size {}",
            options.seed, block_size
        );
        println!();
        println!(
            "{:<10} {:>7} {:>6} {:>10} {:>9} {:>12}",
            "backend", "workers", "n", "time (s)", "GFLOP/s", "residual"
        );
    }
    for (kind, workers) in support::sweep(&options.backends, options.max_workers) {
        let pool = support::pool(kind, workers)?;
        // One untimed run first, as the faer and NumPy baselines have: the
        // first touch of fresh memory and the workers' first tasks are not
        // what the table compares.
        invert::invert_with_block_size(&pool, &a, block_size)?;
        let started = Instant::now();
        let x = invert::invert_with_block_size(&pool, &a, block_size)?;
        let seconds = started.elapsed().as_secs_f64();
        let gflops = invert::flops(n) / seconds / 1e9;
        let residual = invert::relative_residual(&a, &x);
        if options.csv {
            println!(
                "invert,parpool-{},{workers},{n},{seconds:.6},{gflops:.3},GFLOP/s,{residual:.3e}",
                kind.name()
            );
        } else {
            println!(
                "{:<10} {:>7} {:>6} {:>10.4} {:>9.1} {:>12.2e}",
                kind.name(),
                workers,
                n,
                seconds,
                gflops,
                residual
            );
        }
    }
    Ok(())
}
