//! The token tree: a token's id coded bit by bit, each bit's probability the mix of the
//! network's and the in-block models' (CODER.md, "In-block mixing"), after the repeat
//! event where the main match model is long.

use super::counter::{FRESH, p16, update};
use super::history::{CONTEXTS, History, finish};
use super::io::Io;
use super::logistic::{P_MAX, squash, stretch};
use super::mixer::{Apm, Mixer};
use super::repeat::{REPEAT_FROM, RepeatModel};
use super::table::ContextTable;
use super::*;
use crate::t5::dist::NetDist;
use crate::t5::matcher::MatchPrediction;

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
    pub fn code(
        &mut self,
        table: &impl NetDist,
        matches: &[Option<MatchPrediction>; MATCH_INPUTS],
        token: u32,
        io: &mut impl Io,
    ) -> u32 {
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
        // The network's mass under the current node of the token tree.
        let mut all = table.total();
        let contexts = self.history.contexts();
        // What the deeper levels read depends on the bits still to be coded: the
        // context lines and APM rows of the likeliest token's path are fetched while the
        // first levels are coded.
        let guess = table.likeliest(vocab) as u32;
        for depth in 0..self.bits {
            let prefix = guess >> (self.bits - depth);
            if depth % LINE_LEVELS == 0 && depth > 0 {
                for &ctx in &contexts {
                    self.table.prefetch(line_hash(ctx, prefix, depth));
                }
            }
            self.apm_node.prefetch((1 << depth) | prefix as usize);
        }
        let mut lines = [0usize; CONTEXTS];
        let mut prefix = 0u32;
        let mut local = 1usize;
        for depth in 0..self.bits {
            let rest = self.bits - depth;
            if depth % LINE_LEVELS == 0 {
                for (line, &ctx) in lines.iter_mut().zip(&contexts) {
                    *line = self.table.line(line_hash(ctx, prefix, depth));
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
            let ones = table.mass(mid, hi);
            let p_net = ((ones << 16) / all.max(1)).clamp(1, u64::from(P_MAX)) as u32;
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
            let (p_a, at_a) = self.apm_node.refine(p_mix, node);
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
            all = if bit == 1 { ones } else { all.saturating_sub(ones) };
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
            self.table.prefetch(line_hash(ctx, 0, 0));
        }
    }
}

/// Levels of the token tree one context-table line holds.
const LINE_LEVELS: u32 = 4;
const _: () = assert!((1 << LINE_LEVELS) - 1 == super::table::LINE_NODES);

/// The hash of the line context `ctx` uses for the levels from `depth` (a multiple of
/// LINE_LEVELS) under the tree node `prefix`; at depth 0 it is `finish(ctx)`.
fn line_hash(ctx: u64, prefix: u32, depth: u32) -> u64 {
    finish(ctx ^ (u64::from(prefix) << 8 | u64::from(depth)))
}
