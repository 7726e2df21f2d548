//! Real FUSE mounts driven through real syscalls: the `s2sfs` binary mounts a fresh store
//! for each test, and the tests check exact bytes, errnos and metadata.
//!
//! Needs /dev/fuse, fusermount3 (Debian's fuse3) and root (the permission and chown tests).

#[path = "mounted/harness.rs"]
mod harness;

#[path = "mounted/archival.rs"]
mod archival;
#[path = "mounted/dirs.rs"]
mod dirs;
#[path = "mounted/files.rs"]
mod files;
#[path = "mounted/footprint.rs"]
mod footprint;
#[path = "mounted/handles.rs"]
mod handles;
#[path = "mounted/links.rs"]
mod links;
#[path = "mounted/meta.rs"]
mod meta;
#[path = "mounted/safety.rs"]
mod safety;
#[path = "mounted/stats.rs"]
mod stats;
