//! Training end to end on a tiny model: the loss goes down, the export has the tensors of
//! CODER.md, and a resumed run continues where the first stopped.

use std::path::Path;
use std::time::Duration;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use super::{TrainOptions, train};
use crate::t5::{ModelConfig, fixtures};

fn tiny_config() -> ModelConfig {
    // The coder's tiny test model, with a window of whole segments.
    ModelConfig {
        window: 64,
        segment: 32,
        latent_vocab: 8,
        latent_max: 2,
        rel_buckets: 16,
        rel_max_distance: 64,
        // The float model has no in-block match confidence: the trainer's tests compare
        // the network alone.
        match_sse: false,
        extra_matchers: Vec::new(),
        mixing: false,
        exact_tree: false,
        ..fixtures::tiny_config()
    }
}

/// A few KB of text in a few files: sentences from a small vocabulary, so there is
/// something to learn quickly.
fn write_corpus(dir: &Path) {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "with", "red", "door", "while",
        "it", "rained",
    ];
    let mut state = 12345u32;
    for f in 0..6 {
        let mut text = String::new();
        for _ in 0..120 {
            for w in 0..6 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let word = words[(state >> 16) as usize % words.len()];
                text.push_str(if w == 0 { "" } else { " " });
                text.push_str(word);
            }
            text.push_str(".\n");
        }
        std::fs::write(dir.join(format!("part{f}.txt")), text).expect("write corpus");
    }
}

/// Each tensor CODER.md lists for this config: name, dtype, shape.
fn expected_tensors(c: &ModelConfig) -> Vec<(String, Dtype, Vec<usize>)> {
    let (d, v, k1) = (c.d_model, c.vocab, c.latent_vocab + 1);
    let mut out = vec![
        ("embed".to_string(), Dtype::I8, vec![v, d]),
        ("latent_embed".into(), Dtype::I8, vec![k1, d]),
        ("latent_pos".into(), Dtype::I8, vec![c.latent_max + 1, d]),
        ("enc.ln_f.g".into(), Dtype::I8, vec![d]),
        ("dec.ln_f.g".into(), Dtype::I8, vec![d]),
        ("match.boost".into(), Dtype::I32, vec![16]),
    ];
    let mut matrix = |name: String, shape: Vec<usize>| {
        out.push((format!("{name}.exp"), Dtype::I32, vec![]));
        out.push((name, Dtype::I8, shape));
    };
    matrix("out".into(), vec![v, d]);
    matrix("latent_head".into(), vec![k1, d]);
    let blocks = [("enc", c.enc_layers, 2, false), ("dec", c.dec_layers, 3, true)];
    for (side, layers, _, cross) in blocks {
        for i in 0..layers {
            let p = format!("{side}.{i}.");
            let mut names = vec!["self.q", "self.k", "self.v", "self.o"];
            if cross {
                names.extend(["cross.q", "cross.k", "cross.v", "cross.o"]);
            }
            for n in names {
                matrix(format!("{p}{n}"), vec![d, d]);
            }
            matrix(format!("{p}ff.wi"), vec![c.d_ff, d]);
            matrix(format!("{p}ff.wo"), vec![d, c.d_ff]);
        }
    }
    for (side, layers, norms, _) in blocks {
        for i in 0..layers {
            for n in 1..=norms {
                out.push((format!("{side}.{i}.ln{n}.g"), Dtype::I8, vec![d]));
            }
            out.push((format!("{side}.{i}.self.rel"), Dtype::I32, vec![c.rel_buckets, c.n_heads]));
        }
    }
    out
}

/// A corpus and a model directory in temporary directories, and options that train
/// `config` there for `steps` steps.
struct Setup {
    corpus: tempfile::TempDir,
    model_dir: std::path::PathBuf,
    opts: TrainOptions,
    /// Kept so that the directory lives as long as the setup.
    _out: tempfile::TempDir,
}

fn setup(config: &ModelConfig, steps: u64) -> Setup {
    let corpus = tempfile::tempdir().expect("temp dir");
    write_corpus(corpus.path());
    setup_on(corpus, config, steps)
}

/// Like `setup`, on a corpus already written.
fn setup_on(corpus: tempfile::TempDir, config: &ModelConfig, steps: u64) -> Setup {
    let out = tempfile::tempdir().expect("temp dir");
    let config_path = out.path().join("tiny.json");
    std::fs::write(&config_path, config.to_json()).expect("write config");
    let model_dir = out.path().join("model");
    let mut opts = TrainOptions::new(corpus.path().to_owned(), model_dir.clone());
    opts.config = Some(config_path);
    opts.steps = steps;
    opts.batch = 4;
    opts.lr = 1e-2;
    opts.eval_windows = 8;
    opts.checkpoint_every = Duration::from_secs(3600);
    Setup { corpus, model_dir, opts, _out: out }
}

#[test]
fn tiny_model_learns_exports_and_resumes() {
    let mut setup = setup(&tiny_config(), 60);
    let (opts, model_dir) = (&mut setup.opts, &setup.model_dir);
    let summary = train(opts).expect("training");
    let (first, last) =
        (summary.first_bits_per_byte.expect("first loss"), summary.last_bits_per_byte.expect("last loss"));
    assert!(last < 0.8 * first, "loss {first} → {last}");
    assert_eq!(summary.steps, 60);

    let config = ModelConfig::load(&model_dir.join("config.json")).expect("exported config");
    assert_eq!(config, tiny_config());
    assert!(model_dir.join("tokenizer.json").is_file());
    let bytes = std::fs::read(model_dir.join("weights.safetensors")).expect("weights");
    let weights = SafeTensors::deserialize(&bytes).expect("safetensors");
    let expected = expected_tensors(&config);
    assert_eq!(weights.len(), expected.len());
    for (name, dtype, shape) in expected {
        let t = weights.tensor(&name).unwrap_or_else(|_| panic!("{name} missing"));
        assert_eq!((t.dtype(), t.shape()), (dtype, &shape[..]), "{name}");
    }
    let exp = weights.tensor("out.exp").expect("out.exp");
    let e = i32::from_le_bytes(exp.data().try_into().expect("one i32"));
    assert!((0..=20).contains(&e), "out.exp {e}");

    // Without --resume an existing checkpoint is refused; with it, training goes on.
    assert!(train(opts).is_err());
    opts.resume = true;
    opts.steps = 65;
    let resumed = train(opts).expect("resumed training");
    assert_eq!((resumed.steps, resumed.steps_this_run), (65, 5));
    assert!(resumed.tokens > summary.tokens);
}

/// The exported integer model, coding text through the t5 codec, spends about the bits
/// the float model predicts for it: quantization-aware training trained what runs.
#[test]
fn integer_model_codes_what_the_float_model_predicts() {
    use std::sync::Arc;

    use super::corpus::{TokenBlock, token_lengths};
    use super::float_net::{DeviceBatch, Fixed, Net};
    use super::latent::LatentChoice;
    use super::params::Params;
    use super::windows::{Batch, windows};
    use crate::codec::Codec;
    use crate::t5::{ByteBpe, Model, T5Codec};
    use candle_core::Device;

    let config = ModelConfig { window: 128, ..tiny_config() };
    let setup = setup(&config, 80);
    let (corpus, model_dir) = (&setup.corpus, &setup.model_dir);
    train(&setup.opts).expect("training");

    let bpe = ByteBpe::load(&model_dir.join("tokenizer.json")).expect("tokenizer");
    let text = std::fs::read(corpus.path().join("part0.txt")).expect("corpus");
    // Blocks short enough for one window: the float model sees all of each.
    let blocks: Vec<&[u8]> = text.chunks(300).take(12).collect();
    let token_blocks: Vec<TokenBlock> = blocks
        .iter()
        .map(|b| {
            let ids = bpe.encode(b);
            assert!(ids.len() <= config.window, "{} tokens", ids.len());
            TokenBlock::new(&ids)
        })
        .collect();
    let all: Vec<_> = windows(&token_blocks, config.window);
    assert_eq!(all.len(), blocks.len());
    let device = Device::Cpu;
    let params =
        Params::load(&config, &model_dir.join("checkpoint").join("weights.safetensors"), &device).expect("checkpoint");
    let quantized = params.quantized(false).expect("quantized");
    let fixed = Fixed::new(&config, &device).expect("fixed");
    let host = Batch::build(&token_blocks, &all, &config, &token_lengths(&bpe));
    let batch = DeviceBatch::new(&host, &config, &device).expect("batch");
    let loss = Net::new(&config, &quantized, &fixed).loss(&batch, LatentChoice::Argmax).expect("loss");
    let float_bits = f64::from(loss.token_bits.to_scalar::<f32>().expect("bits"))
        + f64::from(loss.latent_bits.to_scalar::<f32>().expect("bits"));

    let codec = T5Codec::new(Arc::new(Model::load(model_dir).expect("model")));
    let mut int_bits = 0.0;
    for block in &blocks {
        let payload = codec.compress(block).expect("compress");
        assert_eq!(codec.decompress(&payload, block.len()).expect("decompress"), *block);
        int_bits += payload.len() as f64 * 8.0;
    }
    // The payloads add a token count and the range coder's flush: a few bytes a block.
    let overhead = 48.0 * blocks.len() as f64;
    let per_byte = |bits: f64| bits / host.bytes as f64;
    assert!(
        int_bits <= 1.05 * float_bits + overhead && int_bits >= 0.95 * float_bits,
        "float {:.4} bits/byte, integer {:.4}",
        per_byte(float_bits),
        per_byte(int_bits)
    );

    // `s2sfs quantization` measures the same on whole files (cut into windows itself).
    let rows = super::compare(model_dir, &[corpus.path().join("part0.txt")]).expect("compare");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bytes, text.len() as u64);
    assert!(rows[0].excess().abs() < 0.05, "{:?}", rows[0]);
}

/// A text of `len` letters from one of four sources, each of which draws nine letters in
/// ten from its own four of the sixteen: a model that knows the source codes a letter in
/// about 2.6 bits, one that must guess it pays up to 4 until it has told the source from
/// the letters so far.
fn source_text(rng: &mut super::rng::Rng, len: usize) -> Vec<u8> {
    let source = rng.below(4);
    (0..len)
        .map(|_| {
            let letter = if rng.below(10) < 9 { 4 * source + rng.below(4) } else { rng.below(16) };
            b'a' + letter as u8
        })
        .collect()
}

/// The bits the exported model in `model_dir` codes `texts` in, with `latents`.
fn coded_bits(model_dir: &Path, texts: &[Vec<u8>], latents: crate::t5::Latents) -> f64 {
    use crate::t5::{Model, T5Codec};
    let model = std::sync::Arc::new(Model::load(model_dir).expect("exported model"));
    let codec = T5Codec::new(model).with_latents(latents);
    texts.iter().map(|t| codec.code_length(t).expect("code length")).sum()
}

/// Files short enough for one segment each, from sources the latent can name: the
/// reinforcement-learning stage makes the model code new files of those sources in fewer
/// bits than the model of supervised training alone, and the latent it learned saves
/// more than it costs (the same model with empty latents does worse).
#[test]
fn rl_stage_makes_the_latent_pay_where_it_can() {
    use super::rng::Rng;
    use crate::t5::Latents;

    let corpus = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng::derive(11, 0, 0);
    for f in 0..1000 {
        let text = source_text(&mut rng, 48);
        std::fs::write(corpus.path().join(format!("f{f:04}.txt")), text).expect("write");
    }
    let mut rng = Rng::derive(12, 0, 0);
    let fresh: Vec<Vec<u8>> = (0..200).map(|_| source_text(&mut rng, 48)).collect();
    let config = ModelConfig { window: 64, segment: 64, latent_vocab: 4, latent_max: 1, ..tiny_config() };
    let mut setup = setup_on(corpus, &config, 150);
    let (opts, model_dir) = (&mut setup.opts, &setup.model_dir);
    opts.batch = 8;
    let supervised = train(opts).expect("supervised training");
    assert!(supervised.rl.is_none());
    let supervised_bits = coded_bits(model_dir, &fresh, Latents::Learned);

    opts.resume = true;
    opts.rl_steps = 400;
    opts.batch = 4;
    opts.rl_lr = 1e-2;
    let reinforced = train(opts).expect("reinforcement learning");
    let rl = reinforced.rl.as_ref().expect("the stage ran");
    assert_eq!((reinforced.steps, rl.steps_this_run), (550, 400));
    assert!(rl.replayed_groups > 0);
    let curve = std::fs::read_to_string(&rl.curve).expect("reward curve");
    assert_eq!(curve.lines().count(), 1 + 40 + 1, "{curve}");
    let learned = coded_bits(model_dir, &fresh, Latents::Learned);
    let empty = coded_bits(model_dir, &fresh, Latents::Empty);
    let bytes = (fresh.len() * 48) as f64;
    eprintln!(
        "bits/byte: supervised {:.4}, reinforced {:.4}, reinforced with empty latents {:.4}",
        supervised_bits / bytes,
        learned / bytes,
        empty / bytes
    );
    assert!(learned < supervised_bits, "{learned} vs {supervised_bits}");
    assert!(learned < empty, "{learned} vs {empty}");
}
