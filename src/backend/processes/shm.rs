//! The memory a parent shares with its worker processes: an anonymous
//! `MAP_SHARED` mapping with a header (the next chunk to claim, the stop
//! flag) and one slot per worker (the chunk and item it is on). Everything
//! in it is an atomic, written by one side and read by the other.

use super::os::os_error;
use crate::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Slot value meaning "no chunk" / "no item".
pub(super) const IDLE: usize = usize::MAX;

/// The head of the shared mapping.
#[repr(C)]
pub(super) struct SharedHeader {
    /// The next chunk index a worker of a plain call claims.
    pub(super) next_chunk: AtomicUsize,
    /// Raised at a fail-fast failure: claim no more chunks.
    pub(super) stop: AtomicBool,
}

/// What one worker is doing, written by the worker, read by the parent.
#[repr(C)]
pub(super) struct WorkerSlot {
    /// The chunk index (plain call) or stream position (session) it runs,
    /// or [`IDLE`].
    pub(super) current_chunk: AtomicUsize,
    /// The item it runs, or [`IDLE`].
    pub(super) current_item: AtomicUsize,
    /// Sessions and streams: the chunk the parent sent to wait behind the
    /// running one, while the worker has not taken it; [`IDLE`] when there
    /// is none; `seq | REVOKED` once the parent took it back to give it
    /// to an idle worker. Both sides change it by compare-and-swap only,
    /// so exactly one of them gets the chunk: see [`take_queued`] and
    /// [`revoke_queued`].
    pub(super) queued_chunk: AtomicUsize,
    /// Frames the worker has written whole, counted after each one: the
    /// parent, having read everything written before it looked, must have
    /// cut as many frames from the bytes, or the bytes are not frames.
    pub(super) frames_sent: AtomicUsize,
    /// The chunk of the last frame the worker wrote whole.
    pub(super) last_sent_chunk: AtomicUsize,
    /// Lent results (see `frames.rs`): `n + 1` once the parent has read
    /// those of the worker's frame `n`, with [`LEND_REFUSED`] set if it
    /// could not (the worker then sends them through its socket).
    pub(super) lent_done: AtomicUsize,
}

/// The mark in [`WorkerSlot::lent_done`] of lent results the parent could
/// not read.
pub(super) const LEND_REFUSED: usize = 1 << (usize::BITS - 1);

/// The worker's side: the number of the next frame it writes.
pub(super) fn next_frame(slot: &WorkerSlot) -> usize {
    slot.frames_sent.load(Ordering::Acquire)
}

/// The worker's side: frame `chunk` is written whole.
pub(super) fn frame_sent(slot: &WorkerSlot, chunk: usize) {
    slot.last_sent_chunk.store(chunk, Ordering::Release);
    slot.frames_sent.fetch_add(1, Ordering::AcqRel);
}

/// The mark of a queued chunk the parent took back.
pub(super) const REVOKED: usize = 1 << (usize::BITS - 2);

/// The worker's side: true if it may run chunk `seq`, which it has just
/// read; false if the parent took it back (the worker then skips it).
pub(super) fn take_queued(slot: &WorkerSlot, seq: usize) -> bool {
    match slot
        .queued_chunk
        .compare_exchange(seq, IDLE, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => true,
        Err(now) if now == seq | REVOKED => {
            // Seen: the parent may queue the next chunk here.
            let _ =
                slot.queued_chunk
                    .compare_exchange(now, IDLE, Ordering::AcqRel, Ordering::Acquire);
            false
        }
        // Not the queued chunk: one sent to an idle worker, never revoked.
        Err(_) => true,
    }
}

/// The parent's side: marks chunk `seq` as waiting behind the running one.
/// False while a chunk taken back earlier is still unread by the worker
/// (then nothing may be queued here yet).
pub(super) fn queue_behind(slot: &WorkerSlot, seq: usize) -> bool {
    slot.queued_chunk
        .compare_exchange(IDLE, seq, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The parent's side: takes queued chunk `seq` back; true if the worker
/// had not taken it (it will skip it), false if it had.
pub(super) fn revoke_queued(slot: &WorkerSlot, seq: usize) -> bool {
    slot.queued_chunk
        .compare_exchange(seq, seq | REVOKED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// An anonymous `MAP_SHARED` mapping: a header and one slot per worker.
pub(super) struct SharedMemory {
    mapping: crate::sys::SharedMapping,
    slots: usize,
}

impl SharedMemory {
    pub(super) fn new(slots: usize) -> Result<SharedMemory, Error> {
        let length =
            std::mem::size_of::<SharedHeader>() + slots * std::mem::size_of::<WorkerSlot>();
        // The mapping is zero-filled: next_chunk 0, stop false; slots are
        // set to IDLE before each fork.
        let mapping = crate::sys::SharedMapping::new(length).map_err(|e| os_error("mmap", e))?;
        Ok(SharedMemory { mapping, slots })
    }

    pub(super) fn header(&self) -> &SharedHeader {
        // SAFETY: the mapping is page-aligned, at least as long as the
        // header, zero-initialized (a valid SharedHeader) and lives as long
        // as `self`. The fields are atomics, so sharing with children is fine.
        unsafe { &*self.mapping.as_ptr().cast::<SharedHeader>() }
    }

    pub(super) fn slot(&self, index: usize) -> &WorkerSlot {
        assert!(index < self.slots, "worker slot {index} out of range");
        // SAFETY: index < slots, so the slot lies inside the mapping; the
        // offset keeps the alignment of the atomics (both structs hold only
        // usize-sized atomics, the header padded to a usize multiple).
        unsafe {
            &*self
                .mapping
                .as_ptr()
                .add(std::mem::size_of::<SharedHeader>())
                .cast::<WorkerSlot>()
                .add(index)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn the_shared_header_keeps_slots_aligned() {
        assert_eq!(
            std::mem::size_of::<SharedHeader>() % std::mem::align_of::<WorkerSlot>(),
            0
        );
        let shared = SharedMemory::new(3).unwrap();
        assert_eq!(shared.header().next_chunk.load(Ordering::Relaxed), 0);
        shared.slot(2).current_item.store(5, Ordering::Relaxed);
        assert_eq!(shared.slot(2).current_item.load(Ordering::Relaxed), 5);
    }
}
