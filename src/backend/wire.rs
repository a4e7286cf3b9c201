//! One frame format for everything that crosses a process boundary: the
//! process backend's worker channels (results, failures, chunks of a
//! stream's items) and the MPI backend's gathered results.
//!
//! ```text
//! frame = kind (1 byte) | id (u64 LE) | payload length (u64 LE) | number (u64 LE) | payload
//! ```
//!
//! `id` is a chunk index (a batch call) or a chunk's position in its stream.
//! `number` counts a worker's frames from 0, so the parent can tell a frame
//! from bytes that only look like one (a task that wrote to its socket, a
//! cut stream): a header whose number is not the next one is not a frame.
//! Frames that are not a worker's (a stream's tasks, MPI's gathered
//! results) carry 0.
//! Payloads are postcard bytes made by the job; a failure's payload is an
//! [`Error`] in its crate-private wire form.

// Without the process backend (off Linux) only the MPI backend uses frames.
#![cfg_attr(not(unix), allow(dead_code))]

use crate::error::Error;
use std::io::{Read, Write};
use std::ops::Range;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A chunk's encoded results.
    Results,
    /// A failure for a whole chunk (an encoded `Error`).
    Failure,
    /// A chunk of a stream's items, sent to a worker (see [`Task`]).
    Task,
    /// A chunk's encoded results left where they lie in a worker's memory,
    /// for the parent to read from there (Linux's `process_vm_readv`): the
    /// payload lists their pieces (process backend only; see
    /// `processes/frames.rs`).
    Lent,
}

impl FrameKind {
    fn byte(self) -> u8 {
        match self {
            FrameKind::Results => 0,
            FrameKind::Failure => 1,
            FrameKind::Task => 2,
            FrameKind::Lent => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            0 => Some(FrameKind::Results),
            1 => Some(FrameKind::Failure),
            2 => Some(FrameKind::Task),
            3 => Some(FrameKind::Lent),
            _ => None,
        }
    }
}

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 25;

/// A frame's header: kind, id, payload length, and the frame's number
/// among its sender's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// `None` for a kind byte this version does not know.
    pub(crate) kind: Option<FrameKind>,
    pub(crate) id: usize,
    pub(crate) length: usize,
    pub(crate) number: usize,
}

impl Header {
    pub(crate) fn new(kind: FrameKind, id: usize, length: usize) -> Header {
        Header {
            kind: Some(kind),
            id,
            length,
            number: 0,
        }
    }

    /// The same header, as frame `number` of its sender.
    pub(crate) fn numbered(self, number: usize) -> Header {
        Header { number, ..self }
    }

    /// The header at the front of `buffer`, once it is all there.
    pub(crate) fn peek(buffer: &[u8]) -> Option<Header> {
        Some(Header::from_bytes(
            buffer.get(..HEADER_LEN)?.try_into().ok()?,
        ))
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0] = self.kind.map_or(u8::MAX, FrameKind::byte);
        bytes[1..9].copy_from_slice(&(self.id as u64).to_le_bytes());
        bytes[9..17].copy_from_slice(&(self.length as u64).to_le_bytes());
        bytes[17..25].copy_from_slice(&(self.number as u64).to_le_bytes());
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |range: Range<usize>| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[range]);
            u64::from_le_bytes(word) as usize
        };
        Header {
            kind: FrameKind::from_byte(bytes[0]),
            id: word(1..9),
            length: word(9..17),
            number: word(17..25),
        }
    }
}

/// The first complete frame in `buffer`: its header and where its payload
/// lies. `None` until the whole frame has arrived.
pub(crate) fn parse(buffer: &[u8]) -> Option<(Header, Range<usize>)> {
    let header = Header::from_bytes(buffer.get(..HEADER_LEN)?.try_into().ok()?);
    let end = HEADER_LEN.checked_add(header.length)?;
    (buffer.len() >= end).then_some((header, HEADER_LEN..end))
}

/// The whole length (header and payload) of the frame at the front of
/// `buffer`, once its header is there.
pub(crate) fn frame_length(buffer: &[u8]) -> Option<usize> {
    let header = Header::from_bytes(buffer.get(..HEADER_LEN)?.try_into().ok()?);
    HEADER_LEN.checked_add(header.length)
}

/// Appends a frame to `out` (the MPI backend's gathered blobs).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn push(out: &mut Vec<u8>, kind: FrameKind, id: usize, payload: &[u8]) {
    out.extend_from_slice(&Header::new(kind, id, payload.len()).to_bytes());
    out.extend_from_slice(payload);
}

/// Every frame of `bytes`, which holds nothing but whole frames; `None` if
/// it is cut short.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn split(mut bytes: &[u8]) -> Option<Vec<(Header, &[u8])>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, payload) = parse(bytes)?;
        frames.push((header, &bytes[payload.clone()]));
        bytes = &bytes[payload.end..];
    }
    Some(frames)
}

/// Writes one frame, blocking (a worker's side of its channel), in as few
/// system calls as the channel takes: header and payload go out together
/// (one socket buffer per frame, not two).
pub(crate) fn write(
    writer: &mut impl Write,
    header: Header,
    payload: &[u8],
) -> std::io::Result<()> {
    write_pieces(writer, header, [payload])
}

/// [`write`] of a payload that lies in pieces (an
/// [`EncodedChunk`](crate::job::EncodedChunk) run of results), without joining them
/// first: one vectored write takes the header and every piece.
pub(crate) fn write_pieces<'a>(
    writer: &mut impl Write,
    header: Header,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> std::io::Result<()> {
    let pieces: Vec<&[u8]> = pieces.into_iter().collect();
    let length = pieces.iter().map(|piece| piece.len()).sum();
    let header = Header { length, ..header }.to_bytes();
    let mut slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&header[..])
        .chain(pieces)
        .filter(|piece| !piece.is_empty())
        .map(std::io::IoSlice::new)
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match writer.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => std::io::IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reads one frame, blocking; `None` at a clean end of file.
pub(crate) fn read(reader: &mut impl Read) -> std::io::Result<Option<(Header, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let header = Header::from_bytes(&header);
    // Grown as bytes arrive: a length field of garbage (2^60) costs an
    // error at the end of the stream, never an allocation of that size.
    let mut payload = Vec::with_capacity(header.length.min(1 << 20));
    let length = u64::try_from(header.length).unwrap_or(u64::MAX);
    reader.by_ref().take(length).read_to_end(&mut payload)?;
    if payload.len() != header.length {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((header, payload)))
}

/// The payload of a Task frame: a chunk of a stream's items, with the
/// items of the chunk that already failed for good (to skip).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Task<'a> {
    pub(crate) start: usize,
    pub(crate) skip: Vec<usize>,
    pub(crate) items: &'a [u8],
}

impl<'a> Task<'a> {
    /// `start | skip count | skip indices | items`, words u64 LE.
    pub(crate) fn encode(start: usize, skip: &[usize], items: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + 8 * skip.len() + items.len());
        bytes.extend_from_slice(&(start as u64).to_le_bytes());
        bytes.extend_from_slice(&(skip.len() as u64).to_le_bytes());
        for &index in skip {
            bytes.extend_from_slice(&(index as u64).to_le_bytes());
        }
        bytes.extend_from_slice(items);
        bytes
    }

    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Task<'a>, Error> {
        let cut_short = || Error::backend("processes", "a task frame was cut short");
        let word = |at: usize| -> Result<usize, Error> {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes.get(at..at + 8).ok_or_else(cut_short)?);
            Ok(u64::from_le_bytes(word) as usize)
        };
        let start = word(0)?;
        let count = word(8)?;
        if count > bytes.len() / 8 {
            return Err(cut_short());
        }
        let skip = (0..count)
            .map(|k| word(16 + 8 * k))
            .collect::<Result<Vec<usize>, Error>>()?;
        let items = bytes.get(16 + 8 * count..).ok_or_else(cut_short)?;
        Ok(Task { start, skip, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes as a worker might send them when something went wrong: a
    /// header with any kind, id and length (2^60 included), then any bytes.
    fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<u8>(),
            any::<u64>(),
            prop_oneof![Just(1u64 << 60), Just(u64::MAX), 0..200u64, any::<u64>()],
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(kind, id, length, rest)| {
                let mut bytes = vec![kind];
                bytes.extend_from_slice(&id.to_le_bytes());
                bytes.extend_from_slice(&length.to_le_bytes());
                bytes.extend_from_slice(&rest);
                bytes
            })
    }

    proptest! {
        /// The frame reader never panics, never reads past the bytes it
        /// has, and never allocates a stated length: a length of 2^60 is an
        /// incomplete frame (parent) or an error at the end (worker).
        #[test]
        fn hostile_bytes_are_incomplete_frames_or_errors(
            bytes in prop_oneof![hostile_bytes(), proptest::collection::vec(any::<u8>(), 0..400)],
        ) {
            if let Some((header, payload)) = parse(&bytes) {
                prop_assert!(payload.end <= bytes.len());
                prop_assert_eq!(payload.len(), header.length);
            }
            if let Some(length) = frame_length(&bytes) {
                prop_assert!(length >= HEADER_LEN);
            }
            let _ = split(&bytes);
            let mut reader = &bytes[..];
            match read(&mut reader) {
                Ok(Some((header, payload))) => prop_assert_eq!(payload.len(), header.length),
                Ok(None) => prop_assert!(bytes.len() < HEADER_LEN),
                Err(_) => {}
            }
            let _ = Task::decode(&bytes);
        }

        /// Cutting a well-formed stream of frames anywhere gives the whole
        /// frames before the cut, and nothing made up.
        #[test]
        fn truncated_streams_give_the_frames_before_the_cut(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut stream = Vec::new();
            for (id, payload) in payloads.iter().enumerate() {
                push(&mut stream, FrameKind::Results, id, payload);
            }
            let cut = cut.index(stream.len() + 1);
            let mut rest = &stream[..cut];
            let mut seen = 0;
            while let Some((header, range)) = parse(rest) {
                prop_assert_eq!(header.id, seen);
                prop_assert_eq!(&rest[range.clone()], &payloads[seen][..]);
                rest = &rest[range.end..];
                seen += 1;
            }
            prop_assert!(seen <= payloads.len());
            prop_assert_eq!(split(&stream[..cut]).is_some(), seen == payloads.len() || rest.is_empty());
        }
    }

    #[test]
    fn frames_parse_only_when_complete() {
        let mut buffer = Header::new(FrameKind::Results, 7, 3).to_bytes().to_vec();
        assert_eq!(parse(&buffer), None);
        buffer.extend_from_slice(b"abc");
        let expected = Some((
            Header::new(FrameKind::Results, 7, 3),
            HEADER_LEN..HEADER_LEN + 3,
        ));
        assert_eq!(parse(&buffer), expected);
        buffer.push(1);
        assert_eq!(parse(&buffer), expected);
        buffer[0] = 9;
        assert_eq!(parse(&buffer).unwrap().0.kind, None);
    }

    #[test]
    fn blobs_split_and_reject_truncation() {
        let mut blob = Vec::new();
        push(&mut blob, FrameKind::Results, 7, b"abc");
        push(&mut blob, FrameKind::Failure, 2, b"");
        let frames = split(&blob).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].0.id, frames[0].1), (7, &b"abc"[..]));
        assert_eq!(frames[1].0.kind, Some(FrameKind::Failure));
        assert!(split(&blob[..18]).is_none());
    }

    #[test]
    fn frames_written_are_read_back() {
        let mut bytes = Vec::new();
        write(
            &mut bytes,
            Header::new(FrameKind::Task, 3, 0).numbered(4),
            b"items",
        )
        .unwrap();
        let mut reader = &bytes[..];
        let (header, payload) = read(&mut reader).unwrap().unwrap();
        assert_eq!(
            (header.kind, header.id, &payload[..]),
            (Some(FrameKind::Task), 3, &b"items"[..])
        );
        assert_eq!(header.number, 4);
        assert!(read(&mut reader).unwrap().is_none());
    }

    #[test]
    fn a_frame_in_pieces_survives_short_vectored_writes() {
        /// Takes at most 5 bytes per call, from at most 2 slices.
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let n = bytes.len().min(5);
                self.0.extend_from_slice(&bytes[..n]);
                Ok(n)
            }
            fn write_vectored(
                &mut self,
                slices: &[std::io::IoSlice<'_>],
            ) -> std::io::Result<usize> {
                let mut taken = 0;
                for slice in slices.iter().take(2) {
                    let n = slice.len().min(5 - taken);
                    self.0.extend_from_slice(&slice[..n]);
                    taken += n;
                    if n < slice.len() || taken == 5 {
                        break;
                    }
                }
                Ok(taken)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let pieces: [&[u8]; 5] = [b"ab", b"", b"cdefghijk", b"l", b"mnopqrstuvwxyz"];
        let mut out = Trickle(Vec::new());
        write_pieces(&mut out, Header::new(FrameKind::Results, 9, 0), pieces).unwrap();
        let (header, payload) = read(&mut &out.0[..]).unwrap().unwrap();
        assert_eq!(header.id, 9);
        assert_eq!(&payload[..], &b"abcdefghijklmnopqrstuvwxyz"[..]);
    }

    #[test]
    fn tasks_round_trip_and_short_ones_fail() {
        let bytes = Task::encode(40, &[41, 43], b"xyz");
        let task = Task::decode(&bytes).unwrap();
        assert_eq!(
            task,
            Task {
                start: 40,
                skip: vec![41, 43],
                items: b"xyz"
            }
        );
        assert!(Task::decode(&bytes[..20]).is_err());
        assert!(Task::decode(&bytes[..4]).is_err());
    }
}
