//! The float parameters being trained: one per tensor of the integer format
//! (`t5::model::layout`), named as there, and their fake-quantized view for a step.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::error::{Result, TrainError};
use super::quant::{Grid, fake_quant, weight_exponent};
use super::rng::Rng;
use crate::t5::model::{Kind, MAX_EXP, MIN_EXP, TensorSpec, layout};
use crate::t5::{E_GAIN, E_S, E_X, ModelConfig};

/// How the integer network holds a tensor: a matrix on its own power-of-two grid, q8 at
/// a fixed exponent, or an i32 bias at E_S.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    Matrix,
    Fixed(i32),
    Bias,
}

/// The float tensors of the format (the exponents are not trained: they follow from the
/// weights), with how each is held.
pub fn float_specs(config: &ModelConfig) -> Vec<(TensorSpec, Holding)> {
    layout(config)
        .into_iter()
        .filter_map(|spec| {
            let holding = match spec.kind {
                Kind::Exponent => return None,
                Kind::Matrix => Holding::Matrix,
                // Gains are the only q8 vectors with their own exponent; tables of
                // embeddings and positions live at E_X.
                Kind::Q8 if spec.name.ends_with(".g") => Holding::Fixed(E_GAIN),
                Kind::Q8 => Holding::Fixed(E_X),
                Kind::Bias => Holding::Bias,
            };
            Some((spec, holding))
        })
        .collect()
}

/// The initial spread of a tensor: unit-scale activations everywhere, queries and keys
/// smaller because attention is not scaled by 1/√d (CODER.md), residual writes smaller so
/// that early layers do not swamp the embedding.
fn init_std(name: &str, fan_in: usize) -> f64 {
    let unit = 1.0 / (fan_in as f64).sqrt();
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match name {
        "embed" => 1.0,
        "latent_embed" | "latent_pos" => 0.7,
        _ => match leaf {
            "q" | "k" | "o" | "wo" => 0.5 * unit,
            _ => unit,
        },
    }
}

#[derive(Debug)]
pub struct Params {
    config: ModelConfig,
    vars: BTreeMap<String, (Var, Holding)>,
}

impl Params {
    /// Fresh parameters, the same for the same seed on every machine.
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Result<Params> {
        let mut rng = Rng::derive(seed, 0x1417, 0);
        let mut vars = BTreeMap::new();
        for (spec, holding) in float_specs(config) {
            let n = spec.len();
            let values: Vec<f32> = match holding {
                Holding::Fixed(E_GAIN) => vec![1.0; n],
                Holding::Bias => vec![0.0; n],
                _ => {
                    let std = init_std(&spec.name, spec.shape.last().copied().unwrap_or(1));
                    (0..n).map(|_| (rng.normal() * std) as f32).collect()
                }
            };
            let tensor = Tensor::from_vec(values, spec.shape.as_slice(), device)?;
            vars.insert(spec.name, (Var::from_tensor(&tensor)?, holding));
        }
        Ok(Params { config: config.clone(), vars })
    }

    /// Parameters saved by `save`, checked against the config's layout.
    pub fn load(config: &ModelConfig, path: &Path, device: &Device) -> Result<Params> {
        let mut saved = candle_core::safetensors::load(path, device)?;
        let mut vars = BTreeMap::new();
        for (spec, holding) in float_specs(config) {
            let bad = |reason: String| TrainError::BadFile {
                path: path.to_owned(),
                reason: format!("tensor {}: {reason}", spec.name),
            };
            let tensor = saved.remove(&spec.name).ok_or_else(|| bad("missing".into()))?;
            if tensor.dims() != spec.shape.as_slice() || tensor.dtype() != DType::F32 {
                return Err(bad(format!(
                    "is {:?} {:?}, the config needs F32 {:?}",
                    tensor.dtype(),
                    tensor.dims(),
                    spec.shape
                )));
            }
            vars.insert(spec.name, (Var::from_tensor(&tensor)?, holding));
        }
        Ok(Params { config: config.clone(), vars })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> =
            self.vars.iter().map(|(name, (var, _))| (name.clone(), var.as_tensor().clone())).collect();
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Names and variables, in name order (the optimizer's order).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(name, (var, _))| (name.as_str(), var))
    }

    /// Names, variables and how each is held.
    pub fn held(&self) -> impl Iterator<Item = (&str, &Var, Holding)> {
        self.vars.iter().map(|(name, (var, holding))| (name.as_str(), var, *holding))
    }

    pub fn parameter_count(&self) -> usize {
        self.vars.values().map(|(v, _)| v.elem_count()).sum()
    }

    /// The exponent of each matrix, chosen from its current largest magnitude (within the
    /// format's bounds), in one transfer from the device.
    pub fn matrix_exponents(&self) -> Result<BTreeMap<String, i32>> {
        let matrices: Vec<(&String, &Var)> =
            self.vars.iter().filter(|(_, (_, h))| *h == Holding::Matrix).map(|(name, (var, _))| (name, var)).collect();
        let maxima = matrices
            .iter()
            .map(|(_, var)| var.as_tensor().detach().abs()?.max_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let maxima = Tensor::stack(&maxima, 0)?.to_vec1::<f32>()?;
        Ok(matrices
            .iter()
            .zip(maxima)
            .map(|((name, _), max)| {
                let e = weight_exponent(max).clamp(MIN_EXP as i32, MAX_EXP as i32);
                ((*name).clone(), e)
            })
            .collect())
    }

    /// Every parameter as the integer network will hold it; `track` keeps the graph for
    /// backpropagation (training) or drops it (evaluation).
    pub fn quantized(&self, track: bool) -> Result<Quantized> {
        let exponents = self.matrix_exponents()?;
        let mut tensors = HashMap::new();
        for (name, (var, holding)) in &self.vars {
            let t = if track { var.as_tensor().clone() } else { var.as_tensor().detach() };
            let grid = match holding {
                Holding::Matrix => Grid::q8(exponents.get(name).copied().unwrap_or(0)),
                Holding::Fixed(e) => Grid::q8(*e),
                Holding::Bias => Grid::rounded(E_S),
            };
            tensors.insert(name.clone(), fake_quant(&t, grid)?);
        }
        Ok(Quantized { tensors })
    }
}

/// The fake-quantized parameters of one step, by name.
pub struct Quantized {
    tensors: HashMap<String, Tensor>,
}

impl Quantized {
    pub fn get(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))
    }
}
