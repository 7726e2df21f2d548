//! The t5 decoder run position by position in integers (CODER.md, "Operations"): self-
//! attention over a window of W past positions, kept as ring buffers of keys and values
//! so that a step costs the same at every position, and cross-attention to the current
//! segment's latent. `forward` takes several positions at once when they are all known
//! (compression); each position's result is the same as when it runs alone (decoding),
//! since every position runs the same integer computation over the same keys.

use crate::t5::intnet::{KeyRun, KvCache, LinearScratch, ZERO_BIAS, attend, clamp8, rmsnorm};
use crate::t5::model::Model;
use crate::t5::weights::{Activations, DecoderLayer, Net};
use crate::t5::{E_A, E_S, E_X};

/// The input at position 0, before any token: T5's decoder start, token id 0.
pub const START_TOKEN: u32 = 0;

#[derive(Debug)]
struct LayerState {
    /// A ring buffer of `capacity` slots: position p lives in slot `p % capacity`.
    past: KvCache,
    /// One slot per memory slot.
    memory: KvCache,
}

/// Per-call buffers, kept so that a step allocates nothing.
#[derive(Debug, Default)]
struct Scratch {
    rows: Activations,
}

/// Keys and values of a latent's memory slots, q8 rows of d each.
pub type LatentMemory = (Vec<i8>, Vec<i8>);

/// The cross-attention memory of a latent: its slot count (the null slot, then the codes
/// at positions 1, 2, ...) and per decoder layer the slots' keys and values.
pub fn latent_memory(net: &Net, codes: &[u32]) -> (usize, Vec<LatentMemory>) {
    let d = net.decoder_norm.len();
    let null = net.latent_embed.len() / d - 1;
    let slots = codes.len().min(net.latent_pos.len() / d - 1) + 1;
    let mut memory = Vec::with_capacity(slots * d);
    for slot in 0..slots {
        let code = if slot == 0 { null } else { (codes[slot - 1] as usize).min(null) };
        let embed = &net.latent_embed[code * d..(code + 1) * d];
        let pos = &net.latent_pos[slot * d..(slot + 1) * d];
        memory.extend(embed.iter().zip(pos).map(|(&e, &p)| clamp8(i64::from(e) + i64::from(p))));
    }
    let mut linear = LinearScratch::default();
    let per_layer = net
        .decoder
        .iter()
        .map(|layer| {
            let mut keys = vec![0i8; slots * d];
            let mut values = vec![0i8; slots * d];
            layer.cross.k.to_q8(&memory, slots, E_X, &mut keys, &mut linear);
            layer.cross.v.to_q8(&memory, slots, E_X, &mut values, &mut linear);
            (keys, values)
        })
        .collect();
    (slots, per_layer)
}

pub struct Decoder<'m> {
    net: &'m Net,
    d: usize,
    window: usize,
    max_batch: usize,
    /// Rows of the ring buffers: a batch's queries see W keys back from its last position.
    capacity: usize,
    /// The next position `forward` computes.
    pos: usize,
    memory_slots: usize,
    layers: Vec<LayerState>,
    scratch: Scratch,
}

impl<'m> Decoder<'m> {
    /// A decoder at position 0 with an empty latent, taking up to `max_batch` positions
    /// per `forward`.
    pub fn new(model: &'m Model, max_batch: usize) -> Decoder<'m> {
        let config = model.config();
        let d = config.d_model;
        let max_batch = max_batch.max(1);
        let capacity = config.window + max_batch - 1;
        let (heads, dh) = (config.n_heads, config.head_dim());
        let layers = model
            .net()
            .decoder
            .iter()
            .map(|_| LayerState {
                past: KvCache::new(capacity, heads, dh),
                memory: KvCache::new(config.latent_max + 1, heads, dh),
            })
            .collect();
        let mut decoder = Decoder {
            net: model.net(),
            d,
            window: config.window,
            max_batch,
            capacity,
            pos: 0,
            memory_slots: 0,
            layers,
            scratch: Scratch::default(),
        };
        decoder.set_latent(&[]);
        decoder
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// The most positions one `forward` takes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Forgets the last `n` positions computed (at most a batch): the next `forward`
    /// computes them again, overwriting what they left in the key ring.
    pub fn rewind(&mut self, n: usize) {
        assert!(n <= self.max_batch && n <= self.pos, "rewinding {n} of {} positions", self.pos);
        self.pos -= n;
    }

    /// Cross-attention memory for the positions that follow: the null slot, then the
    /// latent's codes (each below K) at positions 1, 2, ...
    pub fn set_latent(&mut self, codes: &[u32]) {
        let (slots, memory) = latent_memory(self.net, codes);
        for (state, (keys, values)) in self.layers.iter_mut().zip(&memory) {
            for slot in 0..slots {
                let row = slot * self.d..(slot + 1) * self.d;
                state.memory.set(slot, &keys[row.clone()], &values[row]);
            }
        }
        self.memory_slots = slots;
    }

    /// Runs the positions `position()..position() + inputs.len()`, where `inputs[i]` is
    /// the token before position `position() + i` (`START_TOKEN` before the first), and
    /// writes each position's logits over the vocabulary (at E_S, before the match boost)
    /// as rows of `logits`. Tokens must be below the vocabulary size.
    pub fn forward(&mut self, inputs: &[u32], logits: &mut Vec<i32>) {
        let n = inputs.len();
        assert!(n <= self.max_batch, "batch of {n} above {}", self.max_batch);
        let net = self.net;
        self.scratch.rows.start(net, inputs);
        for (layer, l) in net.decoder.iter().zip(0..) {
            self.layer(layer, l, n);
        }
        let s = &mut self.scratch.rows;
        rmsnorm(&s.h, &net.decoder_norm, &mut s.x);
        logits.resize(n * net.out.rows(), 0);
        net.out.to_logits(&s.x, n, E_X, E_S, logits, &mut s.linear);
        self.pos += n;
    }

    fn layer(&mut self, layer: &DecoderLayer, l: usize, n: usize) {
        let (d, capacity, window, pos) = (self.d, self.capacity, self.window, self.pos);
        let s = &mut self.scratch.rows;
        let state = &mut self.layers[l];
        let attn = &layer.attn;
        rmsnorm(&s.h, &layer.norm1, &mut s.x);
        attn.project(&s.x, n, &mut s.q, &mut s.k, &mut s.v, &mut s.linear);
        for i in 0..n {
            let row = i * d..(i + 1) * d;
            state.past.set((pos + i) % capacity, &s.k[row.clone()], &s.v[row]);
        }
        // Query i is position t = pos + i and sees the m = min(t + 1, W) newest keys, the
        // key `back` positions before it (bias[back]) in slot (t - back) mod capacity: in
        // slot order, slots newest-m+1..=newest, or when that wraps, 0..=newest and the
        // oldest ones at the end of the ring. `head_bias_reversed` holds bias[back] at
        // W - 1 - back, so each run's biases are one slice.
        let keys = |i: usize, head: usize| {
            let t = pos + i;
            let m = (t + 1).min(window);
            let newest = t % capacity;
            let rev = attn.head_bias_reversed(head);
            let w = rev.len();
            if newest + 1 >= m {
                [KeyRun { slot: newest + 1 - m, bias: &rev[w - m..] }, KeyRun::EMPTY]
            } else {
                let older = m - 1 - newest;
                [
                    KeyRun { slot: 0, bias: &rev[w - 1 - newest..] },
                    KeyRun { slot: capacity - older, bias: &rev[w - m..w - m + older] },
                ]
            }
        };
        attend(&state.past, &s.q, n, keys, &mut s.o, &mut s.attn);
        attn.o.add_to_residual(&s.o, n, E_A, &mut s.h, &mut s.linear);

        let cross = &layer.cross;
        rmsnorm(&s.h, &layer.norm2, &mut s.x);
        cross.q.to_q8(&s.x, n, E_X, &mut s.q, &mut s.linear);
        let memory_slots = self.memory_slots;
        let keys = |_, _| [KeyRun { slot: 0, bias: &ZERO_BIAS[..memory_slots] }, KeyRun::EMPTY];
        attend(&state.memory, &s.q, n, keys, &mut s.o, &mut s.attn);
        cross.o.add_to_residual(&s.o, n, E_A, &mut s.h, &mut s.linear);

        rmsnorm(&s.h, &layer.norm3, &mut s.x);
        layer.ffn.add_to_residual(&s.x, n, &mut s.h, &mut s.ffn);
    }
}
