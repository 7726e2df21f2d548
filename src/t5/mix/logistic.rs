//! The logistic domain the mixer works in (CODER.md, "In-block mixing"): a bit's
//! probability is an integer in 1..=65535 (units of 2^-16), its logit ("stretched") an
//! integer in units of 1/256 within ±`STRETCH_MAX`. Both maps are integer tables, so every
//! machine computes the same; the 16-bit precision is what lets a long repeat cost almost
//! nothing (a bit at 65535/65536 costs 2.2·10^-5 bits).

use std::sync::OnceLock;

/// Largest logit magnitude, in units of 1/256 (12 nats would be 3072).
pub const STRETCH_MAX: i32 = 3071;
/// Largest bit probability, in units of 2^-16.
pub const P_MAX: u32 = 65535;

/// `65536 / (1 + e^(-x/256))` at x = -3072, -2944, ..., 3072, rounded, within 1..=65535:
/// the points `squash` interpolates between (lpaq's squash, at 16 bits).
const SQUASH_POINTS: [i32; 49] = [
    1, 1, 1, 2, 3, 5, 8, 13, 22, 36, 60, 98, 162, 267, 439, 720, 1179, 1921, 3108, 4971, 7812, 11955, 17625, 24743,
    32768, 40793, 47911, 53581, 57724, 60565, 62428, 63615, 64357, 64816, 65097, 65269, 65374, 65438, 65476, 65500,
    65514, 65523, 65528, 65531, 65533, 65534, 65535, 65535, 65535,
];

/// The probability of logit `x` (clamped to ±`STRETCH_MAX`), in 1..=65535.
#[inline]
pub fn squash(x: i32) -> u32 {
    let x = x.clamp(-STRETCH_MAX, STRETCH_MAX) + 3072;
    let (i, w) = ((x >> 7) as usize, x & 127);
    let p = (SQUASH_POINTS[i] * (128 - w) + SQUASH_POINTS[i + 1] * w + 64) >> 7;
    p.clamp(1, P_MAX as i32) as u32
}

/// The logit of probability `p` (units of 2^-16): the smallest x whose `squash` reaches p,
/// so that `squash(stretch(p))` is the nearest the table can come to p.
#[inline]
pub fn stretch(p: u32) -> i32 {
    i32::from(stretch_table()[p.min(P_MAX) as usize])
}

fn stretch_table() -> &'static [i16] {
    static TABLE: OnceLock<Box<[i16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![STRETCH_MAX as i16; 1 << 16];
        let mut next = 0usize;
        for x in -STRETCH_MAX..=STRETCH_MAX {
            let p = squash(x) as usize;
            while next <= p {
                table[next] = x as i16;
                next += 1;
            }
        }
        table.into_boxed_slice()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_monotone_and_nearly_symmetric_and_stretch_inverts_it() {
        let mut last = 0;
        for x in -STRETCH_MAX..=STRETCH_MAX {
            let p = squash(x);
            assert!(p >= last, "squash falls at {x}");
            assert!((p + squash(-x)).abs_diff(65536) <= 1, "asymmetric at {x}");
            last = p;
        }
        assert_eq!(squash(0), 32768);
        assert_eq!(squash(-100_000), 1);
        assert_eq!(squash(100_000), P_MAX);
        for p in 1..=P_MAX {
            let x = stretch(p);
            assert!(squash(x) >= p || x == STRETCH_MAX, "stretch({p}) = {x} squashes to {}", squash(x));
            assert!(x == -STRETCH_MAX || squash(x - 1) < p, "stretch({p}) = {x} is not the smallest");
        }
    }
}
