//! Reading a stored block into the reader's buffer: the frame's layout (where its header
//! ends, what a raw frame's payload is) stays the codec's business, so the volume only
//! says where the block goes and how the store reads a frame.

use super::frame::HEADER_LEN;
use super::{CodecError, Codecs};

/// Why `Codecs::read_block_into` failed: reading the frame, or decoding it.
#[derive(Debug)]
pub enum BlockReadError<E> {
    Read(E),
    Decode(CodecError),
}

impl Codecs {
    /// Reads and decodes one block into `dst`, which starts at the block's start and ends
    /// at its end or at end of file; bytes the block does not have are zeroed. `read(split,
    /// head, tail)` reads the frame (the store's `read_frame_into`): a frame of `split +
    /// tail.len()` bytes is split after `split` bytes, its rest straight into `tail`, so a
    /// block stored raw lands in `dst` without a copy and is only checked. `frame` is a
    /// buffer the caller reuses. Ok(false): `read` found no frame.
    pub fn read_block_into<E>(
        &self,
        frame: &mut Vec<u8>,
        dst: &mut [u8],
        read: impl FnOnce(usize, &mut Vec<u8>, &mut [u8]) -> Result<Option<bool>, E>,
    ) -> Result<bool, BlockReadError<E>> {
        let Some(in_place) = read(HEADER_LEN, frame, dst).map_err(BlockReadError::Read)? else {
            return Ok(false);
        };
        if in_place {
            if self.is_raw_frame_of(frame, dst).map_err(BlockReadError::Decode)? {
                return Ok(true);
            }
            // Another kind of frame that happens to have this length.
            frame.extend_from_slice(dst);
        }
        self.decode_frame_to_block(frame, dst).map_err(BlockReadError::Decode)?;
        Ok(true)
    }

    /// Decodes a whole frame into `dst` as `read_block_into` places a block: `dst` may
    /// end before the block does (at end of file), and bytes past the block are zeroed.
    pub fn decode_frame_to_block(&self, frame: &[u8], dst: &mut [u8]) -> Result<(), CodecError> {
        let len = self.plain_len(frame)?;
        if len <= dst.len() {
            let (plain, beyond) = dst.split_at_mut(len);
            self.decode_frame_into(frame, plain)?;
            beyond.fill(0);
        } else {
            // Contents past end of file, left by a truncation: decode all, keep a part.
            let plain = self.decode_frame(frame)?;
            dst.copy_from_slice(&plain[..dst.len()]);
        }
        Ok(())
    }
}
