//! The integer conventions of CODER.md: rounding shifts and divisions, the exact square
//! root and the exp table behind every softmax.

/// `round(2^15 · exp(-i / 8))` for `i` in `0..128`, computed once in exact decimal
/// arithmetic (no entry lies near a rounding boundary). A table, not `f64::exp`, because
/// libm implementations may differ in the last bit.
pub const EXP: [u32; EXP_LEVELS] = [
    32768, 28918, 25520, 22521, 19875, 17539, 15479, 13660, 12055, 10638, 9388, 8285, 7312, 6452, 5694, 5025, 4435,
    3914, 3454, 3048, 2690, 2374, 2095, 1849, 1631, 1440, 1271, 1121, 990, 873, 771, 680, 600, 530, 467, 412, 364, 321,
    283, 250, 221, 195, 172, 152, 134, 118, 104, 92, 81, 72, 63, 56, 49, 43, 38, 34, 30, 26, 23, 21, 18, 16, 14, 12,
    11, 10, 9, 8, 7, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// Entries of `EXP`; a gap of `EXP_LEVELS - 1` or more eighths of a nat weighs zero.
pub const EXP_LEVELS: usize = 128;

/// `round(x / 2^s)`, halves rounded up, for `s > 0`; `x · 2^-s` for `s ≤ 0`.
#[inline]
pub fn rshift(x: i64, s: i32) -> i64 {
    if s > 0 { (x + (1i64 << (s - 1))) >> s } else { x << -s }
}

/// `round(a / b)` for `b > 0`, halves rounded up (floor division of `2a + b` by `2b`).
#[inline]
pub fn div_round(a: i64, b: i64) -> i64 {
    debug_assert!(b > 0);
    (2 * a + b).div_euclid(2 * b)
}

/// `floor(sqrt(n))`, exact for every u64.
pub fn isqrt(n: u64) -> u64 {
    n.isqrt()
}

/// `floor(n / d)` by one multiplication, for a divisor used many times: exact when
/// `2 ≤ d` and `(|n| + d) · d ≤ 2^64`. With `m = ceil(2^64 / d) = (2^64 + e) / d`,
/// `0 ≤ e < d`, the product `k·m / 2^64` (k ≥ 0) exceeds `k / d` by `k·e / (d·2^64)`, less
/// than `1/d` when `k·e < 2^64`: too little to reach the next integer.
#[derive(Debug, Clone, Copy)]
pub struct FloorDiv {
    d: u64,
    m: u64,
}

impl FloorDiv {
    pub fn new(d: u64) -> FloorDiv {
        debug_assert!(d >= 2);
        FloorDiv { d, m: u64::MAX / d.max(2) + 1 }
    }

    #[inline]
    pub fn floor(&self, n: i64) -> i64 {
        debug_assert!(u128::from(n.unsigned_abs() + self.d) * u128::from(self.d) <= 1 << 64);
        // Negative: floor(n/d) = -floor((|n| + d - 1) / d); branch-free, since signs of
        // activations are unpredictable.
        let negative = (n >> 63) as u64;
        let magnitude = n.unsigned_abs() + ((self.d - 1) & negative);
        let q = ((u128::from(magnitude) * u128::from(self.m)) >> 64) as u64;
        (q ^ negative).wrapping_sub(negative) as i64
    }
}

/// `floor(n / d)` for `|n| < 2^22` and `2 ≤ d < 2^16`, by one 64-bit multiplication
/// (which vector units have, unlike `FloorDiv`'s 128-bit one): `FloorDiv`'s argument with
/// 2^40 in place of 2^64, since then `k·e < (2^22 + 2^16) · 2^16 < 2^40`.
#[derive(Debug, Clone, Copy)]
pub struct SmallFloorDiv {
    d: u64,
    m: u64,
}

impl SmallFloorDiv {
    const SHIFT: u32 = 40;

    pub fn new(d: u64) -> SmallFloorDiv {
        debug_assert!((2..1 << 16).contains(&d));
        let d = d.clamp(2, (1 << 16) - 1);
        SmallFloorDiv { d, m: ((1 << Self::SHIFT) - 1) / d + 1 }
    }

    #[inline(always)]
    pub fn floor(&self, n: i64) -> i64 {
        debug_assert!(n.unsigned_abs() < 1 << 22);
        let negative = (n >> 63) as u64;
        let magnitude = n.unsigned_abs() + ((self.d - 1) & negative);
        let q = (magnitude * self.m) >> Self::SHIFT;
        (q ^ negative).wrapping_sub(negative) as i64
    }
}

/// `rshift(x, s)` for a sum of int8 products (`|x| < 2^24`), in i32: exact for every
/// `s`, since such an `x` shifted right by 25 or more rounds to 0.
#[inline]
pub fn rshift_sum(x: i32, s: i32) -> i32 {
    debug_assert!(x.abs() < 1 << 24);
    match s {
        31.. => 0,
        1..=30 => (x + (1 << (s - 1))) >> s,
        _ => rshift(i64::from(x), s).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
    }
}

#[inline]
pub fn clamp8(x: i64) -> i8 {
    x.clamp(-127, 127) as i8
}

#[inline]
pub fn clamp16(x: i64) -> i32 {
    x.clamp(-32767, 32767) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exp_table_matches_its_definition() {
        for (i, &e) in EXP.iter().enumerate() {
            let exact = 32768.0 * (-(i as f64) / 8.0).exp();
            assert!((exact - f64::from(e)).abs() < 0.5, "EXP[{i}] = {e}, exp gives {exact}");
            // Far from a tie, so no libm could round it the other way.
            assert!((exact.fract() - 0.5).abs() > 1e-6, "EXP[{i}] is near a tie");
        }
    }

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(rshift(5, 1), 3);
        assert_eq!(rshift(-5, 1), -2);
        assert_eq!(rshift(-6, 2), -1);
        assert_eq!(rshift(-7, 2), -2);
        assert_eq!(rshift(3, 0), 3);
        assert_eq!(rshift(3, -2), 12);
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -2);
        assert_eq!(div_round(-7, 3), -2);
        assert_eq!(div_round(7, 3), 2);
        assert_eq!(clamp8(-1000), -127);
        assert_eq!(clamp16(1 << 40), 32767);
    }

    proptest! {
        #[test]
        fn isqrt_is_exact(n in any::<u64>()) {
            let r = isqrt(n);
            prop_assert!(u128::from(r) * u128::from(r) <= u128::from(n));
            prop_assert!(u128::from(r + 1) * u128::from(r + 1) > u128::from(n));
        }

        #[test]
        fn div_round_is_nearest(a in -(1i64 << 40)..(1i64 << 40), b in 1i64..(1 << 20)) {
            let q = div_round(a, b);
            // q·b is within b/2 of a, ties going up.
            prop_assert!(2 * (a - q * b) < b && 2 * (a - q * b) >= -b);
        }

        #[test]
        fn floor_div_is_exact(n in -(1i64 << 34)..(1i64 << 34), d in 2u64..(1 << 26)) {
            prop_assert_eq!(FloorDiv::new(d).floor(n), n.div_euclid(d as i64));
        }

        #[test]
        fn small_floor_div_is_exact(n in -(1i64 << 22) + 1..(1i64 << 22), d in 2u64..(1 << 16)) {
            prop_assert_eq!(SmallFloorDiv::new(d).floor(n), n.div_euclid(d as i64));
        }

        #[test]
        fn small_floor_div_at_multiples(k in -64i64..64, d in 2u64..(1 << 16), off in -1i64..=1) {
            let n = (k * d as i64 + off).clamp(-(1 << 22) + 1, (1 << 22) - 1);
            prop_assert_eq!(SmallFloorDiv::new(d).floor(n), n.div_euclid(d as i64));
        }

        #[test]
        fn floor_div_at_multiples(k in -300i64..300, d in 2u64..(1 << 26), off in -1i64..=1) {
            let n = k * d as i64 + off;
            prop_assert_eq!(FloorDiv::new(d).floor(n), n.div_euclid(d as i64));
        }

        #[test]
        fn rshift_sum_is_rshift(x in -(1i32 << 24) + 1..(1i32 << 24), s in -6i32..40) {
            prop_assert_eq!(i64::from(rshift_sum(x, s)), rshift(i64::from(x), s));
        }

        #[test]
        fn rshift_is_nearest(x in -(1i64 << 40)..(1i64 << 40), s in 1i32..30) {
            let q = rshift(x, s);
            let d = x - (q << s);
            prop_assert!(2 * d < (1i64 << s) && 2 * d >= -(1i64 << s));
        }
    }
}
