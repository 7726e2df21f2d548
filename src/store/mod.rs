//! Persistent state: sled trees for metadata and the block index, append-only pack files
//! for frames, refcounts, compaction. No sled type leaves this module.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {0} is in use by another s2sfs process (lock held on {0}/lock)")]
    Locked(PathBuf),
    #[error("store {path} has format version {found}; this s2sfs reads version {supported}")]
    Incompatible { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata store: {0}")]
    Meta(String),
    #[error("metadata record {what} is damaged")]
    Damaged { what: String },
    #[error("no space left on the store's disk")]
    NoSpace,
}

impl StoreError {
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NoSpace => libc::ENOSPC,
            StoreError::Io { source, .. } => match source.raw_os_error() {
                Some(libc::ENOSPC) => libc::ENOSPC,
                Some(libc::EDQUOT) => libc::EDQUOT,
                _ => libc::EIO,
            },
            _ => libc::EIO,
        }
    }
}
