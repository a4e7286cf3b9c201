//! [`CancelToken`]: stop a running call from another thread.

use crate::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that stops the calls of a pool watching it.
///
/// Give a pool a token with [`Pool::with_cancel`](crate::Pool::with_cancel);
/// calling [`cancel`](CancelToken::cancel) from any thread then stops the
/// calls of that pool: no new chunk starts, a running chunk stops at its
/// next item on the serial and thread backends (items that take
/// nanoseconds run in blocks of up to about 0.1 ms between checks), worker
/// processes are
/// killed on the process backend, and a streaming
/// [`imap`](crate::Pool::imap) ends. The call returns an error for which
/// [`Error::is_cancelled`](crate::Error::is_cancelled) is true (for
/// `map_results`, each item that did not run gets one). A task that is running
/// at that moment on a thread finishes that one item first: a thread cannot
/// be stopped safely in the middle of a function.
///
/// A token stays cancelled; the pool itself stays usable, so make a new
/// token (or use the pool without one) for the next call.
///
/// On MPI every rank must make the same calls: cancel on every rank. A
/// `map` cancelled on one rank alone fails on every rank at the step where
/// the ranks compare outcomes; a stream cancelled on one rank alone leaves
/// the other ranks waiting for it.
///
/// ```
/// use parpool::{BackendKind, CancelToken, Pool};
/// use std::time::Duration;
///
/// let pool = Pool::builder().kind(BackendKind::Threads).workers(2).build()?;
/// let token = CancelToken::new();
/// let stopper = token.clone();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(50));
///     stopper.cancel();
/// });
/// let slow = |x: u64| {
///     std::thread::sleep(Duration::from_millis(10));
///     x
/// };
/// let error = pool.with_cancel(&token).map(slow, 0..10_000).unwrap_err();
/// assert!(error.is_cancelled());
/// // The pool itself is fine.
/// assert_eq!(pool.map(|x: u64| x + 1, [1, 2])?, [2, 3]);
/// # Ok::<(), parpool::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    cancelled: Arc<AtomicBool>,
    /// The flags of the tokens this one was made from: cancelling any of
    /// them cancels this one too, not the other way round.
    ancestors: Vec<Arc<AtomicBool>>,
}

impl CancelToken {
    /// A token that has not been cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels every call watching this token, now and later.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// True once [`cancel`](CancelToken::cancel) has been called (on this
    /// token, or on the one it was made from).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || self
                .ancestors
                .iter()
                .any(|ancestor| ancestor.load(Ordering::Acquire))
    }

    /// A token cancelled when this process receives one of `signals`: the
    /// scheduler's `SIGTERM` at a time limit or preemption (Slurm sends it
    /// to every task, then `SIGKILL` after `KillWait`), or `SIGINT` from
    /// Ctrl-C. A call using the token stops handing out chunks and returns
    /// `Err` (cancelled) within about a second; with a
    /// [`Journal`](crate::Journal), every chunk that finished is kept.
    ///
    /// The handler only sets the token's flag (as `signal-hook` does);
    /// nothing else runs in it. From then on these signals no longer end
    /// the process by themselves: the program decides, after the call
    /// returns. A second one while the token is already cancelled ends the
    /// process at once (exit status 130 for `SIGINT`, 143 otherwise), so a
    /// second Ctrl-C still works. Worker processes forked later inherit the
    /// handler: a signal that reaches them too (Slurm signals the whole job
    /// step) stops their chunks the same way, and the call ends as
    /// cancelled.
    ///
    /// ```no_run
    /// use parpool::{CancelToken, Journal, Pool};
    ///
    /// # fn main() -> Result<(), parpool::Error> {
    /// let stop = CancelToken::on_signals(&[libc::SIGTERM, libc::SIGINT])?;
    /// let journal = Journal::open("run.journal")?;
    /// let pool = Pool::new().with_cancel(&stop);
    /// match pool.with_journal(&journal).map(|x: u64| x * x, 0..1_000_000u64) {
    ///     Ok(squares) => println!("done: {}", squares.len()),
    ///     Err(error) if error.is_cancelled() => {
    ///         eprintln!("stopped by a signal; run again to resume");
    ///         std::process::exit(1);
    ///     }
    ///     Err(error) => return Err(error),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A signal that cannot be caught (`SIGKILL`, `SIGSTOP`, or one the
    /// runtime needs, such as `SIGSEGV`), as an invalid configuration. On
    /// platforms without Unix signals (Windows) every call is that error:
    /// cancel a token from your own Ctrl-C handler there.
    pub fn on_signals(signals: &[i32]) -> Result<CancelToken, Error> {
        let token = CancelToken::new();
        #[cfg(unix)]
        for &signal in signals {
            if signal_hook::consts::FORBIDDEN.contains(&signal) {
                return Err(Error::invalid_config(
                    "signal",
                    signal.to_string(),
                    "cannot be caught (SIGKILL and SIGSTOP never can; SIGSEGV, SIGILL and \
                     SIGFPE belong to the Rust runtime)",
                ));
            }
            let refused = |error: std::io::Error| {
                Error::invalid_config(
                    "signal",
                    signal.to_string(),
                    format!("cannot be caught: {error}"),
                )
            };
            let status = if signal == libc::SIGINT { 130 } else { 143 };
            // First the check of an already-cancelled token, then the flag:
            // handlers run in the order they were registered.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                status,
                token.cancelled.clone(),
            )
            .map_err(refused)?;
            signal_hook::flag::register(signal, token.cancelled.clone()).map_err(refused)?;
        }
        #[cfg(not(unix))]
        if !signals.is_empty() {
            return Err(Error::invalid_config(
                "signals",
                format!("{signals:?}"),
                "this platform has no Unix signals; cancel the token from a handler of your own",
            ));
        }
        Ok(token)
    }

    /// A new token that is cancelled with this one, and can also be
    /// cancelled alone (a dropped future cancels its own call only).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn child(&self) -> CancelToken {
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.cancelled.clone());
        CancelToken {
            cancelled: Arc::default(),
            ancestors,
        }
    }
}
