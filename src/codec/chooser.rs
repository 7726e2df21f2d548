//! `Codecs`: the volume's single entry point for turning blocks into frames and back.
//!
//! Writing uses one configured codec, but only when it pays (ZFS's rule: save at least
//! 1/8 of the block, otherwise store raw, since decoding a barely-compressed block costs
//! CPU on every read for almost no space). Reading never looks at the configuration: a
//! frame names its codec and model, so a volume whose codec setting changed, or that
//! holds blocks recompressed in the background, reads every block it ever wrote.
//!
//! All integrity checks live here, not in the codecs, so a new codec cannot forget them:
//! the header check, a 16 MiB cap on the declared plaintext length (no unbounded
//! allocation from a damaged or hostile frame), exact frame length, decoded length and
//! the plaintext checksum.

use std::fmt;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::frame::{CodecId, FrameHeader, HEADER_LEN};
use super::raw::Raw;
use super::zstd::{Zstd, compress_with_level};
use super::{Codec, CodecError, ModelId};

/// The largest plaintext a frame may declare. Far above any block size a volume uses,
/// low enough that trusting a (header-checked) length cannot exhaust memory.
pub const MAX_PLAIN_LEN: usize = 16 << 20;

/// Blocks below this size skip the incompressibility probe: compressing the sample
/// would cost about as much as compressing the block.
const PROBE_MIN_LEN: usize = 32 * 1024;
/// The probe compresses `PROBE_CHUNKS` slices of `PROBE_CHUNK` bytes spread over the
/// block (start, end and evenly between), so a block whose head alone is compressible
/// (a header before compressed data) or incompressible is not misjudged from one spot.
const PROBE_CHUNK: usize = 4 * 1024;
const PROBE_CHUNKS: usize = 4;
/// zstd at this level or below is its own best probe: it detects incompressible input
/// about as fast as the probe runs (measured: ~10 µs for 128 KiB of random data at
/// levels 1-3, against 6 ms at level 19), so probing would only slow compressible data.
const PROBE_ABOVE_ZSTD_LEVEL: i32 = 3;

/// What new frames are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Raw,
    /// zstd at this level, when it saves at least 1/8 of the block; raw otherwise.
    Zstd {
        level: i32,
    },
    /// The learned codec with `model`, when it saves at least 1/8; raw otherwise. What
    /// `s2sfs codec` measures: the learned coder alone.
    Learned {
        model: ModelId,
    },
    /// The smallest valid frame of: the learned codec with `model`, zstd at `zstd_level`,
    /// raw. A block never grows because of the learned coder. What volumes write.
    Smallest {
        model: ModelId,
        zstd_level: i32,
    },
}

impl Target {
    /// The learned model this target weighs blocks against (NONE for classic targets).
    pub fn model(&self) -> ModelId {
        match self {
            Target::Smallest { model, .. } | Target::Learned { model } => *model,
            _ => ModelId::NONE,
        }
    }
}

/// Every codec this volume can read, and what it writes.
#[derive(Clone)]
pub struct Codecs {
    /// Raw first, then zstd, then registered codecs. Small: a linear scan beats a map.
    codecs: Vec<Arc<dyn Codec>>,
    writer: Target,
}

impl Codecs {
    /// Raw and zstd for reading; `writer` for writing (a learned target's model must be
    /// registered before `set_writer`).
    pub fn new(level: i32) -> Codecs {
        let codecs: Vec<Arc<dyn Codec>> = vec![Arc::new(Raw), Arc::new(Zstd::new(level))];
        let level = Zstd::new(level).level();
        Codecs { codecs, writer: Target::Zstd { level } }
    }

    /// Registers an extra codec (the learned one) for reading, and makes it available to
    /// `set_writer`. A codec with the same id and model replaces the earlier one.
    pub fn register(&mut self, codec: Arc<dyn Codec>) {
        match self.position(codec.id(), codec.model_id()) {
            Some(i) => self.codecs[i] = codec,
            None => self.codecs.push(codec),
        }
    }

    /// Whether frames of the learned model `model` can be read and written.
    pub fn has_model(&self, model: ModelId) -> bool {
        self.position(CodecId::T5, model).is_some()
    }

    /// Makes `target` what new blocks are written as; its model must be registered.
    pub fn set_writer(&mut self, target: Target) -> Result<(), CodecError> {
        self.check_target(target)?;
        self.writer = target;
        Ok(())
    }

    /// Whether `encode_as` can write `target`.
    pub fn check_target(&self, target: Target) -> Result<(), CodecError> {
        match target {
            Target::Smallest { model, .. } | Target::Learned { model } if !self.has_model(model) => {
                Err(CodecError::UnknownModel(model))
            }
            _ => Ok(()),
        }
    }

    /// What new blocks are written as.
    pub fn writer(&self) -> Target {
        self.writer
    }

    /// Compresses one block into a complete frame as the volume writes it
    /// (`encode_as(plain, writer)`).
    pub fn encode_block(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.encode_as(plain, self.writer)
    }

    /// Compresses one block into a complete frame for `target`. A raw frame is always a
    /// correct answer, so a codec that fails, or a block a cheap probe finds
    /// incompressible, is stored raw rather than failing the write. Errors only for a
    /// block longer than `MAX_PLAIN_LEN`.
    pub fn encode_as(&self, plain: &[u8], target: Target) -> Result<Vec<u8>, CodecError> {
        if plain.len() > MAX_PLAIN_LEN {
            return Err(CodecError::TooLarge(plain.len()));
        }
        match target {
            Target::Raw => raw_frame(plain),
            Target::Zstd { level } => {
                if level > PROBE_ABOVE_ZSTD_LEVEL && looks_incompressible(plain) {
                    return raw_frame(plain);
                }
                let zstd = self.zstd_frame(plain, level)?;
                // ZFS's rule: a frame that saves less than 1/8 costs CPU on every read
                // for almost no space.
                match zstd {
                    Some(f) if f.len() - HEADER_LEN <= plain.len() - plain.len() / 8 => Ok(f),
                    _ => raw_frame(plain),
                }
            }
            Target::Learned { model } => {
                if looks_incompressible(plain) {
                    return raw_frame(plain);
                }
                let learned = self.position(CodecId::T5, model).ok_or(CodecError::UnknownModel(model))?;
                match self.codec_frame(self.codecs[learned].as_ref(), plain)? {
                    Some(f) if f.len() - HEADER_LEN <= plain.len() - plain.len() / 8 => Ok(f),
                    _ => raw_frame(plain),
                }
            }
            Target::Smallest { model, zstd_level } => {
                if looks_incompressible(plain) {
                    return raw_frame(plain);
                }
                let mut best = raw_frame(plain)?;
                if let Some(f) = self.zstd_frame(plain, zstd_level)?
                    && f.len() < best.len()
                {
                    best = f;
                }
                let learned = self.position(CodecId::T5, model).ok_or(CodecError::UnknownModel(model))?;
                if let Some(f) = self.codec_frame(self.codecs[learned].as_ref(), plain)?
                    && f.len() < best.len()
                {
                    best = f;
                }
                Ok(best)
            }
        }
    }

    fn zstd_frame(&self, plain: &[u8], level: i32) -> Result<Option<Vec<u8>>, CodecError> {
        match compress_with_level(plain, level) {
            Ok(payload) => Ok(Some(FrameHeader::new(CodecId::Zstd, ModelId::NONE, plain, &payload)?.encode(&payload))),
            Err(e) => {
                log::warn!("zstd compression failed, storing the block otherwise: {e}");
                Ok(None)
            }
        }
    }

    /// `codec`'s frame of `plain`, or None when the codec fails (logged).
    fn codec_frame(&self, codec: &dyn Codec, plain: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        match codec.compress(plain) {
            Ok(payload) => Ok(Some(FrameHeader::new(codec.id(), codec.model_id(), plain, &payload)?.encode(&payload))),
            Err(e) => {
                log::warn!("{} compression failed, storing the block otherwise: {e}", codec.id());
                Ok(None)
            }
        }
    }

    /// Parses and checks the header, decodes with whatever codec the frame names (not the
    /// configured one), checks length and the plaintext checksum. Any damage is an error,
    /// never wrong bytes, never a panic, and no allocation beyond `MAX_PLAIN_LEN`.
    ///
    /// `frame` must be exactly one frame: missing or extra bytes are errors, since either
    /// means the caller's idea of where the frame lies is wrong.
    pub fn decode_frame(&self, frame: &[u8]) -> Result<Vec<u8>, CodecError> {
        let (header, codec, payload) = self.open_frame(frame)?;
        let plain_len = header.plain_len as usize;
        let plain = codec.decompress(payload, plain_len)?;
        if plain.len() != plain_len {
            return Err(CodecError::Length { expected: plain_len, got: plain.len() });
        }
        verify_checksum(&header, &plain)?;
        Ok(plain)
    }

    /// The plaintext length a frame's (checked) header declares.
    pub fn plain_len(&self, frame: &[u8]) -> Result<usize, CodecError> {
        Ok(checked_header(frame)?.plain_len as usize)
    }

    /// Decodes a frame into `out`, which must be exactly `plain_len(frame)` long, with the
    /// same checks as `decode_frame`. On error `out` holds garbage.
    pub fn decode_frame_into(&self, frame: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (header, codec, payload) = self.open_frame(frame)?;
        let plain_len = header.plain_len as usize;
        if out.len() != plain_len {
            return Err(CodecError::Length { expected: plain_len, got: out.len() });
        }
        codec.decompress_into(payload, out)?;
        verify_checksum(&header, out)
    }

    /// `decode_frame` of every frame, in order, with the same checks and results. Frames
    /// of a codec that batches (t5) are decoded together, one call per codec and model,
    /// the batchable work on `device`; the others one by one. A damaged frame is an error
    /// for that frame only.
    pub fn decode_frames_batched(
        &self,
        frames: &[&[u8]],
        device: &candle_core::Device,
    ) -> Vec<Result<Vec<u8>, CodecError>> {
        let mut results: Vec<Option<Result<Vec<u8>, CodecError>>> = frames.iter().map(|_| None).collect();
        // Frames that open, by codec: (codec, [(index, header, payload)]).
        type Member<'f> = (usize, FrameHeader, &'f [u8]);
        let mut groups: Vec<(&dyn Codec, Vec<Member<'_>>)> = Vec::new();
        for (k, frame) in frames.iter().enumerate() {
            match self.open_frame(frame) {
                Err(e) => results[k] = Some(Err(e)),
                Ok((header, codec, payload)) => {
                    let same = |c: &&dyn Codec| c.id() == codec.id() && c.model_id() == codec.model_id();
                    match groups.iter_mut().find(|(c, _)| same(c)) {
                        Some((_, members)) => members.push((k, header, payload)),
                        None => groups.push((codec, vec![(k, header, payload)])),
                    }
                }
            }
        }
        for (codec, members) in groups {
            let items: Vec<(&[u8], usize)> = members.iter().map(|&(_, h, p)| (p, h.plain_len as usize)).collect();
            let decoded = codec
                .decompress_batch(&items, device)
                .filter(|d| d.len() == items.len())
                .unwrap_or_else(|| items.iter().map(|&(p, n)| codec.decompress(p, n)).collect());
            for ((k, header, _), plain) in members.into_iter().zip(decoded) {
                results[k] = Some(plain.and_then(|plain| {
                    let plain_len = header.plain_len as usize;
                    if plain.len() != plain_len {
                        return Err(CodecError::Length { expected: plain_len, got: plain.len() });
                    }
                    verify_checksum(&header, &plain)?;
                    Ok(plain)
                }));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CodecError::Decompress("no result from the batch".into()))))
            .collect()
    }

    /// The checks both decodes start with: the header, the frame's length against it, and
    /// a codec for the codec and model it names. Returns the header, that codec and the
    /// payload.
    fn open_frame<'f>(&self, frame: &'f [u8]) -> Result<(FrameHeader, &dyn Codec, &'f [u8]), CodecError> {
        let header = checked_header(frame)?;
        let frame_len = header.frame_len();
        if frame.len() < frame_len {
            return Err(CodecError::Truncated("payload"));
        }
        if frame.len() > frame_len {
            return Err(CodecError::TrailingBytes(frame.len() - frame_len));
        }
        let codec = self
            .position(header.codec, header.model_id)
            .map(|i| self.codecs[i].as_ref())
            .ok_or(CodecError::UnknownModel(header.model_id))?;
        Ok((header, codec, &frame[HEADER_LEN..]))
    }

    /// Whether `header` (a frame's first `HEADER_LEN` bytes) is the header of a raw frame
    /// whose payload is exactly `payload`, checksum included: then `payload` is the block,
    /// read from the pack straight where it belongs. `Ok(false)`: a valid header of some
    /// other frame; decode the whole frame instead.
    pub fn is_raw_frame_of(&self, header: &[u8], payload: &[u8]) -> Result<bool, CodecError> {
        let header = checked_header(header)?;
        if header.codec != CodecId::Raw
            || header.plain_len as usize != payload.len()
            || header.frame_len() != HEADER_LEN + payload.len()
        {
            return Ok(false);
        }
        verify_checksum(&header, payload).map(|()| true)
    }

    fn position(&self, id: CodecId, model_id: ModelId) -> Option<usize> {
        self.codecs.iter().position(|c| c.id() == id && c.model_id() == model_id)
    }
}

impl fmt::Debug for Codecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codecs")
            .field("writer", &self.writer)
            .field("readers", &self.codecs.iter().map(|c| format!("{}/{:?}", c.id(), c.model_id())).collect::<Vec<_>>())
            .finish()
    }
}

/// A frame's header, parsed and checked, with a declared length any block may have.
fn checked_header(frame: &[u8]) -> Result<FrameHeader, CodecError> {
    let header = FrameHeader::parse(frame)?;
    if header.plain_len as usize > MAX_PLAIN_LEN {
        return Err(CodecError::TooLarge(header.plain_len as usize));
    }
    Ok(header)
}

fn verify_checksum(header: &FrameHeader, plain: &[u8]) -> Result<(), CodecError> {
    if xxh3_64(plain) != header.checksum {
        return Err(CodecError::Checksum);
    }
    Ok(())
}

fn raw_frame(plain: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(FrameHeader::new(CodecId::Raw, ModelId::NONE, plain, plain)?.encode(plain))
}

/// Cheap early abort for slow codecs: compresses a 16 KiB sample of a large block with
/// zstd level 1 and calls the block incompressible when the sample does not save even
/// 1/16. Random or already-compressed data then costs one fast pass over 16 KiB instead
/// of a full compression of the block at the configured (maybe slow, maybe learned) codec.
///
/// The margin (1/16 on the sample against 1/8 required of the block) allows for level 1
/// and a small window being weaker than the real codec. What the sample cannot see is
/// repetition over distances longer than a chunk (e.g. the same random 32 KiB twice in
/// a block); such blocks are stored raw. Whole-block repetition is caught by
/// content-addressed dedup instead.
fn looks_incompressible(plain: &[u8]) -> bool {
    if plain.len() < PROBE_MIN_LEN {
        return false;
    }
    let span = plain.len() - PROBE_CHUNK;
    let mut sample = Vec::with_capacity(PROBE_CHUNK * PROBE_CHUNKS);
    for i in 0..PROBE_CHUNKS {
        let start = span * i / (PROBE_CHUNKS - 1);
        sample.extend_from_slice(&plain[start..start + PROBE_CHUNK]);
    }
    match compress_with_level(&sample, 1) {
        Ok(c) => c.len() > sample.len() - sample.len() / 16,
        // Let the real codec decide.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BLOCK: usize = 128 * 1024;

    /// Deterministic pseudo-random bytes (splitmix64), incompressible for zstd.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    fn text(n: usize) -> Vec<u8> {
        let words = ["alpha ", "beta ", "gamma\n", "delta ", "epsilon, ", "zeta. "];
        let r = random(n, 42);
        let mut out = Vec::with_capacity(n + 16);
        let mut i = 0;
        while out.len() < n {
            out.extend_from_slice(words[r[i % n] as usize % words.len()].as_bytes());
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn codec_of(frame: &[u8]) -> CodecId {
        FrameHeader::parse(frame).unwrap().codec
    }

    fn samples() -> Vec<Vec<u8>> {
        vec![Vec::new(), b"x".to_vec(), text(300), text(BLOCK), random(BLOCK, 1), vec![0xab; BLOCK]]
    }

    #[test]
    fn codecs_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Codecs>();
    }

    #[test]
    fn round_trip_raw_and_zstd() {
        for target in [Target::Raw, Target::Zstd { level: 3 }] {
            let codecs = writing(target);
            for data in samples() {
                let frame = codecs.encode_block(&data).unwrap();
                assert_eq!(codecs.decode_frame(&frame).unwrap(), data, "{target:?}");
                if target == Target::Raw {
                    assert_eq!(codec_of(&frame), CodecId::Raw);
                    assert_eq!(frame.len(), HEADER_LEN + data.len());
                }
            }
        }
    }

    #[test]
    fn zstd_picks_per_block() {
        // Level 3 runs without the probe, level 12 with it.
        for level in [3, 12] {
            let codecs = Codecs::new(level);
            let t = codecs.encode_block(&text(BLOCK)).unwrap();
            assert_eq!(codec_of(&t), CodecId::Zstd);
            assert!(t.len() < BLOCK / 3);
            // Random data is stored raw, whether the probe or the threshold catches it.
            for data in [random(BLOCK, 7), random(1000, 7), random(PROBE_MIN_LEN, 8)] {
                let f = codecs.encode_block(&data).unwrap();
                assert_eq!(codec_of(&f), CodecId::Raw);
                assert_eq!(f.len(), HEADER_LEN + data.len());
            }
            // Tiny and empty blocks gain nothing from zstd's own framing.
            assert_eq!(codec_of(&codecs.encode_block(b"").unwrap()), CodecId::Raw);
            assert_eq!(codec_of(&codecs.encode_block(b"abc").unwrap()), CodecId::Raw);
        }
    }

    #[test]
    fn probe_judges_large_blocks() {
        assert!(looks_incompressible(&random(BLOCK, 3)));
        assert!(!looks_incompressible(&text(BLOCK)));
        assert!(!looks_incompressible(&random(PROBE_MIN_LEN - 1, 3)));
        let codecs = Codecs::new(9);
        // A compressible head over random data makes the probe say "try" (it samples the
        // head); the threshold then stores it raw. Wasted work, never a wrong choice.
        let mut mixed = text(8 * 1024);
        mixed.extend(random(BLOCK - mixed.len(), 4));
        assert_eq!(codec_of(&codecs.encode_block(&mixed).unwrap()), CodecId::Raw);
        // Half text, half random saves well over 1/8 and must not be aborted.
        let mut half = text(BLOCK / 2);
        half.extend(random(BLOCK / 2, 5));
        assert!(!looks_incompressible(&half));
        assert_eq!(codec_of(&codecs.encode_block(&half).unwrap()), CodecId::Zstd);
    }

    /// A stand-in learned codec whose payload size the test controls: it drops trailing
    /// zeros and restores them on decode.
    struct TrimZeros(ModelId);

    impl Codec for TrimZeros {
        fn id(&self) -> CodecId {
            CodecId::T5
        }
        fn model_id(&self) -> ModelId {
            self.0
        }
        fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
            let end = plain.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            Ok(plain[..end].to_vec())
        }
        fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError> {
            if payload.len() > plain_len {
                return Err(CodecError::Decompress("payload longer than plaintext".into()));
            }
            let mut v = payload.to_vec();
            v.resize(plain_len, 0);
            Ok(v)
        }
    }

    fn with_trim(model: ModelId) -> Codecs {
        let mut codecs = Codecs::new(3);
        codecs.register(Arc::new(TrimZeros(model)));
        codecs.set_writer(Target::Smallest { model, zstd_level: 3 }).unwrap();
        codecs
    }

    fn writing(target: Target) -> Codecs {
        let mut codecs = Codecs::new(3);
        codecs.set_writer(target).unwrap();
        codecs
    }

    /// `n` bytes: `nonzero` bytes of 0xff (never trimmed), then zeros.
    fn ones_then_zeros(n: usize, nonzero: usize) -> Vec<u8> {
        let mut v = vec![0xff; nonzero];
        v.resize(n, 0);
        v
    }

    #[test]
    fn smallest_of_learned_zstd_and_raw() {
        let model = ModelId([9; 32]);
        let codecs = with_trim(model);
        assert_eq!(codecs.writer().model(), model);
        // Ones then zeros: the stand-in learned codec (trailing zeros cost nothing) beats
        // zstd's framing on a short block.
        let n = 8000;
        let trimmed = ones_then_zeros(n, 10);
        let f = codecs.encode_block(&trimmed).unwrap();
        assert_eq!(codec_of(&f), CodecId::T5);
        assert_eq!(FrameHeader::parse(&f).unwrap().model_id, model);
        assert_eq!(f.len(), HEADER_LEN + 10);
        assert_eq!(codecs.decode_frame(&f).unwrap(), trimmed);
        // Text without trailing zeros: the learned codec stores it whole, zstd wins.
        let t = text(BLOCK);
        let f = codecs.encode_block(&t).unwrap();
        assert_eq!(codec_of(&f), CodecId::Zstd);
        assert_eq!(codecs.decode_frame(&f).unwrap(), t);
        // Nothing helps: raw, never larger than the block plus a header.
        let r = random(BLOCK, 5);
        let f = codecs.encode_block(&r).unwrap();
        assert_eq!(codec_of(&f), CodecId::Raw);
        assert_eq!(f.len(), HEADER_LEN + BLOCK);
        // A frame is never larger than any candidate's.
        for data in samples() {
            let f = codecs.encode_block(&data).unwrap();
            let zstd = writing(Target::Zstd { level: 3 }).encode_block(&data).unwrap();
            assert!(f.len() <= zstd.len() && f.len() <= HEADER_LEN + data.len());
            assert_eq!(codecs.decode_frame(&f).unwrap(), data);
        }
    }

    #[test]
    fn zstd_keeps_the_one_eighth_rule() {
        // 8000 bytes of one byte then random: zstd saves little, so the frame is raw.
        let mut data = vec![7u8; 500];
        data.extend(random(7500, 3));
        let f = writing(Target::Zstd { level: 3 }).encode_block(&data).unwrap();
        assert_eq!(codec_of(&f), CodecId::Raw);
    }

    #[test]
    fn registered_codec_is_needed_to_read_its_frames() {
        let model = ModelId([9; 32]);
        // Random bytes then zeros: the stand-in learned codec (100 bytes) beats zstd.
        let mut data = random(100, 1);
        data.resize(4000, 0);
        let frame = with_trim(model).encode_block(&data).unwrap();
        assert_eq!(codec_of(&frame), CodecId::T5);

        let plain = writing(Target::Raw);
        assert!(matches!(plain.decode_frame(&frame), Err(CodecError::UnknownModel(m)) if m == model));
        // Another model of the same codec is not good enough either.
        let other = with_trim(ModelId([8; 32]));
        assert!(matches!(other.decode_frame(&frame), Err(CodecError::UnknownModel(_))));
        // Registering the right one makes it readable, whatever the writer.
        let mut reader = writing(Target::Raw);
        reader.register(Arc::new(TrimZeros(model)));
        assert_eq!(reader.decode_frame(&frame).unwrap(), data);
        assert!(reader.set_writer(Target::Smallest { model: ModelId([1; 32]), zstd_level: 3 }).is_err());
    }

    #[test]
    fn t5_frames_need_their_model() {
        let model = ModelId([1; 32]);
        let frame = FrameHeader::new(CodecId::T5, model, b"abc", b"zz").unwrap().encode(b"zz");
        let codecs = Codecs::new(3);
        assert!(matches!(codecs.decode_frame(&frame), Err(CodecError::UnknownModel(m)) if m == model));
    }

    #[test]
    fn decode_ignores_the_configured_codec() {
        let data = text(BLOCK);
        let zstd_frame = Codecs::new(3).encode_block(&data).unwrap();
        assert_eq!(codec_of(&zstd_frame), CodecId::Zstd);
        let raw_frame = writing(Target::Raw).encode_block(&data).unwrap();
        for reader in [writing(Target::Raw), Codecs::new(19)] {
            assert_eq!(reader.decode_frame(&zstd_frame).unwrap(), data);
            assert_eq!(reader.decode_frame(&raw_frame).unwrap(), data);
        }
    }

    fn small_frames() -> Vec<Vec<u8>> {
        let codecs = Codecs::new(3);
        let z = codecs.encode_block(&text(400)).unwrap();
        assert_eq!(codec_of(&z), CodecId::Zstd);
        let r = codecs.encode_block(b"short raw block").unwrap();
        assert_eq!(codec_of(&r), CodecId::Raw);
        let e = codecs.encode_block(b"").unwrap();
        vec![z, r, e]
    }

    /// Every single-bit flip of a small frame is rejected, with one exception that is
    /// harmless: zstd bitstreams are not canonical (the frame descriptor's "unused" bit,
    /// slack in entropy-table descriptions), so a few payload flips decode to the very
    /// same plaintext, which the plaintext checksum then proves. What must never happen is
    /// different bytes coming back; header and raw-frame flips are always rejected.
    #[test]
    fn every_single_bit_flip_is_rejected_or_harmless() {
        let codecs = Codecs::new(3);
        for frame in small_frames() {
            let original = codecs.decode_frame(&frame).unwrap();
            let strict_bits = if codec_of(&frame) == CodecId::Raw { frame.len() * 8 } else { HEADER_LEN * 8 };
            let mut harmless = 0;
            for bit in 0..frame.len() * 8 {
                let mut bad = frame.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                match codecs.decode_frame(&bad) {
                    Err(_) => {}
                    Ok(plain) => {
                        assert!(bit >= strict_bits, "flip of bit {bit} accepted");
                        assert_eq!(plain, original, "flip of bit {bit} gave wrong bytes");
                        harmless += 1;
                    }
                }
            }
            assert!(harmless <= 16, "{harmless} flips went undetected");
        }
    }

    #[test]
    fn truncated_and_padded_frames_are_rejected() {
        let codecs = Codecs::new(3);
        for frame in small_frames() {
            for n in 0..frame.len() {
                assert!(codecs.decode_frame(&frame[..n]).is_err(), "prefix {n} accepted");
            }
            let mut padded = frame.clone();
            padded.push(0);
            assert!(matches!(codecs.decode_frame(&padded), Err(CodecError::TrailingBytes(1))));
        }
    }

    #[test]
    fn huge_declared_length_is_refused_before_allocating() {
        let codecs = Codecs::new(3);
        let mut h = FrameHeader::new(CodecId::Zstd, ModelId::NONE, b"", b"").unwrap();
        h.plain_len = u32::MAX;
        assert!(matches!(codecs.decode_frame(&h.encode(b"")), Err(CodecError::TooLarge(_))));
        h.plain_len = (MAX_PLAIN_LEN + 1) as u32;
        assert!(matches!(codecs.decode_frame(&h.encode(b"")), Err(CodecError::TooLarge(_))));
        // A zstd payload that claims more than plain_len is refused by the capacity bound.
        let big = vec![7u8; 1 << 20];
        let payload = Zstd::new(3).compress(&big).unwrap();
        let mut h = FrameHeader::new(CodecId::Zstd, ModelId::NONE, &big, &payload).unwrap();
        h.plain_len = 1000;
        assert!(codecs.decode_frame(&h.encode(&payload)).is_err());
        assert!(matches!(codecs.encode_block(&vec![1u8; MAX_PLAIN_LEN + 1]), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn wrong_checksum_is_caught() {
        let data = text(1000);
        let codecs = Codecs::new(3);
        let payload = Zstd::new(3).compress(&data).unwrap();
        let mut h = FrameHeader::new(CodecId::Zstd, ModelId::NONE, &data, &payload).unwrap();
        h.checksum ^= 1;
        assert!(matches!(codecs.decode_frame(&h.encode(&payload)), Err(CodecError::Checksum)));
    }

    /// The t5 codec, recording the size of each batch it is given.
    struct CountingT5(crate::t5::T5Codec, std::sync::Mutex<Vec<usize>>);

    impl Codec for CountingT5 {
        fn id(&self) -> CodecId {
            self.0.id()
        }
        fn model_id(&self) -> ModelId {
            self.0.model_id()
        }
        fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
            self.0.compress(plain)
        }
        fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError> {
            self.0.decompress(payload, plain_len)
        }
        fn decompress_batch(
            &self,
            items: &[(&[u8], usize)],
            device: &candle_core::Device,
        ) -> Option<Vec<Result<Vec<u8>, CodecError>>> {
            self.1.lock().unwrap().push(items.len());
            Codec::decompress_batch(&self.0, items, device)
        }
    }

    #[test]
    fn batched_decoding_gives_what_decode_frame_gives() {
        use crate::t5::{Model, T5Codec, fixtures};
        let counting = |model: Arc<Model>| Arc::new(CountingT5(T5Codec::new(model), Default::default()));
        let tiny = counting(fixtures::tiny_model());
        let other = counting(Arc::new(Model::random(fixtures::tiny_config(), fixtures::tiny_bpe(), 8).unwrap()));
        let (tiny_id, other_id) = (tiny.model_id(), other.model_id());
        assert_ne!(tiny_id, other_id);
        let mut codecs = Codecs::new(3);
        codecs.register(tiny.clone());
        codecs.register(other.clone());
        let t5 = |model: ModelId, data: &[u8]| {
            let f = codecs.encode_as(data, Target::Learned { model }).unwrap();
            assert_eq!(codec_of(&f), CodecId::T5);
            f
        };
        let good = t5(tiny_id, &fixtures::text(3000));
        // A payload byte flipped: the codec decodes other bytes, or fails.
        let mut flipped = good.clone();
        let middle = HEADER_LEN + (flipped.len() - HEADER_LEN) / 2;
        flipped[middle] ^= 0x10;
        // A valid payload under a header with another plaintext checksum.
        let data = fixtures::text(1500);
        let payload = tiny.compress(&data).unwrap();
        let mut h = FrameHeader::new(CodecId::T5, tiny_id, &data, &payload).unwrap();
        h.checksum ^= 1;
        let frames: Vec<Vec<u8>> = vec![
            good.clone(),
            codecs.encode_as(b"short raw block", Target::Raw).unwrap(),
            codecs.encode_as(&text(5000), Target::Zstd { level: 3 }).unwrap(),
            t5(other_id, &fixtures::text(2000)),
            flipped,
            h.encode(&payload),
            good[..good.len() - 1].to_vec(),
            FrameHeader::new(CodecId::T5, ModelId([1; 32]), b"abc", b"zz").unwrap().encode(b"zz"),
            t5(tiny_id, &data),
            codecs.encode_as(b"", Target::Raw).unwrap(),
        ];
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let got = codecs.decode_frames_batched(&refs, &candle_core::Device::Cpu);
        assert_eq!(got.len(), frames.len());
        for (k, (frame, got)) in frames.iter().zip(&got).enumerate() {
            match (codecs.decode_frame(frame), got) {
                (Ok(alone), Ok(batched)) => assert_eq!(&alone, batched, "frame {k}"),
                (Err(alone), Err(batched)) => assert_eq!(
                    std::mem::discriminant(&alone),
                    std::mem::discriminant(batched),
                    "frame {k}: {alone} / {batched}"
                ),
                (alone, batched) => panic!("frame {k}: {alone:?} alone, {batched:?} batched"),
            }
        }
        let ok: Vec<usize> = (0..got.len()).filter(|&k| got[k].is_ok()).collect();
        assert_eq!(ok, [0, 1, 2, 3, 8, 9]);
        assert!(matches!(got[5], Err(CodecError::Checksum)));
        // The frames of each model that opened went to the codec in one batch.
        assert_eq!(*tiny.1.lock().unwrap(), [4]);
        assert_eq!(*other.1.lock().unwrap(), [1]);
    }

    fn arb_block() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            // Low-entropy data of varied sizes, large enough to reach the probe path.
            (0usize..(BLOCK + 1), any::<u64>())
                .prop_map(|(n, seed)| { random(n, seed).into_iter().map(|b| b % 4).collect() }),
            (0usize..(BLOCK + 1), any::<u64>()).prop_map(|(n, seed)| random(n, seed)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_round_trip(data in arb_block(), zstd in any::<bool>(), level in 1i32..6) {
            let codecs = writing(if zstd { Target::Zstd { level } } else { Target::Raw });
            let frame = codecs.encode_block(&data).unwrap();
            prop_assert!(frame.len() <= HEADER_LEN + data.len());
            prop_assert_eq!(codecs.decode_frame(&frame).unwrap(), data);
        }

        #[test]
        fn prop_damage_never_yields_wrong_bytes(
            data in proptest::collection::vec(0u8..8, 0..3000),
            pos in any::<proptest::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let codecs = Codecs::new(3);
            let mut frame = codecs.encode_block(&data).unwrap();
            let i = pos.index(frame.len());
            frame[i] ^= xor;
            // Rejected, or (zstd payload slack, see above) exactly the original bytes.
            match codecs.decode_frame(&frame) {
                Err(_) => {}
                Ok(plain) => {
                    prop_assert!(i >= HEADER_LEN && codec_of(&frame) == CodecId::Zstd);
                    prop_assert_eq!(plain, data);
                }
            }
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let codecs = Codecs::new(3);
            let _ = codecs.decode_frame(&bytes);
            let _ = FrameHeader::parse(&bytes);
            // With a valid header in front, the payload reaches the codec.
            let payload = &bytes[..];
            for codec in [CodecId::Raw, CodecId::Zstd] {
                let h = FrameHeader::new(codec, ModelId::NONE, &bytes, payload).unwrap();
                let _ = codecs.decode_frame(&h.encode(payload));
            }
        }
    }
}
