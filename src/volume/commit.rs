//! Commit: dirty blocks become frames (hashed and compressed on all cores, outside the
//! store's writer lock) and the block index, refcounts, size and times change in one
//! atomic store step per chunk of blocks. On failure (a full disk) the uncommitted blocks
//! stay in memory, so a later commit can succeed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::data::{FileEntry, FileState};
use super::dirty::DirtyBlock;
use super::{Core, lock};
use crate::codec::{CodecError, CodecId, Codecs, FrameHeader, ModelId};
use crate::error::{Error, Result};
use crate::store::{BlockHash, FrameInfo, VerifyError};

/// Blocks committed per store step: bounds the memory a commit holds (whole plaintext
/// blocks plus their frames) whatever the dirty limit. Chunks go in file order and each
/// sets the size only as far as it has written, so a crash mid-commit leaves a prefix.
const CHUNK_BLOCKS: usize = 64;

/// A dirty block made ready outside the store's writer lock.
struct Prepared<'a> {
    block: u64,
    plain: Cow<'a, [u8]>,
    hash: Option<BlockHash>,
    frame: Option<Vec<u8>>,
}

impl Core {
    pub(super) fn commit_all(&self) -> Result<()> {
        let entries: Vec<(u64, Arc<FileEntry>)> = lock(&self.files).iter().map(|(&i, e)| (i, e.clone())).collect();
        for (ino, e) in entries {
            let result = self.commit_entry(ino, &e, false);
            self.unpin(ino, e);
            result?;
        }
        Ok(())
    }

    /// Commits files whose oldest uncommitted write is older than the volume's commit age.
    pub(super) fn commit_old(&self) -> Result<()> {
        let entries: Vec<(u64, Arc<FileEntry>)> =
            lock(&self.files).iter().filter(|(_, e)| e.is_dirty()).map(|(&i, e)| (i, e.clone())).collect();
        for (ino, e) in entries {
            let old = e.lock().dirty_since.is_some_and(|t| t.elapsed() >= self.opts.commit_age);
            let result = if old { self.commit_entry(ino, &e, false) } else { Ok(()) };
            self.unpin(ino, e);
            result?;
        }
        Ok(())
    }

    pub(super) fn commit_entry(&self, ino: u64, e: &FileEntry, durable: bool) -> Result<()> {
        let mut st = e.lock();
        self.commit_locked(ino, e, &mut st, durable)
    }

    pub(super) fn commit_locked(&self, ino: u64, e: &FileEntry, st: &mut FileState, durable: bool) -> Result<()> {
        if st.dirty.is_empty() && !st.shrunk && st.times.is_none() {
            return if durable { Ok(self.store.flush()?) } else { Ok(()) };
        }
        let bs = self.bs();
        // Blocks past the end (a racing truncate) are simply dropped.
        let beyond = st.dirty.split_off(&st.size.div_ceil(bs));
        self.dirty_bytes.fetch_sub(beyond.values().map(DirtyBlock::cost).sum(), Ordering::SeqCst);
        let blocks: Vec<u64> = st.dirty.keys().copied().collect();
        let chunks: Vec<&[u64]> = if blocks.is_empty() { vec![&[]] } else { blocks.chunks(CHUNK_BLOCKS).collect() };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            self.commit_chunk(ino, st, chunk, durable && i == last, i == last)?;
        }
        st.dirty_since = None;
        st.times = None;
        e.set_dirty(false);
        Ok(())
    }

    fn commit_chunk(&self, ino: u64, st: &mut FileState, chunk: &[u64], durable: bool, last: bool) -> Result<()> {
        let bs = self.bs();
        let size = st.size;
        let prepared: Vec<Prepared> = chunk
            .par_iter()
            .map(|&block| {
                let dirty = st.dirty.get(&block).ok_or(Error::Invalid("dirty block vanished"))?;
                let base = if dirty.needs_base() { self.load_block(ino, block)? } else { None };
                let whole = dirty.contents(base.as_deref().map(Vec::as_slice), bs as usize);
                let len = (size - block * bs).min(bs) as usize;
                let plain = match whole {
                    Cow::Borrowed(b) => Cow::Borrowed(&b[..len]),
                    Cow::Owned(mut v) => {
                        v.truncate(len);
                        Cow::Owned(v)
                    }
                };
                self.prepare(block, plain)
            })
            .collect::<Result<_>>()?;
        let mut txn = self.store.begin();
        let Some(mut rec) = txn.inode(ino)? else {
            // The inode is gone (freed while its data was in flight): nothing to keep.
            drop(txn);
            for block in chunk {
                if let Some(d) = st.dirty.remove(block) {
                    self.dirty_bytes.fetch_sub(d.cost(), Ordering::SeqCst);
                }
            }
            return Ok(());
        };
        let mut mapped = rec.stored_blocks as i64;
        if st.shrunk {
            mapped -= txn.drop_blocks_from(ino, size.div_ceil(bs))? as i64;
        }
        let mut written = Vec::with_capacity(prepared.len());
        for p in prepared {
            let Prepared { block, plain, hash, frame } = p;
            mapped += txn.set_block(ino, block, hash, || {
                let f = match frame {
                    Some(f) => f,
                    None => self.codecs().encode_block(&plain)?,
                };
                let info = frame_info(&f, self.codecs().writer().model())?;
                Ok::<_, Error>((f, info))
            })?;
            if let Some(h) = hash {
                // A merged partial block owns its bytes; a whole block's are in `st.dirty`.
                let merged = match plain {
                    Cow::Owned(v) => Some(v),
                    Cow::Borrowed(_) => None,
                };
                written.push((block, h, merged));
            }
        }
        rec.size = if last {
            size
        } else {
            let reached = chunk.last().map_or(0, |b| (b + 1) * bs).min(size);
            if st.shrunk { reached } else { rec.size.max(reached) }
        };
        rec.stored_blocks = mapped.max(0) as u64;
        if let Some((m, c)) = st.times {
            rec.mtime = m;
            rec.ctime = c;
        }
        txn.put_inode(ino, &rec);
        txn.commit(durable)?;
        st.shrunk = false;
        let mut freed: HashMap<u64, DirtyBlock> = HashMap::with_capacity(chunk.len());
        for &block in chunk {
            if let Some(d) = st.dirty.remove(&block) {
                self.dirty_bytes.fetch_sub(d.cost(), Ordering::SeqCst);
                freed.insert(block, d);
            }
        }
        // Written blocks go to the cache (their buffers move, no copy): reads that follow
        // writes (a build, a copy's verify) find them there.
        let mut cache = lock(&self.cache);
        for (block, hash, merged) in written {
            let plain = merged.or_else(|| freed.remove(&block).and_then(DirtyBlock::into_full));
            if let Some(mut plain) = plain {
                plain.truncate((size - block * bs).min(bs) as usize);
                cache.insert(hash, Arc::new(plain));
            }
        }
        Ok(())
    }

    fn prepare<'a>(&self, block: u64, plain: Cow<'a, [u8]>) -> Result<Prepared<'a>> {
        if plain.iter().all(|&b| b == 0) {
            return Ok(Prepared { block, plain, hash: None, frame: None });
        }
        let hash: BlockHash = *blake3::hash(&plain).as_bytes();
        let frame = if self.store.has_block(&hash)? { None } else { Some(self.codecs().encode_block(&plain)?) };
        Ok(Prepared { block, plain, hash: Some(hash), frame })
    }
}

/// What a frame is, for its block record (the store does not parse frames). `weighed` is
/// the learned model the chooser compared the block against (NONE for classic targets): a
/// zstd or raw frame that won against that model's frame records the model, so that
/// recompression to it knows the block was tried. A t5 frame records its own model.
pub(crate) fn frame_info(frame: &[u8], weighed: ModelId) -> std::result::Result<FrameInfo, CodecError> {
    let h = FrameHeader::parse(frame)?;
    let model = if h.codec == CodecId::T5 { h.model_id } else { weighed };
    Ok(FrameInfo { codec: h.codec as u8, model: model.tag(), plain_len: h.plain_len })
}

/// Decodes a frame for fsck, with what its header says it is. A frame whose learned model
/// this volume does not have is unavailable, not damaged: fsck leaves its blocks alone.
pub fn verify_frame(codecs: &Codecs, frame: &[u8]) -> std::result::Result<(Vec<u8>, FrameInfo), VerifyError> {
    let verify_error = |e: crate::codec::CodecError| match e {
        crate::codec::CodecError::UnknownModel(_) => VerifyError::Unavailable(e.to_string()),
        other => VerifyError::Damaged(other.to_string()),
    };
    let plain = codecs.decode_frame(frame).map_err(verify_error)?;
    let info = frame_info(frame, crate::codec::ModelId::NONE).map_err(verify_error)?;
    Ok((plain, info))
}
