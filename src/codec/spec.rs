//! The one codec specification a user gives (`s2sfs mount`, `s2sfs recompress`,
//! `s2sfs codec`, the mount helper's `codec=`/`model=`), and the one function that turns
//! it into a codec set: the models it needs loaded, copied into the store's registry
//! before any frame names them, and every model the store already holds registered for
//! reading.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::chooser::{Codecs, Target};
use super::models::{ModelError, ModelId, ModelRegistry, default_model, load_model, previous_models};
use super::zstd::DEFAULT_LEVEL;
use crate::t5::{Model, T5Codec};

/// How new blocks are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecKind {
    /// zstd at the volume's level, inline: fast writes, fast reads.
    Zstd,
    /// Archival: every block coded by the learned coder when it is committed; the
    /// smallest of t5, zstd -19 and raw is kept.
    T5,
    /// zstd inline; background recompression upgrades cold blocks to t5 later.
    Auto,
    /// Stored as written.
    Raw,
}

impl CodecKind {
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Zstd => "zstd",
            CodecKind::T5 => "t5",
            CodecKind::Auto => "auto",
            CodecKind::Raw => "raw",
        }
    }

    fn needs_model(self) -> bool {
        matches!(self, CodecKind::T5 | CodecKind::Auto)
    }
}

/// The codec options of every command that codes blocks. Each command has its own
/// default codec (a mount: zstd; `s2sfs codec`: t5), so the codec is optional here.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct CodecSpec {
    /// Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block,
    /// the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are
    /// cold), raw.
    #[arg(long, value_enum)]
    pub codec: Option<CodecKind>,
    /// zstd compression level [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: Option<i32>,
    /// The t5 model directory [default: the default model, built into s2sfs or installed in
    /// /usr/share/s2sfs/models/default].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}

impl CodecSpec {
    pub fn kind_or(&self, default: CodecKind) -> CodecKind {
        self.codec.unwrap_or(default)
    }

    pub fn zstd_level(&self) -> i32 {
        self.zstd_level.unwrap_or(DEFAULT_LEVEL)
    }
}

/// zstd level of the learned targets' zstd candidate: an archival block never ends up
/// larger than zstd -19 would store it.
pub const ARCHIVAL_ZSTD_LEVEL: i32 = 19;

/// How long a block stays unwritten before background recompression re-codes it.
pub const DEFAULT_RECOMPRESS_AFTER: Duration = Duration::from_secs(600);

/// A volume's (or the codec tool's) codecs, built from a `CodecSpec`.
pub struct CodecSet {
    pub codecs: Codecs,
    pub kind: CodecKind,
    /// The learned model the spec names (t5, auto, or an explicit --model).
    pub model: Option<Arc<Model>>,
    /// What background recompression upgrades blocks to: t5 and auto volumes.
    pub recompress_to: Option<Target>,
    /// Stored models that could not be loaded, with why: their frames read as EIO.
    pub unavailable: Vec<(ModelId, String)>,
}

/// The target that codes blocks with `model`, keeping the smallest frame.
pub fn learned_target(model: ModelId) -> Target {
    Target::Smallest { model, zstd_level: ARCHIVAL_ZSTD_LEVEL }
}

/// Builds the codec set for `spec` (`default` when it names no codec). With a registry
/// (a volume's `STORE/models`), the writer's model is copied in first and every stored
/// model is registered for reading; a stored model that cannot be loaded is logged once
/// and reported in `unavailable`, and the rest of the volume works. Without one (the
/// codec tool), the shipped models (the default and those that were the default before)
/// are registered for reading too.
pub fn open_codecs(
    spec: &CodecSpec,
    default: CodecKind,
    registry: Option<&ModelRegistry>,
) -> Result<CodecSet, ModelError> {
    let kind = spec.kind_or(default);
    let level = spec.zstd_level();
    let model =
        if kind.needs_model() || spec.model.is_some() { Some(load_model(spec.model.as_deref())?) } else { None };
    let mut codecs = Codecs::new(level);
    let mut unavailable = Vec::new();
    if let Some(m) = &model {
        if let Some(reg) = registry
            && kind.needs_model()
        {
            reg.ensure(m)?;
        }
        codecs.register(Arc::new(T5Codec::new(m.clone())));
    }
    match registry {
        Some(reg) => {
            for id in reg.ids() {
                if codecs.has_model(id) {
                    continue;
                }
                match reg.load(&id) {
                    Ok(m) => codecs.register(Arc::new(T5Codec::new(m))),
                    Err(e) => {
                        log::error!("model {id} of this store cannot be loaded, blocks that need it read as EIO: {e}");
                        unavailable.push((id, e.to_string()));
                    }
                }
            }
        }
        None => {
            // The tool reads frames of the shipped models whatever it writes. Without
            // --model, the writer's model is the default, registered above: not loaded twice.
            // One that cannot be loaded only costs the frames written with it: said once,
            // and such a frame then fails as one of an unknown model.
            let unreadable = |e: ModelError| log::warn!("{e}: frames of that model will not decode");
            let default = match (&model, &spec.model) {
                (Some(_), None) => None,
                _ => default_model().map_err(unreadable).ok(),
            };
            let previous = previous_models().map_err(unreadable).unwrap_or_default();
            for m in default.into_iter().chain(previous) {
                if !codecs.has_model(m.id()) {
                    codecs.register(Arc::new(T5Codec::new(m)));
                }
            }
        }
    }
    let learned = model.as_ref().map(|m| learned_target(m.id()));
    let (writer, recompress_to) = match kind {
        CodecKind::Raw => (Target::Raw, None),
        CodecKind::Zstd => (Target::Zstd { level }, None),
        CodecKind::T5 => (learned.unwrap_or(Target::Zstd { level }), learned),
        CodecKind::Auto => (Target::Zstd { level }, learned),
    };
    // Registered just above, so the writer's model is known.
    codecs.set_writer(writer).map_err(|_| ModelError::Missing { id: writer.model(), dir: PathBuf::new() })?;
    Ok(CodecSet { codecs, kind, model, recompress_to, unavailable })
}

/// Adds `model` to `codecs` for reading and writing, copying it into the registry first
/// (on-demand recompression to a model the volume was not mounted with).
pub fn add_model(codecs: &mut Codecs, model: Arc<Model>, registry: &ModelRegistry) -> Result<Target, ModelError> {
    registry.ensure(&model)?;
    let target = learned_target(model.id());
    codecs.register(Arc::new(T5Codec::new(model)));
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecId, FrameHeader};

    #[test]
    fn kinds_build_their_writers_and_copy_the_model_in() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ModelRegistry::new(&dir.path().join("models"));
        let zstd = open_codecs(&CodecSpec::default(), CodecKind::Zstd, Some(&reg)).unwrap();
        assert_eq!(zstd.codecs.writer(), Target::Zstd { level: 3 });
        assert!(zstd.recompress_to.is_none() && zstd.model.is_none());
        assert!(reg.ids().is_empty(), "a zstd volume needs no model");

        let spec = CodecSpec { codec: Some(CodecKind::Auto), ..CodecSpec::default() };
        let auto = open_codecs(&spec, CodecKind::Zstd, Some(&reg)).unwrap();
        let id = auto.model.as_ref().unwrap().id();
        assert_eq!(auto.codecs.writer(), Target::Zstd { level: 3 });
        assert_eq!(auto.recompress_to, Some(learned_target(id)));
        assert_eq!(reg.ids(), vec![id]);

        let spec = CodecSpec { codec: Some(CodecKind::T5), zstd_level: Some(5), model: None };
        let t5 = open_codecs(&spec, CodecKind::Zstd, Some(&reg)).unwrap();
        assert_eq!(t5.codecs.writer(), learned_target(id));
        // A zstd volume over that store still reads the stored model's frames.
        let zstd = open_codecs(&CodecSpec::default(), CodecKind::Zstd, Some(&reg)).unwrap();
        assert!(zstd.codecs.has_model(id));
        let text = b"the learned coder writes prose well, the learned coder writes prose ".repeat(20);
        let frame = t5.codecs.encode_as(&text, learned_target(id)).unwrap();
        assert!(matches!(FrameHeader::parse(&frame).unwrap().codec, CodecId::T5 | CodecId::Zstd));
        assert_eq!(zstd.codecs.decode_frame(&frame).unwrap(), text);
    }

    #[test]
    fn a_damaged_stored_model_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let reg = ModelRegistry::new(&dir.path().join("models"));
        let model = crate::t5::fixtures::tiny_model();
        reg.ensure(&model).unwrap();
        std::fs::remove_file(reg.model_dir(&model.id()).join("config.json")).unwrap();
        let set = open_codecs(&CodecSpec::default(), CodecKind::Zstd, Some(&reg)).unwrap();
        assert_eq!(set.unavailable.len(), 1);
        assert_eq!(set.unavailable[0].0, model.id());
    }

    /// Files of `codec compress` name only their model: after the default changes, frames
    /// of the previous defaults still decode, whichever model the tool writes with.
    #[test]
    fn the_tool_reads_every_built_in_model() {
        let previous = previous_models().unwrap();
        let specs = [
            CodecSpec::default(),
            CodecSpec { codec: Some(CodecKind::T5), zstd_level: None, model: None },
            CodecSpec { codec: Some(CodecKind::Zstd), zstd_level: None, model: None },
        ];
        for spec in specs {
            let set = open_codecs(&spec, CodecKind::T5, None).unwrap();
            assert!(set.codecs.has_model(default_model().unwrap().id()));
            for m in &previous {
                assert!(set.codecs.has_model(m.id()), "{:?} cannot read {}", spec.codec, m.id());
            }
        }
    }

    #[test]
    fn a_missing_model_directory_is_an_error_naming_it() {
        let spec = CodecSpec { codec: Some(CodecKind::T5), zstd_level: None, model: Some("/nonexistent/model".into()) };
        let err = open_codecs(&spec, CodecKind::Zstd, None).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/model"), "{err}");
    }
}
