//! Open directories, and what a directory removed while open still reports.
//!
//! A directory removed by rmdir or by a rename over it leaves the store at once: it is
//! empty, so nothing else needs keeping, and a crash leaves nothing behind for the next
//! mount or fsck. While a handle holds it open, its last record stays here in memory with
//! nlink 0, so fstat keeps working (as on ext4, xfstests generic/035) and a listing gives
//! "." and ".." only. Creating in it fails with ENOENT: the store has no such directory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::inode::{self, is_dir};
use super::{Core, lock};
use crate::error::{Error, Result};
use crate::store::{InodeRecord, Txn};

/// One directory's open handles.
#[derive(Default)]
pub(super) struct OpenDir {
    opens: u32,
    /// Its last record, once removed while open.
    removed: Option<InodeRecord>,
}

/// Open directories by inode.
pub(super) type OpenDirs = HashMap<u64, OpenDir>;

impl Core {
    /// Opens a directory handle; `flags` are the open(2) flags.
    pub fn open_dir(&self, ino: u64, flags: i32) -> Result<u64> {
        {
            // The table is held from the lookup to the count, so a removal committed in
            // between (it commits under the table) finds the handle.
            let mut dirs = lock(&self.dirs);
            let rec = self.store.inode(ino)?.ok_or(Error::NotFound)?;
            if !is_dir(&rec) {
                return Err(Error::NotDir);
            }
            dirs.entry(ino).or_default().opens += 1;
        }
        if flags & libc::O_NOATIME == 0 {
            self.accessed(ino);
        }
        Ok(self.next_fh.fetch_add(1, Ordering::SeqCst))
    }

    /// Drops a directory handle; the last one forgets a removed directory.
    pub fn release_dir(&self, ino: u64, _fh: u64) -> Result<()> {
        let mut dirs = lock(&self.dirs);
        if let Some(d) = dirs.get_mut(&ino) {
            d.opens = d.opens.saturating_sub(1);
            if d.opens == 0 {
                dirs.remove(&ino);
            }
        }
        Ok(())
    }

    /// Commits a transaction that deleted directory `ino` (`rec`: its record before). A
    /// handle that holds it open keeps its record, with nlink 0.
    pub(super) fn commit_dir_removal(&self, txn: Txn<'_>, ino: u64, mut rec: InodeRecord) -> Result<()> {
        // Held across the commit: an inode is always either in the store or kept here.
        let mut dirs = lock(&self.dirs);
        txn.commit(false)?;
        if let Some(d) = dirs.get_mut(&ino) {
            rec.nlink = 0;
            inode::change(&mut rec);
            d.removed = Some(rec);
        }
        Ok(())
    }

    /// The record of an inode: from the store, or of a directory removed while open.
    pub(super) fn record(&self, ino: u64) -> Result<InodeRecord> {
        if let Some(rec) = self.store.inode(ino)? {
            return Ok(rec);
        }
        lock(&self.dirs).get(&ino).and_then(|d| d.removed.clone()).ok_or(Error::NotFound)
    }
}
