//! How fast large results come back from worker processes, against the
//! thread backend in the same run: `map` over 4 items with `chunk_size(1)`
//! on 2 workers, each item returning a `Vec<u8>` or a `Vec<f64>` of the
//! given size. The backends take turns in every repeat, so both see the
//! same machine; the table shows the best repeat of each and how much the
//! repeats differ (slowest / best).
//!
//! ```text
//! cargo run --release --example results_rate                         # 4 x 200 MiB, best of 3
//! cargo run --release --example results_rate -- --mib 16 --repeats 2
//! ```

mod support;

use parpool::{BackendKind, Pool};
use std::hint::black_box;
use std::time::Instant;

struct Options {
    mib: usize,
    repeats: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        mib: 200,
        repeats: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--mib" => options.mib = support::number(&flag, args.next())?,
            "--repeats" => options.repeats = support::number(&flag, args.next())?,
            _ => return Err(format!("unknown flag {flag:?}; use --mib N --repeats K")),
        }
    }
    if options.mib == 0 || options.repeats == 0 {
        return Err("--mib and --repeats must be at least 1".to_string());
    }
    Ok(options)
}

fn main() {
    support::main_with(parse_options, run);
}

fn run(options: &Options) -> Result<(), parpool::Error> {
    let Options { mib, repeats } = *options;
    let bytes = mib << 20;
    let pools: Vec<(BackendKind, Pool)> = [BackendKind::Threads, BackendKind::Processes]
        .into_iter()
        .map(|kind| {
            let pool = Pool::builder()
                .kind(kind)
                .workers(2)
                .chunk_size(1)
                .build()?;
            Ok((kind, pool))
        })
        .collect::<Result<_, parpool::Error>>()?;
    println!("4 results of {mib} MiB, 2 workers, chunk_size(1), best of {repeats}");
    println!("| result | backend | MB/s | of threads | repeats differ |");
    println!("|---|---|---|---|---|");
    for result in ["Vec<u8>", "Vec<f64>"] {
        // Seconds of every repeat, per backend.
        let mut times = vec![Vec::new(); pools.len()];
        for _ in 0..repeats {
            for ((_, pool), times) in pools.iter().zip(&mut times) {
                let start = Instant::now();
                let total = if result == "Vec<u8>" {
                    let out = pool.map(move |i: u8| vec![i; bytes], 0..4u8)?;
                    assert!(out.iter().enumerate().all(|(i, v)| v[bytes - 1] == i as u8));
                    black_box(out).len()
                } else {
                    let out = pool.map(move |i: u8| vec![f64::from(i) + 0.5; bytes / 8], 0..4u8)?;
                    assert!(out.iter().enumerate().all(|(i, v)| v[0] == i as f64 + 0.5));
                    black_box(out).len()
                };
                times.push(start.elapsed().as_secs_f64());
                assert_eq!(total, 4);
            }
        }
        let best = |times: &[f64]| times.iter().copied().fold(f64::MAX, f64::min);
        let threads_rate = 4.0 * bytes as f64 / best(&times[0]) / 1e6;
        for ((kind, _), times) in pools.iter().zip(&times) {
            let rate = 4.0 * bytes as f64 / best(times) / 1e6;
            let slowest = times.iter().copied().fold(0.0, f64::max);
            println!(
                "| {result} | {} | {rate:.0} | {:.0}% | {:.2}x |",
                kind.name(),
                100.0 * rate / threads_rate,
                slowest / best(times)
            );
        }
    }
    Ok(())
}
