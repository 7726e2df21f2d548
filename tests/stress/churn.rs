//! Name churn, as xfstests generic/007 runs it (`nametest`): threads create, stat and
//! unlink names drawn from one small set in one directory, as fast as they can. Under it
//! the sled-based metadata store deadlocked inside sled (ARCHITECTURE.md); here a hang is
//! a failure: when no operation completes for `STALL`, `on_stall` is called (the test
//! kills the daemon, which frees the stuck threads) and the run reports the stall.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::harness::Rng;

/// No operation for this long is a hang (one operation takes well under a millisecond).
pub const STALL: Duration = Duration::from_secs(30);

pub struct Churn {
    pub threads: usize,
    /// Operations per thread.
    pub ops: u64,
    /// Names in the set the threads share.
    pub names: usize,
    pub seed: u64,
}

pub struct Outcome {
    pub ops: u64,
    pub secs: f64,
    /// Seconds without progress, when the run stalled.
    pub stalled: Option<f64>,
}

impl Outcome {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
}

impl Churn {
    pub fn run(&self, dir: &Path, on_stall: impl FnOnce()) -> Outcome {
        let names: Arc<Vec<PathBuf>> = Arc::new((0..self.names).map(|i| dir.join(format!("name{i:03}"))).collect());
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let workers: Vec<_> = (0..self.threads)
            .map(|t| {
                let (names, done, stop) = (names.clone(), done.clone(), stop.clone());
                let (ops, seed) = (self.ops, self.seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                std::thread::spawn(move || churn_thread(&names, ops, seed, &done, &stop))
            })
            .collect();
        let mut last = (0, Instant::now());
        let mut stalled = None;
        while workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            let now = done.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= STALL {
                stalled = Some(last.1.elapsed().as_secs_f64());
                stop.store(true, Ordering::Relaxed);
                on_stall();
                break;
            }
        }
        for w in workers {
            if let Err(e) = w.join() {
                std::panic::resume_unwind(e);
            }
        }
        Outcome { ops: done.load(Ordering::Relaxed), secs: start.elapsed().as_secs_f64(), stalled }
    }
}

fn churn_thread(names: &[PathBuf], ops: u64, seed: u64, done: &AtomicU64, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    for _ in 0..ops {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let name = &names[rng.below(names.len())];
        let result = match rng.below(3) {
            // Without O_EXCL: an existing file is opened and closed, as `nametest` does.
            0 => OpenOptions::new().write(true).create(true).truncate(false).open(name).map(drop),
            1 => std::fs::symlink_metadata(name).map(drop),
            _ => std::fs::remove_file(name),
        };
        match result {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) => {}
            // After a stall the daemon is killed: everything fails from then on.
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(e) => panic!("{}: {e}", name.display()),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}
