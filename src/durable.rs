//! Making changes to a directory durable: after a file is created, renamed or removed,
//! the directory itself must be synced, or a crash can lose the change even though the
//! file's own data was synced.

use std::fs::File;
use std::path::Path;

/// Syncs `dir`, so that the entries created, renamed or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
