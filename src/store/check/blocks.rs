//! fsck's block checks: block maps against block records against pack files.
//!
//! One frame serves every block with its content, and its record's refcount decides when
//! its space is given back: a count too low frees a frame another file still uses, one too
//! high keeps dead bytes forever. So refcounts are recounted from the block maps, and a
//! block that cannot be read is never pointed at a frame that might return other bytes:
//! it is quarantined, so it keeps failing while its file can still be deleted and its
//! content written afresh.

use super::NO_PACK;
use super::checker::{At, Checker, fix, full_hex, kind_name, lossy};
use super::scan::{BAD_RANGES_XATTR, BadBlock, HashState};
use crate::store::records::*;
use crate::store::txn::hex;

impl Checker<'_> {
    /// Block-map entries and xattrs of missing inodes, entries past the end or of inodes
    /// that hold no data, and each inode's count of mapped blocks.
    pub(super) fn blocks(&mut self) {
        for (ino, n) in std::mem::take(&mut self.scan.stray_blocks) {
            let detail = format!("{n} block-map entries of inode {ino}, which does not exist");
            self.out.problem("block_of_missing_inode", Some(ino), At::Nowhere, detail, fix("removed"));
            self.out.plan.delete_prefixes.push(key_u64(TAG_BLOCKMAP, ino));
        }
        for (ino, names) in std::mem::take(&mut self.scan.stray_xattrs) {
            let list: Vec<String> = names.iter().map(|n| lossy(n)).collect();
            let detail = format!("xattrs {} of inode {ino}, which does not exist", list.join(", "));
            self.out.problem("xattr_of_missing_inode", Some(ino), At::Nowhere, detail, fix("removed"));
            for n in names {
                self.out.plan.delete.insert(key_u64_bytes(TAG_XATTR, ino, &n));
            }
        }
        for (&ino, st) in &self.scan.inodes {
            let Some(rec) = &st.rec else { continue };
            if self.freed.contains(&ino) {
                continue;
            }
            if !st.drop_blocks.is_empty() {
                let (kind, detail) = if rec.kind == libc::S_IFREG {
                    let list = block_list(&st.drop_blocks);
                    (
                        "block_past_eof",
                        format!("blocks {list} are mapped at or past the end of the file ({} bytes)", rec.size),
                    )
                } else {
                    let n = st.drop_blocks.len();
                    ("block_of_non_file", format!("{n} block-map entries of a {}", kind_name(rec.kind)))
                };
                self.out.problem(kind, Some(ino), At::Ino(ino), detail, fix("removed"));
                for &b in &st.drop_blocks {
                    self.out.plan.delete.insert(key_u64_u64(TAG_BLOCKMAP, ino, b));
                }
            }
            let mapped = if rec.kind == libc::S_IFREG { st.mapped } else { 0 };
            if rec.stored_blocks != mapped {
                let detail = format!("records {} stored blocks, {mapped} are mapped", rec.stored_blocks);
                self.out.problem("stored_blocks", Some(ino), At::Ino(ino), detail, fix("set"));
            }
        }
    }

    /// Files with blocks that cannot be read are moved into /lost+found with their bad
    /// ranges recorded; those blocks are quarantined so they keep failing (never wrong
    /// bytes), while the file can still be deleted and its content written afresh.
    pub(super) fn unreadable(&mut self) {
        let files: Vec<u64> = self
            .scan
            .inodes
            .iter()
            .filter(|&(ino, s)| {
                !s.bad_blocks.is_empty()
                    && !self.freed.contains(ino)
                    && s.rec.as_ref().is_some_and(|r| r.kind == libc::S_IFREG)
            })
            .map(|(&ino, _)| ino)
            .collect();
        for ino in files {
            self.unreadable_file(ino);
        }
    }

    fn unreadable_file(&mut self, ino: u64) {
        let bs = self.scan.block_size;
        let Some(st) = self.scan.inodes.get_mut(&ino) else { return };
        let mut bad = std::mem::take(&mut st.bad_blocks);
        bad.sort_unstable_by_key(|b| b.block);
        let size = st.rec.as_ref().map_or(0, |r| r.size);
        let recorded = st.bad_ranges.clone();
        let blocks: Vec<u64> = bad.iter().map(|b| b.block).collect();
        let ranges = byte_ranges(&blocks, bs, size);
        let live = self.live_names(ino);
        let lf = self.existing_lost_found();
        let in_lost_found = lf.is_some_and(|lf| !live.is_empty() && live.iter().all(|&i| self.names[i].parent == lf));
        if in_lost_found && recorded.as_deref() == Some(ranges.as_bytes()) {
            let detail = format!("bytes {ranges} cannot be read (recorded in {})", lossy(BAD_RANGES_XATTR));
            self.out.note("quarantined_file", Some(ino), At::Ino(ino), detail, None);
            return;
        }
        let mut detail = format!("bytes {ranges} cannot be read: {}", causes(&bad));
        let placed = if in_lost_found { Ok(String::new()) } else { self.move_to_lost_found(ino, &live) };
        let what = match placed {
            Ok(moved) => {
                self.quarantine_blocks(ino, &bad);
                self.out.plan.xattrs.push((ino, BAD_RANGES_XATTR.to_vec(), ranges.into_bytes()));
                Some(format!("{moved}ranges recorded in {}", lossy(BAD_RANGES_XATTR)))
            }
            Err(why) => {
                detail.push_str(&format!("; cannot be moved into /lost+found: {why}"));
                None
            }
        };
        self.out.problem("unreadable_block", Some(ino), At::Ino(ino), detail, what);
    }

    /// Files with blocks whose frames need what the volume does not have now (a learned
    /// model): a problem, since they cannot be read, but not damage, so nothing is
    /// repaired: the blocks, their records and the files stay as they are.
    pub(super) fn unavailable(&mut self) {
        let bs = self.scan.block_size;
        let mut found = Vec::new();
        for (&ino, st) in &self.scan.inodes {
            let Some(rec) = st.rec.as_ref().filter(|r| r.kind == libc::S_IFREG) else { continue };
            if st.unavailable_blocks.is_empty() || self.freed.contains(&ino) {
                continue;
            }
            let blocks: Vec<u64> = st.unavailable_blocks.iter().map(|b| b.block).collect();
            let ranges = byte_ranges(&blocks, bs, rec.size);
            let detail = format!(
                "bytes {ranges} cannot be read until what their frames need is back ({}); the frames are not damaged and are left as they are",
                causes(&st.unavailable_blocks)
            );
            found.push((ino, detail));
        }
        for (ino, detail) in found {
            self.out.problem("unavailable_block", Some(ino), At::Ino(ino), detail, None);
        }
    }

    /// Maps each bad block to a quarantine id: a block id no content has, whose record
    /// reads as an error, so the block keeps failing while the content's own id is free for
    /// a good copy written later.
    fn quarantine_blocks(&mut self, ino: u64, bad: &[BadBlock]) {
        for b in bad {
            let mut h = blake3::Hasher::new_derive_key("s2sfs fsck quarantined block v1");
            match b.hash {
                Some(hash) => h.update(b"block").update(&hash),
                None => h.update(b"entry").update(&ino.to_be_bytes()).update(&b.block.to_be_bytes()),
            };
            let id: BlockHash = *h.finalize().as_bytes();
            self.out.plan.put.insert(key_u64_u64(TAG_BLOCKMAP, ino, b.block), id.to_vec());
            // A frame that reads but does not decode keeps its place (evidence for salvage);
            // any other bad frame is not pointed at at all.
            let mut rec = BlockRecord { pack: NO_PACK, offset: 0, frame_len: 0, refcount: 0, info: None, written: 0 };
            if let Some(hs) = b.hash.and_then(|h| self.scan.hashes.get_mut(&h)) {
                hs.keep_refs = hs.keep_refs.saturating_sub(1);
                if hs.fault.as_ref().is_some_and(|f| f.keep_place) {
                    rec = hs.rec;
                }
            }
            self.quarantine.entry(id).or_insert((0, rec)).0 += 1;
        }
    }

    /// A record's description of its frame agrees with the frame's header (checked where
    /// both exist: records written before descriptions have none, and a frame that does
    /// not decode says nothing reliable).
    pub(super) fn frame_infos(&mut self) {
        let mut hashes: Vec<(&BlockHash, &HashState)> = self.scan.hashes.iter().collect();
        hashes.sort_unstable_by_key(|(h, _)| **h);
        for (hash, hs) in hashes {
            let (Some(said), Some(header)) = (hs.rec.info, hs.header) else { continue };
            if said.describes(&header) {
                continue;
            }
            let detail = format!(
                "block record {} describes its frame as {}, its header says {}",
                hex(hash),
                describe(&said),
                describe(&header)
            );
            let at = hs.first_ref.map_or(At::Nowhere, At::Ino);
            self.out.problem("frame_info", hs.first_ref, at, detail, fix("rewritten from the frame"));
            self.fixed_info.insert(*hash, header);
        }
    }

    /// Refcounts equal the block-map entries using each record; unused records go.
    /// Rewritten records take the frame descriptions `frame_infos` corrected.
    pub(super) fn refcounts(&mut self) {
        let mut hashes: Vec<(&BlockHash, &HashState)> = self.scan.hashes.iter().collect();
        hashes.sort_unstable_by_key(|(h, _)| **h);
        for (hash, hs) in hashes {
            let r = hs.rec;
            if hs.refs == 0 {
                let detail = format!(
                    "block record {} ({}-byte frame in pack {}) is used by no block-map entry",
                    hex(hash),
                    r.frame_len,
                    r.pack
                );
                self.out.problem("orphaned_frame", None, At::Nowhere, detail, fix("removed"));
            } else if hs.refs != r.refcount {
                let detail = format!(
                    "block record {}: refcount {}, but {} block-map entries use it",
                    hex(hash),
                    r.refcount,
                    hs.refs
                );
                let at = hs.first_ref.map_or(At::Nowhere, At::Ino);
                self.out.problem("refcount", hs.first_ref, at, detail, fix("set"));
            }
            let want = hs.keep_refs + self.quarantine.remove(hash).map_or(0, |q| q.0);
            let info = self.fixed_info.get(hash).copied().or(r.info);
            if want == 0 {
                self.out.plan.delete.insert(key_block(hash));
            } else if want != r.refcount || info != r.info {
                self.out.plan.put.insert(key_block(hash), BlockRecord { refcount: want, info, ..r }.encode());
            }
        }
        for (id, (refs, rec)) in std::mem::take(&mut self.quarantine) {
            self.out.plan.put.insert(key_block(&id), BlockRecord { refcount: refs, ..rec }.encode());
        }
    }
}

/// Block numbers as runs: "3,7-9".
fn block_list(blocks: &[u64]) -> String {
    runs(blocks)
        .iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// Inclusive byte ranges of blocks (sorted) of a file of `size` bytes: "131072-262143,524288-655359".
pub(super) fn byte_ranges(blocks: &[u64], bs: u64, size: u64) -> String {
    runs(blocks)
        .iter()
        .map(|&(a, b)| {
            let start = a.saturating_mul(bs);
            let end = b.saturating_add(1).saturating_mul(bs).min(size).max(start + 1) - 1;
            format!("{start}-{end}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn runs(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in sorted {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(b) => *end = b,
            _ => out.push((b, b)),
        }
    }
    out
}

fn causes(bad: &[BadBlock]) -> String {
    let mut parts: Vec<String> = bad.iter().take(3).map(|b| format!("block {}: {}", b.block, b.why)).collect();
    if bad.len() > 3 {
        parts.push(format!("and {} more blocks", bad.len() - 3));
    }
    parts.join("; ")
}

/// A frame description for messages: "codec 2, model 0102030405060708, 131072 bytes".
fn describe(info: &FrameInfo) -> String {
    format!("codec {}, model {}, {} bytes", info.codec, full_hex(&info.model), info.plain_len)
}
