//! The identity codec: the payload is the plaintext.
//!
//! It is what every block falls back to when compression does not pay, so it must be the
//! cheapest possible path, and it is what a volume with `--codec raw` writes.

use super::{Codec, CodecError, CodecId};

/// Stores blocks as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    fn id(&self) -> CodecId {
        CodecId::Raw
    }

    fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(plain.to_vec())
    }

    fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError> {
        if payload.len() != plain_len {
            return Err(CodecError::Length { expected: plain_len, got: payload.len() });
        }
        Ok(payload.to_vec())
    }

    fn decompress_into(&self, payload: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if payload.len() != out.len() {
            return Err(CodecError::Length { expected: out.len(), got: payload.len() });
        }
        out.copy_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity() {
        for data in [&b""[..], b"x", b"some bytes \x00\xff"] {
            let p = Raw.compress(data).unwrap();
            assert_eq!(p, data);
            assert_eq!(Raw.decompress(&p, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(matches!(Raw.decompress(b"abc", 4), Err(CodecError::Length { expected: 4, got: 3 })));
        assert!(Raw.decompress(b"abc", 2).is_err());
    }
}
