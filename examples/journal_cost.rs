//! What a journal costs: the same calls with and without one, in one run,
//! best of a few repeats, and the disk's own rates beside them.
//!
//! ```text
//! cargo run --release --example journal_cost                  # about a minute
//! cargo run --release --example journal_cost -- --quick       # small sizes
//! cargo run --release --example journal_cost -- --dir /scratch/me
//! ```
//!
//! Rows: Monte-Carlo pi's `map_reduce` (compute-bound: goal 1.05x), a
//! `map` of 10^6 tiny items (goal 3x), 4 results of 200 MiB written to
//! the journal and read back against `dd ... conv=fdatasync` on the same
//! disk, and what one `fdatasync` costs here. Journals go to `--dir`
//! (default `target/`), and are removed.

use parpool::{Journal, Pool};
use parpool_workloads::pi::{self, PiEstimate};
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Options {
    quick: bool,
    dir: PathBuf,
}

fn main() {
    let mut options = Options {
        quick: false,
        dir: PathBuf::from("target"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--quick" => options.quick = true,
            "--dir" => options.dir = PathBuf::from(args.next().expect("--dir needs a path")),
            other => {
                eprintln!("unknown flag {other:?}; flags: --quick, --dir PATH");
                std::process::exit(2);
            }
        }
    }
    if let Err(error) = run(&options) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// The best of `repeats` timings of `body`, in seconds, and the slowest /
/// best spread.
fn best_of(repeats: usize, mut body: impl FnMut() -> f64) -> (f64, f64) {
    let times: Vec<f64> = (0..repeats).map(|_| body()).collect();
    spread(&times)
}

/// The best of `times` and the slowest / best spread.
fn spread(times: &[f64]) -> (f64, f64) {
    let best = times.iter().copied().fold(f64::MAX, f64::min);
    let worst = times.iter().copied().fold(0.0, f64::max);
    (best, worst / best)
}

/// `plain` and `journaled` timed in turn, `repeats` times each (so both
/// see the same machine): the best and the spread of each.
fn paired(
    repeats: usize,
    plain: impl FnMut() -> f64,
    journaled: impl FnMut() -> f64,
) -> ((f64, f64), (f64, f64)) {
    let (a, b) = paired_times(repeats, plain, journaled);
    (spread(&a), spread(&b))
}

/// Every timing of `plain` and `journaled`, timed in turn.
fn paired_times(
    repeats: usize,
    mut plain: impl FnMut() -> f64,
    mut journaled: impl FnMut() -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        a.push(plain());
        b.push(journaled());
    }
    (a, b)
}

/// The median of `times`.
fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A fresh journal path under `dir` (removed first).
fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!(
        "journal-cost-{}-{name}.journal",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Seconds `call` takes with a journal opened fresh at `dir/name`, which
/// is removed afterwards (opening and removing it are not timed).
fn with_fresh_journal(dir: &Path, name: &str, call: impl FnOnce(&Journal)) -> f64 {
    let path = fresh(dir, name);
    let journal = Journal::open(&path).unwrap();
    let started = Instant::now();
    call(&journal);
    let seconds = started.elapsed().as_secs_f64();
    drop(journal);
    let _ = std::fs::remove_file(&path);
    seconds
}

fn run(options: &Options) -> Result<(), parpool::Error> {
    let repeats = 5;
    let pool = Pool::new();
    let dir = &options.dir;
    std::fs::create_dir_all(dir).expect("the journal directory");
    println!(
        "journal cost, {} on {} workers, journals in {}, best of {repeats} (plain and journaled in turn)",
        pool.kind(),
        pool.workers(),
        dir.display()
    );
    println!();
    println!("| call | plain | journaled | ratio | spread plain / journaled |");
    println!("|---|---|---|---|---|");

    // Compute-bound: pi, one task per chunk.
    let (tasks, samples) = if options.quick {
        (8, 2_000_000)
    } else {
        (48, 50_000_000)
    };
    let pi_pool = Pool::builder().chunk_size(1).build()?;
    let term = move |task: u64| pi::run_task(task, samples, 1);
    let (zero, add) = (PiEstimate::ZERO, PiEstimate::combine);
    let ((plain, plain_spread), (journaled, journaled_spread)) = paired(
        repeats,
        || {
            let started = Instant::now();
            pi_pool.map_reduce(term, 0..tasks, zero, add).unwrap();
            started.elapsed().as_secs_f64()
        },
        || {
            with_fresh_journal(dir, "pi", |journal| {
                pi_pool
                    .with_journal(journal)
                    .map_reduce(term, 0..tasks, zero, add)
                    .unwrap();
            })
        },
    );
    println!(
        "| pi `map_reduce`, {tasks} x {samples} darts (goal 1.05x) | {plain:.3} s | {journaled:.3} s | {:.3}x | {plain_spread:.2}x / {journaled_spread:.2}x |",
        journaled / plain
    );

    // Tiny items: more calls, since one takes milliseconds and its time
    // depends on whether the allocator hands it memory already faulted in
    // (the best) or fresh pages (most calls): the best and the median.
    let items: u64 = if options.quick { 100_000 } else { 1_000_000 };
    let tiny_repeats = 21;
    let (plain_times, journaled_times) = paired_times(
        tiny_repeats,
        || {
            let started = Instant::now();
            pool.map(|x: u64| x.wrapping_mul(3) + 1, 0..items).unwrap();
            started.elapsed().as_secs_f64()
        },
        || {
            with_fresh_journal(dir, "tiny", |journal| {
                pool.with_journal(journal)
                    .map(|x: u64| x.wrapping_mul(3) + 1, 0..items)
                    .unwrap();
            })
        },
    );
    let ((plain, plain_spread), (journaled, journaled_spread)) =
        (spread(&plain_times), spread(&journaled_times));
    println!(
        "| `map` of {items} tiny items (goal 3x), best of {tiny_repeats} | {:.2} ms | {:.2} ms | {:.2}x | {plain_spread:.2}x / {journaled_spread:.2}x |",
        plain * 1e3,
        journaled * 1e3,
        journaled / plain
    );
    let (plain, journaled) = (median(&plain_times), median(&journaled_times));
    println!(
        "| the same, median of {tiny_repeats} | {:.2} ms | {:.2} ms | {:.2}x | |",
        plain * 1e3,
        journaled * 1e3,
        journaled / plain
    );

    // Large results: the journal's write and read-back rates, and dd's.
    let mib: usize = if options.quick { 8 } else { 200 };
    let results = 4;
    let bytes = (results * mib) as f64 * (1 << 20) as f64;
    let big_pool = Pool::builder().chunk_size(1).workers(2).build()?;
    let make = move |seed: u64| vec![seed as u8; mib << 20];
    let path = fresh(dir, "large");
    let (write, write_spread) = best_of(repeats, || {
        let _ = std::fs::remove_file(&path);
        let journal = Journal::open(&path).unwrap();
        let started = Instant::now();
        big_pool
            .with_journal(&journal)
            .key("large")
            .map(make, 0..results as u64)
            .unwrap();
        // Durable, as dd's conv=fdatasync is.
        journal.sync().unwrap();
        started.elapsed().as_secs_f64()
    });
    let (read, read_spread) = best_of(repeats, || {
        let journal = Journal::open(&path).unwrap();
        let started = Instant::now();
        let back = big_pool
            .with_journal(&journal)
            .key("large")
            .map(make, 0..results as u64)
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(journal.last_call().unwrap().ran, 0, "read back, not run");
        drop(back);
        seconds
    });
    let (compute, _) = best_of(repeats, || {
        let started = Instant::now();
        big_pool.map(make, 0..results as u64).unwrap();
        started.elapsed().as_secs_f64()
    });
    let _ = std::fs::remove_file(&path);
    let dd = dd_rate(dir, results * mib);
    println!();
    println!(
        "{results} results of {mib} MiB (`Vec<u8>`), 2 workers: the call without a journal {:.0} MB/s; \
         journaled (written and synced) {:.0} MB/s (spread {write_spread:.2}x); read back from \
         the journal {:.0} MB/s (spread {read_spread:.2}x); the disk, `dd bs=1M count={} conv=fdatasync`: {}",
        bytes / compute / 1e6,
        bytes / write / 1e6,
        bytes / read / 1e6,
        results * mib,
        dd.map_or_else(
            || "dd not run".to_string(),
            |rate| format!("{rate:.0} MB/s")
        ),
    );

    // One fdatasync of a small append, as the journal's group commit does.
    let path = fresh(dir, "sync");
    let journal = Journal::open(&path)?;
    let pool1 = Pool::builder().chunk_size(1).workers(1).build()?;
    let syncs = if options.quick { 5 } else { 20 };
    let mut total = 0.0;
    for round in 0..syncs {
        pool1
            .with_journal(&journal)
            .key(format!("s{round}"))
            .map(|x: u64| x, [round as u64])?;
        let started = Instant::now();
        journal.sync()?;
        total += started.elapsed().as_secs_f64();
    }
    drop(journal);
    let _ = std::fs::remove_file(&path);
    println!(
        "one fdatasync after a small append: {:.2} ms (mean of {syncs}); the journal's thread issues at most one per {} ms while records come in",
        total / syncs as f64 * 1e3,
        parpool::SYNC_INTERVAL.as_millis()
    );
    Ok(())
}

/// `dd`'s rate writing `mib` MiB to `dir` with `conv=fdatasync`, in MB/s.
fn dd_rate(dir: &Path, mib: usize) -> Option<f64> {
    let target = dir.join(format!("journal-cost-{}.dd", std::process::id()));
    let started = Instant::now();
    let status = std::process::Command::new("dd")
        .args([
            "if=/dev/zero".to_string(),
            format!("of={}", target.display()),
            "bs=1M".to_string(),
            format!("count={mib}"),
            "conv=fdatasync".to_string(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&target);
    status
        .success()
        .then(|| (mib as f64) * (1 << 20) as f64 / seconds / 1e6)
}
