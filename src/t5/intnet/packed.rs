//! Int8 matrices in the layout of AVX-512 VNNI's `vpdpbusd`, and the product of such a
//! matrix with unsigned byte vectors: `acc[i][r] = start[r] + Σ_c x[i][c] · W[r][c]`.
//!
//! Layout: rows in groups of 16 (one register of i32 sums), columns in steps of 4 (the
//! products `vpdpbusd` adds into one lane): `[group][step][row in group][col in step]`,
//! padded with zeros. Both the linear layers and the attention caches use it; the portable
//! product below is the definition, and the AVX-512 VNNI (`vnni`) and AVX2 (`avx2`) ones
//! give the same integers.
//!
//! Weights are q8, in [-127, 127] (never -128: `pack` checks, and the caches hold clamped
//! values); the AVX2 kernel's exactness rests on it.

use super::kernels::{Kernels, kernels};

pub const GROUP: usize = 16;
pub const STEP: usize = 4;

/// A view of a packed matrix for the product kernels.
#[derive(Debug, Clone, Copy)]
pub struct PackedRef<'a> {
    pub w: &'a [i8],
    /// Each row's initial sum (`groups · 16` of them); `None` for zeros.
    pub start: Option<&'a [i32]>,
    /// `start[r] + 128 · Σ_c W[r][c]` per row, for kernels that multiply `x − 128` (AVX2).
    pub centered: Centered<'a>,
    pub groups: usize,
    pub steps: usize,
}

/// The rows' initial sums for inputs taken as `x − 128`: `start[r] + 128 · Σ_c W[r][c]`.
#[derive(Debug, Clone, Copy)]
pub enum Centered<'a> {
    /// All zero: each row starts at `-128 · Σ_c W[r][c]` (linear layers, keys).
    Zero,
    /// Kept with the matrix (`groups · 16` of them).
    Sums(&'a [i32]),
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
/// Panics on a weight of -128 (outside q8).
pub fn pack(w: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    assert!(!w.contains(&i8::MIN), "a q8 weight of -128");
    let steps = cols.div_ceil(STEP);
    let mut packed = vec![0i8; rows.div_ceil(GROUP) * steps * GROUP * STEP];
    for r in 0..rows {
        for c in 0..cols {
            packed[index(r, c, steps)] = w[r * cols + c];
        }
    }
    packed
}

/// `acc[i · height + r] = start[r] + Σ_c x[i · width + c] · W[r][c]` for `n` inputs, on
/// the kernels this thread runs (`kernels::kernels`).
pub fn matmul(m: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    matmul_on(kernels(), m, x, n, acc);
}

/// `matmul` on the kernel set `k`, which the CPU must have (panics otherwise).
pub fn matmul_on(k: Kernels, m: PackedRef<'_>, x: &[u8], n: usize, acc: &mut [i32]) {
    assert!(x.len() >= n * m.width() && acc.len() >= n * m.height());
    assert!(m.w.len() >= m.groups * m.steps * GROUP * STEP);
    assert!(m.start.is_none_or(|s| s.len() >= m.height()));
    assert!(!matches!(m.centered, Centered::Sums(s) if s.len() < m.height()));
    // `kernels()` only ever returns a set the CPU has; an explicit one is checked here,
    // and the SIMD kernels rely on this check.
    assert!(k.supported(), "this CPU lacks {}, which the {k} kernels need", k.needs());
    #[cfg(target_arch = "x86_64")]
    match k {
        Kernels::Avx512 => return super::vnni::matmul(m, x, n, acc),
        Kernels::Avx2 => return super::avx2::matmul(m, x, n, acc),
        Kernels::Portable => {}
    }
    matmul_portable(m, x, n, acc);
}

/// A SIMD product's register block (`vnni`, `avx2`): inputs `i..i+M` times row groups
/// `g..g+N`, written to the product's sums.
pub(super) trait RegisterBlocks {
    /// # Safety
    /// The CPU has the kernel's features, and `matmul_on` has checked the lengths.
    unsafe fn block<const M: usize, const N: usize>(&mut self, i: usize, g: usize);
}

/// Inputs per tile of a SIMD product: each tile reads the matrix from L2 once.
const TILE: usize = 16;

/// The order in which the SIMD products visit a matrix of `groups` row groups for `n`
/// inputs. One input: SINGLE groups at a time (independent sums hide the multiply's
/// latency). Several: tiles of `TILE` inputs, and within a tile row group by row group,
/// MULTI groups at a time, TOKENS inputs at a time (then 2, then 1), so that a group's
/// weights stay in L1 while the tile's inputs pass them, and the tile's rows of sums are
/// few enough not to evict each other from L1 (rows 8 KiB apart share cache sets).
///
/// # Safety
/// As `RegisterBlocks::block`.
#[inline(always)]
pub(super) unsafe fn visit<B: RegisterBlocks, const SINGLE: usize, const MULTI: usize, const TOKENS: usize>(
    blocks: &mut B,
    groups: usize,
    n: usize,
) {
    if n == 1 {
        let mut g = 0;
        while g + SINGLE <= groups {
            unsafe { blocks.block::<1, SINGLE>(0, g) };
            g += SINGLE;
        }
        while g < groups {
            unsafe { blocks.block::<1, 1>(0, g) };
            g += 1;
        }
        return;
    }
    let mut first = 0;
    while first < n {
        let end = first + (n - first).min(TILE);
        let mut g = 0;
        while g + MULTI <= groups {
            unsafe { column::<B, MULTI, TOKENS>(blocks, first, end, g) };
            g += MULTI;
        }
        while g < groups {
            unsafe { column::<B, 1, TOKENS>(blocks, first, end, g) };
            g += 1;
        }
        first = end;
    }
}

/// Inputs `first..end` times row groups `g..g+N`, TOKENS inputs at a time, then 2, then 1.
#[inline(always)]
unsafe fn column<B: RegisterBlocks, const N: usize, const TOKENS: usize>(
    blocks: &mut B,
    first: usize,
    end: usize,
    g: usize,
) {
    let mut i = first;
    while i + TOKENS <= end {
        unsafe { blocks.block::<TOKENS, N>(i, g) };
        i += TOKENS;
    }
    while i + 2 <= end {
        unsafe { blocks.block::<2, N>(i, g) };
        i += 2;
    }
    while i < end {
        unsafe { blocks.block::<1, N>(i, g) };
        i += 1;
    }
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
                    *sum += w.iter().zip(xs).map(|(&w, &x)| i32::from(w) * i32::from(x)).sum::<i32>();
                }
            }
            acc[i * height + g * GROUP..i * height + (g + 1) * GROUP].copy_from_slice(&sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How a test matrix's rows start.
    #[derive(Debug, Clone, Copy)]
    enum Start {
        Zero,
        Random,
        /// `-128 · Σ w`, as the linear layers and keys start.
        Offset,
    }

    /// Every kernel set this CPU has against the definition, on one product, with the
    /// centered sums given, and (for `Start::Offset`) as zero.
    fn check(
        w: &[i8],
        rows: usize,
        cols: usize,
        how: Start,
        seed: u64,
        x: &[u8],
        n: usize,
    ) -> Result<(), TestCaseError> {
        let packed = pack(w, rows, cols);
        let groups = rows.div_ceil(GROUP);
        let mut next = crate::t5::fixtures::xorshift(seed);
        let mut start = vec![0i32; groups * GROUP];
        for (r, s) in start.iter_mut().enumerate() {
            *s = match how {
                Start::Zero => 0,
                Start::Random => (next() as i32) >> 8,
                Start::Offset if r < rows => {
                    -128 * w[r * cols..(r + 1) * cols].iter().map(|&v| i32::from(v)).sum::<i32>()
                }
                Start::Offset => 0,
            };
        }
        let centered: Vec<i32> = (0..groups * GROUP)
            .map(|r| {
                start[r]
                    + if r < rows {
                        128 * w[r * cols..(r + 1) * cols].iter().map(|&v| i32::from(v)).sum::<i32>()
                    } else {
                        0
                    }
            })
            .collect();
        let start = (!matches!(how, Start::Zero)).then_some(&start[..]);
        let m =
            PackedRef { w: &packed, start, centered: Centered::Sums(&centered), groups, steps: cols.div_ceil(STEP) };
        assert_eq!(x.len(), n * m.width());
        let mut portable = vec![0i32; n * m.height()];
        matmul_on(Kernels::Portable, m, x, n, &mut portable);
        for i in 0..n {
            let xi = &x[i * m.width()..];
            for r in 0..rows {
                // The definition, on the row-major matrix.
                let sum = (0..cols).map(|c| i32::from(w[r * cols + c]) * i32::from(xi[c])).sum::<i32>();
                prop_assert_eq!(portable[i * m.height() + r], sum + start.map_or(0, |s| s[r]));
            }
        }
        let mut variants = vec![Centered::Sums(&centered)];
        if matches!(how, Start::Offset) {
            variants.push(Centered::Zero);
        }
        for k in Kernels::available() {
            for &c in &variants {
                // Garbage in the output: every sum is written, padding rows included.
                let mut acc = vec![0x5a5a_5a5a; n * m.height()];
                matmul_on(k, PackedRef { centered: c, ..m }, x, n, &mut acc);
                prop_assert_eq!(&acc, &portable, "{} kernels, {}x{} times {} inputs, {:?}", k, rows, cols, n, c);
            }
        }
        Ok(())
    }

    fn any_start() -> impl Strategy<Value = Start> {
        prop_oneof![Just(Start::Zero), Just(Start::Random), Just(Start::Offset)]
    }

    proptest! {
        #[test]
        fn kernels_agree_with_the_definition(
            rows in 1usize..70,
            cols in 1usize..140,
            n in 1usize..8,
            how in any_start(),
            seed in any::<u64>(),
        ) {
            let mut next = crate::t5::fixtures::xorshift(seed);
            let w: Vec<i8> = (0..rows * cols).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let width = cols.div_ceil(STEP) * STEP;
            let x: Vec<u8> = (0..n * width).map(|_| next() as u8).collect();
            check(&w, rows, cols, how, seed, &x, n)?;
        }

        /// Extreme values, where a kernel that adds byte products in 16 bits (AVX2's
        /// `vpmaddubsw` on the inputs as they are) would saturate: inputs near 255 (and
        /// 0, which is -128 once centered), weights ±127.
        #[test]
        fn kernels_are_exact_at_the_extremes(
            rows in 1usize..40,
            cols in 1usize..600,
            n in 1usize..6,
            how in any_start(),
            seed in any::<u64>(),
        ) {
            let mut next = crate::t5::fixtures::xorshift(seed);
            let w: Vec<i8> = (0..rows * cols).map(|_| [127, -127, 126, -1, 0][(next() % 5) as usize]).collect();
            let width = cols.div_ceil(STEP) * STEP;
            let x: Vec<u8> = (0..n * width).map(|_| [255, 254, 128, 127, 1, 0][(next() % 6) as usize]).collect();
            check(&w, rows, cols, how, seed, &x, n)?;
        }
    }

    #[test]
    fn whole_rows_at_the_extremes() {
        // Every product 255 · ±127 or 0 · ±127, so every pair of them saturates an i16
        // unless centered, and centered, every |v| is 127 or 128.
        let (rows, cols, n) = (48, 512, 3);
        for (wv, xv) in [(127i8, 255u8), (-127, 255), (127, 0), (-127, 0), (127, 128)] {
            let w = vec![wv; rows * cols];
            let x = vec![xv; n * cols];
            for how in [Start::Zero, Start::Random, Start::Offset] {
                check(&w, rows, cols, how, 7, &x, n).unwrap();
            }
        }
    }

    #[test]
    #[should_panic(expected = "a q8 weight of -128")]
    fn minus_128_is_not_a_weight() {
        pack(&[1, -128], 1, 2);
    }
}

/// Throughput of each kernel set on the shipped model's shapes (not a test):
/// `cargo test --release --lib matmul_speed -- --ignored --nocapture`.
#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn matmul_speed() {
        let mut next = crate::t5::fixtures::xorshift(1);
        // Output projection, attention and FFN projections, an attention cache.
        for (rows, cols) in [(2048usize, 128usize), (128, 128), (384, 128), (128, 384), (256, 32), (32, 256)] {
            let w: Vec<i8> = (0..rows * cols).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let packed = pack(&w, rows, cols);
            let start = vec![0i32; rows.div_ceil(GROUP) * GROUP];
            let m = PackedRef {
                w: &packed,
                start: Some(&start),
                centered: Centered::Sums(&start), // not the true sums: only the time counts
                groups: rows.div_ceil(GROUP),
                steps: cols.div_ceil(STEP),
            };
            for n in [1usize, 2, 16] {
                let x: Vec<u8> = (0..n * m.width()).map(|_| next() as u8).collect();
                let mut acc = vec![0i32; n * m.height()];
                for k in Kernels::available() {
                    let reps = 20_000_000 / (rows * cols * n);
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        matmul_on(k, m, std::hint::black_box(&x), n, &mut acc);
                    }
                    let ns = t.elapsed().as_nanos() as f64 / reps as f64;
                    eprintln!(
                        "{rows}x{cols}, {n} inputs, {k}: {ns:.0} ns, {:.1} products/ns",
                        (rows * cols * n) as f64 / ns
                    );
                }
            }
        }
    }
}
