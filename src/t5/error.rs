//! The learned coder's error type.

use std::path::PathBuf;

pub type Result<T, E = CoderError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoderError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tokenizer file that exists but cannot serve as an exact byte-level BPE.
    #[error("tokenizer {}: {reason}", path.display())]
    TokenizerFile { path: PathBuf, reason: String },
    /// A BPE vocabulary that cannot map every byte string to ids and back.
    #[error("unusable BPE vocabulary: {0}")]
    Vocab(String),
    #[error("model config {}: {reason}", path.display())]
    ModelConfig { path: PathBuf, reason: String },
    #[error("BPE training failed: {0}")]
    Train(String),
    #[error("token id {0} is not in the vocabulary")]
    UnknownToken(u32),
    #[error("symbol {symbol} is outside a frequency table of {len} symbols")]
    SymbolOutOfRange { symbol: usize, len: usize },
    #[error("a frequency table needs 1 to {max} symbols, not {got}")]
    TableSize { got: usize, max: usize },
    /// A weights file that is not a readable safetensors file.
    #[error("model weights {}: {reason}", path.display())]
    Weights { path: PathBuf, reason: String },
    /// One tensor of a weights file that does not fit the format or the config.
    #[error("model weights {}: tensor {tensor} {reason}", path.display())]
    Tensor { path: PathBuf, tensor: String, reason: String },
    /// Model files that are each valid but do not fit together.
    #[error("model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// `S2SFS_KERNELS` names kernels this CPU cannot run, or none at all.
    #[error(transparent)]
    Kernels(#[from] crate::t5::intnet::KernelsError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
