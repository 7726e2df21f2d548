//! The frame format: a fixed, self-checking header followed by the codec's payload.
//!
//! Every stored block is one frame, so a frame must be readable on its own: it names its
//! codec and model (reading never depends on the volume's current settings), carries the
//! plaintext length (bounds allocation before decoding), and carries a checksum of the
//! plaintext (a damaged block is an error, never wrong bytes). The header has its own
//! check so that a damaged length or codec id is caught before anything acts on it.
//!
//! Layout, little-endian, `HEADER_LEN` bytes:
//!
//! ```text
//! off len  field
//!   0   4  magic b"S2F1"
//!   4   1  codec id (CodecId)
//!   5   1  flags (0)
//!   6   2  reserved (0)
//!   8  32  model id (all zero for classic codecs)
//!  40   4  plain_len
//!  44   4  payload_len
//!  48   8  checksum: xxh3_64 of the plaintext
//!  56   4  header_check: low 32 bits of xxh3_64 of bytes 0..56
//! ```

use std::fmt;

use xxhash_rust::xxh3::xxh3_64;

use super::{CodecError, ModelId};

const MAGIC: [u8; 4] = *b"S2F1";

const OFF_CODEC: usize = 4;
const OFF_FLAGS: usize = 5;
const OFF_RESERVED: usize = 6;
const OFF_MODEL: usize = 8;
const OFF_PLAIN_LEN: usize = 40;
const OFF_PAYLOAD_LEN: usize = 44;
const OFF_CHECKSUM: usize = 48;
const OFF_HEADER_CHECK: usize = 56;

/// Size of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 60;

/// The codec ids as written on disk. The numbers are part of the format: never reuse one.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecId {
    /// Payload is the plaintext itself.
    Raw = 0,
    /// Payload is one zstd frame.
    Zstd = 1,
    /// Reserved for the learned T5 latent coder; needs the model named in the header.
    T5 = 2,
}

impl CodecId {
    /// The codec for an on-disk id, or `None` for an id this build does not know.
    pub fn from_u8(id: u8) -> Option<CodecId> {
        match id {
            0 => Some(CodecId::Raw),
            1 => Some(CodecId::Zstd),
            2 => Some(CodecId::T5),
            _ => None,
        }
    }

    /// Short lowercase name, as used on the command line and in statistics.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::Raw => "raw",
            CodecId::Zstd => "zstd",
            CodecId::T5 => "t5",
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The decoded, already verified fields of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub codec: CodecId,
    pub model_id: ModelId,
    pub plain_len: u32,
    pub payload_len: u32,
    /// xxh3_64 of the plaintext.
    pub checksum: u64,
}

impl FrameHeader {
    /// Builds the header for `plain` encoded as `payload` by `codec`.
    ///
    /// Fails only when a length does not fit the header's u32 fields.
    pub fn new(codec: CodecId, model_id: ModelId, plain: &[u8], payload: &[u8]) -> Result<FrameHeader, CodecError> {
        let plain_len = u32::try_from(plain.len()).map_err(|_| CodecError::TooLarge(plain.len()))?;
        let payload_len = u32::try_from(payload.len()).map_err(|_| CodecError::TooLarge(payload.len()))?;
        Ok(FrameHeader { codec, model_id, plain_len, payload_len, checksum: xxh3_64(plain) })
    }

    /// Parses and verifies the header at the start of `bytes` (which may hold more: the
    /// payload usually follows). Checks the length, the magic, the header check, the
    /// codec id and the zero flags/reserved fields. Never panics, whatever the input.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, CodecError> {
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(CodecError::Truncated("header"));
        };
        if h[..4] != MAGIC {
            return Err(CodecError::BadMagic);
        }
        let stored_check = u32::from_le_bytes(array(h, OFF_HEADER_CHECK));
        if stored_check != header_check(&h[..OFF_HEADER_CHECK]) {
            return Err(CodecError::HeaderChecksum);
        }
        let codec = CodecId::from_u8(h[OFF_CODEC]).ok_or(CodecError::UnknownCodec(h[OFF_CODEC]))?;
        // Flags would change how a payload is read; a reader that does not know them
        // must refuse rather than guess.
        if h[OFF_FLAGS] != 0 {
            return Err(CodecError::Unsupported("nonzero flags"));
        }
        if h[OFF_RESERVED..OFF_RESERVED + 2] != [0, 0] {
            return Err(CodecError::Unsupported("nonzero reserved field"));
        }
        Ok(FrameHeader {
            codec,
            model_id: ModelId(array(h, OFF_MODEL)),
            plain_len: u32::from_le_bytes(array(h, OFF_PLAIN_LEN)),
            payload_len: u32::from_le_bytes(array(h, OFF_PAYLOAD_LEN)),
            checksum: u64::from_le_bytes(array(h, OFF_CHECKSUM)),
        })
    }

    /// Total length of the frame this header starts: header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// The header's bytes, header check included.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[OFF_CODEC] = self.codec as u8;
        // flags and reserved stay zero
        h[OFF_MODEL..OFF_MODEL + 32].copy_from_slice(&self.model_id.0);
        h[OFF_PLAIN_LEN..OFF_PLAIN_LEN + 4].copy_from_slice(&self.plain_len.to_le_bytes());
        h[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 4].copy_from_slice(&self.payload_len.to_le_bytes());
        h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&self.checksum.to_le_bytes());
        let check = header_check(&h[..OFF_HEADER_CHECK]);
        h[OFF_HEADER_CHECK..].copy_from_slice(&check.to_le_bytes());
        h
    }

    /// The complete frame: this header followed by `payload`.
    ///
    /// `payload.len()` must equal `self.payload_len`; a mismatch is a caller bug, and the
    /// resulting frame would be rejected on read (wrong length), never misread.
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        debug_assert_eq!(payload.len(), self.payload_len as usize, "payload_len mismatch");
        let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
        frame.extend_from_slice(&self.to_bytes());
        frame.extend_from_slice(payload);
        frame
    }
}

/// Low 32 bits of xxh3_64 over the header bytes before the check field.
fn header_check(bytes: &[u8]) -> u32 {
    xxh3_64(bytes) as u32
}

/// `N` bytes of `h` at `off`. Callers pass constant offsets inside a `HEADER_LEN` slice.
fn array<const N: usize>(h: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&h[off..off + N]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader::new(CodecId::Zstd, ModelId([7; 32]), b"hello world", b"payload").unwrap()
    }

    #[test]
    fn layout_is_as_documented() {
        assert_eq!(OFF_HEADER_CHECK + 4, HEADER_LEN);
        let h = sample().to_bytes();
        assert_eq!(&h[..4], b"S2F1");
        assert_eq!(h[4], 1);
        assert_eq!(&h[5..8], &[0, 0, 0]);
        assert_eq!(&h[8..40], &[7; 32]);
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 11);
        assert_eq!(u32::from_le_bytes(h[44..48].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(h[48..56].try_into().unwrap()), xxh3_64(b"hello world"));
        assert_eq!(u32::from_le_bytes(h[56..60].try_into().unwrap()), xxh3_64(&h[..56]) as u32);
    }

    #[test]
    fn parse_round_trips() {
        let hdr = sample();
        let frame = hdr.encode(b"payload");
        assert_eq!(frame.len(), hdr.frame_len());
        assert_eq!(FrameHeader::parse(&frame).unwrap(), hdr);
        assert_eq!(FrameHeader::parse(&frame[..HEADER_LEN]).unwrap(), hdr);
    }

    #[test]
    fn codec_ids() {
        for id in [CodecId::Raw, CodecId::Zstd, CodecId::T5] {
            assert_eq!(CodecId::from_u8(id as u8), Some(id));
        }
        assert_eq!(CodecId::from_u8(3), None);
        assert_eq!(CodecId::from_u8(255), None);
        assert_eq!(CodecId::Zstd.name(), "zstd");
        assert_eq!(CodecId::T5.to_string(), "t5");
    }

    #[test]
    fn short_input_is_truncated() {
        let h = sample().to_bytes();
        for n in 0..HEADER_LEN {
            assert!(matches!(FrameHeader::parse(&h[..n]), Err(CodecError::Truncated(_))));
        }
    }

    #[test]
    fn bad_magic() {
        let mut h = sample().to_bytes();
        h[0] = b'X';
        assert!(matches!(FrameHeader::parse(&h), Err(CodecError::BadMagic)));
    }

    /// Rewrites the header check so that only the field under test is wrong.
    fn reseal(h: &mut [u8; HEADER_LEN]) {
        let check = header_check(&h[..OFF_HEADER_CHECK]);
        h[OFF_HEADER_CHECK..].copy_from_slice(&check.to_le_bytes());
    }

    #[test]
    fn unknown_codec_and_flags() {
        let mut h = sample().to_bytes();
        h[OFF_CODEC] = 9;
        reseal(&mut h);
        assert!(matches!(FrameHeader::parse(&h), Err(CodecError::UnknownCodec(9))));

        let mut h = sample().to_bytes();
        h[OFF_FLAGS] = 1;
        reseal(&mut h);
        assert!(matches!(FrameHeader::parse(&h), Err(CodecError::Unsupported(_))));

        let mut h = sample().to_bytes();
        h[OFF_RESERVED + 1] = 1;
        reseal(&mut h);
        assert!(matches!(FrameHeader::parse(&h), Err(CodecError::Unsupported(_))));
    }

    #[test]
    fn every_header_bit_flip_is_rejected() {
        let h = sample().to_bytes();
        for bit in 0..HEADER_LEN * 8 {
            let mut d = h;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(FrameHeader::parse(&d).is_err(), "bit {bit} flip accepted");
        }
    }
}
