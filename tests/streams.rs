//! Streaming (`imap`, `imap_unordered`), sessions, `map_init`, cancellation
//! and progress, on every backend: results, laziness, failures, early drop,
//! and, after each case, no leaked descriptors, threads or processes.

mod common;

use common::{SharedCounters, children, open_fds, scenario_command, settles_to};
use parpool::{BackendKind, CancelToken, Error, Pool};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Tests here count this process's descriptors, threads and children, so
/// they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Worker threads of parpool pools in this process (the test harness
/// starts and ends threads of its own, so all threads cannot be counted).
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.starts_with("parpool-worker"))
            .count()
    })
}

/// Runs `case` and checks it left no descriptors, pool threads or children.
fn without_leaks(case: impl FnOnce()) {
    let _one = one_at_a_time();
    common::start_what_lives_with_the_process();
    let fds_before = open_fds();
    let children_before = children();
    let threads_before = pool_threads();
    case();
    assert_eq!(open_fds(), fds_before, "file descriptors leaked");
    assert_eq!(children(), children_before, "child processes left behind");
    // Threads of pools dropped by an earlier test may still be exiting, so
    // the count can also go down.
    let threads_after = settles_to(threads_before, pool_threads);
    assert!(
        threads_after <= threads_before,
        "pool threads left running: {threads_after}, before {threads_before}"
    );
}

fn pool(kind: BackendKind, workers: usize) -> parpool::PoolBuilder {
    Pool::builder().kind(kind).workers(workers)
}

/// Serial, threads and processes (MPI runs its own test binary).
fn local_kinds() -> Vec<BackendKind> {
    BackendKind::AVAILABLE
        .iter()
        .copied()
        .filter(|&kind| kind.name() != "mpi")
        .collect()
}

#[test]
fn imap_gives_every_result_in_order_on_every_backend() {
    without_leaks(|| {
        for kind in local_kinds() {
            for (workers, chunk, in_flight) in [(1, 1, 1), (2, 7, 3), (3, 64, 8)] {
                let pool = pool(kind, workers)
                    .chunk_size(chunk)
                    .in_flight(in_flight)
                    .build()
                    .unwrap();
                let squares: Vec<u64> = pool
                    .imap(|x: u64| x * x, 0..1000u64)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(
                    squares,
                    (0..1000u64).map(|x| x * x).collect::<Vec<_>>(),
                    "{kind} {workers} workers, chunk {chunk}, {in_flight} in flight"
                );
                let mut seen = BTreeSet::new();
                for (index, result) in pool.imap_unordered(|x: u64| x + 1, 0..500u64).unwrap() {
                    assert_eq!(result.unwrap(), index as u64 + 1, "{kind}");
                    assert!(seen.insert(index), "{kind}: index {index} twice");
                }
                assert_eq!(seen.len(), 500, "{kind}");
                assert_eq!(pool.imap(|x: u64| x, 0..0u64).unwrap().count(), 0);
            }
        }
    });
}

#[test]
fn imap_reads_its_input_lazily() {
    without_leaks(|| {
        for kind in local_kinds() {
            let pulled = Arc::new(AtomicUsize::new(0));
            let counter = pulled.clone();
            let input = (0u64..).inspect(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            });
            let pool = pool(kind, 2).chunk_size(10).in_flight(3).build().unwrap();
            let mut stream = pool.imap(|x: u64| x * 2, input).unwrap();
            for expected in 0..25u64 {
                assert_eq!(stream.next().unwrap().unwrap(), expected * 2);
            }
            // 25 items handed out = 3 chunks touched; at most 3 held at once.
            let pulled_now = pulled.load(Ordering::Relaxed);
            assert!(
                pulled_now <= 60,
                "{kind}: pulled {pulled_now} items of an infinite input"
            );
            drop(stream);
        }
    });
}

#[test]
fn a_failing_task_is_one_err_and_the_stream_goes_on() {
    without_leaks(|| {
        for kind in local_kinds() {
            let pool = pool(kind, 2).chunk_size(4).build().unwrap();
            let results: Vec<Result<u32, Error>> = pool
                .imap(
                    |x: u32| {
                        if x == 13 {
                            panic!("thirteen");
                        }
                        x
                    },
                    0..40u32,
                )
                .unwrap()
                .collect();
            assert_eq!(results.len(), 40, "{kind}");
            let error = results[13].as_ref().unwrap_err();
            assert_eq!(
                common::without_location(error),
                "task 13 panicked: thirteen",
                "{kind}"
            );
            assert_eq!(results[14].as_ref().ok(), Some(&14), "{kind}");
            // collect::<Result<..>> stops at the failure.
            let first = pool
                .imap(
                    |x: u32| if x % 10 == 9 { panic!("nine") } else { x },
                    0..1000u32,
                )
                .unwrap()
                .collect::<Result<Vec<u32>, Error>>()
                .unwrap_err();
            assert_eq!(first.task_index(), Some(9), "{kind}");
        }
    });
}

#[test]
fn streams_forward_the_size_of_their_input_failed_items_included() {
    without_leaks(|| {
        for kind in local_kinds() {
            let pool = pool(kind, 2).chunk_size(7).in_flight(3).build().unwrap();
            let task = |x: u32| if x % 10 == 3 { panic!("three") } else { x };
            let mut stream = pool.imap(task, 0..100u32).unwrap();
            assert_eq!(stream.size_hint(), (100, Some(100)), "{kind}");
            for taken in 1..=100 {
                assert!(stream.next().is_some(), "{kind}");
                let left = 100 - taken;
                assert_eq!(
                    stream.size_hint(),
                    (left, Some(left)),
                    "{kind} after {taken}"
                );
            }
            assert!(stream.next().is_none());
            assert_eq!(stream.size_hint(), (0, Some(0)), "{kind}");

            let mut unordered = pool.imap_unordered(task, 0..50u32).unwrap();
            assert_eq!(unordered.size_hint(), (50, Some(50)), "{kind}");
            unordered.next();
            assert_eq!(unordered.size_hint(), (49, Some(49)), "{kind}");
            assert_eq!(unordered.count(), 49, "{kind}");

            // An input of unknown length: the bounds stay true.
            let filtered = (0..60u32).filter(|x| x % 2 == 0);
            let mut stream = pool.imap(task, filtered).unwrap();
            let (low, high) = stream.size_hint();
            assert!(low <= 30 && high.is_some_and(|high| high >= 30), "{kind}");
            stream.next();
            let (low, high) = stream.size_hint();
            assert!(low <= 29 && high.is_some_and(|high| high >= 29), "{kind}");
            assert_eq!(stream.count(), 29, "{kind}");

            // An endless input promises no more than it holds.
            let mut endless = pool.imap(|x: u64| x, 0u64..).unwrap();
            assert_eq!(endless.next().unwrap().unwrap(), 0);
            let (low, high) = endless.size_hint();
            assert!(low <= 7 * 3 && high.is_none(), "{kind}: {low}");
            drop(endless);

            // A session's streams too.
            let mut session = pool.session(|x: u32| x + 1).unwrap();
            let mut stream = session.imap(0..20u32);
            assert_eq!(stream.size_hint(), (20, Some(20)), "{kind}");
            stream.next();
            assert_eq!(stream.size_hint(), (19, Some(19)), "{kind}");
        }
    });
}

#[cfg(unix)]
#[test]
fn process_streams_survive_crashes_and_timeouts() {
    without_leaks(|| {
        let pool = pool(BackendKind::Processes, 2)
            .chunk_size(5)
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let results: Vec<Result<u32, Error>> = pool
            .imap(
                |x: u32| {
                    match x {
                        3 => std::process::abort(),
                        // SAFETY: kill has no memory effects; this worker
                        // kills itself.
                        11 => unsafe {
                            libc::kill(libc::getpid(), libc::SIGKILL);
                        },
                        17 => std::thread::sleep(Duration::from_secs(60)),
                        _ => {}
                    }
                    x
                },
                0..30u32,
            )
            .unwrap()
            .collect();
        assert_eq!(results.len(), 30);
        let crash = results[3].as_ref().unwrap_err();
        assert_eq!(
            crash.to_string(),
            "task 3 crashed: worker killed by signal 6 (SIGABRT)"
        );
        assert!(results[11].as_ref().unwrap_err().is_crash());
        let timeout = results[17].as_ref().unwrap_err();
        assert!(timeout.is_timeout(), "{timeout}");
        assert_eq!(timeout.task_index(), Some(17));
        for index in (0..30).filter(|i| ![3, 11, 17].contains(i)) {
            assert_eq!(
                results[index].as_ref().ok(),
                Some(&(index as u32)),
                "item {index}"
            );
        }
    });
}

#[cfg(unix)]
#[test]
fn process_streams_retry_on_a_fresh_worker() {
    without_leaks(|| {
        let attempts = SharedCounters::new(1);
        let pool = pool(BackendKind::Processes, 2)
            .chunk_size(3)
            .retries(2)
            .build()
            .unwrap();
        let attempts = Arc::new(attempts);
        let counter = attempts.clone();
        let results: Vec<u32> = pool
            .imap(
                move |x: u32| {
                    if x == 4 {
                        counter.add(0);
                        if counter.value(0) < 3 {
                            std::process::abort();
                        }
                    }
                    x
                },
                0..9u32,
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(results, (0..9).collect::<Vec<_>>());
        assert_eq!(attempts.value(0), 3);
    });
}

#[cfg(unix)]
#[test]
fn large_items_and_results_both_ways_do_not_deadlock() {
    // 4 MiB in and out per item, far more than a socket buffer, with the
    // next chunk already on its way to each worker.
    without_leaks(|| {
        let pool = pool(BackendKind::Processes, 2)
            .chunk_size(1)
            .build()
            .unwrap();
        let blocks = (0..24u8).map(|i| serde_bytes::ByteBuf::from(vec![i; 4 << 20]));
        let results: Vec<serde_bytes::ByteBuf> = pool
            .imap(
                |block: serde_bytes::ByteBuf| {
                    serde_bytes::ByteBuf::from(block.iter().map(|b| b ^ 0xff).collect::<Vec<u8>>())
                },
                blocks,
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(results.len(), 24);
        for (i, block) in results.iter().enumerate() {
            assert_eq!(block.len(), 4 << 20);
            assert!(block.iter().all(|&b| b == (i as u8) ^ 0xff), "block {i}");
        }
    });
}

#[test]
fn dropping_a_stream_early_stops_its_work() {
    without_leaks(|| {
        for kind in local_kinds() {
            let started = Arc::new(SharedCounters::new(1));
            let counter = started.clone();
            let pool = pool(kind, 2).chunk_size(1).in_flight(4).build().unwrap();
            let mut stream = pool
                .imap(
                    move |x: u64| {
                        counter.add(0);
                        std::thread::sleep(Duration::from_millis(20));
                        x
                    },
                    0u64..,
                )
                .unwrap();
            assert_eq!(stream.next().unwrap().unwrap(), 0);
            drop(stream);
            // Nothing of the stream runs once the drop has returned.
            let after_drop = started.value(0);
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(started.value(0), after_drop, "{kind}: tasks ran after drop");
            assert!(after_drop <= 6, "{kind}: {after_drop} tasks started");
            // The pool is still usable.
            assert_eq!(pool.map(|x: u32| x + 1, [1, 2]).unwrap(), [2, 3]);
        }
    });
}

#[test]
fn cancelling_stops_a_running_map_and_the_pool_stays_usable() {
    without_leaks(|| {
        for kind in local_kinds() {
            let started = Arc::new(SharedCounters::new(1));
            let pool = pool(kind, 2).chunk_size(2).build().unwrap();
            let token = CancelToken::new();
            let stopper = token.clone();
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stopper.cancel();
            });
            let counter = started.clone();
            let slow = move |x: u32| {
                counter.add(0);
                std::thread::sleep(Duration::from_millis(10));
                x
            };
            let error = pool
                .with_cancel(&token)
                .map(&slow, 0..100_000u32)
                .unwrap_err();
            canceller.join().unwrap();
            assert!(error.is_cancelled(), "{kind}: {error}");
            assert!(
                started.value(0) < 1000,
                "{kind}: {} tasks ran",
                started.value(0)
            );
            // map_results: what ran is kept, the rest says cancelled.
            let results = pool.with_cancel(&token).map_results(&slow, 0..10u32);
            assert!(
                results
                    .iter()
                    .all(|r| r.as_ref().unwrap_err().is_cancelled())
            );
            // map_reduce and imap stop too.
            let error = pool
                .with_cancel(&token)
                .map_reduce(&slow, 0..10u32, 0, |a, b| a + b)
                .unwrap_err();
            assert!(error.is_cancelled(), "{kind}: {error}");
            let mut stream = pool.with_cancel(&token).imap(|x: u32| x, 0..10u32).unwrap();
            assert!(stream.next().unwrap().unwrap_err().is_cancelled());
            assert!(stream.next().is_none());
            // The pool itself is unaffected.
            assert_eq!(pool.map(|x: u32| x * 3, 0..4).unwrap(), [0, 3, 6, 9]);
        }
    });
}

#[test]
fn cancelling_a_stream_from_another_thread_ends_it() {
    without_leaks(|| {
        for kind in local_kinds() {
            let pool = pool(kind, 2).chunk_size(1).build().unwrap();
            let token = CancelToken::new();
            let mut stream = pool
                .with_cancel(&token)
                .imap(
                    |x: u64| {
                        std::thread::sleep(Duration::from_millis(5));
                        x
                    },
                    0u64..,
                )
                .unwrap();
            let mut last = None;
            let stopper = token.clone();
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stopper.cancel();
            });
            for result in stream.by_ref() {
                match result {
                    Ok(value) => last = Some(value),
                    Err(error) => {
                        assert!(error.is_cancelled(), "{kind}: {error}");
                        break;
                    }
                }
            }
            canceller.join().unwrap();
            assert!(stream.next().is_none(), "{kind}: the stream ended");
            assert!(last.is_some(), "{kind}: some items ran before the cancel");
        }
    });
}

#[test]
fn map_init_makes_at_most_one_state_per_worker() {
    without_leaks(|| {
        for kind in local_kinds() {
            for workers in [1, 2, 3] {
                let inits = SharedCounters::new(1);
                let pool = pool(kind, workers).chunk_size(5).build().unwrap();
                // Each state is (a unique id, a count of the items it served).
                let results = pool
                    .map_init(
                        || {
                            inits.add(0);
                            // SAFETY: getpid has no preconditions.
                            let pid = unsafe { libc::getpid() } as u64;
                            let thread = std::thread::current().id();
                            (format!("{pid}-{thread:?}"), 0u64)
                        },
                        |state: &mut (String, u64), x: u64| {
                            state.1 += 1;
                            (x * 2, state.0.clone())
                        },
                        0..200u64,
                    )
                    .unwrap();
                let values: Vec<u64> = results.iter().map(|(value, _)| *value).collect();
                assert_eq!(values, (0..200).map(|x| x * 2).collect::<Vec<_>>());
                let states: BTreeSet<&String> = results.iter().map(|(_, id)| id).collect();
                assert!(
                    states.len() <= workers,
                    "{kind} {workers}: {} states",
                    states.len()
                );
                assert!(
                    inits.value(0) <= workers,
                    "{kind} {workers}: init ran {} times",
                    inits.value(0)
                );
            }
        }
    });
}

#[test]
fn a_panicking_init_names_the_first_item_of_its_chunk() {
    let _one = one_at_a_time();
    for kind in local_kinds() {
        let pool = pool(kind, 2).chunk_size(4).build().unwrap();
        let error = pool
            .map_init(
                || -> Vec<u8> { panic!("no state") },
                |_: &mut Vec<u8>, x: u32| x,
                0..8u32,
            )
            .unwrap_err();
        assert!(error.is_panic(), "{kind}: {error}");
        assert_eq!(error.panic_message(), Some("no state"));
        assert!(matches!(error.task_index(), Some(0 | 4)), "{kind}: {error}");
    }
}

#[cfg(unix)]
#[test]
fn a_session_forks_once_and_serves_many_calls() {
    without_leaks(|| {
        let pool = pool(BackendKind::Processes, 2).build().unwrap();
        let children_before = children();
        let mut session = pool
            .session(|x: u64| {
                // SAFETY: getpid has no preconditions.
                (x * x, unsafe { libc::getpid() })
            })
            .unwrap();
        assert_eq!(children(), children_before + 2, "two workers forked");
        let mut pids = BTreeSet::new();
        for round in 0..5u64 {
            let results = session.map((0..300).map(|x| x + round)).unwrap();
            for (offset, (square, pid)) in results.iter().enumerate() {
                let x = offset as u64 + round;
                assert_eq!(*square, x * x);
                pids.insert(*pid);
            }
        }
        assert!(pids.len() <= 2, "the same two workers served every call");
        // A stream on the same workers.
        let sum: u64 = session
            .imap(0..100u64)
            .map(|result| result.unwrap().0)
            .sum();
        assert_eq!(sum, (0..100u64).map(|x| x * x).sum::<u64>());
        drop(session);
    });
}

#[cfg(unix)]
#[test]
fn a_session_replaces_a_crashed_worker_and_stays_usable() {
    without_leaks(|| {
        let pool = pool(BackendKind::Processes, 2)
            .chunk_size(10)
            .build()
            .unwrap();
        let mut session = pool
            .session(|x: u32| {
                if x == 25 {
                    std::process::abort();
                }
                x
            })
            .unwrap();
        let error = session.map(0..100).unwrap_err();
        assert_eq!(
            error.to_string(),
            "task 25 of 100 crashed: worker killed by signal 6 (SIGABRT)"
        );
        let results = session.map_results(0..40);
        assert!(results[25].as_ref().unwrap_err().is_crash());
        assert_eq!(results[26].as_ref().ok(), Some(&26));
        assert_eq!(session.map(30..35).unwrap(), [30, 31, 32, 33, 34]);
    });
}

#[test]
fn sessions_work_on_every_backend() {
    let _one = one_at_a_time();
    for kind in local_kinds() {
        let pool = pool(kind, 2).build().unwrap();
        let mut session = pool.session(|x: i64| x - 1).unwrap();
        assert_eq!(session.map([1, 2, 3]).unwrap(), [0, 1, 2], "{kind}");
        let error = session.map(Vec::<i64>::new()).unwrap();
        assert!(error.is_empty());
        let results = session.map_results([5]);
        assert_eq!(results.len(), 1, "{kind}");
        assert_eq!(results[0].as_ref().ok(), Some(&4), "{kind}");
    }
}

#[cfg(unix)]
#[test]
fn inputs_that_fail_to_travel_are_errors_naming_the_item() {
    use serde::{Serialize, Serializer};
    /// 6 cannot be encoded, 9 cannot be decoded, and decoding 14 kills the
    /// worker before it starts the chunk.
    #[derive(Debug)]
    struct Awkward(u32);
    impl Serialize for Awkward {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            if self.0 == 6 {
                Err(serde::ser::Error::custom("six cannot travel"))
            } else {
                serializer.serialize_u32(self.0)
            }
        }
    }
    impl<'de> serde::Deserialize<'de> for Awkward {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u32::deserialize(d)? {
                9 => Err(serde::de::Error::custom("nine cannot arrive")),
                14 => std::process::abort(),
                x => Ok(Awkward(x)),
            }
        }
    }
    without_leaks(|| {
        let pool = pool(BackendKind::Processes, 2)
            .chunk_size(4)
            .build()
            .unwrap();
        let results: Vec<Result<u32, Error>> = pool
            .imap(|x: Awkward| x.0, (0..20).map(Awkward))
            .unwrap()
            .collect();
        let message = |index: usize| results[index].as_ref().unwrap_err().to_string();
        // (postcard keeps no custom message, only that serialization failed)
        for index in 4..8 {
            assert!(
                message(index).starts_with(&format!("task {index}: input could not be encoded")),
                "{}",
                message(index)
            );
        }
        for index in 8..12 {
            assert!(
                message(index).starts_with(&format!("task {index}: input could not be decoded")),
                "{}",
                message(index)
            );
        }
        for index in 12..16 {
            assert_eq!(
                message(index),
                format!(
                    "task {index} crashed: worker killed by signal 6 (SIGABRT) before \
                     starting the chunk, 3 times over"
                )
            );
        }
        for index in (0..4).chain(16..20) {
            assert_eq!(results[index].as_ref().ok(), Some(&(index as u32)));
        }
    });
}

// --- memory and progress: scenarios run in a fresh process ----------------

/// Re-runs this test binary to run one scenario in a fresh process and
/// returns its output.
fn run_scenario(name: &str, backend: &str) -> std::process::Output {
    let _one = one_at_a_time();
    scenario_command(name)
        .env("PARPOOL_BACKEND", backend)
        .env("PARPOOL_WORKERS", "2")
        .output()
        .unwrap()
}

/// The peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

/// Bytes streamed by the memory scenario: 1 GiB in 64 KiB items.
const STREAMED_BYTES: u64 = 1 << 30;
const ITEM_BYTES: usize = 64 << 10;

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    match std::env::var("PARPOOL_SCENARIO").as_deref() {
        Ok("memory") => {
            // Stream 1 GiB of generated 64 KiB blocks; each task returns
            // its block's checksum and the peak memory of the process it
            // ran in.
            let pool = Pool::builder().chunk_size(4).build().unwrap();
            // Every byte is written, so a block that was kept would count
            // in the resident memory.
            let blocks = (0..STREAMED_BYTES / ITEM_BYTES as u64).map(|block| {
                let mut bytes = vec![0xa5u8; ITEM_BYTES];
                bytes[..8].copy_from_slice(&block.to_le_bytes());
                serde_bytes::ByteBuf::from(bytes)
            });
            let mut checksum = 0u64;
            let mut worker_peak = 0u64;
            for result in pool
                .imap(
                    |block: serde_bytes::ByteBuf| {
                        let sum = block[..8].iter().map(|&b| u64::from(b)).sum::<u64>()
                            + u64::from(block[ITEM_BYTES - 1])
                            + block.len() as u64;
                        (sum, peak_rss())
                    },
                    blocks,
                )
                .unwrap()
            {
                let (sum, peak) = result.unwrap();
                checksum += sum;
                worker_peak = worker_peak.max(peak);
            }
            let expected: u64 = (0..STREAMED_BYTES / ITEM_BYTES as u64)
                .map(|block| {
                    block
                        .to_le_bytes()
                        .iter()
                        .map(|&b| u64::from(b))
                        .sum::<u64>()
                        + 0xa5
                        + ITEM_BYTES as u64
                })
                .sum();
            assert_eq!(checksum, expected);
            println!(
                "streamed {} bytes, parent peak {} bytes, worker peak {} bytes",
                STREAMED_BYTES,
                peak_rss(),
                worker_peak
            );
        }
        #[cfg(feature = "progress")]
        Ok("progress") => {
            let pool = Pool::builder()
                .chunk_size(10)
                .force_progress(true)
                .build()
                .unwrap();
            let squares = pool.map(|x: u64| x * x, 0..1000u64).unwrap();
            assert_eq!(squares.len(), 1000);
            let total = pool
                .map_reduce(|x: u64| x, 0..700u64, 0, |a, b| a + b)
                .unwrap();
            assert_eq!(total, 244_650);
            let sum: u64 = pool
                .imap(|x: u64| x, (0..500u64).filter(|x| x % 2 == 0))
                .unwrap()
                .map(Result::unwrap)
                .sum();
            println!("sum {sum}");
        }
        _ => {}
    }
}

/// "streamed N bytes, parent peak P bytes, worker peak W bytes".
fn parse_memory_line(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|line| line.contains("streamed "))
        .unwrap_or_else(|| panic!("no memory line in {stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn streaming_a_gigabyte_keeps_memory_flat() {
    for backend in ["serial", "threads", "processes"] {
        let output = run_scenario("memory", backend);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend}: {stdout}\n{stderr}");
        let (streamed, parent_peak, worker_peak) = parse_memory_line(&stdout);
        eprintln!(
            "{backend}: streamed {streamed} B, peak RSS parent {parent_peak} B, worker {worker_peak} B"
        );
        // In flight: 8 chunks of 4 blocks of 64 KiB = 2 MiB of items, plus
        // their encoded copies on the process backend. The test binary
        // itself takes a few MiB. 64 MiB is 1/16 of what was streamed.
        // Under AddressSanitizer (CI builds it with `--cfg parpool_asan`
        // and ASAN_OPTIONS=quarantine_size_mb=16), freed memory is held in
        // ASan's quarantine before reuse: add that much.
        let limit = if cfg!(parpool_asan) {
            80 << 20
        } else {
            64 << 20
        };
        assert!(
            parent_peak < limit,
            "{backend}: parent peak {parent_peak} B"
        );
        assert!(
            worker_peak < limit,
            "{backend}: worker peak {worker_peak} B"
        );
    }
}

#[cfg(feature = "progress")]
#[test]
fn progress_is_drawn_for_calls_and_streams_on_every_backend() {
    for backend in ["serial", "threads", "processes"] {
        let output = run_scenario("progress", backend);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend}: {stdout}\n{stderr}");
        assert!(stdout.contains("sum 62250"), "{backend}: {stdout}");
        // The final state of the map's bar, counted in the parent (on the
        // process backend from the chunks the workers sent back).
        assert!(stderr.contains("1000/1000 items"), "{backend}: {stderr}");
        assert!(stderr.contains("700/700 items"), "{backend}: {stderr}");
        // The stream's length is unknown (a filter): a count, no total.
        assert!(
            stderr.lines().any(|line| line.starts_with("250 items in")),
            "{backend}: {stderr}"
        );
    }
}
