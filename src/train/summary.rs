//! What a training run reports: as text for people, as JSON (`--json`) for scripts.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A measurement of the float model with the latents the coder would choose (argmax).
#[derive(Debug, Clone, Serialize)]
pub struct Eval {
    pub windows: usize,
    pub tokens: u64,
    pub bytes: u64,
    /// Frame bits (tokens and latents) per byte.
    pub bits_per_byte: f64,
    pub token_bits_per_byte: f64,
    pub latent_bits_per_byte: f64,
    pub codes_per_segment: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub model_dir: PathBuf,
    pub model_id: String,
    pub parameters: usize,
    /// Steps done in all runs, and in this one.
    pub steps: u64,
    pub steps_this_run: u64,
    pub tokens: u64,
    pub tokens_this_run: u64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// Training loss (frame bits per byte, sampled latents) of this run's first step and,
    /// smoothed, of its last steps.
    pub first_bits_per_byte: Option<f64>,
    pub last_bits_per_byte: Option<f64>,
    pub held_out: Option<Eval>,
    /// The reinforcement-learning stage, where this run reached it.
    pub rl: Option<RlSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RlSummary {
    pub steps_this_run: u64,
    /// Smoothed reward of the last steps: minus the sampled frames' bits per byte.
    pub reward_bits_per_byte: Option<f64>,
    /// Smoothed mean length of the sampled latents.
    pub codes_per_segment: f64,
    /// Groups of latents reused from the replay buffer.
    pub replayed_groups: u64,
    /// Held-out bits/byte when this run's stage began.
    pub held_out_before: Option<f64>,
    /// The reward curve (CSV).
    pub curve: PathBuf,
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "trained {} steps ({} this run) of a {}-parameter model: {} tokens this run in \
             {:.0} s, {:.0} tokens/s",
            self.steps,
            self.steps_this_run,
            self.parameters,
            self.tokens_this_run,
            self.seconds,
            self.tokens_per_second
        )?;
        if let (Some(first), Some(last)) = (self.first_bits_per_byte, self.last_bits_per_byte) {
            writeln!(f, "training loss: {first:.3} → {last:.3} bits/byte")?;
        }
        match &self.held_out {
            Some(e) => writeln!(
                f,
                "held out ({} windows, {} tokens, {} bytes): {:.3} bits/byte = tokens {:.3} \
                 + latent {:.3}; {:.2} codes a segment",
                e.windows,
                e.tokens,
                e.bytes,
                e.bits_per_byte,
                e.token_bits_per_byte,
                e.latent_bits_per_byte,
                e.codes_per_segment
            )?,
            None => writeln!(f, "held out: no held-out text")?,
        }
        if let Some(rl) = &self.rl {
            let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
            writeln!(
                f,
                "reinforcement learning: {} steps this run, reward {} bits/byte, {:.2} codes a \
                 segment, {} replayed groups; held out before the stage {} bits/byte; curve {}",
                rl.steps_this_run,
                fmt(rl.reward_bits_per_byte),
                rl.codes_per_segment,
                rl.replayed_groups,
                fmt(rl.held_out_before),
                rl.curve.display()
            )?;
        }
        write!(f, "model {} (id {})", self.model_dir.display(), self.model_id)
    }
}
