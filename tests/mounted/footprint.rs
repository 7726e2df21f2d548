//! The store's footprint: compression, dedup and holes are visible in the pack files.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use crate::harness::*;

fn write_synced(path: &std::path::Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn dedup_zeros_and_compression_show_in_the_pack_files() {
    let m = Mounted::new(&[]);
    let packs = m.store.join("packs");
    let packs_size = || if packs.exists() { tree_size(&packs) } else { 0 };
    let s0 = packs_size();

    // 1 MiB of random data: stored about once...
    let random = random_bytes(50, MIB);
    write_synced(&m.path("r1"), &random);
    let s1 = packs_size();
    assert!(
        s1 - s0 >= MIB as u64 && s1 - s0 < (MIB + 64 * KIB) as u64,
        "1 MiB of random data grew the packs by {} bytes",
        s1 - s0
    );
    // ...and the same 1 MiB in a second file adds (almost) nothing.
    write_synced(&m.path("r2"), &random);
    let s2 = packs_size();
    assert!(s2 - s1 < 64 * KIB as u64, "a duplicate 1 MiB file grew the packs by {} bytes", s2 - s1);
    assert_file_eq(&m.path("r2"), &random);

    // 100 MiB of zeros: holes, no frames.
    let zeros = vec![0u8; MIB];
    let mut f = File::create(m.path("zeros")).unwrap();
    for _ in 0..100 {
        f.write_all(&zeros).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let s3 = packs_size();
    assert!(s3 - s2 < 64 * KIB as u64, "100 MiB of zeros grew the packs by {} bytes", s3 - s2);
    let md = fs::metadata(m.path("zeros")).unwrap();
    assert_eq!(md.len(), 100 * MIB as u64);
    assert!(md.blocks() * 512 < MIB as u64, "100 MiB of zeros reports st_blocks {}", md.blocks());
    let f = File::open(m.path("zeros")).unwrap();
    for off in [0u64, 50 * MIB as u64 + 7, 100 * MIB as u64 - 4096] {
        assert_bytes_eq(&pread(&f, off, 4096).unwrap(), &vec![0u8; 4096], &format!("zeros at {off}"));
    }
    drop(f);

    // 4 MiB of text compresses to well under half.
    let text = text_bytes(51, 4 * MIB);
    write_synced(&m.path("text"), &text);
    let s4 = packs_size();
    assert!(s4 - s3 < 2 * MIB as u64, "4 MiB of text grew the packs by {} bytes", s4 - s3);
    assert_file_eq(&m.path("text"), &text);
    m.finish();
}
