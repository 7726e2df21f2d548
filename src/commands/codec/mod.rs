//! `s2sfs codec`: the volume's codecs on whole files, outside any volume. A file is cut
//! into blocks of the volume's block size and each block becomes a frame exactly as the
//! volume would store it, so what this measures is what a volume stores.
//!
//! Container of `codec compress` (all integers little-endian):
//! `"S2SC"`, version u8 (1), block size u32, file length u64, then per block a frame
//! length u32 and the frame (header with codec, model id, length and checksum).

mod batchbench;
mod eval;
mod latents;
mod output;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub use self::batchbench::{BatchReport, batch_decode};
pub use self::eval::{EvalRow, eval_files, render_eval};
pub use self::latents::{LatentRow, latent_files, render_latents};

use crate::codec::{
    CodecError, CodecKind, CodecSet, CodecSpec, Codecs, MAX_PLAIN_LEN, ModelError, Target, learned_target, open_codecs,
};
use crate::t5::{Latents, T5Codec};

const MAGIC: &[u8; 4] = b"S2SC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 17;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("`s2sfs codec batch` and `codec latents` need the t5 codec: pass --codec t5 or --model DIR")]
    NoModel,
    #[error("{path}: {what}")]
    Format { path: PathBuf, what: String },
    #[error("{path}: block {block}: {source}")]
    Frame {
        path: PathBuf,
        block: u64,
        #[source]
        source: CodecError,
    },
    #[error("block size {0} KiB: must be 1 to {max} KiB", max = MAX_PLAIN_LEN >> 10)]
    BlockSize(usize),
}

pub type Result<T> = std::result::Result<T, ToolError>;

/// The tool's codecs for `spec` (t5 when it names none). t5 writes the learned coder
/// alone (raw when it saves less than 1/8), so that `codec eval` measures that coder;
/// auto keeps the smallest of t5, zstd -19 and raw per block, as a t5 volume does.
/// With `Latents::Empty` the learned model's frames are written with empty latents (they
/// decode like any other).
pub fn codecs(spec: &CodecSpec, latents: Latents) -> Result<CodecSet> {
    let mut set = open_codecs(spec, CodecKind::T5, None).map_err(ToolError::Model)?;
    if let Some(model) = &set.model {
        let codec = T5Codec::new(model.clone()).with_latents(latents);
        set.codecs.register(std::sync::Arc::new(codec));
    }
    let target = match (set.kind, &set.model) {
        (CodecKind::T5, Some(model)) => Some(Target::Learned { model: model.id() }),
        (CodecKind::Auto, Some(model)) => Some(learned_target(model.id())),
        _ => None,
    };
    if let Some(target) = target {
        // Registered by open_codecs, so it cannot be unknown.
        let _ = set.codecs.set_writer(target);
    }
    Ok(set)
}

pub fn check_block_size(bytes: usize) -> Result<usize> {
    if bytes == 0 || bytes > MAX_PLAIN_LEN {
        return Err(ToolError::BlockSize(bytes >> 10));
    }
    Ok(bytes)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::Io { path: path.to_path_buf(), source }
}

/// Reads a whole file (the tool works on files that fit in memory, as its frames do).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

/// Compresses `input` into the container at `output`; `progress` gets bytes done.
/// Blocks are compressed on all cores; returns the container's length.
pub fn compress_file(
    codecs: &Codecs,
    block_size: usize,
    input: &Path,
    output: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    use rayon::prelude::*;
    let data = read_file(input)?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let frames: Vec<Vec<u8>> = data
        .par_chunks(block_size)
        .enumerate()
        .map(|(i, block)| {
            let frame = codecs.encode_block(block).map_err(|source| ToolError::Frame {
                path: input.to_path_buf(),
                block: i as u64,
                source,
            });
            progress(done.fetch_add(block.len() as u64, std::sync::atomic::Ordering::Relaxed) + block.len() as u64);
            frame
        })
        .collect::<Result<_>>()?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.extend_from_slice(&(block_size as u32).to_le_bytes());
    header.extend_from_slice(&(data.len() as u64).to_le_bytes());
    output::write_output(output, |out| {
        out.write_all(&header)?;
        for f in &frames {
            out.write_all(&(f.len() as u32).to_le_bytes())?;
            out.write_all(f)?;
        }
        Ok(())
    })?;
    Ok(header.len() as u64 + frames.iter().map(|f| 4 + f.len() as u64).sum::<u64>())
}

/// Decodes the container at `input` into `output`. Every frame is checked (header,
/// model, length, checksum); any damage is an error naming the block, and nothing is
/// written to `output` unless the whole file decoded.
pub fn decompress_file(codecs: &Codecs, input: &Path, output: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<u64> {
    use rayon::prelude::*;
    let bad = |what: String| ToolError::Format { path: input.to_path_buf(), what };
    let mut reader = BufReader::new(File::open(input).map_err(io(input))?);
    let mut header = [0u8; HEADER_LEN];
    reader.read_exact(&mut header).map_err(|_| bad("not an s2sfs codec file (too short)".into()))?;
    if &header[..4] != MAGIC {
        return Err(bad("not an s2sfs codec file (bad magic)".into()));
    }
    if header[4] != VERSION {
        return Err(bad(format!("codec file version {}, this s2sfs reads {VERSION}", header[4])));
    }
    let block_size = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
    let total = u64::from_le_bytes(header[9..17].try_into().map_err(|_| bad("header".into()))?);
    if block_size == 0 || block_size > MAX_PLAIN_LEN {
        return Err(bad(format!("block size {block_size} out of range")));
    }
    let blocks = total.div_ceil(block_size as u64);
    let mut frames = Vec::new();
    for b in 0..blocks {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).map_err(|_| bad(format!("truncated before block {b} of {blocks}")))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_PLAIN_LEN + 4096 {
            return Err(bad(format!("block {b}: frame length {len} out of range")));
        }
        let mut frame = vec![0u8; len];
        reader.read_exact(&mut frame).map_err(|_| bad(format!("truncated inside block {b} of {blocks}")))?;
        frames.push(frame);
    }
    if reader.read(&mut [0u8; 1]).map_err(io(input))? != 0 {
        return Err(bad("bytes after the last block".into()));
    }
    let done = std::sync::atomic::AtomicU64::new(0);
    let plain: Vec<Vec<u8>> = frames
        .par_iter()
        .enumerate()
        .map(|(b, f)| {
            let p = codecs.decode_frame(f).map_err(|source| ToolError::Frame {
                path: input.to_path_buf(),
                block: b as u64,
                source,
            })?;
            let want = (total - b as u64 * block_size as u64).min(block_size as u64) as usize;
            if p.len() != want {
                return Err(bad(format!("block {b} holds {} bytes, {want} expected", p.len())));
            }
            progress(done.fetch_add(p.len() as u64, std::sync::atomic::Ordering::Relaxed) + p.len() as u64);
            Ok(p)
        })
        .collect::<Result<_>>()?;
    output::write_output(output, |out| plain.iter().try_for_each(|p| out.write_all(p)))?;
    Ok(total)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod golden;
