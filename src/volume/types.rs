//! Plain data types of the volume's API: what the FUSE adapter and tests exchange with it.

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use crate::codec::{CodecSpec, DEFAULT_RECOMPRESS_AFTER};

/// The inode number of the root directory (FUSE's FUSE_ROOT_ID).
pub const ROOT_INO: u64 = 1;
/// Longest file name accepted, as on ext4.
pub const NAME_MAX: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    RegularFile,
    Directory,
    Symlink,
    NamedPipe,
    Socket,
    CharDevice,
    BlockDevice,
}

/// What `stat` reports for an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (mode & 0o7777).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    /// 512-byte units actually used (sparse files report less than their size).
    pub blocks: u64,
    pub blksize: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
}

/// Who is asking: the caller's credentials, for ownership of new inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

/// A `setattr` request: every `Some` field is changed, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// RENAME_NOREPLACE: fail with EEXIST when the target exists.
    pub noreplace: bool,
    /// RENAME_EXCHANGE: swap source and target atomically.
    pub exchange: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XattrFlags {
    /// XATTR_CREATE: fail with EEXIST when the attribute exists.
    pub create: bool,
    /// XATTR_REPLACE: fail with ENODATA when the attribute does not exist.
    pub replace: bool,
}

/// One directory entry; `offset` is the cookie to pass to continue *after* it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub offset: i64,
    pub kind: FileKind,
    pub name: OsString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// How a volume is opened. `block_size` only matters when the store is created.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// What new blocks are coded with, and the learned model (CodecSpec's defaults: zstd
    /// at level 3).
    pub codec: CodecSpec,
    /// Blocks not written for this long are re-coded by background recompression
    /// (t5 and auto volumes); None turns it off.
    pub recompress_after: Option<Duration>,
    pub block_size: u32,
    pub cache_bytes: usize,
    /// Dirty data held in memory before writers commit it themselves.
    pub dirty_limit_bytes: usize,
    /// Dirty data older than this is committed by the background flusher.
    pub commit_age: Duration,
    /// When accesses update atime (mount options relatime, strictatime, noatime, nodiratime).
    pub atime: AtimeOptions,
}

/// Which accesses update an inode's atime (SEMANTICS.md says what counts as an access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtimeOptions {
    pub update: AtimeUpdate,
    /// Directories' atime too (false: `nodiratime`).
    pub dirs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtimeUpdate {
    /// `relatime`: only when atime is not after mtime or ctime, or is over a day old.
    Relative,
    /// `strictatime`: on every access.
    Always,
    /// `noatime`.
    Never,
}

impl Default for AtimeOptions {
    /// As ext4 mounts by default: relatime, directories included.
    fn default() -> Self {
        AtimeOptions { update: AtimeUpdate::Relative, dirs: true }
    }
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            codec: CodecSpec::default(),
            recompress_after: Some(DEFAULT_RECOMPRESS_AFTER),
            block_size: 128 * 1024,
            cache_bytes: 64 << 20,
            dirty_limit_bytes: 24 << 20,
            commit_age: Duration::from_secs(5),
            atime: AtimeOptions::default(),
        }
    }
}
