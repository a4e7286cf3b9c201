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

use parpool::workloads::invert::{self, Matrix};
use parpool::{BackendKind, Pool};
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
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("{flag} expects a non-negative integer, got {text:?}"))
        };
        match flag.as_str() {
            "--n" => options.n = number(value()?)?,
            "--workers" => options.max_workers = number(value()?)?.max(1),
            "--block-size" => options.block_size = Some(number(value()?)?.max(1)),
            "--seed" => options.seed = number(value()?)? as u64,
            "--backend" => {
                let kind = value()?.parse::<BackendKind>().map_err(|e| e.to_string())?;
                options.backends = vec![kind];
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
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&options) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> Result<(), parpool::Error> {
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
    for &kind in &options.backends {
        let worker_counts: Vec<usize> = if kind == BackendKind::Serial {
            vec![1]
        } else {
            (1..=options.max_workers).collect()
        };
        for workers in worker_counts {
            let pool = Pool::builder().kind(kind).workers(workers).build()?;
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
    }
    Ok(())
}
