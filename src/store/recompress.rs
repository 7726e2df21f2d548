//! What background recompression needs from the store: paging through every block record
//! without holding anything for long, and swapping the frame behind a block atomically.
//!
//! A block's key is the hash of its plaintext, so every valid frame of that hash decodes to
//! the same bytes: a frame may be replaced by another (a better codec or model) without
//! touching the block map. The caller checks that the new frame decodes to the block; the
//! store never parses frames.

use std::ops::{Bound, ControlFlow};

use super::records::*;
use super::{Store, StoreError};

impl Store {
    /// The block records after `after` (from the first when None), in key order, at most
    /// `limit` of them: a background scanner pages through all blocks, each page one short
    /// read of the metadata, so it holds no lock or snapshot between pages. Records that do
    /// not decode are skipped (fsck reports them); fewer than `limit` means the end.
    pub fn blocks_page(
        &self,
        after: Option<&BlockHash>,
        limit: usize,
    ) -> Result<Vec<(BlockHash, BlockRecord)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let first = [TAG_BLOCK];
        let from = after.map(key_block);
        let end = [TAG_BLOCK + 1];
        let lower = match &from {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => Bound::Included(first.as_slice()),
        };
        self.meta.scan((lower, Bound::Excluded(end.as_slice())), |k, v| {
            if let (Ok(hash), Ok(rec)) = (BlockHash::try_from(&k[1..]), BlockRecord::decode(v)) {
                out.push((hash, rec));
            }
            Ok(if out.len() < limit { ControlFlow::Continue(()) } else { ControlFlow::Break(()) })
        })?;
        Ok(out)
    }

    /// Replaces the frame of block `hash` by `frame`, another frame of the same plaintext
    /// (recompression), described by `info`. The caller has checked that `frame` decodes
    /// to the block's plaintext.
    ///
    /// Only if the block still exists and its frame is still the one `expected` names
    /// (pack, offset, length: the frame the caller read and recompressed) is anything
    /// written: the new frame is appended to the active pack and synced, then one metadata
    /// change points the record at it, keeping its refcount and time of writing, setting
    /// its description, moving the live-byte accounting, and freeing the old frame as a
    /// released block's is (its hole is punched once the change is durable). Returns
    /// whether it did; false when the block was deleted, or its frame moved (compaction)
    /// or was replaced since. The check and the change are one step under the writer lock,
    /// so nothing is appended in vain.
    ///
    /// A new frame no longer than the old one is not refused on a full disk: it gives
    /// space back. A longer one is refused with `NoSpace` like any change that adds data.
    ///
    /// Not durable by itself, like any change: the volume's next flush makes it durable.
    /// That is safe because a crash at any moment leaves the record pointing at a
    /// complete, synced frame: the new frame is synced before the record names it, and the
    /// old one is punched only after the change that stops naming it is durable, so the
    /// record a crash rolls back to still finds its frame. Until then both frames take
    /// space; a lost change leaves the new one as dead bytes that compaction reclaims.
    pub fn replace_frame(
        &self,
        hash: &BlockHash,
        expected: &BlockRecord,
        frame: Vec<u8>,
        info: FrameInfo,
    ) -> Result<bool, StoreError> {
        let mut txn = self.begin();
        let Some(rec) = txn.block_record(hash)? else { return Ok(false) };
        if (rec.pack, rec.offset, rec.frame_len) != (expected.pack, expected.offset, expected.frame_len) {
            return Ok(false);
        }
        txn.replace_frame(*hash, rec, frame, info)?;
        txn.commit(false)?;
        Ok(true)
    }

    /// Sets the description of the frame `hash`'s record points at, if it still points
    /// at `expected`'s frame: recompression records that a block was weighed against a
    /// model and kept its frame, so no later pass (or mount) tries it again. Metadata only.
    pub fn describe_frame(
        &self,
        hash: &BlockHash,
        expected: &BlockRecord,
        info: FrameInfo,
    ) -> Result<bool, StoreError> {
        let mut txn = self.begin();
        let Some(mut rec) = txn.block_record(hash)? else { return Ok(false) };
        if (rec.pack, rec.offset, rec.frame_len) != (expected.pack, expected.offset, expected.frame_len) {
            return Ok(false);
        }
        rec.info = Some(info);
        txn.put_raw(key_block(hash), rec.encode());
        txn.commit(false)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::StoreOptions;
    use super::super::packs::PACK_HEADER_LEN;
    use super::*;

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreOptions { block_size: 4096, meta_cache_bytes: 1 << 20, allow_lost_changes: false })
            .unwrap()
    }

    fn info(codec: u8, plain_len: u32) -> FrameInfo {
        FrameInfo { codec, model: [codec; 8], plain_len }
    }

    /// Stores a block of `len` bytes of `byte` as inode `ino`'s block `block`, with a
    /// "frame" that is the plaintext itself.
    fn put(store: &Store, ino: u64, block: u64, byte: u8, len: usize) -> BlockHash {
        let hash = [byte; 32];
        let mut txn = store.begin();
        txn.set_block::<StoreError>(ino, block, Some(hash), || Ok((vec![byte; len], info(1, len as u32)))).unwrap();
        txn.commit(false).unwrap();
        hash
    }

    fn record(store: &Store, hash: &BlockHash) -> BlockRecord {
        store.block_record(hash).unwrap().unwrap()
    }

    /// Copies the store's files as a crash at this moment would leave them: what redb has
    /// made durable, and the pack bytes written so far.
    fn crash_copy(from: &Path, to: &Path) {
        for sub in ["", "packs"] {
            std::fs::create_dir_all(to.join(sub)).unwrap();
            for entry in std::fs::read_dir(from.join(sub)).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_file() {
                    std::fs::copy(entry.path(), to.join(sub).join(entry.file_name())).unwrap();
                }
            }
        }
    }

    #[test]
    fn new_blocks_are_described_and_dated_and_a_new_reference_dates_them_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let before = unix_secs();
        let a = put(&store, 5, 0, 1, 1000);
        let rec = record(&store, &a);
        assert_eq!(rec.info, Some(info(1, 1000)));
        assert!(rec.written >= before && rec.written <= unix_secs());
        // An old record (no description, no time) gets a time when a file shares it.
        let old = BlockRecord { info: None, written: 0, ..rec };
        store.raw_put(&key_block(&a), &old.encode());
        let mut txn = store.begin();
        txn.set_block::<StoreError>(6, 0, Some(a), || unreachable!("the block exists")).unwrap();
        txn.commit(false).unwrap();
        let shared = record(&store, &a);
        assert_eq!((shared.refcount, shared.info), (2, None));
        assert!(shared.written >= before);
        // Dropping a reference leaves the time alone.
        let mut txn = store.begin();
        txn.delete_inode(6).unwrap();
        txn.commit(false).unwrap();
        assert_eq!(record(&store, &a), BlockRecord { refcount: 1, ..shared });
    }

    fn unix_secs() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn pages_go_through_every_block_once_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut hashes: Vec<BlockHash> = (1..=7u8).map(|b| put(&store, 10 + b as u64, 0, b, 10 + b as usize)).collect();
        hashes.sort_unstable();
        // A damaged record is skipped, not the end of the scan.
        store.raw_put(&key_block(&[4; 32]), &[1, 2, 3]);
        hashes.retain(|h| *h != [4; 32]);
        assert!(store.blocks_page(None, 0).unwrap().is_empty());
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.blocks_page(after.as_ref(), 2).unwrap();
            assert!(page.len() <= 2);
            for (h, rec) in &page {
                assert_eq!(*rec, record(&store, h));
            }
            seen.extend(page.iter().map(|(h, _)| *h));
            if page.len() < 2 {
                break;
            }
            after = page.last().map(|(h, _)| *h);
        }
        assert_eq!(seen, hashes);
        // Other records (inodes, block maps) are not blocks.
        let mut txn = store.begin();
        txn.put_inode(3, &InodeRecord::new(libc::S_IFREG, 0o644, 0, 0, 1));
        txn.commit(false).unwrap();
        assert_eq!(store.blocks_page(Some(&hashes[hashes.len() - 1]), 10).unwrap(), vec![]);
    }

    #[test]
    fn a_replaced_frame_is_read_the_old_one_freed_and_accounting_follows() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        put(&store, 6, 0, 1, 1000);
        let b = put(&store, 7, 0, 2, 500);
        let old = record(&store, &a);
        assert_eq!(store.usage(), (1500, PACK_HEADER_LEN + 1500));
        let t5 = FrameInfo { codec: 2, model: [9; 8], plain_len: 1000 };
        assert!(store.replace_frame(&a, &old, vec![0xAB; 300], t5).unwrap());
        let new = record(&store, &a);
        assert_eq!(new, BlockRecord { pack: new.pack, offset: new.offset, frame_len: 300, info: Some(t5), ..old });
        assert_ne!((new.pack, new.offset), (old.pack, old.offset));
        assert_eq!(store.read_frame(&a).unwrap().unwrap(), vec![0xAB; 300]);
        assert_eq!(store.read_frame(&b).unwrap().unwrap(), vec![2; 500], "other blocks untouched");
        assert_eq!(store.block(5, 0).unwrap(), Some(a));
        assert_eq!(store.usage(), (800, PACK_HEADER_LEN + 1800));
        assert!(store.has_freed(), "the old frame waits for the change to be durable");
        // The old frame is gone for good once durable: its hole is punched.
        store.flush().unwrap();
        store.punch_freed();
        assert!(!store.has_freed());
        // Dropping the block frees the new frame, not the old one again.
        let mut txn = store.begin();
        txn.delete_inode(5).unwrap();
        txn.delete_inode(6).unwrap();
        txn.commit(false).unwrap();
        assert_eq!(store.usage().0, 500);
        // Compaction keeps the description and time.
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.usage(), (500, PACK_HEADER_LEN + 1800));
        let b_rec = record(&store, &b);
        store.compact(0.5).unwrap();
        let moved = record(&store, &b);
        assert_eq!(BlockRecord { pack: b_rec.pack, offset: b_rec.offset, ..moved }, b_rec);
        assert_eq!(store.read_frame(&b).unwrap().unwrap(), vec![2; 500]);
    }

    #[test]
    fn a_moved_or_deleted_block_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        let stale = record(&store, &a);
        // Replaced by someone else since it was read.
        assert!(store.replace_frame(&a, &stale, vec![3; 200], info(2, 1000)).unwrap());
        let usage = store.usage();
        let now = record(&store, &a);
        assert!(!store.replace_frame(&a, &stale, vec![4; 100], info(2, 1000)).unwrap());
        assert_eq!(record(&store, &a), now);
        assert_eq!(store.usage(), usage, "nothing appended");
        assert_eq!(store.read_frame(&a).unwrap().unwrap(), vec![3; 200]);
        // Moved by compaction.
        let b = put(&store, 6, 0, 2, 4000);
        let before_move = record(&store, &b);
        store.begin().rotate().unwrap();
        store.compact(0.0).unwrap();
        assert_ne!(record(&store, &b).offset, before_move.offset);
        assert!(!store.replace_frame(&b, &before_move, vec![5; 10], info(2, 4000)).unwrap());
        assert_eq!(store.read_frame(&b).unwrap().unwrap(), vec![2; 4000]);
        // Deleted.
        let current = record(&store, &a);
        let mut txn = store.begin();
        txn.delete_inode(5).unwrap();
        txn.commit(false).unwrap();
        assert!(!store.replace_frame(&a, &current, vec![6; 10], info(2, 1000)).unwrap());
        assert_eq!(store.read_frame(&a).unwrap(), None);
    }

    /// On a full disk (the free-space margin reached) only a replacement that is not
    /// longer goes through. Exercised through the transaction's accounting, since the test
    /// cannot fill the disk: a shrinking replacement counts as giving space back.
    #[test]
    fn a_shrinking_replacement_is_exempt_from_the_free_space_margin() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        let rec = record(&store, &a);
        let mut txn = store.begin();
        txn.replace_frame(a, rec, vec![1; 1000], info(2, 1000)).unwrap();
        assert!(!txn.grows(), "same length: gives space back");
        drop(txn);
        let mut txn = store.begin();
        txn.replace_frame(a, rec, vec![1; 1001], info(2, 1000)).unwrap();
        assert!(txn.grows(), "longer: takes space");
        drop(txn);
        assert_eq!(record(&store, &a), rec, "dropped changes change nothing");
    }

    /// A crash at any moment leaves the record pointing at a complete frame: before the
    /// flush the old record and its (unpunched) frame, after it the new ones.
    #[test]
    fn a_crash_before_or_after_the_flush_finds_a_whole_frame() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 1000);
        store.flush().unwrap();
        let old = record(&store, &a);
        let t5 = info(2, 1000);
        assert!(store.replace_frame(&a, &old, vec![7; 400], t5).unwrap());
        // Not durable yet, and the old frame is not punched by a punch that comes early.
        store.punch_freed();
        let before = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), before.path());
        store.flush().unwrap();
        store.punch_freed();
        let after = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), after.path());
        drop(store);
        for (copy, when) in [(before.path(), "before"), (after.path(), "after")] {
            let store = open(copy);
            let rec = record(&store, &a);
            let frame = store.read_frame(&a).unwrap().unwrap();
            match rec.info {
                Some(i) if i == t5 => assert_eq!(frame, vec![7; 400], "{when} the flush"),
                _ => {
                    assert_eq!(when, "before", "the flushed replacement was lost");
                    assert_eq!(rec, old);
                    assert_eq!(frame, vec![1; 1000]);
                }
            }
        }
    }

    /// A reader that looked a block up just before its frame was replaced, the change made
    /// durable and the old frame punched, reads the new frame, not the hole.
    #[test]
    fn a_reader_racing_a_replacement_and_its_punch_reads_the_new_frame() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = put(&store, 5, 0, 1, 64 << 10);
        store.flush().unwrap();
        let old = record(&store, &a);
        let mut reads = 0;
        let got = store
            .read_checked(&a, |rec| {
                reads += 1;
                if reads == 1 {
                    // Between the reader's lookup and its read.
                    assert!(store.replace_frame(&a, &old, vec![9; 100], info(2, 64 << 10)).unwrap());
                    store.flush().unwrap();
                    store.punch_freed();
                }
                store.packs.read(rec.pack, rec.offset, rec.frame_len)
            })
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![9; 100]);
        assert_eq!(reads, 2);
        // Without a punch in between, one read is enough.
        let mut reads = 0;
        store
            .read_checked(&a, |rec| {
                reads += 1;
                store.packs.read(rec.pack, rec.offset, rec.frame_len)
            })
            .unwrap();
        assert_eq!(reads, 1);
    }
}
