//! `impl fuser::Filesystem` over a [`Volume`]: convert the arguments, call the volume,
//! reply. No filesystem logic lives here, so that the volume's tests without a mount see
//! all of it (ARCHITECTURE.md, "The layers"); errors become errnos only through
//! [`crate::Error::errno`].

use std::ffi::OsStr;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, ReplyAttr, ReplyBmap,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen,
    ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use log::{debug, error, info, warn};

use super::unsupported::{Op, Unsupported};
use crate::volume::{self, Attr, Caller, FileKind, SetAttr, TimeSet, Volume};

/// How long the kernel may cache attributes and directory entries.
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel should send in one request (it may allow less).
const MAX_WRITE: u32 = 1 << 20;
/// Read-ahead we ask for (the kernel caps it at what the mount's bdi allows).
const MAX_READAHEAD: u32 = 1 << 20;
/// The generation of every inode: inode numbers are never reused (`Store::new_ino`), so
/// the number alone names one inode forever, and a file handle (number, generation) taken
/// before a remount names the same inode after it.
const GENERATION: Generation = Generation(0);
/// Opens keep the file's pages in the kernel's page cache. Every change to a file's
/// contents passes through this mount (the store is locked to one daemon), so the kernel
/// already knows when pages are stale; dropping them on each open would make every
/// re-read of a file decode it again.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE;

/// Directory entries fetched from the volume per round while filling a readdir reply
/// (a one-page reply holds at most 4096 / 32 = 128 entries).
const READDIR_BATCH: usize = 128;

/// A volume shared by the FUSE session and the daemon around it, shut down exactly once:
/// by `destroy` when the session ends, or by the daemon when the session never started
/// or ended abnormally, or on a forced exit.
pub(crate) struct SharedVolume {
    vol: Volume,
    shutdown: Mutex<Option<Result<(), String>>>,
}

impl SharedVolume {
    pub(crate) fn new(vol: Volume) -> Arc<SharedVolume> {
        Arc::new(SharedVolume { vol, shutdown: Mutex::new(None) })
    }

    pub(crate) fn volume(&self) -> &Volume {
        &self.vol
    }

    /// Makes the kernel drop its cached attributes of an inode the volume changed without
    /// a reply that carries them (an access time set by an open).
    pub(crate) fn forward_attr_changes(&self, notifier: fuser::Notifier) {
        self.vol.on_attr_change(Box::new(move |ino| {
            // Attributes only (a negative offset): the cached pages stay valid.
            if let Err(e) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                debug!("invalidating the attributes of inode {ino}: {e}");
            }
        }));
    }

    /// Commits dirty data and closes the store, once; later calls return the first result.
    pub(crate) fn shutdown(&self) -> Result<(), String> {
        let mut done = self.shutdown.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = &*done {
            return r.clone();
        }
        let r = match catch_unwind(AssertUnwindSafe(|| self.vol.shutdown())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(super::error::error_chain(&e)),
            Err(_) => Err("the volume panicked while shutting down".to_string()),
        };
        match &r {
            Ok(()) => info!("volume shut down: dirty data committed, store closed"),
            Err(e) => error!("volume shutdown failed: {e}"),
        }
        *done = Some(r.clone());
        r
    }
}

/// The fuser filesystem: a thin shell around the shared volume.
pub(crate) struct S2sFs {
    shared: Arc<SharedVolume>,
    unsupported: Unsupported,
}

impl S2sFs {
    pub(crate) fn new(shared: Arc<SharedVolume>) -> S2sFs {
        S2sFs { shared, unsupported: Unsupported::default() }
    }

    fn unsupported(&self, op: Op) -> Errno {
        Errno::from_i32(self.unsupported.answer(op))
    }

    /// Runs one volume call; a volume error or a panic becomes the errno to reply with.
    fn call<T>(&self, op: &'static str, ino: u64, f: impl FnOnce(&Volume) -> crate::Result<T>) -> Result<T, Errno> {
        // A request that never ends is logged by name (with the store operation it waits in).
        let _watch = crate::watchdog::watch(op);
        // Background recompression waits while requests are in flight.
        let _busy = self.shared.volume().begin_request();
        match catch_unwind(AssertUnwindSafe(|| f(self.shared.volume()))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let errno = e.errno();
                if errno == libc::EIO || errno == libc::ENOSPC || errno == libc::EDQUOT {
                    warn!("{op} (inode {ino}): {}", super::error::error_chain(&e));
                } else {
                    debug!("{op} (inode {ino}): {e}");
                }
                Err(Errno::from_i32(errno))
            }
            Err(_) => {
                error!("{op} (inode {ino}): the volume panicked; replying EIO");
                Err(Errno::EIO)
            }
        }
    }
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid() }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::NamedPipe => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::SpecificTime(t) => TimeSet::At(t),
        TimeOrNow::Now => TimeSet::Now,
    }
}

/// renameat2 flags → the volume's; RENAME_WHITEOUT and unknown bits are not supported.
fn rename_flags(flags: fuser::RenameFlags) -> Result<volume::RenameFlags, Errno> {
    let known = fuser::RenameFlags::RENAME_NOREPLACE | fuser::RenameFlags::RENAME_EXCHANGE;
    if !known.contains(flags) {
        return Err(Errno::EINVAL);
    }
    Ok(volume::RenameFlags {
        noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
        exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
    })
}

/// setxattr(2) flags → the volume's; unknown bits are EINVAL, as on ext4.
fn xattr_flags(flags: i32) -> Result<volume::XattrFlags, Errno> {
    if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(volume::XattrFlags { create: flags & libc::XATTR_CREATE != 0, replace: flags & libc::XATTR_REPLACE != 0 })
}

/// The getxattr/listxattr size protocol: size 0 asks for the length, a buffer too small
/// is ERANGE, otherwise the data.
/// Replies to an operation that returns nothing but success or an errno.
fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        match u32::try_from(data.len()) {
            Ok(len) => reply.size(len),
            Err(_) => reply.error(Errno::from_i32(libc::E2BIG)),
        }
    } else if data.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(data);
    }
}

impl Filesystem for S2sFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Large writes: fewer, bigger requests, close to whole blocks.
        if let Err(most) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(most);
        }
        if let Err(most) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(most);
        }
        // Lookups and readdirs in one directory may run concurrently: the volume
        // synchronizes internally. (add_capabilities refuses what the kernel lacks.)
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // File handles (open_by_handle_at, NFS export) name an inode by number; the kernel
        // decodes one it no longer caches by looking up "." (and ".." for a directory's
        // parent) in that inode, which the volume answers for every live inode.
        if config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT).is_err() {
            info!("the kernel offers no FUSE_EXPORT_SUPPORT: file handles will not open");
        }
        // FUSE_WRITEBACK_CACHE stays off: the volume must see every write as it happens.
        debug!("FUSE init: kernel ABI {:?}", config.kernel_abi());
        Ok(())
    }

    fn destroy(&mut self) {
        // Errors are logged by shutdown(); the daemon reads the cached result too.
        let _ = self.shared.shutdown();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.call("lookup", parent.0, |v| v.lookup(parent.0, name)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.call("getattr", ino.0, |v| v.getattr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            // The kernel sends the whole st_mode; the type of an inode never changes.
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
        };
        match self.call("setattr", ino.0, |v| v.setattr(ino.0, &set)) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.call("readlink", ino.0, |v| v.readlink(ino.0)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let c = caller(req);
        match self.call("mknod", parent.0, |v| v.mknod(c, parent.0, name, mode, umask, rdev)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let c = caller(req);
        match self.call("mkdir", parent.0, |v| v.mkdir(c, parent.0, name, mode, umask)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.call("unlink", parent.0, |v| v.unlink(parent.0, name)))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.call("rmdir", parent.0, |v| v.rmdir(parent.0, name)))
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let c = caller(req);
        match self.call("symlink", parent.0, |v| v.symlink(c, parent.0, link_name, target)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let flags = match rename_flags(flags) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        reply_empty(reply, self.call("rename", parent.0, |v| v.rename(parent.0, name, newparent.0, newname, flags)))
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        match self.call("link", ino.0, |v| v.link(ino.0, newparent.0, newname)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.call("open", ino.0, |v| v.open_file(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.call("read", ino.0, |v| v.read_handle(ino.0, fh.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.call("write", ino.0, |v| v.write(ino.0, fh.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply_empty(reply, self.call("flush", ino.0, |v| v.flush(ino.0)))
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.call("release", ino.0, |v| v.release(ino.0, fh.0)))
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        reply_empty(reply, self.call("fsync", ino.0, |v| v.fsync(ino.0, datasync)))
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.call("opendir", ino.0, |v| v.open_dir(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        reply_empty(reply, self.call("releasedir", ino.0, |v| v.release_dir(ino.0, fh.0)))
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        // The kernel hands back the cookie of the last entry it took; the volume's cookies
        // are i64 and never negative.
        let mut cookie = match i64::try_from(offset) {
            Ok(c) => c,
            Err(_) => return reply.error(Errno::EINVAL),
        };
        loop {
            let entries = match self.call("readdir", ino.0, |v| v.readdir(ino.0, cookie, READDIR_BATCH)) {
                Ok(e) => e,
                Err(e) => return reply.error(e),
            };
            let got = entries.len();
            for e in entries {
                // `add` returns true when the buffer is full (and the entry was not added):
                // the kernel asks again from the last cookie it received.
                if reply.add(INodeNo(e.ino), e.offset as u64, file_type(e.kind), &e.name) {
                    return reply.ok();
                }
                cookie = e.offset;
            }
            if got < READDIR_BATCH {
                return reply.ok();
            }
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        // The volume's fsync makes the inode's state durable, directories included.
        reply_empty(reply, self.call("fsyncdir", ino.0, |v| v.fsync(ino.0, datasync)))
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(self.unsupported(Op::Ioctl));
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(self.unsupported(Op::Poll));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.unsupported(Op::Fallocate));
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _offset: i64, _whence: i32, reply: ReplyLseek) {
        reply.error(self.unsupported(Op::Lseek));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(self.unsupported(Op::CopyFileRange));
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(self.unsupported(Op::Bmap));
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(self.unsupported(Op::Getlk));
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(self.unsupported(Op::Setlk));
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.call("statfs", ino.0, |v| v.statfs()) {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            // Only macOS resource forks use a position.
            return reply.error(Errno::EINVAL);
        }
        let flags = match xattr_flags(flags) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        reply_empty(reply, self.call("setxattr", ino.0, |v| v.setxattr(ino.0, name, value, flags)))
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.call("getxattr", ino.0, |v| v.getxattr(ino.0, name)) {
            Ok(value) => reply_sized(reply, size, &value),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.call("listxattr", ino.0, |v| v.listxattr(ino.0)) {
            Ok(names) => {
                // The list is each name followed by a NUL.
                let mut buf = Vec::new();
                for n in &names {
                    buf.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(n.as_os_str()));
                    buf.push(0);
                }
                reply_sized(reply, size, &buf)
            }
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.call("removexattr", ino.0, |v| v.removexattr(ino.0, name)))
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let c = caller(req);
        match self.call("create", parent.0, |v| v.create(c, parent.0, name, mode, umask, flags)) {
            Ok((a, fh)) => reply.created(&TTL, &file_attr(&a), GENERATION, FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_flags_map() {
        let f = rename_flags(fuser::RenameFlags::RENAME_NOREPLACE).unwrap();
        assert!(f.noreplace && !f.exchange);
        let f = rename_flags(fuser::RenameFlags::RENAME_EXCHANGE).unwrap();
        assert!(!f.noreplace && f.exchange);
        assert_eq!(rename_flags(fuser::RenameFlags::empty()).unwrap(), volume::RenameFlags::default());
        assert!(rename_flags(fuser::RenameFlags::RENAME_WHITEOUT).is_err());
    }

    #[test]
    fn xattr_flags_map() {
        assert_eq!(xattr_flags(0).unwrap(), volume::XattrFlags::default());
        assert!(xattr_flags(libc::XATTR_CREATE).unwrap().create);
        assert!(xattr_flags(libc::XATTR_REPLACE).unwrap().replace);
        assert!(xattr_flags(0x100).is_err());
    }
}
