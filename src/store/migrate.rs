//! Moves a format 1 store's metadata from sled (STORE/meta/) into redb (STORE/meta.redb),
//! once, on the first open by an s2sfs that reads format 2. Pack files do not change.
//!
//! Crash-safe at every step:
//! 1. every sled record is copied, unchanged, into `meta.redb.tmp`, made durable;
//! 2. `meta.redb.tmp` is renamed to `meta.redb` (the directory is synced): from here on
//!    the new file is whole, and a later open skips the copy;
//! 3. the format file says 2 (written atomically);
//! 4. `meta/` is removed (`Layout::remove_legacy_meta`, which `Store::open` calls at
//!    every open, so a crash before it is finished by the next one).
//!
//! A crash before 2 leaves format 1 with sled untouched: the next open copies again.

use std::path::Path;

use super::StoreError;
use super::layout::{FORMAT_VERSION, Layout};
use super::meta::Meta;
use super::records::{Superblock, TAG_IDS, TAG_SUPER};

/// Records copied per redb transaction: bounds the memory of one transaction.
const COPY_BATCH: usize = 10_000;

pub fn from_sled(layout: &Layout, cache_bytes: u64) -> Result<(), StoreError> {
    let target = layout.meta();
    if !target.is_file() {
        let start = std::time::Instant::now();
        let tmp = layout.root.join("meta.redb.tmp");
        let io = |path: &Path, source| StoreError::Io { path: path.to_path_buf(), source };
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp, e)),
            _ => {}
        }
        let records = copy(&layout.legacy_meta(), &tmp, cache_bytes)?;
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        layout.sync_root()?;
        log::info!(
            "migrated {records} metadata records of {} from sled to {} in {:.2?}",
            layout.root.display(),
            target.display(),
            start.elapsed()
        );
    }
    layout.write_format(FORMAT_VERSION)
}

/// Copies every record of the sled database at `sled_dir` into a new redb file at `to`;
/// returns how many there were.
fn copy(sled_dir: &Path, to: &Path, cache_bytes: u64) -> Result<u64, StoreError> {
    let legacy = |e: sled::Error| StoreError::Meta(format!("{} (format 1, sled): {e}", sled_dir.display()));
    // sled refuses to open a database with another segment size than it was created with.
    let mut config = sled::Config::new().path(sled_dir).cache_capacity(cache_bytes);
    if let Some(size) = segment_size(sled_dir) {
        config = config.segment_size(size);
    }
    let db = config.open().map_err(legacy)?;
    let meta = Meta::open(to, cache_bytes)?;
    let mut batch: Vec<(sled::IVec, sled::IVec)> = Vec::with_capacity(COPY_BATCH);
    let mut records = 0u64;
    let mut write = |batch: &mut Vec<(sled::IVec, sled::IVec)>| -> Result<(), StoreError> {
        meta.apply(batch.iter().map(|(k, v)| (k.as_ref(), Some(v.as_ref()))))?;
        records += batch.len() as u64;
        batch.clear();
        Ok(())
    };
    for item in db.iter() {
        let (k, mut v) = item.map_err(legacy)?;
        // sled keeps its id counter outside its records: it is carried over below.
        if k.as_ref() == [TAG_IDS] {
            continue;
        }
        // The superblock names the format too.
        if k.as_ref() == [TAG_SUPER] {
            let mut sb = Superblock::decode(&v)?;
            sb.format = FORMAT_VERSION;
            v = sb.encode().into();
        }
        batch.push((k, v));
        if batch.len() == COPY_BATCH {
            write(&mut batch)?;
        }
    }
    write(&mut batch)?;
    // Inode numbers were sled ids (+2) and readdir cookies sled ids (+1): new ones must
    // start above every id sled handed out.
    let next = db.generate_id().map_err(legacy)? + 1;
    meta.skip_ids_below(next)?;
    meta.flush()?;
    Ok(records)
}

/// The segment size recorded in a sled database's `conf` file (format 1 stores were
/// created with 64 KiB, sled's default is 512 KiB). The file ends in a binary checksum:
/// it is not UTF-8 as a whole.
fn segment_size(sled_dir: &Path) -> Option<usize> {
    let conf = std::fs::read(sled_dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf).lines().find_map(|l| l.strip_prefix("segment_size: ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;
    use std::ops::ControlFlow;

    use super::super::check::tests::{fixture, fsck, open};
    use super::super::meta::Records;
    use super::super::records::{TAG_INODE, TAG_SUPER};
    use super::*;

    fn records(store: &super::super::Store) -> Records {
        let mut out = Vec::new();
        store
            .meta
            .scan((Bound::Unbounded, Bound::Unbounded), |k, v| {
                if k != [TAG_IDS] {
                    out.push((k.to_vec(), v.to_vec()));
                }
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        out
    }

    fn max_ino(records: &Records) -> Option<u64> {
        records
            .iter()
            .filter(|(k, _)| k[0] == TAG_INODE)
            .map(|(k, _)| u64::from_be_bytes(k[1..9].try_into().unwrap()))
            .max()
    }

    /// Turns a current store back into format 1: its records in sled under meta/, sled's
    /// id counter past every id the store used.
    fn make_format_1(root: &Path, records: &Records, keep_redb: bool) {
        let layout = Layout::new(root);
        // As format 1 created them: 64 KiB segments, not sled's default.
        let db = sled::Config::new().path(layout.legacy_meta()).segment_size(64 * 1024).open().unwrap();
        for (k, v) in records {
            let v = if k.as_slice() == [TAG_SUPER] {
                // Format 1 stores name format 1 in their superblock too.
                Superblock { format: 1, ..Superblock::decode(v).unwrap() }.encode()
            } else {
                v.clone()
            };
            db.insert(k, v).unwrap();
        }
        let max_ino = max_ino(records);
        while Some(db.generate_id().unwrap() + 2) <= max_ino {}
        db.flush().unwrap();
        drop(db);
        if !keep_redb {
            std::fs::remove_file(layout.meta()).unwrap();
        }
        std::fs::write(layout.format(), "s2sfs-store 1\n").unwrap();
    }

    fn check_migrated(root: &Path, want: &Records) {
        let store = open(root);
        assert_eq!(&records(&store), want, "the records changed in the migration");
        assert_eq!(std::fs::read_to_string(root.join("format")).unwrap(), "s2sfs-store 2\n");
        assert!(!root.join("meta").exists(), "the sled directory was left behind");
        assert!(!root.join("meta.redb.tmp").exists());
        assert!(Some(store.new_ino().unwrap()) > max_ino(want), "an inode number would be reused");
        let report = fsck(&store, false);
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
    }

    #[test]
    fn a_format_1_store_migrates_whole_and_once() {
        let fx = fixture();
        let root = fx.dir.path();
        let want = records(&open(root));
        make_format_1(root, &want, false);
        // A copy that a crash cut short is started over.
        std::fs::write(root.join("meta.redb.tmp"), b"half a copy").unwrap();
        check_migrated(root, &want);
        // Opened again: nothing left to migrate.
        check_migrated(root, &want);
    }

    #[test]
    fn a_migration_that_crashed_after_its_rename_is_finished() {
        let fx = fixture();
        let root = fx.dir.path();
        let want = records(&open(root));
        // The new file is in place, the format file still says 1, sled is still there.
        make_format_1(root, &want, true);
        check_migrated(root, &want);
    }
}
