//! The reference points parpool's workloads are measured against, in the
//! same run and on the same inputs: faer's own inversion
//! (`partial_piv_lu().inverse()`) with 1 and 2 threads, and a plain scalar
//! Xoshiro256++ pi loop. Prints CSV rows in the format of the `pi` and
//! `invert` examples' `--csv` output.
//!
//! ```text
//! cargo run --release --example baselines -- --n 2000,4000 --darts 100000000 [--save DIR]
//! ```
//!
//! `--save DIR` also writes each lesson matrix to `DIR/lesson_<n>.f64`
//! (column-major little-endian `f64`), so NumPy inverts the same matrix.
//!
//! ```text
//! ```

use faer::Par;
use faer::linalg::solvers::DenseSolveCore;
use faer::prelude::*;
use parpool_workloads::invert::{self, Matrix};
use parpool_workloads::pi;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use std::num::NonZeroUsize;
use std::time::Instant;

fn main() {
    let mut sizes = vec![2000usize, 4000];
    let mut darts = 100_000_000u64;
    let mut threads = vec![1usize, 2];
    let mut save: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let list = || -> Vec<usize> {
            value
                .split(',')
                .map(|x| {
                    x.parse()
                        .unwrap_or_else(|_| panic!("{flag}: bad number {x:?}"))
                })
                .collect()
        };
        match flag.as_str() {
            "--n" => sizes = list(),
            "--threads" => threads = list(),
            "--darts" => darts = value.parse().expect("--darts takes a number"),
            "--save" => save = Some(value),
            other => {
                eprintln!(
                    "unknown flag {other:?}; flags: --n 2000,4000 --threads 1,2 --darts N --save DIR"
                );
                std::process::exit(2);
            }
        }
    }
    println!("workload,implementation,workers,size,seconds,rate,unit,residual");
    for &n in &sizes {
        let a = Matrix::lesson(n, 2026);
        if let Some(directory) = &save {
            // Column-major little-endian f64, for NumPy's `fromfile(...).reshape(n, n, order="F")`.
            let bytes: Vec<u8> = a
                .as_column_major()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            let path = format!("{directory}/lesson_{n}.f64");
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        }
        let view = MatRef::from_column_major_slice(a.as_column_major(), n, n);
        for &count in &threads {
            let par = match NonZeroUsize::new(count) {
                Some(count) if count.get() > 1 => Par::rayon(count.get()),
                _ => Par::Seq,
            };
            faer::set_global_parallelism(par);
            // One untimed run to warm caches and the thread pool.
            let _ = view.partial_piv_lu().inverse();
            let started = Instant::now();
            let inverse = view.partial_piv_lu().inverse();
            let seconds = started.elapsed().as_secs_f64();
            let x = Matrix::from_fn(n, |row, col| inverse[(row, col)]);
            println!(
                "invert,faer,{count},{n},{seconds:.6},{:.3},GFLOP/s,{:.3e}",
                invert::flops(n) / seconds / 1e9,
                invert::relative_residual(&a, &x)
            );
        }
    }
    let mut generator = Xoshiro256PlusPlus::seed_from_u64(1);
    let started = Instant::now();
    let (n, inside) = pi::sample_scalar(darts, &mut generator);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "pi,scalar-xoshiro256plusplus,1,{darts},{seconds:.6},{:.3},Mdarts/s,{:.3e}",
        n as f64 / seconds / 1e6,
        (4.0 * inside as f64 / n as f64 - std::f64::consts::PI).abs()
    );
    let mut stream = pi::PiStream::new(1, 0);
    let started = Instant::now();
    let (n, inside) = pi::sample(darts, &mut stream);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "pi,parpool-kernel-{},1,{darts},{seconds:.6},{:.3},Mdarts/s,{:.3e}",
        pi::kernel_name(),
        n as f64 / seconds / 1e6,
        (4.0 * inside as f64 / n as f64 - std::f64::consts::PI).abs()
    );
}
