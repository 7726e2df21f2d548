//! One attention head for one query, with the exp-table softmax of CODER.md: scores at
//! exponent E_S, weights `EXP[min(m - s, 127)]`, output the rounded weighted mean of the
//! values. Which keys a query sees, and their position biases, are the caller's.
//!
//! Both sums run as packed products over the whole cache (`kv`): the scores as keys times
//! `q + 128`, the weighted sum as values times the weights, split into their high and low
//! bytes since a weight (up to 2^15) is wider than the product's unsigned bytes.

use super::arith::{EXP, EXP_LEVELS, FloorDiv, clamp8, rshift};
use super::kv::KvCache;
use super::packed;
use super::{E_A, E_S};

/// Most keys one query may see: with weights up to 2^15 and values up to 127, this many
/// products still sum exactly in an i32.
pub const MAX_KEYS: usize = 512;

#[derive(Debug, Default)]
pub struct AttnScratch {
    q_biased: Vec<u8>,
    raw: Vec<i32>,
    scores: Vec<i32>,
    /// The weights by slot: high bytes, then low bytes.
    weight_bytes: Vec<u8>,
    sums: Vec<i32>,
}

/// Attends with head `head`'s query `q` (q8 at E_A) over the keys `keys` of `cache`:
/// pairs of a slot and that key's position bias, each slot at most once. Writes the
/// head's output (q8 at E_A) into `out`. At most `MAX_KEYS` keys; none gives zeros.
pub fn attend_head<I>(
    cache: &KvCache,
    head: usize,
    q: &[i8],
    keys: I,
    out: &mut [i8],
    scratch: &mut AttnScratch,
) where
    I: Iterator<Item = (usize, i32)> + Clone,
{
    let AttnScratch {
        q_biased,
        raw,
        scores,
        weight_bytes,
        sums,
    } = scratch;
    let key_matrix = cache.keys(head);
    q_biased.clear();
    q_biased.extend(q.iter().map(|&v| (v as u8) ^ 0x80));
    q_biased.resize(key_matrix.width(), 0x80);
    raw.resize(key_matrix.height(), 0);
    packed::matmul(key_matrix, q_biased, 1, raw, true);

    scores.clear();
    scores.extend(
        keys.clone()
            .map(|(slot, bias)| rshift(i64::from(raw[slot]), 2 * E_A - E_S) as i32 + bias),
    );
    debug_assert!(scores.len() <= MAX_KEYS);
    let Some(&max) = scores.iter().max() else {
        out.fill(0);
        return;
    };
    let value_matrix = cache.values(head);
    let width = value_matrix.width();
    weight_bytes.clear();
    weight_bytes.resize(2 * width, 0);
    let mut total = 0i64;
    for ((slot, _), &s) in keys.zip(scores.iter()) {
        let level = (i64::from(max) - i64::from(s)).min(EXP_LEVELS as i64 - 1) as usize;
        let w = EXP[level];
        total += i64::from(w);
        weight_bytes[slot] = (w >> 8) as u8;
        weight_bytes[width + slot] = w as u8;
    }
    sums.resize(2 * value_matrix.height(), 0);
    packed::matmul(value_matrix, weight_bytes, 2, sums, true);
    let (high, low) = sums.split_at(value_matrix.height());
    // div_round(a, total) = floor((2a + total) / 2·total). The best key weighs EXP[0],
    // so 2·total ≥ 2^16; with at most MAX_KEYS keys, 2·total ≤ 2^25 and |2a + total| < 2^34,
    // inside FloorDiv's range.
    let divisor = FloorDiv::new(2 * total as u64);
    for ((o, &h), &l) in out.iter_mut().zip(high).zip(low) {
        *o = clamp8(divisor.floor(2 * (256 * i64::from(h) + i64::from(l)) + total));
    }
}

/// Every head of `n` queries (rows of `q`, at E_A) into the same rows of `out`: query
/// `i`'s head `head` attends over the keys `keys(i, head)` (as in `attend_head`).
pub fn attend<I, F>(
    cache: &KvCache,
    q: &[i8],
    n: usize,
    keys: F,
    out: &mut [i8],
    scratch: &mut AttnScratch,
) where
    F: Fn(usize, usize) -> I,
    I: Iterator<Item = (usize, i32)> + Clone,
{
    let (heads, dh) = (cache.heads(), cache.head_dim());
    let d = heads * dh;
    for i in 0..n {
        for head in 0..heads {
            let cols = i * d + head * dh..i * d + (head + 1) * dh;
            attend_head(
                cache,
                head,
                &q[cols.clone()],
                keys(i, head),
                &mut out[cols],
                scratch,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dominant_key_wins_and_equal_keys_average() {
        // One head of width 2; keys (10, 0) and (-10, 0), values (100, -50) and (20, 30).
        let mut cache = KvCache::new(5, 1, 2);
        cache.set(0, &[10, 0], &[100, -50]);
        cache.set(3, &[-10, 0], &[20, 30]);
        let mut s = AttnScratch::default();
        let mut out = [0i8; 2];
        // q·k = ±1000 → scores ±31 (1000/32 rounded): a gap of 62 eighths of a nat.
        attend_head(
            &cache,
            0,
            &[100, 0],
            [(0, 0), (3, 0)].into_iter(),
            &mut out,
            &mut s,
        );
        let w1 = EXP[62] as i64;
        let expect =
            |a: i64, b: i64| clamp8(super::super::div_round(32768 * a + w1 * b, 32768 + w1));
        assert_eq!(out, [expect(100, 20), expect(-50, 30)]);
        // Bias can equalize them: then the output is the plain mean.
        attend_head(
            &cache,
            0,
            &[100, 0],
            [(0, -31), (3, 31)].into_iter(),
            &mut out,
            &mut s,
        );
        assert_eq!(out, [60, -10]);
        // Only the keys listed count.
        attend_head(&cache, 0, &[100, 0], [(3, 0)].into_iter(), &mut out, &mut s);
        assert_eq!(out, [20, 30]);
        attend_head(&cache, 0, &[1, 1], std::iter::empty(), &mut out, &mut s);
        assert_eq!(out, [0, 0]);
    }
}
