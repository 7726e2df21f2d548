//! The trainer's only source of randomness: weights, batches and Gumbel noise all come
//! from here, because candle's CPU generator cannot be seeded (`Device::set_seed` fails
//! on the CPU) and runs must repeat exactly from a seed.

/// SplitMix64: tiny, fast, and good enough for sampling and initialization.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// An independent stream per (seed, purpose, step), so that a resumed run draws what
    /// an uninterrupted one would have drawn.
    pub fn derive(seed: u64, purpose: u64, step: u64) -> Rng {
        let mut rng = Rng(seed ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.0 ^= rng.next_u64() ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in (0, 1): never 0, so logarithms stay finite.
    pub fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.open01(), self.open01());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Standard Gumbel: the noise that turns an argmax into a sample of a softmax.
    pub fn gumbel(&mut self) -> f64 {
        -(-self.open01().ln()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_repeat_and_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::derive(7, 1, 3).next_u64()).collect();
        assert!(a.iter().all(|&x| x == a[0]));
        assert_ne!(Rng::derive(7, 1, 3).next_u64(), Rng::derive(7, 1, 4).next_u64());
        assert_ne!(Rng::derive(7, 1, 3).next_u64(), Rng::derive(7, 2, 3).next_u64());
        let mut rng = Rng::derive(1, 0, 0);
        let n = 20_000;
        let mean = (0..n).map(|_| rng.normal()).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
