//! fsck of volumes: the volume writes a small tree, the store is damaged (pack bytes,
//! records), `Store::fsck` checks and repairs it, and the volume reads and deletes what
//! the repair left. A repair is only as good as what the volume can do afterwards, so
//! these tests use the library's public API the way a user's tools do; damage that only
//! the store's own raw accessors make, with nothing to read back through a volume, is
//! tested inside the store (src/store/check/tests.rs).

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::Path;

use s2sfs::codec::Codecs;
use s2sfs::store::{
    BlockHash, BlockRecord, FrameInfo, FsckOutcome, FsckReport, NO_PACK, Problem, Store, StoreError, StoreOptions, Txn,
};
use s2sfs::volume::{Caller, FileKind, ROOT_INO, Volume, VolumeOptions, XattrFlags};

const ME: Caller = Caller { uid: 0, gid: 0 };
const BS: usize = 4096;

fn vopts() -> VolumeOptions {
    VolumeOptions { block_size: BS as u32, cache_bytes: 64 << 10, ..Default::default() }
}

/// Compressible data, different for every seed and for every block of a file.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i / 7) as u8 ^ seed.wrapping_mul(17)).collect()
}

/// A small volume:
/// ```text
/// /d/          directory
/// /d/e/        directory
/// /d/f         3 blocks + 100 bytes
/// /g           2 blocks + 50 bytes, xattr user.k
/// /h, /d/e/h2  one file with two names, 1 block
/// /s           symlink to d/f
/// /dup         the same content as /g (shared frames)
/// /sparse      a hole, then one block
/// /last        1 block, written last (its frame ends the pack)
/// ```
struct Fixture {
    dir: tempfile::TempDir,
    d: u64,
    e: u64,
    f: u64,
    g: u64,
    h: u64,
    s: u64,
    last: u64,
    f_data: Vec<u8>,
    g_data: Vec<u8>,
}

fn write_file(v: &Volume, parent: u64, name: &str, offset: u64, data: &[u8]) -> u64 {
    let (a, fh) = v.create(ME, parent, OsStr::new(name), 0o644, 0, libc::O_RDWR).unwrap();
    v.write(a.ino, fh, offset, data).unwrap();
    v.release(a.ino, fh).unwrap();
    a.ino
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), vopts()).unwrap();
    let d = v.mkdir(ME, ROOT_INO, OsStr::new("d"), 0o755, 0).unwrap().ino;
    let e = v.mkdir(ME, d, OsStr::new("e"), 0o755, 0).unwrap().ino;
    let f_data = pattern(3 * BS + 100, 1);
    let f = write_file(&v, d, "f", 0, &f_data);
    let g_data = pattern(2 * BS + 50, 2);
    let g = write_file(&v, ROOT_INO, "g", 0, &g_data);
    v.setxattr(g, OsStr::new("user.k"), b"v", XattrFlags::default()).unwrap();
    let h = write_file(&v, ROOT_INO, "h", 0, &pattern(BS, 3));
    v.link(h, e, OsStr::new("h2")).unwrap();
    let s = v.symlink(ME, ROOT_INO, OsStr::new("s"), Path::new("d/f")).unwrap().ino;
    write_file(&v, ROOT_INO, "dup", 0, &g_data);
    write_file(&v, ROOT_INO, "sparse", 5 * BS as u64, &pattern(BS, 4));
    let last = write_file(&v, ROOT_INO, "last", 0, &pattern(BS, 5));
    v.shutdown().unwrap();
    drop(v);
    Fixture { dir, d, e, f, g, h, s, last, f_data, g_data }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { block_size: BS as u32, meta_cache_bytes: 1 << 20, allow_lost_changes: false })
        .unwrap()
}

fn fsck(store: &Store, repair: bool) -> FsckReport {
    let codecs = Codecs::new(3);
    let verify = |f: &[u8]| s2sfs::volume::verify_frame(&codecs, f);
    store.fsck(&verify, repair, &mut |_| {}).unwrap()
}

fn find<'a>(problems: &'a [Problem], kind: &str) -> &'a Problem {
    problems.iter().find(|p| p.kind == kind).unwrap_or_else(|| panic!("no {kind} among {problems:#?}"))
}

fn kinds(problems: &[Problem]) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = problems.iter().map(|p| p.kind).collect();
    k.sort_unstable();
    k.dedup();
    k
}

/// Everything found was repaired and the check after the repair is clean; so is a fresh
/// check of the reopened store.
fn assert_repaired(report: &FsckReport, dir: &Path, store: Store) {
    assert_eq!(report.outcome, FsckOutcome::Repaired, "{report:#?}");
    assert!(report.problems.iter().all(|p| p.repaired), "{:#?}", report.problems);
    assert!(report.after_repair.as_ref().unwrap().problems.is_empty(), "{report:#?}");
    drop(store);
    let again = fsck(&open(dir), false);
    assert!(again.problems.is_empty(), "after reopening: {:#?}", again.problems);
}

fn block_record(store: &Store, hash: &BlockHash) -> BlockRecord {
    store.block_record(hash).unwrap().unwrap()
}

fn lost_found(store: &Store) -> u64 {
    let e = store.lookup(ROOT_INO, b"lost+found").unwrap().expect("/lost+found exists");
    let rec = store.inode(e.ino).unwrap().unwrap();
    assert_eq!((rec.kind, rec.perm, rec.uid, rec.gid), (libc::S_IFDIR, 0o700, 0, 0));
    e.ino
}

fn errno<T: std::fmt::Debug>(r: s2sfs::Result<T>) -> i32 {
    r.unwrap_err().errno()
}

/// Writes records straight into the metadata database of a closed store, as a bug or a bad
/// disk would leave them: the store's API never writes a record without what goes with
/// it. The records' keys and values are those of ARCHITECTURE.md, "The metadata records";
/// the table is the one src/store/meta.rs keeps them in.
fn damage_records(store_dir: &Path, changes: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("meta");
    let db = redb::Database::open(store_dir.join("meta.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut records = txn.open_table(table).unwrap();
        for (key, value) in changes {
            match value {
                Some(value) => {
                    records.insert(key.as_slice(), value.as_slice()).unwrap();
                }
                None => {
                    records.remove(key.as_slice()).unwrap();
                }
            }
        }
    }
    txn.commit().unwrap();
}

/// The key of a block record: tag `H`, then the block's content hash.
fn key_block(hash: &BlockHash) -> Vec<u8> {
    [&b"H"[..], hash].concat()
}

/// The key of an inode record: tag `I`, then the inode number, big-endian.
fn key_inode(ino: u64) -> Vec<u8> {
    [&b"I"[..], &ino.to_be_bytes()[..]].concat()
}

#[test]
fn clean_volume_has_no_problems() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let mut calls = Vec::new();
    let codecs = Codecs::new(3);
    let verify = |f: &[u8]| s2sfs::volume::verify_frame(&codecs, f);
    let report = store.fsck(&verify, false, &mut |p| calls.push(p)).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.notes.is_empty(), "{:#?}", report.notes);
    assert_eq!(report.outcome, FsckOutcome::Clean);
    let t = &report.totals;
    assert_eq!((t.directories, t.files, t.other_inodes, t.inodes), (3, 6, 1, 10));
    // f 4, g 3, h 1, dup 3 (shared with g), sparse 1, last 1
    assert_eq!(t.blocks, 13);
    assert_eq!(t.frames, 10);
    assert_eq!(t.frames_verified, t.frames);
    assert!(t.bytes_verified > 0 && t.bytes_verified == t.live_frame_bytes && t.live_frame_bytes < t.pack_bytes);
    let end = calls.last().unwrap();
    assert_eq!((end.frames_done, end.bytes_done), (end.frames_total, end.bytes_total));
    assert_eq!(end.bytes_total, t.bytes_verified);
    // With repair, a clean store is left alone.
    let report = fsck(&store, true);
    assert_eq!(report.outcome, FsckOutcome::Clean);
    assert!(!report.changes_written && report.after_repair.is_none());
}

#[test]
fn flipped_byte_quarantines_the_file() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let hash = store.block(fx.f, 1).unwrap().unwrap();
    let rec = block_record(&store, &hash);
    let pack = std::fs::OpenOptions::new().read(true).write(true).open(store.pack_path(rec.pack)).unwrap();
    let at = rec.offset + rec.frame_len as u64 - 1;
    let mut byte = [0u8];
    pack.read_exact_at(&mut byte, at).unwrap();
    pack.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
    drop(pack);

    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["unreadable_block"]);
    let p = &report.problems[0];
    assert_eq!((p.path.as_deref(), p.ino), (Some("/d/f"), Some(fx.f)));
    assert!(p.detail.starts_with("bytes 4096-8191 cannot be read: block 1: frame "), "{}", p.detail);

    let report = fsck(&store, true);
    let p = find(&report.problems, "unreadable_block");
    assert!(p.repaired && p.detail.contains(&format!("moved to /lost+found/{}-f", fx.f)), "{}", p.detail);
    let second = report.after_repair.as_ref().unwrap();
    assert_eq!(find(&second.notes, "quarantined_file").path, Some(format!("/lost+found/{}-f", fx.f)));
    let lf = lost_found(&store);
    assert_eq!(store.lookup(lf, format!("{}-f", fx.f).as_bytes()).unwrap().unwrap().ino, fx.f);
    assert!(store.lookup(fx.d, b"f").unwrap().is_none());
    assert_eq!(store.xattr(fx.f, b"user.s2sfs.bad_ranges").unwrap().unwrap(), b"4096-8191");
    let quarantined = store.block(fx.f, 1).unwrap().unwrap();
    assert_ne!(quarantined, hash);
    assert_eq!(
        block_record(&store, &quarantined),
        BlockRecord { refcount: 1, ..rec },
        "a frame that reads keeps its place"
    );
    assert!(store.block_record(&hash).unwrap().is_none(), "the content's own id is free again");
    assert_eq!(store.inode(ROOT_INO).unwrap().unwrap().nlink, 4, "root: d, lost+found");
    assert_repaired(&report, fx.dir.path(), store);

    // The bad block fails, the rest reads; the file can be deleted, its content written anew.
    let v = Volume::open(fx.dir.path(), vopts()).unwrap();
    assert_eq!(v.read(fx.f, 0, BS as u32).unwrap(), &fx.f_data[..BS]);
    assert_eq!(errno(v.read(fx.f, BS as u64, 10)), libc::EIO);
    assert_eq!(v.read(fx.f, 2 * BS as u64, 2 * BS as u32).unwrap(), &fx.f_data[2 * BS..]);
    let lf = v.lookup(ROOT_INO, OsStr::new("lost+found")).unwrap().ino;
    v.unlink(lf, OsStr::new(&format!("{}-f", fx.f))).unwrap();
    let again = write_file(&v, ROOT_INO, "restored", 0, &fx.f_data);
    assert_eq!(v.read(again, 0, 1 << 20).unwrap(), fx.f_data, "a restored copy gets good frames");
    v.shutdown().unwrap();
    drop(v);
    let report = fsck(&open(fx.dir.path()), false);
    assert!(report.problems.is_empty() && report.notes.is_empty(), "{report:#?}");
}

#[test]
fn truncated_pack() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let rec = block_record(&store, &store.block(fx.last, 0).unwrap().unwrap());
    let path = store.pack_path(rec.pack);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        rec.offset + rec.frame_len as u64,
        "/last's frame ends the pack"
    );
    drop(store);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(rec.offset + 10).unwrap();
    let store = open(fx.dir.path());

    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["unreadable_block"]);
    let p = &report.problems[0];
    assert_eq!(p.path.as_deref(), Some("/last"));
    assert!(p.detail.contains("bytes 0-4095") && p.detail.contains("run past the end of pack"), "{}", p.detail);

    let report = fsck(&store, true);
    let lf = lost_found(&store);
    assert_eq!(store.lookup(lf, format!("{}-last", fx.last).as_bytes()).unwrap().unwrap().ino, fx.last);
    let quarantined = block_record(&store, &store.block(fx.last, 0).unwrap().unwrap());
    assert_eq!(quarantined.pack, NO_PACK, "nothing points past the end of the pack any more");
    assert_repaired(&report, fx.dir.path(), store);

    // Compaction of the truncated pack works, and the block still fails.
    let v = Volume::open(fx.dir.path(), vopts()).unwrap();
    v.compact(0.0).unwrap();
    assert_eq!(errno(v.read(fx.last, 0, 10)), libc::EIO);
    assert_eq!(v.read(fx.g, 0, 1 << 20).unwrap(), fx.g_data);
    v.shutdown().unwrap();
    drop(v);
    assert!(fsck(&open(fx.dir.path()), false).problems.is_empty());
}

#[test]
fn frame_with_other_content_never_reads() {
    let fx = fixture();
    let store = open(fx.dir.path());
    // f's block 0 record points at g's block 0 frame: it decodes, to the wrong data.
    let f0 = store.block(fx.f, 0).unwrap().unwrap();
    let g0 = block_record(&store, &store.block(fx.g, 0).unwrap().unwrap());
    let rec = BlockRecord { refcount: 1, ..g0 };
    drop(store);
    damage_records(fx.dir.path(), &[(key_block(&f0), Some(rec.encode()))]);
    let store = open(fx.dir.path());

    let report = fsck(&store, true);
    let p = find(&report.problems, "unreadable_block");
    assert_eq!(p.path.as_deref(), Some("/d/f"));
    assert!(p.detail.contains("decodes to data other than its block id names"), "{}", p.detail);
    let quarantined = store.block(fx.f, 0).unwrap().unwrap();
    assert_ne!(quarantined, f0);
    assert_eq!(block_record(&store, &quarantined).pack, NO_PACK);
    assert!(store.block_record(&f0).unwrap().is_none(), "the wrong record is gone");
    assert_repaired(&report, fx.dir.path(), store);

    let v = Volume::open(fx.dir.path(), vopts()).unwrap();
    assert_eq!(errno(v.read(fx.f, 0, 10)), libc::EIO, "never g's bytes");
    assert_eq!(v.read(fx.f, BS as u64, BS as u32).unwrap(), &fx.f_data[BS..2 * BS]);
    assert_eq!(v.read(fx.g, 0, 1 << 20).unwrap(), fx.g_data);
}

#[test]
fn inode_fields() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let mut txn = store.begin();
    let mut f = txn.inode(fx.f).unwrap().unwrap();
    f.nlink = 7;
    txn.put_inode(fx.f, &f);
    let mut e = txn.inode(fx.e).unwrap().unwrap();
    e.parent = 12_345;
    txn.put_inode(fx.e, &e);
    let mut g = txn.inode(fx.g).unwrap().unwrap();
    g.stored_blocks = 0;
    txn.put_inode(fx.g, &g);
    let mut root = txn.inode(ROOT_INO).unwrap().unwrap();
    root.nlink = 9;
    txn.put_inode(ROOT_INO, &root);
    txn.commit(true).unwrap();

    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["dir_parent", "link_count", "stored_blocks"]);
    assert_eq!(find(&report.problems, "dir_parent").path.as_deref(), Some("/d/e"));
    assert_eq!(find(&report.problems, "stored_blocks").path.as_deref(), Some("/g"));
    let links: Vec<Option<&str>> =
        report.problems.iter().filter(|p| p.kind == "link_count").map(|p| p.path.as_deref()).collect();
    assert_eq!(links, [Some("/"), Some("/d/f")]);

    let report = fsck(&store, true);
    assert_eq!(store.inode(fx.f).unwrap().unwrap().nlink, 1);
    assert_eq!(store.inode(fx.e).unwrap().unwrap().parent, fx.d);
    assert_eq!(store.inode(fx.g).unwrap().unwrap().stored_blocks, 3);
    assert_eq!(store.inode(ROOT_INO).unwrap().unwrap().nlink, 3);
    assert_eq!(store.inode(fx.h).unwrap().unwrap().nlink, 2, "untouched");
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn unreachable_inodes_and_directory_cycles() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let mut txn = store.begin();
    // /d (with f, e, e/h2) loses its name; /g loses its name.
    txn.remove_entry(ROOT_INO, b"d").unwrap();
    txn.remove_entry(ROOT_INO, b"g").unwrap();
    txn.commit(true).unwrap();
    // A loop nobody reaches: x/y, y holds x.
    let v_dir = |txn: &mut Txn<'_>, ino: u64, parent: u64| {
        let mut rec = txn.inode(fx.d).unwrap().unwrap();
        rec.parent = parent;
        txn.put_inode(ino, &rec);
    };
    let (x, y) = (store.new_ino().unwrap(), store.new_ino().unwrap());
    let mut txn = store.begin();
    v_dir(&mut txn, x, y);
    v_dir(&mut txn, y, x);
    txn.add_entry(x, b"y", y, libc::S_IFDIR).unwrap();
    txn.add_entry(y, b"x", x, libc::S_IFDIR).unwrap();
    txn.commit(true).unwrap();

    let report = fsck(&store, false);
    let unreachable: Vec<u64> =
        report.problems.iter().filter(|p| p.kind == "unreachable_inode").filter_map(|p| p.ino).collect();
    for ino in [fx.d, fx.e, fx.f, fx.g, x, y] {
        assert!(unreachable.contains(&ino), "{ino} unreachable: {report:#?}");
    }
    assert!(report.problems.iter().filter(|p| p.kind == "unreachable_inode").all(|p| p.path.is_none()));
    assert_eq!(find(&report.problems, "link_count").path.as_deref(), Some("/"));

    let report = fsck(&store, true);
    let lf = lost_found(&store);
    assert_eq!(store.lookup(lf, format!("#{}", fx.d).as_bytes()).unwrap().unwrap().ino, fx.d);
    assert_eq!(store.lookup(lf, format!("#{}", fx.g).as_bytes()).unwrap().unwrap().ino, fx.g);
    assert_eq!(store.lookup(fx.d, b"f").unwrap().unwrap().ino, fx.f, "d comes back with its contents");
    assert_eq!(store.inode(fx.d).unwrap().unwrap().parent, lf);
    // One of the loop's directories is linked; the other stays inside it.
    let linked_x = store.lookup(lf, format!("#{x}").as_bytes()).unwrap().is_some();
    let linked_y = store.lookup(lf, format!("#{y}").as_bytes()).unwrap().is_some();
    assert!(linked_x ^ linked_y);
    let lf_rec = store.inode(lf).unwrap().unwrap();
    assert_eq!(lf_rec.nlink, 4, "#d and one loop directory");
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn directory_with_two_names() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let mut txn = store.begin();
    txn.add_entry(ROOT_INO, b"e-again", fx.e, libc::S_IFDIR).unwrap();
    txn.add_entry(ROOT_INO, b"root-again", ROOT_INO, libc::S_IFDIR).unwrap();
    txn.commit(true).unwrap();
    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["dir_multiple_names", "link_count", "root_linked"]);
    assert_eq!(find(&report.problems, "root_linked").path.as_deref(), Some("/root-again"));
    let report = fsck(&store, true);
    assert!(store.lookup(ROOT_INO, b"e-again").unwrap().is_none());
    assert!(store.lookup(ROOT_INO, b"root-again").unwrap().is_none());
    assert_eq!(store.lookup(fx.d, b"e").unwrap().unwrap().ino, fx.e);
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn orphans() {
    let fx = fixture();
    // A file unlinked while open when the volume went down: a pending orphan.
    let pending = {
        let v = Volume::open(fx.dir.path(), vopts()).unwrap();
        let (a, fh) = v.create(ME, ROOT_INO, OsStr::new("tmp"), 0o644, 0, libc::O_RDWR).unwrap();
        v.write(a.ino, fh, 0, &pattern(2 * BS, 9)).unwrap();
        v.fsync(a.ino, false).unwrap();
        v.unlink(ROOT_INO, OsStr::new("tmp")).unwrap();
        v.shutdown().unwrap();
        a.ino
    };
    let store = open(fx.dir.path());
    assert_eq!(store.orphans().unwrap(), vec![pending]);
    let report = fsck(&store, false);
    assert!(report.problems.is_empty(), "{report:#?}");
    assert_eq!(find(&report.notes, "pending_orphan").ino, Some(pending));
    assert_eq!(report.outcome, FsckOutcome::Clean);

    let mut txn = store.begin();
    txn.set_orphan(fx.g, true);
    txn.set_orphan(777_777, true);
    txn.commit(true).unwrap();
    let report = fsck(&store, false);
    let marks: Vec<(Option<u64>, Option<&str>)> =
        report.problems.iter().filter(|p| p.kind == "orphan_mark").map(|p| (p.ino, p.path.as_deref())).collect();
    assert_eq!(marks, [(Some(fx.g), Some("/g")), (Some(777_777), None)]);

    let report = fsck(&store, true);
    assert!(store.orphans().unwrap().is_empty());
    assert!(store.inode(pending).unwrap().is_none(), "the pending orphan is freed");
    assert!(store.block(pending, 0).unwrap().is_none());
    assert!(store.inode(fx.g).unwrap().is_some());
    assert!(find(&report.notes, "pending_orphan").repaired);
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn stray_blocks_and_xattrs() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let hash = store.block(fx.h, 0).unwrap().unwrap();
    let mut txn = store.begin();
    let no_frame = || -> Result<(Vec<u8>, FrameInfo), StoreError> { unreachable!("the block exists") };
    txn.set_block(424_242, 0, Some(hash), no_frame).unwrap();
    txn.set_block(fx.f, 100, Some(hash), no_frame).unwrap();
    txn.set_block(fx.d, 0, Some(hash), no_frame).unwrap();
    txn.set_xattr(424_242, b"user.lost", b"1");
    txn.commit(true).unwrap();
    assert_eq!(block_record(&store, &hash).refcount, 4);

    let report = fsck(&store, false);
    assert_eq!(
        kinds(&report.problems),
        ["block_of_missing_inode", "block_of_non_file", "block_past_eof", "stored_blocks", "xattr_of_missing_inode"]
    );
    assert_eq!(find(&report.problems, "block_past_eof").path.as_deref(), Some("/d/f"));
    assert_eq!(find(&report.problems, "block_of_non_file").path.as_deref(), Some("/d"));
    assert_eq!(find(&report.problems, "block_of_missing_inode").ino, Some(424_242));

    let report = fsck(&store, true);
    assert_eq!(block_record(&store, &hash).refcount, 1);
    assert!(store.block(fx.f, 100).unwrap().is_none());
    assert!(store.xattr(424_242, b"user.lost").unwrap().is_none());
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn missing_block_record_and_missing_root() {
    let fx = fixture();
    let hash = open(fx.dir.path()).block(fx.last, 0).unwrap().unwrap();
    damage_records(fx.dir.path(), &[(key_block(&hash), None), (key_inode(ROOT_INO), None)]);
    let store = open(fx.dir.path());
    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["root_missing", "unreadable_block"]);
    let p = find(&report.problems, "unreadable_block");
    assert_eq!(p.path.as_deref(), Some("/last"));
    assert!(p.detail.contains("missing"), "{}", p.detail);

    let report = fsck(&store, true);
    let root = store.inode(ROOT_INO).unwrap().unwrap();
    assert_eq!((root.kind, root.parent), (libc::S_IFDIR, ROOT_INO));
    assert_eq!(store.lookup(ROOT_INO, b"d").unwrap().unwrap().ino, fx.d, "the root's entries are kept");
    let lf = lost_found(&store);
    assert_eq!(root.nlink, 4, "d, lost+found");
    assert!(store.lookup(lf, format!("{}-last", fx.last).as_bytes()).unwrap().is_some());
    assert_repaired(&report, fx.dir.path(), store);

    // A quarantined block whose record was missing can be deleted with its file.
    let v = Volume::open(fx.dir.path(), vopts()).unwrap();
    assert_eq!(errno(v.read(fx.last, 0, 10)), libc::EIO);
    let lf = v.lookup(ROOT_INO, OsStr::new("lost+found")).unwrap().ino;
    v.unlink(lf, OsStr::new(&format!("{}-last", fx.last))).unwrap();
    assert_eq!(v.getattr(fx.s).unwrap().kind, FileKind::Symlink);
}

/// A T5 frame of `plain` whose model (`[7; 32]`) no volume has: a valid frame that cannot
/// be decoded here.
fn frame_of_a_missing_model(plain: &[u8]) -> (Vec<u8>, FrameInfo) {
    use s2sfs::codec::{CodecId, FrameHeader, ModelId};
    let header = FrameHeader::new(CodecId::T5, ModelId([7; 32]), plain, plain).unwrap();
    let info = FrameInfo { codec: CodecId::T5 as u8, model: [7; 8], plain_len: plain.len() as u32 };
    (header.encode(plain), info)
}

/// A frame whose learned model the volume does not have is not damage: fsck names what is
/// missing and every file using the block, counts it as a problem, and a repair leaves
/// the blocks, their records and the files as they are while it repairs the rest.
#[test]
fn frames_whose_model_is_missing_are_reported_and_left_alone() {
    let fx = fixture();
    let store = open(fx.dir.path());
    // g's first block, shared with /dup.
    let hash = store.block(fx.g, 0).unwrap().unwrap();
    let (frame, info) = frame_of_a_missing_model(&fx.g_data[..BS]);
    let old = block_record(&store, &hash);
    assert!(store.replace_frame(&hash, &old, frame, info).unwrap());
    store.flush().unwrap();
    let rec = block_record(&store, &hash);
    assert_eq!(rec.info, Some(info));

    let report = fsck(&store, false);
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
    assert_eq!(kinds(&report.problems), ["unavailable_block"]);
    let mut paths: Vec<&str> = report.problems.iter().filter_map(|p| p.path.as_deref()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/dup", "/g"]);
    for p in &report.problems {
        assert!(p.detail.starts_with("bytes 0-4095 cannot be read until"), "{}", p.detail);
        assert!(p.detail.contains("0707070707070707"), "names the missing model: {}", p.detail);
    }

    // Damage elsewhere is repaired; the unavailable blocks stay as they are.
    let f1 = block_record(&store, &store.block(fx.f, 1).unwrap().unwrap());
    let pack = std::fs::OpenOptions::new().write(true).open(store.pack_path(f1.pack)).unwrap();
    pack.write_all_at(&[0xEE; 8], f1.offset + f1.frame_len as u64 - 8).unwrap();
    drop(pack);
    let report = fsck(&store, true);
    assert_eq!(kinds(&report.problems), ["unavailable_block", "unreadable_block"]);
    for p in &report.problems {
        assert_eq!(p.repaired, p.kind == "unreadable_block", "{p:#?}");
    }
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
    assert_eq!(s2sfs::commands::fsck::exit_code(report.outcome), s2sfs::commands::fsck::EXIT_PROBLEMS);
    let second = report.after_repair.as_ref().unwrap();
    assert_eq!(kinds(&second.problems), ["unavailable_block"]);
    assert_eq!(second.problems.len(), 2);
    assert_eq!(block_record(&store, &hash), rec, "the record is untouched");
    assert_eq!(store.block(fx.g, 0).unwrap(), Some(hash), "not quarantined");
    assert_eq!(store.block(fx.g, 1).unwrap(), Some(store.block(fx.g, 1).unwrap().unwrap()));
    assert!(
        store.lookup(ROOT_INO, b"g").unwrap().is_some() && store.lookup(ROOT_INO, b"dup").unwrap().is_some(),
        "not moved"
    );
    assert!(store.xattr(fx.g, b"user.s2sfs.bad_ranges").unwrap().is_none());

    // With repair alone, nothing is written for them.
    let report = fsck(&store, true);
    assert_eq!(kinds(&report.problems), ["unavailable_block"]);
    assert!(!report.changes_written && report.after_repair.is_none());
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
}
