//! The lesson's workloads on [`parpool`], as library code the examples and
//! benchmarks share and users can call: Monte-Carlo pi ([`pi`]) and dense
//! matrix inversion ([`invert`]).
//!
//! Each workload is a plain function of its inputs plus a helper that runs
//! it through a [`Pool`](parpool::Pool), so the same numbers come out on
//! every backend and worker count. They live in a crate of their own so
//! that depending on `parpool` does not compile faer and rand_xoshiro.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod invert;
pub mod pi;
mod simd;

/// Why a workload produced no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input cannot be worked on: a matrix that is not finite or is
    /// singular to working precision. The text says which and where.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The pool's call failed (a task panicked, a worker crashed).
    #[error(transparent)]
    Pool(#[from] parpool::Error),
}

impl Error {
    /// True if the workload rejected its input (see
    /// [`Error::InvalidInput`]).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput(_))
    }
}
