//! Large results across MPI ranks: `map` over 4 items, one per chunk, each
//! returning a `Vec<u8>` or a `Vec<f64>` of the given size (default
//! 200 MiB), best of 3; prints the rate in MB of results per second.
//!
//! ```text
//! cargo build --release --features mpi --example mpi_large_results
//! mpiexec -n 2 target/release/examples/mpi_large_results        # 200 MiB each
//! mpiexec -n 2 target/release/examples/mpi_large_results 16     # 16 MiB each
//! ```

use parpool::{BackendKind, Pool};
use std::time::Instant;
fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(200);
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(1)
        .chunk_size(1)
        .build()
        .unwrap();
    let mut best_u8 = f64::MAX;
    let mut best_f64 = f64::MAX;
    for _ in 0..3 {
        pool.map(|_: usize| (), 0..pool.ranks()).unwrap();
        let t = Instant::now();
        let out = pool
            .map(move |i: usize| vec![i as u8; mib << 20], 0..4usize)
            .unwrap();
        best_u8 = best_u8.min(t.elapsed().as_secs_f64());
        assert_eq!(out[3][5], 3);
        drop(out);
        pool.map(|_: usize| (), 0..pool.ranks()).unwrap();
        let t = Instant::now();
        let out = pool
            .map(
                move |i: usize| vec![i as f64 + 0.5; (mib << 20) / 8],
                0..4usize,
            )
            .unwrap();
        best_f64 = best_f64.min(t.elapsed().as_secs_f64());
        assert_eq!(out[3][5], 3.5);
        drop(out);
    }
    let bytes = (4 * (mib << 20)) as f64;
    if pool.rank() == 0 {
        println!(
            "MPI {} ranks: Vec<u8> {:.0} MB/s, Vec<f64> {:.0} MB/s",
            pool.ranks(),
            bytes / best_u8 / 1e6,
            bytes / best_f64 / 1e6
        );
    }
}
