//! The lesson's workloads, as library code the examples and benchmarks
//! share and users can call: Monte-Carlo pi ([`pi`]) and dense matrix
//! inversion ([`invert`]).
//!
//! Each workload is a plain function of its inputs plus a helper that runs
//! it through a [`Pool`](crate::Pool), so the same numbers come out on
//! every backend and worker count.

pub mod invert;
pub mod pi;
