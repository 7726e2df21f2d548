//! The read path: dirty blocks first, then committed blocks through the block cache, or
//! decoded straight into the reply when a read covers them whole.
//!
//! Whole-block reads are what sequential readers and the kernel's read-ahead send (1 MiB
//! requests). They bypass the block cache: the kernel's page cache keeps what they return
//! (files are opened with FOPEN_KEEP_CACHE), so caching the block here too would cost an
//! allocation and a copy per block and let one scan evict the blocks that partial reads
//! and read-modify-write keep hot. Their frames are prefetched together, and a block
//! stored as-is is read from its pack straight into the reply.

use std::cell::RefCell;
use std::sync::Arc;

use rayon::prelude::*;

use super::dirty::DirtyBlock;
use super::{Core, lock};
use crate::codec::{BlockReadError, CodecError};
use crate::error::{Error, Result};
use crate::store::BlockHash;
use crate::store::StoreError;

#[path = "batch_read.rs"]
mod batch_read;

/// One block's share of a read: where its bytes go in the reply.
struct BlockRead<'a> {
    block: u64,
    /// Uncommitted pieces to lay over the committed contents.
    pieces: Option<DirtyBlock>,
    /// Committed content hash; None for a hole.
    hash: Option<BlockHash>,
    /// The read covers the block from its start to its end or to end of file.
    whole: bool,
    /// Offset of `dst` within the block.
    skip: usize,
    dst: &'a mut [u8],
}

/// How far ahead of a whole-block read its frames are prefetched: past the kernel's own
/// read-ahead of the mount (4 MiB, see fs/kernel_readahead.rs).
const PREFETCH_AHEAD: u64 = 8 << 20;

thread_local! {
    /// Frame buffer reused by every read on this thread: fresh block-sized allocations
    /// cost page faults on each read.
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Core {
    /// Up to `size` bytes at `offset`. Not an access: atime is `read_handle`'s business.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_on(ino, offset, size, batch_read::gpu())
    }

    /// `read`, the t5 frames of whole blocks decoded in batches on `batch` when given.
    fn read_on(&self, ino: u64, offset: u64, size: u32, batch: Option<&candle_core::Device>) -> Result<Vec<u8>> {
        let bs = self.bs();
        // Blocks to fetch from the store, with the uncommitted pieces to lay over them.
        let mut fetch: Vec<(u64, Option<DirtyBlock>)> = Vec::new();
        let (mut out, end, file_size) = {
            let e = self.existing_entry(ino);
            let guard = e.as_ref().map(|e| lock(&e.state));
            let file_size = match &guard {
                Some(st) => st.size,
                None => self.store.inode(ino)?.ok_or(Error::NotFound)?.size,
            };
            let end = offset.saturating_add(size as u64).min(file_size);
            if offset >= end {
                return Ok(Vec::new());
            }
            let mut out = vec![0u8; (end - offset) as usize];
            for block in offset / bs..=(end - 1) / bs {
                match guard.as_ref().and_then(|st| st.dirty.get(&block)) {
                    Some(DirtyBlock::Full(buf)) => copy_block_part(buf, block * bs, offset, &mut out),
                    Some(partial) => fetch.push((block, partial.clone_pieces())),
                    None => fetch.push((block, None)),
                }
            }
            (out, end, file_size)
        };
        let mut jobs = Vec::with_capacity(fetch.len());
        let mut rest: &mut [u8] = &mut out;
        let mut rest_start = offset;
        for (block, pieces) in fetch {
            let from = (block * bs).max(offset);
            let to = ((block + 1) * bs).min(end);
            let (_, tail) = std::mem::take(&mut rest).split_at_mut((from - rest_start) as usize);
            let (dst, tail) = tail.split_at_mut((to - from) as usize);
            rest = tail;
            rest_start = to;
            jobs.push(BlockRead {
                block,
                hash: self.store.block(ino, block)?,
                // From the block's start to its end, or to end of file.
                whole: from == block * bs && to == ((block + 1) * bs).min(file_size) && pieces.is_none(),
                skip: (from - block * bs) as usize,
                pieces,
                dst,
            });
        }
        if jobs.len() > 1 {
            self.prefetch(ino, &jobs)?;
            if let Some(device) = batch {
                jobs = self.read_batched(ino, jobs, device)?;
            }
        }
        // Committed blocks are decoded without holding the file's lock, and a read that
        // spans several blocks decodes them on all cores.
        jobs.into_par_iter().try_for_each(|job| self.read_block(ino, job))?;
        Ok(out)
    }

    /// Starts the disk reads for a multi-block read's frames, and for as many blocks
    /// `PREFETCH_AHEAD` further on when the read takes whole blocks (a sequential reader,
    /// or the kernel's read-ahead): the next requests then find their frames in memory
    /// instead of each block's decode waiting for the disk.
    fn prefetch(&self, ino: u64, jobs: &[BlockRead<'_>]) -> Result<()> {
        let Some(last) = jobs.last() else { return Ok(()) };
        let sequential = jobs.iter().all(|j| j.whole);
        let ahead = PREFETCH_AHEAD / self.bs();
        // A sequential reader's current blocks were prefetched by its earlier reads: they
        // lie within `ahead` blocks before the frontier (a reader that jumped elsewhere in
        // the file starts over).
        let (p_ino, p_end) = *lock(&self.prefetched);
        let covered = sequential && p_ino == ino && last.block < p_end && p_end <= last.block + 1 + ahead;
        let mut hashes: Vec<BlockHash> = Vec::new();
        if !covered {
            let cache = lock(&self.cache);
            hashes.extend(jobs.iter().filter_map(|j| j.hash.filter(|h| !cache.contains(h))));
        }
        if sequential {
            let from = if covered { p_end } else { last.block + 1 };
            let to = last.block + 1 + ahead;
            for block in from..to {
                hashes.extend(self.store.block(ino, block)?);
            }
            *lock(&self.prefetched) = (ino, to);
        }
        Ok(self.store.prefetch(&hashes)?)
    }

    fn read_block(&self, ino: u64, job: BlockRead<'_>) -> Result<()> {
        let Some(hash) = job.hash else {
            // A hole: zeros, under whatever was written since.
            if let Some(pieces) = job.pieces {
                copy_from(&pieces.contents(None, self.block_size as usize), job.skip, job.dst);
            }
            return Ok(());
        };
        if job.whole {
            let hit = lock(&self.cache).get(&hash);
            return match hit {
                Some(data) => {
                    copy_from(&data, 0, job.dst);
                    Ok(())
                }
                None => self.decode_into(ino, job.block, &hash, job.dst),
            };
        }
        let base = self.load_hash(ino, job.block, &hash)?;
        match job.pieces {
            Some(pieces) => {
                let merged = pieces.contents(Some(&base), self.block_size as usize);
                copy_from(&merged, job.skip, job.dst);
            }
            None => copy_from(&base, job.skip, job.dst),
        }
        Ok(())
    }

    /// The committed contents of a block (shorter than a block at end of file), or None
    /// for a hole. A damaged frame is EIO, logged with inode and block.
    pub(super) fn load_block(&self, ino: u64, block: u64) -> Result<Option<Arc<Vec<u8>>>> {
        match self.store.block(ino, block)? {
            Some(hash) => self.load_hash(ino, block, &hash).map(Some),
            None => Ok(None),
        }
    }

    /// A committed block through the cache.
    fn load_hash(&self, ino: u64, block: u64, hash: &BlockHash) -> Result<Arc<Vec<u8>>> {
        if let Some(hit) = lock(&self.cache).get(hash) {
            return Ok(hit);
        }
        let frame = self.store.read_frame(hash)?.ok_or_else(|| missing_record(ino, block))?;
        let plain = self.codecs().decode_frame(&frame).map_err(|e| corrupt(ino, block, e))?;
        let plain = Arc::new(plain);
        lock(&self.cache).insert(*hash, plain.clone());
        Ok(plain)
    }

    /// Decodes a committed block into `dst`, which starts at the block's start and ends
    /// at its end or at end of file; bytes the block does not have are zero.
    fn decode_into(&self, ino: u64, block: u64, hash: &BlockHash, dst: &mut [u8]) -> Result<()> {
        FRAME.with_borrow_mut(|frame| {
            let read =
                |split: usize, head: &mut Vec<u8>, tail: &mut [u8]| self.store.read_frame_into(hash, split, head, tail);
            match self.codecs().read_block_into(frame, dst, read) {
                Ok(true) => Ok(()),
                Ok(false) => Err(missing_record(ino, block)),
                Err(BlockReadError::Read(e)) => Err(e.into()),
                Err(BlockReadError::Decode(e)) => Err(corrupt(ino, block, e)),
            }
        })
    }

    /// Decodes a block's whole frame into `dst`, as `decode_into` does.
    pub(super) fn decode_frame_to(&self, ino: u64, block: u64, frame: &[u8], dst: &mut [u8]) -> Result<()> {
        self.codecs().decode_frame_to_block(frame, dst).map_err(|e| corrupt(ino, block, e))
    }
}

fn missing_record(ino: u64, block: u64) -> Error {
    log::error!("inode {ino} block {block}: block record missing");
    StoreError::Damaged { what: format!("block record of inode {ino} block {block}") }.into()
}

fn corrupt(ino: u64, block: u64, source: CodecError) -> Error {
    match &source {
        // One line per model, not one per block: a missing model makes every block that
        // needs it unreadable, and the rest of the volume works.
        CodecError::UnknownModel(id) => {
            static REPORTED: std::sync::Mutex<Vec<crate::codec::ModelId>> = std::sync::Mutex::new(Vec::new());
            let mut reported = lock(&REPORTED);
            if !reported.contains(id) {
                reported.push(*id);
                log::error!(
                    "model {} is missing or damaged in this store's models: blocks that need it read as EIO (first: inode {ino} block {block}); `s2sfs models` and `s2sfs fsck` list them",
                    id.hex()
                );
            }
        }
        _ => log::error!("inode {ino} block {block}: {source}"),
    }
    Error::Corrupt { ino, block, source }
}

/// Copies `block[skip..]` into `dst`, as far as both go. Bytes the block does not have
/// stay as they are (zero).
fn copy_from(block: &[u8], skip: usize, dst: &mut [u8]) {
    let src = block.get(skip..).unwrap_or(&[]);
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
}

/// Copies the part of a block (starting at file offset `block_start`) that overlaps
/// `out` (starting at file offset `out_start`). Bytes the block does not have stay zero.
fn copy_block_part(block: &[u8], block_start: u64, out_start: u64, out: &mut [u8]) {
    let at = block_start.saturating_sub(out_start) as usize;
    if let Some(dst) = out.get_mut(at..) {
        copy_from(block, out_start.saturating_sub(block_start) as usize, dst);
    }
}
