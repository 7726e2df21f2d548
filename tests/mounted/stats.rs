//! Statistics of a mounted volume: the root directory's xattr `user.s2sfs.stats`, and
//! `s2sfs stats` / `s2sfs models` through the daemon and on the unmounted store.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

const STATS: &str = "user.s2sfs.stats";
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// getxattr(2) as getfattr does it: ask for the size, then read that much.
fn get_xattr(path: &Path, name: &str) -> io::Result<(usize, Vec<u8>)> {
    let p = cpath(path);
    let n = std::ffi::CString::new(name).unwrap();
    let size = cvt_ssize(unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    let got = cvt_ssize(unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(got);
    Ok((size, buf))
}

fn list_xattrs(path: &Path) -> Vec<String> {
    let p = cpath(path);
    let mut buf = vec![0u8; 64 * 1024];
    let n = cvt_ssize(unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }).expect("listxattr");
    buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The JSON of `s2sfs ARGS` (which must succeed and print one line).
fn cli_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = run_cli(args, None, CLI_TIMEOUT);
    assert!(out.status.success(), "`s2sfs {args:?}` failed: {}", out.describe());
    assert_eq!(out.stdout.trim_end().lines().count(), 1, "one line: {}", out.describe());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.describe()))
}

#[test]
fn stats_xattr_and_commands_report_the_volume() {
    let mut m = Mounted::new(&[]);
    let text = text_bytes(60, 4 * MIB);
    write_synced(&m.path("text"), &text);
    let random = random_bytes(61, MIB);
    write_synced(&m.path("random"), &random);
    write_synced(&m.path("copy"), &random);
    // One block of data at block 10 of a 20-block file: 19 blocks of holes.
    let f = File::create(m.path("sparse")).unwrap();
    f.write_all_at(&text_bytes(62, BLOCK), 10 * BLOCK as u64).unwrap();
    f.set_len(20 * BLOCK as u64).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let logical = (4 * MIB + 2 * MIB + 20 * BLOCK) as u64;

    // The xattr: its size probe gives the length the read then returns, one line of JSON.
    let (size, value) = get_xattr(&m.mnt, STATS).expect("getxattr user.s2sfs.stats on the root");
    assert_eq!(size, value.len(), "the size probe and the read agree");
    assert!(!value.contains(&b'\n'));
    let s: serde_json::Value = serde_json::from_slice(&value).expect("the xattr is JSON");
    for key in [
        "store",
        "block_size",
        "files",
        "logical_bytes",
        "referenced_bytes",
        "hole_bytes",
        "unique_bytes",
        "dedup_saved_bytes",
        "stored_bytes",
        "blocks",
        "references",
        "dirty_bytes",
        "disk",
        "ratio",
        "ratio_on_disk",
        "codecs",
        "models",
        "recompression",
        "cache",
    ] {
        assert!(s.get(key).is_some(), "{key} missing from {s}");
    }
    for key in ["pack_files", "pack_bytes", "pack_disk_bytes", "meta_bytes", "models_bytes", "total_bytes"] {
        assert!(s["disk"].get(key).is_some(), "disk.{key} missing from {s}");
    }
    for key in ["hits", "misses", "hit_rate", "blocks", "bytes", "capacity_bytes"] {
        assert!(s["cache"].get(key).is_some(), "cache.{key} missing from {s}");
    }
    assert_eq!(u(&s, "files"), 4);
    assert_eq!(u(&s, "logical_bytes"), logical);
    assert_eq!(u(&s, "hole_bytes"), 19 * BLOCK as u64);
    assert_eq!(u(&s, "referenced_bytes") + u(&s, "hole_bytes"), logical);
    assert_eq!(u(&s, "dedup_saved_bytes"), MIB as u64, "the copy is deduplicated");
    assert_eq!(u(&s, "unique_bytes"), u(&s, "referenced_bytes") - MIB as u64);
    // Per codec: the rows' stored bytes add up to the total; random data is raw, text zstd.
    let codecs = s["codecs"].as_object().unwrap();
    for name in ["raw", "zstd", "t5"] {
        assert!(codecs.contains_key(name), "codecs.{name} missing from {s}");
    }
    let sum = |key: &str| codecs.values().map(|c| u(c, key)).sum::<u64>();
    assert_eq!(sum("stored_bytes"), u(&s, "stored_bytes"));
    assert_eq!(sum("blocks"), u(&s, "blocks"));
    assert_eq!(sum("logical_bytes"), u(&s, "referenced_bytes"));
    assert_eq!(u(&s["codecs"]["raw"], "unique_bytes"), MIB as u64);
    assert!(u(&s["codecs"]["zstd"], "unique_bytes") >= 4 * MIB as u64);
    assert_eq!(u(&s["codecs"]["t5"], "blocks"), 0);
    let d = &s["disk"];
    assert_eq!(u(d, "total_bytes"), u(d, "pack_disk_bytes") + u(d, "meta_bytes") + u(d, "models_bytes"));
    let ratio = s["ratio"].as_f64().unwrap();
    assert!((ratio - logical as f64 / u(&s, "stored_bytes") as f64).abs() < 1e-9);
    assert!(ratio > 1.5, "text, dedup and holes: ratio {ratio}");
    assert_eq!(s["models"], serde_json::json!([]), "a zstd volume has no models");

    // Not listed (so cp -a, rsync -X and getfattr -d leave it alone), not settable.
    assert!(!list_xattrs(&m.mnt).iter().any(|n| n == STATS), "{:?}", list_xattrs(&m.mnt));
    let (p, n) = (cpath(&m.mnt), std::ffi::CString::new(STATS).unwrap());
    let set = cvt(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), b"x".as_ptr().cast(), 1, 0) });
    assert_eq!(errno_of(set), libc::EOPNOTSUPP);
    assert_eq!(errno_of(cvt(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })), libc::EOPNOTSUPP);

    // `s2sfs stats MOUNT --json`: the same JSON, from the daemon.
    let j = cli_json(&["stats".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]);
    for key in ["files", "logical_bytes", "hole_bytes", "unique_bytes", "stored_bytes", "blocks"] {
        assert_eq!(j[key], s[key], "{key}: the command and the xattr disagree");
    }
    assert!(j["cache"].is_object() && j["recompression"].is_object());
    // ...and as tables, also given the store of the mount.
    let out = run_cli(&["stats".as_ref(), m.mnt.as_os_str()], None, CLI_TIMEOUT);
    assert!(out.status.success(), "{}", out.describe());
    for want in ["logical", "holes", "stored frames", "store on disk", "raw", "zstd", "t5", "total", "block cache"] {
        assert!(out.stdout.contains(want), "{want:?} missing: {}", out.describe());
    }
    let by_store = cli_json(&["stats".as_ref(), "--store".as_ref(), m.store.as_os_str(), "--json".as_ref()]);
    assert_eq!(by_store["logical_bytes"], s["logical_bytes"]);
    // `s2sfs models`: none here.
    let out = run_cli(&["models".as_ref(), m.mnt.as_os_str()], None, CLI_TIMEOUT);
    assert!(out.status.success() && out.stdout.contains("no models"), "{}", out.describe());
    assert_eq!(cli_json(&["models".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]), serde_json::json!([]));

    // Not a mount point: a one-line error.
    let out = run_cli(&["stats".as_ref(), m.base.path().as_os_str()], None, CLI_TIMEOUT);
    assert!(!out.status.success() && out.stderr.contains("not mounted"), "{}", out.describe());

    // Unmounted: the store is read directly; no cache, no recompression.
    m.unmount();
    let off = cli_json(&["stats".as_ref(), "--store".as_ref(), m.store.as_os_str(), "--json".as_ref()]);
    for key in ["files", "logical_bytes", "hole_bytes", "unique_bytes", "stored_bytes"] {
        assert_eq!(off[key], s[key], "{key}: the unmounted store disagrees");
    }
    assert!(off["cache"].is_null() && off["recompression"].is_null());
    assert_eq!(
        cli_json(&["models".as_ref(), "--store".as_ref(), m.store.as_os_str(), "--json".as_ref()]),
        serde_json::json!([])
    );
    // It can be mounted again right away, and was not marked as crashed.
    m.mount();
    assert_file_eq(&m.path("copy"), &random);
    m.finish();
}
