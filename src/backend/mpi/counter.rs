//! The cross-rank chunk counter: one 64-bit integer on rank 0, in an MPI
//! window, that every rank advances with `MPI_Fetch_and_op`: the MPI
//! counterpart of the atomic counter the thread backend's workers claim
//! chunks from. The same integer carries the stop signal: a rank that
//! fails adds [`STOP`], so every later claim returns a ticket of at least
//! `STOP` and no rank starts another chunk.
//!
//! When every rank runs on one node, the counter lives in an MPI
//! shared-memory window instead, and ranks advance it with a plain atomic
//! instruction: many MPI libraries (MPICH over UCX among them) carry out a
//! `MPI_Fetch_and_op` only while the host rank is inside an MPI call, so
//! across processes of one node the atomic is both faster and needs no
//! help from rank 0.
//!
//! rsmpi's safe API has no one-sided windows, so this module and the
//! stream engine's sends are where the backend calls MPI through
//! `mpi::ffi`.

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

/// Added to the counter by a rank that stops the call. Far above any chunk
/// count, and small enough that every rank of any real job can add it once
/// without the 64-bit counter wrapping (2⁴⁰ × 2²³ ranks < 2⁶⁴).
pub(super) const STOP: u64 = 1 << 40;

/// A window holding one counter on rank 0, open for passive-target access
/// (`MPI_Win_lock_all`) from creation to drop. Creating and dropping it are
/// collective over the communicator; every MPI call it makes must be
/// serialised with the backend's other MPI calls (the caller holds the
/// backend's lock).
pub(super) struct Counter {
    window: ffi::MPI_Win,
    /// The counter in memory shared by every rank (all on one node), or
    /// `None`: reached with MPI_Fetch_and_op.
    shared: Option<*const AtomicU64>,
}

impl Counter {
    /// Creates the window, with the counter at 0, on every rank of `comm`
    /// (collective). `one_node`: every rank of `comm` runs on this node
    /// (the same on every rank).
    pub(super) fn new(comm: &SimpleCommunicator, one_node: bool) -> Counter {
        if one_node {
            return Counter::new_shared(comm);
        }
        let mut rank: c_int = 0;
        let mut base: *mut u64 = std::ptr::null_mut();
        // SAFETY: RSMPI_WIN_NULL is a plain constant handle.
        let mut window = unsafe { ffi::RSMPI_WIN_NULL };
        // SAFETY: MPI is initialised (the backend exists) and the caller
        // serialises MPI calls. `base` receives the address of 8 bytes MPI
        // allocates on rank 0 (none elsewhere), which stay valid until
        // MPI_Win_free in `drop`. Rank 0 writes the initial 0 before the
        // epoch opens, and MPI_Win_sync + MPI_Barrier make the store
        // visible to every rank's first MPI_Fetch_and_op (the pattern the
        // MPI standard gives for both memory models).
        unsafe {
            ffi::MPI_Comm_rank(comm.as_raw(), &mut rank);
            let bytes: ffi::MPI_Aint = if rank == 0 { 8 } else { 0 };
            ffi::MPI_Win_allocate(
                bytes,
                8,
                ffi::RSMPI_INFO_NULL,
                comm.as_raw(),
                (&mut base as *mut *mut u64).cast::<c_void>(),
                &mut window,
            );
            if rank == 0 {
                base.write(0);
            }
            ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as c_int, window);
            ffi::MPI_Win_sync(window);
            ffi::MPI_Barrier(comm.as_raw());
        }
        Counter {
            window,
            shared: None,
        }
    }

    /// The counter in a shared-memory window on rank 0 (collective).
    fn new_shared(comm: &SimpleCommunicator) -> Counter {
        let mut rank: c_int = 0;
        let mut own: *mut u64 = std::ptr::null_mut();
        let mut counter: *mut u64 = std::ptr::null_mut();
        // SAFETY: RSMPI_WIN_NULL is a plain constant handle.
        let mut window = unsafe { ffi::RSMPI_WIN_NULL };
        // SAFETY: as in `new`; every rank of `comm` shares this node, so
        // MPI_Win_allocate_shared succeeds and MPI_Win_shared_query gives
        // every rank an address of rank 0's 8 bytes (8-aligned: MPI aligns
        // window memory at least as malloc does), valid until MPI_Win_free.
        // Rank 0 stores 0 through an atomic before the barrier, and every
        // later access is atomic.
        unsafe {
            ffi::MPI_Comm_rank(comm.as_raw(), &mut rank);
            let bytes: ffi::MPI_Aint = if rank == 0 { 8 } else { 0 };
            ffi::MPI_Win_allocate_shared(
                bytes,
                8,
                ffi::RSMPI_INFO_NULL,
                comm.as_raw(),
                (&mut own as *mut *mut u64).cast::<c_void>(),
                &mut window,
            );
            let (mut size, mut unit): (ffi::MPI_Aint, c_int) = (0, 0);
            ffi::MPI_Win_shared_query(
                window,
                0,
                &mut size,
                &mut unit,
                (&mut counter as *mut *mut u64).cast::<c_void>(),
            );
            let counter = AtomicU64::from_ptr(counter);
            if rank == 0 {
                counter.store(0, Ordering::SeqCst);
            }
            ffi::MPI_Barrier(comm.as_raw());
        }
        Counter {
            window,
            shared: Some(counter.cast_const().cast::<AtomicU64>()),
        }
    }

    /// Adds `amount` to the counter and returns its value before, as one
    /// atomic operation seen in the same order by every rank.
    fn fetch_add(&self, amount: u64) -> u64 {
        if let Some(counter) = self.shared {
            // SAFETY: `counter` points into the shared window, alive until
            // drop; see `new_shared`.
            return unsafe { &*counter }.fetch_add(amount, Ordering::SeqCst);
        }
        let mut before: u64 = 0;
        // SAFETY: the window is open (lock_all) and holds a u64 at
        // displacement 0 on rank 0; both buffers are valid u64s that live
        // across the flush, which completes the operation.
        unsafe {
            ffi::MPI_Fetch_and_op(
                (&amount as *const u64).cast::<c_void>(),
                (&mut before as *mut u64).cast::<c_void>(),
                ffi::RSMPI_UINT64_T,
                0,
                0,
                ffi::RSMPI_SUM,
                self.window,
            );
            ffi::MPI_Win_flush(0, self.window);
        }
        before
    }

    /// The next ticket: chunk `ticket` is this rank's to run if it exists;
    /// a ticket of at least [`STOP`] means the call was stopped.
    pub(super) fn claim(&self) -> u64 {
        self.fetch_add(1)
    }

    /// Stops the call on every rank: no later claim returns a chunk.
    pub(super) fn stop(&self) {
        self.fetch_add(STOP);
    }

    /// True once some rank has stopped the call. Also drives MPI progress
    /// on rank 0, which hosts the counter.
    pub(super) fn is_stopped(&self) -> bool {
        self.fetch_add(0) >= STOP
    }
}

impl Drop for Counter {
    /// Closes the epoch and frees the window (collective: every rank frees
    /// its counters in the same order).
    fn drop(&mut self) {
        // SAFETY: the window was created by `new` and is freed once, here,
        // after its epoch is closed; the caller serialises MPI calls.
        unsafe {
            if self.shared.is_none() {
                ffi::MPI_Win_unlock_all(self.window);
            }
            ffi::MPI_Win_free(&mut self.window);
        }
    }
}

// SAFETY: an MPI window handle is an opaque identifier (an integer in MPICH,
// a pointer in Open MPI) that any thread may pass to MPI; every MPI call on
// it is serialised by the backend's lock. The shared counter is only ever
// accessed atomically.
unsafe impl Send for Counter {}
