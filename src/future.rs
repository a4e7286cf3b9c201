//! Futures and streams of the pool's calls, for async code (feature
//! `async`).
//!
//! A call awaited from async code runs where the same call runs when it
//! blocks: on the pool's threads, worker processes or MPI ranks. What the
//! blocking call's caller would do (hand out chunks, wait for them) is done
//! by a helper thread of its own (`parpool-async`), so no thread of the
//! runtime ever blocks: the future waits on a [`Waker`], and
//! [`Imap`](crate::Imap) and [`ImapUnordered`](crate::ImapUnordered) as
//! [`Stream`](futures_core::Stream)s never block in `poll_next`. Any
//! executor works (tokio, async-std, smol, `futures::executor`): nothing
//! here depends on one.
//!
//! **Dropping is cancelling.** A [`CallFuture`] or stream dropped before
//! it ends cancels its call, as a [`CancelToken`] would: no chunk starts
//! after the drop, and the helper thread ends once the chunks running then
//! are done (the drop itself never waits).
//!
//! Should the system refuse a new thread (a thread limit reached), a call
//! runs on the thread that polls it instead, blocking it, rather than
//! fail or lose results.

use crate::cancel::CancelToken;
use crate::sync::LockUnpoisoned;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

/// What a helper thread hands back, and the waker to call when it does.
struct Slot<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
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
    /// Runs `call` on a helper thread with `cancel` (a token of its own);
    /// the future is ready with its value. If no thread can be started,
    /// the call runs here, now (blocking), rather than not at all.
    pub(crate) fn spawn(cancel: CancelToken, call: impl FnOnce() -> T + Send + 'static) -> Self {
        let slot = Arc::new(Slot {
            state: Mutex::new((None, None)),
        });
        let filler = slot.clone();
        if let Err(call) = start_helper(call, move |call| filler.fill(call())) {
            slot.fill(call());
        }
        CallFuture {
            slot,
            cancel,
            finished: false,
        }
    }
}

/// Runs `work(payload)` on a new helper thread (`parpool-async`), or gives
/// `payload` back if no thread can be started, so the caller can do the
/// work itself rather than lose it.
fn start_helper<P: Send + 'static>(
    payload: P,
    work: impl FnOnce(P) + Send + 'static,
) -> Result<(), P> {
    #[cfg(test)]
    if tests::REFUSE_HELPERS.get() {
        return Err(payload);
    }
    // Held outside the thread's closure too: `spawn` drops the closure
    // when it fails, and the payload must survive that.
    let held = Arc::new(Mutex::new(Some(payload)));
    let on_thread = held.clone();
    let started = std::thread::Builder::new()
        .name("parpool-async".to_string())
        .spawn(move || {
            let payload = on_thread.lock_unpoisoned().take();
            if let Some(payload) = payload {
                work(payload);
            }
        });
    match started {
        Ok(_) => Ok(()),
        Err(_) => held.lock_unpoisoned().take().map_or(Ok(()), Err),
    }
}

impl<T> Slot<T> {
    fn fill(&self, value: T) {
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

impl<T> Future for CallFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let mut state = this.slot.state.lock_unpoisoned();
        match state.0.take() {
            Some(value) => {
                this.finished = true;
                Poll::Ready(value)
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

/// Items a helper thread pulls from a blocking iterator, for a stream's
/// `poll_next`: at most one waits here, so the iterator's own bounds
/// (chunks in flight) still hold.
pub(crate) struct Relay<T> {
    shared: Arc<RelayShared<T>>,
    /// The iterator itself, when no helper thread could be started: then
    /// the consumer pulls it, blocking, rather than lose its items.
    inline: Option<Mutex<Box<dyn Iterator<Item = T> + Send>>>,
    cancel: CancelToken,
}

struct RelayShared<T> {
    state: Mutex<RelayState<T>>,
    /// Wakes the helper when the item was taken, or the consumer left.
    room: Condvar,
    /// Wakes a blocking consumer (the `Iterator` side) when an item came.
    arrived: Condvar,
}

struct RelayState<T> {
    items: VecDeque<T>,
    /// The iterator is exhausted.
    ended: bool,
    /// The consumer dropped the stream.
    left: bool,
    waker: Option<Waker>,
}

impl<T: Send + 'static> Relay<T> {
    /// Starts a helper thread that pulls `iterator` (which watches
    /// `cancel`) one item ahead of the consumer. If no thread can be
    /// started, the consumer pulls `iterator` itself, blocking, rather than
    /// lose its items.
    pub(crate) fn start<I>(iterator: I, cancel: CancelToken) -> Relay<T>
    where
        I: Iterator<Item = T> + Send + 'static,
    {
        let shared = Arc::new(RelayShared {
            state: Mutex::new(RelayState {
                items: VecDeque::new(),
                ended: false,
                left: false,
                waker: None,
            }),
            room: Condvar::new(),
            arrived: Condvar::new(),
        });
        let helper = shared.clone();
        let pull = move |mut iterator: I| {
            loop {
                {
                    let mut state = helper.state.lock_unpoisoned();
                    while !state.left && !state.items.is_empty() {
                        state = crate::sync::wait(&helper.room, state);
                    }
                    if state.left {
                        break;
                    }
                }
                let item = iterator.next();
                let mut state = helper.state.lock_unpoisoned();
                match item {
                    Some(item) => state.items.push_back(item),
                    None => state.ended = true,
                }
                let waker = state.waker.take();
                let ended = state.ended;
                drop(state);
                helper.arrived.notify_all();
                if let Some(waker) = waker {
                    waker.wake();
                }
                if ended {
                    break;
                }
            }
            // Dropping the iterator here ends the call (a dropped stream
            // cancels what has not started).
            drop(iterator);
        };
        let inline = start_helper(iterator, pull)
            .err()
            .map(|iterator| Mutex::new(Box::new(iterator) as Box<dyn Iterator<Item = T> + Send>));
        Relay {
            shared,
            inline,
            cancel,
        }
    }
}

impl<T> Relay<T> {
    /// The next item if one is here; else registers `waker` (`Pending`).
    pub(crate) fn poll_next(&self, waker: &Waker) -> Poll<Option<T>> {
        if let Some(inline) = &self.inline {
            return Poll::Ready(inline.lock_unpoisoned().next());
        }
        let mut state = self.shared.state.lock_unpoisoned();
        if let Some(item) = state.items.pop_front() {
            drop(state);
            self.shared.room.notify_all();
            return Poll::Ready(Some(item));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.waker = Some(waker.clone());
        Poll::Pending
    }

    /// The next item, waiting for it (the `Iterator` side of a stream that
    /// was polled as a `Stream` before).
    pub(crate) fn next_blocking(&self) -> Option<T> {
        if let Some(inline) = &self.inline {
            return inline.lock_unpoisoned().next();
        }
        let mut state = self.shared.state.lock_unpoisoned();
        loop {
            if let Some(item) = state.items.pop_front() {
                drop(state);
                self.shared.room.notify_all();
                return Some(item);
            }
            if state.ended {
                return None;
            }
            state = self
                .shared
                .arrived
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> Drop for Relay<T> {
    fn drop(&mut self) {
        let ended = {
            let mut state = self.shared.state.lock_unpoisoned();
            state.left = true;
            state.items.clear();
            state.ended
        };
        if !ended {
            // The helper may wait for a chunk: no new chunk starts.
            self.cancel.cancel();
        }
        self.shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::{CallFuture, Relay};
    use crate::cancel::CancelToken;
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    thread_local! {
        /// Set by a test: `start_helper` acts as if the system refused a
        /// new thread, for helpers started from this thread.
        pub(super) static REFUSE_HELPERS: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `body` with every helper it starts refused.
    fn without_helpers<R>(body: impl FnOnce() -> R) -> R {
        REFUSE_HELPERS.set(true);
        let result = body();
        REFUSE_HELPERS.set(false);
        result
    }

    #[test]
    fn without_a_helper_a_future_is_ready_with_its_value() {
        let mut future = pin!(without_helpers(|| CallFuture::spawn(
            CancelToken::new(),
            || 42
        )));
        let poll = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert_eq!(poll, Poll::Ready(42));
    }

    #[test]
    fn without_a_helper_a_relay_hands_out_every_item() {
        let relay = without_helpers(|| Relay::start(0..10u32, CancelToken::new()));
        let polled: Vec<_> = std::iter::from_fn(|| match relay.poll_next(Waker::noop()) {
            Poll::Ready(item) => item,
            Poll::Pending => panic!("a relay without a helper never waits"),
        })
        .collect();
        assert_eq!(polled, (0..10).collect::<Vec<_>>());
        let relay = without_helpers(|| Relay::start(0..3u32, CancelToken::new()));
        let pulled: Vec<_> = std::iter::from_fn(|| relay.next_blocking()).collect();
        assert_eq!(pulled, [0, 1, 2]);
    }

    #[test]
    fn without_a_helper_a_pool_stream_still_yields_every_result() {
        use futures_core::Stream;
        let pool = crate::Pool::builder()
            .kind(crate::BackendKind::Threads)
            .workers(2)
            .build()
            .unwrap();
        let mut stream = pool.imap(|x: u32| x * 2, 0..50u32).unwrap();
        let mut context = Context::from_waker(Waker::noop());
        let results = without_helpers(|| {
            std::iter::from_fn(
                || match std::pin::Pin::new(&mut stream).poll_next(&mut context) {
                    Poll::Ready(item) => item,
                    Poll::Pending => panic!("a stream without a helper never waits"),
                },
            )
            .collect::<Result<Vec<_>, _>>()
        });
        assert_eq!(results.unwrap(), (0..50).map(|x| x * 2).collect::<Vec<_>>());
    }
}
