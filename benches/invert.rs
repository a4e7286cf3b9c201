//! Inversion of the lesson's 500 x 500 matrix through the pool, per backend
//! with 1 and 2 workers, and faer's own inversion on one thread for scale.
//!
//! ```text
//! cargo bench --bench invert
//! ```

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faer::linalg::solvers::DenseSolveCore;
use faer::{MatRef, Par};
use parpool::workloads::invert::{self, Matrix};
use parpool::{BackendKind, Pool};

const N: usize = 500;

fn bench_invert(c: &mut Criterion) {
    let a = Matrix::lesson(N, 2026);
    let mut group = c.benchmark_group("invert_500");
    group.throughput(Throughput::Elements(invert::flops(N) as u64));
    group.sample_size(20);
    for &kind in BackendKind::AVAILABLE {
        for workers in [1, 2] {
            if kind == BackendKind::Serial && workers == 2 {
                continue;
            }
            let pool = Pool::builder()
                .kind(kind)
                .workers(workers)
                .build()
                .expect("valid settings");
            group.bench_function(BenchmarkId::new(kind.name(), workers), |b| {
                b.iter(|| invert::invert(&pool, &a).expect("invertible"))
            });
        }
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
