//! The filesystem itself, without FUSE types: inodes, directories, links, open files,
//! dirty-block buffers, truncate and holes, xattrs. Driven by `fs` and by tests directly.

mod types;

use std::ffi::{OsStr, OsString};
use std::path::Path;

pub use types::*;

use crate::error::Result;

pub struct Volume {
    _private: (),
}

#[allow(unused_variables)]
impl Volume {
    /// Opens (creating when empty) the volume stored in `store_dir`; takes the store lock.
    pub fn open(store_dir: &Path, opts: VolumeOptions) -> Result<Volume> {
        todo!()
    }
    /// Commits all dirty data, compacts if worthwhile, and makes everything durable.
    pub fn shutdown(&self) -> Result<()> {
        todo!()
    }
    pub fn block_size(&self) -> u32 {
        todo!()
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        todo!()
    }
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        todo!()
    }
    pub fn setattr(&self, ino: u64, set: &SetAttr) -> Result<Attr> {
        todo!()
    }
    /// Creates a regular file, fifo, socket or device node (`mode` includes the type bits).
    pub fn mknod(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32, rdev: u32) -> Result<Attr> {
        todo!()
    }
    pub fn mkdir(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Result<Attr> {
        todo!()
    }
    pub fn symlink(&self, c: Caller, parent: u64, name: &OsStr, target: &Path) -> Result<Attr> {
        todo!()
    }
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        todo!()
    }
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Attr> {
        todo!()
    }
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        todo!()
    }
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        todo!()
    }
    pub fn rename(&self, parent: u64, name: &OsStr, new_parent: u64, new_name: &OsStr, flags: RenameFlags) -> Result<()> {
        todo!()
    }

    /// Opens a file handle; `flags` are the open(2) flags (O_APPEND, O_TRUNC handled by the kernel).
    pub fn open_file(&self, ino: u64, flags: i32) -> Result<u64> {
        todo!()
    }
    /// Creates and opens a regular file in one step (open with O_CREAT).
    pub fn create(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32, flags: i32) -> Result<(Attr, u64)> {
        todo!()
    }
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        todo!()
    }
    /// Writes at `offset` (at end of file for handles opened with O_APPEND); returns bytes written.
    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        todo!()
    }
    /// Commits the file's dirty data (close(2) on any descriptor).
    pub fn flush(&self, ino: u64) -> Result<()> {
        todo!()
    }
    /// Commits the file's dirty data and makes it durable before returning.
    pub fn fsync(&self, ino: u64, datasync: bool) -> Result<()> {
        todo!()
    }
    /// Drops a file handle; the last release of an unlinked file frees it.
    pub fn release(&self, ino: u64, fh: u64) -> Result<()> {
        todo!()
    }

    /// Entries after cookie `offset` (0 = from the start, including "." and ".."), at most `max`.
    pub fn readdir(&self, ino: u64, offset: i64, max: usize) -> Result<Vec<DirEntry>> {
        todo!()
    }
    pub fn statfs(&self) -> Result<StatFs> {
        todo!()
    }

    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: XattrFlags) -> Result<()> {
        todo!()
    }
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        todo!()
    }
    pub fn listxattr(&self, ino: u64) -> Result<Vec<OsString>> {
        todo!()
    }
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        todo!()
    }
}
