//! The memory a parent shares with its worker processes: an anonymous
//! `MAP_SHARED` mapping with a header (the next chunk to claim, the stop
//! flag) and one slot per worker (the chunk and item it is on). Everything
//! in it is an atomic, written by one side and read by the other.

use super::os::os_error;
use crate::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize};

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
}

/// An anonymous `MAP_SHARED` mapping: a header and one slot per worker.
pub(super) struct SharedMemory {
    base: *mut libc::c_void,
    length: usize,
    slots: usize,
}

// SAFETY: the mapping is owned by this value and only reached through it;
// everything in it is an atomic, so moving the owner to another thread is
// fine.
unsafe impl Send for SharedMemory {}

impl SharedMemory {
    pub(super) fn new(slots: usize) -> Result<SharedMemory, Error> {
        let length =
            std::mem::size_of::<SharedHeader>() + slots * std::mem::size_of::<WorkerSlot>();
        // SAFETY: an anonymous mapping with no address hint touches no
        // existing memory; the result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        // The mapping is zero-filled: next_chunk 0, stop false; slots are
        // set to IDLE before each fork.
        Ok(SharedMemory {
            base,
            length,
            slots,
        })
    }

    pub(super) fn header(&self) -> &SharedHeader {
        // SAFETY: the mapping is page-aligned, at least as long as the
        // header, zero-initialized (a valid SharedHeader) and lives as long
        // as `self`. The fields are atomics, so sharing with children is fine.
        unsafe { &*self.base.cast::<SharedHeader>() }
    }

    pub(super) fn slot(&self, index: usize) -> &WorkerSlot {
        assert!(index < self.slots, "worker slot {index} out of range");
        // SAFETY: index < slots, so the slot lies inside the mapping; the
        // offset keeps the alignment of the atomics (both structs hold only
        // usize-sized atomics, the header padded to a usize multiple).
        unsafe {
            &*self
                .base
                .cast::<u8>()
                .add(std::mem::size_of::<SharedHeader>())
                .cast::<WorkerSlot>()
                .add(index)
        }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: base and length come from the successful mmap in `new`,
        // and no reference into the mapping outlives `self`.
        unsafe { libc::munmap(self.base, self.length) };
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
