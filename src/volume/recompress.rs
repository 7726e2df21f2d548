//! Recompression: re-codes stored blocks to another target (the learned coder for cold
//! blocks, or zstd to turn an archival volume back into a fast one), in the background
//! and on demand (`s2sfs recompress`).
//!
//! Blocks are content-addressed: every valid frame of a hash decodes to the same bytes,
//! so a frame is swapped behind its hash (`Store::replace_frame`, a compare-and-swap on
//! where the frame lies) without looking at files. A block rewritten meanwhile has a new
//! hash and is untouched; a block shared through dedup is one record, re-coded once for
//! all its users; a block deleted, moved by compaction or replaced since it was read is
//! left alone (the CAS fails) and tried again by a later pass.
//!
//! What is already done is read from the block records (`FrameInfo`): a frame whose
//! record names the target's model (a t5 frame of that model, or a zstd or raw frame the
//! chooser kept against it, at commit or in an earlier pass) is not tried again, nor is a
//! non-t5 frame by a zstd target. A block that gains nothing keeps its frame and gets the
//! model written into its record (`Store::describe_frame`), so no later pass or mount
//! weighs it again. Blocks a pass could not settle that way (a t5 frame of another model
//! that the target's does not beat) are remembered in memory, per target, with the frame
//! they have, so that later passes of this mount skip them while they keep that frame.
//!
//! Recompression never competes with foreground work: blocks are coded on a pool of
//! niced threads, and before each block a worker waits while any FUSE request is in
//! flight (`begin_request`). It holds no lock a reader needs; the store's writer lock is
//! taken only for each replacement's short commit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::commit::frame_info;
use super::{Core, lock};
use crate::codec::{CodecId, Codecs, FrameHeader, ModelId, Target, add_model, learned_target, load_model};
use crate::error::{Error, Result};
use crate::store::{BlockHash, BlockRecord, FrameInfo};
use crate::t5::Model;

/// Block records read per metadata read while scanning.
const PAGE: usize = 4096;
/// Blocks coded together, per pool thread.
const BATCH_PER_THREAD: usize = 2;
/// How long a worker sleeps while foreground requests are in flight.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// Niceness of the recompression threads: they get the CPU only when nothing else wants it.
const NICE: libc::c_int = 19;

/// What to re-code, and to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecompressRequest {
    /// Only blocks not written for at least this long.
    pub older_than: Duration,
    pub target: Target,
}

/// The codec an on-demand recompression asks for (`s2sfs recompress --codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RecompressCodec {
    /// The learned coder (the smallest of t5, zstd -19 and raw is kept).
    T5,
    /// zstd at the volume's level: t5 frames become zstd (or raw) frames again.
    Zstd,
}

/// How far a pass is, after each batch of blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecompressProgress {
    /// Candidates handled (re-coded, kept, or skipped).
    pub blocks_done: u64,
    /// Candidates found by the pass's first scan (grows when more turn up).
    pub blocks_total: u64,
    /// Plaintext bytes of the blocks examined so far.
    pub logical_bytes: u64,
    /// Their frame bytes before and after.
    pub stored_before: u64,
    pub stored_after: u64,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecompressReport {
    /// The target, in words (`t5 <model>`, `zstd -3`).
    pub target: String,
    /// Block records looked at.
    pub blocks_scanned: u64,
    /// Candidates read, decoded and re-coded.
    pub blocks_examined: u64,
    /// Those whose frame was replaced.
    pub blocks_recompressed: u64,
    /// Those that kept their frame: the new one was not smaller.
    pub blocks_kept: u64,
    /// Candidates left alone because they were deleted, moved by compaction or replaced
    /// while being coded (a later pass tries them again).
    pub blocks_skipped: u64,
    /// Candidates whose stored frame does not decode to its block (logged; fsck reports).
    pub blocks_damaged: u64,
    /// Plaintext bytes of the blocks examined.
    pub logical_bytes: u64,
    /// Frame bytes of the blocks examined, before and after.
    pub stored_before: u64,
    pub stored_after: u64,
    pub seconds: f64,
    /// Blocks that waited for foreground requests before being coded.
    pub pauses: u64,
    /// The pass ended early (shutdown, a client gone, or an on-demand pass taking over).
    pub stopped: bool,
}

/// Background recompression as `s2sfs stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecompressStatus {
    /// Whether this volume recompresses in the background (t5 and auto volumes).
    pub background: bool,
    /// The background target, in words.
    pub target: Option<String>,
    /// Blocks must be unwritten this long before background recompression re-codes them.
    pub older_than_secs: Option<u64>,
    /// A pass (background or on demand) is running now.
    pub running: bool,
    /// Candidates done by the running pass (or the last one).
    pub blocks_done: u64,
    /// Candidates known to be left: of the running pass, or found by the last one's scan
    /// and not reached.
    pub backlog: u64,
    /// Passes finished since the mount.
    pub passes: u64,
    /// Frames replaced, and frame bytes saved (negative: grown), since the mount.
    pub blocks_recompressed: u64,
    pub bytes_saved: i64,
    /// The last finished pass, and when it ended (unix seconds).
    pub last_pass: Option<RecompressReport>,
    pub last_pass_ended: Option<u64>,
}

/// Recompression's part of a volume's state.
pub(super) struct RecompressState {
    /// FUSE requests in flight.
    busy: AtomicUsize,
    /// Held by the running pass: one at a time.
    running: Mutex<()>,
    /// On-demand passes waiting for `running`: a background pass gives way to them.
    demand: AtomicUsize,
    /// The volume is closing: passes stop at the next block.
    closing: AtomicBool,
    /// Serializes adding models (`Core::add_model`).
    models: Mutex<()>,
    status: Mutex<RecompressStatus>,
    /// Blocks considered for a target during this mount, per target.
    tried: Mutex<Vec<(Target, Tried)>>,
    /// The niced threads blocks are coded on; None when they could not be started (the
    /// global pool is used then).
    pool: OnceLock<Option<rayon::ThreadPool>>,
}

impl RecompressState {
    pub(super) fn new() -> RecompressState {
        RecompressState {
            busy: AtomicUsize::new(0),
            running: Mutex::new(()),
            demand: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            models: Mutex::new(()),
            status: Mutex::new(RecompressStatus::default()),
            tried: Mutex::new(Vec::new()),
            pool: OnceLock::new(),
        }
    }
}

/// Blocks considered for one target, with the frame each had then (length, description):
/// a block whose frame changed since (another pass, compaction) is a candidate again.
type Tried = HashMap<BlockHash, (u32, Option<FrameInfo>)>;

/// Whether a pass for `target` re-codes this block.
fn is_candidate(target: Target, cutoff: u64, tried: Option<&Tried>, hash: &BlockHash, rec: &BlockRecord) -> bool {
    wants(target, rec, cutoff) && tried.and_then(|t| t.get(hash)) != Some(&(rec.frame_len, rec.info))
}

/// Marks one FUSE request in flight while it lives (`Core::begin_request`).
pub struct RequestGuard<'a> {
    busy: &'a AtomicUsize,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lowers the calling thread's priority (on Linux `setpriority` with a thread id applies
/// to that thread alone).
pub(super) fn nice_this_thread() {
    // SAFETY: gettid and setpriority only act on the calling thread's scheduling.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, NICE) != 0 {
            log::debug!("recompression thread not niced: {}", std::io::Error::last_os_error());
        }
    }
}

/// The target in words, for logs and reports.
pub fn describe_target(target: Target) -> String {
    match target {
        Target::Raw => "raw".into(),
        Target::Zstd { level } => format!("zstd -{level}"),
        Target::Learned { model } => format!("t5 {model}"),
        Target::Smallest { model, zstd_level } => format!("t5 {model} (or zstd -{zstd_level})"),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a block record, written no later than `cutoff`, is not at `target` yet.
fn wants(target: Target, rec: &BlockRecord, cutoff: u64) -> bool {
    if rec.written > cutoff {
        return false;
    }
    match target {
        // Back from the learned coder: t5 frames, and undescribed ones (their header says).
        Target::Raw | Target::Zstd { .. } => rec.info.is_none_or(|i| i.codec == CodecId::T5 as u8),
        Target::Learned { model } | Target::Smallest { model, .. } => rec.info.is_none_or(|i| i.model != model.tag()),
    }
}

/// What became of one candidate.
enum Outcome {
    /// `info`: the new frame's description.
    Recompressed {
        plain: u64,
        before: u64,
        after: u64,
        info: FrameInfo,
    },
    Kept {
        plain: u64,
        before: u64,
    },
    /// Deleted, moved or replaced meanwhile.
    Skipped,
    /// Already what the target asks (an undescribed frame whose header says so).
    NotNeeded,
    Damaged,
    Stopped,
}

impl Core {
    /// Marks a FUSE request in flight until the guard drops: recompression waits for
    /// foreground work to finish before each block.
    pub fn begin_request(&self) -> RequestGuard<'_> {
        self.recompression.busy.fetch_add(1, Ordering::SeqCst);
        RequestGuard { busy: &self.recompression.busy }
    }

    /// What recompression is doing, for `s2sfs stats`.
    pub fn recompress_status(&self) -> RecompressStatus {
        let mut status = lock(&self.recompression.status).clone();
        let target = self.recompress_to();
        status.background = target.is_some() && self.opts.recompress_after.is_some();
        if status.background {
            status.target = target.map(describe_target);
            status.older_than_secs = self.opts.recompress_after.map(|d| d.as_secs());
        }
        status
    }

    /// Adds a learned model for reading and writing (copied into the store's models
    /// first); returns the target that codes blocks with it. Readers keep the codecs they
    /// hold; new operations see the new set.
    pub fn add_model(&self, model: Arc<Model>) -> Result<Target> {
        let _one = lock(&self.recompression.models);
        let current = self.codecs();
        if current.has_model(model.id()) {
            // Frames may name it only once the store holds it.
            self.registry.ensure(&model)?;
            return Ok(learned_target(model.id()));
        }
        let mut codecs: Codecs = (*current).clone();
        let target = add_model(&mut codecs, model, &self.registry)?;
        *self.codecs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(codecs);
        log::info!("model {} added for recompression", target.model());
        Ok(target)
    }

    /// What background recompression re-codes cold blocks to now (None: it does not run).
    pub(crate) fn recompress_to(&self) -> Option<Target> {
        *self.recompress_to.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `target`, asked for by an on-demand recompression that named a codec or a
    /// model, what this t5 or auto volume writes and recompresses to for the rest of the
    /// mount; otherwise the background pass would undo it. zstd turns an archival volume
    /// into a fast one (zstd writes, no background pass); a model moves it to that model.
    /// A zstd volume keeps writing zstd: its recompression was one pass. The mount's
    /// options decide again at the next mount.
    pub fn retarget(&self, target: Target) -> Result<()> {
        let mut background = self.recompress_to.write().unwrap_or_else(|p| p.into_inner());
        if background.is_none() && self.codecs().writer().model() == ModelId::NONE {
            return Ok(());
        }
        let learned = target.model() != ModelId::NONE;
        let current = self.codecs();
        let mut codecs: Codecs = (*current).clone();
        let writer = match codecs.writer() {
            // A t5 volume writes what it recompresses to; an auto volume writes zstd.
            w if w.model() != ModelId::NONE => {
                if learned {
                    target
                } else {
                    Target::Zstd { level: self.opts.codec.zstd_level() }
                }
            }
            w => w,
        };
        codecs.set_writer(writer)?;
        *self.codecs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(codecs);
        *background = learned.then_some(target);
        log::info!(
            "until the next mount, new blocks are written as {} and background recompression {}",
            describe_target(writer),
            if learned { format!("re-codes cold blocks to {}", describe_target(target)) } else { "is off".to_string() }
        );
        Ok(())
    }

    /// The target of an on-demand recompression: zstd at the volume's level; t5 with the
    /// model in `model_dir` (added to the volume), or with the volume's model (its
    /// background target's, or the one it was mounted with, or the default one). No codec
    /// means t5 with `model_dir` when one is given, else the volume's background target,
    /// else t5 with the volume's model.
    pub fn recompress_target(&self, codec: Option<RecompressCodec>, model_dir: Option<&Path>) -> Result<Target> {
        if let Some(dir) = model_dir
            && !dir.is_absolute()
        {
            return Err(Error::Invalid("the model directory must be an absolute path"));
        }
        match (codec, model_dir) {
            (Some(RecompressCodec::Zstd), Some(_)) => {
                Err(Error::Invalid("a model directory goes with the t5 codec only"))
            }
            (Some(RecompressCodec::Zstd), None) => Ok(Target::Zstd { level: self.opts.codec.zstd_level() }),
            (_, Some(dir)) => self.add_model(load_model(Some(dir))?),
            (_, None) => match self.recompress_to() {
                Some(t) if t.model() != ModelId::NONE => Ok(t),
                _ => self.add_model(load_model(self.opts.codec.model.as_deref())?),
            },
        }
    }

    /// Re-codes every block not written for `req.older_than` that is not at `req.target`
    /// yet, replacing its frame when the new one is smaller (or, for a zstd target, when
    /// the old one is t5). Waits for a pass already running (a background one gives way).
    /// `progress` is called after each batch; `stop` ends the pass after the blocks in
    /// flight.
    pub fn recompress(
        &self,
        req: &RecompressRequest,
        progress: &dyn Fn(&RecompressProgress),
        stop: &AtomicBool,
    ) -> Result<RecompressReport> {
        self.codecs().check_target(req.target)?;
        self.recompression.demand.fetch_add(1, Ordering::SeqCst);
        let running = lock(&self.recompression.running);
        self.recompression.demand.fetch_sub(1, Ordering::SeqCst);
        let report = self.pass(req, progress, &|| stop.load(Ordering::Relaxed));
        drop(running);
        report
    }

    /// One background pass, unless another pass runs; it gives way to on-demand passes.
    /// Logs what it changed.
    pub(super) fn background_pass(&self, req: &RecompressRequest, stop: &AtomicBool) {
        let Some(running) = try_lock(&self.recompression.running) else { return };
        let demand = &self.recompression.demand;
        let result = self.pass(req, &|_| {}, &|| stop.load(Ordering::Relaxed) || demand.load(Ordering::Relaxed) > 0);
        drop(running);
        match result {
            Ok(r) if r.blocks_recompressed > 0 => log::info!(
                "recompressed {} of {} cold blocks to {}: {} -> {} bytes in {:.1} s ({} kept, {} skipped, {} damaged, {} pauses)",
                r.blocks_recompressed,
                r.blocks_examined,
                r.target,
                r.stored_before,
                r.stored_after,
                r.seconds,
                r.blocks_kept,
                r.blocks_skipped,
                r.blocks_damaged,
                r.pauses
            ),
            Ok(r) if r.blocks_damaged > 0 => {
                log::warn!("recompression found {} damaged blocks; run s2sfs fsck", r.blocks_damaged)
            }
            Ok(_) => {}
            Err(e) => log::error!("background recompression: {e}"),
        }
    }

    /// Stops passes at their next block and waits for the one running: the volume is
    /// closing.
    pub(super) fn stop_recompression(&self) {
        self.recompression.closing.store(true, Ordering::SeqCst);
        drop(lock(&self.recompression.running));
    }

    fn pass(
        &self,
        req: &RecompressRequest,
        progress: &dyn Fn(&RecompressProgress),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<RecompressReport> {
        let start = Instant::now();
        let closing = &self.recompression.closing;
        let stop = move || stop() || closing.load(Ordering::Relaxed);
        let target = req.target;
        let codecs = self.codecs();
        let cutoff = unix_now().saturating_sub(req.older_than.as_secs());
        let mut report = RecompressReport { target: describe_target(target), ..RecompressReport::default() };
        let total = self.count_candidates(target, cutoff, &stop)?;
        self.set_status(|s| {
            s.running = true;
            s.blocks_done = 0;
            s.backlog = total;
        });
        let mut prog = RecompressProgress { blocks_total: total, ..RecompressProgress::default() };
        progress(&prog);
        let pauses = AtomicU64::new(0);
        let threads = self.recompress_pool().map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let batch_len = (threads * BATCH_PER_THREAD).max(1);
        let mut after: Option<BlockHash> = None;
        let mut batch: Vec<(BlockHash, BlockRecord)> = Vec::with_capacity(batch_len);
        let result = (|| -> Result<()> {
            loop {
                let page = self.store.blocks_page(after.as_ref(), PAGE)?;
                let end = page.len() < PAGE;
                after = page.last().map(|(h, _)| *h);
                report.blocks_scanned += page.len() as u64;
                let candidates: Vec<(BlockHash, BlockRecord)> = {
                    let tried = lock(&self.recompression.tried);
                    let tried = tried.iter().find(|(t, _)| *t == target).map(|(_, set)| set);
                    page.into_iter().filter(|(h, rec)| is_candidate(target, cutoff, tried, h, rec)).collect()
                };
                for c in candidates {
                    batch.push(c);
                    if batch.len() == batch_len {
                        self.code_batch(&codecs, target, &mut batch, &mut report, &mut prog, &pauses, &stop, progress)?;
                    }
                }
                if stop() {
                    report.stopped = true;
                    return Ok(());
                }
                if end {
                    break;
                }
            }
            self.code_batch(&codecs, target, &mut batch, &mut report, &mut prog, &pauses, &stop, progress)?;
            report.stopped = stop();
            Ok(())
        })();
        report.pauses = pauses.into_inner();
        report.seconds = start.elapsed().as_secs_f64();
        if report.blocks_recompressed > 0 {
            // Gives the old frames' space back within the pass, not a flusher tick later.
            match self.store.flush_if_changed() {
                Ok(()) => self.store.punch_freed(),
                Err(e) => log::warn!("flush after recompression: {e}"),
            }
        }
        self.set_status(|s| {
            s.running = false;
            s.blocks_done = prog.blocks_done;
            s.backlog = prog.blocks_total.saturating_sub(prog.blocks_done);
            s.blocks_recompressed += report.blocks_recompressed;
            s.bytes_saved += report.stored_before as i64 - report.stored_after as i64;
            if result.is_ok() {
                s.passes += 1;
                s.last_pass = Some(report.clone());
                s.last_pass_ended = Some(unix_now());
            }
        });
        result.map(|()| report)
    }

    /// Candidates of a pass, counted from the block records alone.
    fn count_candidates(&self, target: Target, cutoff: u64, stop: &dyn Fn() -> bool) -> Result<u64> {
        let mut count = 0u64;
        let mut after: Option<BlockHash> = None;
        loop {
            let page = self.store.blocks_page(after.as_ref(), PAGE)?;
            {
                let tried = lock(&self.recompression.tried);
                let tried = tried.iter().find(|(t, _)| *t == target).map(|(_, set)| set);
                count += page.iter().filter(|(h, rec)| is_candidate(target, cutoff, tried, h, rec)).count() as u64;
            }
            if page.len() < PAGE || stop() {
                return Ok(count);
            }
            after = page.last().map(|(h, _)| *h);
        }
    }

    /// Codes a batch of candidates on the pool, empties it, and accounts for it.
    #[allow(clippy::too_many_arguments)]
    fn code_batch(
        &self,
        codecs: &Codecs,
        target: Target,
        batch: &mut Vec<(BlockHash, BlockRecord)>,
        report: &mut RecompressReport,
        prog: &mut RecompressProgress,
        pauses: &AtomicU64,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &dyn Fn(&RecompressProgress),
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let work = || {
            batch
                .par_iter()
                .map(|(hash, rec)| {
                    if self.wait_idle(stop, pauses) {
                        return Ok(Outcome::Stopped);
                    }
                    self.recode(codecs, target, hash, rec)
                })
                .collect::<Vec<Result<Outcome>>>()
        };
        let outcomes = match self.recompress_pool() {
            Some(pool) => pool.install(work),
            None => work(),
        };
        // Considered for this target, and not to be tried again this mount.
        let mut no_gain = Vec::new();
        let mut error = None;
        for ((hash, rec), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(Outcome::Recompressed { plain, before, after, info }) => {
                    report.blocks_examined += 1;
                    report.blocks_recompressed += 1;
                    report.logical_bytes += plain;
                    report.stored_before += before;
                    report.stored_after += after;
                    // A zstd or raw frame that beat the learned coder still looks undone.
                    no_gain.push((*hash, (after as u32, Some(info))));
                }
                Ok(Outcome::Kept { plain, before }) => {
                    report.blocks_examined += 1;
                    report.blocks_kept += 1;
                    report.logical_bytes += plain;
                    report.stored_before += before;
                    report.stored_after += before;
                    no_gain.push((*hash, (rec.frame_len, rec.info)));
                }
                Ok(Outcome::Skipped) => report.blocks_skipped += 1,
                Ok(Outcome::NotNeeded) => no_gain.push((*hash, (rec.frame_len, rec.info))),
                Ok(Outcome::Damaged) => report.blocks_damaged += 1,
                Ok(Outcome::Stopped) => continue,
                Err(e) => {
                    error.get_or_insert(e);
                    continue;
                }
            }
            prog.blocks_done += 1;
        }
        batch.clear();
        if !no_gain.is_empty() {
            let mut tried = lock(&self.recompression.tried);
            let i = match tried.iter().position(|(t, _)| *t == target) {
                Some(i) => i,
                None => {
                    tried.push((target, Tried::new()));
                    tried.len() - 1
                }
            };
            tried[i].1.extend(no_gain);
        }
        prog.blocks_total = prog.blocks_total.max(prog.blocks_done);
        prog.logical_bytes = report.logical_bytes;
        prog.stored_before = report.stored_before;
        prog.stored_after = report.stored_after;
        self.set_status(|s| {
            s.blocks_done = prog.blocks_done;
            s.backlog = prog.blocks_total - prog.blocks_done;
        });
        progress(prog);
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits while foreground requests are in flight; true when the pass is to stop.
    fn wait_idle(&self, stop: &(dyn Fn() -> bool + Sync), pauses: &AtomicU64) -> bool {
        let mut paused = false;
        loop {
            if stop() {
                return true;
            }
            if self.recompression.busy.load(Ordering::SeqCst) == 0 {
                return false;
            }
            if !paused {
                paused = true;
                pauses.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(IDLE_POLL);
        }
    }

    /// Reads, checks and re-codes one block, and swaps its frame when that pays.
    fn recode(&self, codecs: &Codecs, target: Target, hash: &BlockHash, rec: &BlockRecord) -> Result<Outcome> {
        let Some(frame) = self.store.read_frame(hash)? else { return Ok(Outcome::Skipped) };
        if frame.len() != rec.frame_len as usize {
            // The record changed since the scan read it.
            return Ok(Outcome::Skipped);
        }
        let damaged = |what: String| {
            log::warn!("recompression: block {} {what}; left as it is (s2sfs fsck reports it)", short(hash));
            Ok(Outcome::Damaged)
        };
        let header = match FrameHeader::parse(&frame) {
            Ok(h) => h,
            Err(e) => return damaged(format!("has a bad frame header: {e}")),
        };
        let to_zstd = matches!(target, Target::Zstd { .. } | Target::Raw);
        if to_zstd && header.codec != CodecId::T5 {
            return Ok(Outcome::NotNeeded);
        }
        let plain = match codecs.decode_frame(&frame) {
            Ok(p) => p,
            Err(e) => return damaged(format!("does not decode: {e}")),
        };
        if blake3::hash(&plain).as_bytes() != hash {
            return damaged("decodes to other bytes than its hash names".into());
        }
        let new = codecs.encode_as(&plain, target)?;
        let before = frame.len() as u64;
        let plain_len = plain.len() as u64;
        if !(new.len() < frame.len() || to_zstd) {
            // Remembered in the record: no later pass, in this mount or the next, weighs
            // this block against this model again.
            let weighed = frame_info(&frame, target.model())?;
            if rec.info != Some(weighed) {
                self.store.describe_frame(hash, rec, weighed)?;
            }
            return Ok(Outcome::Kept { plain: plain_len, before });
        }
        // The new frame is checked as every stored frame must be: it decodes to the block.
        match codecs.decode_frame(&new) {
            Ok(p) if p == plain => {}
            Ok(_) | Err(_) => {
                log::error!(
                    "recompression: the {} frame of block {} does not decode back; kept the old one",
                    describe_target(target),
                    short(hash)
                );
                return Ok(Outcome::Kept { plain: plain_len, before });
            }
        }
        // Described as its header says, with the model it was weighed against.
        let info = frame_info(&new, target.model())?;
        let after = new.len() as u64;
        if self.store.replace_frame(hash, rec, new, info)? {
            Ok(Outcome::Recompressed { plain: plain_len, before, after, info })
        } else {
            Ok(Outcome::Skipped)
        }
    }

    fn recompress_pool(&self) -> Option<&rayon::ThreadPool> {
        self.recompression
            .pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .thread_name(|i| format!("s2sfs-recode-{i}"))
                    .start_handler(|_| nice_this_thread())
                    .build()
                    .inspect_err(|e| log::warn!("no recompression threads ({e}): the shared pool is used"))
                    .ok()
            })
            .as_ref()
    }

    fn set_status(&self, f: impl FnOnce(&mut RecompressStatus)) {
        f(&mut lock(&self.recompression.status));
    }
}

fn try_lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn short(hash: &BlockHash) -> String {
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "recompress_tests.rs"]
mod tests;
