#!/usr/bin/env bash
# bench/reliability.sh — the stress workload and fio verify, s2sfs vs bindfs, side by side.
#
#   bench/reliability.sh [--json] [--runs N] [--secs S] [--fio-mb M] [--skip-fio]
#
# (1) Concurrency workload: the `bench_workload` test of tests/stress.rs (the same code as
#     the `concurrent_ops_match_model` test), 8 threads, S seconds (default 26: 70% model
#     phase — pwrite/pread/truncate/rename/fsync/... on 8 names, per-file test locks — and
#     30% stripe phase — 8 threads on disjoint unaligned stripes of one file, no locks),
#     every read checked against the model; renames use plain rename(2) only (bindfs
#     refuses RENAME_NOREPLACE/RENAME_EXCHANGE), the test proper uses those too. Run N times (default 3), interleaved
#     bindfs/s2sfs, on a fresh s2sfs store / an empty bindfs backing directory each time.
#     Reported: median ops/second per op type (ops of that type / wall time of the phase).
#     After each s2sfs run: umount, `s2sfs fsck` (must be clean).
# (2) fio verify, once per filesystem:
#       fio --name=verify --rw=randrw --bs=4k-256k --size=${M}M --numjobs=4 --verify=crc32c
#           --verify_fatal=1 --do_verify=1 --end_fsync=1 --time_based=0 --ioengine=psync --randrepeat=1
#       fio --name=seqverify --rw=write --bs=1M --size=${M}M --numjobs=2 --verify=crc32c
#           --verify_fatal=1 --do_verify=1 --end_fsync=1 --time_based=0 --ioengine=psync
#     then unmount (s2sfs: + fsck), mount again and run both with --verify_only.
#     Reported: bytes verified (write phase: bytes written, each re-read by fio's verify
#     pass; verify_only: bytes read back), verify errors, seconds. M defaults to 128.
# Filesystems: s2sfs (default options, store in the work dir); bindfs mirroring a directory
# in the work dir (same disk).
#
# Environment: BENCH_DIR (work dir, default /var/tmp/s2sfs-bench; not tmpfs),
#              S2SFS (binary, default REPO/target/release/s2sfs; built when it is the default),
#              STRESS_BIN (the tests/stress.rs test binary; default: built with
#              `cargo test --release --test stress --no-run`).
# Must run as root (mounts). Table on stdout (JSON with --json); progress on stderr.
# Exit status: non-zero when a run fails its model check, fsck or fio verify.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

JSON=0
RUNS=3
SECS=26
FIO_MB=128
DO_FIO=1
while [ $# -gt 0 ]; do
    case $1 in
        --json) JSON=1 ;;
        --runs) RUNS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --fio-mb) FIO_MB=$2; shift ;;
        --skip-fio) DO_FIO=0 ;;
        -h|--help) usage ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

need bindfs bindfs
need fio fio
need jq jq
need fusermount3 fuse3
need awk gawk
[ "$(id -u)" = 0 ] || die "run as root (mounts)"
[ -e /dev/fuse ] || die "/dev/fuse missing"

build_s2sfs_unless_set
[ -x "$S2SFS" ] || die "no s2sfs binary at $S2SFS"
build_stress_bin_unless_set
[ -x "$STRESS_BIN" ] || die "no stress test binary (STRESS_BIN=$STRESS_BIN)"

work_dir
S_MNT=$W/s2sfs-mnt
S_STORE=$W/s2sfs-store
B_BACK=$W/bindfs-backing
B_MNT=$W/bindfs-mnt
OUT=$W/out

S_UP=0
B_UP=0
cleanup() {
    if [ "$S_UP" = 1 ] || mountpoint -q "$S_MNT" 2>/dev/null; then
        s2_unmount_quietly "$S_MNT"
    fi
    if [ "$B_UP" = 1 ] || mountpoint -q "$B_MNT" 2>/dev/null; then
        fusermount3 -u "$B_MNT" 2>/dev/null || fusermount3 -uz "$B_MNT" 2>/dev/null || umount -l "$B_MNT" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

s_mount() { "$S2SFS" mount "$S_MNT" --store "$S_STORE"; S_UP=1; }
s_umount() { "$S2SFS" umount "$S_MNT"; S_UP=0; }
b_mount() { bindfs "$B_BACK" "$B_MNT"; B_UP=1; }
b_umount() { fusermount3 -u "$B_MNT"; B_UP=0; }
fresh() { # fresh FS: an empty volume mounted
    case $1 in
        s2sfs) if [ "$S_UP" = 1 ]; then s_umount; fi; rm -rf "$S_STORE"; mkdir -p "$S_STORE"; s_mount ;;
        bindfs) if [ "$B_UP" = 1 ]; then b_umount; fi; rm -rf "$B_BACK"; mkdir -p "$B_BACK"; b_mount ;;
    esac
}
unmount_fs() { case $1 in s2sfs) s_umount ;; bindfs) b_umount ;; esac; }
mount_fs() { case $1 in s2sfs) s_mount ;; bindfs) b_mount ;; esac; }
dir_of() { case $1 in s2sfs) echo "$S_MNT" ;; bindfs) echo "$B_MNT" ;; esac; }
# FUSE daemons and fio runs that are not ours (other engineers' tests and benches)
foreign() {
    local n=0 p
    for p in $(pgrep -f 's2sfs mount|^bindfs |^fio ' 2>/dev/null || true); do
        grep -qa -- "$W/" "/proc/$p/cmdline" 2>/dev/null || n=$((n + 1))
    done
    echo $n
}
FAILED=""
fail() { FAILED="$FAILED $*"; log "FAILURE: $*"; }
fsck_store() { # fsck_store WHEN
    if ! "$S2SFS" fsck --store "$S_STORE" > "$OUT/fsck.txt" 2>&1; then
        fail "fsck($1)"; cat "$OUT/fsck.txt" >&2
    fi
}

for m in "$S_MNT" "$B_MNT"; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -uz "$m" || true; fi
done
rm -rf "$W"
mkdir -p "$S_MNT" "$S_STORE" "$B_BACK" "$B_MNT" "$OUT"
FSES=(bindfs s2sfs)
LOAD_START=$(load3)
BUSY_START=$(busy)
FOREIGN_START=$(foreign)
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $LOAD_START, CPU ${BUSY_START}% busy before the run, compilers running: $(others), other FUSE daemons/fio: $FOREIGN_START"

# --- (1) the concurrency workload -------------------------------------------------------------
declare -A LOADS
for ((r = 1; r <= RUNS; r++)); do
    for fs in "${FSES[@]}"; do
        fresh $fs
        d=$(dir_of $fs)/stress
        mkdir "$d"
        l0=$(load3)
        c0=$(others); f0=$(foreign)
        log "workload run $r on $fs (${SECS}s; load $l0, compilers $c0, other FUSE daemons/fio $f0)"
        # bindfs refuses renameat2 flags (EINVAL): both run the same mix with plain rename(2)
        if ! S2SFS_STRESS_DIR=$d S2SFS_STRESS_LABEL=$fs S2SFS_STRESS_SECS=$SECS S2SFS_STRESS_PLAIN_RENAME=1 \
            "$STRESS_BIN" bench_workload --exact --ignored --nocapture --test-threads=1 > "$OUT/workload.$fs.$r.txt" 2>&1; then
            fail "workload($fs run $r)"
            grep -E 'MISMATCH|panicked|failed' "$OUT/workload.$fs.$r.txt" | head -20 >&2 || true
        fi
        l1=$(load3)
        LOADS[$fs]="${LOADS[$fs]:-}${LOADS[$fs]:+; }run $r: $l0 -> $l1 (compilers $c0, foreign daemons $f0)"
        grep '^STRESS-RESULT' "$OUT/workload.$fs.$r.txt" | sed "s/^STRESS-RESULT /run=$r /" >> "$OUT/results.txt" || true
        if [ $fs = s2sfs ]; then s_umount; fsck_store "after workload run $r"; s_mount; fi
    done
done

# median of ops_per_s for FS PHASE OP over the runs (mawk has no asort: sort does it)
med() {
    awk -v fs="$1" -v ph="$2" -v op="$3" '
        { delete f; for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
        f["label"] == fs && f["phase"] == ph && f["op"] == op { print f["ops_per_s"] }' "$OUT/results.txt" |
        sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f", a / b }'; }
ROWS=()
for ph in model stripes; do
    for op in $(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } } f["phase"] == "'$ph'" && f["op"] != "all" { print f["op"] }' "$OUT/results.txt" 2>/dev/null | sort -u) all; do
        ROWS+=("$ph $op $(med bindfs $ph $op) $(med s2sfs $ph $op)")
    done
done

# --- (2) fio verify --------------------------------------------------------------------------
RANDRW=(--name=verify --rw=randrw --bs=4k-256k --size=${FIO_MB}M --numjobs=4 --verify=crc32c
    --verify_fatal=1 --time_based=0 --ioengine=psync --randrepeat=1)
SEQ=(--name=seqverify --rw=write --bs=1M --size=${FIO_MB}M --numjobs=2 --verify=crc32c
    --verify_fatal=1 --time_based=0 --ioengine=psync)
FIO_ROWS=()
declare -A VER ERR
run_fio() { # run_fio FS WHAT VERIFY_ONLY ARGS... ; appends a row "FS WHAT bytes errors secs"
    local fs=$1 what=$2 vo=$3; shift 3
    local js=$OUT/fio.$fs.$what.json es=$OUT/fio.$fs.$what.err t0 t1 rc=0 bytes errs secs
    t0=$(date +%s.%N)
    (cd "$OUT" && fio "$@" --directory="$(dir_of $fs)" --output-format=json --output="$js") 2> "$es" || rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    if [ "$vo" = 1 ]; then
        bytes=$(sed -n '/^{/,$p' "$js" | jq '[.jobs[].read.io_bytes] | add' 2>/dev/null || echo 0)
    else
        bytes=$(sed -n '/^{/,$p' "$js" | jq '[.jobs[].write.io_bytes] | add' 2>/dev/null || echo 0)
    fi
    errs=$(( $(grep -c 'verify failed' "$es" || true) + $(sed -n '/^{/,$p' "$js" | jq '[.jobs[] | select(.error != 0)] | length' 2>/dev/null || echo 1) ))
    [ "$rc" = 0 ] || { [ "$errs" -gt 0 ] || errs=1; }
    if [ "$errs" != 0 ]; then fail "fio($fs $what)"; head -20 "$es" >&2; fi
    FIO_ROWS+=("$fs $what $bytes $errs $secs")
    VER[$fs]=$(( ${VER[$fs]:-0} + bytes ))
    ERR[$fs]=$(( ${ERR[$fs]:-0} + errs ))
    log "fio $what on $fs: $bytes bytes verified, $errs errors, ${secs}s"
}
if [ "$DO_FIO" = 1 ]; then
    for fs in "${FSES[@]}"; do
        fresh $fs
        run_fio $fs randrw-write+verify 0 "${RANDRW[@]}" --do_verify=1 --end_fsync=1
        run_fio $fs seq1M-write+verify 0 "${SEQ[@]}" --do_verify=1 --end_fsync=1
        unmount_fs $fs
        if [ $fs = s2sfs ]; then fsck_store "after fio"; fi
        mount_fs $fs
        run_fio $fs randrw-verify_only-after-remount 1 "${RANDRW[@]}" --verify_only
        run_fio $fs seq1M-verify_only-after-remount 1 "${SEQ[@]}" --verify_only
        unmount_fs $fs
        if [ $fs = s2sfs ]; then fsck_store "after fio verify_only"; fi
    done
fi
LOAD_END=$(load3)

# --- report ------------------------------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
if [ "$JSON" = 1 ]; then
    {
        printf '{"date":"%s","nproc":%d,"cpu":"%s","runs":%d,"secs":%s,"load_start":"%s","load_end":"%s","cpu_busy_before_pct":%s,"foreign_daemons_before":%s,' \
            "$(date -u +%FT%TZ)" "$(nproc)" "$CPU" "$RUNS" "$SECS" "$LOAD_START" "$LOAD_END" "$BUSY_START" "$FOREIGN_START"
        printf '"workload_ops_per_s":['
        sep=""
        for row in "${ROWS[@]}"; do
            read -r ph op b s <<<"$row"
            printf '%s{"phase":"%s","op":"%s","bindfs":%s,"s2sfs":%s}' "$sep" "$ph" "$op" "$b" "$s"; sep=","
        done
        printf '],"fio":['
        sep=""
        for row in "${FIO_ROWS[@]}"; do
            read -r fs what bytes errs secs <<<"$row"
            printf '%s{"fs":"%s","job":"%s","bytes_verified":%s,"errors":%s,"secs":%s}' "$sep" "$fs" "$what" "$bytes" "$errs" "$secs"; sep=","
        done
        printf '],"failed":"%s"}\n' "${FAILED# }"
    }
else
    echo "s2sfs vs bindfs: concurrency workload and fio verify — $(date -u +%FT%TZ)"
    echo "machine: $(nproc) cores, $CPU; load average at start $LOAD_START, at end $LOAD_END"
    echo "before the run: CPU ${BUSY_START}% busy over 2 s, $FOREIGN_START FUSE daemons / fio runs of others"
    echo
    echo "(1) concurrency workload, 8 threads, ${SECS}s per run (70% model phase, 30% stripe phase),"
    echo "    median over $RUNS run(s) of ops/second (ops of the type / wall time of the phase)"
    printf '  %-8s %-14s %12s %12s %13s\n' phase op bindfs s2sfs s2sfs/bindfs
    for row in "${ROWS[@]}"; do
        read -r ph op b s <<<"$row"
        printf '  %-8s %-14s %12s %12s %13s\n' "$ph" "$op" "$b" "$s" "$(ratio "$s" "$b")"
    done
    for fs in "${FSES[@]}"; do echo "  load average ($fs): ${LOADS[$fs]:-}"; done
    if [ "$DO_FIO" = 1 ]; then
        echo
        echo "(2) fio verify (crc32c), ${FIO_MB} MiB per file; verify_only runs after a remount"
        printf '  %-7s %-34s %16s %7s %7s\n' fs job "bytes verified" errors secs
        for row in "${FIO_ROWS[@]}"; do
            read -r fs what bytes errs secs <<<"$row"
            printf '  %-7s %-34s %16s %7s %7s\n' "$fs" "$what" "$bytes" "$errs" "$secs"
        done
        for fs in "${FSES[@]}"; do
            printf '  %-7s %-34s %16s %7s\n' "$fs" "TOTAL" "${VER[$fs]:-0}" "${ERR[$fs]:-0}"
        done
    fi
    echo
    echo "failures: ${FAILED:- none}"
fi
[ -z "$FAILED" ]
