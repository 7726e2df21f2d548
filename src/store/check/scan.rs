//! fsck's reading side: every record through streaming scans of the tree (block records
//! first, then inodes, then the rest), and every frame read from its pack and decoded.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, ControlFlow};

use rayon::prelude::*;

use super::{NO_PACK, Progress, Totals, Verify, VerifyError};
use crate::store::packs::{PACK_HEADER_LEN, Packs};
use crate::store::records::*;
use crate::store::txn::hex;
use crate::store::{Store, StoreError};

/// Frames are read in batches of about this many bytes, then decoded in parallel.
const VERIFY_BATCH_BYTES: u64 = 32 << 20;

/// The xattr where fsck records the unreadable byte ranges of a quarantined file.
pub(super) const BAD_RANGES_XATTR: &[u8] = b"user.s2sfs.bad_ranges";

/// Why a frame cannot be read back as its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fault {
    pub why: String,
    /// The frame lies inside its pack and reads, but does not decode: a quarantine record
    /// may keep pointing at it (reads fail, compaction can still copy it). Not so for a
    /// frame outside its pack or unreadable (compaction would fail on it) or one that
    /// decodes to other data (a read would return wrong bytes).
    pub keep_place: bool,
}

/// What the frame check found out about one frame.
#[derive(Debug, Clone, Default)]
pub(super) struct Verdict {
    pub fault: Option<Fault>,
    /// The frame needs what this volume does not have now (a learned model missing or
    /// damaged): not damage, so nothing is repaired. Says what is missing.
    pub unavailable: Option<String>,
    /// What a good frame's header says it is.
    pub header: Option<FrameInfo>,
}

pub(super) struct HashState {
    pub rec: BlockRecord,
    /// Block-map entries using it.
    pub refs: u64,
    /// Block-map entries using it that a repair keeps.
    pub keep_refs: u64,
    /// One inode using it, to name a file in messages.
    pub first_ref: Option<u64>,
    pub fault: Option<Fault>,
    /// See `Verdict::unavailable`.
    pub unavailable: Option<String>,
    /// See `Verdict::header`.
    pub header: Option<FrameInfo>,
}

impl HashState {
    fn verdict(&self) -> Verdict {
        Verdict { fault: self.fault.clone(), unavailable: self.unavailable.clone(), header: self.header }
    }

    fn set_verdict(&mut self, v: Verdict) {
        self.fault = v.fault;
        self.unavailable = v.unavailable;
        self.header = v.header;
    }
}

pub(super) struct BadBlock {
    pub block: u64,
    /// None when the block-map entry itself does not decode.
    pub hash: Option<BlockHash>,
    pub why: String,
}

pub(super) struct InodeState {
    /// None: the record does not decode or has an unknown file type.
    pub rec: Option<InodeRecord>,
    pub orphan_mark: bool,
    /// Block-map entries.
    pub mapped: u64,
    /// Block-map entries a repair removes: past the end, or of an inode that is not a file.
    pub drop_blocks: Vec<u64>,
    pub bad_blocks: Vec<BadBlock>,
    /// Blocks whose frame needs what this volume does not have now.
    pub unavailable_blocks: Vec<BadBlock>,
    /// Value of `user.s2sfs.bad_ranges`.
    pub bad_ranges: Option<Vec<u8>>,
}

/// The records of one name in one directory: the name record and the readdir record(s).
#[derive(Default)]
pub(super) struct NameGroup {
    pub n: Option<Result<EntryRecord, String>>,
    /// (sequence number in the key, record)
    pub d: Vec<(u64, EntryRecord)>,
}

#[derive(Default)]
pub(super) struct Scan {
    pub block_size: u64,
    pub totals: Totals,
    pub inodes: BTreeMap<u64, InodeState>,
    /// Inodes whose record does not decode, with the reason.
    pub bad_inodes: Vec<(u64, String)>,
    pub hashes: HashMap<BlockHash, HashState>,
    /// Block records that do not decode.
    pub bad_block_records: BTreeMap<BlockHash, String>,
    pub names: BTreeMap<(u64, Vec<u8>), NameGroup>,
    /// Readdir records that do not decode: (directory, sequence, why).
    pub bad_dirents: Vec<(u64, u64, String)>,
    /// Block-map entries of missing inodes, per inode.
    pub stray_blocks: BTreeMap<u64, u64>,
    /// Xattr names of missing inodes.
    pub stray_xattrs: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Orphan marks of missing inodes.
    pub stray_orphans: Vec<u64>,
    /// Keys with an unknown tag or the wrong length.
    pub bad_keys: Vec<(Vec<u8>, &'static str)>,
    /// Pack id → file length.
    pub packs: BTreeMap<u32, u64>,
    /// Kept blocks of files that point at a block record, for the frame check's verdict:
    /// (inode, block, block id).
    pub frame_uses: Vec<(u64, u64, BlockHash)>,
}

/// Frame check results of a pass, reused by the next one for records that did not move.
pub(super) type FrameCache = HashMap<BlockHash, ((u32, u64, u32), Verdict)>;

impl Scan {
    pub(super) fn frame_cache(&self) -> FrameCache {
        self.hashes.iter().map(|(h, s)| (*h, ((s.rec.pack, s.rec.offset, s.rec.frame_len), s.verdict()))).collect()
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(a)
}

/// Whether a repair keeps a block-map entry: it lies inside a regular file. Entries of
/// inodes whose record does not decode are not ours to judge.
pub(super) fn block_kept(rec: Option<&InodeRecord>, block: u64, block_size: u64) -> bool {
    match rec {
        None => true,
        Some(r) => r.kind == libc::S_IFREG && block.checked_mul(block_size).is_some_and(|start| start < r.size),
    }
}

pub(super) fn known_kind(kind: u32) -> bool {
    matches!(
        kind,
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFLNK | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK
    )
}

impl Store {
    pub(super) fn fsck_scan(
        &self,
        verify: Verify<'_>,
        cache: Option<&FrameCache>,
        pass: u32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Scan, StoreError> {
        let mut scan = Scan { block_size: self.superblock.block_size as u64, ..Scan::default() };
        {
            // On a mounted store, writers wait while the metadata is read, so it is read
            // as of one moment. Frames are verified afterwards: packs are append-only and
            // none is deleted while `verify_frames` holds the gc lock.
            let _writer = self.lock_writer();
            let (_, found) = Packs::open(&self.layout.packs())?;
            scan.packs = found.into_iter().collect();
            scan.totals.packs = scan.packs.len() as u64;
            scan.totals.pack_bytes = scan.packs.values().sum();
            self.scan_block_records(&mut scan)?;
            self.scan_metadata(&mut scan)?;
        }
        self.verify_frames(&mut scan, verify, cache, pass, progress)?;
        scan.attribute_frame_faults();
        Ok(scan)
    }

    /// Inodes and everything else but block records.
    fn scan_metadata(&self, scan: &mut Scan) -> Result<(), StoreError> {
        self.scan_inodes(scan)?;
        // Everything else, in key order: the keys below 'H' and above 'I' (the tags are
        // adjacent, so nothing lies between them).
        const _: () = assert!(TAG_BLOCK + 1 == TAG_INODE);
        let below: &[u8] = &[TAG_BLOCK];
        let above: &[u8] = &[TAG_INODE + 1];
        for range in [(Bound::Unbounded, Bound::Excluded(below)), (Bound::Included(above), Bound::Unbounded)] {
            self.meta.scan(range, |k, v| {
                scan.record(k, v);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(())
    }

    fn scan_block_records(&self, scan: &mut Scan) -> Result<(), StoreError> {
        self.meta.scan_prefix(&[TAG_BLOCK], |k, v| {
            let Ok(hash) = BlockHash::try_from(&k[1..]) else {
                scan.bad_keys.push((k.to_vec(), "block record key of the wrong length"));
                return Ok(ControlFlow::Continue(()));
            };
            match BlockRecord::decode(v) {
                Ok(rec) => {
                    scan.totals.frames += 1;
                    scan.totals.live_frame_bytes += rec.frame_len as u64;
                    let state = HashState {
                        rec,
                        refs: 0,
                        keep_refs: 0,
                        first_ref: None,
                        fault: None,
                        unavailable: None,
                        header: None,
                    };
                    scan.hashes.insert(hash, state);
                }
                Err(e) => {
                    scan.bad_block_records.insert(hash, e.to_string());
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Checks that every frame lies inside its pack, then reads the frames in pack order
    /// and decodes them in parallel, comparing each plaintext's blake3 with its block id.
    fn verify_frames(
        &self,
        scan: &mut Scan,
        verify: Verify<'_>,
        cache: Option<&FrameCache>,
        pass: u32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), StoreError> {
        let mut todo: Vec<(BlockHash, BlockRecord)> = Vec::new();
        for (hash, state) in scan.hashes.iter_mut() {
            let r = state.rec;
            let misplaced = match scan.packs.get(&r.pack) {
                None if r.pack == NO_PACK => Some("no frame (a block quarantined by fsck)".to_string()),
                None => Some(format!("its pack {:08}.pack is missing", r.pack)),
                Some(_) if r.offset < PACK_HEADER_LEN => {
                    Some(format!("offset {} lies in the header of pack {}", r.offset, r.pack))
                }
                Some(&size) if r.offset.checked_add(r.frame_len as u64).is_none_or(|end| end > size) => Some(format!(
                    "{} bytes at offset {} run past the end of pack {} ({size} bytes)",
                    r.frame_len, r.offset, r.pack
                )),
                Some(_) => None,
            };
            if let Some(why) = misplaced {
                state.fault = Some(Fault { why: format!("frame {}: {why}", hex(hash)), keep_place: false });
                continue;
            }
            if let Some((place, verdict)) = cache.and_then(|c| c.get(hash))
                && *place == (r.pack, r.offset, r.frame_len)
            {
                state.set_verdict(verdict.clone());
                continue;
            }
            todo.push((*hash, r));
        }
        todo.sort_unstable_by_key(|(_, r)| (r.pack, r.offset));
        let mut p = Progress {
            pass,
            frames_done: 0,
            frames_total: todo.len() as u64,
            bytes_done: 0,
            bytes_total: todo.iter().map(|(_, r)| r.frame_len as u64).sum(),
        };
        progress(p);
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut start = 0;
        while start < todo.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < todo.len() && (end == start || bytes + todo[end].1.frame_len as u64 <= VERIFY_BATCH_BYTES) {
                bytes += todo[end].1.frame_len as u64;
                end += 1;
            }
            let batch = &todo[start..end];
            let frames: Vec<Result<Vec<u8>, StoreError>> =
                batch.iter().map(|(_, r)| self.packs.read(r.pack, r.offset, r.frame_len)).collect();
            let verdicts: Vec<Verdict> = batch
                .par_iter()
                .zip(frames.into_par_iter())
                .map(|((hash, _), frame)| check_frame(hash, frame, verify))
                .collect();
            for ((hash, rec), verdict) in batch.iter().zip(verdicts) {
                let verdict = self.recheck_moved(hash, rec, verdict, verify);
                if let Some(state) = scan.hashes.get_mut(hash) {
                    state.set_verdict(verdict);
                }
            }
            scan.totals.frames_verified += batch.len() as u64;
            scan.totals.bytes_verified += bytes;
            p.frames_done += batch.len() as u64;
            p.bytes_done += bytes;
            progress(p);
            start = end;
        }
        Ok(())
    }

    /// A bad frame of a mounted store may be one whose record changed after the metadata
    /// was read: recompression replaced the frame, or the block was deleted, and its hole
    /// was punched since. Judged again by the record as it is now; a block that is gone is
    /// no longer damaged. The new frame's header is not compared with the description the
    /// check read, which was the old frame's. On a store fsck has to itself nothing changes
    /// and this only confirms the verdict.
    fn recheck_moved(&self, hash: &BlockHash, rec: &BlockRecord, verdict: Verdict, verify: Verify<'_>) -> Verdict {
        if verdict.fault.is_none() {
            return verdict;
        }
        let place = |r: &BlockRecord| (r.pack, r.offset, r.frame_len);
        match self.block_record(hash) {
            Ok(Some(now)) if place(&now) != place(rec) => {
                let again = check_frame(hash, self.packs.read(now.pack, now.offset, now.frame_len), verify);
                Verdict { header: None, ..again }
            }
            Ok(None) => Verdict::default(),
            _ => verdict,
        }
    }

    fn scan_inodes(&self, scan: &mut Scan) -> Result<(), StoreError> {
        self.meta.scan_prefix(&[TAG_INODE], |k, v| {
            if k.len() != 9 {
                scan.bad_keys.push((k.to_vec(), "inode key of the wrong length"));
                return Ok(ControlFlow::Continue(()));
            }
            let ino = be_u64(&k[1..]);
            scan.totals.inodes += 1;
            let rec = match InodeRecord::decode(v) {
                Ok(rec) if known_kind(rec.kind) => Some(rec),
                Ok(rec) => {
                    scan.bad_inodes.push((ino, format!("unknown file type {:#o}", rec.kind)));
                    None
                }
                Err(e) => {
                    scan.bad_inodes.push((ino, e.to_string()));
                    None
                }
            };
            match rec.as_ref().map(|r| r.kind) {
                Some(libc::S_IFDIR) => scan.totals.directories += 1,
                Some(libc::S_IFREG) => scan.totals.files += 1,
                Some(_) => scan.totals.other_inodes += 1,
                None => {}
            }
            let state = InodeState {
                rec,
                orphan_mark: false,
                mapped: 0,
                drop_blocks: Vec::new(),
                bad_blocks: Vec::new(),
                unavailable_blocks: Vec::new(),
                bad_ranges: None,
            };
            scan.inodes.insert(ino, state);
            Ok(ControlFlow::Continue(()))
        })
    }
}

fn check_frame(hash: &BlockHash, frame: Result<Vec<u8>, StoreError>, verify: Verify<'_>) -> Verdict {
    let fault = |why: String, keep_place: bool| Verdict {
        fault: Some(Fault { why: format!("frame {}: {why}", hex(hash)), keep_place }),
        ..Verdict::default()
    };
    let frame = match frame {
        Ok(f) => f,
        Err(e) => return fault(format!("cannot be read: {e}"), false),
    };
    match verify(&frame) {
        Err(VerifyError::Damaged(e)) => fault(format!("does not decode: {e}"), true),
        Err(VerifyError::Unavailable(what)) => {
            Verdict { unavailable: Some(format!("frame {}: {what}", hex(hash))), ..Verdict::default() }
        }
        Ok((plain, _)) if blake3::hash(&plain).as_bytes() != hash => {
            fault("decodes to data other than its block id names".into(), false)
        }
        Ok((_, header)) => Verdict { header: Some(header), ..Verdict::default() },
    }
}

impl Scan {
    /// One record of the tree other than block records and inodes.
    fn record(&mut self, k: &[u8], v: &[u8]) {
        let Some(&tag) = k.first() else {
            self.bad_keys.push((k.to_vec(), "empty key"));
            return;
        };
        match tag {
            TAG_SUPER | TAG_SEQ | TAG_IDS if k.len() == 1 => {}
            TAG_NAME if k.len() > 9 => {
                let group = self.names.entry((be_u64(&k[1..]), k[9..].to_vec())).or_default();
                group.n = Some(EntryRecord::decode(v).map_err(|e| e.to_string()));
            }
            TAG_DIRENT if k.len() == 17 => {
                let (parent, seq) = (be_u64(&k[1..]), be_u64(&k[9..]));
                match EntryRecord::decode(v) {
                    Ok(rec) if v.len() > 20 => {
                        self.names.entry((parent, v[20..].to_vec())).or_default().d.push((seq, rec));
                    }
                    Ok(_) => self.bad_dirents.push((parent, seq, "readdir record without a name".into())),
                    Err(e) => self.bad_dirents.push((parent, seq, e.to_string())),
                }
            }
            TAG_BLOCKMAP if k.len() == 17 => self.block_map_entry(be_u64(&k[1..]), be_u64(&k[9..]), v),
            TAG_XATTR if k.len() > 9 => {
                let ino = be_u64(&k[1..]);
                match self.inodes.get_mut(&ino) {
                    Some(state) => {
                        if &k[9..] == BAD_RANGES_XATTR {
                            state.bad_ranges = Some(v.to_vec());
                        }
                    }
                    None => self.stray_xattrs.entry(ino).or_default().push(k[9..].to_vec()),
                }
            }
            TAG_ORPHAN if k.len() == 9 => {
                let ino = be_u64(&k[1..]);
                match self.inodes.get_mut(&ino) {
                    Some(state) => state.orphan_mark = true,
                    None => self.stray_orphans.push(ino),
                }
            }
            TAG_SUPER | TAG_SEQ | TAG_IDS | TAG_NAME | TAG_DIRENT | TAG_BLOCKMAP | TAG_XATTR | TAG_ORPHAN
            | TAG_BLOCK | TAG_INODE => self.bad_keys.push((k.to_vec(), "key of the wrong length for its kind")),
            _ => self.bad_keys.push((k.to_vec(), "unknown kind of key")),
        }
    }

    /// Blocks whose frame failed the check become bad blocks of their files; blocks whose
    /// frame needs what is not there become unavailable blocks of their files.
    fn attribute_frame_faults(&mut self) {
        for (ino, block, hash) in std::mem::take(&mut self.frame_uses) {
            let Some(h) = self.hashes.get(&hash) else { continue };
            let Some(state) = self.inodes.get_mut(&ino) else { continue };
            if let Some(fault) = &h.fault {
                state.bad_blocks.push(BadBlock { block, hash: Some(hash), why: fault.why.clone() });
            } else if let Some(what) = &h.unavailable {
                state.unavailable_blocks.push(BadBlock { block, hash: Some(hash), why: what.clone() });
            }
        }
        for state in self.inodes.values_mut() {
            state.bad_blocks.sort_by_key(|b| b.block);
            state.unavailable_blocks.sort_by_key(|b| b.block);
        }
    }

    fn block_map_entry(&mut self, ino: u64, block: u64, v: &[u8]) {
        self.totals.blocks += 1;
        let hash = BlockHash::try_from(v).ok();
        let Some(state) = self.inodes.get_mut(&ino) else {
            if let Some(h) = hash.and_then(|h| self.hashes.get_mut(&h)) {
                h.refs += 1;
                h.first_ref.get_or_insert(ino);
            }
            *self.stray_blocks.entry(ino).or_default() += 1;
            return;
        };
        state.mapped += 1;
        let keep = block_kept(state.rec.as_ref(), block, self.block_size);
        if !keep {
            state.drop_blocks.push(block);
        }
        let why = match hash {
            None => Some(format!("block-map entry does not decode ({} bytes)", v.len())),
            Some(h) => match self.hashes.get_mut(&h) {
                Some(hs) => {
                    hs.refs += 1;
                    hs.keep_refs += keep as u64;
                    hs.first_ref.get_or_insert(ino);
                    if keep && state.rec.is_some() {
                        self.frame_uses.push((ino, block, h));
                    }
                    None
                }
                None if self.bad_block_records.contains_key(&h) => {
                    Some(format!("block record {} does not decode", hex(&h)))
                }
                None => Some(format!("block record {} missing", hex(&h))),
            },
        };
        if let (Some(why), true, true) = (why, keep, state.rec.is_some()) {
            state.bad_blocks.push(BadBlock { block, hash, why });
        }
    }
}
