//! Checkpoints: float weights, the optimizer's moments and the step, in MODELDIR/checkpoint.
//!
//! A new checkpoint is written beside the old one and swapped in by renames, so an
//! interrupted write leaves the previous checkpoint whole.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::error::{Result, TrainError};
use super::optim::Adam;
use super::params::Params;
use super::replay::ReplayBuffer;
use crate::t5::ModelConfig;

const DIR: &str = "checkpoint";
const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

/// Where training stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub config: ModelConfig,
    pub seed: u64,
    /// Steps done; the next step has this index.
    pub step: u64,
    /// Coded tokens trained on so far.
    pub tokens: u64,
    /// The reinforcement-learning stage's replay buffer, once the stage has begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayBuffer>,
}

fn sibling(model_dir: &Path, suffix: &str) -> PathBuf {
    model_dir.join(format!("{DIR}{suffix}"))
}

/// The checkpoint directory to read: the current one, or the previous one when a swap
/// was interrupted between its two renames.
fn existing(model_dir: &Path) -> Option<PathBuf> {
    [sibling(model_dir, ""), sibling(model_dir, ".old")].into_iter().find(|dir| dir.join(STATE).is_file())
}

pub fn exists(model_dir: &Path) -> bool {
    existing(model_dir).is_some()
}

pub fn save(model_dir: &Path, params: &Params, adam: &Adam, state: &State) -> Result<()> {
    let (current, new, old) = (sibling(model_dir, ""), sibling(model_dir, ".new"), sibling(model_dir, ".old"));
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(TrainError::io(&new))?;
    }
    std::fs::create_dir_all(&new).map_err(TrainError::io(&new))?;
    params.save(&new.join(WEIGHTS))?;
    adam.save(&new.join(OPTIMIZER))?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::BadFile { path: new.join(STATE), reason: e.to_string() })?;
    std::fs::write(new.join(STATE), json).map_err(TrainError::io(&new.join(STATE)))?;
    if current.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(TrainError::io(&old))?;
        }
        std::fs::rename(&current, &old).map_err(TrainError::io(&current))?;
    }
    std::fs::rename(&new, &current).map_err(TrainError::io(&new))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(TrainError::io(&old))?;
    }
    Ok(())
}

/// The checkpoint's state and parameters; the optimizer is restored into `adam` made
/// from those parameters by `restore_optimizer`.
pub fn load(model_dir: &Path, device: &Device) -> Result<(State, Params)> {
    let dir = existing(model_dir).ok_or_else(|| TrainError::BadFile {
        path: sibling(model_dir, ""),
        reason: "no checkpoint to resume from".into(),
    })?;
    let path = dir.join(STATE);
    let bytes = std::fs::read(&path).map_err(TrainError::io(&path))?;
    let state: State = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::BadFile { path: path.clone(), reason: e.to_string() })?;
    state.config.check().map_err(|reason| TrainError::BadFile { path: path.clone(), reason })?;
    let params = Params::load(&state.config, &dir.join(WEIGHTS), device)?;
    Ok((state, params))
}

pub fn restore_optimizer(model_dir: &Path, adam: &mut Adam, state: &State, device: &Device) -> Result<()> {
    let dir = existing(model_dir).unwrap_or_else(|| sibling(model_dir, ""));
    adam.load(&dir.join(OPTIMIZER), state.step, device)
}
