//! Directories: mkdir/rmdir, exact listings, and readdir offsets that stay valid while the
//! directory changes under an open handle.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::fs::{self, File};
use std::os::fd::AsRawFd;

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
    let mut buf = vec![0u8; size];
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), size) };
    assert!(n >= 0, "getdents64: {}", std::io::Error::last_os_error());
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < n as usize {
        let off = i64::from_ne_bytes(buf[pos + 8..pos + 16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[pos + 16..pos + 18].try_into().unwrap()) as usize;
        let name = CStr::from_bytes_until_nul(&buf[pos + 19..pos + reclen]).unwrap();
        out.push((name.to_str().unwrap().to_string(), off));
        pos += reclen;
    }
    out
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
        .filter(|n| ![".", "..", "subdir"].contains(n) && !initial.iter().any(|i| i == *n) && !added.iter().any(|a| a == *n))
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
            if e.is_null() {
                None
            } else {
                Some(CStr::from_ptr((*e).d_name.as_ptr()).to_str().unwrap().to_string())
            }
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
