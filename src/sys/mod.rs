//! Operating-system calls shared by the crate's layers (one place for
//! what differs by platform). Today: the huge-page hint for large fresh
//! buffers, used by the codec, the process backend's reads and the MPI
//! gather alike.

/// Asks Linux to back `len` bytes at `start`, a fresh allocation about to
/// be written in full, with transparent huge pages where it allows them
/// (`madvise` mode): one fault and one clear per 2 MiB instead of per
/// 4 KiB, which is most of the cost of a fresh buffer of hundreds of MB.
/// A hint only; nothing changes where it is refused.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if len < 4 * HUGE {
            return;
        }
        let first = (start as usize).next_multiple_of(HUGE);
        let end = (start as usize + len) / HUGE * HUGE;
        if end > first {
            // SAFETY: madvise with MADV_HUGEPAGE only changes how the
            // kernel backs pages of this process's own mapping, inside an
            // allocation of `len` bytes; it never changes their contents.
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}
