//! Training windows and batches, laid out on the host exactly as the model consumes them.
//!
//! The decoder at position p reads the token before p (`START_TOKEN` at the block's
//! start) and predicts token p, attending to the latent of p's segment, as the coder
//! runs it (`t5::Predictor`). A window is `window` positions starting at a segment
//! boundary.

use super::corpus::TokenBlock;
use super::rng::Rng;
use crate::t5::{ModelConfig, START_TOKEN};

/// A window: block index and the position of its first predicted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub block: u32,
    pub start: u32,
}

/// Every window of the blocks: one per segment start.
pub fn windows(blocks: &[TokenBlock], segment: usize) -> Vec<Window> {
    let mut out = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let n = block.tokens.len();
        for start in (0..n).step_by(segment) {
            out.push(Window { block: b as u32, start: start as u32 });
        }
    }
    out
}

/// `n` windows drawn uniformly (with replacement).
pub fn sample(all: &[Window], n: usize, rng: &mut Rng) -> Vec<Window> {
    (0..n).map(|_| all[rng.below(all.len())]).collect()
}

/// A batch of `b` windows of `w` positions, `s` segments of `len` tokens each
/// (`s = b · w / len`), as flat row-major arrays.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub windows: usize,
    pub positions: usize,
    /// Decoder input tokens [b, w]: the token before each position.
    pub input: Vec<u32>,
    /// Tokens to predict [b · w] (0 where masked).
    pub target: Vec<u32>,
    /// 1 where the target is coded by the model [b · w].
    pub target_ok: Vec<f32>,
    /// The match model's prediction and bucket for each target [b · w].
    pub pred: Vec<u32>,
    pub bucket: Vec<u32>,
    /// Encoder input per segment [s, len] and its validity.
    pub segment_tokens: Vec<u32>,
    pub segment_ok: Vec<f32>,
    /// Mean-pooling weights of each latent slot over the segment [s, latent_max, len].
    pub pool: Vec<f32>,
    /// 1 for a slot whose part of the segment holds tokens [s, latent_max]: an empty
    /// part ends the latent.
    pub slot_ok: Vec<f32>,
    /// 1 for a segment that exists in its block (its latent is coded) [s].
    pub segment_exists: Vec<f32>,
    /// Bytes of the coded targets: what bits per byte divide by.
    pub bytes: u64,
}

impl Batch {
    pub fn build(blocks: &[TokenBlock], windows: &[Window], config: &ModelConfig, token_len: &[u32]) -> Batch {
        let (w, len, slots) = (config.window, config.segment, config.latent_max);
        let mut batch = Batch { windows: windows.len(), positions: w, ..Batch::default() };
        for window in windows {
            let block = &blocks[window.block as usize];
            let n = block.tokens.len();
            let start = window.start as usize;
            for p in start..start + w {
                // Past the block's end, positions are padding: nothing before them
                // attends to them (causal), and they carry no loss.
                let input = match p {
                    0 => START_TOKEN,
                    _ => block.tokens.get(p - 1).map_or(0, |&t| u32::from(t)),
                };
                batch.input.push(input);
                let coded = p < n;
                let target = if coded { u32::from(block.tokens[p]) } else { 0 };
                batch.target.push(target);
                batch.target_ok.push(if coded { 1.0 } else { 0.0 });
                let bucket = if coded { block.bucket[p] } else { 0 };
                batch.bucket.push(u32::from(bucket));
                batch.pred.push(if bucket > 0 { u32::from(block.pred[p]) } else { 0 });
                if coded {
                    batch.bytes += u64::from(token_len[target as usize]);
                }
            }
            for seg_start in (start..start + w).step_by(len) {
                let count = n.saturating_sub(seg_start).min(len);
                for i in 0..len {
                    let real = i < count;
                    batch.segment_tokens.push(if real { u32::from(block.tokens[seg_start + i]) } else { 0 });
                    batch.segment_ok.push(if real { 1.0 } else { 0.0 });
                }
                let pool = pool_weights(count, len, slots);
                batch.slot_ok.extend(pool.chunks(len).map(|row| if row.iter().any(|&x| x > 0.0) { 1.0 } else { 0.0 }));
                batch.pool.extend(pool);
                batch.segment_exists.push(if count > 0 { 1.0 } else { 0.0 });
            }
        }
        batch
    }

    pub fn segments(&self) -> usize {
        self.segment_exists.len()
    }
}

/// Slot p of a segment of `count` tokens averages positions
/// `[p·count/slots, (p+1)·count/slots)` (CODER.md, "Coding a block"); an empty part
/// averages nothing and is zero. Rows of `len` weights, one per slot.
pub fn pool_weights(count: usize, len: usize, slots: usize) -> Vec<f32> {
    let mut out = vec![0.0; slots * len];
    for p in 0..slots {
        let (lo, hi) = (p * count / slots, (p + 1) * count / slots);
        for i in lo..hi {
            out[p * len + i] = 1.0 / (hi - lo) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> TokenBlock {
        TokenBlock {
            tokens: (0..n as u16).map(|t| t + 10).collect(),
            pred: vec![7; n],
            bucket: (0..n).map(|i| (i % 3) as u8).collect(),
        }
    }

    #[test]
    fn windows_shift_inputs_and_mask_the_padding() {
        let config = ModelConfig { window: 4, segment: 2, latent_max: 2, ..ModelConfig::default() };
        let blocks = [block(5)];
        let all = windows(&blocks, config.segment);
        assert_eq!(all.iter().map(|w| w.start).collect::<Vec<_>>(), [0, 2, 4]);
        let lens = vec![1; 2048];
        let b = Batch::build(&blocks, &all[..2], &config, &lens);
        // Window 0: positions 0..4; position 0 reads the start token.
        assert_eq!(&b.input[..4], [START_TOKEN, 10, 11, 12]);
        assert_eq!(&b.target[..4], [10, 11, 12, 13]);
        assert_eq!(&b.target_ok[..4], [1.0; 4]);
        assert_eq!(&b.bucket[..4], [0, 1, 2, 0]);
        assert_eq!(&b.pred[..4], [0, 7, 7, 0]);
        // Window 1: positions 2..6 of a 5-token block.
        assert_eq!(&b.input[4..], [11, 12, 13, 14]);
        assert_eq!(&b.target_ok[4..], [1.0, 1.0, 1.0, 0.0]);
        assert_eq!(b.bytes, 4 + 3);
        // Segments: [10 11] [12 13] | [12 13] [14 -]; the last one's first part is empty.
        assert_eq!(b.segment_tokens, [10, 11, 12, 13, 12, 13, 14, 0]);
        assert_eq!(b.segment_exists, [1.0; 4]);
        assert_eq!(&b.pool[12..], [0.0, 0.0, 1.0, 0.0]);
        assert_eq!(b.slot_ok, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
        assert_eq!(b.segments(), 4);
    }

    #[test]
    fn pooling_splits_evenly() {
        assert_eq!(pool_weights(4, 4, 2), [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
        assert_eq!(pool_weights(1, 2, 2), [0.0, 0.0, 1.0, 0.0]);
        assert_eq!(pool_weights(0, 1, 2), [0.0, 0.0]);
    }
}
