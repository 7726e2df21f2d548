//! T5's relative-position buckets (CODER.md, "T5 relative buckets"), decided in integers.
//!
//! T5 computes the logarithmic buckets in floating point, and at distances where the
//! exact value is a whole number (16, 32 and 64 in the encoder's default) a float log can
//! land just below it and pick the bucket before. Here the floor is decided by exact
//! integer comparisons, so training and coding on any machine agree on every bucket.

/// Which way a layer looks: the encoder sees its whole segment, the decoder only the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Bidirectional,
    Causal,
}

/// The bucket of every relative position, for one direction and one configuration.
#[derive(Debug, Clone)]
pub struct RelBuckets {
    direction: Direction,
    /// Buckets per side (half of them in the bidirectional case).
    per_side: usize,
    max_distance: usize,
    /// Bucket of each distance 0..max_distance.
    table: Vec<u16>,
}

impl RelBuckets {
    /// `None` when the configuration cannot be bucketed exactly: fewer than two buckets
    /// a side, a largest distance not beyond the exact range, or powers too large for
    /// u128 comparisons (far beyond any useful configuration).
    pub fn new(direction: Direction, buckets: usize, max_distance: usize) -> Option<RelBuckets> {
        let per_side = match direction {
            Direction::Bidirectional => buckets / 2,
            Direction::Causal => buckets,
        };
        let max_exact = per_side / 2;
        if max_exact == 0 || max_distance <= max_exact {
            return None;
        }
        let log_buckets = per_side - max_exact;
        let mut table = Vec::with_capacity(max_distance);
        for d in 0..max_distance {
            let bucket =
                if d < max_exact { d } else { max_exact + log_steps(d, max_exact, max_distance, log_buckets)? };
            table.push(u16::try_from(bucket.min(per_side - 1)).ok()?);
        }
        Some(RelBuckets { direction, per_side, max_distance, table })
    }

    /// The bucket of key position j seen from query position t, given `rel = j - t`.
    pub fn bucket(&self, rel: i64) -> usize {
        let (offset, distance) = match self.direction {
            Direction::Bidirectional => (if rel > 0 { self.per_side } else { 0 }, rel.unsigned_abs()),
            Direction::Causal => (0, rel.min(0).unsigned_abs()),
        };
        let inner = usize::try_from(distance)
            .ok()
            .filter(|&d| d < self.max_distance)
            .map_or(self.per_side - 1, |d| usize::from(self.table[d]));
        offset + inner
    }
}

/// `floor(log(d / max_exact) / log(max_distance / max_exact) · steps)` for
/// `max_exact ≤ d < max_distance`: the largest k with
/// `(d / max_exact)^steps ≥ (max_distance / max_exact)^k`, that is
/// `d^steps ≥ max_distance^k · max_exact^(steps - k)`.
fn log_steps(d: usize, max_exact: usize, max_distance: usize, steps: usize) -> Option<usize> {
    let pow =
        |base: usize, exp: usize| -> Option<u128> { (0..exp).try_fold(1u128, |acc, _| acc.checked_mul(base as u128)) };
    let lhs = pow(d, steps)?;
    let mut k = 0;
    while k < steps {
        let rhs = pow(max_distance, k + 1)?.checked_mul(pow(max_exact, steps - k - 1)?)?;
        if lhs < rhs {
            break;
        }
        k += 1;
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T5's formula in f64, away from the exact whole-number points.
    fn t5_float(rel: i64, bidirectional: bool, buckets: usize, max_distance: usize) -> usize {
        let mut n = buckets as i64;
        let mut out = 0;
        let mut d = rel;
        if bidirectional {
            n /= 2;
            out += if d > 0 { n } else { 0 };
            d = d.abs();
        } else {
            d = -d.min(0);
        }
        let max_exact = n / 2;
        let v = if d < max_exact {
            d
        } else {
            let large = max_exact
                + ((d as f64 / max_exact as f64).ln() / (max_distance as f64 / max_exact as f64).ln()
                    * (n - max_exact) as f64) as i64;
            large.min(n - 1)
        };
        (out + v) as usize
    }

    #[test]
    fn agrees_with_t5_and_is_exact_at_whole_numbers() {
        let enc = RelBuckets::new(Direction::Bidirectional, 32, 128).expect("encoder");
        let dec = RelBuckets::new(Direction::Causal, 32, 128).expect("decoder");
        for rel in -300i64..300 {
            assert_eq!(enc.bucket(rel), t5_float(rel, true, 32, 128), "enc {rel}");
            assert_eq!(dec.bucket(rel), t5_float(rel, false, 32, 128), "dec {rel}");
        }
        // log(d/8)/log(16)·8 is exactly 2, 4 and 6 at d = 16, 32 and 64.
        assert_eq!(enc.bucket(-15), 9);
        assert_eq!(enc.bucket(-16), 10);
        assert_eq!(enc.bucket(32), 16 + 12);
        assert_eq!(enc.bucket(-64), 14);
        assert_eq!(enc.bucket(-127), 15);
        assert_eq!(enc.bucket(-1000), 15);
        assert_eq!(dec.bucket(5), 0);
        assert_eq!(dec.bucket(-16), 16);
        assert_eq!(dec.bucket(-1000), 31);
    }

    #[test]
    fn degenerate_configurations_are_refused() {
        assert!(RelBuckets::new(Direction::Bidirectional, 2, 128).is_none());
        assert!(RelBuckets::new(Direction::Causal, 32, 16).is_none());
        assert!(RelBuckets::new(Direction::Causal, 4, 3).is_some());
    }
}
