//! The contract every backend keeps, run over every built-in backend and
//! several worker counts (see `src/backend/mod.rs`), and over a third-party
//! backend written against the public protocol alone (`ScopedThreads`).

mod common;

use common::{SharedCounters, pool};
use parpool::backend::{Backend, Capabilities, Job};
use parpool::{BackendKind, Error, Pool};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A third-party backend, as a user would write one with nothing but
/// `parpool::backend`: its own scoped threads, claiming chunks from a
/// counter until none are left or the job says stop.
#[derive(Debug)]
struct ScopedThreads(usize);

impl Backend for ScopedThreads {
    fn run(&self, job: &Job<'_>) -> Result<(), Error> {
        let next = AtomicUsize::new(0);
        let chunks = job.plan().chunk_count();
        std::thread::scope(|scope| {
            for _ in 0..self.0 {
                scope.spawn(|| {
                    loop {
                        let chunk = next.fetch_add(1, Ordering::Relaxed);
                        if chunk >= chunks || job.should_stop() {
                            break;
                        }
                        // A failure is recorded in the job.
                        let _ = job.run_chunk(chunk);
                    }
                });
            }
        });
        Ok(())
    }

    fn workers(&self) -> usize {
        self.0
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::default();
        capabilities.shares_memory = true;
        capabilities
    }
}

/// Every built-in pool of `common::every_pool`, and the third-party
/// backend with 1 and 3 threads.
fn every_pool() -> Vec<Pool> {
    let mut pools = common::every_pool();
    pools.push(Pool::with_backend(ScopedThreads(1)));
    pools.push(Pool::with_backend(ScopedThreads(3)));
    pools
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn the_lesson_example_gives_the_squares_in_order() {
    for pool in every_pool() {
        let squares = pool.map(square, vec![1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(squares, [1, 4, 9, 16, 25, 36], "{pool:?}");
    }
}

#[test]
fn results_are_in_input_order_for_many_sizes_and_chunkings() {
    for &kind in BackendKind::AVAILABLE {
        for workers in [1, 2, 5] {
            for chunk_size in [None, Some(1), Some(7), Some(5000)] {
                let pool = pool(kind, workers, chunk_size);
                for n in [0u64, 1, 2, 127, 128, 129, 1000, 10_007] {
                    let expected: Vec<u64> = (0..n).map(|x| x * 3).collect();
                    assert_eq!(
                        pool.map(|x: u64| x * 3, 0..n).unwrap(),
                        expected,
                        "{pool:?} n={n}"
                    );
                }
            }
        }
    }
}

#[test]
fn map_takes_any_iterable_and_any_closure() {
    let offset = String::from("prefix-");
    for pool in every_pool() {
        let words = vec!["a".to_string(), "bb".to_string(), "ccc".to_string()];
        let tagged = pool
            .map(|word: String| format!("{offset}{word}"), words)
            .unwrap();
        assert_eq!(tagged, ["prefix-a", "prefix-bb", "prefix-ccc"]);
        let from_array = pool.map(|x: i32| -x, [1, 2, 3]).unwrap();
        assert_eq!(from_array, [-1, -2, -3]);
        let from_adaptor = pool
            .map(|x: u8| x as u32 * 2, (0..5u8).filter(|x| x % 2 == 0))
            .unwrap();
        assert_eq!(from_adaptor, [0, 4, 8]);
        let by_reference = [10, 20, 30];
        assert_eq!(
            pool.map(|x: &i32| *x + 1, &by_reference).unwrap(),
            [11, 21, 31]
        );
    }
}

#[test]
fn map_reduce_combines_every_item_once() {
    for pool in every_pool() {
        let sum = pool
            .map_reduce(square, 1..=1000u64, 0, |a, b| a + b)
            .unwrap();
        assert_eq!(sum, (1..=1000u64).map(square).sum::<u64>(), "{pool:?}");
        let empty = pool
            .map_reduce(square, Vec::<u64>::new(), 7, |a, b| a + b)
            .unwrap();
        assert_eq!(empty, 7, "the identity comes back for no items");
        let concatenated = pool
            .map_reduce(
                |x: u32| x.to_string(),
                0..12u32,
                String::new(),
                |a, b| a + &b,
            )
            .unwrap();
        assert_eq!(concatenated, "01234567891011", "chunk order is kept");
    }
}

#[test]
fn every_item_runs_exactly_once() {
    for pool in every_pool() {
        let runs = SharedCounters::new(5000);
        pool.map(|x: usize| runs.add(x), 0..5000).unwrap();
        for x in 0..5000 {
            assert_eq!(runs.value(x), 1, "{pool:?}: item {x}");
        }
    }
}

#[test]
fn a_panic_is_an_error_naming_the_item() {
    for pool in every_pool() {
        let error = pool
            .map(
                |x: u32| {
                    if x == 3 {
                        panic!("boom");
                    }
                    x
                },
                0..10,
            )
            .unwrap_err();
        assert_eq!(
            common::without_location(&error),
            "task 3 of 10 panicked: boom",
            "{pool:?}"
        );
        assert!(error.is_panic() && !error.is_crash() && !error.is_timeout());
        assert_eq!(error.task_index(), Some(3));
        assert_eq!(error.panic_message(), Some("boom"));

        let formatted = pool
            .map_reduce(
                |x: u32| {
                    assert!(x != 7, "item {x} is bad");
                    x
                },
                0..10,
                0,
                |a, b| a + b,
            )
            .unwrap_err();
        assert_eq!(
            common::without_location(formatted),
            "task 7 of 10 panicked: item 7 is bad"
        );
    }
}

#[test]
fn the_lowest_failing_item_is_reported_when_several_fail() {
    for pool in every_pool() {
        let error = pool
            .map(|x: u32| assert!(x % 100 != 50, "bad {x}"), 0..1000u32)
            .unwrap_err();
        // Fail-fast may stop before later failures run, but whatever ran,
        // the lowest index among the failures seen is named; with one item
        // per failing chunk that is item 50 on the serial backend.
        assert!(error.task_index().unwrap() % 100 == 50, "{error}");
        if pool.kind() == BackendKind::Serial {
            assert_eq!(error.task_index(), Some(50));
        }
    }
}

#[test]
fn map_stops_handing_out_chunks_after_a_failure() {
    for pool in every_pool() {
        let ran = SharedCounters::new(1);
        let result = pool.clone_with_chunk_size(1).map(
            |x: u32| {
                ran.add(0);
                if x == 0 {
                    // A panic without the panic hook: the hook's own time
                    // (printing a backtrace under RUST_BACKTRACE=1 took 80
                    // ms here, while the other worker went on) is the
                    // program's, not the pool's, and this test counts what
                    // the pool does once the failure is caught.
                    std::panic::resume_unwind(Box::new("first item fails"));
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            },
            0..2000,
        );
        assert!(result.is_err());
        let ran = ran.value(0);
        // Every worker may be mid-chunk when the failure lands; nothing
        // close to all 2000 items may run.
        assert!(
            ran < 200,
            "{pool:?}: {ran} items ran after the first failed"
        );
    }
}

#[test]
fn map_results_keeps_going_and_loses_nothing() {
    for pool in every_pool() {
        let ran = SharedCounters::new(1);
        let results = pool.map_results(
            |x: u32| {
                ran.add(0);
                if x % 10 == 3 {
                    panic!("no threes: {x}");
                }
                x * 2
            },
            0..100,
        );
        assert_eq!(ran.value(0), 100, "{pool:?}");
        assert_eq!(results.len(), 100);
        for (index, result) in results.iter().enumerate() {
            if index % 10 == 3 {
                let error = result.as_ref().unwrap_err();
                assert_eq!(error.task_index(), Some(index));
                assert_eq!(
                    common::without_location(error),
                    format!("task {index} of 100 panicked: no threes: {index}")
                );
            } else {
                assert_eq!(result.as_ref().ok(), Some(&(index as u32 * 2)));
            }
        }
        assert!(pool.map_results(|x: u8| x, Vec::new()).is_empty());
    }
}

#[test]
fn the_pool_stays_usable_after_failures() {
    for pool in every_pool() {
        for _ in 0..3 {
            assert!(
                pool.map(|_: u8| -> u8 { panic!("always") }, [1u8, 2, 3])
                    .is_err()
            );
            assert_eq!(pool.map(|x: u8| x + 1, [1u8, 2, 3]).unwrap(), [2, 3, 4]);
        }
    }
}

#[test]
fn nested_pools_run_serially_on_the_task_thread() {
    for pool in every_pool() {
        let inner = pool.clone();
        let outer = pool
            .map(
                |x: u64| {
                    let here = format!("{:?}", std::thread::current().id());
                    let threads = inner
                        .map(|_: u64| format!("{:?}", std::thread::current().id()), 0..50)
                        .unwrap();
                    assert!(
                        threads.iter().all(|id| *id == here),
                        "nested call left its thread"
                    );
                    inner
                        .map_reduce(|y: u64| x * y, 0..10, 0, |a, b| a + b)
                        .unwrap()
                },
                0..20u64,
            )
            .unwrap();
        let expected: Vec<u64> = (0..20).map(|x| x * 45).collect();
        assert_eq!(outer, expected, "{pool:?}");
    }
}

#[test]
fn inputs_and_outputs_are_dropped_exactly_once() {
    // Counts values alive in *this* process: worker processes have their
    // own copy. Values decoded from a worker count as created here.
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(from = "u32", into = "u32")]
    struct Tracked(u32);
    impl From<u32> for Tracked {
        fn from(value: u32) -> Tracked {
            Tracked::new(value)
        }
    }
    impl From<Tracked> for u32 {
        fn from(tracked: Tracked) -> u32 {
            tracked.0
        }
    }
    impl Clone for Tracked {
        fn clone(&self) -> Tracked {
            Tracked::new(self.0)
        }
    }
    impl Tracked {
        fn new(value: u32) -> Tracked {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Tracked(value)
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    for pool in every_pool() {
        let pool = pool.clone_with_chunk_size(3);
        let outputs = pool
            .map(
                |t: Tracked| Tracked::new(t.0 + 1),
                (0..50).map(Tracked::new),
            )
            .unwrap();
        assert_eq!(LIVE.load(Ordering::SeqCst), 50);
        drop(outputs);
        let failed = pool.map(
            |t: Tracked| {
                assert!(t.0 != 20, "twenty");
                Tracked::new(t.0)
            },
            (0..50).map(Tracked::new),
        );
        assert!(failed.is_err());
        let results = pool.map_results(
            |t: Tracked| {
                assert!(t.0 != 20, "twenty");
                Tracked::new(t.0)
            },
            (0..50).map(Tracked::new),
        );
        drop(results);
        assert_eq!(
            LIVE.load(Ordering::SeqCst),
            0,
            "{pool:?} leaked or double-dropped"
        );
    }
}

#[test]
fn pools_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Pool>();
    let pool = pool(BackendKind::Threads, 2, None);
    std::thread::scope(|scope| {
        for offset in 0..4u64 {
            let pool = &pool;
            scope.spawn(move || {
                let got = pool.map(|x: u64| x + offset, 0..1000u64).unwrap();
                assert_eq!(got, (0..1000).map(|x| x + offset).collect::<Vec<_>>());
            });
        }
    });
}

#[test]
fn kind_and_workers_are_reported() {
    for &kind in BackendKind::AVAILABLE {
        let pool = pool(kind, 3, None);
        assert_eq!(pool.kind(), kind);
        // Serial has one worker; MPI's workers are the threads in each rank.
        let expected = match kind.name() {
            "serial" => 1,
            _ => 3,
        };
        assert_eq!(pool.workers(), expected);
    }
}

/// Rebuilds a pool of the same kind and workers with another chunk size.
trait WithChunkSize {
    fn clone_with_chunk_size(&self, size: usize) -> Pool;
}

impl WithChunkSize for Pool {
    fn clone_with_chunk_size(&self, size: usize) -> Pool {
        match self.kind() {
            BackendKind::Custom => Pool::builder()
                .backend(ScopedThreads(self.workers()))
                .chunk_size(size)
                .build()
                .expect("a chunk size suits any backend"),
            kind => pool(kind, self.workers(), Some(size)),
        }
    }
}
