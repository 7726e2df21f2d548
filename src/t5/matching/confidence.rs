//! Match confidence (CODER.md, "Match confidence"): how often the match model's
//! prediction comes true is learned inside the block, and the coding table gives the
//! predicted token that probability.
//!
//! The network's boost is learned in training, on the training corpus; on a block whose
//! repeats are longer or more reliable than the corpus's (markup, tables, lists), a
//! prediction that comes true 95% of the time may still cost two or three bits. Counting
//! hits per (match length, network confidence) inside the block, as lpaq's APM stages do,
//! costs nothing to store and adapts within a few hundred predictions. Integers only:
//! the coder and the decoder make the same updates in the same order.

use crate::t5::dist::{NetDist, P_BITS};
use crate::t5::freq::{FREQ_TOTAL, FREQ_TOTAL_BITS};
use crate::t5::matcher::MATCH_BUCKETS;

/// Network-confidence levels: the integer log2-odds of the predicted token, offset by
/// `LEVEL_OFFSET` and clamped to `0..LEVELS`.
const LEVELS: usize = 16;
const LEVEL_OFFSET: i32 = 8;
/// Observations after which a context's rate stops falling (1 / (LIMIT + 2)).
const LIMIT: u32 = 254;

#[derive(Debug, Clone, Copy, Default)]
struct Context {
    /// Hit probability in units of 2^-P_BITS; meaningful once `seen`.
    p: u32,
    n: u32,
    seen: bool,
}

#[derive(Debug, Clone)]
pub struct MatchSse {
    contexts: Vec<Context>,
}

impl Default for MatchSse {
    fn default() -> MatchSse {
        MatchSse::new()
    }
}

impl MatchSse {
    pub fn new() -> MatchSse {
        MatchSse { contexts: vec![Context::default(); MATCH_BUCKETS * LEVELS] }
    }

    /// Gives `token` (the match model's prediction, with length bucket `bucket`) its
    /// learned hit probability in `dist`; returns the context to `update` once the token
    /// is known. A context's first use takes the distribution's own probability as its
    /// start.
    pub fn apply(&mut self, dist: &mut (impl NetDist + ?Sized), token: usize, bucket: u8) -> usize {
        let p = dist.p(token);
        let ctx = usize::from(bucket).min(MATCH_BUCKETS - 1) * LEVELS + level(p >> (P_BITS - FREQ_TOTAL_BITS));
        let c = &mut self.contexts[ctx];
        if !c.seen {
            *c = Context { p, n: 0, seen: true };
        }
        dist.set_p(token, c.p);
        ctx
    }

    /// Records whether the prediction coded in context `ctx` came true.
    pub fn update(&mut self, ctx: usize, hit: bool) {
        let c = &mut self.contexts[ctx];
        let target = if hit { 1i64 << P_BITS } else { 0 };
        let p = i64::from(c.p);
        // Truncating division, as CODER.md specifies.
        c.p = (p + (target - p) / i64::from(c.n + 2)).clamp(0, (1 << P_BITS) - 1) as u32;
        c.n = (c.n + 1).min(LIMIT);
    }
}

/// floor(log2(f)) - floor(log2(FREQ_TOTAL - f)) + LEVEL_OFFSET, in 0..LEVELS.
fn level(f: u32) -> usize {
    let rest = FREQ_TOTAL.saturating_sub(f);
    if f == 0 || rest == 0 {
        return if f == 0 { 0 } else { LEVELS - 1 };
    }
    let odds = f.ilog2() as i32 - rest.ilog2() as i32 + LEVEL_OFFSET;
    odds.clamp(0, LEVELS as i32 - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::freq::FreqTable;

    fn table(weights: &[u32]) -> FreqTable {
        FreqTable::from_weights(weights).unwrap()
    }

    #[test]
    fn levels_follow_log_odds() {
        assert_eq!(level(1), 0);
        assert_eq!(level(FREQ_TOTAL / 2), LEVEL_OFFSET as usize);
        assert_eq!(level(FREQ_TOTAL - 1), LEVELS - 1);
        let mut last = 0;
        for f in 1..FREQ_TOTAL {
            let l = level(f);
            assert!(l >= last);
            last = l;
        }
    }

    #[test]
    fn a_reliable_prediction_becomes_cheap_and_an_unreliable_one_dear() {
        let weights: Vec<u32> = (0..64).map(|i| 100 + i).collect();
        let mut sse = MatchSse::new();
        // The frequency `token` gets after 200 predictions in `bucket` that all hit or
        // all missed.
        let mut settle = |token: usize, bucket: u8, hit: bool| {
            for _ in 0..200 {
                let mut t = table(&weights);
                let ctx = sse.apply(&mut t, token, bucket);
                sse.update(ctx, hit);
            }
            let mut t = table(&weights);
            sse.apply(&mut t, token, bucket);
            t.freq(token)
        };
        let start = table(&weights).freq(5);
        let reliable = settle(5, 15, true);
        assert!(reliable > FREQ_TOTAL - FREQ_TOTAL / 50, "{reliable} from {start}");
        let unreliable = settle(7, 4, false);
        assert!(unreliable < 64, "{unreliable}");
    }
}
