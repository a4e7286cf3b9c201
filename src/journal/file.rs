//! The journal's file: a header, then records appended one after another.
//!
//! ```text
//! header   "PARPOOLJ" (8 bytes) | format version, u32 LE | 0u32
//! record   payload length, u64 LE | CRC-32 of the payload, u32 LE | payload
//! payload  call id, u128 LE | chunk, u64 LE | digest of the chunk's inputs, u128 LE
//!          | the chunk's encoded results (the job's `encode_chunk`)
//! ```
//!
//! Records are only ever appended; a later record of the same call and
//! chunk replaces an earlier one. Opening a file reads every record and
//! checks its length and checksum (a CRC-32 catches every error of up to 32
//! bits in a row, so every flipped byte):
//!
//! - a record cut short at the end of the file (a write interrupted by a
//!   kill or a crash) is dropped, and the file truncated before it: its
//!   chunk runs again;
//! - a damaged record followed by a sound one is skipped: its chunk runs
//!   again;
//! - damage that leaves no sound record after it, but is not at the end,
//!   is an error naming the file and the byte offset: the file is left
//!   as it is.

use crate::error::Error;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The first bytes of every journal.
pub(super) const MAGIC: &[u8; 8] = b"PARPOOLJ";
/// The format this build writes and reads.
pub(super) const VERSION: u32 = 1;
/// Bytes of the file header.
pub(super) const HEADER_LEN: u64 = 16;
/// Bytes before a record's payload: its length and its checksum.
const RECORD_HEAD_LEN: u64 = 12;
/// Bytes of a payload before the results: call id, chunk, inputs digest.
pub(super) const KEY_LEN: usize = 40;

/// Where a chunk's latest record lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The digest of the chunk's inputs when it ran.
    pub(super) inputs: u128,
    /// Where its results start in the file, and how many bytes they are.
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// What opening a file found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// The latest record of every (call, chunk).
    pub(super) index: HashMap<(u128, u64), Entry>,
    /// Where the next record goes: the end of the last sound record.
    pub(super) end: u64,
    /// Records skipped as damaged, and bytes of a cut last record dropped.
    pub(super) damaged: usize,
    pub(super) dropped_tail: u64,
}

/// The file header of a new journal.
pub(super) fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header
}

/// Checks the header of `file` (`len` bytes long): `Err` unless it is a
/// journal of this format. Reads only.
pub(super) fn check_header(file: &File, len: u64, path: &Path) -> Result<(), Error> {
    let not_a_journal = || {
        Error::journal(
            path,
            "is not a parpool journal (it does not start with PARPOOLJ); it was left as it is",
        )
    };
    if len < HEADER_LEN {
        return Err(not_a_journal());
    }
    let mut header = [0u8; HEADER_LEN as usize];
    read_at(file, &mut header, 0).map_err(|error| Error::journal_io(path, "read", error))?;
    if &header[..8] != MAGIC {
        return Err(not_a_journal());
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(Error::journal(
            path,
            format!(
                "is a journal of format version {version}; this parpool reads version {VERSION} \
                 only (use a new journal file)"
            ),
        ));
    }
    Ok(())
}

/// The record of chunk `chunk` of call `call`, whose inputs had digest
/// `inputs`: its head (length, checksum, key) and its results, to be
/// written one after the other.
pub(super) fn record_head(call: u128, chunk: u64, inputs: u128, results: &[u8]) -> Vec<u8> {
    let mut key = [0u8; KEY_LEN];
    key[..16].copy_from_slice(&call.to_le_bytes());
    key[16..24].copy_from_slice(&chunk.to_le_bytes());
    key[24..40].copy_from_slice(&inputs.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&key);
    crc.update(results);
    let mut head = Vec::with_capacity(RECORD_HEAD_LEN as usize + KEY_LEN);
    head.extend_from_slice(&((KEY_LEN + results.len()) as u64).to_le_bytes());
    head.extend_from_slice(&crc.finalize().to_le_bytes());
    head.extend_from_slice(&key);
    head
}

/// A record read at `offset`: its key and where its results lie, or why
/// it is not a sound record.
enum Record {
    Sound {
        call: u128,
        chunk: u64,
        entry: Entry,
        next: u64,
    },
    /// Its length runs past the end of the file.
    CutShort,
    /// Its checksum does not match; its length (if plausible) says where
    /// the next record would start.
    Damaged { next: Option<u64> },
}

/// Reads the record at `offset` of a file of `len` bytes, checking it.
fn read_record(
    file: &File,
    offset: u64,
    len: u64,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Record> {
    if len - offset < RECORD_HEAD_LEN {
        return Ok(Record::CutShort);
    }
    let mut head = [0u8; RECORD_HEAD_LEN as usize];
    read_at(file, &mut head, offset)?;
    let payload_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let checksum = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let start = offset + RECORD_HEAD_LEN;
    if payload_len > len - start {
        return Ok(Record::CutShort);
    }
    let next = start + payload_len;
    if payload_len < KEY_LEN as u64 {
        return Ok(Record::Damaged { next: Some(next) });
    }
    // Checksum the payload in pieces: results may be gigabytes.
    let mut crc = crc32fast::Hasher::new();
    let mut key = [0u8; KEY_LEN];
    read_at(file, &mut key, start)?;
    crc.update(&key);
    // The file is now at the results: read them in pieces.
    let mut reader = file.take(payload_len - KEY_LEN as u64);
    buffer.resize(1 << 20, 0);
    loop {
        let got = reader.read(buffer)?;
        if got == 0 {
            break;
        }
        crc.update(&buffer[..got]);
    }
    if crc.finalize() != checksum {
        return Ok(Record::Damaged { next: Some(next) });
    }
    Ok(Record::Sound {
        call: u128::from_le_bytes(key[..16].try_into().expect("16 bytes")),
        chunk: u64::from_le_bytes(key[16..24].try_into().expect("8 bytes")),
        entry: Entry {
            inputs: u128::from_le_bytes(key[24..40].try_into().expect("16 bytes")),
            offset: start + KEY_LEN as u64,
            len: payload_len - KEY_LEN as u64,
        },
        next,
    })
}

/// Fills `buffer` from `file` at `offset`. The journal's lock serialises
/// every use of the file, so seeking is safe (and works on every platform).
pub(super) fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buffer)
}

/// Writes every piece of `pieces` to `file` at `offset`, in order.
pub(super) fn write_at(file: &File, pieces: &[&[u8]], offset: u64) -> std::io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    for piece in pieces {
        file.write_all(piece)?;
    }
    Ok(())
}

/// Reads every record of a journal file (its header already checked),
/// following the recovery rules of the module docs. Truncates a cut last
/// record; never writes otherwise.
pub(super) fn scan(file: &File, path: &Path) -> Result<Scan, Error> {
    let io = |error| Error::journal_io(path, "read", error);
    let len = file.metadata().map_err(io)?.len();
    let mut scan = Scan {
        end: HEADER_LEN,
        ..Scan::default()
    };
    let mut buffer = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < len {
        match read_record(file, offset, len, &mut buffer).map_err(io)? {
            Record::Sound {
                call,
                chunk,
                entry,
                next,
            } => {
                scan.index.insert((call, chunk), entry);
                offset = next;
                scan.end = next;
            }
            Record::CutShort => break,
            Record::Damaged { next } => {
                // Skip it only if a sound record follows: then its length
                // was right, and only its chunk is lost.
                let after = next.filter(|&next| next < len).and_then(|next| {
                    matches!(
                        read_record(file, next, len, &mut buffer),
                        Ok(Record::Sound { .. })
                    )
                    .then_some(next)
                });
                match after {
                    Some(next) => {
                        scan.damaged += 1;
                        offset = next;
                        scan.end = next;
                    }
                    None if next.is_some_and(|next| next >= len) => break,
                    None => {
                        return Err(Error::journal(
                            path,
                            format!(
                                "has a damaged record at byte {offset} with no sound record \
                                 after it; it was left as it is (move it aside to start afresh, \
                                 or truncate it to {offset} bytes to keep what comes before)"
                            ),
                        ));
                    }
                }
            }
        }
    }
    if scan.end < len {
        // The last record was cut short (or damaged at the very end): its
        // chunk runs again.
        scan.dropped_tail = len - scan.end;
        file.set_len(scan.end)
            .map_err(|error| Error::journal_io(path, "truncate the cut last record of", error))?;
    }
    Ok(scan)
}
