//! Symlinks, hard links and rename in all its forms.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use crate::harness::*;

#[test]
fn symlinks_readlink_and_lstat() {
    let mut m = Mounted::new(&[]);
    fs::write(m.path("t.txt"), b"target data").unwrap();
    symlink("t.txt", m.path("ln")).unwrap();
    fs::create_dir(m.path("sub")).unwrap();
    symlink("../t.txt", m.path("sub/up")).unwrap();
    let long_target = format!("/nonexistent/{}", "x/".repeat(600));
    symlink(&long_target, m.path("dangling")).unwrap();

    let check = |m: &Mounted| {
        assert_eq!(fs::read_link(m.path("ln")).unwrap(), Path::new("t.txt"));
        let md = fs::symlink_metadata(m.path("ln")).unwrap();
        assert!(md.file_type().is_symlink(), "lstat: not a symlink");
        assert_eq!(md.len(), 5, "lstat size of a symlink is its target's length");
        assert_file_eq(&m.path("ln"), b"target data");
        assert_file_eq(&m.path("sub/up"), b"target data");
        assert_eq!(fs::read_link(m.path("dangling")).unwrap(), Path::new(&long_target));
        assert_eq!(fs::symlink_metadata(m.path("dangling")).unwrap().len(), long_target.len() as u64);
        assert_eq!(errno_of(fs::metadata(m.path("dangling"))), libc::ENOENT);
        assert_eq!(errno_of(fs::read_link(m.path("t.txt"))), libc::EINVAL);
    };
    check(&m);
    assert_eq!(errno_of(symlink("x", m.path("ln"))), libc::EEXIST);
    // Writing through the link writes the target.
    fs::write(m.path("ln"), b"via link").unwrap();
    assert_file_eq(&m.path("t.txt"), b"via link");
    fs::write(m.path("t.txt"), b"target data").unwrap();
    m.remount();
    check(&m);
    // Removing the link leaves the target.
    fs::remove_file(m.path("ln")).unwrap();
    assert_file_eq(&m.path("t.txt"), b"target data");
    m.finish();
}

#[test]
fn hard_links_share_inode_and_data() {
    let mut m = Mounted::new(&[]);
    let a = m.path("a");
    let b = m.path("b");
    fs::create_dir(m.path("d")).unwrap();
    let c = m.path("d/c");
    fs::write(&a, b"shared").unwrap();
    fs::hard_link(&a, &b).unwrap();
    fs::hard_link(&b, &c).unwrap();
    let ino = fs::metadata(&a).unwrap().ino();
    for p in [&a, &b, &c] {
        let md = fs::metadata(p).unwrap();
        assert_eq!(md.nlink(), 3, "nlink of {}", p.display());
        assert_eq!(md.ino(), ino, "inode of {}", p.display());
    }
    // Data written through one name is seen through the others.
    OpenOptions::new().append(true).open(&b).unwrap().write_all(b" bytes").unwrap();
    assert_file_eq(&a, b"shared bytes");
    assert_file_eq(&c, b"shared bytes");

    assert_eq!(errno_of(fs::hard_link(&a, &b)), libc::EEXIST);
    assert_eq!(errno_of(fs::hard_link(m.path("missing"), m.path("x"))), libc::ENOENT);
    assert_eq!(errno_of(fs::hard_link(m.path("d"), m.path("dlink"))), libc::EPERM);

    m.remount();
    assert_eq!(fs::metadata(&c).unwrap().nlink(), 3, "nlink after remount");
    assert_eq!(fs::metadata(&a).unwrap().ino(), fs::metadata(&c).unwrap().ino());

    // Unlinking one keeps the others.
    fs::remove_file(&a).unwrap();
    assert_eq!(errno_of(fs::metadata(&a)), libc::ENOENT);
    assert_eq!(fs::metadata(&b).unwrap().nlink(), 2);
    assert_file_eq(&b, b"shared bytes");
    fs::remove_file(&b).unwrap();
    assert_eq!(fs::metadata(&c).unwrap().nlink(), 1);
    assert_file_eq(&c, b"shared bytes");
    m.remount();
    assert_eq!(fs::metadata(&c).unwrap().nlink(), 1);
    assert_file_eq(&c, b"shared bytes");
    assert_eq!(names(&m.mnt), sorted(&["d"]));
    m.finish();
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    let (f, t) = (cpath(from), cpath(to));
    cvt(unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) }).map(|_| ())
}

#[test]
fn rename_file_over_existing_file_and_across_directories() {
    let mut m = Mounted::new(&[]);
    fs::write(m.path("src"), b"new contents").unwrap();
    fs::write(m.path("dst"), text_bytes(20, 2 * BLOCK)).unwrap();
    // An open descriptor keeps the replaced file's data.
    let old = File::open(m.path("dst")).unwrap();
    fs::rename(m.path("src"), m.path("dst")).unwrap();
    assert_file_eq(&m.path("dst"), b"new contents");
    assert_eq!(errno_of(fs::metadata(m.path("src"))), libc::ENOENT);
    assert_eq!(names(&m.mnt), sorted(&["dst"]));
    assert_bytes_eq(&pread(&old, 0, 3 * BLOCK).unwrap(), &text_bytes(20, 2 * BLOCK), "replaced file via open fd");
    drop(old);

    fs::create_dir(m.path("d1")).unwrap();
    fs::create_dir(m.path("d2")).unwrap();
    fs::write(m.path("d1/f"), b"moving").unwrap();
    let ino = fs::metadata(m.path("d1/f")).unwrap().ino();
    fs::rename(m.path("d1/f"), m.path("d2/g")).unwrap();
    assert_eq!(names(&m.path("d1")), Vec::<String>::new());
    assert_eq!(names(&m.path("d2")), sorted(&["g"]));
    assert_eq!(fs::metadata(m.path("d2/g")).unwrap().ino(), ino, "rename keeps the inode");
    assert_file_eq(&m.path("d2/g"), b"moving");
    assert_eq!(errno_of(fs::rename(m.path("d1/nope"), m.path("d2/x"))), libc::ENOENT);

    m.remount();
    assert_file_eq(&m.path("dst"), b"new contents");
    assert_file_eq(&m.path("d2/g"), b"moving");
    assert_eq!(names(&m.path("d1")), Vec::<String>::new());
    assert_eq!(names(&m.mnt), sorted(&["d1", "d2", "dst"]));
    m.finish();
}

#[test]
fn rename_directory_moves_its_contents() {
    let mut m = Mounted::new(&[]);
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/file"), b"deep").unwrap();
    fs::write(m.path("d/top"), b"top").unwrap();
    fs::create_dir(m.path("other")).unwrap();
    fs::rename(m.path("d"), m.path("other/e")).unwrap();
    assert_eq!(errno_of(fs::metadata(m.path("d"))), libc::ENOENT);
    assert_file_eq(&m.path("other/e/sub/file"), b"deep");
    assert_file_eq(&m.path("other/e/top"), b"top");
    assert_eq!(names(&m.path("other/e")), sorted(&["sub", "top"]));
    // ".." of the moved directory is its new parent.
    assert_eq!(
        fs::metadata(m.path("other/e/..")).unwrap().ino(),
        fs::metadata(m.path("other")).unwrap().ino(),
        "\"..\" after moving a directory"
    );
    // Into its own subtree: EINVAL.
    assert_eq!(errno_of(fs::rename(m.path("other"), m.path("other/e/sub/x"))), libc::EINVAL);
    m.remount();
    assert_file_eq(&m.path("other/e/sub/file"), b"deep");
    assert_eq!(names(&m.mnt), sorted(&["other"]));
    m.finish();
}

#[test]
fn rename_noreplace_exchange_and_kind_errors() {
    let mut m = Mounted::new(&[]);
    fs::write(m.path("a"), b"A").unwrap();
    fs::write(m.path("b"), b"BB").unwrap();

    // RENAME_NOREPLACE: EEXIST when the target exists, nothing changes.
    assert_eq!(errno_of(renameat2(&m.path("a"), &m.path("b"), libc::RENAME_NOREPLACE)), libc::EEXIST);
    assert_file_eq(&m.path("a"), b"A");
    assert_file_eq(&m.path("b"), b"BB");
    renameat2(&m.path("a"), &m.path("c"), libc::RENAME_NOREPLACE).unwrap();
    assert_file_eq(&m.path("c"), b"A");
    assert_eq!(errno_of(fs::metadata(m.path("a"))), libc::ENOENT);

    // RENAME_EXCHANGE: swap two files, then a file and a directory.
    renameat2(&m.path("b"), &m.path("c"), libc::RENAME_EXCHANGE).unwrap();
    assert_file_eq(&m.path("b"), b"A");
    assert_file_eq(&m.path("c"), b"BB");
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/inner"), b"in").unwrap();
    renameat2(&m.path("b"), &m.path("dir"), libc::RENAME_EXCHANGE).unwrap();
    assert_file_eq(&m.path("dir"), b"A");
    assert_file_eq(&m.path("b/inner"), b"in");
    assert_eq!(errno_of(renameat2(&m.path("b"), &m.path("nope"), libc::RENAME_EXCHANGE)), libc::ENOENT);

    // Kinds: directory over a non-empty directory, file over directory, directory over file.
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/x"), b"x").unwrap();
    fs::create_dir(m.path("empty")).unwrap();
    assert_eq!(errno_of(fs::rename(m.path("b"), m.path("full"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::rename(m.path("c"), m.path("empty"))), libc::EISDIR);
    assert_eq!(errno_of(fs::rename(m.path("b"), m.path("c"))), libc::ENOTDIR);
    assert_file_eq(&m.path("full/x"), b"x");
    // Directory over an empty directory replaces it.
    fs::rename(m.path("b"), m.path("empty")).unwrap();
    assert_file_eq(&m.path("empty/inner"), b"in");
    assert_eq!(names(&m.mnt), sorted(&["c", "dir", "empty", "full"]));

    m.remount();
    assert_eq!(names(&m.mnt), sorted(&["c", "dir", "empty", "full"]));
    assert_file_eq(&m.path("c"), b"BB");
    assert_file_eq(&m.path("dir"), b"A");
    assert_file_eq(&m.path("empty/inner"), b"in");
    assert_file_eq(&m.path("full/x"), b"x");
    m.finish();
}
