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

/// `floor(sqrt(n))`, exact for every u64: the f64 square root (a few cycles, where the
/// integer one loops) is within one of it, then corrected.
#[inline]
pub fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r.checked_mul(r).is_none_or(|square| square > n) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|square| square <= n) {
        r += 1;
    }
    r
}

/// `floor(n / d)` for integers `|n| < 2^34` and `2 ≤ d < 2^26`, a divisor used many
/// times, in f64 (vector units multiply f64, not 128-bit integers). Exact: `n`, `d` and
/// every product below are integers under 2^53. `q = floor(RN(n · RN(1/d)))` is within
/// `2^-32` of `n/d` (`|n/d| < 2^34`, relative errors of 2^-53 twice), while a non-integer
/// `n/d` lies at least `1/d > 2^-26` from an integer: `q` is off by one at most, when
/// `n/d` is an integer, and the exact remainder `n - q·d` says which way.
#[derive(Debug, Clone, Copy)]
pub struct FloorDiv {
    d: f64,
    inv: f64,
}

impl FloorDiv {
    pub fn new(d: u64) -> FloorDiv {
        debug_assert!((2..1 << 26).contains(&d));
        let d = d.clamp(2, (1 << 26) - 1) as f64;
        FloorDiv { d, inv: 1.0 / d }
    }

    /// `floor(n / d)` for an integer-valued `n`, as an integer-valued f64.
    #[inline(always)]
    pub fn floor(&self, n: f64) -> f64 {
        debug_assert!(n.abs() < (1u64 << 34) as f64 && n.fract() == 0.0);
        let q = (n * self.inv).floor();
        let r = n - q * self.d;
        q + f64::from(u8::from(r >= self.d)) - f64::from(u8::from(r < 0.0))
    }
}

/// `floor(n / d)` for integers `|n| < 2^22` and `2 ≤ d < 2^16`, a divisor used many
/// times, in f32 (sixteen lanes a vector). Exact: `n`, `d` and `q·d` (within `d` of `n`)
/// are integers below 2^24, which f32 holds. `q = floor(RN(n · RN(1/d)))` is within a
/// quarter of `n/d` (`|n/d| < 2^21`, relative errors of 2^-24 twice), so off by one at
/// most, and the exact remainder `n - q·d` says which way.
#[derive(Debug, Clone, Copy)]
pub struct SmallFloorDiv {
    d: f32,
    inv: f32,
}

impl SmallFloorDiv {
    pub fn new(d: u64) -> SmallFloorDiv {
        debug_assert!((2..1 << 16).contains(&d));
        let d = d.clamp(2, (1 << 16) - 1) as f32;
        SmallFloorDiv { d, inv: 1.0 / d }
    }

    /// `floor(n / d)` for an integer-valued `n`, as an integer-valued f32.
    #[inline(always)]
    pub fn floor(&self, n: f32) -> f32 {
        debug_assert!(n.abs() < (1 << 22) as f32 && n.fract() == 0.0);
        let q = (n * self.inv).floor();
        let r = n - q * self.d;
        q + f32::from(u8::from(r >= self.d)) - f32::from(u8::from(r < 0.0))
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

/// `clamp8` of an integer-valued, finite f64 (a floor division's quotient), in a form
/// that vectorizes, which the saturating `as` does not.
#[inline(always)]
pub fn clamp8_f64(x: f64) -> i8 {
    debug_assert!(x.is_finite());
    // SAFETY: finite and clamped to [-127, 127], so inside i32.
    unsafe { x.clamp(-127.0, 127.0).to_int_unchecked::<i32>() as i8 }
}

/// `clamp8_f64` for f32.
#[inline(always)]
pub fn clamp8_f32(x: f32) -> i8 {
    debug_assert!(x.is_finite());
    // SAFETY: finite and clamped to [-127, 127], so inside i32.
    unsafe { x.clamp(-127.0, 127.0).to_int_unchecked::<i32>() as i8 }
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
        fn isqrt_at_squares(k in 0u64..1 << 32, off in -1i64..=1) {
            let n = (k * k).saturating_add_signed(off);
            prop_assert_eq!(isqrt(n), n.isqrt());
            prop_assert_eq!(isqrt(u64::MAX - k), (u64::MAX - k).isqrt());
        }

        #[test]
        fn div_round_is_nearest(a in -(1i64 << 40)..(1i64 << 40), b in 1i64..(1 << 20)) {
            let q = div_round(a, b);
            // q·b is within b/2 of a, ties going up.
            prop_assert!(2 * (a - q * b) < b && 2 * (a - q * b) >= -b);
        }

        #[test]
        fn floor_div_is_exact(n in -(1i64 << 34) + 1..(1i64 << 34), d in 2u64..(1 << 26)) {
            prop_assert_eq!(FloorDiv::new(d).floor(n as f64) as i64, n.div_euclid(d as i64));
        }

        #[test]
        fn small_floor_div_is_exact(n in -(1i64 << 22) + 1..(1i64 << 22), d in 2u64..(1 << 16)) {
            prop_assert_eq!(SmallFloorDiv::new(d).floor(n as f32) as i64, n.div_euclid(d as i64));
        }

        #[test]
        fn small_floor_div_at_multiples(k in -64i64..64, d in 2u64..(1 << 16), off in -1i64..=1) {
            let n = (k * d as i64 + off).clamp(-(1 << 22) + 1, (1 << 22) - 1);
            prop_assert_eq!(SmallFloorDiv::new(d).floor(n as f32) as i64, n.div_euclid(d as i64));
        }

        #[test]
        fn floor_div_at_multiples(k in -300i64..300, d in 2u64..(1 << 26), off in -1i64..=1) {
            let n = (k * d as i64 + off).clamp(-(1 << 34) + 1, (1 << 34) - 1);
            prop_assert_eq!(FloorDiv::new(d).floor(n as f64) as i64, n.div_euclid(d as i64));
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
