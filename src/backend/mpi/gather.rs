//! Gathers of byte blobs of any size, to every rank or to rank 0, in
//! rounds that keep MPI's 32-bit counts.

use crate::error::Error;
use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::topology::{Rank, SimpleCommunicator};
use mpi::traits::*;

/// The largest piece one rank sends in one all-gather round: the whole
/// receive buffer of a round must stay within a 32-bit count.
fn round_limit(size: usize) -> usize {
    (1usize << 30).min(i32::MAX as usize / size.max(1))
}

/// Every rank's bytes after an all-gather: one buffer, rank after rank.
pub(super) struct Gathered {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Gathered {
    /// The bytes rank `rank` contributed.
    pub(super) fn of(&self, rank: usize) -> &[u8] {
        let start = if rank == 0 { 0 } else { self.ends[rank - 1] };
        &self.bytes[start..self.ends[rank]]
    }

    /// How many ranks contributed.
    pub(super) fn ranks(&self) -> usize {
        self.ends.len()
    }
}

/// Every rank's `local` bytes, in rank order, on every rank, in as many
/// rounds as the largest contribution needs.
pub(super) fn all_gather_bytes(
    world: &SimpleCommunicator,
    local: &[u8],
) -> Result<Gathered, Error> {
    let limit = round_limit(world.size() as usize);
    let gathered = gather_bytes_in_rounds(world, local, limit, None)?;
    Ok(gathered.expect("every rank receives an all-gather"))
}

/// Every rank's `local` bytes, in rank order, on rank 0 only (`Some` there,
/// `None` elsewhere): what `map_gather` asks for. Only rank 0 holds the
/// whole; the others hold their own bytes, and the network carries each
/// byte once.
pub(super) fn gather_bytes_to_root(
    world: &SimpleCommunicator,
    local: &[u8],
) -> Result<Option<Gathered>, Error> {
    let limit = round_limit(world.size() as usize);
    gather_bytes_in_rounds(world, local, limit, Some(0))
}

/// Gathers every rank's `local` bytes to `root` (or to every rank, for
/// `None`), with at most `limit` bytes per rank per round. In one round
/// (contributions under `limit`) MPI receives straight into the returned
/// buffer; otherwise each round's pieces are copied into place. `None` on
/// a rank that receives nothing.
fn gather_bytes_in_rounds(
    world: &SimpleCommunicator,
    local: &[u8],
    limit: usize,
    root: Option<Rank>,
) -> Result<Option<Gathered>, Error> {
    let size = world.size() as usize;
    let receives = root.is_none_or(|root| root == world.rank());
    // Every rank learns every length (8 bytes each): all of them need the
    // number of rounds.
    let mut lengths = vec![0u64; size];
    world.all_gather_into(&(local.len() as u64), &mut lengths[..]);
    let ends: Vec<usize> = lengths
        .iter()
        .scan(0usize, |end, &length| {
            *end += length as usize;
            Some(*end)
        })
        .collect();
    let total = if receives {
        ends.last().copied().unwrap_or(0)
    } else {
        0
    };
    let rounds = lengths
        .iter()
        .map(|&length| (length as usize).div_ceil(limit))
        .max()
        .unwrap_or(0);
    let mut gathered = vec![0u8; total];
    crate::sys::advise_huge_pages(gathered.as_ptr(), total);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(ends.iter().copied())
        .take(size)
        .collect();
    // One round of the collective: `into` is the receive side, on a rank
    // that receives.
    let exchange =
        |send: &[u8], into: Option<&mut PartitionMut<'_, [u8], Vec<Count>, Vec<Count>>>| match (
            root, into,
        ) {
            (None, Some(partition)) => world.all_gather_varcount_into(send, partition),
            (Some(root), Some(partition)) => world
                .process_at_rank(root)
                .gather_varcount_into_root(send, partition),
            (Some(root), None) => world.process_at_rank(root).gather_varcount_into(send),
            (None, None) => unreachable!("every rank receives an all-gather"),
        };
    for round in 0..rounds {
        let piece = |length: u64| -> usize {
            let start = (round * limit).min(length as usize);
            (length as usize - start).min(limit)
        };
        let counts: Vec<Count> = lengths.iter().map(|&l| piece(l) as Count).collect();
        let start = (round * limit).min(local.len());
        let send = &local[start..start + piece(local.len() as u64)];
        // An empty slice's address is a dangling 0x1, which is Open MPI's
        // MPI_IN_PLACE: a rank with nothing to send would be refused
        // (MPI_ERR_ARG). Send nothing from a real address instead.
        let nothing = [0u8; 1];
        let send = if send.is_empty() { &nothing[..0] } else { send };
        if !receives {
            exchange(send, None);
            continue;
        }
        if rounds == 1 {
            // Everything fits one round: receive in place.
            let displacements: Vec<Count> = starts.iter().map(|&s| s as Count).collect();
            let mut partition = PartitionMut::new(&mut gathered[..], counts, displacements);
            exchange(send, Some(&mut partition));
            break;
        }
        let displacements: Vec<Count> = counts
            .iter()
            .scan(0 as Count, |offset, &count| {
                let start = *offset;
                *offset += count;
                Some(start)
            })
            .collect();
        let received: usize = counts.iter().map(|&c| c as usize).sum();
        let mut receive = vec![0u8; received];
        {
            let mut partition =
                PartitionMut::new(&mut receive[..], counts.clone(), displacements.clone());
            exchange(send, Some(&mut partition));
        }
        for (rank, (&offset, &count)) in displacements.iter().zip(&counts).enumerate() {
            let at = starts[rank] + round * limit;
            gathered[at..at + count as usize]
                .copy_from_slice(&receive[offset as usize..(offset + count) as usize]);
        }
    }
    Ok(receives.then_some(Gathered {
        bytes: gathered,
        ends,
    }))
}

/// Rank 0's `bytes` on every rank of `world` (collective): the length, then
/// the bytes in pieces of at most 1 GiB (MPI counts are `int`).
pub(super) fn broadcast_bytes_from_root(world: &SimpleCommunicator, mut bytes: Vec<u8>) -> Vec<u8> {
    let root = world.process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    bytes.resize(len as usize, 0);
    for piece in bytes.chunks_mut(1 << 30) {
        root.broadcast_into(piece);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_the_receive_buffer_within_32_bits() {
        assert_eq!(round_limit(1), 1 << 30);
        assert!(round_limit(2) * 2 <= i32::MAX as usize);
        assert!(round_limit(4) * 4 <= i32::MAX as usize);
        assert!(round_limit(1000) * 1000 <= i32::MAX as usize);
    }

    #[test]
    fn contributions_larger_than_a_round_arrive_whole() {
        // A single-rank MPI job (no mpiexec): enough to run the rounds.
        let backend = super::super::MpiBackend::new(1).expect("MPI starts as a singleton");
        let capabilities = crate::Backend::capabilities(&backend);
        assert_eq!((capabilities.rank, capabilities.ranks), (0, 1));
        let _serialized = super::super::env::enter().unwrap();
        let world = SimpleCommunicator::world();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for limit in [1, 7, 999, 1000, 4096] {
            for root in [None, Some(0)] {
                let gathered = gather_bytes_in_rounds(&world, &data, limit, root)
                    .unwrap()
                    .expect("rank 0 receives");
                assert_eq!(gathered.ranks(), 1);
                assert_eq!(gathered.of(0), &data[..], "limit {limit}, root {root:?}");
            }
        }
        assert_eq!(
            gather_bytes_to_root(&world, &data).unwrap().unwrap().of(0),
            &data[..]
        );
        assert_eq!(all_gather_bytes(&world, &[]).unwrap().of(0), &[] as &[u8]);
    }
}
