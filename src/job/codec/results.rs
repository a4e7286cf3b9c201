//! The per-item results format (`map_results`, streams): each item's
//! `Result`, its error in the crate-private wire form, then an index of
//! where each item ends (`varint.rs`). The run decodes in one go; only if
//! that fails are the items decoded one by one, found through the index,
//! so a result whose `Deserialize` fails or panics in the parent fails
//! that item only.

use super::format::Format;
use super::varint::{push_index, read_index};
use crate::error::{Error, ErrorWire, ErrorWireRef, Step};
use crate::job::unwind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};

/// Per-item results, errors in their wire form.
pub(super) struct Results;

impl<R: Serialize + DeserializeOwned> Format<Result<R, Error>> for Results {
    const INDEXED: bool = true;

    fn encode(values: &[Result<R, Error>]) -> Result<Vec<u8>, postcard::Error> {
        let ends = RefCell::new(Vec::with_capacity(values.len()));
        let written = Cell::new(0);
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
    }

    fn encode_one(value: &Result<R, Error>) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(&to_wire(value))
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Result<R, Error>>, postcard::Error> {
        let (wire, _index) = postcard::take_from_bytes::<Vec<Result<R, ErrorWire>>>(bytes)?;
        Ok(wire.into_iter().map(from_wire).collect())
    }

    fn decode_one(bytes: &[u8]) -> Result<(Result<R, Error>, &[u8]), postcard::Error> {
        let (wire, rest) = postcard::take_from_bytes::<Result<R, ErrorWire>>(bytes)?;
        Ok((from_wire(wire), rest))
    }

    fn decode_items(
        bytes: &[u8],
        (first, total): (usize, usize),
    ) -> Option<Result<Vec<Result<R, Error>>, postcard::Error>> {
        Some(decode_items::<R>(bytes, first, total))
    }
}

/// Every item of an indexed run: in one go if the run decodes, else item
/// by item through the index, each failure its item's error.
fn decode_items<R: Serialize + DeserializeOwned>(
    bytes: &[u8],
    first: usize,
    total: usize,
) -> Result<Vec<Result<R, Error>>, postcard::Error> {
    if let Ok(Ok(values)) =
        unwind::catch_task(|| <Results as Format<Result<R, Error>>>::decode(bytes))
    {
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
}

/// A run of results serialized as postcard's `Vec`, noting where each
/// item starts (the bytes written when the item is handed over).
struct IndexedRun<'a, R> {
    values: &'a [Result<R, Error>],
    written: &'a Cell<usize>,
    ends: &'a RefCell<Vec<usize>>,
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
    written: &'a Cell<usize>,
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

/// One item's bytes, `index` of `total`: its result, or the error of its
/// `Deserialize` (which runs as task code, so a panic is caught).
fn decode_item<R: DeserializeOwned>(item: &[u8], index: usize, total: usize) -> Result<R, Error> {
    match unwind::catch_task(|| postcard::from_bytes::<Result<R, ErrorWire>>(item)) {
        Ok(Ok(wire)) => from_wire(wire),
        Ok(Err(error)) => Err(Error::encoding(index, total, Step::Decoded, error)),
        Err(panicked) => Err(unwind::panic_error(panicked, index, total)),
    }
}

fn to_wire<R>(result: &Result<R, Error>) -> Result<&R, ErrorWireRef<'_>> {
    result.as_ref().map_err(Error::wire)
}

fn from_wire<R>(result: Result<R, ErrorWire>) -> Result<R, Error> {
    result.map_err(Error::from)
}
