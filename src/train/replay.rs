//! The replay buffer of the reinforcement-learning stage: latents that earlier policy
//! snapshots sampled, kept with the probability their policy gave them, so that later
//! steps learn from them again (off-policy) with clipped importance weights.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::windows::Window;

/// One window's samples: for each of the window's segments, several latents drawn by the
/// policy of `step`, each with its log-probability under that policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub block: u32,
    pub start: u32,
    /// The step whose policy drew the samples.
    pub step: u64,
    /// [sample][segment of the window] → codes.
    pub latents: Vec<Vec<Vec<u32>>>,
    /// [sample][segment] → log-probability under the behaviour policy.
    pub log_probs: Vec<Vec<f64>>,
}

impl Group {
    pub fn window(&self) -> Window {
        Window { block: self.block, start: self.start }
    }
}

/// First in, first out, at most `capacity` groups; saved with the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBuffer {
    capacity: usize,
    groups: VecDeque<Group>,
}

impl ReplayBuffer {
    pub fn new(capacity: usize) -> ReplayBuffer {
        ReplayBuffer { capacity, groups: VecDeque::with_capacity(capacity) }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn push(&mut self, group: Group) {
        if self.capacity == 0 {
            return;
        }
        if self.groups.len() == self.capacity {
            self.groups.pop_front();
        }
        self.groups.push_back(group);
    }

    /// Up to `n` groups drawn uniformly (with replacement); none from an empty buffer.
    pub fn draw(&self, n: usize, rng: &mut Rng) -> Vec<Group> {
        if self.groups.is_empty() {
            return Vec::new();
        }
        (0..n).map(|_| self.groups[rng.below(self.groups.len())].clone()).collect()
    }
}

/// The importance weight of a sample drawn with `behaviour` log-probability, now
/// `current`: π/μ truncated to [floor, clip]. Above, as Retrace and V-trace truncate: a
/// sample an older or more exploring policy liked far more than the current one cannot
/// dominate a step. Below, so that a decision the policy has all but ruled out (π ≈ 0,
/// where the exact weight vanishes) is still learned back when trying it pays.
pub fn importance_weight(current: f64, behaviour: f64, floor: f64, clip: f64) -> f64 {
    let ratio = (current - behaviour).min(clip.ln()).exp();
    ratio.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(step: u64) -> Group {
        Group { block: 1, start: step as u32, step, latents: vec![vec![vec![3, 4]]], log_probs: vec![vec![-1.5]] }
    }

    #[test]
    fn weights_are_the_probability_ratio_clipped() {
        // The sampling policy itself: weight 1.
        assert!((importance_weight(-2.0, -2.0, 0.0, 1.0) - 1.0).abs() < 1e-12);
        // The current policy likes the sample half as much as the one that drew it.
        assert!((importance_weight(-2.0 + 0.5f64.ln(), -2.0, 0.0, 1.0) - 0.5).abs() < 1e-12);
        // Twice as much: clipped to 1 (or to 1.5 with a looser clip).
        assert!((importance_weight(-2.0 + 2f64.ln(), -2.0, 0.0, 1.0) - 1.0).abs() < 1e-12);
        assert!((importance_weight(-2.0 + 2f64.ln(), -2.0, 0.0, 1.5) - 1.5).abs() < 1e-12);
        // A latent the current policy no longer takes weighs nothing, never NaN, or the
        // floor.
        assert_eq!(importance_weight(f64::NEG_INFINITY, -1.0, 0.0, 1.0), 0.0);
        assert_eq!(importance_weight(f64::NEG_INFINITY, -1.0, 0.25, 1.0), 0.25);
        assert!((importance_weight(-2.0 + 0.5f64.ln(), -2.0, 0.25, 1.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn groups_of_several_snapshots_are_reused_and_the_oldest_go_first() {
        let mut buffer = ReplayBuffer::new(3);
        assert!(buffer.draw(4, &mut Rng::derive(1, 0, 0)).is_empty());
        for step in 0..5 {
            buffer.push(group(step));
        }
        assert_eq!(buffer.len(), 3);
        let mut rng = Rng::derive(1, 0, 1);
        let drawn = buffer.draw(200, &mut rng);
        assert_eq!(drawn.len(), 200);
        let mut steps: Vec<u64> = drawn.iter().map(|g| g.step).collect();
        steps.sort_unstable();
        steps.dedup();
        // Every kept snapshot's samples come back, the evicted ones never.
        assert_eq!(steps, [2, 3, 4]);
        assert_eq!(drawn[0].window().block, 1);

        // Saved with a checkpoint and read back, the buffer is the same.
        let json = serde_json::to_string(&buffer).expect("serialize");
        let back: ReplayBuffer = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, buffer);
        assert!(ReplayBuffer::new(0).draw(1, &mut rng).is_empty());
    }
}
