//! A good citizen inside other people's programs: one shared thread pool,
//! no threads from pools made inside tasks (at any depth, in-process or in
//! a worker process), and an OS error whose `source()` chain prints each
//! message once.
//!
//! Each case counts the threads of a whole process, so it runs in a
//! re-executed copy of this test binary (alone there, with a time limit,
//! so a hang fails the test instead of stalling CI).
// Worker processes need fork: these run on every Unix; on Windows,
// tests/config.rs checks that asking for them is a clear error.
#![cfg(unix)]

mod common;

use common::{children, open_fds, output_within, scenario_command, settles_to, threads};
use parpool::{BackendKind, Error, Pool};
use std::time::Duration;

/// How long a re-executed scenario may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(120);

/// How deep the nesting cases go.
const DEPTH: usize = 16;

/// Runs scenario `name` in a fresh copy of this test binary; it must pass.
fn scenario(name: &str) {
    let output = output_within(scenario_command(name), LIMIT)
        .unwrap_or_else(|hung| panic!("{name}: {hung}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("scenario {name} passed")),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn default_pools_share_one_thread_pool_and_start_no_threads_until_called() {
    scenario("shared_pool");
}

#[test]
fn pools_made_inside_tasks_start_no_threads_at_any_depth() {
    scenario("nested_in_process");
}

#[test]
fn pools_made_inside_a_worker_process_start_no_threads_at_any_depth() {
    scenario("nested_in_worker_process");
}

#[test]
fn an_os_error_prints_each_message_of_its_chain_once() {
    scenario("os_error_chain");
}

#[test]
fn scenario_host() {
    let Ok(name) = std::env::var("PARPOOL_SCENARIO") else {
        return;
    };
    match name.as_str() {
        "shared_pool" => shared_pool(),
        "nested_in_process" => nested_in_process(),
        "nested_in_worker_process" => nested_in_worker_process(),
        "os_error_chain" => os_error_chain(),
        other => panic!("no scenario {other}"),
    }
    println!("scenario {name} passed");
}

fn square(x: u64) -> u64 {
    x * x
}

/// The design card's call in a function that runs often, beside the other
/// default constructors: one pool of threads for all of them, started by
/// the first call, not by `Pool::new()`.
fn shared_pool() {
    let at_start = threads();
    let made: Vec<Pool> = (0..100).map(|_| Pool::new()).collect();
    let local = Pool::local();
    assert_eq!(threads(), at_start, "making pools started threads");
    drop(made);
    drop(local);

    let shared_size = Pool::new().workers();
    for _ in 0..500 {
        assert_eq!(
            Pool::new().map(square, vec![1, 2, 3, 4, 5, 6]).unwrap(),
            [1, 4, 9, 16, 25, 36]
        );
        assert_eq!(Pool::default().map(square, [2]).unwrap(), [4]);
        assert_eq!(Pool::from_env().unwrap().map(square, [3]).unwrap(), [9]);
        assert_eq!(Pool::local().map(square, 0..4).unwrap(), [0, 1, 4, 9]);
        let same_size = Pool::builder().workers(shared_size).build().unwrap();
        assert_eq!(same_size.map(square, 0..3).unwrap(), [0, 1, 4]);
    }
    let with_shared = threads();
    assert_eq!(
        with_shared,
        at_start + shared_size,
        "2,500 default pools: one shared pool of {shared_size} threads"
    );

    // Streams, sessions, cancellation and panics on the shared pool.
    let pool = Pool::new();
    let streamed: Vec<u64> = pool
        .imap(square, 0..100u64)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(streamed[99], 99 * 99);
    let mut session = pool.session(square).unwrap();
    assert_eq!(session.map(0..10u64).unwrap()[9], 81);
    let error = pool
        .map(|x: u64| if x == 3 { panic!("three") } else { x }, 0..10)
        .unwrap_err();
    assert_eq!(error.task_index(), Some(3));
    let token = parpool::CancelToken::new();
    token.cancel();
    assert!(
        pool.with_cancel(&token)
            .map(square, 0..10)
            .unwrap_err()
            .is_cancelled()
    );
    assert_eq!(threads(), with_shared);

    // A dedicated pool has threads of its own, which exit after it is
    // dropped (soon after, not during the drop).
    let own = Pool::builder()
        .kind(BackendKind::Threads)
        .dedicated_threads(true)
        .build()
        .unwrap();
    assert_eq!(
        threads(),
        with_shared,
        "a dedicated pool starts at its first call"
    );
    assert_eq!(own.map(square, 0..10).unwrap()[3], 9);
    assert_eq!(threads(), with_shared + own.workers());
    drop(own);
    assert_eq!(settles_to(with_shared, threads), with_shared);
    let other_size = Pool::builder().workers(shared_size + 1).build().unwrap();
    assert_eq!(other_size.map(square, 0..10).unwrap()[3], 9);
    assert_eq!(threads(), with_shared + shared_size + 1);
    drop(other_size);
    assert_eq!(settles_to(with_shared, threads), with_shared);
}

/// At every level, a task makes a pool of another kind (2 workers where it
/// has a count) and calls it; returns the most threads seen at any level.
fn nest(depth: usize) -> usize {
    if depth == 0 {
        return threads();
    }
    let here = threads();
    let deepest = match depth % 5 {
        0 => Pool::builder()
            .kind(BackendKind::Threads)
            .workers(2)
            .dedicated_threads(true)
            .build()
            .unwrap()
            .map(|_: u8| nest(depth - 1), [0, 1]),
        1 => Pool::new().map(|_: u8| nest(depth - 1), [0, 1]),
        2 => Pool::local().map(|_: u8| nest(depth - 1), [0, 1]),
        3 => Pool::builder()
            .kind(BackendKind::Processes)
            .workers(2)
            .build()
            .unwrap()
            .map(|_: u8| nest(depth - 1), [0, 1]),
        _ => Pool::builder()
            .kind(BackendKind::Threads)
            .workers(3)
            .build()
            .unwrap()
            .imap(move |_: u8| nest(depth - 1), [0, 1])
            .unwrap()
            .collect::<Result<Vec<_>, Error>>(),
    }
    .unwrap();
    deepest.into_iter().max().unwrap_or(0).max(here)
}

fn nested_in_process() {
    let before = threads();
    // The first level is a 2-thread pool of its own: 2 threads start.
    let top = Pool::builder()
        .kind(BackendKind::Threads)
        .workers(2)
        .dedicated_threads(true)
        .build()
        .unwrap();
    let most = top
        .map(|_: u8| nest(DEPTH - 1), [0, 1, 2, 3])
        .unwrap()
        .into_iter()
        .max()
        .unwrap();
    assert!(
        most <= before + 2,
        "{DEPTH} levels: {most} threads, {before} before and 2 for the first level"
    );
    drop(top);
    assert_eq!(settles_to(before, threads), before);
}

fn nested_in_worker_process() {
    common::start_what_lives_with_the_process();
    let fds = open_fds();
    let top = Pool::builder()
        .kind(BackendKind::Processes)
        .workers(2)
        .build()
        .unwrap();
    // Each task reports the threads of its worker process at the first
    // level and the most at any level below it.
    let counts = top
        .map(|_: u8| (threads(), nest(DEPTH - 1)), [0, 1, 2, 3])
        .unwrap();
    for (first_level, most) in counts {
        assert!(
            most <= first_level,
            "in a worker: {first_level} threads at the first level, {most} below it"
        );
    }
    drop(top);
    assert_eq!(settles_to(0, children), 0, "workers left behind");
    assert_eq!(open_fds(), fds, "descriptors leaked");
}

/// A process pool that cannot open its workers' sockets: with the
/// descriptor limit at the next free descriptor, `socketpair` fails with
/// EMFILE. The report names what parpool was doing once and the OS error
/// once, each at its own level of the chain.
fn os_error_chain() {
    let pool = Pool::builder()
        .kind(BackendKind::Processes)
        .workers(2)
        .build()
        .unwrap();
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = (highest + 1) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    // Fill every free descriptor below the limit, so the next one fails.
    let mut fillers = Vec::new();
    loop {
        // SAFETY: dup of stdin, closed below.
        let fd = unsafe { libc::dup(0) };
        if fd < 0 {
            break;
        }
        fillers.push(fd);
    }
    let error = pool.map(square, 0..10).unwrap_err();
    for fd in fillers {
        // SAFETY: a descriptor dup'ed above, closed once.
        unsafe { libc::close(fd) };
    }

    let mut chain: Vec<String> = Vec::new();
    let mut level: Option<&dyn std::error::Error> = Some(&error);
    while let Some(error) = level {
        chain.push(error.to_string());
        level = error.source();
    }
    let report = chain.join(": ");
    println!("chain: {chain:?}");
    assert!(error.is_backend(), "{report}");
    assert_eq!(
        chain.len(),
        2,
        "parpool's message, then the io::Error: {report}"
    );
    let io = std::io::Error::from_raw_os_error(libc::EMFILE).to_string();
    assert_eq!(chain[1], io);
    assert!(
        chain[0].starts_with("processes backend failed: socketpair failed for worker "),
        "{report}"
    );
    for message in &chain {
        assert_eq!(report.matches(message.as_str()).count(), 1, "{report}");
    }

    // The pool is usable again once descriptors are.
    limit.rlim_cur = limit.rlim_max.min(4096);
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0) };
    assert_eq!(pool.map(square, 0..4).unwrap(), [0, 1, 4, 9]);
}
