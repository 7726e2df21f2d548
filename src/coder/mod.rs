//! The learned T5 latent coder (CODER.md): the pieces that turn a
//! block into tokens and tokens into bits. Everything here is exact and deterministic,
//! because a frame must decode on any machine to the bytes that were written.

mod batch;
mod batchnet;
mod config;
mod decoder;
mod encoder;
mod error;
#[cfg(test)]
pub(crate) mod fixtures;
mod freq;
mod intnet;
mod matcher;
mod mix;
mod multiversion;
pub mod model;
mod net;
mod predictor;
mod range;
mod relpos;
mod sse;
mod t5;
mod tokenizer;

pub use self::batchnet::batch_device;
pub use self::config::{E_A, E_GAIN, E_H, E_S, E_X, FORMAT, H_MAX, MAX_VOCAB, ModelConfig, Q8_MAX};
pub use self::decoder::START_TOKEN;
pub use self::error::{CoderError, Result};
pub use self::freq::{FREQ_TOTAL, FREQ_TOTAL_BITS, FreqTable};
pub use self::intnet::{Kernels, KernelsError, selected_kernels};
#[cfg(test)]
pub(crate) use self::intnet::with_kernels;
pub use self::matcher::{MATCH_BUCKETS, MATCH_MIN, MatchPrediction, Matcher, match_predictions};
pub use self::model::Model;
pub use self::range::{RangeDecoder, RangeEncoder};
pub use self::relpos::{Direction, RelBuckets};
pub use self::t5::{Latents, T5Codec};
pub use self::tokenizer::{ByteBpe, MAX_WORD_LEN};
