//! Unit tests of the job types: claims, encoding, drops.

use super::codec::Codec;
use super::map::MapJob;
use super::reduce::ReduceJob;
use super::*;
use crate::plan::ChunkPlan;
use std::sync::Arc;

fn square_job(
    n: u64,
    chunk_size: usize,
) -> MapJob<u64, u64, (), impl Fn() + Sync, impl Fn(&mut (), u64) -> u64 + Sync> {
    let items: Vec<u64> = (0..n).collect();
    MapJob::new(
        items,
        ChunkPlan::new(n as usize, chunk_size),
        (|| (), |_: &mut (), x: u64| x * x),
        (None, Codec::values()),
        Watch::default(),
        TaskLimits::default(),
    )
}

#[test]
fn chunks_run_in_any_order_give_ordered_outputs() {
    let job = square_job(10, 3);
    for chunk in [3, 1, 0, 2] {
        job.run_chunk(chunk, None).expect("chunk runs");
    }
    assert_eq!(
        job.into_outputs().expect("complete"),
        [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
}

#[test]
fn a_chunk_cannot_run_twice_or_out_of_range() {
    let job = square_job(4, 2);
    job.run_chunk(0, None).expect("first run");
    assert!(job.run_chunk(0, None).is_err());
    assert!(job.run_chunk(7, None).is_err());
    let error = job.into_outputs().expect_err("chunk 1 never ran");
    assert!(error.to_string().contains("without running chunk 1"));
}

#[test]
fn encoded_chunks_are_accepted_by_another_copy() {
    let worker = square_job(7, 3);
    let parent = square_job(7, 3);
    for chunk in 0..3 {
        worker.run_chunk(chunk, None).expect("runs");
        let bytes = worker.encode_chunk(chunk).expect("encodes");
        parent.accept_chunk(chunk, &bytes).expect("accepts");
    }
    assert!(
        parent
            .accept_chunk(0, &worker.encode_chunk(0).unwrap())
            .is_err()
    );
    assert_eq!(parent.into_outputs().unwrap(), [0, 1, 4, 9, 16, 25, 36]);
}

#[test]
fn garbage_bytes_are_an_encoding_error_naming_the_chunk_start() {
    let job = square_job(7, 3);
    let error = job
        .accept_chunk(1, &[0xff, 0xff, 0xff])
        .expect_err("garbage");
    assert_eq!(error.task_index(), Some(3));
    assert!(error.to_string().contains("could not be decoded"));
    let short = postcard::to_stdvec(&vec![1u64]).unwrap();
    assert!(job.accept_chunk(1, &short).is_err());
    // The failed accept left the chunk pending.
    assert!(!job.is_chunk_done(1));
}

#[test]
fn the_current_item_is_published_before_each_task() {
    let job = square_job(5, 5);
    let current = AtomicUsize::new(usize::MAX);
    job.run_chunk(0, Some(&current)).unwrap();
    assert_eq!(current.load(Ordering::Relaxed), 4);
}

/// Counts live values, to prove every input and output is dropped once.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Counted {
    #[serde(skip)]
    live: Option<Arc<AtomicUsize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn failed_jobs_drop_every_input_and_output_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let make = |live: &Arc<AtomicUsize>| {
        live.fetch_add(1, Ordering::Relaxed);
        Counted {
            live: Some(live.clone()),
        }
    };
    let items: Vec<(usize, Counted)> = (0..20).map(|i| (i, make(&live))).collect();
    let outputs_live = live.clone();
    let job = MapJob::new(
        items,
        ChunkPlan::new(20, 4),
        (
            || (),
            move |_: &mut (), (i, item): (usize, Counted)| {
                drop(item);
                if i == 6 {
                    panic!("item six");
                }
                outputs_live.fetch_add(1, Ordering::Relaxed);
                Counted {
                    live: Some(outputs_live.clone()),
                }
            },
        ),
        (None, Codec::values()),
        Watch::default(),
        TaskLimits::default(),
    );
    job.run_chunk(0, None).unwrap();
    let error = job.run_chunk(1, None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("task 6 of 20 panicked at src/job/tests.rs:")
    );
    assert_eq!(error.panic_message(), Some("item six"));
    assert!(job.should_stop());
    assert!(live.load(Ordering::Relaxed) > 0);
    let error = job.into_outputs().unwrap_err();
    assert_eq!(error.task_index(), Some(6));
    assert_eq!(
        live.load(Ordering::Relaxed),
        0,
        "something leaked or was dropped twice"
    );
}

#[test]
fn keep_going_jobs_skip_recorded_failures() {
    let items: Vec<u64> = (0..6).collect();
    let job = MapJob::new(
        items,
        ChunkPlan::new(6, 3),
        (
            || (),
            |_: &mut (), x: u64| -> Result<u64, Error> { Ok(x + 100) },
        ),
        (Some(Err), Codec::results()),
        Watch::default(),
        TaskLimits::default(),
    );
    job.record_failure(Error::crash(4, 6, "killed by signal 9 (SIGKILL)"));
    assert!(!job.should_stop());
    job.run_chunk(0, None).unwrap();
    job.run_chunk(1, None).unwrap();
    let outputs = job.into_outputs().unwrap();
    assert_eq!(outputs[3].as_ref().ok(), Some(&103));
    assert!(outputs[4].as_ref().unwrap_err().is_crash());
    assert_eq!(outputs[5].as_ref().ok(), Some(&105));
}

#[test]
fn reduce_partials_travel_and_combine_in_chunk_order() {
    let make = || {
        ReduceJob::new(
            vec!["a", "b", "c", "d", "e"],
            ChunkPlan::new(5, 2),
            (
                |s: &str| s.to_string(),
                String::new(),
                |a: String, b: String| a + &b,
            ),
            Codec::values(),
            Watch::default(),
            TaskLimits::default(),
        )
    };
    let worker = make();
    let parent = make();
    for chunk in [2, 0, 1] {
        worker.run_chunk(chunk, None).unwrap();
        parent
            .accept_chunk(chunk, &worker.encode_chunk(chunk).unwrap())
            .unwrap();
    }
    assert_eq!(parent.into_result().unwrap(), "abcde");
}

#[test]
fn a_released_chunk_drops_its_results_once_and_is_no_longer_done() {
    // Strings count their drops through a shared counter.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let made = drops.clone();
    let job = MapJob::new(
        (0..6u32).collect(),
        ChunkPlan::new(6, 3),
        (|| (), move |_: &mut (), _: u32| Counted(made.clone())),
        (None, Codec::local()),
        Watch::default(),
        TaskLimits::default(),
    );
    job.run_chunk(0, None).unwrap();
    job.run_chunk(1, None).unwrap();
    job.release_chunk(0);
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(!job.is_chunk_done(0));
    assert!(job.is_chunk_done(1));
    // Released once: a second release drops nothing more.
    job.release_chunk(0);
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(job.encode_chunk(0).is_err());
    let error = job.into_outputs().map(|_| ()).expect_err("chunk 0 is gone");
    assert!(error.to_string().contains("chunk 0"), "{error}");
    // The rest dropped with the job, each value once.
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 6);
}
