//! /proc/self/mountinfo: which s2sfs mount is at a path, its store and its device.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::error::CommandError;

/// fsname prefix of s2sfs mounts; the store path follows.
const FSNAME_PREFIX: &str = "s2sfs:";

/// One line of /proc/self/mountinfo, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountEntry {
    pub(super) mount_point: PathBuf,
    /// `major:minor` of the mount's device, which names its bdi in /sys/class/bdi.
    pub(super) device: String,
    pub(super) fstype: String,
    pub(super) source: OsString,
}

impl MountEntry {
    /// The store of an s2sfs mount: fstype fuse (mount(2) by root) or fuse.s2sfs
    /// (through fusermount3), source `s2sfs:STORE`.
    pub(super) fn store(&self) -> Option<PathBuf> {
        if self.fstype != "fuse" && self.fstype != "fuse.s2sfs" {
            return None;
        }
        let store = self.source.as_bytes().strip_prefix(FSNAME_PREFIX.as_bytes())?;
        Some(PathBuf::from(OsString::from_vec(store.to_vec())))
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
            Some(MountEntry {
                mount_point: PathBuf::from(OsString::from_vec(unescape(fields.get(4)?))),
                device: fields.get(2)?.to_string(),
                fstype: String::from_utf8_lossy(&unescape(fields.get(sep + 1)?)).into_owned(),
                source: OsString::from_vec(unescape(fields.get(sep + 2)?)),
            })
        })
        .collect()
}

fn mounts() -> Result<Vec<MountEntry>, CommandError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| CommandError::with_cause("cannot read /proc/self/mountinfo", &e))?;
    Ok(parse_mountinfo(&text))
}

/// The topmost mount at `path` (the last one listed).
pub(super) fn find_mount(path: &Path) -> Result<Option<MountEntry>, CommandError> {
    Ok(mounts()?.into_iter().rev().find(|m| m.mount_point == path))
}

/// Where the s2sfs mount of `store` is, if one is mounted (in this mount namespace).
pub(super) fn mount_of_store(store: &Path) -> Result<Option<PathBuf>, CommandError> {
    Ok(mounts()?.into_iter().find(|m| m.store().as_deref() == Some(store)).map(|m| m.mount_point))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
98 22 0:52 / /mnt/my\\040vol rw,nosuid,nodev,relatime shared:50 - fuse s2sfs:/var/lib/s2sfs/mnt-my\\134x20vol rw,user_id=0
99 22 0:53 / /data rw - fuse.s2sfs s2sfs:/home/u/.local/share/s2sfs/data rw,user_id=1000
100 22 0:54 / /data rw - fuse.sshfs host:/x rw
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, Path::new("/mnt/my vol"));
        assert_eq!(m[1].store().unwrap(), Path::new("/var/lib/s2sfs/mnt-my\\x20vol"));
        assert_eq!(m[2].store().unwrap(), Path::new("/home/u/.local/share/s2sfs/data"));
        assert_eq!(m[3].store(), None);
        assert_eq!(m[2].device, "0:53");
        assert_eq!(m[0].store(), None);
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape("a\\040b\\134c\\"), b"a b\\c\\");
        assert_eq!(unescape("\\12"), b"\\12");
    }
}
