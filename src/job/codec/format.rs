//! The kinds of codec, as one trait, [`Format`], with an implementation
//! per kind: [`Plain`] postcard, [`Array`] (one-copy vectors of bytes and
//! floats, byte-for-byte postcard), [`Local`] (values that never leave the
//! process) here, and per-item results with an index in `results.rs`.
//!
//! Every format writes a run as postcard writes a `Vec<V>` (its length,
//! then each value in turn), so formats with the same values agree on the
//! bytes.

use super::array::{self, Raw};
use super::pieces::EncodedChunk;
use super::received::Received;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// How one kind of codec writes and reads runs of `V`.
pub(super) trait Format<V> {
    /// True if a run ends with an index of its items (see `varint.rs`):
    /// a run written value by value then gets one too.
    const INDEXED: bool = false;

    /// A run of values.
    fn encode(values: &[V]) -> Result<Vec<u8>, postcard::Error>;

    /// One value on its own (a run is its length, then these).
    fn encode_one(value: &V) -> Result<Vec<u8>, postcard::Error>;

    /// A whole run.
    fn decode(bytes: &[u8]) -> Result<Vec<V>, postcard::Error>;

    /// One value from the front of `bytes`, and the rest.
    fn decode_one(bytes: &[u8]) -> Result<(V, &[u8]), postcard::Error>;

    /// The run in pieces that borrow large values, where the format can
    /// do that and cannot fail.
    fn encode_parts(values: &[V]) -> Option<EncodedChunk<'_>> {
        let _ = values;
        None
    }

    /// A run of `expected` values from bytes received with blocks in
    /// them (see `received.rs`), taking the blocks over. `None` (the
    /// blocks untouched) where the format cannot, or the run is not one
    /// it can take so: the caller decodes the bytes joined.
    fn decode_received(received: &mut Received<'_>, expected: usize) -> Option<Vec<V>> {
        let _ = (received, expected);
        None
    }

    /// For an indexed run of items `first..` of `total`: every item that
    /// decodes, and each one that does not as its own error. `None` where
    /// the format has no per-item form.
    fn decode_items(
        bytes: &[u8],
        items: (usize, usize),
    ) -> Option<Result<Vec<V>, postcard::Error>> {
        let _ = (bytes, items);
        None
    }
}

/// Values through postcard, as they serialize.
pub(super) struct Plain;

impl<V: Serialize + DeserializeOwned> Format<V> for Plain {
    fn encode(values: &[V]) -> Result<Vec<u8>, postcard::Error> {
        super::flavor::to_vec(values, values.len().saturating_mul(size_of::<V>()) + 10)
    }

    fn encode_one(value: &V) -> Result<Vec<u8>, postcard::Error> {
        super::flavor::to_vec(value, size_of::<V>())
    }

    fn decode(bytes: &[u8]) -> Result<Vec<V>, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    fn decode_one(bytes: &[u8]) -> Result<(V, &[u8]), postcard::Error> {
        postcard::take_from_bytes(bytes)
    }
}

/// Values that never leave the process (a local pool's, which has no
/// serde bounds): every use is an error saying so.
pub(super) struct Local;

impl<V> Format<V> for Local {
    fn encode(_: &[V]) -> Result<Vec<u8>, postcard::Error> {
        Err(postcard::Error::SerdeSerCustom)
    }

    fn encode_one(_: &V) -> Result<Vec<u8>, postcard::Error> {
        Err(postcard::Error::SerdeSerCustom)
    }

    fn decode(_: &[u8]) -> Result<Vec<V>, postcard::Error> {
        Err(postcard::Error::SerdeDeCustom)
    }

    fn decode_one(_: &[u8]) -> Result<(V, &[u8]), postcard::Error> {
        Err(postcard::Error::SerdeDeCustom)
    }
}

/// `Vec<P>` values in one copy (see `array.rs`). Named by the codec only
/// when `V` is `Vec<P>`, which [`Array::fits`] checks by type id.
pub(super) struct Array<P>(PhantomData<P>);

impl<P: Raw> Array<P> {
    /// True if `V` is `Vec<P>` on a little-endian machine: the only case
    /// in which [`Array<P>`] may be used as the format of `V`.
    pub(super) fn fits<V>() -> bool {
        cfg!(target_endian = "little") && typeid::of::<V>() == typeid::of::<Vec<P>>()
    }

    /// `values` as the `Vec<P>`s they are.
    ///
    /// # Safety
    ///
    /// `V` is `Vec<P>` ([`Array::fits`]).
    unsafe fn as_vectors<V>(values: &[V]) -> &[Vec<P>] {
        // SAFETY: same type, so same layout; by the caller's contract.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<Vec<P>>(), values.len()) }
    }

    /// `vectors` as the `V`s they are.
    ///
    /// # Safety
    ///
    /// `V` is `Vec<P>` ([`Array::fits`]).
    unsafe fn into_values<V>(vectors: Vec<Vec<P>>) -> Vec<V> {
        let mut vectors = std::mem::ManuallyDrop::new(vectors);
        let (pointer, length, capacity) = (vectors.as_mut_ptr(), vectors.len(), vectors.capacity());
        // SAFETY: same type, so same layout and allocation; the original
        // is not dropped.
        unsafe { Vec::from_raw_parts(pointer.cast::<V>(), length, capacity) }
    }
}

// Every method below may assume `V` is `Vec<P>`: the codec makes an
// `Array<P>` codec of `V` only after `Array::<P>::fits::<V>()`.
impl<V, P: Raw> Format<V> for Array<P> {
    fn encode(values: &[V]) -> Result<Vec<u8>, postcard::Error> {
        Ok(<Self as Format<V>>::encode_parts(values)
            .map(EncodedChunk::into_bytes)
            .unwrap_or_default())
    }

    fn encode_one(value: &V) -> Result<Vec<u8>, postcard::Error> {
        // SAFETY: V is Vec<P> (see above).
        let vector = &unsafe { Self::as_vectors(std::slice::from_ref(value)) }[0];
        Ok(array::encode_one(vector))
    }

    fn decode(bytes: &[u8]) -> Result<Vec<V>, postcard::Error> {
        let vectors = array::decode::<P>(bytes)?;
        // SAFETY: V is Vec<P> (see above).
        Ok(unsafe { Self::into_values(vectors) })
    }

    fn decode_one(bytes: &[u8]) -> Result<(V, &[u8]), postcard::Error> {
        let (vector, rest) = array::take_vector::<P>(bytes)?;
        // SAFETY: V is Vec<P> (see above).
        let mut values = unsafe { Self::into_values::<V>(vec![vector]) };
        let value = values
            .pop()
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        Ok((value, rest))
    }

    fn encode_parts(values: &[V]) -> Option<EncodedChunk<'_>> {
        // SAFETY: V is Vec<P> (see above).
        Some(array::encode_parts(unsafe { Self::as_vectors(values) }))
    }

    fn decode_received(received: &mut Received<'_>, expected: usize) -> Option<Vec<V>> {
        let vectors = array::decode_received::<P>(received, expected)?;
        // SAFETY: V is Vec<P> (see above).
        Some(unsafe { Self::into_values(vectors) })
    }
}
