//! Cost of the process backend: one whole `map` call of 2 workers over 1000
//! trivial items (fork, run, collect, reap), the per-item cost over 10^6
//! items, and the 1000-item call again from a parent holding 256 MiB and
//! 1 GiB of touched heap (fork copies page tables, so the cost grows with
//! the parent's resident memory). The same calls through a [`Session`],
//! whose workers were forked once before the timing, show what the session
//! saves: no fork per call, but every item and result travels through a
//! socket. The thread backend's 1000-item call is there for scale, and the
//! per-item cost of a stream (`imap`) on threads and processes. Last,
//! large results: `map` over 4 items with `chunk_size(1)`, each returning
//! a 64 MiB `Vec<u8>` or `Vec<f64>`, on threads and processes (criterion
//! reports the rate in bytes of results per second).
//!
//! [`Session`]: parpool::Session
//!
//! ```text
//! cargo bench --bench processes
//! python3 benches/compare/multiprocessing_pool.py   # the same calls in Python
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parpool::{BackendKind, Pool};
use std::hint::black_box;

fn square(x: u64) -> u64 {
    x * x
}

fn pool(kind: BackendKind) -> Pool {
    Pool::builder()
        .kind(kind)
        .workers(2)
        .build()
        .expect("valid settings")
}

fn bench_processes(c: &mut Criterion) {
    let processes = pool(BackendKind::Processes);
    let threads = pool(BackendKind::Threads);

    let mut group = c.benchmark_group("map_call_1000_items_2_workers");
    group.sample_size(50);
    group.bench_function("processes", |b| {
        b.iter(|| processes.map(square, 0..1000u64).expect("no task fails"))
    });
    let mut session = processes.session(square).expect("workers start");
    group.bench_function("processes_session", |b| {
        b.iter(|| session.map(0..1000u64).expect("no task fails"))
    });
    group.bench_function("threads", |b| {
        b.iter(|| threads.map(square, 0..1000u64).expect("no task fails"))
    });
    group.finish();

    let mut group = c.benchmark_group("per_item_1e6_items_2_workers");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("processes", |b| {
        b.iter(|| {
            processes
                .map(square, 0..1_000_000u64)
                .expect("no task fails")
        })
    });
    group.bench_function("processes_session", |b| {
        b.iter(|| session.map(0..1_000_000u64).expect("no task fails"))
    });
    for (name, pool) in [("threads_imap", &threads), ("processes_imap", &processes)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                pool.imap(square, 0..1_000_000u64)
                    .expect("workers start")
                    .map(|result| result.expect("no task fails"))
                    .fold(0u64, u64::wrapping_add)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("map_call_1000_items_big_parent");
    group.sample_size(10);
    for mib in [256usize, 1024] {
        // Touch every page so it is resident and its page table entries exist.
        let ballast = vec![1u8; mib << 20];
        black_box(&ballast);
        group.bench_function(format!("processes_parent_{mib}_MiB"), |b| {
            b.iter(|| processes.map(square, 0..1000u64).expect("no task fails"))
        });
        group.bench_function(format!("processes_session_parent_{mib}_MiB"), |b| {
            b.iter(|| session.map(0..1000u64).expect("no task fails"))
        });
        drop(ballast);
    }
    group.finish();
}

/// Bytes in each large result.
const LARGE: usize = 64 << 20;

fn bench_large_results(c: &mut Criterion) {
    let mut group = c.benchmark_group("large_results_4_x_64_MiB_2_workers");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(4 * LARGE as u64));
    for kind in [BackendKind::Threads, BackendKind::Processes] {
        let pool = Pool::builder()
            .kind(kind)
            .workers(2)
            .chunk_size(1)
            .build()
            .expect("valid settings");
        group.bench_function(format!("{}_vec_u8", kind.name()), |b| {
            b.iter(|| {
                pool.map(|i: u8| vec![i; LARGE], 0..4u8)
                    .expect("no task fails")
            })
        });
        group.bench_function(format!("{}_vec_f64", kind.name()), |b| {
            b.iter(|| {
                pool.map(|i: u8| vec![f64::from(i) + 0.5; LARGE / 8], 0..4u8)
                    .expect("no task fails")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_processes, bench_large_results);
criterion_main!(benches);
