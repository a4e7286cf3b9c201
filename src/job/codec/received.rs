//! [`Received`]: a chunk's encoded results as a backend received them.
//! Usually that is the bytes. The process backend reads a worker's large
//! arrays (the pieces `array.rs` borrows from the results) straight into
//! [`Block`]s of their own instead, each allocated as the vector the
//! result will be, so the one-copy array format takes the block as the
//! result: no copy after the read. Every other format reads the bytes
//! joined, blocks in their places.
//!
//! A leaf: it knows nothing of formats or backends.

// Only the process backend makes blocks, and it exists on Unix only.
#![cfg_attr(not(unix), allow(dead_code))]

use std::mem::MaybeUninit;

/// Memory for one array of an encoding, allocated as the vectors of its
/// element size are (`Vec<u8>` for `Vec<u8>` and `Vec<i8>`, `Vec<u32>`
/// for `Vec<f32>`, `Vec<u64>` for `Vec<f64>`): such a vector can take the
/// allocation over.
#[derive(Debug)]
pub(crate) enum Block {
    Bytes(Vec<u8>),
    Words(Vec<u32>),
    Doubles(Vec<u64>),
}

/// Room for `bytes` bytes in a fresh vector of `E` (advised onto huge
/// pages); `None` if `bytes` is not a whole number of `E` or there is no
/// memory for it.
fn fresh<E>(bytes: usize) -> Option<Vec<E>> {
    let size = std::mem::size_of::<E>();
    if !bytes.is_multiple_of(size) {
        return None;
    }
    let mut vector = Vec::<E>::new();
    vector.try_reserve_exact(bytes / size).ok()?;
    crate::sys::advise_huge_pages(vector.as_ptr().cast::<u8>(), bytes);
    Some(vector)
}

/// The first `bytes` bytes of `vector`'s spare room.
fn room_of<E: Copy>(vector: &mut Vec<E>, bytes: usize) -> &mut [MaybeUninit<u8>] {
    let spare = vector.spare_capacity_mut();
    let bytes = bytes.min(std::mem::size_of_val(spare));
    // SAFETY: within the spare room of `vector` (at most its size in
    // bytes); `MaybeUninit<u8>` may hold any bytes and has alignment 1.
    unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), bytes) }
}

/// `vector`'s elements as bytes.
fn bytes_of<E: Copy>(vector: &[E]) -> &[u8] {
    // SAFETY: the element types of a block (u8, u32, u64) have no padding.
    unsafe {
        std::slice::from_raw_parts(vector.as_ptr().cast::<u8>(), std::mem::size_of_val(vector))
    }
}

impl Block {
    /// An empty block with room for `bytes` bytes of elements of
    /// `element` bytes (1, 4 or 8). `None` for another element size,
    /// bytes that are not a whole number of elements, or no memory.
    pub(crate) fn with_room(bytes: usize, element: usize) -> Option<Block> {
        match element {
            1 => fresh(bytes).map(Block::Bytes),
            4 => fresh(bytes).map(Block::Words),
            8 => fresh(bytes).map(Block::Doubles),
            _ => None,
        }
    }

    /// The room a block was made with, to be written.
    pub(crate) fn room(&mut self, bytes: usize) -> &mut [MaybeUninit<u8>] {
        match self {
            Block::Bytes(vector) => room_of(vector, bytes),
            Block::Words(vector) => room_of(vector, bytes),
            Block::Doubles(vector) => room_of(vector, bytes),
        }
    }

    /// Marks the first `bytes` bytes of the room as the block's contents.
    ///
    /// # Safety
    ///
    /// Those bytes were written (through [`room`](Block::room)), and
    /// `bytes` is a whole number of elements within the room.
    pub(crate) unsafe fn fill(&mut self, bytes: usize) {
        // SAFETY: by the caller's contract, and every bit pattern is a
        // value of the element types.
        unsafe {
            match self {
                Block::Bytes(vector) => vector.set_len(bytes),
                Block::Words(vector) => vector.set_len(bytes / 4),
                Block::Doubles(vector) => vector.set_len(bytes / 8),
            }
        }
    }

    /// Its contents.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Block::Bytes(vector) => bytes_of(vector),
            Block::Words(vector) => bytes_of(vector),
            Block::Doubles(vector) => bytes_of(vector),
        }
    }

    /// The size of its elements.
    pub(super) fn element_size(&self) -> usize {
        match self {
            Block::Bytes(_) => 1,
            Block::Words(_) => 4,
            Block::Doubles(_) => 8,
        }
    }

    /// The block as a `Vec<P>`, which takes its allocation over.
    ///
    /// # Safety
    ///
    /// `P` has the size and alignment of the block's element
    /// ([`element_size`](Block::element_size)), no padding, and every bit
    /// pattern is a `P`.
    pub(super) unsafe fn into_vec<P>(self) -> Vec<P> {
        fn cast<E, P>(vector: Vec<E>) -> Vec<P> {
            let mut vector = std::mem::ManuallyDrop::new(vector);
            let (pointer, len, capacity) = (vector.as_mut_ptr(), vector.len(), vector.capacity());
            // SAFETY: by `into_vec`'s contract, `P` has `E`'s size and
            // alignment, so the allocation's layout is that of `capacity`
            // `P`s, and the `len` elements are valid `P`s; the original is
            // not dropped.
            unsafe { Vec::from_raw_parts(pointer.cast::<P>(), len, capacity) }
        }
        match self {
            Block::Bytes(vector) => cast(vector),
            Block::Words(vector) => cast(vector),
            Block::Doubles(vector) => cast(vector),
        }
    }
}

/// A chunk's encoded results as received: `bytes`, with `blocks` in their
/// places (a block at position `p` comes after the first `p` bytes, in
/// order of position).
#[derive(Debug)]
pub(crate) struct Received<'a> {
    bytes: &'a [u8],
    pub(super) blocks: Vec<(usize, Block)>,
}

impl<'a> Received<'a> {
    /// `bytes` with `blocks` in their places; `None` if the places are
    /// not in order or past the end of `bytes`.
    pub(crate) fn new(bytes: &'a [u8], blocks: Vec<(usize, Block)>) -> Option<Received<'a>> {
        let in_order = blocks.windows(2).all(|pair| pair[0].0 <= pair[1].0);
        let inside = blocks.last().is_none_or(|&(at, _)| at <= bytes.len());
        (in_order && inside).then_some(Received { bytes, blocks })
    }

    /// Just `bytes`.
    pub(crate) fn whole(bytes: &'a [u8]) -> Received<'a> {
        Received {
            bytes,
            blocks: Vec::new(),
        }
    }

    /// The bytes around the blocks.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// True if some of it is in blocks.
    pub(crate) fn has_blocks(&self) -> bool {
        !self.blocks.is_empty()
    }

    /// Each block's place and contents, in order.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (usize, &[u8])> + Clone {
        self.blocks
            .iter()
            .map(|(place, block)| (*place, block.bytes()))
    }

    /// All of it in one vector, blocks in their places.
    pub(crate) fn joined(&self) -> Vec<u8> {
        join_blocks(self.bytes, self.blocks())
    }
}

/// `bytes` with each block's contents put in at its place (places in
/// order, within `bytes`), in one fresh vector.
pub(crate) fn join_blocks<'b>(
    bytes: &[u8],
    blocks: impl Iterator<Item = (usize, &'b [u8])> + Clone,
) -> Vec<u8> {
    let total = bytes.len() + blocks.clone().map(|(_, block)| block.len()).sum::<usize>();
    let mut joined = Vec::with_capacity(total);
    crate::sys::advise_huge_pages(joined.as_ptr(), joined.capacity());
    let mut at = 0;
    for (place, block) in blocks {
        joined.extend_from_slice(&bytes[at..place]);
        joined.extend_from_slice(block);
        at = place;
    }
    joined.extend_from_slice(&bytes[at..]);
    joined
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A block holding `bytes`.
    pub(in super::super) fn block_of(bytes: &[u8], element: usize) -> Block {
        let mut block = Block::with_room(bytes.len(), element).expect("a whole number of elements");
        for (room, &byte) in block.room(bytes.len()).iter_mut().zip(bytes) {
            room.write(byte);
        }
        // SAFETY: every byte was just written.
        unsafe { block.fill(bytes.len()) };
        block
    }

    #[test]
    fn blocks_join_in_their_places() {
        let bytes = b"abcdef";
        let received = Received::new(
            bytes,
            vec![
                (0, block_of(b"01", 1)),
                (3, block_of(&[9; 8], 8)),
                (6, block_of(b"wxyz", 4)),
            ],
        )
        .unwrap();
        assert!(received.has_blocks());
        let mut expected = b"01abc".to_vec();
        expected.extend_from_slice(&[9; 8]);
        expected.extend_from_slice(b"defwxyz");
        assert_eq!(received.joined(), expected);
        assert!(
            Received::new(bytes, vec![(7, block_of(b"0", 1))]).is_none(),
            "past the end"
        );
        let backwards = vec![(4, block_of(b"0", 1)), (2, block_of(b"1", 1))];
        assert!(Received::new(bytes, backwards).is_none(), "out of order");
        assert_eq!(Received::whole(bytes).joined(), bytes);
    }

    #[test]
    fn a_block_is_made_only_of_whole_elements_of_known_sizes() {
        assert!(Block::with_room(12, 8).is_none());
        assert!(Block::with_room(16, 2).is_none());
        assert!(
            Block::with_room(usize::MAX - 7, 8).is_none(),
            "no such memory"
        );
        let block = block_of(&1.5f64.to_le_bytes(), 8);
        assert_eq!(block.element_size(), 8);
        // SAFETY: f64 has u64's size and alignment, and any bits are an f64.
        let vector: Vec<f64> = unsafe { block.into_vec() };
        assert_eq!(vector, [1.5]);
    }
}
