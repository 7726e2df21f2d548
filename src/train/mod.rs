//! Training the t5 coder's model (CODER.md) in float with quantization-aware training:
//! the float network holds, wherever the integer network rounds or clamps, the value the
//! integer network would hold, so the exported integer model computes what was trained.
//!
//! corpus (files → 128 KiB blocks → BPE tokens + match predictions) → windows → batches
//! → `float_net` (encoder → latent codes → decoder) → frame bits per byte → Adam → checkpoints
//! → held-out measurement → integer export through `t5::model::Model`.

mod checkpoint;
mod compare;
mod corpus;
mod curve;
mod error;
mod export;
mod float_net;
mod latent;
mod optim;
mod params;
mod policy;
mod quant;
mod reinforce;
mod replay;
mod rng;
mod summary;
mod trainer;
mod windows;

#[cfg(test)]
mod tests;

pub use self::compare::{Comparison, compare};
pub use self::corpus::held_out_files;
pub use self::error::{Result, TrainError};
pub use self::summary::{Eval, RlSummary, TrainSummary};
pub use self::trainer::{TrainOptions, train};
