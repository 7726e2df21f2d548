//! `Core::stats` on a volume driven directly: the totals add up, per codec and per model.

use std::ffi::OsStr;

use super::*;
use crate::store::StoreError;
use crate::volume::{Caller, SetAttr, Volume, VolumeOptions, XattrFlags};

const ME: Caller = Caller { uid: 0, gid: 0 };
const BS: u64 = 4096;

fn opts() -> VolumeOptions {
    VolumeOptions { block_size: BS as u32, cache_bytes: 64 << 10, ..Default::default() }
}

/// Text that zstd compresses well, different in every line (no two blocks equal).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 80);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("file {seed} line {n:08}: the frame of every block keeps its bytes\n").as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

// Incompressible bytes: stored raw.
use crate::t5::fixtures::random_bytes as noise;

/// Creates `name` in the root with `data` at `offset`, committed; returns its inode.
fn write_file(v: &Volume, name: &str, offset: u64, data: &[u8]) -> u64 {
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new(name), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.write(a.ino, fh, offset, data).unwrap();
    v.release(a.ino, fh).unwrap();
    a.ino
}

fn codec_sum(s: &Stats, field: impl Fn(&CodecStats) -> u64) -> u64 {
    s.codecs.rows().into_iter().map(|(_, c)| field(c)).sum()
}

#[test]
fn totals_add_up_over_zstd_raw_dedup_and_sparse_files() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let empty = v.stats().unwrap();
    assert_eq!((empty.files, empty.logical_bytes, empty.blocks, empty.stored_bytes), (0, 0, 0, 0));
    assert_eq!((empty.ratio, empty.ratio_on_disk), (None, Some(0.0)));

    // 5 blocks and a 100-byte tail of text: zstd.
    let text_len = 5 * BS + 100;
    let text_ino = write_file(&v, "text", 0, &text(text_len as usize, 1));
    // A hard link: the file counts once.
    v.link(text_ino, ROOT_INO, OsStr::new("text-link")).unwrap();
    // 3 blocks and a 1000-byte tail of noise: raw; and a copy of it, deduplicated.
    let noise_len = 3 * BS + 1000;
    let random = noise(noise_len as usize, 2);
    write_file(&v, "noise", 0, &random);
    write_file(&v, "copy", 0, &random);
    // One block of text at block 10, then extended to 20 blocks: 19 blocks of holes.
    let sparse = write_file(&v, "sparse", 10 * BS, &text(BS as usize, 3));
    v.setattr(sparse, &SetAttr { size: Some(20 * BS), ..Default::default() }).unwrap();
    // Two blocks of zeros: holes, no frames.
    write_file(&v, "zeros", 0, &vec![0u8; 2 * BS as usize]);
    // An empty directory and a file in a subdirectory.
    v.mkdir(ME, ROOT_INO, OsStr::new("empty"), 0o755, 0).unwrap();
    let sub = v.mkdir(ME, ROOT_INO, OsStr::new("sub"), 0o755, 0).unwrap().ino;
    let (a, fh) = v.create(ME, sub, OsStr::new("deep"), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.write(a.ino, fh, 0, &text(300, 4)).unwrap();
    v.release(a.ino, fh).unwrap();

    let s = v.stats().unwrap();
    assert_eq!(s.files, 6, "text (2 links), noise, copy, sparse, zeros, sub/deep");
    let logical = text_len + 2 * noise_len + 20 * BS + 2 * BS + 300;
    assert_eq!(s.logical_bytes, logical);
    let referenced = text_len + 2 * noise_len + BS + 300;
    assert_eq!(s.referenced_bytes, referenced);
    assert_eq!(s.hole_bytes, 19 * BS + 2 * BS);
    assert_eq!(s.logical_bytes, s.referenced_bytes + s.hole_bytes);
    assert_eq!(s.unique_bytes, referenced - noise_len);
    assert_eq!(s.dedup_saved_bytes, noise_len);
    assert_eq!(s.blocks, 6 + 4 + 1 + 1);
    assert_eq!(s.references, 6 + 2 * 4 + 1 + 1);
    assert_eq!(s.stored_bytes, v.store.usage().0, "stored bytes are the live frames");
    assert_eq!(s.block_size, BS as u32);
    assert_eq!(s.dirty_bytes, 0);

    // Per codec: noise is raw, text zstd, nothing t5; the rows add up to the totals.
    assert_eq!((s.codecs.raw.blocks, s.codecs.raw.references), (4, 8));
    assert_eq!(s.codecs.raw.unique_bytes, noise_len);
    assert_eq!(s.codecs.raw.logical_bytes, 2 * noise_len);
    assert!(s.codecs.raw.stored_bytes > noise_len, "raw frames are the bytes plus headers");
    assert_eq!((s.codecs.zstd.blocks, s.codecs.zstd.references), (8, 8));
    assert_eq!(s.codecs.zstd.logical_bytes, text_len + BS + 300);
    assert!(s.codecs.zstd.ratio.unwrap() > 2.0, "text compresses: {:?}", s.codecs.zstd);
    assert_eq!(s.codecs.t5, CodecStats::default());
    assert!(s.codecs.unknown.is_none());
    assert_eq!(codec_sum(&s, |c| c.stored_bytes), s.stored_bytes);
    assert_eq!(codec_sum(&s, |c| c.blocks), s.blocks);
    assert_eq!(codec_sum(&s, |c| c.references), s.references);
    assert_eq!(codec_sum(&s, |c| c.logical_bytes), s.referenced_bytes);
    assert_eq!(codec_sum(&s, |c| c.unique_bytes), s.unique_bytes);

    // Ratios and the disk.
    assert_eq!(s.ratio, Some(s.logical_bytes as f64 / s.stored_bytes as f64));
    assert_eq!(s.disk.total_bytes, s.disk.pack_disk_bytes + s.disk.meta_bytes + s.disk.models_bytes);
    assert_eq!(s.ratio_on_disk, Some(s.logical_bytes as f64 / s.disk.total_bytes as f64));
    assert!(s.disk.pack_files >= 1 && s.disk.pack_bytes >= s.stored_bytes && s.disk.meta_bytes > 0);
    assert_eq!(s.disk.models_bytes, 0, "a zstd volume keeps no model");
    assert!(s.models.is_empty());
    let r = s.recompression.as_ref().expect("a volume reports recompression");
    assert!(!r.background && !r.running);

    // The cache counts lookups of committed blocks.
    let before = s.cache.unwrap();
    assert_eq!(before.capacity_bytes, 64 << 10);
    let partial = v.read(text_ino, 10, 100).unwrap();
    assert_eq!(partial.len(), 100);
    v.read(text_ino, 10, 100).unwrap();
    let after = v.stats().unwrap().cache.unwrap();
    assert!(after.hits + after.misses >= before.hits + before.misses + 2, "{before:?} -> {after:?}");
    assert!(after.hits > before.hits, "the second read hits: {before:?} -> {after:?}");
    assert_eq!(after.hit_rate, Some(after.hits as f64 / (after.hits + after.misses) as f64));
    assert!(after.bytes <= after.capacity_bytes);

    // Uncommitted data shows as dirty, and in none of the totals until committed.
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new("dirty"), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.write(a.ino, fh, 0, &text(1000, 5)).unwrap();
    let d = v.stats().unwrap();
    assert!(d.dirty_bytes > 0);
    assert_eq!((d.referenced_bytes, d.stored_bytes), (s.referenced_bytes, s.stored_bytes));
    v.release(a.ino, fh).unwrap();

    // JSON round-trips, with the documented names.
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "store",
        "block_size",
        "files",
        "logical_bytes",
        "referenced_bytes",
        "hole_bytes",
        "unique_bytes",
        "dedup_saved_bytes",
        "stored_bytes",
        "blocks",
        "references",
        "dirty_bytes",
        "disk",
        "ratio",
        "ratio_on_disk",
        "codecs",
        "models",
        "recompression",
        "cache",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert!(json["codecs"].get("unknown").is_none(), "unknown is left out when empty");
    assert_eq!(serde_json::from_value::<Stats>(json).unwrap(), s);
}

#[test]
fn unlinked_open_files_count_until_closed() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new("f"), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.write(a.ino, fh, 0, &text(3 * BS as usize, 1)).unwrap();
    v.flush(a.ino).unwrap();
    v.unlink(ROOT_INO, OsStr::new("f")).unwrap();
    let s = v.stats().unwrap();
    assert_eq!((s.files, s.logical_bytes, s.hole_bytes), (1, 3 * BS, 0));
    v.release(a.ino, fh).unwrap();
    let s = v.stats().unwrap();
    assert_eq!((s.files, s.logical_bytes, s.blocks, s.stored_bytes), (0, 0, 0, 0));
}

#[test]
fn the_root_xattr_holds_the_json_and_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    write_file(&v, "f", 0, &text(10_000, 1));
    let name = OsStr::new(STATS_XATTR);
    let value = v.getxattr(ROOT_INO, name).unwrap();
    assert!(!value.contains(&b'\n'), "one line");
    let parsed: Stats = serde_json::from_slice(&value).unwrap();
    assert_eq!((parsed.files, parsed.logical_bytes), (1, 10_000));
    // A size probe and the read after it see the same value.
    assert_eq!(v.getxattr(ROOT_INO, name).unwrap(), value);
    // Not listed, not settable, not removable.
    assert!(v.listxattr(ROOT_INO).unwrap().iter().all(|n| n != name));
    let set = v.setxattr(ROOT_INO, name, b"x", XattrFlags::default()).unwrap_err();
    assert_eq!(set.errno(), libc::EOPNOTSUPP);
    assert_eq!(v.removexattr(ROOT_INO, name).unwrap_err().errno(), libc::EOPNOTSUPP);
    // On any other inode it is an ordinary user xattr.
    let f = v.lookup(ROOT_INO, OsStr::new("f")).unwrap().ino;
    assert_eq!(v.getxattr(f, name).unwrap_err().errno(), libc::ENODATA);
    v.setxattr(f, name, b"mine", XattrFlags::default()).unwrap();
    assert_eq!(v.getxattr(f, name).unwrap(), b"mine");
    // Other xattrs of the root are unaffected.
    v.setxattr(ROOT_INO, OsStr::new("user.other"), b"1", XattrFlags::default()).unwrap();
    assert_eq!(v.getxattr(ROOT_INO, OsStr::new("user.other")).unwrap(), b"1");
}

#[test]
fn models_are_ok_damaged_or_missing_and_t5_frames_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    // A model the store keeps, and one whose directory is damaged.
    let model = crate::t5::fixtures::tiny_model();
    v.registry.ensure(&model).unwrap();
    let damaged = ModelId([0xab; 32]);
    std::fs::create_dir_all(v.registry.model_dir(&damaged)).unwrap();
    std::fs::write(v.registry.model_dir(&damaged).join("config.json"), b"{").unwrap();
    // A zstd file, and a t5 block of a model the store does not have (its frame is never
    // read: the record says what it is).
    write_file(&v, "z", 0, &text(2 * BS as usize, 1));
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new("t"), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.release(a.ino, fh).unwrap();
    v.setattr(a.ino, &SetAttr { size: Some(BS), ..Default::default() }).unwrap();
    let missing = [7u8; 8];
    let mut txn = v.store.begin();
    let info = FrameInfo { codec: CodecId::T5 as u8, model: missing, plain_len: BS as u32 };
    txn.set_block::<StoreError>(a.ino, 0, Some([7; 32]), || Ok((vec![1; 500], info))).unwrap();
    txn.commit(false).unwrap();
    // A zstd block whose record names the model it was weighed against (recompression):
    // reading it needs no model, so it is no model's block.
    let (w, fh) = v.create(ME, ROOT_INO, OsStr::new("w"), 0o644, 0o022, libc::O_RDWR).unwrap();
    v.release(w.ino, fh).unwrap();
    v.setattr(w.ino, &SetAttr { size: Some(BS), ..Default::default() }).unwrap();
    let mut txn = v.store.begin();
    let info = FrameInfo { codec: CodecId::Zstd as u8, model: [9; 8], plain_len: BS as u32 };
    txn.set_block::<StoreError>(w.ino, 0, Some([9; 32]), || Ok((vec![1; 300], info))).unwrap();
    txn.commit(false).unwrap();

    let s = v.stats().unwrap();
    assert_eq!(s.codecs.t5.blocks, 1);
    assert_eq!((s.codecs.t5.unique_bytes, s.codecs.t5.stored_bytes), (BS, 500));
    assert_eq!(s.hole_bytes, 0, "the t5 block backs the whole file");
    assert_eq!(codec_sum(&s, |c| c.stored_bytes), s.stored_bytes);
    let by_tag = |tag: [u8; 8]| {
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        s.models.iter().find(|m| m.tag == hex).unwrap_or_else(|| panic!("no model {hex} in {:?}", s.models)).clone()
    };
    let ok = by_tag(model.id().tag());
    assert_eq!((ok.status, ok.id.as_deref(), ok.frames.blocks), (ModelStatus::Ok, Some(model.id().hex().as_str()), 0));
    assert_eq!(ok.model_bytes, v.registry.bytes(&model.id()));
    let bad = by_tag(damaged.tag());
    assert_eq!(bad.status, ModelStatus::Damaged);
    assert!(bad.problem.is_some());
    let gone = by_tag(missing);
    assert_eq!((gone.status, gone.id.as_deref(), gone.model_bytes), (ModelStatus::Missing, None, 0));
    assert_eq!(
        (gone.frames.blocks, gone.frames.references, gone.frames.logical_bytes, gone.frames.stored_bytes),
        (1, 1, BS, 500)
    );
    assert_eq!(gone.frames.ratio, Some(BS as f64 / 500.0));
    assert_eq!(s.models.len(), 3, "no row for the zstd block's model: {:?}", s.models);
    assert_eq!(s.codecs.zstd.blocks, 2 + 1);
    assert_eq!(s.disk.models_bytes, v.registry.bytes(&model.id()) + v.registry.bytes(&damaged));
    assert_eq!(v.models().unwrap(), s.models);
    let mut out = Vec::new();
    render_models(&mut out, &s.models).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&model.id().hex()) && text.contains("damaged") && text.contains("missing"), "{text}");
}

#[test]
fn an_unmounted_store_is_read_directly_and_a_mounted_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = {
        let v = Volume::open(dir.path(), opts()).unwrap();
        write_file(&v, "a", 0, &text(3 * BS as usize, 1));
        write_file(&v, "b", 0, &noise(BS as usize, 2));
        assert!(is_locked(&store_stats(dir.path()).unwrap_err()), "the volume holds the lock");
        assert!(is_locked(&store_models(dir.path()).unwrap_err()));
        v.shutdown().unwrap();
        v.stats().unwrap()
    };
    assert_eq!(crate::store::close_state(dir.path()), crate::store::CloseState::Clean);
    let s = store_stats(dir.path()).unwrap();
    assert_eq!(
        (s.files, s.logical_bytes, s.stored_bytes, s.blocks),
        (mounted.files, mounted.logical_bytes, mounted.stored_bytes, mounted.blocks)
    );
    assert_eq!(s.codecs, mounted.codecs);
    assert!(s.cache.is_none() && s.recompression.is_none() && s.dirty_bytes == 0);
    assert!(store_models(dir.path()).unwrap().is_empty());
    // Reading it left how the store was last closed as it was.
    assert_eq!(crate::store::close_state(dir.path()), crate::store::CloseState::Clean);
    let mut out = Vec::new();
    render_stats(&mut out, &s).unwrap();
    let text = String::from_utf8(out).unwrap();
    for want in ["logical", "holes", "stored frames", "store on disk", "zstd", "raw", "t5", "total", "not mounted"] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
    // Not a store: an error naming it, nothing created.
    let empty = tempfile::tempdir().unwrap();
    let err = store_stats(empty.path()).unwrap_err().to_string();
    assert!(err.contains("not an s2sfs store"), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}
