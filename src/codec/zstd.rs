//! The zstd codec: the default for the inline write path (fast, decent ratio).
//!
//! Contexts are reused per thread: creating a zstd context allocates and initialises
//! several hundred KiB, which for 128 KiB blocks is a noticeable share of the work. The
//! volume compresses on a fixed rayon pool, so a thread-local context per worker is
//! enough, and it keeps `Zstd` itself trivially `Send + Sync`.

use std::cell::Cell;
use std::io;

use ::zstd::bulk::{Compressor, Decompressor};

use super::{Codec, CodecError, CodecId};

/// zstd's own default level: a good speed/ratio balance for inline writes.
pub const DEFAULT_LEVEL: i32 = 3;

/// Compresses each block as one self-contained zstd frame at a fixed level.
#[derive(Debug, Clone, Copy)]
pub struct Zstd {
    level: i32,
}

impl Zstd {
    /// A zstd codec at `level`, clamped to the range this zstd supports (0 means zstd's
    /// default, as in zstd itself).
    pub fn new(level: i32) -> Zstd {
        let range = ::zstd::compression_level_range();
        Zstd { level: level.clamp(*range.start(), *range.end()) }
    }

    /// The level in use after clamping.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd::new(DEFAULT_LEVEL)
    }
}

impl Codec for Zstd {
    fn id(&self) -> CodecId {
        CodecId::Zstd
    }

    fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, CodecError> {
        compress_with_level(plain, self.level)
    }

    fn decompress(&self, payload: &[u8], plain_len: usize) -> Result<Vec<u8>, CodecError> {
        // `plain_len` is the capacity: zstd refuses to produce more, so a corrupt frame
        // cannot make us allocate beyond what the (checked) header promised.
        let out = with_dctx(|d| d.decompress(payload, plain_len)).map_err(|e| CodecError::Decompress(e.to_string()))?;
        if out.len() != plain_len {
            return Err(CodecError::Length { expected: plain_len, got: out.len() });
        }
        Ok(out)
    }

    fn decompress_into(&self, payload: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let got =
            with_dctx(|d| d.decompress_to_buffer(payload, out)).map_err(|e| CodecError::Decompress(e.to_string()))?;
        if got != out.len() {
            return Err(CodecError::Length { expected: out.len(), got });
        }
        Ok(())
    }
}

/// Compresses `plain` at `level` on this thread's reusable context. Also used by the
/// chooser's cheap incompressibility probe (level 1).
pub(super) fn compress_with_level(plain: &[u8], level: i32) -> Result<Vec<u8>, CodecError> {
    with_cctx(level, |c| c.compress(plain)).map_err(|e| CodecError::Compress(e.to_string()))
}

thread_local! {
    static CCTX: Cell<Option<(i32, Compressor<'static>)>> = const { Cell::new(None) };
    static DCTX: Cell<Option<Decompressor<'static>>> = const { Cell::new(None) };
}

/// Runs `f` on this thread's compressor, set to `level`. The context is taken out of the
/// thread-local for the duration and put back afterwards, so there is no borrow to
/// conflict with, and a thread being torn down just gets a fresh context.
fn with_cctx<T>(level: i32, f: impl FnOnce(&mut Compressor<'static>) -> io::Result<T>) -> io::Result<T> {
    let mut cctx = match CCTX.try_with(Cell::take).ok().flatten() {
        Some((l, c)) if l == level => c,
        Some((_, mut c)) => {
            c.set_compression_level(level)?;
            c
        }
        None => Compressor::new(level)?,
    };
    let result = f(&mut cctx);
    let _ = CCTX.try_with(|cell| cell.set(Some((level, cctx))));
    result
}

/// Runs `f` on this thread's decompressor (see `with_cctx`).
fn with_dctx<T>(f: impl FnOnce(&mut Decompressor<'static>) -> io::Result<T>) -> io::Result<T> {
    let mut dctx = match DCTX.try_with(Cell::take).ok().flatten() {
        Some(d) => d,
        None => Decompressor::new()?,
    };
    let result = f(&mut dctx);
    let _ = DCTX.try_with(|cell| cell.set(Some(dctx)));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog; ".iter().copied().cycle().take(n).collect()
    }

    #[test]
    fn round_trip() {
        let z = Zstd::default();
        for data in [Vec::new(), b"a".to_vec(), text(1000), text(128 * 1024)] {
            let p = z.compress(&data).unwrap();
            assert_eq!(z.decompress(&p, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn compresses_text() {
        let data = text(128 * 1024);
        assert!(Zstd::new(1).compress(&data).unwrap().len() < data.len() / 10);
    }

    #[test]
    fn levels_are_clamped() {
        assert_eq!(Zstd::new(1000).level(), *::zstd::compression_level_range().end());
        assert_eq!(Zstd::new(i32::MIN).level(), *::zstd::compression_level_range().start());
        assert_eq!(Zstd::new(7).level(), 7);
    }

    #[test]
    fn switching_levels_on_one_thread() {
        let data = text(50_000);
        for level in [1, 19, 3, 1, -5] {
            let z = Zstd::new(level);
            let p = z.compress(&data).unwrap();
            assert_eq!(z.decompress(&p, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn capacity_bounds_output() {
        let data = text(10_000);
        let p = Zstd::default().compress(&data).unwrap();
        assert!(Zstd::default().decompress(&p, 9_999).is_err());
        assert!(matches!(
            Zstd::default().decompress(&p, 10_001),
            Err(CodecError::Length { expected: 10_001, got: 10_000 })
        ));
        assert!(Zstd::default().decompress(b"not zstd at all", 100).is_err());
    }
}
