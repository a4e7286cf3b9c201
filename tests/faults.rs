//! Process workers in real programs: rayon and stdout locks in the parent,
//! `Serialize`/`Deserialize` that fail or panic, a panicking `map_reduce`
//! op, a first call from a `Drop` during unwinding, a bad
//! `PARPOOL_WORKERS`, worker recycling and panic locations.
//!
//! Risky cases run in a re-executed child with a time limit, so a hang is
//! a failure, never a stuck run; the child checks its own descriptors,
//! children and threads before and after. The others count this process's.
// Worker processes need fork: these run on every Unix; on Windows,
// tests/config.rs checks that asking for them is a clear error.
#![cfg(unix)]

mod common;

use common::{
    SharedCounters, children, open_fds, output_within, processes, scenario_command, threads,
};
use parpool::{BackendKind, Error, Pool};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// Tests here count this process's descriptors and children, so they run
/// one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long a re-executed scenario may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `case` and checks it left no descriptors, children or shared
/// mappings behind.
fn without_leaks(case: impl FnOnce()) {
    common::alone_without_leaks(&ONE_AT_A_TIME, case);
}

/// Runs scenario `name` in a fresh copy of this test binary, within
/// [`LIMIT`]; returns its stdout. It must succeed.
fn scenario(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = scenario_command(name);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = output_within(command, LIMIT).unwrap_or_else(|hung| panic!("{name}: {hung}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("scenario {name} passed")),
        "{stdout}\n{stderr}"
    );
    stdout
}

/// In a scenario: runs `case` and checks it left no descriptors, children
/// or threads behind (threads may take a moment to exit).
fn scenario_without_leaks(case: impl FnOnce()) {
    // Its threads live as long as the process, by design.
    common::start_what_lives_with_the_process();
    let fds = open_fds();
    let kids = children();
    let thread_count = threads();
    case();
    assert_eq!(open_fds(), fds, "file descriptors leaked");
    assert_eq!(children(), kids, "child processes left behind");
    assert!(
        common::settles_to(thread_count, threads) <= thread_count,
        "threads left running"
    );
}

// --- hangs --------------------------------------------------------------------

#[test]
fn rayon_inside_a_forked_task_does_not_hang() {
    scenario("rayon", &[]);
}

#[test]
fn a_task_whose_helper_thread_prints_does_not_hang() {
    let stdout = scenario("helper_prints", &[]);
    for item in 0..6 {
        assert!(
            stdout.contains(&format!("helper of task {item}")),
            "{stdout}"
        );
    }
}

#[test]
fn a_thread_holding_stdout_does_not_block_calls() {
    scenario("stdout_held", &[]);
}

#[test]
fn a_first_call_from_a_drop_during_unwinding_works() {
    let stdout = scenario("drop_while_unwinding", &[]);
    assert!(stdout.contains("map in drop: [0, 1, 4]"), "{stdout}");
}

// --- values that fail to travel ---------------------------------------------

/// 3 panics in `Serialize`, 4 fails to serialize, 5 panics in `Deserialize`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Touchy(u32);

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            3 => panic!("three cannot be serialized"),
            4 => Err(serde::ser::Error::custom("four cannot be serialized")),
            n => serializer.serialize_u32(n),
        }
    }
}

impl<'de> Deserialize<'de> for Touchy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Touchy, D::Error> {
        match u32::deserialize(deserializer)? {
            5 => panic!("five cannot be deserialized"),
            n => Ok(Touchy(n)),
        }
    }
}

/// Values 0..16 with `skip` replaced by 0, as results.
fn touchy_except(keep: u32) -> impl Fn(u32) -> Touchy + Send + Sync + Copy + 'static {
    move |x| {
        if [3, 4, 5].contains(&x) && x != keep {
            Touchy(0)
        } else {
            Touchy(x)
        }
    }
}

#[test]
fn a_panic_in_serialize_is_the_items_panic_in_map_map_results_and_imap() {
    scenario("serialize_panic", &[]);
}

#[test]
fn a_serialize_error_fails_only_its_item_under_map_results() {
    without_leaks(|| {
        let pool = processes(2).chunk_size(8).build().unwrap();
        let results = pool.map_results(touchy_except(4), 0..16);
        for (index, result) in results.iter().enumerate() {
            if index == 4 {
                let error = result.as_ref().unwrap_err();
                assert_eq!(error.task_index(), Some(4), "{error}");
                assert!(
                    error.to_string().contains("could not be encoded"),
                    "{error}"
                );
            } else {
                assert_eq!(result.as_ref().ok(), Some(&touchy_except(4)(index as u32)));
            }
        }
        let error = pool.map(touchy_except(4), 0..16).unwrap_err();
        assert_eq!(error.task_index(), Some(4), "{error}");
        let session = pool.session(touchy_except(4)).unwrap().map_results(0..16);
        assert_eq!(session.iter().filter(|result| result.is_err()).count(), 1);
        assert_eq!(session[4].as_ref().unwrap_err().task_index(), Some(4));
    });
}

#[test]
fn a_panic_in_deserialize_in_the_parent_is_an_error_naming_the_item() {
    without_leaks(|| {
        let pool = processes(2).chunk_size(4).build().unwrap();
        let error = pool.map(touchy_except(5), 0..16).unwrap_err();
        assert_eq!(error.task_index(), Some(5), "{error}");
        assert!(error.is_panic(), "{error}");
        assert_eq!(error.panic_message(), Some("five cannot be deserialized"));
        let streamed: Vec<Result<Touchy, Error>> =
            pool.imap(touchy_except(5), 0..16u32).unwrap().collect();
        assert_eq!(streamed[4].as_ref().ok(), Some(&Touchy(0)));
        let failure = streamed[5].as_ref().unwrap_err();
        assert!(
            failure.is_panic() && failure.task_index() == Some(5),
            "{failure}"
        );
        assert_eq!(streamed[8].as_ref().ok(), Some(&Touchy(8)));
        assert!(pool.map(|x: u32| x, 0..4).is_ok(), "the pool stays usable");
    });
}

#[test]
fn a_panicking_reduce_op_is_an_error_on_every_backend() {
    without_leaks(|| {
        for &kind in BackendKind::AVAILABLE {
            if kind.name() == "mpi" {
                continue;
            }
            // The op panics when it adds to 3: inside a chunk (chunk size
            // 4: (1 + 2) + 3) or between chunk partials (chunk size 1: the
            // running total 3 + item 3's partial).
            for chunk_size in [1, 4] {
                let pool = Pool::builder()
                    .kind(kind)
                    .workers(2)
                    .chunk_size(chunk_size)
                    .build()
                    .unwrap();
                let op = |a: u64, b: u64| {
                    if a == 3 {
                        panic!("cannot add to three");
                    }
                    a + b
                };
                let error = pool.map_reduce(|x: u64| x, 0..8u64, 0, op).unwrap_err();
                assert!(error.is_panic(), "{kind}, chunks of {chunk_size}: {error}");
                assert_eq!(
                    error.task_index(),
                    Some(3),
                    "{kind}, chunks of {chunk_size}"
                );
                assert_eq!(error.panic_message(), Some("cannot add to three"));
            }
        }
    });
}

// --- configuration --------------------------------------------------------------

#[test]
fn a_non_utf8_worker_count_is_an_error_naming_the_variable() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff2");
    scenario("workers_not_utf8", &[("PARPOOL_WORKERS", bad)]);
}

// --- worker recycling ----------------------------------------------------------

#[test]
fn workers_are_replaced_after_their_quota_in_calls_sessions_and_streams() {
    without_leaks(|| {
        let pool = processes(2)
            .chunk_size(1)
            .max_tasks_per_worker(2)
            .build()
            .unwrap();
        let pid_and_square = |x: u64| (std::process::id(), x * x);
        let check = |driver: &str, results: Vec<(u32, u64)>| {
            let squares: Vec<u64> = results.iter().map(|&(_, square)| square).collect();
            assert_eq!(
                squares,
                (0..12u64).map(|x| x * x).collect::<Vec<_>>(),
                "{driver}"
            );
            let mut per_pid = std::collections::BTreeMap::new();
            for (pid, _) in results {
                *per_pid.entry(pid).or_insert(0) += 1;
            }
            assert!(per_pid.len() >= 6, "{driver}: {per_pid:?}");
            assert!(
                per_pid.values().all(|&count| count <= 2),
                "{driver}: {per_pid:?}"
            );
        };
        check("map", pool.map(pid_and_square, 0..12u64).unwrap());
        let mut session = pool.session(pid_and_square).unwrap();
        check("session", session.map(0..12u64).unwrap());
        check("session again", session.map(0..12u64).unwrap());
        drop(session);
        let streamed = pool.imap(pid_and_square, 0..12u64).unwrap();
        check("imap", streamed.map(Result::unwrap).collect());

        // A retiring worker costs no retry: item 7 crashes once, and one
        // retry is enough.
        let attempts = std::sync::Arc::new(SharedCounters::new(12));
        let counted = attempts.clone();
        let pool = processes(2)
            .chunk_size(3)
            .max_tasks_per_worker(3)
            .retries(1)
            .build()
            .unwrap();
        let flaky = move |x: usize| {
            counted.add(x);
            if x == 7 && counted.value(x) == 1 {
                std::process::abort();
            }
            x
        };
        assert_eq!(pool.map(flaky, 0..12).unwrap(), (0..12).collect::<Vec<_>>());
        assert_eq!(attempts.value(7), 2);
    });
}

#[test]
fn recycling_is_rejected_where_workers_are_threads() {
    without_leaks(|| {
        for kind in [BackendKind::Serial, BackendKind::Threads] {
            let error = Pool::builder()
                .kind(kind)
                .max_tasks_per_worker(5)
                .build()
                .unwrap_err();
            assert!(error.is_invalid_config(), "{error}");
            assert!(
                error.to_string().contains("max_tasks_per_worker"),
                "{error}"
            );
        }
        let error = processes(1).max_tasks_per_worker(0).build().unwrap_err();
        assert!(error.is_invalid_config(), "{error}");
    });
}

// --- a task that exits, a slow item, a result that will not decode --------------

#[test]
fn a_task_that_exits_with_status_0_is_a_crash_of_its_item_in_every_driver() {
    scenario("exit_zero", &[]);
}

#[test]
fn imap_unordered_gives_fast_items_while_a_slow_one_runs() {
    scenario("unordered_fastest_first", &[]);
}

#[test]
fn one_result_that_fails_to_decode_fails_only_its_item() {
    scenario("one_bad_decode", &[]);
}

/// `exit(0)` in a task, under a plain call, a session and both streams:
/// the item fails as a crash (charged to `retries` like any crash), the
/// others come back, and nothing forks for ever.
fn exit_zero_scenario() {
    // Leaked: a stream's function must be 'static (the scenario's process
    // ends right after).
    let attempts: &'static SharedCounters = Box::leak(Box::new(SharedCounters::new(1)));
    let task = |x: u32| {
        if x == 5 {
            attempts.add(0);
            std::process::exit(0);
        }
        x
    };
    let pool = processes(2).chunk_size(1).build().unwrap();
    let is_exit_crash = |error: &Error| {
        error.is_crash()
            && error.task_index() == Some(5)
            && error.to_string().contains("exited with status 0")
    };
    let error = pool.map(task, 0..20).unwrap_err();
    assert!(is_exit_crash(&error), "map: {error}");
    let streamed: Vec<Result<u32, Error>> = pool.imap(task, 0..20).unwrap().collect();
    assert_eq!(streamed.len(), 20);
    for (index, result) in streamed.iter().enumerate() {
        match result {
            Err(error) => assert!(index == 5 && is_exit_crash(error), "imap {index}: {error}"),
            Ok(value) => assert_eq!(*value as usize, index),
        }
    }
    let unordered: Vec<(usize, Result<u32, Error>)> =
        pool.imap_unordered(task, 0..20).unwrap().collect();
    assert_eq!(unordered.len(), 20);
    let failed: Vec<usize> = unordered
        .iter()
        .filter(|(_, result)| result.is_err())
        .map(|(index, _)| *index)
        .collect();
    assert_eq!(failed, [5]);
    let mut session = pool.session(task).unwrap();
    let error = session.map(0..20).unwrap_err();
    assert!(is_exit_crash(&error), "session map: {error}");
    let results = session.map_results(0..20);
    assert!(is_exit_crash(results[5].as_ref().unwrap_err()));
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 19);

    // Retries: one first attempt and two more, then the item fails.
    let before = attempts.value(0);
    let retried = processes(2).chunk_size(1).retries(2).build().unwrap();
    let streamed: Vec<Result<u32, Error>> = retried.imap(task, 0..10).unwrap().collect();
    assert!(is_exit_crash(streamed[5].as_ref().unwrap_err()));
    assert_eq!(attempts.value(0) - before, 3, "1 attempt + 2 retries");
}

/// Two workers, one item of 2 s and five of 10 ms, a chunk per item:
/// every fast item comes back before the slow one, although the slow
/// one's worker was handed a second chunk before it started.
fn unordered_fastest_first_scenario() {
    let task = |x: u64| {
        let pause = if x == 0 { 2000 } else { 10 };
        std::thread::sleep(Duration::from_millis(pause));
        x
    };
    // The thread backend's idle threads take queued chunks by themselves.
    let threads = Pool::builder()
        .kind(BackendKind::Threads)
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    let pool = processes(2).chunk_size(1).build().unwrap();
    for pool in [&threads, &pool] {
        let order: Vec<usize> = pool
            .imap_unordered(task, 0..6u64)
            .unwrap()
            .map(|(index, result)| {
                assert_eq!(result.unwrap(), index as u64);
                index
            })
            .collect();
        assert_eq!(order.len(), 6);
        assert_eq!(
            order.last(),
            Some(&0),
            "{:?}: the slow item last: {order:?}",
            pool.kind()
        );
    }
    // The same in a session's stream, twice (the engine is reused).
    let mut session = pool.session(task).unwrap();
    for _ in 0..2 {
        let order: Vec<usize> = session
            .imap_unordered(0..6u64)
            .map(|(index, result)| {
                assert_eq!(result.unwrap(), index as u64);
                index
            })
            .collect();
        assert_eq!(order.last(), Some(&0), "session: {order:?}");
    }
}

/// Deserializes anything but 13 (an error) and 17 (a panic); serializes
/// everything.
#[derive(Debug, PartialEq, Serialize)]
struct ParentRefuses(u32);

impl<'de> Deserialize<'de> for ParentRefuses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ParentRefuses, D::Error> {
        match u32::deserialize(deserializer)? {
            13 => Err(serde::de::Error::custom("13 is refused")),
            17 => panic!("17 panics in deserialize"),
            value => Ok(ParentRefuses(value)),
        }
    }
}

/// Under `map_results` with chunks of 5, and in streams, a result that
/// fails to decode in the parent fails its item; the rest of its chunk
/// comes back.
fn one_bad_decode_scenario() {
    let pool = processes(2).chunk_size(5).build().unwrap();
    let check = |results: &[Result<ParentRefuses, Error>], what: &str| {
        assert_eq!(results.len(), 20, "{what}");
        for (index, result) in results.iter().enumerate() {
            match (index, result) {
                (13, Err(error)) => {
                    assert_eq!(error.task_index(), Some(13), "{what}: {error}");
                    assert!(error.is_encoding(), "{what}: {error}");
                    assert!(
                        error.to_string().contains("could not be decoded"),
                        "{error}"
                    );
                }
                (17, Err(error)) => {
                    assert_eq!(error.task_index(), Some(17), "{what}: {error}");
                    assert!(error.is_panic(), "{what}: {error}");
                }
                (_, Ok(value)) => assert_eq!(value.0 as usize, index, "{what}"),
                (_, Err(error)) => panic!("{what}: item {index} failed: {error}"),
            }
        }
    };
    check(&pool.map_results(ParentRefuses, 0..20), "map_results");
    let streamed: Vec<Result<ParentRefuses, Error>> =
        pool.imap(ParentRefuses, 0..20u32).unwrap().collect();
    check(&streamed, "imap");
    let mut session = pool.session(ParentRefuses).unwrap();
    check(&session.map_results(0..20u32), "session");
    // map still fails fast. Items 13 and 17 are in chunks that run at the
    // same time, and fail-fast names the lowest failure seen before it
    // stopped: either one, each failing its own way.
    let error = pool.map(ParentRefuses, 0..20).unwrap_err();
    match error.task_index() {
        Some(13) => assert!(error.is_encoding(), "{error}"),
        Some(17) => assert!(error.is_panic(), "{error}"),
        _ => panic!("map named neither 13 nor 17: {error}"),
    }
}

#[test]
fn bytes_a_task_writes_to_its_result_socket_fail_its_item_only() {
    scenario("garbage_on_the_socket", &[]);
}

/// Writes `bytes` to every socket of this process: in a worker, that is
/// its result socket (a worker closes every other descriptor of the pool).
fn write_to_own_socket(bytes: &[u8]) {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.to_string_lossy().starts_with("socket:") {
            let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            // SAFETY: a write of our own bytes to an open descriptor.
            unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        }
    }
}

/// A frame header: kind, id, payload length.
fn header(kind: u8, id: u64, length: u64) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes
}

/// Tasks that write a length of 2^60, a frame cut short, an unknown kind
/// and random bytes to their result socket: each fails its own item as a
/// crash, the parent allocates nothing of the stated size, nothing hangs,
/// and the pool stays usable.
fn garbage_on_the_socket_scenario() {
    let garbage: [(&str, Vec<u8>); 4] = [
        ("a length of 2^60", header(0, 7, 1 << 60)),
        ("a frame cut short", {
            let mut bytes = header(0, 7, 100);
            bytes.extend_from_slice(&[1; 10]);
            bytes
        }),
        ("an unknown kind", header(9, 7, 0)),
        (
            "random bytes",
            (0..64u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    let pool = processes(2).chunk_size(1).build().unwrap();
    let not_frames = |error: &Error| {
        error.is_crash()
            && error.task_index() == Some(7)
            && error.to_string().contains("not frames")
    };
    for (what, bytes) in garbage {
        let task = move |x: u32| {
            if x == 7 {
                write_to_own_socket(&bytes);
            }
            x
        };
        let results = pool.map_results(task.clone(), 0..12);
        for (index, result) in results.iter().enumerate() {
            match result {
                Err(error) => assert!(index == 7 && not_frames(error), "{what}, {index}: {error}"),
                Ok(value) => assert_eq!(*value as usize, index, "{what}"),
            }
        }
        let error = pool.map(task.clone(), 0..12).unwrap_err();
        assert!(not_frames(&error), "{what}, map: {error}");
        let streamed: Vec<Result<u32, Error>> = pool.imap(task.clone(), 0..12).unwrap().collect();
        for (index, result) in streamed.iter().enumerate() {
            match result {
                Err(error) => assert!(
                    index == 7 && not_frames(error),
                    "{what}, imap {index}: {error}"
                ),
                Ok(value) => assert_eq!(*value as usize, index, "{what}"),
            }
        }
        assert_eq!(
            pool.map(|x: u32| x + 1, 0..4).unwrap(),
            [1, 2, 3, 4],
            "{what}"
        );
    }
}

#[test]
fn large_results_survive_a_worker_killed_while_they_are_made_lent_or_read() {
    scenario("large_results_killed", &[]);
}

/// Bytes in each large result of `large_results_killed`: above the size
/// from which results are lent (1 MiB), small enough for `map_results`
/// and `imap`, whose per-item format encodes byte by byte, in a debug build.
const LARGE: usize = 2 << 20;

/// A large result, which says which item made it.
fn large(x: u32) -> Vec<u8> {
    vec![x as u8; LARGE]
}

/// Large results (lent from the worker's memory on Linux, through the
/// socket elsewhere), while a thread of the worker running item 2 SIGKILLs
/// it after 0 to 10 ms: while the result is made, encoded, lent, read by
/// the parent, or after, while the worker runs its next item. Under
/// `map_results`, `map` and `imap`, every call ends; each item is its own
/// result or, for item 2 or the next one that worker claimed, a crash;
/// none is lost or wrong. The same under `map` with results the parent
/// reads on several threads. Then a timeout on the item after a large
/// result keeps that result.
fn large_results_killed_scenario() {
    let pool = processes(2).chunk_size(1).build().unwrap();
    let right = |index: usize, result: &Result<Vec<u8>, Error>, what: &str| match result {
        // Compared with memcmp: a loop over bytes is slow in a debug build.
        Ok(bytes) => assert!(
            *bytes == large(index as u32),
            "{what}: item {index} came back wrong"
        ),
        Err(error) => assert!(
            (2..=3).contains(&index) && error.is_crash(),
            "{what}: item {index}: {error}"
        ),
    };
    // A thread of the worker running item 2 SIGKILLs it after `delay`.
    let killer = |x: u32, delay: u64| {
        if x == 2 {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                // SAFETY: signals this process (the worker) only.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            });
        }
    };
    for delay in [0u64, 1, 3, 10] {
        let task = move |x: u32| {
            killer(x, delay);
            large(x)
        };
        let what = format!("killed after {delay} ms");
        let results = pool.map_results(task, 0..5);
        for (index, result) in results.iter().enumerate() {
            right(index, result, &format!("map_results, {what}"));
        }
        match pool.map(task, 0..5) {
            Ok(all) => {
                for (index, bytes) in all.into_iter().enumerate() {
                    right(index, &Ok(bytes), &format!("map, {what}"));
                }
            }
            Err(error) => assert!(error.is_crash(), "map, {what}: {error}"),
        }
        let streamed: Vec<Result<Vec<u8>, Error>> = pool.imap(task, 0..5).unwrap().collect();
        for (index, result) in streamed.iter().enumerate() {
            right(index, result, &format!("imap, {what}"));
        }
    }
    // Results of 24 MiB, past the size whose read the parent shares
    // between threads (16 MiB): killed while they are made, lent or read
    // in parts, under `map`.
    const SHARED_READ: usize = 24 << 20;
    for delay in [0u64, 2, 5, 10, 20] {
        let task = move |x: u32| {
            killer(x, delay);
            vec![x as u8; SHARED_READ]
        };
        match pool.map(task, 0..5) {
            Ok(all) => {
                for (index, bytes) in all.into_iter().enumerate() {
                    assert!(
                        bytes == vec![index as u8; SHARED_READ],
                        "24 MiB results killed after {delay} ms: item {index} came back wrong"
                    );
                }
            }
            Err(error) => assert!(error.is_crash(), "24 MiB, killed after {delay} ms: {error}"),
        }
    }
    let pool = processes(1)
        .chunk_size(1)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let slow_second = |x: u32| {
        if x == 1 {
            std::thread::sleep(Duration::from_secs(30));
        }
        large(x)
    };
    let results = pool.map_results(slow_second, 0..3);
    assert!(results[1].as_ref().unwrap_err().is_timeout());
    for index in [0, 2] {
        right(index, &results[index], "after a timeout");
    }
}

// --- where a task panicked -----------------------------------------------------

#[test]
fn a_panic_error_says_where_the_task_panicked_on_every_backend() {
    without_leaks(|| {
        for &kind in BackendKind::AVAILABLE {
            if kind.name() == "mpi" {
                continue;
            }
            let pool = Pool::builder().kind(kind).workers(2).build().unwrap();
            let line = line!() + 3;
            let task = |x: u32| {
                if x == 3 {
                    panic!("three");
                }
                x
            };
            let at = format!("tests/faults.rs:{line}:");
            let error = pool.map(task, 0..10).unwrap_err();
            let location = error
                .panic_location()
                .unwrap_or_else(|| panic!("{kind}: {error}"));
            assert!(location.starts_with(&at), "{kind}: {location}");
            assert_eq!(
                error.to_string(),
                format!("task 3 of 10 panicked at {location}: three")
            );
            let results = pool.map_results(task, 0..10);
            let error = results[3].as_ref().unwrap_err();
            assert!(
                error.panic_location().unwrap().starts_with(&at),
                "{kind}: {error}"
            );
            let streamed: Vec<Result<u32, Error>> = pool.imap(task, 0..10).unwrap().collect();
            let error = streamed[3].as_ref().unwrap_err();
            assert!(
                error.panic_location().unwrap().starts_with(&at),
                "{kind}: {error}"
            );
            assert_eq!(
                error.to_string(),
                format!(
                    "task 3 panicked at {}: three",
                    error.panic_location().unwrap()
                )
            );
        }
    });
}

// --- the scenarios, run in a fresh process ---------------------------------------

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    let Ok(name) = std::env::var("PARPOOL_SCENARIO") else {
        return;
    };
    match name.as_str() {
        "rayon" => {
            use rayon::prelude::*;
            // The program uses rayon's global pool first, as faer or polars
            // would (its threads live as long as the program).
            let warm: u64 = (0..10_000u64).into_par_iter().sum();
            assert_eq!(warm, 49_995_000);
            scenario_without_leaks(rayon_scenario);
        }
        "helper_prints" => scenario_without_leaks(helper_prints_scenario),
        "stdout_held" => scenario_without_leaks(stdout_held_scenario),
        "drop_while_unwinding" => scenario_without_leaks(drop_while_unwinding_scenario),
        "serialize_panic" => scenario_without_leaks(serialize_panic_scenario),
        "exit_zero" => scenario_without_leaks(exit_zero_scenario),
        "unordered_fastest_first" => scenario_without_leaks(unordered_fastest_first_scenario),
        "one_bad_decode" => scenario_without_leaks(one_bad_decode_scenario),
        "garbage_on_the_socket" => scenario_without_leaks(garbage_on_the_socket_scenario),
        "large_results_killed" => scenario_without_leaks(large_results_killed_scenario),
        "workers_not_utf8" => {
            let error = Pool::from_env().unwrap_err();
            assert!(error.is_invalid_config(), "{error}");
            assert!(error.to_string().contains("PARPOOL_WORKERS"), "{error}");
            assert!(error.to_string().contains("UTF-8"), "{error}");
        }
        other => panic!("no scenario {other}"),
    }
    println!("scenario {name} passed");
}

fn rayon_scenario() {
    use rayon::prelude::*;
    let pool = processes(2).build().unwrap();
    let task = |n: u64| (0..n).into_par_iter().map(|x| x * 2).sum::<u64>();
    let expected: Vec<u64> = (0..20u64).map(|n| n * n.saturating_sub(1)).collect();
    assert_eq!(pool.map(task, 0..20u64).unwrap(), expected);
    let mut session = pool.session(task).unwrap();
    assert_eq!(session.map(0..20u64).unwrap(), expected);
    drop(session);
    let streamed: Vec<u64> = pool
        .imap(task, 0..20u64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, expected);
}

fn helper_prints_scenario() {
    let pool = processes(2).build().unwrap();
    let task = |x: u32| {
        std::thread::spawn(move || println!("helper of task {x}"))
            .join()
            .unwrap();
        x
    };
    assert_eq!(pool.map(task, 0..3).unwrap(), [0, 1, 2]);
    // With another thread alive the forker thread forks (with one thread,
    // the caller does): the same must hold.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || stopped.recv());
    let mut session = pool.session(task).unwrap();
    assert_eq!(session.map(3..6).unwrap(), [3, 4, 5]);
    drop(session);
    drop(stop);
    let _ = idle.join();
}

fn stdout_held_scenario() {
    use std::sync::mpsc;
    let (locked, is_locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    // A logging thread that keeps stdout locked.
    let logger = std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let _held = stdout.lock();
        locked.send(()).unwrap();
        released.recv().unwrap();
    });
    is_locked.recv().unwrap();
    let pool = processes(2).build().unwrap();
    for round in 0..3u64 {
        let squares = pool.map(|x: u64| x * x, 0..50u64).unwrap();
        assert_eq!(squares[7], 49, "round {round}");
    }
    let mut session = pool.session(|x: u64| x + 1).unwrap();
    assert_eq!(session.map(0..5u64).unwrap(), [1, 2, 3, 4, 5]);
    drop(session);
    release.send(()).unwrap();
    logger.join().unwrap();
    // The forker thread left waiting for stdout now takes it and lets go
    // of it at once; a fork in that instant would still copy a held lock.
    std::thread::sleep(Duration::from_millis(200));
    // With stdout free again, tasks print as usual.
    let printed = pool
        .map(
            |x: u32| {
                println!("task {x} prints");
                x
            },
            0..3,
        )
        .unwrap();
    assert_eq!(printed, [0, 1, 2]);
}

fn drop_while_unwinding_scenario() {
    /// Runs the process's first `Processes` call from its `Drop`.
    struct MapsOnDrop;
    impl Drop for MapsOnDrop {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            let pool = processes(2).build().unwrap();
            let squares = pool.map(|x: u64| x * x, 0..3u64);
            println!("map in drop: {:?}", squares.unwrap());
        }
    }
    let unwound = std::panic::catch_unwind(|| {
        let _guard = MapsOnDrop;
        panic!("unwinding through a drop that maps");
    });
    assert!(unwound.is_err());
    // Later calls get the panic hook as usual.
    let pool = processes(2).build().unwrap();
    let error = pool
        .map(|x: u32| if x == 1 { panic!("one") } else { x }, 0..3)
        .unwrap_err();
    assert!(error.panic_location().is_some(), "{error}");
}

fn serialize_panic_scenario() {
    let pool = processes(2).chunk_size(8).build().unwrap();
    // map_results: only item 3 fails, as a panic with its message (before, the
    // worker died and the chunk was sent to fresh workers for ever).
    let results = pool.map_results(touchy_except(3), 0..16);
    for (index, result) in results.iter().enumerate() {
        if index == 3 {
            let error = result.as_ref().unwrap_err();
            assert!(error.is_panic(), "{error}");
            assert_eq!(error.task_index(), Some(3), "{error}");
            assert_eq!(error.panic_message(), Some("three cannot be serialized"));
        } else {
            assert_eq!(result.as_ref().ok(), Some(&touchy_except(3)(index as u32)));
        }
    }
    // map: item 3, as a panic, with its message.
    let error = pool.map(touchy_except(3), 0..16).unwrap_err();
    assert!(error.is_panic(), "{error}");
    assert_eq!(error.task_index(), Some(3), "{error}");
    assert_eq!(error.panic_message(), Some("three cannot be serialized"));
    // imap: item 3 alone fails.
    let streamed: Vec<Result<Touchy, Error>> =
        pool.imap(touchy_except(3), 0..16u32).unwrap().collect();
    let failed: BTreeSet<usize> = streamed
        .iter()
        .enumerate()
        .filter(|(_, result)| result.is_err())
        .map(|(index, _)| index)
        .collect();
    assert_eq!(failed, BTreeSet::from([3]));
    assert!(streamed[3].as_ref().unwrap_err().is_panic());
}
