//! Cost of the process backend: one whole `map` call of 2 workers over 1000
//! trivial items (fork, run, collect, reap), the per-item cost over 10^6
//! items, and the 1000-item call again from a parent holding 1, 4 and
//! 8 GiB of touched heap (fork copies page tables, so the cost grows with
//! the parent's resident memory): on 4 KiB pages, on 2 MiB huge pages
//! (madvised `MADV_HUGEPAGE` before it is touched), and through a
//! [`Session`], whose workers were forked once before the timing; then
//! from a parent holding 1 GiB of results returned by worker processes,
//! and by threads. The thread backend's 1000-item call is there for scale,
//! and the per-item cost of a stream (`imap`) on threads and processes.
//! Last, large results: `map` over 4 items with `chunk_size(1)`, each
//! returning a 64 MiB `Vec<u8>` or `Vec<f64>`, on threads and processes
//! (criterion reports the rate in bytes of results per second).
//!
//! `PARPOOL_BENCH_PARENT_GIB=1,2` picks other parent sizes; sizes this
//! machine's free memory cannot hold twice are left out.
//!
//! [`Session`]: parpool::Session
//!
//! ```text
//! cargo bench --bench processes
//! python3 benches/compare/multiprocessing_pool.py   # the same calls in Python
//! ```

#[allow(dead_code)] // the example's helpers, of which the bench needs two
#[path = "../examples/support/huge_pages.rs"]
mod huge_pages;

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
    for gib in parent_sizes_gib() {
        let bytes = gib << 30;
        // Touch every page so it is resident and its page table entries
        // exist: on 4 KiB pages, then on 2 MiB huge pages.
        let ballast = vec![1u8; bytes];
        black_box(&ballast);
        group.bench_function(format!("processes_parent_{gib}_GiB"), |b| {
            b.iter(|| processes.map(square, 0..1000u64).expect("no task fails"))
        });
        group.bench_function(format!("processes_session_parent_{gib}_GiB"), |b| {
            b.iter(|| session.map(0..1000u64).expect("no task fails"))
        });
        drop(ballast);
        let mut ballast = Vec::with_capacity(bytes);
        huge_pages::advise(&ballast);
        ballast.resize(bytes, 1u8);
        black_box(&ballast);
        // Linux may accept the advice and still give small pages (its
        // setting `never`): only a parent that got them is measured.
        if huge_pages::huge_page_bytes().is_some_and(|huge| huge as usize >= bytes / 2) {
            group.bench_function(format!("processes_huge_pages_parent_{gib}_GiB"), |b| {
                b.iter(|| processes.map(square, 0..1000u64).expect("no task fails"))
            });
        } else {
            eprintln!("no huge pages given here: huge-page rows left out");
        }
        drop(ballast);
    }
    // 1 GiB of results held, as returned by worker processes (the parent
    // decoded them into memory it asked huge pages for) and by threads.
    for (name, pool) in [("processes", &processes), ("threads", &threads)] {
        let held = pool
            .map(|i: u8| vec![i + 1; 256 << 20], 0..4u8)
            .expect("no task fails");
        black_box(&held);
        group.bench_function(format!("processes_holding_1_GiB_of_{name}_results"), |b| {
            b.iter(|| processes.map(square, 0..1000u64).expect("no task fails"))
        });
        drop(held);
    }
    group.finish();
}

/// The parent sizes of `map_call_1000_items_big_parent`, in GiB:
/// `PARPOOL_BENCH_PARENT_GIB` (comma-separated), else 1, 4 and 8, less any
/// that this machine's free memory cannot hold twice over (the ballast and
/// room for the workers and the system).
fn parent_sizes_gib() -> Vec<usize> {
    let asked = std::env::var("PARPOOL_BENCH_PARENT_GIB").unwrap_or_else(|_| "1,4,8".into());
    let available_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(usize::MAX, |kib| kib >> 20);
    asked
        .split(',')
        .map(|gib| {
            gib.trim()
                .parse()
                .expect("PARPOOL_BENCH_PARENT_GIB: GiB, comma-separated")
        })
        .filter(|&gib: &usize| {
            let fits = 2 * gib + 2 <= available_gib;
            if !fits {
                eprintln!("{gib} GiB parent left out: {available_gib} GiB available");
            }
            fits
        })
        .collect()
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
