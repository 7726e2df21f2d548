//! `s2sfs codec batch`: the t5 frames of whole files decoded in batches on the batched
//! network (`t5::batched::lockstep`): the first GPU when built with the `cuda` feature, else the
//! CPU. Frames are written on the CPU first; every decoded block is compared with its
//! original. Reports the decode throughput by wall time and the device.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::{Result, ToolError, read_file};
use crate::codec::{CodecId, Codecs, FrameHeader, HEADER_LEN};
use crate::t5::{T5Codec, batch_device};

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub device: String,
    /// Blocks per batch.
    pub batch: usize,
    /// t5 frames decoded, and their plaintext bytes.
    pub frames: usize,
    pub bytes: u64,
    /// Blocks stored otherwise (raw), not decoded here.
    pub other_frames: usize,
    pub decode_wall_s: f64,
    pub decode_kb_s: f64,
}

/// Cuts `files` into blocks, writes their frames, and decodes the t5 ones `batch` at a
/// time on the batch device; `progress` gets plaintext bytes decoded.
pub fn batch_decode(
    codecs: &Codecs,
    codec: &T5Codec,
    block_size: usize,
    files: &[PathBuf],
    batch: usize,
    progress: &dyn Fn(u64),
) -> Result<BatchReport> {
    let mut blocks: Vec<(PathBuf, u64, Vec<u8>)> = Vec::new();
    for path in files {
        let data = read_file(path)?;
        blocks.extend(data.chunks(block_size).enumerate().map(|(i, b)| (path.clone(), i as u64, b.to_vec())));
    }
    let frames: Vec<Vec<u8>> = blocks
        .par_iter()
        .map(|(path, i, b)| {
            codecs.encode_block(b).map_err(|source| ToolError::Frame { path: path.clone(), block: *i, source })
        })
        .collect::<Result<_>>()?;
    let mut t5 = Vec::new();
    for (k, frame) in frames.iter().enumerate() {
        let (path, i, _) = &blocks[k];
        let header =
            FrameHeader::parse(frame).map_err(|source| ToolError::Frame { path: path.clone(), block: *i, source })?;
        if header.codec == CodecId::T5 {
            t5.push(k);
        }
    }
    // Equal lengths advance in lockstep best: longest first.
    t5.sort_by_key(|&k| std::cmp::Reverse(blocks[k].2.len()));
    let device = batch_device();
    let (mut bytes, mut wall) = (0u64, 0.0);
    for group in t5.chunks(batch.max(1)) {
        let items: Vec<(&[u8], usize)> = group.iter().map(|&k| (&frames[k][HEADER_LEN..], blocks[k].2.len())).collect();
        let start = Instant::now();
        let decoded = codec.decompress_batch(&items, &device);
        wall += start.elapsed().as_secs_f64();
        for (&k, got) in group.iter().zip(decoded) {
            let (path, i, block) = &blocks[k];
            let got = got.map_err(|source| ToolError::Frame { path: path.clone(), block: *i, source })?;
            if got != *block {
                return Err(ToolError::Format {
                    path: path.clone(),
                    what: format!("block {i} decoded to other bytes in a batch"),
                });
            }
            bytes += block.len() as u64;
        }
        progress(bytes);
    }
    Ok(BatchReport {
        device: format!("{device:?}"),
        batch,
        frames: t5.len(),
        bytes,
        other_frames: frames.len() - t5.len(),
        decode_wall_s: wall,
        decode_kb_s: if wall > 0.0 { bytes as f64 / 1000.0 / wall } else { 0.0 },
    })
}
