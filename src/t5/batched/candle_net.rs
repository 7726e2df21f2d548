//! The decoder of CODER.md on candle, for many blocks at once: one step advances every
//! block of the batch by one position, on a GPU with the `cuda` feature (or on the CPU).
//!
//! Same integers as `decoder.rs`, computed in f64 tensors: every value the integer
//! network holds is an integer far below 2^53, so sums and products are exact whatever
//! order a device adds them in; rounding shifts are a multiplication by a power of two
//! and a floor (exact); divisions are correctly rounded IEEE divisions followed by a
//! floor, exact while |numerator| < 2^53 (the quotient's rounding error is then smaller
//! than its distance to the next integer); the square root of RMSNorm is correctly
//! rounded, and its floor exact below 2^52. Softmax weights come from the exp table by
//! index. The tests check every logit against the CPU decoder.

use candle_core::{D, DType, Device, Tensor};

use crate::t5::decoder::latent_memory;
use crate::t5::intnet::{EXP, EXP_LEVELS, Linear};
use crate::t5::model::Model;
use crate::t5::weights::{DecoderLayer, Net};
use crate::t5::{E_A, E_H, E_S, E_X, H_MAX, Q8_MAX};

type CResult<T> = candle_core::Result<T>;

/// Added to the score of a key that does not exist: its gap to the best key is beyond the
/// exp table, so it weighs EXP[127] = 0.
const NO_KEY: f64 = -1e12;

/// Where batched decoding runs: the first CUDA device when built with the `cuda` feature
/// and one is present, else the CPU.
pub fn batch_device() -> Device {
    #[cfg(feature = "cuda")]
    match Device::new_cuda(0) {
        Ok(device) => return device,
        Err(e) => log::info!("no CUDA device, batched decoding on the CPU: {e}"),
    }
    Device::Cpu
}

struct CLinear {
    /// `[cols][rows]`: inputs `[n][cols]` times this give `[n][rows]`.
    wt: Tensor,
    exp: i32,
}

impl CLinear {
    fn new(l: &Linear, device: &Device) -> CResult<CLinear> {
        let (rows, cols) = (l.rows(), l.cols());
        let wt = (0..cols).flat_map(|c| (0..rows).map(move |r| f64::from(l.weight(r, c)))).collect();
        let wt = Tensor::from_vec(wt, (cols, rows), device)?;
        Ok(CLinear { wt, exp: l.exp() })
    }

    /// Exact sums W x for rows of x.
    fn sums(&self, x: &Tensor) -> CResult<Tensor> {
        x.matmul(&self.wt)
    }

    fn to_q8(&self, x: &Tensor, e_in: i32) -> CResult<Tensor> {
        clamp8(&rshift_sum(&self.sums(x)?, self.exp + e_in - E_A)?)
    }

    fn add_to_residual(&self, x: &Tensor, e_in: i32, h: &Tensor) -> CResult<Tensor> {
        let add = rshift_sum(&self.sums(x)?, self.exp + e_in - E_H)?;
        (h + add)?.clamp(-f64::from(H_MAX), f64::from(H_MAX))
    }
}

struct CLayer {
    norm1: Tensor,
    norm2: Tensor,
    norm3: Tensor,
    q: CLinear,
    k: CLinear,
    v: CLinear,
    o: CLinear,
    cross_q: CLinear,
    cross_o: CLinear,
    wi: CLinear,
    wo: CLinear,
    /// `[heads][W]`: slot j of the window (oldest first) is `W - 1 - j` positions back.
    bias: Tensor,
    /// Keys and values of the last W positions, `[batch][heads][W][dh]`, oldest first.
    past_k: Tensor,
    past_v: Tensor,
    /// The latent memory, `[batch][heads][M][dh]`, and its additive mask `[batch][1][1][M]`.
    mem_k: Tensor,
    mem_v: Tensor,
    mem_mask: Tensor,
}

/// The batched decoder: `batch` blocks, all at the same position.
pub struct BatchNet<'m> {
    net: &'m Net,
    device: Device,
    batch: usize,
    d: usize,
    heads: usize,
    window: usize,
    slots: usize,
    pos: usize,
    embed: Tensor,
    exp_table: Tensor,
    layers: Vec<CLayer>,
    norm: Tensor,
    out: CLinear,
}

impl<'m> BatchNet<'m> {
    /// A decoder for `batch` blocks at position 0, each with an empty latent.
    pub fn new(model: &'m Model, batch: usize, device: &Device) -> CResult<BatchNet<'m>> {
        let config = model.config();
        let net = model.net();
        let (d, heads, window) = (config.d_model, config.n_heads, config.window);
        let dh = d / heads;
        let slots = config.latent_max + 1;
        let vec = |v: &[i8]| -> CResult<Tensor> {
            Tensor::from_vec(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(), v.len(), device)
        };
        let zeros = |m: usize| Tensor::zeros((batch, heads, m, dh), DType::F64, device);
        let layer = |l: &DecoderLayer| -> CResult<CLayer> {
            let mut bias = Vec::with_capacity(heads * window);
            for head in 0..heads {
                // A decoder layer's bias covers the window: distances 0..window.
                bias.extend(l.attn.head_bias_reversed(head).iter().map(|&b| f64::from(b)));
            }
            Ok(CLayer {
                norm1: vec(&l.norm1)?,
                norm2: vec(&l.norm2)?,
                norm3: vec(&l.norm3)?,
                q: CLinear::new(&l.attn.q, device)?,
                k: CLinear::new(&l.attn.k, device)?,
                v: CLinear::new(&l.attn.v, device)?,
                o: CLinear::new(&l.attn.o, device)?,
                cross_q: CLinear::new(&l.cross.q, device)?,
                cross_o: CLinear::new(&l.cross.o, device)?,
                wi: CLinear::new(&l.ffn.wi, device)?,
                wo: CLinear::new(&l.ffn.wo, device)?,
                bias: Tensor::from_vec(bias, (heads, window), device)?,
                past_k: zeros(window)?,
                past_v: zeros(window)?,
                mem_k: zeros(slots)?,
                mem_v: zeros(slots)?,
                mem_mask: Tensor::zeros((batch, 1, 1, slots), DType::F64, device)?,
            })
        };
        let embed = Tensor::from_vec(
            net.embed.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
            (net.embed.len() / d, d),
            device,
        )?;
        let exp_table: Vec<f64> = EXP.iter().map(|&w| f64::from(w)).collect();
        let mut this = BatchNet {
            net,
            device: device.clone(),
            batch,
            d,
            heads,
            window,
            slots,
            pos: 0,
            embed,
            exp_table: Tensor::from_vec(exp_table, EXP_LEVELS, device)?,
            layers: net.decoder.iter().map(layer).collect::<CResult<_>>()?,
            norm: vec(&net.decoder_norm)?,
            out: CLinear::new(&net.out, device)?,
        };
        for b in 0..batch {
            this.set_latent(b, &[])?;
        }
        Ok(this)
    }

    /// The latent block `b` attends to from now on (as `Decoder::set_latent`).
    pub fn set_latent(&mut self, b: usize, codes: &[u32]) -> CResult<()> {
        let (used, memory) = latent_memory(self.net, codes);
        let (d, heads, slots) = (self.d, self.heads, self.slots);
        let dh = d / heads;
        // Rows [slot][d] → [heads][slot][dh], unused slots zero.
        let arrange = |rows: &[i8]| -> CResult<Tensor> {
            let mut out = vec![0f64; heads * slots * dh];
            for slot in 0..used {
                for (i, &v) in rows[slot * d..(slot + 1) * d].iter().enumerate() {
                    out[(i / dh) * slots * dh + slot * dh + i % dh] = f64::from(v);
                }
            }
            Tensor::from_vec(out, (1, heads, slots, dh), &self.device)
        };
        let mask: Vec<f64> = (0..slots).map(|s| if s < used { 0.0 } else { NO_KEY }).collect();
        let mask = Tensor::from_vec(mask, (1, 1, 1, slots), &self.device)?;
        for (layer, (keys, values)) in self.layers.iter_mut().zip(&memory) {
            layer.mem_k = layer.mem_k.slice_assign(&[b..b + 1, 0..heads, 0..slots, 0..dh], &arrange(keys)?)?;
            layer.mem_v = layer.mem_v.slice_assign(&[b..b + 1, 0..heads, 0..slots, 0..dh], &arrange(values)?)?;
            layer.mem_mask = layer.mem_mask.slice_assign(&[b..b + 1, 0..1, 0..1, 0..slots], &mask)?;
        }
        Ok(())
    }

    /// Runs the next position of every block; `inputs[b]` is block b's token before it
    /// (`START_TOKEN` first). Returns the logits, `batch` rows of the vocabulary (E_S,
    /// before the match boost), as the CPU decoder computes them.
    pub fn step(&mut self, inputs: &[u32]) -> CResult<Vec<i32>> {
        assert_eq!(inputs.len(), self.batch, "one input per block");
        let ids = Tensor::from_vec(inputs.to_vec(), self.batch, &self.device)?;
        let mut h = self.embed.index_select(&ids, 0)?.affine(f64::from(1 << (E_H - E_X)), 0.0)?;
        // Slots of the window holding a position: the newest min(pos + 1, W).
        let held = (self.pos + 1).min(self.window);
        let valid: Vec<f64> = (0..self.window).map(|j| if j + held >= self.window { 0.0 } else { NO_KEY }).collect();
        let valid = Tensor::from_vec(valid, (1, 1, 1, self.window), &self.device)?;
        for l in 0..self.layers.len() {
            h = self.layer(l, &h, &valid)?;
        }
        let x = rmsnorm(&h, &self.norm)?;
        let logits = rshift_sum(&self.out.sums(&x)?, self.out.exp + E_X - E_S)?;
        self.pos += 1;
        let logits: Vec<f64> = logits.flatten_all()?.to_vec1()?;
        Ok(logits.into_iter().map(|v| v as i32).collect())
    }

    fn layer(&mut self, l: usize, h: &Tensor, valid: &Tensor) -> CResult<Tensor> {
        let (batch, heads, d) = (self.batch, self.heads, self.d);
        let dh = d / heads;
        let window = self.window;
        let exp_table = self.exp_table.clone();
        let layer = &mut self.layers[l];
        let split = |t: &Tensor| t.reshape((batch, heads, 1, dh));
        let x = rmsnorm(h, &layer.norm1)?;
        let q = split(&layer.q.to_q8(&x, E_X)?)?;
        let k = split(&layer.k.to_q8(&x, E_X)?)?;
        let v = split(&layer.v.to_q8(&x, E_X)?)?;
        layer.past_k = Tensor::cat(&[&layer.past_k.narrow(2, 1, window - 1)?, &k], 2)?;
        layer.past_v = Tensor::cat(&[&layer.past_v.narrow(2, 1, window - 1)?, &v], 2)?;
        let bias = layer.bias.reshape((1, heads, 1, window))?.broadcast_add(valid)?;
        let o = attend(&q, &layer.past_k, &layer.past_v, &bias, &exp_table)?;
        let h = layer.o.add_to_residual(&o.reshape((batch, d))?, E_A, h)?;

        let x = rmsnorm(&h, &layer.norm2)?;
        let q = split(&layer.cross_q.to_q8(&x, E_X)?)?;
        let o = attend(&q, &layer.mem_k, &layer.mem_v, &layer.mem_mask, &exp_table)?;
        let h = layer.cross_o.add_to_residual(&o.reshape((batch, d))?, E_A, &h)?;

        let x = rmsnorm(&h, &layer.norm3)?;
        let hidden = layer.wi.to_q8(&x, E_X)?.relu()?;
        layer.wo.add_to_residual(&hidden, E_A, &h)
    }
}

/// One query per block and head (`q` `[b][h][1][dh]`) over keys and values `[b][h][m][dh]`
/// with additive biases broadcast to `[b][h][1][m]`: the exp-table softmax of CODER.md,
/// out as `[b][h][1][dh]` q8.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, exp_table: &Tensor) -> CResult<Tensor> {
    let raw = q.matmul(&k.transpose(2, 3)?.contiguous()?)?;
    let scores = rshift_sum(&raw, 2 * E_A - E_S)?.broadcast_add(bias)?;
    let max = scores.max_keepdim(D::Minus1)?;
    let level = max.broadcast_sub(&scores)?.clamp(0.0, (EXP_LEVELS - 1) as f64)?;
    let shape = level.dims().to_vec();
    let w = exp_table.index_select(&level.flatten_all()?.to_dtype(DType::U32)?, 0)?.reshape(shape)?;
    let total = w.sum_keepdim(D::Minus1)?;
    let sums = w.matmul(v)?;
    // div_round(sums, total) = floor((2·sums + total) / (2·total)).
    let num = sums.affine(2.0, 0.0)?.broadcast_add(&total)?;
    clamp8(&num.broadcast_div(&total.affine(2.0, 0.0)?)?.floor()?)
}

/// RMSNorm of rows `h` `[n][d]` with gains `[d]`: `r = max(1, isqrt(Σh² / d))`, then
/// `clamp8(floor((h·g + r) / 2r))` (see `intnet::norm`).
fn rmsnorm(h: &Tensor, gain: &Tensor) -> CResult<Tensor> {
    let d = Tensor::new(&[h.dim(D::Minus1)? as f64], h.device())?;
    let squares = h.sqr()?.sum_keepdim(D::Minus1)?;
    let r = squares.broadcast_div(&d)?.floor()?.sqrt()?.floor()?.maximum(1.0)?;
    let num = h.broadcast_mul(gain)?.broadcast_add(&r)?;
    clamp8(&num.broadcast_div(&r.affine(2.0, 0.0)?)?.floor()?)
}

/// `rshift_sum(x, s)` of `intnet::arith`: round(x / 2^s), halves up; exact powers of two.
fn rshift_sum(x: &Tensor, s: i32) -> CResult<Tensor> {
    match s {
        31.. => x.zeros_like(),
        1..=30 => x.affine(1.0, f64::from(1u32 << (s - 1)))?.affine(1.0 / f64::from(1u32 << s), 0.0)?.floor(),
        _ => x.affine(f64::from(1u32 << (-s).min(31)), 0.0)?.clamp(f64::from(i32::MIN), f64::from(i32::MAX)),
    }
}

fn clamp8(x: &Tensor) -> CResult<Tensor> {
    x.clamp(-f64::from(Q8_MAX), f64::from(Q8_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::decoder::{Decoder, START_TOKEN};
    use crate::t5::fixtures;

    #[test]
    fn a_batch_step_gives_each_blocks_cpu_logits() {
        let model = fixtures::tiny_model();
        let (vocab, window) = (model.config().vocab, model.config().window);
        let batch = 3;
        let steps = window + 20;
        let mut next = fixtures::xorshift(11);
        let seqs: Vec<Vec<u32>> =
            (0..batch).map(|_| (0..steps).map(|_| (next() % vocab as u64) as u32).collect()).collect();
        let mut net = BatchNet::new(&model, batch, &Device::Cpu).expect("batch net");
        let mut cpu: Vec<Decoder> = (0..batch).map(|_| Decoder::new(&model, 1)).collect();
        let mut logits = Vec::new();
        for t in 0..steps {
            // New latents now and then (a segment boundary), of every length.
            if t % 25 == 0 {
                for (b, dec) in cpu.iter_mut().enumerate() {
                    let codes: Vec<u32> = (0..(b + t) % 6).map(|i| ((b + i * 7 + t) % 17) as u32).collect();
                    net.set_latent(b, &codes).expect("latent");
                    dec.set_latent(&codes);
                }
            }
            let inputs: Vec<u32> = seqs.iter().map(|s| if t == 0 { START_TOKEN } else { s[t - 1] }).collect();
            let got = net.step(&inputs).expect("step");
            for (b, dec) in cpu.iter_mut().enumerate() {
                dec.forward(&[inputs[b]], &mut logits);
                assert_eq!(&got[b * vocab..(b + 1) * vocab], &logits[..], "block {b}, position {t}");
            }
        }
    }
}
