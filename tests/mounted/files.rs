//! Regular files: contents, block boundaries, overwrites, truncation, holes, appends,
//! unlinked-but-open files, fsync and mmap.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::harness::*;

#[test]
fn create_write_read_small_file() {
    let m = Mounted::new(&[]);
    let p = m.path("hello.txt");
    fs::write(&p, b"hello, s2sfs\n").unwrap();
    assert_file_eq(&p, b"hello, s2sfs\n");
    let md = fs::metadata(&p).unwrap();
    assert!(md.is_file());
    assert_eq!(md.len(), 13);

    // Appending through a second open, then reading with a third.
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"second line\n").unwrap();
    drop(f);
    assert_file_eq(&p, b"hello, s2sfs\nsecond line\n");

    // O_EXCL on an existing name, open of a missing one.
    assert_eq!(errno_of(OpenOptions::new().write(true).create_new(true).open(&p)), libc::EEXIST);
    assert_eq!(errno_of(File::open(m.path("missing"))), libc::ENOENT);

    // O_TRUNC empties the file.
    let f = OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    drop(f);
    assert_file_eq(&p, b"");
    m.finish();
}

/// Offsets around the 128 KiB block boundaries of a 300 KiB + 17 byte file.
fn boundary_offsets(len: usize) -> Vec<usize> {
    vec![0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 3, 2 * BLOCK, 2 * BLOCK + 5, len - 17, len - 1, len]
}

fn check_boundaries(m: &Mounted, name: &str, data: &[u8]) {
    let p = m.path(name);
    assert_file_eq(&p, data);
    assert_eq!(fs::metadata(&p).unwrap().len(), data.len() as u64, "{name}: size");
    let f = File::open(&p).unwrap();
    for off in boundary_offsets(data.len()) {
        let got = pread(&f, off as u64, 33).unwrap();
        let want = &data[off..(off + 33).min(data.len())];
        assert_bytes_eq(&got, want, &format!("{name}: pread(33) at {off}"));
    }
    // A read straddling two blocks in one call.
    let got = pread(&f, (BLOCK - 1000) as u64, 2000).unwrap();
    assert_bytes_eq(&got, &data[BLOCK - 1000..BLOCK + 1000], &format!("{name}: read across block 0/1"));
    assert!(pread(&f, data.len() as u64 + 10, 10).unwrap().is_empty(), "{name}: read past EOF");
}

#[test]
fn files_crossing_block_boundaries() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    let len = 300 * KIB + 17;
    let text = text_bytes(1, len);
    let random = random_bytes(2, len);
    fs::write(m.path("text"), &text).unwrap();
    fs::write(m.path("random"), &random).unwrap();

    // Written in odd-sized pieces that never line up with a block.
    let mut f = File::create(m.path("pieces")).unwrap();
    for chunk in text.chunks(7919) {
        f.write_all(chunk).unwrap();
    }
    drop(f);

    m.check_across_remount(|m, _| {
        for name in ["text", "random", "pieces"] {
            let data = if name == "random" { &random } else { &text };
            check_boundaries(m, name, data);
        }
    });
    m.finish();
}

#[test]
fn overwrite_in_the_middle_of_a_compressed_block() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    let p = m.path("f");
    let mut data = text_bytes(3, 3 * BLOCK + 1000);
    let f = File::create(&p).unwrap();
    f.write_all_at(&data, 0).unwrap();
    f.sync_all().unwrap(); // committed: blocks are compressed frames now
    drop(f);

    // 1000 random bytes in the middle of block 1, and one byte in block 0.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    let patch = random_bytes(4, 1000);
    f.write_all_at(&patch, (BLOCK + 5000) as u64).unwrap();
    data[BLOCK + 5000..BLOCK + 6000].copy_from_slice(&patch);
    f.write_all_at(b"#", 12345).unwrap();
    data[12345] = b'#';
    assert_file_eq(&p, &data); // before close: dirty data visible
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), data.len() as u64);
    m.assert_file_eq_across_remount(&p, &data);

    // After the remount: a patch straddling blocks 1 and 2.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let patch = random_bytes(5, 1000);
    f.write_all_at(&patch, (2 * BLOCK - 500) as u64).unwrap();
    data[2 * BLOCK - 500..2 * BLOCK + 500].copy_from_slice(&patch);
    assert_bytes_eq(&pread(&f, 0, data.len() + 10).unwrap(), &data, "read through the writing fd");
    drop(f);
    m.assert_file_eq_across_remount(&p, &data);
    m.finish();
}

#[test]
fn data_survives_unmount_and_remount() {
    let mut m = Mounted::new(&[]);
    fs::create_dir_all(m.path("dir/sub")).unwrap();
    let mut five = random_bytes(6, 5 * MIB / 2);
    five.extend(text_bytes(7, 5 * MIB / 2));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one", b"1".to_vec()),
        ("text-100k", text_bytes(8, 100 * KIB)),
        ("five-mib", five),
        ("dir/sub/nested", random_bytes(9, BLOCK + 1)),
        ("exact-block", text_bytes(10, BLOCK)),
    ];
    for (name, data) in &files {
        fs::write(m.path(name), data).unwrap();
    }
    let want: Vec<(String, u64, String)> =
        files.iter().map(|(n, d)| (n.to_string(), d.len() as u64, hash(d))).collect();

    m.remount_with(&["--cache-mb", "1"]);
    for (name, len, _) in &want {
        assert_eq!(fs::metadata(m.path(name)).unwrap().len(), *len, "{name}: size after remount");
    }
    assert_eq!(names(&m.mnt), sorted(&["dir", "empty", "exact-block", "five-mib", "one", "text-100k"]));
    // Read back from this mount's cold cache, then once more from a cold cache again.
    m.check_across_remount(|m, when| {
        for (name, _, h) in &want {
            assert_eq!(&hash_file(&m.path(name)), h, "{name}: contents {when}");
        }
    });
    m.finish();
}

#[test]
fn truncate_shrink_then_extend_reads_zeros() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    let p = m.path("t");
    let data = text_bytes(11, 200 * KIB);
    fs::write(&p, &data).unwrap();

    // truncate(2) by path into the middle of block 1, then extend past the old end.
    let c = cpath(&p);
    cvt(unsafe { libc::truncate(c.as_ptr(), (BLOCK + 1000) as i64) }).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), (BLOCK + 1000) as u64);
    assert_file_eq(&p, &data[..BLOCK + 1000]);
    cvt(unsafe { libc::truncate(c.as_ptr(), (300 * KIB) as i64) }).unwrap();
    let mut want = data[..BLOCK + 1000].to_vec();
    want.resize(300 * KIB, 0);
    m.assert_file_eq_across_remount(&p, &want);

    // Shrink into the middle of block 0 (committed, compressed), then extend by writing.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(100).unwrap();
    f.write_all_at(b"END", 50_000).unwrap();
    let mut want2 = want[..100].to_vec();
    want2.resize(50_000, 0);
    want2.extend_from_slice(b"END");
    assert_bytes_eq(&pread(&f, 0, 60_000).unwrap(), &want2, "after shrink to 100 + write at 50000");
    drop(f);
    m.assert_file_eq_across_remount(&p, &want2);

    // Shrink to zero, extend: all zeros.
    let c = cpath(&p);
    cvt(unsafe { libc::truncate(c.as_ptr(), 0) }).unwrap();
    cvt(unsafe { libc::truncate(c.as_ptr(), (2 * BLOCK + 3) as i64) }).unwrap();
    assert_file_eq(&p, &vec![0u8; 2 * BLOCK + 3]);
    m.finish();
}

#[test]
fn ftruncate_on_dirty_open_file() {
    let mut m = Mounted::new(&[]);
    let p = m.path("ft");
    let data = random_bytes(12, 3 * BLOCK);
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
    f.write_all(&data).unwrap(); // still dirty: no close, no fsync
    f.set_len(5000).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 5000);
    f.write_all_at(b"xyz", 10_000).unwrap();
    let mut want = data[..5000].to_vec();
    want.resize(10_000, 0);
    want.extend_from_slice(b"xyz");
    assert_eq!(f.metadata().unwrap().len(), 10_003);
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut got).unwrap();
    assert_bytes_eq(&got, &want, "read back through the fd");
    drop(f);
    m.assert_file_eq_across_remount(&p, &want);
    m.finish();
}

#[test]
fn holes_from_seeking_past_eof_read_as_zeros() {
    let mut m = Mounted::new(&[]);
    let p = m.path("holey");
    let mut f = File::create(&p).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start((MIB + 3) as u64)).unwrap();
    f.write_all(b"tail").unwrap();
    // A second hole inside one block: write at 2 MiB + 100 after a seek from 2 MiB + 10.
    f.seek(SeekFrom::Start((2 * MIB + 10) as u64)).unwrap();
    f.write_all(b"a").unwrap();
    f.seek(SeekFrom::Current(89)).unwrap();
    f.write_all(b"b").unwrap();
    drop(f);
    let mut want = vec![0u8; 2 * MIB + 101];
    want[..4].copy_from_slice(b"head");
    want[MIB + 3..MIB + 7].copy_from_slice(b"tail");
    want[2 * MIB + 10] = b'a';
    want[2 * MIB + 100] = b'b';
    assert_eq!(fs::metadata(&p).unwrap().len(), want.len() as u64);
    m.assert_file_eq_across_remount(&p, &want);
    m.finish();
}

#[test]
fn sparse_file_larger_than_4_gib() {
    let mut m = Mounted::new(&[]);
    let p = m.path("sparse");
    const FIVE_GIB: u64 = 5 << 30;
    let f = File::create(&p).unwrap();
    f.write_all_at(b"Z", FIVE_GIB).unwrap();
    drop(f);
    m.check_across_remount(|_, when| {
        let md = fs::metadata(&p).unwrap();
        assert_eq!(md.len(), FIVE_GIB + 1, "size ({when})");
        assert!(
            md.blocks() * 512 <= 1 << 20,
            "a 5 GiB file holding one byte uses st_blocks={} ({} bytes) ({when})",
            md.blocks(),
            md.blocks() * 512
        );
        let f = File::open(&p).unwrap();
        let mut want = vec![0u8; 10];
        want.push(b'Z');
        assert_bytes_eq(&pread(&f, FIVE_GIB - 10, 100).unwrap(), &want, "the byte at 5 GiB");
        assert_bytes_eq(&pread(&f, 4 << 30, 64 * KIB).unwrap(), &vec![0u8; 64 * KIB], "zeros at 4 GiB");
        assert_bytes_eq(&pread(&f, 0, 4096).unwrap(), &vec![0u8; 4096], "zeros at 0");
    });
    m.finish();
}

#[test]
fn o_append_from_two_fds_interleaved() {
    let mut m = Mounted::new(&[]);
    let p = m.path("log");
    fs::write(&p, b"start\n").unwrap();
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    let mut b = OpenOptions::new().append(true).open(&p).unwrap();
    let mut want = b"start\n".to_vec();
    for i in 0..300 {
        let la = format!("A{i:04}\n");
        let lb = format!("B{i:04} {}\n", "x".repeat(i % 50));
        a.write_all(la.as_bytes()).unwrap();
        b.write_all(lb.as_bytes()).unwrap();
        want.extend_from_slice(la.as_bytes());
        want.extend_from_slice(lb.as_bytes());
    }
    drop(a);
    drop(b);
    assert_eq!(fs::metadata(&p).unwrap().len(), want.len() as u64);
    m.assert_file_eq_across_remount(&p, &want);
    m.finish();
}

#[test]
fn unlinked_open_file_stays_usable_until_close() {
    let mut m = Mounted::new(&[]);
    let p = m.path("victim");
    let packs = m.store.join("packs");
    let packs_size = || if packs.exists() { tree_size(&packs) } else { 0 };
    let s0 = packs_size();
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
    let data = random_bytes(13, MIB);
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    let s1 = packs_size();
    assert!(s1 >= s0 + MIB as u64, "1 MiB of random data fsync'd grew the packs by only {} bytes", s1 - s0);

    fs::remove_file(&p).unwrap();
    assert_eq!(errno_of(fs::metadata(&p)), libc::ENOENT);
    assert!(!names(&m.mnt).contains(&"victim".to_string()), "unlinked name still listed");
    assert_eq!(f.metadata().unwrap().nlink(), 0, "nlink of an unlinked open file");

    // Still readable and writable through the descriptor.
    assert_bytes_eq(&pread(&f, 0, 2 * MIB).unwrap(), &data, "read after unlink");
    f.write_all_at(b"more", MIB as u64).unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"more");
    assert_eq!(f.metadata().unwrap().len(), want.len() as u64);
    assert_bytes_eq(&pread(&f, 0, 2 * MIB).unwrap(), &want, "read after unlink + write");
    f.sync_all().unwrap();
    assert_bytes_eq(&pread(&f, 0, 2 * MIB).unwrap(), &want, "read after unlink + write + fsync");

    // A new file can take the name meanwhile.
    fs::write(&p, b"new").unwrap();
    assert_bytes_eq(&pread(&f, MIB as u64, 10).unwrap(), b"more", "old inode after the name was reused");
    fs::remove_file(&p).unwrap();
    drop(f);

    // Closed: the inode and its blocks are free. Unmounting compacts packs that are mostly
    // dead, so the store's footprint goes back to what it was.
    m.unmount();
    let s2 = packs_size();
    assert!(
        s2 < s0 + 64 * KIB as u64,
        "after close and unmount the unlinked file still takes {} bytes of packs (before: {s0}, while open: {s1})",
        s2 - s0
    );
    m.mount();
    assert_eq!(names(&m.mnt), Vec::<String>::new());
    m.finish();
}

#[test]
fn fsync_and_fdatasync_succeed_and_data_survives_remount() {
    let mut m = Mounted::new(&[]);
    let p = m.path("synced");
    let data = text_bytes(14, 3 * BLOCK + 5);
    let mut f = File::create(&p).unwrap();
    f.write_all(&data).unwrap();
    assert_eq!(unsafe { libc::fdatasync(std::os::fd::AsRawFd::as_raw_fd(&f)) }, 0, "fdatasync");
    f.write_all(b"tail").unwrap();
    assert_eq!(unsafe { libc::fsync(std::os::fd::AsRawFd::as_raw_fd(&f)) }, 0, "fsync");
    drop(f);
    // fsync of a directory.
    File::open(&m.mnt).unwrap().sync_all().unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"tail");
    m.remount();
    assert_file_eq(&p, &want);
    m.finish();
}

#[test]
fn fsynced_data_survives_a_daemon_crash() {
    let mut m = Mounted::new(&[]);
    let p = m.path("durable");
    let data = text_bytes(15, 2 * BLOCK + 77);
    let f = File::create(&p).unwrap();
    f.write_all_at(&data, 0).unwrap();
    f.sync_all().unwrap();
    fs::create_dir(m.path("d")).unwrap();
    File::open(&m.mnt).unwrap().sync_all().unwrap();
    // SIGKILL with the file still open: only what fsync made durable may be relied on.
    m.kill_daemon();
    drop(f);
    m.mount();
    assert_file_eq(&p, &data);
    assert!(fs::metadata(m.path("d")).unwrap().is_dir());
    m.finish();
}

fn mmap(f: &File, len: usize, prot: libc::c_int) -> *mut u8 {
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, std::os::fd::AsRawFd::as_raw_fd(f), 0) };
    assert_ne!(p, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    p as *mut u8
}

#[test]
fn mmap_read_of_a_multi_block_file() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    let p = m.path("mapped");
    let data = text_bytes(16, 3 * BLOCK + 777);
    fs::write(&p, &data).unwrap();
    m.remount(); // cold: the pages come from the store
    let f = File::open(&p).unwrap();
    let ptr = mmap(&f, data.len(), libc::PROT_READ);
    let got = unsafe { std::slice::from_raw_parts(ptr, data.len()) }.to_vec();
    unsafe { libc::munmap(ptr as *mut libc::c_void, data.len()) };
    assert_bytes_eq(&got, &data, "mmap PROT_READ");
    drop(f);
    m.finish();
}

#[test]
fn shared_writable_mmap_persists() {
    let mut m = Mounted::new(&[]);
    let p = m.path("mapped-rw");
    let mut data = text_bytes(17, 3 * BLOCK + 100);
    fs::write(&p, &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let len = data.len();
    let ptr = mmap(&f, len, libc::PROT_READ | libc::PROT_WRITE);
    let map = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    let edits: [(usize, &[u8]); 3] = [(100, b"MMAP-EDIT-1"), (BLOCK - 3, b"straddle"), (len - 5, b"!END!")];
    for (off, bytes) in edits {
        map[off..off + bytes.len()].copy_from_slice(bytes);
        data[off..off + bytes.len()].copy_from_slice(bytes);
    }
    assert_eq!(unsafe { libc::msync(ptr as *mut libc::c_void, len, libc::MS_SYNC) }, 0, "msync");
    assert_eq!(unsafe { libc::munmap(ptr as *mut libc::c_void, len) }, 0, "munmap");
    drop(f);
    m.assert_file_eq_across_remount(&p, &data);
    assert_eq!(fs::metadata(&p).unwrap().len(), len as u64);
    m.finish();
}

/// Random writes, reads, truncates, fsyncs and remounts on one file, checked against a copy
/// kept in memory.
#[test]
fn random_io_matches_an_in_memory_copy() {
    let mut m = Mounted::new(&["--cache-mb", "1"]);
    let p = m.path("rand");
    let mut rng = Rng::new(60);
    let mut want: Vec<u8> = Vec::new();
    // Reopened mid-test: the file must keep its contents.
    let open =
        |p: &std::path::Path| OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).unwrap();
    let mut f = Some(open(&p));
    for step in 0..300 {
        let file = f.as_ref().unwrap();
        match rng.below(20) {
            0..=9 => {
                let off = rng.below(3 * MIB);
                let max = if rng.below(4) == 0 { 300 * KIB } else { 5000 };
                let len = 1 + rng.below(max);
                let data = match rng.below(3) {
                    0 => vec![0u8; len],
                    1 => random_bytes(rng.next(), len),
                    _ => text_bytes(rng.next() % 10_000, len),
                };
                file.write_all_at(&data, off as u64).unwrap();
                if want.len() < off + len {
                    want.resize(off + len, 0);
                }
                want[off..off + len].copy_from_slice(&data);
            }
            10..=13 => {
                let off = rng.below(want.len() + 1000);
                let len = rng.below(200 * KIB);
                let got = pread(file, off as u64, len).unwrap();
                let start = off.min(want.len());
                let exp = &want[start..(start + len).min(want.len())];
                assert_bytes_eq(&got, exp, &format!("step {step}: pread({off}, {len})"));
            }
            14..=15 => {
                let size = rng.below(3 * MIB);
                file.set_len(size as u64).unwrap();
                want.resize(size, 0);
            }
            16 => file.sync_all().unwrap(),
            17 => file.sync_data().unwrap(),
            18 => {
                assert_eq!(file.metadata().unwrap().len(), want.len() as u64, "step {step}: size");
                assert_bytes_eq(&pread(file, 0, want.len() + 10).unwrap(), &want, &format!("step {step}: whole file"));
            }
            _ => {
                drop(f.take());
                m.remount();
                f = Some(open(&p));
            }
        }
    }
    drop(f);
    m.assert_file_eq_across_remount(&p, &want);
    m.finish();
}

/// Threads writing interleaved, unaligned stripes of one shared file (so they share blocks)
/// and files of their own, reading back as they go.
#[test]
fn concurrent_writers_share_blocks_without_losing_data() {
    const THREADS: usize = 4;
    const STRIPE: usize = 48 * KIB + 7;
    const ROUNDS: usize = 12;
    let mut m = Mounted::new(&["--cache-mb", "2"]);
    let shared = m.path("shared");
    File::create(&shared).unwrap();
    let stripe_data = |t: usize, r: usize| -> Vec<u8> {
        if r.is_multiple_of(2) {
            text_bytes((t * 100 + r) as u64, STRIPE)
        } else {
            random_bytes((t * 100 + r) as u64, STRIPE)
        }
    };
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let shared = shared.clone();
            let own = m.path(&format!("own-{t}"));
            s.spawn(move || {
                let sf = OpenOptions::new().read(true).write(true).open(&shared).unwrap();
                let mut of = File::create(&own).unwrap();
                for r in 0..ROUNDS {
                    let off = ((r * THREADS + t) * STRIPE) as u64;
                    let data = stripe_data(t, r);
                    sf.write_all_at(&data, off).unwrap();
                    of.write_all(&data).unwrap();
                    let got = pread(&sf, off, STRIPE).unwrap();
                    assert_bytes_eq(&got, &data, &format!("thread {t} round {r}: own stripe read back"));
                    if r % 5 == 4 {
                        sf.sync_data().unwrap();
                    }
                }
            });
        }
    });
    let mut want_shared = Vec::new();
    for r in 0..ROUNDS {
        for t in 0..THREADS {
            want_shared.extend(stripe_data(t, r));
        }
    }
    m.check_across_remount(|m, _| {
        assert_file_eq(&m.path("shared"), &want_shared);
        for t in 0..THREADS {
            let want: Vec<u8> = (0..ROUNDS).flat_map(|r| stripe_data(t, r)).collect();
            assert_file_eq(&m.path(&format!("own-{t}")), &want);
        }
    });
    m.finish();
}

/// Opens keep the kernel's page cache of a file (FOPEN_KEEP_CACHE): every change made
/// through the mount, by any name or descriptor, must show in later opens; and whole
/// blocks read sequentially (decoded straight into the reply) equal what was written.
#[test]
fn cached_pages_follow_every_change_across_opens() {
    let m = Mounted::new(&[]);
    let (p, link) = (m.path("kept"), m.path("kept-link"));
    let mut model = text_bytes(7, 3 * BLOCK + 999);
    model[BLOCK..2 * BLOCK].copy_from_slice(&random_bytes(8, BLOCK));
    fs::write(&p, &model).unwrap();
    fs::hard_link(&p, &link).unwrap();
    assert_file_eq(&p, &model);
    // Overwrite the middle of a cached block through the other name.
    let f = OpenOptions::new().write(true).open(&link).unwrap();
    f.write_all_at(b"CHANGED", BLOCK as u64 + 100).unwrap();
    drop(f);
    model[BLOCK + 100..BLOCK + 107].copy_from_slice(b"CHANGED");
    assert_file_eq(&p, &model);
    // Shrink into a block and extend again: the tail reads as zeros.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(2 * BLOCK as u64 + 10).unwrap();
    f.set_len(3 * BLOCK as u64).unwrap();
    drop(f);
    model.truncate(2 * BLOCK + 10);
    model.resize(3 * BLOCK, 0);
    assert_file_eq(&link, &model);
    // Replace the file by rename: the name shows the new contents.
    let fresh = text_bytes(9, 2 * BLOCK);
    fs::write(m.path("new"), &fresh).unwrap();
    fs::rename(m.path("new"), &p).unwrap();
    assert_file_eq(&p, &fresh);
    assert_file_eq(&link, &model);
    m.finish();
}
