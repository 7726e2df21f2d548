//! `y = W x` for int8 weights and activations with exact i32 accumulation, and the three
//! ways CODER.md requantizes it: to q8, added into the residual, and to logits.
//!
//! The product runs on the VNNI layout of `packed` (portable or AVX-512 VNNI, the same
//! integers). Its unsigned inputs are `x + 128`, and each row's sum starts at
//! `-128 · Σ_j w_rj`, which takes the offset out again.

use super::arith::{clamp8, clamp16, rshift_sum};
use super::packed::{self, Centered, PackedRef};
use super::{E_A, E_H, H_MAX};
use crate::t5::multiversion::multiversion;

#[derive(Debug, Clone)]
pub struct Linear {
    rows: usize,
    cols: usize,
    exp: i32,
    packed: Vec<i8>,
    start: Vec<i32>,
}

/// Buffers reused across calls, so that a decoding step allocates nothing.
#[derive(Debug, Default)]
pub struct LinearScratch {
    x_biased: Vec<u8>,
    acc: Vec<i32>,
}

impl Linear {
    /// `w` is row-major `[rows][cols]` holding `round(W · 2^exp)`.
    pub fn new(w: &[i8], rows: usize, cols: usize, exp: i32) -> Linear {
        assert_eq!(w.len(), rows * cols, "weights of a {rows}x{cols} matrix");
        let mut start = vec![0i32; rows.div_ceil(packed::GROUP) * packed::GROUP];
        for (s, row) in start.iter_mut().zip(w.chunks_exact(cols.max(1))) {
            *s = -128 * row.iter().map(|&v| i32::from(v)).sum::<i32>();
        }
        Linear { rows, cols, exp, packed: packed::pack(w, rows, cols), start }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The weights' exponent: they hold round(W · 2^exp).
    pub fn exp(&self) -> i32 {
        self.exp
    }

    /// The weight of row `row`, column `col`, for other implementations of the same
    /// product (batchnet). Panics outside the matrix.
    pub fn weight(&self, row: usize, col: usize) -> i8 {
        assert!(row < self.rows && col < self.cols, "({row}, {col}) of a {}x{} matrix", self.rows, self.cols);
        self.packed[packed::index(row, col, self.cols.div_ceil(packed::STEP))]
    }

    fn packed(&self) -> PackedRef<'_> {
        PackedRef {
            w: &self.packed,
            start: Some(&self.start),
            // Each row starts at -128 · Σ w: for inputs taken as x − 128 = v, nothing.
            centered: Centered::Zero,
            groups: self.rows.div_ceil(packed::GROUP),
            steps: self.cols.div_ceil(packed::STEP),
        }
    }

    /// Exact sums `Σ_j W_rj x_ij` for the `n` inputs `x[i·cols..(i+1)·cols]`, as
    /// `n` rows of `stride` (≥ `rows`) values.
    pub fn accumulate<'s>(&self, x: &[i8], n: usize, scratch: &'s mut LinearScratch) -> (&'s [i32], usize) {
        assert_eq!(x.len(), n * self.cols, "{n} inputs of {}", self.cols);
        let m = self.packed();
        let (width, stride) = (m.width(), m.height());
        scratch.x_biased.clear();
        for xi in x.chunks_exact(self.cols) {
            // x + 128 as u8 is x with its sign bit flipped; padding columns hold 128,
            // which meets zero weights.
            scratch.x_biased.extend(xi.iter().map(|&v| (v as u8) ^ 0x80));
            scratch.x_biased.resize(scratch.x_biased.len() + width - self.cols, 0x80);
        }
        // Every sum is written by the product: the buffer only grows (a shrink and regrow
        // would zero it again on every call, as layers of different heights alternate).
        if scratch.acc.len() < n * stride {
            scratch.acc.resize(n * stride, 0);
        }
        packed::matmul(m, &scratch.x_biased, n, &mut scratch.acc);
        (&scratch.acc[..n * stride], stride)
    }

    /// `clamp8(rshift(W x, e_W + e_in - E_A))`, `n` rows of `rows` into `out`: the
    /// network's q8 outputs (queries, keys, values) are all at E_A.
    pub fn to_q8(&self, x: &[i8], n: usize, e_in: i32, out: &mut [i8], scratch: &mut LinearScratch) {
        let shift = self.exp + e_in - E_A;
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        requantize_q8(acc, stride, rows, shift, &mut out[..n * rows]);
    }

    /// `h = clamp16(h + rshift(W x, e_W + e_in - E_H))` for `n` rows of the residual.
    pub fn add_to_residual(&self, x: &[i8], n: usize, e_in: i32, h: &mut [i32], scratch: &mut LinearScratch) {
        let shift = self.exp + e_in - E_H;
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        add_requantized(acc, stride, rows, shift, &mut h[..n * rows]);
        debug_assert!(h.iter().all(|v| v.abs() <= H_MAX));
    }

    /// `rshift(W x, e_W + e_in - e_out)` without clamping: the output logits.
    pub fn to_logits(&self, x: &[i8], n: usize, e_in: i32, e_out: i32, out: &mut [i32], scratch: &mut LinearScratch) {
        let shift = self.exp + e_in - e_out;
        let rows = self.rows;
        let (acc, stride) = self.accumulate(x, n, scratch);
        requantize_logits(acc, stride, rows, shift, &mut out[..n * rows]);
    }
}

// The requantizing loops, per output row of `rows` values from `acc` rows of `stride`.
// The shift is the same for a whole call: rshift_sum's case is picked once per loop.

multiversion! {
    fn requantize_q8(acc: &[i32], stride: usize, rows: usize, shift: i32, out: &mut [i8]) {
        for (o, a) in out.chunks_exact_mut(rows).zip(acc.chunks_exact(stride)) {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = clamp8(i64::from(rshift_sum(a, shift)));
            }
        }
    }
}

multiversion! {
    fn add_requantized(acc: &[i32], stride: usize, rows: usize, shift: i32, h: &mut [i32]) {
        for (h, a) in h.chunks_exact_mut(rows).zip(acc.chunks_exact(stride)) {
            for (h, &a) in h.iter_mut().zip(a) {
                *h = clamp16(i64::from(*h) + i64::from(rshift_sum(a, shift)));
            }
        }
    }
}

multiversion! {
    fn requantize_logits(acc: &[i32], stride: usize, rows: usize, shift: i32, out: &mut [i32]) {
        for (o, a) in out.chunks_exact_mut(rows).zip(acc.chunks_exact(stride)) {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = rshift_sum(a, shift);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantization() {
        // Rows: (1, 2) and (-3, 4); input (10, 20) at exponent 0.
        // Rows (1, 2) and (-3, 4) at exponent 3; input (10, 21): sums 52 and 54.
        let lin = Linear::new(&[1, 2, -3, 4], 2, 2, 3);
        let mut s = LinearScratch::default();
        let mut logits = [0i32; 2];
        lin.to_logits(&[10, 21], 1, 0, 3, &mut logits, &mut s);
        assert_eq!(logits, [52, 54]);
        lin.to_logits(&[10, 21], 1, 0, 1, &mut logits, &mut s);
        assert_eq!(logits, [13, 14]);
        let mut q = [0i8; 2];
        lin.to_q8(&[-10, -21], 1, E_A + 2, &mut q, &mut s);
        assert_eq!(q, [-2, -2]);
        lin.to_q8(&[-10, -21], 1, E_A - 4, &mut q, &mut s);
        assert_eq!(q, [-104, -108]);
        lin.to_q8(&[10, 21], 1, E_A - 5, &mut q, &mut s);
        assert_eq!(q, [127, 127]);
        let mut h = [32767, -5];
        lin.add_to_residual(&[10, 21], 1, E_H - 3, &mut h, &mut s);
        assert_eq!(h, [32767, 49]);
    }

    #[test]
    fn weights_read_back_from_the_packed_layout() {
        // Shapes that leave partial groups and steps.
        for (rows, cols) in [(1, 1), (5, 7), (17, 70), (33, 4)] {
            let w: Vec<i8> = (0..rows * cols).map(|i| ((i * 37 % 255) as i32 - 127) as i8).collect();
            let lin = Linear::new(&w, rows, cols, 0);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(lin.weight(r, c), w[r * cols + c], "({r}, {c}) of {rows}x{cols}");
                }
            }
        }
    }

    #[test]
    fn every_kernel_set_gives_the_same_outputs() {
        use crate::t5::intnet::{Kernels, with_kernels};
        let mut next = crate::t5::fixtures::xorshift(3);
        let mut byte = move || ((next() % 255) as i32 - 127) as i8;
        // The shipped models' shapes (d 128, d_ff 512 and 384, vocab 2048) and ragged ones.
        let shapes =
            [(128, 128, 7), (512, 128, 7), (128, 512, 8), (384, 128, 7), (128, 384, 8), (2048, 128, 6), (37, 70, 5)];
        for (rows, cols, exp) in shapes {
            let w: Vec<i8> = (0..rows * cols).map(|_| byte()).collect();
            let lin = Linear::new(&w, rows, cols, exp);
            // Batches across the kernels' tiles of inputs, with ragged ends.
            for n in [1, 2, 3, 5, 16, 37] {
                let x: Vec<i8> = (0..n * cols).map(|_| byte()).collect();
                let h0: Vec<i32> = (0..n * rows).map(|_| i32::from(byte()) * 200).collect();
                let run = |k: Kernels| {
                    with_kernels(k, || {
                        let mut s = LinearScratch::default();
                        let mut q = vec![0i8; n * rows];
                        lin.to_q8(&x, n, E_A, &mut q, &mut s);
                        let mut h = h0.clone();
                        lin.add_to_residual(&x, n, 5, &mut h, &mut s);
                        let mut logits = vec![0i32; n * rows];
                        lin.to_logits(&x, n, 5, 3, &mut logits, &mut s);
                        (q, h, logits)
                    })
                };
                let portable = run(Kernels::Portable);
                for k in Kernels::available() {
                    assert_eq!(run(k), portable, "{k} kernels, {rows}x{cols} times {n} inputs");
                }
            }
        }
    }
}
