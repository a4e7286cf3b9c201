//! The helper threads (feature `async`) that drive awaited calls on
//! backends whose calls
//! block their caller (processes, MPI, custom): a small pool, reused, as
//! tokio's blocking pool is. A thread that finds no work waits
//! [`KEEP_IDLE`] for more, then ends; at most [`MAX_HELPERS`] run at once,
//! and work beyond that waits in a queue for the first one free. The
//! threads are named `parpool-async`.
//!
//! Should the system refuse a new thread when none is running, the work is
//! handed back so the caller can run it itself rather than lose it.

use super::{LockUnpoisoned, wait_timeout};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How long an idle helper waits for work before it ends.
pub(crate) const KEEP_IDLE: Duration = Duration::from_secs(10);

/// The most helpers that run at once.
pub(crate) const MAX_HELPERS: usize = 64;

/// A call to run on a helper, in two steps: the call, then what hands
/// its result over (run once the helper counts itself free).
pub(crate) type Work = Box<dyn FnOnce() -> HandOver + Send>;

/// What hands a call's result over to its caller; see [`serve`].
pub(crate) type HandOver = Box<dyn FnOnce() + Send>;

struct Helpers {
    state: Mutex<State>,
    /// Wakes an idle helper when work is queued.
    work_queued: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Work>,
    /// Helpers waiting for work.
    idle: usize,
    /// Helpers alive (idle or busy).
    alive: usize,
}

#[cfg(test)]
thread_local! {
    /// Set by a test: [`run`] acts as if the system refused a new thread,
    /// for helpers started from this thread.
    pub(crate) static REFUSE_HELPERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn helpers() -> &'static Helpers {
    static HELPERS: OnceLock<Helpers> = OnceLock::new();
    HELPERS.get_or_init(|| Helpers {
        state: Mutex::new(State::default()),
        work_queued: Condvar::new(),
    })
}

/// Runs `work` on a helper: an idle one if there is one, else a new one
/// (up to [`MAX_HELPERS`]), else the first one free. `Err(work)` if no
/// helper runs and none could be started.
pub(crate) fn run(work: Work) -> Result<(), Work> {
    #[cfg(test)]
    if REFUSE_HELPERS.get() {
        return Err(work);
    }
    let helpers = helpers();
    let mut state = helpers.state.lock_unpoisoned();
    state.queue.push_back(work);
    if state.idle >= state.queue.len() {
        drop(state);
        helpers.work_queued.notify_one();
        return Ok(());
    }
    if state.alive >= MAX_HELPERS {
        // Every helper is busy: the first one free takes it.
        return Ok(());
    }
    state.alive += 1;
    drop(state);
    let started = std::thread::Builder::new()
        .name("parpool-async".to_string())
        .spawn(move || serve(helpers));
    if started.is_ok() {
        return Ok(());
    }
    let mut state = helpers.state.lock_unpoisoned();
    state.alive -= 1;
    if state.alive > 0 {
        // A running helper will take it when it is free.
        return Ok(());
    }
    // No helper at all: hand the work back (the newest is this call's,
    // unless another caller queued since; either way, one is run now by
    // a caller rather than none by a helper).
    state.queue.pop_back().map_or(Ok(()), Err)
}

/// A helper's life: take queued work, run it, wait for more. A helper
/// counts itself idle before it hands a result over, so the caller's next
/// call, started as soon as it has the result, finds this helper free
/// instead of starting another.
fn serve(helpers: &'static Helpers) {
    let mut state = helpers.state.lock_unpoisoned();
    loop {
        let Some(work) = state.queue.pop_front() else {
            state.idle += 1;
            let (woken, timed_out) = wait_timeout(&helpers.work_queued, state, KEEP_IDLE);
            state = woken;
            state.idle -= 1;
            if timed_out && state.queue.is_empty() {
                state.alive -= 1;
                return;
            }
            continue;
        };
        drop(state);
        let hand_over = work();
        helpers.state.lock_unpoisoned().idle += 1;
        hand_over();
        state = helpers.state.lock_unpoisoned();
        // Work queued meanwhile (its notice found no one waiting) is taken
        // at the top of the loop.
        state.idle -= 1;
    }
}
