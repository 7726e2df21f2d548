//! Adam with global gradient-norm clipping, whose moments can be saved and restored: a
//! resumed run continues with the optimizer state it stopped with (candle-nn's AdamW
//! keeps its moments private), and clipping keeps a bad batch from undoing training.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use super::error::{Result, TrainError};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.98;
const EPS: f64 = 1e-8;

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

pub struct Adam {
    slots: Vec<Slot>,
    /// Updates applied so far (bias correction).
    steps: u64,
}

impl Adam {
    pub fn new<'a>(vars: impl Iterator<Item = (&'a str, &'a Var)>) -> Result<Adam> {
        let slots = vars
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.to_owned(),
                    var: var.clone(),
                    m: Var::zeros(var.shape(), var.dtype(), var.device())?,
                    v: Var::zeros(var.shape(), var.dtype(), var.device())?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Adam { slots, steps: 0 })
    }

    /// One update at learning rate `lr`, the gradients scaled down to a global norm of
    /// at most `clip`. Returns the norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let mut squares = Vec::new();
        for slot in &self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                squares.push(g.sqr()?.sum_all()?);
            }
        }
        if squares.is_empty() {
            return Ok(0.0);
        }
        let norm = f64::from(Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f32>()?).sqrt();
        if !norm.is_finite() {
            return Err(TrainError::Diverged(self.steps));
        }
        let scale = if norm > clip { clip / norm } else { 1.0 };
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for slot in &self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = (g * scale)?;
            let m = ((slot.m.as_tensor() * BETA1)? + (&g * (1.0 - BETA1))?)?;
            let v = ((slot.v.as_tensor() * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + EPS)?)?;
            slot.var.set(&(slot.var.as_tensor() - (update * lr)?)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(norm)
    }

    /// Writes the moments; the step count goes with the checkpoint's state.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            tensors.insert(format!("m.{}", slot.name), slot.m.as_tensor().clone());
            tensors.insert(format!("v.{}", slot.name), slot.v.as_tensor().clone());
        }
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    pub fn load(&mut self, path: &Path, steps: u64, device: &Device) -> Result<()> {
        let saved = candle_core::safetensors::load(path, device)?;
        for slot in &self.slots {
            for (prefix, var) in [("m", &slot.m), ("v", &slot.v)] {
                let name = format!("{prefix}.{}", slot.name);
                let tensor =
                    saved.get(&name).filter(|t| t.shape() == var.shape()).ok_or_else(|| TrainError::BadFile {
                        path: path.to_owned(),
                        reason: format!("{name} is missing or has another shape"),
                    })?;
                var.set(tensor)?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descends_a_quadratic_and_restores_its_state() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::new(&[3.0f32, -2.0], &dev)?;
        let mut adam = Adam::new([("x", &x)].into_iter())?;
        for _ in 0..200 {
            let grads = x.as_tensor().sqr()?.sum_all()?.backward()?;
            adam.step(&grads, 0.05, 1.0)?;
        }
        let end = x.as_tensor().to_vec1::<f32>()?;
        assert!(end.iter().all(|v| v.abs() < 0.1), "{end:?}");

        let dir = tempfile::tempdir().map_err(TrainError::io(Path::new("tmp")))?;
        let path = dir.path().join("adam.safetensors");
        adam.save(&path)?;
        let y = Var::new(&[0.0f32, 0.0], &dev)?;
        let mut other = Adam::new([("x", &y)].into_iter())?;
        other.load(&path, adam.steps, &dev)?;
        assert_eq!(other.steps, 200);
        assert_eq!(other.slots[0].v.as_tensor().to_vec1::<f32>()?, adam.slots[0].v.as_tensor().to_vec1::<f32>()?);
        Ok(())
    }
}
