//! RMSNorm from the i32 residual to q8 activations, in integers (CODER.md, "Operations").

use super::arith::{SmallFloorDiv, clamp8_f32, isqrt};
use super::{E_GAIN, E_X};
use crate::t5::multiversion::multiversion;

/// Normalizes each row of `h` (rows of `gain.len()` values at exponent `E_H`) into `out`
/// at exponent `E_X`: `r = max(1, isqrt(Σ h² / d))`, `x = round(h · g · 2^E_X / (r · 2^6))`.
pub fn rmsnorm(h: &[i32], gain: &[i8], out: &mut [i8]) {
    let d = gain.len();
    for (row, x) in h.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        normalize_row(row, gain, x);
    }
}

multiversion! {
    fn normalize_row(row: &[i32], gain: &[i8], x: &mut [i8]) {
        let squares: u64 = row
            .iter()
            .map(|&v| (i64::from(v) * i64::from(v)) as u64)
            .sum();
        let r = isqrt(squares / gain.len() as u64).max(1) as i64;
        // div_round(h·g·2^E_X, r·2^E_GAIN) = floor((2·h·g·2^E_X + r·2^E_GAIN) /
        // (r·2^(E_GAIN+1))); with E_GAIN = E_X + 1 both sides share 2^(E_X+1), leaving
        // floor((h·g + r) / 2r): |h·g + r| < 2^22 and 2r < 2^16 (|h| ≤ 2^15), inside
        // SmallFloorDiv's range.
        const { assert!(E_GAIN == E_X + 1) };
        let divisor = SmallFloorDiv::new(2 * r as u64);
        let r = r as f32;
        for ((x, &v), &g) in x.iter_mut().zip(row).zip(gain) {
            *x = clamp8_f32(divisor.floor((v * i32::from(g)) as f32 + r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::arith::clamp8;
    use super::*;

    /// CODER.md's formula, literally.
    fn reference(h: &[i32], gain: &[i8]) -> Vec<i8> {
        let d = h.len() as i64;
        let squares: i64 = h.iter().map(|&v| i64::from(v) * i64::from(v)).sum();
        let r = (isqrt((squares / d) as u64) as i64).max(1);
        h.iter()
            .zip(gain)
            .map(|(&v, &g)| {
                clamp8(super::super::div_round(i64::from(v) * i64::from(g) * (1 << E_X), r * (1 << E_GAIN)))
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn matches_the_formula(
            h in proptest::collection::vec(-32767i32..=32767, 1..40),
            g in proptest::collection::vec(-127i8..=127, 40),
            scale in 0u32..15,
        ) {
            let h: Vec<i32> = h.iter().map(|&v| v >> scale).collect();
            let gain = &g[..h.len()];
            let mut x = vec![0i8; h.len()];
            rmsnorm(&h, gain, &mut x);
            proptest::prop_assert_eq!(x, reference(&h, gain));
        }
    }

    #[test]
    fn unit_gain_scales_to_unit_rms() {
        // A row of equal values has rms equal to them: each normalizes to 1.0 = 2^E_X.
        let h = [700i32; 8];
        let mut x = [0i8; 8];
        rmsnorm(&h, &[64; 8], &mut x);
        assert_eq!(x, [32; 8]);
        // Zero input stays zero (r is at least 1), and large ratios saturate.
        let mut z = [5i8; 4];
        rmsnorm(&[0; 4], &[64; 4], &mut z);
        assert_eq!(z, [0; 4]);
        let mut s = [0i8; 4];
        rmsnorm(&[32767, 0, 0, 0], &[127; 4], &mut s);
        assert_eq!(s, [127, 0, 0, 0]);
        rmsnorm(&[-32767, 1, 0, 0], &[64; 4], &mut s);
        assert_eq!(s[0], -64);
    }
}
