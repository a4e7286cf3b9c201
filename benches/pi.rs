//! Monte-Carlo pi: the lock-step SIMD kernel against a plain scalar
//! rand_xoshiro loop (darts per second, one core), and the whole estimate
//! through `map_reduce` on every backend with 1 and 2 workers.
//!
//! ```text
//! cargo bench --bench pi
//! ```

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parpool_workloads::pi::{self, PiStream};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use std::hint::black_box;

const DARTS: u64 = 10_000_000;

fn bench_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("pi_kernel_1e7_darts_{}", pi::kernel_name()));
    group.throughput(Throughput::Elements(DARTS));
    group.sample_size(20);
    group.bench_function("lockstep_simd", |b| {
        let mut stream = PiStream::new(1, 0);
        b.iter(|| black_box(pi::sample(DARTS, &mut stream)))
    });
    group.bench_function("scalar_xoshiro256plusplus", |b| {
        let mut generator = Xoshiro256PlusPlus::seed_from_u64(1);
        b.iter(|| black_box(pi::sample_scalar(DARTS, &mut generator)))
    });
    group.finish();
}

fn bench_estimate(c: &mut Criterion) {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 10_000_000;
    let mut group = c.benchmark_group("pi_estimate_16x1e7");
    group.throughput(Throughput::Elements(TASKS * PER_TASK));
    group.sample_size(10);
    for (id, pool) in support::pools_with_1_and_2_workers() {
        group.bench_function(id, |b| {
            b.iter(|| pi::estimate(&pool, TASKS, PER_TASK, 1).expect("no task fails"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_kernel, bench_estimate);
criterion_main!(benches);
