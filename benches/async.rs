//! The cost of awaiting a call instead of blocking on it: `map_async`
//! against `map` for a 1000-item call on threads and on processes (2
//! workers), in one criterion run. On threads the call is a task of the
//! pool's own threads (no helper); on processes a reused helper thread
//! drives it. The difference is that hand-over and the waker.
//!
//! The two are measured interleaved: each iteration of either benchmark
//! runs one `map` and one `map_async` and times only its own, so both
//! see the same machine (a shared machine drifts between groups that run
//! one after the other, by more than the difference measured here).
//!
//! ```text
//! cargo bench --features async --bench async
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use parpool::{BackendKind, Pool};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Awaits `future` on a tokio current-thread runtime, as a service would.
fn await_on<F: std::future::Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    runtime.block_on(future)
}

fn map_against_map_async(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("call_1000_items_2_workers");
    for kind in [BackendKind::Threads, BackendKind::Processes] {
        let pool = Pool::builder().kind(kind).workers(2).build().unwrap();
        let blocking = || black_box(pool.map(|x: u64| x * x, 0..1000u64).unwrap());
        let awaited =
            || black_box(await_on(&runtime, pool.map_async(|x: u64| x * x, 0..1000u64)).unwrap());
        // Times `measured`, runs `other` in between, `iterations` times.
        let interleaved =
            |iterations: u64, measured: &dyn Fn() -> Vec<u64>, other: &dyn Fn() -> Vec<u64>| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    measured();
                    total += started.elapsed();
                    other();
                }
                total
            };
        group.bench_function(format!("{kind}/map"), |b| {
            b.iter_custom(|iterations| interleaved(iterations, &blocking, &awaited))
        });
        group.bench_function(format!("{kind}/map_async"), |b| {
            b.iter_custom(|iterations| interleaved(iterations, &awaited, &blocking))
        });
    }
    group.finish();
}

criterion_group!(benches, map_against_map_async);
criterion_main!(benches);
