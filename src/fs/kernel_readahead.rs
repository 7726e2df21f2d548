//! Read-ahead for a new mount. The kernel gives a FUSE mount 128 KiB of read-ahead (one
//! block), whatever the filesystem asks for in INIT; with more, sequential reads arrive as
//! 1 MiB requests whose blocks the volume decodes on all cores. Root may raise it in the
//! mount's bdi, as `blockdev --setra` does for disks. Best effort: without it reads work,
//! only slower.

use std::path::Path;

use super::mountinfo::find_mount;

/// Read-ahead for s2sfs mounts: four 1 MiB requests (the most one FUSE request carries)
/// in flight, so several event loops decode blocks at once.
const READ_AHEAD_KB: u32 = 4096;

pub(super) fn widen(mountpoint: &Path) {
    let Ok(Some(entry)) = find_mount(mountpoint) else {
        log::debug!("read-ahead: {} not found in mountinfo", mountpoint.display());
        return;
    };
    let knob = Path::new("/sys/class/bdi").join(&entry.device).join("read_ahead_kb");
    match std::fs::write(&knob, format!("{READ_AHEAD_KB}\n")) {
        Ok(()) => log::debug!("read-ahead of {} set to {READ_AHEAD_KB} KiB", mountpoint.display()),
        Err(e) => log::debug!("read-ahead of {} left as is ({}: {e})", mountpoint.display(), knob.display()),
    }
}
