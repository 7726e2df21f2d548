//! Metadata: modes, owners, timestamps, xattrs, statfs, name length.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
