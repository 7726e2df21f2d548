//! Trains byte-level BPEs on part of a training corpus and reports, on held-out files of
//! it, bytes per token and encoding speed in 128 KiB blocks.
//!
//! cargo run --release --example bpe_corpus -- CORPUS_DIR [TRAIN_MB] [VOCABS] [SAVE_DIR]
//! e.g. `-- ../train-corpus 20 1024,2048,4096`. CORPUS_DIR holds one folder per kind of
//! text (as `train-corpus` builds it); the last fifth of each is held out for measuring.
//! Never point it at the bench corpus: that one is for measuring only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use s2sfs::t5::ByteBpe;

const BLOCK: usize = 128 * 1024;
const HELD_OUT_EVERY: usize = 5;

struct Kind {
    name: String,
    train: Vec<Vec<u8>>,
    held_out: Vec<Vec<u8>>,
}

/// Each folder's files in name order, cut into 128 KiB blocks; the last fifth of the
/// blocks is held out (mostly whole files; the tail of one where a folder has few).
fn kinds(corpus: &Path) -> Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for dir in sorted_entries(corpus, Path::is_dir)? {
        let mut blocks = Vec::new();
        for file in sorted_entries(&dir, Path::is_file)? {
            let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            blocks.extend(data.chunks(BLOCK).map(<[u8]>::to_vec));
        }
        let held_out = blocks.split_off(blocks.len() - blocks.len() / HELD_OUT_EVERY);
        kinds.push(Kind {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            train: blocks,
            held_out,
        });
    }
    if kinds.is_empty() {
        bail!("{} has no folders of text", corpus.display());
    }
    Ok(kinds)
}

fn sorted_entries(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The first blocks, up to `budget` bytes.
fn take(blocks: &[Vec<u8>], budget: usize) -> Vec<Vec<u8>> {
    let mut taken = 0;
    blocks
        .iter()
        .take_while(|b| {
            taken += b.len();
            taken - b.len() < budget
        })
        .cloned()
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(corpus) = args.first() else {
        bail!("usage: bpe_corpus CORPUS_DIR [TRAIN_MB] [VOCABS] [SAVE_DIR]");
    };
    let train_mb: usize = args.get(1).map_or(Ok(20), |s| s.parse())?;
    let vocabs: Vec<usize> =
        args.get(2).map_or("1024,2048,4096", String::as_str).split(',').map(str::parse).collect::<Result<_, _>>()?;
    let save_dir = args.get(3).map(PathBuf::from);

    let kinds = kinds(Path::new(corpus))?;
    let per_kind = train_mb * 1_000_000 / kinds.len();
    let train: Vec<Vec<u8>> = kinds.iter().flat_map(|k| take(&k.train, per_kind)).collect();
    let eval: Vec<(&str, Vec<Vec<u8>>)> =
        kinds.iter().map(|k| (k.name.as_str(), take(&k.held_out, 2_000_000))).collect();
    let train_bytes: usize = train.iter().map(Vec::len).sum();
    println!("training on {:.1} MB in {} blocks", train_bytes as f64 / 1e6, train.len());

    for vocab in vocabs {
        let start = Instant::now();
        let bpe = ByteBpe::train(train.iter().cloned(), vocab)?;
        println!("\nvocab {vocab}: trained in {:.1}s", start.elapsed().as_secs_f64());
        if let Some(dir) = &save_dir {
            bpe.save(&dir.join(format!("bpe-{vocab}.json")))?;
        }
        let (mut all_bytes, mut all_tokens, mut seconds) = (0usize, 0usize, 0f64);
        for (name, blocks) in &eval {
            let (mut bytes, mut tokens) = (0usize, 0usize);
            let start = Instant::now();
            for block in blocks {
                let ids = bpe.encode(block);
                bytes += block.len();
                tokens += ids.len();
                if bpe.decode(&ids)? != *block {
                    bail!("round trip failed on a {name} block");
                }
            }
            seconds += start.elapsed().as_secs_f64();
            println!("  {name:<8} {:>6.2} bytes/token on {:.1} MB", bytes as f64 / tokens as f64, bytes as f64 / 1e6);
            all_bytes += bytes;
            all_tokens += tokens;
        }
        let speed_start = Instant::now();
        for (_, blocks) in &eval {
            for block in blocks {
                std::hint::black_box(bpe.encode(block));
            }
        }
        let encode_s = speed_start.elapsed().as_secs_f64();
        println!(
            "  all      {:>6.2} bytes/token; encode {:.1} MB/s (warm cache), encode+decode+check first pass {:.1} MB/s",
            all_bytes as f64 / all_tokens as f64,
            all_bytes as f64 / 1e6 / encode_s,
            all_bytes as f64 / 1e6 / seconds,
        );
        // Worst case for the word cache: every word is new.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4 * BLOCK)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let start = Instant::now();
        let tokens: usize = noise.chunks(BLOCK).map(|b| bpe.encode(b).len()).sum();
        println!(
            "  random   {:>6.2} bytes/token; encode {:.1} MB/s",
            noise.len() as f64 / tokens as f64,
            noise.len() as f64 / 1e6 / start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
