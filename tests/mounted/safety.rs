//! What must never go wrong: permission checks for other users, corruption detected as EIO,
//! one daemon per store, and clear command-line errors.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

/// Runs `f` in a forked child that has become uid/gid 65534 (nobody) and returns what it
/// returned (an errno, 0 for success). Codes 200+ are setup failures. `f` runs after fork in a
/// multithreaded process: it must only make raw syscalls on data prepared beforehand.
fn as_nobody(f: impl FnOnce() -> i32) -> i32 {
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            if libc::setgroups(0, std::ptr::null()) != 0 {
                libc::_exit(200);
            }
            if libc::setgid(65534) != 0 {
                libc::_exit(201);
            }
            if libc::setuid(65534) != 0 {
                libc::_exit(202);
            }
            let code = f();
            libc::_exit(code.clamp(0, 199));
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid, "waitpid");
        assert!(libc::WIFEXITED(status), "child did not exit normally: status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        assert!(code < 200, "child could not become nobody (code {code})");
        code
    }
}

fn errno() -> i32 {
    unsafe { *libc::__errno_location() }
}

/// open(path, flags, 0644) as a syscall: 0 or errno.
fn try_open(path: &CString, flags: i32) -> i32 {
    unsafe {
        let fd = libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
        if fd < 0 {
            return errno();
        }
        libc::close(fd);
        0
    }
}

#[test]
fn default_permissions_apply_to_other_users() {
    let m = Mounted::new(&["-o", "allow_other"]);
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o755)).unwrap();
    let secret = m.path("secret");
    let public = m.path("public");
    let rodir = m.path("rodir");
    let owned = m.path("owned");
    fs::write(&secret, b"top secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&public, b"for all").unwrap();
    fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(&rodir).unwrap();
    fs::set_permissions(&rodir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(&owned, b"mine").unwrap();
    fs::set_permissions(&owned, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();

    let (c_secret, c_public, c_owned) = (cpath(&secret), cpath(&public), cpath(&owned));
    let c_new = cpath(&rodir.join("new"));
    let c_newdir = cpath(&rodir.join("newdir"));
    let c_in_root = cpath(&m.path("nobody-file"));

    // Controls first: with allow_other the other user can read what it may read.
    assert_eq!(as_nobody(|| try_open(&c_public, libc::O_RDONLY)), 0, "nobody reads a 0644 file");
    assert_eq!(as_nobody(|| try_open(&c_owned, libc::O_RDWR)), 0, "nobody opens its own 0600 file");
    // And is refused the rest.
    assert_eq!(as_nobody(|| try_open(&c_secret, libc::O_RDONLY)), libc::EACCES, "nobody reads root's 0600 file");
    assert_eq!(as_nobody(|| try_open(&c_public, libc::O_WRONLY)), libc::EACCES, "nobody writes a 0644 root file");
    assert_eq!(
        as_nobody(|| try_open(&c_new, libc::O_CREAT | libc::O_WRONLY)),
        libc::EACCES,
        "nobody creates a file in a 0755 root dir"
    );
    assert_eq!(
        as_nobody(|| unsafe { if libc::mkdir(c_newdir.as_ptr(), 0o755) < 0 { errno() } else { 0 } }),
        libc::EACCES,
        "nobody makes a directory in a 0755 root dir"
    );
    assert_eq!(
        as_nobody(|| unsafe { if libc::unlink(c_public.as_ptr()) < 0 { errno() } else { 0 } }),
        libc::EACCES,
        "nobody unlinks from a 0755 root dir"
    );
    assert_eq!(
        as_nobody(|| unsafe { if libc::chmod(c_secret.as_ptr(), 0o777) < 0 { errno() } else { 0 } }),
        libc::EPERM,
        "nobody chmods root's file"
    );
    // Nothing happened.
    assert_eq!(names(&m.path("rodir")), Vec::<String>::new());
    assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_file_eq(&public, b"for all");

    // A world-writable directory lets nobody create, and the file is nobody's.
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(as_nobody(|| try_open(&c_in_root, libc::O_CREAT | libc::O_WRONLY)), 0, "create in a 0777 dir");
    let md = fs::metadata(m.path("nobody-file")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((md.uid(), md.gid()), (65534, 65534), "owner of a file created by nobody");
    m.finish();
}

fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else if best.as_ref().is_none_or(|(s, _)| md.len() > *s) {
                best = Some((md.len(), e.path()));
            }
        }
    }
    best.expect("no pack file").1
}

#[test]
fn corruption_reads_as_eio_never_wrong_bytes() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    // A small file first: its frame sits at the start of the pack.
    let small = b"small and early, far from the damage".to_vec();
    let f = File::create(m.path("early")).unwrap();
    f.write_all_at(&small, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let big = text_bytes(40, 16 * BLOCK);
    fs::write(m.path("big"), &big).unwrap();
    m.unmount();

    let pack = largest_file(&m.store.join("packs"));
    let mut bytes = fs::read(&pack).unwrap();
    assert!(bytes.len() > 1000, "pack {} is only {} bytes", pack.display(), bytes.len());
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    fs::write(&pack, &bytes).unwrap();

    m.mount();
    let whole = fs::read(m.path("big"));
    assert_eq!(
        whole.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(libc::EIO),
        "reading the damaged file: want EIO, got {}",
        match &whole {
            Ok(d) if *d == big => "the right bytes (was the damage outside every frame?)".to_string(),
            Ok(_) => "WRONG BYTES".to_string(),
            Err(e) => format!("{e}"),
        }
    );
    // Block by block: each read gives the right bytes or EIO, and at least one is EIO.
    let f = File::open(m.path("big")).unwrap();
    let mut eio = 0;
    for blk in 0..16 {
        match pread(&f, (blk * BLOCK) as u64, BLOCK) {
            Ok(got) => assert_bytes_eq(&got, &big[blk * BLOCK..(blk + 1) * BLOCK], &format!("block {blk}")),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "block {blk}: {e}");
                eio += 1;
            }
        }
    }
    assert!(eio >= 1, "no block read failed");
    drop(f);
    // Undamaged data elsewhere in the pack still reads.
    assert_file_eq(&m.path("early"), &small);
    // The volume keeps working.
    fs::write(m.path("after"), b"still alive").unwrap();
    assert_file_eq(&m.path("after"), b"still alive");
    m.finish();
}

#[test]
fn second_daemon_on_the_same_store_is_refused() {
    let m = Mounted::new(&[]);
    fs::write(m.path("f"), b"first").unwrap();
    let other = m.outside("other-mnt");
    fs::create_dir(&other).unwrap();
    let out = run_cli(
        &[OsStr::new("mount"), other.as_os_str(), OsStr::new("--store"), m.store.as_os_str()],
        None,
        Duration::from_secs(60),
    );
    let second_mounted = is_mounted(&other);
    if second_mounted {
        let _ = std::process::Command::new("fusermount3").arg("-uz").arg(&other).status();
    }
    assert!(!out.status.success(), "second mount on the same store succeeded: {}", out.describe());
    assert!(!second_mounted, "second mount failed but left {} mounted", other.display());
    let err = out.stderr.to_lowercase();
    assert!(err.contains("lock") || err.contains("in use"), "stderr does not mention the lock: {}", out.describe());
    // The first mount is unharmed.
    assert_file_eq(&m.path("f"), b"first");
    fs::write(m.path("g"), b"second").unwrap();
    assert_file_eq(&m.path("g"), b"second");
    m.finish();
}

/// umount(8) and `fusermount3 -u` return once the kernel lets go of the mount, before its
/// daemon has closed the store: a mount right after must wait for that daemon, not fail.
/// A store mounted by a live daemon is still refused at once.
#[test]
fn mount_right_after_a_system_umount_waits_for_the_old_daemon() {
    let mut m = Mounted::new(&[]);
    for i in 0..20u64 {
        let name = format!("f{i}");
        let data = random_bytes(i, 2 * MIB + i as usize);
        // Dead frames beside live ones: the old daemon compacts them as it closes the store.
        fs::write(m.path("scratch"), random_bytes(100 + i, 2 * MIB)).unwrap();
        fs::write(m.path(&name), &data).unwrap();
        fs::remove_file(m.path("scratch")).unwrap();
        if i % 2 == 0 {
            m.unmount_with("umount", &[]);
        } else {
            m.unmount_with("fusermount3", &["-u"]);
        }
        m.mount();
        assert_file_eq(&m.path(&name), &data);
    }
    let other = m.outside("other-mnt");
    fs::create_dir(&other).unwrap();
    let start = std::time::Instant::now();
    let out = failing_mount(
        &other,
        &[OsStr::new("mount"), other.as_os_str(), OsStr::new("--store"), m.store.as_os_str()],
        None,
    );
    assert!(start.elapsed() < Duration::from_secs(10), "a store in use was refused only after {:?}", start.elapsed());
    assert_one_line(&out);
    assert!(out.stderr.contains("in use"), "{}", out.describe());
    m.finish();
}

/// Runs a mount that must fail; makes sure nothing stays mounted; returns its output.
fn failing_mount(mnt: &Path, args: &[&OsStr], path_env: Option<&OsStr>) -> CliOutput {
    let out = run_cli(args, path_env, Duration::from_secs(60));
    let mounted = is_mounted(mnt);
    if mounted {
        let _ = run_cli(&[OsStr::new("umount"), mnt.as_os_str()], None, Duration::from_secs(60));
        let _ = std::process::Command::new("fusermount3").arg("-uz").arg(mnt).status();
    }
    assert!(!out.status.success(), "`s2sfs {:?}` succeeded: {}", args, out.describe());
    assert!(!mounted, "failed mount left {} mounted", mnt.display());
    out
}

#[track_caller]
fn assert_one_line(out: &CliOutput) {
    let lines: Vec<&str> = out.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "want a one-line error: {}", out.describe());
}

#[test]
fn cli_mount_point_that_does_not_exist() {
    let base = test_dir("cli");
    let mnt = base.path().join("no-such-dir");
    let store = base.path().join("store");
    let out =
        failing_mount(&mnt, &[OsStr::new("mount"), mnt.as_os_str(), OsStr::new("--store"), store.as_os_str()], None);
    assert_one_line(&out);
    assert!(out.stderr.contains("no-such-dir"), "error does not name the mount point: {}", out.describe());
    assert!(!store.exists(), "a failed mount created the store directory {}", store.display());
}

#[test]
fn cli_without_fusermount3() {
    let base = test_dir("cli");
    let mnt = base.path().join("mnt");
    let store = base.path().join("store");
    let empty = base.path().join("empty-path");
    fs::create_dir(&mnt).unwrap();
    fs::create_dir(&empty).unwrap();
    let out = failing_mount(
        &mnt,
        &[OsStr::new("mount"), mnt.as_os_str(), OsStr::new("--store"), store.as_os_str()],
        Some(empty.as_os_str()),
    );
    assert_one_line(&out);
    assert!(
        out.stderr.contains("fusermount3") || out.stderr.contains("fuse3"),
        "error does not name fuse3/fusermount3: {}",
        out.describe()
    );
}

#[test]
fn cli_store_from_a_future_version() {
    let mut m = Mounted::new(&[]);
    fs::write(m.path("f"), b"x").unwrap();
    m.unmount();
    let format = m.store.join("format");
    let text = fs::read_to_string(&format).expect("STORE/format");
    assert!(text.starts_with("s2sfs-store "), "STORE/format holds {text:?}");
    fs::write(&format, "s2sfs-store 999\n").unwrap();
    let args = m.mount_args();
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = failing_mount(&m.mnt, &args, None);
    assert_one_line(&out);
    assert!(out.stderr.contains("999"), "error does not name the version: {}", out.describe());
    // Putting the version back makes the store usable again, data intact.
    fs::write(&format, text).unwrap();
    m.mount();
    assert_file_eq(&m.path("f"), b"x");
    m.finish();
}

#[test]
fn cli_rejects_a_bad_block_size() {
    let base = test_dir("cli");
    let mnt = base.path().join("mnt");
    let store = base.path().join("store");
    fs::create_dir(&mnt).unwrap();
    let out = failing_mount(
        &mnt,
        &[
            OsStr::new("mount"),
            mnt.as_os_str(),
            OsStr::new("--store"),
            store.as_os_str(),
            OsStr::new("--block-kib"),
            OsStr::new("3"),
        ],
        None,
    );
    assert!(!out.stderr.trim().is_empty(), "no error message: {}", out.describe());
}

#[test]
fn cli_umount_of_something_not_mounted_fails() {
    let base = test_dir("cli");
    let out = run_cli(&[OsStr::new("umount"), base.path().as_os_str()], None, Duration::from_secs(60));
    assert!(!out.status.success(), "umount of a plain directory succeeded: {}", out.describe());
}

#[test]
fn fsck_of_a_mounted_store_checks_it_read_only_through_the_daemon() {
    let m = Mounted::new(&[]);
    fs::write(m.path("f"), text_bytes(3, 300_000)).unwrap();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/g"), random_bytes(4, 200_000)).unwrap();
    let fsck = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("fsck"), OsStr::new("--store"), m.store.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        run_cli(&args, None, Duration::from_secs(60))
    };
    let out = fsck(&[]);
    assert_eq!(out.status.code(), Some(0), "read-only fsck of a mounted store: {}", out.describe());
    assert!(out.stdout.contains("clean") && out.stdout.contains("frames"), "{}", out.describe());
    let out = fsck(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("\"outcome\": \"clean\""), "{}", out.describe());
    let out = fsck(&["--repair"]);
    assert_eq!(out.status.code(), Some(8), "--repair of a mounted store must be refused: {}", out.describe());
    assert!(out.stderr.contains("unmount it first"), "{}", out.describe());
    // The volume is untouched and still works.
    assert_file_eq(&m.path("d/g"), &random_bytes(4, 200_000));
    fs::write(m.path("h"), b"after").unwrap();
    m.finish();
}
