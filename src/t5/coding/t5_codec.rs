//! `T5Codec`: the learned codec of CODER.md as a `codec::Codec`. Payload (CODER.md,
//! "Coding a block"): the token count as LEB128, then one range-coded stream holding, per
//! segment of S tokens, the latent's length (uniform over 0..=latent_max), its codes
//! (uniform over K) and the segment's tokens under the decoder's distributions.

use std::sync::Arc;

use crate::codec::{Codec, CodecError, CodecId, ModelId};

use crate::t5::encoder::Encoder;
use crate::t5::mix::Encode;
use crate::t5::model::Model;
use crate::t5::predictor::Predictor;
use crate::t5::range::{BitTally, CodeSink, RangeDecoder, RangeEncoder};

/// Positions per decoder call when compressing: large enough to run the matrices as
/// matrix products, small enough to keep the ring buffers and logits in cache.
const COMPRESS_BATCH: usize = 32;
/// Longest LEB128 of a u64.
const MAX_LEB128: usize = 10;

#[derive(Clone)]
pub struct T5Codec {
    model: Arc<Model>,
    latents: Latents,
}

/// The latent each segment is compressed with. Decompression reads whichever the frame
/// holds: an empty latent is one the encoder may choose itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latents {
    /// The encoder's (CODER.md, "Coding a block").
    #[default]
    Learned,
    /// None: every segment's latent is empty, to measure what the learned one saves.
    Empty,
}

impl T5Codec {
    pub fn new(model: Arc<Model>) -> T5Codec {
        T5Codec { model, latents: Latents::Learned }
    }

    pub fn with_latents(self, latents: Latents) -> T5Codec {
        T5Codec { latents, ..self }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    fn compress_tokens(&self, tokens: &[u32]) -> Result<Vec<u8>, CodecError> {
        let mut out = RangeEncoder::new();
        self.code_tokens(tokens, &mut out).map_err(|e| CodecError::Compress(e.to_string()))?;
        let mut payload = Vec::with_capacity(MAX_LEB128);
        write_leb128(&mut payload, tokens.len() as u64);
        payload.extend(out.finish());
        Ok(payload)
    }

    /// The bits an ideal coder would spend on `plain` under this model (latents and
    /// tokens, no range-coder rounding, no token count): what the integer model predicts,
    /// comparable with the float model's loss.
    pub fn code_length(&self, plain: &[u8]) -> Result<f64, CodecError> {
        let tokens = self.model.tokenizer().encode(plain);
        let mut tally = BitTally::default();
        self.code_tokens(&tokens, &mut tally).map_err(|e| CodecError::Compress(e.to_string()))?;
        Ok(tally.0)
    }

    /// The latent the encoder gives each segment of `plain` (what `compress` codes with
    /// `Latents::Learned`).
    pub fn latents(&self, plain: &[u8]) -> Vec<Vec<u32>> {
        let tokens = self.model.tokenizer().encode(plain);
        let mut encoder = Encoder::new(&self.model);
        tokens.chunks(self.model.config().segment).map(|segment| encoder.latent(segment)).collect()
    }

    /// Codes a block's latents and tokens into `out`, as CODER.md lays out the stream.
    fn code_tokens(&self, tokens: &[u32], out: &mut impl CodeSink) -> crate::t5::Result<()> {
        let config = self.model.config();
        let mut encoder = Encoder::new(&self.model);
        let mut predictor = Predictor::new(&self.model, COMPRESS_BATCH)?;
        for (s, segment) in tokens.chunks(config.segment).enumerate() {
            let mut codes = match self.latents {
                Latents::Learned => encoder.latent(segment),
                Latents::Empty => Vec::new(),
            };
            predictor.code_latent(&mut codes, &mut Encode(out));
            predictor.set_latent(&codes);
            let first = s * config.segment;
            let last = first + segment.len();
            let mut start = first;
            while start < last {
                let end = (start + COMPRESS_BATCH).min(last);
                predictor.run_known(tokens, start, end, &mut Encode(out))?;
                start = end;
            }
        }
        Ok(())
    }

    /// The bytes of decoded tokens, which must not exceed `plain_len`.
    pub(in crate::t5) fn plain_from_tokens(&self, tokens: &[u32], plain_len: usize) -> Result<Vec<u8>, CodecError> {
        let tokenizer = self.model.tokenizer();
        let mut plain = Vec::with_capacity(plain_len);
        for &t in tokens {
            let bytes = tokenizer
                .token_bytes(t)
                .ok_or_else(|| CodecError::Decompress(format!("token {t} is not in the vocabulary")))?;
            if plain.len() + bytes.len() > plain_len {
                return Err(CodecError::Length { expected: plain_len, got: plain.len() + bytes.len() });
            }
            plain.extend_from_slice(bytes);
        }
        Ok(plain)
    }

    fn decompress_tokens(&self, stream: &[u8], count: usize) -> Result<Vec<u32>, CodecError> {
        // Two positions per network call: the second one ahead, on a guess (Predictor).
        self.decode_tokens(stream, count, 2).map(|(tokens, _)| tokens)
    }

    /// The tokens of a stream, the network taking up to `batch` positions a call; also
    /// how many positions it computed ahead on a guess, and how many guesses were right.
    fn decode_tokens(&self, stream: &[u8], count: usize, batch: usize) -> Result<(Vec<u32>, (u64, u64)), CodecError> {
        let config = self.model.config();
        let fail = |e: crate::t5::CoderError| CodecError::Decompress(e.to_string());
        let mut predictor = Predictor::new(&self.model, batch).map_err(fail)?;
        let mut input = RangeDecoder::new(stream);
        let mut tokens = Vec::with_capacity(count);
        let mut codes = Vec::with_capacity(config.latent_max);
        while tokens.len() < count {
            predictor.code_latent(&mut codes, &mut input);
            predictor.set_latent(&codes);
            let end = (tokens.len() + config.segment).min(count);
            while tokens.len() < end {
                let token = predictor.decode_next(&tokens, &mut input).map_err(fail)?;
                tokens.push(token);
            }
        }
        Ok((tokens, predictor.guesses()))
    }
}

impl Codec for T5Codec {
    fn id(&self) -> CodecId {
        CodecId::T5
    }

    fn model_id(&self) -> ModelId {
        self.model.id()
    }

    fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
        let tokens = self.model.tokenizer().encode(plain);
        self.compress_tokens(&tokens)
    }

    fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError> {
        let (count, stream) = token_count(payload, plain_len)?;
        let tokens = self.decompress_tokens(stream, count)?;
        self.plain_from_tokens(&tokens, plain_len)
    }

    /// The batched decoder of `t5::batched::lockstep` (the network on `device`).
    fn decompress_batch(
        &self,
        items: &[(&[u8], usize)],
        device: &candle_core::Device,
    ) -> Option<Vec<Result<Vec<u8>, CodecError>>> {
        Some(T5Codec::decompress_batch(self, items, device))
    }
}

/// A payload's token count and the range-coded stream after it. Every token is at least
/// one byte: a count above `plain_len` is corrupt, and refusing it bounds the token
/// buffer by `plain_len`.
pub(in crate::t5) fn token_count(payload: &[u8], plain_len: usize) -> Result<(usize, &[u8]), CodecError> {
    let (count, stream) = read_leb128(payload).ok_or(CodecError::Truncated("t5 token count"))?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= plain_len)
        .ok_or_else(|| CodecError::Decompress(format!("{count} tokens for {plain_len} bytes")))?;
    Ok((count, stream))
}

fn write_leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The value and the bytes after it; `None` if truncated or longer than a u64.
fn read_leb128(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(MAX_LEB128) {
        let low = u64::from(b & 0x7F);
        if i == MAX_LEB128 - 1 && low > 1 {
            return None;
        }
        v |= low << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codecs, FrameHeader, Target};
    use crate::t5::fixtures::{random_bytes, text, tiny_bpe, tiny_config, tiny_model};
    use proptest::prelude::*;

    const BLOCK: usize = 4096;

    fn codec() -> T5Codec {
        T5Codec::new(tiny_model())
    }

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let c = codec();
        let payload = c.compress(data).expect("compress");
        assert_eq!(c.decompress(&payload, data.len()).expect("decompress"), data);
        payload
    }

    fn codecs() -> Codecs {
        let mut codecs = Codecs::new(3);
        let c = codec();
        let id = c.model_id();
        codecs.register(Arc::new(c));
        codecs.set_writer(Target::Learned { model: id }).expect("registered");
        codecs
    }

    #[test]
    fn leb128_round_trips_and_rejects_overlong() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            write_leb128(&mut bytes, v);
            bytes.push(9);
            assert_eq!(read_leb128(&bytes), Some((v, &[9u8][..])));
        }
        assert_eq!(read_leb128(&[]), None);
        assert_eq!(read_leb128(&[0x80]), None);
        assert_eq!(read_leb128(&[0xFF; 10]), None);
        assert_eq!(read_leb128(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]), None);
    }

    #[test]
    fn blocks_round_trip_and_repeats_are_cheap() {
        assert_eq!(round_trip(b""), [0]);
        round_trip(b"a");
        round_trip(&random_bytes(BLOCK, 3));
        // Text repeats itself: the match model makes even a random network pay off.
        let data = text(BLOCK);
        let payload = round_trip(&data);
        assert!(payload.len() < data.len() / 2, "{} bytes for {}", payload.len(), data.len());
    }

    /// Decoding computes positions ahead on the match model's guesses; right and wrong
    /// guesses, and guesses across a segment's end, read the tokens that decoding one
    /// position at a time reads.
    #[test]
    fn decoding_ahead_on_guesses_reads_the_same_tokens() {
        let c = codec();
        let mut data = text(3 * BLOCK);
        data.extend_from_slice(&random_bytes(500, 9));
        data.extend_from_slice(&text(BLOCK));
        let tokens = c.model().tokenizer().encode(&data);
        assert!(tokens.len() > 3 * c.model().config().segment, "{} tokens: too few segments", tokens.len());
        let mut out = RangeEncoder::new();
        c.code_tokens(&tokens, &mut out).expect("code");
        let stream = out.finish();
        let (one, none) = c.decode_tokens(&stream, tokens.len(), 1).expect("decode one at a time");
        let (two, (guessed, right)) = c.decode_tokens(&stream, tokens.len(), 2).expect("decode ahead");
        assert_eq!(one, tokens);
        assert_eq!(two, tokens);
        assert_eq!(none, (0, 0));
        assert!(right > 0 && right < guessed, "{right} of {guessed} guesses right: both kinds must occur");
    }

    #[test]
    fn thread_count_does_not_change_frames() {
        let blocks: Vec<Vec<u8>> =
            (0..6).map(|i| if i % 2 == 0 { text(1000 + 300 * i) } else { random_bytes(700, i as u64) }).collect();
        let codecs = codecs();
        let alone: Vec<Vec<u8>> = blocks.iter().map(|b| codecs.encode_block(b).expect("encode")).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().expect("pool");
        let pooled: Vec<Vec<u8>> = pool.install(|| {
            use rayon::prelude::*;
            blocks.par_iter().map(|b| codecs.encode_block(b).expect("encode")).collect()
        });
        assert_eq!(alone, pooled);
        assert!(alone.iter().any(|f| FrameHeader::parse(f).expect("header").codec == CodecId::T5));
        for (frame, block) in alone.iter().zip(&blocks) {
            assert_eq!(&codecs.decode_frame(frame).expect("decode"), block);
        }
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        let codecs = codecs();
        let data = text(250);
        let frame = codecs.encode_block(&data).expect("encode");
        assert_eq!(FrameHeader::parse(&frame).expect("header").codec, CodecId::T5);
        for n in 0..frame.len() {
            assert!(codecs.decode_frame(&frame[..n]).is_err(), "prefix {n} accepted");
        }
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            if let Ok(plain) = codecs.decode_frame(&bad) {
                assert_eq!(plain, data, "flip of bit {bit} gave wrong bytes");
            }
        }
        // The payload alone, truncated or garbled, with the right and wrong lengths.
        let c = codec();
        let payload = c.compress(&data).expect("compress");
        for n in 0..payload.len() {
            let _ = c.decompress(&payload[..n], data.len());
        }
        assert!(c.decompress(&payload, data.len() - 1).is_err());
        assert!(c.decompress(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F], 100).is_err());
        assert!(c.decompress(&[], 100).is_err());
    }

    #[test]
    fn another_model_cannot_read_the_frame() {
        let frame = codecs().encode_block(&text(800)).expect("encode");
        let other = T5Codec::new(Arc::new(Model::random(tiny_config(), tiny_bpe(), 8).expect("model")));
        assert_ne!(other.model_id(), codec().model_id());
        let mut reader = Codecs::new(3);
        reader.register(Arc::new(other));
        assert!(matches!(reader.decode_frame(&frame), Err(CodecError::UnknownModel(_))));
    }

    fn block() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0usize..3 * BLOCK, any::<u64>()).prop_map(|(n, seed)| random_bytes(n, seed)),
            (0usize..3 * BLOCK, 0usize..1000).prop_map(|(n, skip)| text(n + skip)[skip..].to_vec()),
            proptest::collection::vec(0u8..4, 0..2000),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn any_block_round_trips(data in block()) {
            round_trip(&data);
        }

        #[test]
        fn garbage_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..64), len in 0usize..300) {
            let _ = codec().decompress(&payload, len);
        }
    }
}
