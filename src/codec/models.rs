//! Learned models and where a volume keeps them. A frame names the model that decodes it
//! by `ModelId` (the hash of the model's files); a store keeps a copy of every model its
//! frames name in `STORE/models/<id in hex>/`, so a volume stays readable whatever
//! happens to the model directory it was first mounted with. The shipped default model
//! is embedded in the binary (feature `builtin-model`, on by default), or, in the Debian
//! package, installed in `SYSTEM_MODELS/default`.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::durable::sync_dir;
use crate::t5::{CoderError, Model};

/// Content hash of a learned model's files; all zero for classic codecs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ModelId(pub [u8; 32]);

impl ModelId {
    pub const NONE: ModelId = ModelId([0; 32]);

    /// The full id in lowercase hex: the model's directory name in a store.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 8 bytes: what a block record keeps to name its frame's model.
    pub fn tag(&self) -> [u8; 8] {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.0[..8]);
        t
    }

    /// Parses the 64-digit hex form.
    pub fn from_hex(s: &str) -> Option<ModelId> {
        if s.len() != 64 {
            return None;
        }
        let mut id = [0u8; 32];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ModelId(id))
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: CoderError,
    },
    #[error("model {dir}: its files hash to {found}, not to the id {want} it is stored under (damaged or replaced)")]
    Mismatch { dir: PathBuf, want: ModelId, found: ModelId },
    #[error("model {id} is not in the store's models ({dir} is missing)")]
    Missing { id: ModelId, dir: PathBuf },
    #[error(
        "the {which} model is not installed ({dir} is missing): reinstall s2sfs, or name a model directory with --model"
    )]
    NotInstalled { which: &'static str, dir: PathBuf },
    #[error("copying model {id} into {dir}: {source}")]
    Copy {
        id: ModelId,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A model directory of the source tree (`models/NAME`): embedded in the binary with the
/// `builtin-model` feature, else loaded from where the package installs it
/// (`SYSTEM_MODELS/NAME`).
macro_rules! shipped {
    ($dir:literal) => {{
        #[cfg(feature = "builtin-model")]
        let model = embedded_model(
            concat!("<built-in model ", $dir, ">"),
            include_bytes!(concat!("../../models/", $dir, "/config.json")),
            include_bytes!(concat!("../../models/", $dir, "/tokenizer.json")),
            include_bytes!(concat!("../../models/", $dir, "/weights.safetensors")),
        );
        #[cfg(not(feature = "builtin-model"))]
        let model = installed_model($dir);
        model
    }};
}

#[cfg(feature = "builtin-model")]
fn embedded_model(name: &str, config: &[u8], tokenizer: &[u8], weights: &[u8]) -> Result<Arc<Model>, ModelError> {
    let name = Path::new(name);
    Model::from_files(config.to_vec(), tokenizer.to_vec(), weights.to_vec(), name)
        .map(Arc::new)
        .map_err(|source| ModelError::Load { path: name.to_path_buf(), source })
}

#[cfg(not(feature = "builtin-model"))]
fn installed_model(name: &str) -> Result<Arc<Model>, ModelError> {
    let dir = Path::new(SYSTEM_MODELS).join(name);
    if !dir.is_dir() {
        let which = if name == "default" { "default" } else { "shipped" };
        return Err(ModelError::NotInstalled { which, dir });
    }
    Model::load(&dir).map(Arc::new).map_err(|source| ModelError::Load { path: dir, source })
}

/// The model shipped with s2sfs (models/default of the source tree).
pub fn default_model() -> Result<Arc<Model>, ModelError> {
    shipped!("default")
}

/// Models that were the default before, shipped too (built in, or installed beside the
/// default): a volume reads its frames with its own copies (`STORE/models`), but files
/// written by `s2sfs codec compress` carry only the model's id, and must still decode
/// after an upgrade.
pub fn previous_models() -> Result<Vec<Arc<Model>>, ModelError> {
    Ok(vec![shipped!("0184ac33")?, shipped!("3ac8458a")?, shipped!("dc9df2c8")?, shipped!("ac85efaf")?])
}

/// Where an installed s2sfs keeps its models (the Debian package puts the default model in
/// `default/`). A binary built without the `builtin-model` feature (the package's) loads
/// its default model from there; with it (a `cargo build`), the model is in the binary.
pub const SYSTEM_MODELS: &str = "/usr/share/s2sfs/models";

/// Where `default_model` comes from: "built in", or the installed directory.
pub fn default_model_origin() -> String {
    if cfg!(feature = "builtin-model") {
        "built in".to_string()
    } else {
        Path::new(SYSTEM_MODELS).join("default").display().to_string()
    }
}

/// A model directory given by the user, or the default model for `None`.
pub fn load_model(dir: Option<&Path>) -> Result<Arc<Model>, ModelError> {
    match dir {
        None => default_model(),
        Some(d) => Model::load(d).map(Arc::new).map_err(|source| ModelError::Load { path: d.to_path_buf(), source }),
    }
}

/// The models a store keeps: `STORE/models/<id hex>/`, one directory per model.
pub struct ModelRegistry {
    dir: PathBuf,
}

impl ModelRegistry {
    pub fn new(dir: &Path) -> ModelRegistry {
        ModelRegistry { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn model_dir(&self, id: &ModelId) -> PathBuf {
        self.dir.join(id.hex())
    }

    /// Copies `model` in unless the store has it. Durable before it returns (the files,
    /// then the rename, then the directory), so a frame written after it can always
    /// find its model, even after a crash.
    pub fn ensure(&self, model: &Model) -> Result<(), ModelError> {
        let id = model.id();
        let target = self.model_dir(&id);
        if target.is_dir() {
            return Ok(());
        }
        let copy = |source| ModelError::Copy { id, dir: target.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(copy)?;
        let tmp = self.dir.join(format!(".tmp-{}", id.hex()));
        let _ = std::fs::remove_dir_all(&tmp);
        model.save(&tmp).map_err(|e| copy(std::io::Error::other(e.to_string())))?;
        for name in [crate::t5::model::CONFIG_FILE, crate::t5::model::TOKENIZER_FILE, crate::t5::model::WEIGHTS_FILE] {
            File::open(tmp.join(name)).and_then(|f| f.sync_all()).map_err(copy)?;
        }
        sync_dir(&tmp).map_err(copy)?;
        std::fs::rename(&tmp, &target).map_err(copy)?;
        sync_dir(&self.dir).map_err(copy)?;
        log::info!("model {id} copied into {}", target.display());
        Ok(())
    }

    /// Loads a stored model and checks that its files still hash to its id.
    pub fn load(&self, id: &ModelId) -> Result<Arc<Model>, ModelError> {
        let dir = self.model_dir(id);
        if !dir.is_dir() {
            return Err(ModelError::Missing { id: *id, dir });
        }
        let model = Model::load(&dir).map_err(|source| ModelError::Load { path: dir.clone(), source })?;
        if model.id() != *id {
            return Err(ModelError::Mismatch { dir, want: *id, found: model.id() });
        }
        Ok(Arc::new(model))
    }

    /// The ids of the models the store holds (directories named by a full id).
    pub fn ids(&self) -> Vec<ModelId> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut ids: Vec<ModelId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| ModelId::from_hex(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort();
        ids
    }

    /// The stored model whose id starts with `tag` (what a block record keeps).
    pub fn by_tag(&self, tag: &[u8; 8]) -> Option<ModelId> {
        self.ids().into_iter().find(|id| id.tag() == *tag)
    }

    /// Bytes of a stored model's files.
    pub fn bytes(&self, id: &ModelId) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.model_dir(id)) else { return 0 };
        entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
    }

    /// Deletes a stored model; only for models no frame names.
    pub fn remove(&self, id: &ModelId) -> std::io::Result<()> {
        std::fs::remove_dir_all(self.model_dir(id))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::fixtures::tiny_model;

    #[test]
    fn hex_round_trips_and_tag_is_the_prefix() {
        let id = ModelId(std::array::from_fn(|i| i as u8 * 7));
        assert_eq!(ModelId::from_hex(&id.hex()), Some(id));
        assert_eq!(&id.tag()[..], &id.0[..8]);
        assert_eq!(ModelId::from_hex("zz"), None);
    }

    #[test]
    fn default_model_is_embedded_and_matches_the_source_tree() {
        let embedded = default_model().unwrap();
        let on_disk = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")).unwrap();
        assert_eq!(embedded.id(), on_disk.id());
    }

    #[test]
    fn registry_copies_loads_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ModelRegistry::new(&dir.path().join("models"));
        let model = tiny_model();
        reg.ensure(&model).unwrap();
        reg.ensure(&model).unwrap();
        assert_eq!(reg.ids(), vec![model.id()]);
        assert_eq!(reg.by_tag(&model.id().tag()), Some(model.id()));
        assert_eq!(reg.load(&model.id()).unwrap().id(), model.id());
        assert!(reg.bytes(&model.id()) > 0);
        // Replaced weights: refused, naming the mismatch (or the load error).
        let weights = reg.model_dir(&model.id()).join(crate::t5::model::WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, &bytes).unwrap();
        assert!(reg.load(&model.id()).is_err());
        reg.remove(&model.id()).unwrap();
        assert!(matches!(reg.load(&model.id()), Err(ModelError::Missing { .. })));
    }
}
