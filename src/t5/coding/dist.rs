//! The network's distribution over a position's tokens, as the token tree and the match
//! confidence stages read it (CODER.md, "Output"). Two forms, chosen by the model's config:
//! the rounded `FreqTable` (every token at least 1 of 2^16), and, for `exact_tree`
//! models, `ExactDist`: the exp weights themselves, with the few tokens whose probability
//! a confidence stage set held apart. The exact form is never rounded into a table: the
//! tree asks only for the mass of eleven ranges per token, so building and rescaling
//! 2048 frequencies per token (a fifth of a token's time) is work nobody reads.

use crate::t5::config::MAX_EXTRA_MATCHERS;
use crate::t5::freq::{FREQ_TOTAL_BITS, FreqTable};
use crate::t5::intnet::exp_row;
use crate::t5::multiversion::multiversion;

/// Fraction bits of the probabilities the confidence stages read and set.
pub const P_BITS: u32 = 22;

/// What the token tree and the confidence stages need of a distribution.
pub trait NetDist {
    /// The mass of every token: the tree's root.
    fn total(&self) -> u64;
    /// The mass of the tokens `lo..hi`, in the units of `total`.
    fn mass(&self, lo: usize, hi: usize) -> u64;
    /// The probability of `token`, in units of 2^-`P_BITS`.
    fn p(&self, token: usize) -> u32;
    /// The probability of `token` in units of 2^-16 (a table's frequency; the mixing
    /// coder's bit probabilities).
    fn p16(&self, token: usize) -> u32 {
        self.p(token) >> TABLE_SHIFT
    }
    /// Gives `token` probability `p` (units of 2^-`P_BITS`), every other token keeping
    /// its share of the rest.
    fn set_p(&mut self, token: usize, p: u32);
    /// A token the distribution favours, found down the token tree by the heavier half
    /// (of `len` tokens): what the coder guesses it will read, to fetch it early. Never
    /// changes what is coded.
    fn likeliest(&self, len: usize) -> usize {
        descend(len, self.mass(0, len), |lo, hi| self.mass(lo, hi))
    }
}

/// Down the token tree over `len` tokens of weight `all` in total (ids `0..len` in
/// `bits_for(len)` bits, a node's halves split at its middle id), into the heavier half
/// each time: `weight(lo, hi)` is the weight of ids `lo..hi`, asked of lower halves only
/// (an upper half weighs what its node does less its lower half).
fn descend(len: usize, all: u64, weight: impl Fn(usize, usize) -> u64) -> usize {
    let mut rest = usize::BITS - len.saturating_sub(1).leading_zeros();
    let (mut lo, mut node) = (0, all);
    while rest > 0 {
        let mid = lo + (1 << (rest - 1));
        if mid < len {
            let lower = weight(lo, mid);
            let upper = node.saturating_sub(lower);
            (lo, node) = if upper > lower { (mid, upper) } else { (lo, lower) };
        }
        rest -= 1;
    }
    lo
}

/// From units of 2^-`P_BITS` to a table's 2^-16.
const TABLE_SHIFT: u32 = P_BITS - FREQ_TOTAL_BITS;

impl NetDist for FreqTable {
    fn total(&self) -> u64 {
        1 << FREQ_TOTAL_BITS
    }

    fn mass(&self, lo: usize, hi: usize) -> u64 {
        u64::from(sum(&self.freqs()[lo..hi]))
    }

    fn p(&self, token: usize) -> u32 {
        self.freq(token) << TABLE_SHIFT
    }

    fn set_p(&mut self, token: usize, p: u32) {
        self.set_freq(token, (p >> TABLE_SHIFT).max(1));
    }
}

/// Probabilities of `ExactDist` are in units of 2^-32.
const ONE: u64 = 1 << 32;
/// Every token weighs at least 2^-FLOOR_SHIFT of the exp weights' sum: the exp table
/// gives tokens more than 11 nats below the best no weight at all, and the tree would
/// then give each bit on their path the least probability there is. 2^-20 (0.2% of the
/// mass in all at 2048 tokens) coded the corpus's held-out files smallest of 2^-16..2^-22
/// (2^-16, the rounded table's floor, cost 0.5% more).
const FLOOR_SHIFT: u32 = 20;
/// Tokens set apart: one per confidence stage (the match model's and the extra ones').
const MAX_PINNED: usize = 1 + MAX_EXTRA_MATCHERS;

/// A distribution proportional to exp weights, except for a few pinned tokens whose
/// probabilities were set: an unpinned token's probability is its weight's share of the
/// unpinned weight, times the probability the pinned tokens leave. Integers only, every
/// division floored, in the same order on both sides.
#[derive(Debug, Clone, Default)]
pub struct ExactDist {
    weights: Vec<u32>,
    /// Sum of all weights (at most 2^15 · 8192 = 2^28).
    sum: u32,
    /// What every token weighs beyond its exp weight, in units of 2^-8 of one.
    floor: u64,
    /// (token, probability in units of 2^-32), the first `pinned` entries in use.
    pins: [(usize, u64); MAX_PINNED],
    pinned: usize,
}

impl ExactDist {
    /// The softmax of `logits` (units of 1/8 nat) through the exp table: each token weighs
    /// `EXP[max − logit]`, zero beyond the table. Clears the pins.
    pub fn fill(&mut self, logits: &[i32]) {
        self.weights.resize(logits.len(), 0);
        self.sum = exp_row(logits, row_max(logits), &mut self.weights);
        self.floor = ((u64::from(self.sum) << 8) >> FLOOR_SHIFT).max(1);
        self.pinned = 0;
    }

    fn pins(&self) -> &[(usize, u64)] {
        &self.pins[..self.pinned]
    }

    /// Weight of `n` tokens whose exp weights sum to `sum`.
    fn weigh(&self, sum: u64, n: usize) -> u64 {
        (sum << 8) + n as u64 * self.floor
    }

    /// The probability the pins leave, and the weight it is shared by.
    fn unpinned(&self) -> (u64, u64) {
        let pinned_p: u64 = self.pins().iter().map(|&(_, p)| p).sum();
        let pinned_w: u64 = self.pins().iter().map(|&(t, _)| u64::from(self.weights[t])).sum();
        let n = self.weights.len() - self.pinned;
        (ONE.saturating_sub(pinned_p), self.weigh(u64::from(self.sum) - pinned_w, n))
    }

    fn share(rest: u64, weight: u64, all: u64) -> u64 {
        (u128::from(rest) * u128::from(weight)).checked_div(u128::from(all)).unwrap_or(0) as u64
    }

    /// Probability of `token`, units of 2^-32.
    fn p32(&self, token: usize) -> u64 {
        if let Some(&(_, p)) = self.pins().iter().find(|&&(t, _)| t == token) {
            return p;
        }
        let (rest, all) = self.unpinned();
        Self::share(rest, self.weigh(u64::from(self.weights[token]), 1), all)
    }
}

impl NetDist for ExactDist {
    fn total(&self) -> u64 {
        // `mass(0, len)` without summing the weights again: the unpinned tokens are all
        // of `unpinned`'s weight, so they take all of what the pins leave.
        let (rest, all) = self.unpinned();
        let pinned: u64 = self.pins().iter().map(|&(_, p)| p).sum();
        Self::share(rest, all, all) + pinned
    }

    fn mass(&self, lo: usize, hi: usize) -> u64 {
        let mut weight = u64::from(sum(&self.weights[lo..hi]));
        let mut n = hi - lo;
        let mut pinned = 0;
        for &(t, p) in self.pins().iter().filter(|&&(t, _)| (lo..hi).contains(&t)) {
            weight -= u64::from(self.weights[t]);
            n -= 1;
            pinned += p;
        }
        let (rest, all) = self.unpinned();
        Self::share(rest, self.weigh(weight, n), all) + pinned
    }

    fn p(&self, token: usize) -> u32 {
        (self.p32(token) >> (32 - P_BITS)) as u32
    }

    fn likeliest(&self, len: usize) -> usize {
        if let Some(&(token, _)) = self.pins().iter().find(|&&(_, p)| p >= ONE / 2) {
            return token;
        }
        // The exp weights alone: a guess need not pay `mass`'s divisions.
        let w = &self.weights[..len.min(self.weights.len())];
        let all = if w.len() == self.weights.len() { self.sum } else { sum(w) };
        descend(w.len(), u64::from(all), |lo, hi| u64::from(sum(&w[lo..hi])))
    }

    fn set_p(&mut self, token: usize, p: u32) {
        let new = u64::from(p.min((1 << P_BITS) - 1)) << (32 - P_BITS);
        let old = self.p32(token);
        // The other pinned tokens keep their share of what `token` leaves; the unpinned
        // ones follow by construction (they share whatever the pins leave).
        let (left_new, left_old) = (ONE - new, ONE - old.min(ONE));
        for (t, q) in &mut self.pins[..self.pinned] {
            if *t != token
                && let Some(scaled) = (*q * left_new).checked_div(left_old)
            {
                *q = scaled;
            }
        }
        match self.pins().iter().position(|&(t, _)| t == token) {
            Some(i) => self.pins[i].1 = new,
            None if self.pinned < MAX_PINNED => {
                self.pins[self.pinned] = (token, new);
                self.pinned += 1;
            }
            // More stages than pins cannot happen (`ModelConfig::check` bounds the extra
            // match models); keep the distribution as it is rather than panic.
            None => debug_assert!(false, "more than {MAX_PINNED} pinned tokens"),
        }
    }
}

multiversion! {
    /// The sum of `values` (wrapping; callers keep it below 2^32).
    fn sum(values: &[u32]) -> u32 {
        values.iter().fold(0u32, |s, &v| s.wrapping_add(v))
    }
}

multiversion! {
    fn row_max(values: &[i32]) -> i32 {
        values.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::intnet::EXP;

    fn dist(logits: &[i32]) -> ExactDist {
        let mut d = ExactDist::default();
        d.fill(logits);
        d
    }

    #[test]
    fn the_likeliest_token_is_the_heavy_one_or_a_sure_pin() {
        for len in [1, 2, 3, 7, 300, 2048] {
            for top in [0, len / 2, len - 1] {
                let mut logits = vec![0; len];
                logits[top] = 120; // the others weigh nothing: beyond the exp table
                let mut d = dist(&logits);
                assert_eq!(d.likeliest(len), top, "{len} tokens");
                // Through the masses (the default), the same path.
                assert_eq!(descend(len, d.mass(0, len), |lo, hi| d.mass(lo, hi)), top);
                let pinned = (top + 1) % len;
                d.set_p(pinned, 3 << (P_BITS - 2));
                assert_eq!(d.likeliest(len), pinned, "{len} tokens, one pinned at 3/4");
            }
        }
    }

    #[test]
    fn weights_follow_the_exp_table_above_a_floor() {
        let d = dist(&[0, -8, 100, 100 - 200]);
        assert_eq!(d.weights, vec![EXP[100], EXP[108], EXP[0], 0]);
        let sum = u64::from(EXP[100] + EXP[108] + EXP[0]);
        assert_eq!(u64::from(d.sum), sum);
        let floor = (sum << 8) >> FLOOR_SHIFT;
        assert_eq!(d.floor, floor);
        // Unpinned, the masses are the weights' shares of 2^32.
        let all = (sum << 8) + 4 * floor;
        assert_eq!(d.mass(2, 3), ONE * ((u64::from(EXP[0]) << 8) + floor) / all);
        // A token the exp table rules out keeps the floor.
        assert_eq!(d.mass(3, 4), ONE * floor / all);
        assert!(d.mass(3, 4) > 0);
        let total = d.total();
        assert!(ONE - total < 4, "{total}");
    }

    #[test]
    fn a_pinned_token_takes_its_probability_and_the_rest_keep_their_ratios() {
        let logits: Vec<i32> = (0..64).map(|i| (i * 7) % 40).collect();
        let mut d = dist(&logits);
        let before: Vec<u64> = (0..64).map(|t| d.mass(t, t + 1)).collect();
        let half = 1 << (P_BITS - 1);
        d.set_p(5, half);
        assert_eq!(d.p(5), half);
        assert_eq!(d.mass(5, 6), ONE / 2);
        let rest_before: u64 = before.iter().enumerate().filter(|&(t, _)| t != 5).map(|(_, m)| m).sum();
        for t in [0, 9, 63] {
            let want = before[t] as f64 / rest_before as f64 * (ONE / 2) as f64;
            assert!((d.mass(t, t + 1) as f64 - want).abs() <= 2.0, "token {t}");
        }
        // A second pin rescales the first by what it leaves.
        let old = d.mass(9, 10);
        d.set_p(9, 3 << (P_BITS - 2));
        assert_eq!(d.mass(9, 10), 3 * ONE / 4);
        assert_eq!(d.mass(5, 6), ONE / 2 * (ONE / 4) / (ONE - old));
        // Pinning the same token again replaces its probability.
        d.set_p(9, 1 << (P_BITS - 2));
        assert_eq!(d.p(9), 1 << (P_BITS - 2));
        let total = d.total();
        assert_eq!(total, d.mass(0, 64), "the root is the mass of every token");
        assert!(total <= ONE && ONE - total < 64, "{total}");
        // Masses add up along any split.
        assert!(d.mass(0, 32) + d.mass(32, 64) <= total);
        assert!(total - (d.mass(0, 32) + d.mass(32, 64)) <= 1);
    }

    #[test]
    fn every_confidence_stage_can_pin_its_token() {
        // The most stages a config allows, each predicting another token.
        let mut d = dist(&(0..64).map(|i| i % 13).collect::<Vec<_>>());
        let p = 1 << (P_BITS - 4);
        for token in 0..MAX_PINNED {
            d.set_p(token * 3, p);
        }
        assert_eq!(d.p((MAX_PINNED - 1) * 3), p, "the last stage's token has what it set");
        for token in 0..MAX_PINNED {
            assert!(d.p(token * 3) > 0 && d.p(token * 3) <= p, "token {}", token * 3);
        }
        let total = d.total();
        assert!(total <= ONE && ONE - total < 256, "{total}");
    }

    #[test]
    fn a_table_reads_as_its_frequencies() {
        let mut table = FreqTable::from_weights(&[3, 1, 4, 1, 5, 9, 2, 6]).expect("table");
        assert_eq!(table.total(), 1 << 16);
        assert_eq!(table.mass(2, 5), u64::from(table.freq(2) + table.freq(3) + table.freq(4)));
        assert_eq!(table.p(5), table.freq(5) << TABLE_SHIFT);
        table.set_p(5, 1 << (P_BITS - 1));
        // The others' flooring frees a few counts, which the set token takes.
        assert!((1 << 15..(1 << 15) + 8).contains(&table.freq(5)), "{}", table.freq(5));
    }
}
