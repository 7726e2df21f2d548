//! The encoder as a policy over latents, for the reinforcement-learning stage.
//!
//! A segment's latent is a sequence of decisions, one per slot: a code (0..K) or END (K).
//! The latent is the codes before the first END; a slot over an empty part of the
//! segment ends it without a decision (the coder does the same, CODER.md "Coding a
//! block"). The slots' logits do not depend on one another, so the probability of a
//! latent is the product of its decisions' softmax probabilities, and the coder's argmax
//! per slot is this policy's most likely latent.

use candle_core::{D, DType, Device, Tensor};

use super::latent::Latent;
use super::rng::Rng;

type CResult<T> = candle_core::Result<T>;

/// The shape of a batch's latent decisions, and which of them are made.
pub struct Slots<'a> {
    pub segments: usize,
    pub slots: usize,
    /// K + 1: the codes and END.
    pub actions: usize,
    /// [segments, slots]: 0 for a slot over an empty part (it ends the latent).
    pub slot_ok: &'a [f32],
    /// [segments]: 0 for a segment past its block's end (it has no latent).
    pub exists: &'a [f32],
}

impl Slots<'_> {
    /// The slots of `segment` at which a decision is made for a latent of `len` codes:
    /// one per code, and END where the latent stops before the last slot by choice.
    fn decisions(&self, segment: usize, len: usize) -> usize {
        if len < self.open(segment) { len + 1 } else { len }
    }

    /// The slots of `segment` open to a code: those before its first empty part.
    fn open(&self, segment: usize) -> usize {
        if self.exists[segment] == 0.0 {
            return 0;
        }
        (0..self.slots).take_while(|&slot| self.slot_ok[segment * self.slots + slot] > 0.0).count()
    }

    /// The action `latent` takes at `slot`: its code there, or END past its codes.
    fn action(&self, latent: &[u32], slot: usize) -> usize {
        latent.get(slot).map_or(self.actions - 1, |&c| c as usize)
    }

    /// [segments, slots, K+1], 1 at each latent's action in its first `filled(segment,
    /// len)` slots.
    fn one_hot(&self, latents: &[Vec<u32>], filled: impl Fn(usize, usize) -> usize) -> Vec<f32> {
        let mut onehot = vec![0f32; self.segments * self.slots * self.actions];
        for (segment, latent) in latents.iter().enumerate() {
            for slot in 0..filled(segment, latent.len()) {
                let action = self.action(latent, slot);
                onehot[(segment * self.slots + slot) * self.actions + action] = 1.0;
            }
        }
        onehot
    }

    fn row<'l>(&self, logits: &'l [f32], segment: usize, slot: usize) -> &'l [f32] {
        let at = (segment * self.slots + slot) * self.actions;
        &logits[at..at + self.actions]
    }

    /// One latent per segment drawn by the behaviour policy, with its log-probability
    /// under that policy. At each decision the behaviour policy is the softmax π of host
    /// `logits` [segments, slots, K+1] mixed, at weight `explore`, with π's choice among
    /// the codes alone (π given "not END"): it tries codes where π would end the latent,
    /// and the codes it tries are those π prefers for this segment, so that what a code
    /// means can follow the segment's content.
    pub fn sample(&self, logits: &[f32], explore: f64, rng: &mut Rng) -> Vec<(Vec<u32>, f64)> {
        let end = self.actions - 1;
        (0..self.segments)
            .map(|segment| {
                let mut codes = Vec::new();
                let mut log_prob = 0.0;
                for slot in 0..self.open(segment) {
                    let pi = log_softmax(self.row(logits, segment, slot));
                    let codes_only = log_softmax(&self.row(logits, segment, slot)[..end]);
                    let logp: Vec<f64> = (0..self.actions)
                        .map(|a| {
                            let tried = codes_only.get(a).map_or(0.0, |lp| lp.exp());
                            ((1.0 - explore) * pi[a].exp() + explore * tried).ln()
                        })
                        .collect();
                    let action = draw(&logp, rng);
                    log_prob += logp[action];
                    if action == end {
                        break;
                    }
                    codes.push(action as u32);
                }
                (codes, log_prob)
            })
            .collect()
    }

    /// The log-probability of `latent` for `segment` under host `logits`.
    pub fn log_prob(&self, logits: &[f32], segment: usize, latent: &[u32]) -> f64 {
        let decisions = self.decisions(segment, latent.len());
        (0..decisions).map(|slot| log_softmax(self.row(logits, segment, slot))[self.action(latent, slot)]).sum()
    }

    /// One-hot decisions [segments, slots, K+1] of `latents`: what `log_probs` scores.
    pub fn decisions_onehot(&self, latents: &[Vec<u32>], device: &Device) -> CResult<Tensor> {
        let onehot = self.one_hot(latents, |segment, len| self.decisions(segment, len));
        Tensor::from_vec(onehot, (self.segments, self.slots, self.actions), device)
    }

    /// `latents` as the decoder's memory reads them: an action one-hot in every slot
    /// (END past the codes), present up to each latent's length.
    pub fn latent(&self, latents: &[Vec<u32>], device: &Device) -> CResult<Latent> {
        let (slots, actions) = (self.slots, self.actions);
        let onehot = self.one_hot(latents, |_, _| slots);
        let presence: Vec<f32> =
            latents.iter().flat_map(|l| (0..slots).map(move |slot| if slot < l.len() { 1.0 } else { 0.0 })).collect();
        let codes: Vec<f32> = latents.iter().map(|l| l.len() as f32).collect();
        Ok(Latent {
            onehot: Tensor::from_vec(onehot, (self.segments, slots, actions), device)?,
            presence: Tensor::from_vec(presence, (self.segments, slots), device)?,
            codes: Tensor::from_vec(codes, self.segments, device)?,
        })
    }
}

/// The log-probability of each segment's decisions [segments] under `logits` [segments,
/// slots, K+1], differentiable: the policy-gradient term's ∇ log π.
pub fn log_probs(logits: &Tensor, decisions: &Tensor) -> CResult<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_total = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let logp = shifted.broadcast_sub(&log_total)?;
    (logp * decisions)?.sum((1, 2))?.to_dtype(DType::F32)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    row.iter().map(|&x| f64::from(x - max) - total.ln()).collect()
}

fn draw(logp: &[f64], rng: &mut Rng) -> usize {
    let mut u = rng.open01();
    for (action, lp) in logp.iter().enumerate() {
        u -= lp.exp();
        if u <= 0.0 {
            return action;
        }
    }
    logp.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_latents_stop_at_end_and_score_what_they_drew() -> CResult<()> {
        // Two segments, two slots, K = 2 codes + END; the second segment's second part
        // is empty, and a third segment does not exist.
        let logits: Vec<f32> = vec![
            9.0, 0.0, 0.0, /**/ 0.0, 0.0, 9.0, // code 0, then END
            0.0, 9.0, 0.0, /**/ 9.0, 0.0, 0.0, // code 1, then an empty part
            0.0, 0.0, 0.0, /**/ 0.0, 0.0, 0.0,
        ];
        let slots = Slots {
            segments: 3,
            slots: 2,
            actions: 3,
            slot_ok: &[1.0, 1.0, 1.0, 0.0, 1.0, 1.0],
            exists: &[1.0, 1.0, 0.0],
        };
        let mut rng = Rng::derive(1, 0, 0);
        let drawn = slots.sample(&logits, 0.0, &mut rng);
        assert_eq!(drawn[0].0, [0]);
        assert_eq!(drawn[1].0, [1]);
        assert!(drawn[2].0.is_empty() && drawn[2].1 == 0.0);
        for (segment, (latent, logp)) in drawn.iter().enumerate() {
            assert!((slots.log_prob(&logits, segment, latent) - logp).abs() < 1e-9);
        }
        // The forced end of segment 1 is no decision: one term, not two.
        let one = log_softmax(&logits[6..9])[1];
        assert!((drawn[1].1 - one).abs() < 1e-9);

        let latents: Vec<Vec<u32>> = drawn.into_iter().map(|(l, _)| l).collect();
        let decisions = slots.decisions_onehot(&latents, &Device::Cpu)?;
        let logits_t = Tensor::from_vec(logits.clone(), (3, 2, 3), &Device::Cpu)?;
        let lp = log_probs(&logits_t, &decisions)?.to_vec1::<f32>()?;
        for (segment, latent) in latents.iter().enumerate() {
            let host = slots.log_prob(&logits, segment, latent);
            assert!((f64::from(lp[segment]) - host).abs() < 1e-5);
        }
        let latent = slots.latent(&latents, &Device::Cpu)?;
        assert_eq!(latent.presence.to_vec2::<f32>()?, [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]);
        assert_eq!(latent.codes.to_vec1::<f32>()?, [1.0, 1.0, 0.0]);
        Ok(())
    }

    #[test]
    fn sampling_follows_the_softmax() {
        let logits = [0.0f32, (3.0f32).ln(), 0.0]; // probabilities 1/5, 3/5, 1/5
        let slots = Slots { segments: 1, slots: 1, actions: 3, slot_ok: &[1.0], exists: &[1.0] };
        let mut rng = Rng::derive(2, 0, 0);
        let n = 20_000;
        let ones = (0..n).filter(|_| slots.sample(&logits, 0.0, &mut rng)[0].0 == [1]).count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.6).abs() < 0.02, "{share}");
        // Exploring half the time: 0.5 · 3/5 + 0.5 · 3/4 (π among the codes alone), with
        // that log-probability.
        let (mut ones, mut logp) = (0, 0.0);
        for _ in 0..n {
            let (latent, lp) = slots.sample(&logits, 0.5, &mut rng).remove(0);
            if latent == [1] {
                ones += 1;
                logp = lp;
            }
        }
        let expected = 0.5 * 0.6 + 0.5 * 0.75;
        assert!((ones as f64 / n as f64 - expected).abs() < 0.02);
        assert!((logp - f64::ln(expected)).abs() < 1e-6);
    }
}
