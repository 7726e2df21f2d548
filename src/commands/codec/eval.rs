//! `s2sfs codec eval`: per file, what the writing codec stores against zstd -19 per block,
//! and how fast one core compresses and decompresses. Every frame is decoded and compared
//! with its block, so a figure never comes from a frame that would not read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{Result, ToolError, read_file};
use crate::codec::{CodecId, Codecs, FrameHeader};

/// zstd's strongest regular level: the classic per-block reference (ARCHITECTURE.md, "The
/// bench corpus and its baseline").
const ZSTD_REFERENCE_LEVEL: i32 = 19;

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalRow {
    pub file: String,
    pub bytes: u64,
    /// Frames as a volume stores them (60-byte header included).
    pub frame_bytes: u64,
    pub bits_per_byte: f64,
    pub ratio: f64,
    /// zstd -19 on each block alone (zstd's own frame format).
    pub zstd19_bytes: u64,
    pub zstd19_ratio: f64,
    /// Thread CPU seconds spent compressing and decompressing (one core's time).
    pub compress_cpu_s: f64,
    pub decompress_cpu_s: f64,
    pub compress_kb_s: f64,
    pub decompress_kb_s: f64,
    /// Blocks whose frame each codec wrote: with `--codec auto`, the blocks each codec won.
    pub blocks_t5: u64,
    pub blocks_zstd: u64,
    pub blocks_raw: u64,
}

impl EvalRow {
    fn finish(mut self) -> EvalRow {
        let b = self.bytes as f64;
        self.bits_per_byte = if b > 0.0 { self.frame_bytes as f64 * 8.0 / b } else { 0.0 };
        self.ratio = ratio(self.bytes, self.frame_bytes);
        self.zstd19_ratio = ratio(self.bytes, self.zstd19_bytes);
        self.compress_kb_s = kb_s(self.bytes, self.compress_cpu_s);
        self.decompress_kb_s = kb_s(self.bytes, self.decompress_cpu_s);
        self
    }

    fn add(&mut self, o: &EvalRow) {
        self.bytes += o.bytes;
        self.frame_bytes += o.frame_bytes;
        self.zstd19_bytes += o.zstd19_bytes;
        self.compress_cpu_s += o.compress_cpu_s;
        self.decompress_cpu_s += o.decompress_cpu_s;
        self.blocks_t5 += o.blocks_t5;
        self.blocks_zstd += o.blocks_zstd;
        self.blocks_raw += o.blocks_raw;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn kb_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 / 1000.0 / secs } else { 0.0 }
}

/// CPU time of the calling thread: the machine may be shared, one core's work is not.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// One block through the codec and back, and through zstd -19.
fn eval_block(codecs: &Codecs, path: &Path, index: u64, block: &[u8]) -> Result<EvalRow> {
    let frame_err = |source| ToolError::Frame { path: path.to_path_buf(), block: index, source };
    let t0 = thread_cpu();
    let frame = codecs.encode_block(block).map_err(frame_err)?;
    let t1 = thread_cpu();
    let back = codecs.decode_frame(&frame).map_err(frame_err)?;
    let t2 = thread_cpu();
    if back != block {
        return Err(ToolError::Format {
            path: path.to_path_buf(),
            what: format!("block {index} decoded to other bytes"),
        });
    }
    let zstd19 = zstd::bulk::compress(block, ZSTD_REFERENCE_LEVEL)
        .map_err(|e| ToolError::Io { path: path.to_path_buf(), source: e })?;
    let codec = FrameHeader::parse(&frame).map_err(frame_err)?.codec;
    Ok(EvalRow {
        blocks_t5: (codec == CodecId::T5) as u64,
        blocks_zstd: (codec == CodecId::Zstd) as u64,
        blocks_raw: (codec == CodecId::Raw) as u64,
        bytes: block.len() as u64,
        frame_bytes: frame.len() as u64,
        zstd19_bytes: zstd19.len() as u64,
        compress_cpu_s: t1 - t0,
        decompress_cpu_s: t2 - t1,
        ..Default::default()
    })
}

/// Evaluates every file (blocks on all cores, each timed on its own thread); the last
/// row is the total. `progress` gets bytes done.
pub fn eval_files(
    codecs: &Codecs,
    block_size: usize,
    files: &[PathBuf],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<EvalRow>> {
    let done = std::sync::atomic::AtomicU64::new(0);
    let mut rows = Vec::with_capacity(files.len() + 1);
    let mut total = EvalRow { file: "TOTAL".into(), ..Default::default() };
    for path in files {
        let data = read_file(path)?;
        let parts: Vec<EvalRow> = data
            .par_chunks(block_size)
            .enumerate()
            .map(|(i, block)| {
                let r = eval_block(codecs, path, i as u64, block);
                progress(done.fetch_add(block.len() as u64, std::sync::atomic::Ordering::Relaxed) + block.len() as u64);
                r
            })
            .collect::<Result<_>>()?;
        let mut row = EvalRow { file: path.display().to_string(), ..Default::default() };
        for p in &parts {
            row.add(p);
        }
        total.add(&row);
        rows.push(row.finish());
    }
    rows.push(total.finish());
    Ok(rows)
}

pub fn render_eval(out: &mut dyn Write, rows: &[EvalRow], codec: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>6} {:>6} {:>10} {:>6} {:>8} {:>9} {:>9} {:>14}",
        "file", "bytes", codec, "bpb", "ratio", "zstd-19", "ratio", "vs zstd", "comp KB/s", "dec KB/s", "t5/zstd/raw"
    )?;
    for r in rows {
        let name = Path::new(&r.file).file_name().map_or(r.file.clone(), |n| n.to_string_lossy().into_owned());
        writeln!(
            out,
            "{:<28} {:>10} {:>10} {:>6.3} {:>6.3} {:>10} {:>6.3} {:>7.3}x {:>9.1} {:>9.1} {:>14}",
            name,
            r.bytes,
            r.frame_bytes,
            r.bits_per_byte,
            r.ratio,
            r.zstd19_bytes,
            r.zstd19_ratio,
            ratio(r.zstd19_bytes, r.frame_bytes),
            r.compress_kb_s,
            r.decompress_kb_s,
            format!("{}/{}/{}", r.blocks_t5, r.blocks_zstd, r.blocks_raw)
        )?;
    }
    writeln!(
        out,
        "(KB/s: 1000 bytes per second of one core's CPU time; ratios: bytes / stored bytes; t5/zstd/raw: blocks stored by each)"
    )
}
