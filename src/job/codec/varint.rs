//! postcard's integer framing, written by hand where serde would cost too
//! much: the one varint writer of the codec, and the index of item
//! lengths that ends a run of per-item results.

/// Appends `value` as postcard writes a `usize`: 7 bits a byte, low bits
/// first, the top bit set on every byte but the last.
#[inline]
pub(super) fn push_varint(bytes: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// Appends the index of a run: each item's length (a varint), then where
/// the index starts (8 bytes, little-endian), so it is found from the end.
/// The index is postcard's `Vec<usize>`, written here byte by byte: a
/// million lengths cost a few milliseconds through serde, a fraction of
/// that this way.
pub(super) fn push_index(bytes: &mut Vec<u8>, lengths: impl ExactSizeIterator<Item = usize>) {
    let start = bytes.len() as u64;
    bytes.reserve(lengths.len() + 16);
    push_varint(bytes, lengths.len());
    for length in lengths {
        push_varint(bytes, length);
    }
    bytes.extend_from_slice(&start.to_le_bytes());
}

/// The item lengths of a run's index (see [`push_index`]). Garbage is an
/// error, never an allocation of a stated size.
pub(super) fn read_index(bytes: &[u8]) -> Result<Vec<usize>, postcard::Error> {
    let split = bytes
        .len()
        .checked_sub(8)
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    let (body, trailer) = bytes.split_at(split);
    let mut start = [0u8; 8];
    start.copy_from_slice(trailer);
    let start = usize::try_from(u64::from_le_bytes(start))
        .ok()
        .filter(|&start| start <= body.len())
        .ok_or(postcard::Error::DeserializeBadEncoding)?;
    postcard::from_bytes(&body[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_postcards() {
        for value in [0, 1, 127, 128, 300, 1 << 20, usize::MAX] {
            let mut bytes = Vec::new();
            push_varint(&mut bytes, value);
            assert_eq!(bytes, postcard::to_stdvec(&value).unwrap(), "{value}");
        }
    }

    #[test]
    fn the_index_is_postcards_vec_of_lengths() {
        let lengths = [0, 1, 127, 128, 300, 1 << 20, usize::MAX];
        let mut bytes = vec![9, 9];
        push_index(&mut bytes, lengths.into_iter());
        let mut expected = vec![9, 9];
        expected.extend(postcard::to_stdvec(&lengths[..]).unwrap());
        expected.extend(2u64.to_le_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(read_index(&bytes).unwrap(), lengths);
    }
}
