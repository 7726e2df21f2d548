//! Access times: whether an access updates an inode's atime under the mount's policy
//! (relatime, strictatime, noatime, nodiratime), and the update.
//!
//! The kernel serves cached pages (FOPEN_KEEP_CACHE) and never touches atime on a FUSE
//! mount itself, so the daemon sees only some reads. What counts as an access is what it
//! does see (SEMANTICS.md): an open for reading, each read request, each readlink, each
//! opendir; the callers are `data.rs`, `namespace.rs` and `dirs.rs`.

use std::time::{Duration, SystemTime};

use super::inode::is_dir;
use super::types::AtimeUpdate;
use super::{Core, lock};
use crate::error::Result;
use crate::store::{InodeRecord, Timestamp, now};

/// relatime refreshes an atime older than this even when nothing changed since, as on Linux.
const RELATIME_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

impl Core {
    /// An access to `ino`. A failed update is logged, never the access's error: a read
    /// must not fail because its atime could not be written (a full disk).
    pub(super) fn accessed(&self, ino: u64) {
        if self.opts.atime.update == AtimeUpdate::Never {
            return;
        }
        if let Err(e) = self.update_atime(ino) {
            log::debug!("atime of inode {ino} not updated: {e}");
        }
    }

    fn update_atime(&self, ino: u64) -> Result<()> {
        let t = now();
        // Uncommitted writes carry the file's current mtime and ctime. Taken before the
        // store's writer: a file's state is locked before the writer, never after.
        let pending = self.existing_entry(ino).and_then(|e| lock(&e.state).times);
        // Most accesses change nothing (relatime): decided before taking the writer.
        if !self.store.inode(ino)?.is_some_and(|rec| self.atime_due(&rec, pending, t)) {
            return Ok(());
        }
        let mut txn = self.store.begin();
        let Some(mut rec) = txn.inode(ino)? else { return Ok(()) };
        if !self.atime_due(&rec, pending, t) {
            return Ok(());
        }
        rec.atime = t;
        txn.put_inode(ino, &rec);
        txn.commit(false)?;
        // No reply carries the new atime (an open's does not), so the kernel's cached one
        // would be shown until its attribute timeout.
        if let Some(changed) = self.attr_listener.get() {
            changed(ino);
        }
        Ok(())
    }

    /// Whether an access at `t` updates the atime of `rec`; `pending`: the mtime and ctime
    /// of its uncommitted writes.
    fn atime_due(&self, rec: &InodeRecord, pending: Option<(Timestamp, Timestamp)>, t: Timestamp) -> bool {
        if is_dir(rec) && !self.opts.atime.dirs {
            return false;
        }
        match self.opts.atime.update {
            AtimeUpdate::Never => false,
            AtimeUpdate::Always => true,
            AtimeUpdate::Relative => {
                let (mtime, ctime) = pending.unwrap_or((rec.mtime, rec.ctime));
                relatime_due(rec.atime, mtime, ctime, t)
            }
        }
    }
}

/// Linux's relatime rule: atime moves when it is not after mtime or ctime (the first read
/// after a change), or when it is more than a day old.
fn relatime_due(atime: Timestamp, mtime: Timestamp, ctime: Timestamp, t: Timestamp) -> bool {
    let key = |x: Timestamp| (x.secs, x.nanos);
    if key(atime) <= key(mtime) || key(atime) <= key(ctime) {
        return true;
    }
    SystemTime::from(t).duration_since(SystemTime::from(atime)).is_ok_and(|age| age > RELATIME_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    #[test]
    fn relatime_rule() {
        let day = RELATIME_MAX_AGE.as_secs() as i64;
        let t = at(10 * day);
        // Not after mtime or ctime: a change since the last access.
        assert!(relatime_due(at(100), at(100), at(50), t));
        assert!(relatime_due(at(100), at(50), at(200), t));
        // After both and recent: no update.
        assert!(!relatime_due(at(t.secs - 60), at(50), at(50), t));
        assert!(!relatime_due(at(t.secs - day), at(50), at(50), t));
        // Over a day old.
        assert!(relatime_due(at(t.secs - day - 1), at(50), at(50), t));
        // Nanoseconds count.
        let a = Timestamp { secs: 100, nanos: 2 };
        assert!(!relatime_due(a, Timestamp { secs: 100, nanos: 1 }, at(0), Timestamp { secs: 101, nanos: 0 }));
    }
}
