//! Frames and codecs: the self-describing frame format every stored block uses, the
//! `Codec` trait, the classic codecs (raw, zstd), and the chooser that picks one per block.
//! The learned `t5` codec plugs in here later without touching the volume.

mod chooser;
mod frame;
mod raw;
mod zstd;

use std::fmt;

pub use self::chooser::{Codecs, MAX_PLAIN_LEN};
pub use self::frame::{CodecId, FrameHeader, HEADER_LEN};
pub use self::raw::Raw;
pub use self::zstd::{DEFAULT_LEVEL as ZSTD_DEFAULT_LEVEL, Zstd};

/// One way of turning a block's plaintext into a frame payload and back.
///
/// A codec only transforms bytes: the frame header, the plaintext checksum and the
/// "is it worth it" decision live in `frame` and `chooser`, so every codec (including the
/// learned one, later) gets the same integrity checks for free.
/// `Send + Sync` because the volume compresses blocks on rayon threads through one shared
/// `Codecs`.
pub trait Codec: Send + Sync {
    /// The id written into frames this codec produces.
    fn id(&self) -> CodecId;
    /// The model a learned codec needs to decode its frames; classic codecs have none.
    fn model_id(&self) -> ModelId {
        ModelId::NONE
    }
    /// Compresses one block's plaintext into a frame payload (no header).
    fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Decodes a payload back to plaintext. `plain_len` comes from an already checked
    /// header and bounds every allocation: a corrupt payload must not make a codec
    /// allocate more than that. Returning a different length is allowed (the caller
    /// rejects it), returning wrong bytes of the right length is caught by the checksum.
    fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError>;

    /// Decodes `payload` into `out`, whose length is the plaintext length. Codecs that can
    /// write into a caller's buffer override this: a whole-block read then decodes straight
    /// into the reply, with no block-sized allocation and copy.
    fn decompress_into(&self, payload: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let plain = self.decompress(payload, out.len())?;
        if plain.len() != out.len() {
            return Err(CodecError::Length { expected: out.len(), got: plain.len() });
        }
        out.copy_from_slice(&plain);
        Ok(())
    }
}

/// The codec a new block is written with. Reading understands every codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    Raw,
    Zstd,
}

/// Content hash of a learned model's files; all zero for classic codecs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModelId(pub [u8; 32]);

impl ModelId {
    pub const NONE: ModelId = ModelId([0; 32]);
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame truncated: {0}")]
    Truncated(&'static str),
    #[error("not a frame (bad magic)")]
    BadMagic,
    #[error("frame header checksum mismatch")]
    HeaderChecksum,
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    #[error("frame needs model {0:?}, which this volume does not have")]
    UnknownModel(ModelId),
    #[error("plaintext checksum mismatch")]
    Checksum,
    #[error("decoded length {got} differs from the header's {expected}")]
    Length { expected: usize, got: usize },
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("compression failed: {0}")]
    Compress(String),
    #[error("unsupported frame header: {0}")]
    Unsupported(&'static str),
    #[error("frame claims {0} plaintext bytes, more than any block may hold")]
    TooLarge(usize),
    #[error("frame has {0} bytes after its payload")]
    TrailingBytes(usize),
}
