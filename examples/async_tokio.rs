//! parpool from async code: a tokio current-thread runtime keeps ticking
//! every 10 ms while it awaits a 2-second `map_async` on 2 workers, then
//! reads half of a stream and drops it. For contrast, the same call made
//! with the blocking `map` in the same place stalls the runtime for as long
//! as it runs.
//!
//! ```text
//! cargo run --release --features async --example async_tokio
//! cargo run --release --features async --example async_tokio -- --seconds 0.5 --backend processes
//! ```
//!
//! It prints the largest gap between ticks during each call (the goal for
//! `map_async`: under 20 ms) and how long after the drop the last task
//! started.

use futures_core::Stream;
use parpool::{BackendKind, Pool};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut seconds, mut kind) = (2.0f64, BackendKind::Threads);
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--");
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse()?,
            "--backend" => kind = value.parse()?,
            other => return Err(format!("unknown flag {other:?}").into()),
        }
    }
    let pool = Pool::builder()
        .kind(kind)
        .workers(2)
        .chunk_size(1)
        .build()?;
    // 2 workers x 20 tasks of `seconds` / 20 each: the call takes `seconds`.
    let task = Duration::from_secs_f64(seconds / 20.0);
    let sleepy = move |x: u64| {
        std::thread::sleep(task);
        x
    };
    println!(
        "tokio current-thread runtime, a tick every 10 ms; {} backend, 2 workers, 40 tasks of {:.0} ms",
        pool.kind(),
        task.as_secs_f64() * 1e3
    );

    // 1. Awaiting map_async: the ticker keeps running.
    let ticker = Ticker::start();
    let started = Instant::now();
    let results = pool.map_async(sleepy, 0..40u64).await?;
    let took = started.elapsed();
    let gap = ticker.stop().await;
    assert_eq!(results, (0..40).collect::<Vec<_>>());
    println!(
        "map_async: {:.2} s, largest gap between ticks {:.1} ms (goal: under 20 ms)",
        took.as_secs_f64(),
        gap.as_secs_f64() * 1e3
    );

    // 2. A stream read half-way, then dropped: the rest is cancelled.
    let started_tasks = Arc::new(AtomicU64::new(0));
    let last_start = Arc::new(AtomicU64::new(0));
    let clock = Instant::now();
    let counted = {
        let (started_tasks, last_start) = (started_tasks.clone(), last_start.clone());
        move |x: u64| {
            started_tasks.fetch_add(1, Ordering::Relaxed);
            last_start.store(clock.elapsed().as_micros() as u64, Ordering::Relaxed);
            std::thread::sleep(task);
            x
        }
    };
    let ticker = Ticker::start();
    let mut stream = pool.imap(counted, 0..40u64)?;
    for expected in 0..20 {
        let next = std::future::poll_fn(|context| Pin::new(&mut stream).poll_next(context)).await;
        assert_eq!(next.transpose()?, Some(expected));
    }
    let dropped_at = clock.elapsed();
    drop(stream);
    // Let whatever was already running finish, with the runtime free.
    tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
    let gap = ticker.stop().await;
    let last = Duration::from_micros(last_start.load(Ordering::Relaxed));
    let starts = if pool.capabilities().shares_memory {
        format!(
            "{} tasks started in all, the last {:.0} ms {} the drop",
            started_tasks.load(Ordering::Relaxed),
            last.abs_diff(dropped_at).as_secs_f64() * 1e3,
            if last > dropped_at { "after" } else { "before" }
        )
    } else {
        // Counters in this process do not see tasks in worker processes
        // (tests/async.rs counts them in shared memory).
        "tasks ran in worker processes, not counted here".to_string()
    };
    println!(
        "stream: 20 of 40 results read, then dropped; {starts}; largest gap between ticks {:.1} ms",
        gap.as_secs_f64() * 1e3
    );

    // 3. For contrast: the blocking map, called from the runtime's thread.
    let ticker = Ticker::start();
    // Let the ticker tick once before the runtime's only thread blocks.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = Instant::now();
    let results = pool.map(sleepy, 0..40u64)?;
    let took = started.elapsed();
    let gap = ticker.stop().await;
    assert_eq!(results.len(), 40);
    println!(
        "map (blocking, for contrast): {:.2} s, largest gap between ticks {:.1} ms: the runtime stood still",
        took.as_secs_f64(),
        gap.as_secs_f64() * 1e3
    );
    Ok(())
}

/// A task on the runtime that ticks every 10 ms and keeps the largest gap
/// between two ticks.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<Duration>,
}

impl Ticker {
    fn start() -> Ticker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut largest = Duration::ZERO;
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let now = Instant::now();
                    largest = largest.max(now - last);
                    last = now;
                }
                largest
            }
        });
        Ticker { stop, handle }
    }

    /// Stops the ticker (after its next tick) and returns the largest gap.
    async fn stop(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap_or_default()
    }
}
