//! Chunks on their way to rank 0 during a journaled call: the journal is
//! written on rank 0 only, so every other rank sends each chunk there as
//! it finishes ([`ChunkJob::records_at_root`]) instead of only in the
//! exchange at the end of the call. A rank killed mid-call then loses only
//! the chunks it was running, not every chunk it ran.
//!
//! A record is one message of a 16-byte header (the chunk, the length of
//! its encoded results) followed by the results when they fit in one
//! message, or by as many pieces as they need (MPI counts are 32-bit).
//! Each rank ends with a header for chunk [`END`]: messages between two
//! ranks on one communicator and tag arrive in the order sent, so rank 0
//! has every record of a rank once it has its end. Rank 0 takes records
//! whenever it looks at its threads (every [`RECEIVE_POLL`]), and after
//! its own chunks until every rank has ended, so no rank is left waiting
//! in a send.

use crate::error::Error;
use crate::job::ChunkJob;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::time::Duration;

/// The tag of records on the backend's own communicator (which carries
/// nothing else point to point).
const TAG: i32 = 7;
/// The chunk of the header that ends a rank's records.
const END: u64 = u64::MAX;
/// The largest piece of a record in one message.
const PIECE: usize = 1 << 30;
/// How often rank 0 looks for records while its threads are all busy: a
/// rank sending a large record waits for rank 0 to take it.
pub(super) const RECEIVE_POLL: Duration = Duration::from_micros(200);

/// Sends chunk `chunk`'s encoded results to rank 0 (a rank other than 0).
pub(super) fn send(world: &SimpleCommunicator, chunk: usize, bytes: &[u8]) {
    let root = world.process_at_rank(0);
    let mut message = header(chunk as u64, bytes.len());
    if bytes.len() <= PIECE {
        message.extend_from_slice(bytes);
        root.send_with_tag(&message[..], TAG);
        return;
    }
    root.send_with_tag(&message[..], TAG);
    for piece in bytes.chunks(PIECE) {
        root.send_with_tag(piece, TAG);
    }
}

/// Tells rank 0 that this rank sends no more records in this call.
pub(super) fn end(world: &SimpleCommunicator) {
    world
        .process_at_rank(0)
        .send_with_tag(&header(END, 0)[..], TAG);
}

/// Rank 0's side: takes the records of the other ranks into `job` (which
/// appends each to the journal), counting the ranks that have ended.
pub(super) struct Receiver {
    ended: usize,
    others: usize,
}

impl Receiver {
    pub(super) fn new(world: &SimpleCommunicator) -> Receiver {
        Receiver {
            ended: 0,
            others: world.size() as usize - 1,
        }
    }

    /// Takes every record that has arrived.
    pub(super) fn take_arrived(&mut self, world: &SimpleCommunicator, job: &dyn ChunkJob) {
        while let Some(probed) = world.any_process().immediate_matched_probe_with_tag(TAG) {
            let (first, status) = probed.matched_receive_vec::<u8>();
            self.take(world, status.source_rank(), first, job);
        }
    }

    /// Takes records until every other rank has ended.
    pub(super) fn take_until_ended(&mut self, world: &SimpleCommunicator, job: &dyn ChunkJob) {
        while self.ended < self.others {
            let probed = world.any_process().matched_probe_with_tag(TAG);
            let (first, status) = probed.matched_receive_vec::<u8>();
            self.take(world, status.source_rank(), first, job);
        }
    }

    fn take(
        &mut self,
        world: &SimpleCommunicator,
        source: i32,
        first: Vec<u8>,
        job: &dyn ChunkJob,
    ) {
        let Some((chunk, length)) = read_header(&first) else {
            job.record_failure(Error::backend(
                "mpi",
                format!("a record from rank {source} is cut short"),
            ));
            return;
        };
        if chunk == END {
            self.ended += 1;
            return;
        }
        let mut pieces = Vec::new();
        let bytes = if first.len() - 16 >= length {
            &first[16..]
        } else {
            pieces.reserve_exact(length);
            while pieces.len() < length {
                let (piece, _) = world
                    .process_at_rank(source)
                    .receive_vec_with_tag::<u8>(TAG);
                pieces.extend_from_slice(&piece);
            }
            &pieces[..]
        };
        let chunk = chunk as usize;
        if job.is_chunk_done(chunk) {
            return;
        }
        if let Err(error) = job.accept_chunk(chunk, bytes) {
            job.record_failure(error);
        }
    }
}

fn header(chunk: u64, length: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&chunk.to_le_bytes());
    bytes.extend_from_slice(&(length as u64).to_le_bytes());
    bytes
}

fn read_header(bytes: &[u8]) -> Option<(u64, usize)> {
    let chunk = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let length = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some((chunk, length as usize))
}
