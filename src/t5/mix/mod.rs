//! In-block adaptive mixing (CODER.md, "In-block mixing"), for models whose config sets
//! `mixing`: each token is coded as the bits of its id, most significant first, and each
//! bit's probability mixes the network's (from its frequency table) with models that
//! learn from the block as it is coded: token contexts of orders 0-6, a sparse and a word
//! context, and the match models, combined by an integer logistic mixer and refined by an
//! APM stage, as lpaq1 does for bytes. At 16-bit precision a bit the models are sure of
//! costs almost nothing, so a long repeat costs what LZ pays for it. The latent is coded by
//! adaptive models too, so a block of repeated segments does not pay for it every segment.

mod counter;
mod history;
mod io;
mod latent;
mod logistic;
mod mixer;
mod repeat;
mod table;
mod tokens;

pub use self::io::{Encode, Io};
pub use self::latent::LatentModel;
pub use self::tokens::TokenMixer;

use self::history::CONTEXTS;
use self::mixer::W_ONE;

/// Match models whose predictions are inputs: the main one and up to two more.
pub const MATCH_INPUTS: usize = 3;
/// Bias, network, order 0, the hashed contexts, the match models.
const INPUTS: usize = 3 + CONTEXTS + MATCH_INPUTS;
const NETWORK: usize = 1;
const ORDER0: usize = 2;
const FIRST_CONTEXT: usize = 3;
const FIRST_MATCH: usize = FIRST_CONTEXT + CONTEXTS;
/// 2^17 lines of 64 bytes: 8 MiB for the hashed contexts of one block.
const TABLE_BITS: u32 = 17;
/// Counts at which the counters settle: contexts keep following the block, the match
/// models' hit rates become precise.
const CONTEXT_LIMIT: u32 = 127;
const ORDER0_LIMIT: u32 = 1023;
const MATCH_LIMIT: u32 = 1023;
const LATENT_LIMIT: u32 = 1023;
/// Match lengths 0-15 exactly, then one bucket per doubling.
const LEN_BUCKETS: usize = 48;
/// Mixer weight sets per bit level: no match prediction, a short or a long one agreeing
/// with the bits so far, or one the bits have left.
const MATCH_STATES: usize = 4;
const MIXER_SHIFT: u32 = 16;
const APM_RATE: u32 = 6;

/// The mixer's starting weights: the network alone, the others a little, to be learned.
const INITIAL: [i32; INPUTS] = {
    let mut w = [W_ONE / 8; INPUTS];
    w[0] = 0;
    w[NETWORK] = W_ONE;
    w
};

fn len_bucket(len: u32) -> usize {
    if len < 16 { len as usize } else { (12 + len.ilog2() as usize).min(LEN_BUCKETS - 1) }
}

/// Bits of a value below `n` (at least 1).
/// Asks the CPU to bring in the cache lines of `items` (a hint: it reads nothing the
/// program sees).
#[inline]
fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..std::mem::size_of_val(items)).step_by(64) {
        // SAFETY: the address lies inside `items`; SSE is in every x86-64 CPU.
        #[allow(unused_unsafe)]
        unsafe {
            let at = items.as_ptr().cast::<i8>().add(offset);
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

fn bits_for(n: usize) -> u32 {
    n.next_power_of_two().trailing_zeros().max(1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::codec::Codec;
    use crate::t5::T5Codec;
    use crate::t5::fixtures::{text, tiny_model};

    fn codec() -> &'static T5Codec {
        static CODEC: std::sync::OnceLock<T5Codec> = std::sync::OnceLock::new();
        CODEC.get_or_init(|| {
            let model = tiny_model();
            assert!(model.config().mixing, "the tiny model mixes");
            T5Codec::new(Arc::clone(&model))
        })
    }

    fn round_trip(data: &[u8]) -> usize {
        let payload = codec().compress(data).expect("compresses");
        assert_eq!(codec().decompress(&payload, data.len()).expect("decompresses"), data);
        payload.len()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random bytes, repeats of a random phrase, and text with random damage, of any
        /// length: every block decodes to itself.
        #[test]
        fn any_block_round_trips(
            random in proptest::collection::vec(any::<u8>(), 0..1500),
            phrase in proptest::collection::vec(any::<u8>(), 1..12),
            repeats in 1usize..300,
            cut in 0usize..3000,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..20),
        ) {
            round_trip(&random);
            round_trip(&phrase.repeat(repeats));
            let mut damaged = text(cut);
            for (at, byte) in flips {
                if !damaged.is_empty() {
                    let n = damaged.len();
                    damaged[at % n] = byte;
                }
            }
            round_trip(&damaged);
        }
    }

    #[test]
    fn a_long_repeat_costs_almost_nothing_per_token() {
        // 40 KB of one phrase: after the first few repeats each token is one event the
        // models are sure of.
        let short = round_trip(&b"a ledger of ships, ".repeat(100));
        let long = round_trip(&b"a ledger of ships, ".repeat(2000));
        assert!(long < short + 40, "{short} bytes for 100 repeats, {long} for 2000");
    }
}
