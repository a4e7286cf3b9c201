//! The MPI backend under `mpiexec` with 1, 2 and 4 ranks.
//!
//! A test binary with its own `main` (`harness = false`): run by
//! `cargo test --features mpi`, it starts itself under `mpiexec -n 1`, `-n 2`
//! and `-n 4` (each under a time limit) and checks what the ranks report.
//! Each rank runs every scenario and prints `rank R/S ok <scenario>`.

mod common;

use parpool::{BackendKind, CancelToken, Pool};
use parpool_workloads::pi;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Set in the environment of the launched ranks.
const ROLE: &str = "PARPOOL_MPI_TEST_ROLE";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("rank") => rank_main(),
        Ok("crash") => crash_main(),
        _ => launcher_main(),
    }
}

/// Runs `mpiexec -n ranks <this binary>` with `role`, killing it after
/// `limit`; returns (exit success, stdout + stderr).
fn mpiexec(ranks: usize, role: &str, limit: Duration) -> (bool, String) {
    mpiexec_with(ranks, role, limit, &[])
}

/// [`mpiexec`] with extra environment variables for the ranks.
fn mpiexec_with(ranks: usize, role: &str, limit: Duration, env: &[(&str, &str)]) -> (bool, String) {
    let me = std::env::current_exe().expect("own path");
    let mut child = Command::new("mpiexec")
        .args(["-n", &ranks.to_string()])
        .arg(&me)
        .env(ROLE, role)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpiexec is installed (see the README)");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return (status.success(), text);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "mpiexec -n {ranks} ({role}) hung for {limit:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn launcher_main() {
    // Without mpiexec the program is a one-rank job.
    let me = std::env::current_exe().expect("own path");
    let output = Command::new(&me).env(ROLE, "rank").output().expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for scenario in SCENARIOS {
        assert!(text.contains(&format!("rank 0/1 ok {scenario}")), "{text}");
    }
    println!("without mpiexec: every scenario passed as a single rank");
    for ranks in [1, 2, 4] {
        let (success, output) = mpiexec(ranks, "rank", Duration::from_secs(120));
        assert!(success, "mpiexec -n {ranks} failed:\n{output}");
        for rank in 0..ranks {
            for scenario in SCENARIOS {
                let line = format!("rank {rank}/{ranks} ok {scenario}");
                assert!(output.contains(&line), "missing {line:?} in:\n{output}");
            }
        }
        println!("mpiexec -n {ranks}: every scenario passed on every rank");
    }
    // The cross-node counter (MPI one-sided atomics on rank 0), forced on
    // this one machine.
    let rma = [(parpool::backend::MPI_RMA_VARIABLE, "1")];
    for ranks in [2, 3] {
        let (success, output) = mpiexec_with(ranks, "rank", Duration::from_secs(120), &rma);
        assert!(success, "mpiexec -n {ranks} (one-sided) failed:\n{output}");
        for rank in 0..ranks {
            for scenario in SCENARIOS {
                let line = format!("rank {rank}/{ranks} ok {scenario}");
                assert!(output.contains(&line), "missing {line:?} in:\n{output}");
            }
        }
        println!("mpiexec -n {ranks} with one-sided atomics: every scenario passed on every rank");
    }
    // A rank that dies (abort) must not leave mpiexec hanging.
    let (success, output) = mpiexec(2, "crash", Duration::from_secs(60));
    assert!(!success, "a dead rank must make mpiexec fail:\n{output}");
    println!("mpiexec -n 2 with a rank that aborts: exited non-zero, no hang");
}

const SCENARIOS: &[&str] = &[
    "same-results-as-serial",
    "bit-identical-float-sum",
    "panic-on-one-rank-is-everyones-error",
    "try-map-keeps-going",
    "64-mb-results",
    "second-pool-reuses-mpi",
    "pi-matches-serial",
    "imap-and-sessions",
    "threads-inside-each-rank",
    "uneven-tasks-are-balanced-across-ranks",
    "a-failing-rank-stops-every-rank",
    "a-cancel-on-one-rank-is-everyones-error",
    "streams-overlap-and-stay-bounded",
    "streams-dropped-early-and-failed-sessions-go-on",
];

fn rank_main() {
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .build()
        .expect("MPI starts");
    let (rank, size) = (pool.rank(), pool.ranks());
    let ok = |scenario: &str| println!("rank {rank}/{size} ok {scenario}");
    let serial = Pool::builder().kind(BackendKind::Serial).build().unwrap();
    assert_eq!(pool.kind(), BackendKind::Mpi);

    let squares = pool.map(|x: u64| x * x, 0..1000u64).unwrap();
    assert_eq!(squares, serial.map(|x: u64| x * x, 0..1000u64).unwrap());
    assert_eq!(pool.map(|x: u8| x, Vec::new()).unwrap(), Vec::<u8>::new());
    ok("same-results-as-serial");

    let values: Vec<f64> = (0..50_000)
        .map(|i| (f64::from(i) * 0.37).sin() * 1e8)
        .collect();
    let term = |x: f64| x * x.cos();
    let sum = pool
        .map_reduce(term, values.clone(), 0.0, |a, b| a + b)
        .unwrap();
    let reference = serial.map_reduce(term, values, 0.0, |a, b| a + b).unwrap();
    assert_eq!(sum.to_bits(), reference.to_bits());
    ok("bit-identical-float-sum");

    // Item 7 runs on rank 7 % size only (one item per chunk).
    let one_item_chunks = Pool::builder()
        .kind(BackendKind::Mpi)
        .chunk_size(1)
        .build()
        .unwrap();
    let error = one_item_chunks
        .map(
            |x: u32| {
                assert!(x != 7, "seven fails");
                x
            },
            0..20,
        )
        .unwrap_err();
    assert_eq!(
        common::without_location(&error),
        "task 7 of 20 panicked: seven fails"
    );
    // Every rank learns where the task panicked, whichever rank ran it.
    let location = error.panic_location().expect("a panic location");
    assert!(location.starts_with("tests/mpi.rs:"), "{location}");
    ok("panic-on-one-rank-is-everyones-error");

    let results = one_item_chunks.map_results(
        |x: u32| {
            assert!(x % 5 != 2, "bad {x}");
            x * 2
        },
        0..20,
    );
    for (index, result) in results.iter().enumerate() {
        if index % 5 == 2 {
            assert_eq!(result.as_ref().unwrap_err().task_index(), Some(index));
        } else {
            assert_eq!(result.as_ref().ok(), Some(&(index as u32 * 2)));
        }
    }
    ok("try-map-keeps-going");

    // One 64 MB result per rank's chunk.
    let big = one_item_chunks
        .map(|x: usize| vec![x as u8; 64 << 20], 0..size)
        .unwrap();
    assert!(
        big.iter()
            .enumerate()
            .all(|(i, v)| v.len() == 64 << 20 && v.iter().all(|&b| b == i as u8))
    );
    ok("64-mb-results");

    let again = Pool::builder().kind(BackendKind::Mpi).build().unwrap();
    assert_eq!(again.map(|x: i32| -x, [1, 2, 3]).unwrap(), [-1, -2, -3]);
    ok("second-pool-reuses-mpi");

    let estimate = pi::estimate(&pool, 8, 200_000, 5).unwrap();
    assert_eq!(estimate, pi::estimate(&serial, 8, 200_000, 5).unwrap());
    ok("pi-matches-serial");

    // Every rank reads the same input and gets every result, in order; a
    // panic is an item of the stream on every rank.
    let stream: Vec<Result<u64, parpool::Error>> = one_item_chunks
        .imap(
            |x: u64| {
                assert!(x != 9, "nine");
                x + 1
            },
            0..40u64,
        )
        .unwrap()
        .collect();
    for (index, result) in stream.iter().enumerate() {
        if index == 9 {
            assert_eq!(
                common::without_location(result.as_ref().unwrap_err()),
                "task 9 panicked: nine"
            );
        } else {
            assert_eq!(result.as_ref().ok(), Some(&(index as u64 + 1)));
        }
    }
    let mut session = pool.session(|x: u32| x * 3).unwrap();
    assert_eq!(session.map(0..5).unwrap(), [0, 3, 6, 9, 12]);
    assert_eq!(session.map(5..7).unwrap(), [15, 18]);
    let inits = pool
        .map_init(|| 1u32, |state: &mut u32, x: u32| x + *state, 0..100)
        .unwrap();
    assert_eq!(inits, (1..101).collect::<Vec<u32>>());
    ok("imap-and-sessions");

    cluster_scale(rank, size, &ok);
}

/// The scenarios of issue 14: threads in ranks, run-time balance, fail
/// fast across ranks, streams without barriers.
fn cluster_scale(rank: usize, size: usize, ok: &dyn Fn(&str)) {
    // Threads inside each rank: workers(2) is two threads per rank, and
    // the default is this rank's cpus::available().
    let default = Pool::builder().kind(BackendKind::Mpi).build().unwrap();
    assert_eq!(default.workers(), parpool::cpus::available().count());
    let two = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    assert_eq!((two.workers(), two.ranks()), (2, size));
    let threads = two
        .map(
            |_: u32| {
                std::thread::sleep(Duration::from_millis(20));
                (rank, std::thread::current().name().map(str::to_owned))
            },
            0..(8 * size as u32),
        )
        .unwrap();
    let mine: BTreeSet<_> = threads.iter().filter(|(r, _)| *r == rank).collect();
    assert_eq!(
        mine.len(),
        2,
        "two threads ran this rank's chunks: {mine:?}"
    );
    ok("threads-inside-each-rank");

    // Uneven tasks: even ones slow. Claimed at run time, the slow ones
    // spread over the ranks instead of all landing on rank 0.
    let one = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(1)
        .chunk_size(1)
        .build()
        .unwrap();
    let ran_on = one
        .map(
            |task: u32| {
                let cost = if task.is_multiple_of(2) { 60 } else { 1 };
                std::thread::sleep(Duration::from_millis(cost));
                rank
            },
            0..(12 * size as u32),
        )
        .unwrap();
    for r in 0..size {
        let slow = (0..ran_on.len())
            .filter(|&t| t % 2 == 0 && ran_on[t] == r)
            .count();
        // 6 slow tasks per rank is ideal; a static split gives all of
        // them to the even ranks.
        assert!(
            (3..=9).contains(&slow),
            "rank {r} ran {slow} slow tasks: {ran_on:?}"
        );
    }
    ok("uneven-tasks-are-balanced-across-ranks");

    // Every task that runs on the last rank panics. Without a cross-rank
    // stop, the others would run 400 tasks of 20 ms (8 s on one rank).
    let failing = size - 1;
    let started_here = AtomicUsize::new(0);
    let error = one
        .map(
            |task: u32| {
                started_here.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
                assert!(rank != failing, "task {task} fails");
                task
            },
            0..400,
        )
        .unwrap_err();
    assert!(error.task_index().is_some(), "{error}");
    assert!(
        common::without_location(&error).contains("fails"),
        "{error}"
    );
    let started_here = started_here.load(Ordering::Relaxed);
    if size > 1 {
        assert!(
            started_here < 100,
            "rank {rank} started {started_here} tasks"
        );
    }
    // Every rank returns the same error.
    let same = one
        .map(|_: u8| common::without_location(&error), 0..size as u8)
        .unwrap();
    assert!(same.iter().all(|text| *text == same[0]), "{same:?}");
    ok("a-failing-rank-stops-every-rank");

    // A cancel on rank 0 only: every rank's call ends cancelled.
    let token = CancelToken::new();
    let cancelling = one.with_cancel(&token);
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            if rank == 0 {
                std::thread::sleep(Duration::from_millis(100));
                token.cancel();
            }
        })
    };
    let error = cancelling
        .map(
            |x: u32| {
                std::thread::sleep(Duration::from_millis(20));
                x
            },
            0..400,
        )
        .unwrap_err();
    canceller.join().unwrap();
    assert!(error.is_cancelled(), "{error}");
    ok("a-cancel-on-one-rank-is-everyones-error");

    // Streams: chunks of every rank overlap (no batch barrier), the
    // input is pulled lazily, and every rank sees every result in order.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counted = {
        let pulled = pulled.clone();
        (0..200u32).inspect(move |_| {
            pulled.fetch_add(1, Ordering::Relaxed);
        })
    };
    let bounded = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(1)
        .chunk_size(1)
        .in_flight(4)
        .build()
        .unwrap();
    let mut stream = bounded
        .imap(
            move |x: u32| {
                std::thread::sleep(Duration::from_millis(if x.is_multiple_of(2) {
                    10
                } else {
                    1
                }));
                (x, rank)
            },
            counted,
        )
        .unwrap();
    let mut runners = BTreeSet::new();
    for expected in 0..200u32 {
        let (x, ran_on) = stream.next().unwrap().unwrap();
        assert_eq!(x, expected);
        runners.insert(ran_on);
        // At most in_flight chunks of 1 ahead, plus the one handed out.
        assert!(pulled.load(Ordering::Relaxed) <= expected as usize + 6);
    }
    assert!(stream.next().is_none());
    drop(stream);
    assert_eq!(runners.len(), size, "every rank ran chunks: {runners:?}");
    ok("streams-overlap-and-stay-bounded");

    // Every rank stops reading a stream early; a session call fails fast;
    // the pool and the session go on working afterwards.
    let mut stream = one.imap(|x: u32| x * 2, 0..1000).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), 0);
    assert_eq!(stream.next().unwrap().unwrap(), 2);
    drop(stream);
    let unordered: BTreeSet<u32> = one
        .imap_unordered(|x: u32| x + 1, 0..50)
        .unwrap()
        .map(|(_, result)| result.unwrap())
        .collect();
    assert_eq!(unordered, (1..51).collect());
    let mut session = one
        .session(|x: u32| {
            assert!(x != 13, "thirteen");
            x
        })
        .unwrap();
    let error = session.map(0..100).unwrap_err();
    assert_eq!(error.task_index(), Some(13));
    assert_eq!(session.map(20..30).unwrap(), (20..30).collect::<Vec<_>>());
    drop(session);
    assert_eq!(
        one.map(|x: u32| x, 0..10).unwrap(),
        (0..10).collect::<Vec<_>>()
    );
    ok("streams-dropped-early-and-failed-sessions-go-on");
}

/// Rank 1 aborts inside a task; rank 0 would wait in the agreement step.
fn crash_main() {
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .chunk_size(1)
        .build()
        .unwrap();
    let _ = pool.map(
        |x: u32| {
            if x == 1 {
                std::process::abort();
            }
            x
        },
        0..4,
    );
    println!("rank {} finished; it should have been stopped", pool.rank());
}
