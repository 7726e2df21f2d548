//! Deterministic random weights: models for tests and benchmarks that exercise every
//! kernel with activations of realistic size, without training.

use super::layout::{Kind, TensorSpec};
use super::tensors::{Tensor, TensorData, Tensors};

/// Standard deviation of random matrix entries in integer units: the exponent then makes
/// the float matrix about `N(0, 1/in)`, which keeps activations near unit scale.
const MATRIX_STD: f64 = 40.0;
/// Embeddings about ±1.5 at E_X.
const EMBED_HALF_RANGE: u64 = 48;
/// Gains of 1.0 at E_GAIN.
const UNIT_GAIN: i8 = 64;
const BIAS_HALF_RANGE: u64 = 4;
/// The match boost per bucket, in eighths of a nat: trust grows with the match length.
const BOOST_PER_BUCKET: i32 = 6;

pub fn random_tensors(specs: &[TensorSpec], seed: u64) -> Tensors {
    let mut rng = SplitMix(seed);
    let mut tensors = Tensors::default();
    for spec in specs {
        let n = spec.len();
        let data = match spec.kind {
            Kind::Exponent => TensorData::I32(vec![matrix_exponent(matrix_cols(specs, spec))]),
            Kind::Matrix => {
                let half = (MATRIX_STD * 3f64.sqrt()).round() as u64;
                TensorData::I8((0..n).map(|_| rng.symmetric(half) as i8).collect())
            }
            Kind::Q8 if spec.name.ends_with(".g") => TensorData::I8(vec![UNIT_GAIN; n]),
            Kind::Q8 => TensorData::I8((0..n).map(|_| rng.symmetric(EMBED_HALF_RANGE) as i8).collect()),
            Kind::Bias if spec.name == "match.boost" => {
                TensorData::I32((0..n as i32).map(|b| b * BOOST_PER_BUCKET).collect())
            }
            Kind::Bias => TensorData::I32((0..n).map(|_| rng.symmetric(BIAS_HALF_RANGE) as i32).collect()),
        };
        tensors.insert(spec.name.clone(), Tensor { shape: spec.shape.clone(), data });
    }
    tensors
}

/// Input size of the matrix an exponent belongs to.
fn matrix_cols(specs: &[TensorSpec], exponent: &TensorSpec) -> usize {
    let name = exponent.name.trim_end_matches(".exp");
    specs.iter().find(|s| s.name == name).and_then(|s| s.shape.get(1).copied()).unwrap_or(1)
}

/// `e` with `MATRIX_STD · 2^-e ≈ 1/√cols`, in integers so that a seed gives the same
/// model (and model id) everywhere.
fn matrix_exponent(cols: usize) -> i32 {
    let square = (MATRIX_STD * MATRIX_STD) as usize * cols.max(1);
    square.ilog2().div_ceil(2) as i32
}

/// SplitMix64: tiny, and the same sequence everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `-half..=half`.
    fn symmetric(&mut self, half: u64) -> i64 {
        (self.next() % (2 * half + 1)) as i64 - half as i64
    }
}
