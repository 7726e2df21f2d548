//! Attributes: stat, setattr (mode, owner, size, times), user.* xattrs, statfs.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use super::Core;
use super::inode::{self, attr, ts};
use super::types::{Attr, FileKind, NAME_MAX, SetAttr, StatFs, TimeSet, XattrFlags};
use crate::error::{Error, Result};
use crate::store::now;

/// Only the user namespace is stored; the others (security, system, trusted) have
/// kernel meanings s2sfs does not implement.
const XATTR_NAMESPACE: &[u8] = b"user.";

impl Core {
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let rec = self.record(ino)?;
        let mut a = attr(ino, &rec, self.block_size)?;
        if a.kind == FileKind::RegularFile {
            self.pending_attr(ino, &mut a);
        }
        Ok(a)
    }

    pub fn setattr(&self, ino: u64, set: &SetAttr) -> Result<Attr> {
        let kind = inode::kind_of(self.store.inode(ino)?.ok_or(Error::NotFound)?.kind)?;
        if kind == FileKind::RegularFile {
            // Uncommitted writes carry their own mtime: commit them first so an explicit
            // time set here (touch -d, cp -p) is not overwritten later.
            self.flush(ino)?;
            if let Some(size) = set.size {
                self.truncate(ino, size)?;
            }
        } else if set.size.is_some() {
            return Err(if kind == FileKind::Directory {
                Error::IsDir
            } else {
                Error::Invalid("truncate of a special file")
            });
        }
        let mut txn = self.store.begin();
        let mut rec = txn.inode(ino)?.ok_or(Error::NotFound)?;
        let t = now();
        if let Some(mode) = set.mode {
            rec.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = set.uid {
            rec.uid = uid;
        }
        if let Some(gid) = set.gid {
            rec.gid = gid;
        }
        if let Some(a) = set.atime {
            rec.atime = match a {
                TimeSet::Now => t,
                TimeSet::At(at) => ts(at),
            };
        }
        if let Some(m) = set.mtime {
            rec.mtime = match m {
                TimeSet::Now => t,
                TimeSet::At(at) => ts(at),
            };
        }
        rec.ctime = t;
        txn.put_inode(ino, &rec);
        txn.commit(false)?;
        attr(ino, &rec, self.block_size)
    }

    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: XattrFlags) -> Result<()> {
        let name = xattr_name(name)?;
        if super::stats::is_stats_xattr(ino, name) {
            return Err(Error::NotSupported("user.s2sfs.stats is computed when read, not stored"));
        }
        if !name.starts_with(XATTR_NAMESPACE) {
            return Err(Error::NotSupported("xattrs outside the user namespace"));
        }
        let mut txn = self.store.begin();
        let mut rec = txn.inode(ino)?.ok_or(Error::NotFound)?;
        let exists = txn.xattr(ino, name)?.is_some();
        if flags.create && exists {
            return Err(Error::Exists);
        }
        if flags.replace && !exists {
            return Err(Error::NoXattr);
        }
        txn.set_xattr(ino, name, value);
        inode::change(&mut rec);
        txn.put_inode(ino, &rec);
        Ok(txn.commit(false)?)
    }

    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        let name = xattr_name(name)?;
        if super::stats::is_stats_xattr(ino, name) {
            return self.stats_xattr();
        }
        self.store.inode(ino)?.ok_or(Error::NotFound)?;
        self.store.xattr(ino, name)?.ok_or(Error::NoXattr)
    }

    pub fn listxattr(&self, ino: u64) -> Result<Vec<OsString>> {
        self.store.inode(ino)?.ok_or(Error::NotFound)?;
        Ok(self.store.xattr_names(ino)?.into_iter().map(OsString::from_vec).collect())
    }

    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let name = xattr_name(name)?;
        if super::stats::is_stats_xattr(ino, name) {
            return Err(Error::NotSupported("user.s2sfs.stats is computed when read, not stored"));
        }
        let mut txn = self.store.begin();
        let mut rec = txn.inode(ino)?.ok_or(Error::NotFound)?;
        if txn.xattr(ino, name)?.is_none() {
            return Err(Error::NoXattr);
        }
        txn.remove_xattr(ino, name);
        inode::change(&mut rec);
        txn.put_inode(ino, &rec);
        Ok(txn.commit(false)?)
    }

    /// Space as the store's disk has it: compressed data uses that disk, so free space
    /// there is what the volume can still take (at least; compression stretches it).
    pub fn statfs(&self) -> Result<StatFs> {
        let dir = self.store.dir();
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::Invalid("store path"))?;
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is a valid C string and s a properly sized, writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return Err(Error::Path { path: dir.to_path_buf(), source: std::io::Error::last_os_error() });
        }
        Ok(StatFs {
            blocks: s.f_blocks as u64,
            bfree: s.f_bfree as u64,
            bavail: s.f_bavail as u64,
            files: s.f_files as u64,
            ffree: s.f_ffree as u64,
            bsize: s.f_bsize as u32,
            namelen: NAME_MAX as u32,
            frsize: s.f_frsize as u32,
        })
    }
}

fn xattr_name(name: &OsStr) -> Result<&[u8]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(Error::Invalid("empty xattr name"));
    }
    if bytes.len() > NAME_MAX {
        return Err(Error::Range);
    }
    Ok(bytes)
}
