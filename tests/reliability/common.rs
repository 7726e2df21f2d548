//! What the reliability tests share: a volume that can be crashed (`Vol`), fsck runs with
//! their JSON report, timeouts around every filesystem operation that could hang, copies
//! and snapshots of directories, and the one-line summaries the tests print.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Upper bound for one filesystem operation or one command: past it, the test calls it a hang.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints a one-line result that shows in `cargo test` output whether or not the test
/// passes: written to the process's stderr directly, which the test harness does not capture.
pub fn summary(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "[reliability] {line}");
}

/// Runs `f` on a helper thread and waits at most `limit` for it: a hang becomes a test
/// failure naming `what` instead of a stuck test binary. (The helper thread is left
/// behind; the volume's cleanup kills the daemon, which ends any stuck FUSE call.)
#[track_caller]
pub fn timed<T: Send + 'static>(what: &str, limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("timed-op".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn helper thread");
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("HANG: {what} did not finish within {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked (see above)"),
    }
}

/// Reads a whole file through the mount, with a timeout.
#[track_caller]
pub fn read_timed(path: &Path) -> io::Result<Vec<u8>> {
    let p = path.to_path_buf();
    timed(&format!("reading {}", path.display()), OP_TIMEOUT, move || fs::read(p))
}

/// `pread` of `len` bytes at `off`, with a timeout.
#[track_caller]
pub fn pread_timed(path: &Path, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let p = path.to_path_buf();
    timed(&format!("pread {} at {off}", path.display()), OP_TIMEOUT, move || {
        let f = fs::File::open(p)?;
        pread(&f, off, len)
    })
}

/// Sorted names in a directory through the mount, with a timeout.
#[track_caller]
pub fn list_timed(dir: &Path) -> io::Result<Vec<String>> {
    let d = dir.to_path_buf();
    timed(&format!("listing {}", dir.display()), OP_TIMEOUT, move || {
        let mut v = Vec::new();
        for e in fs::read_dir(d)? {
            v.push(e?.file_name().to_string_lossy().into_owned());
        }
        v.sort();
        Ok(v)
    })
}

/// Runs `s2sfs ARGS` with the harness's timeout (a hang fails the test).
pub fn s2sfs<S: AsRef<OsStr>>(args: &[S]) -> CliOutput {
    run_cli(args, None, CLI_TIMEOUT)
}

pub fn exit_code(out: &CliOutput) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The first non-empty line of a command's stderr.
pub fn first_line(s: &str) -> &str {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// One `s2sfs fsck --json` run.
pub struct Fsck {
    pub code: i32,
    pub report: serde_json::Value,
    pub out: CliOutput,
}

impl Fsck {
    /// Problems of the first pass: (kind, path or "-", detail).
    pub fn problems(&self) -> Vec<(String, String, String)> {
        problem_list(&self.report["problems"])
    }
    /// Problems that remain after a repair (its second pass).
    pub fn remaining(&self) -> Vec<(String, String, String)> {
        problem_list(&self.report["after_repair"]["problems"])
    }
    /// Paths of the first pass's problems of `kind`.
    pub fn paths_of(&self, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = self.problems().into_iter().filter(|p| p.0 == kind).map(|p| p.1).collect();
        v.sort();
        v.dedup();
        v
    }
    pub fn describe(&self) -> String {
        let probs: Vec<String> = self.problems().iter().map(|(k, p, d)| format!("{k}: {p}: {d}")).collect();
        format!("exit {}; problems: [{}]\n{}", self.code, probs.join("; "), self.out.describe())
    }
}

fn problem_list(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["kind"].as_str().unwrap_or("?").to_string(),
                        p["path"].as_str().unwrap_or("-").to_string(),
                        p["detail"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `s2sfs fsck --store STORE --json [--repair]`.
pub fn fsck(store: &Path, repair: bool) -> Fsck {
    let mut args: Vec<OsString> = vec!["fsck".into(), "--store".into(), store.into(), "--json".into()];
    if repair {
        args.push("--repair".into());
    }
    let out = s2sfs(&args);
    let report = serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null);
    Fsck { code: exit_code(&out), report, out }
}

/// A store and a mount point under a private temp dir, mounted and unmounted with the real
/// binary. Unlike the harness's `Mounted` it can crash its daemon and clean up the dead
/// mount with `s2sfs umount`, and its store may live on a small tmpfs. Dropping it always
/// unmounts (and kills a daemon that will not go), so a failing test leaves nothing behind.
pub struct Vol {
    pub store: PathBuf,
    pub mnt: PathBuf,
    pub extra: Vec<String>,
    /// A tmpfs mounted at `store`, unmounted on drop.
    tmpfs: bool,
    // Last: removed after Drop::drop has unmounted.
    pub base: tempfile::TempDir,
}

impl Vol {
    /// A fresh (not yet created) store and an empty mount point; nothing mounted yet.
    pub fn new(tag: &str, extra: &[&str]) -> Vol {
        let base = test_dir(tag);
        let store = base.path().join("store");
        let mnt = base.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        Vol { store, mnt, extra: extra.iter().map(|s| s.to_string()).collect(), tmpfs: false, base }
    }

    /// As `new`, with the store directory on a tmpfs of `size` (e.g. "24m").
    pub fn on_tmpfs(tag: &str, size: &str, extra: &[&str]) -> Vol {
        let mut v = Vol::new(tag, extra);
        fs::create_dir(&v.store).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&v.store)
            .status()
            .expect("run mount(8)");
        assert!(st.success(), "mount -t tmpfs -o size={size} on {} failed (root needed)", v.store.display());
        v.tmpfs = true;
        v
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn mount_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> =
            vec!["mount".into(), self.mnt.clone().into(), "--store".into(), self.store.clone().into()];
        a.extend(self.extra.iter().map(OsString::from));
        a
    }

    pub fn try_mount(&self) -> CliOutput {
        s2sfs(&self.mount_args())
    }

    #[track_caller]
    pub fn mount(&self) {
        let out = self.try_mount();
        assert!(out.status.success(), "`s2sfs mount` failed: {}", out.describe());
        assert!(is_mounted(&self.mnt), "`s2sfs mount` returned 0 but {} is not mounted", self.mnt.display());
    }

    /// `s2sfs umount`; "busy" is retried for a while: a process this test binary is
    /// starting at that moment (another test's command) holds a copy of every descriptor
    /// it has open, one on the mount too, until its exec.
    pub fn try_umount(&self) -> CliOutput {
        self.try_umount_counting_busy().0
    }

    /// `try_umount`, and how many tries answered "busy" first.
    fn try_umount_counting_busy(&self) -> (CliOutput, usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut busy = 0;
        loop {
            let out = s2sfs(&[OsStr::new("umount"), self.mnt.as_os_str()]);
            if out.status.success() || !out.stderr.contains("busy") || Instant::now() >= deadline {
                return (out, busy);
            }
            busy += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    pub fn umount(&self) {
        let out = self.try_umount();
        if !out.status.success() {
            let log = fs::read_to_string(self.store.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("`s2sfs umount` failed: {}\n--- end of daemon.log ---\n{}", out.describe(), tail.join("\n"));
        }
        assert!(!is_mounted(&self.mnt), "`s2sfs umount` returned 0 but {} is still mounted", self.mnt.display());
    }

    pub fn pids(&self) -> Vec<i32> {
        daemon_pids(&self.mnt)
    }

    /// Cleans up after a killed daemon: `s2sfs umount` must handle the dead mount; if it
    /// does not, the mount is detached by force and the failure returned. Ok gives how many
    /// tries answered "busy" first (`try_umount`).
    pub fn clean_dead_mount(&self) -> Result<usize, String> {
        if !is_mounted(&self.mnt) {
            return Ok(0);
        }
        let (out, busy) = self.try_umount_counting_busy();
        let still = is_mounted(&self.mnt);
        if out.status.success() && !still {
            return Ok(busy);
        }
        let users = users_of(&self.mnt);
        force_detach(&self.mnt);
        Err(format!(
            "`s2sfs umount` of the dead mount failed (still mounted: {still}; processes using it: {users:?}): {}",
            out.describe()
        ))
    }

    /// SIGKILL to the daemon (a crash), then `s2sfs umount` of the dead mount.
    pub fn crash(&self) -> Result<usize, String> {
        let pids = self.pids();
        assert!(!pids.is_empty(), "no s2sfs daemon found for {}", self.mnt.display());
        kill9(&pids);
        self.clean_dead_mount()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.store.join("daemon.log")).unwrap_or_default()
    }

    /// The lines of STORE/daemon.log that report a panic.
    pub fn panics(&self) -> Vec<String> {
        self.log().lines().filter(|l| l.contains("panicked")).map(str::to_string).collect()
    }

    pub fn fsck(&self, repair: bool) -> Fsck {
        fsck(&self.store, repair)
    }
}

/// Processes with an open file or their working directory under `mnt` (from /proc).
pub fn users_of(mnt: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let mut links: Vec<PathBuf> =
            ["cwd", "root"].iter().filter_map(|l| fs::read_link(e.path().join(l)).ok()).collect();
        if let Ok(fds) = fs::read_dir(e.path().join("fd")) {
            links.extend(fds.flatten().filter_map(|f| fs::read_link(f.path()).ok()));
        }
        if links.iter().any(|l| l.starts_with(mnt)) {
            let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            out.push(format!("{pid} {}", comm.trim()));
        }
    }
    out
}

/// `fusermount3 -uz`, then `umount -l`: detaches whatever is mounted at `mnt`.
pub fn force_detach(mnt: &Path) {
    let _ = Command::new("fusermount3").arg("-uz").arg(mnt).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if is_mounted(mnt) {
        let _ = Command::new("umount").arg("-l").arg(mnt).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

impl Drop for Vol {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let out = Command::new(BIN)
                .arg("umount")
                .arg(&self.mnt)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok();
            if let Some(mut child) = out {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(30) {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if is_mounted(&self.mnt) {
            force_detach(&self.mnt);
        }
        // A daemon that is still around after all that (hung) is killed: it is ours.
        let pids = self.pids();
        if !pids.is_empty() {
            for &pid in &pids {
                // SAFETY: kill(2) on the daemon of our own mount point.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pids.iter().all(|&p| has_exited(p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.tmpfs {
            let st = Command::new("umount").arg(&self.store).stderr(Stdio::null()).status();
            if !st.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount").arg("-l").arg(&self.store).stderr(Stdio::null()).status();
            }
        }
    }
}

/// Copies a directory tree (directories and regular files).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if ft.is_file() {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Replaces `store` with a copy of `pristine`.
pub fn restore(pristine: &Path, store: &Path) {
    if store.exists() {
        fs::remove_dir_all(store).unwrap();
    }
    copy_tree(pristine, store);
}

/// Every entry under `dir` (recursively) with its type, size and mtime: what a command
/// that must change nothing is compared on. Absent `dir` gives an empty map.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else { continue };
            let kind = if md.is_dir() {
                "dir"
            } else if md.is_file() {
                "file"
            } else {
                "other"
            };
            out.insert(
                p.clone(),
                format!("{kind} mode {:o} size {} mtime {}.{:09}", md.mode(), md.len(), md.mtime(), md.mtime_nsec()),
            );
            if md.is_dir() && !is_mounted(&p) {
                walk(&p, out);
            }
        }
    }
    if let Ok(md) = fs::symlink_metadata(dir) {
        out.insert(dir.to_path_buf(), format!("root mtime {}.{:09}", md.mtime(), md.mtime_nsec()));
    }
    walk(dir, &mut out);
    out
}

/// What differs between two snapshots, one line each.
pub fn snapshot_diff(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, v) in before {
        match after.get(p) {
            None => d.push(format!("removed {}", p.display())),
            Some(w) if w != v => d.push(format!("changed {}: {v} -> {w}", p.display())),
            _ => {}
        }
    }
    for p in after.keys() {
        if !before.contains_key(p) {
            d.push(format!("created {}", p.display()));
        }
    }
    d
}

/// getxattr(2) of `name` on `path`.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let c = cpath(path);
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid NUL-terminated strings and a buffer of the size passed.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = cvt_ssize(r)?;
    buf.truncate(len);
    Ok(buf)
}

/// The raw errno of an io::Error, or -1.
pub fn errno_or(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

pub fn errno_name(e: i32) -> String {
    match e {
        libc::EIO => "EIO".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ENOTCONN => "ENOTCONN".into(),
        libc::ECONNABORTED => "ECONNABORTED".into(),
        libc::EDQUOT => "EDQUOT".into(),
        libc::EEXIST => "EEXIST".into(),
        libc::EBADF => "EBADF".into(),
        libc::EINVAL => "EINVAL".into(),
        n => format!("errno {n}"),
    }
}

/// A seed: `VAR` from the environment (decimal or 0x-hex) or, without it, the clock.
pub fn seed_from_env(var: &str) -> u64 {
    if let Ok(s) = std::env::var(var) {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("{var}={s:?} is not a number"));
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
}

/// The pack files of a store, sorted.
pub fn packs(store: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(store.join("packs"))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pack")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Frame boundaries of a pack file: (offset, length) of each frame after the 16-byte
/// pack header (frame = 60-byte header, payload length at header offset 44).
pub fn frames_of(pack: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 16;
    while off + 60 <= pack.len() && &pack[off..off + 4] == b"S2F1" {
        let payload = u32::from_le_bytes(pack[off + 44..off + 48].try_into().unwrap()) as usize;
        let len = 60 + payload;
        if off + len > pack.len() {
            break;
        }
        out.push((off, len));
        off += len;
    }
    out
}

/// A file's name as the OS gives it.
pub fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// setxattr(2) of `name` = `value` on `path`.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path);
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a value buffer of the length passed.
    cvt(unsafe { libc::setxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}
