//! Per-item overhead of `Pool::map` on a trivial function: squares of 10^7
//! `u64`, parpool's thread backend against plain rayon
//! (`into_par_iter().map().collect()`) on a rayon pool of the same size,
//! plus the serial backend and a plain loop for scale. Both parallel
//! versions get an owned `Vec<u64>` made outside the timed part.
//!
//! A second group measures a whole small call, as a program that is not
//! built around parpool makes it: `Pool::new().map(square, 6 items)` in a
//! function that runs often, beside rayon's global pool
//! (`into_par_iter().map().collect()` on the same 6 items) and a pool made
//! once and reused.
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

/// The design card's call, made afresh each time, against rayon's global
/// pool on the same six items.
fn bench_small_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("small_call_6_items");
    group.throughput(Throughput::Elements(6));
    let items = || vec![1u64, 2, 3, 4, 5, 6];
    group.bench_function("rayon_global_pool", |b| {
        b.iter(|| black_box(items().into_par_iter().map(square).collect::<Vec<u64>>()))
    });
    group.bench_function("parpool_new_each_call", |b| {
        b.iter(|| black_box(Pool::new().map(square, items()).expect("no task fails")))
    });
    let pool = Pool::new();
    group.bench_function("parpool_pool_reused", |b| {
        b.iter(|| black_box(pool.map(square, items()).expect("no task fails")))
    });
    group.finish();
}

criterion_group!(benches, bench_small_call, bench_square);
criterion_main!(benches);
