#!/usr/bin/env bash
# bench/rss.sh — peak memory of the s2sfs daemon.
#
#   bench/rss.sh [--json] [--cache-mb N] [CORPUS_DIR]
#
# Mounts a fresh volume with default options (or --cache-mb N), copies 2 GiB of mixed data
# into it (cp of two different 1 GiB files, each 64 MiB chunks alternating between the bench
# corpus repeated and random bytes), reads it all back (cmp against the sources, after a
# drop_caches), then reads the daemon's VmHWM from /proc/PID/status. VmRSS is also sampled
# every 0.2 s to show when the peak happens.
# Target: VmHWM < cache size + 128 MiB (cache default 64 MiB: src/volume/types.rs).
#
# Environment: BENCH_DIR (work dir, default /var/tmp/s2sfs-bench; not tmpfs),
#              S2SFS (binary, default REPO/target/release/s2sfs),
#              S2SFS_OPTS (extra options for `s2sfs mount`, e.g. "--codec raw"; default none).
# Table on stdout (JSON with --json); progress on stderr.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
S2SFS_OPTS=${S2SFS_OPTS:-}
JSON=0
CACHE_MB=""
CORPUS=""
while [ $# -gt 0 ]; do
    case $1 in
        --json) JSON=1 ;;
        --cache-mb) CACHE_MB=$2; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) CORPUS=$1 ;;
    esac
    shift
done
CORPUS=${CORPUS:-$CORPUS_DEFAULT}
CORPUS=$(cd "$CORPUS" && pwd)

LOAD_START=$(load3)
OTHERS_START=$(others)
need fusermount3 fuse3
need cmp diffutils
need pgrep procps
need awk gawk
need flock util-linux
need_s2sfs

work_dir
lock_work_dir
DATA=$BENCH_DIR/data
MNT=$W/mnt
STORE=$W/store
GIB=$((1 << 30))

# The default cache size, as the binary reports it (fall back on the source, then 64).
if [ -z "$CACHE_MB" ]; then
    CACHE_MB=$("$S2SFS" mount --help 2>/dev/null | grep -A3 -- '--cache-mb' | grep -o 'default: [0-9]*' | grep -o '[0-9]*' | head -1 || true)
    CACHE_MB=${CACHE_MB:-64}
    CACHE_OPT=()
else
    CACHE_OPT=(--cache-mb "$CACHE_MB")
fi
TARGET_MB=$((CACHE_MB + 128))

UP=0
SAMPLER=""
cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
    if [ "$UP" = 1 ] || mountpoint -q "$MNT" 2>/dev/null; then
        s2_unmount_quietly "$MNT"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_mixed OUT CORPUS_OFFSET_MIB : 1 GiB, 64 MiB chunks alternating corpus stream / random.
# shellcheck source=bench/mixed.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/mixed.sh"
mkdir -p "$DATA"
SRCS=("$DATA/mixed-1g-a.bin" "$DATA/mixed-1g-b.bin")
[ -f "${SRCS[0]}" ] && [ "$(stat -c %s "${SRCS[0]}")" = $GIB ] || make_mixed "${SRCS[0]}" 0
[ -f "${SRCS[1]}" ] && [ "$(stat -c %s "${SRCS[1]}")" = $GIB ] || make_mixed "${SRCS[1]}" 512

if mountpoint -q "$MNT" 2>/dev/null; then "$S2SFS" umount "$MNT" || fusermount3 -uz "$MNT"; fi
rm -rf "$W"
mkdir -p "$MNT" "$STORE"
"$S2SFS" mount "$MNT" --store "$STORE" "${CACHE_OPT[@]}" $S2SFS_OPTS 9>&-
UP=1

# The daemon: the s2sfs process serving MNT (the mount command itself has returned).
PID=$(pgrep -f "s2sfs[^ ]* mount .*$MNT" | head -1 || true)
if [ -z "$PID" ] && command -v fuser >/dev/null; then PID=$( (fuser -m "$MNT" 2>/dev/null || true) | awk '{print $1}'); fi
[ -n "$PID" ] && [ -r "/proc/$PID/status" ] || die "cannot find the daemon of $MNT"
log "daemon pid $PID, cache ${CACHE_MB} MiB"
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
HWM_START=$(kib VmHWM)

# Sample VmRSS (KiB) every 0.2 s, with the phase name.
PHASE_FILE=$W/phase
SAMPLES=$W/rss-samples
echo mount > "$PHASE_FILE"
(
    while [ -r "/proc/$PID/status" ]; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null) || break
        echo "$(cat "$PHASE_FILE" 2>/dev/null) ${r:-0}"
        sleep 0.2
    done
) > "$SAMPLES" &
SAMPLER=$!

phase_hwm() { # peak of the samples of one phase, MiB
    awk -v p="$1" '$1 == p && $2 > m {m = $2} END {printf "%.1f", m / 1024}' "$SAMPLES"
}

echo write > "$PHASE_FILE"
log "copying 2 GiB into the volume"
t0=$(date +%s.%N)
cp "${SRCS[0]}" "$MNT/a.bin"
cp "${SRCS[1]}" "$MNT/b.bin"
sync -f "$MNT/b.bin" 2>/dev/null || sync
t1=$(date +%s.%N)
HWM_WRITE=$(kib VmHWM)
echo read > "$PHASE_FILE"
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || log "(cannot drop caches: not root)"
log "reading it back (cmp)"
VERIFY=ok
cmp -s "${SRCS[0]}" "$MNT/a.bin" || VERIFY=FAILED
cmp -s "${SRCS[1]}" "$MNT/b.bin" || VERIFY=FAILED
t2=$(date +%s.%N)
HWM=$(kib VmHWM)
RSS_END=$(kib VmRSS)
THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
echo done > "$PHASE_FILE"
sleep 0.3
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""
"$S2SFS" umount "$MNT"
UP=0
STORE_BYTES=$(du -sb "$STORE" | cut -f1)

HWM_MB=$(mib "$HWM")
OK=$(awk -v h="$HWM_MB" -v t="$TARGET_MB" 'BEGIN {print (h < t) ? "yes" : "NO"}')
WRITE_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
READ_S=$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f", b - a}')

if [ "$JSON" = 1 ]; then
    printf '{"cache_mb":%d,"target_mb":%d,"vmhwm_mb":%s,"met":%s,"vmhwm_after_mount_mb":%s,"vmhwm_after_write_mb":%s,"peak_rss_write_mb":%s,"peak_rss_read_mb":%s,"vmrss_end_mb":%s,"threads":%s,"write_s":%s,"read_s":%s,"store_bytes":%d,"verify":"%s"}\n' \
        "$CACHE_MB" "$TARGET_MB" "$HWM_MB" "$([ "$OK" = yes ] && echo true || echo false)" \
        "$(mib "$HWM_START")" "$(mib "$HWM_WRITE")" "$(phase_hwm write)" "$(phase_hwm read)" \
        "$(mib "$RSS_END")" "$THREADS" "$WRITE_S" "$READ_S" "$STORE_BYTES" "$VERIFY"
    [ "$VERIFY" = ok ]
    exit 0
fi

echo "s2sfs daemon memory — 2 GiB mixed data written (cp) and read back (cmp), cache ${CACHE_MB} MiB"
echo
printf '  %-40s %10s\n' "VmHWM after mount (MiB)" "$(mib "$HWM_START")"
printf '  %-40s %10s\n' "VmHWM after the 2 GiB write (MiB)" "$(mib "$HWM_WRITE")"
printf '  %-40s %10s\n' "peak sampled VmRSS, write phase (MiB)" "$(phase_hwm write)"
printf '  %-40s %10s\n' "peak sampled VmRSS, read phase (MiB)" "$(phase_hwm read)"
printf '  %-40s %10s\n' "VmHWM at the end (MiB)" "$HWM_MB"
printf '  %-40s %10s\n' "VmRSS at the end (MiB)" "$(mib "$RSS_END")"
printf '  %-40s %10s\n' "threads" "$THREADS"
printf '  %-40s %10s\n' "cache (MiB)" "$CACHE_MB"
printf '  %-40s %10s   met: %s\n' "target: VmHWM < cache + 128 MiB" "< $TARGET_MB" "$OK"
printf '  %-40s %10s\n' "write 2 GiB / read 2 GiB (s)" "$WRITE_S / $READ_S"
printf '  %-40s %10s\n' "store after umount (bytes)" "$STORE_BYTES"
printf '  %-40s %10s\n' "read back (cmp)" "$VERIFY"
echo
echo "load average at start: $LOAD_START (compilers running: $OTHERS_START); at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$VERIFY" = ok ]
