//! The driver of a plain call (`map`, `map_results`, `map_init`,
//! `map_reduce`): workers forked after the job exists, so they inherit the
//! function and the items, claiming chunk indices from the shared counter.
//!
//! ```text
//!  parent (this driver + the fleet)          worker k
//!  ──────                                    ───────
//!  spawn while chunks are left               loop: chunk = the retried chunk it was
//!                                                    forked for, else next_chunk++
//!  Frame Results → job.accept_chunk                 slot = (chunk, first item)
//!  Frame Failure → job.record_failure               job.run_chunk(chunk, &slot.item)
//!  Exited on an item → retry policy                 frame: encoded results or failure
//!  fail-fast failure → stop flag, kill all          slot = idle
//! ```

use super::fleet::{ChildSide, ChildWork, Death, Event, Fleet};
use super::fork::Forker;
use super::frames::Payload;
use super::lend;
use super::retry::{ChunkRetries, MAX_UNSTARTED_DEATHS, Verdict};
use super::shm::{self, IDLE};
use crate::backend::wire::{self, FrameKind, Header};
use crate::error::{Error, Step};
use crate::job::{ChunkJob, SENDING_RESULTS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the parent wakes up to check cancellation.
const WAKE: Duration = Duration::from_millis(50);

/// Runs `job` on up to `workers` worker processes.
pub(super) fn run(job: &dyn ChunkJob, workers: usize, forker: &Arc<Forker>) -> Result<(), Error> {
    let chunk_count = job.plan().chunk_count();
    if chunk_count == 0 {
        return Ok(());
    }
    let mut call = Call {
        job,
        fleet: Fleet::new(workers.min(chunk_count), job.limits(), WAKE, forker.clone())?,
        retry_queue: VecDeque::new(),
        retries: HashMap::new(),
        stopping: false,
        last_idle_death: None,
        deaths_without_progress: 0,
    };
    // Dropping the call's fleet kills and reaps whatever still runs.
    call.supervise()
}

/// The state of one plain call.
struct Call<'a> {
    job: &'a dyn ChunkJob,
    fleet: Fleet,
    /// Chunks to run again on a fresh worker.
    retry_queue: VecDeque<usize>,
    /// Deaths per chunk, for the retry policy.
    retries: HashMap<usize, ChunkRetries>,
    /// Set once the parent has decided to stop (a fail-fast failure):
    /// from then on frames are ignored and workers are killed.
    stopping: bool,
    /// The last worker that died between chunks: it may have claimed a
    /// chunk without saying so.
    last_idle_death: Option<Death>,
    /// Workers in a row that died before sending anything.
    deaths_without_progress: usize,
}

impl Call<'_> {
    fn supervise(&mut self) -> Result<(), Error> {
        loop {
            if self.job.should_stop() && !self.stopping {
                self.stop();
            }
            self.spawn_while_work_left()?;
            if self.fleet.running() == 0 {
                if self.requeue_unstarted() {
                    continue;
                }
                return Ok(());
            }
            for event in self.fleet.poll()? {
                match event {
                    Event::Frame {
                        header, payload, ..
                    } => {
                        self.deaths_without_progress = 0;
                        self.on_frame(header, payload);
                    }
                    Event::Exited { death, .. } => {
                        // Deaths on a chunk are bounded by the retry policy;
                        // these are workers that died before taking one.
                        if death.chunk == IDLE && !death.exited_cleanly() {
                            self.deaths_without_progress += 1;
                        }
                        self.on_exit(&death);
                        self.check_progress(&death)?;
                    }
                }
            }
        }
    }

    /// Fails the call if workers keep dying before taking a chunk, with no
    /// frame from any worker in between (a fork that cannot live: a memory
    /// limit, a broken environment), so it is not forked again and again
    /// for ever. Deaths holding a chunk are bounded by the retry policy.
    fn check_progress(&mut self, death: &Death) -> Result<(), Error> {
        let limit = 3 * self.fleet.slots() + MAX_UNSTARTED_DEATHS as usize;
        if self.deaths_without_progress <= limit || self.stopping {
            return Ok(());
        }
        self.stop();
        Err(Error::backend(
            "processes",
            format!(
                "{} workers in a row ended without sending a result (the last {}); \
                 giving up",
                self.deaths_without_progress,
                death.how()
            ),
        ))
    }

    /// True once anyone has raised the shared stop flag; a worker raises it
    /// at its first fail-fast failure, before the parent has read it.
    fn claiming_stopped(&self) -> bool {
        self.fleet.shared().header().stop.load(Ordering::Acquire)
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.fleet
            .shared()
            .header()
            .stop
            .store(true, Ordering::Release);
        self.fleet.kill_all();
    }

    /// True while some chunk still needs a worker: a chunk to run again
    /// (a fresh worker runs it even after the shared stop flag went up, so
    /// a failure whose report was lost cannot leave it waiting for ever),
    /// or chunks nobody claimed while claiming is open.
    fn work_left(&self) -> bool {
        let header = self.fleet.shared().header();
        !self.retry_queue.is_empty()
            || (!self.claiming_stopped()
                && header.next_chunk.load(Ordering::Acquire) < self.job.plan().chunk_count())
    }

    /// Forks a worker for each free slot while chunks need one, in one go:
    /// each runs the chunk to retry it was forked for (if any), then claims
    /// chunks until none are left.
    fn spawn_while_work_left(&mut self) -> Result<(), Error> {
        let job = self.job;
        let mut free = self.fleet.free_slots();
        let mut children: Vec<(usize, ChildWork<'_>)> = Vec::new();
        while !self.stopping && self.work_left() {
            let Some(slot) = free.pop() else {
                break;
            };
            let initial_chunk = self.retry_queue.pop_front();
            let child = move |child: ChildSide<'_>| work(job, &child, initial_chunk);
            children.push((slot, Box::new(child)));
        }
        if children.is_empty() {
            return Ok(());
        }
        self.fleet.spawn_many(children)
    }

    fn on_frame(&mut self, header: Header, mut payload: Payload) {
        let job = self.job;
        let chunk = header.id;
        if self.stopping || chunk >= job.plan().chunk_count() {
            return;
        }
        let failure = match header.kind {
            Some(FrameKind::Results) => job.accept_received(chunk, payload.received()).err(),
            Some(FrameKind::Failure) => Some(Error::from_wire(&payload.whole(), "processes")),
            _ => Some(Error::backend(
                "processes",
                "a worker sent a frame of an unknown kind",
            )),
        };
        if let Some(error) = failure {
            if job.keeps_going() {
                // The chunk as a whole could not travel: every item in it
                // gets the error, then the chunk runs again, skipping them.
                let total = job.plan().item_count();
                for item in job.plan().chunk_range(chunk) {
                    job.record_failure(same_failure_for(&error, item, total));
                }
                self.retry_queue.push_back(chunk);
            } else {
                job.record_failure(error);
            }
        }
        if job.should_stop() && !self.stopping {
            self.stop();
        }
    }

    /// Decides what a worker's exit means for the job.
    fn on_exit(&mut self, death: &Death) {
        // A worker killed for writing bytes that are not frames lost the
        // frame of the chunk it sent last, wherever it was since.
        let chunk = death.malformed.unwrap_or(death.chunk);
        if chunk == IDLE && !self.stopping && !death.exited_cleanly() {
            self.last_idle_death = Some(death.clone());
        }
        if self.stopping || chunk == IDLE || self.job.is_chunk_done(chunk) {
            // Nothing in progress was lost. A worker that died between
            // chunks is replaced if work is left; a chunk it had just
            // claimed is found by `requeue_unstarted`.
            return;
        }
        let plan = self.job.plan();
        let on_item = (death.malformed.is_none() && plan.chunk_range(chunk).contains(&death.item))
            .then(|| death.error(death.item, plan.item_count()));
        let retries = self.job.limits().retries;
        let verdict = self
            .retries
            .entry(chunk)
            .or_default()
            .after_death(on_item, death, retries);
        self.apply(chunk, verdict);
    }

    /// Chunks neither done nor failed once every worker is gone were
    /// claimed by a worker that died before saying so (a window of a few
    /// instructions): they count as deaths before starting. Returns true if
    /// anything will run again.
    fn requeue_unstarted(&mut self) -> bool {
        if self.stopping || self.job.should_stop() {
            return false;
        }
        let unfinished: Vec<usize> = (0..self.job.plan().chunk_count())
            .filter(|&chunk| !self.job.is_chunk_done(chunk))
            .collect();
        let mut queued = false;
        for chunk in unfinished {
            let lost = self.last_idle_death.clone().unwrap_or_else(Death::unknown);
            let verdict = self
                .retries
                .entry(chunk)
                .or_default()
                .after_death(None, &lost, 0);
            queued |= matches!(verdict, Verdict::Retry);
            self.apply(chunk, verdict);
        }
        queued || !self.retry_queue.is_empty()
    }

    fn apply(&mut self, chunk: usize, verdict: Verdict) {
        match verdict {
            Verdict::Retry => self.retry_queue.push_back(chunk),
            Verdict::ItemFailed(error) => {
                self.job.record_failure(error);
                if self.job.keeps_going() {
                    // Run the rest of the chunk again; the job skips the
                    // failed item.
                    self.retry_queue.push_back(chunk);
                } else {
                    self.stop();
                }
            }
            Verdict::ChunkFailed(how) => {
                let plan = self.job.plan();
                for item in plan.chunk_range(chunk) {
                    self.job
                        .record_failure(Error::crash(item, plan.item_count(), how.clone()));
                }
                if self.job.keeps_going() {
                    self.retry_queue.push_back(chunk);
                } else {
                    self.stop();
                }
            }
        }
    }
}

/// The same failure as `error`, for another item of its chunk.
fn same_failure_for(error: &Error, item: usize, total: usize) -> Error {
    if error.task_index().is_some() {
        Error::encoding(item, total, Step::Transferred, error)
    } else {
        error.clone()
    }
}

/// A worker's life in a plain call: claims and runs chunks, sending each
/// chunk's frame to the parent.
fn work(
    job: &dyn ChunkJob,
    child: &ChildSide<'_>,
    initial_chunk: Option<usize>,
) -> std::io::Result<()> {
    let header = child.shared.header();
    let slot = child.slot;
    let chunk_count = job.plan().chunk_count();
    let mut channel = child.channel;
    let mut next = initial_chunk;
    let quota = job.limits().max_tasks_per_worker;
    let mut tasks_run = 0;
    loop {
        let chunk = match next.take() {
            Some(chunk) => chunk,
            None => {
                if header.stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                let chunk = header.next_chunk.fetch_add(1, Ordering::AcqRel);
                if chunk >= chunk_count {
                    return Ok(());
                }
                if job.is_chunk_done(chunk) {
                    continue; // read back from a journal before the fork
                }
                chunk
            }
        };
        let start = job.plan().chunk_range(chunk).start;
        slot.current_item.store(start, Ordering::Release);
        slot.current_chunk.store(chunk, Ordering::Release);
        let encoded = job
            .run_chunk(chunk, Some(&slot.current_item))
            .and_then(|()| {
                slot.current_item.store(SENDING_RESULTS, Ordering::Release);
                job.encode_chunk_in_pieces(chunk)
            });
        let failed = encoded.is_err();
        let frame = |kind| Header::new(kind, chunk, 0).numbered(shm::next_frame(slot));
        match encoded {
            Ok(encoded) => {
                let pieces: Vec<(&[u8], usize)> = encoded.arrays().collect();
                lend::send_results(channel, slot, frame(FrameKind::Results), &pieces)?
            }
            Err(error) => {
                if !job.keeps_going() {
                    // Stop the other workers claiming chunks now, without
                    // waiting for the parent to read this failure.
                    header.stop.store(true, Ordering::Release);
                }
                wire::write(&mut channel, frame(FrameKind::Failure), &error.to_wire())?;
            }
        }
        shm::frame_sent(slot, chunk);
        slot.current_chunk.store(IDLE, Ordering::Release);
        if failed && !job.keeps_going() {
            return Ok(());
        }
        tasks_run += job.plan().chunk_range(chunk).len();
        if quota.is_some_and(|quota| tasks_run >= quota) {
            // Retire; the parent forks a replacement if work is left.
            return Ok(());
        }
    }
}
