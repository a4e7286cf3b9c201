//! The retry and replacement policy of the process backend, in one place:
//! plain calls, sessions and streams all ask [`ChunkRetries`] what to do
//! when a worker dies holding a chunk.
//!
//! A worker that dies is replaced by a fresh fork when there is work for
//! it. What happens to the chunk it held depends on where it died:
//!
//! - **on an item** (its slot names an item of the chunk): the item is
//!   charged one attempt. Within [`retries`](crate::PoolBuilder::retries)
//!   attempts the chunk runs again, that item included, on a fresh worker.
//!   Past them the item fails for good with the crash or timeout error; a
//!   fail-fast call stops, a call that keeps going runs the rest of the
//!   chunk again, skipping the failed items.
//! - **outside any task of the chunk** (it held the chunk but was on no
//!   item of it: it died while decoding the chunk's items, between claiming
//!   a chunk and saying so, or while encoding and sending the results): the
//!   chunk runs again, up to [`MAX_UNSTARTED_DEATHS`] times; then each of
//!   its items fails with the crash error, "… before starting the chunk, 3
//!   times over" (or "while sending the chunk's results"), instead of being
//!   sent to worker after worker for ever.
//! - **after finishing its quota** ([`max_tasks_per_worker`]): a worker
//!   that retires exits cleanly between chunks. That is no failure: it
//!   costs no retry, and a chunk it was sent but had not started runs on
//!   its replacement.
//!
//! [`max_tasks_per_worker`]: crate::PoolBuilder::max_tasks_per_worker
//!
//! Panics are not retried: a panic is caught in the worker and reported as
//! the item's error; it would happen again.

use super::fleet::Death;
use crate::error::Error;
use std::collections::HashMap;

/// Workers a chunk may lose before it starts, before the chunk fails.
pub(super) const MAX_UNSTARTED_DEATHS: u32 = 3;

/// What to do about a chunk whose worker died; see the module docs.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Run the chunk again (on a fresh worker).
    Retry,
    /// The item named by the error failed for good.
    ItemFailed(Error),
    /// The chunk killed its workers before starting, too often: every
    /// item of it fails with a crash error saying so.
    ChunkFailed(String),
}

/// The crashes and timeouts of one chunk, for the retry policy in the
/// module docs.
#[derive(Debug, Default)]
pub(super) struct ChunkRetries {
    /// Deaths per item.
    attempts: HashMap<usize, u32>,
    /// Workers that died holding the chunk before starting it.
    unstarted_deaths: u32,
}

impl ChunkRetries {
    /// A worker died holding this chunk: `on_item` is the error of the
    /// item it died on, `None` if it had not started the chunk.
    pub(super) fn after_death(
        &mut self,
        on_item: Option<Error>,
        death: &Death,
        retries: u32,
    ) -> Verdict {
        match on_item {
            Some(error) => {
                let item = error.task_index().unwrap_or(usize::MAX);
                let attempts = self.attempts.entry(item).or_insert(0);
                *attempts += 1;
                if *attempts <= retries {
                    Verdict::Retry
                } else {
                    Verdict::ItemFailed(error)
                }
            }
            None => {
                self.unstarted_deaths += 1;
                if self.unstarted_deaths <= MAX_UNSTARTED_DEATHS {
                    Verdict::Retry
                } else {
                    Verdict::ChunkFailed(format!(
                        "{} {}, {MAX_UNSTARTED_DEATHS} times over",
                        death.how(),
                        death.outside_tasks()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(status: i32) -> Death {
        Death::exited(crate::sys::ExitStatus::from_raw(status))
    }

    #[test]
    fn items_are_retried_then_fail() {
        let mut retries = ChunkRetries::default();
        let killed = death(9);
        let error = || Some(killed.error(4, 10));
        assert!(matches!(
            retries.after_death(error(), &killed, 2),
            Verdict::Retry
        ));
        assert!(matches!(
            retries.after_death(error(), &killed, 2),
            Verdict::Retry
        ));
        match retries.after_death(error(), &killed, 2) {
            Verdict::ItemFailed(error) => assert_eq!(
                error.to_string(),
                "task 4 of 10 crashed: worker killed by signal 9 (SIGKILL)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chunks_that_never_start_fail_after_three_deaths() {
        let mut retries = ChunkRetries::default();
        let aborted = death(6);
        for _ in 0..MAX_UNSTARTED_DEATHS {
            assert!(matches!(
                retries.after_death(None, &aborted, 0),
                Verdict::Retry
            ));
        }
        match retries.after_death(None, &aborted, 0) {
            Verdict::ChunkFailed(how) => assert_eq!(
                how,
                "killed by signal 6 (SIGABRT) before starting the chunk, 3 times over"
            ),
            other => panic!("{other:?}"),
        }
    }
}
