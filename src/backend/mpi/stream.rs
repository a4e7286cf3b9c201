//! Streams and sessions across the ranks, without a barrier between
//! chunks.
//!
//! Every rank submits the same chunks in the same order (the program is
//! SPMD). A stream starts an *epoch* (its first chunk has `seq` 0; a
//! session runs one epoch per call) with a fresh [`Counter`]; a rank with
//! a free thread claims the next ticket from it and runs that chunk if it
//! has submitted it, or holds the ticket until it does. The chunk's encoded
//! results go to every other rank (`MPI_Isend`), and every rank decodes the
//! same bytes, so every rank sees the same results.
//!
//! A rank that ends an epoch early (a dropped stream, a cancel) lets the
//! chunks it runs finish and sends their results, and hands any ticket it
//! holds back with a *release* message: the ranks that still want that
//! chunk run it themselves. So no rank waits for a chunk that nobody will
//! run. Results of a chunk that arrive twice, or for an epoch a rank has
//! left, are dropped.
//!
//! Dropping the engine is collective: the ranks agree on how many messages
//! each sent, receive what is still on the way, and free the
//! communicator and the counter.

use super::counter::Counter;
use super::env::{Entered, Progress, enter};
use crate::backend::{StreamContext, StreamEngine, stream_cancelled};
use crate::error::Error;
use crate::job::{ChunkResults, ChunkSpan, StreamChunk, StreamJob};
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::raw::c_void;
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Message tags: a chunk's encoded results, a chunk whose results could
/// not be encoded (the error's wire form), a ticket handed back.
const RESULTS: i32 = 1;
const FAILED: i32 = 2;
const RELEASE: i32 = 3;

/// How long a waiting stream sleeps between looks at MPI.
const WAIT_POLL: Duration = Duration::from_millis(1);

/// A chunk of the current epoch, as this rank knows it.
enum Wanted {
    /// Submitted here, not claimed here (another rank may run it).
    Waiting(StreamChunk),
    /// Running on this rank's threads.
    Running,
}

/// What a thread sends back: the epoch and chunk it ran, and the encoded
/// results.
type Finished = (u64, ChunkSpan, Result<Vec<u8>, Error>);

/// A message this rank sent to every other rank, kept until delivered.
struct Outgoing {
    requests: Vec<ffi::MPI_Request>,
    /// Read by MPI until the requests complete (never by Rust: it is kept
    /// only to stay alive); a Vec's heap buffer does not move when the Vec
    /// does.
    #[allow(dead_code)]
    bytes: Vec<u8>,
}

// SAFETY: a request handle is an opaque identifier (an integer in MPICH, a
// pointer in Open MPI, which is why the compiler cannot see it is Send)
// that any thread may pass to MPI; the engine tests and frees its requests
// only with the backend's lock held, and the bytes are a plain Vec.
unsafe impl Send for Outgoing {}

/// The stream engine of the MPI backend; see the module docs.
pub(super) struct MpiEngine {
    /// A duplicate of the world communicator, so the stream's messages
    /// never meet anyone else's; `None` once freed.
    comm: Option<Comm>,
    rank: usize,
    size: usize,
    /// Every rank runs on this node; see [`Counter`].
    one_node: bool,
    /// Across nodes: keeps MPI moving while the caller is elsewhere.
    /// Stopped before the communicator is freed.
    progress: Option<Progress>,
    threads: Arc<rayon::ThreadPool>,
    workers: usize,
    job: Arc<dyn StreamJob>,
    /// The current epoch (0 before the first chunk) and its counter.
    epoch: u64,
    counter: Option<Counter>,
    /// This rank still claims tickets in the current epoch.
    claiming: bool,
    /// A ticket claimed before this rank submitted its chunk.
    held: Option<u64>,
    /// Chunks of the current epoch submitted here whose results have not
    /// been handed out, by seq.
    wanted: BTreeMap<u64, Wanted>,
    /// Chunks submitted in the current epoch so far.
    submitted: u64,
    /// Results that arrived before their chunk was submitted here, by
    /// (epoch, seq), as (tag, bytes).
    early: BTreeMap<(u64, u64), (i32, Vec<u8>)>,
    /// Chunks another rank released before this rank submitted them.
    released: BTreeSet<(u64, u64)>,
    done: VecDeque<ChunkResults>,
    /// Chunks running on this rank's threads (any epoch).
    running: usize,
    sender: mpsc::Sender<Finished>,
    receiver: mpsc::Receiver<Finished>,
    outgoing: Vec<Outgoing>,
    /// Messages this rank sent to each other rank (the same to all).
    sent: u64,
    /// Messages received from each rank.
    received: Vec<u64>,
}

/// The stream's communicator. `SimpleCommunicator` frees a duplicate
/// (`MPI_Comm_free`) when dropped.
struct Comm(SimpleCommunicator);

// SAFETY: a communicator handle is an opaque identifier (an integer in
// MPICH, a pointer in Open MPI) that any thread may pass to MPI; every MPI
// call on it is made with the backend's lock held.
unsafe impl Send for Comm {}

impl MpiEngine {
    /// A new engine (collective: duplicates the world communicator).
    pub(super) fn new(
        (entered, world): (&Entered, &SimpleCommunicator),
        one_node: bool,
        (threads, workers): (Arc<rayon::ThreadPool>, usize),
        job: Arc<dyn StreamJob>,
    ) -> MpiEngine {
        let (sender, receiver) = mpsc::channel();
        let size = world.size() as usize;
        let comm = world.duplicate();
        let progress = if one_node || size == 1 {
            None
        } else {
            Progress::start(entered, comm.as_raw())
        };
        MpiEngine {
            comm: Some(Comm(comm)),
            progress,
            rank: world.rank() as usize,
            size,
            one_node,
            threads,
            workers,
            job,
            epoch: 0,
            counter: None,
            claiming: false,
            held: None,
            wanted: BTreeMap::new(),
            submitted: 0,
            early: BTreeMap::new(),
            released: BTreeSet::new(),
            done: VecDeque::new(),
            running: 0,
            sender,
            receiver,
            outgoing: Vec::new(),
            sent: 0,
            received: vec![0; size],
        }
    }

    fn comm(&self) -> &SimpleCommunicator {
        &self
            .comm
            .as_ref()
            .expect("the communicator lives until drop")
            .0
    }

    /// Starts the next epoch (collective): a new counter, nothing wanted.
    fn next_epoch(&mut self, entered: &Entered) {
        self.leave_epoch(entered);
        // Collective, in the same order on every rank: the old counter is
        // freed once every rank has left its epoch.
        drop(self.counter.take());
        self.counter = Some(Counter::new(self.comm(), self.one_node));
        self.epoch += 1;
        self.claiming = true;
        self.submitted = 0;
        let epoch = self.epoch;
        self.early.retain(|&(e, _), _| e >= epoch);
        self.released.retain(|&(e, _)| e >= epoch);
    }

    /// Stops claiming in the current epoch and hands back a held ticket.
    /// Chunks running here go on; their results are still sent.
    fn leave_epoch(&mut self, entered: &Entered) {
        self.claiming = false;
        if let Some(ticket) = self.held.take() {
            self.broadcast(entered, RELEASE, header(self.epoch, ticket));
        }
        self.wanted.clear();
    }

    /// Starts chunk `seq` on a thread.
    fn spawn(&mut self, seq: u64, chunk: StreamChunk) {
        let job = self.job.clone();
        let sender = self.sender.clone();
        let epoch = self.epoch;
        self.running += 1;
        self.wanted.insert(seq, Wanted::Running);
        self.threads.spawn(move || {
            let span = chunk.span();
            let result = job.run_and_encode(chunk);
            // The receiver is gone only if the engine is.
            let _ = sender.send((epoch, span, result));
        });
    }

    /// Starts chunk `seq`, which waits here with its inputs.
    fn spawn_waiting(&mut self, seq: u64) {
        if let Some(Wanted::Waiting(chunk)) = self.wanted.remove(&seq) {
            self.spawn(seq, chunk);
        }
    }

    /// Claims tickets while a thread is free, and runs their chunks.
    fn claim(&mut self) {
        while self.claiming && self.held.is_none() && self.running < self.workers {
            let Some(counter) = self.counter.as_ref() else {
                return;
            };
            let ticket = counter.claim();
            match self.wanted.get(&ticket) {
                Some(Wanted::Waiting(_)) => self.spawn_waiting(ticket),
                // Already here (run after a release, or its results came).
                Some(_) => {}
                None if ticket < self.submitted => {}
                None => self.held = Some(ticket),
            }
        }
    }

    /// Sends `bytes` (less than 2 GiB) with `tag` to every other rank.
    fn broadcast(&mut self, _entered: &Entered, tag: i32, bytes: Vec<u8>) {
        if self.size == 1 {
            return;
        }
        let count = i32::try_from(bytes.len()).expect("messages are checked to fit");
        let comm = self.comm().as_raw();
        let mut requests = Vec::with_capacity(self.size - 1);
        for other in (0..self.size).filter(|&other| other != self.rank) {
            // SAFETY: RSMPI_REQUEST_NULL is a plain constant handle.
            let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: the caller holds the MPI lock; `bytes` stays alive
            // and unmoved (in `outgoing`) until the request completes.
            unsafe {
                ffi::MPI_Isend(
                    bytes.as_ptr().cast::<c_void>(),
                    count,
                    ffi::RSMPI_UINT8_T,
                    other as i32,
                    tag,
                    comm,
                    &mut request,
                );
            }
            requests.push(request);
        }
        self.sent += 1;
        self.outgoing.push(Outgoing { requests, bytes });
    }

    /// Forgets sends that completed.
    fn reap_sends(&mut self, _entered: &Entered) {
        self.outgoing.retain_mut(|send| {
            let mut flag = 0;
            // SAFETY: the requests are live Isend requests of this engine
            // (completed ones become REQUEST_NULL, which Testall accepts);
            // the caller holds the MPI lock.
            unsafe {
                ffi::MPI_Testall(
                    send.requests.len() as i32,
                    send.requests.as_mut_ptr(),
                    &mut flag,
                    ffi::RSMPI_STATUSES_IGNORE,
                );
            }
            flag == 0
        });
    }

    /// Receives every message that has arrived.
    fn receive_arrived(&mut self, _entered: &Entered) {
        loop {
            let probed = self.comm().any_process().immediate_matched_probe();
            let Some(probed) = probed else {
                return;
            };
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            self.received[status.source_rank() as usize] += 1;
            self.accept_message(status.tag(), bytes);
        }
    }

    /// Handles a message from another rank.
    fn accept_message(&mut self, tag: i32, bytes: Vec<u8>) {
        let Some((epoch, seq)) = read_header(&bytes) else {
            return;
        };
        if epoch < self.epoch {
            return;
        }
        if tag == RELEASE {
            if epoch == self.epoch && seq < self.submitted {
                if matches!(self.wanted.get(&seq), Some(Wanted::Waiting(_))) {
                    self.spawn_waiting(seq);
                }
            } else {
                self.released.insert((epoch, seq));
            }
            return;
        }
        if epoch == self.epoch && seq < self.submitted {
            if self.wanted.remove(&seq).is_some() {
                self.done.push_back(self.decode(tag, &bytes));
            }
        } else {
            self.early.insert((epoch, seq), (tag, bytes));
        }
    }

    /// The results a RESULTS or FAILED message carries.
    fn decode(&self, tag: i32, bytes: &[u8]) -> ChunkResults {
        let span = read_span(bytes);
        let body = bytes.get(HEADER_WITH_SPAN..).unwrap_or_default();
        if tag == FAILED {
            let error = Error::from_wire(body, "mpi");
            ChunkResults::failed(span, |_| error.clone())
        } else {
            self.job.decode_results(span, body)
        }
    }

    /// Handles a chunk a thread finished: sends its results to every other
    /// rank, and keeps them if this rank still wants them.
    fn finished(&mut self, entered: &Entered, (epoch, span, result): Finished) {
        self.running -= 1;
        let message = |tag: i32, body: &[u8]| {
            let mut bytes = header(epoch, span.seq);
            write_span(&mut bytes, span);
            bytes.extend_from_slice(body);
            (tag, bytes)
        };
        let failed = |error: Error| message(FAILED, &error.to_wire());
        let (tag, bytes) = match result {
            Ok(encoded) if i32::try_from(HEADER_WITH_SPAN + encoded.len()).is_err() => {
                failed(Error::backend(
                    "mpi",
                    format!(
                        "a stream chunk's results take {} bytes, more than one MPI message \
                         carries (2 GiB); use a smaller chunk_size",
                        encoded.len()
                    ),
                ))
            }
            Ok(encoded) => message(RESULTS, &encoded),
            Err(error) => failed(error),
        };
        if epoch == self.epoch && self.wanted.remove(&span.seq).is_some() {
            self.done.push_back(self.decode(tag, &bytes));
        }
        self.broadcast(entered, tag, bytes);
    }

    /// One round of work: finished chunks, arrived messages, claims.
    fn pump(&mut self) -> Result<(), Error> {
        let entered = enter()?;
        while let Ok(finished) = self.receiver.try_recv() {
            self.finished(&entered, finished);
        }
        self.receive_arrived(&entered);
        self.claim();
        self.reap_sends(&entered);
        Ok(())
    }

    /// Waits until no chunk runs on this rank's threads, sending the
    /// results of the ones that finish.
    fn wait_for_running(&mut self) -> Result<(), Error> {
        while self.running > 0 {
            match self.receiver.recv_timeout(WAIT_POLL) {
                Ok(finished) => {
                    let entered = enter()?;
                    self.finished(&entered, finished);
                }
                Err(_) => {
                    // Keep MPI moving (sends to ranks that wait for them).
                    let entered = enter()?;
                    self.receive_arrived(&entered);
                    self.reap_sends(&entered);
                }
            }
        }
        Ok(())
    }

    /// The collective end of the engine; see the module docs.
    fn close(&mut self) -> Result<(), Error> {
        self.wait_for_running()?;
        let entered = enter()?;
        self.leave_epoch(&entered);
        let mut sent = vec![0u64; self.size];
        self.comm().all_gather_into(&self.sent, &mut sent[..]);
        for other in (0..self.size).filter(|&other| other != self.rank) {
            while self.received[other] < sent[other] {
                let (bytes, _) = self
                    .comm()
                    .process_at_rank(other as i32)
                    .matched_probe()
                    .matched_receive_vec::<u8>();
                drop(bytes);
                self.received[other] += 1;
            }
        }
        for send in &mut self.outgoing {
            // SAFETY: live Isend requests of this engine; the lock is held.
            unsafe {
                ffi::MPI_Waitall(
                    send.requests.len() as i32,
                    send.requests.as_mut_ptr(),
                    ffi::RSMPI_STATUSES_IGNORE,
                );
            }
        }
        self.outgoing.clear();
        drop(self.counter.take());
        drop(self.progress.take());
        drop(self.comm.take());
        drop(entered);
        Ok(())
    }
}

impl StreamEngine for MpiEngine {
    fn submit(&mut self, chunk: StreamChunk) -> Result<(), Error> {
        let span = chunk.span();
        if span.seq == 0 {
            // Let what runs finish first: its results belong to the epoch
            // the other ranks may still be in.
            let entered = enter()?;
            self.next_epoch(&entered);
        }
        let key = (self.epoch, span.seq);
        self.submitted = self.submitted.max(span.seq + 1);
        if let Some((tag, bytes)) = self.early.remove(&key) {
            self.done.push_back(self.decode(tag, &bytes));
        } else if self.held == Some(span.seq) || self.released.remove(&key) {
            if self.held == Some(span.seq) {
                self.held = None;
            }
            self.spawn(span.seq, chunk);
        } else {
            self.wanted.insert(span.seq, Wanted::Waiting(chunk));
        }
        self.pump()
    }

    /// Every rank skips the same chunks (a journal's records are shared
    /// by rank 0 when the stream opens): a ticket for one is handed out
    /// and dropped, and the epoch starts at chunk 0 whether it runs or not.
    fn skip(&mut self, seq: u64) -> Result<(), Error> {
        if seq == 0 {
            let entered = enter()?;
            self.next_epoch(&entered);
        }
        self.submitted = self.submitted.max(seq + 1);
        self.released.remove(&(self.epoch, seq));
        if self.held == Some(seq) {
            self.held = None;
        }
        self.pump()
    }

    fn next_done(&mut self, context: &StreamContext<'_>) -> Result<ChunkResults, Error> {
        loop {
            if let Some(chunk) = self.done.pop_front() {
                return Ok(chunk);
            }
            if context.is_cancelled() {
                return Err(stream_cancelled());
            }
            self.pump()?;
            if !self.done.is_empty() {
                continue;
            }
            match self.receiver.recv_timeout(WAIT_POLL) {
                Ok(finished) => {
                    let entered = enter()?;
                    self.finished(&entered, finished);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the engine holds a sender")
                }
            }
        }
    }

    fn cancel(&mut self) {
        // Another rank may wait for what runs here: let it finish and send.
        let _ = self.wait_for_running();
        if let Ok(entered) = enter() {
            self.leave_epoch(&entered);
        }
        self.done.clear();
    }
}

impl MpiEngine {
    /// Lets go of the counter and the communicator without the collective
    /// calls that free them (a rank that will not meet the others).
    fn abandon(&mut self) {
        drop(self.progress.take());
        std::mem::forget(self.counter.take());
        std::mem::forget(self.comm.take());
    }
}

impl Drop for MpiEngine {
    fn drop(&mut self) {
        if std::thread::panicking() || mpi::environment::is_finalized() {
            // A rank that unwinds will not meet the others in a collective;
            // leak the handles rather than hang.
            self.abandon();
            return;
        }
        if let Err(error) = self.close() {
            eprintln!("parpool: closing an MPI stream failed: {error}");
            self.abandon();
        }
    }
}

/// Bytes of a message header: epoch and seq, little-endian u64s.
const HEADER: usize = 16;
/// The header plus the chunk's span (start and len, u64s).
const HEADER_WITH_SPAN: usize = HEADER + 16;

fn header(epoch: u64, seq: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_WITH_SPAN);
    bytes.extend_from_slice(&epoch.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes
}

fn write_span(bytes: &mut Vec<u8>, span: ChunkSpan) {
    bytes.extend_from_slice(&(span.start as u64).to_le_bytes());
    bytes.extend_from_slice(&(span.len as u64).to_le_bytes());
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn read_header(bytes: &[u8]) -> Option<(u64, u64)> {
    Some((read_u64(bytes, 0)?, read_u64(bytes, 8)?))
}

/// The span a RESULTS or FAILED message (checked by `read_header` and
/// built by `finished`) carries.
fn read_span(bytes: &[u8]) -> ChunkSpan {
    let field = |at| read_u64(bytes, at).unwrap_or(0);
    ChunkSpan {
        seq: field(8),
        start: field(16) as usize,
        len: field(24) as usize,
    }
}
