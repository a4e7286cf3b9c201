//! How a job's values travel between processes: postcard, chosen when the
//! job is made, so the job types themselves carry no serde bounds.
//!
//! Task errors travel in their crate-private wire form
//! ([`ErrorWire`](crate::error::ErrorWire)), which is why results that hold
//! an [`Error`] (`try_map`'s and a stream's) have a codec of their own.

use crate::error::{Error, ErrorWire};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes and decodes runs of `V` (postcard underneath).
pub(crate) struct Codec<V> {
    encode: fn(&[V]) -> Result<Vec<u8>, postcard::Error>,
    decode: fn(&[u8]) -> Result<Vec<V>, postcard::Error>,
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Codec<V> {}

impl<V> Codec<V> {
    pub(crate) fn encode(&self, values: &[V]) -> Result<Vec<u8>, postcard::Error> {
        (self.encode)(values)
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Vec<V>, postcard::Error> {
        (self.decode)(bytes)
    }
}

impl<V: Serialize + DeserializeOwned> Codec<V> {
    /// Plain serde values.
    pub(crate) fn values() -> Codec<V> {
        Codec {
            encode: |values| postcard::to_stdvec(values),
            decode: |bytes| postcard::from_bytes(bytes),
        }
    }
}

impl<R: Serialize + DeserializeOwned> Codec<Result<R, Error>> {
    /// Per-item results, errors in their wire form.
    pub(crate) fn results() -> Codec<Result<R, Error>> {
        Codec {
            encode: |values| {
                let wire: Vec<Result<&R, ErrorWire>> = values
                    .iter()
                    .map(|result| {
                        result
                            .as_ref()
                            .map_err(|error| ErrorWire::from(error.clone()))
                    })
                    .collect();
                postcard::to_stdvec(&wire)
            },
            decode: |bytes| {
                let wire: Vec<Result<R, ErrorWire>> = postcard::from_bytes(bytes)?;
                Ok(wire
                    .into_iter()
                    .map(|result| result.map_err(Error::from))
                    .collect())
            },
        }
    }
}
