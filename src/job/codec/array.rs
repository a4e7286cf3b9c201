//! The one-copy array format: a fast path for the results scientists
//! return most, arrays of bytes and floats (`Vec<u8>`, `Vec<i8>`,
//! `Vec<f32>`, `Vec<f64>`).
//!
//! postcard writes such a vector as its length (a varint) followed by its
//! elements as little-endian bytes, one `serialize_element` call at a time,
//! which runs at a few hundred MB/s. On a little-endian machine those bytes
//! are exactly the vector's memory, so this module writes and reads them
//! with one copy, producing and accepting byte-for-byte the postcard
//! encoding: the two paths mix freely, and results stay bit-identical.
//!
//! A leaf: it works on `Vec<P>` and knows nothing of the codec that picks
//! it (`format.rs` does, by type id).

use super::pieces::EncodedChunk;
use super::received::Received;
use super::varint::push_varint;

/// Element types whose postcard encoding is their little-endian memory:
/// single bytes and IEEE floats (wider integers are varints in postcard).
///
/// # Safety
///
/// Every bit pattern is a valid value, and the type has no padding.
pub(super) unsafe trait Raw: Copy + 'static {}

// SAFETY: primitive types with no padding and no invalid bit patterns.
unsafe impl Raw for u8 {}
// SAFETY: as above.
unsafe impl Raw for i8 {}
// SAFETY: as above.
unsafe impl Raw for f32 {}
// SAFETY: as above.
unsafe impl Raw for f64 {}

/// The memory of `vector`, as bytes.
pub(super) fn memory_of<P: Raw>(vector: &[P]) -> &[u8] {
    // SAFETY: `P: Raw` has no padding, so its memory is initialised bytes.
    unsafe {
        std::slice::from_raw_parts(vector.as_ptr().cast::<u8>(), std::mem::size_of_val(vector))
    }
}

/// Appends one vector: its length, then its memory.
fn push_vector<P: Raw>(bytes: &mut Vec<u8>, vector: &[P]) {
    push_varint(bytes, vector.len());
    bytes.extend_from_slice(memory_of(vector));
}

/// Vectors at least this large are sent from where they lie; smaller ones
/// are copied into the pieces between them (a piece costs a system call's
/// slot).
pub(super) const BORROW_FROM: usize = 64 << 10;

/// A run of vectors, large ones borrowed (see [`EncodedChunk`]).
pub(super) fn encode_parts<P: Raw>(vectors: &[Vec<P>]) -> EncodedChunk<'_> {
    let mut encoded = EncodedChunk::default();
    let mut small = Vec::new();
    push_varint(&mut small, vectors.len());
    for vector in vectors {
        let memory = memory_of(vector);
        if memory.len() < BORROW_FROM {
            push_vector(&mut small, vector);
        } else {
            push_varint(&mut small, vector.len());
            encoded.push_owned(std::mem::take(&mut small));
            encoded.push_borrowed(memory, std::mem::size_of::<P>());
        }
    }
    if !small.is_empty() {
        encoded.push_owned(small);
    }
    encoded
}

/// One vector on its own.
pub(super) fn encode_one<P: Raw>(vector: &[P]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(std::mem::size_of_val(vector) + 10);
    crate::sys::advise_huge_pages(bytes.as_ptr(), bytes.capacity());
    push_vector(&mut bytes, vector);
    bytes
}

/// One vector from the front of `bytes`, and the rest.
pub(super) fn take_vector<P: Raw>(bytes: &[u8]) -> Result<(Vec<P>, &[u8]), postcard::Error> {
    let (length, rest) = postcard::take_from_bytes::<usize>(bytes)?;
    let size = length
        .checked_mul(std::mem::size_of::<P>())
        .filter(|&size| size <= rest.len())
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    Ok((copy_vector(&rest[..size], length), &rest[size..]))
}

/// A vector of `length` elements whose memory is `memory` (exactly
/// `length` elements' worth), in fresh memory advised onto huge pages.
fn copy_vector<P: Raw>(memory: &[u8], length: usize) -> Vec<P> {
    assert_eq!(memory.len(), length * std::mem::size_of::<P>());
    let mut vector = Vec::<P>::with_capacity(length);
    crate::sys::advise_huge_pages(vector.as_ptr().cast::<u8>(), memory.len());
    // SAFETY: the vector has room for `length` elements, that is
    // `memory.len()` bytes; `P: Raw` accepts any bytes, so after the copy
    // its first `length` elements are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(
            memory.as_ptr(),
            vector.as_mut_ptr().cast::<u8>(),
            memory.len(),
        );
        vector.set_len(length);
    }
    vector
}

/// A run of vectors.
pub(super) fn decode<P: Raw>(bytes: &[u8]) -> Result<Vec<Vec<P>>, postcard::Error> {
    let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)?;
    let mut vectors = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let (vector, after) = take_vector::<P>(rest)?;
        vectors.push(vector);
        rest = after;
    }
    Ok(vectors)
}

/// Where [`decode_received`] takes one vector from.
enum Source {
    /// This range of the bytes, `length` elements.
    Bytes(std::ops::Range<usize>, usize),
    /// The next block.
    Block,
}

/// A run of `expected` vectors from `received`, each large one that a
/// backend read into a block of its own taken over as it is. `None`
/// (the blocks left untouched) if the run is not such a run: another
/// count, a block that is not one vector's memory, bytes left over.
pub(super) fn decode_received<P: Raw>(
    received: &mut Received<'_>,
    expected: usize,
) -> Option<Vec<Vec<P>>> {
    let bytes = received.bytes();
    let size = std::mem::size_of::<P>();
    let (count, rest) = postcard::take_from_bytes::<usize>(bytes).ok()?;
    if count != expected {
        return None;
    }
    let mut at = bytes.len() - rest.len();
    let mut blocks = received.blocks.iter();
    let mut next = blocks.next();
    let mut sources = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let (length, rest) = postcard::take_from_bytes::<usize>(&bytes[at..]).ok()?;
        at = bytes.len() - rest.len();
        let memory = length.checked_mul(size)?;
        match next {
            Some((place, block)) if *place == at => {
                let fits = block.bytes().len() == memory
                    && block.element_size() == size
                    && std::mem::align_of::<P>() == size;
                if !fits {
                    return None;
                }
                sources.push(Source::Block);
                next = blocks.next();
            }
            _ => {
                let end = at.checked_add(memory).filter(|&end| end <= bytes.len())?;
                sources.push(Source::Bytes(at..end, length));
                at = end;
            }
        }
    }
    if at != bytes.len() || next.is_some() {
        return None;
    }
    let mut blocks = std::mem::take(&mut received.blocks).into_iter();
    let vectors = sources
        .into_iter()
        .map(|source| match source {
            Source::Bytes(range, length) => copy_vector(&bytes[range], length),
            // SAFETY: `P: Raw` has no padding and takes any bits, and its
            // size and alignment are the block's element size (checked
            // above). There are as many blocks as `Block` sources.
            Source::Block => unsafe { blocks.next().expect("one block per source").1.into_vec() },
        })
        .collect();
    Some(vectors)
}

#[cfg(test)]
mod tests {
    use super::super::received::Block;
    use super::super::received::tests::block_of;
    use super::*;
    use proptest::prelude::*;

    fn same_bytes_as_postcard<P>(values: Vec<Vec<P>>)
    where
        P: Raw + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let pieces = encode_parts(&values);
        let bytes = pieces.into_bytes();
        assert_eq!(bytes, postcard::to_stdvec(&values).unwrap());
        let back: Vec<Vec<P>> = decode(&bytes).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in back.iter().zip(&values) {
            // Compare bits: NaN payloads must survive too.
            assert_eq!(memory_of(a), memory_of(b));
        }
        for value in &values {
            let one = encode_one(value);
            assert_eq!(one, postcard::to_stdvec(value).unwrap());
            let (decoded, rest) = take_vector::<P>(&one).unwrap();
            assert!(rest.is_empty());
            assert_eq!(memory_of(&decoded), memory_of(value));
        }
    }

    proptest! {
        #[test]
        fn raw_vectors_encode_exactly_as_postcard(
            bytes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..5),
            signed in prop::collection::vec(prop::collection::vec(any::<i8>(), 0..300), 0..5),
            floats in prop::collection::vec(prop::collection::vec(any::<f64>(), 0..300), 0..5),
            singles in prop::collection::vec(prop::collection::vec(any::<f32>(), 0..300), 0..5),
        ) {
            same_bytes_as_postcard(bytes);
            same_bytes_as_postcard(signed);
            same_bytes_as_postcard(floats);
            same_bytes_as_postcard(singles);
        }
    }

    /// What a backend that reads arrays into blocks receives for
    /// `encoded`: the other pieces joined, and each array in a block.
    fn as_received(encoded: &EncodedChunk<'_>) -> (Vec<u8>, Vec<(usize, Block)>) {
        let mut bytes = Vec::new();
        let mut blocks = Vec::new();
        for (piece, element) in encoded.arrays() {
            if element == 0 {
                bytes.extend_from_slice(piece);
            } else {
                blocks.push((bytes.len(), block_of(piece, element)));
            }
        }
        (bytes, blocks)
    }

    #[test]
    fn received_arrays_are_taken_over_without_a_copy() {
        let values = vec![
            vec![0.5f64; BORROW_FROM / 8],
            vec![1.5; 3],
            vec![],
            vec![2.5; BORROW_FROM / 8 + 1],
        ];
        let encoded = encode_parts(&values);
        let (bytes, blocks) = as_received(&encoded);
        assert_eq!(blocks.len(), 2);
        let addresses: Vec<usize> = blocks
            .iter()
            .map(|(_, block)| block.bytes().as_ptr() as usize)
            .collect();
        let mut received = Received::new(&bytes, blocks).unwrap();
        // Another count: not taken, the blocks left as they were.
        assert!(decode_received::<f64>(&mut received, 3).is_none());
        assert!(received.has_blocks());
        assert!(
            received.joined()
                == encoded
                    .arrays()
                    .flat_map(|(p, _)| p.to_vec())
                    .collect::<Vec<u8>>()
        );
        let decoded = decode_received::<f64>(&mut received, 4).expect("taken over");
        assert_eq!(decoded, values);
        assert_eq!(decoded[0].as_ptr() as usize, addresses[0]);
        assert_eq!(decoded[3].as_ptr() as usize, addresses[1]);
        assert!(!received.has_blocks());
    }

    #[test]
    fn received_blocks_that_do_not_fit_are_not_taken() {
        let values = vec![vec![7u8; BORROW_FROM], vec![8u8; 5]];
        let encoded = encode_parts(&values);
        let (bytes, blocks) = as_received(&encoded);
        let memory = blocks[0].1.bytes().to_vec();
        let place = blocks[0].0;
        // Elements of another size than the results'.
        let mut received = Received::new(&bytes, blocks).unwrap();
        assert!(decode_received::<f64>(&mut received, 2).is_none());
        assert!(received.has_blocks());
        // A block of another length, or at another place.
        let short = vec![(place, block_of(&memory[1..], 1))];
        assert!(decode_received::<u8>(&mut Received::new(&bytes, short).unwrap(), 2).is_none());
        let early = vec![(place - 1, block_of(&memory, 1))];
        assert!(decode_received::<u8>(&mut Received::new(&bytes, early).unwrap(), 2).is_none());
        // One block too many, after the run.
        let extra = vec![
            (place, block_of(&memory, 1)),
            (bytes.len(), block_of(b"x", 1)),
        ];
        assert!(decode_received::<u8>(&mut Received::new(&bytes, extra).unwrap(), 2).is_none());
        // The right one, as signed bytes too (same size and alignment).
        let right = vec![(place, block_of(&memory, 1))];
        let decoded = decode_received::<i8>(&mut Received::new(&bytes, right).unwrap(), 2).unwrap();
        assert_eq!(decoded, [vec![7i8; BORROW_FROM], vec![8; 5]]);
    }

    #[test]
    fn bad_bytes_are_errors() {
        // A length of 3 doubles with only 8 bytes behind it.
        assert!(take_vector::<f64>(&[3, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode::<f64>(&[]).is_err());
        // Lengths past 127 take two varint bytes.
        same_bytes_as_postcard(vec![vec![1.5f64; 1000], vec![]]);
    }

    #[test]
    fn large_vectors_are_sent_from_where_they_lie() {
        let values = vec![
            vec![7u8; 3],
            vec![1u8; BORROW_FROM],
            vec![2u8; 10],
            vec![3u8; BORROW_FROM + 1],
        ];
        let pieces = encode_parts(&values);
        let slices: Vec<&[u8]> = pieces.slices().collect();
        // Owned: count, the small vector and the next length; borrowed; owned:
        // the small vector and the next length; borrowed.
        assert_eq!(slices.len(), 4);
        assert_eq!(slices[1].as_ptr(), values[1].as_ptr());
        assert_eq!(slices[3].as_ptr(), values[3].as_ptr());
        same_bytes_as_postcard(values);
    }
}
