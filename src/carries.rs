//! How a pool's values travel: the type parameter of [`Pool`](crate::Pool).
//!
//! One pool type serves two promises. [`Pool`](crate::Pool) (that is,
//! `PoolOf<Portable>`) may run its tasks in worker processes or on other MPI
//! ranks, so its results (and a stream's items) must be serializable.
//! [`LocalPool`](crate::LocalPool) (`PoolOf<Local>`) never leaves this
//! process, so anything `Send` will do. The methods are the same; only the
//! bounds differ, and they are written `C: Carries<R>`: "this pool can
//! carry an `R`".
//!
//! ```
//! use parpool::{LocalPool, Pool};
//!
//! // Any results at all, on a local pool...
//! let local: LocalPool = Pool::local();
//! let opened = local.map(|name: &str| std::fs::File::open(name), ["Cargo.toml"])?;
//! assert!(opened[0].is_ok());
//!
//! // ...serializable ones on a portable pool, which may fork or use MPI.
//! let pool: Pool = Pool::new();
//! assert_eq!(pool.map(|x: u8| x * 2, [1, 2])?, [2, 4]);
//! # Ok::<(), parpool::Error>(())
//! ```
//!
//! The trait is sealed: [`Portable`] and [`Local`] are the only codecs.

use crate::error::Error;
use crate::job::codec::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Results may cross process boundaries: they are encoded with serde
/// (postcard) on the process and MPI backends. The default parameter of
/// [`Pool`](crate::Pool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Portable;

/// Results stay in this process, so they need no serde: the parameter of
/// [`LocalPool`](crate::LocalPool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Local;

/// A pool whose codec is `Self` can carry values of type `V`: every type
/// for [`Local`], serde types (`Serialize + DeserializeOwned`) for
/// [`Portable`].
#[diagnostic::on_unimplemented(
    message = "a `Pool` cannot carry `{V}`: its values must be `Serialize + DeserializeOwned`",
    label = "`{V}` is not serializable",
    note = "a `Pool` may run tasks in other processes; for values that never leave this \
            process, use `Pool::local()` (a `LocalPool`)"
)]
pub trait Carries<V>: sealed::CodecFor<V> {}

impl<V: Serialize + DeserializeOwned> Carries<V> for Portable {}
impl<V> Carries<V> for Local {}

pub(crate) mod sealed {
    use super::*;

    /// The name a pool with this codec goes by, for `Debug`.
    pub trait Named {
        /// `Pool` or `LocalPool`.
        const POOL_NAME: &'static str;
    }

    impl Named for Portable {
        const POOL_NAME: &'static str = "Pool";
    }

    impl Named for Local {
        const POOL_NAME: &'static str = "LocalPool";
    }

    /// The codecs behind [`Carries`]; private, so no other codec exists.
    pub trait CodecFor<V> {
        /// The codec of plain values (`map` results, stream items).
        fn values() -> Codec<V>;
        /// The codec of per-item results (`map_results`, streams).
        fn results() -> Codec<Result<V, Error>>;
    }

    impl<V: Serialize + DeserializeOwned> CodecFor<V> for Portable {
        fn values() -> Codec<V> {
            Codec::values()
        }
        fn results() -> Codec<Result<V, Error>> {
            Codec::results()
        }
    }

    impl<V> CodecFor<V> for Local {
        fn values() -> Codec<V> {
            Codec::local()
        }
        fn results() -> Codec<Result<V, Error>> {
            Codec::local()
        }
    }
}
