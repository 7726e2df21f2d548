//! The quantization check: a trained model's float checkpoint against its exported
//! integer model, on any files. Both see exactly the same context: the files are cut into
//! blocks of at most one window of tokens, the float model measures each block as one
//! training window, the integer model codes it as a block of its own. The integer side
//! runs the network alone (no match confidence, which the float model does not have).

use std::path::{Path, PathBuf};

use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint;
use super::corpus::{TokenBlock, token_lengths};
use super::error::{Result, TrainError};
use super::float_net::{DeviceBatch, Fixed, Net};
use super::latent::LatentChoice;
use super::windows::{Batch, windows};
use crate::t5::model::{Tensors, WEIGHTS_FILE};
use crate::t5::{Model, T5Codec};

/// Bytes per block before it is split further to fit one window.
const BLOCK_BYTES: usize = 512;
/// Windows per float forward pass.
const BATCH: usize = 16;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub file: PathBuf,
    pub bytes: u64,
    pub blocks: usize,
    /// Bits per byte predicted by the float model, latent included.
    pub float_bits_per_byte: f64,
    /// The same for the integer model: ideal code length of its frequency tables.
    pub integer_bits_per_byte: f64,
}

impl Comparison {
    /// (integer - float) / float.
    pub fn excess(&self) -> f64 {
        self.integer_bits_per_byte / self.float_bits_per_byte - 1.0
    }
}

/// Measures every file with the float checkpoint of `model_dir` and its integer model.
pub fn compare(model_dir: &Path, files: &[PathBuf]) -> Result<Vec<Comparison>> {
    let device = Device::Cpu;
    if !checkpoint::exists(model_dir) {
        return Err(TrainError::BadFile {
            path: model_dir.join("checkpoint"),
            reason: "no float checkpoint: compare a directory written by `s2sfs train`, which keeps one".into(),
        });
    }
    let (state, params) = checkpoint::load(model_dir, &device)?;
    let config = state.config;
    let model = Model::load(model_dir)?;
    if model.config().vocab != config.vocab || model.config().window != config.window {
        return Err(TrainError::BadFile {
            path: model_dir.to_owned(),
            reason: "the exported model's config does not match the checkpoint's".into(),
        });
    }
    let network_alone = {
        let mut c = model.config().clone();
        c.match_sse = false;
        c.extra_matchers.clear();
        c.mixing = false;
        c.exact_tree = false;
        let path = model_dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(TrainError::io(&path))?;
        Model::new(c, model.tokenizer().clone(), &Tensors::from_safetensors(&bytes, &path)?)?
    };
    let codec = T5Codec::new(std::sync::Arc::new(network_alone));
    let bpe = model.tokenizer();
    let lengths = token_lengths(bpe);
    let quantized = params.quantized(false)?;
    let fixed = Fixed::new(&config, &device)?;
    let net = Net::new(&config, &quantized, &fixed);

    let mut out = Vec::new();
    for file in files {
        let data = std::fs::read(file).map_err(TrainError::io(file))?;
        let mut blocks = Vec::new();
        for chunk in data.chunks(BLOCK_BYTES) {
            split_to_fit(chunk, &|b| bpe.encode(b).len() <= config.window, &mut blocks);
        }
        let bar = ProgressBar::new(blocks.len() as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} blocks")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(file.display().to_string());
        let mut float_bits = 0.0;
        let mut int_bits = 0.0;
        for group in blocks.chunks(BATCH) {
            let token_blocks: Vec<TokenBlock> = group.iter().map(|b| TokenBlock::new(&bpe.encode(b))).collect();
            let all = windows(&token_blocks, config.window);
            let host = Batch::build(&token_blocks, &all, &config, &lengths);
            let batch = DeviceBatch::new(&host, &config, &device)?;
            let loss = net.loss(&batch, LatentChoice::Argmax)?;
            float_bits +=
                f64::from(loss.token_bits.to_scalar::<f32>()?) + f64::from(loss.latent_bits.to_scalar::<f32>()?);
            for b in group {
                int_bits += codec.code_length(b).map_err(|e| TrainError::Config(format!("integer model: {e}")))?;
            }
            bar.inc(group.len() as u64);
        }
        bar.finish_and_clear();
        let bytes = data.len() as u64;
        out.push(Comparison {
            file: file.clone(),
            bytes,
            blocks: blocks.len(),
            float_bits_per_byte: float_bits / bytes.max(1) as f64,
            integer_bits_per_byte: int_bits / bytes.max(1) as f64,
        });
    }
    Ok(out)
}

/// Pushes `chunk` as one block when `fits`, else its halves (recursively); a single byte
/// is always one token, so this ends.
fn split_to_fit<'a>(chunk: &'a [u8], fits: &dyn Fn(&[u8]) -> bool, out: &mut Vec<&'a [u8]>) {
    if chunk.len() <= 1 || fits(chunk) {
        out.push(chunk);
    } else {
        let (a, b) = chunk.split_at(chunk.len() / 2);
        split_to_fit(a, fits, out);
        split_to_fit(b, fits, out);
    }
}
