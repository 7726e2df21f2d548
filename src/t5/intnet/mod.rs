//! The integer network of CODER.md: every kernel the t5 coder's probabilities pass
//! through, defined on integers so that they are the same on every machine, thread count
//! and CPU feature level. Faster paths (SIMD) must give the very same integers; the
//! portable code is the definition they are tested against.

mod arith;
mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod decoder;
pub(crate) mod encoder;
mod exp_row;
mod ffn;
mod kernels;
mod kv;
mod linear;
pub(crate) mod multiversion;
mod norm;
mod packed;
pub(crate) mod relpos;
#[cfg(target_arch = "x86_64")]
mod vnni;
pub(crate) mod weights;

pub use self::arith::{EXP, EXP_LEVELS, clamp8, div_round};
pub use self::attention::{AttnScratch, KeyRun, MAX_KEYS, ZERO_BIAS, attend};
pub use self::exp_row::exp_row;
pub use self::ffn::{Ffn, FfnScratch};
#[cfg(test)]
pub use self::kernels::with_kernels;
pub use self::kernels::{Kernels, KernelsError, kernels, selected as selected_kernels};
pub use self::kv::KvCache;
pub use self::linear::{Linear, LinearScratch};
pub use self::norm::rmsnorm;

// The exponents are part of the format, defined with the config.
use super::{E_A, E_GAIN, E_H, E_S, E_X, H_MAX};
