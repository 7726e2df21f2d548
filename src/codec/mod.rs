//! Frames and codecs: the self-describing frame format every stored block uses, the
//! `Codec` trait, the classic codecs (raw, zstd), and the chooser that picks one per block.
//! The learned `t5` codec plugs in here later without touching the volume.

// Helper-owned: frame.rs, raw.rs, zstd.rs, chooser.rs (see the API below).

use std::fmt;

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
}
