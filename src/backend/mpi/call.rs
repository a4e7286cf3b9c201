//! A plain call (`map`, `map_results`, `map_reduce`) across the ranks: claim
//! chunks from the shared counter while the call runs, agree on failures,
//! then all-gather the results (or gather them to rank 0, for `map_gather`).

use super::counter::{Counter, STOP};
use super::gather::{all_gather_bytes, gather_bytes_to_root};
use super::records::{self, RECEIVE_POLL};
use crate::backend::wire::{self, FrameKind};
use crate::error::Error;
use crate::job::ChunkJob;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::mpsc;
use std::time::Duration;

/// How often a rank whose threads are all busy looks at the counter for a
/// stop from another rank.
const STOP_POLL: Duration = Duration::from_millis(10);
/// How often rank 0, which hosts the counter, calls MPI while its threads
/// are busy. Many MPI libraries (MPICH over UCX among them) carry out
/// another rank's `MPI_Fetch_and_op` only while the host is inside an MPI
/// call, and the other rank spins until then: measured here, 5 to 14 ms
/// per claim with a 10 ms interval, which cost 10% of a 2-rank run.
const HOST_POLL: Duration = Duration::from_micros(200);

/// What this rank did in the call.
struct RankOutcome {
    /// The encoded results of the chunks this rank ran, as wire frames.
    blob: Vec<u8>,
    /// The failure with the lowest item index among this rank's chunks, or
    /// a cancellation of this rank's call.
    failure: Option<Error>,
}

/// Runs `job` on every rank of `world` (collective), on `threads`.
pub(super) fn run(
    world: &SimpleCommunicator,
    one_node: bool,
    (threads, workers): (&rayon::ThreadPool, usize),
    job: &dyn ChunkJob,
) -> Result<(), Error> {
    let counter = Counter::new(world, one_node);
    let host = world.rank() == 0 && !one_node;
    // One rank has nobody to send results to: they stay where they are.
    let alone = world.size() == 1;
    // Gathered to rank 0 (`map_gather`): rank 0 keeps its own as they are.
    let to_root = job.gathers_to_root();
    let receives_all = to_root && world.rank() == 0;
    let encode = !(alone || receives_all);
    // The other ranks of a `map_gather` keep only the encoded bytes.
    let release = to_root && world.rank() != 0;
    // A journaled call, or one that gathers to rank 0: each chunk goes to
    // rank 0 as it finishes, where a `map_gather` decodes it at once, so
    // rank 0 never holds more than one chunk's bytes beside the results.
    let records = (job.records_at_root() || to_root) && !alone;
    let flow = Flow {
        host,
        encode,
        release,
        records,
    };
    let outcome = claim_and_run(world, &counter, flow, (threads, workers), job);
    // Collective: returns once every rank has stopped claiming.
    drop(counter);
    // Agree: everyone learns every rank's first failure (no bytes for
    // none, else the error's wire form).
    let status = outcome
        .failure
        .map(|error| error.to_wire())
        .unwrap_or_default();
    let statuses = all_gather_bytes(world, &status)?;
    let mut any_failed = false;
    for rank in 0..statuses.ranks() {
        let status = statuses.of(rank);
        if !status.is_empty() {
            any_failed = true;
            job.record_failure(Error::from_wire(status, "mpi"));
        }
    }
    if any_failed || alone {
        return Ok(());
    }
    // Exchange results; accept the chunks the other ranks ran. For
    // `map_gather` only rank 0 receives them.
    let rank = world.rank() as usize;
    let blobs = if to_root {
        gather_bytes_to_root(world, &outcome.blob)?
    } else {
        Some(all_gather_bytes(world, &outcome.blob)?)
    };
    drop(outcome.blob);
    let Some(blobs) = blobs else {
        return Ok(());
    };
    for other in (0..blobs.ranks()).filter(|&other| other != rank) {
        let blob = blobs.of(other);
        let frames = wire::split(blob)
            .ok_or_else(|| Error::backend("mpi", format!("truncated results from rank {other}")))?;
        for (header, bytes) in frames {
            if records && rank == 0 && job.is_chunk_done(header.id) {
                continue; // taken as a record during the call
            }
            if let Err(error) = job.accept_chunk(header.id, bytes) {
                job.record_failure(error);
            }
        }
    }
    Ok(())
}

/// Where a rank's results go.
struct Flow {
    /// Other ranks reach the counter through this rank's MPI calls.
    host: bool,
    /// Other ranks need the results.
    encode: bool,
    /// This rank does not: they are dropped once encoded (a rank other
    /// than 0 of a call that gathers to the root).
    release: bool,
    /// Rank 0 journals each chunk as it finishes ([`records`]).
    records: bool,
}

/// Claims chunks from `counter` whenever one of `workers` threads is free
/// and runs them there, until no chunk is left or the call stops.
fn claim_and_run(
    world: &SimpleCommunicator,
    counter: &Counter,
    flow: Flow,
    (threads, workers): (&rayon::ThreadPool, usize),
    job: &dyn ChunkJob,
) -> RankOutcome {
    let Flow {
        host,
        encode,
        release,
        records,
    } = flow;
    let chunk_count = job.plan().chunk_count() as u64;
    let root = world.rank() == 0;
    let mut receiver = (records && root).then(|| records::Receiver::new(world));
    let poll = if receiver.is_some() {
        RECEIVE_POLL
    } else if host {
        HOST_POLL
    } else {
        STOP_POLL
    };
    // The other ranks of a call that gathers to the root: rank 0 has each
    // chunk from its record, so nothing is left to gather.
    let keep_blob = encode && !(records && release);
    let mut outcome = RankOutcome {
        blob: Vec::new(),
        failure: None,
    };
    let (sender, finished) = mpsc::channel::<(usize, Result<Vec<u8>, Error>)>();
    let mut running = 0usize;
    let mut claiming = true;
    // This rank told the others to stop, or learned that one of them did.
    let mut stop_sent = false;
    let mut stopped_elsewhere = false;
    threads.in_place_scope(|scope| {
        loop {
            if !stop_sent && !stopped_elsewhere && job.should_stop() {
                // A fail-fast failure here, or this rank's call was
                // cancelled: nobody starts another chunk.
                counter.stop();
                stop_sent = true;
                claiming = false;
            }
            while claiming && running < workers {
                let ticket = counter.claim();
                if ticket >= chunk_count {
                    claiming = false;
                    if ticket >= STOP && !stop_sent {
                        stopped_elsewhere = true;
                        job.stop();
                    }
                    break;
                }
                if job.is_chunk_done(ticket as usize) {
                    continue; // read back from the journal on every rank
                }
                running += 1;
                let sender = sender.clone();
                scope.spawn(move |_| {
                    let chunk = ticket as usize;
                    let result = job.run_chunk(chunk, None).and_then(|()| {
                        if !encode {
                            return Ok(Vec::new());
                        }
                        let bytes = job.encode_chunk(chunk);
                        if release && bytes.is_ok() {
                            job.release_chunk(chunk);
                        }
                        bytes
                    });
                    // The receiver outlives the scope.
                    let _ = sender.send((chunk, result));
                });
            }
            if running == 0 {
                break;
            }
            let finished = finished.recv_timeout(poll);
            if let Some(receiver) = &mut receiver {
                receiver.take_arrived(world, job);
            }
            match finished {
                Ok((chunk, Ok(bytes))) => {
                    running -= 1;
                    if records && !root {
                        records::send(world, chunk, &bytes);
                    }
                    if keep_blob {
                        wire::push(&mut outcome.blob, FrameKind::Results, chunk, &bytes);
                    }
                }
                Ok((_, Err(error))) => {
                    running -= 1;
                    // A halted or cancelled chunk is not a failure of its
                    // own; a cancelled call is reported below.
                    if !error.is_cancelled() {
                        let lower = outcome
                            .failure
                            .as_ref()
                            .is_none_or(|seen| error.task_index() < seen.task_index());
                        if lower {
                            outcome.failure = Some(error);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !stop_sent && !stopped_elsewhere && counter.is_stopped() {
                        stopped_elsewhere = true;
                        claiming = false;
                        job.stop();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the sender lives as long as the loop")
                }
            }
        }
    });
    match &mut receiver {
        Some(receiver) => receiver.take_until_ended(world, job),
        None if records => records::end(world),
        None => {}
    }
    if outcome.failure.is_none() && stop_sent {
        // Stopped with no failure of its own: the call was cancelled here.
        outcome.failure = Some(Error::cancelled(
            "the call was cancelled before all tasks ran",
        ));
    }
    outcome
}
