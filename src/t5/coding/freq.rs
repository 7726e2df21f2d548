//! Integer frequency tables for the range coder: a model's per-symbol weights (for
//! example the outputs of an exp lookup table) become frequencies with a fixed total.
//!
//! The encoder and the decoder each build the table from the weights they computed, so the
//! construction must give bit-identical results on every machine: integers only, and no
//! step whose outcome depends on an algorithm's tie-breaking.

use crate::t5::error::{CoderError, Result};
use crate::t5::multiversion::multiversion;
use crate::t5::range::{CodeSink, RangeDecoder};

pub const FREQ_TOTAL_BITS: u32 = 16;
/// What every table's frequencies sum to: the largest total the range coder accepts.
pub const FREQ_TOTAL: u32 = 1 << FREQ_TOTAL_BITS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreqTable {
    /// Each symbol's frequency, summing to `FREQ_TOTAL`. Kept as frequencies, not
    /// cumulative counts: building and rescaling a table are then passes without a
    /// carried sum (they vectorize), and a coder needs one symbol's cumulative count per
    /// table, which a vectorized sum gives.
    freq: Vec<u32>,
}

impl FreqTable {
    /// Builds frequencies proportional to `weights`, each at least 1 so that every symbol
    /// stays codable, summing to exactly `FREQ_TOTAL`. All-zero weights give a uniform
    /// table. At most `FREQ_TOTAL` symbols.
    pub fn from_weights(weights: &[u32]) -> Result<FreqTable> {
        let n = weights.len();
        if n == 0 || n > FREQ_TOTAL as usize {
            return Err(CoderError::TableSize { got: n, max: FREQ_TOTAL as usize });
        }
        let uniform;
        let weights = if weights.iter().all(|&w| w == 0) {
            uniform = vec![1u32; n];
            &uniform[..]
        } else {
            weights
        };
        // One count per symbol is reserved; the rest is shared out in proportion.
        let budget = u64::from(FREQ_TOTAL) - n as u64;
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut freqs = Vec::with_capacity(n);
        let mut leftovers = Vec::with_capacity(n);
        let mut given = 0u64;
        for (sym, &w) in weights.iter().enumerate() {
            let scaled = u64::from(w) * budget;
            let share = scaled / sum;
            given += share;
            freqs.push(1 + share as u32);
            leftovers.push((scaled % sum, sym));
        }
        // Largest-remainder rounding: the counts lost to flooring (fewer than n) go to the
        // symbols that lost the most. Keys are unique (the symbol breaks ties), so the
        // chosen set is the same whatever order the selection visits them in.
        let missing = (budget - given) as usize;
        if missing > 0 {
            let by_loss = |&(rem, sym): &(u64, usize)| (std::cmp::Reverse(rem), sym);
            if missing < n {
                leftovers.select_nth_unstable_by_key(missing, by_loss);
            }
            for &(_, sym) in &leftovers[..missing.min(n)] {
                freqs[sym] += 1;
            }
        }
        debug_assert_eq!(freqs.iter().sum::<u32>(), FREQ_TOTAL);
        Ok(FreqTable { freq: freqs })
    }

    /// The table `from_weights` builds from the weights `level_weights[levels[s]]`, made
    /// in place without per-symbol division or sorting: a model's weights come from a
    /// small table (the exp levels of a softmax), so each level's share and remainder is
    /// computed once. Identical to `from_weights` (tested), so either may build a table
    /// the other side decodes with.
    pub fn refill_from_levels(&mut self, levels: &[u8], level_weights: &[u32]) -> Result<()> {
        let n = levels.len();
        if n == 0 || n > FREQ_TOTAL as usize {
            return Err(CoderError::TableSize { got: n, max: FREQ_TOTAL as usize });
        }
        const LEVELS: usize = 256;
        // Four histograms: most symbols share a level (far below the best), and one
        // counter would make every increment wait for the previous one.
        let mut counts = [[0u32; LEVELS]; 4];
        let mut quads = levels.chunks_exact(4);
        for quad in &mut quads {
            for (count, &l) in counts.iter_mut().zip(quad) {
                count[usize::from(l)] += 1;
            }
        }
        for &l in quads.remainder() {
            counts[0][usize::from(l)] += 1;
        }
        let mut count = [0u64; LEVELS];
        for (l, c) in count.iter_mut().enumerate() {
            *c = counts.iter().map(|h| u64::from(h[l])).sum();
        }
        // Levels past the weights' table must not occur; the rest of the work is over
        // the table's levels only.
        let top = level_weights.len().min(LEVELS);
        if let Some(l) = (top..LEVELS).find(|&l| count[l] > 0) {
            return Err(CoderError::SymbolOutOfRange { symbol: l, len: level_weights.len() });
        }
        let mut sum: u64 = (0..top).map(|l| count[l] * u64::from(level_weights[l])).sum();
        let uniform = sum == 0;
        if uniform {
            // All-zero weights: uniform, as in `from_weights`.
            sum = n as u64;
        }
        let weight = |l: usize| if uniform { 1 } else { u64::from(level_weights[l]) };
        let budget = u64::from(FREQ_TOTAL) - n as u64;
        let mut share = [0u64; LEVELS];
        let mut rem = [0u64; LEVELS];
        let mut given = 0u64;
        let mut present = [0u8; LEVELS];
        let mut n_present = 0;
        for l in 0..top {
            if count[l] > 0 {
                let scaled = weight(l) * budget;
                share[l] = scaled / sum;
                rem[l] = scaled % sum;
                given += count[l] * share[l];
                present[n_present] = l as u8;
                n_present += 1;
            }
        }
        // The `missing` largest remainders get one more, ties to the lowest symbol: whole
        // groups of equal remainder while they fit, then the first symbols of the next.
        // Levels sort by remainder, largest first, as packed keys: a remainder is below
        // `sum` < 2^16 · 2^32, so it and the level fit in one u64 (and the order within a
        // group of equal remainders does not matter).
        let mut missing = budget - given;
        const REM_BITS: u32 = 48;
        let mut keys = [0u64; LEVELS];
        for (key, &l) in keys.iter_mut().zip(&present[..n_present]) {
            let r = rem[usize::from(l)];
            debug_assert!(r < 1 << REM_BITS);
            *key = (((1 << REM_BITS) - 1 - r) << 8) | u64::from(l);
        }
        keys[..n_present].sort_unstable();
        for (p, key) in present.iter_mut().zip(&keys[..n_present]) {
            *p = *key as u8;
        }
        let present = &present[..n_present];
        let mut all_above = u64::MAX;
        let mut partial: Option<(u64, u64)> = None;
        let mut i = 0;
        while i < present.len() && missing > 0 {
            let r = rem[usize::from(present[i])];
            let mut group = 0;
            while i < present.len() && rem[usize::from(present[i])] == r {
                group += count[usize::from(present[i])];
                i += 1;
            }
            if group <= missing {
                missing -= group;
                all_above = r;
            } else {
                partial = Some((r, missing));
                missing = 0;
            }
        }
        // Per level: its frequency with the bonus of whole groups, and whether it is in
        // the group whose first symbols alone get one more.
        let mut freq = [0u32; LEVELS];
        let mut split = [false; LEVELS];
        let (split_rem, mut split_left) = partial.unwrap_or((u64::MAX, 0));
        for &l in present.iter() {
            let l = usize::from(l);
            freq[l] = (1 + share[l] + u64::from(rem[l] >= all_above)) as u32;
            split[l] = rem[l] == split_rem;
        }
        lookup(&freq, levels, &mut self.freq);
        if split_left > 0 {
            for (f, &l) in self.freq.iter_mut().zip(levels) {
                if split[usize::from(l)] {
                    *f += 1;
                    split_left -= 1;
                    if split_left == 0 {
                        break;
                    }
                }
            }
        }
        debug_assert_eq!(self.freq.iter().sum::<u32>(), FREQ_TOTAL);
        Ok(())
    }

    /// Gives `sym` the frequency `target` (clamped so that every other symbol keeps at
    /// least 1) and rescales the others' counts above 1 by a 32-bit fixed-point ratio;
    /// what their flooring frees goes to `sym` (CODER.md, "Match confidence").
    pub fn set_freq(&mut self, sym: usize, target: u32) {
        let n = self.len() as u32;
        let f = self.freq(sym);
        let target = target.clamp(1, FREQ_TOTAL - (n - 1));
        let excess_old = u64::from(FREQ_TOTAL - f - (n - 1));
        let excess_new = u64::from(FREQ_TOTAL - target - (n - 1));
        // Each other symbol's count above 1 is at most `excess_old`, so the products stay
        // below excess_new * 2^32 < 2^48.
        let ratio = (excess_new << 32).checked_div(excess_old).unwrap_or(0);
        // `sym` is rescaled too (no branch in the loop) and then replaced; its product may
        // wrap, so the sum wraps alike and the others' true sum comes out exact.
        let total = rescale(&mut self.freq, (ratio >> 32) as u32, ratio as u32);
        // `sym` takes the rest: at least `target`.
        let others = total.wrapping_sub(self.freq[sym]);
        self.freq[sym] = FREQ_TOTAL - others;
    }

    pub fn len(&self) -> usize {
        self.freq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the frequencies of the symbols before `sym`. Panics if `sym >= len()`.
    pub fn cum(&self, sym: usize) -> u32 {
        assert!(sym < self.len(), "symbol {sym} of {}", self.len());
        self.freq[..sym].iter().sum()
    }

    /// Every symbol's frequency, in symbol order.
    pub fn freqs(&self) -> &[u32] {
        &self.freq
    }

    /// Panics if `sym >= len()`.
    pub fn freq(&self, sym: usize) -> u32 {
        self.freq[sym]
    }

    /// The symbol whose interval holds `target`; targets past the end (only corrupt input
    /// makes them) give the last symbol.
    pub fn symbol_for(&self, target: u32) -> usize {
        self.locate(target).0
    }

    /// `symbol_for(target)` with that symbol's `cum`, found in the same pass.
    fn locate(&self, target: u32) -> (usize, u32) {
        let target = target.min(FREQ_TOTAL - 1);
        // Whole chunks below the target are skipped by their sums (vectorized), then the
        // symbol is found in its chunk.
        let mut below = 0u32;
        let mut start = 0;
        for chunk in self.freq.chunks(64) {
            let sum: u32 = chunk.iter().sum();
            if below + sum > target {
                break;
            }
            below += sum;
            start += chunk.len();
        }
        for (s, &f) in self.freq[start..].iter().enumerate() {
            if below + f > target {
                return (start + s, below);
            }
            below += f;
        }
        let last = self.len() - 1;
        (last, below - self.freq[last])
    }

    /// Codes `sym` under this table; an out-of-range symbol is an error, not a panic.
    pub fn encode(&self, encoder: &mut impl CodeSink, sym: usize) -> Result<()> {
        if sym >= self.len() {
            return Err(CoderError::SymbolOutOfRange { symbol: sym, len: self.len() });
        }
        encoder.encode(self.cum(sym), self.freq[sym], FREQ_TOTAL);
        Ok(())
    }

    /// Decodes one symbol coded by `encode` under the same table.
    pub fn decode(&self, decoder: &mut RangeDecoder<'_>) -> usize {
        let (sym, below) = self.locate(decoder.decode_freq(FREQ_TOTAL));
        decoder.consume(below, self.freq(sym), FREQ_TOTAL);
        sym
    }
}

multiversion! {
    /// `out[i] = table[idx[i]]` for every index.
    fn lookup(table: &[u32; 256], idx: &[u8], out: &mut Vec<u32>) {
        out.clear();
        out.extend(idx.iter().map(|&i| table[usize::from(i)]));
    }
}

multiversion! {
    /// Every frequency f becomes 1 + ((f − 1) · (hi · 2^32 + lo) >> 32), computed as
    /// (f − 1) · hi + ((f − 1) · lo) >> 32 (exact, and products of 32-bit halves), in
    /// wrapping arithmetic; returns the wrapping sum of the results.
    fn rescale(freq: &mut [u32], hi: u32, lo: u32) -> u32 {
        let mut total = 0u32;
        for f in freq.iter_mut() {
            let x = *f - 1;
            let scaled = x.wrapping_mul(hi).wrapping_add(((u64::from(x) * u64::from(lo)) >> 32) as u32);
            *f = scaled.wrapping_add(1);
            total = total.wrapping_add(*f);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::range::RangeEncoder;
    use proptest::prelude::*;

    /// What a perfect entropy coder would spend on `sym`, in bits.
    fn ideal_bits(table: &FreqTable, sym: usize) -> f64 {
        f64::from(FREQ_TOTAL_BITS) - f64::from(table.freq(sym)).log2()
    }

    fn check_table(weights: &[u32]) -> FreqTable {
        let table = FreqTable::from_weights(weights).expect("valid size");
        assert_eq!(table.len(), weights.len());
        assert_valid(&table);
        table
    }

    /// Every symbol at least 1, cumulative counts consistent, the total exact.
    fn assert_valid(table: &FreqTable) {
        let mut sum = 0;
        for sym in 0..table.len() {
            assert!(table.freq(sym) >= 1);
            assert_eq!(table.cum(sym), sum);
            sum += table.freq(sym);
        }
        assert_eq!(sum, FREQ_TOTAL);
    }

    #[test]
    fn sizes_are_checked() {
        assert!(FreqTable::from_weights(&[]).is_err());
        assert!(FreqTable::from_weights(&vec![1; FREQ_TOTAL as usize + 1]).is_err());
        let full = check_table(&vec![7; FREQ_TOTAL as usize]);
        assert!((0..full.len()).all(|s| full.freq(s) == 1));
    }

    #[test]
    fn shapes() {
        let zeros = check_table(&[0; 10]);
        let freqs: Vec<u32> = (0..10).map(|s| zeros.freq(s)).collect();
        assert!(freqs.iter().max().unwrap() - freqs.iter().min().unwrap() <= 1);

        let mut spike = vec![0u32; 8192];
        spike[4321] = u32::MAX;
        let spike_table = check_table(&spike);
        assert_eq!(spike_table.freq(4321), FREQ_TOTAL - 8191);

        let proportional = check_table(&[1, 2, 3, 4]);
        let budget = FREQ_TOTAL - 4;
        for s in 0..4 {
            let exact = f64::from(budget) * (s as f64 + 1.0) / 10.0 + 1.0;
            assert!((f64::from(proportional.freq(s)) - exact).abs() < 1.0);
        }
    }

    #[test]
    fn symbol_for_inverts_cum() {
        let table = check_table(&[5, 0, 0, 1000, 3, u32::MAX, 0]);
        for sym in 0..table.len() {
            let (lo, f) = (table.cum(sym), table.freq(sym));
            assert_eq!(table.symbol_for(lo), sym);
            assert_eq!(table.symbol_for(lo + f - 1), sym);
            assert_eq!(table.locate(lo + f - 1), (sym, lo));
        }
        assert_eq!(table.symbol_for(u32::MAX), table.len() - 1);
        assert_eq!(table.locate(u32::MAX), (table.len() - 1, table.cum(table.len() - 1)));
    }

    #[test]
    fn out_of_range_symbol_is_an_error() {
        let table = check_table(&[1, 1]);
        let mut enc = RangeEncoder::new();
        assert!(table.encode(&mut enc, 2).is_err());
    }

    /// Weights drawn in one of several shapes, including the degenerate ones.
    fn weights() -> impl Strategy<Value = Vec<u32>> {
        (1usize..=9000, any::<u64>(), 0u8..5).prop_map(|(n, seed, shape)| {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            (0..n)
                .map(|i| match shape {
                    0 => 0,
                    1 => (next() >> 32) as u32,
                    2 => {
                        if i == n / 2 {
                            u32::MAX
                        } else {
                            0
                        }
                    }
                    3 => 1u32 << (next() % 32),
                    _ => (next() % 3) as u32,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tables_are_valid(weights in weights()) {
            check_table(&weights);
        }

        #[test]
        fn levels_build_the_same_table_as_weights(
            picks in proptest::collection::vec(any::<u8>(), 1..3000),
            level_weights in proptest::collection::vec(0u32..40000, 1..130),
            zeros in any::<bool>(),
        ) {
            let level_weights: Vec<u32> = if zeros { vec![0; level_weights.len()] } else { level_weights };
            let levels: Vec<u8> = picks.iter().map(|&p| (usize::from(p) % level_weights.len()) as u8).collect();
            let weights: Vec<u32> = levels.iter().map(|&l| level_weights[usize::from(l)]).collect();
            let mut table = FreqTable::from_weights(&[1]).expect("one symbol");
            table.refill_from_levels(&levels, &level_weights).expect("valid levels");
            prop_assert_eq!(table, check_table(&weights));
        }

        /// Symbols coded under per-step tables decode back, at close to their ideal cost.
        #[test]
        fn streams_round_trip(
            tables in proptest::collection::vec(weights(), 1..4),
            picks in proptest::collection::vec((any::<usize>(), any::<u16>()), 0..3000),
        ) {
            let tables: Vec<FreqTable> = tables.iter().map(|w| check_table(w)).collect();
            // Half the symbols follow their table (as a good model's would), half are
            // arbitrary, so unlikely symbols are exercised too.
            let stream: Vec<(usize, usize)> = picks
                .iter()
                .map(|&(pick, target)| {
                    let t = pick % tables.len();
                    let sym = if pick % 2 == 0 {
                        tables[t].symbol_for(u32::from(target))
                    } else {
                        (pick / 2) % tables[t].len()
                    };
                    (t, sym)
                })
                .collect();
            let mut enc = RangeEncoder::new();
            for &(t, sym) in &stream {
                tables[t].encode(&mut enc, sym).expect("symbol in range");
            }
            let bytes = enc.finish();
            let ideal: f64 = stream.iter().map(|&(t, s)| ideal_bits(&tables[t], s)).sum();
            // Each step may lose up to 2^-8 of the range to rounding (0.0057 bits), and
            // the flush rounds up to whole bytes.
            let allowed = (ideal + stream.len() as f64 * 0.0057) / 8.0 + 2.0;
            prop_assert!(
                (bytes.len() as f64) <= allowed,
                "{} bytes for an ideal {:.1}", bytes.len(), ideal / 8.0
            );
            let mut dec = RangeDecoder::new(&bytes);
            for &(t, sym) in &stream {
                prop_assert_eq!(tables[t].decode(&mut dec), sym);
            }
        }

        /// Setting one symbol's frequency keeps a valid table: every symbol at least 1,
        /// the total exact, the symbol at least its (clamped) target, and the others in
        /// their old order.
        #[test]
        fn set_freq_keeps_a_valid_table(weights in weights(), pick in any::<u64>(), target in any::<u32>()) {
            let mut table = check_table(&weights);
            let before = table.clone();
            let n = table.len() as u32;
            let sym = (pick % u64::from(n)) as usize;
            let target = target % (FREQ_TOTAL + 10);
            table.set_freq(sym, target);
            assert_valid(&table);
            prop_assert!(table.freq(sym) >= target.clamp(1, FREQ_TOTAL - (n - 1)));
            for a in 0..table.len().min(200) {
                for b in 0..table.len().min(200) {
                    if a != sym && b != sym && before.freq(a) < before.freq(b) {
                        prop_assert!(table.freq(a) <= table.freq(b));
                    }
                }
            }
        }

        /// Truncated or arbitrary bytes decode to some symbols, in range, without panics.
        #[test]
        fn garbage_decodes_in_range(
            weights in weights(),
            input in proptest::collection::vec(any::<u8>(), 0..40),
            count in 0usize..500,
        ) {
            let table = check_table(&weights);
            let mut dec = RangeDecoder::new(&input);
            for _ in 0..count {
                prop_assert!(table.decode(&mut dec) < table.len());
            }
        }
    }
}
