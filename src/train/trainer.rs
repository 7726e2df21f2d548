//! `s2sfs train`: from a corpus directory to a model directory, with checkpoints,
//! resumption, a held-out measurement and the integer export.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::{self, State};
use super::corpus::{CorpusFiles, TokenBlock, read_blocks, token_lengths, tokenize, train_tokenizer};
use super::curve::{RlProgress, smoothed};
use super::error::{Result, TrainError};
use super::export::export;
use super::float_net::{DeviceBatch, Fixed, Net};
use super::latent::LatentChoice;
use super::optim::Adam;
use super::params::Params;
use super::reinforce;
use super::replay::ReplayBuffer;
use super::rng::Rng;
use super::summary::{Eval, TrainSummary};
use super::windows::{Batch, Window, sample, windows};
use crate::t5::model::{Model, TOKENIZER_FILE};
use crate::t5::{ByteBpe, ModelConfig};

/// Gradients are clipped to this global norm (of the bits-per-byte objective).
const CLIP: f64 = 1.0;
/// Gumbel-softmax temperature of the latent choice.
const TEMPERATURE: f64 = 1.0;
/// Purposes of the derived random streams.
const BATCHES: u64 = 1;
const NOISE: u64 = 2;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub corpus: PathBuf,
    pub out: PathBuf,
    /// A config.json to train; the v1 default of CODER.md without one.
    pub config: Option<PathBuf>,
    /// Train until this many steps are done (counting those of resumed runs).
    pub steps: u64,
    /// Windows per step.
    pub batch: usize,
    /// Peak learning rate: linear warm-up, then cosine decay to a tenth.
    pub lr: f64,
    pub resume: bool,
    /// A trained model directory whose weights a new training starts from
    /// (`Params::start_from`), with its tokenizer.
    pub init_from: Option<PathBuf>,
    /// Steps of the reinforcement-learning stage after the `steps` supervised ones.
    pub rl_steps: u64,
    /// The stage's learning rate (constant).
    pub rl_lr: f64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    pub seed: u64,
    /// Held-out windows measured at the end (spread over the held-out files).
    pub eval_windows: usize,
    pub checkpoint_every: Duration,
}

impl TrainOptions {
    pub fn new(corpus: PathBuf, out: PathBuf) -> TrainOptions {
        TrainOptions {
            corpus,
            out,
            config: None,
            steps: 10_000,
            batch: 16,
            lr: 2e-3,
            resume: false,
            init_from: None,
            rl_steps: 0,
            rl_lr: 5e-5,
            threads: 0,
            seed: 1,
            eval_windows: 256,
            checkpoint_every: Duration::from_secs(300),
        }
    }
}

/// Trains (or resumes), checkpoints, measures on held-out text and exports the model.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary> {
    refuse_bench_corpus(&opts.corpus)?;
    if opts.batch == 0 {
        return Err(TrainError::Config("a batch needs at least one window".into()));
    }
    keep_allocations_mapped();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| TrainError::Config(format!("thread pool: {e}")))?;
    pool.install(|| Trainer::prepare(opts)?.run())
}

/// Every tensor operation allocates and frees buffers of megabytes. glibc serves those
/// from per-thread arenas whose heaps are unmapped when empty, or from fresh mmaps, so
/// each step faulted all its memory in anew, zeroed page by page by the kernel. One arena
/// whose heap is never trimmed, and mmap only beyond the largest threshold, keep it mapped.
fn keep_allocations_mapped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let settings = [(libc::M_ARENA_MAX, 1), (libc::M_MMAP_THRESHOLD, 32 << 20), (libc::M_TRIM_THRESHOLD, i32::MAX)];
        for (param, value) in settings {
            // SAFETY: mallopt only changes allocator tuning parameters.
            if unsafe { libc::mallopt(param, value) } != 1 {
                log::debug!("mallopt({param}, {value}) refused");
            }
        }
    });
}

/// The bench corpus measures compression; a model trained on it would flatter itself.
fn refuse_bench_corpus(corpus: &Path) -> Result<()> {
    let path = corpus.canonicalize().map_err(TrainError::io(corpus))?;
    let parts: Vec<_> = path.components().map(|c| c.as_os_str()).collect();
    if parts.windows(2).any(|w| w[0] == "corpus" && w[1] == "bench") {
        return Err(TrainError::Corpus {
            path,
            reason: "the bench corpus is for measuring only, never for training".into(),
        });
    }
    Ok(())
}

struct Trainer<'a> {
    opts: &'a TrainOptions,
    device: Device,
    config: ModelConfig,
    tokenizer: ByteBpe,
    token_len: Vec<u32>,
    train: Vec<TokenBlock>,
    train_windows: Vec<Window>,
    held_out: Vec<TokenBlock>,
    params: Params,
    adam: Adam,
    state: State,
}

impl<'a> Trainer<'a> {
    fn prepare(opts: &'a TrainOptions) -> Result<Trainer<'a>> {
        let device = Device::cuda_if_available(0)?;
        let out = &opts.out;
        std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
        let resuming = checkpoint::exists(out);
        if resuming != opts.resume {
            return Err(TrainError::Config(if resuming {
                format!("{} has a checkpoint: --resume continues it", out.display())
            } else {
                format!("{} has no checkpoint to resume", out.display())
            }));
        }
        let wanted = opts.config.as_deref().map(ModelConfig::load).transpose()?;
        if resuming && opts.init_from.is_some() {
            return Err(TrainError::Config(
                "--init-from starts a new training; --resume continues a checkpoint, which has its weights".into(),
            ));
        }
        let (state, params) = if resuming {
            let (state, params) = checkpoint::load(out, &device)?;
            if wanted.as_ref().is_some_and(|c| *c != state.config) {
                return Err(TrainError::Config("--config differs from the checkpoint's config".into()));
            }
            (state, params)
        } else {
            let config = wanted.unwrap_or_default();
            config.check().map_err(TrainError::Config)?;
            let mut params = Params::init(&config, opts.seed, &device)?;
            if let Some(dir) = &opts.init_from {
                start_from_model(&mut params, dir, out)?;
            }
            let state = State { config, seed: opts.seed, step: 0, tokens: 0, replay: None };
            (state, params)
        };
        let config = state.config.clone();
        if !config.window.is_multiple_of(config.segment) {
            return Err(TrainError::Config(format!(
                "window {} must be a multiple of segment {}",
                config.window, config.segment
            )));
        }
        let mut adam = Adam::new(params.vars())?;
        if resuming {
            checkpoint::restore_optimizer(out, &mut adam, &state, &device)?;
        }

        let files = CorpusFiles::list(&opts.corpus)?;
        let train_bytes = read_blocks(&files.train)?;
        let tokenizer = load_or_train_tokenizer(out, &train_bytes, config.vocab)?;
        let train = tokenize(&train_bytes, &tokenizer, "training files")?;
        drop(train_bytes);
        let held_out = tokenize(&read_blocks(&files.held_out)?, &tokenizer, "held-out files")?;
        let train_windows = windows(&train, config.segment);
        if train_windows.is_empty() {
            return Err(TrainError::Corpus {
                path: opts.corpus.clone(),
                reason: "too little text for one window".into(),
            });
        }
        Ok(Trainer {
            opts,
            device,
            token_len: token_lengths(&tokenizer),
            config,
            tokenizer,
            train,
            train_windows,
            held_out,
            params,
            adam,
            state,
        })
    }

    fn run(mut self) -> Result<TrainSummary> {
        let opts = self.opts;
        let fixed = Fixed::new(&self.config, &self.device)?;
        let first_step = self.state.step;
        let first_tokens = self.state.tokens;
        let total = opts.steps + opts.rl_steps;
        let bar = step_bar(total, first_step);
        let started = Instant::now();
        let mut last_checkpoint = Instant::now();
        let (mut first, mut smooth) = (None, None::<f64>);
        let mut rl: Option<RlProgress> = None;
        for step in first_step..total {
            let message = if step < opts.steps {
                let bits_per_byte = self.step(step, &fixed)?;
                first.get_or_insert(bits_per_byte);
                let s = smoothed(smooth, bits_per_byte);
                smooth = Some(s);
                let rate = (self.state.tokens - first_tokens) as f64 / started.elapsed().as_secs_f64();
                format!("{s:.3} bits/byte, {rate:.0} tokens/s")
            } else {
                let progress = match &mut rl {
                    Some(progress) => progress,
                    None => {
                        let held_out = self.evaluate(&fixed)?.map(|e| e.bits_per_byte);
                        rl.insert(RlProgress::start(&opts.out, held_out)?)
                    }
                };
                let stats = self.rl_step(step, &fixed)?;
                progress.record(step, &stats)?;
                progress.message()
            };
            bar.set_message(message.clone());
            bar.inc(1);
            if last_checkpoint.elapsed() >= opts.checkpoint_every {
                checkpoint::save(&opts.out, &self.params, &self.adam, &self.state)?;
                last_checkpoint = Instant::now();
                if let Some(progress) = rl.as_mut() {
                    let held_out = self.evaluate(&fixed)?.map(|e| e.bits_per_byte);
                    progress.held_out(step + 1, held_out)?;
                }
                if bar.is_hidden() {
                    eprintln!("step {}/{total}: {message}", step + 1);
                }
            }
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        checkpoint::save(&opts.out, &self.params, &self.adam, &self.state)?;
        let held_out = self.evaluate(&fixed)?;
        if let Some(progress) = rl.as_mut() {
            progress.held_out(self.state.step, held_out.as_ref().map(|e| e.bits_per_byte))?;
        }
        let model = export(&self.params, &self.tokenizer, &opts.out)?;
        let tokens_this_run = self.state.tokens - first_tokens;
        Ok(TrainSummary {
            model_dir: opts.out.clone(),
            model_id: model.id().0.iter().map(|b| format!("{b:02x}")).collect(),
            parameters: self.params.parameter_count(),
            steps: self.state.step,
            steps_this_run: self.state.step - first_step,
            tokens: self.state.tokens,
            tokens_this_run,
            seconds,
            tokens_per_second: tokens_this_run as f64 / seconds.max(1e-9),
            first_bits_per_byte: first,
            last_bits_per_byte: smooth,
            held_out,
            rl: rl.map(|p| p.summary()),
        })
    }

    /// One step of the reinforcement-learning stage.
    fn rl_step(&mut self, step: u64, fixed: &Fixed) -> Result<reinforce::StepStats> {
        let data = reinforce::Data {
            config: &self.config,
            blocks: &self.train,
            windows: &self.train_windows,
            token_len: &self.token_len,
            device: &self.device,
            fixed,
            seed: self.state.seed,
            batch: self.opts.batch,
        };
        let buffer = self.state.replay.get_or_insert_with(|| ReplayBuffer::new(reinforce::REPLAY_CAPACITY));
        let stats = reinforce::step(
            &data,
            &self.params,
            &mut self.adam,
            buffer,
            step,
            self.opts.rl_lr,
            latent_weight(step - self.opts.steps, self.opts.rl_steps),
        )?;
        self.state.step = step + 1;
        self.state.tokens += stats.tokens;
        Ok(stats)
    }

    /// One optimizer step; the batch's loss in bits per byte.
    fn step(&mut self, step: u64, fixed: &Fixed) -> Result<f64> {
        let (config, seed) = (&self.config, self.state.seed);
        let picked = sample(&self.train_windows, self.opts.batch, &mut Rng::derive(seed, BATCHES, step));
        let host = Batch::build(&self.train, &picked, config, &self.token_len);
        let batch = DeviceBatch::new(&host, config, &self.device)?;
        let noise = gumbel(
            [host.segments(), config.latent_max, config.latent_vocab + 1],
            &mut Rng::derive(seed, NOISE, step),
            &self.device,
        )?;
        let quantized = self.params.quantized(true)?;
        let loss = Net::new(config, &quantized, fixed)
            .loss(&batch, LatentChoice::Sample { noise: &noise, temperature: TEMPERATURE })?;
        let objective = loss.per_byte(host.bytes)?;
        let grads = objective.backward()?;
        let lr = learning_rate(step, self.opts.steps, self.opts.lr);
        self.adam.step(&grads, lr, CLIP)?;
        let bits_per_byte = f64::from(objective.to_scalar::<f32>()?);
        if !bits_per_byte.is_finite() {
            return Err(TrainError::Diverged(step));
        }
        self.state.step = step + 1;
        self.state.tokens += host.target_ok.iter().filter(|&&ok| ok > 0.0).count() as u64;
        Ok(bits_per_byte)
    }

    /// Frame bits per byte on windows spread evenly over the held-out files.
    fn evaluate(&self, fixed: &Fixed) -> Result<Option<Eval>> {
        let all = windows(&self.held_out, self.config.segment);
        if all.is_empty() || self.opts.eval_windows == 0 {
            return Ok(None);
        }
        let stride = all.len().div_ceil(self.opts.eval_windows);
        let picked: Vec<Window> = all.iter().step_by(stride).copied().collect();
        let quantized = self.params.quantized(false)?;
        let net = Net::new(&self.config, &quantized, fixed);
        let (mut token_bits, mut latent_bits, mut codes) = (0.0, 0.0, 0.0);
        let (mut tokens, mut bytes, mut segments) = (0u64, 0u64, 0.0);
        for chunk in picked.chunks(self.opts.batch) {
            let host = Batch::build(&self.held_out, chunk, &self.config, &self.token_len);
            let batch = DeviceBatch::new(&host, &self.config, &self.device)?;
            let loss = net.loss(&batch, LatentChoice::Argmax)?;
            token_bits += f64::from(loss.token_bits.to_scalar::<f32>()?);
            latent_bits += f64::from(loss.latent_bits.to_scalar::<f32>()?);
            codes += f64::from(loss.codes.to_scalar::<f32>()?);
            tokens += host.target_ok.iter().filter(|&&ok| ok > 0.0).count() as u64;
            bytes += host.bytes;
            segments += host.segment_exists.iter().map(|&e| f64::from(e)).sum::<f64>();
        }
        let per_byte = |bits: f64| bits / bytes.max(1) as f64;
        Ok(Some(Eval {
            windows: picked.len(),
            tokens,
            bytes,
            bits_per_byte: per_byte(token_bits + latent_bits),
            token_bits_per_byte: per_byte(token_bits),
            latent_bits_per_byte: per_byte(latent_bits),
            codes_per_segment: codes / segments.max(1.0),
        }))
    }
}

/// Starts `params` from the model in `dir` (`Params::start_from`), whose tokenizer the new
/// model must share (token ids index its embeddings): copied into `out`, or already there.
fn start_from_model(params: &mut Params, dir: &Path, out: &Path) -> Result<()> {
    let model = Model::load(dir)?;
    if model.config().vocab != params.config().vocab {
        return Err(TrainError::Config(format!(
            "--init-from {}: its vocabulary has {} tokens, the config says {}",
            dir.display(),
            model.config().vocab,
            params.config().vocab
        )));
    }
    let tokenizer = out.join(TOKENIZER_FILE);
    if !tokenizer.is_file() {
        std::fs::write(&tokenizer, model.tokenizer_json()).map_err(TrainError::io(&tokenizer))?;
    } else if std::fs::read(&tokenizer).map_err(TrainError::io(&tokenizer))? != model.tokenizer_json() {
        return Err(TrainError::Config(format!(
            "{} differs from the tokenizer of --init-from {}",
            tokenizer.display(),
            dir.display()
        )));
    }
    let report = params.start_from(&model.tensors()?)?;
    log::info!(
        "started from {}: {} tensors copied, {} in part ({}), {} fresh ({})",
        dir.display(),
        report.copied.len(),
        report.partial.len(),
        report.partial.join(", "),
        report.fresh.len(),
        report.fresh.join(", ")
    );
    Ok(())
}

fn load_or_train_tokenizer(out: &Path, blocks: &[Vec<u8>], vocab: usize) -> Result<ByteBpe> {
    let path = out.join(TOKENIZER_FILE);
    let tokenizer = if path.is_file() {
        ByteBpe::load(&path)?
    } else {
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("training a tokenizer of {vocab} tokens"));
        spinner.enable_steady_tick(Duration::from_millis(200));
        let tokenizer = train_tokenizer(blocks, vocab)?;
        spinner.finish_and_clear();
        tokenizer.save(&path)?;
        tokenizer
    };
    if tokenizer.vocab_size() != vocab {
        return Err(TrainError::Config(format!(
            "{} has {} tokens, the config says vocab {vocab}",
            path.display(),
            tokenizer.vocab_size()
        )));
    }
    Ok(tokenizer)
}

fn step_bar(steps: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("training [{bar:30}] step {pos}/{len} {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

/// Linear warm-up over the first tenth (at most 200 steps), then cosine decay to a tenth
/// of the peak at the last step.
fn learning_rate(step: u64, steps: u64, peak: f64) -> f64 {
    let warmup = (steps / 10).clamp(1, 200);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (steps.saturating_sub(warmup)).max(1) as f64;
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
    peak * (0.1 + 0.9 * cosine)
}

/// How much of the latent's bits the reinforcement-learning stage's reward counts after
/// `done` of its `steps`: nothing at first, rising linearly to the full frame cost at half
/// the stage. A code means nothing to the decoder until it has been tried on segments it
/// fits; charged its full price from the start, every code costs bits and saves none, and
/// the policy learns the empty latent before the decoder can learn what codes could say.
fn latent_weight(done: u64, steps: u64) -> f64 {
    (2.0 * done as f64 / steps.max(1) as f64).min(1.0)
}

fn gumbel(shape: [usize; 3], rng: &mut Rng, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.gumbel() as f32).collect();
    Ok(Tensor::from_vec(values, shape.as_slice(), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((learning_rate(0, 1000, 1.0) - 0.01).abs() < 1e-12);
        assert!((learning_rate(99, 1000, 1.0) - 1.0).abs() < 1e-12);
        assert!(learning_rate(500, 1000, 1.0) < 1.0);
        assert!((learning_rate(1000, 1000, 1.0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_bench_corpus_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bench = dir.path().join("corpus").join("bench");
        std::fs::create_dir_all(&bench).expect("mkdir");
        assert!(refuse_bench_corpus(&bench).is_err());
        assert!(refuse_bench_corpus(dir.path()).is_ok());
    }
}
