//! The AVX2 form of `packed::matmul`, for CPUs without AVX-512 VNNI.
//!
//! AVX2's byte product, `vpmaddubsw`, adds two u8 × i8 products into an i16 with
//! saturation: with inputs up to 255 (`x + 128`, and the low bytes of attention weights)
//! and weights up to ±127, a pair reaches 2 · 255 · 127 = 64770 > 32767, so on the inputs
//! as they are it is not exact. This kernel multiplies `v = x − 128` (in [-128, 127])
//! instead, as `|v| · (w · sign v)` (`vpsignb`): an unsigned factor of at most 128 and a
//! signed one of at most 127 in magnitude (weights are never -128, so `vpsignb` cannot
//! overflow), so a pair is at most 2 · 128 · 127 = 32512 and never saturates. `vpmaddwd`
//! by ones adds each row's two pairs into an i32 lane, and the row's sum starts at
//! `start + 128 · Σ_c W[r][c]` (`Centered`), which puts the 128 back:
//! `start + Σ w·x = start + 128·Σ w + Σ w·v`. All in wrapping i32, as the portable
//! product, so the sums are its sums.

use std::arch::x86_64::{
    __m256i, _mm256_abs_epi8, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
    _mm256_set1_epi8, _mm256_set1_epi16, _mm256_set1_epi32, _mm256_setzero_si256, _mm256_sign_epi8,
    _mm256_storeu_si256, _mm256_xor_si256,
};

use super::packed::{Centered, GROUP, PackedRef, RegisterBlocks, STEP, visit};

/// Inputs per register block: each weight load serves this many.
const TOKENS: usize = 2;
/// Row groups per block: with 2 registers of sums per input and group, 8 in all.
const GROUPS_MULTI: usize = 2;
const GROUPS_SINGLE: usize = 4;
/// Rows per register of sums (half a group), 32 bytes of a packed step.
const HALF: usize = GROUP / 2;

/// `packed::matmul` for CPUs with AVX2, which the caller has checked, as it has checked
/// the sizes.
pub(super) fn matmul(packed: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    let centered = match packed.centered {
        Centered::Zero => None,
        Centered::Sums(sums) => Some(sums),
    };
    // SAFETY: `packed::matmul_on` calls this only after checking that the CPU has the
    // AVX2 kernel set, and has asserted the lengths that bound every access `blocks`
    // makes (`centered` has a sum per row).
    unsafe { blocks(&packed, centered, x, n, acc) }
}

#[target_feature(enable = "avx2")]
unsafe fn blocks(packed: &PackedRef<'_>, centered: Option<&[i32]>, x: &[u8], n: usize, acc: &mut [i32]) {
    let groups = packed.groups;
    let mut operands = Avx2 { packed, centered, x, acc };
    unsafe { visit::<_, GROUPS_SINGLE, GROUPS_MULTI, TOKENS>(&mut operands, groups, n) }
}

/// One product's operands, for `packed::visit`.
struct Avx2<'p, 'w> {
    packed: &'p PackedRef<'w>,
    centered: Option<&'p [i32]>,
    x: &'p [u8],
    acc: &'p mut [i32],
}

impl RegisterBlocks for Avx2<'_, '_> {
    #[inline(always)]
    unsafe fn block<const M: usize, const N: usize>(&mut self, i: usize, g: usize) {
        unsafe { block::<M, N>(self.packed, self.centered, self.x, i, g, self.acc) }
    }
}

/// Inputs `i..i+M` times row groups `g..g+N`, held in 2·M·N registers of sums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block<const M: usize, const N: usize>(
    packed: &PackedRef<'_>,
    centered: Option<&[i32]>,
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
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        // sums[m][k][h]: input i + m, rows h·8..h·8+8 of group g + k.
        let mut sums: [[[__m256i; 2]; N]; M] = [[[_mm256_setzero_si256(); 2]; N]; M];
        for s in 0..packed.steps {
            // Per input, the step's 4 bytes in every lane: v = x − 128, and |v|.
            let mut v: [__m256i; M] = [_mm256_setzero_si256(); M];
            let mut magnitude: [__m256i; M] = [_mm256_setzero_si256(); M];
            for m in 0..M {
                let four = xp.add((i + m) * x_stride + s * STEP).cast::<i32>().read_unaligned();
                v[m] = _mm256_xor_si256(_mm256_set1_epi32(four), flip);
                magnitude[m] = _mm256_abs_epi8(v[m]);
            }
            // Indexed loops: each weight load feeds one column of the register block.
            #[allow(clippy::needless_range_loop)]
            for k in 0..N {
                let base = w.add((g + k) * group_bytes + s * GROUP * STEP);
                for h in 0..2 {
                    let wv = _mm256_loadu_si256(base.add(h * HALF * STEP).cast());
                    for m in 0..M {
                        let pairs = _mm256_maddubs_epi16(magnitude[m], _mm256_sign_epi8(wv, v[m]));
                        sums[m][k][h] = _mm256_add_epi32(sums[m][k][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
        }
        for (m, row) in sums.iter().enumerate() {
            for (k, halves) in row.iter().enumerate() {
                for (h, &sum) in halves.iter().enumerate() {
                    let first = (g + k) * GROUP + h * HALF;
                    let mut rows = sum;
                    if let Some(c) = centered {
                        rows = _mm256_add_epi32(rows, _mm256_loadu_si256(c.as_ptr().add(first).cast()));
                    }
                    _mm256_storeu_si256(acc.as_mut_ptr().add((i + m) * stride + first).cast(), rows);
                }
            }
        }
    }
}
