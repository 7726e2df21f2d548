# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_s2sfs_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_s2sfs_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_s2sfs_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_s2sfs_using_subcommand
    set -l cmd (__fish_s2sfs_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c s2sfs -n "__fish_s2sfs_needs_command" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -s V -l version -d 'Print version'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "mount" -d 'Mount a volume; runs in the background once the mount is live, unless --foreground'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "umount" -d 'Unmount a volume and wait until its daemon has committed everything and closed the store'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "fsck" -d 'Check an unmounted store: every frame decoded, block index, refcounts, directory tree, link counts'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "stats" -d 'Statistics of a volume: logical, unique and stored bytes, holes, dedup, ratios, per codec and per model, recompression, block cache'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "models" -d 'The learned models of a volume: those its store keeps and those its frames name, with their frames, bytes and status (ok, damaged, missing)'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "recompress" -d 'Re-code the stored blocks of a mounted volume: to t5 (smaller), or back to zstd (faster reads)'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "train" -d 'Train the t5 coder\'s model on a corpus directory and export it (CODER.md)'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "quantization" -d 'Compare a trained model\'s float checkpoint with its integer model on files'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "codec" -d 'Run a codec on whole files, outside any volume: compress, decompress, eval'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish on stdout'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "manpages" -d 'Write the man pages (s2sfs.1 and one per subcommand) into DIR (for packaging)'
complete -c s2sfs -n "__fish_s2sfs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l store -d 'The store directory [default: /var/lib/s2sfs/<escaped mount point> for root, $XDG_DATA_HOME/s2sfs/<escaped mount point> for others]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l recompress-after -d 'Blocks not written for this long are re-coded by background recompression on t5 and auto volumes (e.g. 30s, 10m, 2h; 0 or "off" turns it off)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l cache-mb -d 'Memory for decoded blocks, MiB' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l block-kib -d 'Block size of a new store, KiB (a power of two, 4 to 1024); an existing store keeps its own' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -l log-max -d 'The most the daemon\'s log (STORE/daemon.log and the older daemon.log.1 it is rotated to at half this size) takes; K, M or G for KiB, MiB, GiB' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -s o -d 'Mount options, comma-separated: allow_other, allow_root, ro, rw, exec, noexec, suid, nosuid, dev, nodev, atime, noatime, sync, async, dirsync' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -s f -l foreground -d 'Stay in the foreground and log to stderr (for systemd)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand mount" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand umount" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand umount" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand fsck" -l store -d 'The store directory' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand fsck" -l repair -d 'Fix what can be fixed without guessing, then check again'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand fsck" -l json -d 'Print the report as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand fsck" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand fsck" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand stats" -l store -d 'The store directory instead (mounted or not)' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand stats" -l json -d 'Print JSON on stdout, on one line'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand stats" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand stats" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand models" -l store -d 'The store directory instead (mounted or not)' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand models" -l json -d 'Print JSON on stdout, on one line'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand models" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand models" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -l older-than -d 'Only blocks not written for this long (e.g. 0s, 10m, 2h)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -l codec -d 't5 or zstd [default: the volume\'s background target, else t5]' -r -f -a "t5\t'The learned coder (the smallest of t5, zstd -19 and raw is kept)'
zstd\t'zstd at the volume\'s level: t5 frames become zstd (or raw) frames again'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -l model -d 'The t5 model directory [default: the volume\'s model]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -l json -d 'Print the report as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand recompress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l corpus -d 'The training corpus (a directory of files, e.g. built by train-corpus)' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l out -d 'The model directory: checkpoints, then the exported model' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l config -d 'The model\'s config.json [default: the v1 default of CODER.md]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l steps -d 'Train until this many steps are done, counting those before a --resume' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l batch -d 'Windows per step' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l lr -d 'Peak learning rate' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l rl-steps -d 'Steps of the reinforcement-learning stage, after the --steps supervised ones (CODER.md, "The latent: reinforcement learning")' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l rl-lr -d 'The reinforcement-learning stage\'s learning rate' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l init-from -d 'Start a new training from this trained model\'s weights and tokenizer: tensors of the same name and shape are copied, a changed shape takes the corner both share, and what the model lacks starts fresh (e.g. fewer decoder layers, a wider feed-forward layer)' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l threads -d 'Worker threads [default: one per core]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l seed -d 'Seed of the initial weights, the batches and the latent sampling' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l list-held-out -d 'Print the corpus files held out of training (measured, never trained on), one per line, and exit'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l resume -d 'Continue from MODELDIR/checkpoint'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -l json -d 'Print the summary as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand train" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand quantization" -l model -d 'A directory written by `s2sfs train`: the exported model and its checkpoint' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand quantization" -l json -d 'Print the table as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand quantization" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand quantization" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "compress" -d 'Cut IN into blocks and write their frames, as a volume stores them, to OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "decompress" -d 'Decode a file written by `codec compress` (every frame checked) into OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "eval" -d 'Per file: bytes, stored bytes, bits/byte, ratio, the same for zstd -19 per block, and compress/decompress speed of one core; every frame is decoded and compared'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "latents" -d 'Per file: the latent the t5 encoder gives each segment (how long, which codes)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "batch" -d 'Decode the t5 frames of FILES in batches on the batched network (the first GPU when built with --features cuda, else the CPU); prints the device and throughput'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and not __fish_seen_subcommand_from compress decompress eval latents batch help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -l latent -d 'The t5 latent of each segment: the encoder\'s, or none (every latent empty, to see what the learned one saves; such frames decode like any other)' -r -f -a "learned\t''
none\t''"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -l block-kib -d 'Block size in KiB (a volume\'s default is 128)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from compress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -l latent -d 'The t5 latent of each segment: the encoder\'s, or none (every latent empty, to see what the learned one saves; such frames decode like any other)' -r -f -a "learned\t''
none\t''"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -l block-kib -d 'Block size in KiB (a volume\'s default is 128)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from decompress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l latent -d 'The t5 latent of each segment: the encoder\'s, or none (every latent empty, to see what the learned one saves; such frames decode like any other)' -r -f -a "learned\t''
none\t''"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l block-kib -d 'Block size in KiB (a volume\'s default is 128)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -l json -d 'Print the table as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from eval" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l latent -d 'The t5 latent of each segment: the encoder\'s, or none (every latent empty, to see what the learned one saves; such frames decode like any other)' -r -f -a "learned\t''
none\t''"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l block-kib -d 'Block size in KiB (a volume\'s default is 128)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -l json -d 'Print the table as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from latents" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l codec -d 'Codec for new blocks: zstd (fast), t5 (archival: the learned coder on every block, the smallest of t5, zstd -19 and raw kept), auto (zstd now, t5 once blocks are cold), raw' -r -f -a "zstd\t'zstd at the volume\'s level, inline: fast writes, fast reads'
t5\t'Archival: every block coded by the learned coder when it is committed; the smallest of t5, zstd -19 and raw is kept'
auto\t'zstd inline; background recompression upgrades cold blocks to t5 later'
raw\t'Stored as written'"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l zstd-level -d 'zstd compression level [default: 3]' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l model -d 'The t5 model directory [default: the default model, built into s2sfs or installed in /usr/share/s2sfs/models/default]' -r -F
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l latent -d 'The t5 latent of each segment: the encoder\'s, or none (every latent empty, to see what the learned one saves; such frames decode like any other)' -r -f -a "learned\t''
none\t''"
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l block-kib -d 'Block size in KiB (a volume\'s default is 128)' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l batch -d 'Blocks decoded together' -r
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -l json -d 'Print the report as JSON on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from batch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "compress" -d 'Cut IN into blocks and write their frames, as a volume stores them, to OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "decompress" -d 'Decode a file written by `codec compress` (every frame checked) into OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "eval" -d 'Per file: bytes, stored bytes, bits/byte, ratio, the same for zstd -19 per block, and compress/decompress speed of one core; every frame is decoded and compared'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "latents" -d 'Per file: the latent the t5 encoder gives each segment (how long, which codes)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "batch" -d 'Decode the t5 frames of FILES in batches on the batched network (the first GPU when built with --features cuda, else the CPU); prints the device and throughput'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand codec; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand completions" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand completions" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand manpages" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand manpages" -s h -l help -d 'Print help'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "mount" -d 'Mount a volume; runs in the background once the mount is live, unless --foreground'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "umount" -d 'Unmount a volume and wait until its daemon has committed everything and closed the store'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "fsck" -d 'Check an unmounted store: every frame decoded, block index, refcounts, directory tree, link counts'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "stats" -d 'Statistics of a volume: logical, unique and stored bytes, holes, dedup, ratios, per codec and per model, recompression, block cache'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "models" -d 'The learned models of a volume: those its store keeps and those its frames name, with their frames, bytes and status (ok, damaged, missing)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "recompress" -d 'Re-code the stored blocks of a mounted volume: to t5 (smaller), or back to zstd (faster reads)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "train" -d 'Train the t5 coder\'s model on a corpus directory and export it (CODER.md)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "quantization" -d 'Compare a trained model\'s float checkpoint with its integer model on files'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "codec" -d 'Run a codec on whole files, outside any volume: compress, decompress, eval'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish on stdout'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "manpages" -d 'Write the man pages (s2sfs.1 and one per subcommand) into DIR (for packaging)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and not __fish_seen_subcommand_from mount umount fsck stats models recompress train quantization codec completions manpages help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and __fish_seen_subcommand_from codec" -f -a "compress" -d 'Cut IN into blocks and write their frames, as a volume stores them, to OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and __fish_seen_subcommand_from codec" -f -a "decompress" -d 'Decode a file written by `codec compress` (every frame checked) into OUT'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and __fish_seen_subcommand_from codec" -f -a "eval" -d 'Per file: bytes, stored bytes, bits/byte, ratio, the same for zstd -19 per block, and compress/decompress speed of one core; every frame is decoded and compared'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and __fish_seen_subcommand_from codec" -f -a "latents" -d 'Per file: the latent the t5 encoder gives each segment (how long, which codes)'
complete -c s2sfs -n "__fish_s2sfs_using_subcommand help; and __fish_seen_subcommand_from codec" -f -a "batch" -d 'Decode the t5 frames of FILES in batches on the batched network (the first GPU when built with --features cuda, else the CPU); prints the device and throughput'
