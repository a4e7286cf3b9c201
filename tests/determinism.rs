//! Contract 1: the same answer on every backend and every worker count,
//! down to the last bit of a floating-point sum.

mod common;

use common::pool;
use parpool::{BackendKind, Pool};
use proptest::prelude::*;

/// Pools of every backend compiled in with 1..=8 workers.
fn pools_with(chunk_size: Option<usize>) -> Vec<Pool> {
    let mut pools = Vec::new();
    for &kind in BackendKind::AVAILABLE {
        for workers in 1..=8 {
            pools.push(pool(kind, workers, chunk_size));
        }
    }
    pools
}

/// A term whose sum depends on the order of additions.
fn term(x: f64) -> f64 {
    (x * 1.000_000_1).sin() * 1e10_f64.powf(x.fract())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn float_sums_are_bit_identical_everywhere(
        values in prop::collection::vec(-1e6f64..1e6, 0..3000),
        chunk_size in prop::option::of(1usize..400),
    ) {
        let reference = pool(BackendKind::Serial, 1, chunk_size)
            .map_reduce(term, values.clone(), 0.0, |a, b| a + b)
            .unwrap();
        for pool in pools_with(chunk_size) {
            let sum = pool.map_reduce(term, values.clone(), 0.0, |a, b| a + b).unwrap();
            prop_assert_eq!(sum.to_bits(), reference.to_bits(), "{:?}", pool);
        }
    }

    #[test]
    fn map_results_are_bit_identical_everywhere(
        values in prop::collection::vec(any::<f64>(), 0..2000),
        chunk_size in prop::option::of(1usize..300),
    ) {
        let reference: Vec<u64> = values.iter().map(|x| term(*x).to_bits()).collect();
        for pool in pools_with(chunk_size) {
            let got: Vec<u64> = pool
                .map(|x: f64| term(x).to_bits(), values.clone())
                .unwrap();
            prop_assert_eq!(&got, &reference, "{:?}", pool);
        }
    }

    #[test]
    fn streams_give_the_same_results_as_map_everywhere(
        values in prop::collection::vec(any::<f64>(), 0..1500),
        chunk_size in 1usize..200,
        in_flight in 1usize..6,
        workers in 1usize..4,
    ) {
        let reference: Vec<u64> = values.iter().map(|x| term(*x).to_bits()).collect();
        for &kind in BackendKind::AVAILABLE {
            let pool = Pool::builder()
                .kind(kind)
                .workers(workers)
                .chunk_size(chunk_size)
                .in_flight(in_flight)
                .build()
                .unwrap();
            let ordered: Vec<u64> = pool
                .imap(|x: f64| term(x).to_bits(), values.clone())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(&ordered, &reference, "{:?}", pool);
            let mut unordered = vec![0u64; values.len()];
            for (index, result) in pool.imap_unordered(|x: f64| term(x).to_bits(), values.clone()).unwrap() {
                unordered[index] = result.unwrap();
            }
            prop_assert_eq!(&unordered, &reference, "{:?}", pool);
        }
    }
}

#[test]
fn a_reordering_sensitive_sum_is_stable_with_the_default_plan() {
    // Large enough that the default plan makes many chunks, so workers
    // really do finish them in different orders.
    let values: Vec<f64> = (0..200_000).map(|i| f64::from(i) * 0.37).collect();
    let reference = pool(BackendKind::Serial, 1, None)
        .map_reduce(term, values.clone(), 0.0, |a, b| a + b)
        .unwrap();
    let naive: f64 = values.iter().map(|x| term(*x)).sum();
    for pool in pools_with(None) {
        let sum = pool
            .map_reduce(term, values.clone(), 0.0, |a, b| a + b)
            .unwrap();
        assert_eq!(sum.to_bits(), reference.to_bits(), "{pool:?}");
    }
    // The chunked grouping is a different (still deterministic) order than a
    // plain left fold; both are close.
    assert!((reference - naive).abs() <= 1e-9 * naive.abs().max(1.0));
}
