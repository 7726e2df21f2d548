//! Frames and codecs: the self-describing frame format every stored block uses, the
//! `Codec` trait, the classic codecs (raw, zstd), the chooser that picks one per block,
//! the learned models a store keeps (`models`), and the one codec specification a user
//! gives (`spec`). The learned `t5` codec (`crate::t5`) plugs in through `Codec`.

mod block_read;
mod chooser;
mod frame;
mod models;
mod raw;
mod spec;
mod zstd;

pub use self::block_read::BlockReadError;
pub use self::chooser::{Codecs, MAX_PLAIN_LEN, Target};
pub use self::frame::{CodecId, FrameHeader, HEADER_LEN};
pub use self::models::{
    ModelError, ModelId, ModelRegistry, default_model, default_model_origin, load_model, previous_models,
};
pub use self::raw::Raw;
pub use self::spec::{
    ARCHIVAL_ZSTD_LEVEL, CodecKind, CodecSet, CodecSpec, DEFAULT_RECOMPRESS_AFTER, add_model, learned_target,
    open_codecs,
};
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

    /// Decodes the payloads `(payload, plain_len)` as one batch, the work that can run
    /// there on `device`: one result per item, each what `decompress` gives for it (same
    /// bytes, or an error). None: this codec does not batch; decode the items one by one.
    fn decompress_batch(
        &self,
        items: &[(&[u8], usize)],
        device: &candle_core::Device,
    ) -> Option<Vec<Result<Vec<u8>, CodecError>>> {
        let _ = (items, device);
        None
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
