//! The panic policy, in one place: a task's panic is caught where the task
//! runs and becomes an [`Error`] naming its item. Nothing a task does
//! unwinds into a backend or the caller.
//!
//! While a task runs, its thread is marked as inside a task, so a pool used
//! from inside it runs serially (nested use).

use crate::error::Error;
use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// True while this thread runs a task of some pool.
    static INSIDE_TASK: Cell<bool> = const { Cell::new(false) };
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

/// Runs `body` as task code: marked as inside a task, with a panic caught
/// and returned as its payload.
pub(crate) fn catch_task<R>(body: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    let _inside = InsideTaskGuard::enter();
    catch_unwind(AssertUnwindSafe(body))
}

/// Runs one task, `body`, for item `index` of `total`: its value, or the
/// error its panic becomes.
pub(crate) fn run_task<R>(
    index: usize,
    total: usize,
    body: impl FnOnce() -> R,
) -> Result<R, Error> {
    catch_task(body).map_err(|payload| panic_error(&*payload, index, total))
}

/// The one place a caught panic becomes an [`Error`]: `task {index} of
/// {total} panicked: {message}`.
pub(crate) fn panic_error(payload: &(dyn Any + Send), index: usize, total: usize) -> Error {
    Error::panic(index, total, panic_payload_message(payload))
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
        let error = run_task(3, 10, || -> u8 { panic!("boom") }).unwrap_err();
        assert_eq!(error.to_string(), "task 3 of 10 panicked: boom");
        assert!(!inside_task_thread());
    }
}
