//! The cost of awaiting a call instead of blocking on it: `map_async`
//! against `map` for a 1000-item call on threads and on processes (2
//! workers), in one criterion run. On threads the call is a task of the
//! pool's own threads (no helper); on processes a reused helper thread
//! drives it. The difference is that hand-over and the waker.
//!
//! ```text
//! cargo bench --features async --bench async
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use parpool::{BackendKind, Pool};
use std::hint::black_box;

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
        group.bench_function(format!("{kind}/map"), |b| {
            b.iter(|| black_box(pool.map(|x: u64| x * x, 0..1000u64).unwrap()))
        });
        group.bench_function(format!("{kind}/map_async"), |b| {
            b.iter(|| {
                black_box(await_on(&runtime, pool.map_async(|x: u64| x * x, 0..1000u64)).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, map_against_map_async);
criterion_main!(benches);
