//! Locks that outlive a panic. A task's panic is caught and becomes an
//! [`Error`](crate::Error); a lock it poisoned on the way must not turn
//! into a second panic in the caller, and what the lock guards (a result
//! slot, a queue) stays consistent, because nothing in this crate leaves
//! it half-written across a call that can panic. So every lock here is
//! taken through [`LockUnpoisoned`], which ignores the poison flag.

#[cfg(feature = "async")]
pub(crate) mod helpers;

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// `Mutex::lock` and `Condvar::wait` that ignore poisoning; see the
/// module docs.
pub(crate) trait LockUnpoisoned<T: ?Sized> {
    /// The guard, whether or not a panic poisoned the lock.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;

    /// The guard if the lock is free now, whether or not a panic poisoned
    /// it; `None` if it is held.
    fn try_lock_unpoisoned(&self) -> Option<MutexGuard<'_, T>>;
}

impl<T: ?Sized> LockUnpoisoned<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock_unpoisoned(&self) -> Option<MutexGuard<'_, T>> {
        match self.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// `condvar.wait(guard)`, ignoring poisoning.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// `condvar.wait_timeout(guard, timeout)`, ignoring poisoning; true if it
/// timed out.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> (MutexGuard<'a, T>, bool) {
    let (guard, result) = condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner);
    (guard, result.timed_out())
}
