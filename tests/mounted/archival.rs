//! Archival (`--codec t5`) and auto volumes: the learned coder inside the filesystem, the
//! chooser's smallest frame per block, background and on-demand recompression, and a
//! store's models going missing or bad. Blocks are 16 KiB here so that the shipped model
//! codes a test's data in seconds on a debug build.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

const SMALL_BLOCK: usize = 16 * KIB;

/// English prose: the repository's own documentation, what the shipped model codes best.
pub fn prose(len: usize) -> Vec<u8> {
    prose_from(0, len)
}

/// `len` bytes of the documentation starting at `skip` (wrapping around).
pub fn prose_from(skip: usize, len: usize) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for name in ["README.md", "ARCHITECTURE.md", "SEMANTICS.md", "RELIABILITY.md", "CODER.md", "BENCHMARKS.md"] {
        all.extend(fs::read(root.join(name)).unwrap_or_default());
    }
    assert!(all.len() >= 64 * KIB, "only {} bytes of prose in the docs", all.len());
    all.iter().cycle().skip(skip % all.len()).take(len).copied().collect()
}

/// Very repetitive structured bytes: zstd stores them far smaller than any learned coder.
fn repetitive(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("<row id=\"{}\"><v>0</v></row>\n", i % 4).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// `s2sfs ARGS --json` parsed.
pub fn cli_json(args: &[&str]) -> serde_json::Value {
    let out = run_cli(args, None, Duration::from_secs(300));
    assert!(out.status.success(), "s2sfs {args:?}: {}", out.describe());
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("s2sfs {args:?} printed no JSON ({e}): {}", out.describe()))
}

/// The statistics of a mounted volume.
pub fn stats(m: &Mounted) -> serde_json::Value {
    cli_json(&["stats", m.mnt.to_str().unwrap(), "--json"])
}

/// Blocks stored with `codec` ("raw", "zstd", "t5") according to the statistics.
pub fn codec_blocks(stats: &serde_json::Value, codec: &str) -> u64 {
    stats["codecs"][codec]["blocks"].as_u64().unwrap_or(0)
}

fn write_file(path: &Path, data: &[u8]) {
    let f = File::create(path).unwrap();
    f.write_all_at(data, 0).unwrap();
    f.sync_all().unwrap();
}

/// Per-block zstd -19 of `data`, frame header included as a volume would store it: what
/// an archival volume must never exceed.
fn zstd19_blocks(data: &[u8], block: usize) -> usize {
    data.chunks(block).map(|b| zstd::bulk::compress(b, 19).unwrap().len().min(b.len()) + 60).sum()
}

#[test]
fn archival_volume_round_trips_and_keeps_the_smallest_frame() {
    let mut m = Mounted::new(&["--codec", "t5", "--block-kib", "16"]);
    let text = prose(4 * SMALL_BLOCK);
    let rep = repetitive(2 * SMALL_BLOCK);
    let random = random_bytes(3, SMALL_BLOCK + 100);
    write_file(&m.path("prose"), &text);
    write_file(&m.path("repetitive"), &rep);
    write_file(&m.path("random"), &random);
    // A sparse file: a hole, then prose in its third block.
    let sparse = OpenOptions::new().create(true).write(true).truncate(true).open(m.path("sparse")).unwrap();
    sparse.write_all_at(&text[..5000], 2 * SMALL_BLOCK as u64 + 10).unwrap();
    sparse.sync_all().unwrap();
    drop(sparse);
    let mut sparse_want = vec![0u8; 2 * SMALL_BLOCK + 10];
    sparse_want.extend_from_slice(&text[..5000]);
    // A rewrite inside a committed t5 block: read-modify-write through the learned coder.
    let mut rewritten = text.clone();
    let f = OpenOptions::new().write(true).open(m.path("prose")).unwrap();
    f.write_all_at(b"REWRITTEN IN THE MIDDLE OF A BLOCK", 20_000).unwrap();
    f.sync_all().unwrap();
    rewritten[20_000..20_034].copy_from_slice(b"REWRITTEN IN THE MIDDLE OF A BLOCK");
    drop(f);
    m.remount();
    assert_file_eq(&m.path("prose"), &rewritten);
    assert_file_eq(&m.path("repetitive"), &rep);
    assert_file_eq(&m.path("random"), &random);
    assert_file_eq(&m.path("sparse"), &sparse_want);
    let s = stats(&m);
    assert!(codec_blocks(&s, "t5") >= 3, "prose blocks are coded by t5: {s}");
    // The repetitive blocks go to whichever of t5 and zstd -19 is smaller (with in-block
    // mixing, t5); the bound below checks that none is larger than zstd -19's frame.
    assert!(codec_blocks(&s, "t5") + codec_blocks(&s, "zstd") >= 6, "prose and repetitive blocks are compressed: {s}");
    assert!(codec_blocks(&s, "raw") >= 1, "random data is stored raw: {s}");
    m.unmount();
    // Never larger than per-block zstd -19 (the frames alone, read from the packs).
    let packs: u64 = fs::read_dir(m.store.join("packs")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let bound = [&rewritten, &rep, &random, &sparse_want[2 * SMALL_BLOCK..].to_vec()]
        .iter()
        .map(|d| zstd19_blocks(d, SMALL_BLOCK))
        .sum::<usize>();
    assert!(packs as usize <= bound, "archival packs hold {packs} bytes, per-block zstd -19 would store {bound}");
    // The model the frames need was copied into the store.
    let models: Vec<PathBuf> = fs::read_dir(m.store.join("models")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(models.len(), 1, "{models:?}");
    let f = run_cli(&["fsck", "--store", m.store.to_str().unwrap()], None, Duration::from_secs(300));
    assert!(f.status.success(), "fsck of an archival store: {}", f.describe());
}

#[test]
fn auto_volume_recompresses_cold_blocks_in_the_background() {
    let mut m = Mounted::new(&["--codec", "auto", "--block-kib", "16", "--recompress-after", "1s"]);
    let text = prose(3 * SMALL_BLOCK);
    write_file(&m.path("prose"), &text);
    // Dedup: the same blocks under another name are one record, recompressed once.
    write_file(&m.path("copy"), &text);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = stats(&m);
        if codec_blocks(&s, "t5") >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no block was recompressed to t5 within 120 s: {s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_file_eq(&m.path("prose"), &text);
    m.remount();
    assert_file_eq(&m.path("prose"), &text);
    assert_file_eq(&m.path("copy"), &text);
    m.finish();
}

/// The model directories of a store.
fn model_dirs(store: &Path) -> Vec<PathBuf> {
    fs::read_dir(store.join("models")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A model removed, truncated or replaced on disk: reads of the blocks that need it give
/// EIO, never wrong bytes; other files read; fsck reports the paths and `--repair` keeps
/// the blocks and the model; putting the model back makes everything readable again.
#[test]
fn a_missing_or_damaged_model_gives_eio_and_loses_nothing() {
    let mut m = Mounted::new(&["--codec", "t5", "--block-kib", "16"]);
    let text = prose(2 * SMALL_BLOCK);
    let random = random_bytes(9, 3000);
    write_file(&m.path("prose"), &text);
    write_file(&m.path("random"), &random);
    m.unmount();
    let model = model_dirs(&m.store).pop().expect("the store holds its model");
    let saved = m.outside("saved-model");
    copy_dir(&model, &saved);
    let weights = model.join("weights.safetensors");
    type Damage<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let damages: [Damage; 3] = [
        ("removed", Box::new(|| fs::remove_dir_all(&model).unwrap())),
        (
            "truncated",
            Box::new(|| {
                let len = fs::metadata(&weights).unwrap().len();
                OpenOptions::new().write(true).open(&weights).unwrap().set_len(len / 2).unwrap();
            }),
        ),
        (
            "replaced",
            Box::new(|| {
                // Another valid model's files under this id: the hash no longer matches.
                let config = model.join("config.json");
                let mut c = fs::read_to_string(&config).unwrap();
                c.push('\n');
                fs::write(&config, c).unwrap();
            }),
        ),
    ];
    for (what, damage) in damages.iter() {
        damage();
        // A zstd mount: nothing copies the model back in.
        m.mount_with(&["--codec", "zstd"]);
        let err = fs::read(m.path("prose")).expect_err(&format!("model {what}: prose read without its model"));
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "model {what}: {err}");
        assert_file_eq(&m.path("random"), &random);
        let log = fs::read_to_string(m.store.join("daemon.log")).unwrap_or_default();
        assert!(log.contains("model "), "model {what}: the daemon log names the model: {log}");
        m.unmount();
        let f = run_cli(&["fsck", "--store", m.store.to_str().unwrap()], None, Duration::from_secs(300));
        assert_eq!(f.status.code(), Some(4), "model {what}: fsck must report the blocks: {}", f.describe());
        assert!(f.stdout.contains("prose"), "model {what}: fsck names the file: {}", f.describe());
        let r = run_cli(&["fsck", "--repair", "--store", m.store.to_str().unwrap()], None, Duration::from_secs(300));
        assert_ne!(r.status.code(), Some(8), "model {what}: {}", r.describe());
        // Put the model back: nothing was deleted, everything reads.
        let _ = fs::remove_dir_all(&model);
        copy_dir(&saved, &model);
        m.mount();
        assert_file_eq(&m.path("prose"), &text);
        m.unmount();
    }
    m.mount();
    m.finish();
}

/// `s2sfs recompress MNT ARGS --json` as a child process.
fn spawn_recompress(m: &Mounted, args: &[&str]) -> std::process::Child {
    std::process::Command::new(BIN)
        .arg("recompress")
        .arg(&m.mnt)
        .args(args)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn s2sfs recompress")
}

fn wait_json(child: std::process::Child, what: &str) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait for s2sfs recompress");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what}: {} {stdout} {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stdout}"))
}

/// On-demand recompression racing writes, truncates, renames and unlinks of the same
/// files: every read matches a model of what was written (no lost update, no stale read),
/// before and after a remount; a deduplicated block is recompressed once for both files.
#[test]
fn recompression_racing_foreground_changes_loses_nothing() {
    use std::collections::BTreeMap;
    let mut m = Mounted::new(&["--codec", "auto", "--block-kib", "16", "--recompress-after", "off"]);
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..4 {
        let data = prose_from(i * 7919, 3 * SMALL_BLOCK);
        write_file(&m.path(&format!("f{i}")), &data);
        model.insert(format!("f{i}"), data);
    }
    let twin = model["f0"].clone();
    write_file(&m.path("twin"), &twin);
    model.insert("twin".into(), twin);
    let recompress = spawn_recompress(&m, &[]);
    let mut rng = Rng::new(0x7ec0);
    let mut ops = 0;
    let mut next_name = 10;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let names: Vec<String> = model.keys().filter(|n| n.as_str() != "twin").cloned().collect();
        let name = names[rng.below(names.len())].clone();
        let path = m.path(&name);
        match rng.below(5) {
            0 | 1 => {
                let data = model.get_mut(&name).unwrap();
                let at = rng.below(data.len() + 1);
                let new = prose_from(rng.below(50_000), 1 + rng.below(3000));
                let f = OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&new, at as u64).unwrap();
                if data.len() < at + new.len() {
                    data.resize(at + new.len(), 0);
                }
                data[at..at + new.len()].copy_from_slice(&new);
            }
            2 => {
                let data = model.get_mut(&name).unwrap();
                let len = rng.below(data.len() + 1);
                OpenOptions::new().write(true).open(&path).unwrap().set_len(len as u64).unwrap();
                data.truncate(len);
            }
            3 => {
                let to = format!("f{next_name}");
                next_name += 1;
                fs::rename(&path, m.path(&to)).unwrap();
                let data = model.remove(&name).unwrap();
                model.insert(to, data);
            }
            _ => {
                fs::remove_file(&path).unwrap();
                model.remove(&name);
                let to = format!("f{next_name}");
                next_name += 1;
                let data = prose_from(rng.below(90_000), rng.below(3 * SMALL_BLOCK));
                write_file(&m.path(&to), &data);
                model.insert(to, data);
            }
        }
        ops += 1;
        for (n, want) in &model {
            assert_file_eq(&m.path(n), want);
        }
        if ops >= 20 && recompress_done(&m) {
            break;
        }
        assert!(Instant::now() < deadline, "recompression did not finish within 240 s");
    }
    let report = wait_json(recompress, "s2sfs recompress");
    assert!(report["blocks_recompressed"].as_u64().unwrap_or(0) > 0, "nothing was recompressed: {report}");
    m.remount();
    for (n, want) in &model {
        assert_file_eq(&m.path(n), want);
    }
    let s = stats(&m);
    assert!(codec_blocks(&s, "t5") > 0, "{s}");
    m.unmount();
    let f = run_cli(&["fsck", "--store", m.store.to_str().unwrap()], None, Duration::from_secs(300));
    assert!(f.status.success(), "fsck after racing recompression: {}", f.describe());
    m.mount();
    m.finish();
}

/// Whether no `s2sfs recompress` of this mount is running any more.
fn recompress_done(m: &Mounted) -> bool {
    let needle = format!("recompress {}", m.mnt.display());
    !fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()).any(|e| {
        fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(&needle))
            .unwrap_or(false)
    })
}

/// SIGKILL of the daemon at random moments of a recompression: after each, the store
/// checks clean and every file reads back as last fsync'd.
#[test]
fn kill_during_recompression_keeps_every_fsynced_file() {
    let mut m = Mounted::new(&["--codec", "auto", "--block-kib", "16", "--recompress-after", "off"]);
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rng = Rng::new(0xc4a5);
    let rounds = 10;
    let mut killed_while_running = 0;
    for round in 0..rounds {
        // New cold data each round, and one file rewritten.
        for k in 0..2 {
            let name = format!("r{round}-{k}");
            let data = prose_from(rng.below(100_000), SMALL_BLOCK + rng.below(2 * SMALL_BLOCK));
            write_file(&m.path(&name), &data);
            want.push((name, data));
        }
        let (name, data) = &mut want[rng.below(round + 1)];
        *data = prose_from(rng.below(100_000), data.len());
        write_file(&m.path(name), data);
        let child = spawn_recompress(&m, &[]);
        std::thread::sleep(Duration::from_millis(200 + rng.below(2500) as u64));
        if !recompress_done(&m) {
            killed_while_running += 1;
        }
        m.kill_daemon();
        let _ = child.wait_with_output();
        let f = run_cli(&["fsck", "--store", m.store.to_str().unwrap()], None, Duration::from_secs(300));
        assert!(f.status.success(), "round {round}: fsck after a kill during recompression: {}", f.describe());
        m.mount();
        for (n, d) in &want {
            assert_file_eq(&m.path(n), d);
        }
    }
    eprintln!("[archival] {rounds} kills, {killed_while_running} while `s2sfs recompress` ran");
    assert!(
        killed_while_running >= rounds / 3,
        "only {killed_while_running} of {rounds} kills hit a running recompression"
    );
    m.finish();
}

/// The mount helper's `-o codec=t5` (fstab's way) makes an archival volume; a model
/// directory that is not a model is refused at mount with one line naming it.
#[test]
fn mount_options_pick_the_codec_and_a_bad_model_is_refused() {
    let mut m = Mounted::new(&["--block-kib", "16"]);
    write_file(&m.path("before"), &prose_from(1000, SMALL_BLOCK));
    m.remount_via_helper("codec=t5");
    write_file(&m.path("after"), &prose_from(30_000, 2 * SMALL_BLOCK));
    let s = stats(&m);
    assert!(codec_blocks(&s, "t5") >= 1, "-o codec=t5 wrote no t5 block: {s}");
    assert_file_eq(&m.path("before"), &prose_from(1000, SMALL_BLOCK));
    m.unmount();
    let bad = m.outside("not-a-model");
    fs::create_dir(&bad).unwrap();
    fs::write(bad.join("config.json"), b"{}").unwrap();
    let mut args: Vec<std::ffi::OsString> = m.mount_args();
    args.extend(["--codec".into(), "t5".into(), "--model".into(), bad.clone().into()]);
    let out = run_cli(&args, None, Duration::from_secs(60));
    assert!(!out.status.success(), "a mount with a bad model succeeded: {}", out.describe());
    assert!(out.stderr.contains("not-a-model") && out.stderr.trim().lines().count() == 1, "{}", out.describe());
    assert!(!is_mounted(&m.mnt));
    m.mount();
    m.finish();
}

/// `S2SFS_KERNELS` picks the coder's kernels: a set this CPU has writes the same frames as
/// `auto`; a value naming no set is refused when the model loads, in one line naming the
/// variable, and nothing is written.
#[test]
fn kernel_settings_give_the_same_frames_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::write(&input, prose(3000)).unwrap();
    let run = |kernels: &str, out: &str| {
        std::process::Command::new(BIN)
            .args(["codec", "compress", "--codec", "t5"])
            .arg(&input)
            .arg(dir.path().join(out))
            .env("S2SFS_KERNELS", kernels)
            .output()
            .expect("run s2sfs codec compress")
    };
    let auto = run("auto", "auto");
    assert!(auto.status.success(), "{}", String::from_utf8_lossy(&auto.stderr));
    let portable = run("portable", "portable");
    assert!(portable.status.success(), "{}", String::from_utf8_lossy(&portable.stderr));
    assert_eq!(fs::read(dir.path().join("auto")).unwrap(), fs::read(dir.path().join("portable")).unwrap());
    let bad = run("sse9", "bad");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "an unknown kernel set was accepted");
    assert!(
        stderr.trim().lines().count() == 1 && stderr.starts_with("s2sfs:") && stderr.contains("S2SFS_KERNELS=\"sse9\""),
        "{stderr}"
    );
    assert!(!dir.path().join("bad").exists(), "output written although the model did not load");
}
