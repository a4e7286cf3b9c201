//! What makes two calls the same call ([`CallIdentity`]), and the digest
//! of a chunk's inputs. Both are 128-bit XXH3 hashes of postcard bytes
//! (or, for items that are plain numbers, of their little-endian memory):
//! stable across runs, machines and Rust versions (unlike `std`'s
//! `DefaultHasher`), and fast enough to hash every input of a call.

use crate::job::codec::flavor;
use crate::plan::ChunkPlan;
use rayon::prelude::*;
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

/// Calls of fewer items digest them on the calling thread.
const PARALLEL_ITEMS: usize = 1 << 14;

/// The digest of each chunk's items under `plan` (see [`digest_items`]).
/// `Err` names the first item whose `Serialize` fails. A large call of a
/// pool of several `workers` digests its chunks on the shared threads
/// (the items are borrowed mutably, one chunk per thread, so they need
/// only be `Send`); a digest is the same on any thread.
pub(crate) fn chunk_digests<T: Serialize + Send>(
    items: &mut [T],
    plan: ChunkPlan,
    workers: usize,
) -> Result<Vec<u128>, usize> {
    let size = plan.chunk_size();
    let digest = |bytes: &mut Vec<u8>, (chunk, items): (usize, &mut [T])| {
        digest_into(bytes, items).map_err(|offset| chunk * size + offset)
    };
    let threads = (workers > 1 && items.len() >= PARALLEL_ITEMS && plan.chunk_count() > 1)
        .then(crate::backend::shared_threads)
        .and_then(Result::ok);
    let digests: Vec<Result<u128, usize>> = match threads {
        Some(threads) => threads.install(|| {
            items
                .par_chunks_mut(size)
                .enumerate()
                .map_init(Vec::new, digest)
                .collect()
        }),
        None => {
            let mut bytes = Vec::new();
            items
                .chunks_mut(size)
                .enumerate()
                .map(|chunk| digest(&mut bytes, chunk))
                .collect()
        }
    };
    // The first failing item, in item order.
    digests.into_iter().collect()
}

/// The XXH3-128 of the items' postcard bytes as one sequence (postcard
/// writes the count, and each value delimits itself, so different item
/// lists never give the same bytes). `Err` gives the offset of the first
/// item whose `Serialize` fails.
pub(crate) fn digest_items<T: Serialize>(items: &[T]) -> Result<u128, usize> {
    digest_into(&mut Vec::new(), items)
}

/// [`digest_items`], encoding into `bytes` (cleared first; a caller may
/// reuse it). Items of a fixed-width number type are hashed as their
/// memory instead (see [`memory_of_numbers`]).
fn digest_into<T: Serialize>(bytes: &mut Vec<u8>, items: &[T]) -> Result<u128, usize> {
    if let Some(memory) = memory_of_numbers(items) {
        return Ok(xxh3_128(memory));
    }
    bytes.clear();
    match flavor::append(items, bytes) {
        Ok(()) => Ok(xxh3_128(bytes)),
        Err(_) => Err(items
            .iter()
            .position(|item| postcard::to_stdvec(item).is_err())
            .unwrap_or(0)),
    }
}

/// The memory of `items` if they are fixed-width numbers (`u8` to
/// `u128`, `i8` to `i128`, `f32`, `f64`) on a little-endian machine: their
/// little-endian bytes, the same on every such machine, which one hash
/// reads at memory speed instead of a serializer's call per item. Every
/// chunk of a call has the same item type (the call's identity names it),
/// and every chunk but the last the same length, so this is as injective
/// as postcard's bytes.
fn memory_of_numbers<T>(items: &[T]) -> Option<&[u8]> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    let id = typeid::of::<T>();
    macro_rules! one_of {
        ($($number:ty),*) => { false $(|| id == typeid::of::<$number>())* };
    }
    if !one_of!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64) {
        return None;
    }
    // SAFETY: `T` is one of these numbers, which have no padding, so the
    // slice's memory is `size_of_val(items)` initialised bytes.
    Some(unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), size_of_val(items)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_see_every_item_and_every_boundary() {
        let plan = ChunkPlan::new(6, 3);
        let a = chunk_digests(&mut [1u64, 2, 3, 4, 5, 6], plan, 1).unwrap();
        let b = chunk_digests(&mut [1u64, 2, 3, 4, 5, 7], plan, 1).unwrap();
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        // Items are length-prefixed: ["ab", "c"] is not ["a", "bc"].
        let plan = ChunkPlan::new(2, 2);
        let split =
            |x: &str, y: &str| chunk_digests(&mut [x.to_string(), y.to_string()], plan, 1).unwrap();
        assert_ne!(split("ab", "c"), split("a", "bc"));
    }

    #[test]
    fn numbers_are_hashed_as_their_memory_and_see_every_bit() {
        let plan = ChunkPlan::new(4, 2);
        let floats = chunk_digests(&mut [1.0f64, 2.0, 0.0, 4.0], plan, 1).unwrap();
        let negative_zero = chunk_digests(&mut [1.0f64, 2.0, -0.0, 4.0], plan, 1).unwrap();
        assert_eq!(floats[0], negative_zero[0]);
        assert_ne!(floats[1], negative_zero[1]);
        assert_eq!(
            floats[0],
            xxh3_128(&[1.0f64.to_le_bytes(), 2.0f64.to_le_bytes()].concat())
        );
        assert!(memory_of_numbers(&[1u64]).is_some());
        assert!(memory_of_numbers(&[(1u64, 2u64)]).is_none());
        assert!(memory_of_numbers(&["x"]).is_none());
        // Many items, digested on the shared threads: the same digests.
        let mut many: Vec<u64> = (0..100_000).collect();
        let plan = ChunkPlan::new(many.len(), 1000);
        let mut strings: Vec<String> = many.iter().map(u64::to_string).collect();
        let parallel = chunk_digests(&mut strings, plan, 2).unwrap();
        assert_eq!(parallel, chunk_digests(&mut strings, plan, 1).unwrap());
        assert_eq!(parallel[7], digest_items(&strings[7000..8000]).unwrap());
        assert_eq!(
            chunk_digests(&mut many, plan, 2).unwrap(),
            chunk_digests(&mut many, plan, 1).unwrap()
        );
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
