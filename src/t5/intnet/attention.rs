//! One attention head for one query, with the exp-table softmax of CODER.md: scores at
//! exponent E_S, weights `EXP[min(m - s, 127)]`, output the rounded weighted mean of the
//! values. Which keys a query sees, and their position biases, are the caller's.
//!
//! Both sums run as packed products over the whole cache (`kv`): the scores as keys times
//! `q + 128`, the weighted sum as values times the weights, split into their high and low
//! bytes since a weight (up to 2^15) is wider than the product's unsigned bytes.

use super::arith::{FloorDiv, clamp8_f64};
use super::exp_row::exp_row;
use super::kv::KvCache;
use super::packed;
use super::{E_A, E_S};
use crate::t5::multiversion::multiversion;

/// Most keys one query may see: with weights up to 2^15 and values up to 127, this many
/// products still sum exactly in an i32.
pub const MAX_KEYS: usize = 512;

#[derive(Debug, Default)]
pub struct AttnScratch {
    q_biased: Vec<u8>,
    raw: Vec<i32>,
    scores: Vec<i32>,
    weights: Vec<u32>,
    /// Per query, the weights by slot: a row of high bytes, then one of low bytes.
    weight_bytes: Vec<u8>,
    totals: Vec<i64>,
    sums: Vec<i32>,
}

/// Keys a query sees in one stretch of the cache: `bias.len()` consecutive slots from
/// `slot`, the k-th with position bias `bias[k]`.
#[derive(Debug, Clone, Copy)]
pub struct KeyRun<'a> {
    pub slot: usize,
    pub bias: &'a [i32],
}

impl KeyRun<'_> {
    pub const EMPTY: KeyRun<'static> = KeyRun { slot: 0, bias: &[] };
}

/// Position biases of keys that have none.
pub static ZERO_BIAS: [i32; MAX_KEYS] = [0; MAX_KEYS];

/// Every head of `n` queries (rows of `q`, q8 at E_A) into the same rows of `out`: query
/// `i`'s head `head` attends over the keys of the two runs `keys(i, head)` (disjoint, at
/// most `MAX_KEYS` keys in all; none gives zeros). Per head, the scores of all queries
/// are one product, and so are the sums. Runs of consecutive slots keep the per-key loops
/// free of index arithmetic, so they vectorize.
pub fn attend<'b, F>(cache: &KvCache, q: &[i8], n: usize, keys: F, out: &mut [i8], scratch: &mut AttnScratch)
where
    F: Fn(usize, usize) -> [KeyRun<'b>; 2],
{
    let AttnScratch { q_biased, raw, scores, weights, weight_bytes, totals, sums } = scratch;
    let (heads, dh) = (cache.heads(), cache.head_dim());
    let d = heads * dh;
    for head in 0..heads {
        let key_matrix = cache.keys(head);
        let (kw, kh) = (key_matrix.width(), key_matrix.height());
        q_biased.clear();
        for i in 0..n {
            q_biased.extend(q[i * d + head * dh..i * d + (head + 1) * dh].iter().map(|&v| (v as u8) ^ 0x80));
            q_biased.resize((i + 1) * kw, 0x80);
        }
        raw.resize(n * kh, 0);
        packed::matmul(key_matrix, q_biased, n, raw);

        let value_matrix = cache.values(head);
        let (vw, vh) = (value_matrix.width(), value_matrix.height());
        weight_bytes.clear();
        weight_bytes.resize(2 * n * vw, 0);
        totals.clear();
        for i in 0..n {
            let raw = &raw[i * kh..(i + 1) * kh];
            let runs = keys(i, head);
            scores.clear();
            for run in &runs {
                score(&raw[run.slot..run.slot + run.bias.len()], run.bias, scores);
            }
            debug_assert!(scores.len() <= MAX_KEYS);
            let max = scores.iter().copied().max().unwrap_or(0);
            weights.resize(scores.len(), 0);
            // Gaps beyond the table all weigh EXP[127] (zero).
            let total = exp_row(scores, max, weights);
            let (high, low) = weight_bytes[2 * i * vw..2 * (i + 1) * vw].split_at_mut(vw);
            let mut at = 0;
            for run in &runs {
                let len = run.bias.len();
                let span = run.slot..run.slot + len;
                split_bytes(&weights[at..at + len], &mut high[span.clone()], &mut low[span]);
                at += len;
            }
            totals.push(i64::from(total));
        }
        sums.resize(2 * n * vh, 0);
        packed::matmul(value_matrix, weight_bytes, 2 * n, sums);
        for (i, &total) in totals.iter().enumerate() {
            let o = &mut out[i * d + head * dh..i * d + (head + 1) * dh];
            if total == 0 {
                o.fill(0);
                continue;
            }
            let (high, low) = sums[2 * i * vh..2 * (i + 1) * vh].split_at(vh);
            weighted_means(high, low, total, o);
        }
    }
}

multiversion! {
    /// Each output `clamp8(div_round(a, total))`, the values' weighted mean, for the
    /// weighted sums `a = 256·high + low` and the weights' sum `total`:
    /// `div_round(a, total) = floor((2a + total) / 2·total)`. The best key weighs EXP[0],
    /// so `2·total ≥ 2^16`; with at most MAX_KEYS keys `2·total ≤ 2^25` and
    /// `|2a + total| < 2^34`, inside FloorDiv's range.
    fn weighted_means(high: &[i32], low: &[i32], total: i64, out: &mut [i8]) {
        let divisor = FloorDiv::new(2 * total as u64);
        for ((o, &h), &l) in out.iter_mut().zip(high).zip(low) {
            let n = 2.0 * (256.0 * f64::from(h) + f64::from(l)) + total as f64;
            *o = clamp8_f64(divisor.floor(n));
        }
    }
}

multiversion! {
    /// Each weight (below 2^16) as its `high` and `low` bytes.
    fn split_bytes(weights: &[u32], high: &mut [u8], low: &mut [u8]) {
        for ((&w, h), l) in weights.iter().zip(high).zip(low) {
            *h = (w >> 8) as u8;
            *l = w as u8;
        }
    }
}

multiversion! {
    /// The scores of a run of keys: rshift(raw, 2·E_A − E_S) + bias, in i32 (|raw| is far
    /// below 2^30: at most 2^21).
    fn score(raw: &[i32], bias: &[i32], scores: &mut Vec<i32>) {
        const S: i32 = 2 * E_A - E_S;
        scores.extend(raw.iter().zip(bias).map(|(&r, &b)| super::arith::rshift_sum(r, S) + b));
    }
}

#[cfg(test)]
mod tests {
    use super::super::arith::clamp8;
    use super::*;
    use crate::t5::intnet::EXP;

    #[test]
    fn a_dominant_key_wins_and_equal_keys_average() {
        // One head of width 2; keys (10, 0) and (-10, 0), values (100, -50) and (20, 30).
        let mut cache = KvCache::new(5, 1, 2);
        cache.set(0, &[10, 0], &[100, -50]);
        cache.set(3, &[-10, 0], &[20, 30]);
        let mut s = AttnScratch::default();
        let mut out = [0i8; 2];
        // Keys as (first slot, biases of consecutive slots); a second, empty run.
        let mut run = |q: [i8; 2], keys: (usize, &[i32])| {
            let runs = [KeyRun { slot: keys.0, bias: keys.1 }, KeyRun::EMPTY];
            attend(&cache, &q, 1, |_, _| runs, &mut out, &mut s);
            out
        };
        // Slots 1 and 2 are empty (zero keys and values): a bias of -1000 mutes them.
        let mute = -1000;
        // q·k = ±1000 → scores ±31 (1000/32 rounded): a gap of 62 eighths of a nat.
        let w1 = EXP[62] as i64;
        let expect = |a: i64, b: i64| clamp8(super::super::div_round(32768 * a + w1 * b, 32768 + w1));
        assert_eq!(run([100, 0], (0, &[0, mute, mute, 0])), [expect(100, 20), expect(-50, 30)]);
        // Bias can equalize them: then the output is the plain mean.
        assert_eq!(run([100, 0], (0, &[-31, mute, mute, 31])), [60, -10]);
        // Only the keys listed count.
        assert_eq!(run([100, 0], (3, &[0])), [20, 30]);
        assert_eq!(run([1, 1], (0, &[])), [0, 0]);
    }

    #[test]
    fn queries_in_a_batch_attend_as_alone() {
        let mut next = crate::t5::fixtures::xorshift(5);
        let mut byte = move || ((next() % 255) as i32 - 127) as i8;
        let (heads, dh, slots, n) = (2, 8, 40, 5);
        let mut cache = KvCache::new(slots, heads, dh);
        for slot in 0..slots {
            let k: Vec<i8> = (0..heads * dh).map(|_| byte()).collect();
            let v: Vec<i8> = (0..heads * dh).map(|_| byte()).collect();
            cache.set(slot, &k, &v);
        }
        let q: Vec<i8> = (0..n * heads * dh).map(|_| byte()).collect();
        let bias: Vec<i32> = (0..slots as i32).map(|j| j % 7 - 3).collect();
        // Two runs, the second wrapping to the cache's start, as the decoder's ring does.
        let keys = |i: usize, head: usize| {
            let split = 10 + 3 * i + head;
            [KeyRun { slot: split, bias: &bias[split..] }, KeyRun { slot: 0, bias: &bias[..i + head] }]
        };
        let mut s = AttnScratch::default();
        let mut batch = vec![0i8; n * heads * dh];
        attend(&cache, &q, n, keys, &mut batch, &mut s);
        for i in 0..n {
            let row = i * heads * dh..(i + 1) * heads * dh;
            let mut alone = vec![0i8; heads * dh];
            attend(&cache, &q[row.clone()], 1, |_, head| keys(i, head), &mut alone, &mut s);
            assert_eq!(alone, batch[row]);
        }
    }

    #[test]
    fn every_kernel_set_attends_alike() {
        use crate::t5::intnet::{Kernels, with_kernels};
        let mut next = crate::t5::fixtures::xorshift(11);
        let (heads, dh, slots, n) = (4, 32, 300, 6);
        let mut cache = KvCache::new(slots, heads, dh);
        for slot in 0..slots {
            // Large keys and values, so that scores spread over the exp table.
            let k: Vec<i8> = (0..heads * dh).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let v: Vec<i8> = (0..heads * dh).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            cache.set(slot, &k, &v);
        }
        let q: Vec<i8> = (0..n * heads * dh).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
        let bias: Vec<i32> = (0..slots).map(|_| (next() % 64) as i32 - 32).collect();
        let keys = |i: usize, head: usize| {
            let split = 40 + 7 * i + head;
            [KeyRun { slot: split, bias: &bias[split..] }, KeyRun { slot: 0, bias: &bias[..20 + i] }]
        };
        let run = |k: Kernels, n: usize| {
            with_kernels(k, || {
                let mut out = vec![0i8; n * heads * dh];
                attend(&cache, &q[..n * heads * dh], n, keys, &mut out, &mut AttnScratch::default());
                out
            })
        };
        for n in [1, 2, n] {
            let portable = run(Kernels::Portable, n);
            for k in Kernels::available() {
                assert_eq!(run(k, n), portable, "{k} kernels, {n} queries");
            }
        }
    }
}
