//! In-block adaptive mixing (CODER.md, "In-block mixing"), for models whose config sets
//! `mixing`: each token is coded as the bits of its id, most significant first, and each
//! bit's probability mixes the network's (from its frequency table) with models that
//! learn from the block as it is coded: token contexts of orders 0-6, a sparse and a word
//! context, and the match models, combined by an integer logistic mixer and refined by two
//! APM stages, as lpaq1 does for bytes. At 16-bit precision a bit the models are sure of
//! costs almost nothing, so a long repeat costs what LZ pays for it. The latent is coded by
//! adaptive models too, so a block of repeated segments does not pay for it every segment.

mod counter;
mod history;
mod io;
mod logistic;
mod mixer;
mod table;

pub use self::io::{Encode, Io};

use self::counter::{FRESH, p16, update};
use self::history::{CONTEXTS, History, finish};
use self::logistic::{P_MAX, squash, stretch};
use self::mixer::{Apm, Mixer, W_ONE};
use self::table::ContextTable;
use crate::coder::freq::FreqTable;
use crate::coder::matcher::MatchPrediction;

/// Match models whose predictions are inputs: the main one and up to two more.
pub const MATCH_INPUTS: usize = 3;
/// Bias, network, order 0, the hashed contexts, the match models.
const INPUTS: usize = 3 + CONTEXTS + MATCH_INPUTS;
const NETWORK: usize = 1;
const ORDER0: usize = 2;
const FIRST_CONTEXT: usize = 3;
const FIRST_MATCH: usize = FIRST_CONTEXT + CONTEXTS;
/// 2^17 lines of 64 bytes: 8 MiB for the hashed contexts of one block.
const TABLE_BITS: u32 = 17;
/// Counts at which the counters settle: contexts keep following the block, the match
/// models' hit rates become precise.
const CONTEXT_LIMIT: u32 = 127;
const ORDER0_LIMIT: u32 = 1023;
const MATCH_LIMIT: u32 = 1023;
const LATENT_LIMIT: u32 = 1023;
/// Match lengths 0-15 exactly, then one bucket per doubling.
const LEN_BUCKETS: usize = 48;
/// Mixer weight sets per bit level: no match prediction, a short or a long one agreeing
/// with the bits so far, or one the bits have left.
const MATCH_STATES: usize = 4;
const MIXER_SHIFT: u32 = 16;
const APM_RATE: u32 = 6;

/// The mixer's starting weights: the network alone, the others a little, to be learned.
const INITIAL: [i32; INPUTS] = {
    let mut w = [W_ONE / 8; INPUTS];
    w[0] = 0;
    w[NETWORK] = W_ONE;
    w
};

fn len_bucket(len: u32) -> usize {
    if len < 16 { len as usize } else { (12 + len.ilog2() as usize).min(LEN_BUCKETS - 1) }
}

/// Bits of a value below `n` (at least 1).
fn bits_for(n: usize) -> u32 {
    n.next_power_of_two().trailing_zeros().max(1)
}

pub struct TokenMixer {
    bits: u32,
    vocab: usize,
    table: ContextTable,
    history: History,
    order0: Vec<u32>,
    match_maps: Vec<u32>,
    mixer: Mixer,
    apm_node: Apm,
    inputs: [i32; INPUTS],
    repeat: RepeatModel,
}

impl TokenMixer {
    /// Models for tokens below `vocab`; `token_bytes` gives a token's bytes (for the word
    /// context).
    pub fn new(vocab: usize, token_bytes: impl Fn(u32) -> Option<Vec<u8>>) -> TokenMixer {
        let bits = bits_for(vocab);
        TokenMixer {
            bits,
            vocab,
            table: ContextTable::new(TABLE_BITS),
            history: History::new(token_bytes, vocab),
            order0: vec![FRESH; 1 << bits],
            match_maps: vec![FRESH; MATCH_INPUTS * LEN_BUCKETS],
            mixer: Mixer::new(&INITIAL, bits as usize * MATCH_STATES, MIXER_SHIFT),
            apm_node: Apm::new(1 << bits, APM_RATE),
            inputs: [0; INPUTS],
            repeat: RepeatModel::new(),
        }
    }

    /// Codes `token` (ignored when decoding) at the position whose network distribution is
    /// `table` and whose match models predict `matches`; returns the token.
    pub fn code(&mut self, table: &FreqTable, matches: &[Option<MatchPrediction>; MATCH_INPUTS], token: u32, io: &mut impl Io) -> u32 {
        let mut matches = *matches;
        let mut missed = false;
        if let Some(pred) = matches[0].filter(|p| (p.token as usize) < self.vocab && p.len >= REPEAT_FROM) {
            if self.repeat.code(table, pred, token, io) {
                self.finish_token(pred.token);
                return pred.token;
            }
            // Not the predicted token: the tree codes which one, told the match broke.
            matches[0] = None;
            missed = true;
        }
        let vocab = self.vocab;
        let freqs = table.freqs();
        // The frequency mass under the current node of the token tree.
        let mut all: u32 = freqs.iter().sum();
        let contexts = self.history.contexts();
        let mut lines = [0usize; CONTEXTS];
        let mut prefix = 0u32;
        let mut local = 1usize;
        for depth in 0..self.bits {
            let rest = self.bits - depth;
            if depth % 4 == 0 {
                for (line, &ctx) in lines.iter_mut().zip(&contexts) {
                    *line = self.table.line(finish(ctx ^ (u64::from(prefix) << 8 | u64::from(depth))));
                }
                local = 1;
            }
            let lo = (prefix as usize) << rest;
            let mid = lo + (1 << (rest - 1));
            if mid >= vocab {
                // No token has a 1 here: nothing to code.
                prefix <<= 1;
                local <<= 1;
                continue;
            }
            let hi = (lo + (1 << rest)).min(vocab);
            let ones: u32 = freqs[mid..hi].iter().sum();
            let p_net = ((u64::from(ones) << 16) / u64::from(all.max(1))).clamp(1, u64::from(P_MAX)) as u32;
            let node = (1usize << depth) | prefix as usize;

            let x = &mut self.inputs;
            x[0] = 256;
            x[NETWORK] = stretch(p_net);
            x[ORDER0] = stretch(p16(self.order0[node]));
            for (k, &line) in lines.iter().enumerate() {
                x[FIRST_CONTEXT + k] = stretch(p16(*self.table.counter(line, local)));
            }
            let mut expected = [None; MATCH_INPUTS];
            for (m, pred) in matches.iter().enumerate() {
                x[FIRST_MATCH + m] = 0;
                if let Some(pred) = pred.filter(|p| (p.token as usize) < vocab && p.token >> rest == prefix) {
                    let e = (pred.token >> (rest - 1)) & 1;
                    let at = m * LEN_BUCKETS + len_bucket(pred.len);
                    let st = stretch(p16(self.match_maps[at]));
                    x[FIRST_MATCH + m] = if e == 1 { st } else { -st };
                    expected[m] = Some((e, at));
                }
            }
            let state = match (matches[1], expected[1]) {
                _ if missed => 3,
                (None, _) => 0,
                (Some(p), Some(_)) => 1 + usize::from(p.len >= 16),
                (Some(_), None) => 3,
            };
            let set = depth as usize * MATCH_STATES + state;
            let p_mix = squash(self.mixer.mix(x, set));
            let (p_a, at_a, _) = self.apm_node.refine(p_mix, node);
            let p = ((p_mix + p_a) >> 1).clamp(1, P_MAX);

            let bit = io.bit((token >> (rest - 1)) & 1, p);

            self.mixer.update(&self.inputs, set, p_mix, bit);
            self.apm_node.update(at_a, bit);
            update(&mut self.order0[node], bit, ORDER0_LIMIT);
            for &line in &lines {
                update(self.table.counter(line, local), bit, CONTEXT_LIMIT);
            }
            for (e, at) in expected.into_iter().flatten() {
                update(&mut self.match_maps[at], u32::from(bit == e), MATCH_LIMIT);
            }
            all = if bit == 1 { ones } else { all - ones };
            prefix = (prefix << 1) | bit;
            local = (local << 1) | bit as usize;
        }
        self.finish_token(prefix);
        prefix
    }

    fn finish_token(&mut self, token: u32) {
        self.history.push(token);
        // The first lines the next token reads: fetched while the network runs.
        for ctx in self.history.contexts() {
            self.table.prefetch(finish(ctx));
        }
    }
}

/// "The match continues": one binary event per token while the main match model predicts,
/// so that inside a long repeat a token costs one bit the models are nearly sure of (at
/// 16-bit precision, 2·10^-5 bits) rather than a tree of them. Its probability mixes the
/// network's for the predicted token with the hit rate of matches of this length, and an
/// APM on the length refines it.
struct RepeatModel {
    hits: Vec<u32>,
    mixer: Mixer,
    apm: Apm,
}

const REPEAT_INPUTS: usize = 3;
/// Match lengths (tokens) from which the event is coded; shorter matches are only inputs
/// of the tree, where a miss costs less.
const REPEAT_FROM: u32 = 32;
const REPEAT_SHARED: u32 = 256;

impl RepeatModel {
    fn new() -> RepeatModel {
        RepeatModel {
            hits: vec![FRESH; LEN_BUCKETS],
            mixer: Mixer::new(&[0, W_ONE / 2, W_ONE / 2], LEN_BUCKETS, MIXER_SHIFT),
            apm: Apm::new(LEN_BUCKETS, APM_RATE),
        }
    }

    /// Codes whether `token` (ignored when decoding) is `pred.token`; returns whether.
    fn code(&mut self, table: &FreqTable, pred: MatchPrediction, token: u32, io: &mut impl Io) -> bool {
        // Matches of 256 tokens and more share one bucket: they all come true nearly always,
        // and a block of one long repeat should not pay to learn that once per doubling.
        let bucket = len_bucket(pred.len.min(REPEAT_SHARED));
        let p_net = table.freq(pred.token as usize).clamp(1, P_MAX);
        let x: [i32; REPEAT_INPUTS] = [256, stretch(p_net), stretch(p16(self.hits[bucket]))];
        let p_mix = squash(self.mixer.mix(&x, bucket));
        let (p_apm, at, _) = self.apm.refine(p_mix, bucket);
        // The APM alone: it reaches the coder's precision sooner than the mixer.
        let p = p_apm;
        let hit = io.bit(u32::from(token == pred.token), p);
        self.mixer.update(&x, bucket, p_mix, hit);
        self.apm.update(at, hit);
        update(&mut self.hits[bucket], hit, MATCH_LIMIT);
        hit == 1
    }
}

/// The latent of each segment, coded by counters that learn from the block's earlier
/// latents: its length in the context of the previous length, each code in the context
/// of its slot and the previous segment's code in that slot.
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
            previous: (0..=latent_max).map(|slot| if slot < latent_max { latent_vocab as u32 } else { latent_max as u32 + 1 }).collect(),
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
        let counters = &mut self.lengths[previous_length << self.length_bits..(previous_length + 1) << self.length_bits];
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::codec::Codec;
    use crate::coder::T5Codec;
    use crate::coder::fixtures::{text, tiny_model};

    fn codec() -> &'static T5Codec {
        static CODEC: std::sync::OnceLock<T5Codec> = std::sync::OnceLock::new();
        CODEC.get_or_init(|| {
            let model = tiny_model();
            assert!(model.config().mixing, "the tiny model mixes");
            T5Codec::new(Arc::clone(&model))
        })
    }

    fn round_trip(data: &[u8]) -> usize {
        let payload = codec().compress(data).expect("compresses");
        assert_eq!(codec().decompress(&payload, data.len()).expect("decompresses"), data);
        payload.len()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random bytes, repeats of a random phrase, and text with random damage, of any
        /// length: every block decodes to itself.
        #[test]
        fn any_block_round_trips(
            random in proptest::collection::vec(any::<u8>(), 0..1500),
            phrase in proptest::collection::vec(any::<u8>(), 1..12),
            repeats in 1usize..300,
            cut in 0usize..3000,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..20),
        ) {
            round_trip(&random);
            round_trip(&phrase.repeat(repeats));
            let mut damaged = text(cut);
            for (at, byte) in flips {
                if !damaged.is_empty() {
                    let n = damaged.len();
                    damaged[at % n] = byte;
                }
            }
            round_trip(&damaged);
        }
    }

    #[test]
    fn a_long_repeat_costs_almost_nothing_per_token() {
        // 40 KB of one phrase: after the first few repeats each token is one event the
        // models are sure of.
        let short = round_trip(&b"a ledger of ships, ".repeat(100));
        let long = round_trip(&b"a ledger of ships, ".repeat(2000));
        assert!(long < short + 40, "{short} bytes for 100 repeats, {long} for 2000");
    }
}
