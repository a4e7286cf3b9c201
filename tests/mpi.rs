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
use std::time::Duration;

/// Set in the environment of the launched ranks.
const ROLE: &str = "PARPOOL_MPI_TEST_ROLE";

/// How long one launch may take before it counts as hung. A debug build
/// takes about 40 s for every scenario on 4 ranks oversubscribing 2 cores
/// (the ranks spin while they wait for each other), and a loaded machine
/// several times that.
const HANG_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("rank") => rank_main(),
        Ok("crash") => crash_main(),
        Ok("adopt") => adopt_main(),
        Ok("singleton") => singleton_main(),
        Ok("adopt-single") => adopt_single_main(),
        Ok("journal") => journal_main(),
        _ => launcher_main(),
    }
}

/// The launcher: `mpiexec`, or the words of `MPIEXEC` (for another MPI's,
/// e.g. `mpiexec.openmpi --oversubscribe`).
fn mpiexec_command() -> Command {
    let words = std::env::var("MPIEXEC").unwrap_or_else(|_| "mpiexec".to_owned());
    let mut words = words.split_whitespace();
    let mut command = Command::new(words.next().expect("MPIEXEC names a program"));
    command.args(words);
    command
}

/// Runs `mpiexec -n ranks <this binary>` with `role`, killing it after
/// `limit`; returns (exit success, stdout + stderr).
fn mpiexec(ranks: usize, role: &str, limit: Duration) -> (bool, String) {
    mpiexec_with(ranks, role, limit, &[])
}

/// [`mpiexec`] with extra environment variables for the ranks. Its output
/// is read while it runs: ranks that print more than a pipe holds (panic
/// backtraces under `RUST_BACKTRACE=1`) would otherwise block on writing,
/// and look hung.
fn mpiexec_with(ranks: usize, role: &str, limit: Duration, env: &[(&str, &str)]) -> (bool, String) {
    let me = std::env::current_exe().expect("own path");
    let mut command = mpiexec_command();
    command
        .args(["-n", &ranks.to_string()])
        .arg(&me)
        .env(ROLE, role)
        .envs(env.iter().copied());
    match common::output_within(command, limit) {
        Ok(output) => (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(hung) => panic!("mpiexec -n {ranks} ({role}) hung: {hung}"),
    }
}

/// Items of the journaled call: 60, chunks of 3; `STOP_AT` makes item
/// `STOP_AT` panic, which stops the call on every rank part-way, and
/// `KILL_AT` makes the rank running item `KILL_AT` kill itself with
/// SIGKILL (each item then takes 10 ms, so both ranks run chunks).
const JOURNAL_ITEMS: u64 = 60;
const JOURNAL_CHUNK: usize = 3;
/// The item whose rank kills itself, and the chunks a resume must read
/// back: those claimed before it ([`JOURNAL_CHUNK`] items each) less the
/// one the other rank may have been running and one on its way to rank 0.
const KILL_AT: u64 = 45;
const KILLED_KEEPS: usize = KILL_AT as usize / JOURNAL_CHUNK - 2;

fn journal_term(x: u64) -> f64 {
    (x as f64 * 0.7).sin() * 1e6
}

/// A rank of a journaled run: opens the journal (before or after the pool,
/// by `ORDER`), runs the call on MPI (or on threads with `BACKEND=threads`,
/// no `mpiexec`), prints what it read back and the sum's bits.
fn journal_main() {
    let path = std::env::var("JOURNAL_PATH").expect("JOURNAL_PATH");
    let stop_at: Option<u64> = std::env::var("STOP_AT").ok().map(|v| v.parse().unwrap());
    let kill_at: Option<u64> = std::env::var("KILL_AT").ok().map(|v| v.parse().unwrap());
    let kind = match std::env::var("BACKEND").as_deref() {
        Ok("threads") => BackendKind::Threads,
        _ => BackendKind::Mpi,
    };
    let build = || {
        Pool::builder()
            .kind(kind)
            .workers(1)
            .chunk_size(JOURNAL_CHUNK)
            .build()
            .expect("a pool")
    };
    let (journal, pool) = if std::env::var("ORDER").as_deref() == Ok("pool-first") {
        let pool = build();
        (
            parpool::Journal::open(&path).expect("the journal opens"),
            pool,
        )
    } else {
        let journal = parpool::Journal::open(&path).expect("the journal opens");
        (journal, build())
    };
    let (rank, size) = (pool.rank(), pool.ranks());
    if std::env::var("MODE").as_deref() == Ok("imap") {
        // A journaled stream, read up to TAKE results (then dropped, as a
        // killed run would leave it), else to the end.
        let take: usize = std::env::var("TAKE").map_or(usize::MAX, |v| v.parse().unwrap());
        let values: Vec<f64> = pool
            .with_journal(&journal)
            .key("mpi-imap")
            .imap(journal_term, 0..JOURNAL_ITEMS)
            .expect("a stream")
            .take(take)
            .map(Result::unwrap)
            .collect();
        let report = journal.last_call().expect("a journaled stream");
        if values.len() < JOURNAL_ITEMS as usize {
            println!("rank {rank}/{size} journal stopped: took {}", values.len());
        } else {
            println!(
                "rank {rank}/{size} journal read back {} ran {} sum {}",
                report.read_back,
                report.ran,
                values.iter().sum::<f64>().to_bits()
            );
        }
        return;
    }
    let outcome = pool.with_journal(&journal).key("mpi").map_reduce(
        move |x: u64| {
            assert!(stop_at != Some(x), "stopped at {x}");
            if let Some(kill_at) = kill_at {
                if x == kill_at {
                    // SAFETY: kill(2) on this process; nothing after it runs.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            journal_term(x)
        },
        0..JOURNAL_ITEMS,
        0.0,
        |a, b| a + b,
    );
    let report = journal.last_call().expect("a journaled call");
    match outcome {
        Ok(sum) => println!(
            "rank {rank}/{size} journal read back {} ran {} sum {}",
            report.read_back,
            report.ran,
            sum.to_bits()
        ),
        Err(error) => println!("rank {rank}/{size} journal stopped: {error}"),
    }
}

/// A run stopped part-way on 2 ranks (by a panic, or by `kill -9` of one
/// rank) resumes on 1 rank, on 2 and 4 ranks and on threads, journal opened
/// before or after the pool, with the same bits.
fn journal_launches() {
    let serial = Pool::builder()
        .kind(BackendKind::Serial)
        .chunk_size(JOURNAL_CHUNK)
        .build()
        .unwrap();
    let expected = serial
        .map_reduce(journal_term, 0..JOURNAL_ITEMS, 0.0, |a, b| a + b)
        .unwrap()
        .to_bits();
    let dir = std::env::temp_dir().join(format!("parpool-mpi-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let stopped = dir.join("stopped.journal");
    let path = stopped.to_string_lossy().into_owned();
    let (success, output) = mpiexec_with(
        2,
        "journal",
        HANG_LIMIT,
        &[("JOURNAL_PATH", &path), ("STOP_AT", "40")],
    );
    assert!(success, "the stopped run failed:\n{output}");
    assert!(output.contains("rank 0/2 journal stopped"), "{output}");
    let resumes = [(4, "mpi", "pool-first"), (2, "mpi", "pool-first")];
    resume_journal(&dir, ("stopped", &stopped), &resumes, expected, 1);

    // kill -9 of the rank that runs item KILL_AT: mpiexec then ends the
    // other. Every chunk either rank finished before is in the journal.
    let killed = dir.join("killed.journal");
    let path = killed.to_string_lossy().into_owned();
    let kill_at = KILL_AT.to_string();
    let (success, output) = mpiexec_with(
        2,
        "journal",
        HANG_LIMIT,
        &[("JOURNAL_PATH", &path), ("KILL_AT", &kill_at)],
    );
    assert!(!success, "the killed run succeeded:\n{output}");
    assert!(!output.contains("journal read back"), "{output}");
    let resumes = [
        (1, "mpi", "journal-first"),
        (4, "mpi", "journal-first"),
        (0, "threads", "journal-first"),
    ];
    resume_journal(&dir, ("killed", &killed), &resumes, expected, KILLED_KEEPS);

    // A journaled stream dropped after 30 of 60 results on 2 ranks: every
    // rank must read back the same chunks (rank 0 shares them), or the
    // ranks would submit different chunks.
    let streamed = dir.join("stream.journal");
    let path = streamed.to_string_lossy().into_owned();
    let (success, output) = mpiexec_with(
        2,
        "journal",
        HANG_LIMIT,
        &[("JOURNAL_PATH", &path), ("MODE", "imap"), ("TAKE", "30")],
    );
    assert!(success, "the dropped stream failed:\n{output}");
    assert!(
        output.contains("rank 1/2 journal stopped: took 30"),
        "{output}"
    );
    let in_order = (0..JOURNAL_ITEMS).map(journal_term).sum::<f64>().to_bits();
    let resumes = [
        (1, "mpi", "journal-first"),
        (2, "mpi", "journal-first"),
        (4, "mpi", "pool-first"),
        (0, "threads", "journal-first"),
    ];
    // The 10 chunks of the results taken were recorded.
    let taken_chunks = 30 / JOURNAL_CHUNK;
    resume_journal(
        &dir,
        ("stream", &streamed),
        &resumes,
        in_order,
        taken_chunks,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Resumes copies of `journal` (named `name`; `stream` for the journaled
/// `imap`) on each of `resumes` (ranks, 0 for threads in one process;
/// backend; journal or pool first), checking
/// that every rank gets `expected` and read back at least `at_least`
/// chunks.
fn resume_journal(
    dir: &std::path::Path,
    (name, journal): (&str, &std::path::Path),
    resumes: &[(usize, &str, &str)],
    expected: u64,
    at_least: usize,
) {
    for &(ranks, backend, order) in resumes {
        let copy = dir.join(format!("{name}-{ranks}-{backend}-{order}.journal"));
        std::fs::copy(journal, &copy).unwrap();
        let copy = copy.to_string_lossy().into_owned();
        let mode = if name == "stream" { "imap" } else { "batch" };
        let env = [
            ("JOURNAL_PATH", copy.as_str()),
            ("BACKEND", backend),
            ("ORDER", order),
            ("MODE", mode),
        ];
        let (success, output) = if ranks == 0 {
            let me = std::env::current_exe().unwrap();
            let output = Command::new(&me)
                .env(ROLE, "journal")
                .envs(env)
                .output()
                .unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        } else {
            mpiexec_with(ranks, "journal", HANG_LIMIT, &env)
        };
        let what = format!("{name} on 2 ranks, resumed on {ranks} ({backend}, {order})");
        assert!(success, "{what} failed:\n{output}");
        let size = ranks.max(1);
        let mut read_back = 0;
        for rank in 0..size {
            let line = output
                .lines()
                .find(|line| line.starts_with(&format!("rank {rank}/{size} journal read back")))
                .unwrap_or_else(|| panic!("rank {rank}/{size} said nothing:\n{output}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            read_back = words[5].parse().unwrap();
            let bits: u64 = words[9].parse().unwrap();
            assert_eq!(bits, expected, "{what}: other bits");
            assert!(
                read_back >= at_least,
                "{what}: read back {read_back} chunks, not at least {at_least}"
            );
        }
        let on = match ranks {
            0 => "threads in one process".to_string(),
            1 => "1 rank".to_string(),
            ranks => format!("{ranks} ranks"),
        };
        println!(
            "{name} on 2 ranks, resumed on {on} (journal opened {order}): same bits, \
             {read_back} of {} chunks read back",
            JOURNAL_ITEMS as usize / JOURNAL_CHUNK
        );
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
    if let Some(line) = text.lines().find(|line| line.starts_with("MPI library:")) {
        println!("{line}");
    }
    println!("without mpiexec: every scenario passed as a single rank");
    for ranks in [1, 2, 4] {
        let (success, output) = mpiexec(ranks, "rank", HANG_LIMIT);
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
    let rma = [(parpool::env::MPI_RMA, "1")];
    for ranks in [2, 3] {
        let (success, output) = mpiexec_with(ranks, "rank", HANG_LIMIT, &rma);
        assert!(success, "mpiexec -n {ranks} (one-sided) failed:\n{output}");
        for rank in 0..ranks {
            for scenario in SCENARIOS {
                let line = format!("rank {rank}/{ranks} ok {scenario}");
                assert!(output.contains(&line), "missing {line:?} in:\n{output}");
            }
        }
        println!("mpiexec -n {ranks} with one-sided atomics: every scenario passed on every rank");
    }
    journal_launches();
    // A program that initialised MPI itself adopts the pool, on the world
    // and on a sub-communicator, then makes its own collective.
    for ranks in [1, 2, 4] {
        let (success, output) = mpiexec(ranks, "adopt", HANG_LIMIT);
        assert!(success, "mpiexec -n {ranks} (adopt) failed:\n{output}");
        for rank in 0..ranks {
            let line = format!("rank {rank}/{ranks} ok adopt");
            assert!(output.contains(&line), "missing {line:?} in:\n{output}");
        }
        println!("mpiexec -n {ranks}: a program's own MPI adopted, sub-communicators too");
    }
    // Started by a launcher of several tasks that MPI did not join: a clear
    // error, not a silent one-rank job. Each launcher's variable in turn.
    for variable in ["SLURM_STEP_NUM_TASKS", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"] {
        let output = Command::new(&me)
            .env(ROLE, "singleton")
            .env(variable, "2")
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{variable}: {text}");
        assert!(text.contains("singleton: refused"), "{variable}: {text}");
        assert!(text.contains(variable), "{variable}: {text}");
        println!("{variable}=2 on a one-rank world: refused with the fix");
    }
    // A program's own MPI at MPI_THREAD_SINGLE is refused, naming the
    // level the pool needs.
    let output = Command::new(&me)
        .env(ROLE, "adopt-single")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("adopt-single: ok"), "{text}");
    println!("{}", text.trim());
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
    "128-mb-of-results",
    "second-pool-reuses-mpi",
    "pi-matches-serial",
    "imap-and-sessions",
    "threads-inside-each-rank",
    "uneven-tasks-are-balanced-across-ranks",
    "a-failing-rank-stops-every-rank",
    "a-cancel-on-one-rank-is-everyones-error",
    "streams-overlap-and-stay-bounded",
    "streams-dropped-early-and-failed-sessions-go-on",
    "map-gather-to-rank-0",
    "journaled-calls-record-every-ranks-chunks",
];

/// Panics on item 7, which (one item per chunk) runs on one rank only.
fn seven_fails(x: u32) -> u32 {
    assert!(x != 7, "seven fails");
    x
}

/// The error every rank must get from a call of [`seven_fails`] over 0..20.
fn assert_seven_failed(error: &parpool::Error) {
    assert_eq!(
        common::without_location(error),
        "task 7 of 20 panicked: seven fails"
    );
}

fn rank_main() {
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .build()
        .expect("MPI starts");
    let (rank, size) = (pool.rank(), pool.ranks());
    if rank == 0 {
        // For the docs: which MPI, and the thread level it gives the pool
        // (which asks for MPI_THREAD_SERIALIZED).
        let library = mpi::environment::library_version().unwrap_or_default();
        let library = library.split_whitespace().take(3).collect::<Vec<_>>();
        println!(
            "MPI library: {}; thread level given: {:?}",
            library.join(" "),
            mpi::environment::threading_support()
        );
    }
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
    let error = one_item_chunks.map(seven_fails, 0..20).unwrap_err();
    assert_seven_failed(&error);
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

    // 128 MB of results in all, one result per rank's chunk (64 MB each
    // on 2 ranks). Compared a MiB at a time (memcmp): byte by byte, a debug
    // build takes most of a minute.
    let each = (128 << 20) / size;
    let big = one_item_chunks
        .map(move |x: usize| vec![x as u8; each], 0..size)
        .unwrap();
    assert!(big.iter().enumerate().all(|(i, v)| {
        let template = vec![i as u8; each.min(1 << 20)];
        v.len() == each
            && v.chunks(1 << 20)
                .all(|piece| piece == &template[..piece.len()])
    }));
    ok("128-mb-of-results");

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
    map_gather(&pool, rank, &ok);
    journaled(rank, size, &ok);
}

/// Journaled `map_gather`, `map` and `map_results` on every rank: rank 0
/// records the chunks of every rank as they finish (taken once, not again
/// in the exchange at the end), and the same calls then read all of them
/// back and run nothing, but for a chunk with a failure.
fn journaled(rank: usize, size: usize, ok: &dyn Fn(&str)) {
    // The ranks of one launch share their parent (the launcher's proxy).
    let path = std::env::temp_dir().join(format!(
        "parpool-mpi-scenario-{}-{size}.journal",
        std::os::unix::process::parent_id()
    ));
    if rank == 0 {
        let _ = std::fs::remove_file(&path);
    }
    let pool = Pool::builder()
        .kind(BackendKind::Mpi)
        .workers(2)
        .chunk_size(7)
        .build()
        .unwrap();
    let chunks = 200usize.div_ceil(7);
    let expected: Vec<u64> = (0..200u64).map(|x| x * x + 1).collect();
    // Round 1 is the next run: a journal opened again.
    for round in 0..2 {
        let journal = parpool::Journal::open(&path).unwrap();
        let journaled = pool.with_journal(&journal);
        let gathered = journaled.map_gather(|x: u64| x * x + 1, 0..200u64).unwrap();
        match rank {
            0 => assert_eq!(gathered.as_deref(), Some(&expected[..])),
            _ => assert!(gathered.is_none(), "rank {rank} got results"),
        }
        let report = journal.last_call().unwrap();
        let mapped = journaled.map(|x: u64| x * x + 1, 0..200u64).unwrap();
        assert_eq!(mapped, expected);
        let both = [report, journal.last_call().unwrap()];
        // map_results with item 11 failing: its chunk is never recorded.
        let results = journaled.map_results(
            |x: u32| {
                assert!(x != 11, "eleven");
                x + 1
            },
            0..30u32,
        );
        assert!(results[11].is_err() && results[12].as_ref().ok() == Some(&13));
        let partial = journal.last_call().unwrap();
        for report in both {
            let (read_back, ran) = if round == 0 { (0, chunks) } else { (chunks, 0) };
            assert_eq!(
                (report.read_back, report.ran),
                (read_back, ran),
                "round {round}"
            );
        }
        let read_back = if round == 0 { 0 } else { 4 };
        assert_eq!(
            (partial.read_back, partial.ran),
            (read_back, 5 - read_back),
            "round {round}"
        );
    }
    if rank == 0 {
        let _ = std::fs::remove_file(&path);
    }
    ok("journaled-calls-record-every-ranks-chunks");
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

/// `map_gather`: every result on rank 0 only, in order; a failure is every
/// rank's `Err`; `map_reduce` is unchanged beside it.
fn map_gather(pool: &Pool, rank: usize, ok: &dyn Fn(&str)) {
    let serial = Pool::builder().kind(BackendKind::Serial).build().unwrap();
    let square = |x: u64| x * x;
    let gathered = pool.map_gather(square, 0..1000u64).unwrap();
    let expected = serial.map(square, 0..1000u64).unwrap();
    match rank {
        0 => assert_eq!(gathered.as_deref(), Some(&expected[..])),
        _ => assert!(gathered.is_none(), "rank {rank} got results"),
    }
    let empty = pool.map_gather(square, Vec::new()).unwrap();
    assert_eq!(empty.is_some(), rank == 0);
    let one_item_chunks = Pool::builder()
        .kind(BackendKind::Mpi)
        .chunk_size(1)
        .build()
        .unwrap();
    // Fewer items than ranks: some ranks send nothing (an empty slice's
    // address is Open MPI's MPI_IN_PLACE, which a non-root rank may not
    // pass to a gather).
    for items in [1u32, 2, 3] {
        let few = one_item_chunks
            .map_gather(|x: u32| x * 3, 0..items)
            .unwrap();
        match rank {
            0 => assert_eq!(few, Some((0..items).map(|x| x * 3).collect())),
            _ => assert_eq!(few, None),
        }
    }
    let error = one_item_chunks.map_gather(seven_fails, 0..20).unwrap_err();
    assert_seven_failed(&error);
    let values: Vec<f64> = (0..10_000).map(|i| f64::from(i).sqrt()).collect();
    let sum = pool.map_reduce(|x: f64| x * 1.5, values.clone(), 0.0, |a, b| a + b);
    let reference = serial.map_reduce(|x: f64| x * 1.5, values, 0.0, |a, b| a + b);
    assert_eq!(sum.unwrap().to_bits(), reference.unwrap().to_bits());
    ok("map-gather-to-rank-0");
}

/// A program that initialises MPI itself (rsmpi, `MPI_THREAD_FUNNELED`),
/// then uses pools on the world and on half of it, then makes its own
/// collective, and finalises MPI itself when the universe drops.
fn adopt_main() {
    use mpi::traits::*;
    let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
        .expect("the program initialises MPI");
    assert!(level >= mpi::Threading::Funneled, "{level:?}");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let serial = Pool::builder().kind(BackendKind::Serial).build().unwrap();
    let pool = Pool::builder().kind(BackendKind::Mpi).build().unwrap();
    assert_eq!((pool.rank(), pool.ranks()), (rank, size));
    let square = |x: u64| x * x;
    let expected = serial.map(square, 0..500u64).unwrap();
    assert_eq!(pool.map(square, 0..500u64).unwrap(), expected);
    // Even and odd ranks each run a pool of their own, at the same time.
    let color = mpi::topology::Color::with_value((rank % 2) as i32);
    let half = world.split_by_color(color).expect("a color for every rank");
    let backend = parpool::backend::MpiBackend::with_communicator(&half, 2).unwrap();
    let sub = Pool::with_backend(backend);
    assert_eq!(sub.ranks(), half.size() as usize);
    assert_eq!(sub.rank(), half.rank() as usize);
    assert_eq!(sub.map(square, 0..500u64).unwrap(), expected);
    let gathered = sub.map_gather(square, 0..500u64).unwrap();
    assert_eq!(gathered.is_some(), half.rank() == 0);
    drop(sub);
    drop(pool);
    // The program's own collective, after the pools: MPI still works.
    let mut total = 0usize;
    world.all_reduce_into(&rank, &mut total, mpi::collective::SystemOperation::sum());
    assert_eq!(total, size * (size - 1) / 2);
    println!("rank {rank}/{size} ok adopt");
    // The program's communicators go before MPI does.
    drop(half);
    drop(universe);
}

/// A program that initialised MPI at `MPI_THREAD_SINGLE`: the pool is an
/// error naming the level it needs (or, if the library gave more than was
/// asked, it works).
fn adopt_single_main() {
    let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Single)
        .expect("the program initialises MPI");
    let built = Pool::builder().kind(BackendKind::Mpi).build();
    if level == mpi::Threading::Single {
        let message = built.expect_err("MPI_THREAD_SINGLE is refused").to_string();
        assert!(message.contains("MPI_THREAD_FUNNELED"), "{message}");
        assert!(message.contains("initialize_with_threading"), "{message}");
        println!("adopt-single: ok: refused: {message}");
    } else {
        let pool = built.expect("the library gave more than SINGLE");
        assert_eq!(pool.map(|x: u8| x, [1, 2]).unwrap(), [1, 2]);
        println!("adopt-single: ok: the library gave {level:?}, and the pool used it");
    }
    drop(universe);
}

/// A one-rank world whose environment says a launcher started more: making
/// the MPI pool must fail and say how to launch it.
fn singleton_main() {
    let error = Pool::builder()
        .kind(BackendKind::Mpi)
        .build()
        .expect_err("a one-rank world under a launcher of 2 tasks");
    let message = error.to_string();
    assert!(error.is_invalid_config(), "{message}");
    assert!(message.contains("started 2 tasks"), "{message}");
    assert!(message.contains("world has 1 rank"), "{message}");
    assert!(message.contains("srun --mpi=pmi2"), "{message}");
    println!("singleton: refused: {message}");
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
