//! Large copies shared between threads. One core copies memory at a
//! fraction of what the machine can when the copy is a worker's pages
//! read with `process_vm_readv` (about 2 GB/s here, where `memcpy` runs
//! at 14). Past [`ALONE_UP_TO`] bytes such a copy is cut into parts, one a
//! CPU (at most [`MOST_THREADS`]), each done by a thread of its own while
//! the caller does the first.
//!
//! Tried and left out: the same for the copy that decodes a large array
//! into fresh pages (`job/codec/array.rs`). `results_rate`, 6 runs each
//! way, showed no difference beyond the runs' own spread.

/// Copies up to this many bytes are done by one thread.
pub(crate) const ALONE_UP_TO: usize = 16 << 20;

/// The most threads one copy is shared by.
const MOST_THREADS: usize = 4;

/// How many parts a copy of `bytes` is cut into.
pub(crate) fn parts_for(bytes: usize) -> usize {
    if bytes <= ALONE_UP_TO {
        1
    } else {
        crate::cpus::detected_count().clamp(1, MOST_THREADS)
    }
}

/// The size of each of `parts` parts of `bytes` but the last, a multiple
/// of 64 KiB (so no two threads touch one page): `parts` of them cover
/// `bytes`.
pub(crate) fn share_of(bytes: usize, parts: usize) -> usize {
    bytes.div_ceil(parts.max(1)).next_multiple_of(64 << 10)
}

/// Runs `work` on every part, the first on this thread and each other on
/// a thread of its own named `name`, and returns what each gave, in
/// order. `None` if a thread could not be started: the parts that did
/// start have finished by then, and the caller does all of it again on
/// its own thread.
pub(crate) fn on_threads<P: Send, R: Send>(
    name: &str,
    parts: Vec<P>,
    work: impl Fn(P) -> R + Sync,
) -> Option<Vec<R>> {
    let mut parts = parts.into_iter();
    let first = parts.next()?;
    let work = &work;
    std::thread::scope(|scope| {
        let mut started = Vec::new();
        for part in parts {
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn_scoped(scope, move || work(part));
            started.push(thread.ok()?);
        }
        let mut results = vec![work(first)];
        for thread in started {
            match thread.join() {
                Ok(result) => results.push(result),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Some(results)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_bytes_and_threads_return_in_order() {
        for bytes in [1, 64 << 10, (64 << 10) + 1, 100 << 20] {
            for parts in 1..=5 {
                let share = share_of(bytes, parts);
                assert_eq!(share % (64 << 10), 0);
                assert!(share * parts >= bytes, "{bytes} in {parts}");
            }
        }
        let doubled = on_threads("parpool-test", (0..6).collect(), |x: u32| x * 2).unwrap();
        assert_eq!(doubled, vec![0, 2, 4, 6, 8, 10]);
        assert_eq!(on_threads("parpool-test", Vec::<u32>::new(), |x| x), None);
    }
}
