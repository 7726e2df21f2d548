//! One atomic change to the store. Reads see the change's own writes; `commit` appends
//! new frames to the active pack and syncs them, then applies every metadata write as
//! one transaction of the metadata database. A crash before that transaction leaves
//! only unreferenced bytes in a pack.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::MutexGuard;

use super::packs::PACK_TARGET_SIZE;
use super::records::*;
use super::{Store, StoreError, Writer};

/// Placeholder pack id of a frame appended by this change, fixed up at commit.
const PENDING_PACK: u32 = u32::MAX;

pub struct Txn<'a> {
    store: &'a Store,
    writer: MutexGuard<'a, Writer>,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    new_frames: Vec<(BlockHash, Vec<u8>)>,
    /// The change adds names or attributes (new frames count too): refused on a full disk.
    adds: bool,
    /// Frames whose last reference this change drops, or that a recompressed frame
    /// replaces (their space is given back once the change is durable). Only these free
    /// frames: a record deleted by other means (fsck) may share its place with another.
    freed: Vec<(u32, u64, u32)>,
    /// How many of `new_frames` give space back rather than take it: compaction's copies
    /// of existing frames, and recompressed frames no longer than the ones they replace.
    exempt: usize,
}

impl<'a> Txn<'a> {
    pub(super) fn new(store: &'a Store, writer: MutexGuard<'a, Writer>) -> Txn<'a> {
        Txn {
            store,
            writer,
            overlay: BTreeMap::new(),
            new_frames: Vec::new(),
            adds: false,
            freed: Vec::new(),
            exempt: 0,
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(key),
        }
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert(key, Some(value));
    }
    fn del(&mut self, key: Vec<u8>) {
        self.overlay.insert(key, None);
    }

    /// Keys under `prefix` as they will be after this change: committed ones not deleted
    /// here, plus the ones written here.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        self.store.meta.scan_prefix(prefix, |k, _| {
            keys.insert(k.to_vec(), ());
            Ok(ControlFlow::Continue(()))
        })?;
        for (k, v) in self.overlay.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(_) => keys.insert(k.clone(), ()),
                None => keys.remove(k),
            };
        }
        Ok(keys.into_keys().collect())
    }

    pub fn inode(&self, ino: u64) -> Result<Option<InodeRecord>, StoreError> {
        self.get(&key_u64(TAG_INODE, ino))?.map(|v| InodeRecord::decode(&v)).transpose()
    }

    pub fn put_inode(&mut self, ino: u64, rec: &InodeRecord) {
        self.put(key_u64(TAG_INODE, ino), rec.encode());
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<EntryRecord>, StoreError> {
        self.get(&key_u64_bytes(TAG_NAME, parent, name))?.map(|v| EntryRecord::decode(&v)).transpose()
    }

    /// Adds `name` → `ino` to directory `parent`. Its readdir cookie comes from the name
    /// (records.rs, `name_cookie`): a name removed and added again, as a rename away and
    /// back does, returns to its place in the listing, so a readdir that renames the
    /// entries it sees still ends.
    pub fn add_entry(&mut self, parent: u64, name: &[u8], ino: u64, kind: u32) -> Result<(), StoreError> {
        self.adds = true;
        let mut seq = name_cookie(name);
        while self.get(&key_u64_u64(TAG_DIRENT, parent, seq))?.is_some() {
            seq = next_cookie(seq);
        }
        let rec = EntryRecord { ino, kind, seq };
        let mut dirent = rec.encode();
        dirent.extend_from_slice(name);
        self.put(key_u64_bytes(TAG_NAME, parent, name), rec.encode());
        self.put(key_u64_u64(TAG_DIRENT, parent, seq), dirent);
        Ok(())
    }

    pub fn remove_entry(&mut self, parent: u64, name: &[u8]) -> Result<Option<EntryRecord>, StoreError> {
        let Some(rec) = self.lookup(parent, name)? else { return Ok(None) };
        self.del(key_u64_bytes(TAG_NAME, parent, name));
        self.del(key_u64_u64(TAG_DIRENT, parent, rec.seq));
        Ok(Some(rec))
    }

    pub fn has_entries(&self, parent: u64) -> Result<bool, StoreError> {
        Ok(!self.keys_with_prefix(&key_u64(TAG_DIRENT, parent))?.is_empty())
    }

    /// Points block `block` of `ino` at the block with content `new` (None: a hole),
    /// adjusting refcounts. `frame` is called only when no block with that content exists;
    /// it returns the frame and what the frame is (the store does not parse frames), which
    /// the new record keeps. The block's time of writing becomes now, for a new record and
    /// for an existing one given this reference alike.
    /// Returns the change in the number of mapped blocks (-1, 0 or +1).
    pub fn set_block<E: From<StoreError>>(
        &mut self,
        ino: u64,
        block: u64,
        new: Option<BlockHash>,
        frame: impl FnOnce() -> Result<(Vec<u8>, FrameInfo), E>,
    ) -> Result<i64, E> {
        let map_key = key_u64_u64(TAG_BLOCKMAP, ino, block);
        let old = self.get(&map_key)?.map(|v| to_hash(&v, ino)).transpose()?;
        if old == new {
            return Ok(0);
        }
        if let Some(hash) = new {
            let rec_key = key_block(&hash);
            let written = unix_now();
            let rec = match self.get(&rec_key)? {
                Some(v) => {
                    let mut rec = BlockRecord::decode(&v)?;
                    rec.refcount += 1;
                    rec.written = written;
                    rec
                }
                None => {
                    let (bytes, info) = frame()?;
                    let frame_len = frame_len(&bytes)?;
                    self.new_frames.push((hash, bytes));
                    BlockRecord { pack: PENDING_PACK, offset: 0, frame_len, refcount: 1, info: Some(info), written }
                }
            };
            self.put(rec_key, rec.encode());
            self.put(map_key, hash.to_vec());
        } else {
            self.del(map_key);
        }
        if let Some(hash) = old {
            self.release_block(&hash)?;
        }
        Ok(new.is_some() as i64 - old.is_some() as i64)
    }

    fn release_block(&mut self, hash: &BlockHash) -> Result<(), StoreError> {
        let rec_key = key_block(hash);
        let Some(v) = self.get(&rec_key)? else {
            return Err(StoreError::Damaged { what: format!("block record {} missing", hex(hash)) });
        };
        let mut rec = BlockRecord::decode(&v)?;
        rec.refcount = rec.refcount.saturating_sub(1);
        if rec.refcount == 0 {
            self.del(rec_key);
            if rec.pack != PENDING_PACK {
                self.freed.push((rec.pack, rec.offset, rec.frame_len));
            }
        } else {
            self.put(rec_key, rec.encode());
        }
        Ok(())
    }

    /// The mapped (non-hole) blocks of `ino` numbered `first` or higher.
    pub fn blocks_from(&self, ino: u64, first: u64) -> Result<Vec<u64>, StoreError> {
        let keys = self.keys_with_prefix(&key_u64(TAG_BLOCKMAP, ino))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.get(9..17).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes))
            .filter(|&b| b >= first)
            .collect())
    }

    /// Unmaps blocks `first..` of `ino`; returns how many were mapped.
    pub fn drop_blocks_from(&mut self, ino: u64, first: u64) -> Result<u64, StoreError> {
        let blocks = self.blocks_from(ino, first)?;
        for &b in &blocks {
            self.set_block::<StoreError>(ino, b, None, || unreachable!("a hole needs no frame"))?;
        }
        Ok(blocks.len() as u64)
    }

    /// Removes an inode with everything it owns: blocks, xattrs, orphan mark.
    pub fn delete_inode(&mut self, ino: u64) -> Result<(), StoreError> {
        self.drop_blocks_from(ino, 0)?;
        for key in self.keys_with_prefix(&key_u64(TAG_XATTR, ino))? {
            self.del(key);
        }
        self.del(key_u64(TAG_INODE, ino));
        self.del(key_u64(TAG_ORPHAN, ino));
        Ok(())
    }

    pub fn set_orphan(&mut self, ino: u64, orphan: bool) {
        let key = key_u64(TAG_ORPHAN, ino);
        if orphan { self.put(key, Vec::new()) } else { self.del(key) }
    }

    pub fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&key_u64_bytes(TAG_XATTR, ino, name))
    }
    pub fn set_xattr(&mut self, ino: u64, name: &[u8], value: &[u8]) {
        self.adds = true;
        self.put(key_u64_bytes(TAG_XATTR, ino, name), value.to_vec());
    }
    pub fn remove_xattr(&mut self, ino: u64, name: &[u8]) {
        self.del(key_u64_bytes(TAG_XATTR, ino, name));
    }

    /// Applies the change atomically; with `durable`, returns only once it is on disk.
    pub fn commit(mut self, durable: bool) -> Result<(), StoreError> {
        if self.grows() && !self.store.has_room() {
            return Err(StoreError::NoSpace);
        }
        self.write_frames()?;
        let mut live_delta: HashMap<u32, i64> = HashMap::new();
        for (key, value) in &self.overlay {
            if key.first() == Some(&TAG_BLOCK) {
                // An undecodable old record (fsck removes those) counted no live bytes at open.
                let before = self.store.get(key)?.and_then(|v| BlockRecord::decode(&v).ok());
                let after = value.as_deref().map(BlockRecord::decode).transpose()?;
                let place = |r: &BlockRecord| (r.pack, r.offset);
                if before.map(|r| place(&r)) != after.map(|r| place(&r)) {
                    if let Some(r) = before {
                        *live_delta.entry(r.pack).or_default() -= r.frame_len as i64;
                    }
                    if let Some(r) = after {
                        *live_delta.entry(r.pack).or_default() += r.frame_len as i64;
                    }
                }
            }
        }
        let seq = self.writer.seq + 1;
        let seq_bytes = seq.to_le_bytes();
        let changes = self.overlay.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
        let tag_seq = [TAG_SEQ];
        self.store.meta.apply(changes.chain([(tag_seq.as_slice(), Some(seq_bytes.as_slice()))]))?;
        self.writer.seq = seq;
        for (pack, delta) in live_delta {
            let live = self.writer.live.entry(pack).or_default();
            *live = live.saturating_add_signed(delta);
        }
        self.store.freed.lock().unwrap_or_else(|p| p.into_inner()).append(&mut self.freed);
        drop(self.writer);
        if durable {
            self.store.flush()?;
        }
        Ok(())
    }

    /// Whether the change takes space (names, attributes, new frames), so that it is
    /// refused on a full disk. Compaction's copies and recompressed frames no longer than
    /// the ones they replace do not: they give space back.
    pub(super) fn grows(&self) -> bool {
        self.adds || self.new_frames.len() > self.exempt
    }

    /// Appends the frames of new blocks in one write + sync and fixes up their records.
    fn write_frames(&mut self) -> Result<(), StoreError> {
        if self.new_frames.is_empty() {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.new_frames);
        self.rotate_if_full()?;
        let mut offsets = Vec::with_capacity(frames.len());
        let mut rel = 0u64;
        let mut bodies = Vec::with_capacity(frames.len());
        for (hash, frame) in frames {
            offsets.push((hash, rel));
            rel += frame.len() as u64;
            bodies.push(frame);
        }
        let base = self.writer.active.append_durable(&bodies)?;
        drop(bodies);
        let pack = self.writer.active.id;
        let len = self.writer.active.len;
        self.writer.sizes.insert(pack, len);
        for (hash, rel) in offsets {
            let key = key_block(&hash);
            if let Some(Some(v)) = self.overlay.get(&key) {
                let mut rec = BlockRecord::decode(v)?;
                if rec.pack == PENDING_PACK {
                    rec.pack = pack;
                    rec.offset = base + rel;
                    self.overlay.insert(key, Some(rec.encode()));
                }
            }
        }
        Ok(())
    }

    pub(super) fn rotate_if_full(&mut self) -> Result<(), StoreError> {
        if self.writer.active.len >= PACK_TARGET_SIZE {
            self.rotate()?;
        }
        Ok(())
    }

    /// Starts a new active pack.
    pub(super) fn rotate(&mut self) -> Result<(), StoreError> {
        let w = &self.writer;
        let next = w.sizes.keys().chain(w.live.keys()).max().copied().unwrap_or(0) + 1;
        let fresh = self.store.packs.create(next)?;
        self.writer.sizes.insert(next, fresh.len);
        self.writer.active = fresh;
        Ok(())
    }

    pub(super) fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    pub(super) fn block_record(&self, hash: &BlockHash) -> Result<Option<BlockRecord>, StoreError> {
        self.get(&key_block(hash))?.map(|v| BlockRecord::decode(&v)).transpose()
    }

    /// Writes one record by its raw key: fsck's repairs (refcounts, quarantined blocks).
    pub(super) fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.put(key, value);
    }

    /// Deletes one record by its raw key: fsck's repairs.
    pub(super) fn del_raw(&mut self, key: Vec<u8>) {
        self.del(key);
    }

    /// Deletes every record under `prefix`, as this change sees them: fsck's repairs.
    pub(super) fn del_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        for key in self.keys_with_prefix(prefix)? {
            self.del(key);
        }
        Ok(())
    }

    /// Moves an existing block's frame: used by compaction. The record keeps everything
    /// but its place (refcount, description, time of writing).
    pub(super) fn relocate(&mut self, hash: BlockHash, rec: BlockRecord, frame: Vec<u8>) {
        self.new_frames.push((hash, frame));
        self.exempt += 1;
        let moved = BlockRecord { pack: PENDING_PACK, offset: 0, ..rec };
        self.put(key_block(&hash), moved.encode());
    }

    /// Gives an existing block (`rec`, its record as this change sees it) another frame of
    /// the same content: used by recompression. The record keeps its refcount and time of
    /// writing and takes the new frame's description; the old frame is freed like a
    /// released block's, once this change is durable. A new frame no longer than the old
    /// one is not refused on a full disk: the change gives space back.
    pub(super) fn replace_frame(
        &mut self,
        hash: BlockHash,
        rec: BlockRecord,
        frame: Vec<u8>,
        info: FrameInfo,
    ) -> Result<(), StoreError> {
        let frame_len = frame_len(&frame)?;
        if frame_len <= rec.frame_len {
            self.exempt += 1;
        }
        self.new_frames.push((hash, frame));
        if rec.pack != PENDING_PACK {
            self.freed.push((rec.pack, rec.offset, rec.frame_len));
        }
        let replaced = BlockRecord { pack: PENDING_PACK, offset: 0, frame_len, info: Some(info), ..rec };
        self.put(key_block(&hash), replaced.encode());
        Ok(())
    }
}

fn frame_len(frame: &[u8]) -> Result<u32, StoreError> {
    u32::try_from(frame.len()).map_err(|_| StoreError::Damaged { what: "frame larger than 4 GiB".into() })
}

/// Now in unix seconds, for a block's time of writing (0 before 1970: unknown).
fn unix_now() -> u64 {
    u64::try_from(super::now().secs).unwrap_or(0)
}

fn to_hash(v: &[u8], ino: u64) -> Result<BlockHash, StoreError> {
    v.try_into().map_err(|_| StoreError::Damaged { what: format!("block map of inode {ino}") })
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
