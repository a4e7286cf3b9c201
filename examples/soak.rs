//! A soak run: for a set time, every backend in turn gets a mix of what
//! breaks pools in long runs, and the process is watched for growth.
//!
//! ```text
//! cargo run --release --example soak                       # 10 minutes
//! cargo run --release --example soak -- --minutes 1 --report-every 15
//! ```
//!
//! Each round, on serial, threads and processes (2 workers):
//!
//! - a session with `max_tasks_per_worker` (processes), serving three calls;
//! - faults: a panic; on processes also `abort()`, `exit(0)`, and a worker
//!   SIGKILLed from outside (by another thread of this program) while it
//!   runs a slow item;
//! - timeouts with retries (processes): an item that sleeps past the limit;
//! - an `imap` stream dropped half-way;
//! - a call cancelled from another thread;
//! - large results (4 × 8 MiB).
//!
//! Every `--report-every` seconds (default 60) it prints the resident
//! memory, open descriptors, threads and child processes (Linux's `/proc`),
//! each read between rounds, when no call runs. The first report is the
//! baseline, taken after a warm-up round. The run fails (exit status 1) if,
//! at any later report, resident memory grew by more than 64 MiB or
//! descriptors, threads or children by more than 0 (threads and children
//! are given a moment to exit first), or if any call gave an answer other
//! than the one expected.

mod support;

use parpool::{BackendKind, CancelToken, Error, Pool};
use std::time::{Duration, Instant};

/// How much resident memory may grow past the baseline.
const RSS_BOUND_MIB: u64 = 64;

struct Options {
    minutes: f64,
    report_every: Duration,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        minutes: 10.0,
        report_every: Duration::from_secs(60),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--minutes" => {
                let text = args.next().ok_or("--minutes needs a value")?;
                options.minutes = text
                    .parse()
                    .ok()
                    .filter(|minutes: &f64| *minutes > 0.0)
                    .ok_or(format!("--minutes expects a positive number, got {text:?}"))?;
            }
            "--report-every" => {
                let seconds: u64 = support::number(&flag, args.next())?;
                if seconds == 0 {
                    return Err("--report-every must be at least 1 second".into());
                }
                options.report_every = Duration::from_secs(seconds);
            }
            other => {
                return Err(format!(
                    "unknown flag {other:?}; see the top of examples/soak.rs"
                ));
            }
        }
    }
    Ok(options)
}

/// What the process holds, from `/proc/self`.
#[derive(Clone, Copy, Debug)]
struct Reading {
    rss_mib: u64,
    fds: usize,
    threads: usize,
    children: usize,
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |dir| dir.count())
}

fn children() -> usize {
    child_pids().len()
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// A reading once threads and children of the last round had a moment to
/// exit (they leave soon after a pool is dropped, not during the drop).
fn reading(baseline: Option<Reading>) -> Reading {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = Reading {
            rss_mib: rss_mib(),
            fds: count_dir("/proc/self/fd"),
            threads: count_dir("/proc/self/task"),
            children: children(),
        };
        let settled = baseline
            .is_none_or(|base| now.threads <= base.threads && now.children <= base.children);
        if settled || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What grew past its bound since `base`, if anything.
fn growth(base: Reading, now: Reading) -> Vec<String> {
    let mut grown = Vec::new();
    if now.rss_mib > base.rss_mib + RSS_BOUND_MIB {
        grown.push(format!(
            "resident memory {} MiB (baseline {} MiB, bound +{RSS_BOUND_MIB})",
            now.rss_mib, base.rss_mib
        ));
    }
    for (what, now, base) in [
        ("open descriptors", now.fds, base.fds),
        ("threads", now.threads, base.threads),
        ("child processes", now.children, base.children),
    ] {
        if now > base {
            grown.push(format!("{what} {now} (baseline {base})"));
        }
    }
    grown
}

/// Fails the run with `what` unless `ok`.
fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

fn pool(kind: BackendKind) -> parpool::PoolBuilder {
    Pool::builder().kind(kind).workers(2)
}

/// The pids of this process's children (its worker processes).
fn child_pids() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                    let parent = stat
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .to_string();
                    (parent == me).then_some(pid)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One round of everything on `kind`.
fn round(kind: BackendKind) -> Result<(), String> {
    let processes = kind.name() == "processes";
    let fail = |what: &str, error: &Error| format!("{kind}: {what}: {error}");

    // A session, recycling its workers on processes.
    let mut builder = pool(kind).chunk_size(4);
    if processes {
        builder = builder.max_tasks_per_worker(10);
    }
    let session_pool = builder.build().map_err(|e| fail("build", &e))?;
    let mut session = session_pool
        .session(|x: u64| x * 3)
        .map_err(|e| fail("session", &e))?;
    for call in 0..3u64 {
        let out = session
            .map(call..call + 100)
            .map_err(|e| fail("session map", &e))?;
        expect(out[99] == (call + 99) * 3, || {
            format!("{kind}: session answer")
        })?;
    }
    drop(session);

    // Faults: every item but the faulty ones comes back.
    let faulty = pool(kind)
        .chunk_size(1)
        .build()
        .map_err(|e| fail("build", &e))?;
    let faults: &[(&str, fn())] = if processes {
        &[
            ("panic", || panic!("soak: a panicking task")),
            ("abort", || std::process::abort()),
            ("exit(0)", || std::process::exit(0)),
        ]
    } else {
        &[("panic", || panic!("soak: a panicking task"))]
    };
    for &(what, fault) in faults {
        let results = faulty.map_results(
            move |x: u32| {
                if x == 3 {
                    fault();
                }
                x
            },
            0..8,
        );
        let failed: Vec<usize> = (0..8).filter(|&i| results[i].is_err()).collect();
        expect(failed == [3], || {
            format!("{kind}: {what}: failed items {failed:?}")
        })?;
    }
    if processes {
        // A worker killed from outside while it sleeps on item 2.
        let killer = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            for pid in child_pids() {
                // SAFETY: a signal to our own child process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let results = faulty.map_results(
            |x: u32| {
                if x == 2 {
                    std::thread::sleep(Duration::from_secs(2));
                }
                x
            },
            0..4,
        );
        killer
            .join()
            .map_err(|_| "the killer thread panicked".to_string())?;
        expect(
            results
                .iter()
                .any(|r| r.as_ref().is_err_and(Error::is_crash)),
            || format!("{kind}: SIGKILL from outside: no crash reported: {results:?}"),
        )?;

        // Timeouts with retries: item 1 sleeps past the limit every time.
        let timed = pool(kind)
            .chunk_size(1)
            .timeout(Duration::from_millis(200))
            .retries(1)
            .build()
            .map_err(|e| fail("build", &e))?;
        let results = timed.map_results(
            |x: u32| {
                if x == 1 {
                    std::thread::sleep(Duration::from_secs(5));
                }
                x
            },
            0..4,
        );
        expect(results[1].as_ref().is_err_and(Error::is_timeout), || {
            format!("{kind}: timeout: {:?}", results[1])
        })?;
        expect(results.iter().filter(|r| r.is_ok()).count() == 3, || {
            format!("{kind}: timeout: the other items")
        })?;
    }

    // A stream dropped half-way.
    let streaming = pool(kind)
        .chunk_size(8)
        .build()
        .map_err(|e| fail("build", &e))?;
    let mut stream = streaming
        .imap(|x: u64| x + 1, 0..10_000u64)
        .map_err(|e| fail("imap", &e))?;
    for expected in 1..=500u64 {
        let got = stream.next().and_then(Result::ok);
        expect(got == Some(expected), || {
            format!("{kind}: stream item {expected}: {got:?}")
        })?;
    }
    drop(stream);

    // A call cancelled from another thread.
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            token.cancel();
        })
    };
    let slow = |x: u32| {
        std::thread::sleep(Duration::from_millis(5));
        x
    };
    let cancelled = streaming.with_cancel(&token).map(slow, 0..2_000);
    canceller
        .join()
        .map_err(|_| "the canceller thread panicked".to_string())?;
    expect(cancelled.as_ref().is_err_and(Error::is_cancelled), || {
        format!("{kind}: cancel: {:?}", cancelled.map(|v| v.len()))
    })?;

    // Large results.
    let large = streaming
        .map(|x: u8| vec![x; 8 << 20], 0..4u8)
        .map_err(|e| fail("large results", &e))?;
    expect(
        large
            .iter()
            .enumerate()
            .all(|(i, v)| v.len() == 8 << 20 && v[0] == i as u8),
        || format!("{kind}: large results"),
    )?;
    Ok(())
}

fn run(options: &Options) -> Result<(), String> {
    let backends: Vec<BackendKind> = BackendKind::AVAILABLE
        .iter()
        .copied()
        .filter(|kind| kind.name() != "mpi")
        .collect();
    let started = Instant::now();
    let length = Duration::from_secs_f64(options.minutes * 60.0);
    // The panics of the fault cases would fill the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    // Warm-up: the shared thread pool, the first forks, the allocator.
    for &kind in &backends {
        round(kind)?;
    }
    let baseline = reading(None);
    println!(
        "{:>8} {:>7} {:>9} {:>5} {:>8} {:>9}",
        "minutes", "rounds", "RSS MiB", "fds", "threads", "children"
    );
    let print = |rounds: usize, now: Reading| {
        println!(
            "{:>8.1} {:>7} {:>9} {:>5} {:>8} {:>9}",
            started.elapsed().as_secs_f64() / 60.0,
            rounds,
            now.rss_mib,
            now.fds,
            now.threads,
            now.children
        );
    };
    print(0, baseline);
    let mut rounds = 0;
    let mut next_report = Instant::now() + options.report_every;
    let mut grown = Vec::new();
    while started.elapsed() < length {
        for &kind in &backends {
            round(kind)?;
        }
        rounds += 1;
        if Instant::now() >= next_report {
            let now = reading(Some(baseline));
            print(rounds, now);
            grown.extend(growth(baseline, now));
            next_report += options.report_every;
        }
    }
    let last = reading(Some(baseline));
    print(rounds, last);
    grown.extend(growth(baseline, last));
    if grown.is_empty() {
        println!(
            "no growth past the bounds (RSS +{RSS_BOUND_MIB} MiB, descriptors, threads and \
             children +0) in {rounds} rounds"
        );
        Ok(())
    } else {
        Err(format!("grew past the bounds: {}", grown.join("; ")))
    }
}

fn main() {
    support::main_with(parse_options, run);
}
