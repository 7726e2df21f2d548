//! Statistics of a volume: how much data its files hold, how much of it holes and
//! deduplication take away, what each codec and model stores, what the store takes on
//! disk, and how the block cache does. `s2sfs stats` and `s2sfs models` print them, the
//! control socket answers `stats` and `models` with them, and the root directory's xattr
//! `user.s2sfs.stats` holds them as one line of JSON (README.md, "Statistics").
//!
//! The numbers come from two passes over the metadata (the directory tree for file sizes,
//! the block records for the rest; `Store::block_totals`), each in short reads that never
//! hold writers up. They are exact for a volume nobody writes to meanwhile; under writes
//! each is a recent value, and the ones derived from both passes (`hole_bytes`) may be
//! off by what changed in between. Data still in the dirty buffers is not in any of them
//! until it is committed (`dirty_bytes` says how much that is).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::inode::kind_of;
use super::types::{FileKind, ROOT_INO};
use super::{Core, RecompressStatus, lock};
use crate::cache::CacheCounters;
use crate::codec::{CodecId, ModelError, ModelId, ModelRegistry};
use crate::error::{Error, Result};
use crate::store::{BlockTotals, FrameGroup, FrameInfo, Store, StoreError, StoreOptions};

/// The root directory's xattr that holds the statistics (computed when read, never
/// stored): not listed by listxattr; setting or removing it is `ENOTSUP`.
pub const STATS_XATTR: &str = "user.s2sfs.stats";

/// How long a computed xattr value is served again: a size probe and the read after it
/// see the same value, and a reader polling it does not rescan the metadata each time.
const XATTR_REUSE: Duration = Duration::from_secs(1);

/// Directory entries read per page while walking the tree.
const DIR_PAGE: usize = 1024;

/// Everything `s2sfs stats` reports; serialized as the JSON of `--json`, the control
/// socket's `stats` reply and the xattr `user.s2sfs.stats`. Byte counts are bytes;
/// ratios are null where their denominator is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The store directory.
    pub store: String,
    /// The volume's block size in bytes (fixed when the store was created).
    pub block_size: u32,
    /// Regular files: every inode once however many hard links it has, including files
    /// unlinked while still open.
    pub files: u64,
    /// Sum of the sizes of those files (committed sizes): what reading every file
    /// returns, holes included.
    pub logical_bytes: u64,
    /// The part of `logical_bytes` backed by stored blocks: each block's plaintext length
    /// times the number of block-map entries that use it.
    pub referenced_bytes: u64,
    /// The part of `logical_bytes` no block backs, read as zeros: ranges never written,
    /// blocks written as all zeros (stored as holes), the end of a block past which a
    /// file was extended. `logical_bytes - referenced_bytes` (0 if a concurrent write
    /// made that negative).
    pub hole_bytes: u64,
    /// Plaintext bytes of the distinct stored blocks: `referenced_bytes` after
    /// deduplication.
    pub unique_bytes: u64,
    /// `referenced_bytes - unique_bytes`: what deduplication saves.
    pub dedup_saved_bytes: u64,
    /// Bytes of the frames of the distinct blocks (live frames in the pack files).
    pub stored_bytes: u64,
    /// Distinct stored blocks (block records).
    pub blocks: u64,
    /// Block-map entries using them (sum of the refcounts).
    pub references: u64,
    /// Data written but not yet committed, in memory (0 for an unmounted store); not
    /// counted in any of the numbers above.
    pub dirty_bytes: u64,
    /// What the store directory takes on disk.
    pub disk: DiskStats,
    /// `logical_bytes / stored_bytes`: compression, deduplication and holes together,
    /// against the frames alone.
    pub ratio: Option<f64>,
    /// `logical_bytes / disk.total_bytes`: the same against everything the store takes.
    pub ratio_on_disk: Option<f64>,
    /// The stored blocks by the codec of their frames. Their `stored_bytes` add up to
    /// `stored_bytes`, their `blocks`, `references`, `unique_bytes` and `logical_bytes`
    /// to the totals above (`unknown` included when present).
    pub codecs: CodecTable,
    /// Every model in `STORE/models`, and every model t5 frames need that is not there.
    pub models: Vec<ModelStats>,
    /// Background and on-demand recompression, as `Core::recompress_status` reports it
    /// (`RecompressStatus`); null for an unmounted store.
    pub recompression: Option<RecompressStatus>,
    /// The daemon's block cache; null for an unmounted store.
    pub cache: Option<CacheStats>,
}

/// What the store directory takes on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStats {
    /// Pack files.
    pub pack_files: u64,
    /// Length of the pack files: live frames, frames not yet compacted away, and
    /// punched holes.
    pub pack_bytes: u64,
    /// Bytes the disk allocates to the pack files (punched holes excluded).
    pub pack_disk_bytes: u64,
    /// Length of the metadata database (`STORE/meta.redb`).
    pub meta_bytes: u64,
    /// Bytes of the model files in `STORE/models`.
    pub models_bytes: u64,
    /// `pack_disk_bytes + meta_bytes + models_bytes`.
    pub total_bytes: u64,
}

/// The stored blocks of one codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CodecStats {
    /// Distinct blocks whose frame this codec wrote.
    pub blocks: u64,
    /// Block-map entries using them.
    pub references: u64,
    /// Their plaintext as files see it: each block's length times its references.
    pub logical_bytes: u64,
    /// Plaintext bytes of the distinct blocks.
    pub unique_bytes: u64,
    /// Bytes of their frames.
    pub stored_bytes: u64,
    /// `unique_bytes / stored_bytes`: the codec's compression, without deduplication.
    pub ratio: Option<f64>,
}

/// The stored blocks by codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CodecTable {
    pub raw: CodecStats,
    pub zstd: CodecStats,
    pub t5: CodecStats,
    /// Blocks whose frame could not be classified (an old record whose frame could not be
    /// read or parsed, or a codec this build does not know); only present when there are
    /// any. Their plaintext length is unknown: counted as 0 logical bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<CodecStats>,
}

impl CodecTable {
    /// The rows with their names, `unknown` last when present.
    pub fn rows(&self) -> Vec<(&'static str, &CodecStats)> {
        let mut rows = vec![("raw", &self.raw), ("zstd", &self.zstd), ("t5", &self.t5)];
        if let Some(u) = &self.unknown {
            rows.push(("unknown", u));
        }
        rows
    }
}

/// Whether a model's files are in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelStatus {
    /// `STORE/models/<id>` loads and its files hash to the id.
    Ok,
    /// The directory is there but does not load or hashes to another id: frames of the
    /// model read as EIO.
    Damaged,
    /// t5 frames need the model, and the store does not have it: they read as EIO.
    Missing,
}

impl ModelStatus {
    pub fn name(self) -> &'static str {
        match self {
            ModelStatus::Ok => "ok",
            ModelStatus::Damaged => "damaged",
            ModelStatus::Missing => "missing",
        }
    }
}

/// One learned model: the blocks whose t5 frames need it, and its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// The full model id in hex (its directory name in `STORE/models`); null for a
    /// missing model, of which block records keep only the tag.
    pub id: Option<String>,
    /// The first 8 bytes of the id in hex: what block records keep.
    pub tag: String,
    pub status: ModelStatus,
    /// Why a damaged model does not load; null otherwise.
    pub problem: Option<String>,
    /// Bytes of the model's files in the store (0 when missing).
    pub model_bytes: u64,
    /// Its t5 frames: the blocks that need the model.
    #[serde(flatten)]
    pub frames: CodecStats,
}

/// The block cache of a mounted volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Block lookups that found their block, since the mount.
    pub hits: u64,
    /// Block lookups that had to read and decode a frame.
    pub misses: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: Option<f64>,
    /// Decoded blocks cached now.
    pub blocks: u64,
    /// Bytes of them.
    pub bytes: u64,
    /// The cache's bound in bytes (`--cache-mb`).
    pub capacity_bytes: u64,
}

/// What only a running volume knows.
struct Live {
    dirty_bytes: u64,
    cache: CacheCounters,
    recompression: RecompressStatus,
}

/// The last value of the stats xattr and when it was computed.
#[derive(Default)]
pub(super) struct XattrCache(Mutex<Option<(Instant, Vec<u8>)>>);

/// Whether `name` on `ino` is the stats xattr.
pub(super) fn is_stats_xattr(ino: u64, name: &[u8]) -> bool {
    ino == ROOT_INO && name == STATS_XATTR.as_bytes()
}

impl Core {
    /// The volume's statistics (module docs: what is exact when).
    pub fn stats(&self) -> Result<Stats> {
        let live = Live {
            dirty_bytes: self.dirty_bytes.load(Ordering::Relaxed) as u64,
            cache: lock(&self.cache).counters(),
            recompression: self.recompress_status(),
        };
        collect(&self.store, &self.registry, Some(live))
    }

    /// The models of the store and of its frames (`Stats::models` without the rest).
    pub fn models(&self) -> Result<Vec<ModelStats>> {
        Ok(model_table(&self.registry, &self.store.block_totals(&describe_frame)?))
    }

    /// The value of `user.s2sfs.stats`: `stats()` as one line of JSON, computed again
    /// once the last value is `XATTR_REUSE` old.
    pub(super) fn stats_xattr(&self) -> Result<Vec<u8>> {
        let mut last = lock(&self.stats_xattr.0);
        if let Some((at, value)) = &*last
            && at.elapsed() < XATTR_REUSE
        {
            return Ok(value.clone());
        }
        let value = serde_json::to_vec(&self.stats()?)
            .map_err(|e| Error::Path { path: STATS_XATTR.into(), source: e.into() })?;
        *last = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

/// Statistics of an unmounted store, opened (and locked) for the time it takes: no cache,
/// no dirty data, no recompression. A store in use by a daemon is
/// `Error::Store(StoreError::Locked)`: ask the daemon (`fs::control::stats_mounted`).
pub fn store_stats(dir: &Path) -> Result<Stats> {
    with_store(dir, |store, registry| collect(store, registry, None))
}

/// The models of an unmounted store (`store_stats` for why it may be refused).
pub fn store_models(dir: &Path) -> Result<Vec<ModelStats>> {
    with_store(dir, |store, registry| Ok(model_table(registry, &store.block_totals(&describe_frame)?)))
}

/// Opens the store in `dir` (never creating one), runs `f`, and leaves the lock file
/// saying how the store was last closed as it did before (opening marks it open).
fn with_store<T>(dir: &Path, f: impl FnOnce(&Store, &ModelRegistry) -> Result<T>) -> Result<T> {
    if !Store::exists(dir) {
        return Err(Error::Path {
            path: dir.to_path_buf(),
            source: std::io::Error::other("not an s2sfs store (it has no format file)"),
        });
    }
    let before = crate::store::close_state(dir);
    // The block size only matters when a store is created, which `exists` rules out.
    let opts = StoreOptions { block_size: 128 * 1024, meta_cache_bytes: 16 << 20, allow_lost_changes: true };
    let store = Store::open(dir, &opts)?;
    let registry = ModelRegistry::new(&store.models_dir());
    let result = f(&store, &registry);
    let restored = match before {
        crate::store::CloseState::Clean => store.record_close(None),
        crate::store::CloseState::Failed(why) => store.record_close(Some(&why)),
        _ => Ok(()),
    };
    if let Err(e) = restored {
        log::warn!("restoring how {} was last closed: {e}", dir.display());
    }
    result
}

/// What a frame is, from its header: how block records written before records described
/// their frames are classified.
pub(super) fn describe_frame(frame: &[u8]) -> Option<FrameInfo> {
    super::commit::frame_info(frame, ModelId::NONE).ok()
}

fn collect(store: &Store, registry: &ModelRegistry, live: Option<Live>) -> Result<Stats> {
    let (files, logical_bytes) = file_totals(store)?;
    let totals = store.block_totals(&describe_frame)?;
    let all = totals.all();
    let models = model_table(registry, &totals);
    let models_bytes = registry.ids().iter().map(|id| registry.bytes(id)).sum::<u64>();
    let disk = DiskStats {
        pack_files: totals.packs,
        pack_bytes: totals.pack_bytes,
        pack_disk_bytes: totals.pack_disk_bytes,
        meta_bytes: totals.meta_bytes,
        models_bytes,
        total_bytes: totals.pack_disk_bytes + totals.meta_bytes + models_bytes,
    };
    let mut codecs = CodecTable::default();
    for (&(codec, _), g) in &totals.groups {
        let row = match CodecId::from_u8(codec) {
            Some(CodecId::Raw) => &mut codecs.raw,
            Some(CodecId::Zstd) => &mut codecs.zstd,
            Some(CodecId::T5) => &mut codecs.t5,
            None => codecs.unknown.get_or_insert_with(CodecStats::default),
        };
        add(row, g);
    }
    for row in [&mut codecs.raw, &mut codecs.zstd, &mut codecs.t5].into_iter().chain(codecs.unknown.as_mut()) {
        row.ratio = ratio(row.unique_bytes, row.stored_bytes);
    }
    let (dirty_bytes, cache, recompression) = match live {
        Some(l) => (l.dirty_bytes, Some(cache_stats(l.cache)), Some(l.recompression)),
        None => (0, None, None),
    };
    Ok(Stats {
        store: store.dir().to_string_lossy().into_owned(),
        block_size: store.superblock().block_size,
        files,
        logical_bytes,
        referenced_bytes: all.logical_bytes,
        hole_bytes: logical_bytes.saturating_sub(all.logical_bytes),
        unique_bytes: all.unique_logical_bytes,
        dedup_saved_bytes: all.logical_bytes.saturating_sub(all.unique_logical_bytes),
        stored_bytes: all.stored_bytes,
        blocks: all.blocks,
        references: all.references,
        dirty_bytes,
        disk,
        ratio: ratio(logical_bytes, all.stored_bytes),
        ratio_on_disk: ratio(logical_bytes, disk.total_bytes),
        codecs,
        models,
        recompression,
        cache,
    })
}

fn add(row: &mut CodecStats, g: &FrameGroup) {
    row.blocks += g.blocks;
    row.references += g.references;
    row.logical_bytes += g.logical_bytes;
    row.unique_bytes += g.unique_logical_bytes;
    row.stored_bytes += g.stored_bytes;
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn cache_stats(c: CacheCounters) -> CacheStats {
    CacheStats {
        hits: c.hits,
        misses: c.misses,
        hit_rate: ratio(c.hits, c.hits + c.misses),
        blocks: c.blocks,
        bytes: c.bytes,
        capacity_bytes: c.capacity,
    }
}

/// Regular files and the sum of their sizes: a walk of the directory tree from the root
/// (each hard-linked inode counted once), plus the files unlinked while open.
fn file_totals(store: &Store) -> Result<(u64, u64)> {
    let mut dirs = vec![ROOT_INO];
    let mut seen_dirs: HashSet<u64> = HashSet::from([ROOT_INO]);
    let mut linked: HashSet<u64> = HashSet::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut count = |ino: u64| -> Result<()> {
        // Gone meanwhile (unlinked and closed): not counted.
        let Some(rec) = store.inode(ino)? else { return Ok(()) };
        if !matches!(kind_of(rec.kind), Ok(FileKind::RegularFile)) || (rec.nlink > 1 && !linked.insert(ino)) {
            return Ok(());
        }
        files += 1;
        bytes += rec.size;
        Ok(())
    };
    while let Some(dir) = dirs.pop() {
        let mut after = 0;
        loop {
            let page = store.entries_after(dir, after, DIR_PAGE)?;
            for (entry, _) in &page {
                match kind_of(entry.kind) {
                    // A tree has no cycles; a damaged one is not walked twice.
                    Ok(FileKind::Directory) if seen_dirs.insert(entry.ino) => dirs.push(entry.ino),
                    Ok(FileKind::RegularFile) => count(entry.ino)?,
                    _ => {}
                }
            }
            match page.last() {
                Some((entry, _)) if page.len() == DIR_PAGE => after = entry.seq,
                _ => break,
            }
        }
    }
    for ino in store.orphans()? {
        count(ino)?;
    }
    Ok((files, bytes))
}

/// One row per model, in tag order: those in the registry (with their status), and those
/// t5 frames need and the registry lacks (missing).
fn model_table(registry: &ModelRegistry, totals: &BlockTotals) -> Vec<ModelStats> {
    let mut rows: BTreeMap<[u8; 8], ModelStats> = BTreeMap::new();
    for id in registry.ids() {
        let (status, problem) = match registry.load(&id) {
            Ok(_) => (ModelStatus::Ok, None),
            Err(ModelError::Missing { .. }) => (ModelStatus::Missing, None),
            Err(e) => (ModelStatus::Damaged, Some(crate::error::error_chain(&e))),
        };
        let bytes = registry.bytes(&id);
        rows.entry(id.tag())
            .or_insert_with(|| ModelStats { model_bytes: bytes, ..model_row(Some(id), id.tag(), status, problem) });
    }
    for (&(codec, tag), g) in &totals.groups {
        // Only t5 frames need their model: a record of a zstd or raw frame may name the
        // model it was weighed against (recompression), which reading it does not need.
        if codec != CodecId::T5 as u8 {
            continue;
        }
        let row = rows.entry(tag).or_insert_with(|| model_row(None, tag, ModelStatus::Missing, None));
        add(&mut row.frames, g);
    }
    for row in rows.values_mut() {
        row.frames.ratio = ratio(row.frames.unique_bytes, row.frames.stored_bytes);
    }
    rows.into_values().collect()
}

fn model_row(id: Option<ModelId>, tag: [u8; 8], status: ModelStatus, problem: Option<String>) -> ModelStats {
    ModelStats {
        id: id.map(|id| id.hex()),
        tag: tag.iter().map(|b| format!("{b:02x}")).collect(),
        status,
        problem,
        model_bytes: 0,
        frames: CodecStats::default(),
    }
}

// ------------------------------------------------------------------ human-readable output

/// `s2sfs stats` without `--json`: totals with ratios, then a table per codec and one per
/// model, the recompression state and the block cache.
pub fn render_stats(out: &mut dyn Write, s: &Stats) -> std::io::Result<()> {
    writeln!(out, "store {} ({} blocks)", s.store, human(s.block_size as u64))?;
    let line =
        |out: &mut dyn Write, what: &str, n: u64, note: String| writeln!(out, "  {what:<22} {:>12}  {note}", human(n));
    writeln!(out, "  {:<22} {:>12}", "files", s.files)?;
    line(out, "logical", s.logical_bytes, "sum of file sizes".into())?;
    line(out, "  in blocks", s.referenced_bytes, format!("{} references to {} blocks", s.references, s.blocks))?;
    line(out, "  holes", s.hole_bytes, "unwritten or all-zero ranges: no space".into())?;
    line(out, "unique after dedup", s.unique_bytes, format!("dedup saves {}", human(s.dedup_saved_bytes)))?;
    line(out, "stored frames", s.stored_bytes, format!("ratio {}", times(s.ratio)))?;
    line(
        out,
        "store on disk",
        s.disk.total_bytes,
        format!(
            "ratio {} (packs {} in {} file{}, metadata {}, models {})",
            times(s.ratio_on_disk),
            human(s.disk.pack_disk_bytes),
            s.disk.pack_files,
            if s.disk.pack_files == 1 { "" } else { "s" },
            human(s.disk.meta_bytes),
            human(s.disk.models_bytes)
        ),
    )?;
    if s.dirty_bytes > 0 {
        line(out, "not yet committed", s.dirty_bytes, "in memory, not counted above".into())?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<8} {:>10} {:>11} {:>12} {:>12} {:>12} {:>8}",
        "codec", "blocks", "references", "logical", "unique", "stored", "ratio"
    )?;
    for (name, c) in s.codecs.rows() {
        writeln!(
            out,
            "{name:<8} {:>10} {:>11} {:>12} {:>12} {:>12} {:>8}",
            c.blocks,
            c.references,
            human(c.logical_bytes),
            human(c.unique_bytes),
            human(c.stored_bytes),
            times(c.ratio)
        )?;
    }
    writeln!(
        out,
        "{:<8} {:>10} {:>11} {:>12} {:>12} {:>12} {:>8}",
        "total",
        s.blocks,
        s.references,
        human(s.referenced_bytes),
        human(s.unique_bytes),
        human(s.stored_bytes),
        times(ratio(s.unique_bytes, s.stored_bytes))
    )?;
    if !s.models.is_empty() {
        writeln!(out)?;
        render_model_rows(out, &s.models, false)?;
    }
    writeln!(out)?;
    match &s.recompression {
        Some(r) => render_recompression(out, r)?,
        None => writeln!(out, "recompression: none (the store is not mounted)")?,
    }
    match &s.cache {
        Some(c) => writeln!(
            out,
            "block cache: {} hits, {} misses ({} hits), {} of {} in {} blocks",
            c.hits,
            c.misses,
            c.hit_rate.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r)),
            human(c.bytes),
            human(c.capacity_bytes),
            c.blocks
        ),
        None => writeln!(out, "block cache: none (the store is not mounted)"),
    }
}

/// `s2sfs models` without `--json`: one row per model, full ids.
pub fn render_models(out: &mut dyn Write, models: &[ModelStats]) -> std::io::Result<()> {
    if models.is_empty() {
        return writeln!(out, "no models: the store keeps none and no frame names one");
    }
    render_model_rows(out, models, true)
}

fn render_model_rows(out: &mut dyn Write, models: &[ModelStats], full_ids: bool) -> std::io::Result<()> {
    let width = if full_ids { 64 } else { 16 };
    writeln!(
        out,
        "{:<width$} {:<8} {:>12} {:>10} {:>12} {:>12} {:>8}",
        "model", "status", "model files", "frames", "logical", "stored", "ratio"
    )?;
    for m in models {
        let id = if full_ids { m.id.as_deref().unwrap_or(&m.tag) } else { &m.tag };
        writeln!(
            out,
            "{id:<width$} {:<8} {:>12} {:>10} {:>12} {:>12} {:>8}",
            m.status.name(),
            human(m.model_bytes),
            m.frames.blocks,
            human(m.frames.logical_bytes),
            human(m.frames.stored_bytes),
            times(m.frames.ratio)
        )?;
        if let Some(p) = &m.problem {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(())
}

fn render_recompression(out: &mut dyn Write, r: &RecompressStatus) -> std::io::Result<()> {
    let mode = match (&r.target, r.older_than_secs) {
        (Some(target), Some(secs)) if r.background => format!("background to {target}, blocks unwritten for {secs} s"),
        _ => "no background recompression".to_string(),
    };
    let now = if r.running {
        format!("running: {} blocks done, {} left", r.blocks_done, r.backlog)
    } else {
        format!("idle, {} blocks left", r.backlog)
    };
    writeln!(
        out,
        "recompression: {mode}; {now}; since the mount: passes {}, frames replaced {}, saved {}",
        r.passes,
        r.blocks_recompressed,
        if r.bytes_saved < 0 {
            format!("-{}", human(r.bytes_saved.unsigned_abs()))
        } else {
            human(r.bytes_saved as u64)
        }
    )
}

fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// Bytes in binary units, exact below 1 KiB.
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `Error::Store(StoreError::Locked)`: the store is in use by a daemon (or another
/// process), so its statistics come from the daemon.
pub fn is_locked(e: &Error) -> bool {
    matches!(e, Error::Store(StoreError::Locked(_)))
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
