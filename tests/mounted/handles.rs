//! File handles (name_to_handle_at / open_by_handle_at, what an NFS server uses): a handle
//! keeps naming its inode after the kernel has forgotten the inode and across a remount;
//! the handle of a freed inode is ESTALE.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A file handle with room for the largest one the kernel makes.
#[repr(C)]
struct Handle {
    head: libc::file_handle,
    bytes: [u8; libc::MAX_HANDLE_SZ as usize],
}

/// name_to_handle_at flag (Linux 6.13): the handle also names the parent, so that a file
/// opened by it is connected to the tree (has a path), as generic/756 and 777 check.
const AT_HANDLE_CONNECTABLE: libc::c_int = 0x002;

fn name_to_handle(path: &Path, flags: libc::c_int) -> io::Result<Box<Handle>> {
    let mut h = Box::new(Handle {
        head: libc::file_handle { handle_bytes: libc::MAX_HANDLE_SZ as u32, handle_type: 0, f_handle: [] },
        bytes: [0; libc::MAX_HANDLE_SZ as usize],
    });
    let mut mount_id = 0;
    let c = cpath(path);
    cvt(unsafe { libc::name_to_handle_at(libc::AT_FDCWD, c.as_ptr(), &mut h.head, &mut mount_id, flags) })?;
    Ok(h)
}

/// Opens what `h` names on the filesystem mounted at `mnt` (read-only).
fn open_by_handle(mnt: &Path, h: &mut Handle, flags: libc::c_int) -> io::Result<File> {
    let mount_fd = File::open(mnt)?;
    let fd = cvt(unsafe { libc::open_by_handle_at(mount_fd.as_raw_fd(), &mut h.head, flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Makes the kernel forget every unused dentry and inode, so that decoding a handle has to
/// ask the daemon instead of finding the inode in the kernel's cache.
fn drop_kernel_caches() {
    fs::write("/proc/sys/vm/drop_caches", b"2").expect("write /proc/sys/vm/drop_caches (needs root)");
}

/// The path the kernel gives an open file: for a directory or a connectable handle, proof
/// that the kernel reconnected it to the tree through ".." lookups up to the root.
fn fd_path(f: &File) -> PathBuf {
    fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("readlink /proc/self/fd")
}

/// The errno of opening by `h`; None when it opens.
fn handle_errno(m: &Mounted, h: &mut Handle) -> Option<i32> {
    open_by_handle(&m.mnt, h, libc::O_RDONLY).err().map(|e| e.raw_os_error().unwrap_or(0))
}

#[track_caller]
fn assert_opens_file(m: &Mounted, h: &mut Handle, ino: u64, want: &[u8]) {
    let f = open_by_handle(&m.mnt, h, libc::O_RDONLY).expect("open_by_handle_at of a file");
    assert_eq!(f.metadata().unwrap().ino(), ino, "the handle opened another inode");
    assert_bytes_eq(&pread(&f, 0, want.len() + 1).unwrap(), want, "file opened by handle");
}

#[track_caller]
fn assert_opens_dir(m: &Mounted, h: &mut Handle, ino: u64, path: &Path) {
    let d = open_by_handle(&m.mnt, h, libc::O_RDONLY | libc::O_DIRECTORY).expect("open_by_handle_at of a directory");
    assert_eq!(d.metadata().unwrap().ino(), ino, "the handle opened another inode");
    assert_eq!(fd_path(&d), path, "directory opened by handle, reconnected");
}

#[test]
fn handles_open_after_cache_drop_and_remount() {
    let mut m = Mounted::new(&[]);
    fs::create_dir_all(m.path("a/b")).unwrap();
    let data = text_bytes(426, 3 * BLOCK + 17);
    fs::write(m.path("a/b/f"), &data).unwrap();
    let file_ino = fs::metadata(m.path("a/b/f")).unwrap().ino();
    let dir_ino = fs::metadata(m.path("a/b")).unwrap().ino();
    let mut hf = name_to_handle(&m.path("a/b/f"), 0).unwrap();
    let mut hd = name_to_handle(&m.path("a/b"), 0).unwrap();
    // Kernels before 6.13 have no connectable handles (EINVAL).
    let mut hc = name_to_handle(&m.path("a/b/f"), AT_HANDLE_CONNECTABLE).ok();

    // The kernel still caches both inodes.
    assert_opens_file(&m, &mut hf, file_ino, &data);
    assert_opens_dir(&m, &mut hd, dir_ino, &m.path("a/b"));

    drop_kernel_caches();
    assert_opens_file(&m, &mut hf, file_ino, &data);
    drop_kernel_caches();
    assert_opens_dir(&m, &mut hd, dir_ino, &m.path("a/b"));

    // A fresh kernel mount knows no inode: handles taken before the unmount still work.
    m.remount();
    assert_opens_dir(&m, &mut hd, dir_ino, &m.path("a/b"));
    assert_opens_file(&m, &mut hf, file_ino, &data);

    // ".." follows a directory that moved.
    fs::rename(m.path("a/b"), m.path("moved")).unwrap();
    drop_kernel_caches();
    assert_opens_dir(&m, &mut hd, dir_ino, &m.path("moved"));
    m.remount();
    assert_opens_dir(&m, &mut hd, dir_ino, &m.path("moved"));
    assert_opens_file(&m, &mut hf, file_ino, &data);
    if let Some(hc) = hc.as_mut() {
        let f = open_by_handle(&m.mnt, hc, libc::O_RDONLY).expect("open_by_handle_at of a connectable handle");
        assert_eq!(fd_path(&f), m.path("moved/f"), "file opened by a connectable handle, reconnected");
    }
    m.finish();
}

#[test]
fn handles_of_freed_inodes_are_stale() {
    let mut m = Mounted::new(&[]);
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("gone"), b"gone").unwrap();
    fs::write(m.path("open"), b"still open").unwrap();
    let open_ino = fs::metadata(m.path("open")).unwrap().ino();
    let h_dir = name_to_handle(&m.path("d"), 0).unwrap();
    let h_gone = name_to_handle(&m.path("gone"), 0).unwrap();
    let mut h_open = name_to_handle(&m.path("open"), 0).unwrap();

    fs::remove_dir(m.path("d")).unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    // Unlinked but open: the inode lives on, and so does its handle, until the last close.
    let keep = File::open(m.path("open")).unwrap();
    fs::remove_file(m.path("open")).unwrap();
    drop_kernel_caches();
    assert_opens_file(&m, &mut h_open, open_ino, b"still open");
    drop(keep);
    // FUSE finishes a close in the background: until the daemon has answered the release
    // (which frees the orphan), the kernel still holds the inode and opens it by handle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle_errno(&m, &mut h_open) != Some(libc::ESTALE) {
        assert!(Instant::now() < deadline, "the closed orphan's handle still opens after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut stale = [(h_dir, "removed directory"), (h_gone, "removed file"), (h_open, "closed orphan")];
    drop_kernel_caches();
    for when in ["after a cache drop", "after a remount"] {
        if when == "after a remount" {
            m.remount();
        }
        for (h, what) in &mut stale {
            assert_eq!(handle_errno(&m, h), Some(libc::ESTALE), "{what} {when}");
        }
    }
    m.finish();
}
