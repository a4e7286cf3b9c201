//! The one-copy array codec: a fast path of the codec for the results
//! scientists return most:
//! arrays of bytes and floats (`Vec<u8>`, `Vec<i8>`, `Vec<f32>`,
//! `Vec<f64>`).
//!
//! postcard writes such a vector as its length (a varint) followed by its
//! elements as little-endian bytes, one `serialize_element` call at a time,
//! which runs at a few hundred MB/s. On a little-endian machine those bytes
//! are exactly the vector's memory, so this module writes and reads them
//! with one copy, producing and accepting byte-for-byte the postcard
//! encoding: the two paths mix freely, and results stay bit-identical.
//! Which path a codec takes is decided once, when it is made, by comparing
//! type ids (the `typeid` crate, which also works for types that are not
//! `'static`).

use super::codec::{Codec, EncodedChunk};

/// Element types whose postcard encoding is their little-endian memory:
/// single bytes and IEEE floats (wider integers are varints in postcard).
///
/// # Safety
///
/// Every bit pattern is a valid value, and the type has no padding.
unsafe trait Raw: Copy + 'static {}

// SAFETY: primitive types with no padding and no invalid bit patterns.
unsafe impl Raw for u8 {}
// SAFETY: as above.
unsafe impl Raw for i8 {}
// SAFETY: as above.
unsafe impl Raw for f32 {}
// SAFETY: as above.
unsafe impl Raw for f64 {}

/// The fast codec for `V` if `V` is `Vec<P>` for a [`Raw`] `P` on a
/// little-endian machine; `None` otherwise.
pub(super) fn codec<V>() -> Option<Codec<V>> {
    if cfg!(target_endian = "big") {
        return None;
    }
    macro_rules! try_each {
        ($($element:ty),*) => {$(
            if typeid::of::<V>() == typeid::of::<Vec<$element>>() {
                return Some(Codec::from_fns(
                    encode::<V, $element>,
                    encode_one::<V, $element>,
                    decode::<V, $element>,
                    decode_one::<V, $element>,
                    encode_parts::<V, $element>,
                ));
            }
        )*};
    }
    try_each!(u8, i8, f32, f64);
    None
}

/// `values` as the `Vec<P>`s they are.
///
/// # Safety
///
/// `V` is `Vec<P>` (checked by [`codec`], the only place these functions
/// are named).
unsafe fn as_vectors<V, P>(values: &[V]) -> &[Vec<P>] {
    // SAFETY: same type, so same layout; by the caller's contract.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<Vec<P>>(), values.len()) }
}

/// Appends `count` as postcard's varint.
fn push_length(bytes: &mut Vec<u8>, mut count: usize) {
    loop {
        let low = (count & 0x7f) as u8;
        count >>= 7;
        if count == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

/// The memory of `vector`, as bytes.
fn memory_of<P: Raw>(vector: &[P]) -> &[u8] {
    // SAFETY: `P: Raw` has no padding, so its memory is initialised bytes.
    unsafe {
        std::slice::from_raw_parts(vector.as_ptr().cast::<u8>(), std::mem::size_of_val(vector))
    }
}

/// Appends one vector: its length, then its memory.
fn push_vector<P: Raw>(bytes: &mut Vec<u8>, vector: &[P]) {
    push_length(bytes, vector.len());
    bytes.extend_from_slice(memory_of(vector));
}

fn encode<V, P: Raw>(values: &[V]) -> Result<Vec<u8>, postcard::Error> {
    Ok(encode_parts::<V, P>(values).into_bytes())
}

/// Vectors at least this large are sent from where they lie; smaller ones
/// are copied into the pieces between them (a piece costs a system call's
/// slot).
const BORROW_FROM: usize = 64 << 10;

fn encode_parts<V, P: Raw>(values: &[V]) -> EncodedChunk<'_> {
    // SAFETY: `codec` names this function only for V = Vec<P>.
    let vectors = unsafe { as_vectors::<V, P>(values) };
    let mut encoded = EncodedChunk::default();
    let mut small = Vec::new();
    push_length(&mut small, vectors.len());
    for vector in vectors {
        let memory = memory_of(vector);
        if memory.len() < BORROW_FROM {
            push_vector(&mut small, vector);
        } else {
            push_length(&mut small, vector.len());
            encoded.push_owned(std::mem::take(&mut small));
            encoded.push_borrowed(memory);
        }
    }
    if !small.is_empty() {
        encoded.push_owned(small);
    }
    encoded
}

fn encode_one<V, P: Raw>(value: &V) -> Result<Vec<u8>, postcard::Error> {
    // SAFETY: `codec` names this function only for V = Vec<P>.
    let vector = &unsafe { as_vectors::<V, P>(std::slice::from_ref(value)) }[0];
    let mut bytes = Vec::with_capacity(std::mem::size_of_val(&vector[..]) + 10);
    crate::sys::advise_huge_pages(bytes.as_ptr(), bytes.capacity());
    push_vector(&mut bytes, vector);
    Ok(bytes)
}

/// One vector from the front of `bytes`, and the rest.
fn take_vector<P: Raw>(bytes: &[u8]) -> Result<(Vec<P>, &[u8]), postcard::Error> {
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

/// `vectors` as the `V`s they are.
///
/// # Safety
///
/// `V` is `Vec<P>`.
unsafe fn into_values<V, P>(vectors: Vec<Vec<P>>) -> Vec<V> {
    let mut vectors = std::mem::ManuallyDrop::new(vectors);
    let (pointer, length, capacity) = (vectors.as_mut_ptr(), vectors.len(), vectors.capacity());
    // SAFETY: same type, so same layout and allocation; the original is
    // not dropped.
    unsafe { Vec::from_raw_parts(pointer.cast::<V>(), length, capacity) }
}

fn decode_one<V, P: Raw>(bytes: &[u8]) -> Result<(V, &[u8]), postcard::Error> {
    let (vector, rest) = take_vector::<P>(bytes)?;
    // SAFETY: `codec` names this function only for V = Vec<P>.
    let mut values = unsafe { into_values::<V, P>(vec![vector]) };
    Ok((values.pop().expect("one value"), rest))
}

fn decode<V, P: Raw>(bytes: &[u8]) -> Result<Vec<V>, postcard::Error> {
    let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)?;
    let mut vectors = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let (vector, after) = take_vector::<P>(rest)?;
        vectors.push(vector);
        rest = after;
    }
    // SAFETY: `codec` names this function only for V = Vec<P>.
    Ok(unsafe { into_values::<V, P>(vectors) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_bytes_as_postcard<P>(values: Vec<Vec<P>>)
    where
        P: Raw + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let fast = codec::<Vec<P>>().expect("a raw element type");
        let bytes = (fast.encode_fn())(&values).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&values).unwrap());
        let pieces = (fast.encode_parts_fn().expect("raw types have pieces"))(&values);
        assert_eq!(pieces.len(), bytes.len());
        assert_eq!(pieces.into_bytes(), bytes);
        let back: Vec<Vec<P>> = (fast.decode_fn())(&bytes).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in back.iter().zip(&values) {
            // Compare bits: NaN payloads must survive too.
            let bits = |v: &[P]| {
                // SAFETY: Raw types are plain bytes.
                unsafe {
                    std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
                }
                .to_vec()
            };
            assert_eq!(bits(a), bits(b));
        }
        for value in &values {
            let one = (fast.encode_one_fn())(value).unwrap();
            assert_eq!(one, postcard::to_stdvec(value).unwrap());
            let (decoded, rest) = (fast.decode_one_fn())(&one).unwrap();
            assert!(rest.is_empty());
            assert_eq!(decoded.len(), value.len());
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
    fn only_raw_vectors_take_the_fast_path_and_bad_bytes_are_errors() {
        assert!(codec::<Vec<u64>>().is_none());
        assert!(codec::<Vec<Vec<f64>>>().is_none());
        assert!(codec::<u8>().is_none());
        let fast = codec::<Vec<f64>>().unwrap();
        // A length of 3 doubles with only 8 bytes behind it.
        assert!((fast.decode_one_fn())(&[3, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!((fast.decode_fn())(&[]).is_err());
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
        let fast = codec::<Vec<u8>>().unwrap();
        let pieces = (fast.encode_parts_fn().unwrap())(&values);
        let slices: Vec<&[u8]> = pieces.slices().collect();
        // Owned: count, the small vector and the next length; borrowed; owned:
        // the small vector and the next length; borrowed.
        assert_eq!(slices.len(), 4);
        assert_eq!(slices[1].as_ptr(), values[1].as_ptr());
        assert_eq!(slices[3].as_ptr(), values[3].as_ptr());
        same_bytes_as_postcard(values);
    }
}
