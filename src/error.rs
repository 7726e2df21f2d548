//! The library's error type and its one mapping to errno.

use std::path::PathBuf;

use crate::codec::{CodecError, ModelError};
use crate::store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("file name too long")]
    NameTooLong,
    #[error("no such attribute")]
    NoXattr,
    #[error("attribute value does not fit the buffer")]
    Range,
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    #[error("too many links")]
    TooManyLinks,
    #[error("file too large")]
    FileTooBig,
    #[error("bad file handle")]
    BadHandle,
    #[error("inode {ino} block {block}: {source}")]
    Corrupt {
        ino: u64,
        block: u64,
        #[source]
        source: CodecError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The errno an application sees for this error: the only place errors become numbers.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::Invalid(_) => libc::EINVAL,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::NoXattr => libc::ENODATA,
            Error::Range => libc::ERANGE,
            Error::NotSupported(_) => libc::EOPNOTSUPP,
            Error::TooManyLinks => libc::EMLINK,
            Error::FileTooBig => libc::EFBIG,
            Error::BadHandle => libc::EBADF,
            Error::Corrupt { .. } | Error::Codec(_) | Error::Model(_) => libc::EIO,
            Error::Store(e) => e.errno(),
            Error::Path { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// An error and its causes joined by ": ", skipping a cause whose text the message
/// before it already ends with (several of our errors print their source themselves).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
