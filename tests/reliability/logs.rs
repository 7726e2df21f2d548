//! The daemon's log: bounded by rotation however much a busy mount logs, and in the
//! foreground under systemd, lines journald files by priority.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::*;

const LOG_MAX: u64 = 64 << 10;

/// A loop of opens, unknown ioctls and reads of a missing xattr, with debug logging (a
/// line per failed getxattr): hundreds of KiB of log, held under `--log-max 64K` by
/// rotation into daemon.log.1. The unknown ioctl is still reported once, and the end of
/// the mount is in the current file.
#[test]
fn daemon_log_stays_under_its_bound() {
    let vol = Vol::new("log-bound", &["-vv", "--log-max", "64K"]);
    vol.mount();
    let path = vol.path("f");
    fs::write(&path, b"data").unwrap();
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let rounds = 3000;
    let (mut largest, mut rotated_seen) = (0u64, false);
    let log = vol.store.join("daemon.log");
    let old = vol.store.join("daemon.log.1");
    for round in 0..rounds {
        let f = File::open(&path).unwrap();
        // SAFETY: TCGETS writes a termios into the zeroed one given.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, &mut t) }, -1);
        let mut buf = [0u8; 16];
        // SAFETY: a valid C path and name, and a buffer of the size given.
        let r =
            unsafe { libc::getxattr(c_path.as_ptr(), c"user.missing".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(r, -1);
        drop(f);
        if round % 100 == 0 {
            let total = size(&log) + size(&old);
            largest = largest.max(total);
            rotated_seen |= old.exists();
        }
    }
    vol.umount();
    let (current, rotated) =
        (fs::read_to_string(&log).unwrap_or_default(), fs::read_to_string(&old).unwrap_or_default());
    let total = (current.len() + rotated.len()) as u64;
    largest = largest.max(total);
    let mut failures = Vec::new();
    // A file is rotated once it reaches half the bound, so each ends at most one record
    // past it.
    if largest > LOG_MAX + 2 * 512 {
        failures.push(format!("the log took {largest} bytes, bound {LOG_MAX}"));
    }
    let getxattr_lines = current.lines().chain(rotated.lines()).filter(|l| l.contains("getxattr")).count();
    if !rotated_seen || rotated.is_empty() {
        failures.push("daemon.log was never rotated into daemon.log.1".into());
    }
    if getxattr_lines == 0 {
        failures.push("no getxattr line kept: debug logging did not reach the log".to_string());
    }
    let ioctl_lines = current.lines().chain(rotated.lines()).filter(|l| l.contains("ioctl")).count();
    if ioctl_lines > 1 {
        failures.push(format!("the unknown ioctl was logged {ioctl_lines} times"));
    }
    if !current.lines().last().is_some_and(|l| l.contains("unmounted")) {
        failures.push(format!("daemon.log does not end with the unmount: {:?}", current.lines().last()));
    }
    if let Some(bad) = current.lines().chain(rotated.lines()).find(|l| !l.starts_with('[')) {
        failures.push(format!("a line that is not a whole record (cut by a rotation?): {bad:?}"));
    }
    summary(&format!(
        "logs: {rounds} rounds of open, ioctl and getxattr at -vv: the log peaked at {largest} bytes under --log-max {LOG_MAX} ({} + {} at the end): {}",
        current.len(),
        rotated.len(),
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `s2sfs mount --foreground` with stderr connected as systemd connects a service's
/// (JOURNAL_STREAM names it): every line starts with a syslog priority and carries no
/// timestamp of its own.
#[test]
fn foreground_logs_under_systemd_carry_priorities() {
    let vol = Vol::new("log-journal", &[]);
    let err_path = vol.base.path().join("stderr");
    let err = File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    let mut child = Command::new(BIN)
        .args(vol.mount_args())
        .arg("--foreground")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(&vol.mnt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mounted = is_mounted(&vol.mnt);
    if mounted {
        vol.umount();
    }
    let status = timed("the foreground daemon exiting", Duration::from_secs(30), move || child.wait());
    let text = fs::read_to_string(&err_path).unwrap();
    let mut failures = Vec::new();
    if !mounted {
        failures.push("the foreground mount never came up".to_string());
    }
    if !status.as_ref().is_ok_and(|s| s.success()) {
        failures.push(format!("the foreground daemon exited with {status:?}"));
    }
    if !text.lines().any(|l| l.starts_with("<6>") && l.contains("mounted")) {
        failures.push("no \"<6>…mounted\" line".to_string());
    }
    if let Some(bad) = text.lines().find(|l| !(l.starts_with('<') && l.as_bytes().get(2) == Some(&b'>'))) {
        failures.push(format!("a line without a priority: {bad:?}"));
    }
    summary(&format!(
        "logs: foreground under JOURNAL_STREAM: {} lines, each with a syslog priority: {}",
        text.lines().count(),
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}\n--- stderr ---\n{text}", failures.join("\n"));
}

fn size(p: &std::path::Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}
