//! The reinforcement-learning stage (CODER.md, "The latent: reinforcement learning"):
//! the encoder is a policy over each segment's latent, rewarded with minus the bits of
//! the frame it leads to; the decoder goes on learning by maximum likelihood on the
//! latents the policy samples.
//!
//! Per step, some windows are fresh (the current policy samples `SAMPLES` latents for
//! each of their segments) and some are groups drawn from the replay buffer (latents of
//! older snapshots, re-scored under the current decoder). A sample's advantage is its
//! reward minus the mean reward of the other samples of its segment; replayed samples
//! are weighted by the clipped ratio of the current policy's probability to the
//! behaviour policy's.

use candle_core::{Device, Tensor};

use super::corpus::TokenBlock;
use super::error::{Result, TrainError};
use super::float_net::{DeviceBatch, Fixed, Net, latent_code_bits};
use super::optim::Adam;
use super::params::Params;
use super::policy::{Slots, log_probs};
use super::replay::{Group, ReplayBuffer, importance_weight};
use super::rng::Rng;
use super::windows::{Batch, Window, sample};
use crate::t5::ModelConfig;

/// Latents sampled per segment: the baseline of each is the mean of the others.
pub const SAMPLES: usize = 4;
/// Groups the replay buffer keeps (a few hundred steps of fresh groups).
pub const REPLAY_CAPACITY: usize = 2048;
/// The behaviour policy of fresh samples takes π's choice among the codes alone this
/// often (`Slots::sample`): without it, a policy that has learned to end every latent at
/// once (where supervised training leaves a latent that does not yet pay) never tries a
/// code again, and the decoder never learns what codes could say.
const EXPLORE: f64 = 0.2;
/// Importance weights are truncated to [FLOOR, CLIP] (`replay::importance_weight`).
const FLOOR: f64 = 0.5;
const CLIP: f64 = 1.0;
/// Gradients are clipped to this global norm.
const GRAD_CLIP: f64 = 1.0;
/// Purposes of the stage's random streams (the supervised stage uses 1 and 2).
const FRESH: u64 = 3;
const REPLAYED: u64 = 4;
const SAMPLING: u64 = 5;

/// What the stage trains on.
pub struct Data<'a> {
    pub config: &'a ModelConfig,
    pub blocks: &'a [TokenBlock],
    pub windows: &'a [Window],
    pub token_len: &'a [u32],
    pub device: &'a Device,
    pub fixed: &'a Fixed,
    pub seed: u64,
    /// Distinct windows per step, as in the supervised stage; each is decoded `SAMPLES`
    /// times. (With a quarter as many, the decoder's gradient was noisier than at the end
    /// of supervised training and it got worse: BENCHMARKS.md section 6.)
    pub batch: usize,
}

/// One step's measurements.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Mean reward: minus the frame bits (tokens and latent) per byte of the samples.
    pub reward: f64,
    /// Mean latent length of the sampled latents.
    pub codes_per_segment: f64,
    /// Groups that came from the replay buffer.
    pub replayed: usize,
    /// Coded tokens in the step (each sample's copy counted once).
    pub tokens: u64,
}

/// One optimizer step of the stage at learning rate `lr`, the policy's reward counting
/// the latent's bits at `latent_weight` (the frame's true cost at 1).
pub fn step(
    data: &Data,
    params: &Params,
    adam: &mut Adam,
    buffer: &mut ReplayBuffer,
    step: u64,
    lr: f64,
    latent_weight: f64,
) -> Result<StepStats> {
    let config = data.config;
    let groups_per_step = data.batch.max(2);
    let replayed = buffer.draw(groups_per_step / 2, &mut Rng::derive(data.seed, REPLAYED, step));
    let fresh = sample(data.windows, groups_per_step - replayed.len(), &mut Rng::derive(data.seed, FRESH, step));
    let windows: Vec<Window> = fresh
        .iter()
        .copied()
        .chain(replayed.iter().map(Group::window))
        .flat_map(|w| std::iter::repeat_n(w, SAMPLES))
        .collect();
    let host = Batch::build(data.blocks, &windows, config, data.token_len);
    let batch = DeviceBatch::new(&host, config, data.device)?;
    let per_window = config.window / config.segment;
    let slots = Slots {
        segments: host.segments(),
        slots: config.latent_max,
        actions: config.latent_vocab + 1,
        slot_ok: &host.slot_ok,
        exists: &host.segment_exists,
    };
    let row = |group: usize, sample: usize, j: usize| (group * SAMPLES + sample) * per_window + j;

    let quantized = params.quantized(true)?;
    let net = Net::new(config, &quantized, data.fixed);
    let logits = net.latent_logits(&batch)?;
    let host_logits: Vec<f32> = logits.detach().flatten_all()?.to_vec1()?;

    // Fresh rows are sampled now by the exploring behaviour policy; replayed rows keep
    // the latents and behaviour log-probabilities of the step that drew them.
    let drawn = slots.sample(&host_logits, EXPLORE, &mut Rng::derive(data.seed, SAMPLING, step));
    let mut weight: Vec<f64> = drawn
        .iter()
        .enumerate()
        .map(|(i, (latent, behaviour))| {
            importance_weight(slots.log_prob(&host_logits, i, latent), *behaviour, FLOOR, CLIP)
        })
        .collect();
    let mut latents: Vec<Vec<u32>> = drawn.iter().map(|(l, _)| l.clone()).collect();
    for (r, group) in replayed.iter().enumerate() {
        let g = fresh.len() + r;
        for s in 0..SAMPLES {
            for j in 0..per_window {
                let i = row(g, s, j);
                let latent = group.latents[s][j].clone();
                let current = slots.log_prob(&host_logits, i, &latent);
                weight[i] = importance_weight(current, group.log_probs[s][j], FLOOR, CLIP);
                latents[i] = latent;
            }
        }
    }
    let latent = slots.latent(&latents, data.device)?;
    let token_bits = net.segment_bits(&batch, &latent)?;

    let (length_bits, code_bits) = latent_code_bits(config);
    let latent_cost = |len: usize| length_bits + len as f64 * code_bits;
    let token_host: Vec<f32> = token_bits.detach().to_vec1()?;
    let exists = |i: usize| host.segment_exists[i] > 0.0;
    let token_reward = |i: usize| if exists(i) { -f64::from(token_host[i]) } else { 0.0 };
    let latent_reward = |i: usize| if exists(i) { -latent_cost(latents[i].len()) } else { 0.0 };
    // What the policy learns from: the latent's bits weighed by `latent_weight`.
    let reward: Vec<f64> = (0..slots.segments).map(|i| token_reward(i) + latent_weight * latent_reward(i)).collect();
    let mut advantage = vec![0f32; slots.segments];
    for g in 0..fresh.len() + replayed.len() {
        for j in 0..per_window {
            let total: f64 = (0..SAMPLES).map(|s| reward[row(g, s, j)]).sum();
            for s in 0..SAMPLES {
                let i = row(g, s, j);
                let others = (total - reward[i]) / (SAMPLES - 1) as f64;
                advantage[i] = (weight[i] * (reward[i] - others)) as f32;
            }
        }
    }
    let bytes = host.bytes.max(1) as f64;
    let advantage = Tensor::from_vec(advantage, slots.segments, data.device)?;
    let decisions = slots.decisions_onehot(&latents, data.device)?;
    let policy = (log_probs(&logits, &decisions)? * advantage)?.sum_all()?;
    let objective = ((token_bits.sum_all()? - policy)? / bytes)?;
    let grads = objective.backward()?;
    adam.step(&grads, lr, GRAD_CLIP)?;
    if !f64::from(objective.to_scalar::<f32>()?).is_finite() {
        return Err(TrainError::Diverged(step));
    }

    for (g, window) in fresh.iter().enumerate() {
        let pick = |s: usize, j: usize| &drawn[row(g, s, j)];
        buffer.push(Group {
            block: window.block,
            start: window.start,
            step,
            latents: (0..SAMPLES).map(|s| (0..per_window).map(|j| pick(s, j).0.clone()).collect()).collect(),
            log_probs: (0..SAMPLES).map(|s| (0..per_window).map(|j| pick(s, j).1).collect()).collect(),
        });
    }
    let existing: Vec<usize> = (0..slots.segments).filter(|&i| exists(i)).collect();
    let frame: f64 = (0..slots.segments).map(|i| token_reward(i) + latent_reward(i)).sum();
    Ok(StepStats {
        reward: frame / bytes,
        codes_per_segment: existing.iter().map(|&i| latents[i].len() as f64).sum::<f64>()
            / existing.len().max(1) as f64,
        replayed: replayed.len(),
        tokens: host.target_ok.iter().filter(|&&ok| ok > 0.0).count() as u64 / SAMPLES as u64,
    })
}
