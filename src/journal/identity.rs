//! What makes two calls the same call ([`CallIdentity`]), and the digest
//! of a chunk's inputs. Both are 128-bit XXH3 hashes of postcard bytes:
//! stable across runs, machines and Rust versions (unlike `std`'s
//! `DefaultHasher`), and fast enough to hash every input of a call.

use crate::plan::ChunkPlan;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

/// Everything that names a journaled call; see [`Journal`](crate::Journal)'s
/// docs. Hashed into the call's id.
#[derive(Serialize)]
pub(crate) struct CallIdentity<'a> {
    /// The format of this identity: a new one never matches old records.
    pub(crate) format: u32,
    /// `map`, `map_results`, `map_init`, `map_reduce`, `map_gather`, `imap`.
    pub(crate) method: &'static str,
    /// The key the caller gave, else the call's place (`file:line:column`).
    pub(crate) place: &'a str,
    /// Journaled calls made at that place (or with that key) before this
    /// one, this run.
    pub(crate) occurrence: u64,
    /// The type names of the function(s), the items and the results.
    pub(crate) types: [&'static str; 3],
    /// Anything else the results depend on (`map_reduce`'s identity and
    /// operation), hashed.
    pub(crate) extra: u128,
    /// Items (0 for a stream, whose length is unknown) and chunk size.
    pub(crate) items: u64,
    pub(crate) chunk_size: u64,
}

impl CallIdentity<'_> {
    /// The call's id.
    pub(crate) fn id(&self) -> u128 {
        let bytes = postcard::to_stdvec(self).expect("an identity of strings and numbers encodes");
        xxh3_128(&bytes)
    }
}

/// The hash of a place or key, to count the calls made there.
pub(crate) fn place_id(place: &str) -> u128 {
    xxh3_128(place.as_bytes())
}

/// The hash of `value`'s postcard bytes (0 if it cannot be encoded).
pub(crate) fn digest_of<V: Serialize + ?Sized>(value: &V) -> u128 {
    postcard::to_stdvec(value).map_or(0, |bytes| xxh3_128(&bytes))
}

/// The digest of each chunk's items under `plan` (see [`digest_items`]).
/// `Err` names the first item whose `Serialize` fails.
pub(crate) fn chunk_digests<T: Serialize>(
    items: &[T],
    plan: ChunkPlan,
) -> Result<Vec<u128>, usize> {
    (0..plan.chunk_count())
        .map(|chunk| {
            let range = plan.chunk_range(chunk);
            digest_items(&items[range.clone()]).map_err(|offset| range.start + offset)
        })
        .collect()
}

/// The XXH3-128 of the items' postcard bytes as one sequence (postcard
/// writes the count, and each value delimits itself, so different item
/// lists never give the same bytes). `Err` gives the offset of the first
/// item whose `Serialize` fails.
pub(crate) fn digest_items<T: Serialize>(items: &[T]) -> Result<u128, usize> {
    match postcard::to_stdvec(items) {
        Ok(bytes) => Ok(xxh3_128(&bytes)),
        Err(_) => Err(items
            .iter()
            .position(|item| postcard::to_stdvec(item).is_err())
            .unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_see_every_item_and_every_boundary() {
        let plan = ChunkPlan::new(6, 3);
        let a = chunk_digests(&[1u64, 2, 3, 4, 5, 6], plan).unwrap();
        let b = chunk_digests(&[1u64, 2, 3, 4, 5, 7], plan).unwrap();
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        // Items are length-prefixed: ["ab", "c"] is not ["a", "bc"].
        let plan = ChunkPlan::new(2, 2);
        let split =
            |x: &str, y: &str| chunk_digests(&[x.to_string(), y.to_string()], plan).unwrap();
        assert_ne!(split("ab", "c"), split("a", "bc"));
    }

    #[test]
    fn an_identity_changes_with_each_part() {
        let base = CallIdentity {
            format: 1,
            method: "map",
            place: "src/main.rs:3:5",
            occurrence: 0,
            types: ["f", "u64", "u64"],
            extra: 0,
            items: 10,
            chunk_size: 2,
        };
        let id = base.id();
        assert_eq!(
            id,
            CallIdentity { ..base }.id(),
            "the same call, the same id"
        );
        for other in [
            CallIdentity {
                method: "map_results",
                ..base
            },
            CallIdentity {
                place: "src/main.rs:4:5",
                ..base
            },
            CallIdentity {
                occurrence: 1,
                ..base
            },
            CallIdentity {
                types: ["g", "u64", "u64"],
                ..base
            },
            CallIdentity { items: 11, ..base },
            CallIdentity {
                chunk_size: 3,
                ..base
            },
        ] {
            assert_ne!(other.id(), id);
        }
    }
}
