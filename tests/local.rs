//! `Pool::local()`: a pool in this process with no serde bounds, borrowed
//! items and closures that borrow local data.

mod common;

use common::{output_within, scenario_command};
use parpool::{BackendKind, CancelToken, Error, LocalPool, Pool};
use std::collections::HashMap;
use std::num::ParseIntError;
use std::time::Duration;

/// A result type with no serde at all.
#[derive(Debug, Clone, PartialEq)]
struct NotSerde {
    value: u64,
}

fn local(kind: BackendKind, workers: usize) -> LocalPool {
    Pool::builder()
        .kind(kind)
        .workers(workers)
        .chunk_size(3)
        .build_local()
        .unwrap()
}

fn local_kinds() -> [BackendKind; 2] {
    [BackendKind::Serial, BackendKind::Threads]
}

#[test]
fn results_need_no_serde_and_items_and_closures_may_borrow() {
    let ages: HashMap<&str, u32> = [("ada", 36), ("alan", 41)].into_iter().collect();
    let names = vec!["ada", "alan", "grace"];
    for kind in local_kinds() {
        let pool = local(kind, 2);
        // Items are references, the closure borrows `ages`, results are
        // Option<&u32> (no serde, borrowed).
        let found: Vec<Option<&u32>> = pool.map(|name: &&str| ages.get(name), &names).unwrap();
        assert_eq!(found, [Some(&36), Some(&41), None], "{kind}");

        let files = ["Cargo.toml", "no such file"];
        let read: Vec<std::io::Result<Vec<u8>>> = pool.map(std::fs::read, files).unwrap();
        assert!(read[0].is_ok() && read[1].is_err(), "{kind}");

        let parsed: Vec<Result<Result<u32, ParseIntError>, Error>> =
            pool.map_results(|text: &str| text.parse::<u32>(), ["1", "x", "3"]);
        assert_eq!(parsed[0].as_ref().unwrap().as_ref().ok(), Some(&1));
        assert!(parsed[1].as_ref().unwrap().is_err());

        let squares: Vec<NotSerde> = pool
            .map_init(
                || NotSerde { value: 0 },
                |scratch: &mut NotSerde, x: u64| {
                    scratch.value = x * x;
                    scratch.clone()
                },
                0..10u64,
            )
            .unwrap();
        assert_eq!(squares[9], NotSerde { value: 81 }, "{kind}");
    }
}

#[test]
fn reductions_are_bit_identical_to_the_portable_pool() {
    let values: Vec<f64> = (0..5000).map(|i| 1.0 / (1.0 + f64::from(i))).collect();
    let serial = Pool::builder()
        .kind(BackendKind::Serial)
        .chunk_size(3)
        .build()
        .unwrap();
    let expected = serial
        .map_reduce(|x: &f64| x.sqrt(), &values, 0.0, |a, b| a + b)
        .unwrap();
    for kind in local_kinds() {
        for workers in [1, 2, 3] {
            let pool = local(kind, workers);
            let sum = pool
                .map_reduce(|x: &f64| x.sqrt(), &values, 0.0, |a, b| a + b)
                .unwrap();
            assert_eq!(
                sum.to_bits(),
                expected.to_bits(),
                "{kind}, {workers} workers"
            );
            // An accumulator without serde.
            let total = pool
                .map_reduce(
                    |x: &f64| NotSerde {
                        value: (*x * 1e6) as u64,
                    },
                    &values,
                    NotSerde { value: 0 },
                    |a, b| NotSerde {
                        value: a.value + b.value,
                    },
                )
                .unwrap();
            assert!(total.value > 0);
        }
    }
}

#[test]
fn streams_sessions_failures_and_cancellation_work_without_serde() {
    for kind in local_kinds() {
        let pool = local(kind, 2);
        let streamed: Vec<NotSerde> = pool
            .imap(|x: u64| NotSerde { value: x + 1 }, 0..50u64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(streamed[49], NotSerde { value: 50 }, "{kind}");
        let mut unordered: Vec<usize> = pool
            .imap_unordered(|x: u64| NotSerde { value: x }, 0..20u64)
            .unwrap()
            .map(|(index, result)| {
                assert_eq!(result.unwrap().value, index as u64);
                index
            })
            .collect();
        unordered.sort();
        assert_eq!(unordered, (0..20).collect::<Vec<_>>(), "{kind}");

        let mut session = pool.session(|x: u64| NotSerde { value: 2 * x }).unwrap();
        assert_eq!(session.map(0..4u64).unwrap()[3], NotSerde { value: 6 });

        let error = pool
            .map(|x: u32| if x == 4 { panic!("four") } else { x }, 0..9)
            .unwrap_err();
        assert_eq!(error.task_index(), Some(4));
        assert!(error.panic_location().is_some(), "{error}");

        let token = CancelToken::new();
        token.cancel();
        let watched = pool.with_cancel(&token);
        assert!(watched.map(|x: u32| x, 0..10).unwrap_err().is_cancelled());
        // The pool itself is fine.
        assert_eq!(pool.map(|x: u32| x + 1, [1]).unwrap(), [2]);
    }
}

#[test]
fn settings_that_leave_the_process_are_errors_but_the_environment_gives_threads() {
    {
        let error = Pool::builder()
            .kind(BackendKind::Processes)
            .build_local()
            .unwrap_err();
        assert!(error.is_invalid_config(), "{error}");
        let error = Pool::builder()
            .max_tasks_per_worker(3)
            .build_local()
            .unwrap_err();
        assert!(error.is_invalid_config(), "{error}");
    }
    for (backend, expected) in [
        ("processes", "threads"),
        ("mpi", "threads"),
        ("serial", "serial"),
    ] {
        let mut command = scenario_command("local_kind");
        command.env("PARPOOL_BACKEND", backend);
        let output = output_within(command, Duration::from_secs(60)).unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{backend}: {stdout}");
        assert!(
            stdout.contains(&format!("local kind: {expected}")),
            "{backend}: {stdout}"
        );
    }
}

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    if std::env::var("PARPOOL_SCENARIO").as_deref() == Ok("local_kind") {
        let pool = Pool::local();
        assert_eq!(pool.map(|x: u8| x, [7]).unwrap(), [7]);
        println!("local kind: {}", pool.kind());
    }
}
