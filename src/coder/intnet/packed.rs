//! Int8 matrices in the layout of AVX-512 VNNI's `vpdpbusd`, and the product of such a
//! matrix with unsigned byte vectors: `acc[i][r] = start[r] + Σ_c x[i][c] · W[r][c]`.
//!
//! Layout: rows in groups of 16 (one register of i32 sums), columns in steps of 4 (the
//! products `vpdpbusd` adds into one lane): `[group][step][row in group][col in step]`,
//! padded with zeros. Both the linear layers and the attention caches use it; the portable
//! product below is the definition and the VNNI one gives the same integers.

pub const GROUP: usize = 16;
pub const STEP: usize = 4;

/// A view of a packed matrix for the product kernels.
#[derive(Debug, Clone, Copy)]
pub struct PackedRef<'a> {
    pub w: &'a [i8],
    /// Each row's initial sum (`groups · 16` of them); `None` for zeros.
    pub start: Option<&'a [i32]>,
    pub groups: usize,
    pub steps: usize,
}

impl PackedRef<'_> {
    /// Values per product row: columns padded to the step.
    pub fn width(&self) -> usize {
        self.steps * STEP
    }

    /// Sums per product row: rows padded to the group.
    pub fn height(&self) -> usize {
        self.groups * GROUP
    }
}

/// Index of `(row, col)` in a packed matrix of `steps` steps.
#[inline]
pub fn index(row: usize, col: usize, steps: usize) -> usize {
    (((row / GROUP) * steps + col / STEP) * GROUP + row % GROUP) * STEP + col % STEP
}

/// Packs a row-major `[rows][cols]` matrix.
pub fn pack(w: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    let steps = cols.div_ceil(STEP);
    let mut packed = vec![0i8; rows.div_ceil(GROUP) * steps * GROUP * STEP];
    for r in 0..rows {
        for c in 0..cols {
            packed[index(r, c, steps)] = w[r * cols + c];
        }
    }
    packed
}

/// `acc[i · height + r] = start[r] + Σ_c x[i · width + c] · W[r][c]` for `n` inputs.
pub fn matmul(m: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32], vnni: bool) {
    assert!(x.len() >= n * m.width() && acc.len() >= n * m.height());
    assert!(m.w.len() >= m.groups * m.steps * GROUP * STEP);
    assert!(m.start.is_none_or(|s| s.len() >= m.height()));
    #[cfg(target_arch = "x86_64")]
    if vnni && vnni_available() {
        return super::vnni::matmul(m, x, n, acc);
    }
    let _ = vnni;
    matmul_portable(m, x, n, acc);
}

fn matmul_portable(m: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    let (width, height) = (m.width(), m.height());
    for i in 0..n {
        let xi = &x[i * width..(i + 1) * width];
        for g in 0..m.groups {
            let mut sums = [0i32; GROUP];
            if let Some(start) = m.start {
                sums.copy_from_slice(&start[g * GROUP..(g + 1) * GROUP]);
            }
            let block = &m.w[g * m.steps * GROUP * STEP..(g + 1) * m.steps * GROUP * STEP];
            for (s, w) in block.chunks_exact(GROUP * STEP).enumerate() {
                let xs = &xi[s * STEP..(s + 1) * STEP];
                for (sum, w) in sums.iter_mut().zip(w.chunks_exact(STEP)) {
                    *sum += w
                        .iter()
                        .zip(xs)
                        .map(|(&w, &x)| i32::from(w) * i32::from(x))
                        .sum::<i32>();
                }
            }
            acc[i * height + g * GROUP..i * height + (g + 1) * GROUP].copy_from_slice(&sums);
        }
    }
}

/// Whether this CPU runs the VNNI kernels (AVX-512 F, BW, VL, DQ and VNNI). Setting
/// `S2SFS_PORTABLE_KERNELS` forces the portable ones, to measure or test them.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("S2SFS_PORTABLE_KERNELS").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq")
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

    proptest! {
        #[test]
        fn kernels_agree_with_the_definition(
            rows in 1usize..70,
            cols in 1usize..140,
            n in 1usize..7,
            with_start in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut next = crate::coder::fixtures::xorshift(seed);
            let w: Vec<i8> = (0..rows * cols).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let packed = pack(&w, rows, cols);
            let groups = rows.div_ceil(GROUP);
            let start: Vec<i32> = (0..groups * GROUP).map(|_| (next() % 1000) as i32 - 500).collect();
            let m = PackedRef { w: &packed, start: with_start.then_some(&start[..]), groups, steps: cols.div_ceil(STEP) };
            let x: Vec<u8> = (0..n * m.width()).map(|_| next() as u8).collect();
            for vnni in [false, true] {
                let mut acc = vec![0i32; n * m.height()];
                matmul(m, &x, n, &mut acc, vnni);
                for i in 0..n {
                    for r in 0..rows {
                        let expect = (0..cols).map(|c| i32::from(w[r * cols + c]) * i32::from(x[i * m.width() + c])).sum::<i32>()
                            + if with_start { start[r] } else { 0 };
                        prop_assert_eq!(acc[i * m.height() + r], expect, "vnni {}", vnni);
                    }
                }
            }
        }
    }
}
