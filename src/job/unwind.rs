//! The panic policy, in one place: a task's panic is caught where the task
//! runs and becomes an [`Error`] naming its item and where it panicked.
//! Nothing a task does unwinds into a backend or the caller.
//!
//! While a task runs, its thread is marked as inside a task, so a pool used
//! from inside it runs serially (nested use), and parpool's panic hook
//! notes where a panic happened (the payload does not say).
//!
//! # The panic hook
//!
//! The first call of any pool wraps the process's panic hook, once:
//!
//! - on a thread inside a task, it records the panic's location for the
//!   task's error;
//! - in a worker process it writes the message straight to stderr, taking
//!   no lock (the default hook takes a process-wide backtrace lock, which
//!   another thread of the parent may have held at the fork, for ever in
//!   the child);
//! - otherwise it calls the hook it replaced, so your hook still runs.
//!
//! A hook installed after that replaces the wrapper: errors then carry no
//! location, and the fork hazard above comes back. The hook cannot be
//! changed while the thread is panicking, so a first call made from a
//! `Drop` during unwinding leaves it for the next call.
//!
//! [`leave_panic_hook_alone`] opts out: before the first call, parpool then
//! never touches the hook; after it, the wrapper passes every panic
//! straight to the hook it wrapped.

use crate::error::Error;
use crate::sync::LockUnpoisoned;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// True while this thread runs a task of some pool.
    static INSIDE_TASK: Cell<bool> = const { Cell::new(false) };
    /// Where this thread's last task panic happened, noted by the hook.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// True once the hook wrapper is in place.
static HOOK_INSTALLED: AtomicBool = AtomicBool::new(false);
/// True once the program asked parpool to leave the panic hook alone.
static HOOK_LEFT_ALONE: AtomicBool = AtomicBool::new(false);

/// Asks parpool never to install its panic hook (or, if a pool call
/// already installed it, to make it pass every panic straight to the hook
/// it wrapped). For programs whose panic hook must stay exactly their own.
///
/// The price: a panicking task's [`Error`] no longer says where it
/// panicked ([`Error::panic_location`] is `None`), and a task that panics
/// in a worker process reports through your hook (or the default one),
/// which may take a lock another thread of the parent held at the fork:
/// that worker can then hang until its timeout, if the pool has one.
///
/// ```
/// parpool::leave_panic_hook_alone();
/// let pool = parpool::Pool::builder().kind(parpool::BackendKind::Serial).build()?;
/// let error = pool.map(|x: u8| if x == 1 { panic!("one") } else { x }, [0, 1]).unwrap_err();
/// assert_eq!(error.panic_message(), Some("one"));
/// assert_eq!(error.panic_location(), None);
/// # Ok::<(), parpool::Error>(())
/// ```
pub fn leave_panic_hook_alone() {
    HOOK_LEFT_ALONE.store(true, Ordering::Release);
}
/// Serializes installing it.
static HOOK_LOCK: Mutex<()> = Mutex::new(());

/// Wraps the process's panic hook, once; see the module docs. Does nothing
/// while this thread is panicking (the hook cannot be changed then).
pub(crate) fn install_panic_hook() {
    if HOOK_INSTALLED.load(Ordering::Acquire)
        || HOOK_LEFT_ALONE.load(Ordering::Acquire)
        || std::thread::panicking()
    {
        return;
    }
    let _installing = HOOK_LOCK.lock_unpoisoned();
    if HOOK_INSTALLED.load(Ordering::Acquire) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if HOOK_LEFT_ALONE.load(Ordering::Acquire) {
            return previous(info);
        }
        if inside_task_thread() {
            let location = info.location().map(ToString::to_string);
            PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
        }
        if super::inside_worker_process() {
            let message = format!("parpool worker {}: {info}\n", std::process::id());
            crate::sys::write_stderr_unlocked(message.as_bytes());
        } else {
            previous(info);
        }
    }));
    HOOK_INSTALLED.store(true, Ordering::Release);
}

/// True while the calling thread runs a task of some pool.
pub(crate) fn inside_task_thread() -> bool {
    INSIDE_TASK.with(Cell::get)
}

/// Sets [`INSIDE_TASK`] for its lifetime, restoring the old value after.
struct InsideTaskGuard {
    was_inside: bool,
}

impl InsideTaskGuard {
    fn enter() -> InsideTaskGuard {
        InsideTaskGuard {
            was_inside: INSIDE_TASK.with(|flag| flag.replace(true)),
        }
    }
}

impl Drop for InsideTaskGuard {
    fn drop(&mut self) {
        let was_inside = self.was_inside;
        INSIDE_TASK.with(|flag| flag.set(was_inside));
    }
}

/// A caught panic: its payload and where it happened.
pub(crate) struct Panicked {
    payload: Box<dyn Any + Send>,
    location: Option<String>,
}

/// Runs `body` as task code: marked as inside a task, with a panic caught
/// and returned with its location.
pub(crate) fn catch_task<R>(body: impl FnOnce() -> R) -> Result<R, Panicked> {
    install_panic_hook();
    let _inside = InsideTaskGuard::enter();
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| Panicked {
        payload,
        location: PANIC_LOCATION.with(|slot| slot.borrow_mut().take()),
    })
}

/// Runs one task, `body`, for item `index` of `total`: its value, or the
/// error its panic becomes.
pub(crate) fn run_task<R>(
    index: usize,
    total: usize,
    body: impl FnOnce() -> R,
) -> Result<R, Error> {
    catch_task(body).map_err(|panicked| panic_error(panicked, index, total))
}

/// The one place a caught panic becomes an [`Error`]: `task {index} of
/// {total} panicked at {location}: {message}`.
pub(crate) fn panic_error(panicked: Panicked, index: usize, total: usize) -> Error {
    let message = panic_payload_message(&*panicked.payload);
    Error::panic(index, total, message, panicked.location)
}

/// The text of a panic payload (`&str` or `String`; anything else is named
/// as such).
fn panic_payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic payload is not a string".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_text() {
        let payload: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_payload_message(&*payload), "owned");
        let payload: Box<dyn Any + Send> = Box::new("static");
        assert_eq!(panic_payload_message(&*payload), "static");
        let payload: Box<dyn Any + Send> = Box::new(42_u8);
        assert_eq!(
            panic_payload_message(&*payload),
            "panic payload is not a string"
        );
    }

    #[test]
    fn a_task_is_marked_and_its_panic_names_the_item() {
        assert!(!inside_task_thread());
        assert_eq!(run_task(0, 1, inside_task_thread).ok(), Some(true));
        assert!(!inside_task_thread());
        let line = line!() + 1;
        let error = run_task(3, 10, || -> u8 { panic!("boom") }).unwrap_err();
        let at = format!("src/job/unwind.rs:{line}:");
        assert_eq!(
            error.panic_location().map(|l| l.starts_with(&at)),
            Some(true),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("task 3 of 10 panicked at src/job/unwind.rs:")
        );
        assert!(error.to_string().ends_with(": boom"), "{error}");
        assert!(!inside_task_thread());
    }
}
