//! Integer logistic mixing and APM stages, as lpaq1 and paq8 combine their models: the
//! mixer adds its inputs' logits under weights it learns by online gradient descent on
//! coding cost; an APM (adaptive probability map) refines a probability in a small
//! context by interpolating between learned points of its logit.

use super::logistic::{STRETCH_MAX, squash, stretch};

/// Weight 1.0 (16.16 fixed point).
pub const W_ONE: i32 = 1 << 16;
/// Weights stay within ±16.0, so a dot product of a few dozen inputs fits an i64 easily
/// and one bad stretch of input cannot run a weight away.
const W_MAX: i32 = 16 * W_ONE;

pub struct Mixer {
    weights: Vec<i32>,
    inputs: usize,
    /// Learning rate shift: a weight moves by `input · error >> shift`.
    shift: u32,
}

impl Mixer {
    /// `sets` weight vectors (one per mixer context), each starting as `initial`.
    pub fn new(initial: &[i32], sets: usize, shift: u32) -> Mixer {
        Mixer { weights: initial.repeat(sets), inputs: initial.len(), shift }
    }

    /// The mixed logit of `x` under weight set `set`.
    #[inline]
    pub fn mix(&self, x: &[i32], set: usize) -> i32 {
        let w = &self.weights[set * self.inputs..(set + 1) * self.inputs];
        let dot: i64 = w.iter().zip(x).map(|(&w, &x)| i64::from(w) * i64::from(x)).sum();
        (dot >> 16).clamp(i64::from(-STRETCH_MAX), i64::from(STRETCH_MAX)) as i32
    }

    /// Learns from `bit`, the mix of `x` under `set` having given probability `p`.
    #[inline]
    pub fn update(&mut self, x: &[i32], set: usize, p: u32, bit: u32) {
        let err = i64::from((bit << 16) as i32 - p as i32);
        let w = &mut self.weights[set * self.inputs..(set + 1) * self.inputs];
        for (w, &x) in w.iter_mut().zip(x) {
            let step = (i64::from(x) * err) >> self.shift;
            *w = (i64::from(*w) + step).clamp(i64::from(-W_MAX), i64::from(W_MAX)) as i32;
        }
    }
}

/// Points of an APM's logit axis: every 128 units from -3072 to 3072.
const APM_POINTS: usize = 49;

pub struct Apm {
    /// Probabilities in units of 2^-22, `APM_POINTS` per context.
    points: Vec<i32>,
    rate: u32,
}

impl Apm {
    pub fn new(contexts: usize, rate: u32) -> Apm {
        let mut apm = Apm { points: vec![0; contexts * APM_POINTS], rate };
        apm.reset();
        apm
    }

    /// Every context back to the identity map (a new block).
    pub fn reset(&mut self) {
        let identity: [i32; APM_POINTS] = std::array::from_fn(|j| (squash((j as i32 - 24) * 128) as i32) << 6);
        for ctx in self.points.chunks_mut(APM_POINTS) {
            ctx.copy_from_slice(&identity);
        }
    }

    /// Asks the CPU to bring in the points of context `ctx`.
    #[inline]
    pub fn prefetch(&self, ctx: usize) {
        if let Some(points) = self.points.get(ctx * APM_POINTS..(ctx + 1) * APM_POINTS) {
            super::prefetch(points);
        }
    }

    /// The refined probability of `p` in context `ctx`, and where to update.
    #[inline]
    pub fn refine(&self, p: u32, ctx: usize) -> (u32, usize) {
        let s = stretch(p).clamp(-STRETCH_MAX, STRETCH_MAX) + 3072;
        let (j, w) = ((s >> 7) as usize, s & 127);
        let at = ctx * APM_POINTS + j;
        let q = (i64::from(self.points[at]) * i64::from(128 - w) + i64::from(self.points[at + 1]) * i64::from(w)) >> 13;
        ((q as u32).clamp(1, super::logistic::P_MAX), at)
    }

    /// Learns `bit` at the two points `refine` interpolated between.
    #[inline]
    pub fn update(&mut self, at: usize, bit: u32) {
        let target = if bit != 0 { (1 << 22) - 1 } else { 0 };
        for point in &mut self.points[at..at + 2] {
            *point += (target - *point) >> self.rate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixer_learns_to_trust_the_input_that_is_right() {
        let mut m = Mixer::new(&[W_ONE / 4, W_ONE / 4], 1, 16);
        // Input 0 always says "1" strongly and is right; input 1 says "0" and is wrong.
        let x = [1500, -1500];
        let before = squash(m.mix(&x, 0));
        for _ in 0..300 {
            let p = squash(m.mix(&x, 0));
            m.update(&x, 0, p, 1);
        }
        let after = squash(m.mix(&x, 0));
        assert!(before == 32768 && after > 60000, "{before} → {after}");
    }

    #[test]
    fn an_apm_starts_as_the_identity_and_learns() {
        let mut a = Apm::new(2, 6);
        for p in [1000u32, 32768, 50000] {
            let (q, _) = a.refine(p, 1);
            assert!(q.abs_diff(p) < p / 50 + 40, "{p} → {q}");
        }
        for _ in 0..200 {
            let (_, at) = a.refine(32768, 0);
            a.update(at, 1);
        }
        assert!(a.refine(32768, 0).0 > 60000);
        assert!(a.refine(32768, 1).0.abs_diff(32768) < 100, "the other context is untouched");
    }
}
