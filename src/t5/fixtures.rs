//! Small models for tests: a BPE trained in milliseconds on a few KB of text and a tiny
//! random network over it, built once per test binary.

use std::sync::{Arc, OnceLock};

use super::{ByteBpe, Model, ModelConfig};

pub const TEXT: &str = "The quick brown fox jumps over the lazy dog. A filesystem stores \
    blocks; each block is compressed alone, and read back exactly.\n\
    fn main() {\n    let total: u64 = weights.iter().map(|w| w * 2).sum();\n    \
    println!(\"{total}\");\n}\n\
    <p class=\"note\">Über naïve café — déjà vu, 1234567890.</p>\n";

/// A few KB of text with some variety, for training and as test input.
pub fn text(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + TEXT.len());
    let mut i = 0u32;
    while out.len() < n {
        out.extend_from_slice(format!("{i}: ").as_bytes());
        out.extend_from_slice(TEXT.as_bytes());
        i = i.wrapping_mul(7).wrapping_add(13) % 1000;
    }
    out.truncate(n);
    out
}

pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        vocab: 300,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        enc_layers: 1,
        dec_layers: 1,
        window: 48,
        segment: 64,
        latent_vocab: 16,
        latent_max: 4,
        rel_buckets: 8,
        rel_max_distance: 32,
        ..ModelConfig::default()
    }
}

pub fn tiny_bpe() -> ByteBpe {
    static BPE: OnceLock<ByteBpe> = OnceLock::new();
    BPE.get_or_init(|| {
        let docs = (0..8).map(|i| text(600 + 97 * i));
        ByteBpe::train(docs, tiny_config().vocab).expect("training on text")
    })
    .clone()
}

pub fn tiny_model() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL.get_or_init(|| Arc::new(Model::random(tiny_config(), tiny_bpe(), 7).expect("valid tiny model"))).clone()
}

/// Incompressible bytes, reproducible from `seed`: the low byte of each `xorshift` value.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    (0..len).map(|_| next() as u8).collect()
}

/// A xorshift64 stream: cheap deterministic test data.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
