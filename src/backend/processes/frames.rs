//! Cutting what a worker writes into frames: [`FrameReader`], one per
//! worker. A worker writes numbered frames of results and failures; bytes
//! that are anything else (a task that wrote to the socket, a stream cut
//! short) mark the worker malformed, and nothing it writes afterwards is
//! read as a frame. A large frame that fills the read buffer by itself is
//! handed over in that buffer (no copy), which comes back to the fleet's
//! [`Spares`] once decoded.
//!
//! Large results may arrive lent instead (see `lend.rs`): the reader
//! reads them from the worker's memory when their frame arrives.

use super::lend;
use super::os;
use super::shm::{IDLE, LEND_REFUSED, WorkerSlot};
use crate::backend::wire::{self, FrameKind, Header};
use crate::job::{Block, Received};
use crate::sync::LockUnpoisoned;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A frame's payload: a range of the bytes read. A large frame that filled
/// the read buffer by itself takes the buffer along instead of a copy, and
/// gives it back to the fleet's [`Spares`] when dropped. Lent results may
/// come with blocks too: arrays read into vectors of their own, each at
/// its place in the bytes (see [`Payload::received`]).
pub(super) struct Payload {
    bytes: Vec<u8>,
    range: std::ops::Range<usize>,
    spares: Option<Spares>,
    blocks: Vec<(usize, Block)>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(spares) = self.spares.take() {
            spares.put(std::mem::take(&mut self.bytes));
        }
    }
}

/// Large read buffers kept for the next large frames: memory already mapped
/// and faulted in, where a fresh buffer of hundreds of MB costs the kernel
/// a page fault and a clear per page (about a tenth of the time of a large
/// result from a worker, measured with `perf`).
#[derive(Clone, Default)]
pub(super) struct Spares(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// At most this many bytes of spare buffers are kept.
const SPARE_BYTES: usize = 512 << 20;

impl Spares {
    fn put(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut spares = self.0.lock_unpoisoned();
        let kept: usize = spares.iter().map(Vec::capacity).sum();
        if kept + buffer.capacity() <= SPARE_BYTES {
            spares.push(buffer);
        }
    }

    /// The largest spare buffer, if any.
    fn take(&self) -> Option<Vec<u8>> {
        let mut spares = self.0.lock_unpoisoned();
        let largest = (0..spares.len()).max_by_key(|&index| spares[index].capacity())?;
        Some(spares.swap_remove(largest))
    }
}

impl Payload {
    /// `bytes`, all of them, in a buffer that goes back to `spares`, with
    /// `blocks` in their places.
    fn in_spare(bytes: Vec<u8>, spares: &Spares, blocks: Vec<(usize, Block)>) -> Payload {
        Payload {
            range: 0..bytes.len(),
            bytes,
            spares: Some(spares.clone()),
            blocks,
        }
    }

    /// `range` of `bytes`, which goes back to `spares` if given.
    fn of(bytes: Vec<u8>, range: std::ops::Range<usize>, spares: Option<&Spares>) -> Payload {
        Payload {
            bytes,
            range,
            spares: spares.cloned(),
            blocks: Vec::new(),
        }
    }

    /// Its length, blocks included.
    fn len_with_blocks(&self) -> usize {
        self.range.len()
            + self
                .blocks
                .iter()
                .map(|(_, block)| block.bytes().len())
                .sum::<usize>()
    }

    /// The payload as results received (see [`Received`]), blocks taken
    /// along.
    pub(super) fn received(&mut self) -> Received<'_> {
        let blocks = std::mem::take(&mut self.blocks);
        Received::new(&self.bytes[self.range.clone()], blocks)
            .expect("blocks are placed in order within the bytes as they are read")
    }

    /// All its bytes in one piece: joined (a copy) if it has blocks.
    pub(super) fn whole(&self) -> std::borrow::Cow<'_, [u8]> {
        let bytes = &self.bytes[self.range.clone()];
        if self.blocks.is_empty() {
            return std::borrow::Cow::Borrowed(bytes);
        }
        let blocks = self
            .blocks
            .iter()
            .map(|(place, block)| (*place, block.bytes()));
        std::borrow::Cow::Owned(crate::job::join_blocks(bytes, blocks))
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.len_with_blocks())
    }
}

/// Frames at least this large are handed over in the read buffer itself.
const HAND_OVER: usize = 1 << 20;

/// What has been read from one worker.
#[derive(Debug, Default)]
pub(super) struct FrameReader {
    /// Bytes read but not yet cut into frames.
    buffer: Vec<u8>,
    /// Frames cut from what it wrote.
    frames_read: usize,
    /// Set when it wrote bytes that are not frames: the chunk of the frame
    /// that was lost.
    malformed: Option<usize>,
    /// Lent results read from the worker's memory, by frame number, before
    /// their frames are cut; `None` where there is nothing to cut (the
    /// worker died, or sends them through the socket instead).
    lent: BTreeMap<usize, Option<Payload>>,
    /// Set once the worker has been reaped: its id may name another
    /// process now, so its memory is never read again.
    gone: bool,
}

impl FrameReader {
    /// The chunk whose frame was lost, if the worker wrote bytes that are
    /// not frames.
    pub(super) fn malformed(&self) -> Option<usize> {
        self.malformed
    }

    /// Reads what `channel` holds, to be cut into frames at the next
    /// [`read`](FrameReader::read) (while the parent is sending, so the
    /// worker is never blocked writing to a full socket).
    pub(super) fn drain(
        &mut self,
        channel: &OwnedFd,
        pid: os::Pid,
        state: &WorkerSlot,
        spares: &Spares,
    ) -> Result<(), crate::error::Error> {
        os::drain(channel, &mut self.buffer)?;
        // A worker waiting for its lent results to be read reads no chunk.
        self.read_lent(pid, state, spares);
        Ok(())
    }

    /// Reads what `channel` holds and cuts it into frames. `state` is the
    /// worker's shared slot; large frames take their buffer along, to come
    /// back to `spares`. Also says whether the worker must be killed: its
    /// channel cannot be read, or it wrote bytes that are not its frames.
    pub(super) fn read(
        &mut self,
        channel: &OwnedFd,
        pid: os::Pid,
        state: &WorkerSlot,
        spares: &Spares,
    ) -> (Vec<(Header, Payload)>, bool) {
        if self.buffer.capacity() == 0 {
            // Its buffer went with a large frame: take one back, if any.
            self.buffer = spares.take().unwrap_or_default();
        }
        // Frames the worker had written whole before the drain: all their
        // bytes are read by its end.
        let sent = state.frames_sent.load(Ordering::Acquire);
        let unreadable = os::drain(channel, &mut self.buffer).is_err();
        if self.malformed.is_some() {
            // Killed for writing bytes that are not frames: nothing more
            // it wrote is read as a frame, though it may look like one.
            self.buffer.clear();
            return (Vec::new(), unreadable);
        }
        self.read_lent(pid, state, spares);
        let (frames, cut) = self.cut(spares);
        let wrong = match cut {
            // The buffer went with the frame, which was all it held.
            Cut::HandedOver => return (frames, unreadable),
            Cut::Frames(consumed) => {
                self.buffer.drain(..consumed);
                false
            }
            Cut::Wrong(consumed) => {
                self.buffer.drain(..consumed);
                true
            }
        };
        if wrong || self.frames_read < sent {
            self.malformed = Some(lost_chunk(state, self.frames_read < sent));
            self.buffer = Vec::new();
            return (frames, true);
        }
        (frames, unreadable)
    }

    /// The complete frames at the front of the buffer, and how the cutting
    /// ended.
    fn cut(&mut self, spares: &Spares) -> (Vec<(Header, Payload)>, Cut) {
        let mut frames = Vec::new();
        let mut consumed = 0;
        while let Some(header) = Header::peek(&self.buffer[consumed..]) {
            // A worker writes results and failures, numbered from 0.
            if !matches!(
                header.kind,
                Some(FrameKind::Results | FrameKind::Failure | FrameKind::Lent)
            ) || header.number != self.frames_read
            {
                return (frames, Cut::Wrong(consumed));
            }
            let Some((header, payload)) = wire::parse(&self.buffer[consumed..]) else {
                break; // the rest is on its way
            };
            if header.kind == Some(FrameKind::Lent) {
                // Read by `read_lent` when it arrived, unless its list of
                // pieces is not one.
                let Some(results) = self.lent.remove(&header.number) else {
                    return (frames, Cut::Wrong(consumed));
                };
                self.frames_read += 1;
                consumed += payload.end;
                if let Some(results) = results {
                    let header = Header {
                        kind: Some(FrameKind::Results),
                        length: results.len_with_blocks(),
                        ..header
                    };
                    frames.push((header, results));
                }
                continue;
            }
            self.frames_read += 1;
            if consumed == 0 && payload.end == self.buffer.len() && payload.len() >= HAND_OVER {
                // The buffer holds exactly this frame: hand it over.
                let bytes = std::mem::take(&mut self.buffer);
                let payload = Payload::of(bytes, payload, Some(spares));
                frames.push((header, payload));
                return (frames, Cut::HandedOver);
            }
            let start = consumed;
            consumed += payload.end;
            let bytes = self.buffer[start + payload.start..start + payload.end].to_vec();
            let range = 0..bytes.len();
            let payload = Payload::of(bytes, range, None);
            frames.push((header, payload));
        }
        (frames, Cut::Frames(consumed))
    }
}

impl FrameReader {
    /// The worker has been reaped: lent results not read by now are lost
    /// with it (it waits for them to be read before it counts them sent,
    /// so its death is reported with their chunk).
    pub(super) fn worker_gone(&mut self) {
        self.gone = true;
    }

    /// Reads the lent results of every whole `Lent` frame in the buffer
    /// not read yet from the memory of worker `pid`, and tells the worker
    /// (its `state`). Frames that are not in order are left to
    /// [`cut`](FrameReader::cut) to judge.
    fn read_lent(&mut self, pid: os::Pid, state: &WorkerSlot, spares: &Spares) {
        let mut at = 0;
        let mut number = self.frames_read;
        while let Some((header, payload)) = wire::parse(&self.buffer[at..]) {
            if header.number != number {
                return;
            }
            if header.kind == Some(FrameKind::Lent) && !self.lent.contains_key(&number) {
                let Some(pieces) = lend::pieces(&self.buffer[at + payload.start..at + payload.end])
                else {
                    return;
                };
                if self.gone {
                    self.lent.insert(number, None);
                    return;
                }
                let mut bytes = spares.take().unwrap_or_default();
                let results = match lend::read_into(pid, &pieces, &mut bytes) {
                    Ok(blocks) => Ok(Payload::in_spare(bytes, spares, blocks)),
                    Err(error) => {
                        spares.put(bytes);
                        Err(error)
                    }
                };
                let done = match &results {
                    Ok(_) => number + 1,
                    Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
                        // Dead: its death is reported, with its chunk.
                        self.lent.insert(number, None);
                        return;
                    }
                    // Addresses that are not its memory: not a list this
                    // crate's worker wrote. Left unread, the frame is cut
                    // as bytes that are not frames.
                    Err(error) if error.raw_os_error() == Some(libc::EFAULT) => return,
                    Err(_) => {
                        lend::refused();
                        (number + 1) | LEND_REFUSED
                    }
                };
                self.lent.insert(number, results.ok());
                state.lent_done.store(done, Ordering::Release);
            }
            at += payload.end;
            number += 1;
        }
    }
}

/// How cutting a buffer into frames ended.
enum Cut {
    /// The frames took this many bytes; the rest is a frame on its way.
    Frames(usize),
    /// One large frame took the whole buffer along.
    HandedOver,
    /// After this many bytes came a header that is not the next frame's.
    Wrong(usize),
}

/// The chunk whose frame was lost when a worker wrote bytes that are not
/// its frames (a header of the wrong kind or number, or fewer frames than
/// it finished writing): one it finished writing, if some did not come
/// whole (`short`), else the one of the chunk it is on. Nothing after the
/// bad bytes can be trusted; the worker dies, and its chunk is judged as
/// lost.
fn lost_chunk(state: &WorkerSlot, short: bool) -> usize {
    let current = state.current_chunk.load(Ordering::Acquire);
    let last_sent = state.last_sent_chunk.load(Ordering::Acquire);
    if short || current == IDLE {
        last_sent
    } else {
        current
    }
}
