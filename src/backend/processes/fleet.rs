//! The one supervisor of worker processes, shared by plain calls, sessions
//! and streams: it forks workers, waits on all of them at once, reads their
//! frames, reaps the ones that exit, enforces the per-task timeout, and
//! reports what a dead worker was doing. Frames are cut in `frames.rs`, a
//! death is diagnosed in `death.rs`, and what to do about it is decided by
//! the one retry policy in `retry.rs`, the same for every driver.
//!
//! ```text
//!            spawn(slot, child)                 poll()
//!  driver ───────────────────► Fleet ──────────────────────► [Event]
//!                               │  wait: poll() on every channel (a quarter
//!                               │        of the timeout, at most `wake`)
//!                               │  read: drain channels, cut frames  → Frame
//!                               │  reap: waitpid(WNOHANG), read the slot
//!                               │        (chunk, item) it died on    → Exited
//!                               └  watch: SIGKILL past the timeout
//! ```

pub(super) use super::death::Death;
use super::fork::{self, ChildBody, Forker, enter_child};
use super::frames::{FrameReader, Payload, Spares};
use super::os;
use super::shm::{IDLE, SharedMemory, WorkerSlot};
use crate::backend::wire::Header;
use crate::error::Error;
use crate::job::TaskLimits;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Worker processes of one call, session or stream, one per slot.
pub(super) struct Fleet {
    shared: SharedMemory,
    workers: Vec<Option<Worker>>,
    limits: TaskLimits,
    /// The longest `poll` sleeps, so the driver can look at cancellation.
    wake: Duration,
    parent_pid: os::Pid,
    /// Forks the workers; dropped after them (field order), so the thread
    /// that forked a worker outlives it.
    forker: Arc<Forker>,
    /// Read buffers handed over with large frames, back once the frame is
    /// decoded.
    spares: Spares,
}

/// A running worker, as the parent sees it.
struct Worker {
    pid: os::Pid,
    /// The parent's end of the worker's socket.
    channel: OwnedFd,
    watchdog: Watchdog,
    /// Cuts what it wrote into frames.
    frames: FrameReader,
}

/// What the supervisor saw.
pub(super) enum Event {
    /// A worker sent a complete frame.
    Frame {
        slot: usize,
        header: Header,
        payload: Payload,
    },
    /// A worker exited (after its last frames were reported).
    Exited { slot: usize, death: Death },
}

/// What a worker does, boxed so that several can be forked in one go.
pub(super) type ChildWork<'a> = Box<dyn FnOnce(ChildSide<'_>) -> std::io::Result<()> + 'a>;

/// The child's side of a fresh worker.
pub(super) struct ChildSide<'a> {
    /// The worker's end of its socket, open for reading and writing.
    pub(super) channel: &'a std::fs::File,
    pub(super) shared: &'a SharedMemory,
    pub(super) slot: &'a WorkerSlot,
}

impl Fleet {
    /// A fleet of `slots` slots, none started.
    pub(super) fn new(
        slots: usize,
        limits: TaskLimits,
        wake: Duration,
        forker: Arc<Forker>,
    ) -> Result<Fleet, Error> {
        Ok(Fleet {
            shared: SharedMemory::new(slots).map_err(|error| {
                error.context(format_args!("for the shared state of {slots} workers"))
            })?,
            workers: (0..slots).map(|_| None).collect(),
            limits,
            wake,
            parent_pid: os::getpid(),
            forker,
            spares: Spares::default(),
        })
    }

    pub(super) fn shared(&self) -> &SharedMemory {
        &self.shared
    }

    pub(super) fn slots(&self) -> usize {
        self.workers.len()
    }

    pub(super) fn is_running(&self, slot: usize) -> bool {
        self.workers[slot].is_some()
    }

    pub(super) fn running(&self) -> usize {
        self.workers.iter().flatten().count()
    }

    /// The slots without a worker, last first.
    pub(super) fn free_slots(&self) -> Vec<usize> {
        let mut free: Vec<usize> = (0..self.workers.len())
            .filter(|&slot| self.workers[slot].is_none())
            .collect();
        free.reverse();
        free
    }

    /// Forks the worker of `slot` (which must be free); it runs `child`
    /// and exits.
    pub(super) fn spawn(
        &mut self,
        slot: usize,
        child: impl FnOnce(ChildSide<'_>) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        self.spawn_many(vec![(slot, Box::new(child))])
    }

    /// Forks the workers of several free slots in one go (one request to
    /// the forker); each runs its `ChildWork` and exits. Workers that could
    /// be forked are kept even if another could not; the first error is
    /// returned.
    pub(super) fn spawn_many(
        &mut self,
        children: Vec<(usize, ChildWork<'_>)>,
    ) -> Result<(), Error> {
        let mut ends = Vec::with_capacity(children.len());
        for (slot, _) in &children {
            let for_worker = |error: Error| error.context(format_args!("for worker {slot}"));
            let (parent_end, child_end) = os::socket_pair().map_err(for_worker)?;
            let state = self.shared.slot(*slot);
            state.current_chunk.store(IDLE, Ordering::Release);
            state.current_item.store(IDLE, Ordering::Release);
            state.queued_chunk.store(IDLE, Ordering::Release);
            state.frames_sent.store(0, Ordering::Release);
            state.last_sent_chunk.store(IDLE, Ordering::Release);
            state.lent_done.store(0, Ordering::Release);
            ends.push((parent_end, child_end));
        }
        // Every child closes every descriptor of the fleet but its own end:
        // the other workers' sockets, both ends of its new siblings'.
        let fleet_fds: Vec<RawFd> = self
            .workers
            .iter()
            .flatten()
            .map(|worker| worker.channel.as_raw_fd())
            .chain(
                ends.iter()
                    .flat_map(|(p, c)| [p.as_raw_fd(), c.as_raw_fd()]),
            )
            .collect();
        let slots: Vec<usize> = children.iter().map(|(slot, _)| *slot).collect();
        let shared = &self.shared;
        let parent_pid = self.parent_pid;
        let bodies: Vec<ChildBody<'_>> = children
            .into_iter()
            .zip(&ends)
            .map(|((slot, work), (_, child_end))| {
                let own = child_end.as_raw_fd();
                let close: Vec<RawFd> = fleet_fds.iter().copied().filter(|&fd| fd != own).collect();
                let body = move || {
                    enter_child(parent_pid, &close);
                    // SAFETY: the child end is open and owned by this worker
                    // alone; the File is never closed (the process ends with
                    // _exit).
                    let channel =
                        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(own) });
                    fork::run_child(|| {
                        work(ChildSide {
                            channel: &channel,
                            shared,
                            slot: shared.slot(slot),
                        })
                    })
                };
                Box::new(body) as ChildBody<'_>
            })
            .collect();
        // SAFETY: each child runs its body, which ends in `_exit` through
        // `run_child`, closes the parent's descriptors it inherited and
        // touches only the job (shared copy-on-write), the shared mapping and
        // its own socket.
        let pids = unsafe { self.forker.fork_many(bodies) };
        let mut first_error = None;
        for ((slot, (parent_end, child_end)), pid) in slots.into_iter().zip(ends).zip(pids) {
            drop(child_end);
            match pid {
                Ok(pid) => {
                    self.workers[slot] = Some(Worker {
                        pid,
                        channel: parent_end,
                        watchdog: Watchdog::default(),
                        frames: FrameReader::default(),
                    });
                }
                Err(error) => {
                    first_error.get_or_insert(error.context(format_args!("for worker {slot}")));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends all of `bytes` to the worker of `slot`. While its socket is
    /// full, reads what the worker writes (kept for the next `poll`): a
    /// worker blocked on writing a result to a parent blocked on sending
    /// it a chunk would otherwise wait for ever. `Err` if the worker died.
    pub(super) fn send(&mut self, slot: usize, mut bytes: &[u8]) -> Result<(), Error> {
        let worker = self.workers[slot]
            .as_mut()
            .ok_or_else(|| Error::backend("processes", "sent to a worker that is gone"))?;
        while !bytes.is_empty() {
            match os::send(&worker.channel, bytes)? {
                os::Sent::Bytes(sent) => bytes = &bytes[sent..],
                os::Sent::WouldBlock => {
                    if !os::is_alive(worker.pid) {
                        return Err(Error::backend("processes", "a worker died"));
                    }
                    let fd = std::iter::once(worker.channel.as_fd());
                    os::poll(fd, os::Ready::ReadOrWrite, Duration::from_millis(100));
                    let state = self.shared.slot(slot);
                    worker
                        .frames
                        .drain(&worker.channel, worker.pid, state, &self.spares)?;
                }
            }
        }
        Ok(())
    }

    /// What the worker of `slot` shares with the parent.
    pub(super) fn slot_state(&self, slot: usize) -> &WorkerSlot {
        self.shared.slot(slot)
    }

    /// Forgets what the watchdog saw of `slot` (it starts a new chunk).
    pub(super) fn reset_watchdog(&mut self, slot: usize) {
        if let Some(worker) = self.workers[slot].as_mut() {
            worker.watchdog.seen = None;
        }
    }

    /// True if the watchdog of `slot` killed its worker.
    pub(super) fn timed_out(&self, slot: usize) -> bool {
        self.workers[slot]
            .as_ref()
            .is_some_and(|worker| worker.watchdog.timed_out.is_some())
    }

    /// Closes the parent's sending side of the worker's socket: a session
    /// worker reads end of file and exits cleanly (reported by `poll`).
    pub(super) fn retire(&self, slot: usize) {
        if let Some(worker) = &self.workers[slot] {
            os::shutdown_sending(&worker.channel);
        }
    }

    pub(super) fn kill(&self, slot: usize) {
        if let Some(worker) = &self.workers[slot] {
            os::kill(worker.pid);
        }
    }

    pub(super) fn kill_all(&self) {
        for worker in self.workers.iter().flatten() {
            os::kill(worker.pid);
        }
    }

    /// Kills the workers of the slots `which` picks, and waits for them.
    pub(super) fn stop(&mut self, which: impl Fn(usize) -> bool) {
        for (slot, worker) in self.workers.iter().enumerate() {
            if let Some(worker) = worker
                && which(slot)
            {
                os::kill(worker.pid);
            }
        }
        for (slot, entry) in self.workers.iter_mut().enumerate() {
            if entry.is_some() && which(slot) {
                let worker = entry.take().expect("checked above");
                os::wait_blocking(worker.pid);
                // The socket closes here.
            }
        }
    }

    /// Waits for something to happen (a frame, an exit, the wake interval
    /// or a quarter of the timeout), then reports it: every complete frame
    /// each worker sent, then the exits, each after its worker's last frames.
    pub(super) fn poll(&mut self) -> Result<Vec<Event>, Error> {
        let interval = match self.limits.timeout {
            Some(limit) => (limit / 4).clamp(Duration::from_millis(1), self.wake),
            None => self.wake,
        };
        let fds = self.workers.iter().flatten().map(|w| w.channel.as_fd());
        os::poll(fds, os::Ready::Read, interval);
        let mut events = Vec::new();
        for slot in 0..self.workers.len() {
            self.read(slot, &mut events);
        }
        for slot in 0..self.workers.len() {
            self.reap(slot, &mut events)?;
        }
        self.enforce_timeout();
        Ok(events)
    }

    /// Reads what the worker of `slot` wrote and reports its frames. A
    /// channel that cannot be read, or bytes that are not frames, get the
    /// worker killed (its exit is then reported as usual).
    fn read(&mut self, slot: usize, events: &mut Vec<Event>) {
        let Some(worker) = self.workers[slot].as_mut() else {
            return;
        };
        let state = self.shared.slot(slot);
        let (frames, kill) = worker
            .frames
            .read(&worker.channel, worker.pid, state, &self.spares);
        if !frames.is_empty() {
            worker.watchdog.seen = None;
        }
        if kill {
            os::kill(worker.pid);
        }
        events.extend(frames.into_iter().map(|(header, payload)| Event::Frame {
            slot,
            header,
            payload,
        }));
    }

    /// Reaps the worker of `slot` if it has exited.
    fn reap(&mut self, slot: usize, events: &mut Vec<Event>) -> Result<(), Error> {
        let Some(pid) = self.workers[slot].as_ref().map(|worker| worker.pid) else {
            return Ok(());
        };
        let Some(status) = os::try_wait(pid)? else {
            return Ok(());
        };
        // Everything it wrote before dying is in the socket now.
        if let Some(worker) = self.workers[slot].as_mut() {
            worker.frames.worker_gone();
        }
        self.read(slot, events);
        let worker = self.workers[slot].take().expect("checked above");
        let state = self.shared.slot(slot);
        events.push(Event::Exited {
            slot,
            death: Death {
                status,
                chunk: state.current_chunk.load(Ordering::Acquire),
                item: state.current_item.load(Ordering::Acquire),
                timed_out: worker.watchdog.timed_out,
                limit: self.limits.timeout,
                malformed: worker.frames.malformed(),
            },
        });
        Ok(())
    }

    /// Kills workers that have been on one item for longer than the limit.
    fn enforce_timeout(&mut self) {
        let Some(limit) = self.limits.timeout else {
            return;
        };
        let now = Instant::now();
        for (slot, worker) in self.workers.iter_mut().enumerate() {
            if let Some(worker) = worker {
                worker
                    .watchdog
                    .check(self.shared.slot(slot), worker.pid, limit, now);
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Normal ends have no workers left; errors, stops and dropped
        // sessions do. Nothing outlives the fleet.
        self.stop(|_| true);
    }
}

/// Watches how long a worker stays on one item, for the per-task timeout.
#[derive(Debug, Default)]
struct Watchdog {
    /// (chunk, item) the worker was last seen on, and since when.
    seen: Option<((usize, usize), Instant)>,
    /// Set when the watchdog killed the worker for running past the limit:
    /// (item, time spent on it).
    timed_out: Option<(usize, Duration)>,
}

impl Watchdog {
    /// Reads the worker's slot and kills `pid` if the worker has been on
    /// the same item for longer than `limit`.
    fn check(&mut self, slot: &WorkerSlot, pid: os::Pid, limit: Duration, now: Instant) {
        if self.timed_out.is_some() {
            return;
        }
        let chunk = slot.current_chunk.load(Ordering::Acquire);
        let item = slot.current_item.load(Ordering::Acquire);
        if chunk == IDLE {
            self.seen = None;
            return;
        }
        match self.seen {
            Some((key, since)) if key == (chunk, item) => {
                let elapsed = now - since;
                if elapsed > limit {
                    os::kill(pid);
                    self.timed_out = Some((item, elapsed));
                }
            }
            _ => self.seen = Some(((chunk, item), now)),
        }
    }
}
