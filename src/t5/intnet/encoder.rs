//! The t5 encoder: one segment's tokens to its latent codes (CODER.md, "Coding a block",
//! step 2). Its arithmetic need not match across machines, because the codes it picks
//! are stored in the frame; it uses the decoder's integer kernels anyway.

use crate::t5::E_A;
use crate::t5::intnet::{KeyRun, KvCache, attend, clamp8, div_round, rmsnorm};
use crate::t5::model::Model;
use crate::t5::weights::{Activations, Net};

pub struct Encoder<'m> {
    net: &'m Net,
    d: usize,
    segment: usize,
    latent_max: usize,
    /// Code K: the end of a latent.
    end: usize,
    rows: Activations,
    pooled: Vec<i8>,
    /// Per column, the sum of a part's outputs (at most `segment` of 127: far inside i32).
    sums: Vec<i32>,
    cache: KvCache,
}

impl<'m> Encoder<'m> {
    pub fn new(model: &'m Model) -> Encoder<'m> {
        let config = model.config();
        Encoder {
            net: model.net(),
            d: config.d_model,
            segment: config.segment,
            latent_max: config.latent_max,
            end: config.latent_vocab,
            rows: Activations::default(),
            pooled: Vec::new(),
            sums: Vec::new(),
            cache: KvCache::new(config.segment, config.n_heads, config.head_dim()),
        }
    }

    /// The latent of one segment (at most `segment` tokens, each below the vocabulary
    /// size): its encoder outputs are mean-pooled into `latent_max` equal parts
    /// (`[p·n/P, (p+1)·n/P)`), each part's argmax over `latent_head` is a code (ties to
    /// the lowest), and the latent is the codes before the first END or empty part.
    pub fn latent(&mut self, tokens: &[u32]) -> Vec<u32> {
        let n = tokens.len().min(self.segment);
        let d = self.d;
        self.encode(&tokens[..n]);
        let parts = self.latent_max;
        let mut codes = Vec::with_capacity(parts);
        for p in 0..parts {
            let (lo, hi) = (p * n / parts, (p + 1) * n / parts);
            if lo == hi {
                break;
            }
            // Row by row into per-column sums (a column walk would stride through rows).
            self.sums.clear();
            self.sums.resize(d, 0);
            for row in self.rows.x[lo * d..hi * d].chunks_exact(d) {
                for (sum, &x) in self.sums.iter_mut().zip(row) {
                    *sum += i32::from(x);
                }
            }
            self.pooled.clear();
            self.pooled.extend(self.sums.iter().map(|&sum| clamp8(div_round(i64::from(sum), (hi - lo) as i64))));
            let (scores, _) = self.net.latent_head.accumulate(&self.pooled, 1, &mut self.rows.linear);
            let mut best = 0;
            for (code, &score) in scores.iter().enumerate().take(self.end + 1) {
                if score > scores[best] {
                    best = code;
                }
            }
            if best >= self.end {
                break;
            }
            codes.push(best as u32);
        }
        codes
    }

    /// Runs the encoder over `tokens`; leaves the final normalized outputs in `x`.
    fn encode(&mut self, tokens: &[u32]) {
        let (n, d, net) = (tokens.len(), self.d, self.net);
        self.rows.start(net, tokens);
        let r = &mut self.rows;
        for layer in &net.encoder {
            let attn = &layer.attn;
            rmsnorm(&r.h, &layer.norm1, &mut r.x);
            attn.project(&r.x, n, &mut r.q, &mut r.k, &mut r.v, &mut r.linear);
            for j in 0..n {
                let row = j * d..(j + 1) * d;
                self.cache.set(j, &r.k[row.clone()], &r.v[row]);
            }
            // Bias index j - t + segment - 1 for key j, query t.
            let segment = self.segment;
            let keys = |t: usize, head: usize| {
                let first = segment - 1 - t;
                [KeyRun { slot: 0, bias: &attn.head_bias(head)[first..first + n] }, KeyRun::EMPTY]
            };
            attend(&self.cache, &r.q, n, keys, &mut r.o, &mut r.attn);
            attn.o.add_to_residual(&r.o, n, E_A, &mut r.h, &mut r.linear);
            rmsnorm(&r.h, &layer.norm2, &mut r.x);
            layer.ffn.add_to_residual(&r.x, n, &mut r.h, &mut r.ffn);
        }
        rmsnorm(&r.h, &net.encoder_norm, &mut r.x);
    }
}
