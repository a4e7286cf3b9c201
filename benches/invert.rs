//! Inversion of the lesson's 500 x 500 matrix through the pool, per backend
//! with 1 and 2 workers, and faer's own inversion on one thread for scale.
//!
//! ```text
//! cargo bench --bench invert
//! ```

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use faer::linalg::solvers::DenseSolveCore;
use faer::{MatRef, Par};
use parpool_workloads::invert::{self, Matrix};

const N: usize = 500;

fn bench_invert(c: &mut Criterion) {
    let a = Matrix::lesson(N, 2026);
    let mut group = c.benchmark_group("invert_500");
    group.throughput(Throughput::Elements(invert::flops(N) as u64));
    group.sample_size(20);
    for (id, pool) in support::pools_with_1_and_2_workers() {
        group.bench_function(id, |b| {
            b.iter(|| invert::invert(&pool, &a).expect("invertible"))
        });
    }
    faer::set_global_parallelism(Par::Seq);
    let view = MatRef::from_column_major_slice(a.as_column_major(), N, N);
    group.bench_function("faer_partial_piv_lu_inverse/1", |b| {
        b.iter(|| view.partial_piv_lu().inverse())
    });
    group.finish();
}

criterion_group!(benches, bench_invert);
criterion_main!(benches);
