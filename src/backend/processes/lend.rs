//! Large results lent instead of sent, where Linux allows it: a worker
//! sends only where its encoded results lie in its memory (a `Lent` frame
//! listing the pieces) and waits; the parent reads them from there with
//! one copy (`process_vm_readv`) when the frame arrives
//! (`FrameReader::read_lent`), and says so in the worker's shared slot.
//! No bytes go through the socket, which costs a copy into the kernel and
//! another out of it, in pieces of the socket's buffer.
//!
//! The list says which pieces are arrays' memory (`Vec<u8>`, `Vec<f64>`,
//! ...: `EncodedChunk::arrays`) and the size of their elements. The
//! parent reads each of those straight into a fresh vector of that
//! element size (a `Block`), which the decoded result takes over
//! (`Received`): that read is the only copy of the array in the parent.
//! The other pieces go into a spare buffer, as they are decoded from it.
//!
//! The frame is the worker's frame as usual, counted sent only once the
//! parent has read its results; they come out of `FrameReader::read` as
//! if they had been sent. A worker that dies waiting is a death while
//! sending results, charged to its chunk. If the parent cannot read them
//! (a `ptrace` policy or a seccomp filter that forbids it), the worker
//! sends them through its socket after all, as its next frame, and
//! neither it nor any worker forked later lends again. Other Unix systems
//! never lend (`sys::REMOTE_READS`).

use super::os;
use super::shm::{self, LEND_REFUSED, WorkerSlot};
use crate::backend::wire::{self, FrameKind, Header};
use crate::job::Block;
use crate::parts;
use std::sync::atomic::{AtomicBool, Ordering};

/// Results at least this large are lent (see the module docs), where the
/// system allows it.
pub(super) const LEND_FROM: usize = 1 << 20;

/// Set in the parent once it could not read a worker's memory: the
/// workers it forks afterwards (which inherit it) send through their
/// sockets. Those running learn it from their slot.
static LEND_REFUSED_HERE: AtomicBool = AtomicBool::new(false);

/// The parent's side: it could not read a worker's memory; no worker it
/// forks from now on lends. (The worker's side sets the same flag.)
pub(super) fn refused() {
    #[cfg(not(test))]
    LEND_REFUSED_HERE.store(true, Ordering::Relaxed);
    // Unit tests share one process: a refusal they cause stays in the
    // thread that caused it, so the other tests still lend.
    #[cfg(test)]
    tests::REFUSED.with(|refused| refused.set(true));
}

/// True once lending was refused in this process (see [`refused`]).
fn is_refused() -> bool {
    #[cfg(test)]
    if tests::REFUSED.with(std::cell::Cell::get) {
        return true;
    }
    LEND_REFUSED_HERE.load(Ordering::Relaxed)
}

/// One piece a `Lent` frame lists: its address in the worker, its length,
/// and the size of its elements if it is an array's memory (1, 4 or 8;
/// 0 if not), which the parent reads into a [`Block`] of its own.
pub(super) type LentPiece = (usize, usize, usize);

/// The pieces a `Lent` frame lists: a count, then a triple per piece
/// ([`LentPiece`]), each u64 LE. `None` if the payload is not such a list:
/// an element size other than those, an array that is not a whole number
/// of elements, or lengths that add up to more than a buffer can hold
/// (bytes a task wrote to its socket, say: the sum is what the parent
/// reserves).
pub(super) fn pieces(payload: &[u8]) -> Option<Vec<LentPiece>> {
    let mut words = payload
        .chunks_exact(8)
        .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")) as usize);
    let count = words.next()?;
    if count.checked_mul(24).and_then(|bytes| bytes.checked_add(8)) != Some(payload.len()) {
        return None;
    }
    let pieces: Vec<LentPiece> = (0..count)
        .map(|_| {
            let mut word = || words.next().unwrap_or(usize::MAX);
            (word(), word(), word())
        })
        .collect();
    let arrays_whole = pieces.iter().all(|&(_, len, element)| match element {
        0 => true,
        1 | 4 | 8 => len.is_multiple_of(element),
        _ => false,
    });
    let total = pieces
        .iter()
        .try_fold(0usize, |total, &(_, len, _)| total.checked_add(len))?;
    (arrays_whole && total <= isize::MAX as usize).then_some(pieces)
}

/// Reads lent results: the pieces that are arrays' memory each into a
/// fresh [`Block`] of its own (the decoded result takes it over: no copy
/// after this one), returned with their places in the rest, which goes
/// into `bytes` (cleared first; a spare buffer, memory already faulted in,
/// so the one copy is all it costs).
pub(super) fn read_into(
    pid: os::Pid,
    pieces: &[LentPiece],
    bytes: &mut Vec<u8>,
) -> std::io::Result<Vec<(usize, Block)>> {
    #[cfg(test)]
    if tests::REFUSE_READS.with(std::cell::Cell::get) {
        return Err(std::io::Error::from_raw_os_error(libc::EPERM));
    }
    let out_of_memory = || std::io::Error::from(std::io::ErrorKind::OutOfMemory);
    let rest: Vec<(usize, usize)> = pieces
        .iter()
        .filter(|&&(_, _, element)| element == 0)
        .map(|&(address, len, _)| (address, len))
        .collect();
    // `pieces` checked that the lengths add up without overflow.
    let total: usize = rest.iter().map(|&(_, len)| len).sum();
    bytes.clear();
    let capacity = bytes.capacity();
    bytes.try_reserve(total).map_err(|_| out_of_memory())?;
    if bytes.capacity() != capacity {
        crate::sys::advise_huge_pages(bytes.as_ptr(), bytes.capacity());
    }
    read(pid, &rest, &mut bytes.spare_capacity_mut()[..total])?;
    // SAFETY: `read` wrote every byte of the first `total` of the spare
    // capacity.
    unsafe { bytes.set_len(total) };
    let mut blocks = Vec::new();
    let mut place = 0;
    for &(address, len, element) in pieces {
        if element == 0 {
            place += len;
            continue;
        }
        let mut block = Block::with_room(len, element).ok_or_else(out_of_memory)?;
        read(pid, &[(address, len)], block.room(len))?;
        // SAFETY: `read` wrote all `len` bytes of the room, a whole
        // number of elements (`pieces` checked).
        unsafe { block.fill(len) };
        blocks.push((place, block));
    }
    Ok(blocks)
}

/// Reads `pieces` of `pid`'s memory into all of `into`, their total
/// length. Large reads are shared by several threads, each its own part
/// of `into` (`crate::parts`): `process_vm_readv` pins and copies the
/// worker's pages one at a time, at about 2 GB/s here where a `memcpy`
/// runs at 14, and the parent reads every worker's results in turn while
/// they wait.
fn read(
    pid: os::Pid,
    pieces: &[(usize, usize)],
    into: &mut [std::mem::MaybeUninit<u8>],
) -> std::io::Result<()> {
    match read_in_parts(pid, &split(pieces, parts::parts_for(into.len())), into) {
        Some(read) => read,
        // A thread could not start: all of it here.
        None => crate::sys::read_remote(pid, pieces, into),
    }
}

/// `pieces` cut into `parts` runs of about the same number of bytes
/// (`parts::share_of`), in order: a piece that crosses a cut is
/// split there. Fewer runs if there are too few bytes.
fn split(pieces: &[(usize, usize)], parts: usize) -> Vec<Vec<(usize, usize)>> {
    let total: usize = pieces.iter().map(|&(_, len)| len).sum();
    let share = parts::share_of(total, parts);
    let mut runs = vec![Vec::new()];
    let mut room = share;
    for &(mut address, mut len) in pieces {
        while len > 0 {
            if room == 0 {
                runs.push(Vec::new());
                room = share;
            }
            let take = len.min(room);
            runs.last_mut()
                .expect("one run at least")
                .push((address, take));
            (address, len, room) = (address + take, len - take, room - take);
        }
    }
    runs
}

/// Reads each run of `runs` into its own part of `into`, in order, on
/// threads (`parts::on_threads`). `None` if a thread could not be
/// started (nothing is wrong with the reads: the caller reads it all again
/// on one thread). Otherwise the first error of any part, or `Ok` with
/// all of `into` written.
fn read_in_parts(
    pid: os::Pid,
    runs: &[Vec<(usize, usize)>],
    mut into: &mut [std::mem::MaybeUninit<u8>],
) -> Option<std::io::Result<()>> {
    let mut work = Vec::with_capacity(runs.len());
    for run in runs {
        let len: usize = run.iter().map(|&(_, len)| len).sum();
        let (part, rest) = into.split_at_mut(len);
        work.push((run.as_slice(), part));
        into = rest;
    }
    let reads = parts::on_threads("parpool-read", work, |(run, part)| {
        crate::sys::read_remote(pid, run, part)
    })?;
    Some(reads.into_iter().collect())
}

/// A worker's side: sends a chunk's results as frame `header`. Large ones
/// are lent where the system allows it (see the module docs): the frame
/// lists where they lie, and the worker waits for the parent to have read
/// them before it lets them go (or, if the parent could not, sends them
/// after all, as the next frame). Others go through the socket.
pub(super) fn send_results(
    channel: &std::fs::File,
    slot: &WorkerSlot,
    header: Header,
    pieces: &[(&[u8], usize)],
) -> std::io::Result<()> {
    let length: usize = pieces.iter().map(|(piece, _)| piece.len()).sum();
    let slices = || pieces.iter().map(|&(piece, _)| piece);
    if crate::sys::REMOTE_READS && length >= LEND_FROM && !is_refused() {
        let list = lent_list(
            pieces
                .iter()
                .map(|&(piece, element)| (piece.as_ptr() as usize, piece.len(), element)),
        );
        let lent = Header {
            kind: Some(FrameKind::Lent),
            ..header
        };
        wire::write(&mut &*channel, lent, &list)?;
        let done = wait_until_read(slot, header.number);
        if done & LEND_REFUSED == 0 {
            return Ok(());
        }
        refused();
        shm::frame_sent(slot, header.id);
        let header = header.numbered(header.number + 1);
        return wire::write_pieces(&mut &*channel, header, slices());
    }
    wire::write_pieces(&mut &*channel, header, slices())
}

/// A `Lent` frame's payload listing `pieces`: what [`pieces`] reads back.
fn lent_list(pieces: impl ExactSizeIterator<Item = LentPiece>) -> Vec<u8> {
    let mut list = Vec::with_capacity(8 + 24 * pieces.len());
    list.extend_from_slice(&(pieces.len() as u64).to_le_bytes());
    for (address, len, element) in pieces {
        for word in [address, len, element] {
            list.extend_from_slice(&(word as u64).to_le_bytes());
        }
    }
    list
}

/// A worker's side: waits until the parent has read (or could not read)
/// the results lent with frame `number`; its `lent_done`. A parent that
/// dies meanwhile takes the worker with it (its death signal).
fn wait_until_read(slot: &WorkerSlot, number: usize) -> usize {
    let mut spins = 0u32;
    loop {
        let done = slot.lent_done.load(Ordering::Acquire);
        if done & !LEND_REFUSED == number + 1 {
            return done;
        }
        if spins < 100 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::frames::{FrameReader, Payload, Spares};
    use super::super::shm::SharedMemory;
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// Reads frames from `parent` as the fleet does (`pid`'s memory for
    /// lent results) until one comes or the reader says to kill.
    fn read_one(
        reader: &mut FrameReader,
        parent: &OwnedFd,
        pid: os::Pid,
        slot: &WorkerSlot,
        spares: &Spares,
    ) -> (Vec<(Header, Payload)>, bool) {
        for _ in 0..500 {
            let fd = std::iter::once(std::os::fd::AsFd::as_fd(parent));
            os::poll(fd, os::Ready::Read, std::time::Duration::from_millis(10));
            let (frames, kill) = reader.read(parent, pid, slot, spares);
            if !frames.is_empty() || kill {
                return (frames, kill);
            }
        }
        (Vec::new(), false)
    }

    thread_local! {
        /// This thread refused lending (see [`refused`]).
        pub(in super::super) static REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Reads of lent results on this thread fail as a `ptrace` policy
        /// would make them fail.
        pub(in super::super) static REFUSE_READS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A socket pair: the parent's end, and the worker's as a worker holds it.
    fn channels() -> (OwnedFd, std::fs::File) {
        let (parent, child) = os::socket_pair().unwrap();
        // SAFETY: the descriptor is owned and handed over whole.
        let child =
            unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(child)) };
        (parent, child)
    }

    #[test]
    fn lent_results_arrive_as_if_sent() {
        let shared = SharedMemory::new(1).unwrap();
        let slot = shared.slot(0);
        let (parent, child) = channels();
        let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let doubles: Vec<u8> = (0..100_000)
            .flat_map(|i| (f64::from(i) * 0.25).to_le_bytes())
            .collect();
        let doubles_memory = &doubles[..];
        let spares = Spares::default();
        let mut reader = FrameReader::default();
        let header = Header::new(FrameKind::Results, 7, 0);
        // A head, an array of bytes, bytes between, an array of doubles.
        let pieces = [
            (&b"head"[..], 0),
            (&big[..], 1),
            (b"mid", 0),
            (doubles_memory, 8),
        ];
        let (mut frames, kill) = std::thread::scope(|scope| {
            let worker = scope.spawn(|| send_results(&child, slot, header, &pieces));
            let read = read_one(&mut reader, &parent, os::getpid(), slot, &spares);
            worker.join().unwrap().unwrap();
            read
        });
        assert!(!kill);
        let [(header, payload)] = &mut frames[..] else {
            panic!("one frame, not {}", frames.len());
        };
        assert_eq!(header.kind, Some(FrameKind::Results));
        assert_eq!((header.id, header.number), (7, 0));
        let whole: Vec<u8> = pieces
            .iter()
            .flat_map(|(piece, _)| piece.iter().copied())
            .collect();
        assert!(payload.whole()[..] == whole[..]);
        assert_eq!(header.length, whole.len());
        let received = payload.received();
        if crate::sys::REMOTE_READS {
            // Lent, and read: the worker was told. The arrays came in
            // blocks of their own, at their places.
            assert_eq!(slot.lent_done.load(Ordering::Acquire), 1);
            assert_eq!(received.bytes(), b"headmid");
            assert!(received.joined() == whole);
            let blocks: Vec<(usize, usize)> = received
                .blocks()
                .map(|(place, block)| (place, block.len()))
                .collect();
            assert_eq!(blocks, [(4, big.len()), (7, doubles_memory.len())]);
        } else {
            assert!(!received.has_blocks());
        }
    }

    /// Writes a `Lent` frame numbered 0 listing `pieces`, as a worker (or a
    /// task writing garbage to its socket) could.
    fn write_lent(child: &std::fs::File, pieces: &[(usize, usize)]) {
        let header = Header::new(FrameKind::Lent, 3, 0);
        let list = lent_list(pieces.iter().map(|&(address, len)| (address, len, 0)));
        wire::write(&mut &*child, header, &list).unwrap();
    }

    #[test]
    fn a_lent_frame_that_lists_no_memory_of_the_worker_is_not_a_frame() {
        if !crate::sys::REMOTE_READS {
            return;
        }
        let shared = SharedMemory::new(1).unwrap();
        let slot = shared.slot(0);
        let (parent, child) = channels();
        let mut reader = FrameReader::default();
        // Page 0 is never mapped: EFAULT.
        write_lent(&child, &[(16, 100)]);
        let (frames, kill) = read_one(&mut reader, &parent, os::getpid(), slot, &Spares::default());
        assert!(frames.is_empty());
        assert!(kill, "a worker that writes such a list is killed");
        assert_eq!(slot.lent_done.load(Ordering::Acquire), 0);
        // A list whose count does not match its length is no list either,
        // nor one whose lengths add up past what a buffer can hold.
        assert!(pieces(&[1, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(pieces(&u64::MAX.to_le_bytes()).is_none());
        assert_eq!(pieces(&0u64.to_le_bytes()), Some(Vec::new()));
        let list = |lens: &[usize]| lent_list(lens.iter().map(|&len| (4096, len, 0)));
        assert!(pieces(&list(&[usize::MAX, 2])).is_none(), "overflows");
        assert!(
            pieces(&list(&[1 << 62, 1 << 62])).is_none(),
            "past isize::MAX"
        );
        assert_eq!(
            pieces(&list(&[3, 5])),
            Some(vec![(4096, 3, 0), (4096, 5, 0)])
        );
        // Arrays of whole elements of 1, 4 or 8 bytes, and no others.
        let arrays = |pieces: &[LentPiece]| lent_list(pieces.iter().copied());
        let good = [(4096, 3, 1), (4096, 8, 4), (4096, 16, 8), (4096, 5, 0)];
        assert_eq!(pieces(&arrays(&good)), Some(good.to_vec()));
        assert!(pieces(&arrays(&[(4096, 12, 8)])).is_none(), "not whole");
        assert!(pieces(&arrays(&[(4096, 16, 2)])).is_none(), "no such size");
        assert!(pieces(&arrays(&[(4096, 16, 16)])).is_none(), "no such size");
        // The old form (pairs) is not a list.
        assert!(pieces(&[&2u64.to_le_bytes()[..], &[0; 32]].concat()).is_none());
        // Sent as a frame, such a list is not read: the worker is killed.
        let (parent, child) = channels();
        let mut reader = FrameReader::default();
        write_lent(&child, &[(4096, usize::MAX), (4096, 2)]);
        let (frames, kill) = read_one(&mut reader, &parent, os::getpid(), slot, &Spares::default());
        assert!(frames.is_empty() && kill);
    }

    #[test]
    fn lent_results_of_a_reaped_worker_are_never_read() {
        let shared = SharedMemory::new(1).unwrap();
        let slot = shared.slot(0);
        let (parent, child) = channels();
        let mut reader = FrameReader::default();
        let memory = vec![9u8; 4096];
        write_lent(&child, &[(memory.as_ptr() as usize, memory.len())]);
        reader.worker_gone();
        // A frame numbered 1 after it: it comes out only if frame 0 was cut.
        let header = Header::new(FrameKind::Results, 4, 0).numbered(1);
        wire::write(&mut &child, header, b"after").unwrap();
        let (frames, kill) = read_one(&mut reader, &parent, os::getpid(), slot, &Spares::default());
        assert!(!kill);
        let [(header, payload)] = &frames[..] else {
            panic!("one frame, not {}", frames.len());
        };
        assert_eq!(
            (header.id, header.number, &payload.whole()[..]),
            (4, 1, &b"after"[..])
        );
        // Nothing was read, and the worker was told nothing.
        assert_eq!(slot.lent_done.load(Ordering::Acquire), 0);
    }

    #[test]
    fn lent_results_the_parent_cannot_read_are_sent_after_all() {
        if !crate::sys::REMOTE_READS {
            return;
        }
        let shared = SharedMemory::new(1).unwrap();
        let slot = shared.slot(0);
        let (parent, child) = channels();
        let big = vec![5u8; 2 << 20];
        let spares = Spares::default();
        let mut reader = FrameReader::default();
        let header = Header::new(FrameKind::Results, 2, 0);
        let (frames, sent_again) = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                send_results(&child, slot, header, &[(&big, 1)]).unwrap();
                // The worker, refused, lends no more.
                is_refused()
            });
            REFUSE_READS.with(|refuse| refuse.set(true));
            let (frames, kill) = read_one(&mut reader, &parent, os::getpid(), slot, &spares);
            assert!(!kill);
            (frames, worker.join().unwrap())
        });
        assert!(sent_again);
        assert!(is_refused(), "nor does the parent's next worker");
        assert_eq!(
            slot.lent_done.load(Ordering::Acquire),
            1 | LEND_REFUSED,
            "the worker was told"
        );
        // The results came through the socket, as the next frame.
        let [(header, payload)] = &frames[..] else {
            panic!("one frame, not {}", frames.len());
        };
        assert_eq!(
            (header.kind, header.id, header.number),
            (Some(FrameKind::Results), 2, 1)
        );
        assert!(payload.whole()[..] == big[..]);
    }

    /// The bytes at `pieces`, in order, as addresses: what a read of them
    /// must produce, whatever the cuts.
    fn addresses(pieces: &[(usize, usize)]) -> Vec<usize> {
        pieces
            .iter()
            .flat_map(|&(address, len)| address..address + len)
            .collect()
    }

    #[test]
    fn a_large_read_is_cut_into_even_parts_in_order() {
        let pieces = [
            (1 << 30, 5),
            (2 << 30, 3 << 20),
            (3 << 30, 0),
            (4 << 30, 700_001),
        ];
        let total = 5 + (3 << 20) + 700_001;
        for parts in 1..=5 {
            let runs = split(&pieces, parts);
            assert!(runs.len() <= parts, "{parts}: {} runs", runs.len());
            let joined: Vec<(usize, usize)> = runs.concat();
            assert_eq!(addresses(&joined), addresses(&pieces), "{parts} parts");
            let sizes: Vec<usize> = runs
                .iter()
                .map(|run| run.iter().map(|&(_, len)| len).sum())
                .collect();
            assert_eq!(sizes.iter().sum::<usize>(), total);
            for &size in &sizes[..sizes.len() - 1] {
                assert_eq!(size % (64 << 10), 0);
                assert!(size >= total / parts, "{parts}: {sizes:?}");
            }
        }
        assert_eq!(split(&[], 3), vec![Vec::new()]);
    }

    #[test]
    fn a_large_read_shared_by_threads_is_the_memory_in_order() {
        if !crate::sys::REMOTE_READS {
            return;
        }
        // 40 MiB in uneven pieces, read from this process's own memory:
        // past `parts::ALONE_UP_TO`, so cut between threads where it has CPUs.
        let memory: Vec<u8> = (0..40usize << 20).map(|i| (i % 253) as u8).collect();
        let base = memory.as_ptr() as usize;
        let cuts = [0, 1, 4097, 9 << 20, (9 << 20) + 3, 33 << 20, 40 << 20];
        let pieces: Vec<(usize, usize)> = cuts
            .windows(2)
            .map(|cut| (base + cut[0], cut[1] - cut[0]))
            .collect();
        let mut bytes = Vec::new();
        let plain: Vec<LentPiece> = pieces.iter().map(|&(at, len)| (at, len, 0)).collect();
        let blocks = read_into(os::getpid(), &plain, &mut bytes).unwrap();
        assert!(bytes == memory && blocks.is_empty());
        // The two largest pieces as arrays: each read into a block of its
        // own (the 24 MiB one by threads), the rest around them.
        let mut arrays = plain.clone();
        arrays[2].2 = 1;
        arrays[4].2 = 1;
        let blocks = read_into(os::getpid(), &arrays, &mut bytes).unwrap();
        let places: Vec<usize> = blocks.iter().map(|(place, _)| *place).collect();
        assert_eq!(places, [4097, 4097 + 3]);
        let blocks = blocks.iter().map(|(place, block)| (*place, block.bytes()));
        assert!(crate::job::join_blocks(&bytes, blocks) == memory);
        // The same in parts on threads, whatever this machine's CPUs.
        let mut again = vec![std::mem::MaybeUninit::new(0u8); memory.len()];
        read_in_parts(os::getpid(), &split(&pieces, 3), &mut again)
            .expect("threads started")
            .unwrap();
        let same = again.iter().zip(&memory).all(|(a, b)| {
            // SAFETY: every element was made initialised (`MaybeUninit::new`).
            let a = unsafe { a.assume_init() };
            a == *b
        });
        assert!(same);
        // A piece that is not this process's memory, in the last part:
        // an error, as from one thread.
        let mut bad = pieces.clone();
        bad.push((16, 100));
        let total = (40 << 20) + 100;
        let mut into = vec![std::mem::MaybeUninit::new(0u8); total];
        let error = read_in_parts(os::getpid(), &split(&bad, 3), &mut into)
            .expect("threads started")
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EFAULT));
        let bad: Vec<LentPiece> = bad.iter().map(|&(at, len)| (at, len, 0)).collect();
        assert!(read_into(os::getpid(), &bad, &mut bytes).is_err());
        let mut bad_array = arrays;
        bad_array.push((16, 100, 4));
        let error = read_into(os::getpid(), &bad_array, &mut bytes).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EFAULT));
    }
}
