//! A backend of one's own that implements only `Backend::run` gets the
//! whole pool: every call, lazy bounded streams, sessions, cancellation,
//! progress and every builder setting; and the builder checks settings
//! against what the backend says it can do.

mod common;

#[cfg(feature = "progress")]
use common::scenario_command;
use parpool::backend::Job;
use parpool::backend::{Capabilities, SerialBackend, ThreadsBackend};
use parpool::{Backend, BackendKind, CancelToken, Error, Pool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs chunks last to first on the calling thread, and records what it
/// was given.
#[derive(Debug, Default)]
struct Backwards {
    seen: Arc<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Chunk sizes of the jobs run.
    chunk_sizes: Mutex<Vec<usize>>,
    /// The most items one `run` was given.
    largest_job: AtomicUsize,
    /// The limits of the last job.
    limits: Mutex<Option<parpool::backend::TaskLimits>>,
}

impl Backend for Backwards {
    fn run(&self, job: &Job<'_>) -> Result<(), Error> {
        let plan = job.plan();
        self.seen
            .chunk_sizes
            .lock()
            .unwrap()
            .push(plan.chunk_size());
        self.seen
            .largest_job
            .fetch_max(plan.item_count(), Ordering::Relaxed);
        *self.seen.limits.lock().unwrap() = Some(job.limits());
        for chunk in (0..plan.chunk_count()).rev() {
            if job.should_stop() {
                break;
            }
            let _ = job.run_chunk(chunk);
        }
        Ok(())
    }
}

/// The same, claiming it can stop a running task (it cannot; only the
/// builder's check is tested with it).
#[derive(Debug, Default)]
struct ClaimsTimeouts(Backwards);

impl Backend for ClaimsTimeouts {
    fn run(&self, job: &Job<'_>) -> Result<(), Error> {
        self.0.run(job)
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::default();
        capabilities.can_time_out = true;
        capabilities.isolates_crashes = true;
        capabilities
    }
}

fn custom(chunk_size: usize) -> (Pool, Arc<Seen>) {
    let backend = Backwards::default();
    let seen = backend.seen.clone();
    let pool = Pool::builder()
        .backend(backend)
        .chunk_size(chunk_size)
        .build()
        .unwrap();
    (pool, seen)
}

#[test]
fn every_call_works_and_gets_the_pools_chunk_size() {
    let (pool, seen) = custom(3);
    assert_eq!(pool.kind(), BackendKind::Custom);
    assert_eq!(pool.map(|x: u64| x * x, 0..10).unwrap()[9], 81);
    assert!(
        seen.chunk_sizes
            .lock()
            .unwrap()
            .iter()
            .all(|&size| size == 3)
    );

    let results = pool.map_results(|x: u32| if x == 4 { panic!("four") } else { x }, 0..8);
    assert_eq!(results[3].as_ref().ok(), Some(&3));
    assert_eq!(
        common::without_location(results[4].as_ref().unwrap_err()),
        "task 4 of 8 panicked: four"
    );
    assert_eq!(results[7].as_ref().ok(), Some(&7));

    let error = pool
        .map(|x: u32| if x == 6 { panic!("six") } else { x }, 0..9)
        .unwrap_err();
    assert_eq!(
        common::without_location(&error),
        "task 6 of 9 panicked: six"
    );

    // Float sums are bit-identical to the serial backend's.
    let values: Vec<f64> = (0..1000).map(|i| 1.0 / (1.0 + f64::from(i))).collect();
    let serial = Pool::builder()
        .kind(BackendKind::Serial)
        .chunk_size(3)
        .build()
        .unwrap();
    let sum = |pool: &Pool| {
        pool.map_reduce(|x: f64| x.sin(), values.clone(), 0.0, |a, b| a + b)
            .unwrap()
    };
    assert_eq!(sum(&pool).to_bits(), sum(&serial).to_bits());

    let inits = AtomicUsize::new(0);
    let lengths = pool
        .map_init(
            || {
                inits.fetch_add(1, Ordering::Relaxed);
                String::new()
            },
            |buffer: &mut String, n: usize| {
                buffer.clear();
                buffer.extend(std::iter::repeat_n('x', n));
                buffer.len()
            },
            0..20,
        )
        .unwrap();
    assert_eq!(lengths, (0..20).collect::<Vec<_>>());
    assert_eq!(inits.load(Ordering::Relaxed), 1, "one worker, one state");
}

#[test]
fn streams_are_lazy_bounded_and_complete() {
    let backend = Backwards::default();
    let seen = backend.seen.clone();
    let pool = Pool::builder()
        .backend(backend)
        .chunk_size(4)
        .in_flight(2)
        .build()
        .unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut stream = pool.imap(|x: u64| x + 1, endless).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), 1);
    assert!(
        pulled.load(Ordering::Relaxed) <= 2 * 4,
        "pulled {} items for 2 chunks of 4 in flight",
        pulled.load(Ordering::Relaxed)
    );
    let first_hundred: Vec<u64> = stream.by_ref().take(99).map(Result::unwrap).collect();
    assert_eq!(first_hundred, (2..=100).collect::<Vec<_>>());
    drop(stream);
    assert!(seen.largest_job.load(Ordering::Relaxed) <= 2 * 4);
    assert!(
        seen.chunk_sizes
            .lock()
            .unwrap()
            .iter()
            .all(|&size| size == 4)
    );

    let mut unordered: Vec<(usize, u64)> = pool
        .imap_unordered(|x: u64| x * 3, 0..50u64)
        .unwrap()
        .map(|(index, result)| (index, result.unwrap()))
        .collect();
    unordered.sort();
    assert_eq!(
        unordered,
        (0..50).map(|x| (x, x as u64 * 3)).collect::<Vec<_>>()
    );

    let results: Vec<Result<u32, Error>> = pool
        .imap(|x: u32| if x == 13 { panic!("thirteen") } else { x }, 0..20)
        .unwrap()
        .collect();
    assert_eq!(
        common::without_location(results[13].as_ref().unwrap_err()),
        "task 13 panicked: thirteen"
    );
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 19);
}

#[test]
fn sessions_serve_many_calls() {
    let (pool, _) = custom(5);
    let mut session = pool.session(|x: i64| x - 1).unwrap();
    for round in 0..3i64 {
        let values = session.map(round..round + 30).unwrap();
        assert_eq!(values, (round - 1..round + 29).collect::<Vec<_>>());
    }
    let results = session.map_results([5, 6]);
    assert_eq!(results[1].as_ref().ok(), Some(&5));
    let streamed: Vec<i64> = session.imap(0..7).map(Result::unwrap).collect();
    assert_eq!(streamed, (-1..6).collect::<Vec<_>>());
}

#[test]
fn calls_and_streams_are_cancelled() {
    let (pool, _) = custom(2);
    let token = CancelToken::new();
    let watched = pool.with_cancel(&token);
    token.cancel();
    assert!(watched.map(|x: u32| x, 0..10).unwrap_err().is_cancelled());
    let results = watched.map_results(|x: u32| x, 0..4);
    assert!(
        results
            .iter()
            .all(|result| result.as_ref().unwrap_err().is_cancelled())
    );
    let mut stream = watched.imap(|x: u32| x, 0..10).unwrap();
    assert!(stream.next().unwrap().unwrap_err().is_cancelled());
    assert!(stream.next().is_none());

    // Cancelled from another thread while a stream runs: it ends.
    let token = CancelToken::new();
    let watched = pool.with_cancel(&token);
    let stopper = token.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.cancel();
    });
    let slow = |x: u64| {
        std::thread::sleep(Duration::from_millis(2));
        x
    };
    let results: Vec<Result<u64, Error>> = watched.imap(slow, 0u64..).unwrap().collect();
    canceller.join().unwrap();
    assert!(results.last().unwrap().as_ref().unwrap_err().is_cancelled());
    // The pool itself is fine.
    assert_eq!(pool.map(|x: u8| x, [1, 2]).unwrap(), [1, 2]);
}

#[test]
fn builder_settings_are_checked_against_the_backend() {
    let error = Pool::builder()
        .backend(Backwards::default())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(error.is_invalid_config());
    assert!(
        error.to_string().contains("custom backend cannot stop"),
        "{error}"
    );

    let error = Pool::builder()
        .backend(Backwards::default())
        .workers(4)
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("its own worker count"),
        "{error}"
    );

    let error = Pool::builder()
        .backend(Backwards::default())
        .kind(BackendKind::Threads)
        .build()
        .unwrap_err();
    assert!(error.is_invalid_config(), "{error}");

    // Retries need a backend that says a crash takes down only a worker.
    let error = Pool::builder()
        .backend(Backwards::default())
        .retries(1)
        .build()
        .unwrap_err();
    assert!(error.is_invalid_config(), "{error}");
    assert!(error.to_string().contains("retries"), "{error}");

    // A backend that says it can time out (and retry) gets the limits
    // with each call.
    let backend = ClaimsTimeouts::default();
    let seen = backend.0.seen.clone();
    let pool = Pool::builder()
        .backend(backend)
        .timeout(Duration::from_millis(750))
        .retries(2)
        .build()
        .unwrap();
    pool.map(|x: u8| x, [1]).unwrap();
    let limits = seen.limits.lock().unwrap().expect("a job ran");
    assert_eq!(limits.timeout, Some(Duration::from_millis(750)));
    assert_eq!(limits.retries, 2);
}

#[test]
fn capabilities_are_asked_of_the_backend() {
    let serial = SerialBackend.capabilities();
    assert!(serial.shares_memory && !serial.can_time_out);
    assert_eq!(serial.in_flight_per_worker, 1);
    let threads = ThreadsBackend::new(2).unwrap().capabilities();
    assert!(threads.shares_memory && !threads.can_time_out);
    assert_eq!((threads.rank, threads.ranks), (0, 1));
    let custom = Backwards::default().capabilities();
    assert_eq!(custom, Capabilities::default());
    // Where there is no fork, the backend cannot be made (tests/config.rs).
    if cfg!(unix) {
        let processes = parpool::backend::ProcessesBackend::new(2)
            .unwrap()
            .capabilities();
        assert!(processes.can_time_out && !processes.shares_memory);
        let pool = Pool::builder()
            .kind(BackendKind::Processes)
            .workers(2)
            .build()
            .unwrap();
        assert_eq!(pool.capabilities(), processes);
    }
}

#[cfg(feature = "progress")]
#[test]
fn progress_is_drawn_for_a_custom_backend() {
    let output = scenario_command("progress").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("600/600 items"), "{stderr}");
    assert!(stderr.contains("90 items in"), "{stderr}");
}

/// Not a test by itself: runs the scenario named by `PARPOOL_SCENARIO`.
#[test]
fn scenario_host() {
    #[cfg(feature = "progress")]
    if std::env::var("PARPOOL_SCENARIO").as_deref() == Ok("progress") {
        let pool = Pool::builder()
            .backend(Backwards::default())
            .chunk_size(7)
            .force_progress(true)
            .build()
            .unwrap();
        assert_eq!(pool.map(|x: u64| x, 0..600u64).unwrap().len(), 600);
        let count = pool
            .imap(|x: u64| x, (0..180u64).filter(|x| x % 2 == 0))
            .unwrap()
            .count();
        assert_eq!(count, 90);
    }
}
