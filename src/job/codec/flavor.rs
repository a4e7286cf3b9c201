//! postcard's bytes, written faster: a [`Flavor`] that appends a
//! serializer's small writes (a varint, a fixed-width number: 1 to 16
//! bytes) with an inlined copy, not a call to `memcpy`. postcard's own
//! `Vec` flavor extends the vector once per primitive through a library
//! call, which cost most of the time of encoding (and of a journal's
//! digests of) many small values. The bytes are postcard's exactly.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// Writes are appended to a borrowed vector, so a caller may reuse one.
struct Appender<'a>(&'a mut Vec<u8>);

impl Flavor for Appender<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let length = data.len();
        if length > 16 {
            self.0.extend_from_slice(data);
            return Ok(());
        }
        let out = &mut *self.0;
        out.reserve(16);
        let at = out.len();
        // SAFETY: `reserve(16)` leaves room for 16 more bytes after `at`;
        // the copies below read `length` bytes of `data` and write as many
        // after `at`, in pieces of 8, 4, 2 and 1 (16 is two of 8), then
        // the length covers exactly what was written.
        unsafe {
            let from = data.as_ptr();
            let to = out.as_mut_ptr().add(at);
            let mut done = 0;
            if length & 16 != 0 {
                copy::<16>(from, to, &mut done);
            }
            if length & 8 != 0 {
                copy::<8>(from, to, &mut done);
            }
            if length & 4 != 0 {
                copy::<4>(from, to, &mut done);
            }
            if length & 2 != 0 {
                copy::<2>(from, to, &mut done);
            }
            if length & 1 != 0 {
                copy::<1>(from, to, &mut done);
            }
            out.set_len(at + length);
        }
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`'s postcard bytes to `out`.
pub(crate) fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, Appender(out))
}

/// Copies `N` bytes from `from + done` to `to + done` (a copy of a
/// constant size, which the compiler writes as a load and a store), and
/// adds `N` to `done`.
///
/// # Safety
///
/// Both ranges must be valid for `N` bytes, and must not overlap.
#[inline(always)]
unsafe fn copy<const N: usize>(from: *const u8, to: *mut u8, done: &mut usize) {
    // SAFETY: as the caller promises.
    unsafe { std::ptr::copy_nonoverlapping(from.add(*done), to.add(*done), N) };
    *done += N;
}

/// `value`'s postcard bytes, in a vector first given `capacity`.
pub(crate) fn to_vec<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> postcard::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    append(value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (u64, i32, String, Vec<f64>, Option<u8>);

    #[test]
    fn the_bytes_are_postcards() {
        let values: Vec<Row> = (0..300u64)
            .map(|i| {
                (
                    i * i * 1_000_003,
                    -(i as i32),
                    "x".repeat(i as usize % 40),
                    vec![i as f64; i as usize % 5],
                    (i % 3 == 0).then_some(i as u8),
                )
            })
            .collect();
        assert_eq!(
            to_vec(&values, 0).unwrap(),
            postcard::to_stdvec(&values).unwrap()
        );
        let mut out = vec![9u8];
        append(&values[7], &mut out).unwrap();
        assert_eq!(out[1..], postcard::to_stdvec(&values[7]).unwrap()[..]);
    }
}
