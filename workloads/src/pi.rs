//! Monte-Carlo pi: throw darts at the unit square, count those inside the
//! quarter circle; `4 * inside / n` estimates pi.
//!
//! [`sample`] returns `(n, inside)` exactly as the lesson's function does,
//! on a fast kernel: [`LANES`] independent Xoshiro256++ generators run in
//! lock-step (state kept as one array per state word), so the compiler turns
//! the loop into SIMD code. The kernel is compiled three times, for AVX-512,
//! AVX2 and plain x86-64 (or whatever the target is), and the best one the
//! CPU supports is chosen at run time: the default build is fast without
//! `-C target-cpu=native`, and every variant gives the same counts.
//!
//! Each dart uses one 64-bit output: its upper 32 bits are `x`, its lower 32
//! bits `y`, both integers in `0..2^32`, and the dart is inside when
//! `x² + y² < 2^64`, an exact integer test (no floating-point rounding).
//!
//! # Reproducible streams
//!
//! [`PiStream::new(seed, task)`](PiStream::new) derives a task's generators
//! from one seed: the task's rand_xoshiro generator is seeded (through
//! SplitMix64, as `seed_from_u64` does) with a hash of `(seed, task)`, and
//! lane `j` is that generator after `j` calls of `jump()` (2^128 steps
//! each), so the lanes of a task never overlap. A task's darts depend only
//! on `(seed, task)`, never on which worker runs it, so [`estimate`] gives
//! the same count on every backend and worker count. (Jumping `task * 2^128`
//! steps with `jump_ce` would make tasks provably disjoint too, but costs
//! about 1.6 ms per stream here, more than a task of 10^6 darts.)

use parpool::{Error, Pool};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Generators per stream, run in lock-step (one AVX-512 register of `u64`).
pub const LANES: usize = 8;

/// The darts of one task: [`LANES`] Xoshiro256++ generators in lock-step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiStream {
    /// `words[k][lane]` is state word `k` of generator `lane`.
    words: [[u64; LANES]; 4],
    /// The lane the next dart comes from (darts are dealt round-robin).
    next_lane: usize,
}

/// SplitMix64's output function, used to hash `(seed, task)`.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rand_xoshiro generator of task `task` under `seed`.
fn task_generator(seed: u64, task: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(splitmix64(seed) ^ task))
}

/// The state of a rand_xoshiro generator, read through its serde form
/// (`{ s: [u64; 4] }`); the crate has no other way to hand it out.
#[derive(Deserialize)]
struct XoshiroState {
    s: [u64; 4],
}

fn state_of(generator: &Xoshiro256PlusPlus) -> [u64; 4] {
    let bytes = postcard::to_stdvec(generator).expect("a [u64; 4] always encodes");
    let state: XoshiroState =
        postcard::from_bytes(&bytes).expect("rand_xoshiro serializes its state as { s: [u64; 4] }");
    state.s
}

impl PiStream {
    /// The stream of task `task` under `seed` (see the module docs).
    // `lane` picks a column of the state words, which an iterator over
    // `words` (rows) cannot express.
    #[allow(clippy::needless_range_loop)]
    pub fn new(seed: u64, task: u64) -> PiStream {
        let mut generator = task_generator(seed, task);
        let mut words = [[0u64; LANES]; 4];
        for lane in 0..LANES {
            for (word, value) in state_of(&generator).into_iter().enumerate() {
                words[word][lane] = value;
            }
            generator.jump();
        }
        PiStream {
            words,
            next_lane: 0,
        }
    }

    /// One step of every lane; returns each lane's output.
    #[inline(always)]
    fn step(&mut self) -> [u64; LANES] {
        let mut out = [0u64; LANES];
        for (lane, out) in out.iter_mut().enumerate() {
            *out = self.advance_lane(lane);
        }
        out
    }

    /// One Xoshiro256++ step of lane `lane`; returns its output.
    #[inline(always)]
    fn advance_lane(&mut self, lane: usize) -> u64 {
        let [s0, s1, s2, s3] = &mut self.words;
        let out = s0[lane]
            .wrapping_add(s3[lane])
            .rotate_left(23)
            .wrapping_add(s0[lane]);
        let t = s1[lane] << 17;
        s2[lane] ^= s0[lane];
        s3[lane] ^= s1[lane];
        s1[lane] ^= s2[lane];
        s0[lane] ^= s3[lane];
        s2[lane] ^= t;
        s3[lane] = s3[lane].rotate_left(45);
        out
    }
}

/// True if the dart encoded in `bits` lands inside the quarter circle.
#[inline(always)]
fn inside(bits: u64) -> bool {
    let x = bits >> 32;
    let y = bits & 0xffff_ffff;
    !(x * x).overflowing_add(y * y).1
}

/// `blocks` full steps of all lanes; returns the darts inside.
#[inline(always)]
fn count_blocks(stream: &mut PiStream, blocks: u64) -> u64 {
    let mut hits = [0u64; LANES];
    for _ in 0..blocks {
        let out = stream.step();
        for lane in 0..LANES {
            hits[lane] += u64::from(inside(out[lane]));
        }
    }
    hits.iter().sum()
}

crate::simd::multiversion! {
    /// [`count_blocks`] on the CPU's widest vectors.
    fn count_blocks_best / count_blocks_at(stream: &mut PiStream, blocks: u64) -> u64 = count_blocks;
}

/// Which kernel this CPU runs: `"avx512"`, `"avx2"` or `"portable"`.
pub fn kernel_name() -> &'static str {
    crate::simd::Level::best().name()
}

/// Throws `n` darts from `stream`; returns `(n, inside)`.
///
/// Darts are dealt round-robin over the lanes, so `sample(a)` then
/// `sample(b)` gives the same total as `sample(a + b)`.
///
/// ```
/// use parpool_workloads::pi::{PiStream, sample};
///
/// let (n, inside) = sample(1_000_000, &mut PiStream::new(42, 0));
/// let estimate = 4.0 * inside as f64 / n as f64;
/// assert!((estimate - std::f64::consts::PI).abs() < 0.01);
/// ```
pub fn sample(n: u64, stream: &mut PiStream) -> (u64, u64) {
    let mut remaining = n;
    let mut inside_count = 0;
    // Finish a partly used block one dart at a time.
    while remaining > 0 && stream.next_lane != 0 {
        inside_count += u64::from(single_dart(stream));
        remaining -= 1;
    }
    let blocks = remaining / LANES as u64;
    inside_count += count_blocks_best(stream, blocks);
    remaining -= blocks * LANES as u64;
    while remaining > 0 {
        inside_count += u64::from(single_dart(stream));
        remaining -= 1;
    }
    (n, inside_count)
}

/// One dart from the next lane, advancing only that lane, so partial
/// blocks stay consistent with whole ones.
fn single_dart(stream: &mut PiStream) -> bool {
    let lane = stream.next_lane;
    let bits = stream.advance_lane(lane);
    stream.next_lane = (lane + 1) % LANES;
    inside(bits)
}

/// The plain scalar loop the kernel is measured against: one rand_xoshiro
/// Xoshiro256++ generator, one dart per output, the same inside test.
pub fn sample_scalar(n: u64, generator: &mut Xoshiro256PlusPlus) -> (u64, u64) {
    let mut inside_count = 0;
    for _ in 0..n {
        inside_count += u64::from(inside(generator.next_u64()));
    }
    (n, inside_count)
}

/// The result of [`estimate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiEstimate {
    /// Darts thrown.
    pub darts: u64,
    /// Darts inside the quarter circle.
    pub inside: u64,
}

impl PiEstimate {
    /// No darts: the identity of [`combine`](PiEstimate::combine).
    pub const ZERO: PiEstimate = PiEstimate {
        darts: 0,
        inside: 0,
    };

    /// The two counts together.
    pub fn combine(self, other: PiEstimate) -> PiEstimate {
        PiEstimate {
            darts: self.darts + other.darts,
            inside: self.inside + other.inside,
        }
    }

    /// `4 * inside / darts`.
    pub fn value(&self) -> f64 {
        4.0 * self.inside as f64 / self.darts as f64
    }
}

/// Runs `tasks` tasks of `samples_per_task` darts each through `pool`; task
/// `t` uses [`PiStream::new(seed, t)`](PiStream::new), so the count depends
/// only on `(seed, tasks, samples_per_task)`.
///
/// ```
/// use parpool::{BackendKind, Pool};
/// use parpool_workloads::pi;
///
/// let serial = Pool::builder().kind(BackendKind::Serial).build()?;
/// let threads = Pool::builder().kind(BackendKind::Threads).workers(2).build()?;
/// let a = pi::estimate(&serial, 10, 100_000, 7)?;
/// let b = pi::estimate(&threads, 10, 100_000, 7)?;
/// assert_eq!(a, b);
/// assert!((a.value() - std::f64::consts::PI).abs() < 0.01);
/// # Ok::<(), parpool::Error>(())
/// ```
pub fn estimate(
    pool: &Pool,
    tasks: u64,
    samples_per_task: u64,
    seed: u64,
) -> Result<PiEstimate, Error> {
    estimate_tasks(pool, 0..tasks, samples_per_task, seed)
}

/// [`estimate`] over the given task numbers only: each task `t` draws from
/// its stream (seed, t), so the counts of any split of `0..tasks` (one
/// share per MPI rank, say) add up to `estimate(pool, tasks, ..)`'s.
///
/// ```
/// use parpool::{BackendKind, Pool};
/// use parpool_workloads::pi;
///
/// let pool = Pool::builder().kind(BackendKind::Serial).build()?;
/// let whole = pi::estimate(&pool, 10, 10_000, 7)?;
/// let even = pi::estimate_tasks(&pool, (0..10).step_by(2), 10_000, 7)?;
/// let odd = pi::estimate_tasks(&pool, (1..10).step_by(2), 10_000, 7)?;
/// assert_eq!(whole.inside, even.inside + odd.inside);
/// # Ok::<(), parpool::Error>(())
/// ```
pub fn estimate_tasks(
    pool: &Pool,
    tasks: impl IntoIterator<Item = u64>,
    samples_per_task: u64,
    seed: u64,
) -> Result<PiEstimate, Error> {
    pool.map_reduce(
        |task: u64| run_task(task, samples_per_task, seed),
        tasks,
        PiEstimate::ZERO,
        PiEstimate::combine,
    )
}

/// Task `task` of [`estimate`]: `samples` darts from the stream of
/// (seed, task). The function a pool maps; [`PiEstimate::combine`] combines.
pub fn run_task(task: u64, samples: u64, seed: u64) -> PiEstimate {
    let (darts, inside) = sample(samples, &mut PiStream::new(seed, task));
    PiEstimate { darts, inside }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lane_is_the_rand_xoshiro_generator_it_was_cut_from() {
        let mut base = task_generator(5, 3);
        let mut stream = PiStream::new(5, 3);
        let mut lanes: Vec<Xoshiro256PlusPlus> = (0..LANES)
            .map(|_| {
                let lane = base.clone();
                base.jump();
                lane
            })
            .collect();
        for _ in 0..100 {
            let out = stream.step();
            for lane in 0..LANES {
                assert_eq!(out[lane], lanes[lane].next_u64());
            }
        }
    }

    #[test]
    fn every_kernel_and_any_split_give_the_same_count() {
        let whole = sample(10_003, &mut PiStream::new(1, 0));
        let mut stream = PiStream::new(1, 0);
        let (a, b, c) = (
            sample(5, &mut stream),
            sample(4_000, &mut stream),
            sample(5_998, &mut stream),
        );
        assert_eq!(whole, (10_003, a.1 + b.1 + c.1));
        let mut portable = PiStream::new(1, 0);
        let mut best = PiStream::new(1, 0);
        assert_eq!(
            count_blocks_at(crate::simd::Level::Portable, &mut portable, 1000),
            count_blocks_best(&mut best, 1000)
        );
        assert_eq!(portable, best);
    }

    #[test]
    fn tasks_get_different_streams_and_the_estimate_is_close() {
        assert_ne!(PiStream::new(1, 0), PiStream::new(1, 1));
        assert_ne!(PiStream::new(1, 0), PiStream::new(2, 0));
        assert_ne!(PiStream::new(0, 1), PiStream::new(1, 0));
        let (n, inside) = sample(4_000_000, &mut PiStream::new(9, 0));
        let estimate = 4.0 * inside as f64 / n as f64;
        // Standard error is about 0.0008 here; 0.005 is more than 6 sigma.
        assert!(
            (estimate - std::f64::consts::PI).abs() < 0.005,
            "{estimate}"
        );
    }

    #[test]
    fn the_scalar_loop_agrees_in_distribution() {
        let (n, inside) = sample_scalar(1_000_000, &mut Xoshiro256PlusPlus::seed_from_u64(3));
        assert!((4.0 * inside as f64 / n as f64 - std::f64::consts::PI).abs() < 0.01);
    }
}
