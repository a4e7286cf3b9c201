//! A long run that can be stopped and resumed: Monte-Carlo pi through a
//! journal, stopped by the scheduler's SIGTERM (or Ctrl-C, or
//! `--stop-after`), and run again with the same command to finish it. The
//! estimate is the same bits as a run that was never stopped.
//!
//! ```text
//! cargo run --release --example resume -- --journal pi.journal --stop-after 1   # stopped after 1 s
//! cargo run --release --example resume -- --journal pi.journal                  # resumes, finishes
//! ```
//!
//! Flags: `--journal PATH` (required), `--tasks N` (default 48), `--samples
//! N` (darts per task, default 50000000), `--seed N` (default 1),
//! `--stop-after SECONDS` (cancel the call after that long, as a signal
//! would), `--backend NAME`, `--workers N`. One task per chunk, so every
//! finished task is kept.
//!
//! Exit status: 0 with the estimate; 3 when stopped (run it again to
//! resume); 1 on an error.

use parpool::{BackendKind, CancelToken, Journal, Pool};
use parpool_workloads::pi::{self, PiEstimate};
use std::time::{Duration, Instant};

struct Options {
    journal: String,
    tasks: u64,
    samples: u64,
    seed: u64,
    stop_after: Option<f64>,
    backend: Option<BackendKind>,
    workers: Option<usize>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        journal: String::new(),
        tasks: 48,
        samples: 50_000_000,
        seed: 1,
        stop_after: None,
        backend: None,
        workers: None,
    };
    let mut args = std::env::args().skip(1);
    let value = |flag: &str, value: Option<String>| value.ok_or(format!("{flag} needs a value"));
    while let Some(flag) = args.next() {
        let next = args.next();
        match flag.as_str() {
            "--journal" => options.journal = value(&flag, next)?,
            "--tasks" => options.tasks = parse_number(&flag, value(&flag, next)?)?,
            "--samples" => options.samples = parse_number(&flag, value(&flag, next)?)?,
            "--seed" => options.seed = parse_number(&flag, value(&flag, next)?)?,
            "--stop-after" => options.stop_after = Some(parse_number(&flag, value(&flag, next)?)?),
            "--workers" => options.workers = Some(parse_number(&flag, value(&flag, next)?)?),
            "--backend" => {
                options.backend = Some(value(&flag, next)?.parse().map_err(|e| format!("{e}"))?)
            }
            "--help" | "-h" => {
                return Err(
                    "usage: resume --journal PATH [--tasks N] [--samples N] [--seed N] \
                            [--stop-after SECONDS] [--backend NAME] [--workers N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other:?}; try --help")),
        }
    }
    if options.journal.is_empty() {
        return Err("--journal PATH is required".into());
    }
    Ok(options)
}

fn parse_number<N: std::str::FromStr>(flag: &str, text: String) -> Result<N, String> {
    text.parse()
        .map_err(|_| format!("{flag} takes a number, not {text:?}"))
}

fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    match run(&options) {
        Ok(true) => {}
        Ok(false) => std::process::exit(3),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}

/// True if the estimate is complete.
fn run(options: &Options) -> Result<bool, parpool::Error> {
    // SIGTERM: Slurm's at a time limit or preemption; SIGINT: Ctrl-C.
    let stop = CancelToken::on_signals(&[libc::SIGTERM, libc::SIGINT])?;
    if let Some(seconds) = options.stop_after {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop.cancel();
        });
    }
    let mut builder = Pool::builder().chunk_size(1);
    if let Some(kind) = options.backend {
        builder = builder.kind(kind);
    }
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let pool = builder.build()?.with_cancel(&stop);
    let journal = Journal::open(&options.journal)?;
    let restarts = std::env::var("SLURM_RESTART_COUNT").unwrap_or_else(|_| "0".into());
    println!(
        "journal {}: {} bytes, Slurm restart count {restarts}",
        options.journal,
        journal.size()?
    );
    let (samples, seed) = (options.samples, options.seed);
    let started = Instant::now();
    let estimate = pool.with_journal(&journal).key("pi").map_reduce(
        move |task: u64| pi::run_task(task, samples, seed),
        0..options.tasks,
        PiEstimate::ZERO,
        PiEstimate::combine,
    );
    let report = journal.last_call().expect("a journaled call was made");
    println!(
        "{} of {} chunks read back from the journal, {} ran ({:.2} s, {} on {} workers)",
        report.read_back,
        report.chunks,
        report.ran,
        started.elapsed().as_secs_f64(),
        pool.kind(),
        pool.workers()
    );
    match estimate {
        Ok(estimate) => {
            println!(
                "pi ~ {:.12} ({} x {} darts, seed {})",
                estimate.value(),
                options.tasks,
                options.samples,
                options.seed
            );
            Ok(true)
        }
        Err(error) if error.is_cancelled() => {
            println!(
                "stopped with {} of {} chunks in the journal: run the same command again to resume",
                report.read_back + report.ran,
                report.chunks
            );
            Ok(false)
        }
        Err(error) => Err(error),
    }
}
