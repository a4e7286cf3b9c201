//! [`EncodedChunk`]: a chunk's encoded results in pieces, some borrowed
//! from the results themselves, for one vectored write.

/// The encoded results of a chunk, from [`ChunkJob::encode_chunk_in_pieces`]:
/// the same bytes as [`ChunkJob::encode_chunk`], left in pieces. Large arrays of
/// bytes and floats (`Vec<u8>`, `Vec<i8>`, `Vec<f32>`, `Vec<f64>` results
/// of 64 KiB or more) are pieces of the results' own memory, so a backend
/// that writes them to a socket or pipe (one vectored write of
/// [`slices`](EncodedChunk::slices)) sends a large result from where it
/// lies instead of copying it first.
///
/// [`ChunkJob::encode_chunk_in_pieces`]: crate::job::ChunkJob::encode_chunk_in_pieces
/// [`ChunkJob::encode_chunk`]: crate::job::ChunkJob::encode_chunk
#[derive(Debug, Default)]
pub(crate) struct EncodedChunk<'a> {
    pieces: Vec<Piece<'a>>,
}

#[derive(Debug)]
enum Piece<'a> {
    Owned(Vec<u8>),
    /// An array's memory, and the size of its elements.
    Borrowed(&'a [u8], usize),
}

impl<'a> EncodedChunk<'a> {
    /// Appends bytes of its own.
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        self.pieces.push(Piece::Owned(bytes));
    }

    /// Appends an array's memory, elements of `element` bytes, which is
    /// sent as it lies.
    pub(crate) fn push_borrowed(&mut self, bytes: &'a [u8], element: usize) {
        self.pieces.push(Piece::Borrowed(bytes, element));
    }

    /// The number of bytes.
    pub(crate) fn len(&self) -> usize {
        self.slices().map(<[u8]>::len).sum()
    }

    /// The pieces, in order; together they are the bytes.
    pub(crate) fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.arrays().map(|(bytes, _)| bytes)
    }

    /// The pieces, in order, each with the size of its elements if it is
    /// an array's memory (0 if not): a receiver may read such a piece
    /// straight into a vector of its own (`Received`).
    pub(crate) fn arrays(&self) -> impl Iterator<Item = (&[u8], usize)> {
        self.pieces.iter().map(|piece| match piece {
            Piece::Owned(bytes) => (&bytes[..], 0),
            Piece::Borrowed(bytes, element) => (*bytes, *element),
        })
    }

    /// The bytes in one vector (joined by a copy unless they are in one
    /// piece already).
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        if let [Piece::Owned(_)] = &self.pieces[..]
            && let Some(Piece::Owned(bytes)) = self.pieces.pop()
        {
            return bytes;
        }
        let mut bytes = Vec::with_capacity(self.len());
        crate::sys::advise_huge_pages(bytes.as_ptr(), bytes.capacity());
        for slice in self.slices() {
            bytes.extend_from_slice(slice);
        }
        bytes
    }
}

impl From<Vec<u8>> for EncodedChunk<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        EncodedChunk {
            pieces: vec![Piece::Owned(bytes)],
        }
    }
}
