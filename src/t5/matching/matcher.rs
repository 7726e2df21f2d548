//! The match model of CODER.md ("The match model"): in-block repeats, predicted in
//! integers only, so the coder, the decoder and training see the same (pred, bucket) at
//! every position.
//!
//! A small network forgets what it saw a few hundred tokens ago; a repeated context of
//! four tokens is strong evidence that what followed it last time follows again. The
//! network learns how much to trust that (`match.boost` per bucket); this module only
//! finds the repeats.

/// Tokens hashed into a context key.
pub const MATCH_MIN: usize = 4;
/// Longest backward verification of a new match.
const VERIFY_MAX: usize = 32;
/// Largest bucket: `boost` has `MATCH_BUCKETS` entries, entry 0 unused.
pub const MATCH_BUCKETS: usize = 16;
const KEY_BITS: u32 = 16;
const MULT: u32 = 0x9E37_79B1;

/// What the match model expects of the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchPrediction {
    pub token: u32,
    /// `min(match length, 15)`, 1..=15: indexes `match.boost`.
    pub bucket: u8,
    /// The match length (tokens that agreed, verified back at most 32 when it began).
    pub len: u32,
}

/// The match model's state over one block's token sequence.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// One past the position where a context last ended; 0 = never seen.
    last: Vec<u32>,
    /// Position of the predicted next token.
    ptr: usize,
    /// Length of the current match; 0 = no match.
    len: u32,
    /// Tokens hashed into a context key.
    min: usize,
}

impl Default for Matcher {
    fn default() -> Matcher {
        Matcher::new()
    }
}

fn key(context: &[u32]) -> usize {
    let mut h = context[0].wrapping_mul(MULT);
    for &x in &context[1..] {
        h = (h ^ x).wrapping_mul(MULT);
    }
    (h >> (32 - KEY_BITS)) as usize
}

impl Matcher {
    pub fn new() -> Matcher {
        Matcher::with_min(MATCH_MIN)
    }

    /// A matcher keyed on contexts of `min` tokens (at least 1).
    pub fn with_min(min: usize) -> Matcher {
        Matcher { last: vec![0; 1 << KEY_BITS], ptr: 0, len: 0, min: min.max(1) }
    }

    /// Takes in the newest token: `tokens` is the block's sequence up to and including
    /// it. Calls must come once per token, in order, starting with the block's first.
    pub fn push(&mut self, tokens: &[u32]) {
        let Some(t) = tokens.len().checked_sub(1) else {
            return;
        };
        if self.len > 0 && tokens.get(self.ptr) == Some(&tokens[t]) {
            self.len += 1;
            self.ptr += 1;
        } else {
            self.len = 0;
        }
        if t + 1 < self.min {
            return;
        }
        let key = key(&tokens[t + 1 - self.min..=t]);
        let q = self.last[key] as usize;
        if self.len == 0 && q != 0 {
            self.ptr = q;
            self.len = (0..VERIFY_MAX.min(q)).take_while(|&k| tokens[q - 1 - k] == tokens[t - k]).count() as u32;
        }
        // Positions in a block are far below 2^32 (a block is at most 1 MiB of bytes).
        self.last[key] = (t + 1) as u32;
        if self.ptr > t {
            self.len = 0;
        }
    }

    /// The prediction for the token after those pushed so far (`tokens` as last pushed).
    pub fn predict(&self, tokens: &[u32]) -> Option<MatchPrediction> {
        if self.len == 0 {
            return None;
        }
        Some(MatchPrediction {
            token: *tokens.get(self.ptr)?,
            bucket: self.len.min(MATCH_BUCKETS as u32 - 1) as u8,
            len: self.len,
        })
    }
}

/// The prediction for each position of a whole block: entry `i` is what the match model
/// expects of `tokens[i]` having seen `tokens[..i]`.
pub fn match_predictions(tokens: &[u32]) -> Vec<Option<MatchPrediction>> {
    let mut matcher = Matcher::new();
    let mut out = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        out.push(matcher.predict(&tokens[..i]));
        matcher.push(&tokens[..=i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_specified_one() {
        let c = 0x9E37_79B1u32;
        let (x0, x1, x2, x3) = (5u32, 700, 1, 2047);
        let h = ((((x0.wrapping_mul(c) ^ x1).wrapping_mul(c) ^ x2).wrapping_mul(c) ^ x3).wrapping_mul(c)) >> 16;
        assert_eq!(key(&[x0, x1, x2, x3]), h as usize);
    }

    #[test]
    fn a_repeat_is_predicted_and_grows() {
        // 1 2 3 4 5 6 7 | 1 2 3 4 5 6 7
        let tokens: Vec<u32> = (1..=7).chain(1..=7).collect();
        let preds = match_predictions(&tokens);
        // No repeat is known before the second "1 2 3 4" is complete.
        assert!(preds[..11].iter().all(Option::is_none), "{preds:?}");
        // After the second "4" (position 10), the context 1 2 3 4 ended at 3: predict 5
        // with a verified length of 4, then 5, 6.
        assert_eq!(preds[11].map(|p| (p.token, p.bucket)), Some((5, 4)));
        assert_eq!(preds[12].map(|p| (p.token, p.bucket)), Some((6, 5)));
        assert_eq!(preds[13].map(|p| (p.token, p.bucket)), Some((7, 6)));
    }

    #[test]
    fn a_mismatch_drops_the_match_and_bucket_saturates() {
        let mut tokens: Vec<u32> = (0..40).collect();
        tokens.extend(0..30);
        tokens.push(999);
        tokens.push(1000);
        let preds = match_predictions(&tokens);
        assert_eq!(preds[40 + 29].map(|p| p.bucket), Some(15));
        assert_eq!(preds[40 + 29].map(|p| p.token), Some(29));
        // Position 70 was predicted as 30 but is 999: the next position has no match.
        assert_eq!(preds[70].map(|p| p.token), Some(30));
        assert_eq!(preds[71], None);
    }

    #[test]
    fn verification_is_capped_and_incremental_pushes_agree() {
        let tokens: Vec<u32> = [7u32; 100].into_iter().chain([1, 7, 7, 7, 7, 2]).collect();
        let whole = match_predictions(&tokens);
        let mut m = Matcher::new();
        for i in 0..tokens.len() {
            assert_eq!(m.predict(&tokens[..i]), whole[i], "position {i}");
            m.push(&tokens[..=i]);
        }
        // A run of one token matches itself one step back, verified over the four
        // tokens the first context had.
        assert_eq!(whole[5].map(|p| (p.token, p.bucket)), Some((7, 4)));
        assert_eq!(whole[40].map(|p| (p.token, p.bucket)), Some((7, 15)));
        assert!(whole.iter().flatten().all(|p| (1..16).contains(&p.bucket)));
    }
}
