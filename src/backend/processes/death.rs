//! How a worker process died, as its supervisor diagnoses it: the
//! [`Death`] read off its exit status, its shared slot (the chunk and item
//! it was on), the watchdog and the frame reader, and the [`Error`] of the
//! task it died on.

use super::os;
use super::shm::IDLE;
use crate::error::Error;
use std::time::Duration;

/// How a worker ended and what it was doing then.
#[derive(Clone, Debug)]
pub(super) struct Death {
    pub(super) status: os::ExitStatus,
    /// The chunk (or stream position) in its slot, or [`IDLE`].
    pub(super) chunk: usize,
    /// The item in its slot, or [`IDLE`].
    pub(super) item: usize,
    /// Set when the watchdog killed it: the item and the time spent on it.
    pub(super) timed_out: Option<(usize, Duration)>,
    pub(super) limit: Option<Duration>,
    /// Set when it was killed for writing bytes that are not frames: the
    /// chunk whose frame was lost.
    pub(super) malformed: Option<usize>,
}

impl Death {
    /// The error of the task it died on: a timeout if the watchdog killed
    /// it, else a crash, for `item` (the item its slot names, or the one
    /// the driver blames) of `total`.
    pub(super) fn error(&self, item: usize, total: usize) -> Error {
        match self.timed_out {
            Some((timed_item, elapsed)) if timed_item != IDLE => {
                Error::timeout(timed_item, total, elapsed, self.limit.unwrap_or(elapsed))
            }
            Some((_, elapsed)) => {
                Error::timeout(item, total, elapsed, self.limit.unwrap_or(elapsed))
            }
            None => Error::crash(item, total, self.how()),
        }
    }

    /// A worker that exited with status 0 and was doing nothing: the
    /// stand-in when a lost chunk's worker is not known.
    pub(super) fn unknown() -> Death {
        Death {
            status: os::ExitStatus::CLEAN,
            chunk: IDLE,
            item: IDLE,
            timed_out: None,
            limit: None,
            malformed: None,
        }
    }

    /// A worker that ended with wait status `status`, doing nothing.
    #[cfg(test)]
    pub(super) fn exited(status: os::ExitStatus) -> Death {
        Death {
            status,
            ..Death::unknown()
        }
    }

    /// Where, outside any task, a worker that held a chunk but died on no
    /// item of it died.
    pub(super) fn outside_tasks(&self) -> &'static str {
        if self.item == crate::job::SENDING_RESULTS || self.malformed.is_some() {
            "while sending the chunk's results"
        } else {
            "before starting the chunk"
        }
    }

    /// True for a worker that ended its loop normally (exit status 0).
    pub(super) fn exited_cleanly(&self) -> bool {
        self.status.is_clean()
    }

    /// "killed by signal 6 (SIGABRT)", or what it wrote when it was
    /// killed for writing bytes that are not frames.
    pub(super) fn how(&self) -> String {
        match self.malformed {
            Some(_) => MALFORMED.to_string(),
            None => self.status.describe(),
        }
    }
}

/// How a worker killed for writing bytes that are not frames died.
pub(super) const MALFORMED: &str =
    "wrote bytes that are not frames to its result socket and was killed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_item_the_watchdog_saw() {
        let mut timed = Death::exited(os::ExitStatus::from_raw(9));
        timed.timed_out = Some((7, Duration::from_millis(1500)));
        timed.limit = Some(Duration::from_secs(1));
        let error = timed.error(5, 10);
        assert!(error.is_timeout());
        assert_eq!(error.task_index(), Some(7));
    }
}
