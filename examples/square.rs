//! The lesson's first example: squares of 1..=6 on every backend compiled
//! in, or on the one `PARPOOL_BACKEND` names.
//!
//! ```text
//! cargo run --example square
//! PARPOOL_BACKEND=serial cargo run --example square
//! ```

use parpool::{BackendKind, Pool};

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), parpool::Error> {
    let pools = if std::env::var_os(parpool::env::BACKEND).is_some() {
        vec![Pool::from_env()?]
    } else {
        BackendKind::AVAILABLE
            .iter()
            .map(|&kind| Pool::builder().kind(kind).build())
            .collect::<Result<Vec<_>, _>>()?
    };
    for pool in pools {
        let squares = pool.map(square, vec![1, 2, 3, 4, 5, 6])?;
        println!(
            "{:<9} {} worker(s): {squares:?}",
            pool.kind().name(),
            pool.workers()
        );
        assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
    }
    Ok(())
}
