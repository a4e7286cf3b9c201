//! Worker processes that are forked once and serve many chunks: the engine
//! behind [`Pool::imap`](crate::Pool::imap) and
//! [`Pool::session`](crate::Pool::session) on the process backend.
//!
//! A plain call forks after its items exist, so children inherit them. A
//! stream's items do not exist yet when its workers start, so they travel:
//!
//! ```text
//!  parent                                    worker k (forked once)
//!  ──────                                    ────────
//!  queue of encoded chunks                   loop:
//!  worker with < 2 chunks? ── TASK frame ─►   read TASK (start, skipped items, postcard items)
//!                  (the next one waits)        for each item: slot.current_item = i; f(item)
//!  poll(): read ◄── RESULT frame ──────────    write RESULT: postcard Vec<Result<O, Error>>
//!  waitpid(WNOHANG): crashed? → fresh fork,   end of file or SIGKILL: exit
//!    retry or record the item, rerun the rest
//! ```
//!
//! Each worker has one Unix socket pair (commands in, results out) and a
//! slot in a shared mapping with the chunk and item it is on, so crashes
//! and timeouts are attributed to the item exactly as in a plain call.
//! Each worker holds at most two chunks, the one it runs and the next, so
//! it never waits for the parent between chunks. A worker writes a result
//! before it reads its next chunk, and the parent, while a worker's socket
//! is full, reads what that worker writes; so neither side can block the
//! other on a full socket buffer. The parent sends with `MSG_NOSIGNAL`: a worker that died mid-send is an
//! error the parent handles, never a `SIGPIPE` that kills the caller.

use super::{
    FRAME_FAILURE, FRAME_HEADER, FRAME_RESULT, IDLE, SharedMemory, Watchdog, WorkerSlot,
    describe_exit, drain, enter_child, exit_child, fork_child, frame_header, kill, os_error,
    parse_frame, parse_frame_header, set_nonblocking, try_wait, wait_blocking, wait_readable,
};
use crate::backend::BackendSettings;
use crate::error::{Error, UNKNOWN_TOTAL};
use crate::job;
use crate::stream::{ChunkIn, ChunkOut, Engine, SharedFn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A chunk's items, sent from the parent to a worker.
const FRAME_TASK: u8 = 2;

/// Chunks sent ahead to one worker: the one it runs and the next.
const PIPELINE: usize = 2;

/// Workers a chunk may lose before it starts, before the chunk fails.
const MAX_UNSTARTED_DEATHS: u32 = 3;

/// How often the parent wakes up to check timeouts and cancellation.
const WAKE_INTERVAL: Duration = Duration::from_millis(20);

/// A chunk on its way through the workers.
struct Task {
    seq: u64,
    start: usize,
    len: usize,
    /// The items, encoded once; kept until the chunk is done so that a
    /// crashed chunk can be sent again.
    items: Vec<u8>,
    /// Items that failed for good (crash or timeout beyond the retries);
    /// they are skipped when the chunk runs again.
    failed: BTreeMap<usize, Error>,
    /// Crashes and timeouts per item, for `retries`.
    attempts: HashMap<usize, u32>,
    /// Workers that died holding this chunk before starting it.
    unstarted_deaths: u32,
}

/// A worker process as the parent sees it.
struct SessionWorker {
    pid: libc::pid_t,
    socket: OwnedFd,
    buffer: Vec<u8>,
    /// Chunks sent to the worker, oldest (the one it runs) first.
    tasks: VecDeque<Task>,
    watchdog: Watchdog,
}

/// Forked-once workers running one function; see the module docs.
pub(crate) struct ProcessEngine<T, O> {
    function: SharedFn<T, O>,
    settings: BackendSettings,
    shared: SharedMemory,
    /// One entry per slot; `None` until (re)started.
    workers: Vec<Option<SessionWorker>>,
    queue: VecDeque<Task>,
    done: VecDeque<ChunkOut<O>>,
    parent_pid: libc::pid_t,
}

impl<T, O> ProcessEngine<T, O>
where
    T: Serialize + DeserializeOwned,
    O: Serialize + DeserializeOwned,
{
    /// Forks `settings.workers` workers for `function`.
    pub(crate) fn start(
        function: SharedFn<T, O>,
        settings: BackendSettings,
    ) -> Result<Self, Error> {
        let mut engine = ProcessEngine {
            function,
            shared: SharedMemory::new(settings.workers)?,
            workers: (0..settings.workers).map(|_| None).collect(),
            settings,
            queue: VecDeque::new(),
            done: VecDeque::new(),
            // SAFETY: getpid has no preconditions and cannot fail.
            parent_pid: unsafe { libc::getpid() },
        };
        for slot in 0..engine.workers.len() {
            engine.spawn(slot)?;
        }
        Ok(engine)
    }

    /// Forks the worker of `slot`.
    fn spawn(&mut self, slot: usize) -> Result<(), Error> {
        let (parent_end, child_end) = socket_pair()?;
        set_nonblocking(&parent_end)?;
        let state = self.shared.slot(slot);
        state.current_chunk.store(IDLE, Ordering::Release);
        state.current_item.store(IDLE, Ordering::Release);
        let mut close: Vec<RawFd> = self
            .workers
            .iter()
            .flatten()
            .map(|worker| worker.socket.as_raw_fd())
            .collect();
        close.push(parent_end.as_raw_fd());
        let pid = fork_child(|| {
            enter_child(self.parent_pid, &close);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serve(&self.function, child_end.as_raw_fd(), state)
            }));
            exit_child(outcome)
        })?;
        drop(child_end);
        self.workers[slot] = Some(SessionWorker {
            pid,
            socket: parent_end,
            buffer: Vec::new(),
            tasks: VecDeque::new(),
            watchdog: Watchdog::default(),
        });
        Ok(())
    }

    /// Gives queued chunks to workers, starting workers where needed: first
    /// one to each idle worker, then a second one to each, so a worker
    /// finds its next chunk waiting when it finishes one.
    fn dispatch(&mut self) -> Result<(), Error> {
        for depth in 0..PIPELINE {
            for slot in 0..self.workers.len() {
                if self.queue.is_empty() {
                    return Ok(());
                }
                if self.workers[slot].is_none() {
                    self.spawn(slot)?;
                }
                let worker = self.workers[slot].as_mut().expect("spawned above");
                if worker.tasks.len() > depth || worker.watchdog.timed_out.is_some() {
                    continue;
                }
                let task = self.queue.pop_front().expect("checked non-empty");
                let sent = send_task(worker, &task);
                if worker.tasks.is_empty() {
                    worker.watchdog.seen = None;
                }
                worker.tasks.push_back(task);
                if sent.is_err() {
                    // The worker died: reaping it puts its chunks back in
                    // the queue (its slot shows no item of them, so nothing
                    // is blamed).
                    kill(worker.pid);
                }
            }
        }
        Ok(())
    }

    /// Sleeps until a worker writes or dies, or the wake interval ends.
    fn wait_for_events(&self) {
        let fds = self.workers.iter().flatten();
        let fds = fds.map(|worker| worker.socket.as_raw_fd());
        wait_readable(fds, self.settings.timeout, WAKE_INTERVAL);
    }

    /// Reads what the workers wrote; finished chunks go to `done`.
    fn read_results(&mut self) -> Result<(), Error> {
        for slot in 0..self.workers.len() {
            if let Some(worker) = self.workers[slot].as_mut() {
                if drain(&worker.socket, &mut worker.buffer).is_err() {
                    // A socket that cannot be read: replace the worker
                    // (reaping it puts its chunks back in the queue).
                    kill(worker.pid);
                }
                self.handle_frames(slot);
            }
        }
        Ok(())
    }

    fn handle_frames(&mut self, slot: usize) {
        let Some(worker) = self.workers[slot].as_mut() else {
            return;
        };
        let mut consumed = 0;
        while let Some((kind, seq, payload)) = parse_frame(&worker.buffer[consumed..]) {
            let bytes = &worker.buffer[consumed + payload.start..consumed + payload.end];
            consumed += payload.end;
            if worker
                .tasks
                .front()
                .is_none_or(|task| task.seq as usize != seq)
            {
                continue; // not the chunk this worker runs: ignore
            }
            let task = worker.tasks.pop_front().expect("checked above");
            let results = decode_results::<O>(kind, bytes, &task);
            self.done.push_back(finish(task, results));
            worker.watchdog.seen = None;
        }
        worker.buffer.drain(..consumed);
    }

    /// Reaps workers that have exited and deals with the chunks they held.
    fn reap_finished(&mut self) -> Result<(), Error> {
        for slot in 0..self.workers.len() {
            let Some(pid) = self.workers[slot].as_ref().map(|worker| worker.pid) else {
                continue;
            };
            let Some(status) = try_wait(pid)? else {
                continue;
            };
            // Everything it wrote before dying is in the socket now.
            if let Some(worker) = self.workers[slot].as_mut() {
                // What cannot be read is lost with the worker.
                let _ = drain(&worker.socket, &mut worker.buffer);
            }
            self.handle_frames(slot);
            let mut worker = self.workers[slot].take().expect("checked above");
            // Chunks waiting behind the one it ran never started.
            while worker.tasks.len() > 1 {
                let waiting = worker.tasks.pop_back().expect("checked above");
                self.queue.push_front(waiting);
            }
            if let Some(task) = worker.tasks.pop_front() {
                self.after_crash(slot, task, &worker.watchdog, status);
            }
        }
        Ok(())
    }

    /// A worker died holding `task`: retry it, or record the item it was
    /// on as failed and run the rest of the chunk again.
    fn after_crash(
        &mut self,
        slot: usize,
        mut task: Task,
        watchdog: &Watchdog,
        status: libc::c_int,
    ) {
        let state = self.shared.slot(slot);
        let range = task.start..task.start + task.len;
        let on_chunk = state.current_chunk.load(Ordering::Acquire) == task.seq as usize;
        let item = state.current_item.load(Ordering::Acquire);
        if !on_chunk || !range.contains(&item) {
            // It died before starting the chunk: no item to blame, run the
            // chunk again, unless that keeps happening (a chunk whose items
            // kill a worker while they are decoded, say).
            task.unstarted_deaths += 1;
            if task.unstarted_deaths <= MAX_UNSTARTED_DEATHS {
                self.queue.push_front(task);
                return;
            }
            let how = format!(
                "{} before starting the chunk, {MAX_UNSTARTED_DEATHS} times over",
                describe_exit(status)
            );
            let results = range
                .map(|index| Err(Error::crash(index, UNKNOWN_TOTAL, how.clone())))
                .collect();
            self.done.push_back(finish(task, results));
            return;
        }
        let error = watchdog.death_error(item, UNKNOWN_TOTAL, status, self.settings.timeout);
        let item = error.task_index().unwrap_or(item);
        let attempts = task.attempts.entry(item).or_insert(0);
        *attempts += 1;
        if *attempts > self.settings.retries {
            task.failed.insert(item, error);
        }
        if task.failed.len() == task.len {
            let results = (0..task.len).map(|_| Err(skipped())).collect();
            self.done.push_back(finish(task, results));
        } else {
            self.queue.push_front(task);
        }
    }

    /// Kills workers that have been on one item for longer than the limit.
    fn enforce_timeout(&mut self) {
        let Some(limit) = self.settings.timeout else {
            return;
        };
        let now = Instant::now();
        for (slot, worker) in self.workers.iter_mut().enumerate() {
            if let Some(worker) = worker
                && !worker.tasks.is_empty()
            {
                let state = self.shared.slot(slot);
                worker.watchdog.check(state, worker.pid, limit, now);
            }
        }
    }

    fn busy(&self) -> bool {
        !self.queue.is_empty() || self.workers.iter().flatten().any(|w| !w.tasks.is_empty())
    }
}

impl<T, O> ProcessEngine<T, O> {
    /// Kills the workers (only those holding chunks if `busy_only`) and
    /// waits for them.
    fn stop_workers(&mut self, busy_only: bool) {
        for worker in self.workers.iter().flatten() {
            if !busy_only || !worker.tasks.is_empty() {
                kill(worker.pid);
            }
        }
        for entry in &mut self.workers {
            if entry
                .as_ref()
                .is_some_and(|worker| !busy_only || !worker.tasks.is_empty())
            {
                let worker = entry.take().expect("checked above");
                wait_blocking(worker.pid);
                // The socket closes here.
            }
        }
    }
}

impl<T, O> Engine<T, O> for ProcessEngine<T, O>
where
    T: Send + Serialize + DeserializeOwned,
    O: Send + Serialize + DeserializeOwned,
{
    fn submit(&mut self, chunk: ChunkIn<T>) -> Result<(), Error> {
        let len = chunk.items.len();
        match postcard::to_stdvec(&chunk.items) {
            Ok(items) => self.queue.push_back(Task {
                seq: chunk.seq,
                start: chunk.start,
                len,
                items,
                failed: BTreeMap::new(),
                attempts: HashMap::new(),
                unstarted_deaths: 0,
            }),
            Err(error) => {
                let results = (0..len)
                    .map(|offset| {
                        Err(Error::input_encoding(
                            chunk.start + offset,
                            UNKNOWN_TOTAL,
                            "encoded",
                            &error,
                        ))
                    })
                    .collect();
                self.done.push_back(ChunkOut {
                    seq: chunk.seq,
                    start: chunk.start,
                    results,
                });
            }
        }
        self.dispatch()
    }

    fn next_done(&mut self, cancelled: &dyn Fn() -> bool) -> Result<ChunkOut<O>, Error> {
        loop {
            // Idle workers get queued chunks before anything is returned, so
            // they work while the caller looks at the results.
            self.dispatch()?;
            if let Some(chunk) = self.done.pop_front() {
                return Ok(chunk);
            }
            if cancelled() {
                return Err(Error::cancelled("the stream was cancelled"));
            }
            if !self.busy() {
                return Err(Error::backend(
                    "processes",
                    "waited for a result with no chunk submitted",
                ));
            }
            self.wait_for_events();
            self.read_results()?;
            self.reap_finished()?;
            self.enforce_timeout();
        }
    }

    fn cancel(&mut self) {
        self.stop_workers(true);
        self.queue.clear();
        self.done.clear();
    }
}

impl<T, O> Drop for ProcessEngine<T, O> {
    fn drop(&mut self) {
        self.stop_workers(false);
    }
}

/// The results of a chunk as sent by a worker, with the chunk's recorded
/// failures in their places.
fn finish<O>(task: Task, mut results: Vec<Result<O, Error>>) -> ChunkOut<O> {
    for (index, error) in task.failed {
        results[index - task.start] = Err(error);
    }
    ChunkOut {
        seq: task.seq,
        start: task.start,
        results,
    }
}

/// Decodes a worker's frame for `task` into one result per item.
fn decode_results<O: DeserializeOwned>(
    kind: u8,
    bytes: &[u8],
    task: &Task,
) -> Vec<Result<O, Error>> {
    let for_all = |error: Error| {
        (0..task.len)
            .map(|offset| Err(error.clone().for_task(task.start + offset, UNKNOWN_TOTAL)))
            .collect()
    };
    match kind {
        FRAME_RESULT => match postcard::from_bytes::<Vec<Result<O, Error>>>(bytes) {
            Ok(results) if results.len() == task.len => results,
            Ok(results) => for_all(Error::encoding(
                task.start,
                UNKNOWN_TOTAL,
                "decoded",
                format!("{} results for a chunk of {}", results.len(), task.len),
            )),
            Err(error) => for_all(Error::encoding(task.start, UNKNOWN_TOTAL, "decoded", error)),
        },
        FRAME_FAILURE => for_all(
            postcard::from_bytes::<Error>(bytes).unwrap_or_else(|error| {
                Error::backend(
                    "processes",
                    format!("a failure report was garbled: {error}"),
                )
            }),
        ),
        other => for_all(Error::backend(
            "processes",
            format!("unknown frame kind {other} from a worker"),
        )),
    }
}

/// Stands in for an item the worker was told to skip; replaced by the
/// item's recorded failure in `finish`.
fn skipped() -> Error {
    Error::backend("processes", "skipped: failed earlier")
}

/// Sends a TASK frame for `task`: frame header, then start, skipped
/// items and the encoded items.
fn send_task(worker: &mut SessionWorker, task: &Task) -> Result<(), Error> {
    let mut header = Vec::with_capacity(16 + 8 * task.failed.len());
    header.extend_from_slice(&(task.start as u64).to_le_bytes());
    header.extend_from_slice(&(task.failed.len() as u64).to_le_bytes());
    for &index in task.failed.keys() {
        header.extend_from_slice(&(index as u64).to_le_bytes());
    }
    let frame = frame_header(
        FRAME_TASK,
        task.seq as usize,
        header.len() + task.items.len(),
    );
    send_all(worker, &frame)?;
    send_all(worker, &header)?;
    send_all(worker, &task.items)
}

/// Sends all of `bytes` to a worker. While its socket is full, reads what
/// the worker writes (into its buffer, handled later): a worker blocked on
/// writing a result to a parent blocked on sending it a chunk would
/// otherwise wait forever.
fn send_all(worker: &mut SessionWorker, mut bytes: &[u8]) -> Result<(), Error> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of the length passed.
        let sent = unsafe {
            libc::send(
                worker.socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent > 0 {
            bytes = &bytes[sent as usize..];
            continue;
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => {}
            std::io::ErrorKind::WouldBlock => {
                if !try_wait_alive(worker.pid) {
                    return Err(Error::backend("processes", "a worker died"));
                }
                let mut fd = libc::pollfd {
                    fd: worker.socket.as_raw_fd(),
                    events: libc::POLLOUT | libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut fd, 1, 100) };
                drain(&worker.socket, &mut worker.buffer)?;
            }
            _ => return Err(Error::backend("processes", format!("send failed: {error}"))),
        }
    }
    Ok(())
}

/// True if `pid` has not exited (without reaping it).
fn try_wait_alive(pid: libc::pid_t) -> bool {
    // SAFETY: siginfo_t is a plain C struct for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid siginfo_t for waitid to fill; WNOWAIT leaves
    // the child to be reaped later.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed, pid 0: still alive).
    result == 0 && unsafe { info.si_pid() } == 0
}

/// A connected pair of Unix stream sockets, close-on-exec:
/// (parent end, child end).
fn socket_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let result = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if result != 0 {
        return Err(os_error("socketpair"));
    }
    // SAFETY: socketpair succeeded: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// --- the worker side ------------------------------------------------------------------

/// Reads chunks from the parent, runs them, writes their results, until
/// the parent closes the socket.
fn serve<T, O>(function: &SharedFn<T, O>, socket: RawFd, slot: &WorkerSlot) -> std::io::Result<()>
where
    T: DeserializeOwned,
    O: Serialize,
{
    // SAFETY: the child end is open and owned by this worker alone; the File
    // is never closed (the process ends with _exit).
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(socket) });
    let mut socket: &std::fs::File = &file;
    loop {
        let mut header = [0u8; FRAME_HEADER];
        match socket.read_exact(&mut header) {
            Ok(()) => {}
            // The parent closed the socket: no more work.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        }
        let (_, seq, payload) = parse_frame_header(&header);
        let mut frame = vec![0u8; payload];
        socket.read_exact(&mut frame)?;
        let (kind, reply) = run_task(function, seq, &frame, slot);
        socket.write_all(&frame_header(kind, seq, reply.len()))?;
        socket.write_all(&reply)?;
        slot.current_chunk.store(IDLE, Ordering::Release);
        std::io::stdout().flush()?;
    }
}

/// Runs one TASK frame's items: (frame kind, payload) of the reply.
fn run_task<T, O>(
    function: &SharedFn<T, O>,
    seq: usize,
    frame: &[u8],
    slot: &WorkerSlot,
) -> (u8, Vec<u8>)
where
    T: DeserializeOwned,
    O: Serialize,
{
    let word = |at: usize| {
        frame
            .get(at..at + 8)
            .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("8 bytes")) as usize)
    };
    let failure = |error: Error| {
        (
            FRAME_FAILURE,
            postcard::to_stdvec(&error).unwrap_or_default(),
        )
    };
    let (Some(start), Some(skipped_count)) = (word(0), word(8)) else {
        return failure(Error::backend("processes", "a task frame was cut short"));
    };
    let mut skip = Vec::with_capacity(skipped_count.min(frame.len() / 8));
    for k in 0..skipped_count {
        match word(16 + 8 * k) {
            Some(index) => skip.push(index),
            None => return failure(Error::backend("processes", "a task frame was cut short")),
        }
    }
    let items: Vec<T> = match postcard::from_bytes(&frame[16 + 8 * skipped_count..]) {
        Ok(items) => items,
        Err(error) => {
            return failure(Error::input_encoding(
                start,
                UNKNOWN_TOTAL,
                "decoded",
                error,
            ));
        }
    };
    slot.current_item.store(start, Ordering::Release);
    slot.current_chunk.store(seq, Ordering::Release);
    let results: Vec<Result<O, Error>> = items
        .into_iter()
        .enumerate()
        .map(|(offset, item)| {
            let index = start + offset;
            if skip.contains(&index) {
                return Err(skipped());
            }
            slot.current_item.store(index, Ordering::Release);
            job::run_stream_task(&**function, item, index)
        })
        .collect();
    match postcard::to_stdvec(&results) {
        Ok(bytes) => (FRAME_RESULT, bytes),
        Err(_) => {
            // Some result cannot be encoded: say which, send the rest.
            let results: Vec<Result<O, Error>> = results
                .into_iter()
                .enumerate()
                .map(|(offset, result)| {
                    let output = result?;
                    match postcard::to_stdvec(&output) {
                        Ok(_) => Ok(output),
                        Err(error) => Err(Error::encoding(
                            start + offset,
                            UNKNOWN_TOTAL,
                            "encoded",
                            error,
                        )),
                    }
                })
                .collect();
            match postcard::to_stdvec(&results) {
                Ok(bytes) => (FRAME_RESULT, bytes),
                Err(error) => failure(Error::encoding(start, UNKNOWN_TOTAL, "encoded", error)),
            }
        }
    }
}
