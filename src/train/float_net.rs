//! The float model of CODER.md, fake-quantized where the integer network rounds, and its
//! loss: the bits of a frame (tokens under the decoder, plus the latent) per byte.

use candle_core::{D, Device, Tensor};

use super::latent::{Latent, LatentChoice};
use super::params::Quantized;
use super::quant::{Grid, fake_quant};
use super::windows::Batch;
use crate::t5::{Direction, E_A, E_H, E_S, E_X, H_MAX, ModelConfig};

type CResult<T> = candle_core::Result<T>;

/// Added to the score of a key that does not exist: its weight underflows to exactly 0.
const NO_KEY: f64 = -1e9;

/// What does not change between steps: relative-position biases' bucket indices and the
/// causal mask (the window is W positions, so causal is all the decoder's window asks).
pub struct Fixed {
    enc_buckets: Tensor,
    dec_buckets: Tensor,
    causal: Tensor,
}

impl Fixed {
    pub fn new(config: &ModelConfig, device: &Device) -> CResult<Fixed> {
        let indices = |direction, n: usize| -> CResult<Tensor> {
            let buckets = config
                .rel_buckets(direction)
                .ok_or_else(|| candle_core::Error::Msg("config cannot be bucketed".into()))?;
            let idx: Vec<u32> = (0..n)
                .flat_map(|t| (0..n).map(move |j| (t, j)))
                .map(|(t, j)| buckets.bucket(j as i64 - t as i64) as u32)
                .collect();
            Tensor::from_vec(idx, n * n, device)
        };
        let w = config.window;
        let causal: Vec<f32> =
            (0..w).flat_map(|t| (0..w).map(move |j| if j <= t { 0.0 } else { NO_KEY as f32 })).collect();
        Ok(Fixed {
            enc_buckets: indices(Direction::Bidirectional, config.segment)?,
            dec_buckets: indices(Direction::Causal, w)?,
            causal: Tensor::from_vec(causal, (1, 1, w, w), device)?,
        })
    }
}

/// A batch on the device.
pub struct DeviceBatch {
    windows: usize,
    input: Tensor,
    target: Tensor,
    target_ok: Tensor,
    pred: Tensor,
    bucket: Tensor,
    has_match: Tensor,
    /// 1 where the match model predicts the target itself.
    hit: Tensor,
    segment_tokens: Tensor,
    segment_mask: Tensor,
    pool: Tensor,
    slot_ok: Tensor,
    segment_exists: Tensor,
}

impl DeviceBatch {
    pub fn new(batch: &Batch, config: &ModelConfig, device: &Device) -> CResult<DeviceBatch> {
        let (b, w) = (batch.windows, batch.positions);
        let (s, len, slots) = (batch.segments(), config.segment, config.latent_max);
        let key_bias = |ok: &[f32]| ok.iter().map(|&o| (1.0 - o) * NO_KEY as f32).collect();
        let has_match: Vec<f32> = batch.bucket.iter().map(|&k| if k > 0 { 1.0 } else { 0.0 }).collect();
        let hit: Vec<f32> = (0..b * w)
            .map(|i| {
                let hit = batch.bucket[i] > 0 && batch.pred[i] == batch.target[i];
                if hit { 1.0 } else { 0.0 }
            })
            .collect();
        Ok(DeviceBatch {
            windows: b,
            input: Tensor::from_slice(&batch.input, b * w, device)?,
            target: Tensor::from_slice(&batch.target, (b * w, 1), device)?,
            target_ok: Tensor::from_slice(&batch.target_ok, b * w, device)?,
            pred: Tensor::from_slice(&batch.pred, (b * w, 1), device)?,
            bucket: Tensor::from_slice(&batch.bucket, b * w, device)?,
            has_match: Tensor::from_vec(has_match, b * w, device)?,
            hit: Tensor::from_vec(hit, b * w, device)?,
            segment_tokens: Tensor::from_slice(&batch.segment_tokens, s * len, device)?,
            segment_mask: Tensor::from_vec(key_bias(&batch.segment_ok), (s, 1, 1, len), device)?,
            pool: Tensor::from_slice(&batch.pool, (s, slots, len), device)?,
            slot_ok: Tensor::from_slice(&batch.slot_ok, (s, slots), device)?,
            segment_exists: Tensor::from_slice(&batch.segment_exists, s, device)?,
        })
    }
}

/// A batch's cost, summed over it.
pub struct Loss {
    /// Bits of the coded tokens under the decoder (with the match boost).
    pub token_bits: Tensor,
    /// Bits of the segments' latents (lengths and codes).
    pub latent_bits: Tensor,
    /// Latent codes used, over all segments.
    pub codes: Tensor,
}

impl Loss {
    /// Total bits per byte: what training minimizes.
    pub fn per_byte(&self, bytes: u64) -> CResult<Tensor> {
        (&self.token_bits + &self.latent_bits)? / bytes.max(1) as f64
    }
}

/// The model with one step's fake-quantized parameters.
pub struct Net<'a> {
    config: &'a ModelConfig,
    p: &'a Quantized,
    fixed: &'a Fixed,
}

impl<'a> Net<'a> {
    pub fn new(config: &'a ModelConfig, p: &'a Quantized, fixed: &'a Fixed) -> Net<'a> {
        Net { config, p, fixed }
    }

    pub fn loss(&self, batch: &DeviceBatch, choice: LatentChoice) -> CResult<Loss> {
        let latent = Latent::choose(&self.latent_logits(batch)?, &batch.slot_ok, choice)?;
        let token_bits = self.position_bits(batch, &latent)?.sum_all()?;
        let codes = (&latent.codes * &batch.segment_exists)?.sum_all()?;
        let latent_bits = self.latent_bits(&batch.segment_exists, &codes)?;
        Ok(Loss { token_bits, latent_bits, codes })
    }

    /// The bits of latents of `codes` codes on `segments` segments (tensors of any shape,
    /// 0 or 1 per segment): the length, uniform over 0..=latent_max, and the codes,
    /// uniform over K, as the unmixed coder writes them.
    pub fn latent_bits(&self, segments: &Tensor, codes: &Tensor) -> CResult<Tensor> {
        let (length_bits, code_bits) = latent_code_bits(self.config);
        (segments.sum_all()? * length_bits)? + (codes.sum_all()? * code_bits)?
    }

    /// The coded bits of each segment's tokens under the decoder given `latent` [s].
    pub fn segment_bits(&self, batch: &DeviceBatch, latent: &Latent) -> CResult<Tensor> {
        let s = batch.segment_exists.dim(0)?;
        self.position_bits(batch, latent)?.reshape((s, self.config.segment))?.sum(1)
    }

    /// The coded bits of every target [b · w] (0 where nothing is coded).
    fn position_bits(&self, batch: &DeviceBatch, latent: &Latent) -> CResult<Tensor> {
        let memory = self.memory(latent)?;
        let logits = self.decode(batch, &memory, &latent.presence_keys()?)?;
        token_bits(&logits, &self.boost(batch)?, batch)
    }

    fn w(&self, name: &str) -> CResult<&Tensor> {
        self.p.get(name)
    }

    /// The encoder over every segment, pooled into latent slots: the latent head's logits
    /// [s, slots, K+1] (K is END).
    pub fn latent_logits(&self, batch: &DeviceBatch) -> CResult<Tensor> {
        let c = self.config;
        let s = batch.segment_exists.dim(0)?;
        let mut h = self.w("embed")?.index_select(&batch.segment_tokens, 0)?.reshape((s, c.segment, c.d_model))?;
        for i in 0..c.enc_layers {
            let prefix = format!("enc.{i}.");
            let bias = self.rel_bias(&format!("{prefix}self.rel"), &self.fixed.enc_buckets, c.segment)?;
            let x = self.norm(&h, &format!("{prefix}ln1.g"))?;
            let a = self.self_attention(&x, &prefix, &(bias.broadcast_add(&batch.segment_mask)?))?;
            h = residual(&h, &a)?;
            let x = self.norm(&h, &format!("{prefix}ln2.g"))?;
            h = residual(&h, &self.ffn(&x, &prefix)?)?;
        }
        let x = self.norm(&h, "enc.ln_f.g")?;
        let pooled = fake_quant(&batch.pool.matmul(&x)?, Grid::q8(E_X))?;
        // The coder takes the argmax of the exact accumulators, so no rounding here.
        linear(&pooled, self.w("latent_head")?)
    }

    /// The cross-attention memory of each segment: the null slot, then the codes with
    /// their positions.
    fn memory(&self, latent: &Latent) -> CResult<Tensor> {
        let c = self.config;
        let (s, slots, k1) = latent.onehot.dims3()?;
        let embed = self.w("latent_embed")?;
        let pos = self.w("latent_pos")?;
        let codes = latent
            .onehot
            .reshape((s * slots, k1))?
            .matmul(embed)?
            .reshape((s, slots, c.d_model))?
            .broadcast_add(&pos.narrow(0, 1, slots)?)?;
        let null = (embed.narrow(0, c.latent_vocab, 1)? + pos.narrow(0, 0, 1)?)?
            .unsqueeze(0)?
            .broadcast_as((s, 1, c.d_model))?;
        fake_quant(&Tensor::cat(&[&null, &codes], 1)?, Grid::q8(E_X))
    }

    /// Logits [b · w, vocab] of every target, before the match boost.
    fn decode(&self, batch: &DeviceBatch, memory: &Tensor, presence: &Tensor) -> CResult<Tensor> {
        let c = self.config;
        let (b, w, d) = (batch.windows, c.window, c.d_model);
        let s = memory.dim(0)?;
        let mut h = self.w("embed")?.index_select(&batch.input, 0)?.reshape((b, w, d))?;
        for i in 0..c.dec_layers {
            let prefix = format!("dec.{i}.");
            let bias = self.rel_bias(&format!("{prefix}self.rel"), &self.fixed.dec_buckets, w)?;
            let mask = bias.broadcast_add(&self.fixed.causal)?;
            let x = self.norm(&h, &format!("{prefix}ln1.g"))?;
            h = residual(&h, &self.self_attention(&x, &prefix, &mask)?)?;
            let x = self.norm(&h, &format!("{prefix}ln2.g"))?;
            let x = x.reshape((s, c.segment, d))?;
            let a = self.cross_attention(&x, memory, presence, &prefix)?;
            h = residual(&h, &a.reshape((b, w, d))?)?;
            let x = self.norm(&h, &format!("{prefix}ln3.g"))?;
            h = residual(&h, &self.ffn(&x, &prefix)?)?;
        }
        let x = self.norm(&h, "dec.ln_f.g")?.reshape((b * w, d))?;
        fake_quant(&linear(&x, self.w("out")?)?, Grid::rounded(E_S))
    }

    /// The match boost of every target [b · w] (0 where the match model predicts nothing).
    fn boost(&self, batch: &DeviceBatch) -> CResult<Tensor> {
        self.w("match.boost")?.index_select(&batch.bucket, 0)? * &batch.has_match
    }

    /// RMSNorm to q8 at E_X.
    fn norm(&self, h: &Tensor, gain: &str) -> CResult<Tensor> {
        let floor = (1.0 / f64::from(1 << E_H)).powi(2);
        let rms = h.sqr()?.mean_keepdim(D::Minus1)?.maximum(floor)?.sqrt()?;
        let x = h.broadcast_div(&rms)?.broadcast_mul(self.w(gain)?)?;
        fake_quant(&x, Grid::q8(E_X))
    }

    fn ffn(&self, x: &Tensor, prefix: &str) -> CResult<Tensor> {
        let a = fake_quant(&linear(x, self.w(&format!("{prefix}ff.wi"))?)?.relu()?, Grid::q8(E_A))?;
        linear(&a, self.w(&format!("{prefix}ff.wo"))?)
    }

    /// Relative-position bias [1, heads, n, n] of a layer.
    fn rel_bias(&self, name: &str, buckets: &Tensor, n: usize) -> CResult<Tensor> {
        let heads = self.config.n_heads;
        self.w(name)?.index_select(buckets, 0)?.reshape((n, n, heads))?.permute((2, 0, 1))?.unsqueeze(0)
    }

    /// Projected into q8 at E_A and split into heads [n, heads, t, head_dim].
    fn heads(&self, x: &Tensor, weight: &str) -> CResult<Tensor> {
        let (n, t, _) = x.dims3()?;
        let c = self.config;
        fake_quant(&linear(x, self.w(weight)?)?, Grid::q8(E_A))?
            .reshape((n, t, c.n_heads, c.head_dim()))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Self-attention with `bias` (relative positions and masks) added to the scores;
    /// the output projected for the residual.
    fn self_attention(&self, x: &Tensor, prefix: &str, bias: &Tensor) -> CResult<Tensor> {
        let q = self.heads(x, &format!("{prefix}self.q"))?;
        let k = self.heads(x, &format!("{prefix}self.k"))?;
        let v = self.heads(x, &format!("{prefix}self.v"))?;
        let scores = scores(&q, &k)?.broadcast_add(bias)?;
        let o = attend(&softmax(&scores, None)?, &v)?;
        linear(&o, self.w(&format!("{prefix}self.o"))?)
    }

    fn cross_attention(&self, x: &Tensor, memory: &Tensor, presence: &Tensor, prefix: &str) -> CResult<Tensor> {
        let q = self.heads(x, &format!("{prefix}cross.q"))?;
        let k = self.heads(memory, &format!("{prefix}cross.k"))?;
        let v = self.heads(memory, &format!("{prefix}cross.v"))?;
        let o = attend(&softmax(&scores(&q, &k)?, Some(presence))?, &v)?;
        linear(&o, self.w(&format!("{prefix}cross.o"))?)
    }
}

/// The bits of a latent's length and of each of its codes, coded uniformly.
pub fn latent_code_bits(config: &ModelConfig) -> (f64, f64) {
    let length = ((config.latent_max + 1) as f64).log2();
    (length, (config.latent_vocab as f64).log2())
}

/// `x W^T` over the last dimension of `x`.
fn linear(x: &Tensor, w: &Tensor) -> CResult<Tensor> {
    let dims = x.dims();
    let inner = dims[dims.len() - 1];
    let rows = x.elem_count() / inner.max(1);
    let mut out_dims = dims.to_vec();
    let last = out_dims.len() - 1;
    out_dims[last] = w.dim(0)?;
    x.reshape((rows, inner))?.matmul(&w.t()?)?.reshape(out_dims)
}

/// `h + delta`, rounded into the residual's grid and clamped to its range.
fn residual(h: &Tensor, delta: &Tensor) -> CResult<Tensor> {
    fake_quant(&(h + delta)?, Grid::clamped(E_H, H_MAX))
}

/// Unscaled dot products of queries and keys, rounded to E_S.
fn scores(q: &Tensor, k: &Tensor) -> CResult<Tensor> {
    fake_quant(&q.matmul(&k.t()?)?, Grid::rounded(E_S))
}

/// The attention-weighted values, q8 at E_A, heads merged [n, t, d].
fn attend(weights: &Tensor, v: &Tensor) -> CResult<Tensor> {
    let (n, heads, t, hd) = {
        let (n, h, t, _) = weights.dims4()?;
        (n, h, t, v.dim(3)?)
    };
    fake_quant(&weights.matmul(v)?, Grid::q8(E_A))?.transpose(1, 2)?.reshape((n, t, heads * hd))
}

/// Softmax over the last dimension. `presence` (0 or 1 forward, with a gradient) weighs
/// keys in or out: a latent slot the encoder did not emit, with the gradient of emitting
/// it. The shift by the largest present score is a constant of the softmax and carries
/// no gradient.
fn softmax(scores: &Tensor, presence: Option<&Tensor>) -> CResult<Tensor> {
    let Some(presence) = presence else {
        let max = scores.max_keepdim(D::Minus1)?.detach();
        let e = scores.broadcast_sub(&max)?.exp()?;
        return e.broadcast_div(&e.sum_keepdim(D::Minus1)?);
    };
    let absent = ((presence.detach() - 1.0)? * -NO_KEY)?;
    let max = scores.broadcast_add(&absent)?.max_keepdim(D::Minus1)?.detach();
    // An absent key can score far above the present ones; bounded, its exp stays finite
    // and is multiplied by 0.
    let e = scores.broadcast_sub(&max)?.minimum(30.0)?.exp()?.broadcast_mul(presence)?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Cross-entropy of each target, in bits (0 where nothing is coded), with `boost`
/// added to the logit of each position's predicted token. The boost enters through
/// the two terms it changes, not through the full logits: adding it there would take a
/// scatter (whose gradient candle gets wrong) or a one-hot of the vocabulary.
fn token_bits(logits: &Tensor, boost: &Tensor, batch: &DeviceBatch) -> CResult<Tensor> {
    boosted_bits(logits, boost, &batch.pred, &batch.target, &batch.hit, &batch.target_ok)
}

fn boosted_bits(
    logits: &Tensor,
    boost: &Tensor,
    pred: &Tensor,
    target: &Tensor,
    hit: &Tensor,
    coded: &Tensor,
) -> CResult<Tensor> {
    let max = logits.max_keepdim(1)?.detach();
    let e = logits.broadcast_sub(&max)?.exp()?;
    // log Σ exp, the predicted token's term multiplied by e^boost. A boost beyond 60
    // nats means certainty already; capping it keeps e^boost finite.
    let pred_e = e.gather(pred, 1)?.squeeze(1)?;
    let extra = (pred_e * (boost.minimum(60.0)?.exp()? - 1.0)?)?;
    let log_total = (e.sum(1)? + extra)?.log()?;
    let target = (logits.gather(target, 1)?.broadcast_sub(&max)?.squeeze(1)? + (boost * hit)?)?;
    ((log_total - target)? * coded)? / std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boosted_cross_entropy_is_that_of_the_boosted_logits() -> CResult<()> {
        let dev = Device::Cpu;
        let rows = [[1.0f32, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]];
        let (preds, boosts, targets) = ([1u32, 0, 2], [1.5f32, 4.0, 0.0], [1u32, 2, 0]);
        let mut expected = 0.0;
        for i in 0..3 {
            let mut l = rows[i].map(f64::from);
            l[preds[i] as usize] += f64::from(boosts[i]);
            let total: f64 = l.iter().map(|x| x.exp()).sum();
            expected += (total.ln() - l[targets[i] as usize]) / std::f64::consts::LN_2;
        }
        let hit: Vec<f32> = (0..3).map(|i| if preds[i] == targets[i] { 1.0 } else { 0.0 }).collect();
        let logits = Tensor::new(&rows, &dev)?;
        let boost = Tensor::new(&boosts, &dev)?;
        let batch_target = Tensor::new(&targets, &dev)?.unsqueeze(1)?;
        let pred = Tensor::new(&preds, &dev)?.unsqueeze(1)?;
        let ok = Tensor::ones(3, candle_core::DType::F32, &dev)?;
        let hit = Tensor::new(hit.as_slice(), &dev)?;
        let bits = boosted_bits(&logits, &boost, &pred, &batch_target, &hit, &ok)?.sum_all()?;
        let got = f64::from(bits.to_scalar::<f32>()?);
        assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
        Ok(())
    }
}
