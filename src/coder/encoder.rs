//! The t5 encoder: one segment's tokens to its latent codes (CODER.md, "Coding a block",
//! step 2). Its arithmetic need not match across machines, because the codes it picks
//! are stored in the frame; it uses the decoder's integer kernels anyway.

use super::intnet::{
    AttnScratch, FfnScratch, KvCache, LinearScratch, attend_head, clamp8, div_round, rmsnorm,
};
use super::model::Model;
use super::net::Net;
use super::{E_A, E_H, E_X};

pub struct Encoder<'m> {
    net: &'m Net,
    d: usize,
    heads: usize,
    segment: usize,
    latent_max: usize,
    /// Code K: the end of a latent.
    end: usize,
    h: Vec<i32>,
    x: Vec<i8>,
    q: Vec<i8>,
    k: Vec<i8>,
    v: Vec<i8>,
    o: Vec<i8>,
    pooled: Vec<i8>,
    cache: KvCache,
    linear: LinearScratch,
    ffn: FfnScratch,
    attn: AttnScratch,
}

impl<'m> Encoder<'m> {
    pub fn new(model: &'m Model) -> Encoder<'m> {
        let config = model.config();
        Encoder {
            net: model.net(),
            d: config.d_model,
            heads: config.n_heads,
            segment: config.segment,
            latent_max: config.latent_max,
            end: config.latent_vocab,
            h: Vec::new(),
            x: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            o: Vec::new(),
            pooled: Vec::new(),
            cache: KvCache::new(config.segment, config.n_heads, config.head_dim()),
            linear: LinearScratch::default(),
            ffn: FfnScratch::default(),
            attn: AttnScratch::default(),
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
            self.pooled.clear();
            for c in 0..d {
                let sum: i64 = (lo..hi).map(|i| i64::from(self.x[i * d + c])).sum();
                self.pooled.push(clamp8(div_round(sum, (hi - lo) as i64)));
            }
            let (scores, _) = self
                .net
                .latent_head
                .accumulate(&self.pooled, 1, &mut self.linear);
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
        let dh = d / self.heads;
        self.h.clear();
        for &token in tokens {
            let row = &net.embed[token as usize * d..(token as usize + 1) * d];
            self.h
                .extend(row.iter().map(|&e| i32::from(e) << (E_H - E_X)));
        }
        for f in [
            &mut self.x,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.o,
        ] {
            f.resize(n * d, 0);
        }
        for layer in &net.encoder {
            let attn = &layer.attn;
            rmsnorm(&self.h, &layer.norm1, &mut self.x);
            attn.q
                .to_q8(&self.x, n, E_X, E_A, false, &mut self.q, &mut self.linear);
            attn.k
                .to_q8(&self.x, n, E_X, E_A, false, &mut self.k, &mut self.linear);
            attn.v
                .to_q8(&self.x, n, E_X, E_A, false, &mut self.v, &mut self.linear);
            for j in 0..n {
                let row = j * d..(j + 1) * d;
                self.cache.set(j, &self.k[row.clone()], &self.v[row]);
            }
            for t in 0..n {
                for head in 0..self.heads {
                    let cols = t * d + head * dh..t * d + (head + 1) * dh;
                    // Bias index j - t + segment - 1 for keys j = 0..n.
                    let first = self.segment - 1 - t;
                    let bias = &attn.head_bias(head)[first..first + n];
                    let keys = bias.iter().copied().enumerate();
                    attend_head(
                        &self.cache,
                        head,
                        &self.q[cols.clone()],
                        keys,
                        &mut self.o[cols],
                        &mut self.attn,
                    );
                }
            }
            attn.o
                .add_to_residual(&self.o, n, E_A, &mut self.h, &mut self.linear);
            rmsnorm(&self.h, &layer.norm2, &mut self.x);
            layer
                .ffn
                .add_to_residual(&self.x, n, &mut self.h, &mut self.ffn);
        }
        rmsnorm(&self.h, &net.encoder_norm, &mut self.x);
    }
}
