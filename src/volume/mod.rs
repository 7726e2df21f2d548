//! The filesystem itself, without FUSE types: inodes, directories, links, open files,
//! dirty-block buffers, truncate and holes, xattrs. Driven by `fs` and by tests directly.
//!
//! Locks are taken in one order: the open-file table (briefly, never while waiting on
//! anything else) → one file's state → the store's writer (a `Txn`) → the open-directory
//! table (held across the commit that removes a directory; never while waiting on the
//! writer).

mod atime;
mod attrs;
mod background;
mod commit;
mod data;
mod dirs;
mod dirty;
mod inode;
mod models;
mod namespace;
mod read;
mod recompress;
mod stats;
mod types;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// How the last daemon left a store: read by `s2sfs umount` once the daemon is gone.
pub use crate::store::{CloseState, close_state};
pub use commit::verify_frame;
pub use recompress::{
    RecompressCodec, RecompressProgress, RecompressReport, RecompressRequest, RecompressStatus, RequestGuard,
    describe_target,
};
pub use stats::{
    CacheStats, CodecStats, CodecTable, DiskStats, ModelStats, ModelStatus, STATS_XATTR, Stats, is_locked,
    render_models, render_stats, store_models, store_stats,
};
pub use types::*;

use crate::cache::BlockCache;
use crate::codec::{CodecKind, Codecs, ModelRegistry, Target, open_codecs};
use crate::error::Result;
use crate::store::{Store, StoreOptions};
use data::FileEntry;

/// A mounted (or test-driven) volume. Its operations are those of [`Core`]; the volume
/// adds the background flusher, which commits old dirty data and compacts packs.
pub struct Volume {
    core: Arc<Core>,
    background: Mutex<Option<background::Background>>,
}

/// The volume's state and operations, shared with the background flusher.
pub struct Core {
    store: Store,
    /// Swapped whole when on-demand recompression adds a model; readers take a clone.
    codecs: RwLock<Arc<Codecs>>,
    /// The store's models (`STORE/models`).
    registry: ModelRegistry,
    /// What background recompression re-codes cold blocks to (t5 and auto volumes).
    /// On-demand recompression with another codec or model changes it for the rest of the
    /// mount (`Core::retarget`).
    recompress_to: RwLock<Option<Target>>,
    /// Background and on-demand recompression (`recompress.rs`), and the count of FUSE
    /// requests in flight it gives way to.
    recompression: recompress::RecompressState,
    cache: Mutex<BlockCache>,
    /// How far whole-block reads have prefetched: (inode, first block not prefetched).
    prefetched: Mutex<(u64, u64)>,
    files: Mutex<HashMap<u64, Arc<FileEntry>>>,
    handles: Mutex<HashMap<u64, data::Handle>>,
    dirs: Mutex<dirs::OpenDirs>,
    next_fh: AtomicU64,
    dirty_bytes: AtomicUsize,
    block_size: u32,
    opts: VolumeOptions,
    /// Told the inode whose attributes changed without a reply that carries them.
    attr_listener: OnceLock<AttrListener>,
    /// The last value of the xattr `user.s2sfs.stats` (`stats.rs`).
    stats_xattr: stats::XattrCache,
}

/// See [`Core::on_attr_change`].
pub type AttrListener = Box<dyn Fn(u64) + Send + Sync>;

impl Deref for Volume {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// The metadata database's page cache: small, because inode and block-index records are
/// small and the daemon's memory belongs to the block cache and the dirty buffers.
const META_CACHE_BYTES: u64 = 16 << 20;

impl Volume {
    /// Opens (creating when empty) the volume stored in `store_dir`; takes the store lock.
    pub fn open(store_dir: &Path, opts: VolumeOptions) -> Result<Volume> {
        let store = Store::open(
            store_dir,
            &StoreOptions {
                block_size: opts.block_size,
                meta_cache_bytes: META_CACHE_BYTES,
                allow_lost_changes: false,
            },
        )?;
        let block_size = store.superblock().block_size;
        if block_size != opts.block_size {
            log::info!("store {} uses {} KiB blocks (set when it was created)", store_dir.display(), block_size / 1024);
        }
        let registry = ModelRegistry::new(&store.models_dir());
        let set = open_codecs(&opts.codec, CodecKind::Zstd, Some(&registry))?;
        log::info!("new blocks are written as {:?}", set.codecs.writer());
        let core = Arc::new(Core {
            codecs: RwLock::new(Arc::new(set.codecs)),
            registry,
            recompress_to: RwLock::new(set.recompress_to),
            recompression: recompress::RecompressState::new(),
            cache: Mutex::new(BlockCache::new(opts.cache_bytes)),
            prefetched: Mutex::new((0, 0)),
            files: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            dirty_bytes: AtomicUsize::new(0),
            block_size,
            opts,
            attr_listener: OnceLock::new(),
            stats_xattr: stats::XattrCache::default(),
            store,
        });
        core.ensure_root()?;
        core.free_orphans()?;
        let background = background::Background::start(&core);
        Ok(Volume { core, background: Mutex::new(Some(background)) })
    }

    /// Commits all dirty data, compacts packs that are mostly dead, and makes everything
    /// durable. The volume stays usable; dropping it shuts down too.
    /// Commits everything, compacts, makes it durable, and records in the store how that
    /// went (`close_state`).
    pub fn shutdown(&self) -> Result<()> {
        let result = self.close();
        let error = result.as_ref().err().map(|e| crate::error::error_chain(e));
        if let Err(e) = self.core.store.record_close(error.as_deref()) {
            log::warn!("recording how the store was closed: {e}");
        }
        result
    }

    fn close(&self) -> Result<()> {
        let start = std::time::Instant::now();
        if let Some(bg) = lock(&self.background).take() {
            bg.stop();
        }
        // An on-demand pass stops at its next block; nothing is replaced after this.
        self.core.stop_recompression();
        self.core.commit_all()?;
        // Compaction only saves space: its failure loses nothing.
        self.core.store.flush()?;
        let committed = start.elapsed();
        if let Err(e) = self.core.compact(SHUTDOWN_COMPACT_DEAD) {
            log::warn!("compaction at unmount skipped: {e}");
        }
        self.core.store.flush()?;
        if let Err(e) = self.core.prune_models() {
            log::warn!("looking for stored models no block needs: {e}");
        }
        let meta_start = std::time::Instant::now();
        match self.core.store.compact_metadata() {
            Ok(shrank) => log::debug!("metadata compaction in {:.2?} (file shrank: {shrank})", meta_start.elapsed()),
            // Only space is at stake.
            Err(e) => log::warn!("metadata compaction at unmount skipped: {e}"),
        }
        // After compaction: holes in the packs it just deleted would be wasted work, and
        // where it failed (a full disk) this is what gives the space back.
        self.core.store.punch_freed();
        // Slow unmounts are worth seeing in the log: `s2sfs umount` waits for them.
        log::info!(
            "closed: committed in {:.2?}, compacted and closed in {:.2?}",
            committed,
            start.elapsed() - committed
        );
        Ok(())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("closing the volume: {e}");
        }
    }
}

/// At unmount, packs more than this fraction dead are rewritten: keeps the footprint within
/// 1 / (1 - 0.2) = 1.25x of the live frames.
const SHUTDOWN_COMPACT_DEAD: f64 = 0.2;

impl Core {
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The codecs in use now (a snapshot: on-demand recompression may add a model).
    pub(crate) fn codecs(&self) -> Arc<Codecs> {
        self.codecs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers who to tell when an inode's attributes change without a reply that
    /// carries them (an access time set by an open): a FUSE mount drops the kernel's
    /// cached attributes there. Only the first registration counts.
    pub fn on_attr_change(&self, listener: AttrListener) {
        if self.attr_listener.set(listener).is_err() {
            log::warn!("attribute listener already registered; the new one is ignored");
        }
    }

    /// Rewrites packs whose dead fraction exceeds `min_dead`; returns bytes reclaimed.
    pub fn compact(&self, min_dead: f64) -> Result<u64> {
        let stats = self.store.compact(min_dead)?;
        if stats.packs_rewritten > 0 {
            log::info!(
                "compacted {} packs: copied {} bytes, reclaimed {} bytes",
                stats.packs_rewritten,
                stats.bytes_copied,
                stats.bytes_reclaimed
            );
        }
        Ok(stats.bytes_reclaimed)
    }

    fn ensure_root(&self) -> Result<()> {
        if self.store.inode(ROOT_INO)?.is_none() {
            let mut txn = self.store.begin();
            // SAFETY: geteuid/getegid only read the process's credentials.
            let owner = unsafe { Caller { uid: libc::geteuid(), gid: libc::getegid() } };
            txn.put_inode(ROOT_INO, &inode::root_record(owner));
            txn.commit(true)?;
        }
        Ok(())
    }

    /// Frees inodes that were unlinked while open when the volume last went down.
    fn free_orphans(&self) -> Result<()> {
        for ino in self.store.orphans()? {
            let mut txn = self.store.begin();
            match txn.inode(ino)? {
                Some(rec) if rec.nlink > 0 => txn.set_orphan(ino, false),
                _ => txn.delete_inode(ino)?,
            }
            txn.commit(false)?;
        }
        Ok(())
    }
}

/// Locks a mutex, ignoring poisoning: a panicked FUSE worker must not wedge the volume.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;

impl Core {
    /// Checks the store read-only while the volume is in use (`s2sfs fsck` of a mounted
    /// store): writers wait while the metadata is read, then frames are verified.
    pub fn check(&self, progress: &mut dyn FnMut(crate::store::Progress)) -> Result<crate::store::FsckReport> {
        let codecs = self.codecs();
        let verify = |frame: &[u8]| crate::volume::verify_frame(&codecs, frame);
        Ok(self.store.fsck(&verify, false, progress)?)
    }
}
