//! The mount harness and the small helpers every mounted test shares.
//!
//! `Mounted` owns a private temp directory holding `store/` and `mnt/`, mounts with the real
//! `s2sfs` binary (background mode: the command returns once the mount is live) and always
//! unmounts on drop, so a failing test never leaves a mount behind.

#![allow(dead_code)]

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_s2sfs");
/// What mount(8) runs for `mount -t s2sfs` and fstab entries.
pub const MOUNT_HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mount-helper/mount.s2sfs");
pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;
/// The default logical block size of a volume (ARCHITECTURE.md: 128 KiB).
pub const BLOCK: usize = 128 * KIB;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(90);

/// What one run of the command line gave back.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn describe(&self) -> String {
        format!("status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs the `s2sfs` binary with `args`. Output goes to anonymous files, not pipes: a
/// daemon that inherits them cannot make the wait hang. `path_env` replaces PATH.
pub fn run_cli<S: AsRef<OsStr>>(args: &[S], path_env: Option<&OsStr>, timeout: Duration) -> CliOutput {
    let mut cmd = Command::new(BIN);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    run_command(cmd, args, timeout)
}

/// Runs `cmd` with `args` as [`run_cli`] runs the binary.
pub fn run_command<S: AsRef<OsStr>>(mut cmd: Command, args: &[S], timeout: Duration) -> CliOutput {
    let mut out = tempfile::tempfile().expect("temp file for stdout");
    let mut err = tempfile::tempfile().expect("temp file for stderr");
    cmd.args(args).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for s2sfs") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let argv: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!("`{program} {}` did not finish within {:?}", argv.join(" "), timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_string(&mut stdout).ok();
    err.seek(SeekFrom::Start(0)).unwrap();
    err.read_to_string(&mut stderr).ok();
    CliOutput { status, stdout, stderr }
}

/// A private directory under std::env::temp_dir(), world-traversable (mode 0755) so that the
/// permission tests' other user can reach the mount point below it.
pub fn test_dir(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("s2sfs-{tag}-"))
        .tempdir_in(std::env::temp_dir())
        .expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Undoes the octal escapes of /proc/self/mountinfo (`\040` for a space, ...).
fn unescape_mountinfo(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsStr::from_bytes(&out).to_owned()
}

/// The filesystem type of whatever is mounted exactly at `path`, if anything.
pub fn mount_fstype(path: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut found = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 5 {
            continue;
        }
        if Path::new(&unescape_mountinfo(fields[4])) == path {
            let sep = fields.iter().position(|f| *f == "-");
            // Later lines are mounted on top of earlier ones: keep the last.
            found = Some(sep.and_then(|i| fields.get(i + 1)).unwrap_or(&"?").to_string());
        }
    }
    found
}

pub fn is_mounted(path: &Path) -> bool {
    mount_fstype(path).is_some()
}

/// A live s2sfs mount on a store of its own.
pub struct Mounted {
    pub store: PathBuf,
    pub mnt: PathBuf,
    args: Vec<OsString>,
    live: bool,
    // Last field: dropped after Drop::drop has unmounted.
    pub base: tempfile::TempDir,
}

impl Mounted {
    /// A fresh store and mount point, mounted with `extra` arguments appended.
    pub fn new(extra: &[&str]) -> Mounted {
        let base = test_dir("mnt");
        let store = base.path().join("store");
        let mnt = base.path().join("mnt");
        fs::create_dir(&store).unwrap();
        fs::create_dir(&mnt).unwrap();
        let mut m = Mounted { store, mnt, args: extra.iter().map(OsString::from).collect(), live: false, base };
        m.mount();
        m
    }

    /// `base/NAME`: a path beside the store and the mount point (not inside the mount).
    pub fn outside(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// A path inside the mounted filesystem.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn mount_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> =
            vec!["mount".into(), self.mnt.clone().into(), "--store".into(), self.store.clone().into()];
        a.extend(self.args.iter().cloned());
        a
    }

    pub fn mount(&mut self) {
        assert!(!self.live, "already mounted");
        let out = run_cli(&self.mount_args(), None, MOUNT_TIMEOUT);
        assert!(out.status.success(), "`s2sfs mount` failed: {}", out.describe());
        self.live = true;
        let fstype = mount_fstype(&self.mnt);
        assert!(
            fstype.is_some(),
            "`s2sfs mount` returned 0 but {} is not a mount point: {}",
            self.mnt.display(),
            out.describe()
        );
        let fstype = fstype.unwrap();
        assert!(fstype.starts_with("fuse"), "{} is mounted with type {fstype}, expected fuse*", self.mnt.display());
    }

    pub fn unmount(&mut self) {
        assert!(self.live, "not mounted");
        let out = run_cli(&["umount".as_ref(), self.mnt.as_os_str()], None, MOUNT_TIMEOUT);
        self.live = is_mounted(&self.mnt);
        assert!(out.status.success(), "`s2sfs umount` failed: {}", out.describe());
        assert!(!self.live, "`s2sfs umount` returned 0 but {} is still mounted", self.mnt.display());
    }

    /// Unmounts with another program than `s2sfs umount` (`umount`, `fusermount3 -u`),
    /// which returns once the kernel has let go of the mount, not the daemon of the store.
    pub fn unmount_with(&mut self, program: &str, args: &[&str]) {
        assert!(self.live, "not mounted");
        let mut cmd = Command::new(program);
        cmd.args(args);
        let out = run_command(cmd, &[self.mnt.as_os_str()], MOUNT_TIMEOUT);
        self.live = is_mounted(&self.mnt);
        assert!(out.status.success(), "`{program}` failed: {}", out.describe());
        assert!(!self.live, "`{program}` returned 0 but {} is still mounted", self.mnt.display());
    }

    /// Unmounts, then mounts the same store through the mount helper with `-o options`, as
    /// `mount -t s2sfs STORE MNT -o OPTIONS` (or an fstab line) does.
    pub fn remount_via_helper(&mut self, options: &str) {
        self.unmount();
        let mut cmd = Command::new(MOUNT_HELPER);
        cmd.env("S2SFS", BIN);
        let args = [self.store.as_os_str(), self.mnt.as_os_str(), OsStr::new("-o"), OsStr::new(options)];
        let out = run_command(cmd, &args, MOUNT_TIMEOUT);
        assert!(out.status.success(), "mount.s2sfs failed: {}", out.describe());
        self.live = is_mounted(&self.mnt);
        assert!(self.live, "mount.s2sfs returned 0 but {} is not mounted: {}", self.mnt.display(), out.describe());
    }

    /// Unmount and mount the same store again: every cache (ours and the kernel's) is cold.
    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    /// Runs `check` on this mount, remounts and runs it again: the first time the data may
    /// still come from the daemon's memory or the kernel's page cache, the second time only
    /// from the store. `check` gets "before the remount" or "after the remount" for its
    /// messages, since both runs fail on the same line.
    pub fn check_across_remount(&mut self, check: impl Fn(&Mounted, &str)) {
        check(self, "before the remount");
        self.remount();
        check(self, "after the remount");
    }

    /// [`Mounted::check_across_remount`] for one file's whole contents.
    pub fn assert_file_eq_across_remount(&mut self, path: &Path, want: &[u8]) {
        self.check_across_remount(|_, when| {
            let got = fs::read(path).unwrap_or_else(|e| panic!("read {} {when}: {e}", path.display()));
            assert_bytes_eq(&got, want, &format!("{} {when}", path.display()));
        });
    }

    /// Mount (it is unmounted) with different extra arguments from now on.
    pub fn mount_with(&mut self, extra: &[&str]) {
        self.args = extra.iter().map(OsString::from).collect();
        self.mount();
    }

    /// Remount with different extra arguments from now on.
    pub fn remount_with(&mut self, extra: &[&str]) {
        self.unmount();
        self.args = extra.iter().map(OsString::from).collect();
        self.mount();
    }

    /// The normal end of a test: unmount, and check that it worked.
    pub fn finish(mut self) {
        self.unmount();
    }

    /// Pids of s2sfs daemons serving this mount point.
    pub fn daemon_pids(&self) -> Vec<i32> {
        daemon_pids(&self.mnt)
    }

    /// Kills the daemon with SIGKILL (a crash), then detaches the dead mount.
    pub fn kill_daemon(&mut self) {
        let pids = self.daemon_pids();
        assert!(!pids.is_empty(), "no s2sfs daemon process found for {}", self.mnt.display());
        kill9(&pids);
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).stderr(Stdio::null()).status();
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).stderr(Stdio::null()).status();
        }
        assert!(!is_mounted(&self.mnt), "could not detach the dead mount {}", self.mnt.display());
        self.live = false;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !is_mounted(&self.mnt) {
            return;
        }
        let _ = run_cli_quiet(&["umount".as_ref(), self.mnt.as_os_str()]);
        for args in [&["-u"][..], &["-uz"][..]] {
            if !is_mounted(&self.mnt) {
                return;
            }
            let _ = Command::new("fusermount3")
                .args(args)
                .arg(&self.mnt)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).stderr(Stdio::null()).status();
        }
    }
}

/// `s2sfs ARGS` for cleanup paths: never panics, gives up after a while.
fn run_cli_quiet(args: &[&OsStr]) -> Option<ExitStatus> {
    let mut child =
        Command::new(BIN).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- data and comparisons

/// Incompressible pseudo-random bytes (xorshift64*), reproducible from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text, different in every line (so no two blocks are equal), from `seed`.
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    let words = ["alpha", "block", "codec", "delta", "frame", "gamma", "inode", "zstd", "pack", "sled"];
    let mut out = Vec::with_capacity(len + 128);
    let mut n: u64 = 0;
    while out.len() < len {
        let w = words[((n * 7 + seed) % words.len() as u64) as usize];
        out.extend_from_slice(
            format!("{seed:04} line {n:09}: the {w} of s2sfs keeps every byte it was given, {w}.\n").as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

pub fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

pub fn hash_file(path: &Path) -> String {
    hash(&fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// Asserts two byte strings are equal, naming the first difference instead of dumping them.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let ctx = |d: &[u8]| d[first.min(d.len())..(first + 16).min(d.len())].to_vec();
    panic!(
        "{what}: contents differ: got {} bytes, want {} bytes; first difference at offset {first} \
         (block {} + {}): got {:02x?}, want {:02x?}",
        got.len(),
        want.len(),
        first / BLOCK,
        first % BLOCK,
        ctx(got),
        ctx(want)
    );
}

#[track_caller]
pub fn assert_file_eq(path: &Path, want: &[u8]) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_bytes_eq(&got, want, &path.display().to_string());
}

/// The errno of a call that must fail.
#[track_caller]
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("error without errno: {e}")),
    }
}

/// Result of a libc call returning -1 on error, as io::Result.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

pub fn cvt_ssize(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as usize) }
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Reads `len` bytes at `off` (fewer at end of file).
pub fn pread(f: &File, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

/// Sum of the sizes of all files under `dir` (recursively).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        if md.is_dir() {
            total += tree_size(&e.path());
        } else {
            total += md.len();
        }
    }
    total
}

/// Sorted names of a directory (without "." and "..").
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub fn statvfs(path: &Path) -> libc::statvfs {
    let c = cpath(path);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) }).expect("statvfs");
    st
}

/// Used inodes as statfs reports them.
pub fn used_inodes(path: &Path) -> u64 {
    let st = statvfs(path);
    st.f_files - st.f_ffree
}

/// A small deterministic generator for test workloads (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// SIGKILL to each pid, then waits until all have exited.
pub fn kill9(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: kill(2) on a pid found serving one of our own mount points.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| has_exited(p)) {
        assert!(Instant::now() < deadline, "s2sfs daemon {pids:?} did not die after SIGKILL");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether every thread of process `pid` has exited, so that its descriptors (the store's
/// lock, the control socket) are closed. A killed process stays a zombie until reaped, and
/// its main thread turns zombie while the others may still be exiting (one in the middle
/// of an fsync, say): each thread's state says.
pub fn has_exited(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    tasks.flatten().all(|task| {
        fs::read_to_string(task.path().join("stat"))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(true)
    })
}

/// Pids of the s2sfs daemons serving `mnt` (found through /proc/*/cmdline).
pub fn daemon_pids(mnt: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = mnt.as_os_str().as_bytes();
    let mut pids = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return pids };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_s2sfs = args.first().is_some_and(|a| a.ends_with(b"s2sfs"));
        if is_s2sfs && args.contains(&want) && args.contains(&&b"mount"[..]) {
            pids.push(pid);
        }
    }
    pids
}
