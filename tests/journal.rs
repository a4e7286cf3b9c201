//! Resume: a journal of finished chunks gives a killed run, run again, the
//! same bits with fewer tasks; never a stale or foreign result; damage
//! costs reruns or an error, never a wrong answer.

mod common;

use common::{SharedCounters, output_within, scenario_command};
use parpool::{BackendKind, CancelToken, Journal, Pool};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "parpool-journal-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pools of every backend that runs here, 1 and 3 workers, chunks of 7.
fn pools() -> Vec<Pool> {
    let mut pools = Vec::new();
    for &kind in BackendKind::AVAILABLE {
        if kind == BackendKind::Mpi {
            continue; // tests/mpi.rs resumes across ranks
        }
        for workers in [1, 3] {
            pools.push(common::pool(kind, workers, Some(7)));
        }
    }
    pools
}

/// A task that counts its runs in shared memory (worker processes count
/// too) and returns a value whose bits depend on the item.
fn counted(runs: &Arc<SharedCounters>) -> impl Fn(u64) -> f64 + Sync + Send + 'static {
    let runs = runs.clone();
    move |x: u64| {
        runs.add(0);
        (x as f64 + 0.25).sqrt() * 1e-3
    }
}

#[test]
fn a_second_run_reads_every_chunk_back_with_the_same_bits_and_runs_nothing() {
    for pool in pools() {
        let scratch = Scratch::new("again");
        let path = scratch.file("calls.journal");
        let runs = Arc::new(SharedCounters::new(1));
        let sum = |a: f64, b: f64| a + b;
        // One place per call: the same closures both times.
        let calls = |journal: &Journal| {
            let journaled = pool.with_journal(journal);
            let mut reports = Vec::new();
            let mapped = journaled.map(counted(&runs), 0..100u64).unwrap();
            reports.push(journal.last_call().unwrap());
            let reduced = journaled
                .map_reduce(counted(&runs), 0..100u64, 0.0, sum)
                .unwrap();
            reports.push(journal.last_call().unwrap());
            let results = journaled.map_results(counted(&runs), 0..30u64);
            reports.push(journal.last_call().unwrap());
            let gathered = journaled.map_gather(counted(&runs), 0..20u64).unwrap();
            reports.push(journal.last_call().unwrap());
            let initialised = journaled
                .map_init(|| 2.0, |two: &mut f64, x: u64| x as f64 * *two, 0..15u64)
                .unwrap();
            reports.push(journal.last_call().unwrap());
            let values: Vec<f64> = results.into_iter().map(Result::unwrap).collect();
            ((mapped, reduced, values, gathered, initialised), reports)
        };
        let first_journal = Journal::open(&path).unwrap();
        let (first, reports) = calls(&first_journal);
        drop(first_journal);
        assert!(
            reports
                .iter()
                .all(|report| report.read_back == 0 && report.ran == report.chunks)
        );
        let ran_first = runs.value(0);
        assert_eq!(ran_first, 100 + 100 + 30 + 20, "{pool:?}");
        let journal = Journal::open(&path).unwrap();
        let (second, reports) = calls(&journal);
        assert_eq!(
            runs.value(0),
            ran_first,
            "{pool:?}: a fully journaled call ran tasks"
        );
        for report in &reports {
            assert_eq!(
                (report.read_back, report.ran),
                (report.chunks, 0),
                "{pool:?}"
            );
        }
        // Bits, not just values.
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.0), bits(&second.0));
        assert_eq!(first.1.to_bits(), second.1.to_bits());
        assert_eq!(bits(&first.2), bits(&second.2));
        assert_eq!(first.3.as_deref().map(bits), second.3.as_deref().map(bits));
        assert_eq!(bits(&first.4), bits(&second.4));
        // And the same as the plain calls.
        assert_eq!(
            bits(&pool.map(counted(&runs), 0..100u64).unwrap()),
            bits(&first.0)
        );
        let plain = pool
            .map_reduce(counted(&runs), 0..100u64, 0.0, sum)
            .unwrap();
        assert_eq!(plain.to_bits(), first.1.to_bits());
    }
}

/// Large arrays from worker processes: on Linux the parent reads each
/// one straight into the vector it returns (a lent result), and the
/// journal's record is encoded from those vectors. Read back on threads,
/// they are the same bits.
#[test]
fn large_arrays_from_processes_are_journaled_and_read_back_the_same() {
    let scratch = Scratch::new("arrays");
    let path = scratch.file("arrays.journal");
    let doubles = |i: u64| -> Vec<f64> {
        // 2 MiB and a bit: past the size at which results are lent.
        (0..(1 << 18) + i)
            .map(|j| (j as f64 * 1e-3 + i as f64).sin())
            .collect()
    };
    let bytes = |i: u64| -> Vec<u8> { (0..(3 << 20) + i).map(|j| (j * 7 + i) as u8).collect() };
    // One place per call (a call's place is part of what makes it the
    // same call), run on processes, then on threads.
    let calls = |pool: &Pool| {
        let journal = Journal::open(&path).unwrap();
        let journaled = pool.with_journal(&journal);
        let doubles = journaled.map(doubles, 0..4u64).unwrap();
        let first = journal.last_call().unwrap();
        let bytes = journaled.map(bytes, 0..3u64).unwrap();
        let second = journal.last_call().unwrap();
        let read_back = [first, second].map(|report| (report.read_back, report.ran));
        (doubles, bytes, read_back)
    };
    let (first_doubles, first_bytes, read_back) =
        calls(&common::pool(BackendKind::Processes, 2, Some(1)));
    assert_eq!(read_back, [(0, 4), (0, 3)]);
    let (again_doubles, again_bytes, read_back) =
        calls(&common::pool(BackendKind::Threads, 2, Some(1)));
    assert_eq!(read_back, [(4, 0), (3, 0)]);
    let bits = |vectors: &[Vec<f64>]| -> Vec<Vec<u64>> {
        vectors
            .iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    assert!(bits(&first_doubles) == bits(&again_doubles));
    assert!(first_doubles == (0..4).map(doubles).collect::<Vec<_>>());
    assert!(first_bytes == again_bytes);
    assert!(first_bytes == (0..3).map(bytes).collect::<Vec<_>>());
}

#[test]
fn a_run_stopped_by_a_failure_resumes_with_only_the_chunks_it_lacked() {
    for pool in pools() {
        let scratch = Scratch::new("resume");
        let path = scratch.file("resume.journal");
        let runs = Arc::new(SharedCounters::new(1));
        let fail_at = Arc::new(SharedCounters::new(1));
        // Each run opens the journal afresh, as a new process would.
        let call = |journal: &Journal, fail: bool| {
            let runs = runs.clone();
            let fail_at = fail_at.clone();
            pool.with_journal(journal).key("resume").map_reduce(
                move |x: u64| {
                    runs.add(0);
                    if fail && x == 60 {
                        fail_at.add(0);
                        panic!("stop at 60");
                    }
                    x as f64 * 0.1
                },
                0..100u64,
                0.0,
                |a, b| a + b,
            )
        };
        let journal = Journal::open(&path).unwrap();
        let error = call(&journal, true).unwrap_err();
        assert!(error.is_panic(), "{pool:?}: {error}");
        let first = journal.last_call().unwrap();
        drop(journal);
        // The failed chunk (items 56..63) was not recorded.
        assert!(first.ran < first.chunks, "{pool:?}: {first:?}");
        let before = runs.value(0);
        let journal = Journal::open(&path).unwrap();
        let resumed = call(&journal, false).unwrap();
        let second = journal.last_call().unwrap();
        assert_eq!(second.read_back + second.ran, second.chunks, "{pool:?}");
        assert!(second.read_back >= 1, "{pool:?}: {second:?}");
        // Only the chunks not recorded ran again: at most 7 items each.
        assert!(runs.value(0) - before <= second.ran * 7, "{pool:?}");
        let plain = pool
            .map_reduce(|x: u64| x as f64 * 0.1, 0..100u64, 0.0, |a, b| a + b)
            .unwrap();
        assert_eq!(resumed.to_bits(), plain.to_bits(), "{pool:?}");
    }
}

#[test]
fn failed_items_are_not_recorded_and_run_again() {
    let scratch = Scratch::new("failed");
    let path = scratch.file("failed.journal");
    let pool = common::pool(BackendKind::Threads, 2, Some(1));
    let runs = Arc::new(SharedCounters::new(1));
    let call = |fixed: bool| {
        // A new journal per run, as in a new process.
        let journal = Journal::open(&path).unwrap();
        let runs = runs.clone();
        let results = pool.with_journal(&journal).key("r").map_results(
            move |x: u32| {
                runs.add(0);
                assert!(fixed || !x.is_multiple_of(5), "fails on multiples of five");
                x * 2
            },
            0..20u32,
        );
        (results, journal.last_call().unwrap())
    };
    let (first, _) = call(false);
    assert_eq!(first.iter().filter(|r| r.is_err()).count(), 4);
    let before = runs.value(0);
    let (second, report) = call(true);
    assert!(second.iter().all(Result::is_ok));
    // Chunks of one item: exactly the four failed items ran again.
    assert_eq!(runs.value(0) - before, 4);
    assert_eq!(report.ran, 4);
}

#[test]
fn different_calls_never_read_each_others_records() {
    let scratch = Scratch::new("foreign");
    let journal = Journal::open(scratch.file("two.journal")).unwrap();
    let pool = common::pool(BackendKind::Threads, 2, None);
    let journaled = pool.with_journal(&journal);
    let squares = journaled.map(|x: u64| x * x, 0..50u64).unwrap();
    let cubes = journaled.map(|x: u64| x * x * x, 0..50u64).unwrap();
    assert_eq!(
        journal.last_call().unwrap().read_back,
        0,
        "cube read square's records"
    );
    assert_eq!(cubes[3], 27);
    assert_eq!(squares[3], 9);
    // The same key twice in one run: two calls, told apart by their order.
    let a = journaled
        .clone()
        .key("k")
        .map(|x: u64| x + 1, 0..10u64)
        .unwrap();
    let b = journaled
        .clone()
        .key("k")
        .map(|x: u64| x + 2, 0..10u64)
        .unwrap();
    assert_eq!((a[0], b[0]), (1, 2));
}

#[test]
fn changed_inputs_run_again_and_the_rest_is_read_back() {
    let scratch = Scratch::new("inputs");
    let path = scratch.file("inputs.journal");
    let pool = common::pool(BackendKind::Threads, 2, Some(10));
    let run = |items: Vec<u64>| {
        let journal = Journal::open(&path).unwrap();
        let out = pool
            .with_journal(&journal)
            .key("k")
            .map(|x: u64| x * 3, items)
            .unwrap();
        (out, journal.last_call().unwrap())
    };
    let mut items: Vec<u64> = (0..100).collect();
    run(items.clone());
    items[42] = 1000;
    let (out, report) = run(items.clone());
    assert_eq!(out[42], 3000, "a stale result came back");
    assert_eq!((report.read_back, report.ran), (9, 1));
    // More items: another call (the item count is part of it).
    items.push(5);
    let (_, report) = run(items);
    assert_eq!(report.read_back, 0);
}

/// A journal of three chunks of known results, and the results.
fn small_journal(path: &Path) -> Vec<u64> {
    let journal = Journal::open(path).unwrap();
    let pool = common::pool(BackendKind::Serial, 1, Some(4));
    pool.with_journal(&journal)
        .key("small")
        .map(|x: u64| x * 1_000_003, 0..12u64)
        .unwrap()
}

#[test]
fn every_flipped_byte_gives_an_error_or_the_right_answer() {
    let scratch = Scratch::new("flip");
    let path = scratch.file("small.journal");
    let expected = small_journal(&path);
    let pristine = std::fs::read(&path).unwrap();
    let pool = common::pool(BackendKind::Serial, 1, Some(4));
    let (mut errors, mut reruns) = (0, 0);
    for offset in 0..pristine.len() {
        for flip in [0x01u8, 0xff] {
            let mut damaged = pristine.clone();
            damaged[offset] ^= flip;
            let case = scratch.file(&format!("flip-{offset}-{flip}.journal"));
            std::fs::write(&case, &damaged).unwrap();
            match Journal::open(&case) {
                Err(error) => {
                    errors += 1;
                    assert!(error.to_string().contains("flip-"), "{error}");
                }
                Ok(journal) => {
                    let got = pool
                        .with_journal(&journal)
                        .key("small")
                        .map(|x: u64| x * 1_000_003, 0..12u64)
                        .unwrap();
                    assert_eq!(
                        got, expected,
                        "a wrong answer with byte {offset} ^ {flip:#x}"
                    );
                    reruns += usize::from(journal.last_call().unwrap().ran > 0);
                }
            }
            std::fs::remove_file(&case).unwrap();
        }
    }
    eprintln!(
        "{} bytes flipped two ways: {errors} errors, {reruns} runs with chunks run again",
        pristine.len()
    );
    assert!(reruns > 0 && errors > 0);
}

#[test]
fn a_record_cut_short_is_dropped_and_its_chunk_runs_again() {
    let scratch = Scratch::new("torn");
    let path = scratch.file("torn.journal");
    let expected = small_journal(&path);
    let whole = std::fs::read(&path).unwrap();
    let pool = common::pool(BackendKind::Threads, 2, Some(4));
    for cut in 1..40 {
        std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
        let journal = Journal::open(&path).unwrap();
        let got = pool
            .with_journal(&journal)
            .key("small")
            .map(|x: u64| x * 1_000_003, 0..12u64)
            .unwrap();
        assert_eq!(got, expected);
        let report = journal.last_call().unwrap();
        assert_eq!((report.read_back, report.ran), (2, 1), "cut {cut}");
    }
}

#[test]
fn a_journal_in_use_is_refused_at_once_naming_the_path() {
    let scratch = Scratch::new("lock");
    let path = scratch.file("locked.journal");
    let journal = Journal::open(&path).unwrap();
    let started = Instant::now();
    let error = Journal::open(&path).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(error.to_string().contains("locked.journal"), "{error}");
    assert!(error.to_string().contains("in use"), "{error}");
    // Another process too.
    let mut command = scenario_command("open");
    command.env("JOURNAL_PATH", &path);
    let output = output_within(command, Duration::from_secs(60)).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("refused: ") && stdout.contains("in use"),
        "{stdout}"
    );
    drop(journal);
    assert!(
        Journal::open(&path).is_ok(),
        "the lock ends with the journal"
    );
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_as_it_was() {
    let scratch = Scratch::new("foreign-file");
    let path = scratch.file("README.md");
    let text = b"# Results\n\nThese are not a journal.\n";
    std::fs::write(&path, text).unwrap();
    let error = Journal::open(&path).unwrap_err();
    assert!(
        error.to_string().contains("not a parpool journal"),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text);
    std::fs::write(&path, b"PARP").unwrap();
    assert!(Journal::open(&path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"PARP");
}

#[test]
fn a_bad_directory_is_an_error() {
    let scratch = Scratch::new("dirs");
    let missing = scratch.file("no/such/dir/x.journal");
    let error = Journal::open(&missing).unwrap_err();
    assert!(error.to_string().contains("x.journal"), "{error}");
    let file = scratch.file("plain");
    std::fs::write(&file, b"").unwrap();
    assert!(Journal::open(file.join("x.journal")).is_err());
}

#[test]
fn compaction_keeps_what_this_run_used() {
    let scratch = Scratch::new("compact");
    let path = scratch.file("c.journal");
    let pool = common::pool(BackendKind::Threads, 2, Some(8));
    {
        let journal = Journal::open(&path).unwrap();
        let journaled = pool.with_journal(&journal);
        journaled
            .clone()
            .key("old")
            .map(|x: u64| x, 0..800u64)
            .unwrap();
        journaled.key("kept").map(|x: u64| x + 1, 0..80u64).unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    let kept = pool
        .with_journal(&journal)
        .key("kept")
        .map(|x: u64| x + 1, 0..80u64)
        .unwrap();
    let (before, after) = journal.compact().unwrap();
    assert!(after < before / 5, "{before} -> {after}");
    assert_eq!(journal.size().unwrap(), after);
    drop(journal);
    let journal = Journal::open(&path).unwrap();
    let again = pool
        .with_journal(&journal)
        .key("kept")
        .map(|x: u64| x + 1, 0..80u64)
        .unwrap();
    assert_eq!(again, kept);
    assert_eq!(journal.last_call().unwrap().ran, 0);
}

/// The number after `word` in a scenario's output (whose lines may start
/// with the test harness's own words).
fn after<N: std::str::FromStr>(output: &str, word: &str) -> Option<N> {
    output.lines().find_map(|line| {
        let (_, rest) = line.split_once(word)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Items of the kill test: each task sleeps a little, counts its run in
/// the file named by `RUNS_PATH` (one byte per run, appended: worker
/// processes too), and returns bits that depend on the item.
const KILL_ITEMS: u64 = 400;
const KILL_CHUNK: usize = 5;

fn kill_test_call(pool: &Pool, journal: &Journal) -> Result<f64, parpool::Error> {
    let runs = std::env::var("RUNS_PATH").unwrap();
    // How long each task sleeps: 2 ms, or what the test asks for.
    let micros: u64 = std::env::var("TASK_MICROS").map_or(2000, |v| v.parse().unwrap());
    pool.with_journal(journal).key("kill").map_reduce(
        move |x: u64| {
            std::thread::sleep(Duration::from_micros(micros));
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&runs)
                .unwrap();
            file.write_all(&[1]).unwrap();
            (x as f64).sin()
        },
        0..KILL_ITEMS,
        0.0,
        |a, b| a + b,
    )
}

#[test]
fn killed_at_random_instants_a_rerun_gives_the_same_bits() {
    let expected = common::pool(BackendKind::Serial, 1, Some(KILL_CHUNK))
        .map_reduce(|x: u64| (x as f64).sin(), 0..KILL_ITEMS, 0.0, |a, b| a + b)
        .unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kills = 0;
    for backend in ["threads", "processes"] {
        for _ in 0..6 {
            let scratch = Scratch::new("kill");
            let journal = scratch.file("kill.journal");
            let runs = scratch.file("runs");
            let start = |kill_after: Option<Duration>| {
                let mut command = scenario_command("kill");
                command
                    .env("PARPOOL_BACKEND", backend)
                    .env("PARPOOL_WORKERS", "2")
                    .env("JOURNAL_PATH", &journal)
                    .env("RUNS_PATH", &runs);
                match kill_after {
                    Some(delay) => {
                        let mut child = command
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .unwrap();
                        std::thread::sleep(delay);
                        let _ = child.kill();
                        child.wait().unwrap();
                        String::new()
                    }
                    None => {
                        let output = output_within(command, Duration::from_secs(120)).unwrap();
                        String::from_utf8_lossy(&output.stdout).into_owned()
                    }
                }
            };
            // Up to three kills, at random instants, then a run to the end.
            for _ in 0..3 {
                start(Some(Duration::from_millis(50 + random() % 400)));
                kills += 1;
            }
            let out = start(None);
            let bits: u64 = after(&out, "sum ").unwrap_or_else(|| panic!("{out}"));
            assert_eq!(bits, expected.to_bits(), "{backend}: {out}");
            // Every item ran at least once; beyond that, only the chunks
            // in flight at each kill ran again: at most two chunks per
            // worker (one running, one sent but not yet recorded, or on
            // threads at most two in all left waiting for the file).
            let ran = std::fs::metadata(&runs).map_or(0, |m| m.len());
            let bound = KILL_ITEMS + 3 * 2 * 2 * KILL_CHUNK as u64;
            assert!(
                ran >= KILL_ITEMS && ran <= bound,
                "{backend}: {ran} runs (bound {bound})"
            );
        }
    }
    eprintln!("killed at {kills} random instants");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_a_call_and_keeps_what_finished() {
    for backend in ["threads", "processes"] {
        let scratch = Scratch::new("term");
        let journal = scratch.file("term.journal");
        let runs = scratch.file("runs");
        let mut command = scenario_command("term");
        command
            // 400 tasks of 8 ms on 2 workers: the signal at 400 ms comes
            // well before the end, however fast the machine.
            .env("TASK_MICROS", "8000")
            .env("PARPOOL_BACKEND", backend)
            .env("PARPOOL_WORKERS", "2")
            .env("JOURNAL_PATH", &journal)
            .env("RUNS_PATH", &runs);
        // A process group of its own, so the signal reaches the workers
        // too, as Slurm's does.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        command.stdout(std::process::Stdio::piped());
        let child = command.spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(400));
        let sent = Instant::now();
        // SAFETY: kill(2) on the child's own process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let output = child.wait_with_output().unwrap();
        let elapsed = sent.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("cancelled"), "{backend}: {stdout}");
        assert!(
            elapsed < Duration::from_secs(3),
            "{backend}: took {elapsed:?} after SIGTERM"
        );
        let recorded: usize = after(&stdout, "recorded ").unwrap_or(0);
        assert!(
            recorded > 0,
            "{backend}: nothing recorded before the signal: {stdout}"
        );
        // The rerun reads them back.
        let mut command = scenario_command("kill");
        command
            .env("PARPOOL_BACKEND", backend)
            .env("PARPOOL_WORKERS", "2")
            .env("JOURNAL_PATH", &journal)
            .env("RUNS_PATH", &runs);
        let output = output_within(command, Duration::from_secs(120)).unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("read back "), "{backend}: {stdout}");
        let read_back: usize = after(&stdout, "read back ").unwrap();
        assert!(read_back >= recorded, "{backend}: {read_back} < {recorded}");
    }
}

#[test]
fn on_signals_refuses_what_cannot_be_caught() {
    #[cfg(unix)]
    {
        let error = CancelToken::on_signals(&[libc::SIGKILL]).unwrap_err();
        assert!(error.is_invalid_config(), "{error}");
    }
}

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    let path = || PathBuf::from(std::env::var("JOURNAL_PATH").unwrap());
    match std::env::var("PARPOOL_SCENARIO").as_deref() {
        Ok("open") => match Journal::open(path()) {
            Ok(_) => println!("opened"),
            Err(error) => println!("refused: {error}"),
        },
        Ok("kill") => {
            let pool = Pool::builder().chunk_size(KILL_CHUNK).build().unwrap();
            let journal = Journal::open(path()).unwrap();
            let sum = kill_test_call(&pool, &journal).unwrap();
            println!("sum {}", sum.to_bits());
            println!("read back {}", journal.last_call().unwrap().read_back);
        }
        #[cfg(unix)]
        Ok("term") => {
            let token = CancelToken::on_signals(&[libc::SIGTERM, libc::SIGINT]).unwrap();
            let pool = Pool::builder()
                .chunk_size(KILL_CHUNK)
                .build()
                .unwrap()
                .with_cancel(&token);
            let journal = Journal::open(path()).unwrap();
            match kill_test_call(&pool, &journal) {
                Ok(_) => println!("finished before the signal"),
                Err(error) => println!("{error}"),
            }
            let report = journal.last_call().unwrap();
            println!("recorded {}", report.ran);
        }
        // A journaled call of 40 items with a progress bar, one worker:
        // item STOP_AT (if given) panics, else each item takes 25 ms.
        #[cfg(feature = "progress")]
        Ok("progress") => {
            let stop_at: Option<u64> = std::env::var("STOP_AT").ok().map(|v| v.parse().unwrap());
            let pool = Pool::builder()
                .kind(parpool::BackendKind::Threads)
                .workers(1)
                .chunk_size(1)
                .force_progress(true)
                .build()
                .unwrap();
            let journal = Journal::open(path()).unwrap();
            let outcome = pool.with_journal(&journal).key("progress").map_reduce(
                move |x: u64| {
                    assert!(stop_at != Some(x), "stopped at {x}");
                    if stop_at.is_none() {
                        std::thread::sleep(Duration::from_millis(25));
                    }
                    x
                },
                0..40u64,
                0,
                |a, b| a + b,
            );
            let report = journal.last_call().unwrap();
            println!("outcome {outcome:?} read back {}", report.read_back);
        }
        _ => {}
    }
}

/// A resumed call's progress bar starts at the items read back: no line it
/// draws counts fewer.
#[cfg(feature = "progress")]
#[test]
fn the_progress_bar_of_a_resumed_call_starts_at_what_was_read_back() {
    let scratch = Scratch::new("progress");
    let journal = scratch.file("progress.journal");
    let run = |stop_at: Option<&str>| {
        let mut command = scenario_command("progress");
        command.env("JOURNAL_PATH", &journal);
        if let Some(stop_at) = stop_at {
            command.env("STOP_AT", stop_at);
        }
        let output = output_within(command, Duration::from_secs(120)).unwrap();
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (stdout, _) = run(Some("20"));
    assert!(stdout.contains("outcome Err"), "{stdout}");
    let (stdout, stderr) = run(None);
    assert!(stdout.contains("outcome Ok(780)"), "{stdout}");
    let read_back: usize = after(&stdout, "read back ").unwrap();
    assert_eq!(read_back, 20, "{stdout}");
    // "00:00:00 [====>   ] 24/40 items, ...", then "40/40 items in ...".
    let counts: Vec<usize> = stderr
        .lines()
        .filter_map(|line| {
            let (before, _) = line.split_once("/40 items")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(counts.contains(&40), "no final count: {stderr}");
    assert!(
        counts.iter().all(|&count| count >= read_back),
        "a line counts fewer than the {read_back} items read back: {counts:?}\n{stderr}"
    );
}

#[test]
fn a_stream_resumes_its_chunks_in_order() {
    for pool in pools() {
        let scratch = Scratch::new("imap");
        let path = scratch.file("imap.journal");
        let runs = Arc::new(SharedCounters::new(1));
        let stream = |journal: &Journal, stop_after: usize| {
            let runs = runs.clone();
            let results: Vec<f64> = pool
                .with_journal(journal)
                .key("stream")
                .imap(
                    move |x: u64| {
                        runs.add(0);
                        (x as f64).cbrt()
                    },
                    0..200u64,
                )
                .unwrap()
                .take(stop_after)
                .map(Result::unwrap)
                .collect();
            results
        };
        // A run that stops reading after 60 results (as a killed one would).
        let first = stream(&Journal::open(&path).unwrap(), 60);
        let ran_first = runs.value(0);
        let journal = Journal::open(&path).unwrap();
        let whole = stream(&journal, usize::MAX);
        drop(journal);
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let plain: Vec<f64> = (0..200u64).map(|x| (x as f64).cbrt()).collect();
        assert_eq!(bits(&whole), bits(&plain), "{pool:?}");
        assert_eq!(bits(&first), bits(&plain[..60]), "{pool:?}");
        // The chunks of the first 60 results (7 items each) were read back.
        let ran_second = runs.value(0) - ran_first;
        assert!(
            ran_second <= 200 - 56,
            "{pool:?}: {ran_second} items ran again"
        );
    }
}
