//! Volume behaviour checked directly, without a mount.

use std::ffi::OsStr;

use super::*;
use crate::error::Error;

const ME: Caller = Caller { uid: 0, gid: 0 };

fn opts() -> VolumeOptions {
    VolumeOptions { block_size: 4096, cache_bytes: 64 << 10, ..Default::default() }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i / 7) as u8).collect()
}

fn new_file(v: &Volume, name: &str) -> (u64, u64) {
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new(name), 0o644, 0o022, libc::O_RDWR).unwrap();
    (a.ino, fh)
}

#[test]
fn write_read_across_blocks_and_remount() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * 4096 + 123, 1);
    let ino = {
        let v = Volume::open(dir.path(), opts()).unwrap();
        let (ino, fh) = new_file(&v, "f");
        assert_eq!(v.write(ino, fh, 0, &data).unwrap() as usize, data.len());
        assert_eq!(v.read(ino, 0, 1 << 20).unwrap(), data, "dirty data is readable");
        v.release(ino, fh).unwrap();
        assert_eq!(v.read(ino, 4000, 200).unwrap(), &data[4000..4200]);
        ino
    };
    let v = Volume::open(dir.path(), opts()).unwrap();
    assert_eq!(v.lookup(ROOT_INO, OsStr::new("f")).unwrap().size, data.len() as u64);
    assert_eq!(v.read(ino, 0, 1 << 20).unwrap(), data);
}

#[test]
fn overwrite_middle_truncate_extend_holes() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (ino, fh) = new_file(&v, "f");
    let mut model = pattern(10_000, 2);
    v.write(ino, fh, 0, &model).unwrap();
    v.flush(ino).unwrap();
    v.write(ino, fh, 5000, b"middle").unwrap();
    model[5000..5006].copy_from_slice(b"middle");
    v.flush(ino).unwrap();
    assert_eq!(v.read(ino, 0, 20_000).unwrap(), model);
    v.setattr(ino, &SetAttr { size: Some(4100), ..Default::default() }).unwrap();
    v.setattr(ino, &SetAttr { size: Some(9000), ..Default::default() }).unwrap();
    model.truncate(4100);
    model.resize(9000, 0);
    assert_eq!(v.read(ino, 0, 20_000).unwrap(), model);
    v.write(ino, fh, 50_000, b"x").unwrap();
    model.resize(50_000, 0);
    model.push(b'x');
    v.release(ino, fh).unwrap();
    assert_eq!(v.read(ino, 0, 60_000).unwrap(), model);
    assert_eq!(v.getattr(ino).unwrap().size, 50_001);
}

#[test]
fn unlinked_open_file_lives_until_release() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (ino, fh) = new_file(&v, "f");
    v.write(ino, fh, 0, b"still here").unwrap();
    v.unlink(ROOT_INO, OsStr::new("f")).unwrap();
    assert!(matches!(v.lookup(ROOT_INO, OsStr::new("f")), Err(Error::NotFound)));
    assert_eq!(v.read(ino, 0, 100).unwrap(), b"still here");
    v.release(ino, fh).unwrap();
    assert!(matches!(v.getattr(ino), Err(Error::NotFound)));
    assert_eq!(v.store.usage().0, 0, "the file's frames are freed");
}

#[test]
fn rename_rules() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let d = v.mkdir(ME, ROOT_INO, OsStr::new("d"), 0o755, 0).unwrap().ino;
    let (a, fh) = new_file(&v, "a");
    v.write(a, fh, 0, b"A").unwrap();
    v.release(a, fh).unwrap();
    let (b, fh) = new_file(&v, "b");
    v.release(b, fh).unwrap();
    let noreplace = RenameFlags { noreplace: true, exchange: false };
    assert!(matches!(v.rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("b"), noreplace), Err(Error::Exists)));
    v.rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("b"), RenameFlags::default()).unwrap();
    assert_eq!(v.lookup(ROOT_INO, OsStr::new("b")).unwrap().ino, a);
    assert!(matches!(v.getattr(b), Err(Error::NotFound)));
    v.rename(ROOT_INO, OsStr::new("b"), d, OsStr::new("c"), RenameFlags::default()).unwrap();
    assert_eq!(v.read(a, 0, 10).unwrap(), b"A");
    assert!(matches!(
        v.rename(ROOT_INO, OsStr::new("d"), d, OsStr::new("x"), RenameFlags::default()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(v.rmdir(ROOT_INO, OsStr::new("d")), Err(Error::NotEmpty)));
    assert_eq!(v.getattr(ROOT_INO).unwrap().nlink, 3);
}

#[test]
fn readdir_cookies_survive_changes() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    for i in 0..10 {
        v.mknod(ME, ROOT_INO, OsStr::new(&format!("f{i}")), libc::S_IFREG | 0o644, 0, 0).unwrap();
    }
    let name = |e: &DirEntry| e.name.to_string_lossy().into_owned();
    let first = v.readdir(ROOT_INO, 0, 5).unwrap();
    assert_eq!(first.len(), 5);
    // One entry already listed and one not yet listed go away meanwhile.
    let seen = name(&first[4]);
    let all: Vec<String> = v.readdir(ROOT_INO, 0, 100).unwrap().iter().map(name).collect();
    let unseen = all.last().unwrap().clone();
    v.unlink(ROOT_INO, OsStr::new(&seen)).unwrap();
    v.unlink(ROOT_INO, OsStr::new(&unseen)).unwrap();
    let rest = v.readdir(ROOT_INO, first[4].offset, 100).unwrap();
    let names: Vec<String> = first.iter().chain(&rest).map(name).collect();
    let want: Vec<String> = all.into_iter().filter(|n| *n != unseen).collect();
    assert_eq!(names, want);
}

/// xfstests generic/736: a listing that renames every entry it sees away and back must end,
/// returning each entry once.
#[test]
fn readdir_ends_while_it_renames_what_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    for i in 0..100 {
        v.mknod(ME, ROOT_INO, OsStr::new(&format!("file{i}")), libc::S_IFREG | 0o644, 0, 0).unwrap();
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let batch = v.readdir(ROOT_INO, offset, 7).unwrap();
        let Some(last) = batch.last() else { break };
        offset = last.offset;
        for e in &batch {
            let name = e.name.to_string_lossy().into_owned();
            if name.starts_with("file") {
                v.rename(ROOT_INO, &e.name, ROOT_INO, OsStr::new("tmp"), RenameFlags::default()).unwrap();
                v.rename(ROOT_INO, OsStr::new("tmp"), ROOT_INO, &e.name, RenameFlags::default()).unwrap();
            }
            seen.push(name);
            assert!(seen.len() <= 102, "the listing does not end");
        }
    }
    seen.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("file{i}")).chain([".".into(), "..".into()]).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn dedup_and_holes_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(
        dir.path(),
        VolumeOptions {
            codec: crate::codec::CodecSpec { codec: Some(crate::codec::CodecKind::Raw), ..Default::default() },
            ..opts()
        },
    )
    .unwrap();
    let data = pattern(4096, 9);
    for name in ["x", "y"] {
        let (ino, fh) = new_file(&v, name);
        v.write(ino, fh, 0, &data).unwrap();
        v.write(ino, fh, 40960, &vec![0u8; 4096]).unwrap();
        v.release(ino, fh).unwrap();
    }
    let (live, _) = v.store.usage();
    assert!(live < 4096 + 200, "one shared frame, zero blocks are holes: {live}");
}

#[test]
fn xattrs() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (ino, fh) = new_file(&v, "f");
    v.release(ino, fh).unwrap();
    let n = OsStr::new("user.k");
    assert!(matches!(v.setxattr(ino, n, b"v", XattrFlags { replace: true, create: false }), Err(Error::NoXattr)));
    v.setxattr(ino, n, b"v", XattrFlags::default()).unwrap();
    assert!(matches!(v.setxattr(ino, n, b"w", XattrFlags { create: true, replace: false }), Err(Error::Exists)));
    assert_eq!(v.getxattr(ino, n).unwrap(), b"v");
    assert_eq!(v.listxattr(ino).unwrap(), vec![n.to_os_string()]);
    assert!(matches!(
        v.setxattr(ino, OsStr::new("trusted.k"), b"v", XattrFlags::default()),
        Err(Error::NotSupported(_))
    ));
    v.removexattr(ino, n).unwrap();
    assert!(matches!(v.getxattr(ino, n), Err(Error::NoXattr)));
}

#[test]
fn dirty_accounting_returns_to_zero() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (ino, fh) = new_file(&v, "f");
    v.write(ino, fh, 0, &pattern(3 * 4096, 1)).unwrap();
    v.flush(ino).unwrap();
    // Many small writes into one committed block: partial pieces, then a whole block.
    for i in 0..40u64 {
        v.write(ino, fh, 4096 + i * 7, b"xyz").unwrap();
    }
    v.setattr(ino, &SetAttr { size: Some(4100), ..Default::default() }).unwrap();
    v.write(ino, fh, 9000, b"tail").unwrap();
    assert!(v.dirty_bytes.load(Ordering::SeqCst) > 0);
    v.release(ino, fh).unwrap();
    assert_eq!(v.dirty_bytes.load(Ordering::SeqCst), 0, "every dirty byte counted is uncounted at commit");
}

/// The kernel sends RELEASE asynchronously after close(2), so a release often overlaps
/// the next open of the same file. An entry someone holds must stay the file's only entry:
/// once a release dropped an entry an opener had just found, the opener's writes went to
/// a second entry, and an unlinked-but-open file was freed under its handle (ENOENT).
#[test]
fn a_held_file_entry_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (ino, fh) = new_file(&v, "f");
    v.release(ino, fh).unwrap();
    let held = v.entry(ino, false).unwrap();
    // Another thread's operation on the same file ends while `held` is still in use.
    let other = v.entry(ino, false).unwrap();
    v.unpin(ino, other);
    assert!(std::sync::Arc::ptr_eq(&held, &v.entry(ino, false).unwrap()), "a held entry was replaced");
    v.unpin(ino, held);
    // Unused, clean and closed: it leaves the table, and the next user starts from the store.
    assert!(v.existing_entry(ino).is_none());
}

use crate::t5::fixtures::random_bytes as noise;

/// A file with a compressed block, a raw one, a hole, another raw one and a short tail,
/// committed; returns the volume reopened (empty cache), the inode and the contents.
fn mixed_file(dir: &std::path::Path) -> (Volume, u64, Vec<u8>) {
    let mut model = b"compressible text, ".repeat(216)[..4096].to_vec();
    model.extend(noise(4096, 7));
    model.extend(vec![0u8; 4096]);
    model.extend(noise(4096, 9));
    model.extend(b"tail ".repeat(200));
    let ino = {
        let v = Volume::open(dir, opts()).unwrap();
        let (ino, fh) = new_file(&v, "f");
        v.write(ino, fh, 0, &model).unwrap();
        v.release(ino, fh).unwrap();
        ino
    };
    (Volume::open(dir, opts()).unwrap(), ino, model)
}

#[test]
fn reads_of_whole_and_partial_blocks_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (v, ino, mut model) = mixed_file(dir.path());
    let len = model.len() as u64;
    let ranges = [(0, len), (0, 8192), (4096, 4096), (100, 9000), (12288, 4096), (16384, 4096), (8192, 12000)];
    for (off, n) in ranges {
        let want = &model[off as usize..(off + n).min(len) as usize];
        assert_eq!(v.read(ino, off, n as u32).unwrap(), want, "read of {n} at {off}");
    }
    // An uncommitted piece over a committed raw block, and a truncation that leaves the
    // committed tail block longer than the file.
    let fh = v.open_file(ino, libc::O_RDWR).unwrap();
    v.write(ino, fh, 4096 + 10, b"dirty").unwrap();
    model[4096 + 10..4096 + 15].copy_from_slice(b"dirty");
    assert_eq!(v.read(ino, 0, 1 << 20).unwrap(), model);
    v.release(ino, fh).unwrap();
    v.setattr(ino, &SetAttr { size: Some(16384 + 300), ..Default::default() }).unwrap();
    model.truncate(16384 + 300);
    assert_eq!(v.read(ino, 0, 1 << 20).unwrap(), model);
    drop(v);
    let v = Volume::open(dir.path(), opts()).unwrap();
    assert_eq!(v.read(ino, 0, 1 << 20).unwrap(), model);
}

#[test]
fn a_damaged_raw_block_read_whole_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (v, ino, model) = mixed_file(dir.path());
    drop(v);
    // Flip one byte of the raw block 1 inside its pack.
    let needle = &model[4096 + 1000..4096 + 1064];
    let mut hit = false;
    for entry in std::fs::read_dir(dir.path().join("packs")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            hit = true;
        }
    }
    assert!(hit, "raw block not found in any pack");
    let v = Volume::open(dir.path(), opts()).unwrap();
    for (off, n) in [(0, 1 << 20), (4096, 4096), (4096 + 5, 10)] {
        match v.read(ino, off, n) {
            Err(Error::Corrupt { block: 1, .. }) => {}
            other => panic!("read of {n} at {off}: expected Corrupt for block 1, got {other:?}"),
        }
    }
    assert_eq!(v.read(ino, 8192, 8192).unwrap(), &model[8192..16384], "other blocks still read");
}
