//! The hashed memory of the in-block context models: lines of 16 u32 (one cache line),
//! each the counters of up to four levels of a token's binary decomposition (15 nodes,
//! slot 0 a check of the context that owns the line). A line whose check does not match
//! is taken over and its counters start fresh: old statistics are forgotten rather than
//! mixed with another context's.

use super::counter::FRESH;
use super::prefetch;

/// Nodes a line holds (four levels of the binary tree: nodes 1..=15).
pub const LINE_NODES: usize = 15;
type Line = [u32; LINE_NODES + 1];

pub struct ContextTable {
    lines: Vec<Line>,
    bits: u32,
}

impl ContextTable {
    /// A table of `2^bits` lines, all empty.
    pub fn new(bits: u32) -> ContextTable {
        ContextTable { lines: vec![[0; LINE_NODES + 1]; 1 << bits], bits }
    }

    /// The line of the context with 64-bit hash `hash` (taken over if another context
    /// holds it): its index, for `counter`.
    #[inline]
    pub fn line(&mut self, hash: u64) -> usize {
        let index = (hash >> (64 - self.bits)) as usize;
        // Never 0, so an empty line never matches.
        let check = (hash as u32) | 1;
        let line = &mut self.lines[index];
        if line[0] != check {
            *line = [FRESH; LINE_NODES + 1];
            line[0] = check;
        }
        index
    }

    /// Asks the CPU to bring in the line `line(hash)` will read.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.lines[(hash >> (64 - self.bits)) as usize]);
    }

    /// Node `node` (1..=15) of line `index`.
    #[inline]
    pub fn counter(&mut self, index: usize, node: usize) -> &mut u32 {
        &mut self.lines[index][node]
    }
}
