//! Keys and values of one attention layer, stored so that one query's scores over all
//! keys, and the weighted sum of all values, are each one packed product (`packed`):
//! per head, keys as a matrix `[slot][dim]` and values transposed, `[dim][slot]`.

use super::packed::{self, Centered, GROUP, PackedRef, STEP};
use crate::t5::multiversion::multiversion;

#[derive(Debug, Clone)]
pub struct KvCache {
    slots: usize,
    heads: usize,
    head_dim: usize,
    /// Per head: `slots × head_dim`, packed.
    keys: Vec<i8>,
    /// Per head and slot: `-128 · Σ k`, so that a query fed as `q + 128` scores `q · k`.
    key_start: Vec<i32>,
    /// Per head: `head_dim × slots`, packed.
    values: Vec<i8>,
    /// Per head and dimension (padded to the group): `128 · Σ_slot v`, the values'
    /// `Centered` sums.
    value_sums: Vec<i32>,
}

impl KvCache {
    /// A cache of `slots` rows of `heads` heads of `head_dim` values, all zero.
    pub fn new(slots: usize, heads: usize, head_dim: usize) -> KvCache {
        let slots = slots.max(1);
        let mut cache = KvCache {
            slots,
            heads,
            head_dim,
            keys: Vec::new(),
            key_start: Vec::new(),
            values: Vec::new(),
            value_sums: Vec::new(),
        };
        let (k, v) = (cache.key_shape(), cache.value_shape());
        cache.keys = vec![0; heads * k.0 * k.1 * GROUP * STEP];
        cache.key_start = vec![0; heads * k.0 * GROUP];
        cache.values = vec![0; heads * v.0 * v.1 * GROUP * STEP];
        cache.value_sums = vec![0; heads * v.0 * GROUP];
        cache
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// (groups, steps) of a head's packed keys.
    fn key_shape(&self) -> (usize, usize) {
        (self.slots.div_ceil(GROUP), self.head_dim.div_ceil(STEP))
    }

    fn value_shape(&self) -> (usize, usize) {
        (self.head_dim.div_ceil(GROUP), self.slots.div_ceil(STEP))
    }

    /// Stores the key and value rows (all heads, `heads · head_dim` each) of `slot`: q8,
    /// in [-127, 127].
    pub fn set(&mut self, slot: usize, key: &[i8], value: &[i8]) {
        // The AVX2 product is exact only for q8 (`packed`); cheap next to a decoding step.
        assert!(!key.contains(&i8::MIN) && !value.contains(&i8::MIN), "a q8 key or value of -128");
        let (kg, ks) = self.key_shape();
        let (vg, vs) = self.value_shape();
        let dh = self.head_dim;
        for head in 0..self.heads {
            let k = &key[head * dh..(head + 1) * dh];
            let v = &value[head * dh..(head + 1) * dh];
            let keys = &mut self.keys[head * kg * ks * GROUP * STEP..];
            let values = &mut self.values[head * vg * vs * GROUP * STEP..];
            let sums = &mut self.value_sums[head * vg * GROUP..];
            // A key row is packed as runs of STEP columns, one run per step.
            // Steps are GROUP·STEP bytes apart; whole ones are fixed-size copies.
            let first = packed::index(slot, 0, ks);
            let runs = k.chunks_exact(STEP);
            let last = runs.remainder();
            for (step, run) in runs.enumerate() {
                let at = first + step * GROUP * STEP;
                keys[at..at + STEP].copy_from_slice(run);
            }
            if !last.is_empty() {
                let at = first + (dh / STEP) * GROUP * STEP;
                keys[at..at + last.len()].copy_from_slice(last);
            }
            put_column(values, sums, v, slot, vs);
            self.key_start[head * kg * GROUP + slot] = -128 * k.iter().map(|&x| i32::from(x)).sum::<i32>();
        }
    }

    /// Head `head`'s keys as a matrix of `slots` rows.
    pub fn keys(&self, head: usize) -> PackedRef<'_> {
        let (groups, steps) = self.key_shape();
        let len = groups * steps * GROUP * STEP;
        PackedRef {
            w: &self.keys[head * len..(head + 1) * len],
            start: Some(&self.key_start[head * groups * GROUP..(head + 1) * groups * GROUP]),
            // Each key row starts at -128 · Σ k.
            centered: Centered::Zero,
            groups,
            steps,
        }
    }

    /// Head `head`'s values as a matrix of `head_dim` rows over the slots.
    pub fn values(&self, head: usize) -> PackedRef<'_> {
        let (groups, steps) = self.value_shape();
        let len = groups * steps * GROUP * STEP;
        PackedRef {
            w: &self.values[head * len..(head + 1) * len],
            start: None,
            centered: Centered::Sums(&self.value_sums[head * groups * GROUP..(head + 1) * groups * GROUP]),
            groups,
            steps,
        }
    }
}

multiversion! {
    /// Writes `v` as column `slot` of a packed value matrix of `steps` steps (one head's),
    /// keeping its rows' `Centered` sums. A group's 16 rows hold the column as byte
    /// `slot % STEP` of 16 consecutive words, so a group is one masked update of a
    /// 64-byte tile rather than 16 scattered bytes.
    fn put_column(values: &mut [i8], sums: &mut [i32], v: &[i8], slot: usize, steps: usize) {
        let shift = 8 * (slot % STEP) as u32;
        for (g, (rows, sums)) in v.chunks(GROUP).zip(sums.chunks_exact_mut(GROUP)).enumerate() {
            let mut new = [0i32; GROUP];
            for (n, &x) in new.iter_mut().zip(rows) {
                *n = i32::from(x);
            }
            let at = (g * steps + slot / STEP) * GROUP * STEP;
            let tile = &mut values[at..at + GROUP * STEP];
            let mut words = [0u32; GROUP];
            for (w, b) in words.iter_mut().zip(tile.chunks_exact(STEP)) {
                *w = u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
            }
            for ((w, sum), &n) in words.iter_mut().zip(sums.iter_mut()).zip(&new) {
                let old = i32::from((*w >> shift) as u8 as i8);
                *sum += 128 * (n - old);
                *w = (*w & !(0xff << shift)) | (u32::from(n as u8) << shift);
            }
            for (w, b) in words.iter().zip(tile.chunks_exact_mut(STEP)) {
                for (b, x) in b.iter_mut().zip(w.to_le_bytes()) {
                    *b = x as i8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_sums_follow_overwritten_slots() {
        let mut next = crate::t5::fixtures::xorshift(9);
        let (slots, heads, dh) = (37, 3, 20);
        let mut cache = KvCache::new(slots, heads, dh);
        let mut rows = vec![vec![0i8; heads * dh]; slots];
        for _ in 0..200 {
            let slot = (next() % slots as u64) as usize;
            let k: Vec<i8> = (0..heads * dh).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let v: Vec<i8> = (0..heads * dh).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            cache.set(slot, &k, &v);
            rows[slot] = v;
        }
        for head in 0..heads {
            let Centered::Sums(sums) = cache.values(head).centered else { panic!("values keep their sums") };
            for c in 0..dh {
                let want: i32 = rows.iter().map(|v| 128 * i32::from(v[head * dh + c])).sum();
                assert_eq!(sums[c], want, "head {head}, dimension {c}");
            }
            assert!(sums[dh..].iter().all(|&s| s == 0));
        }
    }
}
