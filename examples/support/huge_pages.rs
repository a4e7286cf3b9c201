//! Transparent huge pages for a large in-memory dataset, as a user asks
//! Linux for them: `madvise(MADV_HUGEPAGE)` on a buffer before filling it,
//! or `madvise(MADV_COLLAPSE)` (Linux 6.1+) on one already filled. A
//! process backend's `map` forks, and fork copies the parent's page tables:
//! one entry per 4 KiB page, but one per 2 MiB huge page, so a parent
//! whose large buffers sit on huge pages forks far faster. Off Linux these
//! do nothing and say so.

/// How the system hands out transparent huge pages (the bracketed word of
/// `/sys/kernel/mm/transparent_hugepage/enabled`: `always`, `madvise` or
/// `never`), if it says.
pub fn system_setting() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// Bytes of this process's memory on transparent huge pages
/// (`AnonHugePages` of `/proc/self/smaps_rollup`), if the system says.
pub fn huge_page_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("AnonHugePages:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// The whole 2 MiB pages inside `vector`'s allocation (its capacity):
/// (start, length), or `None` if there are none.
fn aligned_span<T>(vector: &Vec<T>) -> Option<(usize, usize)> {
    const HUGE: usize = 2 << 20;
    let start = vector.as_ptr() as usize;
    let first = start.next_multiple_of(HUGE);
    let end = (start + vector.capacity() * std::mem::size_of::<T>()) / HUGE * HUGE;
    (end > first).then(|| (first, end - first))
}

/// Asks Linux to back `vector`'s memory with huge pages as it is first
/// touched: call it on a fresh `Vec::with_capacity`, before filling. Works
/// when the system setting is `always` or `madvise`. True if Linux took
/// the advice.
pub fn advise<T>(vector: &Vec<T>) -> bool {
    madvise(vector, MADV_HUGEPAGE)
}

/// Asks Linux (6.1 or later) to move `vector`'s memory, already filled, onto
/// huge pages now: the data is copied into them, which takes a moment per
/// GiB. True if Linux did it.
pub fn collapse<T>(vector: &Vec<T>) -> bool {
    madvise(vector, MADV_COLLAPSE)
}

#[cfg(target_os = "linux")]
const MADV_HUGEPAGE: i32 = libc::MADV_HUGEPAGE;
/// Linux's value (include/uapi/asm-generic/mman-common.h), which the libc
/// crate does not name yet.
#[cfg(target_os = "linux")]
const MADV_COLLAPSE: i32 = 25;
#[cfg(not(target_os = "linux"))]
const MADV_HUGEPAGE: i32 = 0;
#[cfg(not(target_os = "linux"))]
const MADV_COLLAPSE: i32 = 0;

#[cfg(target_os = "linux")]
fn madvise<T>(vector: &Vec<T>, advice: i32) -> bool {
    let Some((start, len)) = aligned_span(vector) else {
        return false;
    };
    // SAFETY: both pieces of advice only change how the kernel backs pages
    // of this allocation (whole pages inside it), never their contents.
    unsafe { libc::madvise(start as *mut libc::c_void, len, advice) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn madvise<T>(vector: &Vec<T>, advice: i32) -> bool {
    let _ = (aligned_span(vector), advice);
    false
}
