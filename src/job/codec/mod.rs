//! How a job's values travel between processes: postcard, with the
//! format chosen when the job is made, so the job types themselves carry
//! no serde bounds.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Codec`]: a chosen format, and encoding and decoding that name the item whose value failed |
//! | `format.rs` | the kinds of codec, one trait ([`Format`](format::Format)): plain postcard, one-copy arrays, local-only |
//! | `results.rs` | per-item results (`map_results`, streams) with an index, errors in their wire form |
//! | `numbers.rs` | runs of plain numbers (`u64`, `f64`, ...) in one loop, byte-for-byte postcard |
//! | `array.rs` | the one-copy bytes of `Vec<u8>`, `Vec<i8>`, `Vec<f32>`, `Vec<f64>` (a leaf) |
//! | `pieces.rs` | [`EncodedChunk`]: encoded results in pieces, for one vectored write |
//! | `varint.rs` | postcard's varint and the per-item index, written by hand |
//! | `flavor.rs` | postcard's bytes without a library call per primitive (a leaf) |
//!
//! A value's `Serialize` or `Deserialize` is user code: it may return an
//! error or panic. [`Codec::encode_checked`] and [`Codec::decode_checked`]
//! run it as task code and name the item whose value failed; nothing
//! unwinds out of them.

mod array;
pub(crate) mod flavor;
mod format;
mod numbers;
mod pieces;
mod received;
mod results;
mod varint;

pub(crate) use pieces::EncodedChunk;
pub(crate) use received::Received;
#[cfg(unix)]
pub(crate) use received::{Block, join_blocks};

use super::unwind;
use crate::error::{Error, Step};
use format::{Array, Format, Local, Plain};
use numbers::Numbers;
use results::Results;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes and decodes runs of `V` in the [`Format`] chosen when it was
/// made. It holds that format's functions, monomorphized for `V` when the
/// bounds were known, so code without serde bounds can call them.
pub struct Codec<V> {
    encode: fn(&[V]) -> Result<Vec<u8>, postcard::Error>,
    encode_one: fn(&V) -> Result<Vec<u8>, postcard::Error>,
    decode: fn(&[u8]) -> Result<Vec<V>, postcard::Error>,
    decode_one: DecodeOne<V>,
    encode_parts: for<'a> fn(&'a [V]) -> Option<EncodedChunk<'a>>,
    decode_items: DecodeItems<V>,
    decode_received: DecodeReceived<V>,
    indexed: bool,
}

/// [`Format::decode_received`], as a function pointer.
type DecodeReceived<V> = fn(&mut Received<'_>, usize) -> Option<Vec<V>>;

/// [`Format::decode_one`], as a function pointer.
type DecodeOne<V> = fn(&[u8]) -> Result<(V, &[u8]), postcard::Error>;

/// [`Format::decode_items`], as a function pointer.
type DecodeItems<V> = fn(&[u8], (usize, usize)) -> Option<Result<Vec<V>, postcard::Error>>;

impl<V> std::fmt::Debug for Codec<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("indexed", &self.indexed)
            .finish_non_exhaustive()
    }
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Codec<V> {}

impl<V> Codec<V> {
    /// The codec of format `F`.
    fn of<F: Format<V>>() -> Codec<V> {
        Codec {
            encode: F::encode,
            encode_one: F::encode_one,
            decode: F::decode,
            decode_one: F::decode_one,
            encode_parts: F::encode_parts,
            decode_items: F::decode_items,
            decode_received: F::decode_received,
            indexed: F::INDEXED,
        }
    }

    /// For values that never leave the process (a local pool's, which has
    /// no serde bounds): every use is an error saying so.
    pub(crate) fn local() -> Codec<V> {
        Codec::of::<Local>()
    }
}

impl<V: Serialize + DeserializeOwned> Codec<V> {
    /// Plain serde values; arrays of bytes and floats by the one-copy
    /// format, and plain numbers by the number format, which write the
    /// same bytes.
    pub(crate) fn values() -> Codec<V> {
        macro_rules! array_if_it_fits {
            ($($element:ty),*) => {$(
                if Array::<$element>::fits::<V>() {
                    // `Array<P>` may be the format of `V` only when `V` is
                    // `Vec<P>`, which `fits` just checked.
                    return Codec::of::<Array<$element>>();
                }
            )*};
        }
        array_if_it_fits!(u8, i8, f32, f64);
        macro_rules! numbers_if_it_fits {
            ($($number:ty),*) => {$(
                if Numbers::<$number>::fits::<V>() {
                    // `Numbers<N>` may be the format of `V` only when `V`
                    // is `N`, which `fits` just checked.
                    return Codec::of::<Numbers<$number>>();
                }
            )*};
        }
        numbers_if_it_fits!(u64, f64, u32, i64, i32, f32, u8, i8, u16, i16, u128, i128);
        Codec::of::<Plain>()
    }
}

impl<R: Serialize + DeserializeOwned> Codec<Result<R, Error>> {
    /// Per-item results (`map_results`, streams); see `results.rs`.
    pub(crate) fn results() -> Codec<Result<R, Error>> {
        Codec::of::<Results>()
    }
}

impl<V> Codec<V> {
    /// [`encode_checked`](Codec::encode_checked), for sending: large
    /// arrays of bytes and floats are not copied.
    pub(crate) fn encode_parts_checked<'a>(
        &self,
        values: &'a [V],
        items: (usize, usize),
        replace: Option<fn(Error) -> V>,
    ) -> Result<EncodedChunk<'a>, Error> {
        match (self.encode_parts)(values) {
            Some(pieces) => Ok(pieces),
            None => self
                .encode_checked(values, items, replace)
                .map(EncodedChunk::from),
        }
    }

    /// Encodes `values`, the values of items `first..` of `total`.
    ///
    /// A value whose `Serialize` fails or panics is named: `Err` with that
    /// item's error; or, with `replace` (a job that keeps going), the value
    /// is replaced by `replace(error)` and the rest still travel.
    pub(crate) fn encode_checked(
        &self,
        values: &[V],
        (first, total): (usize, usize),
        replace: Option<fn(Error) -> V>,
    ) -> Result<Vec<u8>, Error> {
        if let Ok(Ok(bytes)) = unwind::catch_task(|| (self.encode)(values)) {
            return Ok(bytes);
        }
        // Find the values that fail, one by one.
        let mut bytes = postcard::to_stdvec(&values.len())
            .map_err(|e| Error::encoding(first, total, Step::Encoded, e))?;
        let mut lengths = Vec::with_capacity(values.len());
        for (offset, value) in values.iter().enumerate() {
            let index = first + offset;
            let error = match unwind::catch_task(|| (self.encode_one)(value)) {
                Ok(Ok(encoded)) => {
                    lengths.push(encoded.len());
                    bytes.extend_from_slice(&encoded);
                    continue;
                }
                Ok(Err(error)) => Error::encoding(index, total, Step::Encoded, error),
                Err(panicked) => unwind::panic_error(panicked, index, total),
            };
            let Some(replace) = replace else {
                return Err(error);
            };
            let stand_in = replace(error.clone());
            match unwind::catch_task(|| (self.encode_one)(&stand_in)) {
                Ok(Ok(encoded)) => {
                    lengths.push(encoded.len());
                    bytes.extend_from_slice(&encoded);
                }
                _ => return Err(error),
            }
        }
        if self.indexed {
            varint::push_index(&mut bytes, lengths.into_iter());
        }
        Ok(bytes)
    }

    /// Decodes the values of items `first..` of `total`; there must be
    /// `expected` of them. A value whose `Deserialize` fails or panics is
    /// named by the error.
    pub(crate) fn decode_checked(
        &self,
        bytes: &[u8],
        (first, total): (usize, usize),
        expected: usize,
    ) -> Result<Vec<V>, Error> {
        // A run states its length first: one that is not the chunk's is
        // not the chunk's results (garbage, or a cut stream), whatever
        // follows.
        match postcard::take_from_bytes::<usize>(bytes) {
            Ok((count, _)) if count == expected => {}
            Ok((count, _)) => {
                return Err(Error::encoding(
                    first,
                    total,
                    Step::Decoded,
                    format!("{count} results where {expected} were expected"),
                ));
            }
            Err(error) => return Err(Error::encoding(first, total, Step::Decoded, error)),
        }
        match self.decode_prefix(bytes, (first, total)) {
            Ok(values) if values.len() == expected => Ok(values),
            Ok(values) => Err(Error::encoding(
                first,
                total,
                Step::Decoded,
                format!("{} results where {expected} were expected", values.len()),
            )),
            Err((_, error)) => Err(error),
        }
    }

    /// [`decode_checked`](Codec::decode_checked) of bytes received with
    /// blocks in them: the format takes the blocks over where it can,
    /// else it decodes the bytes joined.
    pub(crate) fn decode_received_checked(
        &self,
        mut received: Received<'_>,
        (first, total): (usize, usize),
        expected: usize,
    ) -> Result<Vec<V>, Error> {
        if !received.has_blocks() {
            return self.decode_checked(received.bytes(), (first, total), expected);
        }
        if let Some(values) = (self.decode_received)(&mut received, expected) {
            return Ok(values);
        }
        self.decode_checked(&received.joined(), (first, total), expected)
    }

    /// Decodes as many values as it can: all of them, or those before the
    /// first that fails, with that item's error.
    pub(crate) fn decode_prefix(
        &self,
        bytes: &[u8],
        (first, total): (usize, usize),
    ) -> Result<Vec<V>, (Vec<V>, Error)> {
        if let Some(decoded) = (self.decode_items)(bytes, (first, total)) {
            return decoded
                .map_err(|e| (Vec::new(), Error::encoding(first, total, Step::Decoded, e)));
        }
        if let Ok(Ok(values)) = unwind::catch_task(|| (self.decode)(bytes)) {
            return Ok(values);
        }
        let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)
            .map_err(|e| (Vec::new(), Error::encoding(first, total, Step::Decoded, e)))?;
        let mut values = Vec::with_capacity(count.min(bytes.len()));
        for offset in 0..count {
            let index = first + offset;
            match unwind::catch_task(|| (self.decode_one)(rest)) {
                Ok(Ok((value, after))) => {
                    values.push(value);
                    rest = after;
                }
                Ok(Err(error)) => {
                    return Err((values, Error::encoding(index, total, Step::Decoded, error)));
                }
                Err(panicked) => return Err((values, unwind::panic_error(panicked, index, total))),
            }
        }
        // Every value decoded one by one, yet not as a whole: the run
        // itself is malformed.
        Err((
            values,
            Error::encoding(
                first,
                total,
                Step::Decoded,
                "the results of the chunk are malformed",
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Deserializer, Serializer};

    proptest! {
        /// Whatever bytes come in place of a chunk's results, decoding
        /// gives values or an error naming an item of the chunk: it never
        /// panics, and a huge count or length allocates nothing of that
        /// size.
        #[test]
        fn decoding_garbage_is_an_error_never_a_panic(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                // A count of 2^60 items, or an item of 2^60 bytes.
                proptest::collection::vec(any::<u8>(), 0..50).prop_map(|mut tail| {
                    let mut bytes = postcard::to_stdvec(&(1usize << 60)).unwrap();
                    bytes.append(&mut tail);
                    bytes
                }),
                proptest::collection::vec(any::<u8>(), 0..50).prop_map(|mut tail| {
                    let mut bytes = postcard::to_stdvec(&1usize).unwrap();
                    bytes.extend(postcard::to_stdvec(&(1usize << 60)).unwrap());
                    bytes.append(&mut tail);
                    bytes
                }),
            ],
            expected in 0..5usize,
        ) {
            let in_chunk = |error: &Error| error.task_index().is_some_and(|i| (10..10 + expected.max(1)).contains(&i));
            if let Err(error) = Codec::<u64>::values().decode_checked(&bytes, (10, 20), expected) {
                prop_assert!(in_chunk(&error), "{}", error);
            }
            if let Err(error) = Codec::<Vec<f64>>::values().decode_checked(&bytes, (10, 20), expected) {
                prop_assert!(in_chunk(&error), "{}", error);
            }
            if let Err(error) = Codec::<String>::values().decode_checked(&bytes, (10, 20), expected) {
                prop_assert!(in_chunk(&error), "{}", error);
            }
            match Codec::<Result<u64, Error>>::results().decode_checked(&bytes, (10, 20), expected) {
                Ok(values) => {
                    for value in values.iter().filter_map(|value| value.as_ref().err()) {
                        // Errors decoded from the bytes may name anything;
                        // those made by decoding name an item of the chunk.
                        if value.is_encoding() && value.to_string().contains("could not be decoded") {
                            prop_assert!(in_chunk(value), "{}", value);
                        }
                    }
                }
                Err(error) => prop_assert!(in_chunk(&error), "{}", error),
            }
        }

        /// Items of any size keep their frames: lengths of one byte and of
        /// several (the item's bytes moved to make room).
        #[test]
        fn framed_items_of_every_size_round_trip(
            lengths in proptest::collection::vec(prop_oneof![0..130usize, 16_000..17_000usize], 0..6),
        ) {
            let results: Vec<Result<String, Error>> =
                lengths.iter().map(|&n| Ok("x".repeat(n))).collect();
            let codec = Codec::<Result<String, Error>>::results();
            let bytes = codec.encode_checked(&results, (0, 9), None).unwrap();
            let back = codec.decode_checked(&bytes, (0, 9), results.len()).unwrap();
            prop_assert_eq!(back.len(), results.len());
            for (before, after) in results.iter().zip(&back) {
                prop_assert_eq!(before.as_ref().ok(), after.as_ref().ok());
            }
        }

        /// Per-item results survive a round trip, and one that fails to
        /// decode takes no other item with it.
        #[test]
        fn framed_results_round_trip_item_by_item(
            values in proptest::collection::vec(prop_oneof![any::<u32>().prop_map(Ok), Just(Err(()))], 0..20),
        ) {
            let results: Vec<Result<Touchy, Error>> = values
                .iter()
                .enumerate()
                .map(|(i, value)| match value {
                    Ok(v) => Ok(Touchy(if *v == 3 || *v == 4 { 6 } else { *v })),
                    Err(()) => Err(Error::panic(i, 99, "x".into(), None)),
                })
                .collect();
            let codec = Codec::<Result<Touchy, Error>>::results();
            let bytes = codec.encode_checked(&results, (0, 99), Some(Err)).unwrap();
            let back = codec.decode_checked(&bytes, (0, 99), results.len()).unwrap();
            prop_assert_eq!(back.len(), results.len());
            for (index, (before, after)) in results.iter().zip(&back).enumerate() {
                match (before, after) {
                    (Ok(Touchy(5)), Err(error)) => prop_assert_eq!(error.task_index(), Some(index)),
                    (Ok(value), Ok(back)) => prop_assert_eq!(value, back),
                    (Err(error), Err(back)) => prop_assert_eq!(error.to_string(), back.to_string()),
                    _ => prop_assert!(false, "item {index} changed: {before:?} -> {after:?}"),
                }
            }
        }
    }

    /// 3 cannot be encoded, 4 panics when encoded, 5 panics when decoded.
    #[derive(Debug, PartialEq)]
    struct Touchy(u32);

    impl Serialize for Touchy {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                3 => Err(serde::ser::Error::custom("three")),
                4 => panic!("four will not be encoded"),
                n => serializer.serialize_u32(n),
            }
        }
    }

    impl<'de> Deserialize<'de> for Touchy {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Touchy, D::Error> {
            match u32::deserialize(deserializer)? {
                5 => panic!("five will not be decoded"),
                n => Ok(Touchy(n)),
            }
        }
    }

    #[test]
    fn received_blocks_decode_as_the_bytes_joined_would() {
        use received::tests::block_of;
        // Vectors of u16 take the plain format, which joins the bytes.
        let values = vec![vec![3u16; 40_000], vec![4; 2]];
        let bytes = postcard::to_stdvec(&values).unwrap();
        let cut = |at: usize| (bytes[..at].to_vec(), vec![(at, block_of(&bytes[at..], 1))]);
        let (head, blocks) = cut(3);
        let plain = Codec::<Vec<u16>>::values();
        let received = Received::new(&head, blocks).unwrap();
        assert_eq!(
            plain.decode_received_checked(received, (0, 2), 2).unwrap(),
            values
        );
        // Vectors of f64 whose block is not a vector's memory: joined too.
        let doubles = vec![vec![0.25f64; 9_000]];
        let bytes = postcard::to_stdvec(&doubles).unwrap();
        let codec = Codec::<Vec<f64>>::values();
        let odd = Received::new(&bytes[..5], vec![(5, block_of(&bytes[5..], 1))]).unwrap();
        assert_eq!(
            codec.decode_received_checked(odd, (0, 1), 1).unwrap(),
            doubles
        );
        // And the wrong count is the error it is for the bytes.
        let received = Received::new(&bytes[..5], vec![(5, block_of(&bytes[5..], 1))]).unwrap();
        let error = codec
            .decode_received_checked(received, (4, 10), 2)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("1 results where 2 were expected"),
            "{error}"
        );
    }

    #[test]
    fn only_raw_vectors_take_the_array_format() {
        fn fast<V>(codec: Codec<V>) -> bool {
            (codec.encode_parts)(&[]).is_some()
        }
        assert!(fast(Codec::<Vec<f64>>::values()));
        assert!(fast(Codec::<Vec<u8>>::values()));
        assert!(!fast(Codec::<Vec<u64>>::values()));
        assert!(!fast(Codec::<Vec<Vec<f64>>>::values()));
        assert!(!fast(Codec::<u8>::values()));
        let codec = Codec::<Vec<f32>>::values();
        let values = vec![vec![1.5f32, f32::NAN], vec![]];
        let bytes = codec.encode_checked(&values, (0, 2), None).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&values).unwrap());
        let back = codec.decode_checked(&bytes, (0, 2), 2).unwrap();
        assert_eq!(back[0][0], 1.5);
        assert!(back[0][1].is_nan() && back[1].is_empty());
    }

    #[test]
    fn values_that_fail_to_encode_are_named() {
        let codec = Codec::<Touchy>::values();
        let fine = [Touchy(1), Touchy(2)];
        let bytes = codec.encode_checked(&fine, (10, 20), None).unwrap();
        assert_eq!(codec.decode_checked(&bytes, (10, 20), 2).unwrap(), fine);
        let error = codec
            .encode_checked(&[Touchy(1), Touchy(3)], (10, 20), None)
            .unwrap_err();
        assert_eq!(error.task_index(), Some(11));
        assert!(
            error.to_string().contains("could not be encoded"),
            "{error}"
        );
        let error = codec
            .encode_checked(&[Touchy(4), Touchy(1)], (10, 20), None)
            .unwrap_err();
        assert!(error.is_panic(), "{error}");
        assert_eq!(error.task_index(), Some(10));
        assert_eq!(error.panic_message(), Some("four will not be encoded"));
    }

    #[test]
    fn a_job_that_keeps_going_replaces_only_the_failed_value() {
        let codec = Codec::<Result<Touchy, Error>>::results();
        let values = [Ok(Touchy(1)), Ok(Touchy(3)), Ok(Touchy(4)), Ok(Touchy(2))];
        let bytes = codec.encode_checked(&values, (0, 4), Some(Err)).unwrap();
        let decoded = codec.decode_checked(&bytes, (0, 4), 4).unwrap();
        assert_eq!(decoded[0].as_ref().ok(), Some(&Touchy(1)));
        assert!(
            decoded[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("could not be encoded")
        );
        assert!(decoded[2].as_ref().unwrap_err().is_panic());
        assert_eq!(decoded[3].as_ref().ok(), Some(&Touchy(2)));
    }

    #[test]
    fn values_that_fail_to_decode_are_named_and_the_ones_before_kept() {
        let codec = Codec::<u32>::values();
        let bytes = codec.encode_checked(&[1, 5, 2], (7, 10), None).unwrap();
        let touchy = Codec::<Touchy>::values();
        let (kept, error) = touchy.decode_prefix(&bytes, (7, 10)).unwrap_err();
        assert_eq!(kept, [Touchy(1)]);
        assert!(error.is_panic(), "{error}");
        assert_eq!(error.task_index(), Some(8));
        let error = touchy.decode_checked(&bytes, (7, 10), 3).unwrap_err();
        assert_eq!(error.panic_message(), Some("five will not be decoded"));
        let error = codec.decode_checked(&bytes, (7, 10), 4).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("3 results where 4 were expected"),
            "{error}"
        );
    }
}
