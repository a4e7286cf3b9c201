//! Futures and streams of the pool's calls, for async code (feature
//! `async`).
//!
//! A call awaited from async code runs where the same call runs when it
//! blocks: on the pool's threads, worker processes or MPI ranks, and no
//! thread of the runtime ever blocks. Any executor works (tokio,
//! async-std, smol, `futures::executor`): nothing here depends on one.
//!
//! **Who drives an awaited call.**
//!
//! | backend | a future ([`CallFuture`]) | a stream ([`Imap`](crate::Imap) as a [`Stream`](futures_core::Stream)) |
//! |---|---|---|
//! | threads | the call runs as a task of the pool's own threads, whose last chunk fills the future and wakes its [`Waker`]: no thread of its own | each chunk is a task of the pool's threads and wakes the stream when it is done: no thread of its own |
//! | serial | one task of the process's shared thread pool runs the call, in chunk order | a helper (below) drives the stream |
//! | processes, MPI, custom | a helper thread does the blocking call's waiting | a helper drives the stream, one result ahead |
//!
//! Helpers (`parpool-async`) come from a small pool that is reused, as
//! tokio's blocking pool is: an idle helper waits 10 s for more work
//! before it ends, and at most 64 run at once (more calls wait for the
//! first one free). So a service that awaits many small calls starts a
//! helper once, not one per call.
//!
//! **Dropping is cancelling.** A [`CallFuture`] or stream dropped before
//! it ends cancels its call, as a [`CancelToken`] would: no chunk starts
//! after the drop, and what runs then ends on its own (the drop itself
//! never waits). A stream polled on the threads backend sees a
//! cancellation of the pool's token when its next chunk is done.
//!
//! Should the system refuse a helper thread when none is running (a
//! thread limit reached), a call runs on the thread that polls it
//! instead, blocking it, rather than fail or lose results.

mod calls;
mod streams;

use crate::backend::Driver;
use crate::cancel::CancelToken;
use crate::sync::{LockUnpoisoned, helpers};
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// What a call hands back (or the panic that ended it), and the waker to
/// call when it does.
struct Slot<T> {
    state: Mutex<(Option<Outcome<T>>, Option<Waker>)>,
}

/// A call's value, or the panic that escaped it.
type Outcome<T> = Result<T, Box<dyn Any + Send>>;

impl<T> Slot<T> {
    fn fill(&self, value: Outcome<T>) {
        let waker = {
            let mut state = self.state.lock_unpoisoned();
            state.0 = Some(value);
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The result of a call made with one of the pool's `*_async` methods:
/// await it. Dropping it before it is ready cancels the call.
#[must_use = "a call's future does nothing useful unless awaited, and dropping it cancels the call"]
pub struct CallFuture<T> {
    slot: Arc<Slot<T>>,
    cancel: CancelToken,
    finished: bool,
}

impl<T> std::fmt::Debug for CallFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> CallFuture<T> {
    /// Starts `call` (which watches `cancel`, a token of its own) on the
    /// driver's threads, else on a helper, else (no thread could start)
    /// here, now, blocking, rather than not at all. A call made inside a
    /// task runs here too: nested calls run serially anyway.
    pub(crate) fn start(
        driver: &dyn Driver,
        cancel: CancelToken,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Self {
        let slot = Arc::new(Slot {
            state: Mutex::new((None, None)),
        });
        let filler = slot.clone();
        let work: helpers::Work = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(call));
            Box::new(move || filler.fill(outcome))
        });
        let left = if crate::job::inside_task() {
            Some(work)
        } else {
            driver
                .spawn_call(work)
                .err()
                .and_then(|work| helpers::run(work).err())
        };
        if let Some(work) = left {
            work()();
        }
        CallFuture {
            slot,
            cancel,
            finished: false,
        }
    }
}

impl<T> Future for CallFuture<T> {
    type Output = T;

    /// Ready with the call's value. A panic that escaped the call (not a
    /// task's: those are its `Err`) resumes here, as a joined thread's
    /// would.
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let mut state = this.slot.state.lock_unpoisoned();
        match state.0.take() {
            Some(value) => {
                this.finished = true;
                drop(state);
                Poll::Ready(value.unwrap_or_else(|panic| resume_unwind(panic)))
            }
            None => {
                state.1 = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for CallFuture<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests;
