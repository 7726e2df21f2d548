//! A model's integer tensors in memory, and their one on-disk form: `weights.safetensors`.
//! Reading checks every tensor against the layout (presence, dtype, shape, value range)
//! and names the file and tensor in any complaint.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use super::super::error::{CoderError, Result};
use super::layout::{Dtype, TensorSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorData {
    I8(Vec<i8>),
    I32(Vec<i32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Tensors by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tensors(BTreeMap<String, Tensor>);

impl Tensors {
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.0.insert(name.into(), tensor);
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.0.get_mut(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.0.remove(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The I8 values of `name`; `path` only names the file in the error.
    pub fn i8(&self, name: &str, path: &Path) -> Result<&[i8]> {
        match self.0.get(name).map(|t| &t.data) {
            Some(TensorData::I8(v)) => Ok(v),
            Some(TensorData::I32(_)) => Err(tensor_error(path, name, "is I32, not I8".into())),
            None => Err(tensor_error(path, name, "is missing".into())),
        }
    }

    pub fn i32(&self, name: &str, path: &Path) -> Result<&[i32]> {
        match self.0.get(name).map(|t| &t.data) {
            Some(TensorData::I32(v)) => Ok(v),
            Some(TensorData::I8(_)) => Err(tensor_error(path, name, "is I8, not I32".into())),
            None => Err(tensor_error(path, name, "is missing".into())),
        }
    }

    /// Checks that exactly the tensors of `specs` are present, with their dtypes, shapes
    /// and value ranges.
    pub fn check(&self, specs: &[TensorSpec], path: &Path) -> Result<()> {
        for spec in specs {
            let Some(tensor) = self.0.get(&spec.name) else {
                return Err(tensor_error(path, &spec.name, "is missing".into()));
            };
            let fail = |reason: String| Err(tensor_error(path, &spec.name, reason));
            if tensor.shape != spec.shape {
                return fail(format!("has shape {:?}, the config needs {:?}", tensor.shape, spec.shape));
            }
            let (lo, hi) = spec.kind.range();
            let values: Box<dyn Iterator<Item = i64>> = match (&tensor.data, spec.dtype()) {
                (TensorData::I8(v), Dtype::I8) => Box::new(v.iter().map(|&x| i64::from(x))),
                (TensorData::I32(v), Dtype::I32) => Box::new(v.iter().map(|&x| i64::from(x))),
                (TensorData::I8(_), Dtype::I32) => {
                    return fail("is I8, the format needs I32".into());
                }
                (TensorData::I32(_), Dtype::I8) => {
                    return fail("is I32, the format needs I8".into());
                }
            };
            let mut count = 0;
            for (i, x) in values.enumerate() {
                if !(lo..=hi).contains(&x) {
                    return fail(format!("value {x} at {i} is outside {lo}..={hi}"));
                }
                count += 1;
            }
            if count != spec.len() {
                return fail(format!("holds {count} values for shape {:?}", spec.shape));
            }
        }
        if self.0.len() != specs.len()
            && let Some(extra) = self.names().find(|n| !specs.iter().any(|s| s.name == *n))
        {
            return Err(tensor_error(path, extra, "is not part of the format".into()));
        }
        Ok(())
    }

    /// The safetensors file's bytes. Deterministic: safetensors orders tensors by dtype
    /// and name, and no metadata is written.
    pub fn to_safetensors(&self, path: &Path) -> Result<Vec<u8>> {
        let bytes: Vec<(&str, StDtype, &[usize], Vec<u8>)> = self
            .0
            .iter()
            .map(|(name, t)| match &t.data {
                TensorData::I8(v) => (name.as_str(), StDtype::I8, &t.shape[..], v.iter().map(|&x| x as u8).collect()),
                TensorData::I32(v) => {
                    (name.as_str(), StDtype::I32, &t.shape[..], v.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, dtype, shape, data)| {
                TensorView::new(*dtype, shape.to_vec(), data)
                    .map(|view| (*name, view))
                    .map_err(|e| tensor_error(path, name, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, None)
            .map_err(|e| CoderError::Weights { path: path.to_owned(), reason: e.to_string() })
    }

    /// Parses a safetensors file's bytes (dtypes I8 and I32 only).
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Tensors> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| CoderError::Weights {
            path: path.to_owned(),
            reason: format!("not a readable safetensors file: {e}"),
        })?;
        let mut tensors = Tensors::default();
        for (name, view) in file.iter() {
            let data = match view.dtype() {
                StDtype::I8 => TensorData::I8(view.data().iter().map(|&b| b as i8).collect()),
                StDtype::I32 => TensorData::I32(
                    view.data().chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                ),
                other => {
                    return Err(tensor_error(path, name, format!("has dtype {other:?}, not I8 or I32")));
                }
            };
            tensors.insert(name, Tensor { shape: view.shape().to_vec(), data });
        }
        Ok(tensors)
    }
}

pub(crate) fn tensor_error(path: &Path, tensor: &str, reason: String) -> CoderError {
    CoderError::Tensor { path: path.to_owned(), tensor: tensor.to_owned(), reason }
}
