//! The exp table over a whole row: every softmax's weights (attention's and the output
//! distribution's), `EXP[min(max − v, 127)]` for each value v of the row.
//!
//! The compiler makes this loop a gather (or scalar loads), one lane after another. The
//! table's entries from 89 on are zero, so with AVX-512 three two-register permutes hold
//! all the rest (entries 0-95) in registers and a row of 16 values costs a handful of
//! instructions: the loop had been 5% of a token's time in each of its two uses.

use super::arith::{EXP, EXP_LEVELS};
use super::kernels::{Kernels, kernels};
use crate::t5::multiversion::multiversion;

/// Entries of `EXP` the AVX-512 path holds in registers; the rest must be zero.
const HELD: usize = 96;
const _: () = {
    let mut i = HELD;
    while i < EXP_LEVELS {
        assert!(EXP[i] == 0, "the AVX-512 exp lookup holds only EXP[..96]");
        i += 1;
    }
};

/// `out[i] = EXP[min(max − values[i], 127)]` for `max` at least every value (the gap is
/// taken as a wrapping u32 difference, exact for any i32 pair); returns the wrapping sum of
/// `out`. `out` must be as long as `values`.
pub fn exp_row(values: &[i32], max: i32, out: &mut [u32]) -> u32 {
    assert_eq!(values.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if kernels() == Kernels::Avx512 {
        // SAFETY: `kernels` picks AVX-512 only where the CPU has AVX-512 F.
        return unsafe { avx512(values, max, out) };
    }
    exp_row_loop(values, max, out)
}

multiversion! {
    fn exp_row_loop(values: &[i32], max: i32, out: &mut [u32]) -> u32 {
        let mut total = 0u32;
        for (o, &v) in out.iter_mut().zip(values) {
            *o = EXP[(max.wrapping_sub(v) as u32).min(EXP_LEVELS as u32 - 1) as usize];
            total = total.wrapping_add(*o);
        }
        total
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(values: &[i32], max: i32, out: &mut [u32]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY (every load and store below): 16 i32 lanes from or into a slice of 16.
    let table = |at: usize| unsafe { _mm512_loadu_si512(EXP[at..at + 16].as_ptr().cast()) };
    let (t0, t1, t2, t3, t4, t5) = (table(0), table(16), table(32), table(48), table(64), table(80));
    let vmax = _mm512_set1_epi32(max);
    let top = _mm512_set1_epi32(EXP_LEVELS as i32 - 1);
    let (b32, b64, b96) = (_mm512_set1_epi32(32), _mm512_set1_epi32(64), _mm512_set1_epi32(HELD as i32));
    let mut sums = _mm512_setzero_si512();
    let mut chunks = values.chunks_exact(16);
    let mut outs = out.chunks_exact_mut(16);
    for (v, o) in (&mut chunks).zip(&mut outs) {
        let gap = _mm512_min_epu32(_mm512_sub_epi32(vmax, unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }), top);
        // Each permute reads the low 5 bits of the gap over 32 entries.
        let low = _mm512_permutex2var_epi32(t0, gap, t1);
        let mid = _mm512_permutex2var_epi32(t2, gap, t3);
        let high = _mm512_permutex2var_epi32(t4, gap, t5);
        let w = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(gap, b32), low, mid);
        let w = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(gap, b64), w, high);
        let w = _mm512_maskz_mov_epi32(_mm512_cmplt_epu32_mask(gap, b96), w);
        unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), w) };
        sums = _mm512_add_epi32(sums, w);
    }
    let total = _mm512_reduce_add_epi32(sums) as u32;
    total.wrapping_add(exp_row_loop(chunks.remainder(), max, outs.into_remainder()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::intnet::with_kernels;
    use proptest::prelude::*;

    proptest! {
        /// Every kernel set gives the table's entries and their sum, for gaps inside and
        /// beyond the table and rows of any length.
        #[test]
        fn every_kernel_set_looks_up_the_table(gaps in proptest::collection::vec(0u32..300, 0..70), max in any::<i32>()) {
            let values: Vec<i32> = gaps.iter().map(|&g| max.wrapping_sub(g as i32)).collect();
            let want: Vec<u32> = gaps.iter().map(|&g| EXP[(g as usize).min(EXP_LEVELS - 1)]).collect();
            for k in Kernels::available() {
                let mut out = vec![7; values.len()];
                let total = with_kernels(k, || exp_row(&values, max, &mut out));
                prop_assert_eq!(&out, &want, "{} kernels", k);
                prop_assert_eq!(total, want.iter().sum::<u32>());
            }
        }
    }

    #[test]
    fn a_span_wider_than_i32_still_weighs_zero() {
        let mut out = [9; 2];
        exp_row(&[i32::MIN, i32::MAX], i32::MAX, &mut out);
        assert_eq!(out, [0, EXP[0]]);
    }
}
