//! The float parameters being trained: one per tensor of the integer format
//! (`t5::model::layout`), named as there, and their fake-quantized view for a step.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::error::{Result, TrainError};
use super::quant::{Grid, fake_quant, weight_exponent};
use super::rng::Rng;
use crate::t5::model::{Kind, MAX_EXP, MIN_EXP, TensorData, TensorSpec, Tensors, layout};
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

    #[cfg(test)]
    fn get_var(&self, name: &str) -> &Tensor {
        self.vars[name].0.as_tensor()
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

/// How `Params::start_from` used a model's tensors: parameters that took its values
/// whole, those that took the corner both shapes share, and those it has nothing for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartReport {
    pub copied: Vec<String>,
    pub partial: Vec<String>,
    pub fresh: Vec<String>,
}

impl Params {
    /// Starts from a trained model's integer tensors: each parameter takes the float
    /// values the model's integers stand for (`integer · 2^-exponent`) under the same
    /// name; where the shapes differ (a wider layer, another vocabulary), the leading
    /// corner both share, the rest keeping its fresh initialization. Parameters the model
    /// lacks (a layer it does not have) stay fresh; tensors only the model has are unused.
    pub fn start_from(&mut self, tensors: &Tensors) -> Result<StartReport> {
        let mut report = StartReport::default();
        for (name, (var, holding)) in &mut self.vars {
            let Some(source) = tensors.get(name) else {
                report.fresh.push(name.clone());
                continue;
            };
            let exponent = match holding {
                Holding::Matrix => match tensors.get(&format!("{name}.exp")).map(|t| &t.data) {
                    Some(TensorData::I32(e)) if e.len() == 1 => e[0],
                    _ => {
                        report.fresh.push(name.clone());
                        continue;
                    }
                },
                Holding::Fixed(e) => *e,
                Holding::Bias => E_S,
            };
            let scale = (-exponent as f32).exp2();
            let values: Vec<f32> = match &source.data {
                TensorData::I8(v) => v.iter().map(|&x| f32::from(x) * scale).collect(),
                TensorData::I32(v) => v.iter().map(|&x| x as f32 * scale).collect(),
            };
            let shape = var.dims().to_vec();
            if source.shape.len() != shape.len() || values.len() != source.shape.iter().product::<usize>() {
                report.fresh.push(name.clone());
                continue;
            }
            let mut fresh = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            for (at, value) in fresh.iter_mut().enumerate() {
                if let Some(from) = index_in(at, &shape, &source.shape) {
                    *value = values[from];
                }
            }
            var.set(&Tensor::from_vec(fresh, shape.as_slice(), var.device())?)?;
            if source.shape == shape { &mut report.copied } else { &mut report.partial }.push(name.clone());
        }
        Ok(report)
    }
}

/// Where the element at flat index `at` of a row-major tensor of shape `to` lies in one
/// of shape `from` (same rank), if inside it.
fn index_in(mut at: usize, to: &[usize], from: &[usize]) -> Option<usize> {
    let (mut index, mut stride) = (0, 1);
    for (&n, &m) in to.iter().zip(from).rev() {
        let coordinate = at % n;
        at /= n;
        if coordinate >= m {
            return None;
        }
        index += coordinate * stride;
        stride *= m;
    }
    Some(index)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::fixtures;
    use crate::train::export::integer_tensors;

    fn values(params: &Params, name: &str) -> Vec<f32> {
        params.get_var(name).flatten_all().and_then(|t| t.to_vec1()).expect("a parameter")
    }

    #[test]
    fn a_start_from_a_model_takes_its_values_where_shapes_allow() {
        let config = ModelConfig { dec_layers: 2, ..fixtures::tiny_config() };
        let trained = Params::init(&config, 1, &Device::Cpu).unwrap();
        let tensors = integer_tensors(&trained).unwrap();

        // The same shape: every parameter is the model's, so it exports to the same integers.
        let mut same = Params::init(&config, 2, &Device::Cpu).unwrap();
        let report = same.start_from(&tensors).unwrap();
        assert!(report.partial.is_empty() && report.fresh.is_empty(), "{report:?}");
        assert_eq!(integer_tensors(&same).unwrap(), tensors);

        // One decoder layer, a wider feed-forward layer: the rows the model has are its.
        let other = ModelConfig { dec_layers: 1, d_ff: config.d_ff + 16, ..config.clone() };
        let before = Params::init(&other, 3, &Device::Cpu).unwrap();
        let mut after = Params::init(&other, 3, &Device::Cpu).unwrap();
        let report = after.start_from(&tensors).unwrap();
        assert!(report.fresh.is_empty(), "{report:?}");
        assert!(report.partial.contains(&"dec.0.ff.wi".to_string()), "{report:?}");
        assert!(!report.copied.iter().chain(&report.partial).any(|n| n.starts_with("dec.1.")));
        let wi = "dec.0.ff.wi";
        let d = config.d_model;
        let (model, fresh, got) = (values(&same, wi), values(&before, wi), values(&after, wi));
        assert_eq!(got[..config.d_ff * d], model[..], "the model's rows");
        assert_eq!(got[config.d_ff * d..], fresh[config.d_ff * d..], "the new rows stay fresh");
        let wo = "dec.0.ff.wo";
        let (model, fresh, got) = (values(&same, wo), values(&before, wo), values(&after, wo));
        for r in 0..d {
            let row = r * other.d_ff;
            assert_eq!(got[row..row + config.d_ff], model[r * config.d_ff..(r + 1) * config.d_ff]);
            assert_eq!(got[row + config.d_ff..row + other.d_ff], fresh[row + config.d_ff..row + other.d_ff]);
        }
    }

    #[test]
    fn index_in_maps_the_shared_corner() {
        assert_eq!(index_in(0, &[3, 4], &[2, 2]), Some(0));
        assert_eq!(index_in(5, &[3, 4], &[2, 2]), Some(3));
        assert_eq!(index_in(2, &[3, 4], &[2, 2]), None);
        assert_eq!(index_in(8, &[3, 4], &[2, 2]), None);
        assert_eq!(index_in(4, &[6], &[5]), Some(4));
        assert_eq!(index_in(5, &[6], &[5]), None);
    }
}
