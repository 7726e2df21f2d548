//! Running fio verify jobs and reading their results (JSON output file, stderr kept apart).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The fio binary, if there is one on PATH.
pub fn find() -> Option<PathBuf> {
    let out = Command::new("fio").arg("--version").stdout(Stdio::piped()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| PathBuf::from("fio"))
}

/// Whether a missing fio must fail the test: in CI (CI=true) it must.
pub fn required() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// One fio job line: the options that define the files and the data (identical for the
/// write phase and the later --verify_only phase, so fio regenerates the same offsets,
/// block sizes and patterns).
pub struct Job {
    pub name: &'static str,
    pub common: Vec<String>,
}

impl Job {
    /// The job from the brief: `--rw=randrw --bs=4k-256k --numjobs=4 --verify=crc32c`.
    pub fn randrw(size_mb: u64) -> Job {
        Job {
            name: "verify",
            common: [
                "--name=verify",
                "--rw=randrw",
                "--bs=4k-256k",
                &format!("--size={size_mb}M"),
                "--numjobs=4",
                "--verify=crc32c",
                "--verify_fatal=1",
                "--time_based=0",
                "--ioengine=psync",
                "--randrepeat=1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// Sequential write + verify with a larger block size (1 MiB: eight 128 KiB blocks per write).
    pub fn seq(size_mb: u64) -> Job {
        Job {
            name: "seqverify",
            common: [
                "--name=seqverify",
                "--rw=write",
                "--bs=1M",
                &format!("--size={size_mb}M"),
                "--numjobs=2",
                "--verify=crc32c",
                "--verify_fatal=1",
                "--time_based=0",
                "--ioengine=psync",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// Write, then fio's verify pass over everything written, then fsync.
    pub fn write_and_verify(&self) -> Vec<String> {
        let mut a = self.common.clone();
        a.extend(["--do_verify=1".to_string(), "--end_fsync=1".to_string()]);
        a
    }

    /// Only read back and verify what an earlier write phase of the same job wrote.
    pub fn verify_only(&self) -> Vec<String> {
        let mut a = self.common.clone();
        a.push("--verify_only".to_string());
        a
    }
}

pub struct JobResult {
    pub error: i64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

pub struct Run {
    pub what: String,
    pub command: String,
    pub success: bool,
    pub stderr: String,
    pub jobs: Vec<JobResult>,
    pub secs: f64,
}

impl Run {
    /// "verify failed" lines in fio's stderr plus jobs that ended with an error.
    pub fn errors(&self) -> usize {
        self.stderr.matches("verify failed").count() + self.jobs.iter().filter(|j| j.error != 0).count()
    }
    pub fn read_bytes(&self) -> u64 {
        self.jobs.iter().map(|j| j.read_bytes).sum()
    }
    pub fn write_bytes(&self) -> u64 {
        self.jobs.iter().map(|j| j.write_bytes).sum()
    }
    /// Bytes fio checked: for a write phase with do_verify, its verify pass reads back every
    /// block written; for --verify_only, every byte read is checked.
    pub fn verified_bytes(&self, verify_only: bool) -> u64 {
        if verify_only { self.read_bytes() } else { self.write_bytes() }
    }

    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(
            self.success && self.errors() == 0 && self.jobs.iter().all(|j| j.error == 0) && !self.jobs.is_empty(),
            "fio {} FAILED ({} verify errors / failed jobs)\ncommand: {}\n--- stderr ---\n{}",
            self.what,
            self.errors(),
            self.command,
            self.stderr
        );
    }
}

/// Runs `fio ARGS --directory=DIR` with JSON output in `work/NAME.json`; gives up (kills
/// fio) after `timeout`.
pub fn run(what: &str, dir: &Path, args: &[String], work: &Path, timeout: Duration) -> Run {
    fs::create_dir_all(work).unwrap();
    let json = work.join(format!("{}.json", what.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
    let mut full: Vec<String> = args.to_vec();
    full.push(format!("--directory={}", dir.display()));
    full.push("--output-format=json".into());
    full.push(format!("--output={}", json.display()));
    let command = format!("fio {}", full.join(" "));
    let mut err = tempfile::tempfile().unwrap();
    let start = Instant::now();
    let mut child = Command::new("fio")
        .args(&full)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fio {what} did not finish within {timeout:?}: {command}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = start.elapsed().as_secs_f64();
    let mut stderr = String::new();
    err.seek(SeekFrom::Start(0)).unwrap();
    err.read_to_string(&mut stderr).ok();
    let mut jobs = Vec::new();
    if let Ok(text) = fs::read_to_string(&json) {
        // fio may print notes before the JSON object.
        let text = text.find('{').map(|i| &text[i..]).unwrap_or("");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            for j in v["jobs"].as_array().into_iter().flatten() {
                jobs.push(JobResult {
                    error: j["error"].as_i64().unwrap_or(-1),
                    read_bytes: j["read"]["io_bytes"].as_u64().unwrap_or(0),
                    write_bytes: j["write"]["io_bytes"].as_u64().unwrap_or(0),
                });
            }
        }
    }
    Run { what: what.to_string(), command, success: status.success(), stderr, jobs, secs }
}
