//! Pieces the examples share: flag parsing helpers, the
//! `main` wrapper and the backend x worker-count sweep.

#![allow(dead_code)] // each example uses a different subset

pub mod huge_pages;

use parpool::{BackendKind, Pool};

/// Runs an example: parse the flags (a bad flag prints the message and exits
/// with status 2), then run (an error prints and exits with status 1).
pub fn main_with<O, E: std::fmt::Display>(
    parse: impl FnOnce() -> Result<O, String>,
    run: impl FnOnce(&O) -> Result<(), E>,
) {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&options) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// Parses the value of `flag` as a non-negative integer.
pub fn number<T: std::str::FromStr>(flag: &str, text: Option<String>) -> Result<T, String> {
    let text = text.ok_or_else(|| format!("{flag} needs a value"))?;
    text.parse::<T>()
        .map_err(|_| format!("{flag} expects a non-negative integer, got {text:?}"))
}

/// Every (backend, workers) pair of a sweep: the serial backend once, the
/// others with 1..=max_workers workers, in the order given.
pub fn sweep(backends: &[BackendKind], max_workers: usize) -> Vec<(BackendKind, usize)> {
    backends
        .iter()
        .flat_map(|&kind| {
            let most = if kind == BackendKind::Serial {
                1
            } else {
                max_workers
            };
            (1..=most).map(move |workers| (kind, workers))
        })
        .collect()
}

/// A pool of `kind` with `workers` workers.
pub fn pool(kind: BackendKind, workers: usize) -> Result<Pool, parpool::Error> {
    Pool::builder().kind(kind).workers(workers).build()
}
