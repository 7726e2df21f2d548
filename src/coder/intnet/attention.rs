//! One attention head for one query, with the exp-table softmax of CODER.md: scores at
//! exponent E_S, weights `EXP[min(m - s, 127)]`, output the rounded weighted mean of the
//! values. Which keys a query sees, and their position biases, are the caller's.

use std::ops::Range;

use super::arith::{EXP, EXP_LEVELS, clamp8, div_round, rshift};
use super::linear::dot;
use super::{E_A, E_S};

/// Most keys one query may see: with weights up to 2^15 and values up to 127, this many
/// products still sum exactly in an i32.
pub const MAX_KEYS: usize = 512;

#[derive(Debug, Default)]
pub struct AttnScratch {
    scores: Vec<i32>,
    sums: Vec<i32>,
}

/// Attends with the head's query `q` (q8 at E_A) over the keys `keys`: pairs of a row of
/// `k`/`v` (rows of `d` values; the head owns columns `cols`) and that key's position
/// bias. Writes the head's output (q8 at E_A) into `out`. At most `MAX_KEYS` keys; none
/// at all gives zeros.
pub fn attend_head<I>(
    q: &[i8],
    k: &[i8],
    v: &[i8],
    d: usize,
    cols: Range<usize>,
    keys: I,
    out: &mut [i8],
    scratch: &mut AttnScratch,
) where
    I: Iterator<Item = (usize, i32)> + Clone,
{
    let AttnScratch { scores, sums } = scratch;
    scores.clear();
    scores.extend(keys.clone().map(|(row, bias)| {
        let key = &k[row * d + cols.start..row * d + cols.end];
        rshift(i64::from(dot(q, key)), 2 * E_A - E_S) as i32 + bias
    }));
    debug_assert!(scores.len() <= MAX_KEYS);
    let Some(&max) = scores.iter().max() else {
        out.fill(0);
        return;
    };
    sums.clear();
    sums.resize(cols.len(), 0);
    let mut total = 0i64;
    for ((row, _), &s) in keys.zip(scores.iter()) {
        let level = (i64::from(max) - i64::from(s)).min(EXP_LEVELS as i64 - 1) as usize;
        let w = EXP[level] as i32;
        if w == 0 {
            continue;
        }
        total += i64::from(w);
        let value = &v[row * d + cols.start..row * d + cols.end];
        for (acc, &x) in sums.iter_mut().zip(value) {
            *acc += w * i32::from(x);
        }
    }
    // The best key weighs EXP[0] > 0, so total > 0.
    for (o, &acc) in out.iter_mut().zip(sums.iter()) {
        *o = clamp8(div_round(i64::from(acc), total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dominant_key_wins_and_equal_keys_average() {
        // Two keys, head of width 2 at columns 0..2 of rows of 3.
        let k = [10i8, 0, 99, -10, 0, 99];
        let v = [100i8, -50, 99, 20, 30, 99];
        let mut s = AttnScratch::default();
        let mut out = [0i8; 2];
        // q·k = ±1000 → scores ±31 (1000/32 rounded): a gap of 62 eighths of a nat.
        attend_head(
            &[100, 0],
            &k,
            &v,
            3,
            0..2,
            [(0, 0), (1, 0)].into_iter(),
            &mut out,
            &mut s,
        );
        let w1 = EXP[62] as i64;
        let expect = |a: i64, b: i64| clamp8(div_round(32768 * a + w1 * b, 32768 + w1));
        assert_eq!(out, [expect(100, 20), expect(-50, 30)]);
        // Bias can equalize them: then the output is the plain mean.
        attend_head(
            &[100, 0],
            &k,
            &v,
            3,
            0..2,
            [(0, -31), (1, 31)].into_iter(),
            &mut out,
            &mut s,
        );
        assert_eq!(out, [60, -10]);
        attend_head(
            &[1, 1],
            &k,
            &v,
            3,
            0..2,
            std::iter::empty(),
            &mut out,
            &mut s,
        );
        assert_eq!(out, [0, 0]);
    }
}
