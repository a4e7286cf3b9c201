//! The number format: a fast path for results that are plain numbers
//! (`u64`, `i32`, `f64`, ...), the results of most small tasks.
//!
//! postcard writes a `Vec<u64>` through one serializer call per value,
//! which costs several times what the task itself does when tasks are
//! tiny (a million `x * 3 + 1` run in about a millisecond on two threads).
//! This module writes and reads postcard's bytes for such a run in one
//! loop: integers as varints (signed ones zigzagged first), floats and
//! bytes as their little-endian memory. The bytes are postcard's exactly,
//! so the two paths mix freely and results stay bit-identical.

use super::format::Format;
use std::marker::PhantomData;

/// A number as postcard writes it.
pub(super) trait Number: Copy + 'static {
    /// The most bytes one value takes.
    const MAX_BYTES: usize;

    /// Writes the value at `to`, returning how many bytes it took.
    ///
    /// # Safety
    ///
    /// `to` is valid for [`MAX_BYTES`](Number::MAX_BYTES) + 8 bytes of
    /// writes (a short varint is stored as a whole word).
    unsafe fn write(self, to: *mut u8) -> usize;

    /// The value at the front of `bytes`, and how many bytes it took.
    fn read(bytes: &[u8]) -> Result<(Self, usize), postcard::Error>;

    /// Written as a varint of at most 64 bits ([`varint64`](Number::varint64)):
    /// the integers up to 64 bits, which [`write_block`] writes a block
    /// at a time.
    const VARINT64: bool;

    /// Written as its little-endian memory (bytes and floats): a run of
    /// them is its memory as it lies, on a little-endian machine.
    const MEMORY: bool;

    /// The value whose varint is written (zigzagged if signed); used only
    /// if [`VARINT64`](Number::VARINT64).
    fn varint64(self) -> u64;
}

/// Writes `value` as a varint at `to`.
///
/// # Safety
///
/// `to` is valid for every byte of the varint (`value`'s bits, 7 a
/// byte), and for at least 8.
#[inline(always)]
unsafe fn write_varint(mut value: u128, to: *mut u8) -> usize {
    if value < 1 << 56 {
        // SAFETY: as below, for the at most 8 bytes of a value this small.
        return unsafe { write_short_varint(value as u64, to) };
    }
    let mut at = 0;
    while value >= 0x80 {
        // SAFETY: the caller's `to` holds every byte of the varint.
        unsafe { *to.add(at) = (value as u8) | 0x80 };
        value >>= 7;
        at += 1;
    }
    // SAFETY: as above.
    unsafe { *to.add(at) = value as u8 };
    at + 1
}

/// [`write_varint`] of a value below 2⁵⁶ without a loop: its 7-bit
/// groups spread into the bytes of one word, the continuation bits set on
/// all but the last byte used, and the word stored whole (8 bytes written,
/// the varint's length counted).
///
/// The length is counted by comparisons, not from the leading zeros:
/// without the `lzcnt` instruction (not in the baseline x86-64 target)
/// `leading_zeros` is a `bsr`, which takes 4 cycles on AMD's Zen, and this
/// loop is what a million tiny results cost to encode. Values below 2²⁸
/// (up to four bytes, most results of small tasks) take a shorter path.
///
/// # Safety
///
/// `value < 2⁵⁶`, and `to` is valid for 8 bytes of writes.
#[inline(always)]
unsafe fn write_short_varint(value: u64, to: *mut u8) -> usize {
    if value < 1 << 28 {
        let (word, used) = spread_small(value as u32);
        // SAFETY: `to` holds 8 bytes, by the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(word.to_le_bytes().as_ptr(), to, 4) };
        return used as usize;
    }
    let mut spread = 0u64;
    let mut group = 0;
    while group < 8 {
        spread |= (value & (0x7f << (7 * group))) << group;
        group += 1;
    }
    // At least 2²⁸: five bytes or more.
    let used = 5
        + usize::from(value >= 1 << 35)
        + usize::from(value >= 1 << 42)
        + usize::from(value >= 1 << 49);
    // 0x80 in each byte but the last of `used`.
    let continuation = 0x8080_8080_8080_8080u64 & ((1u64 << (8 * (used - 1))) - 1);
    let word = (spread | continuation).to_le_bytes();
    // SAFETY: `to` holds 8 bytes, by the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(word.as_ptr(), to, 8) };
    used
}

/// The varint of `value` (below 2²⁸) as the little-endian bytes of one
/// word, and how many of its bytes the varint takes (1 to 4): its 7-bit
/// groups spread into the bytes, the continuation bit set on all but the
/// last byte used. No branch, so a loop of these vectorizes.
#[inline(always)]
fn spread_small(value: u32) -> (u32, u32) {
    let spread = (value & 0x7f)
        | ((value << 1) & 0x7f00)
        | ((value << 2) & 0x7f_0000)
        | ((value << 3) & 0x7f00_0000);
    let (two, three, four) = (
        u32::from(value >= 1 << 7),
        u32::from(value >= 1 << 14),
        u32::from(value >= 1 << 21),
    );
    (
        spread | (two << 7) | (three << 15) | (four << 23),
        1 + two + three + four,
    )
}

/// Values encoded a block at a time (see [`write_block`]).
const BLOCK: usize = 16;

/// Writes the varints of `block` (of [`BLOCK`] values of a type with
/// [`Number::VARINT64`]) at `to`, returning how many bytes they took.
/// When every value is below 2²⁸ (most results of small tasks), the words
/// of the whole block are worked out first, in a loop the compiler
/// vectorizes, and then stored one after the other (4 bytes each, the
/// next starting where the varint ends): 1.2 ns a value here instead of
/// 2.2 one at a time. Otherwise the values are written one by one.
///
/// # Safety
///
/// `to` is valid for `BLOCK` values at their largest
/// ([`MAX_BYTES`](Number::MAX_BYTES) each) and 8 more bytes.
#[inline(always)]
unsafe fn write_block<N: Number>(block: &[N; BLOCK], to: *mut u8) -> usize {
    // The low 32 bits, apart from the spreading: a loop over `u32`s is
    // vectorized four values to a register, one over `u64`s only two.
    let mut small = [0u32; BLOCK];
    let mut all = 0u64;
    for (small, number) in small.iter_mut().zip(block) {
        let value = number.varint64();
        all |= value;
        *small = value as u32;
    }
    if all >= 1 << 28 {
        let mut used = 0;
        for &number in block {
            // SAFETY: the caller's `to` holds every value at its largest.
            used += unsafe { number.write(to.add(used)) };
        }
        return used;
    }
    let (mut words, mut lengths) = ([0u32; BLOCK], [0u32; BLOCK]);
    for ((word, length), &value) in words.iter_mut().zip(&mut lengths).zip(&small) {
        (*word, *length) = spread_small(value);
    }
    let mut used = 0;
    for (word, length) in words.iter().zip(lengths) {
        // SAFETY: each varint here takes at most 4 bytes of the room the
        // caller's `to` holds for a value (MAX_BYTES, at least 3) and the 8
        // spare; the store of a whole word stays within it.
        unsafe { std::ptr::copy_nonoverlapping(word.to_le_bytes().as_ptr(), to.add(used), 4) };
        used += length as usize;
    }
    used
}

/// A varint of at most `max` bytes that must fit in `bits`, as postcard
/// reads it (a longer or larger one is an error).
#[inline(always)]
fn read_varint(bytes: &[u8], max: usize, bits: u32) -> Result<(u128, usize), postcard::Error> {
    let mut value = 0u128;
    for (at, &byte) in bytes.iter().take(max).enumerate() {
        let part = u128::from(byte & 0x7f);
        let shift = 7 * at as u32;
        if shift + 7 > bits && part >> (bits - shift) != 0 {
            return Err(postcard::Error::DeserializeBadVarint);
        }
        value |= part << shift;
        if byte & 0x80 == 0 {
            return Ok((value, at + 1));
        }
    }
    if bytes.len() < max {
        Err(postcard::Error::DeserializeUnexpectedEnd)
    } else {
        Err(postcard::Error::DeserializeBadVarint)
    }
}

macro_rules! unsigned {
    ($($number:ty),*) => {$(
        impl Number for $number {
            const MAX_BYTES: usize = (<$number>::BITS as usize).div_ceil(7);
            const VARINT64: bool = <$number>::BITS <= 64;
            const MEMORY: bool = false;

            #[inline(always)]
            fn varint64(self) -> u64 {
                self as u64
            }

            #[inline(always)]
            unsafe fn write(self, to: *mut u8) -> usize {
                // SAFETY: the caller's `to` holds MAX_BYTES.
                unsafe { write_varint(self as u128, to) }
            }

            #[inline(always)]
            fn read(bytes: &[u8]) -> Result<(Self, usize), postcard::Error> {
                let (value, used) = read_varint(bytes, Self::MAX_BYTES, <$number>::BITS)?;
                Ok((value as $number, used))
            }
        }
    )*};
}

macro_rules! signed {
    ($($number:ty => $unsigned:ty),*) => {$(
        impl Number for $number {
            const MAX_BYTES: usize = <$unsigned as Number>::MAX_BYTES;
            const VARINT64: bool = <$unsigned as Number>::VARINT64;
            const MEMORY: bool = false;

            #[inline(always)]
            fn varint64(self) -> u64 {
                ((self << 1) ^ (self >> (<$number>::BITS - 1))) as $unsigned as u64
            }

            #[inline(always)]
            unsafe fn write(self, to: *mut u8) -> usize {
                let zigzag = ((self << 1) ^ (self >> (<$number>::BITS - 1))) as $unsigned;
                // SAFETY: the caller's `to` holds MAX_BYTES.
                unsafe { zigzag.write(to) }
            }

            #[inline(always)]
            fn read(bytes: &[u8]) -> Result<(Self, usize), postcard::Error> {
                let (zigzag, used) = <$unsigned as Number>::read(bytes)?;
                Ok((((zigzag >> 1) as $number) ^ -((zigzag & 1) as $number), used))
            }
        }
    )*};
}

macro_rules! memory {
    ($($number:ty),*) => {$(
        impl Number for $number {
            const MAX_BYTES: usize = size_of::<$number>();
            const VARINT64: bool = false;
            const MEMORY: bool = true;

            fn varint64(self) -> u64 {
                unreachable!("written as its memory")
            }

            #[inline(always)]
            unsafe fn write(self, to: *mut u8) -> usize {
                let bytes = self.to_le_bytes();
                // SAFETY: the caller's `to` holds MAX_BYTES.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len()) };
                bytes.len()
            }

            #[inline(always)]
            fn read(bytes: &[u8]) -> Result<(Self, usize), postcard::Error> {
                let bytes = bytes
                    .first_chunk()
                    .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
                Ok((<$number>::from_le_bytes(*bytes), bytes.len()))
            }
        }
    )*};
}

unsigned!(u16, u32, u64, u128);
signed!(i16 => u16, i32 => u32, i64 => u64, i128 => u128);
memory!(u8, i8, f32, f64);

/// Runs of `N` values. Named by the codec only when `V` is `N`, which
/// [`Numbers::fits`] checks by type id.
pub(super) struct Numbers<N>(PhantomData<N>);

impl<N: Number> Numbers<N> {
    /// True if `V` is `N`: the only case in which [`Numbers<N>`] may be
    /// used as the format of `V`.
    pub(super) fn fits<V>() -> bool {
        typeid::of::<V>() == typeid::of::<N>()
    }

    /// `values` as the `N`s they are.
    ///
    /// # Safety
    ///
    /// `V` is `N` ([`Numbers::fits`]).
    unsafe fn as_numbers<V>(values: &[V]) -> &[N] {
        // SAFETY: same type, so same layout; by the caller's contract.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<N>(), values.len()) }
    }

    /// `numbers` as the `V`s they are.
    ///
    /// # Safety
    ///
    /// `V` is `N` ([`Numbers::fits`]).
    unsafe fn into_values<V>(numbers: Vec<N>) -> Vec<V> {
        let mut numbers = std::mem::ManuallyDrop::new(numbers);
        let (pointer, length, capacity) = (numbers.as_mut_ptr(), numbers.len(), numbers.capacity());
        // SAFETY: same type, so same layout and allocation; the original
        // is not dropped.
        unsafe { Vec::from_raw_parts(pointer.cast::<V>(), length, capacity) }
    }
}

/// Appends postcard's bytes for `numbers` as a run: the count, then each.
fn encode<N: Number>(numbers: &[N]) -> Vec<u8> {
    // 8 more: a short varint is written as a whole word.
    let mut bytes = Vec::with_capacity(u64::MAX_BYTES + numbers.len() * N::MAX_BYTES + 8);
    let start = bytes.as_mut_ptr();
    // SAFETY: the vector's capacity holds the count's varint (at most
    // u64::MAX_BYTES) and every value at its largest, and 8 more: before
    // each write at least MAX_BYTES + 8 bytes are free, as `write` asks.
    // `used` counts the bytes written, all initialised, before the length
    // is set.
    unsafe {
        let mut used = (numbers.len() as u64).write(start);
        let mut rest = numbers;
        if N::MEMORY && cfg!(target_endian = "little") {
            // Their memory is their bytes.
            let memory = size_of_val(numbers);
            std::ptr::copy_nonoverlapping(numbers.as_ptr().cast::<u8>(), start.add(used), memory);
            used += memory;
            rest = &[];
        } else if N::VARINT64 {
            let (blocks, remainder) = numbers.as_chunks::<BLOCK>();
            for block in blocks {
                used += write_block(block, start.add(used));
            }
            rest = remainder;
        }
        for &number in rest {
            used += number.write(start.add(used));
        }
        bytes.set_len(used);
    }
    bytes
}

/// A run of numbers from the front of `bytes`, and the rest. Garbage is an
/// error, never an allocation of a stated size.
fn decode<N: Number>(bytes: &[u8]) -> Result<(Vec<N>, &[u8]), postcard::Error> {
    let (count, mut at) = u64::read(bytes)?;
    let count = usize::try_from(count).map_err(|_| postcard::Error::DeserializeBadVarint)?;
    let mut numbers = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let (number, used) = N::read(&bytes[at..])?;
        numbers.push(number);
        at += used;
    }
    Ok((numbers, &bytes[at..]))
}

// Every method below may assume `V` is `N`: the codec makes a `Numbers<N>`
// codec of `V` only after `Numbers::<N>::fits::<V>()`.
impl<V, N: Number> Format<V> for Numbers<N> {
    fn encode(values: &[V]) -> Result<Vec<u8>, postcard::Error> {
        // SAFETY: V is N (see above).
        Ok(encode(unsafe { Self::as_numbers(values) }))
    }

    fn encode_one(value: &V) -> Result<Vec<u8>, postcard::Error> {
        // SAFETY: V is N (see above).
        let number = unsafe { Self::as_numbers(std::slice::from_ref(value)) }[0];
        let mut bytes = vec![0; N::MAX_BYTES + 8];
        // SAFETY: `bytes` holds MAX_BYTES and a word.
        let used = unsafe { number.write(bytes.as_mut_ptr()) };
        bytes.truncate(used);
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Vec<V>, postcard::Error> {
        let (numbers, _) = decode::<N>(bytes)?;
        // SAFETY: V is N (see above).
        Ok(unsafe { Self::into_values(numbers) })
    }

    fn decode_one(bytes: &[u8]) -> Result<(V, &[u8]), postcard::Error> {
        let (number, used) = N::read(bytes)?;
        // SAFETY: V is N (see above).
        let mut values = unsafe { Self::into_values::<V>(vec![number]) };
        let value = values
            .pop()
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        Ok((value, &bytes[used..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    fn same_as_postcard<N>(numbers: Vec<N>)
    where
        N: Number + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode(&numbers);
        assert_eq!(bytes, postcard::to_stdvec(&numbers).unwrap());
        let (back, rest) = decode::<N>(&bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            postcard::to_stdvec(&back).unwrap(),
            bytes,
            "the same bits back"
        );
        for number in numbers.iter().take(20) {
            let one = <Numbers<N> as Format<N>>::encode_one(number).unwrap();
            assert_eq!(one, postcard::to_stdvec(number).unwrap());
            let (back, rest) = <Numbers<N> as Format<N>>::decode_one(&one).unwrap();
            assert!(rest.is_empty());
            assert_eq!(postcard::to_stdvec(&back).unwrap(), one);
        }
    }

    fn agrees_with_postcard<N>(bytes: &[u8]) -> Result<(), TestCaseError>
    where
        N: Number + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        match (
            decode::<N>(bytes),
            postcard::take_from_bytes::<Vec<N>>(bytes),
        ) {
            (Ok((ours, ours_rest)), Ok((theirs, theirs_rest))) => {
                // Floats compare by their bits (NaN).
                prop_assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
                prop_assert_eq!(ours_rest, theirs_rest);
            }
            (Err(_), Err(_)) => {}
            (ours, theirs) => prop_assert!(false, "ours {:?}, postcard's {:?}", ours, theirs),
        }
        Ok(())
    }

    /// Values around every power of two: each varint length, and each
    /// path of the encoder, at both ends.
    #[test]
    fn every_varint_length_is_postcards() {
        let mut values = Vec::new();
        for bits in 0..64 {
            let power = 1u64 << bits;
            values.extend([power - 1, power, power + 1, power.wrapping_mul(3)]);
        }
        values.push(u64::MAX);
        same_as_postcard(values.clone());
        same_as_postcard(values.iter().map(|&v| v as i64).collect());
        same_as_postcard(values.iter().map(|&v| v as u32).collect());
        same_as_postcard(values.iter().map(|&v| u128::from(v) << 40).collect());
    }

    proptest! {
        #[test]
        fn numbers_of_every_size_encode_as_postcard(
            values in proptest::collection::vec((any::<u64>(), 0..64u32).prop_map(|(v, shift)| v >> shift), 0..300),
        ) {
            same_as_postcard(values.clone());
            same_as_postcard(values.iter().map(|&v| v as i64).collect());
        }

        /// Runs of small values (a block at a time), now and then one of
        /// 2²⁸ or more (that block one value at a time: some just past the
        /// edge), across block edges.
        #[test]
        fn blocks_of_small_values_encode_as_postcard(
            values in proptest::collection::vec(
                (0..1u64 << 29, 0..40u32).prop_map(|(v, large)| if large == 0 { v << 30 } else { v >> (large % 30) }),
                0..100,
            ),
        ) {
            same_as_postcard(values.clone());
            same_as_postcard(values.iter().map(|&v| v as u32).collect());
            same_as_postcard(values.iter().map(|&v| (v as i64) - (1 << 27)).collect());
            same_as_postcard(values.iter().map(|&v| (v as i32) >> 4).collect());
            same_as_postcard(values.iter().map(|&v| v as u16).collect());
            same_as_postcard(values.iter().map(|&v| v as i16).collect());
        }

        #[test]
        fn numbers_encode_exactly_as_postcard(
            unsigned in proptest::collection::vec(any::<u64>(), 0..200),
            signed in proptest::collection::vec(any::<i32>(), 0..200),
            floats in proptest::collection::vec(any::<f64>(), 0..200),
            wide in proptest::collection::vec(any::<i128>(), 0..50),
            small in proptest::collection::vec(any::<i8>(), 0..50),
        ) {
            same_as_postcard(unsigned);
            same_as_postcard(signed);
            same_as_postcard(floats);
            same_as_postcard(wide);
            same_as_postcard(small);
        }

        #[test]
        fn garbage_is_an_error_or_what_postcard_reads(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            agrees_with_postcard::<u32>(&bytes)?;
            agrees_with_postcard::<i16>(&bytes)?;
            agrees_with_postcard::<u64>(&bytes)?;
            agrees_with_postcard::<u128>(&bytes)?;
            agrees_with_postcard::<f32>(&bytes)?;
        }
    }

    #[test]
    fn edges() {
        same_as_postcard(vec![0u64, 127, 128, 16383, 16384, u64::MAX]);
        same_as_postcard(vec![i64::MIN, -1, 0, 1, i64::MAX]);
        same_as_postcard(vec![f64::NAN, -0.0, f64::INFINITY, 1e-310]);
        same_as_postcard(vec![u128::MAX, 0]);
        same_as_postcard(vec![0u16, u16::MAX]);
        same_as_postcard(vec![u8::MAX, 0]);
        same_as_postcard(Vec::<f32>::new());
        // A u32 varint past 32 bits, and one cut short.
        assert!(decode::<u32>(&[1, 0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        assert!(decode::<u32>(&[1, 0xff]).is_err());
        assert!(
            decode::<u64>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err()
        );
    }
}
