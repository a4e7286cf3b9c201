//! [`Relay`] (feature `async`): a blocking iterator pulled by a helper
//! thread one item ahead of its consumer, for a `futures_core::Stream`
//! whose engine cannot be polled.

use crate::cancel::CancelToken;
use crate::sync::helpers;
use crate::sync::{self, LockUnpoisoned};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};

/// Items a helper pulls from a blocking iterator, for a stream's
/// `poll_next`: at most one waits here, so the iterator's own bounds
/// (chunks in flight) still hold.
pub(crate) struct Relay<T> {
    shared: Arc<Shared<T>>,
    /// The iterator itself, when no helper could be started: then the
    /// consumer pulls it, blocking, rather than lose its items.
    inline: Option<Mutex<Box<dyn Iterator<Item = T> + Send>>>,
    cancel: CancelToken,
    /// The iterator's size hint when the relay started.
    hint: (usize, Option<usize>),
    /// Items handed to the consumer since.
    handed_out: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the helper when the item was taken, or the consumer left.
    room: Condvar,
    /// Wakes a blocking consumer (the `Iterator` side) when an item came.
    arrived: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    /// The iterator is exhausted.
    ended: bool,
    /// The consumer dropped the stream.
    left: bool,
    waker: Option<Waker>,
}

impl<T: Send + 'static> Relay<T> {
    /// Has a helper pull `iterator` (which watches `cancel`) one item
    /// ahead of the consumer. If no helper can be started, the consumer
    /// pulls `iterator` itself, blocking, rather than lose its items.
    pub(crate) fn start<I>(iterator: I, cancel: CancelToken) -> Relay<T>
    where
        I: Iterator<Item = T> + Send + 'static,
    {
        let hint = iterator.size_hint();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                ended: false,
                left: false,
                waker: None,
            }),
            room: Condvar::new(),
            arrived: Condvar::new(),
        });
        // The iterator travels in a slot the caller keeps too: if no
        // helper takes the work, it is still here to pull inline.
        let held: Arc<Mutex<Option<I>>> = Arc::new(Mutex::new(Some(iterator)));
        let on_helper = held.clone();
        let helper = shared.clone();
        let pull = move || -> helpers::HandOver {
            if let Some(iterator) = on_helper.lock_unpoisoned().take() {
                pull_ahead(&helper, iterator);
            }
            Box::new(|| {})
        };
        let inline = helpers::run(Box::new(pull)).err().and_then(|_| {
            let iterator = held.lock_unpoisoned().take()?;
            Some(Mutex::new(
                Box::new(iterator) as Box<dyn Iterator<Item = T> + Send>
            ))
        });
        Relay {
            shared,
            inline,
            cancel,
            hint,
            handed_out: 0,
        }
    }
}

/// The helper's side: pull an item whenever the last one was taken, until
/// the iterator ends or the consumer leaves. Dropping the iterator at the
/// end ends the call (a dropped stream cancels what has not started).
fn pull_ahead<T>(shared: &Shared<T>, mut iterator: impl Iterator<Item = T>) {
    loop {
        {
            let mut state = shared.state.lock_unpoisoned();
            while !state.left && !state.items.is_empty() {
                state = sync::wait(&shared.room, state);
            }
            if state.left {
                return;
            }
        }
        let item = iterator.next();
        let mut state = shared.state.lock_unpoisoned();
        match item {
            Some(item) => state.items.push_back(item),
            None => state.ended = true,
        }
        let waker = state.waker.take();
        let ended = state.ended;
        drop(state);
        shared.arrived.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        if ended {
            return;
        }
    }
}

impl<T> Relay<T> {
    /// The next item if one is here; else registers `waker` (`Pending`).
    pub(crate) fn poll_next(&mut self, waker: &Waker) -> Poll<Option<T>> {
        let polled = match &self.inline {
            Some(inline) => Poll::Ready(inline.lock_unpoisoned().next()),
            None => {
                let mut state = self.shared.state.lock_unpoisoned();
                if let Some(item) = state.items.pop_front() {
                    drop(state);
                    self.shared.room.notify_all();
                    Poll::Ready(Some(item))
                } else if state.ended {
                    Poll::Ready(None)
                } else {
                    state.waker = Some(waker.clone());
                    Poll::Pending
                }
            }
        };
        if let Poll::Ready(Some(_)) = polled {
            self.handed_out += 1;
        }
        polled
    }

    /// The next item, waiting for it (the `Iterator` side of a stream that
    /// was polled as a `Stream` before).
    pub(crate) fn next_blocking(&mut self) -> Option<T> {
        let item = match &self.inline {
            Some(inline) => inline.lock_unpoisoned().next(),
            None => {
                let mut state = self.shared.state.lock_unpoisoned();
                loop {
                    if let Some(item) = state.items.pop_front() {
                        drop(state);
                        self.shared.room.notify_all();
                        break Some(item);
                    }
                    if state.ended {
                        break None;
                    }
                    state = sync::wait(&self.shared.arrived, state);
                }
            }
        };
        self.handed_out += usize::from(item.is_some());
        item
    }

    /// The iterator's hint at the start, less what was handed out since:
    /// exact when that was (what the helper pulled ahead is still to come).
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.hint;
        (
            low.saturating_sub(self.handed_out),
            high.map(|high| high.saturating_sub(self.handed_out)),
        )
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
