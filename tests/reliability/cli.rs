//! Bad input at the command line: every wrong command must fail with a non-zero exit and a
//! clear error (the first stderr line names the problem; s2sfs's own errors are exactly
//! one line), and must create or change nothing: the directory around it is compared,
//! entry by entry with sizes and mtimes, before and after.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::harness::*;

/// How the error must look.
#[derive(Clone, Copy)]
enum Style {
    /// From the argument parser: the first line is `error: ...` naming the problem.
    Usage,
    /// From s2sfs itself: exactly one line, `s2sfs...: ...`.
    Own,
}

/// Runs one command that must fail and checks it; returns what was wrong, if anything.
fn must_fail(watch: &Path, args: &[&OsStr], style: Style, needle: &str, code: Option<i32>) -> Option<String> {
    let before = snapshot(watch);
    let mounted_before = is_mounted(&watch.join("mnt"));
    let out = s2sfs(args);
    let after = snapshot(watch);
    let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let cmd = format!("`s2sfs {}`", shown.join(" "));
    let mut wrong = Vec::new();
    if out.status.success() {
        wrong.push("exited 0".to_string());
    }
    if let Some(c) = code
        && exit_code(&out) != c
    {
        wrong.push(format!("exit code {} (want {c})", exit_code(&out)));
    }
    let line = first_line(&out.stderr);
    match style {
        Style::Usage => {
            if !line.starts_with("error:") {
                wrong.push(format!("first stderr line is not `error: ...`: {line:?}"));
            }
        }
        Style::Own => {
            let lines = out.stderr.trim().lines().count();
            if lines != 1 || !line.starts_with("s2sfs") {
                wrong.push(format!("want one stderr line `s2sfs...: ...`, got {lines} lines"));
            }
        }
    }
    if !line.contains(needle) {
        wrong.push(format!("first stderr line does not name {needle:?}: {line:?}"));
    }
    let diff = snapshot_diff(&before, &after);
    if !diff.is_empty() {
        wrong.push(format!("it changed the file system: {}", diff.join("; ")));
    }
    let mounted_after = is_mounted(&watch.join("mnt"));
    if mounted_after != mounted_before {
        wrong.push(format!(
            "it changed what is mounted at {}: {mounted_before} -> {mounted_after}",
            watch.join("mnt").display()
        ));
        if mounted_after {
            force_detach(&watch.join("mnt"));
        }
    }
    if wrong.is_empty() { None } else { Some(format!("{cmd}: {}\n{}", wrong.join("; "), out.describe())) }
}

#[test]
fn bad_command_lines_fail_cleanly_and_change_nothing() {
    let base = test_dir("cli-bad");
    let b = base.path();
    let mnt = b.join("mnt");
    let store = b.join("store");
    let afile = b.join("afile");
    let junk = b.join("junk");
    fs::create_dir(&mnt).unwrap();
    fs::write(&afile, b"not a directory").unwrap();
    fs::create_dir(&junk).unwrap();
    fs::write(junk.join("notes.txt"), b"some unrelated data").unwrap();
    fs::create_dir(junk.join("sub")).unwrap();
    let inside = mnt.join("store");
    let nothing = b.join("nothing");
    let m = |extra: &[&'static str]| -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["mount".into(), mnt.clone().into(), "--store".into(), store.clone().into()];
        v.extend(extra.iter().map(OsString::from));
        v
    };
    use Style::*;
    let cases: Vec<(Vec<OsString>, Style, &str, Option<i32>)> = vec![
        (vec!["frobnicate".into()], Usage, "frobnicate", None),
        (m(&["--frobnicate"]), Usage, "--frobnicate", None),
        (m(&["--codec", "lz4"]), Usage, "lz4", None),
        (m(&["--zstd-level", "99"]), Usage, "99", None),
        (m(&["--cache-mb", "-1"]), Usage, "-1", None),
        (m(&["--cache-mb", "0"]), Usage, "0", None),
        (m(&["--block-kib", "3"]), Usage, "3", None),
        (m(&["-o", "bogus"]), Own, "bogus", None),
        (vec!["mount".into()], Usage, "required", None),
        (vec!["umount".into()], Usage, "required", None),
        (vec!["fsck".into()], Usage, "required", None),
        (
            vec!["mount".into(), afile.clone().into(), "--store".into(), store.clone().into()],
            Own,
            "not a directory",
            None,
        ),
        (
            vec!["mount".into(), mnt.clone().into(), "--store".into(), afile.clone().into()],
            Own,
            "not a directory",
            None,
        ),
        (vec!["mount".into(), mnt.clone().into(), "--store".into(), inside.clone().into()], Own, "inside", None),
        (vec!["mount".into(), mnt.clone().into(), "--store".into(), b.into()], Own, "inside", None),
        (vec!["umount".into(), mnt.clone().into()], Own, "not mounted", None),
        (vec!["umount".into(), nothing.clone().into()], Own, "does not exist", None),
        (vec!["fsck".into(), "--store".into(), mnt.clone().into()], Own, "not an s2sfs store", Some(8)),
        (vec!["fsck".into(), "--store".into(), junk.clone().into()], Own, "not an s2sfs store", Some(8)),
        (
            vec!["fsck".into(), "--repair".into(), "--store".into(), junk.clone().into()],
            Own,
            "not an s2sfs store",
            Some(8),
        ),
        (vec!["fsck".into(), "--store".into(), nothing.clone().into()], Own, "not an s2sfs store", Some(8)),
        (vec!["fsck".into(), "--store".into(), afile.clone().into()], Own, "not an s2sfs store", Some(8)),
    ];
    let mut failures = Vec::new();
    for (args, style, needle, code) in &cases {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        if let Some(f) = must_fail(b, &args, *style, needle, *code) {
            failures.push(f);
        }
    }
    assert!(!store.exists() && !inside.exists() && !nothing.exists(), "a failed command created a store directory");
    summary(&format!(
        "cli: {}/{} bad command lines failed with a clear error and changed nothing",
        cases.len() - failures.len(),
        cases.len()
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn umount_of_a_mount_that_is_not_s2sfs_is_refused() {
    let base = test_dir("cli-tmpfs");
    let t = base.path().join("mnt");
    fs::create_dir(&t).unwrap();
    assert!(Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&t).status().unwrap().success());
    fs::write(t.join("keep"), b"tmpfs data").unwrap();
    let r = must_fail(base.path(), &[OsStr::new("umount"), t.as_os_str()], Style::Own, "not an s2sfs mount", None);
    let still = is_mounted(&t) && fs::read(t.join("keep")).ok().as_deref() == Some(&b"tmpfs data"[..]);
    let _ = Command::new("umount").arg(&t).status();
    summary(&format!(
        "cli: umount of a tmpfs mount refused, tmpfs left mounted: {}",
        if r.is_none() && still { "pass" } else { "FAIL" }
    ));
    assert!(r.is_none(), "{}", r.unwrap());
    assert!(still, "`s2sfs umount` of a tmpfs unmounted it or changed it");
}

/// `codec compress` and `decompress` onto a full disk fail with ENOSPC and leave the
/// disk as it was: an earlier file of the output's name keeps its bytes, and no partial
/// output is left behind.
#[test]
fn codec_output_on_a_full_disk_changes_nothing() {
    let base = test_dir("cli-codec-full");
    let t = base.path().join("full");
    fs::create_dir(&t).unwrap();
    assert!(
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&t).status().unwrap().success()
    );
    // Random bytes do not shrink: their container is as large as they are. Zeros shrink
    // to almost nothing, and decompress back to 1 MiB.
    let (random, zeros, packed) = (base.path().join("random"), base.path().join("zeros"), base.path().join("zeros.s2"));
    fs::write(&random, random_bytes(7, MIB)).unwrap();
    fs::write(&zeros, vec![0u8; MIB]).unwrap();
    let zstd = [OsStr::new("--codec"), OsStr::new("zstd")];
    let packing = s2sfs(
        &[&[OsStr::new("codec"), OsStr::new("compress")], &zstd[..], &[zeros.as_os_str(), packed.as_os_str()]].concat(),
    );
    assert!(packing.status.success(), "{}", packing.describe());
    let out = t.join("out");
    fs::write(&out, b"an earlier file of the same name").unwrap();
    let mut wrong = Vec::new();
    for (verb, input) in [("compress", &random), ("decompress", &packed)] {
        let args =
            [&[OsStr::new("codec"), OsStr::new(verb)], &zstd[..], &[input.as_os_str(), out.as_os_str()]].concat();
        let run = s2sfs(&args);
        let line = first_line(&run.stderr);
        let names: Vec<String> =
            fs::read_dir(&t).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        if run.status.success() || !line.contains("No space left on device") || names != ["out"] {
            wrong.push(format!("codec {verb} onto a full disk: files after it {names:?}\n{}", run.describe()));
        }
    }
    let kept = fs::read(&out).ok();
    let kept_whole = kept.as_deref() == Some(&b"an earlier file of the same name"[..]);
    let _ = Command::new("umount").arg(&t).status();
    summary(&format!(
        "cli: codec compress and decompress onto a full disk failed with ENOSPC and left it as it was: {}",
        if wrong.is_empty() && kept_whole { "pass" } else { "FAIL" }
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(
        kept_whole,
        "the earlier file of the output's name was changed (now {:?} bytes)",
        kept.as_ref().map(Vec::len)
    );
}

/// `fsck --repair` of a mounted store is refused (exit 8) and changes nothing. (A plain
/// `fsck` of a mounted store is a read-only check through the daemon's control socket,
/// README "fsck": it must report the store clean and change nothing but the daemon's log.)
#[test]
fn fsck_repair_of_a_mounted_store_is_refused_and_changes_nothing() {
    let vol = Vol::new("cli-fsck-mounted", &[]);
    vol.mount();
    let data = text_bytes(5, 300 * KIB);
    let f = fs::File::create(vol.path("f")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &data, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    // Let the daemon's periodic metadata flush pass, so the store is at rest.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut failures = Vec::new();
    let args = [OsStr::new("fsck"), OsStr::new("--repair"), OsStr::new("--store"), vol.store.as_os_str()];
    if let Some(f) = must_fail(&vol.store, &args, Style::Own, "unmount it first", Some(8)) {
        failures.push(f);
    }
    let log = vol.store.join("daemon.log");
    let before: std::collections::BTreeMap<_, _> =
        snapshot(&vol.store).into_iter().filter(|(p, _)| *p != log).collect();
    let ro = vol.fsck(false);
    let after: std::collections::BTreeMap<_, _> = snapshot(&vol.store).into_iter().filter(|(p, _)| *p != log).collect();
    if ro.code != 0 || ro.report["outcome"] != "clean" {
        failures.push(format!("read-only fsck of the mounted store: {}", ro.describe()));
    }
    let diff = snapshot_diff(&before, &after);
    if !diff.is_empty() {
        failures.push(format!("read-only fsck of the mounted store changed it: {}", diff.join("; ")));
    }
    match read_timed(&vol.path("f")) {
        Ok(got) if got == data => {}
        other => failures.push(format!("the mounted volume after fsck: {:?}", other.map(|g| g.len()))),
    }
    vol.umount();
    assert_eq!(vol.fsck(false).code, 0);
    summary(&format!(
        "cli: fsck --repair of a mounted store refused with exit 8, store unchanged; read-only fsck of it clean: {}",
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `s2sfs train` through both stages (supervised, then reinforcement learning) makes the
/// same model from the same seed with one worker thread and with two; `codec eval
/// --latent none` codes files with every latent empty, and those frames decode (eval
/// decodes every frame and compares it with the file).
#[test]
fn training_repeats_across_thread_counts_and_empty_latents_decode() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    fs::create_dir(&corpus).unwrap();
    for f in 0..12u64 {
        fs::write(corpus.join(format!("part{f}.txt")), text_bytes(f, 3000)).unwrap();
    }
    let config = s2sfs::t5::ModelConfig {
        vocab: 300,
        d_model: 32,
        n_heads: 2,
        d_ff: 64,
        enc_layers: 1,
        dec_layers: 1,
        window: 64,
        segment: 32,
        latent_vocab: 8,
        latent_max: 2,
        rel_buckets: 16,
        rel_max_distance: 64,
        match_sse: false,
        extra_matchers: Vec::new(),
        mixing: false,
        exact_tree: false,
        ..Default::default()
    };
    let config_path = dir.path().join("tiny.json");
    fs::write(&config_path, config.to_json()).unwrap();
    let mut weights = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("model-{threads}"));
        let run = s2sfs(&[
            OsStr::new("train"),
            OsStr::new("--corpus"),
            corpus.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
            OsStr::new("--config"),
            config_path.as_os_str(),
            OsStr::new("--steps"),
            OsStr::new("20"),
            OsStr::new("--rl-steps"),
            OsStr::new("20"),
            OsStr::new("--batch"),
            OsStr::new("8"),
            OsStr::new("--threads"),
            OsStr::new(threads),
            OsStr::new("--seed"),
            OsStr::new("3"),
            OsStr::new("--json"),
        ]);
        assert!(run.status.success(), "train with {threads} threads: {}", run.stderr);
        let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(summary["steps"], 40);
        assert_eq!(summary["rl"]["steps_this_run"], 20);
        weights.push(fs::read(out.join("weights.safetensors")).unwrap());
    }
    assert!(weights[0] == weights[1], "one and two threads trained different models");

    let model = dir.path().join("model-1");
    let file = corpus.join("part0.txt");
    for latent in ["learned", "none"] {
        let args = [OsStr::new("codec"), OsStr::new("eval"), OsStr::new("--model"), model.as_os_str()];
        let mut args = args.to_vec();
        args.extend([OsStr::new("--latent"), OsStr::new(latent), OsStr::new("--json"), file.as_os_str()]);
        let eval = s2sfs(&args);
        assert!(eval.status.success(), "eval --latent {latent}: {}", eval.stderr);
        let rows: serde_json::Value = serde_json::from_str(&eval.stdout).unwrap();
        assert_eq!(rows[0]["blocks_t5"], 1, "--latent {latent}: {rows}");
    }
    summary("cli: train (both stages) repeats with 1 and 2 threads; codec eval --latent none decodes: pass");
}

/// `s2sfs --version` names the version, the default model's id and origin, the kernels the t5 coder
/// runs here and whether CUDA is built in; `-V` stays one line.
#[test]
fn version_names_the_model_kernels_and_cuda() {
    let long = s2sfs(&["--version"]);
    assert!(long.status.success(), "{}", long.stderr);
    let lines: Vec<&str> = long.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", long.stdout);
    assert!(lines[0].starts_with("s2sfs "), "{}", lines[0]);
    let model = lines[1].strip_prefix("default model ").unwrap_or("");
    let (id, origin) = model.split_once(' ').unwrap_or((model, ""));
    assert!(id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()), "{}", lines[1]);
    assert_eq!(origin, "(built in)", "a cargo build embeds the default model: {}", lines[1]);
    let kernels = lines[2].strip_prefix("kernels ").unwrap_or("");
    assert!(["avx512", "avx2", "portable"].contains(&kernels), "{}", lines[2]);
    assert!(lines[3].starts_with("cuda "), "{}", lines[3]);
    let short = s2sfs(&["-V"]);
    assert_eq!(short.stdout.lines().count(), 1, "{}", short.stdout);
    summary("cli: --version names the version, the default model, the kernels and cuda: pass");
}

/// The man pages and completions in packaging/ (what `cargo deb` installs) are what the
/// command line generates now: a changed option is a changed page. `S2SFS_BLESS=1`
/// rewrites them (packaging/README.md).
#[test]
fn packaged_man_pages_and_completions_match_the_command_line() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = test_dir("manpages");
    let out = s2sfs(&[OsStr::new("manpages"), generated.path().as_os_str()]);
    assert!(out.status.success(), "s2sfs manpages: {}", out.describe());
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in fs::read_dir(generated.path()).unwrap() {
        let entry = entry.unwrap();
        want.push((format!("man/{}", entry.file_name().to_string_lossy()), fs::read(entry.path()).unwrap()));
    }
    for (shell, file) in [("bash", "s2sfs.bash"), ("zsh", "_s2sfs"), ("fish", "s2sfs.fish")] {
        let out = s2sfs(&["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "s2sfs completions {shell}: {}", out.describe());
        want.push((format!("completions/{file}"), out.stdout.into_bytes()));
    }
    assert!(want.iter().any(|(n, _)| n == "man/s2sfs-mount.1"), "no page for s2sfs mount");
    let packaging = repo.join("packaging");
    if std::env::var_os("S2SFS_BLESS").is_some() {
        let _ = fs::remove_dir_all(packaging.join("man"));
        for dir in ["man", "completions"] {
            fs::create_dir_all(packaging.join(dir)).unwrap();
        }
        for (name, bytes) in &want {
            fs::write(packaging.join(name), bytes).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, bytes) in &want {
        if fs::read(packaging.join(name)).ok().as_ref() != Some(bytes) {
            stale.push(name.clone());
        }
    }
    let pages = fs::read_dir(packaging.join("man")).map(|d| d.count()).unwrap_or(0);
    let want_pages = want.iter().filter(|(n, _)| n.starts_with("man/")).count();
    if pages != want_pages {
        stale.push(format!("packaging/man holds {pages} pages, the command line makes {want_pages}"));
    }
    assert!(
        stale.is_empty(),
        "out of date in packaging/ (regenerate: S2SFS_BLESS=1 cargo test --test reliability packaged): {stale:?}"
    );
    summary(&format!(
        "cli: {want_pages} man pages and 3 completion scripts in packaging/ match the command line: pass"
    ));
}
