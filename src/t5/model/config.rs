//! A t5 model's `config.json` (CODER.md, "Model directory") and the fixed exponents of
//! its integer arithmetic ("Integer conventions"), shared by training and coding.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::t5::error::{CoderError, Result};
use crate::t5::relpos::{Direction, RelBuckets};

pub const FORMAT: &str = "s2sfs-t5 1";
/// Largest vocabulary the format allows.
pub const MAX_VOCAB: usize = 8192;
/// Most extra match models a config may ask for, and their longest context.
pub const MAX_EXTRA_MATCHERS: usize = 4;
pub const MATCH_CONTEXT_MAX: usize = 16;

/// Exponent of the residual stream (i32, clamped to ±`H_MAX`).
pub const E_H: i32 = 8;
pub const H_MAX: i32 = 32767;
/// Exponent of normalized activations, embeddings and the latent memory (q8).
pub const E_X: i32 = 5;
/// Exponent of queries, keys, values, attention outputs and FFN hidden units (q8).
pub const E_A: i32 = 4;
/// Exponent of attention scores, logits, relative biases and the match boost (1/8 nat).
pub const E_S: i32 = 3;
/// Exponent of RMSNorm gains (q8).
pub const E_GAIN: i32 = 6;
/// Range of a q8 value.
pub const Q8_MAX: i32 = 127;

/// The architecture of a model; every field is required in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub format: String,
    pub vocab: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub enc_layers: usize,
    pub dec_layers: usize,
    pub window: usize,
    pub segment: usize,
    pub latent_vocab: usize,
    pub latent_max: usize,
    pub rel_buckets: usize,
    pub rel_max_distance: usize,
    /// Match confidence learned inside each block for the match model (CODER.md, "Match
    /// confidence"). Absent in models made before it existed, which code without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_sse: bool,
    /// Context lengths (in tokens) of further match models, each with its own match
    /// confidence, applied in this order after the first. Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_matchers: Vec<usize>,
    /// In-block mixing (CODER.md): tokens coded bit by bit, the network mixed with
    /// adaptive context and match models; latents coded adaptively.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mixing: bool,
    /// The token tree reads the network's exp weights exactly, with no rounded frequency
    /// table (CODER.md, "Output"). Needs `mixing`. Absent: the rounded table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_tree: bool,
}

impl Default for ModelConfig {
    /// The v1 default of CODER.md.
    fn default() -> ModelConfig {
        ModelConfig {
            format: FORMAT.into(),
            vocab: 2048,
            d_model: 128,
            n_heads: 4,
            d_ff: 512,
            enc_layers: 1,
            dec_layers: 1,
            window: 256,
            segment: 256,
            latent_vocab: 64,
            latent_max: 4,
            rel_buckets: 32,
            rel_max_distance: 128,
            match_sse: true,
            extra_matchers: vec![1, 2],
            mixing: true,
            exact_tree: true,
        }
    }
}

impl ModelConfig {
    pub fn load(path: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| CoderError::ModelConfig { path: path.to_owned(), reason };
        let bytes = std::fs::read(path).map_err(|source| CoderError::Io { path: path.to_owned(), source })?;
        let config: ModelConfig = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        config.check().map_err(bad)?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("strings and integers always serialize");
        text.push('\n');
        text
    }

    /// Whether the integer network can run this shape; the reason when it cannot.
    pub fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab", self.vocab),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("dec_layers", self.dec_layers),
            ("window", self.window),
            ("segment", self.segment),
            ("latent_vocab", self.latent_vocab),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if self.format != FORMAT {
            return Err(format!("format {:?} is not {FORMAT:?}", self.format));
        }
        if !(256..=MAX_VOCAB).contains(&self.vocab) {
            return Err(format!("vocab {} is outside 256..={MAX_VOCAB}", self.vocab));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!("d_model {} is not a multiple of n_heads {}", self.d_model, self.n_heads));
        }
        // Integers carried in f32 stay exact while int8 dot products are at most 1024 long.
        if self.d_model > 1024 || self.d_ff > 1024 {
            return Err("d_model and d_ff must be at most 1024".into());
        }
        if self.extra_matchers.len() > MAX_EXTRA_MATCHERS
            || self.extra_matchers.iter().any(|&m| !(1..=MATCH_CONTEXT_MAX).contains(&m))
        {
            return Err(format!(
                "extra_matchers {:?}: at most {MAX_EXTRA_MATCHERS}, each 1..={MATCH_CONTEXT_MAX} tokens",
                self.extra_matchers
            ));
        }
        if self.exact_tree && !self.mixing {
            return Err("exact_tree needs mixing (the token tree is the mixing coder's)".into());
        }
        for direction in [Direction::Bidirectional, Direction::Causal] {
            if RelBuckets::new(direction, self.rel_buckets, self.rel_max_distance).is_none() {
                return Err(format!(
                    "{} relative buckets up to distance {} cannot be bucketed",
                    self.rel_buckets, self.rel_max_distance
                ));
            }
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Relative-position buckets of the encoder (bidirectional) or decoder (causal).
    pub fn rel_buckets(&self, direction: Direction) -> Option<RelBuckets> {
        RelBuckets::new(direction, self.rel_buckets, self.rel_max_distance)
    }

    /// Bits of a segment's latent, coded as CODER.md says: its length uniform over
    /// 0..=latent_max, each code uniform over K.
    pub fn latent_bits(&self, codes: usize) -> f64 {
        ((self.latent_max + 1) as f64).log2() + codes as f64 * (self.latent_vocab as f64).log2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_and_checks() {
        let config = ModelConfig::default();
        assert_eq!(config.check(), Ok(()));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, config.to_json()).expect("write");
        assert_eq!(ModelConfig::load(&path).expect("load"), config);
        assert_eq!(config.head_dim(), 32);
        assert!((config.latent_bits(2) - (5f64.log2() + 12.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = |edit: fn(&mut ModelConfig), reason: &str| {
            let mut config = ModelConfig::default();
            edit(&mut config);
            let err = config.check().expect_err(reason);
            assert!(err.contains(reason), "{err}");
        };
        bad(|c| c.n_heads = 3, "multiple of n_heads");
        bad(|c| c.vocab = 9000, "outside");
        bad(|c| c.format = "x".into(), "format");
        bad(|c| c.window = 0, "window");
        bad(|c| c.d_ff = 2048, "1024");
        bad(|c| c.rel_max_distance = 4, "bucketed");
        bad(|c| c.mixing = false, "exact_tree needs mixing");

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"format": "s2sfs-t5 1"}"#).expect("write");
        let err = ModelConfig::load(&path).expect_err("missing fields").to_string();
        assert!(err.contains("config.json") && err.contains("missing field"), "{err}");
    }
}
