//! The reinforcement-learning stage's progress: smoothed reward and latent length for
//! the progress bar, held-out measurements, and the reward curve, appended to
//! MODELDIR/rl-curve.csv so that a resumed run continues it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{Result, TrainError};
use super::reinforce::StepStats;
use super::summary::RlSummary;

const CURVE: &str = "rl-curve.csv";
/// A curve row every this many steps.
const EVERY: u64 = 10;

/// A running mean over about the last 20 steps: what progress bars show of a noisy
/// per-step figure.
pub fn smoothed(old: Option<f64>, new: f64) -> f64 {
    old.map_or(new, |o| 0.95 * o + 0.05 * new)
}

pub struct RlProgress {
    path: PathBuf,
    file: File,
    steps: u64,
    reward: Option<f64>,
    codes: f64,
    replayed: u64,
    held_out_before: Option<f64>,
    held_out: Option<f64>,
}

impl RlProgress {
    /// The stage begins (or resumes) with `held_out` bits/byte on the held-out windows.
    pub fn start(model_dir: &Path, held_out: Option<f64>) -> Result<RlProgress> {
        let path = model_dir.join(CURVE);
        let fresh = !path.exists();
        let file = File::options().create(true).append(true).open(&path).map_err(TrainError::io(&path))?;
        let mut progress = RlProgress {
            path,
            file,
            steps: 0,
            reward: None,
            codes: 0.0,
            replayed: 0,
            held_out_before: held_out,
            held_out,
        };
        if fresh {
            progress.write("step,reward_bits_per_byte,codes_per_segment,held_out_bits_per_byte")?;
        }
        Ok(progress)
    }

    pub fn record(&mut self, step: u64, stats: &StepStats) -> Result<()> {
        self.reward = Some(smoothed(self.reward, stats.reward));
        self.codes = smoothed((self.steps > 0).then_some(self.codes), stats.codes_per_segment);
        self.steps += 1;
        self.replayed += stats.replayed as u64;
        if (step + 1).is_multiple_of(EVERY) {
            self.row(step + 1, None)?;
        }
        Ok(())
    }

    pub fn held_out(&mut self, step: u64, bits_per_byte: Option<f64>) -> Result<()> {
        self.held_out = bits_per_byte.or(self.held_out);
        self.row(step, bits_per_byte)
    }

    pub fn message(&self) -> String {
        let held_out = self.held_out.map_or("-".into(), |h| format!("{h:.3}"));
        format!(
            "RL: reward {:.3} bits/byte, {:.2} codes a segment, held out {held_out} bits/byte",
            self.reward.unwrap_or(0.0),
            self.codes
        )
    }

    pub fn summary(&self) -> RlSummary {
        RlSummary {
            steps_this_run: self.steps,
            reward_bits_per_byte: self.reward,
            codes_per_segment: self.codes,
            replayed_groups: self.replayed,
            held_out_before: self.held_out_before,
            curve: self.path.clone(),
        }
    }

    fn row(&mut self, step: u64, held_out: Option<f64>) -> Result<()> {
        let Some(reward) = self.reward else {
            return Ok(());
        };
        let held_out = held_out.map_or(String::new(), |h| format!("{h:.4}"));
        let line = format!("{step},{reward:.4},{:.3},{held_out}", self.codes);
        self.write(&line)
    }

    fn write(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}").map_err(TrainError::io(&self.path))
    }
}
