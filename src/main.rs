//! The `s2sfs` command line. Everything it does lives in the library (`s2sfs::fs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use s2sfs::VolumeOptions;
use s2sfs::codec::CodecSpec;

#[derive(Parser)]
#[command(name = "s2sfs", version, about = "A FUSE filesystem that compresses file data block by block")]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount a volume; runs in the background once the mount is live, unless --foreground.
    Mount(MountArgs),
    /// Unmount a volume and wait until its daemon has committed everything and closed the store.
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// Check an unmounted store: every frame decoded, block index, refcounts, directory tree,
    /// link counts.
    #[command(after_help = "\
With --repair, fixes what needs no guessing (refcounts, orphans, link counts, stray records),
links unreachable inodes into /lost+found as #<ino>, and moves files with unreadable blocks
into /lost+found as <ino>-<name>, their bad byte ranges in the xattr user.s2sfs.bad_ranges;
then checks again.

Exit status:
  0  clean
  1  problems were repaired, and the check after the repair found the store clean
  4  problems remain (found without --repair, or not repairable)
  8  operational error: the store cannot be opened (missing, unreadable, or mounted
     with --repair)

A mounted store is checked read-only through its daemon (writes wait while the
metadata is read); --repair needs the store unmounted.")]
    Fsck(FsckArgs),
    /// Statistics of a volume: logical, unique and stored bytes, holes, dedup, ratios, per
    /// codec and per model, recompression, block cache.
    #[command(after_help = "\
A mounted volume answers through its daemon (give its mount point, or its store with
--store); an unmounted store is read directly. --json prints the same JSON as the mount's
root directory holds in the xattr user.s2sfs.stats, on one line (README.md, \"Statistics\").")]
    Stats(StatsArgs),
    /// The learned models of a volume: those its store keeps and those its frames name, with
    /// their frames, bytes and status (ok, damaged, missing).
    Models(StatsArgs),
    /// Re-code the stored blocks of a mounted volume: to t5 (smaller), or back to zstd
    /// (faster reads).
    #[command(after_help = "\
The daemon of the mount does the work, in the background of the volume: it pauses while
the mount serves requests, and files stay readable and writable throughout. A block is
replaced only when its new frame is smaller (t5), or when it is a t5 frame (zstd). Blocks
shared by several files are re-coded once. Without --codec: the volume's background
target (t5 and auto volumes), else t5 with the volume's model. --model DIR adds that model
to the store (STORE/models) and codes with it.")]
    Recompress(RecompressCmd),
    /// Train the t5 coder's model on a corpus directory and export it (CODER.md).
    #[command(after_help = "\
Cuts the corpus files into 128 KiB blocks, learns a tokenizer into MODELDIR/tokenizer.json
when there is none, trains with quantization-aware training, checkpoints into
MODELDIR/checkpoint every few minutes and at the end, measures bits/byte on held-out files
of the corpus, and writes the integer model (config.json, tokenizer.json,
weights.safetensors) into MODELDIR. Never train on the bench corpus.")]
    Train(TrainArgs),
    /// Compare a trained model's float checkpoint with its integer model on files.
    #[command(after_help = "\
Cuts each file into blocks of at most one decoder window of tokens and prints, per file,
the bits/byte the float model (MODELDIR/checkpoint) predicts and the bits/byte the
integer model (MODELDIR) would code, the network alone in both (no match confidence).")]
    Quantization {
        /// A directory written by `s2sfs train`: the exported model and its checkpoint.
        #[arg(long, value_name = "MODELDIR")]
        model: PathBuf,
        /// Print the table as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[arg(value_name = "FILES", required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a codec on whole files, outside any volume: compress, decompress, eval.
    #[command(subcommand)]
    Codec(CodecCommand),
    /// Print the shell completion script for bash, zsh or fish on stdout.
    #[command(after_help = "\
The Debian package installs them; by hand, for example:
  s2sfs completions bash > /usr/share/bash-completion/completions/s2sfs
  s2sfs completions zsh > /usr/share/zsh/vendor-completions/_s2sfs
  s2sfs completions fish > /usr/share/fish/vendor_completions.d/s2sfs.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (s2sfs.1 and one per subcommand) into DIR (for packaging).
    #[command(hide = true)]
    Manpages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CodecCommand {
    /// Cut IN into blocks and write their frames, as a volume stores them, to OUT.
    Compress(FileToFile),
    /// Decode a file written by `codec compress` (every frame checked) into OUT.
    Decompress(FileToFile),
    /// Per file: bytes, stored bytes, bits/byte, ratio, the same for zstd -19 per block,
    /// and compress/decompress speed of one core; every frame is decoded and compared.
    Eval(FilesTable),
    /// Per file: the latent the t5 encoder gives each segment (how long, which codes).
    Latents(FilesTable),
    /// Decode the t5 frames of FILES in batches on the batched network (the first GPU
    /// when built with --features cuda, else the CPU); prints the device and throughput.
    Batch {
        #[command(flatten)]
        with: CodecWith,
        /// Blocks decoded together.
        #[arg(long, value_name = "N", default_value_t = 64,
              value_parser = clap::value_parser!(u64).range(1..=65536))]
        batch: u64,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[arg(value_name = "FILES", required = true)]
        files: Vec<PathBuf>,
    },
}

/// A table with a row per file of FILES.
#[derive(Args)]
struct FilesTable {
    #[command(flatten)]
    with: CodecWith,
    /// Print the table as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[arg(value_name = "FILES", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct FileToFile {
    #[command(flatten)]
    with: CodecWith,
    #[arg(value_name = "IN")]
    input: PathBuf,
    #[arg(value_name = "OUT")]
    output: PathBuf,
}

/// `s2sfs codec`'s options: the codec (t5 when none is given) and the block size.
#[derive(Args)]
struct CodecWith {
    #[command(flatten)]
    spec: CodecSpec,
    /// The t5 latent of each segment: the encoder's, or none (every latent empty, to see
    /// what the learned one saves; such frames decode like any other).
    #[arg(long, value_enum, default_value_t = LatentArg::Learned)]
    latent: LatentArg,
    /// Block size in KiB (a volume's default is 128).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = parse_block_kib)]
    block_kib: u32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LatentArg {
    Learned,
    None,
}

#[derive(Args)]
struct TrainArgs {
    /// The training corpus (a directory of files, e.g. built by train-corpus).
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,
    /// The model directory: checkpoints, then the exported model.
    #[arg(long, value_name = "MODELDIR", required_unless_present = "list_held_out")]
    out: Option<PathBuf>,
    /// Print the corpus files held out of training (measured, never trained on), one per
    /// line, and exit.
    #[arg(long)]
    list_held_out: bool,
    /// The model's config.json [default: the v1 default of CODER.md].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Train until this many steps are done, counting those before a --resume.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    steps: u64,
    /// Windows per step.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Peak learning rate.
    #[arg(long, value_name = "X", default_value_t = 2e-3)]
    lr: f64,
    /// Steps of the reinforcement-learning stage, after the --steps supervised ones
    /// (CODER.md, "The latent: reinforcement learning").
    #[arg(long, value_name = "N", default_value_t = 0)]
    rl_steps: u64,
    /// The reinforcement-learning stage's learning rate.
    #[arg(long, value_name = "X", default_value_t = 5e-5)]
    rl_lr: f64,
    /// Continue from MODELDIR/checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start a new training from this trained model's weights and tokenizer: tensors of
    /// the same name and shape are copied, a changed shape takes the corner both share,
    /// and what the model lacks starts fresh (e.g. fewer decoder layers, a wider
    /// feed-forward layer).
    #[arg(long, value_name = "MODELDIR", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Seed of the initial weights, the batches and the latent sampling.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `s2sfs stats` and `s2sfs models`: a mount point, or a store directory.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("volume").required(true).args(["mountpoint", "store"])))]
struct StatsArgs {
    /// The mount point of an s2sfs volume.
    mountpoint: Option<PathBuf>,
    /// The store directory instead (mounted or not).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print JSON on stdout, on one line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FsckArgs {
    /// The store directory.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Fix what can be fixed without guessing, then check again.
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecompressCmd {
    /// The mount point of an s2sfs volume.
    mountpoint: PathBuf,
    /// Only blocks not written for this long (e.g. 0s, 10m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    older_than: std::time::Duration,
    /// t5 or zstd [default: the volume's background target, else t5].
    #[arg(long, value_enum)]
    codec: Option<s2sfs::volume::RecompressCodec>,
    /// The t5 model directory [default: the volume's model].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MountArgs {
    /// Where to mount (an existing directory).
    mountpoint: PathBuf,
    /// The store directory [default: /var/lib/s2sfs/<escaped mount point> for root,
    /// $XDG_DATA_HOME/s2sfs/<escaped mount point> for others].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The codec (zstd when none is given), its zstd level and the t5 model.
    #[command(flatten)]
    spec: CodecSpec,
    /// Blocks not written for this long are re-coded by background recompression on t5
    /// and auto volumes (e.g. 30s, 10m, 2h; 0 or "off" turns it off).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_recompress_after)]
    recompress_after: RecompressAfter,
    /// Memory for decoded blocks, MiB.
    #[arg(long, value_name = "N", default_value_t = (VolumeOptions::default().cache_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    cache_mb: u64,
    /// Block size of a new store, KiB (a power of two, 4 to 1024); an existing store keeps its own.
    #[arg(long, value_name = "N", default_value_t = VolumeOptions::default().block_size / 1024,
          value_parser = parse_block_kib)]
    block_kib: u32,
    /// Stay in the foreground and log to stderr (for systemd).
    #[arg(short, long)]
    foreground: bool,
    /// The most the daemon's log (STORE/daemon.log and the older daemon.log.1 it is rotated
    /// to at half this size) takes; K, M or G for KiB, MiB, GiB.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_log_max)]
    log_max: u64,
    /// Mount options, comma-separated: allow_other, allow_root, ro, rw, exec, noexec, suid,
    /// nosuid, dev, nodev, atime, noatime, sync, async, dirsync.
    #[arg(short = 'o', value_name = "OPTS", action = ArgAction::Append)]
    options: Vec<String>,
}

/// `--recompress-after`: a duration, or off.
#[derive(Clone, Copy)]
struct RecompressAfter(Option<std::time::Duration>);

fn parse_recompress_after(s: &str) -> Result<RecompressAfter, String> {
    match s {
        "off" | "0" => Ok(RecompressAfter(None)),
        _ => humantime::parse_duration(s)
            .map(|d| RecompressAfter(Some(d)))
            .map_err(|e| format!("{e} (e.g. 30s, 10m, 2h, or off)")),
    }
}

fn parse_log_max(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err("the unit must be K, M or G (e.g. 512K, 16M)".into()),
    };
    let n: u64 = digits.parse().map_err(|e| format!("{e} (e.g. 512K, 16M)"))?;
    let bytes = n.checked_shl(shift).filter(|b| b >> shift == n).ok_or("too large")?;
    if bytes < 16 << 10 {
        return Err("must be at least 16K".into());
    }
    Ok(bytes)
}

fn parse_block_kib(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(4..=1024).contains(&n) || !n.is_power_of_two() {
        return Err("must be a power of two from 4 to 1024".into());
    }
    Ok(n)
}

/// `s2sfs --version`: the version, the default model, the kernels the t5 coder runs on
/// this CPU and whether the CUDA backend is built in.
fn version_text() -> String {
    let model = match s2sfs::codec::default_model() {
        Ok(m) => format!("{} ({})", m.id().hex(), s2sfs::codec::default_model_origin()),
        Err(e) => format!("unavailable: {e}"),
    };
    let kernels = match s2sfs::t5::selected_kernels() {
        Ok(k) => k.to_string(),
        Err(e) => e.to_string(),
    };
    let cuda = if cfg!(feature = "cuda") { "built in" } else { "not built in" };
    format!("{}\ndefault model {model}\nkernels {kernels}\ncuda {cuda}", env!("CARGO_PKG_VERSION"))
}

fn fsck(args: FsckArgs) -> ExitCode {
    match s2sfs::commands::fsck::run(&args.store, args.repair, args.json) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("s2sfs fsck: {e}");
            ExitCode::from(s2sfs::commands::fsck::EXIT_ERROR)
        }
    }
}

fn recompress(cmd: RecompressCmd) -> Result<ExitCode> {
    use s2sfs::fs::control;
    let store = control::mounted_store_of(&cmd.mountpoint)?;
    let model = match cmd.model {
        Some(dir) => Some(dir.canonicalize().map_err(|e| anyhow::anyhow!("model directory {}: {e}", dir.display()))?),
        None => None,
    };
    let args = control::RecompressArgs { older_than_secs: cmd.older_than.as_secs(), codec: cmd.codec, model };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("recompressing [{bar:40}] {pos}/{len} blocks ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let shown = cmd.mountpoint.display();
    let report = control::recompress_mounted(&store, &args, &mut |p| {
        bar.set_length(p.blocks_total);
        bar.set_position(p.blocks_done);
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow::anyhow!("recompressing {shown}: {e}"))?.ok_or_else(|| {
        anyhow::anyhow!(
            "the daemon of {shown} does not answer on {} (has it exited?)",
            s2sfs::store::control_socket(&store).display()
        )
    })?;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        use indicatif::HumanBytes;
        let ratio = |stored: u64| report.logical_bytes as f64 / stored.max(1) as f64;
        println!(
            "{shown}: {} of {} blocks re-coded to {} in {:.1} s",
            report.blocks_recompressed, report.blocks_examined, report.target, report.seconds
        );
        println!("  logical bytes  {:>14} ({})", report.logical_bytes, HumanBytes(report.logical_bytes));
        println!(
            "  stored before  {:>14} ({}, {:.2}x)",
            report.stored_before,
            HumanBytes(report.stored_before),
            ratio(report.stored_before)
        );
        println!(
            "  stored after   {:>14} ({}, {:.2}x)",
            report.stored_after,
            HumanBytes(report.stored_after),
            ratio(report.stored_after)
        );
        println!(
            "  {} kept (no gain), {} skipped (changed meanwhile), {} paused for requests",
            report.blocks_kept, report.blocks_skipped, report.pauses
        );
    }
    if report.blocks_damaged > 0 {
        eprintln!(
            "s2sfs: {} blocks do not decode; `s2sfs fsck --store {}` reports them",
            report.blocks_damaged,
            store.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if report.stopped {
        eprintln!("s2sfs: recompression of {shown} stopped early (the volume is being unmounted)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `s2sfs stats` (or `s2sfs models`): the JSON from the daemon of a mount (or of a store
/// that is mounted), or read from an unmounted store; printed as is, or as tables.
fn stats(args: StatsArgs, models: bool) -> Result<()> {
    use s2sfs::fs::control;
    use s2sfs::volume;
    let (store, mounted) = match (args.mountpoint, args.store) {
        (Some(mnt), _) => (control::mounted_store_of(&mnt)?, true),
        (None, Some(dir)) => (dir, false),
        (None, None) => anyhow::bail!("give a mount point or --store DIR"),
    };
    let offline = if mounted {
        None
    } else {
        let json = if models {
            volume::store_models(&store).map(|m| serde_json::to_string(&m))
        } else {
            volume::store_stats(&store).map(|s| serde_json::to_string(&s))
        };
        match json {
            Ok(json) => Some(json?),
            // Mounted (locked): its daemon answers.
            Err(e) if volume::is_locked(&e) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let json = match offline {
        Some(json) => json,
        None => {
            let asked = if models { control::models_mounted(&store)? } else { control::stats_mounted(&store)? };
            asked.ok_or_else(|| {
                anyhow::anyhow!(
                    "store {} is in use, but nothing answers on {} (a daemon that hangs, or another s2sfs command?)",
                    store.display(),
                    s2sfs::store::control_socket(&store).display()
                )
            })?
        }
    };
    if args.json {
        println!("{json}");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if models {
        volume::render_models(&mut out, &serde_json::from_str::<Vec<volume::ModelStats>>(&json)?)?;
    } else {
        volume::render_stats(&mut out, &serde_json::from_str::<volume::Stats>(&json)?)?;
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    if args.threads > 0 {
        let n = args.threads.to_string();
        // SAFETY: no other thread exists yet. candle sizes its own thread pool and its
        // matrix products' parallelism from these variables, not from the caller's pool.
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", &n);
            std::env::set_var("CANDLE_NUM_THREADS", &n);
        }
    }
    let Some(out) = args.out.filter(|_| !args.list_held_out) else {
        for file in s2sfs::train::held_out_files(&args.corpus)? {
            println!("{}", file.display());
        }
        return Ok(());
    };
    let mut opts = s2sfs::train::TrainOptions::new(args.corpus, out);
    opts.config = args.config;
    opts.steps = args.steps;
    opts.batch = usize::try_from(args.batch)?;
    opts.lr = args.lr;
    opts.rl_steps = args.rl_steps;
    opts.rl_lr = args.rl_lr;
    opts.resume = args.resume;
    opts.init_from = args.init_from;
    opts.threads = args.threads;
    opts.seed = args.seed;
    let summary = s2sfs::train::train(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

fn quantization(model: &std::path::Path, json: bool, files: &[PathBuf]) -> Result<()> {
    let rows = s2sfs::train::compare(model, files)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<28} {:>10} {:>7} {:>10} {:>10} {:>8}", "file", "bytes", "blocks", "float bpb", "int bpb", "int/flt");
    let (mut bytes, mut float, mut int) = (0u64, 0.0, 0.0);
    for r in &rows {
        let name =
            r.file.file_name().map_or_else(|| r.file.display().to_string(), |n| n.to_string_lossy().into_owned());
        println!(
            "{name:<28} {:>10} {:>7} {:>10.4} {:>10.4} {:>+7.2}%",
            r.bytes,
            r.blocks,
            r.float_bits_per_byte,
            r.integer_bits_per_byte,
            100.0 * r.excess()
        );
        bytes += r.bytes;
        float += r.float_bits_per_byte * r.bytes as f64;
        int += r.integer_bits_per_byte * r.bytes as f64;
    }
    let n = bytes.max(1) as f64;
    println!(
        "{:<28} {bytes:>10} {:>7} {:>10.4} {:>10.4} {:>+7.2}%",
        "TOTAL",
        "",
        float / n,
        int / n,
        100.0 * (int / float - 1.0)
    );
    Ok(())
}

/// A byte-count progress bar on stderr (hidden when stderr is not a terminal).
fn byte_bar(total: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn codec(cmd: CodecCommand) -> Result<()> {
    // The tool's errors name their causes themselves: one line, each cause once.
    codec_run(cmd).map_err(|e| anyhow::anyhow!(s2sfs::error::error_chain(&e)))
}

fn codec_run(cmd: CodecCommand) -> Result<(), s2sfs::commands::codec::ToolError> {
    use s2sfs::commands::codec as tool;
    let with = match &cmd {
        CodecCommand::Compress(f) | CodecCommand::Decompress(f) => &f.with,
        CodecCommand::Eval(t) | CodecCommand::Latents(t) => &t.with,
        CodecCommand::Batch { with, .. } => with,
    };
    let latents = match with.latent {
        LatentArg::Learned => s2sfs::t5::Latents::Learned,
        LatentArg::None => s2sfs::t5::Latents::Empty,
    };
    let set = tool::codecs(&with.spec, latents)?;
    let name = set.kind.name();
    let codecs = set.codecs;
    let block = tool::check_block_size(with.block_kib as usize * 1024)?;
    match cmd {
        CodecCommand::Compress(FileToFile { input, output, .. }) => {
            let bar = byte_bar(file_len(&input), "compressing");
            let written = tool::compress_file(&codecs, block, &input, &output, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            let n = file_len(&input);
            eprintln!(
                "{}: {n} bytes -> {written} bytes ({:.3}x, {name})",
                input.display(),
                n as f64 / written.max(1) as f64
            );
        }
        CodecCommand::Decompress(FileToFile { input, output, .. }) => {
            let bar = byte_bar(0, "decompressing");
            let n = tool::decompress_file(&codecs, &input, &output, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            eprintln!("{}: {n} bytes decoded, every frame checked", output.display());
        }
        CodecCommand::Eval(FilesTable { files, json, .. }) => {
            let bar = byte_bar(files.iter().map(|f| file_len(f)).sum(), "evaluating");
            let rows = tool::eval_files(&codecs, block, &files, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            print_report(json, &rows, |out| tool::render_eval(out, &rows, name))?;
        }
        CodecCommand::Latents(FilesTable { files, json, .. }) => {
            let codec = set.model.map(s2sfs::t5::T5Codec::new).ok_or(tool::ToolError::NoModel)?;
            let rows = tool::latent_files(&codec, block, &files)?;
            print_report(json, &rows, |out| tool::render_latents(out, &rows))?;
        }
        CodecCommand::Batch { files, batch, json, .. } => {
            let codec = set.model.map(s2sfs::t5::T5Codec::new).ok_or(tool::ToolError::NoModel)?;
            let bar = byte_bar(files.iter().map(|f| file_len(f)).sum(), "decoding in batches");
            let report = tool::batch_decode(&codecs, &codec, block, &files, batch as usize, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            print_report(json, &report, |out| {
                writeln!(
                    out,
                    "{} t5 frames ({} bytes; {} other frames not decoded here) in batches of {} on {}: {:.2} s, {:.1} KB/s",
                    report.frames,
                    report.bytes,
                    report.other_frames,
                    report.batch,
                    report.device,
                    report.decode_wall_s,
                    report.decode_kb_s
                )
            })?;
        }
    }
    Ok(())
}

/// A codec tool's result on stdout: as JSON with `json`, else as `render` writes it.
fn print_report<T: serde::Serialize>(
    json: bool,
    report: &T,
    render: impl FnOnce(&mut std::io::Stdout) -> std::io::Result<()>,
) -> Result<(), s2sfs::commands::codec::ToolError> {
    let mut out = std::io::stdout();
    let written = if json {
        serde_json::to_string_pretty(report).map_err(std::io::Error::from).and_then(|text| writeln!(out, "{text}"))
    } else {
        render(&mut out)
    };
    written.map_err(|source| s2sfs::commands::codec::ToolError::Io { path: "stdout".into(), source })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Mount(m) => {
            let volume = VolumeOptions {
                codec: m.spec,
                recompress_after: m.recompress_after.0,
                block_size: m.block_kib * 1024,
                cache_bytes: usize::try_from(m.cache_mb << 20)?,
                ..VolumeOptions::default()
            };
            let req = s2sfs::fs::MountRequest {
                mountpoint: m.mountpoint,
                store: m.store,
                volume,
                options: m.options,
                foreground: m.foreground,
                log_max: m.log_max,
            };
            s2sfs::fs::mount(&req)?;
        }
        Command::Umount { mountpoint } => s2sfs::fs::umount(&mountpoint)?,
        Command::Fsck(args) => return Ok(fsck(args)),
        Command::Stats(args) => stats(args, false)?,
        Command::Models(args) => stats(args, true)?,
        Command::Recompress(cmd) => return recompress(cmd),
        Command::Train(args) => train(args)?,
        Command::Quantization { model, json, files } => quantization(&model, json, &files)?,
        Command::Codec(cmd) => codec(cmd)?,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "s2sfs", &mut std::io::stdout().lock());
        }
        Command::Manpages { dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let mut command = Cli::command();
    if std::env::args_os().any(|a| a == "--version") {
        // Built only when asked for: it loads the default model to name it.
        let text: &'static str = Box::leak(version_text().into_boxed_str());
        command = command.long_version(text);
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    s2sfs::logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        // A reader that went away (`s2sfs stats /data | head`) is not an error to report.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("s2sfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
