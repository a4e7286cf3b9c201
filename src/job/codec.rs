//! How a job's values travel between processes: postcard, chosen when the
//! job is made, so the job types themselves carry no serde bounds.
//!
//! Task errors travel in their crate-private wire form
//! ([`ErrorWire`](crate::error::ErrorWire)), which is why results that hold
//! an [`Error`] (`map_results`'s and a stream's) have a codec of their own.
//!
//! A value's `Serialize` or `Deserialize` is user code: it may return an
//! error or panic. [`Codec::encode_checked`] and [`Codec::decode_checked`]
//! run it as task code and name the item whose value failed; nothing
//! unwinds out of them.

use super::unwind;
use crate::error::{Error, ErrorWire, ErrorWireRef};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes one value from the front of some bytes: the value and the rest.
type DecodeOne<V> = fn(&[u8]) -> Result<(V, &[u8]), postcard::Error>;

/// Encodes a run without copying the values' memory (see [`EncodedChunk`]).
type EncodeParts<V> = for<'a> fn(&'a [V]) -> EncodedChunk<'a>;

/// Decodes an indexed run, items `first..` of `total`: a value that fails
/// to decode becomes that item's error, the others come back; `Err` only
/// if the run or its index is broken.
type DecodeItems<V> = fn(&[u8], (usize, usize)) -> Result<Vec<V>, postcard::Error>;

/// The encoded results of a chunk, from [`Job::encode_chunk_in_pieces`]:
/// the same bytes as [`Job::encode_chunk`], left in pieces. Large arrays of
/// bytes and floats (`Vec<u8>`, `Vec<i8>`, `Vec<f32>`, `Vec<f64>` results
/// of 64 KiB or more) are pieces of the results' own memory, so a backend
/// that writes them to a socket or pipe (one vectored write of
/// [`slices`](EncodedChunk::slices)) sends a large result from where it
/// lies instead of copying it first.
///
/// [`Job::encode_chunk_in_pieces`]: crate::Job::encode_chunk_in_pieces
/// [`Job::encode_chunk`]: crate::Job::encode_chunk
#[derive(Debug, Default)]
pub struct EncodedChunk<'a> {
    pieces: Vec<Piece<'a>>,
}

#[derive(Debug)]
enum Piece<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
}

impl<'a> EncodedChunk<'a> {
    /// Appends bytes of its own.
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        self.pieces.push(Piece::Owned(bytes));
    }

    /// Appends memory that is sent as it lies.
    pub(crate) fn push_borrowed(&mut self, bytes: &'a [u8]) {
        self.pieces.push(Piece::Borrowed(bytes));
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.slices().map(<[u8]>::len).sum()
    }

    /// True if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces, in order; together they are the bytes.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(|piece| match piece {
            Piece::Owned(bytes) => &bytes[..],
            Piece::Borrowed(bytes) => bytes,
        })
    }

    /// The bytes in one vector (joined by a copy unless they are in one
    /// piece already).
    pub fn into_bytes(mut self) -> Vec<u8> {
        if let [Piece::Owned(_)] = &self.pieces[..]
            && let Some(Piece::Owned(bytes)) = self.pieces.pop()
        {
            return bytes;
        }
        let mut bytes = Vec::with_capacity(self.len());
        crate::sys::advise_huge_pages(bytes.as_ptr(), bytes.capacity());
        for slice in self.slices() {
            bytes.extend_from_slice(slice);
        }
        bytes
    }
}

impl From<Vec<u8>> for EncodedChunk<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        EncodedChunk {
            pieces: vec![Piece::Owned(bytes)],
        }
    }
}

/// Encodes and decodes runs of `V` (postcard underneath: a run is its
/// length as a varint, then each value in turn).
pub struct Codec<V> {
    encode: fn(&[V]) -> Result<Vec<u8>, postcard::Error>,
    encode_one: fn(&V) -> Result<Vec<u8>, postcard::Error>,
    decode: fn(&[u8]) -> Result<Vec<V>, postcard::Error>,
    decode_one: DecodeOne<V>,
    /// A faster `encode` that cannot fail, for the types that have one.
    encode_parts: Option<EncodeParts<V>>,
    /// True if a run ends with an index of its items ([`push_index`]):
    /// `encode_checked` then writes one too.
    indexed: bool,
    /// For indexed runs: decodes every item that can be, in place of
    /// `decode` (see [`DecodeItems`]).
    decode_items: Option<DecodeItems<V>>,
}

impl<V> std::fmt::Debug for Codec<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("fast_path", &self.encode_parts.is_some())
            .finish_non_exhaustive()
    }
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Codec<V> {}

impl<V: Serialize + DeserializeOwned> Codec<V> {
    /// Plain serde values (arrays of bytes and floats by a faster path
    /// with the same bytes; see [`array_codec`](super::array_codec)).
    pub(crate) fn values() -> Codec<V> {
        if let Some(fast) = super::array_codec::codec::<V>() {
            return fast;
        }
        Codec {
            encode: |values| postcard::to_stdvec(values),
            encode_one: |value| postcard::to_stdvec(value),
            decode: |bytes| postcard::from_bytes(bytes),
            decode_one: |bytes| postcard::take_from_bytes(bytes),
            encode_parts: None,
            indexed: false,
            decode_items: None,
        }
    }
}

impl<R: Serialize + DeserializeOwned> Codec<Result<R, Error>> {
    /// Per-item results (`map_results`, streams), errors in their wire
    /// form: the postcard run of `Vec<Result<R, ErrorWire>>`, then an index
    /// of where each item ends ([`push_index`]). The run decodes in one go;
    /// only if that fails are the items decoded one by one, found through
    /// the index, so a result whose `Deserialize` fails or panics in the
    /// parent fails that item only.
    pub(crate) fn results() -> Codec<Result<R, Error>> {
        Codec {
            encode: |values| {
                let ends = std::cell::RefCell::new(Vec::with_capacity(values.len()));
                let written = std::cell::Cell::new(0);
                let run = IndexedRun {
                    values,
                    written: &written,
                    ends: &ends,
                };
                let mut bytes = postcard::serialize_with_flavor(
                    &run,
                    Counted {
                        bytes: Vec::new(),
                        written: &written,
                    },
                )?;
                let mut starts = ends.into_inner();
                starts.push(bytes.len());
                push_index(&mut bytes, starts.windows(2).map(|pair| pair[1] - pair[0]));
                Ok(bytes)
            },
            encode_one: |value| postcard::to_stdvec(&to_wire(value)),
            decode: decode_indexed_run::<R>,
            decode_one: |bytes| {
                let (wire, rest) = postcard::take_from_bytes::<Result<R, ErrorWire>>(bytes)?;
                Ok((from_wire(wire), rest))
            },
            encode_parts: None,
            indexed: true,
            decode_items: Some(|bytes, (first, total)| {
                if let Ok(Ok(values)) = unwind::catch_task(|| decode_indexed_run::<R>(bytes)) {
                    return Ok(values);
                }
                let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)?;
                let lengths = read_index(bytes)?;
                if lengths.len() != count {
                    return Err(postcard::Error::DeserializeBadEncoding);
                }
                let mut values = Vec::with_capacity(count);
                for (offset, length) in lengths.into_iter().enumerate() {
                    if length > rest.len() {
                        return Err(postcard::Error::DeserializeUnexpectedEnd);
                    }
                    let (item, after) = rest.split_at(length);
                    values.push(decode_item::<R>(item, first + offset, total));
                    rest = after;
                }
                Ok(values)
            }),
        }
    }
}

/// An indexed run of results decoded in one go (the index is not read),
/// failing at the first item that fails.
fn decode_indexed_run<R: DeserializeOwned>(
    bytes: &[u8],
) -> Result<Vec<Result<R, Error>>, postcard::Error> {
    let (wire, _index) = postcard::take_from_bytes::<Vec<Result<R, ErrorWire>>>(bytes)?;
    Ok(wire.into_iter().map(from_wire).collect())
}

/// A run of results serialized as postcard's `Vec`, noting where each
/// item starts (the bytes written when the item is handed over).
struct IndexedRun<'a, R> {
    values: &'a [Result<R, Error>],
    written: &'a std::cell::Cell<usize>,
    ends: &'a std::cell::RefCell<Vec<usize>>,
}

impl<R: Serialize> Serialize for IndexedRun<'_, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.values.iter().map(|value| {
            self.ends.borrow_mut().push(self.written.get());
            to_wire(value)
        }))
    }
}

/// postcard's `Vec` output, counting the bytes written as it goes.
struct Counted<'a> {
    bytes: Vec<u8>,
    written: &'a std::cell::Cell<usize>,
}

impl postcard::ser_flavors::Flavor for Counted<'_> {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.bytes.extend_from_slice(data);
        self.written.set(self.bytes.len());
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.bytes.push(data);
        self.written.set(self.bytes.len());
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.bytes)
    }
}

/// Appends the index of a run: each item's length (a varint), then where
/// the index starts (8 bytes, little-endian), so it is found from the end.
/// The index is postcard's `Vec<usize>`, written here byte by byte: a
/// million lengths cost a few milliseconds through serde, a fraction of
/// that this way.
fn push_index(bytes: &mut Vec<u8>, lengths: impl ExactSizeIterator<Item = usize>) {
    let start = bytes.len() as u64;
    bytes.reserve(lengths.len() + 16);
    push_varint(bytes, lengths.len());
    for length in lengths {
        push_varint(bytes, length);
    }
    bytes.extend_from_slice(&start.to_le_bytes());
}

/// `value` as postcard writes a `usize`: 7 bits a byte, low bits first,
/// the top bit set on every byte but the last.
#[inline]
fn push_varint(bytes: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// The item lengths of a run's index (see [`push_index`]). Garbage is an
/// error, never an allocation of a stated size.
fn read_index(bytes: &[u8]) -> Result<Vec<usize>, postcard::Error> {
    let split = bytes
        .len()
        .checked_sub(8)
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    let (body, trailer) = bytes.split_at(split);
    let mut start = [0u8; 8];
    start.copy_from_slice(trailer);
    let start = usize::try_from(u64::from_le_bytes(start))
        .ok()
        .filter(|&start| start <= body.len())
        .ok_or(postcard::Error::DeserializeBadEncoding)?;
    postcard::from_bytes(&body[start..])
}

/// One item's bytes, `index` of `total`: its result, or the error of its
/// `Deserialize` (which runs as task code, so a panic is caught).
fn decode_item<R: DeserializeOwned>(item: &[u8], index: usize, total: usize) -> Result<R, Error> {
    match unwind::catch_task(|| postcard::from_bytes::<Result<R, ErrorWire>>(item)) {
        Ok(Ok(wire)) => from_wire(wire),
        Ok(Err(error)) => Err(Error::encoding(index, total, "decoded", error)),
        Err(panicked) => Err(unwind::panic_error(panicked, index, total)),
    }
}

fn to_wire<R>(result: &Result<R, Error>) -> Result<&R, ErrorWireRef<'_>> {
    result.as_ref().map_err(Error::wire)
}

fn from_wire<R>(result: Result<R, ErrorWire>) -> Result<R, Error> {
    result.map_err(Error::from)
}

impl<V> Codec<V> {
    /// A codec of these five functions, which must agree with postcard's
    /// format for runs (see [`Codec`]).
    pub(super) fn from_fns(
        encode: fn(&[V]) -> Result<Vec<u8>, postcard::Error>,
        encode_one: fn(&V) -> Result<Vec<u8>, postcard::Error>,
        decode: fn(&[u8]) -> Result<Vec<V>, postcard::Error>,
        decode_one: DecodeOne<V>,
        encode_parts: EncodeParts<V>,
    ) -> Codec<V> {
        Codec {
            encode,
            encode_one,
            decode,
            decode_one,
            encode_parts: Some(encode_parts),
            indexed: false,
            decode_items: None,
        }
    }

    #[cfg(test)]
    pub(super) fn encode_parts_fn(&self) -> Option<EncodeParts<V>> {
        self.encode_parts
    }

    #[cfg(test)]
    pub(super) fn encode_fn(&self) -> fn(&[V]) -> Result<Vec<u8>, postcard::Error> {
        self.encode
    }

    #[cfg(test)]
    pub(super) fn encode_one_fn(&self) -> fn(&V) -> Result<Vec<u8>, postcard::Error> {
        self.encode_one
    }

    #[cfg(test)]
    pub(super) fn decode_fn(&self) -> fn(&[u8]) -> Result<Vec<V>, postcard::Error> {
        self.decode
    }

    #[cfg(test)]
    pub(super) fn decode_one_fn(&self) -> DecodeOne<V> {
        self.decode_one
    }

    /// For values that never leave the process (a local pool's, which has
    /// no serde bounds): every use is an error saying so.
    pub(crate) fn local() -> Codec<V> {
        Codec {
            encode: |_| Err(postcard::Error::SerdeSerCustom),
            encode_one: |_| Err(postcard::Error::SerdeSerCustom),
            decode: |_| Err(postcard::Error::SerdeDeCustom),
            decode_one: |_| Err(postcard::Error::SerdeDeCustom),
            encode_parts: None,
            indexed: false,
            decode_items: None,
        }
    }

    /// [`encode_checked`](Codec::encode_checked), for sending: large
    /// arrays of bytes and floats are not copied.
    pub(crate) fn encode_parts_checked<'a>(
        &self,
        values: &'a [V],
        items: (usize, usize),
        replace: Option<fn(Error) -> V>,
    ) -> Result<EncodedChunk<'a>, Error> {
        match self.encode_parts {
            Some(encode_parts) => Ok(encode_parts(values)),
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
            .map_err(|e| Error::encoding(first, total, "encoded", e))?;
        let mut lengths = Vec::with_capacity(values.len());
        for (offset, value) in values.iter().enumerate() {
            let index = first + offset;
            let error = match unwind::catch_task(|| (self.encode_one)(value)) {
                Ok(Ok(encoded)) => {
                    lengths.push(encoded.len());
                    bytes.extend_from_slice(&encoded);
                    continue;
                }
                Ok(Err(error)) => Error::encoding(index, total, "encoded", error),
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
            push_index(&mut bytes, lengths.into_iter());
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
                    "decoded",
                    format!("{count} results where {expected} were expected"),
                ));
            }
            Err(error) => return Err(Error::encoding(first, total, "decoded", error)),
        }
        match self.decode_prefix(bytes, (first, total)) {
            Ok(values) if values.len() == expected => Ok(values),
            Ok(values) => Err(Error::encoding(
                first,
                total,
                "decoded",
                format!("{} results where {expected} were expected", values.len()),
            )),
            Err((_, error)) => Err(error),
        }
    }

    /// Decodes as many values as it can: all of them, or those before the
    /// first that fails, with that item's error.
    pub(crate) fn decode_prefix(
        &self,
        bytes: &[u8],
        (first, total): (usize, usize),
    ) -> Result<Vec<V>, (Vec<V>, Error)> {
        if let Some(decode_items) = self.decode_items {
            return decode_items(bytes, (first, total))
                .map_err(|e| (Vec::new(), Error::encoding(first, total, "decoded", e)));
        }
        if let Ok(Ok(values)) = unwind::catch_task(|| (self.decode)(bytes)) {
            return Ok(values);
        }
        let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)
            .map_err(|e| (Vec::new(), Error::encoding(first, total, "decoded", e)))?;
        let mut values = Vec::with_capacity(count.min(bytes.len()));
        for offset in 0..count {
            let index = first + offset;
            match unwind::catch_task(|| (self.decode_one)(rest)) {
                Ok(Ok((value, after))) => {
                    values.push(value);
                    rest = after;
                }
                Ok(Err(error)) => {
                    return Err((values, Error::encoding(index, total, "decoded", error)));
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
                "decoded",
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
    fn the_index_is_postcards_vec_of_lengths() {
        let lengths = [0, 1, 127, 128, 300, 1 << 20, usize::MAX];
        let mut bytes = vec![9, 9];
        push_index(&mut bytes, lengths.into_iter());
        let mut expected = vec![9, 9];
        expected.extend(postcard::to_stdvec(&lengths[..]).unwrap());
        expected.extend(2u64.to_le_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(read_index(&bytes).unwrap(), lengths);
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
