//! A byte-oriented range coder (LZMA's carry-propagating design) for the residual half of
//! the two-part code: it turns symbols under integer frequency tables into bytes at close
//! to their ideal cost, and back.
//!
//! Frequencies are integers with a total of at most 2^16 and the range is kept at or
//! above 2^24, so `range / total` never drops below 2^8 and every symbol keeps a non-empty
//! interval. All arithmetic is integer and identical on every machine.
//!
//! Two small savings over LZMA's byte layout, both invisible to callers: LZMA's first
//! output byte is always zero and is not written, and `finish` picks the final code point
//! with the most trailing zero bytes and drops them, because the decoder reads zeros past
//! the end anyway.

/// The range never stays below this between symbols (one byte of headroom under 2^32).
const TOP: u32 = 1 << 24;
/// Largest total a caller may code under: keeps `range / total >= 2^8`.
const MAX_TOTAL: u32 = 1 << 16;
/// Fields wider than this are split, so each piece stays within `MAX_TOTAL`.
const MAX_BITS_PER_STEP: u32 = 16;

/// The size of the subinterval for `[cum, cum + freq)` out of `total`, given `r =
/// range / total`. The last symbol also takes the rounding slack `range - r * total`,
/// which would otherwise be wasted; the decoder's clamp in `decode_freq` maps that slack
/// to the last symbol too.
fn sub_range(range: u32, r: u32, cum: u32, freq: u32, total: u32) -> u32 {
    if cum + freq >= total { range - r * cum } else { r * freq }
}

/// Clamps a (cum, freq, total) triple into the coder's contract, so a caller's bug makes
/// undecodable output (caught by the frame checksum) rather than a panic or a hang.
fn sanitize(cum: u32, freq: u32, total: u32) -> (u32, u32, u32) {
    debug_assert!(
        freq > 0 && cum.checked_add(freq).is_some_and(|end| end <= total) && total <= MAX_TOTAL,
        "range coder contract broken: cum {cum} freq {freq} total {total}"
    );
    let total = total.clamp(1, MAX_TOTAL);
    let cum = cum.min(total - 1);
    let freq = freq.clamp(1, total - cum);
    (cum, freq, total)
}

/// Where coded intervals go: the range coder, or a tally of their ideal code length.
pub trait CodeSink {
    /// Codes the interval [cum, cum + freq) of `total`.
    fn encode(&mut self, cum: u32, freq: u32, total: u32);
}

/// The code length an ideal coder would spend, in bits: what the model predicts, without
/// the range coder's rounding and flush.
#[derive(Debug, Default, Clone, Copy)]
pub struct BitTally(pub f64);

impl CodeSink for BitTally {
    fn encode(&mut self, _cum: u32, freq: u32, total: u32) {
        self.0 -= (f64::from(freq) / f64::from(total)).log2();
    }
}

impl CodeSink for RangeEncoder {
    fn encode(&mut self, cum: u32, freq: u32, total: u32) {
        RangeEncoder::encode(self, cum, freq, total);
    }
}

pub struct RangeEncoder {
    /// Bottom of the current interval; bit 32 is a pending carry into `cache`.
    low: u64,
    range: u32,
    /// The last byte not yet written, because a carry may still increment it.
    cache: u8,
    /// `cache` plus the number of 0xFF bytes after it that a carry would turn into zeros.
    cache_size: u64,
    /// The first byte LZMA would write is always zero (the code point lies below 1.0);
    /// it is swallowed instead of stored.
    skip_first: bool,
    out: Vec<u8>,
}

impl Default for RangeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeEncoder {
    pub fn new() -> Self {
        RangeEncoder { low: 0, range: u32::MAX, cache: 0, cache_size: 1, skip_first: true, out: Vec::new() }
    }

    /// Codes the symbol whose interval is `[cum, cum + freq)` out of `total`.
    /// Contract: `0 < freq`, `cum + freq <= total <= 2^16`.
    pub fn encode(&mut self, cum: u32, freq: u32, total: u32) {
        let (cum, freq, total) = sanitize(cum, freq, total);
        let r = self.range / total;
        self.low += u64::from(r) * u64::from(cum);
        self.range = sub_range(self.range, r, cum, freq, total);
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// Codes the low `nbits` bits of `value` as a uniformly distributed field (most
    /// significant piece first), at `nbits` bits of cost. Up to 32 bits.
    pub fn encode_bits(&mut self, value: u32, nbits: u32) {
        for (shift, width) in bit_steps(nbits) {
            let piece = (value >> shift) & ((1 << width) - 1);
            self.encode(piece, 1, 1 << width);
        }
    }

    /// Flushes the coder and returns the coded bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // Any point in [low, low + range) decodes the same; the one with the most trailing
        // zero bits lets the most trailing bytes go unwritten.
        let end = self.low + u64::from(self.range);
        for bits in (0..=32).rev() {
            let mask = (1u64 << bits) - 1;
            let point = (self.low + mask) & !mask;
            if point < end {
                self.low = point;
                break;
            }
        }
        for _ in 0..5 {
            self.shift_low();
        }
        while self.out.last() == Some(&0) {
            self.out.pop();
        }
        self.out
    }

    /// Moves the top byte of `low` towards the output, holding back bytes a later carry
    /// could still change.
    fn shift_low(&mut self) {
        if self.low < 0xFF00_0000 || self.low >= 1 << 32 {
            let carry = (self.low >> 32) as u8;
            let mut byte = self.cache;
            loop {
                self.emit(byte.wrapping_add(carry));
                byte = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    fn emit(&mut self, byte: u8) {
        if self.skip_first {
            self.skip_first = false;
        } else {
            self.out.push(byte);
        }
    }
}

/// Splits an `nbits`-wide field into (shift, width) pieces of at most 16 bits, top first.
fn bit_steps(nbits: u32) -> impl Iterator<Item = (u32, u32)> {
    debug_assert!(nbits <= 32, "a field of {nbits} bits");
    let nbits = nbits.min(32);
    let steps = nbits.div_ceil(MAX_BITS_PER_STEP);
    (0..steps).map(move |i| {
        let shift = (steps - 1 - i) * MAX_BITS_PER_STEP;
        (shift, (nbits - shift).min(MAX_BITS_PER_STEP))
    })
}

/// Decodes what `RangeEncoder` wrote. Input is untrusted: past its end it reads zero
/// bytes, and garbage decodes to garbage symbols but never panics, loops or indexes out
/// of range; the frame checksum is what rejects it.
pub struct RangeDecoder<'a> {
    input: &'a [u8],
    pos: usize,
    range: u32,
    /// The code point minus the bottom of the current interval.
    code: u32,
}

impl<'a> RangeDecoder<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        let mut decoder = RangeDecoder { input, pos: 0, range: u32::MAX, code: 0 };
        for _ in 0..4 {
            decoder.code = (decoder.code << 8) | u32::from(decoder.next_byte());
        }
        decoder
    }

    /// The value in `[0, total)` that the next symbol's interval must contain; follow it
    /// with `consume` for the symbol found. Corrupt input is clamped to `total - 1`.
    pub fn decode_freq(&mut self, total: u32) -> u32 {
        let total = total.clamp(1, MAX_TOTAL);
        let r = self.range / total;
        (self.code / r).min(total - 1)
    }

    /// Removes the symbol `[cum, cum + freq)` out of `total`, as found by `decode_freq`.
    pub fn consume(&mut self, cum: u32, freq: u32, total: u32) {
        let (cum, freq, total) = sanitize(cum, freq, total);
        let r = self.range / total;
        // Wrapping: with corrupt input the code may lie outside the interval.
        self.code = self.code.wrapping_sub(r * cum);
        self.range = sub_range(self.range, r, cum, freq, total);
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(self.next_byte());
        }
    }

    /// Reads a field written by `encode_bits` with the same `nbits`.
    pub fn decode_bits(&mut self, nbits: u32) -> u32 {
        let mut value = 0u32;
        for (shift, width) in bit_steps(nbits) {
            let total = 1 << width;
            let piece = self.decode_freq(total);
            self.consume(piece, 1, total);
            value |= piece << shift;
        }
        value
    }

    fn next_byte(&mut self) -> u8 {
        let byte = self.input.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_stream_is_empty() {
        assert!(RangeEncoder::new().finish().is_empty());
    }

    #[test]
    fn bits_round_trip_all_widths() {
        let fields: Vec<(u32, u32)> = (0..=32u32)
            .flat_map(|n| {
                let max = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                [(0, n), (max, n), (0x9E37_79B9 & max, n)]
            })
            .collect();
        let mut enc = RangeEncoder::new();
        for &(v, n) in &fields {
            enc.encode_bits(v, n);
        }
        let bytes = enc.finish();
        let total_bits: u32 = fields.iter().map(|f| f.1).sum();
        assert!(bytes.len() as u32 <= total_bits.div_ceil(8) + 2, "{} bytes", bytes.len());
        let mut dec = RangeDecoder::new(&bytes);
        for &(v, n) in &fields {
            assert_eq!(dec.decode_bits(n), v, "field of {n} bits");
        }
    }

    /// A run of the most likely symbol of a very skewed table produces carries through
    /// long runs of 0xFF: the case LZMA's cache exists for.
    #[test]
    fn carries_through_ff_runs() {
        let total = 1 << 16;
        let mut symbols = vec![(0u32, total - 1); 5000];
        symbols.extend((0..200).map(|i| if i % 3 == 0 { (total - 1, 1) } else { (0, total - 1) }));
        let mut enc = RangeEncoder::new();
        for &(cum, freq) in &symbols {
            enc.encode(cum, freq, total);
        }
        let bytes = enc.finish();
        let mut dec = RangeDecoder::new(&bytes);
        for &(cum, freq) in &symbols {
            let target = dec.decode_freq(total);
            assert!(target >= cum && target < cum + freq);
            dec.consume(cum, freq, total);
        }
    }

    proptest! {
        #[test]
        fn bits_round_trip(fields in proptest::collection::vec((any::<u32>(), 0u32..=32), 0..200)) {
            let mut enc = RangeEncoder::new();
            for &(v, n) in &fields {
                enc.encode_bits(v, n);
            }
            let bytes = enc.finish();
            let mut dec = RangeDecoder::new(&bytes);
            for &(v, n) in &fields {
                let mask = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                prop_assert_eq!(dec.decode_bits(n), v & mask);
            }
        }

        /// Arbitrary bytes and arbitrary (even contract-breaking) calls never panic.
        #[test]
        fn garbage_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..64),
            calls in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..64),
        ) {
            let mut dec = RangeDecoder::new(&input);
            for &(a, b, total) in &calls {
                let total = total % (MAX_TOTAL + 1);
                let target = dec.decode_freq(total);
                prop_assert!(target < total.max(1));
                if total > 0 && b % total > 0 && a % total + b % total <= total {
                    dec.consume(a % total, b % total, total);
                }
                dec.decode_bits(a % 33);
            }
        }
    }
}
