//! The metadata database: one ordered byte-key table in redb (`STORE/meta.redb`).
//!
//! Every change is one redb write transaction committed without an fsync
//! (`Durability::None`); `flush` commits with `Durability::Immediate`, which makes every
//! change before it durable. After a crash redb rolls back to the last durable commit,
//! atomically: a change is there whole or not at all.
//!
//! Why redb and not sled (ARCHITECTURE.md, "The metadata store: why redb, not sled"):
//! sled 0.34.7 can deadlock under create/unlink churn, inside its own segment accountant,
//! whatever its caller does.
//!
//! The file is checked whole (every page's checksum) at every open: a damaged file is
//! refused with one line instead of being served.

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use redb::{CompactionMode, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::StoreError;
use super::records::TAG_IDS;
use crate::watchdog::watch;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");

/// One key and its new value (None: delete it).
pub type Change<'a> = (&'a [u8], Option<&'a [u8]>);

/// Keys and values, in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

pub struct Meta {
    /// Shared by every transaction; taken exclusively only to compact the file.
    db: RwLock<Database>,
    path: PathBuf,
    ids: Mutex<Ids>,
}

/// Ids are reserved durably, `ID_CHUNK` at a time, before any is handed out: after a crash
/// that lost the file an id was given to, a new file still gets another id (a file handle
/// of the lost one must not open it).
struct Ids {
    next: u64,
    /// Every id below this may have been handed out; stored under `TAG_IDS`.
    reserved: u64,
}

const ID_CHUNK: u64 = 4096;

impl Meta {
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Meta, StoreError> {
        let fail = |e: redb::Error| meta_error(path, e);
        let db = Database::builder()
            .set_cache_size(cache_bytes as usize)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| fail(e.into()))?;
        // The table exists from the start, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| fail(e.into()))?;
        let reserved = {
            let table = txn.open_table(TABLE).map_err(|e| fail(e.into()))?;
            let stored = table.get([TAG_IDS].as_slice()).map_err(|e| fail(e.into()))?;
            match stored {
                Some(v) => decode_id(v.value()).ok_or_else(|| StoreError::Damaged { what: "id counter".into() })?,
                None => 1,
            }
        };
        txn.commit().map_err(|e| fail(e.into()))?;
        Ok(Meta { db: RwLock::new(db), path: path.to_path_buf(), ids: Mutex::new(Ids { next: reserved, reserved }) })
    }

    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves pages to the start of the file and cuts the free space off its end. Commits
    /// that are not durable leave their old pages allocated until a durable one, so a
    /// small volume's file is mostly free space after a busy mount. Durable, crash-safe
    /// (redb's own two-phase commits). Returns whether the file shrank.
    pub fn compact(&self) -> Result<bool, StoreError> {
        let _watch = watch("metadata compaction");
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let mut shrank = false;
        // Each call moves what it can; a few rounds reach the end.
        for _ in 0..4 {
            match db.compact(CompactionMode::Balanced) {
                Ok(true) => shrank = true,
                Ok(false) => break,
                Err(e) => return Err(meta_error(&self.path, redb::Error::from(e))),
            }
        }
        Ok(shrank)
    }

    fn error(&self, e: impl Into<redb::Error>) -> StoreError {
        meta_error(&self.path, e.into())
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let _watch = watch("metadata read");
        let txn = self.db().begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        let value = table.get(key).map_err(|e| self.error(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let mut empty = true;
        self.scan((Bound::Unbounded, Bound::Unbounded), |_, _| {
            empty = false;
            Ok(ControlFlow::Break(()))
        })?;
        Ok(empty)
    }

    /// Calls `visit` with every key in `range` and its value, in key order, until it breaks.
    /// One read transaction: the visit sees one consistent state.
    pub fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        let _watch = watch("metadata scan");
        let txn = self.db().begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        for item in table.range(range).map_err(|e| self.error(e))? {
            let (k, v) = item.map_err(|e| self.error(e))?;
            if visit(k.value(), v.value())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// `scan` over the keys that start with `prefix`.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        let end = prefix_end(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan((Bound::Included(prefix), upper), visit)
    }

    /// Every key and value under `prefix`: for the small groups (one inode's xattrs or
    /// block map) that callers want as a list.
    pub fn collect_prefix(&self, prefix: &[u8]) -> Result<Records, StoreError> {
        let mut out = Vec::new();
        self.scan_prefix(prefix, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Applies the changes atomically (durable at the next `flush`).
    pub fn apply<'a>(&self, changes: impl IntoIterator<Item = Change<'a>>) -> Result<(), StoreError> {
        let _watch = watch("metadata commit");
        let mut txn = self.db().begin_write().map_err(|e| self.error(e))?;
        txn.set_durability(Durability::None).map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            for (key, value) in changes {
                match value {
                    Some(v) => table.insert(key, v).map(drop),
                    None => table.remove(key).map(drop),
                }
                .map_err(|e| self.error(e))?;
            }
        }
        txn.commit().map_err(|e| self.error(e))
    }

    /// Makes every change applied so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let _watch = watch("metadata flush");
        let txn = self.db().begin_write().map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))
    }

    /// A fresh id, never handed out before by this database, even before a crash.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.next >= ids.reserved {
            let reserved = ids.next + ID_CHUNK;
            self.reserve(reserved)?;
            ids.reserved = reserved;
        }
        ids.next += 1;
        Ok(ids.next - 1)
    }

    /// Makes every id below `id` taken (ids that another store handed out).
    pub fn skip_ids_below(&self, id: u64) -> Result<(), StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if id > ids.reserved {
            self.reserve(id)?;
            ids.reserved = id;
        }
        ids.next = ids.next.max(id);
        Ok(())
    }

    /// Durably records that ids below `reserved` may be in use.
    fn reserve(&self, reserved: u64) -> Result<(), StoreError> {
        let _watch = watch("inode number reservation");
        let txn = self.db().begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            table.insert([TAG_IDS].as_slice(), reserved.to_le_bytes().as_slice()).map_err(|e| self.error(e))?;
        }
        txn.commit().map_err(|e| self.error(e))
    }
}

fn decode_id(v: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(v.try_into().ok()?))
}

/// The smallest key above every key that starts with `prefix`; None when there is none.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn meta_error(path: &Path, e: redb::Error) -> StoreError {
    if let redb::Error::Io(io) = &e
        && (io.raw_os_error() == Some(libc::ENOSPC) || io.kind() == std::io::ErrorKind::StorageFull)
    {
        return StoreError::NoSpace;
    }
    match e {
        redb::Error::Corrupted(what) => StoreError::MetaDamaged { meta: path.to_path_buf(), what },
        redb::Error::DatabaseAlreadyOpen => StoreError::Meta(format!("{}: open in another process", path.display())),
        other => StoreError::Meta(format!("{}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(meta: &Meta, prefix: &[u8]) -> Vec<Vec<u8>> {
        meta.collect_prefix(prefix).unwrap().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn prefix_scans_stop_at_the_prefix_end() {
        assert_eq!(prefix_end(b"a"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("m.redb"), 1 << 20).unwrap();
        let put = |k: &'static [u8]| (k, Some(b"v".as_slice()));
        meta.apply([put(&[1, 0xff]), put(&[1, 0xff, 0]), put(&[2]), put(&[0xff]), put(&[0xff, 0xff, 1])]).unwrap();
        assert_eq!(keys(&meta, &[1, 0xff]), vec![vec![1, 0xff], vec![1, 0xff, 0]]);
        assert_eq!(keys(&meta, &[0xff, 0xff]), vec![vec![0xff, 0xff, 1]]);
        meta.apply([(&[2u8][..], None)]).unwrap();
        assert_eq!(keys(&meta, &[2]), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn compaction_shrinks_the_file_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let meta = Meta::open(&path, 1 << 20).unwrap();
        let value = vec![7u8; 200];
        // Many commits that are not durable, as a mount makes them.
        for i in 0u32..3000 {
            let key = i.to_be_bytes();
            meta.apply([(&key[..], Some(&value[..]))]).unwrap();
        }
        for i in 0u32..2900 {
            let key = i.to_be_bytes();
            meta.apply([(&key[..], None)]).unwrap();
        }
        meta.flush().unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        assert!(meta.compact().unwrap());
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before / 2, "{before} -> {after} bytes");
        drop(meta);
        let meta = Meta::open(&path, 1 << 20).unwrap();
        assert_eq!(keys(&meta, &[]).len(), 100);
        assert_eq!(meta.get(&2999u32.to_be_bytes()).unwrap(), Some(value));
    }

    #[test]
    fn ids_are_never_handed_out_twice_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let meta = Meta::open(&path, 1 << 20).unwrap();
        assert!(meta.is_empty().unwrap());
        let a = meta.generate_id().unwrap();
        let b = meta.generate_id().unwrap();
        assert!(b > a);
        // Reserved by an Immediate commit of its own, before the id was handed out.
        let stored = decode_id(&meta.get(&[TAG_IDS]).unwrap().unwrap()).unwrap();
        assert!(stored > b);
        drop(meta);
        let meta = Meta::open(&path, 1 << 20).unwrap();
        assert!(meta.generate_id().unwrap() > b);
    }

    #[test]
    fn a_damaged_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let meta = Meta::open(&path, 1 << 20).unwrap();
        let value = vec![7u8; 3000];
        let changes: Vec<(Vec<u8>, Vec<u8>)> = (0u32..200).map(|i| (i.to_be_bytes().to_vec(), value.clone())).collect();
        meta.apply(changes.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice())))).unwrap();
        meta.flush().unwrap();
        drop(meta);
        let mut bytes = std::fs::read(&path).unwrap();
        // Inside the data pages, well past the header.
        let at = bytes.len() / 2;
        bytes[at] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        match Meta::open(&path, 1 << 20) {
            Err(e) => assert!(e.to_string().contains("m.redb"), "{e}"),
            Ok(meta) => {
                // The flip landed in a free page: every value must still read back whole.
                for (k, v) in &changes {
                    assert_eq!(meta.get(k).unwrap().as_ref(), Some(v));
                }
            }
        }
    }
}

/// How long the integrity check at open takes on a large database (`S2SFS_META_RECORDS`
/// records of a block-map entry's size, default 2,000,000: the block map of 256 GiB of
/// 128 KiB blocks). Run: `cargo test --release --lib -- --ignored open_time --nocapture`.
#[cfg(test)]
mod open_time {
    use super::*;

    #[test]
    #[ignore = "measurement (ARCHITECTURE.md, the metadata store)"]
    fn open_time_of_a_large_database() {
        let n: u64 = std::env::var("S2SFS_META_RECORDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let meta = Meta::open(&path, 16 << 20).unwrap();
        let value = [7u8; 32];
        let t = std::time::Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(100_000) {
            let keys: Vec<[u8; 17]> = chunk
                .iter()
                .map(|i| {
                    let mut k = [b'B'; 17];
                    k[1..9].copy_from_slice(&(i / 1000).to_be_bytes());
                    k[9..].copy_from_slice(&(i % 1000).to_be_bytes());
                    k
                })
                .collect();
            meta.apply(keys.iter().map(|k| (k.as_slice(), Some(value.as_slice())))).unwrap();
        }
        meta.flush().unwrap();
        let filled = t.elapsed();
        drop(meta);
        let bytes = std::fs::metadata(&path).unwrap().len();
        let t = std::time::Instant::now();
        let meta = Meta::open(&path, 16 << 20).unwrap();
        println!(
            "{n} records, file {:.1} MB: written in {:.2?}, reopened (every page verified) in {:.2?}",
            bytes as f64 / 1e6,
            filled,
            t.elapsed()
        );
        let mut last = [b'B'; 17];
        last[1..9].copy_from_slice(&((n - 1) / 1000).to_be_bytes());
        last[9..].copy_from_slice(&((n - 1) % 1000).to_be_bytes());
        assert_eq!(meta.get(&last).unwrap().as_deref(), Some(value.as_slice()));
    }
}
