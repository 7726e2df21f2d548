//! Speed of the t5 codec's integer inference on one thread: compresses and decompresses
//! text in 128 KiB blocks with a randomly initialised model of the given shape (the
//! speed does not depend on the weights' values) and reports tokens/s and KB/s.
//!
//! cargo run --release --example t5_speed -- CORPUS_DIR [KIB] [MODEL_DIR]
//! Trains a 2048-token BPE on 4 MB of CORPUS_DIR (one folder per kind of text, as
//! `train-corpus` builds it) and measures on KIB KiB (128) taken from the end of each
//! kind's files. With MODEL_DIR, that model is measured instead. Never point it at the
//! bench corpus except for final measurements.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use s2sfs::codec::Codec;
use s2sfs::t5::{ByteBpe, Model, ModelConfig, T5Codec};

const BLOCK: usize = 128 * 1024;
const TRAIN_BYTES: usize = 4 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus = PathBuf::from(args.first().context("usage: t5_speed CORPUS_DIR [KIB] [MODEL_DIR]")?);
    let kib: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let (train, sample) = split_corpus(&corpus, kib * 1024)?;
    let model = match args.get(2) {
        Some(dir) => Model::load(Path::new(dir))?,
        None => {
            let config = ModelConfig::default();
            let started = Instant::now();
            let bpe = ByteBpe::train(train.chunks(64 * 1024).map(<[u8]>::to_vec), config.vocab)?;
            eprintln!("BPE of {} trained in {:.1?}", config.vocab, started.elapsed());
            Model::random(config, bpe, 1)?
        }
    };
    let codec = T5Codec::new(Arc::new(model));
    let tokens: usize = sample.chunks(BLOCK).map(|b| codec.model().tokenizer().encode(b).len()).sum();
    let started = cpu_seconds();
    let payloads = sample.chunks(BLOCK).map(|b| codec.compress(b)).collect::<Result<Vec<_>, _>>()?;
    let compress = cpu_seconds() - started;
    let started = cpu_seconds();
    for (payload, block) in payloads.iter().zip(sample.chunks(BLOCK)) {
        let plain = codec.decompress(payload, block.len())?;
        anyhow::ensure!(plain == block, "round trip failed");
    }
    let decompress = cpu_seconds() - started;
    let size: usize = payloads.iter().map(Vec::len).sum();
    let kb = sample.len() as f64 / 1000.0;
    println!(
        "{} bytes, {tokens} tokens ({:.2} bytes/token), payload {size} bytes",
        sample.len(),
        sample.len() as f64 / tokens as f64
    );
    for (what, secs) in [("compress", compress), ("decompress", decompress)] {
        println!("{what:>10}: {:.2} s of CPU, {:.0} tokens/s, {:.1} KB/s", secs, tokens as f64 / secs, kb / secs);
    }
    Ok(())
}

/// CPU time of this thread: the machine is shared, so wall time would measure the others.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The first `TRAIN_BYTES` of the corpus (spread over its kinds) for the BPE, and
/// `sample_len` bytes from the end of each kind's files, in equal parts, to measure on.
fn split_corpus(corpus: &Path, sample_len: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let kinds = sorted(corpus)?;
    let per_kind = sample_len / kinds.len().max(1);
    let (mut train, mut sample) = (Vec::new(), Vec::new());
    for kind in &kinds {
        let mut data = Vec::new();
        for file in sorted(kind)? {
            data.extend(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
        }
        let cut = data.len().saturating_sub(per_kind);
        sample.extend_from_slice(&data[cut..]);
        train.extend_from_slice(&data[..cut.min(TRAIN_BYTES / kinds.len())]);
    }
    Ok((train, sample))
}

fn sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}
