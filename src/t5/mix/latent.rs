//! The latent of each segment, coded by counters that learn from the block's earlier
//! latents: its length in the context of the previous length, each code in the context
//! of its slot and the previous segment's code in that slot.

use super::counter::{FRESH, p16, update};
use super::io::Io;
use super::{LATENT_LIMIT, bits_for};

pub struct LatentModel {
    max: usize,
    vocab: usize,
    length_bits: u32,
    code_bits: u32,
    previous: Vec<u32>,
    /// Whether a segment's latent equals the previous one's.
    same: u32,
    lengths: Vec<u32>,
    codes: Vec<u32>,
}

impl LatentModel {
    pub fn new(latent_max: usize, latent_vocab: usize) -> LatentModel {
        let length_bits = bits_for(latent_max + 1);
        let code_bits = bits_for(latent_vocab);
        LatentModel {
            max: latent_max,
            vocab: latent_vocab,
            length_bits,
            code_bits,
            // `vocab` in a slot: the previous segment had no code there; `max + 1` as the
            // length: there was no previous segment.
            previous: (0..=latent_max)
                .map(|slot| if slot < latent_max { latent_vocab as u32 } else { latent_max as u32 + 1 })
                .collect(),
            same: FRESH,
            lengths: vec![FRESH; (latent_max + 2) << length_bits],
            codes: vec![FRESH; (latent_max * (latent_vocab + 1)) << code_bits],
        }
    }

    /// Codes a segment's latent (`codes`, replaced by what was decoded when decoding).
    pub fn code(&mut self, codes: &mut Vec<u32>, io: &mut impl Io) {
        let previous_length = self.previous[self.max] as usize;
        if previous_length <= self.max {
            // Repetitive blocks repeat their latents: one event, not a latent's worth.
            let previous = &self.previous[..previous_length];
            let same = io.bit(u32::from(codes.as_slice() == previous), p16(self.same));
            update(&mut self.same, same, LATENT_LIMIT);
            if same == 1 {
                codes.clear();
                codes.extend_from_slice(previous);
                return;
            }
        }
        let length = codes.len().min(self.max) as u32;
        let counters =
            &mut self.lengths[previous_length << self.length_bits..(previous_length + 1) << self.length_bits];
        let length = code_binary(length, self.length_bits, self.max + 1, counters, io) as usize;
        codes.resize(length, 0);
        for (slot, code) in codes.iter_mut().enumerate() {
            let ctx = slot * (self.vocab + 1) + self.previous[slot] as usize;
            let counters = &mut self.codes[ctx << self.code_bits..(ctx + 1) << self.code_bits];
            *code = code_binary(*code, self.code_bits, self.vocab, counters, io);
        }
        for (slot, previous) in self.previous[..self.max].iter_mut().enumerate() {
            *previous = codes.get(slot).copied().unwrap_or(self.vocab as u32);
        }
        self.previous[self.max] = length as u32;
    }
}

/// Codes `value` (below `n`) as `bits` binary decisions under `counters` (one per tree
/// node, `2^bits` of them); returns it.
fn code_binary(value: u32, bits: u32, n: usize, counters: &mut [u32], io: &mut impl Io) -> u32 {
    let mut prefix = 0u32;
    for depth in 0..bits {
        let rest = bits - depth;
        if ((prefix as usize) << rest) + (1 << (rest - 1)) >= n {
            prefix <<= 1;
            continue;
        }
        let node = (1usize << depth) | prefix as usize;
        let bit = io.bit((value >> (rest - 1)) & 1, p16(counters[node]));
        update(&mut counters[node], bit, LATENT_LIMIT);
        prefix = (prefix << 1) | bit;
    }
    prefix
}
