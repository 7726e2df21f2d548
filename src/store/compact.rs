//! Compaction: packs whose frames are mostly dead have their live frames copied into the
//! active pack, the records repointed in one durable batch, and only then are deleted.
//! A crash at any point leaves every record pointing at a complete frame.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use super::packs::PACK_HEADER_LEN;
use super::records::{BlockHash, BlockRecord, TAG_BLOCK};
use super::{Store, StoreError};

/// Live frames copied per durable commit; bounds the memory compaction holds and how long
/// writers wait for the store.
const GROUP_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    pub packs_rewritten: u64,
    pub bytes_copied: u64,
    pub bytes_reclaimed: u64,
}

impl Store {
    /// Fraction of all pack bytes that no record points at.
    pub fn dead_fraction(&self) -> f64 {
        let (live, total) = self.usage();
        if total == 0 { 0.0 } else { 1.0 - live as f64 / total as f64 }
    }

    /// Rewrites every pack whose dead fraction exceeds `min_dead`; returns what it did.
    pub fn compact(&self, min_dead: f64) -> Result<CompactStats, StoreError> {
        let victims: Vec<u32> = {
            let w = self.lock_writer();
            let mut v: Vec<u32> = w
                .sizes
                .iter()
                .filter(|&(&id, &size)| {
                    let live = w.live.get(&id).copied().unwrap_or(0);
                    let payload = size.saturating_sub(PACK_HEADER_LEN);
                    payload > 0 && (payload - live.min(payload)) as f64 > min_dead * payload as f64
                })
                .map(|(&id, _)| id)
                .collect();
            v.sort_unstable();
            v
        };
        let mut stats = CompactStats::default();
        if victims.is_empty() {
            return Ok(stats);
        }
        // New frames must not land in a pack being emptied.
        {
            let mut txn = self.begin();
            if victims.contains(&txn.writer().active.id) {
                txn.rotate()?;
            }
        }
        // Only metadata is gathered up front; frames are copied one pack at a time, so
        // compaction holds at most one pack's live frames in memory.
        let wanted: HashSet<u32> = victims.iter().copied().collect();
        let mut by_pack: HashMap<u32, Vec<(BlockHash, BlockRecord)>> = HashMap::new();
        self.meta.scan_prefix(&[TAG_BLOCK], |key, value| {
            let rec = BlockRecord::decode(value)?;
            if wanted.contains(&rec.pack) {
                let hash = key[1..].try_into().map_err(|_| StoreError::Damaged { what: "block record key".into() })?;
                by_pack.entry(rec.pack).or_default().push((hash, rec));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        // Packs are emptied in groups: one durable commit (two syncs) per group instead of
        // one per pack. Mostly dead packs have few live frames, so after many crashes (whose
        // frames were never punched) unmount no longer spends a sync per pack.
        let mut group: Vec<(u32, u64, u64)> = Vec::new();
        let mut txn = self.begin();
        let mut held = 0u64;
        for (i, &id) in victims.iter().enumerate() {
            let size = txn.writer().sizes.get(&id).copied().unwrap_or(0);
            let mut copied = 0u64;
            for (hash, _) in by_pack.remove(&id).unwrap_or_default() {
                // Writers ran since the scan: copy only what is still referenced, as it is now.
                let Some(rec) = txn.block_record(&hash)?.filter(|r| r.pack == id) else { continue };
                let frame = self.packs.read(rec.pack, rec.offset, rec.frame_len)?;
                copied += frame.len() as u64;
                txn.relocate(hash, rec, frame);
            }
            held += copied;
            group.push((id, size, copied));
            if held >= GROUP_BYTES || i + 1 == victims.len() {
                // Durable before the packs go: a record must never point into a deleted pack.
                txn.commit(true)?;
                let _gc = self.gc.write().unwrap_or_else(|p| p.into_inner());
                let mut w = self.lock_writer();
                for (id, size, copied) in group.drain(..) {
                    self.packs.remove(id)?;
                    w.sizes.remove(&id);
                    w.live.remove(&id);
                    stats.packs_rewritten += 1;
                    stats.bytes_copied += copied;
                    stats.bytes_reclaimed += size.saturating_sub(copied);
                }
                drop(w);
                drop(_gc);
                txn = self.begin();
                held = 0;
            }
        }
        drop(txn);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreOptions;
    use super::super::records::FrameInfo;
    use super::*;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, &StoreOptions { block_size: 4096, meta_cache_bytes: 1 << 20, allow_lost_changes: false })
            .unwrap()
    }

    /// A test frame's description: a raw frame of `len` bytes.
    fn info(len: usize) -> FrameInfo {
        FrameInfo { codec: 0, model: [0; 8], plain_len: len as u32 }
    }

    fn put(store: &Store, ino: u64, block: u64, byte: u8, len: usize) -> BlockHash {
        let hash = [byte; 32];
        let mut txn = store.begin();
        txn.set_block::<StoreError>(ino, block, Some(hash), || Ok((vec![byte; len], info(len)))).unwrap();
        txn.commit(false).unwrap();
        hash
    }

    #[test]
    fn refcounts_dedup_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        put(&store, 6, 0, 1, 1000); // same content: no new frame
        assert_eq!(store.usage(), (1000, PACK_HEADER_LEN + 1000));
        put(&store, 5, 1, 2, 3000);
        // Overwrite inode 6's block and drop inode 5: the 3000-byte frame dies.
        let mut txn = store.begin();
        txn.delete_inode(5).unwrap();
        txn.commit(false).unwrap();
        assert_eq!(store.usage().0, 1000);
        let stats = store.compact(0.5).unwrap();
        assert_eq!(stats.packs_rewritten, 1);
        assert_eq!(stats.bytes_copied, 1000);
        assert_eq!(store.read_frame(&a).unwrap().unwrap(), vec![1u8; 1000]);
        let (live, total) = store.usage();
        assert_eq!((live, total), (1000, PACK_HEADER_LEN + 1000));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.read_frame(&a).unwrap().unwrap(), vec![1u8; 1000]);
        assert_eq!(store.usage(), (1000, PACK_HEADER_LEN + 1000));
        assert_eq!(store.block(6, 0).unwrap(), Some(a));
        assert_eq!(store.block(5, 0).unwrap(), None);
    }

    /// Many mostly dead packs (what crashes leave: their frames were never punched) are
    /// emptied with one durable commit, not one per pack.
    #[test]
    fn mostly_dead_packs_are_emptied_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for p in 0..6u8 {
            put(&store, 100 + p as u64, 0, p + 1, 1000);
            let mut txn = store.begin();
            txn.delete_inode(100 + p as u64).unwrap();
            // A little live data in every pack, so each one has a frame to copy.
            txn.set_block::<StoreError>(200 + p as u64, 0, Some([p + 50; 32]), || Ok((vec![p; 10], info(10)))).unwrap();
            txn.commit(false).unwrap();
            store.begin().rotate().unwrap();
        }
        let seq = store.lock_writer().seq;
        let stats = store.compact(0.5).unwrap();
        assert_eq!(stats.packs_rewritten, 6);
        assert_eq!(store.lock_writer().seq, seq + 1, "one commit for all six packs");
        for p in 0..6u8 {
            assert_eq!(store.read_frame(&[p + 50; 32]).unwrap().unwrap(), vec![p; 10]);
        }
    }

    /// Frames whose last reference went give their disk space back once the deletion is
    /// durable and `punch_freed` runs (not before: a crash could bring the records back).
    #[test]
    fn freed_frames_are_punched_after_the_flush() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for b in 0..8u8 {
            put(&store, 5, b as u64, b + 1, 64 << 10);
        }
        store.flush().unwrap();
        let pack = store.pack_path(1);
        let allocated = || std::fs::metadata(&pack).unwrap().blocks() * 512;
        let before = allocated();
        let mut txn = store.begin();
        txn.delete_inode(5).unwrap();
        txn.commit(false).unwrap();
        store.punch_freed();
        assert_eq!(allocated(), before, "punched before the deletion was durable");
        store.flush().unwrap();
        store.punch_freed();
        assert!(allocated() + (480 << 10) <= before, "{} of {before} bytes still allocated", allocated());
        assert!(!store.has_freed());
    }

    #[test]
    fn a_lost_packs_id_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        drop(store);
        std::fs::remove_file(dir.path().join("packs/00000001.pack")).unwrap();
        let store = open(dir.path());
        put(&store, 6, 0, 2, 1000);
        assert!(store.read_frame(&a).is_err(), "the lost frame must not be found in a new pack");
        assert!(dir.path().join("packs/00000002.pack").exists());
    }

    /// A crash while a pack was being created leaves at most its temporary file, which the
    /// next open removes; a headerless pack (damage) is never appended to.
    #[test]
    fn no_frame_is_written_into_a_headerless_pack() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        put(&store, 5, 0, 1, 1000);
        drop(store);
        std::fs::write(dir.path().join("packs/00000002.pack"), b"").unwrap();
        std::fs::write(dir.path().join("packs/00000003.pack.new"), b"S2PK").unwrap();
        let store = open(dir.path());
        assert!(!dir.path().join("packs/00000003.pack.new").exists(), "leftover not removed");
        let b = put(&store, 6, 0, 2, 1000);
        let rec = store.block_record(&b).unwrap().unwrap();
        assert!(rec.pack > 2 && rec.offset >= PACK_HEADER_LEN, "frame placed at {rec:?}");
        assert_eq!(store.read_frame(&b).unwrap().unwrap(), vec![2u8; 1000]);
    }

    #[test]
    fn uncommitted_change_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut txn = store.begin();
        txn.set_block::<StoreError>(9, 0, Some([7; 32]), || Ok((vec![7; 100], info(100)))).unwrap();
        drop(txn);
        assert_eq!(store.block(9, 0).unwrap(), None);
        assert_eq!(store.read_frame(&[7; 32]).unwrap(), None);
    }
}
