//! The storage a [`ChunkClaim`](super::book::ChunkClaim) works on: the
//! caller's inputs, moved out one at a time, and output slots, written
//! once. Both are cut by a [`ChunkPlan`]; per chunk they count how many
//! items were taken and how many slots written, so that whatever a failed or
//! cancelled call left behind is dropped exactly once.
//!
//! Every `unsafe` access here relies on the claim invariant written on
//! [`ChunkClaim`](super::book::ChunkClaim): only the holder of a chunk
//! touches the chunk's inputs and slots, in order, and slots are read only
//! once their chunk is done.

use crate::plan::ChunkPlan;
use std::cell::UnsafeCell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The caller's items, moved out one at a time by the chunk holders.
pub(super) struct Inputs<T> {
    items: ManuallyDrop<Vec<MaybeUninit<T>>>,
    /// Per chunk: how many of its items (from its start) were moved out.
    taken: Box<[AtomicUsize]>,
    plan: ChunkPlan,
}

// SAFETY: items are moved to whichever thread holds their chunk (T: Send);
// the claim invariant gives each chunk to one holder at a time, so no item
// is read twice.
unsafe impl<T: Send> Sync for Inputs<T> {}

impl<T> Inputs<T> {
    pub(super) fn new(items: Vec<T>, plan: ChunkPlan) -> Inputs<T> {
        let mut items = ManuallyDrop::new(items);
        let (ptr, len, capacity) = (items.as_mut_ptr(), items.len(), items.capacity());
        // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the pointer,
        // length and capacity come from a live `Vec<T>` we no longer use.
        let items = unsafe { Vec::from_raw_parts(ptr.cast::<MaybeUninit<T>>(), len, capacity) };
        Inputs {
            items: ManuallyDrop::new(items),
            taken: counters(plan.chunk_count()),
            plan,
        }
    }

    /// Moves item `index` out.
    ///
    /// # Safety
    ///
    /// The caller holds the chunk of `index`, takes the chunk's items in
    /// order, each once, and stores the count with [`Inputs::set_taken`].
    pub(super) unsafe fn take(&self, index: usize) -> T {
        let slot = self.items.as_ptr().wrapping_add(index);
        // SAFETY: index < len (it comes from the plan); by the caller's
        // contract the item is still initialized and nobody else reads it.
        unsafe { (*slot).assume_init_read() }
    }

    /// A pointer to item `first`, for moving that item and the ones after
    /// it out in a loop; reading through it has the contract of
    /// [`take`](Inputs::take).
    #[inline]
    pub(super) fn items_from(&self, first: usize) -> *const MaybeUninit<T> {
        self.items.as_ptr().wrapping_add(first)
    }

    /// Records that the first `count` items of `chunk` were moved out.
    pub(super) fn set_taken(&self, chunk: usize, count: usize) {
        self.taken[chunk].store(count, Ordering::Release);
    }
}

impl<T> Drop for Inputs<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            for chunk in 0..self.plan.chunk_count() {
                let range = self.plan.chunk_range(chunk);
                let taken = self.taken[chunk].load(Ordering::Acquire);
                for slot in &mut self.items[range.start + taken..range.end] {
                    // SAFETY: items past `taken` in a chunk were never moved out.
                    unsafe { slot.assume_init_drop() };
                }
            }
        }
        // SAFETY: dropped once, here; the elements are `MaybeUninit`, so
        // dropping the Vec only frees the buffer.
        unsafe { ManuallyDrop::drop(&mut self.items) };
    }
}

/// Output slots cut by a plan: one per item for `map`, one per chunk (a
/// plan of chunk size 1) for `map_reduce`'s partials.
pub(super) struct Outputs<O> {
    slots: ManuallyDrop<Vec<UnsafeCell<MaybeUninit<O>>>>,
    /// Per chunk: how many of its slots (from its start) hold a value.
    written: Box<[AtomicUsize]>,
    plan: ChunkPlan,
}

// SAFETY: a chunk's slots are written only by the holder of the chunk and
// read only after the chunk is done (Release/Acquire on the chunk state);
// values move from worker threads to the caller, hence O: Send.
unsafe impl<O: Send> Sync for Outputs<O> {}

impl<O> Outputs<O> {
    pub(super) fn new(plan: ChunkPlan) -> Outputs<O> {
        let mut slots: Vec<UnsafeCell<MaybeUninit<O>>> = Vec::with_capacity(plan.item_count());
        // Written by the workers, each its chunks: on 2 MiB pages when
        // large, as the items are (`pool::collect_items`).
        crate::sys::advise_huge_pages(
            slots.as_ptr().cast(),
            slots.capacity().saturating_mul(size_of::<O>()),
        );
        slots.resize_with(plan.item_count(), || UnsafeCell::new(MaybeUninit::uninit()));
        Outputs {
            slots: ManuallyDrop::new(slots),
            written: counters(plan.chunk_count()),
            plan,
        }
    }

    pub(super) fn plan(&self) -> ChunkPlan {
        self.plan
    }

    /// Writes slot `index`.
    ///
    /// # Safety
    ///
    /// The caller holds the chunk of `index`, writes its slots in order,
    /// each once, and stores the count with [`Outputs::set_written`].
    pub(super) unsafe fn write(&self, index: usize, value: O) {
        // SAFETY: by the caller's contract nobody else touches this slot,
        // and it holds no value yet.
        unsafe { (*self.slots[index].get()).write(value) };
    }

    /// A pointer to slot `first`, for writing that slot and the ones after
    /// it in a loop (see [`ChunkClaim::map_block`](super::book::ChunkClaim::map_block)).
    /// Writing through it has the contract of [`write`](Outputs::write).
    #[inline]
    pub(super) fn slots_from(&self, first: usize) -> *mut MaybeUninit<O> {
        // `UnsafeCell<MaybeUninit<O>>` has the layout of `MaybeUninit<O>`
        // (repr(transparent)), and writing through a pointer out of an
        // UnsafeCell is allowed.
        UnsafeCell::raw_get(self.slots.as_ptr().wrapping_add(first))
    }

    /// Records that the first `count` slots of `chunk` hold values.
    pub(super) fn set_written(&self, chunk: usize, count: usize) {
        self.written[chunk].store(count, Ordering::Release);
    }

    /// The values of `chunk`.
    ///
    /// # Safety
    ///
    /// The chunk is done: all its slots are written and nobody writes them
    /// any more.
    pub(super) unsafe fn chunk(&self, chunk: usize) -> &[O] {
        let range = self.plan.chunk_range(chunk);
        // SAFETY: the slots of a done chunk are initialized and immutable;
        // UnsafeCell<MaybeUninit<O>> has the layout of O.
        unsafe {
            std::slice::from_raw_parts(self.slots[range.start].get().cast::<O>(), range.len())
        }
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    /// Drops the values of `chunk` (their results were sent elsewhere).
    ///
    /// # Safety
    ///
    /// The caller holds the done chunk alone: nobody reads or writes its
    /// slots during or after this call (its state no longer says done).
    pub(super) unsafe fn release_chunk(&self, chunk: usize) {
        let written = self.written[chunk].swap(0, Ordering::AcqRel);
        let start = self.plan.chunk_range(chunk).start;
        for index in start..start + written {
            // SAFETY: the first `written` slots hold values, now counted as
            // not written, so `Drop` skips them; nobody else touches them.
            unsafe { (*self.slots[index].get()).assume_init_drop() };
        }
    }

    /// Moves the values of `chunk` out.
    ///
    /// # Safety
    ///
    /// As for [`Outputs::chunk`]; the values are moved out once (the
    /// chunk's count is reset so `Drop` will not drop them again).
    pub(super) unsafe fn take_chunk(&mut self, chunk: usize) -> impl Iterator<Item = O> + '_ {
        self.written[chunk].store(0, Ordering::Relaxed);
        let range = self.plan.chunk_range(chunk);
        self.slots[range].iter_mut().map(|slot| {
            // SAFETY: by the caller's contract the slot is initialized, and
            // its chunk no longer counts it as written.
            unsafe { slot.get_mut().assume_init_read() }
        })
    }

    /// Every value, in slot order.
    ///
    /// # Safety
    ///
    /// Every chunk is done.
    pub(super) unsafe fn into_vec(mut self) -> Vec<O> {
        // Hand everything over, so Drop frees nothing twice.
        for written in self.written.iter() {
            written.store(0, Ordering::Relaxed);
        }
        let mut slots = ManuallyDrop::new(std::mem::take(&mut *self.slots));
        let (ptr, len, capacity) = (slots.as_mut_ptr(), slots.len(), slots.capacity());
        // SAFETY: every chunk is done, so every slot holds an initialized O;
        // UnsafeCell<MaybeUninit<O>> has the layout of O.
        unsafe { Vec::from_raw_parts(ptr.cast::<O>(), len, capacity) }
    }
}

impl<O> Drop for Outputs<O> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<O>() {
            let chunks = self.plan.chunk_count().min(self.written.len());
            for chunk in 0..chunks {
                let written = self.written[chunk].load(Ordering::Acquire);
                if written == 0 {
                    continue;
                }
                let start = self.plan.chunk_range(chunk).start;
                for slot in &mut self.slots[start..start + written] {
                    // SAFETY: the first `written` slots of the chunk hold
                    // values nobody took.
                    unsafe { slot.get_mut().assume_init_drop() };
                }
            }
        }
        // SAFETY: dropped once; the elements are MaybeUninit, so only the
        // buffer is freed.
        unsafe { ManuallyDrop::drop(&mut self.slots) };
    }
}

fn counters(count: usize) -> Box<[AtomicUsize]> {
    (0..count).map(|_| AtomicUsize::new(0)).collect()
}
