//! The trained float parameters as the integer model of CODER.md: every value is the
//! integer the fake quantization used in training, so the exported network computes
//! what was trained. The model directory is written by `t5::model::Model`, the one
//! writer of the format.

use std::path::Path;

use super::error::Result;
use super::params::{Holding, Params};
use super::quant::Grid;
use crate::t5::model::{Kind, MAX_BIAS, Model, Tensor, TensorData, Tensors, layout};
use crate::t5::{ByteBpe, E_S};

/// The integer tensors of the current parameters.
pub fn integer_tensors(params: &Params) -> Result<Tensors> {
    let exponents = params.matrix_exponents()?;
    let exponent = |name: &str| exponents.get(name).copied().unwrap_or(0);
    let mut tensors = Tensors::default();
    for (name, var, holding) in params.held() {
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let shape = var.dims().to_vec();
        let data = match holding {
            Holding::Matrix => TensorData::I8(q8(&values, Grid::q8(exponent(name)))),
            Holding::Fixed(e) => TensorData::I8(q8(&values, Grid::q8(e))),
            Holding::Bias => {
                let grid = Grid::clamped(E_S, MAX_BIAS as i32);
                TensorData::I32(values.iter().map(|&x| grid.integer(x) as i32).collect())
            }
        };
        tensors.insert(name, Tensor { shape, data });
    }
    for spec in layout(params.config()) {
        if spec.kind == Kind::Exponent {
            let matrix = spec.name.trim_end_matches(".exp");
            tensors.insert(spec.name.as_str(), Tensor { shape: vec![], data: TensorData::I32(vec![exponent(matrix)]) });
        }
    }
    Ok(tensors)
}

fn q8(values: &[f32], grid: Grid) -> Vec<i8> {
    values.iter().map(|&x| grid.integer(x) as i8).collect()
}

/// Writes the model directory: config.json, tokenizer.json, weights.safetensors.
pub fn export(params: &Params, tokenizer: &ByteBpe, dir: &Path) -> Result<Model> {
    let tensors = integer_tensors(params)?;
    let model = Model::new(params.config().clone(), tokenizer.clone(), &tensors)?;
    model.save(dir)?;
    Ok(model)
}
