//! Persistent state: a redb database for metadata and the block index (meta.rs),
//! append-only pack files for frames, refcounts, compaction. No redb (or sled) type
//! leaves this module.

mod check;
mod compact;
mod layout;
mod meta;
mod migrate;
mod packs;
mod prefetch;
mod recompress;
mod records;
mod totals;
mod txn;
mod watermark;

use std::collections::HashMap;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

pub use check::{FsckOutcome, FsckReport, NO_PACK, PassResult, Problem, Progress, Totals, Verify, VerifyError};
pub use compact::CompactStats;
pub use layout::{CloseState, FORMAT_VERSION, LOCK_GRACE, close_state, control_socket};
pub use records::{BlockHash, BlockRecord, EntryRecord, FrameInfo, InodeRecord, Superblock, Timestamp};
pub use totals::{BlockTotals, FrameGroup};
pub use txn::Txn;

use layout::Layout;
use meta::Meta;
use packs::{ActivePack, PACK_HEADER_LEN, PACK_TARGET_SIZE, Packs};
use records::*;
use watermark::Watermark;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {0} is in use by another s2sfs process (lock held on its lock file)")]
    Locked(PathBuf),
    #[error("store {path} has format version {found}; this s2sfs reads version {supported}")]
    Incompatible { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata store: {0}")]
    Meta(String),
    #[error("metadata store {meta} is damaged ({what}); refused, nothing was changed")]
    MetaDamaged { meta: PathBuf, what: String },
    #[error("damaged store: {what}")]
    Damaged { what: String },
    #[error("no space left on the store's disk")]
    NoSpace,
    #[error(
        "metadata store {meta} lost changes that were durable (it ends at change {found}, change {durable} had been flushed): \
         its log is damaged; nothing was changed. `s2sfs fsck --store {store}` reports, `--repair` accepts the loss"
    )]
    LostChanges { meta: PathBuf, store: PathBuf, found: u64, durable: u64 },
}

impl StoreError {
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NoSpace => libc::ENOSPC,
            StoreError::Io { source, .. } => match source.raw_os_error() {
                Some(libc::ENOSPC) => libc::ENOSPC,
                Some(libc::EDQUOT) => libc::EDQUOT,
                _ => libc::EIO,
            },
            _ => libc::EIO,
        }
    }
}

/// What the writer owns: the pack being appended to and the space accounting of all packs.
struct Writer {
    active: ActivePack,
    /// File length of every pack.
    sizes: HashMap<u32, u64>,
    /// Bytes of frames some record still points at, per pack.
    live: HashMap<u32, u64>,
    /// Sequence number of the last change applied to the metadata store.
    seq: u64,
}

pub struct Store {
    /// Frames no record points at any more, whose disk space is given back (a hole is
    /// punched) once the change that freed them is durable: before that, a crash could
    /// bring the old records back.
    freed: Mutex<Vec<(u32, u64, u32)>>,
    /// Freed frames whose deletion is durable: their holes are punched off the caller's
    /// path (`punch_freed`), since punching costs milliseconds per hole on ext4.
    punchable: Mutex<Vec<(u32, u64, u32)>>,
    /// Counts the rounds of hole punching begun. A reader that saw it change while it read
    /// a frame looks its record up again (`read_checked`): the frame it found may have been
    /// punched after its record was replaced or deleted.
    punches: AtomicU64,
    layout: Layout,
    meta: Meta,
    /// The change number last made durable: a flush with nothing new is skipped.
    flushed: Mutex<u64>,
    packs: Packs,
    writer: Mutex<Writer>,
    /// Readers hold it shared from record lookup to frame read; deleting a pack takes it
    /// exclusively, so no reader follows a record into a pack that just disappeared.
    gc: RwLock<()>,
    superblock: Superblock,
    watermark: Watermark,
    /// (changes found, changes known durable) when opened despite lost changes (fsck).
    lost_changes: Option<(u64, u64)>,
    /// Last, so dropped last: the next opener finds the database and packs closed.
    _lock: layout::StoreLock,
}

/// Options used when the store is opened; `block_size` only when it is created.
pub struct StoreOptions {
    pub block_size: u32,
    pub meta_cache_bytes: u64,
    /// Open even when the metadata store lost durable changes (fsck, which reports it).
    pub allow_lost_changes: bool,
}

impl Store {
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let layout = Layout::new(dir);
        let lock = layout.take_lock()?;
        layout::record_state(&lock, &layout.lock(), layout::open_text())?;
        let created = match layout.check_or_create()? {
            layout::Found::Created => true,
            layout::Found::Current => false,
            layout::Found::Sled => {
                migrate::from_sled(&layout, opts.meta_cache_bytes)?;
                false
            }
        };
        layout.remove_legacy_meta();
        let db = Meta::open(&layout.meta(), opts.meta_cache_bytes)?;
        let superblock = match db.get(&[TAG_SUPER])? {
            Some(bytes) => Superblock::decode(&bytes)?,
            None if created || db.is_empty()? => {
                let sb = Superblock { format: FORMAT_VERSION, block_size: opts.block_size, created: now() };
                db.apply([(&[TAG_SUPER][..], Some(sb.encode().as_slice()))])?;
                db.flush()?;
                sb
            }
            None => return Err(StoreError::Damaged { what: "superblock missing".into() }),
        };
        if superblock.format != FORMAT_VERSION {
            return Err(StoreError::Incompatible {
                path: dir.to_path_buf(),
                found: superblock.format,
                supported: FORMAT_VERSION,
            });
        }
        let seq = match db.get(&[TAG_SEQ])? {
            Some(v) => u64::from_le_bytes(
                v.as_slice().try_into().map_err(|_| StoreError::Damaged { what: "change counter".into() })?,
            ),
            None => 0,
        };
        let (watermark, durable) = Watermark::open(&layout.durable())?;
        let lost_changes = durable.filter(|&d| d > seq).map(|d| (seq, d));
        if let Some((found, durable)) = lost_changes.filter(|_| !opts.allow_lost_changes) {
            return Err(StoreError::LostChanges { meta: layout.meta(), store: layout.root.clone(), found, durable });
        }
        let (packs, found) = Packs::open(&layout.packs())?;
        let mut live: HashMap<u32, u64> = HashMap::new();
        // Where the last frame each pack's records name ends.
        let mut named_end: HashMap<u32, u64> = HashMap::new();
        db.scan_prefix(&[TAG_BLOCK], |k, v| {
            // A damaged record must not keep the store from opening (fsck has to): reads
            // of the blocks that use it fail on their own.
            match BlockRecord::decode(v) {
                Ok(rec) => {
                    *live.entry(rec.pack).or_default() += rec.frame_len as u64;
                    let end = named_end.entry(rec.pack).or_default();
                    *end = (*end).max(rec.offset + rec.frame_len as u64);
                }
                Err(e) => log::warn!("block record {}: {e}; run s2sfs fsck", txn::hex(&k[1..])),
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let sizes: HashMap<u32, u64> = found.iter().copied().collect();
        // A pack id that some record names is never reused, even when its file is gone
        // (lost or deleted by hand): a new pack under that id would give those records
        // other frames than theirs.
        let highest_named = live.keys().copied().max().unwrap_or(0);
        // Nor is a pack appended to that is shorter than its records say (cut by damage):
        // new frames would land where the lost ones' records still point.
        // A pack shorter than its header (damage) is not appended to either: its first
        // frame would land at offset 0.
        let intact = |id: u32, len: u64| len >= PACK_HEADER_LEN && named_end.get(&id).is_none_or(|&end| end <= len);
        let active = match found.last() {
            Some(&(id, len)) if len < PACK_TARGET_SIZE && id >= highest_named && intact(id, len) => packs.reopen(id)?,
            Some(&(id, _)) => packs.create(id.max(highest_named) + 1)?,
            None => packs.create(highest_named + 1)?,
        };
        let mut writer = Writer { active, sizes, live, seq };
        writer.sizes.insert(writer.active.id, writer.active.len);
        Ok(Store {
            freed: Mutex::new(Vec::new()),
            punchable: Mutex::new(Vec::new()),
            punches: AtomicU64::new(0),
            layout,
            meta: db,
            flushed: Mutex::new(seq),
            packs,
            writer: Mutex::new(writer),
            gc: RwLock::new(()),
            superblock,
            watermark,
            lost_changes,
            _lock: lock,
        })
    }

    /// Whether `dir` holds a store, or what is left of one (`open` then says what is
    /// wrong with it); unlike `open`, creates nothing.
    pub fn exists(dir: &Path) -> bool {
        let layout = Layout::new(dir);
        layout.format().is_file() || layout.meta().exists() || layout.legacy_meta().exists() || layout.packs().exists()
    }

    pub fn dir(&self) -> &Path {
        &self.layout.root
    }

    pub fn superblock(&self) -> Superblock {
        self.superblock
    }

    /// A fresh inode number; never reused, even across crashes.
    pub fn new_ino(&self) -> Result<u64, StoreError> {
        Ok(self.meta.generate_id()? + 2)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.meta.get(key)
    }

    pub fn inode(&self, ino: u64) -> Result<Option<InodeRecord>, StoreError> {
        self.get(&key_u64(TAG_INODE, ino))?.map(|v| InodeRecord::decode(&v)).transpose()
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<EntryRecord>, StoreError> {
        self.get(&key_u64_bytes(TAG_NAME, parent, name))?.map(|v| EntryRecord::decode(&v)).transpose()
    }

    /// Directory entries with a cookie greater than `after`, in cookie order.
    pub fn entries_after(
        &self,
        parent: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(EntryRecord, Vec<u8>)>, StoreError> {
        let start = key_u64_u64(TAG_DIRENT, parent, after.saturating_add(1));
        let end = key_u64(TAG_DIRENT, parent + 1);
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.meta.scan((Bound::Included(start.as_slice()), Bound::Excluded(end.as_slice())), |_, v| {
            out.push((EntryRecord::decode(v)?, v[20..].to_vec()));
            Ok(if out.len() < max { ControlFlow::Continue(()) } else { ControlFlow::Break(()) })
        })?;
        Ok(out)
    }

    /// The content hash of block `block` of inode `ino`; None for a hole.
    pub fn block(&self, ino: u64, block: u64) -> Result<Option<BlockHash>, StoreError> {
        match self.get(&key_u64_u64(TAG_BLOCKMAP, ino, block))? {
            None => Ok(None),
            Some(v) => Ok(Some(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Damaged { what: format!("block map of inode {ino}") })?,
            )),
        }
    }

    /// Reads the frame of a block, following its record into a pack.
    pub fn read_frame(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        self.read_checked(hash, |rec| self.packs.read(rec.pack, rec.offset, rec.frame_len))
    }

    /// Looks up a block's record and reads its frame with `read`; the caller holds `gc`.
    /// A frame's record may be replaced (recompression) or deleted, and the frame punched
    /// once that is durable, between the lookup and the read: then the bytes read may be a
    /// hole. When punching began meanwhile and the record no longer names the frame that
    /// was read, it is read again as the record is now (None: the block is gone).
    fn read_checked<T>(
        &self,
        hash: &BlockHash,
        mut read: impl FnMut(&BlockRecord) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let place = |r: &BlockRecord| (r.pack, r.offset, r.frame_len);
        let mut tries = 0;
        loop {
            let punches = self.punches.load(Ordering::SeqCst);
            let Some(rec) = self.block_record(hash)? else { return Ok(None) };
            let got = read(&rec)?;
            tries += 1;
            if tries == 3 || self.punches.load(Ordering::SeqCst) == punches {
                return Ok(Some(got));
            }
            if self.block_record(hash)?.is_some_and(|now| place(&now) == place(&rec)) {
                return Ok(Some(got));
            }
        }
    }

    /// The record of a block: where its frame lies, how many block-map entries use it, and
    /// what the frame is; None: no such block. For tools and tests that look at the store
    /// as it is; readers inside the store that go on into the record's pack hold `gc` for
    /// reading, so that compaction cannot move the frame and delete the pack in between.
    pub fn block_record(&self, hash: &BlockHash) -> Result<Option<BlockRecord>, StoreError> {
        self.get(&key_block(hash))?.map(|v| BlockRecord::decode(&v)).transpose()
    }

    /// Reads the frame of a block into caller buffers: when the frame is `split +
    /// tail.len()` bytes long, its first `split` bytes go to `head` and the rest straight
    /// into `tail` (Some(true)); otherwise the whole frame goes to `head` (Some(false)).
    /// None: no such block. Lets a reader place a stored-as-is block where it belongs
    /// without copying it, and reuse `head` across reads.
    pub fn read_frame_into(
        &self,
        hash: &BlockHash,
        split: usize,
        head: &mut Vec<u8>,
        tail: &mut [u8],
    ) -> Result<Option<bool>, StoreError> {
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        self.read_checked(hash, |rec| {
            let len = rec.frame_len as usize;
            let split_it = len == split + tail.len();
            head.resize(if split_it { split } else { len }, 0);
            self.packs.read_into(rec.pack, rec.offset, head)?;
            if split_it {
                self.packs.read_into(rec.pack, rec.offset + split as u64, tail)?;
            }
            Ok(split_it)
        })
    }

    /// Asks the kernel to start reading the frames of these blocks from their packs, so
    /// that decoding them one after another does not wait for the disk block by block.
    /// Advisory: unknown blocks are skipped, and compaction may move a frame afterwards.
    pub fn prefetch(&self, hashes: &[BlockHash]) -> Result<(), StoreError> {
        // Held until the ranges are queued: a range of a pack that compaction is deleting
        // then reaches the read-ahead thread before the pack's Forget does, never after
        // it (the thread would reopen the deleted pack and keep its space).
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        let mut ranges = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if let Some(rec) = self.block_record(hash)? {
                ranges.push((rec.pack, rec.offset, rec.offset + rec.frame_len as u64));
            }
        }
        self.packs.prefetch(ranges);
        Ok(())
    }

    pub fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&key_u64_bytes(TAG_XATTR, ino, name))
    }

    pub fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = key_u64(TAG_XATTR, ino);
        Ok(self.meta.collect_prefix(&prefix)?.into_iter().map(|(k, _)| k[prefix.len()..].to_vec()).collect())
    }

    /// Inodes that were unlinked while open: freed on the next open of the store.
    pub fn orphans(&self) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        self.meta.scan_prefix(&[TAG_ORPHAN], |k, _| {
            let ino: [u8; 8] = k[1..].try_into().map_err(|_| StoreError::Damaged { what: "orphan list".into() })?;
            out.push(u64::from_be_bytes(ino));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Bytes of live frames and bytes of all pack files.
    pub fn usage(&self) -> (u64, u64) {
        let w = self.lock_writer();
        (w.live.values().sum(), w.sizes.values().sum())
    }

    /// Starts a change; changes are serialized, and each commits atomically.
    pub fn begin(&self) -> Txn<'_> {
        Txn::new(self, self.lock_writer())
    }

    /// Makes everything committed so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        // Every change up to here is committed to the database: the flush makes them durable.
        let seq = self.lock_writer().seq;
        let freed = std::mem::take(&mut *self.freed.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = self.meta.flush() {
            self.freed.lock().unwrap_or_else(|p| p.into_inner()).extend(freed);
            return Err(e);
        }
        if self.lost_changes.is_none() {
            self.watermark.record(seq)?;
        }
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        *flushed = (*flushed).max(seq);
        drop(flushed);
        self.punchable.lock().unwrap_or_else(|p| p.into_inner()).extend(freed);
        Ok(())
    }

    /// Flushes when changes were committed since the last flush: metadata changes reach
    /// the disk within one call of this (the volume calls it every second).
    pub fn flush_if_changed(&self) -> Result<(), StoreError> {
        let seq = self.lock_writer().seq;
        if seq > *self.flushed.lock().unwrap_or_else(|p| p.into_inner()) { self.flush() } else { Ok(()) }
    }

    /// Gives the space of frames whose deletion is durable back to the filesystem (holes
    /// punched), so deleting files on a full disk frees space without a compaction, which
    /// needs free space itself. Adjacent frames (a file written in one go) become one hole.
    pub fn punch_freed(&self) {
        let mut ranges = std::mem::take(&mut *self.punchable.lock().unwrap_or_else(|p| p.into_inner()));
        if ranges.is_empty() {
            return;
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u64, u64)> = Vec::with_capacity(ranges.len());
        for (pack, offset, len) in ranges {
            match merged.last_mut() {
                Some((p, o, l)) if *p == pack && *o + *l >= offset => *l = (*l).max(offset + len as u64 - *o),
                _ => merged.push((pack, offset, len as u64)),
            }
        }
        // Packs deleted since (compaction) are skipped by `punch`.
        let _gc = self.gc.read().unwrap_or_else(|p| p.into_inner());
        // Before any hole: a reader that read one of these frames sees the count change.
        self.punches.fetch_add(1, Ordering::SeqCst);
        self.packs.punch(&merged);
    }

    /// Records in the lock file how this process closes the store (`close_state` reads it
    /// once the lock is released): `s2sfs umount` reports a close that lost data.
    pub fn record_close(&self, error: Option<&str>) -> Result<(), StoreError> {
        layout::record_state(&self._lock, &self.layout.lock(), &layout::close_text(error))
    }

    /// Shrinks the metadata file to what it holds (`Meta::compact`); writers wait. For
    /// the end of a mount: small volumes' files are otherwise mostly free pages.
    pub fn compact_metadata(&self) -> Result<bool, StoreError> {
        let _writer = self.lock_writer();
        self.meta.compact()
    }

    /// `STORE/models`: the learned models the store's frames name (`codec::ModelRegistry`).
    pub fn models_dir(&self) -> PathBuf {
        self.layout.models()
    }

    /// Whether the store's disk has room for changes that add data. Below the margin only
    /// changes that free space go through, so the metadata database never meets a full
    /// disk (a failed write leaves it refusing further writes until reopened) and
    /// deleting files always works.
    pub fn has_room(&self) -> bool {
        let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(self.layout.root.as_os_str())) else {
            return true;
        };
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid C string and a writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return true;
        }
        (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) >= FREE_MARGIN
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        let _watch = crate::watchdog::watch("waiting for the store's writer lock");
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Free space kept on the store's disk for metadata and for changes that free space.
const FREE_MARGIN: u64 = 8 << 20;

pub fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

impl From<std::time::SystemTime> for Timestamp {
    fn from(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp { secs: d.as_secs() as i64, nanos: d.subsec_nanos() },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp { secs: -(d.as_secs() as i64), nanos: 0 }
                } else {
                    Timestamp { secs: -(d.as_secs() as i64) - 1, nanos: 1_000_000_000 - d.subsec_nanos() }
                }
            }
        }
    }
}

impl From<Timestamp> for std::time::SystemTime {
    fn from(t: Timestamp) -> Self {
        let base = std::time::UNIX_EPOCH;
        if t.secs >= 0 {
            base + std::time::Duration::new(t.secs as u64, t.nanos)
        } else {
            base - std::time::Duration::from_secs(t.secs.unsigned_abs())
                + std::time::Duration::from_nanos(t.nanos as u64)
        }
    }
}

impl Store {
    /// Whether a block with this content is already stored (its frame can be shared).
    pub fn has_block(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        self.meta.contains(&key_block(hash))
    }

    /// The file of pack `id` (`STORE/packs/`), whether or not it exists: for tools and
    /// tests that examine pack files, or damage them on purpose.
    pub fn pack_path(&self, id: u32) -> PathBuf {
        self.packs.path(id)
    }
}

/// Raw access for tests that damage a store on purpose.
#[cfg(test)]
impl Store {
    /// Whether freed frames wait for a flush or a punch to give their space back.
    pub(crate) fn has_freed(&self) -> bool {
        !self.freed.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
            || !self.punchable.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
    pub(crate) fn raw_put(&self, key: &[u8], value: &[u8]) {
        self.meta.apply([(key, Some(value))]).unwrap();
    }
    pub(crate) fn raw_remove(&self, key: &[u8]) {
        self.meta.apply([(key, None)]).unwrap();
    }
    pub(crate) fn raw_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.meta.get(key).unwrap()
    }
}
