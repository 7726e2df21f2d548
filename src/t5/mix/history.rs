//! The contexts the in-block models key on, kept up to date token by token: the last
//! tokens (orders 1, 2, 3, 4 and 6), a sparse context that skips the last token, and the
//! current word with the one before it. Each is a 64-bit hash; `CONTEXTS` of them.

/// Hashed contexts per position.
pub const CONTEXTS: usize = 7;
const ORDER: usize = 6;
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finalizer: a hash whose every output bit depends on every input bit.
#[inline]
pub fn finish(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

#[inline]
fn combine(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(K).rotate_left(23)
}

pub struct History {
    /// The last tokens, newest first (`u32::MAX` before the block's start).
    last: [u32; ORDER],
    word: u64,
    previous_word: u64,
    /// Whether each token continues a word (its first byte is a letter or digit, or a
    /// byte of a multi-byte UTF-8 character).
    continues_word: Vec<bool>,
}

impl History {
    pub fn new(token_bytes: impl Fn(u32) -> Option<Vec<u8>>, vocab: usize) -> History {
        let continues_word = (0..vocab as u32)
            .map(|t| {
                token_bytes(t).and_then(|b| b.first().copied()).is_some_and(|b| b.is_ascii_alphanumeric() || b >= 0x80)
            })
            .collect();
        History { last: [u32::MAX; ORDER], word: 0, previous_word: 0, continues_word }
    }

    /// Takes in the newest token.
    pub fn push(&mut self, token: u32) {
        self.last.copy_within(0..ORDER - 1, 1);
        self.last[0] = token;
        if self.continues_word.get(token as usize).copied().unwrap_or(false) && self.word != 0 {
            self.word = combine(self.word, u64::from(token));
        } else {
            self.previous_word = self.word;
            self.word = combine(K, u64::from(token));
        }
    }

    /// The contexts of the next position, each tagged with its kind.
    pub fn contexts(&self) -> [u64; CONTEXTS] {
        let order = |n: usize| self.last[..n].iter().fold(n as u64, |h, &t| combine(h, u64::from(t)));
        [
            order(1),
            order(2),
            order(3),
            order(4),
            order(6),
            combine(combine(7, u64::from(self.last[1])), u64::from(self.last[2])),
            combine(combine(8, self.word), self.previous_word),
        ]
    }
}
