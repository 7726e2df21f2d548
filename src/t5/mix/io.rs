//! One code path for both directions: the coder's decisions go to an `Io`, which either
//! codes a known value (compression, or a tally of its cost) or reads it from a stream
//! (decompression) and returns it. The model code above it runs identically either way,
//! which is what keeps a frame decodable.

use crate::t5::error::Result;
use crate::t5::freq::{FREQ_TOTAL, FreqTable};
use crate::t5::range::{CodeSink, RangeDecoder};

pub trait Io {
    /// Codes `value` (ignored when decoding) as uniform over `0..total`; returns it.
    fn uniform(&mut self, value: u32, total: u32) -> u32;
    /// Codes `bit` (ignored when decoding) with P(1) = `p1` / 65536, `p1` in 1..=65535;
    /// returns it.
    fn bit(&mut self, bit: u32, p1: u32) -> u32;
    /// Codes `symbol` (ignored when decoding) under `table`; returns it.
    fn symbol(&mut self, table: &FreqTable, symbol: usize) -> Result<usize>;
}

/// The likelier bit under P(1) = `p1` / 2^16, and its frequency.
fn likely(p1: u32) -> (u32, u32) {
    if p1 >= FREQ_TOTAL / 2 { (1, p1) } else { (0, FREQ_TOTAL - p1) }
}

/// The interval of `bit`: the likelier bit takes the top of the range, the last symbol's
/// place, where the range coder gives it the rounding slack too. With the likelier bit
/// first, a bit the models are sure of would lose up to 2^16 / range of its interval to
/// rounding (about 10^-4 bits each time, as much as its own cost).
fn interval(bit: u32, p1: u32) -> (u32, u32) {
    let (likely, p_likely) = likely(p1);
    if bit == likely { (FREQ_TOTAL - p_likely, p_likely) } else { (0, FREQ_TOTAL - p_likely) }
}

/// Coding known values into a sink.
pub struct Encode<'a, S: CodeSink>(pub &'a mut S);

impl<S: CodeSink> Io for Encode<'_, S> {
    fn uniform(&mut self, value: u32, total: u32) -> u32 {
        self.0.encode(value, 1, total);
        value
    }

    fn bit(&mut self, bit: u32, p1: u32) -> u32 {
        let (cum, freq) = interval(bit, p1);
        self.0.encode(cum, freq, FREQ_TOTAL);
        bit
    }

    fn symbol(&mut self, table: &FreqTable, symbol: usize) -> Result<usize> {
        table.encode(self.0, symbol)?;
        Ok(symbol)
    }
}

impl Io for RangeDecoder<'_> {
    fn uniform(&mut self, _value: u32, total: u32) -> u32 {
        let value = self.decode_freq(total).min(total - 1);
        self.consume(value, 1, total);
        value
    }

    fn bit(&mut self, _bit: u32, p1: u32) -> u32 {
        let target = self.decode_freq(FREQ_TOTAL);
        let (likely, p_likely) = likely(p1);
        let bit = if target >= FREQ_TOTAL - p_likely { likely } else { 1 - likely };
        let (cum, freq) = interval(bit, p1);
        self.consume(cum, freq, FREQ_TOTAL);
        bit
    }

    fn symbol(&mut self, table: &FreqTable, _symbol: usize) -> Result<usize> {
        Ok(table.decode(self))
    }
}
