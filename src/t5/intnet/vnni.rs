//! The AVX-512 VNNI form of `packed::matmul`: `vpdpbusd` multiplies 64 unsigned by 64
//! signed bytes and adds each four products into an i32 lane, exactly, so the sums are
//! the portable product's, in another order.

use std::arch::x86_64::{__m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_storeu_si512};

use super::packed::{GROUP, PackedRef, RegisterBlocks, STEP, visit};

/// Inputs per register block: each packed weight load serves this many inputs.
const TOKENS: usize = 4;
/// Row groups per block for several inputs.
const GROUPS_MULTI: usize = 2;
/// Row groups per block for a single input: independent sums hide `vpdpbusd`'s latency.
const GROUPS_SINGLE: usize = 8;

/// `packed::matmul` for CPUs with AVX-512 F, BW and VNNI, which the caller has checked,
/// as it has checked the sizes.
pub(super) fn matmul(packed: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    // SAFETY: `packed::matmul_on` calls this only after checking that the CPU has the
    // AVX-512 kernel set (the features above among them), and has asserted the lengths that bound every access `blocks` makes.
    unsafe { blocks(&packed, x, n, acc) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn blocks(packed: &PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    let groups = packed.groups;
    unsafe { visit::<_, GROUPS_SINGLE, GROUPS_MULTI, TOKENS>(&mut Vnni { packed, x, acc }, groups, n) }
}

/// One product's operands, for `packed::visit`.
struct Vnni<'p, 'w> {
    packed: &'p PackedRef<'w>,
    x: &'p [u8],
    acc: &'p mut [i32],
}

impl RegisterBlocks for Vnni<'_, '_> {
    #[inline(always)]
    unsafe fn block<const M: usize, const N: usize>(&mut self, i: usize, g: usize) {
        unsafe { block::<M, N>(self.packed, self.x, i, g, self.acc) }
    }
}

/// Inputs `i..i+M` times row groups `g..g+N`, held in M·N registers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block<const M: usize, const N: usize>(packed: &PackedRef<'_>, x: &[u8], i: usize, g: usize, acc: &mut [i32]) {
    let x_stride = packed.steps * STEP;
    let stride = packed.groups * GROUP;
    let group_bytes = packed.steps * GROUP * STEP;
    let w = packed.w.as_ptr();
    let xp = x.as_ptr();
    unsafe {
        let mut sums: [[__m512i; N]; M] = [[_mm512_set1_epi32(0); N]; M];
        if let Some(start) = packed.start {
            for row in sums.iter_mut() {
                for (k, s) in row.iter_mut().enumerate() {
                    *s = _mm512_loadu_si512(start.as_ptr().add((g + k) * GROUP).cast());
                }
            }
        }
        for s in 0..packed.steps {
            let mut xb: [__m512i; M] = [_mm512_set1_epi32(0); M];
            for (m, b) in xb.iter_mut().enumerate() {
                let four = xp.add((i + m) * x_stride + s * STEP).cast::<i32>().read_unaligned();
                *b = _mm512_set1_epi32(four);
            }
            // Indexed loops: each weight load feeds one column of the register block.
            #[allow(clippy::needless_range_loop)]
            for k in 0..N {
                let wv = _mm512_loadu_si512(w.add((g + k) * group_bytes + s * GROUP * STEP).cast());
                for m in 0..M {
                    sums[m][k] = _mm512_dpbusd_epi32(sums[m][k], xb[m], wv);
                }
            }
        }
        for (m, row) in sums.iter().enumerate() {
            for (k, s) in row.iter().enumerate() {
                _mm512_storeu_si512(acc.as_mut_ptr().add((i + m) * stride + (g + k) * GROUP).cast(), *s);
            }
        }
    }
}
