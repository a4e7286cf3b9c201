//! Systems without `fork` (Windows): no process backend, and the few
//! calls the rest of the crate makes, in std's portable form.

/// No affinity API is read here; the CPU count falls back on
/// [`hardware_count`].
pub(crate) fn affinity_count() -> Option<usize> {
    None
}

/// The CPUs std reports (on Windows, those of the process's group).
pub(crate) fn hardware_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Huge pages are Linux's hint.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    let _ = (start, len);
}

/// A write to stderr. Without `fork` no thread can be missing while holding
/// its lock, so the lock is taken as usual.
pub(crate) fn write_stderr_unlocked(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(bytes);
}
