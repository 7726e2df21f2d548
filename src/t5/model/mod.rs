//! A t5 model directory (CODER.md, "Model directory"): `config.json`, `tokenizer.json`
//! and `weights.safetensors`, loaded and checked as a whole, identified by the hash of
//! their bytes. `save` is the only writer of the format: tests, benchmarks and the
//! trainer's export all go through it.

pub(crate) mod config;
mod layout;
mod random;
mod tensors;
pub(crate) mod tokenizer;

use std::path::Path;

use crate::codec::ModelId;

use super::error::{CoderError, Result};
use super::intnet::MAX_KEYS;
use super::weights::Net;
use super::{ByteBpe, ModelConfig};

pub use self::layout::{Dtype, Kind, MAX_BIAS, MAX_EXP, MIN_EXP, TensorSpec, layout};
pub(super) use self::tensors::tensor_error;
pub use self::tensors::{Tensor, TensorData, Tensors};

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Limits of this implementation beyond `ModelConfig::check`: exact i32 sums in
/// attention, range-coder totals for the latent, and bounded work per token.
const MAX_LATENT_VOCAB: usize = 4096;
const MAX_LATENT_MAX: usize = 64;
const MAX_LAYERS: usize = 64;

/// The three files' bytes, kept as read (or as `save` writes them): the model id is
/// their hash, so they are what a copy of the model must reproduce.
#[derive(Debug, Clone)]
struct Files {
    config: Vec<u8>,
    tokenizer: Vec<u8>,
    weights: Vec<u8>,
}

impl Files {
    /// blake3 over the files in order, each preceded by its length (u64 little-endian).
    fn id(&self) -> ModelId {
        let mut hasher = blake3::Hasher::new();
        for bytes in [&self.config, &self.tokenizer, &self.weights] {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        ModelId(*hasher.finalize().as_bytes())
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    tokenizer: ByteBpe,
    net: Net,
    files: Files,
    id: ModelId,
}

impl Model {
    /// Loads a model directory; every problem is an error naming the file (and tensor).
    pub fn load(dir: &Path) -> Result<Model> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| CoderError::Io { path, source })
        };
        Model::from_files(read(CONFIG_FILE)?, read(TOKENIZER_FILE)?, read(WEIGHTS_FILE)?, dir)
    }

    /// A model from the bytes of its three files (a model embedded in the binary, or
    /// read elsewhere); `dir` only names them in errors.
    pub fn from_files(config: Vec<u8>, tokenizer: Vec<u8>, weights: Vec<u8>, dir: &Path) -> Result<Model> {
        // A kernel setting that cannot be followed is refused where a user first meets the
        // coder, rather than only logged when it first runs.
        crate::t5::intnet::selected_kernels()?;
        let files = Files { config, tokenizer, weights };
        let config_path = dir.join(CONFIG_FILE);
        let config: ModelConfig = serde_json::from_slice(&files.config)
            .map_err(|e| CoderError::ModelConfig { path: config_path.clone(), reason: e.to_string() })?;
        let tokenizer = ByteBpe::from_json(&files.tokenizer, &dir.join(TOKENIZER_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = Tensors::from_safetensors(&files.weights, &weights_path)?;
        Model::assemble(config, tokenizer, &tensors, files, dir)
    }

    /// A model from its parts, as the trainer exports it: the files `save` will write are
    /// made here, so the id is known before anything is written.
    pub fn new(config: ModelConfig, tokenizer: ByteBpe, tensors: &Tensors) -> Result<Model> {
        let here = Path::new("");
        let files = Files {
            config: config.to_json().into_bytes(),
            tokenizer: tokenizer.to_json()?.into_bytes(),
            weights: tensors.to_safetensors(&here.join(WEIGHTS_FILE))?,
        };
        Model::assemble(config, tokenizer, tensors, files, here)
    }

    /// A model with deterministic random weights: the same seed, config and tokenizer give
    /// the same files and id on every machine.
    pub fn random(config: ModelConfig, tokenizer: ByteBpe, seed: u64) -> Result<Model> {
        let tensors = random::random_tensors(&layout(&config), seed);
        Model::new(config, tokenizer, &tensors)
    }

    /// Writes the model directory (creating it if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|source| CoderError::Write { path, source })
        };
        std::fs::create_dir_all(dir).map_err(|source| CoderError::Write { path: dir.to_owned(), source })?;
        write(CONFIG_FILE, &self.files.config)?;
        write(TOKENIZER_FILE, &self.files.tokenizer)?;
        write(WEIGHTS_FILE, &self.files.weights)
    }

    pub fn id(&self) -> ModelId {
        self.id
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &ByteBpe {
        &self.tokenizer
    }

    /// The tokenizer file's bytes, as read.
    pub fn tokenizer_json(&self) -> &[u8] {
        &self.files.tokenizer
    }

    /// The integer tensors of the weights file, as read (for a training that starts from
    /// this model).
    pub fn tensors(&self) -> Result<Tensors> {
        Tensors::from_safetensors(&self.files.weights, Path::new(WEIGHTS_FILE))
    }

    pub(crate) fn net(&self) -> &Net {
        &self.net
    }

    fn assemble(config: ModelConfig, tokenizer: ByteBpe, tensors: &Tensors, files: Files, dir: &Path) -> Result<Model> {
        let config_path = dir.join(CONFIG_FILE);
        config
            .check()
            .and_then(|()| coder_limits(&config))
            .map_err(|reason| CoderError::ModelConfig { path: config_path, reason })?;
        if tokenizer.vocab_size() != config.vocab {
            return Err(CoderError::Model {
                path: dir.to_owned(),
                reason: format!(
                    "{TOKENIZER_FILE} has {} tokens, {CONFIG_FILE} says vocab {}",
                    tokenizer.vocab_size(),
                    config.vocab
                ),
            });
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        tensors.check(&layout(&config), &weights_path)?;
        let net = Net::new(&config, tensors, &weights_path)?;
        let id = files.id();
        Ok(Model { config, tokenizer, net, files, id })
    }
}

/// What this implementation needs of a config beyond the format's own checks.
fn coder_limits(config: &ModelConfig) -> std::result::Result<(), String> {
    let max_keys = MAX_KEYS;
    let limits = [
        ("window", config.window, max_keys),
        ("segment", config.segment, max_keys),
        ("latent_vocab", config.latent_vocab, MAX_LATENT_VOCAB),
        ("latent_max", config.latent_max, MAX_LATENT_MAX),
        ("enc_layers", config.enc_layers, MAX_LAYERS),
        ("dec_layers", config.dec_layers, MAX_LAYERS),
    ];
    for (name, value, max) in limits {
        if value > max {
            return Err(format!("{name} {value} is above this coder's limit of {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::fixtures::{tiny_bpe, tiny_config, tiny_model};

    fn saved() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        tiny_model().save(dir.path()).expect("save");
        dir
    }

    fn load_error(dir: &Path) -> String {
        Model::load(dir).expect_err("a broken model loads").to_string()
    }

    #[test]
    fn saved_models_load_with_the_same_id() {
        let dir = saved();
        let loaded = Model::load(dir.path()).expect("load");
        assert_eq!(loaded.id(), tiny_model().id());
        assert_eq!(loaded.config(), tiny_model().config());
        // The same seed gives the same model; another seed another one.
        let again = Model::random(tiny_config(), tiny_bpe(), 7).expect("model");
        assert_eq!(again.id(), tiny_model().id());
        let other = Model::random(tiny_config(), tiny_bpe(), 8).expect("model");
        assert_ne!(other.id(), tiny_model().id());
    }

    #[test]
    fn damaged_weights_name_file_and_tensor() {
        let dir = saved();
        let weights = dir.path().join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).expect("read");
        std::fs::write(&weights, &bytes[..bytes.len() - 100]).expect("write");
        let err = load_error(dir.path());
        assert!(err.contains(WEIGHTS_FILE) && err.contains("safetensors"), "{err}");
        std::fs::write(&weights, &bytes[..5]).expect("write");
        assert!(load_error(dir.path()).contains(WEIGHTS_FILE));

        // One tensor reshaped, one missing, one out of range, one extra.
        let original = Tensors::from_safetensors(&bytes, &weights).expect("parse");
        type Edit = (&'static str, fn(&mut Tensors));
        let edits: [Edit; 4] = [
            ("dec.0.ff.wi", |t| {
                if let Some(x) = t.get_mut("dec.0.ff.wi") {
                    x.shape = vec![32, 64];
                }
            }),
            ("enc.0.self.q.exp", |t| {
                t.remove("enc.0.self.q.exp");
            }),
            ("out.exp", |t| t.insert("out.exp", Tensor { shape: vec![], data: TensorData::I32(vec![99]) })),
            ("bogus", |t| t.insert("bogus", Tensor { shape: vec![1], data: TensorData::I8(vec![1]) })),
        ];
        for (tensor, edit) in edits {
            let mut tensors = original.clone();
            edit(&mut tensors);
            let bytes = tensors.to_safetensors(&weights).expect("serialize");
            std::fs::write(&weights, bytes).expect("write");
            let err = load_error(dir.path());
            assert!(err.contains(WEIGHTS_FILE) && err.contains(&format!("tensor {tensor} ")), "{err}");
        }
    }

    #[test]
    fn mismatched_files_are_errors() {
        let dir = saved();
        let config_path = dir.path().join(CONFIG_FILE);
        let json = std::fs::read_to_string(&config_path).expect("read");
        std::fs::write(&config_path, json.replace("\"window\": 48", "\"window\": 4096")).expect("write");
        let err = load_error(dir.path());
        assert!(err.contains(CONFIG_FILE) && err.contains("window"), "{err}");
        std::fs::write(&config_path, json.replace("\"vocab\": 300", "\"vocab\": 301")).expect("write");
        let err = load_error(dir.path());
        assert!(err.contains("vocab 301"), "{err}");
        std::fs::write(&config_path, "{").expect("write");
        assert!(load_error(dir.path()).contains(CONFIG_FILE));
        std::fs::remove_file(&config_path).expect("remove");
        assert!(load_error(dir.path()).contains(CONFIG_FILE));
    }
}
