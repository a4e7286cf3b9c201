//! Per-item overhead of `Pool::map` on a trivial function: squares of 10^7
//! `u64`, parpool's thread backend against plain rayon
//! (`into_par_iter().map().collect()`) on a rayon pool of the same size,
//! plus the serial backend and a plain loop for scale. Both parallel
//! versions get an owned `Vec<u64>` made outside the timed part.
//!
//! ```text
//! cargo bench --bench square
//! ```

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use parpool::{BackendKind, Pool};
use rayon::prelude::*;
use std::hint::black_box;

const ITEMS: u64 = 10_000_000;

fn square(x: u64) -> u64 {
    x * x
}

fn bench_square(c: &mut Criterion) {
    let workers = parpool::cpus::available().count();
    let input: Vec<u64> = (0..ITEMS).collect();
    let mut group = c.benchmark_group(format!("square_1e7_{workers}_workers"));
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);

    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon pool");
    group.bench_function("rayon_par_iter", |b| {
        b.iter_batched(
            || input.clone(),
            |items| rayon_pool.install(|| items.into_par_iter().map(square).collect::<Vec<u64>>()),
            BatchSize::LargeInput,
        )
    });

    let pool = Pool::builder()
        .kind(BackendKind::Threads)
        .workers(workers)
        .build()
        .expect("pool");
    group.bench_function("parpool_threads", |b| {
        b.iter_batched(
            || input.clone(),
            |items| pool.map(square, items).expect("no task fails"),
            BatchSize::LargeInput,
        )
    });

    let processes = Pool::builder()
        .kind(BackendKind::Processes)
        .workers(workers)
        .build()
        .expect("pool");
    group.bench_function("parpool_processes", |b| {
        b.iter_batched(
            || input.clone(),
            |items| processes.map(square, items).expect("no task fails"),
            BatchSize::LargeInput,
        )
    });

    let serial = Pool::builder()
        .kind(BackendKind::Serial)
        .build()
        .expect("pool");
    group.bench_function("parpool_serial", |b| {
        b.iter_batched(
            || input.clone(),
            |items| serial.map(square, items).expect("no task fails"),
            BatchSize::LargeInput,
        )
    });

    group.bench_function("plain_loop", |b| {
        b.iter_batched(
            || input.clone(),
            |items| black_box(items.into_iter().map(square).collect::<Vec<u64>>()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_square);
criterion_main!(benches);
