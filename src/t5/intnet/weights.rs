//! The network's weights as the integer kernels use them: matrices packed for the
//! product kernels, and the relative-position biases expanded into per-head tables by
//! distance, so that attention never looks up a bucket per key.

use std::path::Path;

use crate::t5::error::{CoderError, Result};
use crate::t5::intnet::{AttnScratch, Ffn, FfnScratch, Linear, LinearScratch};
use crate::t5::matcher::MATCH_BUCKETS;
use crate::t5::model::Tensors;
use crate::t5::relpos::{Direction, RelBuckets};
use crate::t5::{E_H, E_X, ModelConfig};

#[derive(Debug, Clone)]
pub struct SelfAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// `[head][i]`: the bias of the i-th relative position (see the layer types).
    pub bias: Vec<i32>,
    /// Entries of `bias` per head.
    pub bias_len: usize,
    /// `bias` with each head's entries in reverse order (see the decoder's key runs).
    pub bias_reversed: Vec<i32>,
}

impl SelfAttention {
    /// Queries, keys and values (q8 at E_A) of `n` normalized rows `x` (q8 at E_X).
    pub fn project(&self, x: &[i8], n: usize, q: &mut [i8], k: &mut [i8], v: &mut [i8], scratch: &mut LinearScratch) {
        self.q.to_q8(x, n, E_X, q, scratch);
        self.k.to_q8(x, n, E_X, k, scratch);
        self.v.to_q8(x, n, E_X, v, scratch);
    }

    pub fn head_bias(&self, head: usize) -> &[i32] {
        &self.bias[head * self.bias_len..(head + 1) * self.bias_len]
    }

    pub fn head_bias_reversed(&self, head: usize) -> &[i32] {
        &self.bias_reversed[head * self.bias_len..(head + 1) * self.bias_len]
    }
}

#[derive(Debug, Clone)]
pub struct CrossAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

/// Encoder block; its bias index is `j - t + segment - 1` (key j, query t).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    pub norm1: Vec<i8>,
    pub attn: SelfAttention,
    pub norm2: Vec<i8>,
    pub ffn: Ffn,
}

/// Decoder block; its bias index is the distance `t - j` back from the query, below the
/// window.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub norm1: Vec<i8>,
    pub attn: SelfAttention,
    pub norm2: Vec<i8>,
    pub cross: CrossAttention,
    pub norm3: Vec<i8>,
    pub ffn: Ffn,
}

#[derive(Debug, Clone)]
pub struct Net {
    pub embed: Vec<i8>,
    pub latent_embed: Vec<i8>,
    pub latent_pos: Vec<i8>,
    pub encoder: Vec<EncoderLayer>,
    pub encoder_norm: Vec<i8>,
    pub decoder: Vec<DecoderLayer>,
    pub decoder_norm: Vec<i8>,
    pub out: Linear,
    pub latent_head: Linear,
    pub boost: [i32; MATCH_BUCKETS],
}

/// The activations of a batch of positions on their way through the blocks, and the
/// kernels' buffers: kept across calls so that a step allocates nothing.
#[derive(Debug, Default)]
pub struct Activations {
    /// Residual stream, i32 at E_H.
    pub h: Vec<i32>,
    /// Normalized rows, q8 at E_X.
    pub x: Vec<i8>,
    /// Queries, keys, values and attention outputs, q8 at E_A.
    pub q: Vec<i8>,
    pub k: Vec<i8>,
    pub v: Vec<i8>,
    pub o: Vec<i8>,
    pub linear: LinearScratch,
    pub ffn: FfnScratch,
    pub attn: AttnScratch,
}

impl Activations {
    /// Starts the rows of `tokens` (each below the vocabulary size): the residual is
    /// their embeddings (q8 at E_X) at E_H.
    pub fn start(&mut self, net: &Net, tokens: &[u32]) {
        let d = net.encoder_norm.len();
        self.h.clear();
        for &token in tokens {
            let row = &net.embed[token as usize * d..(token as usize + 1) * d];
            self.h.extend(row.iter().map(|&e| i32::from(e) << (E_H - E_X)));
        }
        for rows in [&mut self.x, &mut self.q, &mut self.k, &mut self.v, &mut self.o] {
            rows.resize(tokens.len() * d, 0);
        }
    }
}

/// Reads one model's tensors by name; `path` names the weights file in errors.
struct Reader<'a> {
    tensors: &'a Tensors,
    path: &'a Path,
}

impl Reader<'_> {
    fn i8(&self, name: &str) -> Result<Vec<i8>> {
        self.tensors.i8(name, self.path).map(<[i8]>::to_vec)
    }

    fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let exp = self.scalar(&format!("{name}.exp"))?;
        Ok(Linear::new(self.tensors.i8(name, self.path)?, rows, cols, exp))
    }

    fn scalar(&self, name: &str) -> Result<i32> {
        let values = self.tensors.i32(name, self.path)?;
        values.first().copied().ok_or_else(|| crate::t5::model::tensor_error(self.path, name, "is empty".into()))
    }

    fn self_attention(
        &self,
        prefix: &str,
        config: &ModelConfig,
        buckets: &RelBuckets,
        rels: &[i64],
    ) -> Result<SelfAttention> {
        let d = config.d_model;
        let rel = self.tensors.i32(&format!("{prefix}self.rel"), self.path)?;
        let heads = config.n_heads;
        let mut bias = Vec::with_capacity(heads * rels.len());
        for head in 0..heads {
            for &r in rels {
                let index = buckets.bucket(r) * heads + head;
                bias.push(rel.get(index).copied().ok_or_else(|| {
                    crate::t5::model::tensor_error(self.path, &format!("{prefix}self.rel"), "is too small".into())
                })?);
            }
        }
        Ok(SelfAttention {
            q: self.linear(&format!("{prefix}self.q"), d, d)?,
            k: self.linear(&format!("{prefix}self.k"), d, d)?,
            v: self.linear(&format!("{prefix}self.v"), d, d)?,
            o: self.linear(&format!("{prefix}self.o"), d, d)?,
            bias_reversed: bias.chunks(rels.len().max(1)).flat_map(|h| h.iter().rev().copied()).collect(),
            bias,
            bias_len: rels.len(),
        })
    }

    fn ffn(&self, prefix: &str, config: &ModelConfig) -> Result<Ffn> {
        Ok(Ffn {
            wi: self.linear(&format!("{prefix}ff.wi"), config.d_ff, config.d_model)?,
            wo: self.linear(&format!("{prefix}ff.wo"), config.d_model, config.d_ff)?,
        })
    }
}

impl Net {
    /// Builds the network from tensors already checked against the config's layout.
    pub fn new(config: &ModelConfig, tensors: &Tensors, path: &Path) -> Result<Net> {
        let r = Reader { tensors, path };
        let d = config.d_model;
        let unbucketable = || CoderError::ModelConfig {
            path: path.with_file_name("config.json"),
            reason: "relative positions cannot be bucketed".into(),
        };
        let enc_buckets = RelBuckets::new(Direction::Bidirectional, config.rel_buckets, config.rel_max_distance)
            .ok_or_else(unbucketable)?;
        let dec_buckets =
            RelBuckets::new(Direction::Causal, config.rel_buckets, config.rel_max_distance).ok_or_else(unbucketable)?;
        let reach = config.segment as i64 - 1;
        let enc_rels: Vec<i64> = (-reach..=reach).collect();
        let dec_rels: Vec<i64> = (0..config.window as i64).map(|distance| -distance).collect();
        let encoder = (0..config.enc_layers)
            .map(|i| {
                let p = format!("enc.{i}.");
                Ok(EncoderLayer {
                    norm1: r.i8(&format!("{p}ln1.g"))?,
                    attn: r.self_attention(&p, config, &enc_buckets, &enc_rels)?,
                    norm2: r.i8(&format!("{p}ln2.g"))?,
                    ffn: r.ffn(&p, config)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..config.dec_layers)
            .map(|i| {
                let p = format!("dec.{i}.");
                Ok(DecoderLayer {
                    norm1: r.i8(&format!("{p}ln1.g"))?,
                    attn: r.self_attention(&p, config, &dec_buckets, &dec_rels)?,
                    norm2: r.i8(&format!("{p}ln2.g"))?,
                    cross: CrossAttention {
                        q: r.linear(&format!("{p}cross.q"), d, d)?,
                        k: r.linear(&format!("{p}cross.k"), d, d)?,
                        v: r.linear(&format!("{p}cross.v"), d, d)?,
                        o: r.linear(&format!("{p}cross.o"), d, d)?,
                    },
                    norm3: r.i8(&format!("{p}ln3.g"))?,
                    ffn: r.ffn(&p, config)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let boost_values = r.tensors.i32("match.boost", path)?;
        let mut boost = [0i32; MATCH_BUCKETS];
        for (b, &v) in boost.iter_mut().zip(boost_values) {
            *b = v;
        }
        Ok(Net {
            embed: r.i8("embed")?,
            latent_embed: r.i8("latent_embed")?,
            latent_pos: r.i8("latent_pos")?,
            encoder,
            encoder_norm: r.i8("enc.ln_f.g")?,
            decoder,
            decoder_norm: r.i8("dec.ln_f.g")?,
            out: r.linear("out", config.vocab, d)?,
            latent_head: r.linear("latent_head", config.latent_vocab + 1, d)?,
            boost,
        })
    }
}
