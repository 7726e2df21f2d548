//! The feed-forward sublayer: `a = max(0, linear_q8(wi, x, E_A))`, then `wo` into the
//! residual.

use super::linear::{Linear, LinearScratch};
use super::{E_A, E_X};

#[derive(Debug, Clone)]
pub struct Ffn {
    pub wi: Linear,
    pub wo: Linear,
}

#[derive(Debug, Default)]
pub struct FfnScratch {
    hidden: Vec<i8>,
    linear: LinearScratch,
}

impl Ffn {
    /// Adds the FFN of the `n` normalized rows `x` (q8 at E_X) into the residual rows `h`.
    pub fn add_to_residual(&self, x: &[i8], n: usize, h: &mut [i32], scratch: &mut FfnScratch) {
        scratch.hidden.resize(n * self.wi.rows(), 0);
        self.wi.to_q8(x, n, E_X, &mut scratch.hidden, &mut scratch.linear);
        for a in &mut scratch.hidden {
            *a = (*a).max(0);
        }
        self.wo.add_to_residual(&scratch.hidden, n, E_A, h, &mut scratch.linear);
    }
}
