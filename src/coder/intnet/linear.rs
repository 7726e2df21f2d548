//! `y = W x` for int8 weights and activations with exact i32 accumulation, and the three
//! ways CODER.md requantizes it: to q8, added into the residual, and to logits.
//!
//! The portable product is the definition. Where the CPU has AVX-512 VNNI the same sums
//! come from `vnni`, on a copy of the weights packed for it; integer sums do not depend
//! on their order, so both give identical results (tested).

use super::arith::{clamp8, clamp16, rshift};
use super::{E_H, H_MAX};

/// Rows per packed group: one 512-bit register of i32 sums.
pub(super) const GROUP: usize = 16;
/// Columns per VNNI step: four int8 products summed into each i32 lane.
pub(super) const STEP: usize = 4;

#[derive(Debug, Clone)]
pub struct Linear {
    rows: usize,
    cols: usize,
    exp: i32,
    /// Row-major `[rows][cols]`.
    w: Vec<i8>,
    /// `Some` when the VNNI kernel runs on this CPU.
    packed: Option<Packed>,
}

/// The weights as the VNNI kernel reads them: `[group][col / 4][row in group][col % 4]`,
/// rows padded to a multiple of 16 and columns to a multiple of 4 with zeros.
#[derive(Debug, Clone)]
pub(super) struct Packed {
    pub w: Vec<i8>,
    /// The kernel multiplies `x + 128` (unsigned) by the weights; starting each row's
    /// sum at `-128 · Σ_j w_rj` removes the offset again.
    pub start: Vec<i32>,
    pub groups: usize,
    pub steps: usize,
}

/// Buffers reused across calls, so that a decoding step allocates nothing.
#[derive(Debug, Default)]
pub struct LinearScratch {
    x_biased: Vec<u8>,
    acc: Vec<i32>,
}

impl Linear {
    /// `w` is row-major `[rows][cols]` holding `round(W · 2^exp)`.
    pub fn new(w: Vec<i8>, rows: usize, cols: usize, exp: i32) -> Linear {
        assert_eq!(w.len(), rows * cols, "weights of a {rows}x{cols} matrix");
        let packed = vnni_available().then(|| pack(&w, rows, cols));
        Linear {
            rows,
            cols,
            exp,
            w,
            packed,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Exact sums `Σ_j W_rj x_ij` for the `n` inputs `x[i·cols..(i+1)·cols]`, as
    /// `n` rows of `stride` (≥ `rows`) values.
    pub fn accumulate<'s>(
        &self,
        x: &[i8],
        n: usize,
        scratch: &'s mut LinearScratch,
    ) -> (&'s [i32], usize) {
        assert_eq!(x.len(), n * self.cols, "{n} inputs of {}", self.cols);
        match &self.packed {
            #[cfg(target_arch = "x86_64")]
            Some(packed) => {
                let stride = packed.groups * GROUP;
                let x_stride = packed.steps * STEP;
                scratch.x_biased.clear();
                for xi in x.chunks_exact(self.cols) {
                    // x + 128 as u8 is x with its sign bit flipped; padding columns hold
                    // 128, which meets zero weights.
                    scratch
                        .x_biased
                        .extend(xi.iter().map(|&v| (v as u8) ^ 0x80));
                    scratch
                        .x_biased
                        .resize(scratch.x_biased.len() + x_stride - self.cols, 0x80);
                }
                scratch.acc.resize(n * stride, 0);
                super::vnni::matmul(packed, &scratch.x_biased, n, &mut scratch.acc);
                (&scratch.acc[..n * stride], stride)
            }
            _ => {
                scratch.acc.resize(n * self.rows, 0);
                matmul_portable(&self.w, self.rows, self.cols, x, &mut scratch.acc);
                (&scratch.acc[..n * self.rows], self.rows)
            }
        }
    }

    /// `clamp8(rshift(W x, e_W + e_in - e_out))`, `n` rows of `rows` into `out`; with
    /// `relu`, negative results become 0 (the FFN's hidden layer).
    pub fn to_q8(
        &self,
        x: &[i8],
        n: usize,
        e_in: i32,
        e_out: i32,
        relu: bool,
        out: &mut [i8],
        scratch: &mut LinearScratch,
    ) {
        let shift = self.exp + e_in - e_out;
        let floor = if relu { 0 } else { -127 };
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        for (o, a) in out[..n * rows]
            .chunks_exact_mut(rows)
            .zip(acc.chunks_exact(stride))
        {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = clamp8(rshift(i64::from(a), shift)).max(floor);
            }
        }
    }

    /// `h = clamp16(h + rshift(W x, e_W + e_in - E_H))` for `n` rows of the residual.
    pub fn add_to_residual(
        &self,
        x: &[i8],
        n: usize,
        e_in: i32,
        h: &mut [i32],
        scratch: &mut LinearScratch,
    ) {
        let shift = self.exp + e_in - E_H;
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        for (h, a) in h[..n * rows]
            .chunks_exact_mut(rows)
            .zip(acc.chunks_exact(stride))
        {
            for (h, &a) in h.iter_mut().zip(a) {
                *h = clamp16(i64::from(*h) + rshift(i64::from(a), shift));
            }
        }
        debug_assert!(h.iter().all(|v| v.abs() <= H_MAX));
    }

    /// `rshift(W x, e_W + e_in - e_out)` without clamping: the output logits.
    pub fn to_logits(
        &self,
        x: &[i8],
        n: usize,
        e_in: i32,
        e_out: i32,
        out: &mut [i32],
        scratch: &mut LinearScratch,
    ) {
        let shift = self.exp + e_in - e_out;
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        for (o, a) in out[..n * rows]
            .chunks_exact_mut(rows)
            .zip(acc.chunks_exact(stride))
        {
            for (o, &a) in o.iter_mut().zip(a) {
                // Weights and inputs are bounded at load, so this fits an i32 (see
                // ModelConfig's limits); saturate anyway rather than wrap.
                *o = rshift(i64::from(a), shift).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                    as i32;
            }
        }
    }
}

/// The definition: one exact i32 dot product per output. Written as a plain zip-sum so
/// that LLVM vectorizes it on any target.
fn matmul_portable(w: &[i8], rows: usize, cols: usize, x: &[i8], acc: &mut [i32]) {
    for (xi, out) in x.chunks_exact(cols).zip(acc.chunks_exact_mut(rows)) {
        for (o, wr) in out.iter_mut().zip(w.chunks_exact(cols)) {
            *o = dot(wr, xi);
        }
    }
}

#[inline]
pub(super) fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum()
}

fn pack(w: &[i8], rows: usize, cols: usize) -> Packed {
    let groups = rows.div_ceil(GROUP);
    let steps = cols.div_ceil(STEP);
    let mut packed = vec![0i8; groups * steps * GROUP * STEP];
    let mut start = vec![0i32; groups * GROUP];
    for r in 0..rows {
        let (g, lane) = (r / GROUP, r % GROUP);
        for c in 0..cols {
            let (s, k) = (c / STEP, c % STEP);
            packed[((g * steps + s) * GROUP + lane) * STEP + k] = w[r * cols + c];
        }
        start[r] = -128
            * w[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| i32::from(v))
                .sum::<i32>();
    }
    Packed {
        w: packed,
        start,
        groups,
        steps,
    }
}

fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("S2SFS_PORTABLE_KERNELS").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn portable(l: &Linear) -> Linear {
        Linear {
            packed: None,
            ..l.clone()
        }
    }

    proptest! {
        #[test]
        fn fast_and_portable_kernels_agree(
            rows in 1usize..70,
            cols in 1usize..140,
            n in 1usize..7,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 255) as i64 - 127
            };
            let w: Vec<i8> = (0..rows * cols).map(|_| next() as i8).collect();
            let x: Vec<i8> = (0..n * cols).map(|_| next() as i8).collect();
            let fast = Linear::new(w.clone(), rows, cols, 7);
            let slow = portable(&fast);
            let mut s = LinearScratch::default();
            let mut expected = vec![0i32; n * rows];
            for i in 0..n {
                for r in 0..rows {
                    expected[i * rows + r] = (0..cols)
                        .map(|c| i32::from(w[r * cols + c]) * i32::from(x[i * cols + c]))
                        .sum();
                }
            }
            for lin in [&fast, &slow] {
                let mut got = vec![0i32; n * rows];
                lin.to_logits(&x, n, 0, 7, &mut got, &mut s);
                prop_assert_eq!(&got, &expected);
                let mut q = vec![0i8; n * rows];
                lin.to_q8(&x, n, 5, 4, true, &mut q, &mut s);
                for (q, &e) in q.iter().zip(&expected) {
                    prop_assert_eq!(*q, clamp8(rshift(i64::from(e), 8)).max(0));
                }
            }
        }
    }
}
