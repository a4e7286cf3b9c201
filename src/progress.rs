//! Progress bars on stderr for pool calls (cargo feature `progress`).
//!
//! A call that shows progress creates a [`Meter`]; chunks add their item
//! count to it when their results reach the calling process: when a thread
//! finishes a chunk, or when the parent process accepts the results a
//! worker process sent it. A worker process's copy of the meter never
//! draws. Without the feature, a `Meter` does nothing.

/// When a pool shows a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// Never.
    #[default]
    Off,
    /// When stderr is a terminal.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    Auto,
    /// Always; when stderr is not a terminal, one line per update (at most
    /// a few per second), for logs.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    Always,
}

/// The progress of one call: items done out of `total` (or a count with a
/// spinner when the total is unknown).
#[derive(Debug, Default)]
pub(crate) struct Meter {
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
    /// Counts are held back (while a journal's chunks are read back), to
    /// be added in one step.
    #[cfg(feature = "progress")]
    mode: ProgressMode,
    #[cfg(feature = "progress")]
    held: std::sync::atomic::AtomicBool,
    #[cfg(feature = "progress")]
    pending: std::sync::atomic::AtomicU64,
}

impl Meter {
    /// A meter for a call over `total` items (`None`: a stream).
    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn start(mode: ProgressMode, total: Option<usize>) -> Meter {
        #[cfg(feature = "progress")]
        {
            Meter {
                bar: bar::start(mode, total),
                mode,
                held: std::sync::atomic::AtomicBool::new(false),
                pending: std::sync::atomic::AtomicU64::new(0),
            }
        }
        #[cfg(not(feature = "progress"))]
        Meter::default()
    }

    /// Adds `items` to the count.
    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn advance(&self, items: usize) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            use std::sync::atomic::Ordering;
            if self.held.load(Ordering::Acquire) {
                self.pending.fetch_add(items as u64, Ordering::AcqRel);
            } else {
                bar.inc(items as u64);
            }
        }
    }

    /// Holds counts back (`true`), or adds what was held in one step and
    /// starts the rate and ETA afresh from there (`false`): a call that
    /// reads chunks back from a journal starts its bar at their count,
    /// not at the first of them, nor with an instant rate.
    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn hold(&self, hold: bool) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            use std::sync::atomic::Ordering;
            if hold {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                self.held.store(true, Ordering::Release);
                return;
            }
            self.held.store(false, Ordering::Release);
            let held = self.pending.swap(0, Ordering::AcqRel);
            bar.inc(held);
            bar.reset_eta();
            if let Some(target) = bar::target(self.mode) {
                bar.set_draw_target(target);
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            // Leaves the last count on screen, whether or not the call
            // finished; on a log (not a terminal) as a last line.
            if bar.is_hidden() {
                return;
            }
            bar.abandon();
            if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{}", bar::summary(bar));
            }
        }
    }
}

#[cfg(feature = "progress")]
mod bar {
    use super::ProgressMode;
    use crate::sync::LockUnpoisoned;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};
    use std::io::{IsTerminal, Write};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Where a bar of `mode` draws, if anywhere.
    pub(super) fn target(mode: ProgressMode) -> Option<ProgressDrawTarget> {
        Some(match mode {
            ProgressMode::Off => return None,
            ProgressMode::Auto if !std::io::stderr().is_terminal() => return None,
            ProgressMode::Auto => ProgressDrawTarget::stderr(),
            ProgressMode::Always if std::io::stderr().is_terminal() => ProgressDrawTarget::stderr(),
            ProgressMode::Always => ProgressDrawTarget::term_like(Box::new(LogLines::default())),
        })
    }

    pub(super) fn start(mode: ProgressMode, total: Option<usize>) -> Option<ProgressBar> {
        let target = target(mode)?;
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total as u64), target),
                "{elapsed_precise} [{wide_bar}] {pos}/{len} items, {rate}, ETA {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, target),
                "{spinner} {elapsed_precise} {pos} items, {rate}",
            ),
        };
        let rate = |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0} items/s", state.per_sec());
        };
        let style = ProgressStyle::with_template(template)
            .expect("the progress templates are valid")
            .with_key("rate", rate)
            .progress_chars("=> ");
        bar.set_style(style);
        Some(bar)
    }

    /// "1000/1000 items in 0.52 s (1923 items/s)", for the last log line.
    pub(super) fn summary(bar: &ProgressBar) -> String {
        let done = match bar.length() {
            Some(total) => format!("{}/{total}", bar.position()),
            None => bar.position().to_string(),
        };
        let seconds = bar.elapsed().as_secs_f64();
        format!(
            "{done} items in {seconds:.2} s ({:.0} items/s)",
            bar.position() as f64 / seconds.max(1e-9)
        )
    }

    /// Draws the bar as log lines on stderr, at most one a second, with no
    /// cursor movement (for log files and pipes). The last state is drawn
    /// by `Meter`'s drop.
    #[derive(Debug, Default)]
    struct LogLines {
        last: Mutex<Option<Instant>>,
    }

    impl TermLike for LogLines {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> std::io::Result<()> {
            self.write_str(line)
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            let text = text.trim_end();
            if text.is_empty() {
                return Ok(());
            }
            let mut last = self.last.lock_unpoisoned();
            let now = Instant::now();
            if last.is_some_and(|at| now - at < Duration::from_secs(1)) {
                return Ok(());
            }
            *last = Some(now);
            writeln!(std::io::stderr(), "{text}")
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            std::io::stderr().flush()
        }
    }
}
