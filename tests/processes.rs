//! Failure behaviour of the process backend, tested for real: tasks that
//! abort, segfault, exit, get SIGKILLed from inside and from outside, sleep
//! past their timeout; retries; large and many results; results that fail
//! to encode or decode; output from children; and, after every case, no
//! leaked file descriptors or child processes.
// Worker processes need fork: these run on every Unix; on Windows,
// tests/config.rs checks that asking for them is a clear error.
#![cfg(unix)]

mod common;

use common::{SharedCounters, processes, scenario_command};
use parpool::{BackendKind, Pool};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests here count this process's descriptors and children, so they run
/// one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `case` and checks it left no descriptors, children or shared
/// mappings behind.
fn without_leaks(case: impl FnOnce()) {
    common::alone_without_leaks(&ONE_AT_A_TIME, case);
}

fn crash_at_item_5(how: fn()) -> Result<Vec<u32>, parpool::Error> {
    let pool = processes(2).build().unwrap();
    pool.map(
        move |x: u32| {
            if x == 5 {
                how();
            }
            x
        },
        0..10,
    )
}

#[test]
fn abort_is_a_crash_naming_the_item_and_sigabrt() {
    without_leaks(|| {
        let error = crash_at_item_5(|| std::process::abort()).unwrap_err();
        assert!(error.is_crash(), "{error}");
        assert_eq!(error.task_index(), Some(5));
        assert_eq!(
            error.to_string(),
            "task 5 of 10 crashed: worker killed by signal 6 (SIGABRT)"
        );
    });
}

#[test]
fn a_segfault_is_a_crash_naming_sigsegv() {
    without_leaks(|| {
        let error = crash_at_item_5(|| {
            // SAFETY: not safe at all: this deliberately writes through a
            // null pointer to make the worker process segfault.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
        })
        .unwrap_err();
        assert_eq!(error.task_index(), Some(5));
        assert!(
            error.to_string().ends_with("killed by signal 11 (SIGSEGV)"),
            "{error}"
        );
    });
}

#[test]
fn sigkill_from_inside_and_an_unexpected_exit_are_crashes() {
    without_leaks(|| {
        let error = crash_at_item_5(|| {
            // SAFETY: kill has no memory effects; it ends this worker.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        })
        .unwrap_err();
        assert!(
            error.to_string().ends_with("killed by signal 9 (SIGKILL)"),
            "{error}"
        );
        let error = crash_at_item_5(|| std::process::exit(3)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "task 5 of 10 crashed: worker exited with status 3"
        );
    });
}

#[test]
fn a_worker_killed_from_outside_is_reported_and_the_pool_survives() {
    without_leaks(|| {
        let pids = SharedCounters::new(1);
        let pool = processes(2).build().unwrap();
        let killer = std::thread::scope(|scope| {
            let killer = scope.spawn(|| {
                // Wait until the task has published its worker's pid.
                let deadline = Instant::now() + Duration::from_secs(20);
                while pids.value(0) == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let pid = pids.value(0) as libc::pid_t;
                // SAFETY: kill has no memory effects; pid is our worker.
                unsafe { libc::kill(pid, libc::SIGKILL) }
            });
            let result = pool.map(
                |x: u32| {
                    if x == 7 {
                        // SAFETY: getpid has no preconditions.
                        let pid = unsafe { libc::getpid() };
                        pids.get(0)
                            .store(pid as usize, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_secs(60));
                    }
                    x
                },
                0..20,
            );
            (killer.join().unwrap(), result)
        });
        let (kill_status, result) = killer;
        assert_eq!(kill_status, 0, "the worker was there to kill");
        let error = result.unwrap_err();
        assert_eq!(error.task_index(), Some(7));
        assert!(
            error.to_string().ends_with("killed by signal 9 (SIGKILL)"),
            "{error}"
        );
        assert_eq!(pool.map(|x: u32| x * 2, 0..4).unwrap(), [0, 2, 4, 6]);
    });
}

#[test]
fn a_task_past_its_timeout_is_killed_and_reported() {
    without_leaks(|| {
        let pool = processes(2)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let error = pool
            .map(
                |x: u32| {
                    if x == 3 {
                        std::thread::sleep(Duration::from_secs(60));
                    }
                    x
                },
                0..8,
            )
            .unwrap_err();
        assert!(error.is_timeout(), "{error}");
        assert_eq!(error.task_index(), Some(3));
        assert!(
            error.to_string().starts_with("task 3 of 8 timed out"),
            "{error}"
        );
        // A timeout error exists only once the parent has killed the
        // worker (the message says so), so the minute-long sleep was cut.
        assert!(error.to_string().ends_with("worker killed"), "{error}");
        // Fast tasks are unaffected by the limit.
        assert_eq!(pool.map(|x: u32| x + 1, 0..100).unwrap().len(), 100);
    });
}

#[test]
fn retries_rerun_a_crashed_task_on_a_fresh_worker() {
    without_leaks(|| {
        let attempts = SharedCounters::new(10);
        let pool = processes(2).retries(2).build().unwrap();
        let flaky = |x: usize| {
            attempts.add(x);
            // Item 4 dies on its first two attempts, succeeds on the third.
            if x == 4 && attempts.value(x) <= 2 {
                std::process::abort();
            }
            x * 10
        };
        assert_eq!(
            pool.map(flaky, 0..10).unwrap(),
            (0..10).map(|x| x * 10).collect::<Vec<_>>()
        );
        assert_eq!(attempts.value(4), 3);

        // With one retry too few, the crash is reported.
        let attempts = SharedCounters::new(10);
        let pool = processes(2).retries(1).build().unwrap();
        let error = pool
            .map(
                |x: usize| {
                    attempts.add(x);
                    if x == 4 && attempts.value(x) <= 2 {
                        std::process::abort();
                    }
                    x
                },
                0..10,
            )
            .unwrap_err();
        assert_eq!(error.task_index(), Some(4));
        assert_eq!(attempts.value(4), 2);
    });
}

/// One retry policy serves every driver: a plain `map` and `map_results`, a
/// session's `map_results` and a stream. Item 4 aborts its worker on its first
/// two attempts.
#[test]
fn plain_calls_sessions_and_streams_share_one_retry_policy() {
    without_leaks(|| {
        for retries in [1u32, 2] {
            for driver in ["map", "map_results", "session", "imap"] {
                let attempts = Arc::new(SharedCounters::new(10));
                let counted = attempts.clone();
                let flaky = move |x: usize| {
                    counted.add(x);
                    if x == 4 && counted.value(x) <= 2 {
                        std::process::abort();
                    }
                    x * 10
                };
                let pool = processes(2).retries(retries).chunk_size(2).build().unwrap();
                let results: Vec<Result<usize, parpool::Error>> = match driver {
                    "map" => match pool.map(flaky, 0..10) {
                        Ok(values) => values.into_iter().map(Ok).collect(),
                        Err(error) => vec![Err(error)],
                    },
                    "map_results" => pool.map_results(flaky, 0..10),
                    "session" => pool.session(flaky).unwrap().map_results(0..10),
                    _ => pool.imap(flaky, 0..10).unwrap().collect(),
                };
                let context = format!("{driver} with {retries} retries");
                if retries == 2 {
                    assert_eq!(attempts.value(4), 3, "{context}");
                    let values: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
                    assert_eq!(
                        values,
                        (0..10).map(|x| x * 10).collect::<Vec<_>>(),
                        "{context}"
                    );
                } else {
                    assert_eq!(attempts.value(4), 2, "{context}");
                    let failure = results
                        .iter()
                        .find_map(|result| result.as_ref().err())
                        .unwrap_or_else(|| panic!("{context}: no failure"));
                    assert!(failure.is_crash(), "{context}: {failure}");
                    assert_eq!(failure.task_index(), Some(4), "{context}: {failure}");
                    let failed = results.iter().filter(|result| result.is_err()).count();
                    assert_eq!(failed, 1, "{context}: only item 4 fails");
                }
            }
        }
    });
}

#[test]
fn panics_are_not_retried() {
    without_leaks(|| {
        let attempts = SharedCounters::new(1);
        let pool = processes(2).retries(3).build().unwrap();
        let error = pool
            .map(
                |x: u32| {
                    if x == 2 {
                        attempts.add(0);
                        panic!("deterministic bug");
                    }
                },
                0..5,
            )
            .unwrap_err();
        assert_eq!(
            common::without_location(&error),
            "task 2 of 5 panicked: deterministic bug"
        );
        assert_eq!(attempts.value(0), 1);
    });
}

#[test]
fn map_results_returns_every_result_around_crashes_and_timeouts() {
    without_leaks(|| {
        let pool = processes(2)
            .chunk_size(4)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let results = pool.map_results(
            |x: u32| {
                match x {
                    5 => std::process::abort(),
                    6 => std::thread::sleep(Duration::from_secs(60)),
                    9 => panic!("nine"),
                    _ => {}
                }
                x * 3
            },
            0..12,
        );
        assert_eq!(results.len(), 12);
        for (index, result) in results.iter().enumerate() {
            match index {
                5 => assert!(result.as_ref().unwrap_err().is_crash(), "{result:?}"),
                6 => assert!(result.as_ref().unwrap_err().is_timeout(), "{result:?}"),
                9 => assert!(result.as_ref().unwrap_err().is_panic(), "{result:?}"),
                _ => assert_eq!(result.as_ref().ok(), Some(&(index as u32 * 3))),
            }
            if let Err(error) = result {
                assert_eq!(error.task_index(), Some(index));
            }
        }
    });
}

#[test]
fn map_reduce_reports_a_crash() {
    without_leaks(|| {
        let pool = processes(2).build().unwrap();
        let error = pool
            .map_reduce(
                |x: u64| {
                    if x == 77 {
                        std::process::abort();
                    }
                    x
                },
                0..100,
                0,
                |a, b| a + b,
            )
            .unwrap_err();
        assert_eq!(error.task_index(), Some(77));
        assert!(error.is_crash());
    });
}

#[test]
fn a_100_mb_result_and_a_million_small_ones_arrive_intact() {
    without_leaks(|| {
        let pool = processes(2).build().unwrap();
        let big = pool
            .map(
                |x: u8| {
                    if x == 1 {
                        (0..100_000_000u32)
                            .map(|i| (i % 251) as u8)
                            .collect::<Vec<u8>>()
                    } else {
                        vec![x]
                    }
                },
                0..3u8,
            )
            .unwrap();
        assert_eq!(big[0], [0]);
        assert_eq!(big[2], [2]);
        assert_eq!(big[1].len(), 100_000_000);
        assert!(
            big[1]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8)
        );

        let many = pool.map(|x: u64| x * x, 0..1_000_000u64).unwrap();
        assert!(
            many.iter()
                .enumerate()
                .all(|(i, &y)| y == (i as u64) * (i as u64))
        );
    });
}

/// Serializes as a number unless it is 13; deserializes anything but 99.
#[derive(Debug, PartialEq)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("13 is unlucky"));
        }
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Picky, D::Error> {
        match u32::deserialize(deserializer)? {
            99 => Err(serde::de::Error::custom("99 is refused")),
            value => Ok(Picky(value)),
        }
    }
}

#[test]
fn results_that_fail_to_encode_or_decode_are_errors() {
    without_leaks(|| {
        let pool = processes(2).chunk_size(1).build().unwrap();
        let error = pool.map(Picky, 0..20).unwrap_err();
        assert_eq!(error.task_index(), Some(13));
        // postcard reports a custom serializer error without its text.
        assert!(
            error
                .to_string()
                .starts_with("task 13 of 20: result could not be encoded"),
            "{error}"
        );
        let error = pool.map(Picky, 90..100).unwrap_err();
        assert_eq!(error.task_index(), Some(9));
        assert!(
            error.to_string().contains("could not be decoded"),
            "{error}"
        );
        let results = pool.map_results(Picky, 10..16);
        assert_eq!(results[0].as_ref().ok(), Some(&Picky(10)));
        assert!(results[3].is_err());
        assert_eq!(results[5].as_ref().ok(), Some(&Picky(15)));
    });
}

#[test]
fn nested_pools_inside_a_worker_run_serially() {
    without_leaks(|| {
        let pool = processes(2).build().unwrap();
        let inner = Pool::builder()
            .kind(BackendKind::Threads)
            .workers(4)
            .build()
            .unwrap();
        let sums = pool
            .map(
                |x: u64| {
                    inner
                        .map_reduce(|y: u64| x * y, 0..100, 0, |a, b| a + b)
                        .unwrap()
                },
                0..8,
            )
            .unwrap();
        assert_eq!(sums, (0..8).map(|x| x * 4950).collect::<Vec<u64>>());
    });
}

/// Re-runs this test binary to run one scenario in a fresh process and
/// returns its output (the pattern of rayon's crash tests).
fn run_scenario(name: &str) -> std::process::Output {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    scenario_command(name).output().unwrap()
}

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    match std::env::var("PARPOOL_SCENARIO").as_deref() {
        Ok("print") => {
            print!("before the map; ");
            let pool = processes(2).chunk_size(1).build().unwrap();
            pool.map(
                |x: u32| {
                    print!("task {x} ");
                    println!("done");
                    // One write per line: stderr is unbuffered, and
                    // `eprintln!` may split a line into several writes that
                    // interleave between processes.
                    use std::io::Write;
                    let line = format!("stderr {x}\n");
                    std::io::stderr().write_all(line.as_bytes()).unwrap();
                },
                0..6,
            )
            .unwrap();
            println!("after the map");
        }
        Ok("orphan") => {
            // Print the worker pids, then sleep in the tasks until killed.
            let pool = processes(2).build().unwrap();
            let _ = pool.map(
                |_: u32| {
                    // SAFETY: getpid has no preconditions.
                    println!("worker {}", unsafe { libc::getpid() });
                    std::thread::sleep(Duration::from_secs(120));
                },
                0..2,
            );
        }
        _ => {}
    }
}

#[test]
fn child_output_is_neither_lost_nor_duplicated() {
    let output = run_scenario("print");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("before the map").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("after the map").count(), 1, "{stdout}");
    for x in 0..6 {
        assert_eq!(
            stdout.matches(&format!("task {x} done")).count(),
            1,
            "{stdout}"
        );
        assert_eq!(
            stderr.matches(&format!("stderr {x}\n")).count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn workers_die_with_their_parent() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = scenario_command("orphan")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = parent.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 256];
    while seen.matches("worker ").count() < 2 && Instant::now() < deadline {
        use std::io::Read;
        let n = stdout.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let pids: Vec<i32> = seen
        .split("worker ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{seen}");
    parent.kill().unwrap();
    parent.wait().unwrap();
    for pid in pids {
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: signal 0 only checks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The orphaned worker was reparented and reaped by init, or is a
        // zombie of the dead parent's reaper at most: it must not run on.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        assert!(!running, "worker {pid} outlived its parent: {state}");
    }
}

#[test]
fn timeouts_are_rejected_where_they_cannot_work() {
    for kind in [BackendKind::Serial, BackendKind::Threads] {
        let error = Pool::builder()
            .kind(kind)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(error.is_invalid_config());
        assert!(
            error.to_string().contains("need the processes backend"),
            "{error}"
        );
    }
    let error = processes(1).timeout(Duration::ZERO).build().unwrap_err();
    assert!(error.is_invalid_config());
}

/// Arrays of bytes and floats take a faster codec path; what comes back
/// must be bit-identical to what the task made, NaN payloads, signed
/// zeros and empty arrays included, through plain calls, `map_results`, a
/// stream and a session.
#[test]
fn arrays_of_bytes_and_floats_come_back_bit_identical() {
    without_leaks(|| {
        let pool = common::processes(2).build().unwrap();
        let odd_floats = |i: u64| -> Vec<f64> {
            let mut values: Vec<f64> = (0..(i * 1000) as usize)
                .map(|k| (k as f64 * 0.1).sin() * 1e300)
                .collect();
            values.extend([
                f64::from_bits(0x7ff8_0000_dead_beef),
                -0.0,
                f64::INFINITY,
                f64::MIN_POSITIVE / 3.0,
            ]);
            values
        };
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        let expected: Vec<Vec<u64>> = (0..6).map(|i| bits(&odd_floats(i))).collect();
        let floats = pool.map(odd_floats, 0..6u64).unwrap();
        assert_eq!(floats.iter().map(|v| bits(v)).collect::<Vec<_>>(), expected);

        let bytes = pool
            .map(
                |i: u8| {
                    (0..=255u8)
                        .cycle()
                        .skip(i as usize)
                        .take(i as usize * 3000)
                        .collect::<Vec<u8>>()
                },
                0..5u8,
            )
            .unwrap();
        for (i, value) in bytes.iter().enumerate() {
            assert_eq!(value.len(), i * 3000);
            assert!(
                value
                    .iter()
                    .enumerate()
                    .all(|(k, &b)| b == ((k + i) % 256) as u8)
            );
        }
        let singles = pool
            .map(|i: u32| vec![i as f32 / 3.0; 10], 0..4u32)
            .unwrap();
        assert_eq!(singles[3][9].to_bits(), (3.0f32 / 3.0).to_bits());
        let signed = pool.map(|i: i8| vec![-i; 7], 0..4i8).unwrap();
        assert_eq!(signed[3], vec![-3i8; 7]);

        let tried = pool.map_results(odd_floats, 0..6u64);
        for (result, expected) in tried.iter().zip(&expected) {
            assert_eq!(&bits(result.as_ref().unwrap()), expected);
        }
        let streamed: Vec<Vec<u64>> = pool
            .imap(odd_floats, 0..6u64)
            .unwrap()
            .map(|result| bits(&result.unwrap()))
            .collect();
        assert_eq!(streamed, expected);
        let mut session = pool.session(odd_floats).unwrap();
        let from_session = session.map(0..6u64).unwrap();
        assert_eq!(
            from_session.iter().map(|v| bits(v)).collect::<Vec<_>>(),
            expected
        );
    });
}

/// Large arrays travel from where they lie in the worker (64 KiB and up)
/// and are read into buffers the parent reuses from frame to frame (1 MiB
/// and up): a reused buffer must never leak bytes of an earlier result,
/// whatever the sizes around those thresholds and however many arrays a
/// chunk holds.
#[test]
fn large_arrays_come_back_intact_through_reused_buffers() {
    without_leaks(|| {
        let lengths = [8191usize, 8192, 400_000, 1, 0, 131_073, 300_000, 8];
        let array = move |i: usize| -> Vec<f64> {
            (0..lengths[i % lengths.len()])
                .map(|k| (i * 1_000_003 + k) as f64 + 0.25)
                .collect()
        };
        let check = |arrays: &[Vec<f64>], first: usize| {
            for (offset, values) in arrays.iter().enumerate() {
                assert_eq!(values, &array(first + offset), "item {}", first + offset);
            }
        };
        for chunk_size in [1, 3] {
            let pool = common::processes(2).chunk_size(chunk_size).build().unwrap();
            check(&pool.map(array, 0..24).unwrap(), 0);
            let mut session = pool.session(array).unwrap();
            for call in 0..3 {
                check(&session.map(call * 24..(call + 1) * 24).unwrap(), call * 24);
            }
        }
        let bytes = common::processes(2)
            .chunk_size(1)
            .build()
            .unwrap()
            .map(|i: u8| vec![i; (3 - i as usize % 3) << 20], 0..9u8)
            .unwrap();
        for (i, block) in bytes.iter().enumerate() {
            assert_eq!(block.len(), (3 - i % 3) << 20);
            assert!(block.iter().all(|&b| b == i as u8), "item {i}");
        }
    });
}
