//! The workloads give the same answer on every backend and worker count.

mod common;

use common::every_pool;
use parpool_workloads::pi;

#[test]
fn the_pi_count_depends_on_seed_and_tasks_only() {
    let reference = pi::estimate(&every_pool()[0], 12, 20_003, 99).unwrap();
    assert_eq!(reference.darts, 12 * 20_003);
    for pool in every_pool() {
        assert_eq!(
            pi::estimate(&pool, 12, 20_003, 99).unwrap(),
            reference,
            "{pool:?}"
        );
    }
    let other_seed = pi::estimate(&every_pool()[0], 12, 20_003, 100).unwrap();
    assert_ne!(other_seed.inside, reference.inside);
    assert!((reference.value() - std::f64::consts::PI).abs() < 0.02);
}

#[test]
fn inversion_is_bit_identical_on_every_backend_and_worker_count() {
    use parpool_workloads::invert::{self, Matrix};
    let a = Matrix::lesson(150, 4);
    let reference = invert::invert_with_block_size(&every_pool()[0], &a, 32).unwrap();
    assert!(invert::relative_residual(&a, &reference) < 1e-13);
    for pool in every_pool() {
        let x = invert::invert_with_block_size(&pool, &a, 32).unwrap();
        assert_eq!(x, reference, "{pool:?}");
    }
}

#[test]
fn a_singular_matrix_is_an_error_on_every_backend() {
    use parpool_workloads::invert::{self, Matrix};
    // Column 40 repeats column 3: singular, and found in a later block.
    let a = Matrix::from_fn(70, |row, col| {
        let col = if col == 40 { 3 } else { col };
        ((row * 7 + col * 13) % 17) as f64 + if row == col { 30.0 } else { 0.0 }
    });
    for pool in every_pool() {
        let result = invert::invert_with_block_size(&pool, &a, 16);
        match result {
            Err(error) => assert!(error.is_invalid_input(), "{pool:?}: {error}"),
            Ok(x) => panic!(
                "{pool:?}: a singular matrix was inverted, residual {}",
                invert::relative_residual(&a, &x)
            ),
        }
    }
}
