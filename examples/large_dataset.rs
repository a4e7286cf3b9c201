//! A loop of `map` calls on worker processes over a large in-memory
//! dataset, the way an analysis walks through its data in batches: each
//! call sums 1000 blocks of the next batch. Every `map` forks its
//! workers, and fork copies the parent's page tables, so each call pays
//! for the dataset the parent holds before any work is done. The table
//! shows that cost and the two ways to lower it:
//!
//! - **huge pages**: the same dataset on 2 MiB pages, asked for with
//!   `madvise(MADV_HUGEPAGE)` before filling it, or `MADV_COLLAPSE`
//!   (Linux 6.1+) after (see `examples/support/huge_pages.rs`);
//! - **a session**: workers forked once, before the loop; each call sends
//!   its items and results through sockets instead. The workers see the
//!   dataset as it was when the session started.
//!
//! The threads backend's call is there for scale. Every way gives the same
//! bits.
//!
//! ```text
//! cargo run --release --example large_dataset                    # 4 GiB, 20 calls
//! cargo run --release --example large_dataset -- --gib 1 --calls 5
//! ```

mod support;

use parpool::{BackendKind, Pool};
use std::sync::Arc;
use std::time::Instant;
use support::huge_pages;

/// Items (blocks) per call.
const ITEMS: usize = 1000;

struct Options {
    gib: usize,
    calls: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options { gib: 4, calls: 20 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--gib" => options.gib = support::number(&flag, args.next())?,
            "--calls" => options.calls = support::number(&flag, args.next())?,
            _ => return Err(format!("unknown flag {flag:?}; use --gib N --calls K")),
        }
    }
    if options.gib == 0 || options.calls == 0 {
        return Err("--gib and --calls must be at least 1".to_string());
    }
    Ok(options)
}

fn main() {
    support::main_with(parse_options, run);
}

/// How the dataset's memory is laid out, and how the calls are made.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Plain,
    Advised,
    Collapsed,
    Session,
    Threads,
}

impl Way {
    fn describe(self) -> &'static str {
        match self {
            Way::Plain => "processes `map`, dataset on 4 KiB pages",
            Way::Advised => "processes `map`, dataset madvised MADV_HUGEPAGE before filling",
            Way::Collapsed => "processes `map`, dataset collapsed (MADV_COLLAPSE) after filling",
            Way::Session => "processes session (forked once), dataset on 4 KiB pages",
            Way::Threads => "threads `map` (no fork), dataset on 4 KiB pages",
        }
    }
}

/// A dataset of `values` floats, laid out as `way` asks.
fn dataset(values: usize, way: Way) -> Vec<f64> {
    let mut data = Vec::with_capacity(values);
    if way == Way::Advised {
        huge_pages::advise(&data);
    }
    data.extend((0..values).map(|i| (i % 1000) as f64 * 0.25));
    if way == Way::Collapsed {
        huge_pages::collapse(&data);
    }
    data
}

fn run(options: &Options) -> Result<(), parpool::Error> {
    let values = (options.gib << 30) / 8;
    let block = values / (options.calls * ITEMS);
    if block == 0 {
        eprintln!(
            "--gib {} is too small for --calls {}",
            options.gib, options.calls
        );
        std::process::exit(2);
    }
    println!(
        "{} GiB dataset, {} calls of {ITEMS} items (blocks of {} KiB), 2 workers; \
         transparent huge pages: {}",
        options.gib,
        options.calls,
        (block * 8) >> 10,
        huge_pages::system_setting().unwrap_or_else(|| "not on this system".to_string())
    );
    println!("| way | per call, best | per call, mean | dataset on huge pages | dataset made in |");
    println!("|---|---|---|---|---|");
    let mut sums = Vec::new();
    for way in [
        Way::Plain,
        Way::Advised,
        Way::Collapsed,
        Way::Session,
        Way::Threads,
    ] {
        let making = Instant::now();
        let data = Arc::new(dataset(values, way));
        let made_in = making.elapsed().as_secs_f64();
        let on_huge = huge_pages::huge_page_bytes().map_or("unknown".to_string(), |bytes| {
            format!("{:.0}%", 100.0 * bytes as f64 / (values * 8) as f64)
        });
        let kind = if way == Way::Threads {
            BackendKind::Threads
        } else {
            BackendKind::Processes
        };
        let pool = Pool::builder().kind(kind).workers(2).build()?;
        let shared = Arc::clone(&data);
        let sum_block =
            move |index: usize| -> f64 { shared[index * block..(index + 1) * block].iter().sum() };
        let mut session = match way {
            Way::Session => Some(pool.session(sum_block.clone())?),
            _ => None,
        };
        let mut times = Vec::new();
        let mut total = 0.0;
        for call in 0..options.calls {
            let items = call * ITEMS..(call + 1) * ITEMS;
            let start = Instant::now();
            let sums = match &mut session {
                Some(session) => session.map(items)?,
                None => pool.map(&sum_block, items)?,
            };
            times.push(start.elapsed().as_secs_f64());
            total += sums.iter().sum::<f64>();
        }
        let best = times.iter().copied().fold(f64::MAX, f64::min);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "| {} | {:.1} ms | {:.1} ms | {on_huge} | {made_in:.2} s |",
            way.describe(),
            best * 1e3,
            mean * 1e3
        );
        sums.push(total);
        drop(session);
        drop(data);
    }
    assert!(
        sums.iter().all(|sum| sum.to_bits() == sums[0].to_bits()),
        "every way gives the same bits: {sums:?}"
    );
    println!("sum {} (the same bits every way)", sums[0]);
    Ok(())
}
