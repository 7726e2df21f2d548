//! "The match continues": one binary event per token while the main match model predicts,
//! so that inside a long repeat a token costs one bit the models are nearly sure of (at
//! 16-bit precision, 2·10^-5 bits) rather than a tree of them. Its probability mixes the
//! network's for the predicted token with the hit rate of matches of this length, and an
//! APM on the length refines it.

use super::counter::{FRESH, p16, update};
use super::io::Io;
use super::logistic::{P_MAX, squash, stretch};
use super::mixer::{Apm, Mixer, W_ONE};
use super::{APM_RATE, LEN_BUCKETS, MATCH_LIMIT, MIXER_SHIFT, len_bucket};
use crate::t5::dist::NetDist;
use crate::t5::matcher::MatchPrediction;

const REPEAT_INPUTS: usize = 3;
/// Match lengths (tokens) from which the event is coded; shorter matches are only inputs
/// of the tree, where a miss costs less.
pub const REPEAT_FROM: u32 = 32;
const REPEAT_SHARED: u32 = 256;

pub struct RepeatModel {
    hits: Vec<u32>,
    mixer: Mixer,
    apm: Apm,
}

impl RepeatModel {
    pub fn new() -> RepeatModel {
        RepeatModel {
            hits: vec![FRESH; LEN_BUCKETS],
            mixer: Mixer::new(&[0, W_ONE / 2, W_ONE / 2], LEN_BUCKETS, MIXER_SHIFT),
            apm: Apm::new(LEN_BUCKETS, APM_RATE),
        }
    }

    /// Codes whether `token` (ignored when decoding) is `pred.token`; returns whether.
    pub fn code(&mut self, table: &impl NetDist, pred: MatchPrediction, token: u32, io: &mut impl Io) -> bool {
        // Matches of 256 tokens and more share one bucket: they all come true nearly always,
        // and a block of one long repeat should not pay to learn that once per doubling.
        let bucket = len_bucket(pred.len.min(REPEAT_SHARED));
        let p_net = table.p16(pred.token as usize).clamp(1, P_MAX);
        let x: [i32; REPEAT_INPUTS] = [256, stretch(p_net), stretch(p16(self.hits[bucket]))];
        let p_mix = squash(self.mixer.mix(&x, bucket));
        let (p_apm, at) = self.apm.refine(p_mix, bucket);
        // The APM alone: it reaches the coder's precision sooner than the mixer.
        let p = p_apm;
        let hit = io.bit(u32::from(token == pred.token), p);
        self.mixer.update(&x, bucket, p_mix, hit);
        self.apm.update(at, hit);
        update(&mut self.hits[bucket], hit, MATCH_LIMIT);
        hit == 1
    }
}
