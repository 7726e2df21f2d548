//! The learned T5 latent coder (CODER.md): the pieces that turn a
//! block into tokens and tokens into bits. Everything here is exact and deterministic,
//! because a frame must decode on any machine to the bytes that were written.

mod batched;
mod coding;
mod error;
#[cfg(test)]
pub(crate) mod fixtures;
mod intnet;
mod matching;
mod mix;
pub mod model;

// The coder's files name each other by these flat paths (`crate::t5::freq`, …); the
// folders group them as CODER.md's sections do.
use self::batched::candle_net;
use self::coding::{dist, freq, predictor, range, t5_codec};
use self::intnet::{decoder, encoder, multiversion, relpos, weights};
use self::matching::{confidence, matcher};
use self::model::{config, tokenizer};

pub use self::candle_net::batch_device;
pub use self::config::{E_A, E_GAIN, E_H, E_S, E_X, FORMAT, H_MAX, MAX_VOCAB, ModelConfig, Q8_MAX};
pub use self::decoder::START_TOKEN;
pub use self::error::{CoderError, Result};
pub use self::freq::{FREQ_TOTAL, FREQ_TOTAL_BITS, FreqTable};
#[cfg(test)]
pub(crate) use self::intnet::with_kernels;
pub use self::intnet::{Kernels, KernelsError, selected_kernels};
pub use self::matcher::{MATCH_BUCKETS, MATCH_MIN, MatchPrediction, Matcher, match_predictions};
pub use self::model::Model;
pub use self::range::{RangeDecoder, RangeEncoder};
pub use self::relpos::{Direction, RelBuckets};
pub use self::t5_codec::{Latents, T5Codec};
pub use self::tokenizer::{ByteBpe, MAX_WORD_LEN};
