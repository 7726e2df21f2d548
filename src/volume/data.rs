//! File contents: open handles, per-inode dirty blocks (reads see them), writes and
//! truncation. Reading is in `read.rs`, committing dirty blocks in `commit.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::dirty::DirtyBlock;
use super::inode;
use super::types::{Attr, Caller, FileKind};
use super::{Core, lock};
use crate::error::{Error, Result};
use crate::store::{Timestamp, now};

/// Largest file size accepted (2^60 bytes, far beyond any real volume, well inside i64).
const MAX_FILE_SIZE: u64 = 1 << 60;

pub(super) struct Handle {
    ino: u64,
    append: bool,
    /// Opened with O_NOATIME: its reads are no accesses.
    noatime: bool,
}

/// The in-memory side of a file that is open or has uncommitted changes.
pub(super) struct FileEntry {
    /// Open handles; changed only under the open-file table's lock.
    opens: AtomicU32,
    /// Mirrors `!state.dirty.is_empty()` so the table can be pruned without taking `state`.
    has_dirty: AtomicBool,
    pub(super) state: Mutex<FileState>,
}

pub(super) struct FileState {
    /// The file's size including uncommitted writes: authoritative while the entry lives.
    pub(super) size: u64,
    /// Uncommitted blocks by block number (bytes past `size` are zero).
    pub(super) dirty: BTreeMap<u64, DirtyBlock>,
    pub(super) dirty_since: Option<Instant>,
    /// The file shrank since the last commit: committed blocks past the end must go.
    pub(super) shrunk: bool,
    /// mtime and ctime of uncommitted writes.
    pub(super) times: Option<(Timestamp, Timestamp)>,
}

impl FileEntry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        lock(&self.state)
    }
    pub(super) fn set_dirty(&self, dirty: bool) {
        self.has_dirty.store(dirty, Ordering::SeqCst);
    }
    pub(super) fn is_dirty(&self) -> bool {
        self.has_dirty.load(Ordering::SeqCst)
    }
}

/// `Core::dirty_limit` of volumes writing t5: about 5 s of coding on two cores.
const LEARNED_DIRTY_LIMIT: usize = 2 << 20;

impl Core {
    pub(super) fn bs(&self) -> u64 {
        self.block_size as u64
    }

    pub(super) fn existing_entry(&self, ino: u64) -> Option<Arc<FileEntry>> {
        lock(&self.files).get(&ino).cloned()
    }

    /// The entry of a regular file, created from the store when absent; `open` counts a handle.
    ///
    /// Everything happens under the table's lock: an entry leaves the table only when no
    /// one holds it and all its changes are committed (`unpin`), so when the table has none
    /// the store holds the file's current state, and an entry someone is using is never
    /// replaced by a second one (two entries of one file lose each other's writes).
    pub(super) fn entry(&self, ino: u64, open: bool) -> Result<Arc<FileEntry>> {
        let mut files = lock(&self.files);
        let e = match files.get(&ino) {
            Some(e) => e.clone(),
            None => {
                let rec = self.store.inode(ino)?.ok_or(Error::NotFound)?;
                match inode::kind_of(rec.kind)? {
                    FileKind::RegularFile => {}
                    FileKind::Directory => return Err(Error::IsDir),
                    _ => return Err(Error::Invalid("not a regular file")),
                }
                let e = Arc::new(FileEntry {
                    opens: AtomicU32::new(0),
                    has_dirty: AtomicBool::new(false),
                    state: Mutex::new(FileState {
                        size: rec.size,
                        dirty: BTreeMap::new(),
                        dirty_since: None,
                        shrunk: false,
                        times: None,
                    }),
                });
                files.insert(ino, e.clone());
                e
            }
        };
        if open {
            e.opens.fetch_add(1, Ordering::SeqCst);
        }
        Ok(e)
    }

    /// Gives back a caller's hold on an entry, dropping the entry from the table once
    /// nothing needs it: no other holder, no handle, no dirty data.
    pub(super) fn unpin(&self, ino: u64, e: Arc<FileEntry>) {
        let mut files = lock(&self.files);
        drop(e);
        if let Some(e) = files.get(&ino) {
            // Holders clone under this lock, so the count cannot grow while it is held.
            let unused = Arc::strong_count(e) == 1;
            if unused && e.opens.load(Ordering::SeqCst) == 0 && !e.has_dirty.load(Ordering::SeqCst) {
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
            // Approximate while uncommitted: dirty blocks count as whole blocks.
            attr.blocks = attr.blocks.max(dirty_blocks.min(st.size.next_multiple_of(512)) / 512);
            if let Some((m, c)) = st.times {
                attr.mtime = m.into();
                attr.ctime = c.into();
            }
        }
    }

    /// Opens a file handle; `flags` are the open(2) flags (O_APPEND, O_TRUNC handled by the
    /// kernel). An open for reading is an access (atime): later reads of pages the kernel
    /// has cached never reach the volume.
    pub fn open_file(&self, ino: u64, flags: i32) -> Result<u64> {
        let fh = self.open_handle(ino, flags)?;
        if flags & libc::O_ACCMODE != libc::O_WRONLY && flags & libc::O_NOATIME == 0 {
            self.accessed(ino);
        }
        Ok(fh)
    }

    fn open_handle(&self, ino: u64, flags: i32) -> Result<u64> {
        self.entry(ino, true)?;
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        let handle = Handle { ino, append: flags & libc::O_APPEND != 0, noatime: flags & libc::O_NOATIME != 0 };
        lock(&self.handles).insert(fh, handle);
        Ok(fh)
    }

    /// Creates and opens a regular file in one step (open with O_CREAT); the new file has
    /// not been read, so its atime stays its creation time.
    pub fn create(
        &self,
        c: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(Attr, u64)> {
        let attr = self.mknod(c, parent, name, libc::S_IFREG | (mode & 0o7777), umask, 0)?;
        let fh = self.open_handle(attr.ino, flags)?;
        Ok((attr, fh))
    }

    /// A read request through handle `fh`: [`Core::read`], and an access (atime) unless the
    /// handle was opened with O_NOATIME.
    pub fn read_handle(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let data = self.read(ino, offset, size)?;
        let noatime = lock(&self.handles).get(&fh).is_some_and(|h| h.noatime);
        if !noatime {
            self.accessed(ino);
        }
        Ok(data)
    }

    /// Drops a file handle; the last release of an unlinked file frees it.
    pub fn release(&self, ino: u64, fh: u64) -> Result<()> {
        lock(&self.handles).remove(&fh);
        let Some(e) = self.existing_entry(ino) else { return Ok(()) };
        let last = {
            let _files = lock(&self.files);
            e.opens.fetch_sub(1, Ordering::SeqCst) == 1
        };
        // Decided and done while the entry is held; it is given back whatever happened.
        let freed = (|| -> Result<bool> {
            if !last {
                return Ok(false);
            }
            let unlinked = self.store.inode(ino)?.is_some_and(|r| r.nlink == 0);
            if unlinked {
                self.discard(&e);
            } else {
                self.commit_entry(ino, &e, false)?;
            }
            Ok(unlinked)
        })();
        self.unpin(ino, e);
        if freed? {
            self.free_if_unlinked(ino)?;
        }
        Ok(())
    }

    /// Throws away uncommitted data of a file that no longer has a name.
    fn discard(&self, e: &FileEntry) {
        let mut st = lock(&e.state);
        let freed: usize = st.dirty.values().map(DirtyBlock::cost).sum();
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

    /// Makes a partial dirty block whole, loading the committed contents under it.
    fn make_full(&self, ino: u64, block: u64, dirty: &mut DirtyBlock) -> Result<()> {
        if dirty.needs_base() {
            let before = dirty.cost();
            let base = self.load_block(ino, block)?;
            dirty.make_full(base.as_deref().map(Vec::as_slice), self.block_size as usize);
            self.dirty_bytes.fetch_add(dirty.cost(), Ordering::SeqCst);
            self.dirty_bytes.fetch_sub(before, Ordering::SeqCst);
        }
        Ok(())
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
            let end =
                offset.checked_add(data.len() as u64).filter(|&end| end <= MAX_FILE_SIZE).ok_or(Error::FileTooBig)?;
            if data.is_empty() {
                return Ok(0);
            }
            for block in offset / bs..=(end - 1) / bs {
                let block_start = block * bs;
                let from = offset.max(block_start);
                let to = end.min(block_start + bs);
                let piece = &data[(from - offset) as usize..(to - offset) as usize];
                let at = (from - block_start) as usize;
                let st = &mut *st;
                match st.dirty.get_mut(&block) {
                    Some(dirty) => {
                        let before = dirty.cost();
                        let grow = dirty.write(at, piece, bs as usize);
                        self.dirty_bytes.fetch_add(dirty.cost(), Ordering::SeqCst);
                        self.dirty_bytes.fetch_sub(before, Ordering::SeqCst);
                        if grow {
                            // Accounts for its own change in size.
                            self.make_full(ino, block, dirty)?;
                        }
                    }
                    None => {
                        let dirty = if piece.len() as u64 == bs {
                            DirtyBlock::Full(piece.to_vec())
                        } else {
                            DirtyBlock::Partial(vec![(at as u32, piece.to_vec())])
                        };
                        self.dirty_bytes.fetch_add(dirty.cost(), Ordering::SeqCst);
                        st.dirty.insert(block, dirty);
                    }
                }
            }
            st.size = st.size.max(end);
            let t = now();
            st.times = Some((t, t));
            st.dirty_since.get_or_insert_with(Instant::now);
            e.has_dirty.store(true, Ordering::SeqCst);
        }
        let limit = self.dirty_limit();
        if self.dirty_bytes.load(Ordering::SeqCst) > limit {
            self.commit_entry(ino, &e, false)?;
            if self.dirty_bytes.load(Ordering::SeqCst) > limit {
                self.commit_all()?;
            }
        }
        Ok(data.len() as u32)
    }

    /// Dirty data held before a writer commits it itself. A volume that writes with the
    /// learned coder codes a few hundred KB/s per core, so its writers commit smaller
    /// amounts: a write then waits seconds, not minutes, and never looks stuck.
    fn dirty_limit(&self) -> usize {
        if self.codecs().writer().model() == crate::codec::ModelId::NONE {
            self.opts.dirty_limit_bytes
        } else {
            self.opts.dirty_limit_bytes.min(LEARNED_DIRTY_LIMIT)
        }
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
                self.dirty_bytes.fetch_sub(dropped.values().map(DirtyBlock::cost).sum(), Ordering::SeqCst);
                let tail = (size % bs) as usize;
                if tail != 0 {
                    let block = size / bs;
                    let mut dirty = match st.dirty.remove(&block) {
                        Some(d) => d,
                        None => {
                            let d = DirtyBlock::Partial(Vec::new());
                            self.dirty_bytes.fetch_add(d.cost(), Ordering::SeqCst);
                            d
                        }
                    };
                    self.make_full(ino, block, &mut dirty)?;
                    dirty.zero_from(tail);
                    st.dirty.insert(block, dirty);
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
        self.unpin(ino, e);
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
}
