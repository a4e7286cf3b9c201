//! The `async` feature: futures of the batch calls and streams of `imap`
//! give what the blocking calls give, on every backend; dropping a future
//! or a stream cancels its call (no task starts after the drop beyond the
//! ones already handed to a worker), and nothing is left behind.

mod common;

use common::{SharedCounters, every_pool};
use futures_core::Stream;
use parpool::{BackendKind, Pool};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Tests here count this process's descriptors, children and threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn waker() -> Waker {
    Arc::new(Unpark(std::thread::current())).into()
}

/// The smallest executor: poll, park until woken, poll again.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = waker();
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// The next item of a stream, waiting as an executor would.
fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    block_on(std::future::poll_fn(|context| {
        Pin::new(&mut *stream).poll_next(context)
    }))
}

/// How many `parpool-async` helpers are alive (busy or idle).
fn helpers() -> usize {
    thread_ids("parpool-async").len()
}

/// The ids of this process's threads whose names start with `prefix`.
fn thread_ids(prefix: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc/self/task").map_or_else(
        |_| Default::default(),
        |tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.trim().starts_with(prefix))
                })
                .map(|task| task.file_name().to_string_lossy().into_owned())
                .collect()
        },
    )
}

/// A backend of the calling thread, with no threads to lend: its awaited
/// calls need a helper.
#[derive(Debug)]
struct Inline;

impl parpool::backend::Backend for Inline {
    fn run(&self, job: &parpool::backend::Job<'_>) -> Result<(), parpool::Error> {
        for chunk in 0..job.plan().chunk_count() {
            let _ = job.run_chunk(chunk);
        }
        Ok(())
    }
}

/// An awaited call that needs a helper: afterwards one is alive (idle),
/// as it stays for a while to serve the next call.
fn warm_up_helpers() {
    let pool = Pool::with_backend(Inline);
    assert_eq!(block_on(pool.map_async(|x: u8| x, [1, 2])).unwrap(), [1, 2]);
}

fn with_chunk_size(pool: &Pool, chunk_size: usize) -> Pool {
    common::pool(pool.kind(), pool.workers(), Some(chunk_size))
}

#[test]
fn futures_give_what_the_blocking_calls_give_on_every_backend() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for pool in every_pool() {
        let square = |x: u64| x * x;
        assert_eq!(
            block_on(pool.map_async(square, 0..1000u64)).unwrap(),
            pool.map(square, 0..1000u64).unwrap(),
            "{:?}",
            pool.kind()
        );
        let values: Vec<f64> = (0..5000).map(|i| f64::from(i).sin()).collect();
        let sum =
            block_on(pool.map_reduce_async(|x: f64| x * 3.0, values.clone(), 0.0, |a, b| a + b));
        let reference = pool.map_reduce(|x: f64| x * 3.0, values, 0.0, |a, b| a + b);
        assert_eq!(sum.unwrap().to_bits(), reference.unwrap().to_bits());
        let fails_on_3 = |x: u32| {
            assert!(x != 3, "three");
            x
        };
        let results = block_on(pool.map_results_async(fails_on_3, 0..8u32));
        for (index, result) in results.iter().enumerate() {
            match result {
                Ok(value) => assert_eq!(*value as usize, index),
                Err(error) => assert!(index == 3 && error.is_panic(), "{error}"),
            }
        }
        let error = block_on(pool.map_async(fails_on_3, 0..8u32)).unwrap_err();
        assert_eq!(error.task_index(), Some(3), "{error}");
    }
}

#[test]
fn streams_give_what_the_iterators_give_on_every_backend() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for pool in every_pool() {
        let pool = with_chunk_size(&pool, 7);
        let mut stream = pool.imap(|x: u64| x + 1, 0..200u64).unwrap();
        let mut streamed = Vec::new();
        while let Some(result) = next(&mut stream) {
            streamed.push(result.unwrap());
        }
        assert_eq!(streamed, (1..201).collect::<Vec<_>>(), "{:?}", pool.kind());
        let mut unordered = pool.imap_unordered(|x: u64| x * 2, 0..100u64).unwrap();
        let mut seen = Vec::new();
        while let Some((index, result)) = next(&mut unordered) {
            assert_eq!(result.unwrap(), index as u64 * 2);
            seen.push(index);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // Polled as a stream, then read as an iterator: the same order.
        let mut mixed = pool.imap(|x: u32| x, 0..50u32).unwrap();
        assert_eq!(next(&mut mixed).unwrap().unwrap(), 0);
        let rest: Vec<u32> = mixed.map(Result::unwrap).collect();
        assert_eq!(rest, (1..50).collect::<Vec<_>>());
    }
}

/// Tasks of 20 ms, one per chunk; `started` counts each task's start in
/// shared memory (so tasks in worker processes count too).
fn slow_counted(started: &Arc<SharedCounters>) -> impl Fn(u32) -> u32 + Send + Sync + 'static {
    let started = started.clone();
    move |x: u32| {
        started.add(0);
        std::thread::sleep(Duration::from_millis(20));
        x
    }
}

/// Every backend, for pools of 2 workers and one item per chunk (made
/// inside each case, so the case sees their threads end).
fn every_kind() -> impl Iterator<Item = BackendKind> {
    BackendKind::AVAILABLE.iter().copied()
}

/// On every backend, in a case checked for leaks: `start_then_drop` starts
/// a call of [`slow_counted`] tasks on a pool of 2 workers (one item per
/// chunk) and drops it. Afterwards at most `allowed(pool)` more tasks may
/// start (those already handed out), and the helper that drove the call
/// (if it had one) is free again: the next awaited call starts no new one.
fn dropping_cancels(
    start_then_drop: impl Fn(&Pool, &Arc<SharedCounters>),
    allowed: impl Fn(&Pool) -> usize,
) {
    {
        // Under the lock too: the MPI call starts threads of parpool's,
        // which the thread-count test would see as its own.
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        common::start_mpi_if_built();
    }
    for kind in every_kind() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        warm_up_helpers();
        let case = || {
            let helpers_before = helpers();
            let pool = common::pool(kind, 2, Some(1));
            let started = Arc::new(SharedCounters::new(1));
            start_then_drop(&pool, &started);
            let at_drop = started.value(0);
            std::thread::sleep(Duration::from_millis(400));
            let after = started.value(0);
            assert!(at_drop > 0, "{:?}: nothing ran", pool.kind());
            let bound = allowed(&pool);
            assert!(
                after - at_drop <= bound,
                "{:?}: {at_drop} tasks had started at the drop, {after} after it (bound {bound})",
                pool.kind()
            );
            assert!(after < 100, "{:?}: {after} tasks ran", pool.kind());
            warm_up_helpers();
            assert!(
                helpers() <= helpers_before.max(1),
                "{:?}: the dropped call's helper was still busy 400 ms after the drop \
                 ({} helpers, {helpers_before} before)",
                pool.kind(),
                helpers()
            );
        };
        if kind == BackendKind::Mpi {
            // MPI's own threads open and close descriptors while it runs:
            // counted here are the tasks and the helper, not descriptors.
            case();
        } else {
            common::without_leaks(case);
        }
    }
}

#[test]
fn dropping_a_future_cancels_its_call_on_every_backend() {
    let start_then_drop = |pool: &Pool, started: &Arc<SharedCounters>| {
        let mut future = pool.map_async(slow_counted(started), 0..1000u32);
        // The call runs without being polled, and the first poll does not
        // wait for it.
        let waker = waker();
        assert!(
            Pin::new(&mut future)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        std::thread::sleep(Duration::from_millis(200));
        drop(future);
    };
    // Only tasks already handed to a worker may start after the drop.
    dropping_cancels(start_then_drop, Pool::workers);
}

#[test]
fn dropping_a_stream_cancels_it_on_every_backend() {
    let start_then_drop = |pool: &Pool, started: &Arc<SharedCounters>| {
        let mut stream = pool.imap(slow_counted(started), 0..1000u32).unwrap();
        for expected in 0..5 {
            assert_eq!(next(&mut stream).unwrap().unwrap(), expected);
        }
        drop(stream);
    };
    // The stream's own bound: chunks already submitted (in flight) may
    // still start, nothing past them.
    dropping_cancels(start_then_drop, |pool| {
        pool.capabilities().in_flight_per_worker * pool.workers() + 1
    });
}

#[test]
fn a_token_of_the_pool_still_cancels_an_awaited_call() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let token = parpool::CancelToken::new();
    let pool = common::pool(BackendKind::Threads, 2, Some(1)).with_cancel(&token);
    let started = Arc::new(SharedCounters::new(1));
    let future = pool.map_async(slow_counted(&started), 0..1000u32);
    std::thread::sleep(Duration::from_millis(100));
    token.cancel();
    let error = block_on(future).unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    // The pool's token is not cancelled by a dropped future of another call.
    let other = parpool::CancelToken::new();
    let pool = common::pool(BackendKind::Threads, 2, None).with_cancel(&other);
    drop(pool.map_async(|x: u8| x, [1, 2, 3]));
    assert!(!other.is_cancelled());
    assert_eq!(
        block_on(pool.map_async(|x: u8| x, [1, 2, 3])).unwrap(),
        [1, 2, 3]
    );
}

/// After a warm-up, 1000 awaited calls in a row start no thread of
/// parpool's: on threads (and serial) the pool's own threads complete the
/// future, elsewhere the same helper is reused. Each call is looked at
/// while it runs, when a helper of its own would be alive.
#[test]
fn awaited_calls_start_no_thread_after_warm_up() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for kind in every_kind().filter(|kind| *kind != BackendKind::Mpi) {
        let pool = common::pool(kind, 2, None);
        // The first item waits, so the call is still running when looked at.
        let call = |pool: &Pool| {
            pool.map_async(
                |x: u64| {
                    if x == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    x * x
                },
                0..1000u64,
            )
        };
        assert_eq!(block_on(call(&pool)).unwrap()[3], 9);
        // MPI pools of other tests may still be ending their threads
        // (`parpool-mpi-N`); this test makes none.
        let ours = || {
            let mut ids = thread_ids("parpool-");
            ids.retain(|id| {
                !std::fs::read_to_string(format!("/proc/self/task/{id}/comm"))
                    .is_ok_and(|name| name.starts_with("parpool-mpi"))
            });
            ids
        };
        let before = ours();
        for round in 0..1000 {
            let mut future = call(&pool);
            let _ = Pin::new(&mut future).poll(&mut Context::from_waker(&waker()));
            let during = ours();
            assert!(
                during.is_subset(&before),
                "{kind:?}: call {round} started threads {:?}",
                during
                    .difference(&before)
                    .map(
                        |id| std::fs::read_to_string(format!("/proc/self/task/{id}/comm"))
                            .map_or_else(|_| id.clone(), |name| format!("{id} {}", name.trim()))
                    )
                    .collect::<Vec<_>>()
            );
            assert_eq!(block_on(future).unwrap()[999], 999 * 999);
        }
    }
}
