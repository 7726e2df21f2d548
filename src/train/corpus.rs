//! The training corpus: its files, cut into blocks as the filesystem cuts them,
//! tokenized, with the match model's prediction at every token.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::error::{Result, TrainError};
use crate::t5::{ByteBpe, match_predictions};

/// Blocks are cut as the filesystem's default block size cuts files: the model learns
/// what it will see, and the match model's history ends where a block ends.
pub const BLOCK_BYTES: usize = 128 * 1024;
/// A file is held out when the first byte of the hash of its path is below this: about
/// 3% of the files, the same ones however the corpus grows.
const HELD_OUT_BELOW: u8 = 8;
/// Bytes of training text the tokenizer learns from; more changes its merges little and
/// costs minutes.
const TOKENIZER_SAMPLE_BYTES: usize = 48 << 20;

/// A corpus directory's regular files (recursively, in path order), split into the files
/// to train on and the held-out files to measure on.
#[derive(Debug, Clone)]
pub struct CorpusFiles {
    pub train: Vec<PathBuf>,
    pub held_out: Vec<PathBuf>,
}

impl CorpusFiles {
    pub fn list(dir: &Path) -> Result<CorpusFiles> {
        let mut files = Vec::new();
        collect(dir, &mut files)?;
        files.sort();
        let (held_out, train): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| {
            let relative = f.strip_prefix(dir).unwrap_or(f);
            blake3::hash(relative.as_os_str().as_encoded_bytes()).as_bytes()[0] < HELD_OUT_BELOW
        });
        if train.is_empty() {
            return Err(TrainError::Corpus { path: dir.to_owned(), reason: "no files to train on".into() });
        }
        Ok(CorpusFiles { train, held_out })
    }
}

/// The files of the corpus directory `dir` that training holds out: what its held-out
/// measurement reads, and what a model trained on `dir` has never seen.
pub fn held_out_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(CorpusFiles::list(dir)?.held_out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let entry = entry.map_err(TrainError::io(dir))?;
        let kind = entry.file_type().map_err(TrainError::io(&entry.path()))?;
        if kind.is_dir() {
            collect(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The files' bytes cut into blocks, in file order.
pub fn read_blocks(files: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    let mut blocks = Vec::new();
    for file in files {
        let data = std::fs::read(file).map_err(TrainError::io(file))?;
        blocks.extend(data.chunks(BLOCK_BYTES).map(<[u8]>::to_vec));
    }
    Ok(blocks)
}

/// Learns a tokenizer of `vocab` tokens from an even sample of the blocks.
pub fn train_tokenizer(blocks: &[Vec<u8>], vocab: usize) -> Result<ByteBpe> {
    let total: usize = blocks.iter().map(Vec::len).sum();
    let stride = total.div_ceil(TOKENIZER_SAMPLE_BYTES).max(1);
    let sample = blocks.iter().step_by(stride).cloned();
    Ok(ByteBpe::train(sample, vocab)?)
}

/// A block as the model sees it: tokens, and per token what the match model predicts
/// for it having seen the tokens before it.
#[derive(Debug, Clone)]
pub struct TokenBlock {
    pub tokens: Vec<u16>,
    /// Predicted token, meaningful where `bucket > 0`.
    pub pred: Vec<u16>,
    /// Match bucket, 0 where the match model predicts nothing.
    pub bucket: Vec<u8>,
}

impl TokenBlock {
    /// A block's tokens (ids below 2^16) with the match model run over them.
    pub fn new(ids: &[u32]) -> TokenBlock {
        let predictions = match_predictions(ids);
        TokenBlock {
            tokens: ids.iter().map(|&t| t as u16).collect(),
            pred: predictions.iter().map(|p| p.map_or(0, |p| p.token as u16)).collect(),
            bucket: predictions.iter().map(|p| p.map_or(0, |p| p.bucket)).collect(),
        }
    }
}

/// Tokenizes blocks (in parallel) and runs the match model over each.
pub fn tokenize(blocks: &[Vec<u8>], bpe: &ByteBpe, what: &str) -> Result<Vec<TokenBlock>> {
    if bpe.vocab_size() > usize::from(u16::MAX) {
        return Err(TrainError::Config(format!("a vocabulary of {} does not fit 16-bit token ids", bpe.vocab_size())));
    }
    let bar = ProgressBar::new(blocks.iter().map(|b| b.len() as u64).sum());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("tokenizing {what}"));
    let out = blocks
        .par_iter()
        .map(|block| {
            let tokens = TokenBlock::new(&bpe.encode(block));
            bar.inc(block.len() as u64);
            tokens
        })
        .collect();
    bar.finish_and_clear();
    Ok(out)
}

/// Bytes of each token of the vocabulary: bits per byte are bits over these.
pub fn token_lengths(bpe: &ByteBpe) -> Vec<u32> {
    (0..bpe.vocab_size() as u32).map(|id| bpe.token_bytes(id).map_or(0, |b| b.len() as u32)).collect()
}
