//! Inode records as the volume sees them: kinds, new records, `stat` attributes, names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::types::{Attr, Caller, FileKind, NAME_MAX};
use crate::error::{Error, Result};
use crate::store::{InodeRecord, Timestamp, now};

pub fn kind_of(mode_bits: u32) -> Result<FileKind> {
    Ok(match mode_bits & libc::S_IFMT {
        libc::S_IFREG | 0 => FileKind::RegularFile,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::NamedPipe,
        libc::S_IFSOCK => FileKind::Socket,
        libc::S_IFCHR => FileKind::CharDevice,
        libc::S_IFBLK => FileKind::BlockDevice,
        _ => return Err(Error::Invalid("unknown file type")),
    })
}

pub fn mode_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::RegularFile => libc::S_IFREG,
        FileKind::Directory => libc::S_IFDIR,
        FileKind::Symlink => libc::S_IFLNK,
        FileKind::NamedPipe => libc::S_IFIFO,
        FileKind::Socket => libc::S_IFSOCK,
        FileKind::CharDevice => libc::S_IFCHR,
        FileKind::BlockDevice => libc::S_IFBLK,
    }
}

pub fn is_dir(rec: &InodeRecord) -> bool {
    rec.kind == libc::S_IFDIR
}

/// A fresh inode owned by the caller. In a setgid directory the group (and, for
/// directories, the setgid bit) comes from the directory, as on ext4.
pub fn new_record(c: Caller, parent: &InodeRecord, parent_ino: u64, kind: FileKind, perm: u16) -> InodeRecord {
    let setgid_dir = parent.perm as u32 & libc::S_ISGID != 0;
    let gid = if setgid_dir { parent.gid } else { c.gid };
    let mut perm = perm & 0o7777;
    if setgid_dir && kind == FileKind::Directory {
        perm |= libc::S_ISGID as u16;
    }
    InodeRecord::new(mode_bits(kind), perm, c.uid, gid, parent_ino)
}

/// The root directory of a new volume, owned by whoever creates it (as mkfs run by a
/// user gives that user the root), so a user's own mount is writable by that user.
pub fn root_record(owner: Caller) -> InodeRecord {
    InodeRecord::new(libc::S_IFDIR, 0o755, owner.uid, owner.gid, super::types::ROOT_INO)
}

pub fn attr(ino: u64, rec: &InodeRecord, block_size: u32) -> Result<Attr> {
    let kind = kind_of(rec.kind)?;
    let size = match kind {
        FileKind::Directory => 4096,
        _ => rec.size,
    };
    let used = (rec.stored_blocks * block_size as u64).min(size.next_multiple_of(512));
    Ok(Attr {
        ino,
        kind,
        perm: rec.perm,
        nlink: rec.nlink,
        uid: rec.uid,
        gid: rec.gid,
        rdev: rec.rdev,
        size,
        blocks: used / 512,
        blksize: block_size,
        atime: rec.atime.into(),
        mtime: rec.mtime.into(),
        ctime: rec.ctime.into(),
        crtime: rec.crtime.into(),
    })
}

/// Checks a single path component, returning its bytes.
pub fn check_name(name: &OsStr) -> Result<&[u8]> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(Error::Invalid("bad file name"));
    }
    Ok(bytes)
}

/// Marks a content change: mtime and ctime move to now.
pub fn touch(rec: &mut InodeRecord) {
    let t = now();
    rec.mtime = t;
    rec.ctime = t;
}

pub fn change(rec: &mut InodeRecord) {
    rec.ctime = now();
}

pub fn ts(t: std::time::SystemTime) -> Timestamp {
    Timestamp::from(t)
}
