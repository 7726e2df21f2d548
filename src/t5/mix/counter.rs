//! Adaptive bit probabilities: what one context has seen of one binary decision, in a u32
//! (probability of a 1 in the high 22 bits, units of 2^-22; how many bits it has seen, at
//! most 1023, in the low 10). The first bits move it fast (a running average), later ones
//! at the rate `1 / (limit + 1.5)`, so it keeps following a block that changes.

/// A counter that has seen nothing: probability 1/2.
pub const FRESH: u32 = 1 << 31;
const COUNT_BITS: u32 = 10;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
/// The largest count a limit may name.
pub const MAX_LIMIT: u32 = COUNT_MASK;
const P_ONE: i64 = (1 << 22) - 1;

/// `2^17 / (2n + 3)`: the step `1 / (n + 1.5)` in units of 2^-16, without a division.
const RECIPROCALS: [i32; 1024] = {
    let mut table = [0; 1024];
    let mut n = 0;
    while n < 1024 {
        table[n] = (1 << 17) / (2 * n as i32 + 3);
        n += 1;
    }
    table
};

/// The counter's probability of a 1, in 1..=65535 (units of 2^-16).
#[inline]
pub fn p16(counter: u32) -> u32 {
    (counter >> 16).clamp(1, super::logistic::P_MAX)
}

/// How many bits the counter has seen (up to its limit).
#[cfg(test)]
pub fn seen(counter: u32) -> u32 {
    counter & COUNT_MASK
}

/// Takes in `bit`; the count stops at `limit` (at most `MAX_LIMIT`).
#[inline]
pub fn update(counter: &mut u32, bit: u32, limit: u32) {
    let n = *counter & COUNT_MASK;
    let p = i64::from(*counter >> COUNT_BITS);
    let target = if bit != 0 { P_ONE } else { 0 };
    let p = (p + (((target - p) * i64::from(RECIPROCALS[n as usize])) >> 16)).clamp(0, P_ONE);
    *counter = ((p as u32) << COUNT_BITS) | (n + 1).min(limit.min(MAX_LIMIT));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_their_bits() {
        let mut c = FRESH;
        assert_eq!(p16(c), 32768);
        for _ in 0..2000 {
            update(&mut c, 1, 255);
        }
        assert!(p16(c) > 65400, "{}", p16(c));
        assert_eq!(seen(c), 255);
        update(&mut c, 0, 255);
        assert!(p16(c) < 65400 && p16(c) > 65000);
        let mut c = FRESH;
        update(&mut c, 0, 30);
        // One bit moves a fresh counter two thirds of the way.
        assert!((p16(c) as i32 - 32768 / 3).abs() < 4, "{}", p16(c));
        for _ in 0..5000 {
            update(&mut c, 0, 30);
        }
        assert_eq!(p16(c), 1);
    }
}
