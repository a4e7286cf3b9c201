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
            encoded.push_borrowed(memory);
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
    let mut vector = Vec::<P>::with_capacity(length);
    crate::sys::advise_huge_pages(vector.as_ptr().cast::<u8>(), size);
    // SAFETY: the vector has room for `length` elements, that is `size`
    // bytes; `P: Raw` accepts any bytes, so after the copy its first
    // `length` elements are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(rest.as_ptr(), vector.as_mut_ptr().cast::<u8>(), size);
        vector.set_len(length);
    }
    Ok((vector, &rest[size..]))
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

#[cfg(test)]
mod tests {
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
