//! How the stored blocks divide among codecs and models: unique blocks, references,
//! logical and stored bytes per (codec, model), and what the whole store takes on disk.
//! For statistics and for judging what recompression gains.

use std::collections::BTreeMap;

use super::records::*;
use super::{Store, StoreError};

/// Block records read per page: each page is one short read of the metadata.
const PAGE: usize = 1024;

/// The blocks of one (codec, model).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameGroup {
    /// Block records (distinct contents).
    pub blocks: u64,
    /// Block-map entries using them (sum of refcounts).
    pub references: u64,
    /// Plaintext bytes as files see them: each block's length times its references.
    pub logical_bytes: u64,
    /// Plaintext bytes of the distinct blocks.
    pub unique_logical_bytes: u64,
    /// Bytes of their frames in packs.
    pub stored_bytes: u64,
}

impl FrameGroup {
    fn add(&mut self, other: &FrameGroup) {
        self.blocks += other.blocks;
        self.references += other.references;
        self.logical_bytes += other.logical_bytes;
        self.unique_logical_bytes += other.unique_logical_bytes;
        self.stored_bytes += other.stored_bytes;
    }
}

/// What `Store::block_totals` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockTotals {
    /// Per (codec id byte, first 8 bytes of the model id). Blocks whose frame could not be
    /// classified are under (`FrameInfo::UNKNOWN_CODEC`, zeros), with no logical bytes.
    pub groups: BTreeMap<(u8, [u8; 8]), FrameGroup>,
    /// Records without a frame description whose frame was read to classify it.
    pub frames_read: u64,
    /// Pack files.
    pub packs: u64,
    /// Length of all pack files (dead frames and punched holes included).
    pub pack_bytes: u64,
    /// Bytes the disk holds for the pack files (punched holes excluded).
    pub pack_disk_bytes: u64,
    /// Length of the metadata database file.
    pub meta_bytes: u64,
}

impl BlockTotals {
    /// All groups together.
    pub fn all(&self) -> FrameGroup {
        let mut sum = FrameGroup::default();
        for g in self.groups.values() {
            sum.add(g);
        }
        sum
    }

    /// What the whole store takes on disk: packs and metadata.
    pub fn disk_bytes(&self) -> u64 {
        self.pack_disk_bytes + self.meta_bytes
    }
}

impl Store {
    /// One pass over the block records, adding each to the group of its codec and model.
    /// A record without a frame description (written before records had one) has its
    /// frame read and described by `legacy` (the volume passes a frame-header parser: the
    /// store does not parse frames); one it cannot describe, or whose frame cannot be
    /// read, counts under codec `FrameInfo::UNKNOWN_CODEC`. The records are read a page at
    /// a time, so writers are not held up; a record changed during the pass is counted as
    /// it was when its page was read.
    pub fn block_totals(&self, legacy: &dyn Fn(&[u8]) -> Option<FrameInfo>) -> Result<BlockTotals, StoreError> {
        let mut totals = BlockTotals::default();
        let mut after: Option<BlockHash> = None;
        loop {
            let page = self.blocks_page(after.as_ref(), PAGE)?;
            for (hash, rec) in &page {
                let info = match rec.info {
                    Some(info) => Some(info),
                    None => {
                        totals.frames_read += 1;
                        // Read as any reader does, following the record as it is now.
                        self.read_frame(hash).ok().flatten().and_then(|frame| legacy(&frame))
                    }
                };
                let (key, plain_len) = match info {
                    Some(i) => ((i.codec, i.model), i.plain_len as u64),
                    None => ((FrameInfo::UNKNOWN_CODEC, [0; 8]), 0),
                };
                let g = totals.groups.entry(key).or_default();
                g.blocks += 1;
                g.references += rec.refcount;
                g.logical_bytes += plain_len * rec.refcount;
                g.unique_logical_bytes += plain_len;
                g.stored_bytes += rec.frame_len as u64;
            }
            if page.len() < PAGE {
                break;
            }
            after = page.last().map(|(h, _)| *h);
        }
        (totals.packs, totals.pack_bytes, totals.pack_disk_bytes) = self.packs.disk_usage()?;
        let meta = self.layout.meta();
        totals.meta_bytes = std::fs::metadata(&meta).map_err(|source| StoreError::Io { path: meta, source })?.len();
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreOptions;
    use super::super::packs::PACK_HEADER_LEN;
    use super::*;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, &StoreOptions { block_size: 4096, meta_cache_bytes: 1 << 20, allow_lost_changes: false })
            .unwrap()
    }

    /// A test "frame": its first byte is the codec, the rest pads it to its length.
    fn put(store: &Store, ino: u64, block: u64, hash: u8, codec: u8, frame_len: usize, plain_len: u32) {
        let mut frame = vec![hash; frame_len];
        frame[0] = codec;
        let info = FrameInfo { codec, model: [codec; 8], plain_len };
        let mut txn = store.begin();
        txn.set_block::<StoreError>(ino, block, Some([hash; 32]), || Ok((frame, info))).unwrap();
        txn.commit(false).unwrap();
    }

    #[test]
    fn totals_per_codec_and_model_with_old_records_classified_by_their_frames() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // zstd: one block used three times, one used once.
        put(&store, 10, 0, 1, 1, 100, 4096);
        put(&store, 10, 1, 1, 1, 100, 4096);
        put(&store, 11, 0, 1, 1, 100, 4096);
        put(&store, 11, 1, 2, 1, 300, 1000);
        // t5: one block.
        put(&store, 12, 0, 3, 2, 50, 4096);
        // Old records without a description: one the parser knows, one it does not.
        put(&store, 13, 0, 4, 1, 70, 2048);
        put(&store, 13, 1, 5, 9, 80, 2048);
        for h in [4u8, 5] {
            let rec = store.block_record(&[h; 32]).unwrap().unwrap();
            store.raw_put(&key_block(&[h; 32]), &BlockRecord { info: None, written: 0, ..rec }.encode());
        }
        // The parser reads the codec from the frame's first byte and knows codecs 0..=2.
        let legacy = |frame: &[u8]| {
            let codec = *frame.first()?;
            (codec <= 2).then_some(FrameInfo { codec, model: [codec; 8], plain_len: 2048 })
        };
        let t = store.block_totals(&legacy).unwrap();
        let zstd = FrameGroup {
            blocks: 3,
            references: 5,
            logical_bytes: 3 * 4096 + 1000 + 2048,
            unique_logical_bytes: 4096 + 1000 + 2048,
            stored_bytes: 470,
        };
        let t5 =
            FrameGroup { blocks: 1, references: 1, logical_bytes: 4096, unique_logical_bytes: 4096, stored_bytes: 50 };
        let unknown =
            FrameGroup { blocks: 1, references: 1, logical_bytes: 0, unique_logical_bytes: 0, stored_bytes: 80 };
        let want: BTreeMap<(u8, [u8; 8]), FrameGroup> =
            [((1, [1; 8]), zstd), ((2, [2; 8]), t5), ((FrameInfo::UNKNOWN_CODEC, [0; 8]), unknown)]
                .into_iter()
                .collect();
        assert_eq!(t.groups, want);
        assert_eq!(t.frames_read, 2);
        let all = t.all();
        assert_eq!((all.blocks, all.references, all.stored_bytes), (5, 7, 600));
        assert_eq!(all.stored_bytes, store.usage().0);
        assert_eq!((t.packs, t.pack_bytes), (1, PACK_HEADER_LEN + 600));
        assert!(t.pack_disk_bytes > 0);
        assert_eq!(t.meta_bytes, std::fs::metadata(dir.path().join("meta.redb")).unwrap().len());
        assert_eq!(t.disk_bytes(), t.pack_disk_bytes + t.meta_bytes);
    }

    #[test]
    fn totals_page_through_more_blocks_than_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let n = PAGE as u64 + 5;
        let mut txn = store.begin();
        for i in 0..n {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&i.to_be_bytes());
            let info = FrameInfo { codec: 1, model: [0; 8], plain_len: 10 };
            txn.set_block::<StoreError>(20, i, Some(hash), || Ok((vec![1; 4], info))).unwrap();
        }
        txn.commit(false).unwrap();
        let t = store.block_totals(&|_| None).unwrap();
        let g = t.groups[&(1, [0; 8])];
        assert_eq!((g.blocks, g.references, g.logical_bytes, g.stored_bytes), (n, n, 10 * n, 4 * n));
        assert_eq!(t.frames_read, 0);
    }
}
