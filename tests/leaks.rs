//! Contract 4: nothing leaks. One test, so no other test's threads or files
//! disturb the counts.

mod common;

use common::{children, every_pool, open_fds, settles_to, threads};

#[test]
fn no_threads_descriptors_or_children_outlive_a_pool() {
    // MPI's runtime (its threads and sockets) starts with the first MPI pool
    // and lives until the process exits, by design: start it before counting.
    for kind in parpool::BackendKind::AVAILABLE {
        if kind.name() == "mpi" {
            drop(
                parpool::Pool::builder()
                    .kind(*kind)
                    .build()
                    .expect("MPI starts"),
            );
        }
    }
    // So does the shared thread pool (as rayon's global pool does).
    common::start_what_lives_with_the_process();
    let fds_before = open_fds();
    let threads_before = threads();
    let names_before = common::thread_names();
    let children_before = children();
    for _ in 0..3 {
        for pool in every_pool() {
            assert!(pool.map(|x: u32| x + 1, 0..1000).is_ok());
            assert!(
                pool.map(|x: u32| assert!(x != 500, "fails"), 0..1000)
                    .is_err()
            );
            assert_eq!(
                pool.map_results(|x: u32| assert!(x.is_multiple_of(2)), 0..100)
                    .len(),
                100
            );
            assert!(
                pool.map_reduce(|x: u32| u64::from(x), 0..1000, 0, |a, b| a + b)
                    .is_ok()
            );
        }
    }
    assert_eq!(
        settles_to(threads_before, threads),
        threads_before,
        "worker threads outlived their pools: before {names_before:?}, after {:?}",
        common::thread_names()
    );
    assert_eq!(open_fds(), fds_before, "file descriptors leaked");
    assert_eq!(children(), children_before, "child processes left behind");
}
