//! File contents: open handles, per-inode dirty-block buffers (reads see them), the read
//! path through the block cache, truncation, and the commit that turns dirty blocks into
//! frames and points the block index at them in one atomic store change.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use super::inode;
use super::types::{Attr, Caller, FileKind};
use super::{Core, lock};
use crate::error::{Error, Result};
use crate::store::{BlockHash, StoreError, Timestamp, now};

/// Largest file size accepted (2^60 bytes, far beyond any real volume, well inside i64).
const MAX_FILE_SIZE: u64 = 1 << 60;

pub(super) struct Handle {
    ino: u64,
    append: bool,
}

/// The in-memory side of a file that is open or has uncommitted changes.
pub(super) struct FileEntry {
    /// Open handles; changed only under the open-file table's lock.
    opens: AtomicU32,
    /// Mirrors `!state.dirty.is_empty()` so the table can be pruned without taking `state`.
    has_dirty: AtomicBool,
    state: Mutex<FileState>,
}

pub(super) struct FileState {
    /// The file's size including uncommitted writes: authoritative while the entry lives.
    size: u64,
    /// Whole-block buffers (bytes past `size` are zero), keyed by block number.
    dirty: BTreeMap<u64, Vec<u8>>,
    dirty_since: Option<Instant>,
    /// The file shrank since the last commit: committed blocks past the end must go.
    shrunk: bool,
    /// mtime and ctime of uncommitted writes.
    times: Option<(Timestamp, Timestamp)>,
}

/// A dirty block made ready outside the store's writer lock.
struct Prepared<'a> {
    block: u64,
    plain: &'a [u8],
    hash: Option<BlockHash>,
    frame: Option<Vec<u8>>,
}

impl Core {
    fn bs(&self) -> u64 {
        self.block_size as u64
    }

    fn existing_entry(&self, ino: u64) -> Option<Arc<FileEntry>> {
        lock(&self.files).get(&ino).cloned()
    }

    /// The entry of a regular file, created from the store when absent; `open` counts a handle.
    fn entry(&self, ino: u64, open: bool) -> Result<Arc<FileEntry>> {
        if let Some(e) = self.existing_entry(ino) {
            if open {
                e.opens.fetch_add(1, Ordering::SeqCst);
            }
            return Ok(e);
        }
        let rec = self.store.inode(ino)?.ok_or(Error::NotFound)?;
        match inode::kind_of(rec.kind)? {
            FileKind::RegularFile => {}
            FileKind::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Invalid("not a regular file")),
        }
        let mut files = lock(&self.files);
        let e = files
            .entry(ino)
            .or_insert_with(|| {
                Arc::new(FileEntry {
                    opens: AtomicU32::new(0),
                    has_dirty: AtomicBool::new(false),
                    state: Mutex::new(FileState { size: rec.size, dirty: BTreeMap::new(), dirty_since: None, shrunk: false, times: None }),
                })
            })
            .clone();
        if open {
            e.opens.fetch_add(1, Ordering::SeqCst);
        }
        Ok(e)
    }

    /// Drops the entry once nothing needs it: no handle and no dirty data.
    fn prune(&self, ino: u64) {
        let mut files = lock(&self.files);
        if let Some(e) = files.get(&ino) {
            if e.opens.load(Ordering::SeqCst) == 0 && !e.has_dirty.load(Ordering::SeqCst) {
                files.remove(&ino);
            }
        }
    }

    pub(super) fn is_open(&self, ino: u64) -> bool {
        self.existing_entry(ino).is_some_and(|e| e.opens.load(Ordering::SeqCst) > 0)
    }

    /// Size and pending times of a file with uncommitted changes, for `stat`.
    pub(super) fn pending_attr(&self, ino: u64, attr: &mut Attr) {
        if let Some(e) = self.existing_entry(ino) {
            let st = lock(&e.state);
            attr.size = st.size;
            let dirty_blocks = st.dirty.len() as u64 * self.bs();
            attr.blocks = attr.blocks.max(dirty_blocks.min(st.size.next_multiple_of(512)) / 512);
            if let Some((m, c)) = st.times {
                attr.mtime = m.into();
                attr.ctime = c.into();
            }
        }
    }

    /// Opens a file handle; `flags` are the open(2) flags (O_APPEND, O_TRUNC handled by the kernel).
    pub fn open_file(&self, ino: u64, flags: i32) -> Result<u64> {
        self.entry(ino, true)?;
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        lock(&self.handles).insert(fh, Handle { ino, append: flags & libc::O_APPEND != 0 });
        Ok(fh)
    }

    /// Creates and opens a regular file in one step (open with O_CREAT).
    pub fn create(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32, flags: i32) -> Result<(Attr, u64)> {
        let attr = self.mknod(c, parent, name, libc::S_IFREG | (mode & 0o7777), umask, 0)?;
        let fh = self.open_file(attr.ino, flags)?;
        Ok((attr, fh))
    }

    /// Drops a file handle; the last release of an unlinked file frees it.
    pub fn release(&self, ino: u64, fh: u64) -> Result<()> {
        lock(&self.handles).remove(&fh);
        let Some(e) = self.existing_entry(ino) else { return Ok(()) };
        let last = {
            let _files = lock(&self.files);
            e.opens.fetch_sub(1, Ordering::SeqCst) == 1
        };
        let result = if !last {
            Ok(())
        } else if self.store.inode(ino)?.is_some_and(|r| r.nlink == 0) {
            self.discard(&e);
            self.free_if_unlinked(ino)
        } else {
            self.commit_entry(ino, &e, false)
        };
        self.prune(ino);
        result
    }

    /// Throws away uncommitted data of a file that no longer has a name.
    fn discard(&self, e: &FileEntry) {
        let mut st = lock(&e.state);
        let freed = st.dirty.len() * self.block_size as usize;
        st.dirty.clear();
        st.dirty_since = None;
        e.has_dirty.store(false, Ordering::SeqCst);
        self.dirty_bytes.fetch_sub(freed, Ordering::SeqCst);
    }

    /// Frees an inode whose last name is gone, unless a handle still holds it open.
    pub(super) fn free_if_unlinked(&self, ino: u64) -> Result<()> {
        if self.is_open(ino) {
            return Ok(());
        }
        let mut txn = self.store.begin();
        if txn.inode(ino)?.is_some_and(|r| r.nlink == 0) {
            txn.delete_inode(ino)?;
            txn.commit(false)?;
        }
        Ok(())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let bs = self.bs();
        let mut fetch = Vec::new();
        let (start, out) = {
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
                    Some(buf) => copy_block_part(buf, block * bs, offset, &mut out),
                    None => fetch.push(block),
                }
            }
            (offset, out)
        };
        let mut out = out;
        // Committed blocks are decoded without holding the file's lock, so readers of
        // one file decode in parallel.
        for block in fetch {
            if let Some(data) = self.load_block(ino, block)? {
                copy_block_part(&data, block * bs, start, &mut out);
            }
        }
        Ok(out)
    }

    /// The committed contents of a block (shorter than a block at end of file), or None
    /// for a hole. A damaged frame is EIO, logged with inode and block.
    fn load_block(&self, ino: u64, block: u64) -> Result<Option<Arc<Vec<u8>>>> {
        let Some(hash) = self.store.block(ino, block)? else { return Ok(None) };
        if let Some(hit) = lock(&self.cache).get(&hash) {
            return Ok(Some(hit));
        }
        let frame = self.store.read_frame(&hash)?.ok_or_else(|| {
            log::error!("inode {ino} block {block}: block record missing");
            StoreError::Damaged { what: format!("block record of inode {ino} block {block}") }
        })?;
        let plain = self.codecs.decode_frame(&frame).map_err(|source| {
            log::error!("inode {ino} block {block}: {source}");
            Error::Corrupt { ino, block, source }
        })?;
        let plain = Arc::new(plain);
        lock(&self.cache).insert(hash, plain.clone());
        Ok(Some(plain))
    }

    /// A whole-block buffer holding the block's current contents (zeros past the data).
    fn block_buffer(&self, ino: u64, block: u64, file_size: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.block_size as usize];
        if block * self.bs() < file_size {
            if let Some(data) = self.load_block(ino, block)? {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
            }
        }
        Ok(buf)
    }

    /// Writes at `offset` (at end of file for handles opened with O_APPEND); returns bytes written.
    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let append = match lock(&self.handles).get(&fh) {
            Some(h) if h.ino == ino => h.append,
            _ => return Err(Error::BadHandle),
        };
        let e = self.entry(ino, false)?;
        let bs = self.bs();
        {
            let mut st = lock(&e.state);
            let offset = if append { st.size } else { offset };
            let end = offset.checked_add(data.len() as u64).filter(|&end| end <= MAX_FILE_SIZE).ok_or(Error::FileTooBig)?;
            if data.is_empty() {
                return Ok(0);
            }
            for block in offset / bs..=(end - 1) / bs {
                let block_start = block * bs;
                let from = offset.max(block_start);
                let to = end.min(block_start + bs);
                if !st.dirty.contains_key(&block) {
                    let whole = from == block_start && to == block_start + bs;
                    let buf = if whole { vec![0u8; bs as usize] } else { self.block_buffer(ino, block, st.size)? };
                    st.dirty.insert(block, buf);
                    self.dirty_bytes.fetch_add(bs as usize, Ordering::SeqCst);
                }
                let buf = st.dirty.get_mut(&block).ok_or(Error::Invalid("dirty block vanished"))?;
                buf[(from - block_start) as usize..(to - block_start) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            }
            st.size = st.size.max(end);
            let t = now();
            st.times = Some((t, t));
            st.dirty_since.get_or_insert_with(Instant::now);
            e.has_dirty.store(true, Ordering::SeqCst);
        }
        if self.dirty_bytes.load(Ordering::SeqCst) > self.opts.dirty_limit_bytes {
            self.commit_entry(ino, &e, false)?;
            if self.dirty_bytes.load(Ordering::SeqCst) > self.opts.dirty_limit_bytes {
                self.commit_all()?;
            }
        }
        Ok(data.len() as u32)
    }

    /// Sets the size of a regular file: a shrink drops data past the end, an extension
    /// reads as zeros (a hole). Committed at once, like any metadata change.
    pub(super) fn truncate(&self, ino: u64, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::FileTooBig);
        }
        let e = self.entry(ino, false)?;
        let bs = self.bs();
        let result = {
            let mut st = lock(&e.state);
            if size < st.size {
                let keep = size.div_ceil(bs);
                let dropped = st.dirty.split_off(&keep);
                self.dirty_bytes.fetch_sub(dropped.len() * bs as usize, Ordering::SeqCst);
                let tail = (size % bs) as usize;
                if tail != 0 {
                    let block = size / bs;
                    if !st.dirty.contains_key(&block) {
                        let buf = self.block_buffer(ino, block, st.size)?;
                        st.dirty.insert(block, buf);
                        self.dirty_bytes.fetch_add(bs as usize, Ordering::SeqCst);
                    }
                    if let Some(buf) = st.dirty.get_mut(&block) {
                        buf[tail..].fill(0);
                    }
                }
                st.shrunk = true;
            }
            if size != st.size {
                let t = now();
                st.times = Some((t, t));
            }
            st.size = size;
            self.commit_locked(ino, &e, &mut st, false)
        };
        self.prune(ino);
        result
    }

    /// Commits the file's dirty data (close(2) on any descriptor).
    pub fn flush(&self, ino: u64) -> Result<()> {
        match self.existing_entry(ino) {
            Some(e) => self.commit_entry(ino, &e, false),
            None => Ok(()),
        }
    }

    /// Commits the file's dirty data and makes it durable before returning.
    pub fn fsync(&self, ino: u64, _datasync: bool) -> Result<()> {
        match self.existing_entry(ino) {
            Some(e) => self.commit_entry(ino, &e, true),
            None => Ok(self.store.flush()?),
        }
    }

    pub(super) fn commit_all(&self) -> Result<()> {
        let entries: Vec<(u64, Arc<FileEntry>)> = lock(&self.files).iter().map(|(&i, e)| (i, e.clone())).collect();
        for (ino, e) in entries {
            self.commit_entry(ino, &e, false)?;
            self.prune(ino);
        }
        Ok(())
    }

    /// Commits files whose oldest uncommitted write is older than the volume's commit age.
    pub(super) fn commit_old(&self) -> Result<()> {
        let entries: Vec<(u64, Arc<FileEntry>)> = lock(&self.files)
            .iter()
            .filter(|(_, e)| e.has_dirty.load(Ordering::SeqCst))
            .map(|(&i, e)| (i, e.clone()))
            .collect();
        for (ino, e) in entries {
            let old = lock(&e.state).dirty_since.is_some_and(|t| t.elapsed() >= self.opts.commit_age);
            if old {
                self.commit_entry(ino, &e, false)?;
                self.prune(ino);
            }
        }
        Ok(())
    }

    fn commit_entry(&self, ino: u64, e: &FileEntry, durable: bool) -> Result<()> {
        let mut st = lock(&e.state);
        self.commit_locked(ino, e, &mut st, durable)
    }

    /// Turns the file's dirty blocks into frames (in parallel, outside the store's writer
    /// lock) and commits them with the file's size and times as one atomic change. On
    /// failure (a full disk) the dirty data stays in memory, so a later commit can succeed.
    fn commit_locked(&self, ino: u64, e: &FileEntry, st: &mut FileState, durable: bool) -> Result<()> {
        if st.dirty.is_empty() && !st.shrunk && st.times.is_none() {
            return if durable { Ok(self.store.flush()?) } else { Ok(()) };
        }
        let bs = self.bs();
        let size = st.size;
        let prepared: Vec<Prepared> = st
            .dirty
            .par_iter()
            .filter(|&(&block, _)| block * bs < size)
            .map(|(&block, buf)| self.prepare(block, &buf[..(size - block * bs).min(bs) as usize]))
            .collect::<Result<_>>()?;
        let mut txn = self.store.begin();
        let Some(mut rec) = txn.inode(ino)? else {
            drop(txn);
            drop(prepared);
            return self.finish_commit(e, st, Vec::new());
        };
        let mut mapped = rec.stored_blocks as i64;
        if st.shrunk {
            mapped -= txn.drop_blocks_from(ino, size.div_ceil(bs))? as i64;
        }
        let mut written = Vec::with_capacity(prepared.len());
        for p in prepared {
            let Prepared { block, plain, hash, frame } = p;
            mapped += txn.set_block(ino, block, hash, || match frame {
                Some(f) => Ok(f),
                None => self.codecs.encode_block(plain).map_err(Error::from),
            })?;
            if let Some(h) = hash {
                written.push((block, h));
            }
        }
        rec.size = size;
        rec.stored_blocks = mapped.max(0) as u64;
        if let Some((m, c)) = st.times {
            rec.mtime = m;
            rec.ctime = c;
        }
        txn.put_inode(ino, &rec);
        txn.commit(durable)?;
        self.finish_commit(e, st, written)
    }

    fn prepare<'a>(&self, block: u64, plain: &'a [u8]) -> Result<Prepared<'a>> {
        if plain.iter().all(|&b| b == 0) {
            return Ok(Prepared { block, plain, hash: None, frame: None });
        }
        let hash: BlockHash = *blake3::hash(plain).as_bytes();
        let frame = if self.store.has_block(&hash)? { None } else { Some(self.codecs.encode_block(plain)?) };
        Ok(Prepared { block, plain, hash: Some(hash), frame })
    }

    /// Clears the committed dirty state; the written blocks go to the cache, where reads
    /// that follow writes (a build, a copy's verify) find them.
    fn finish_commit(&self, e: &FileEntry, st: &mut FileState, written: Vec<(u64, BlockHash)>) -> Result<()> {
        let size = st.size;
        let bs = self.bs();
        let dirty = std::mem::take(&mut st.dirty);
        self.dirty_bytes.fetch_sub(dirty.len() * bs as usize, Ordering::SeqCst);
        let mut dirty = dirty;
        let mut cache = lock(&self.cache);
        for (block, hash) in written {
            if let Some(mut buf) = dirty.remove(&block) {
                buf.truncate((size - block * bs).min(bs) as usize);
                cache.insert(hash, Arc::new(buf));
            }
        }
        st.dirty_since = None;
        st.shrunk = false;
        st.times = None;
        e.has_dirty.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Copies the part of a block (starting at file offset `block_start`) that overlaps
/// `out` (starting at file offset `out_start`). Bytes the block does not have stay zero.
fn copy_block_part(block: &[u8], block_start: u64, out_start: u64, out: &mut [u8]) {
    let from = out_start.max(block_start);
    let to = (out_start + out.len() as u64).min(block_start + block.len() as u64);
    if from < to {
        out[(from - out_start) as usize..(to - out_start) as usize]
            .copy_from_slice(&block[(from - block_start) as usize..(to - block_start) as usize]);
    }
}
