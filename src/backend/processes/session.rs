//! The driver of streams and sessions: workers forked once, serving many
//! chunks of a [`StreamJob`] whose items travel to them.
//!
//! A plain call forks after its items exist, so workers inherit them. A
//! stream's items do not exist yet when its workers start, so they travel:
//!
//! ```text
//!  parent (this engine + the fleet)          worker k (forked once)
//!  ──────                                    ────────
//!  queue of encoded chunks                   loop:
//!  worker with < 2 chunks? ── Task frame ─►   read Task (start, items to skip, items)
//!                  (the next one waits)        slot = (position, no item yet)
//!                                              job.run_encoded: slot.item = i; f(item)
//!  Frame Results ◄───────────────────────     write Results: encoded Vec<Result<O, Error>>
//!  Exited on an item → retry policy          end of file or SIGKILL: exit
//!  Exited before starting → retry policy
//! ```
//!
//! Each worker holds at most two chunks, the one it runs and the next, so
//! it never waits for the parent between chunks. The next one is only
//! lent: when every chunk is handed out, a worker is idle, and another
//! worker's running chunk has taken longer than [`TAKE_BACK_AFTER`], the
//! parent takes back the chunk queued behind it and gives it to the idle
//! worker, so no chunk waits behind a long one while a worker could run
//! it (what `imap_unordered` callers expect of Python's pool). One
//! compare-and-swap in shared memory decides who gets it (see
//! `shm::revoke_queued`); a worker that reads a chunk taken back skips
//! it. A worker writes a result
//! before it reads its next chunk, and the parent, while a worker's socket
//! is full, reads what that worker writes; so neither side can block the
//! other on a full socket buffer. Sends use `MSG_NOSIGNAL`: a worker that
//! died mid-send is an error the engine handles, never a `SIGPIPE` that
//! kills the caller. Crashes, timeouts and retries follow the fleet's one
//! policy.

use super::fleet::{ChildSide, ChildWork, Death, Event, Fleet};
use super::fork::Forker;
use super::lend;
use super::retry::{ChunkRetries, Verdict};
use super::shm::{self, IDLE};
use crate::backend::wire::{self, FrameKind, Header};
use crate::backend::{StreamContext, StreamEngine, stream_cancelled};
use crate::error::{Error, UNKNOWN_TOTAL};
use crate::job::{ChunkResults, ChunkSpan, StreamChunk, StreamJob};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Chunks sent ahead to one worker: the one it runs and the next.
const PIPELINE: usize = 2;

/// How long a worker's running chunk may hold up the chunk queued behind
/// it while another worker is idle, before the parent takes that chunk
/// back for the idle worker.
const TAKE_BACK_AFTER: Duration = Duration::from_millis(10);

/// How often the parent wakes up to check timeouts and cancellation.
const WAKE: Duration = Duration::from_millis(20);

/// A chunk on its way through the workers.
struct Task {
    span: ChunkSpan,
    /// The items, encoded once; kept until the chunk is done so that a
    /// crashed chunk can be sent again.
    items: Vec<u8>,
    /// Items that failed for good (crash or timeout beyond the retries);
    /// they are skipped when the chunk runs again.
    failed: BTreeMap<usize, Error>,
    retries: ChunkRetries,
}

impl Task {
    /// The chunk's results: `results` with its recorded failures in place.
    fn finish(self, mut results: ChunkResults) -> ChunkResults {
        for (index, error) in self.failed {
            results.set_failure(index, error);
        }
        results
    }
}

/// Forked-once workers running one stream job; see the module docs.
pub(super) struct SessionEngine {
    job: Arc<dyn StreamJob>,
    fleet: Fleet,
    /// Per slot: chunks sent to its worker, the one it runs first.
    held: Vec<VecDeque<Task>>,
    /// Per slot: items sent to its worker since it was forked, for
    /// `max_tasks_per_worker`.
    sent: Vec<usize>,
    /// Per slot: since when the chunk at the front of `held` has been the
    /// worker's current one.
    front_since: Vec<Instant>,
    queue: VecDeque<Task>,
    done: VecDeque<ChunkResults>,
}

impl SessionEngine {
    /// Forks `workers` workers for `job`.
    pub(super) fn start(
        job: Arc<dyn StreamJob>,
        workers: usize,
        forker: &Arc<Forker>,
    ) -> Result<SessionEngine, Error> {
        let mut engine = SessionEngine {
            fleet: Fleet::new(workers, job.limits(), WAKE, forker.clone())?,
            job,
            held: (0..workers).map(|_| VecDeque::new()).collect(),
            sent: vec![0; workers],
            front_since: vec![Instant::now(); workers],
            queue: VecDeque::new(),
            done: VecDeque::new(),
        };
        let job = &*engine.job;
        let children: Vec<(usize, ChildWork<'_>)> = (0..workers)
            .map(|slot| {
                (
                    slot,
                    Box::new(move |child: ChildSide<'_>| serve(job, &child)) as ChildWork<'_>,
                )
            })
            .collect();
        engine.fleet.spawn_many(children)?;
        Ok(engine)
    }

    fn spawn(&mut self, slot: usize) -> Result<(), Error> {
        let job = &*self.job;
        self.sent[slot] = 0;
        self.fleet.spawn(slot, |child| serve(job, &child))
    }

    /// True once the worker of `slot` was sent its quota of tasks
    /// (`max_tasks_per_worker`): it gets no more, and retires when it has
    /// finished them.
    fn quota_reached(&self, slot: usize) -> bool {
        self.job
            .limits()
            .max_tasks_per_worker
            .is_some_and(|quota| self.sent[slot] >= quota)
    }

    /// Gives queued chunks to workers, starting workers where needed: first
    /// one to each idle worker, then a second one to each, so a worker
    /// finds its next chunk waiting when it finishes one.
    fn dispatch(&mut self) -> Result<(), Error> {
        self.take_back_from_slow_workers();
        for depth in 0..PIPELINE {
            for slot in 0..self.fleet.slots() {
                if self.queue.is_empty() {
                    return Ok(());
                }
                if !self.fleet.is_running(slot) {
                    self.spawn(slot)?;
                }
                if self.held[slot].len() > depth
                    || self.fleet.timed_out(slot)
                    || self.quota_reached(slot)
                {
                    continue;
                }
                let seq = self.queue.front().expect("checked non-empty").span.seq as usize;
                if depth > 0 && !shm::queue_behind(self.fleet.slot_state(slot), seq) {
                    // A chunk taken back is still unread there.
                    continue;
                }
                let task = self.queue.pop_front().expect("checked non-empty");
                let skip: Vec<usize> = task.failed.keys().copied().collect();
                let payload = wire::Task::encode(task.span.start, &skip, &task.items);
                let header = Header::new(FrameKind::Task, task.span.seq as usize, payload.len());
                let sent = self
                    .fleet
                    .send(slot, &header.to_bytes())
                    .and_then(|()| self.fleet.send(slot, &payload));
                if self.held[slot].is_empty() {
                    self.fleet.reset_watchdog(slot);
                    self.front_since[slot] = Instant::now();
                }
                self.sent[slot] += task.span.len;
                self.held[slot].push_back(task);
                if sent.is_err() {
                    // The worker died: its exit puts its chunks back in the
                    // queue (its slot shows no item of them, so nothing is
                    // blamed).
                    self.fleet.kill(slot);
                }
            }
        }
        Ok(())
    }

    /// When nothing is queued and some worker is idle: takes back chunks
    /// queued behind a chunk that has run for [`TAKE_BACK_AFTER`], one per
    /// idle worker, and queues them again (see the module docs).
    fn take_back_from_slow_workers(&mut self) {
        if !self.queue.is_empty() {
            return;
        }
        let mut idle = (0..self.fleet.slots())
            .filter(|&slot| {
                self.held[slot].is_empty()
                    && !self.fleet.timed_out(slot)
                    && !self.quota_reached(slot)
            })
            .count();
        let now = Instant::now();
        for slot in 0..self.fleet.slots() {
            if idle == 0 {
                return;
            }
            let Some(behind) = self.held[slot].get(1) else {
                continue;
            };
            if now.duration_since(self.front_since[slot]) < TAKE_BACK_AFTER {
                continue;
            }
            let seq = behind.span.seq as usize;
            if shm::revoke_queued(self.fleet.slot_state(slot), seq) {
                let task = self.held[slot].pop_back().expect("checked above");
                self.sent[slot] -= task.span.len;
                self.queue.push_back(task);
                idle -= 1;
            }
        }
    }

    fn on_frame(&mut self, slot: usize, header: Header, payload: &[u8]) {
        let is_front = self.held[slot]
            .front()
            .is_some_and(|task| task.span.seq as usize == header.id);
        if !is_front {
            return; // not the chunk this worker runs: ignore
        }
        let task = self.held[slot].pop_front().expect("checked above");
        self.front_since[slot] = Instant::now();
        if self.held[slot].is_empty() && self.quota_reached(slot) {
            // Done with its quota: it reads end of file and exits cleanly;
            // the next dispatch forks its replacement.
            self.fleet.retire(slot);
        }
        let span = task.span;
        let results = match header.kind {
            Some(FrameKind::Results) => self.job.decode_results(span, payload),
            Some(FrameKind::Failure) => {
                let error = Error::from_wire(payload, "processes");
                ChunkResults::failed(span, |index| error.clone().for_task(index, UNKNOWN_TOTAL))
            }
            _ => ChunkResults::failed(span, |_| {
                Error::backend("processes", "a worker sent a frame of an unknown kind")
            }),
        };
        self.done.push_back(task.finish(results));
    }

    /// The worker of `slot` died: chunks waiting behind the one it ran go
    /// back to the queue; the one it ran is judged by the retry policy,
    /// whatever the exit status. A worker exits cleanly on its own only
    /// when it retires, and a retiring worker holds nothing (it is sent
    /// nothing past its quota), so one that exits holding a chunk, even
    /// with status 0 (a task that called `exit(0)`), crashed on it.
    fn on_exit(&mut self, slot: usize, death: &Death) {
        while self.held[slot].len() > 1 {
            let waiting = self.held[slot].pop_back().expect("checked above");
            self.queue.push_front(waiting);
        }
        let Some(mut task) = self.held[slot].pop_front() else {
            return;
        };
        let span = task.span;
        // A worker killed for writing bytes that are not frames lost the
        // frame of this chunk (the first it had not delivered): charged as
        // a death outside its tasks.
        let started = death.malformed.is_none()
            && death.chunk == span.seq as usize
            && span.items().contains(&death.item);
        let on_item = started.then(|| death.error(death.item, UNKNOWN_TOTAL));
        let retries = self.job.limits().retries;
        match task.retries.after_death(on_item, death, retries) {
            Verdict::Retry => self.queue.push_front(task),
            Verdict::ItemFailed(error) => {
                let item = error.task_index().unwrap_or(death.item);
                task.failed.insert(item, error);
                if task.failed.len() == span.len {
                    let results = ChunkResults::failed(span, |_| skipped_placeholder());
                    self.done.push_back(task.finish(results));
                } else {
                    self.queue.push_front(task);
                }
            }
            Verdict::ChunkFailed(how) => {
                let results = ChunkResults::failed(span, |index| {
                    Error::crash(index, UNKNOWN_TOTAL, how.clone())
                });
                self.done.push_back(task.finish(results));
            }
        }
    }

    fn busy(&self) -> bool {
        !self.queue.is_empty() || self.held.iter().any(|held| !held.is_empty())
    }
}

impl StreamEngine for SessionEngine {
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error> {
        let span = chunk.span();
        match self.job.encode_items(chunk) {
            Ok(items) => self.queue.push_back(Task {
                span,
                items,
                failed: BTreeMap::new(),
                retries: ChunkRetries::default(),
            }),
            Err(results) => self.done.push_back(results),
        }
        self.dispatch()
    }

    fn next_done(&mut self, context: &StreamContext<'_>) -> Result<ChunkResults, Error> {
        loop {
            // Idle workers get queued chunks before anything is returned, so
            // they work while the caller looks at the results.
            self.dispatch()?;
            if let Some(chunk) = self.done.pop_front() {
                return Ok(chunk);
            }
            if context.is_cancelled() {
                return Err(stream_cancelled());
            }
            if !self.busy() {
                return Err(Error::backend(
                    "processes",
                    "waited for a result with no chunk submitted",
                ));
            }
            for event in self.fleet.poll()? {
                match event {
                    Event::Frame {
                        slot,
                        header,
                        payload,
                    } => self.on_frame(slot, header, &payload.whole()),
                    Event::Exited { slot, death } => self.on_exit(slot, &death),
                }
            }
        }
    }

    fn cancel(&mut self) {
        let held = &self.held;
        self.fleet.stop(|slot| !held[slot].is_empty());
        for held in &mut self.held {
            held.clear();
        }
        self.queue.clear();
        self.done.clear();
    }
}

/// Stands in for items of a chunk whose every item failed for good; each
/// is replaced by its recorded failure.
fn skipped_placeholder() -> Error {
    Error::backend("processes", "skipped: failed earlier")
}

/// A worker's life in a session: reads chunks from the parent, runs them,
/// writes their results, until the parent closes the socket.
fn serve(job: &dyn StreamJob, child: &ChildSide<'_>) -> std::io::Result<()> {
    let mut channel = child.channel;
    let slot = child.slot;
    while let Some((header, frame)) = wire::read(&mut channel)? {
        let seq = header.id;
        if !shm::take_queued(slot, seq) {
            continue; // taken back: another worker runs it
        }
        let reply = wire::Task::decode(&frame).and_then(|task| {
            let span = ChunkSpan {
                seq: seq as u64,
                start: task.start,
                len: 0,
            };
            slot.current_item.store(IDLE, Ordering::Release);
            slot.current_chunk.store(seq, Ordering::Release);
            job.run_encoded(span, task.items, &task.skip, &slot.current_item)
        });
        let frame = |kind| Header::new(kind, seq, 0).numbered(shm::next_frame(slot));
        match reply {
            Ok(bytes) => {
                lend::send_results(channel, slot, frame(FrameKind::Results), &[(&bytes, 0)])?
            }
            Err(error) => wire::write(&mut channel, frame(FrameKind::Failure), &error.to_wire())?,
        }
        shm::frame_sent(slot, seq);
        slot.current_chunk.store(IDLE, Ordering::Release);
        super::fork::flush_stdout()?;
    }
    Ok(())
}
