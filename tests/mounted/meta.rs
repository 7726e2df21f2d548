//! Metadata: modes, owners, timestamps, xattrs, statfs, name length.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;

fn ctime(p: &Path) -> (i64, i64) {
    let md = fs::metadata(p).unwrap();
    (md.ctime(), md.ctime_nsec())
}
fn mtime(p: &Path) -> (i64, i64) {
    let md = fs::metadata(p).unwrap();
    (md.mtime(), md.mtime_nsec())
}
fn atime(p: &Path) -> (i64, i64) {
    let md = fs::metadata(p).unwrap();
    (md.atime(), md.atime_nsec())
}
fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128
}
fn ns((s, n): (i64, i64)) -> i128 {
    s as i128 * 1_000_000_000 + n as i128
}

fn utimensat(p: &Path, atime: libc::timespec, mtime: libc::timespec) -> std::io::Result<()> {
    let c = cpath(p);
    let ts = [atime, mtime];
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) }).map(|_| ())
}
fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec { tv_sec: sec, tv_nsec: nsec }
}

#[test]
fn chmod_chown_and_timestamps() {
    let mut m = Mounted::new(&[]);
    let p = m.path("f");
    fs::write(&p, b"data").unwrap();

    // chmod: mode visible, ctime moves.
    let c0 = ctime(&p);
    std::thread::sleep(Duration::from_millis(30));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    assert!(ctime(&p) > c0, "ctime did not change on chmod: {:?} -> {:?}", c0, ctime(&p));
    fs::create_dir(m.path("d")).unwrap();
    fs::set_permissions(m.path("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(fs::metadata(m.path("d")).unwrap().mode() & 0o7777, 0o1777);

    // chown (we are root).
    let c1 = ctime(&p);
    std::thread::sleep(Duration::from_millis(30));
    std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert!(ctime(&p) > c1, "ctime did not change on chown");
    std::os::unix::fs::chown(&p, None, Some(42)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 42), "chown of the group only keeps the owner");

    // A write moves mtime and ctime.
    let (m0, c2) = (mtime(&p), ctime(&p));
    std::thread::sleep(Duration::from_millis(30));
    OpenOptions::new().append(true).open(&p).unwrap().write_all(b" more").unwrap();
    assert!(mtime(&p) > m0, "mtime did not change on write: {:?} -> {:?}", m0, mtime(&p));
    assert!(ctime(&p) > c2, "ctime did not change on write");

    // Explicit times, to the nanosecond.
    utimensat(&p, ts(1_000_000_000, 123_456_789), ts(1_234_567_890, 987_654_321)).unwrap();
    assert_eq!(atime(&p), (1_000_000_000, 123_456_789), "atime set by utimensat");
    assert_eq!(mtime(&p), (1_234_567_890, 987_654_321), "mtime set by utimensat");
    // Times before the epoch too (whole seconds: fuser 0.18 mangles the nanoseconds of
    // pre-1970 times it receives, see its time.rs TODO).
    utimensat(m.path("d").as_path(), ts(-86_400, 0), ts(-1_000_000, 0)).unwrap();
    assert_eq!(mtime(&m.path("d")), (-1_000_000, 0), "mtime before 1970");

    // UTIME_OMIT keeps atime; UTIME_NOW sets mtime to now.
    let before = now_ns();
    utimensat(&p, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_NOW)).unwrap();
    let after = now_ns();
    assert_eq!(atime(&p), (1_000_000_000, 123_456_789), "UTIME_OMIT changed atime");
    let mt = ns(mtime(&p));
    // The kernel's clock for UTIME_NOW is coarse (a tick): allow 100 ms before the call.
    assert!(
        mt >= before - 100_000_000 && mt <= after + 100_000_000,
        "UTIME_NOW gave mtime {mt}, call ran from {before} to {after}"
    );
    // And the other way round.
    utimensat(&p, ts(0, libc::UTIME_NOW), ts(0, libc::UTIME_OMIT)).unwrap();
    assert_eq!(ns(mtime(&p)), mt, "UTIME_OMIT changed mtime");
    let at = ns(atime(&p));
    assert!(at >= before - 100_000_000, "UTIME_NOW gave atime {at}");

    utimensat(&p, ts(1_111_111_111, 1), ts(1_222_222_222, 2)).unwrap();
    m.remount();
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640, "mode after remount");
    assert_eq!((md.uid(), md.gid()), (1234, 42), "owner after remount");
    assert_eq!(mtime(&p), (1_222_222_222, 2), "mtime after remount");
    assert_eq!(atime(&p), (1_111_111_111, 1), "atime after remount");
    assert_eq!(mtime(&m.path("d")), (-1_000_000, 0), "pre-1970 mtime after remount");
    assert_eq!(fs::metadata(m.path("d")).unwrap().mode() & 0o7777, 0o1777);
    m.finish();
}

fn setx(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> std::io::Result<()> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    cvt(unsafe { libc::setxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) }).map(|_| ())
}
/// getxattr with size probing: first the size, then the value.
fn getx(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    let size = cvt_ssize(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    let got = cvt_ssize(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) })?;
    assert_eq!(got, size, "getxattr {name}: size probe said {size}, read gave {got}");
    Ok(buf)
}
fn getx_sized(p: &Path, name: &str, size: usize) -> std::io::Result<Vec<u8>> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    let mut buf = vec![0u8; size];
    let got = cvt_ssize(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) })?;
    buf.truncate(got);
    Ok(buf)
}
fn listx(p: &Path) -> std::io::Result<Vec<String>> {
    let c = cpath(p);
    let size = cvt_ssize(unsafe { libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; size];
    let got = cvt_ssize(unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), size) })?;
    assert_eq!(got, size, "listxattr: size probe said {size}, read gave {got}");
    if size > 0 {
        assert_eq!(buf[size - 1], 0, "listxattr: list not NUL-terminated");
    }
    let mut v: Vec<String> =
        buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8(s.to_vec()).unwrap()).collect();
    v.sort();
    Ok(v)
}
fn removex(p: &Path, name: &str) -> std::io::Result<()> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    cvt(unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) }).map(|_| ())
}

#[test]
fn user_xattrs() {
    let mut m = Mounted::new(&[]);
    let p = m.path("x");
    fs::write(&p, b"").unwrap();
    assert_eq!(listx(&p).unwrap(), Vec::<String>::new());
    assert_eq!(errno_of(getx(&p, "user.none")), libc::ENODATA);

    setx(&p, "user.a", b"hello", 0).unwrap();
    let binary: Vec<u8> = (0..=255u8).chain(0..=255).collect();
    setx(&p, "user.bin", &binary, 0).unwrap();
    setx(&p, "user.empty", b"", 0).unwrap();
    let big = random_bytes(30, 4000);
    setx(&p, "user.big", &big, 0).unwrap();
    assert_eq!(getx(&p, "user.a").unwrap(), b"hello");
    assert_eq!(getx(&p, "user.bin").unwrap(), binary);
    assert_eq!(getx(&p, "user.empty").unwrap(), b"");
    assert_eq!(getx(&p, "user.big").unwrap(), big);
    assert_eq!(listx(&p).unwrap(), sorted(&["user.a", "user.big", "user.bin", "user.empty"]));

    // A buffer too small: ERANGE; exactly right: the value.
    assert_eq!(errno_of(getx_sized(&p, "user.a", 4)), libc::ERANGE);
    assert_eq!(getx_sized(&p, "user.a", 5).unwrap(), b"hello");
    let c = cpath(&p);
    let mut small = [0u8; 3];
    assert_eq!(
        errno_of(cvt_ssize(unsafe { libc::listxattr(c.as_ptr(), small.as_mut_ptr().cast(), small.len()) })),
        libc::ERANGE
    );

    // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
    assert_eq!(errno_of(setx(&p, "user.a", b"x", libc::XATTR_CREATE)), libc::EEXIST);
    assert_eq!(getx(&p, "user.a").unwrap(), b"hello", "failed XATTR_CREATE changed the value");
    assert_eq!(errno_of(setx(&p, "user.missing", b"x", libc::XATTR_REPLACE)), libc::ENODATA);
    assert_eq!(errno_of(getx(&p, "user.missing")), libc::ENODATA);
    setx(&p, "user.a", b"replaced", libc::XATTR_REPLACE).unwrap();
    setx(&p, "user.new", b"created", libc::XATTR_CREATE).unwrap();
    assert_eq!(getx(&p, "user.a").unwrap(), b"replaced");

    // Remove.
    removex(&p, "user.bin").unwrap();
    assert_eq!(errno_of(getx(&p, "user.bin")), libc::ENODATA);
    assert_eq!(errno_of(removex(&p, "user.bin")), libc::ENODATA);

    // On a directory too.
    fs::create_dir(m.path("d")).unwrap();
    setx(&m.path("d"), "user.dir", b"on a dir", 0).unwrap();

    // Another namespace: works, or is refused with EOPNOTSUPP; nothing else.
    let sec = setx(&p, "security.s2sfs-test", b"sec", 0);
    match &sec {
        Ok(()) => assert_eq!(getx(&p, "security.s2sfs-test").unwrap(), b"sec"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "security.* xattr: {e}"),
    }

    let mut want = sorted(&["user.a", "user.big", "user.empty", "user.new"]);
    if sec.is_ok() {
        want.push("security.s2sfs-test".into());
        want.sort();
    }
    m.remount();
    assert_eq!(listx(&p).unwrap(), want, "xattrs after remount");
    assert_eq!(getx(&p, "user.a").unwrap(), b"replaced");
    assert_eq!(getx(&p, "user.big").unwrap(), big);
    assert_eq!(getx(&p, "user.empty").unwrap(), b"");
    assert_eq!(getx(&m.path("d"), "user.dir").unwrap(), b"on a dir");

    // Removing the file's last name drops its xattrs with it; a new file has none.
    fs::remove_file(&p).unwrap();
    fs::write(&p, b"").unwrap();
    assert_eq!(listx(&p).unwrap(), Vec::<String>::new());
    m.finish();
}

#[test]
fn statfs_and_name_length() {
    let m = Mounted::new(&[]);
    let st = statvfs(&m.mnt);
    assert!(st.f_bsize > 0, "f_bsize {}", st.f_bsize);
    assert!(st.f_frsize > 0, "f_frsize {}", st.f_frsize);
    assert_eq!(st.f_namemax, 255, "f_namemax");
    assert!(st.f_blocks > 0, "f_blocks {}", st.f_blocks);
    assert!(st.f_bfree <= st.f_blocks, "f_bfree {} > f_blocks {}", st.f_bfree, st.f_blocks);
    assert!(st.f_bavail <= st.f_blocks, "f_bavail {} > f_blocks {}", st.f_bavail, st.f_blocks);
    assert!(st.f_ffree <= st.f_files, "f_ffree {} > f_files {}", st.f_ffree, st.f_files);

    let ok = "n".repeat(255);
    fs::write(m.path(&ok), b"ok").unwrap();
    assert_file_eq(&m.path(&ok), b"ok");
    let too_long = "n".repeat(256);
    assert_eq!(errno_of(fs::write(m.path(&too_long), b"no")), libc::ENAMETOOLONG);
    assert_eq!(errno_of(fs::create_dir(m.path(&too_long))), libc::ENAMETOOLONG);
    assert_eq!(errno_of(fs::metadata(m.path(&too_long))), libc::ENAMETOOLONG);
    m.finish();
}

/// (atime, mtime, ctime) in nanoseconds, as stat shows them right now.
fn times(p: &Path) -> (i128, i128, i128) {
    (ns(atime(p)), ns(mtime(p)), ns(ctime(p)))
}

/// A read of the whole file, as `cat` makes it.
fn cat(p: &Path) {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
}

/// A listing, as `ls` makes it.
fn ls(p: &Path) {
    let n = fs::read_dir(p).unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display())).count();
    assert!(n < 1000);
}

/// Lets the clock move past the times just stored.
fn tick() {
    std::thread::sleep(Duration::from_millis(20));
}

/// Asserts that `access` moved the atime of `p` (and only it) or left all times alone.
#[track_caller]
fn assert_access(p: &Path, access: fn(&Path), moves: bool, what: &str) {
    let before = times(p);
    tick();
    access(p);
    let after = times(p);
    if moves {
        assert!(after.0 > before.0, "{what}: atime did not move: {before:?} -> {after:?}");
        assert_eq!((after.1, after.2), (before.1, before.2), "{what}: mtime or ctime moved");
    } else {
        assert_eq!(after, before, "{what}: times changed");
    }
}

/// A directory `d` holding a file `d/f` just written: both have mtime and ctime after
/// their atime, so the next access counts under relatime too.
fn changed_dir_and_file(m: &Mounted) -> (std::path::PathBuf, std::path::PathBuf) {
    let (d, f) = (m.path("d"), m.path("d/f"));
    fs::create_dir_all(&d).unwrap();
    tick();
    fs::write(&f, b"aaa").unwrap();
    (d, f)
}

/// relatime, the default (xfstests generic/003): the first read and the first listing
/// after a change update atime, later ones do not. The written file's pages are in the
/// kernel's cache: the read counts through its open.
#[test]
fn atime_relatime_is_the_default() {
    let mut m = Mounted::new(&[]);
    let (d, f) = changed_dir_and_file(&m);
    assert_access(&f, cat, true, "relatime: first read after a write");
    assert_access(&f, cat, false, "relatime: second read");
    assert_access(&d, ls, true, "relatime: first listing after a change");
    assert_access(&d, ls, false, "relatime: second listing");
    OpenOptions::new().append(true).open(&f).unwrap().write_all(b"bbb").unwrap();
    assert_access(&f, cat, true, "relatime: first read after another write");
    // Cold caches: the reads reach the daemon, and still do not count twice.
    m.remount();
    assert_access(&f, cat, false, "relatime: read after remount");
    assert_access(&d, ls, false, "relatime: listing after remount");
    // `atime` undoes `noatime`: relatime again.
    m.remount_with(&["-o", "noatime,atime"]);
    fs::write(&f, b"ccc").unwrap();
    assert_access(&f, cat, true, "-o noatime,atime: first read after a write");
    m.finish();
}

/// strictatime: every read and every listing updates atime, whether the pages come from
/// the kernel's cache or the daemon; a read-only mount updates nothing.
#[test]
fn atime_strictatime_updates_on_every_access() {
    let mut m = Mounted::new(&["-o", "strictatime"]);
    let (d, f) = changed_dir_and_file(&m);
    for round in 0..3 {
        assert_access(&f, cat, true, &format!("strictatime: read {round}"));
        assert_access(&d, ls, true, &format!("strictatime: listing {round}"));
    }
    // Cold caches: a read through a descriptor already open reaches the daemon and counts
    // on its own; nothing through one opened with O_NOATIME does.
    m.remount();
    let open = fs::File::open(&f).unwrap();
    let t = times(&f);
    tick();
    assert_eq!(pread(&open, 0, 10).unwrap(), b"aaa");
    assert!(times(&f).0 > t.0, "strictatime: a read request did not move atime");
    drop(open);
    m.remount();
    let t = times(&f);
    let noatime = OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(&f).unwrap();
    assert_eq!(pread(&noatime, 0, 10).unwrap(), b"aaa");
    assert_eq!(times(&f), t, "strictatime: open and read with O_NOATIME moved a time");
    drop(noatime);
    m.remount_with(&["-o", "ro,strictatime"]);
    assert_access(&f, cat, false, "ro,strictatime: read");
    assert_access(&d, ls, false, "ro,strictatime: listing");
    m.finish();
}

/// noatime: no access updates atime; writes still move mtime and ctime.
#[test]
fn atime_noatime_never_updates() {
    let m = Mounted::new(&["-o", "noatime"]);
    let (d, f) = changed_dir_and_file(&m);
    assert_access(&f, cat, false, "noatime: read after a write");
    assert_access(&d, ls, false, "noatime: listing after a change");
    let before = times(&f);
    tick();
    OpenOptions::new().append(true).open(&f).unwrap().write_all(b"bbb").unwrap();
    let after = times(&f);
    assert_eq!(after.0, before.0, "noatime: a write moved atime");
    assert!(after.1 > before.1 && after.2 > before.2, "noatime: a write must move mtime and ctime");
    m.finish();
}

/// nodiratime, given through the mount helper as an fstab line would: listings leave a
/// directory's atime alone, reads of files still count (relatime).
#[test]
fn atime_nodiratime_through_the_mount_helper() {
    let mut m = Mounted::new(&[]);
    m.remount_via_helper("nodiratime");
    let (d, f) = changed_dir_and_file(&m);
    assert_access(&d, ls, false, "nodiratime: listing after a change");
    assert_access(&f, cat, true, "nodiratime: first read of a file after a write");
    m.remount_via_helper("nodiratime,strictatime");
    assert_access(&d, ls, false, "nodiratime,strictatime: listing");
    assert_access(&f, cat, true, "nodiratime,strictatime: read");
    assert_access(&f, cat, true, "nodiratime,strictatime: second read");
    m.finish();
}

/// An ioctl s2sfs does not know (here TCGETS, the isatty check every Python `open()`
/// makes) fails with ENOTTY, as on ext4, and the daemon logs that kind of request once,
/// not once per call.
#[test]
fn unknown_ioctls_are_not_a_tty_and_logged_once() {
    use std::os::fd::AsRawFd;
    let mut m = Mounted::new(&[]);
    fs::write(m.path("f"), b"data").unwrap();
    let f = fs::File::open(m.path("f")).unwrap();
    for _ in 0..300 {
        // SAFETY: TCGETS writes a termios into the zeroed one given.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, &mut t) };
        assert_eq!(r, -1);
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOTTY));
    }
    drop(f);
    m.unmount();
    let log = fs::read_to_string(m.store.join("daemon.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("ioctl")).collect();
    assert_eq!(lines.len(), 1, "{}", lines.join("\n"));
}
