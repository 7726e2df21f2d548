//! Coding a block (CODER.md, "Coding a block"): each token's distribution as an integer
//! frequency table, the range coder that turns tokens under those tables into bytes and
//! back, and `T5Codec`, which puts tokenizer, latent, network and tables together into a
//! frame payload.

pub(crate) mod dist;
pub(crate) mod freq;
pub(crate) mod predictor;
pub(crate) mod range;
pub(crate) mod t5_codec;
