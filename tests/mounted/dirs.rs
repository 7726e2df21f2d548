//! Directories: mkdir/rmdir, exact listings, readdir offsets that stay valid while the
//! directory changes under an open handle, and directories removed while open.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, OsStr};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::harness::*;

#[test]
fn mkdir_rmdir_and_exact_listings() {
    let mut m = Mounted::new(&[]);
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("a/b")).unwrap();
    fs::create_dir(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/f1"), b"1").unwrap();
    fs::write(m.path("a/b/f2"), b"22").unwrap();

    assert_eq!(names(&m.mnt), sorted(&["a"]));
    assert_eq!(names(&m.path("a")), sorted(&["b", "f1"]));
    assert_eq!(names(&m.path("a/b")), sorted(&["c", "f2"]));
    assert_eq!(names(&m.path("a/b/c")), Vec::<String>::new());
    assert!(fs::metadata(m.path("a/b/c")).unwrap().is_dir());

    assert_eq!(errno_of(fs::create_dir(m.path("a"))), libc::EEXIST);
    assert_eq!(errno_of(fs::create_dir(m.path("a/f1"))), libc::EEXIST);
    assert_eq!(errno_of(fs::create_dir(m.path("missing/x"))), libc::ENOENT);
    assert_eq!(errno_of(fs::create_dir(m.path("a/f1/x"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::remove_dir(m.path("a"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::remove_dir(m.path("a/b"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::remove_dir(m.path("a/f1"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::remove_dir(m.path("a/nope"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_file(m.path("a/b"))), libc::EISDIR);

    fs::remove_dir(m.path("a/b/c")).unwrap();
    assert_eq!(names(&m.path("a/b")), sorted(&["f2"]));
    m.remount();
    assert_eq!(names(&m.path("a")), sorted(&["b", "f1"]));
    assert_eq!(names(&m.path("a/b")), sorted(&["f2"]));
    assert_eq!(errno_of(fs::metadata(m.path("a/b/c"))), libc::ENOENT);
    fs::remove_file(m.path("a/b/f2")).unwrap();
    fs::remove_dir(m.path("a/b")).unwrap();
    assert_eq!(names(&m.path("a")), sorted(&["f1"]));

    // Many names, odd ones included; the longest name allowed is 255 bytes.
    let long = "L".repeat(255);
    let mut want: Vec<String> = (0..150).map(|i| format!("file-{i:03}")).collect();
    want.extend(["with space".into(), "ünïcödé-名前".into(), ".hidden".into(), "-dash".into(), long.clone()]);
    fs::create_dir(m.path("many")).unwrap();
    for n in &want {
        fs::write(m.path("many").join(n), n.as_bytes()).unwrap();
    }
    want.sort();
    assert_eq!(names(&m.path("many")), want);
    m.remount();
    assert_eq!(names(&m.path("many")), want);
    assert_file_eq(&m.path("many").join(&long), long.as_bytes());
    m.finish();
}

/// One getdents64(2) call with a buffer of `size` bytes: (name, d_off) of each record.
fn getdents(fd: i32, size: usize) -> Vec<(String, i64)> {
    try_getdents(fd, size).expect("getdents64")
}

fn try_getdents(fd: i32, size: usize) -> std::io::Result<Vec<(String, i64)>> {
    let mut buf = vec![0u8; size];
    let n = cvt_ssize(unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), size) } as libc::ssize_t)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < n as usize {
        let off = i64::from_ne_bytes(buf[pos + 8..pos + 16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[pos + 16..pos + 18].try_into().unwrap()) as usize;
        let name = CStr::from_bytes_until_nul(&buf[pos + 19..pos + reclen]).unwrap();
        out.push((name.to_str().unwrap().to_string(), off));
        pos += reclen;
    }
    Ok(out)
}

/// `s2sfs fsck --store STORE`, which must find the store clean (exit 0).
#[track_caller]
fn assert_fsck_clean(store: &std::path::Path, when: &str) {
    let out = run_cli(&[OsStr::new("fsck"), OsStr::new("--store"), store.as_os_str()], None, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "fsck {when}: {}", out.describe());
}

/// Checks a directory that was removed while `dir` held it open: fstat works and says
/// nlink 0, a listing has nothing but "." and "..", creating in it is ENOENT (as on ext4).
#[track_caller]
fn assert_removed_but_open(dir: &File, ino: u64, what: &str) {
    let md = dir.metadata().unwrap_or_else(|e| panic!("fstat of a directory removed by {what} while open: {e}"));
    assert!(md.is_dir(), "{what}: fstat says it is no directory");
    assert_eq!(md.ino(), ino, "{what}: fstat gives another inode");
    assert_eq!(md.nlink(), 0, "{what}: nlink of a removed directory");
    match try_getdents(dir.as_raw_fd(), 4096) {
        // The kernel refuses to list a removed directory (ENOENT) before asking the daemon.
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{what}: listing"),
        Ok(entries) => {
            let names: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
            assert!(names.iter().all(|n| n == "." || n == ".."), "{what}: listing gives {names:?}");
        }
    }
    let fd = dir.as_raw_fd();
    let created =
        cvt(unsafe { libc::openat(fd, c"new".as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) });
    assert_eq!(errno_of(created), libc::ENOENT, "{what}: create inside");
    assert_eq!(
        errno_of(cvt(unsafe { libc::mkdirat(fd, c"sub".as_ptr(), 0o755) })),
        libc::ENOENT,
        "{what}: mkdir inside"
    );
}

/// xfstests generic/035: a directory removed by rmdir or replaced by a rename stays
/// fstat-able through a descriptor open on it, with nlink 0, until that closes; the store
/// stays clean for fsck meanwhile, afterwards, and after a crash while it was open.
#[test]
fn removed_open_directory_stays_fstat_able_until_closed() {
    let mut m = Mounted::new(&[]);
    for d in ["gone", "src", "target"] {
        fs::create_dir(m.path(d)).unwrap();
    }
    fs::write(m.path("src/kept"), b"moved along").unwrap();
    let gone = File::open(m.path("gone")).unwrap();
    let target = File::open(m.path("target")).unwrap();
    let (gone_ino, target_ino) = (gone.metadata().unwrap().ino(), target.metadata().unwrap().ino());
    let src_ino = fs::metadata(m.path("src")).unwrap().ino();
    fs::remove_dir(m.path("gone")).unwrap();
    fs::rename(m.path("src"), m.path("target")).unwrap();
    // Past the kernel's attribute timeout (1 s): fstat has to ask the daemon.
    std::thread::sleep(Duration::from_millis(1200));
    assert_removed_but_open(&gone, gone_ino, "rmdir");
    assert_removed_but_open(&target, target_ino, "rename over it");
    assert_eq!(fs::metadata(m.path("target")).unwrap().ino(), src_ino, "the name now holds the renamed directory");
    assert_file_eq(&m.path("target/kept"), b"moved along");
    assert_eq!(names(&m.mnt), sorted(&["target"]));
    assert_fsck_clean(&m.store, "through the daemon while removed directories are open");
    drop(gone);
    drop(target);
    m.unmount();
    assert_fsck_clean(&m.store, "after the removed directories were closed");

    // A crash while a removed directory is open leaves nothing for the next mount or fsck.
    m.mount();
    fs::create_dir(m.path("doomed")).unwrap();
    let doomed = File::open(m.path("doomed")).unwrap();
    let doomed_ino = doomed.metadata().unwrap().ino();
    fs::remove_dir(m.path("doomed")).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_removed_but_open(&doomed, doomed_ino, "rmdir before a crash");
    m.kill_daemon();
    drop(doomed);
    assert_fsck_clean(&m.store, "after a crash with a removed directory open");
    m.mount();
    assert_eq!(names(&m.mnt), sorted(&["target"]));
    m.finish();
}

#[test]
fn readdir_offsets_stay_valid_while_entries_are_added_and_removed() {
    let m = Mounted::new(&[]);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    let initial: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    for n in &initial {
        fs::write(d.join(n), b"").unwrap();
    }
    fs::create_dir(d.join("subdir")).unwrap();

    let dir = File::open(&d).unwrap();
    let fd = dir.as_raw_fd();
    let mut seen: Vec<String> = Vec::new();
    // A small buffer: many READDIR requests, each continuing from the previous cookie.
    while seen.len() < 120 {
        let batch = getdents(fd, 512);
        assert!(!batch.is_empty(), "directory ended after {} entries", seen.len());
        seen.extend(batch.into_iter().map(|(n, _)| n));
    }

    // Mutate in the middle of the iteration: remove entries already seen and not yet seen,
    // add new ones.
    let seen_set: BTreeSet<&String> = seen.iter().collect();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    for n in initial.iter().filter(|n| seen_set.contains(n)).step_by(4).take(25) {
        removed.insert(n.clone());
    }
    for n in initial.iter().filter(|n| !seen_set.contains(n)).step_by(3).take(40) {
        removed.insert(n.clone());
    }
    for n in &removed {
        fs::remove_file(d.join(n)).unwrap();
    }
    let added: Vec<String> = (0..60).map(|i| format!("new{i:03}")).collect();
    for n in &added {
        fs::write(d.join(n), b"").unwrap();
    }

    loop {
        let batch = getdents(fd, 512);
        if batch.is_empty() {
            break;
        }
        seen.extend(batch.into_iter().map(|(n, _)| n));
        assert!(seen.len() < 10_000, "readdir does not terminate");
    }

    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &seen {
        *count.entry(n).or_default() += 1;
    }
    let dups: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "entries returned more than once: {dups:?}");
    assert_eq!(count.get("."), Some(&1), "\".\" once");
    assert_eq!(count.get(".."), Some(&1), "\"..\" once");
    assert_eq!(count.get("subdir"), Some(&1), "subdir once");
    let missing: Vec<&String> =
        initial.iter().filter(|n| !removed.contains(*n) && !count.contains_key(n.as_str())).collect();
    assert!(missing.is_empty(), "entries present from start to end but never returned: {missing:?}");
    let unknown: Vec<&&str> = count
        .keys()
        .filter(|n| {
            ![".", "..", "subdir"].contains(n) && !initial.iter().any(|i| i == *n) && !added.iter().any(|a| a == *n)
        })
        .collect();
    assert!(unknown.is_empty(), "names that never existed: {unknown:?}");

    // The final listing is exact.
    let mut want: Vec<String> = initial.iter().filter(|n| !removed.contains(*n)).cloned().collect();
    want.extend(added.iter().cloned());
    want.push("subdir".into());
    want.sort();
    assert_eq!(names(&d), want);
    drop(dir);
    m.finish();
}

/// xfstests generic/736: one listing of a directory of 100 files that renames each entry it
/// sees away and back (`rename(x, T); rename(T, x)`) must end, returning each file once.
#[test]
fn readdir_ends_while_the_listing_renames_each_entry() {
    let m = Mounted::new(&[]);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    for i in 0..100 {
        fs::write(d.join(format!("file{i}")), b"").unwrap();
    }
    let dir = File::open(&d).unwrap();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let batch = getdents(dir.as_raw_fd(), 512);
        if batch.is_empty() {
            break;
        }
        for (name, _) in batch {
            if name.starts_with("file") {
                fs::rename(d.join(&name), d.join("tmp")).unwrap();
                fs::rename(d.join("tmp"), d.join(&name)).unwrap();
            }
            seen.push(name);
        }
        assert!(seen.len() <= 1000, "readdir does not end: {} entries so far", seen.len());
    }
    seen.sort();
    let mut want: Vec<String> =
        (0..100).map(|i| format!("file{i}")).chain([".".to_string(), "..".to_string()]).collect();
    want.sort();
    assert_eq!(seen, want);
    drop(dir);
    m.finish();
}

/// telldir/seekdir through libc: a saved position resumes where it was taken, even after
/// entries around it changed.
#[test]
fn telldir_seekdir_resume_at_the_saved_position() {
    let m = Mounted::new(&[]);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    let initial: Vec<String> = (0..400).map(|i| format!("entry-{i:04}")).collect();
    for n in &initial {
        fs::write(d.join(n), b"").unwrap();
    }
    let c = cpath(&d);
    unsafe {
        let dirp = libc::opendir(c.as_ptr());
        assert!(!dirp.is_null(), "opendir: {}", std::io::Error::last_os_error());
        let next = |dirp: *mut libc::DIR| -> Option<String> {
            let e = libc::readdir64(dirp);
            if e.is_null() { None } else { Some(CStr::from_ptr((*e).d_name.as_ptr()).to_str().unwrap().to_string()) }
        };
        let mut first_pass = Vec::new();
        let mut saved = None;
        while let Some(n) = next(dirp) {
            first_pass.push(n);
            if first_pass.len() == 250 {
                saved = Some(libc::telldir(dirp));
            }
        }
        assert_eq!(first_pass.len(), 402, "first pass: 400 entries + . and ..");
        let saved = saved.unwrap();
        let after: Vec<String> = first_pass[250..].to_vec();

        // Back to the saved position: the same entries follow.
        libc::seekdir(dirp, saved);
        let mut again = Vec::new();
        while let Some(n) = next(dirp) {
            again.push(n);
        }
        assert_eq!(again, after, "entries after seekdir(telldir())");

        // Remove one entry right after the position and one before it, add some, seek back.
        let gone = after[0].clone();
        fs::remove_file(d.join(&gone)).unwrap();
        fs::remove_file(d.join(&first_pass[10])).unwrap();
        for i in 0..20 {
            fs::write(d.join(format!("late-{i:02}")), b"").unwrap();
        }
        libc::seekdir(dirp, saved);
        let mut third = Vec::new();
        while let Some(n) = next(dirp) {
            third.push(n);
        }
        let third_set: BTreeSet<&String> = third.iter().collect();
        assert_eq!(third_set.len(), third.len(), "duplicates after seekdir: {third:?}");
        for n in &after[1..] {
            assert!(third_set.contains(n), "{n} (present throughout) missing after seekdir");
        }
        for n in &third {
            assert!(!first_pass[..250].contains(n), "{n} was before the saved position");
        }
        libc::closedir(dirp);
    }
    m.finish();
}
