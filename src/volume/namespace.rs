//! The directory tree: lookup, creation of every kind of inode, links, unlink, rmdir,
//! rename (with RENAME_NOREPLACE and RENAME_EXCHANGE), and readdir cookies.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::Core;
use super::inode::{self, attr, check_name, is_dir};
use super::types::{Attr, Caller, DirEntry, FileKind, ROOT_INO, RenameFlags};
use crate::error::{Error, Result};
use crate::store::{InodeRecord, Txn};

/// readdir cookies: 1 and 2 follow "." and ".."; an entry's cookie is its sequence + 2.
const COOKIE_BASE: i64 = 2;

impl Core {
    /// Path walks resolve "." and ".." in the kernel: it sends them here only to decode a
    /// file handle (open_by_handle_at, an NFS export) whose inode it no longer caches, "."
    /// for the inode itself (any kind) and ".." for a directory's parent.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        if name.as_bytes() == b"." {
            return self.linked_attr(parent);
        }
        let dir = self.store.inode(parent)?.ok_or(Error::NotFound)?;
        if !is_dir(&dir) {
            return Err(Error::NotDir);
        }
        if name.as_bytes() == b".." {
            return self.linked_attr(parent_of(parent, &dir));
        }
        if name.as_bytes().len() > super::types::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let entry = self.store.lookup(parent, name.as_bytes())?.ok_or(Error::NotFound)?;
        self.getattr(entry.ino)
    }

    /// The attributes of an inode that has a name. One at nlink 0 lives only while it is
    /// open, and an open file pins the kernel's inode; the kernel asks for an inode only
    /// when it no longer caches it, so none of its files holds this one and a handle to it
    /// is stale, whatever the volume still keeps.
    fn linked_attr(&self, ino: u64) -> Result<Attr> {
        let a = self.getattr(ino)?;
        if a.nlink == 0 {
            return Err(Error::NotFound);
        }
        Ok(a)
    }

    /// Creates a regular file, fifo, socket or device node (`mode` includes the type bits).
    pub fn mknod(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32, rdev: u32) -> Result<Attr> {
        let kind = inode::kind_of(mode)?;
        if kind == FileKind::Directory || kind == FileKind::Symlink {
            return Err(Error::Invalid("mknod of a directory or symlink"));
        }
        self.create_inode(c, parent, name, kind, (mode & !umask & 0o7777) as u16, |rec| rec.rdev = rdev)
    }

    pub fn mkdir(&self, c: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Result<Attr> {
        self.create_inode(c, parent, name, FileKind::Directory, (mode & !umask & 0o7777) as u16, |_| {})
    }

    pub fn symlink(&self, c: Caller, parent: u64, name: &OsStr, target: &Path) -> Result<Attr> {
        let target = target.as_os_str().as_bytes().to_vec();
        if target.len() > 4096 {
            return Err(Error::NameTooLong);
        }
        self.create_inode(c, parent, name, FileKind::Symlink, 0o777, move |rec| {
            rec.size = target.len() as u64;
            rec.target = target;
        })
    }

    fn create_inode(
        &self,
        c: Caller,
        parent: u64,
        name: &OsStr,
        kind: FileKind,
        perm: u16,
        fill: impl FnOnce(&mut InodeRecord),
    ) -> Result<Attr> {
        let name = check_name(name)?;
        let ino = self.store.new_ino()?;
        let mut txn = self.store.begin();
        let mut dir = dir_record(&txn, parent)?;
        if txn.lookup(parent, name)?.is_some() {
            return Err(Error::Exists);
        }
        let mut rec = inode::new_record(c, &dir, parent, kind, perm);
        fill(&mut rec);
        txn.add_entry(parent, name, ino, rec.kind)?;
        txn.put_inode(ino, &rec);
        if kind == FileKind::Directory {
            dir.nlink += 1;
        }
        inode::touch(&mut dir);
        txn.put_inode(parent, &dir);
        txn.commit(false)?;
        attr(ino, &rec, self.block_size)
    }

    /// Reads a symlink's target; an access (atime), as following it is.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let rec = self.store.inode(ino)?.ok_or(Error::NotFound)?;
        if rec.kind != libc::S_IFLNK {
            return Err(Error::Invalid("not a symlink"));
        }
        self.accessed(ino);
        Ok(rec.target)
    }

    pub fn link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Attr> {
        let name = check_name(new_name)?;
        let mut txn = self.store.begin();
        let mut dir = dir_record(&txn, new_parent)?;
        let mut rec = txn.inode(ino)?.ok_or(Error::NotFound)?;
        if is_dir(&rec) {
            return Err(Error::NotSupported("hard links to directories"));
        }
        if txn.lookup(new_parent, name)?.is_some() {
            return Err(Error::Exists);
        }
        if rec.nlink >= u32::MAX - 1 {
            return Err(Error::TooManyLinks);
        }
        if rec.nlink == 0 {
            txn.set_orphan(ino, false);
        }
        rec.nlink += 1;
        inode::change(&mut rec);
        txn.add_entry(new_parent, name, ino, rec.kind)?;
        txn.put_inode(ino, &rec);
        inode::touch(&mut dir);
        txn.put_inode(new_parent, &dir);
        txn.commit(false)?;
        let mut a = attr(ino, &rec, self.block_size)?;
        self.pending_attr(ino, &mut a);
        Ok(a)
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, true)
    }

    fn remove(&self, parent: u64, name: &OsStr, want_dir: bool) -> Result<()> {
        let mut txn = self.store.begin();
        let mut dir = dir_record(&txn, parent)?;
        let entry = txn.lookup(parent, name.as_bytes())?.ok_or(Error::NotFound)?;
        let child = txn.inode(entry.ino)?.ok_or(Error::NotFound)?;
        match (want_dir, is_dir(&child)) {
            (false, true) => return Err(Error::IsDir),
            (true, false) => return Err(Error::NotDir),
            (true, true) if txn.has_entries(entry.ino)? => return Err(Error::NotEmpty),
            _ => {}
        }
        txn.remove_entry(parent, name.as_bytes())?;
        let unlinked = drop_link(&mut txn, entry.ino, child)?;
        if want_dir {
            dir.nlink = dir.nlink.saturating_sub(1);
        }
        inode::touch(&mut dir);
        txn.put_inode(parent, &dir);
        self.commit_unlink(txn, unlinked)
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        let new_name_bytes = check_name(new_name)?;
        let name = name.as_bytes();
        let mut txn = self.store.begin();
        dir_record(&txn, parent)?;
        dir_record(&txn, new_parent)?;
        let src = txn.lookup(parent, name)?.ok_or(Error::NotFound)?;
        let dst = txn.lookup(new_parent, new_name_bytes)?;
        let src_rec = txn.inode(src.ino)?.ok_or(Error::NotFound)?;
        let src_is_dir = is_dir(&src_rec);
        if src_is_dir && parent != new_parent && is_ancestor(&txn, src.ino, new_parent)? {
            return Err(Error::Invalid("cannot move a directory into itself"));
        }
        if flags.exchange {
            let dst = dst.ok_or(Error::NotFound)?;
            let dst_rec = txn.inode(dst.ino)?.ok_or(Error::NotFound)?;
            if is_dir(&dst_rec) && parent != new_parent && is_ancestor(&txn, dst.ino, parent)? {
                return Err(Error::Invalid("cannot move a directory into itself"));
            }
            txn.remove_entry(parent, name)?;
            txn.remove_entry(new_parent, new_name_bytes)?;
            txn.add_entry(new_parent, new_name_bytes, src.ino, src.kind)?;
            txn.add_entry(parent, name, dst.ino, dst.kind)?;
            moved(&mut txn, src.ino, src_rec, parent, new_parent)?;
            moved(&mut txn, dst.ino, dst_rec, new_parent, parent)?;
            touch_dirs(&mut txn, parent, new_parent)?;
            return Ok(txn.commit(false)?);
        }
        let mut unlinked = Unlinked::Nothing;
        if let Some(dst) = dst {
            if flags.noreplace {
                return Err(Error::Exists);
            }
            if dst.ino == src.ino {
                return Ok(()); // two names of one inode: POSIX says do nothing
            }
            let dst_rec = txn.inode(dst.ino)?.ok_or(Error::NotFound)?;
            match (src_is_dir, is_dir(&dst_rec)) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if txn.has_entries(dst.ino)? => return Err(Error::NotEmpty),
                _ => {}
            }
            txn.remove_entry(new_parent, new_name_bytes)?;
            if is_dir(&dst_rec) {
                let mut np = dir_record(&txn, new_parent)?;
                np.nlink = np.nlink.saturating_sub(1);
                txn.put_inode(new_parent, &np);
            }
            unlinked = drop_link(&mut txn, dst.ino, dst_rec)?;
        }
        txn.remove_entry(parent, name)?;
        txn.add_entry(new_parent, new_name_bytes, src.ino, src.kind)?;
        moved(&mut txn, src.ino, src_rec, parent, new_parent)?;
        touch_dirs(&mut txn, parent, new_parent)?;
        self.commit_unlink(txn, unlinked)
    }

    /// Commits a transaction that removed a name, then does what that left to do.
    fn commit_unlink(&self, txn: Txn<'_>, unlinked: Unlinked) -> Result<()> {
        match unlinked {
            Unlinked::Nothing => Ok(txn.commit(false)?),
            Unlinked::Orphan(ino) => {
                txn.commit(false)?;
                self.free_if_unlinked(ino)
            }
            Unlinked::Dir(ino, rec) => self.commit_dir_removal(txn, ino, rec),
        }
    }

    /// Entries after cookie `offset` (0 = from the start, including "." and ".."), at most `max`.
    /// A directory removed while open lists "." and ".." only.
    pub fn readdir(&self, ino: u64, offset: i64, max: usize) -> Result<Vec<DirEntry>> {
        let dir = self.record(ino)?;
        if !is_dir(&dir) {
            return Err(Error::NotDir);
        }
        let mut out = Vec::new();
        if offset < 1 && out.len() < max {
            out.push(DirEntry { ino, offset: 1, kind: FileKind::Directory, name: ".".into() });
        }
        if offset < 2 && out.len() < max {
            out.push(DirEntry { ino: parent_of(ino, &dir), offset: 2, kind: FileKind::Directory, name: "..".into() });
        }
        let after = (offset - COOKIE_BASE).max(0) as u64;
        for (rec, name) in self.store.entries_after(ino, after, max - out.len())? {
            out.push(DirEntry {
                ino: rec.ino,
                offset: rec.seq as i64 + COOKIE_BASE,
                kind: inode::kind_of(rec.kind)?,
                name: OsString::from_vec(name),
            });
        }
        Ok(out)
    }
}

/// Directory `ino`'s "..": the root is its own parent.
fn parent_of(ino: u64, dir: &InodeRecord) -> u64 {
    if ino == ROOT_INO { ROOT_INO } else { dir.parent }
}

fn dir_record(txn: &Txn<'_>, ino: u64) -> Result<InodeRecord> {
    let rec = txn.inode(ino)?.ok_or(Error::NotFound)?;
    if !is_dir(&rec) {
        return Err(Error::NotDir);
    }
    Ok(rec)
}

/// What removing a name leaves to do once its transaction commits.
enum Unlinked {
    /// Nothing: the inode keeps other names.
    Nothing,
    /// A non-directory at nlink 0: an orphan until its last handle closes.
    Orphan(u64),
    /// A directory, deleted (its record as it was): handles may still hold it open.
    Dir(u64, InodeRecord),
}

/// Drops one link of an inode whose name was just removed. Directories go at once;
/// other inodes at nlink 0 become orphans, freed once no handle is open.
fn drop_link(txn: &mut Txn<'_>, ino: u64, mut rec: InodeRecord) -> Result<Unlinked> {
    if is_dir(&rec) {
        txn.delete_inode(ino)?;
        return Ok(Unlinked::Dir(ino, rec));
    }
    rec.nlink = rec.nlink.saturating_sub(1);
    inode::change(&mut rec);
    txn.put_inode(ino, &rec);
    if rec.nlink == 0 {
        txn.set_orphan(ino, true);
        return Ok(Unlinked::Orphan(ino));
    }
    Ok(Unlinked::Nothing)
}

/// Bookkeeping for an inode that changed directory: ctime, and for directories "..".
fn moved(txn: &mut Txn<'_>, ino: u64, mut rec: InodeRecord, from: u64, to: u64) -> Result<()> {
    inode::change(&mut rec);
    if is_dir(&rec) && from != to {
        rec.parent = to;
        let mut a = dir_record(txn, from)?;
        a.nlink = a.nlink.saturating_sub(1);
        txn.put_inode(from, &a);
        let mut b = dir_record(txn, to)?;
        b.nlink += 1;
        txn.put_inode(to, &b);
    }
    txn.put_inode(ino, &rec);
    Ok(())
}

fn touch_dirs(txn: &mut Txn<'_>, a: u64, b: u64) -> Result<()> {
    for ino in if a == b { vec![a] } else { vec![a, b] } {
        let mut rec = dir_record(txn, ino)?;
        inode::touch(&mut rec);
        txn.put_inode(ino, &rec);
    }
    Ok(())
}

/// Whether directory `ancestor` is `dir` or lies on its path to the root.
fn is_ancestor(txn: &Txn<'_>, ancestor: u64, mut dir: u64) -> Result<bool> {
    for _ in 0..4096 {
        if dir == ancestor {
            return Ok(true);
        }
        if dir == ROOT_INO {
            return Ok(false);
        }
        dir = txn.inode(dir)?.ok_or(Error::NotFound)?.parent;
    }
    Err(Error::Invalid("directory tree too deep or looping"))
}
