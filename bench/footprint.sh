#!/usr/bin/env bash
# bench/footprint.sh — physical footprint of an s2sfs store.
#
#   bench/footprint.sh [--json] [CORPUS_DIR]
#
# (a) Copies CORPUS_DIR (default: ../shared/corpus/bench relative to the repo) into a fresh
#     volume with default options, unmounts, and measures `du -sb` of the whole store.
#     Reference: every file cut into 128 KiB blocks, each block compressed alone by the
#     `zstd -3` CLI, sum of the compressed sizes. Target: store / reference <= 1.10.
#     For context: the same per-block sums for zstd -19, xz -9, brotli -11, and the
#     whole-file ratios (original bytes / compressed bytes) of the four codecs.
# (b) Churn: remounts, overwrites every file twice with other corpus files (pass 1: file i
#     gets file (i+1) mod n, pass 2: file (i+2) mod n), deletes every other file, unmounts
#     (compaction runs at unmount), measures `du -sb` of the store. Reference: per-block
#     zstd -3 of the remaining files' final contents. Target: store / reference <= 1.25.
#     Then remounts and checks with cmp that the remaining files read back exactly and the
#     deleted ones are gone.
#
# Environment: BENCH_DIR (work dir, default /var/tmp/s2sfs-bench; not tmpfs),
#              S2SFS (binary, default REPO/target/release/s2sfs),
#              S2SFS_OPTS (extra options for `s2sfs mount`, e.g. "--codec raw"; default none).
# Results table on stdout (or one JSON object with --json); progress on stderr.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
S2SFS_OPTS=${S2SFS_OPTS:-}
BLOCK=131072
JSON=0
CORPUS=""
for arg in "$@"; do
    case $arg in
        --json) JSON=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) CORPUS=$arg ;;
    esac
done
CORPUS=${CORPUS:-$CORPUS_DEFAULT}
CORPUS=$(cd "$CORPUS" && pwd)

LOAD_START=$(load3)
OTHERS_START=$(others)

need zstd zstd
need xz xz-utils
need brotli brotli
need split coreutils
need cmp diffutils
need awk gawk
need flock util-linux
need fusermount3 fuse3
need xargs findutils
need_s2sfs
[ -e /dev/fuse ] || die "/dev/fuse missing (modprobe fuse; apt-get install -y fuse3)"

fstype=$(stat -f -c %T "$(dirname "$BENCH_DIR")" 2>/dev/null || echo unknown)
work_dir
lock_work_dir
MNT=$W/mnt
STORE=$W/store
REF=$W/ref

MOUNTED=0
cleanup() {
    if [ "$MOUNTED" = 1 ] || mountpoint -q "$MNT" 2>/dev/null; then
        s2_unmount_quietly "$MNT"
    fi
    rm -rf "$REF"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_vol() { "$S2SFS" mount "$MNT" --store "$STORE" $S2SFS_OPTS "$@" 9>&-; MOUNTED=1; }
umount_vol() { "$S2SFS" umount "$MNT"; MOUNTED=0; }

if mountpoint -q "$MNT" 2>/dev/null; then "$S2SFS" umount "$MNT" || fusermount3 -uz "$MNT"; fi
rm -rf "$W"
mkdir -p "$MNT" "$STORE" "$REF"

# The corpus files, sorted, regular files only (n of them).
mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort)
N=${#FILES[@]}
[ "$N" -ge 2 ] || die "corpus $CORPUS has fewer than 2 files"
ORIG_BYTES=$(cd "$CORPUS" && cat -- "${FILES[@]}" | wc -c)
log "corpus $CORPUS: $N files, $ORIG_BYTES bytes"

# --- reference computations -------------------------------------------------------------

# cut_blocks OUTDIR FILE... : every file cut into 128 KiB blocks (one file per block).
cut_blocks() {
    local out=$1; shift
    rm -rf "$out"; mkdir -p "$out"
    local i=0 f
    for f in "$@"; do
        # an empty file has no block
        [ -s "$f" ] && split -b $BLOCK -a 5 -d -- "$f" "$out/$(printf %03d $i)."
        i=$((i + 1))
    done
}

# csum CMD DIR : sum over the files in DIR of the size of `CMD < file` (on all cores).
csum() {
    find "$2" -type f -print0 | csum_stdin "$1"
}
# csum_files CMD FILE... : the same over a list of files.
csum_files() {
    local cmd=$1; shift
    printf '%s\0' "$@" | csum_stdin "$cmd"
}
csum_stdin() {
    xargs -0 -r -n 1 -P "$(nproc)" sh -c "$1"' < "$0" | wc -c' |
        awk '{s += $1} END {printf "%d\n", s}'
}

declare -A CODEC=(
    [zstd-3]="zstd -3 -c -q"
    [zstd-19]="zstd -19 -c -q"
    [xz-9]="xz -9 -c -q"
    [brotli-11]="brotli -q 11 -c"
)
CODECS=(zstd-3 zstd-19 xz-9 brotli-11)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }

# --- (a) fresh copy -----------------------------------------------------------------------
log "(a) copying the corpus into a fresh volume"
mount_vol
mkdir "$MNT/bench"
cp -r -- "$CORPUS/." "$MNT/bench/"
chmod -R u+w "$MNT/bench"
umount_vol
STORE_A=$(du -sb "$STORE" | cut -f1)
PACKS_A=$(du -sb "$STORE/packs" 2>/dev/null | cut -f1 || echo 0)
META_A=$(du -sb "$STORE/meta.redb" 2>/dev/null | cut -f1 || echo 0)
log "(a) store after unmount: $STORE_A bytes"

log "(a) reference: per-block and whole-file compression"
SRC_PATHS=()
for f in "${FILES[@]}"; do SRC_PATHS+=("$CORPUS/$f"); done
cut_blocks "$REF/a" "${SRC_PATHS[@]}"
NBLOCKS_A=$(find "$REF/a" -type f | wc -l)
declare -A BLK WHOLE
for c in "${CODECS[@]}"; do
    BLK[$c]=$(csum "${CODEC[$c]}" "$REF/a")
    WHOLE[$c]=$(csum_files "${CODEC[$c]}" "${SRC_PATHS[@]}")
    log "  $c: per-block ${BLK[$c]}, whole-file ${WHOLE[$c]}"
done
REF_A=${BLK[zstd-3]}
RATIO_A=$(ratio "$STORE_A" "$REF_A")
OK_A=$(awk -v r="$RATIO_A" 'BEGIN { print (r <= 1.10) ? "yes" : "NO" }')

# --- (b) churn ------------------------------------------------------------------------------
log "(b) churn: two overwrite passes, then delete every other file"
mount_vol
# a sanity check of (a) on the way: the copy reads back exactly
for f in "${FILES[@]}"; do
    cmp -s -- "$CORPUS/$f" "$MNT/bench/$f" || die "(a) $f does not read back exactly"
done
for pass in 1 2; do
    for ((i = 0; i < N; i++)); do
        j=$(((i + pass) % N))
        cat -- "$CORPUS/${FILES[$j]}" > "$MNT/bench/${FILES[$i]}"
    done
done
KEPT=()        # names of the remaining files
KEPT_SRC=()    # their final contents (paths in the corpus)
for ((i = 0; i < N; i++)); do
    if ((i % 2 == 1)); then
        rm -- "$MNT/bench/${FILES[$i]}"
    else
        KEPT+=("${FILES[$i]}")
        KEPT_SRC+=("$CORPUS/${FILES[$(((i + 2) % N))]}")
    fi
done
umount_vol
STORE_B=$(du -sb "$STORE" | cut -f1)
PACKS_B=$(du -sb "$STORE/packs" 2>/dev/null | cut -f1 || echo 0)
META_B=$(du -sb "$STORE/meta.redb" 2>/dev/null | cut -f1 || echo 0)
log "(b) store after unmount: $STORE_B bytes (packs $PACKS_B, meta $META_B)"
LIVE_B=$(cat -- "${KEPT_SRC[@]}" | wc -c)
cut_blocks "$REF/b" "${KEPT_SRC[@]}"
REF_B=$(csum "${CODEC[zstd-3]}" "$REF/b")
RATIO_B=$(ratio "$STORE_B" "$REF_B")
OK_B=$(awk -v r="$RATIO_B" 'BEGIN { print (r <= 1.25) ? "yes" : "NO" }')

log "(b) remount and verify the remaining files"
mount_vol
VERIFY=ok
for ((k = 0; k < ${#KEPT[@]}; k++)); do
    if ! cmp -s -- "${KEPT_SRC[$k]}" "$MNT/bench/${KEPT[$k]}"; then
        VERIFY=FAILED; log "MISMATCH: ${KEPT[$k]} (should equal ${KEPT_SRC[$k]})"
    fi
done
NOW=$(find "$MNT/bench" -type f | wc -l)
if [ "$NOW" -ne "${#KEPT[@]}" ]; then VERIFY=FAILED; log "expected ${#KEPT[@]} files, found $NOW"; fi
umount_vol
# the same figures in store terms, once more after a clean mount/umount cycle
STORE_B2=$(du -sb "$STORE" | cut -f1)

# --- report -----------------------------------------------------------------------------------
if [ "$JSON" = 1 ]; then
    printf '{"corpus":"%s","files":%d,"original_bytes":%d,"blocks":%d,' "$CORPUS" "$N" "$ORIG_BYTES" "$NBLOCKS_A"
    printf '"fresh":{"store_bytes":%d,"packs_bytes":%d,"meta_bytes":%d,"ref_zstd3_per_block":%d,"ratio":%s,"target":1.10,"met":%s},' \
        "$STORE_A" "$PACKS_A" "$META_A" "$REF_A" "$RATIO_A" "$([ "$OK_A" = yes ] && echo true || echo false)"
    printf '"per_block":{'
    sep=""
    for c in "${CODECS[@]}"; do printf '%s"%s":{"bytes":%d,"ratio":%s}' "$sep" "$c" "${BLK[$c]}" "$(ratio "$ORIG_BYTES" "${BLK[$c]}")"; sep=","; done
    printf '},"whole_file":{'
    sep=""
    for c in "${CODECS[@]}"; do printf '%s"%s":{"bytes":%d,"ratio":%s}' "$sep" "$c" "${WHOLE[$c]}" "$(ratio "$ORIG_BYTES" "${WHOLE[$c]}")"; sep=","; done
    printf '},"churn":{"remaining_files":%d,"live_bytes":%d,"store_bytes":%d,"packs_bytes":%d,"meta_bytes":%d,"ref_zstd3_per_block":%d,"ratio":%s,"target":1.25,"met":%s,"verify":"%s","store_bytes_after_remount":%d}}\n' \
        "${#KEPT[@]}" "$LIVE_B" "$STORE_B" "$PACKS_B" "$META_B" "$REF_B" "$RATIO_B" \
        "$([ "$OK_B" = yes ] && echo true || echo false)" "$VERIFY" "$STORE_B2"
    exit 0
fi

echo "s2sfs footprint — corpus $CORPUS ($N files, $ORIG_BYTES bytes, $NBLOCKS_A blocks of 128 KiB)"
echo
echo "(a) fresh copy, default options"
printf '  %-34s %12s  (packs %s, meta %s)\n' "store (du -sb, after umount)" "$STORE_A" "$PACKS_A" "$META_A"
printf '  %-34s %12s\n' "reference: per-block zstd -3" "$REF_A"
printf '  %-34s %12s   target <= 1.10: %s\n' "ratio store / reference" "$RATIO_A" "$OK_A"
echo
echo "  context: the corpus compressed with CLI tools (ratio = original / compressed)"
printf '  %-10s %14s %9s %14s %9s\n' codec "per-block B" ratio "whole-file B" ratio
for c in "${CODECS[@]}"; do
    printf '  %-10s %14d %9s %14d %9s\n' "$c" "${BLK[$c]}" "$(ratio "$ORIG_BYTES" "${BLK[$c]}")" \
        "${WHOLE[$c]}" "$(ratio "$ORIG_BYTES" "${WHOLE[$c]}")"
done
printf '  %-10s %14d %9s\n' "s2sfs" "$STORE_A" "$(ratio "$ORIG_BYTES" "$STORE_A")"
echo
echo "(b) churn: 2 overwrite passes, every other file deleted, compaction at umount"
printf '  %-34s %12s\n' "remaining files / live bytes" "${#KEPT[@]} / $LIVE_B"
printf '  %-34s %12s  (packs %s, meta %s)\n' "store (du -sb, after umount)" "$STORE_B" "$PACKS_B" "$META_B"
printf '  %-34s %12s\n' "reference: per-block zstd -3" "$REF_B"
printf '  %-34s %12s   target <= 1.25: %s\n' "ratio store / reference" "$RATIO_B" "$OK_B"
printf '  %-34s %12s\n' "read back after remount (cmp)" "$VERIFY"
printf '  %-34s %12s\n' "store after verify mount/umount" "$STORE_B2"
echo
echo "load average at start: $LOAD_START (compilers running: $OTHERS_START); at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$VERIFY" = ok ]
