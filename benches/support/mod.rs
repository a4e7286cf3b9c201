//! What the benchmarks share: the pools they compare.

use criterion::BenchmarkId;
use parpool::{BackendKind, Pool};

/// One pool per built-in backend with 1 and 2 workers (serial once), each
/// with its benchmark id (`threads/2`).
pub fn pools_with_1_and_2_workers() -> Vec<(BenchmarkId, Pool)> {
    let mut pools = Vec::new();
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
            pools.push((BenchmarkId::new(kind.name(), workers), pool));
        }
    }
    pools
}
