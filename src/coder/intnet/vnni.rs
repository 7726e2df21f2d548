//! The AVX-512 VNNI form of `linear`'s product: `vpdpbusd` multiplies 64 unsigned by 64
//! signed bytes and adds each four products into an i32 lane, exactly. Inputs arrive as
//! `x + 128` (unsigned) and the packed rows start at `-128 · Σ w`, so each lane ends at
//! `Σ w x`: the same integers as the portable product, in another order.

use std::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_storeu_si512,
};

use super::linear::{GROUP, Packed, STEP};

/// Inputs per register block: each packed weight load serves this many inputs.
const TOKENS: usize = 4;
/// Row groups per block for a single input: independent sums hide `vpdpbusd`'s latency.
const GROUPS_SINGLE: usize = 4;

/// `acc[i · groups·16 + r] = Σ_c W_rc x_ic` for `n` inputs of `packed.steps · 4` biased
/// bytes each. Only call when the CPU has AVX-512 F, BW and VNNI (`Linear` checks).
pub(super) fn matmul(packed: &Packed, x_biased: &[u8], n: usize, acc: &mut [i32]) {
    let x_stride = packed.steps * STEP;
    let stride = packed.groups * GROUP;
    assert!(x_biased.len() >= n * x_stride && acc.len() >= n * stride);
    assert!(packed.w.len() >= packed.groups * packed.steps * GROUP * STEP);
    assert!(packed.start.len() >= stride);
    // SAFETY: `Linear` builds `Packed` only after detecting the features; the asserts
    // above bound every access `blocks` makes.
    unsafe { blocks(packed, x_biased, n, acc) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn blocks(packed: &Packed, x: &[u8], n: usize, acc: &mut [i32]) {
    let mut i = 0;
    while i + TOKENS <= n {
        let mut g = 0;
        while g + 2 <= packed.groups {
            unsafe { block::<TOKENS, 2>(packed, x, i, g, acc) };
            g += 2;
        }
        if g < packed.groups {
            unsafe { block::<TOKENS, 1>(packed, x, i, g, acc) };
        }
        i += TOKENS;
    }
    while i < n {
        let mut g = 0;
        while g + GROUPS_SINGLE <= packed.groups {
            unsafe { block::<1, GROUPS_SINGLE>(packed, x, i, g, acc) };
            g += GROUPS_SINGLE;
        }
        while g < packed.groups {
            unsafe { block::<1, 1>(packed, x, i, g, acc) };
            g += 1;
        }
        i += 1;
    }
}

/// Inputs `i..i+M` times row groups `g..g+N`, held in M·N registers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block<const M: usize, const N: usize>(
    packed: &Packed,
    x: &[u8],
    i: usize,
    g: usize,
    acc: &mut [i32],
) {
    let x_stride = packed.steps * STEP;
    let stride = packed.groups * GROUP;
    let group_bytes = packed.steps * GROUP * STEP;
    let w = packed.w.as_ptr();
    let xp = x.as_ptr();
    unsafe {
        let mut sums: [[__m512i; N]; M] = [[_mm512_set1_epi32(0); N]; M];
        for row in sums.iter_mut() {
            for (k, s) in row.iter_mut().enumerate() {
                *s = _mm512_loadu_si512(packed.start.as_ptr().add((g + k) * GROUP).cast());
            }
        }
        for s in 0..packed.steps {
            let mut xb: [__m512i; M] = [_mm512_set1_epi32(0); M];
            for (m, b) in xb.iter_mut().enumerate() {
                let four = xp
                    .add((i + m) * x_stride + s * STEP)
                    .cast::<i32>()
                    .read_unaligned();
                *b = _mm512_set1_epi32(four);
            }
            for k in 0..N {
                let wv = _mm512_loadu_si512(w.add((g + k) * group_bytes + s * GROUP * STEP).cast());
                for m in 0..M {
                    sums[m][k] = _mm512_dpbusd_epi32(sums[m][k], xb[m], wv);
                }
            }
        }
        for (m, row) in sums.iter().enumerate() {
            for (k, s) in row.iter().enumerate() {
                _mm512_storeu_si512(
                    acc.as_mut_ptr()
                        .add((i + m) * stride + (g + k) * GROUP)
                        .cast(),
                    *s,
                );
            }
        }
    }
}
