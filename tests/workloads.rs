//! The workloads give the same answer on every backend and worker count.

mod common;

use common::every_pool;
use parpool::workloads::pi;

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
