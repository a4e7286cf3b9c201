//! Descriptors only the parent may hold: a forked worker closes them first
//! thing. A [`Journal`](crate::Journal)'s file is one: the lock on it
//! belongs to the open file, which a fork shares, so a worker that kept it
//! would keep the journal locked after the parent let go of it.
//!
//! Kept in a fixed table of atomics, so the child reads it without taking
//! a lock another thread may have held at the fork.

use std::sync::atomic::{AtomicI32, Ordering};

/// Free slots hold -1.
static SLOTS: [AtomicI32; 32] = [const { AtomicI32::new(-1) }; 32];

/// Marks `fd` as the parent's only. False if the table is full (then a
/// worker keeps it until it exits).
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn register(fd: i32) -> bool {
    SLOTS.iter().any(|slot| {
        slot.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

/// Forgets `fd` (before it is closed).
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn unregister(fd: i32) {
    for slot in &SLOTS {
        let _ = slot.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The registered descriptors, for a forked child to close.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn registered() -> impl Iterator<Item = i32> {
    SLOTS
        .iter()
        .map(|slot| slot.load(Ordering::Acquire))
        .filter(|&fd| fd >= 0)
}
