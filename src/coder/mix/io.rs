//! One code path for both directions: the coder's decisions go to an `Io`, which either
//! codes a known value (compression, or a tally of its cost) or reads it from a stream
//! (decompression) and returns it. The model code above it runs identically either way,
//! which is what keeps a frame decodable.

use crate::coder::error::Result;
use crate::coder::freq::{FREQ_TOTAL, FreqTable};
use crate::coder::range::{CodeSink, RangeDecoder};

pub trait Io {
    /// Codes `value` (ignored when decoding) as uniform over `0..total`; returns it.
    fn uniform(&mut self, value: u32, total: u32) -> u32;
    /// Codes `bit` (ignored when decoding) with P(1) = `p1` / 65536, `p1` in 1..=65535;
    /// returns it.
    fn bit(&mut self, bit: u32, p1: u32) -> u32;
    /// Codes `symbol` (ignored when decoding) under `table`; returns it.
    fn symbol(&mut self, table: &FreqTable, symbol: usize) -> Result<usize>;
}

/// Coding known values into a sink.
pub struct Encode<'a, S: CodeSink>(pub &'a mut S);

impl<S: CodeSink> Io for Encode<'_, S> {
    fn uniform(&mut self, value: u32, total: u32) -> u32 {
        self.0.encode(value, 1, total);
        value
    }

    fn bit(&mut self, bit: u32, p1: u32) -> u32 {
        if bit != 0 {
            self.0.encode(0, p1, FREQ_TOTAL);
        } else {
            self.0.encode(p1, FREQ_TOTAL - p1, FREQ_TOTAL);
        }
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
        if self.decode_freq(FREQ_TOTAL) < p1 {
            self.consume(0, p1, FREQ_TOTAL);
            1
        } else {
            self.consume(p1, FREQ_TOTAL - p1, FREQ_TOTAL);
            0
        }
    }

    fn symbol(&mut self, table: &FreqTable, _symbol: usize) -> Result<usize> {
        Ok(table.decode(self))
    }
}
