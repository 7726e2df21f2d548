#!/usr/bin/env bash
# bench/throughput.sh — s2sfs vs bindfs vs the plain disk, side by side in one run.
#
#   bench/throughput.sh [--json] [--runs N] [--rw-seconds S] [--rw-mib M] [--tests LIST]
#                       [--disk-mbps N] [CORPUS_DIR]
#
# Data: a 1 GiB source file in the work dir, 16 chunks of 64 MiB alternating between the
# bench corpus repeated (one continuous stream, so no two 128 KiB blocks are equal: dedup
# does not help) and random bytes; read into the page cache before every write test.
# Filesystems: s2sfs (default options, store in the work dir); bindfs (default options)
# mirroring a directory in the work dir (same disk); "plain" = that directory without FUSE
# (reference row).
# Tests (LIST: comma-separated, default all three; each run N times, default 5, interleaved
# plain / bindfs / s2sfs):
#   seqwrite   dd if=SRC of=MNT/f bs=1M conv=fsync          (fresh s2sfs store per run)
#   seqread    unmount + remount both FUSE filesystems, sync, drop_caches, then
#              dd if=MNT/f of=/dev/null bs=1M               (cold caches)
#              One more reference row here, "raw": s2sfs with --codec raw (its own
#              store), the same FUSE and store path without decompression, so that the
#              table shows what decoding costs.
#   randwrite  fio --rw=randwrite --bs=4k --end_fsync=1, time-based (S s, default 20) over an
#              existing M MiB file (default 256, written from SRC before each run; fresh
#              s2sfs store per run). IOPS and MB/s are counted over the wall time of the
#              fio run including its final fsync; fio's own figure is shown too.
# Targets (s2sfs / bindfs, medians): seqwrite >= 2.0, seqread >= 1.0, randwrite >= 0.7.
# --disk-mbps N: seqread only (implies --tests seqread), with the disk's reads limited to
# N MB/s for every row (a blkio cgroup around the readers and the FUSE daemons), to see how
# the filesystems compare on a disk slower than this machine's host-cached one.
# MB = 10^6 bytes.
#
# The machine is shared: for every measurement the script records the CPU time used by
# processes that are not part of the benchmark ("foreign" CPU: other users' compilers and
# tests). A run where foreign CPU exceeded 10% of one core over the measurement is marked
# '*' and left out of the median when at least 3 clean runs remain.
#
# Environment: BENCH_DIR (work dir, default /var/tmp/s2sfs-bench; not tmpfs),
#              S2SFS (binary, default REPO/target/release/s2sfs),
#              S2SFS_OPTS (extra options for `s2sfs mount`, e.g. "--codec raw"; default none).
# Must run as root (drop_caches). Table on stdout (JSON with --json); progress on stderr.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
S2SFS_OPTS=${S2SFS_OPTS:-}
JSON=0
RUNS=5
DISK_MBPS=""
RW_SECONDS=20
RW_MIB=256
TESTS="seqwrite,seqread,randwrite"
CORPUS=""
while [ $# -gt 0 ]; do
    case $1 in
        --json) JSON=1 ;;
        --runs) RUNS=$2; shift ;;
        --rw-seconds) RW_SECONDS=$2; shift ;;
        --rw-mib) RW_MIB=$2; shift ;;
        --tests) TESTS=$2; shift ;;
        --disk-mbps) DISK_MBPS=$2; TESTS=seqread; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) CORPUS=$1 ;;
    esac
    shift
done
CORPUS=${CORPUS:-$CORPUS_DEFAULT}
[ -z "$DISK_MBPS" ] || [[ "$DISK_MBPS" =~ ^[1-9][0-9]*$ ]] || { echo "--disk-mbps wants a whole number of MB/s, got '$DISK_MBPS'" >&2; exit 2; }
CORPUS=$(cd "$CORPUS" && pwd)

need bindfs bindfs
need fio fio
need jq jq
need fusermount3 fuse3
need dd coreutils
need cmp diffutils
need awk gawk
need flock util-linux
need pgrep procps
[ "$(id -u)" = 0 ] || die "run as root (drop_caches, mounts)"
need_s2sfs
[ -e /dev/fuse ] || die "/dev/fuse missing"

work_dir
lock_work_dir
DATA=$BENCH_DIR/data
SRC=$DATA/mixed-1g-a.bin
S_MNT=$W/s2sfs-mnt
S_STORE=$W/s2sfs-store
R_MNT=$W/raw-mnt
R_STORE=$W/raw-store
B_BACK=$W/bindfs-backing
B_MNT=$W/bindfs-mnt
PLAIN=$W/plain
GIB=$((1 << 30))
TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

S_UP=0
B_UP=0
cleanup() {
    if [ "$S_UP" = 1 ] || mountpoint -q "$S_MNT" 2>/dev/null; then s2_unmount_quietly "$S_MNT"; fi
    if mountpoint -q "$R_MNT" 2>/dev/null; then s2_unmount_quietly "$R_MNT"; fi
    if [ "$B_UP" = 1 ] || mountpoint -q "$B_MNT" 2>/dev/null; then
        fusermount3 -u "$B_MNT" 2>/dev/null || umount -l "$B_MNT" 2>/dev/null || true
    fi
    throttle_end final
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- --disk-mbps: a cgroup that limits reads from the disk under $W ------------------------
CG=""
CG_ROOT=""
throttle_start() { # moves this script (and so every daemon and dd it starts) into the cgroup
    local src disk parent majmin bps=$((DISK_MBPS * 1000000))
    src=$(findmnt -n -o SOURCE --target "$W") || die "no mount found for $W"
    parent=$(lsblk -no PKNAME "$src" 2>/dev/null | head -1)
    disk=${parent:+/dev/$parent}; disk=${disk:-$src}
    majmin=$(lsblk -dno MAJ:MIN "$disk" | tr -d ' ') || die "cannot find the disk of $src"
    if [ -d /sys/fs/cgroup/blkio ]; then
        CG_ROOT=/sys/fs/cgroup/blkio; CG=$CG_ROOT/s2sfs-bench
        mkdir -p "$CG"
        echo "$majmin $bps" > "$CG/blkio.throttle.read_bps_device"
    elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        CG_ROOT=/sys/fs/cgroup; CG=$CG_ROOT/s2sfs-bench
        echo +io > "$CG_ROOT/cgroup.subtree_control"
        mkdir -p "$CG"
        echo "$majmin rbps=$bps" > "$CG/io.max"
    else
        die "--disk-mbps needs the blkio (cgroup v1) or io (cgroup v2) controller"
    fi
    echo $$ > "$CG/cgroup.procs"
    log "disk reads limited to $DISK_MBPS MB/s on $disk ($majmin) in $CG"
}
throttle_end() { # moves this script out; removes the cgroup once its daemons are gone
    [ -n "$CG" ] || return 0
    echo $$ > "$CG_ROOT/cgroup.procs" 2>/dev/null || true
    local i
    for i in 1 2 3 4 5; do
        [ -s "$CG/cgroup.procs" ] || { rmdir "$CG" 2>/dev/null && CG="" && return 0; }
        [ "${1:-}" = final ] || return 0
        sleep 0.2
    done
    log "cgroup $CG left behind (processes still in it: $(tr '\n' ' ' < "$CG/cgroup.procs"))"
}

s2_mount() { "$S2SFS" mount "$1" --store "$2" $S2SFS_OPTS "${@:3}" 9>&-; } # MNT STORE [OPTION...]
s_mount() { s2_mount "$S_MNT" "$S_STORE"; S_UP=1; }
s_umount() { "$S2SFS" umount "$S_MNT"; S_UP=0; }
r_mount() { s2_mount "$R_MNT" "$R_STORE" --codec raw; }
r_umount() { "$S2SFS" umount "$R_MNT"; }
s_fresh() { # a fresh, empty s2sfs volume
    if [ "$S_UP" = 1 ]; then s_umount; fi
    rm -rf "$S_STORE"; mkdir -p "$S_STORE"
    s_mount
}
b_mount() { bindfs "$B_BACK" "$B_MNT" 9>&-; B_UP=1; }
b_umount() { fusermount3 -u "$B_MNT"; B_UP=0; }
remount() { # remount FS (cold start of its daemon)
    case $1 in
        s2sfs) s_umount; s_mount ;;
        raw) r_umount; r_mount ;;
        bindfs) b_umount; b_mount ;;
        plain) : ;;
    esac
}
dir_of() { case $1 in s2sfs) echo "$S_MNT" ;; raw) echo "$R_MNT" ;; bindfs) echo "$B_MNT" ;; plain) echo "$PLAIN" ;; esac; }
daemon_pid() {
    case $1 in
        s2sfs|raw) pgrep -f "s2sfs[^ ]* mount $(dir_of "$1")" | head -1 || true ;;
        bindfs) pgrep -f "bindfs $B_BACK $B_MNT" | head -1 || true ;;
        *) echo "" ;;
    esac
}
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {print b - a}'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
cpu_ticks() { # user+system ticks of a process, all threads
    if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
        sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
    else echo 0; fi
}
MYPGID=$(ps -o pgid= -p $$ | tr -d ' ')
# "pid ticks" of every user-space process outside this benchmark: not in our process
# group, not one of the daemons under test, not a kernel thread.
foreign_snapshot() {
    local p
    for p in /proc/[0-9]*/stat; do cat "$p" 2>/dev/null || true; done |
        sed 's/^\([0-9]*\) (.*) /\1 /' |
        awk -v g="$MYPGID" -v x=" $* " '$3 != 2 && $1 != 2 && $4 != g && index(x, " " $1 " ") == 0 {print $1, $13 + $14}'
}
foreign_ticks() { # foreign_ticks BEFORE AFTER -> ticks used meanwhile by foreign processes
    awk 'NR == FNR {b[$1] = $2; next} {d = $2 - (($1 in b) ? b[$1] : 0); if (d > 0) s += d} END {print s + 0}' "$1" "$2"
}
cpu_s() { awk -v t="$1" -v k="$TCK" 'BEGIN {printf "%.2f", t / k}'; }

# --- the source file ------------------------------------------------------------------------
# make_mixed OUT CORPUS_OFFSET_MIB : 1 GiB, 64 MiB chunks alternating corpus stream / random.
# shellcheck source=bench/mixed.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/mixed.sh"
mkdir -p "$DATA"
[ -f "$SRC" ] && [ "$(stat -c %s "$SRC")" = $GIB ] || make_mixed "$SRC" 0

# --- setup ----------------------------------------------------------------------------------
for m in "$S_MNT" "$R_MNT" "$B_MNT"; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -uz "$m" || true; fi
done
rm -rf "$W"
mkdir -p "$S_MNT" "$S_STORE" "$R_MNT" "$R_STORE" "$B_BACK" "$B_MNT" "$PLAIN"
s_mount
b_mount
FSES=(plain bindfs s2sfs)
# seqread also reads through s2sfs --codec raw (mounted only for that test)
READ_FSES=(plain bindfs s2sfs raw)
LOAD_START=$(load3)
# How busy the machine is before we start (the load average of this VM never drops below ~1:
# a virtio-balloon kworker sits in D state).
IDLE_BUSY=$(busy)
log "machine before the run: CPU ${IDLE_BUSY}% busy, load $LOAD_START"

# Per test and filesystem, space-separated lists, one entry per run:
declare -A RES    # MB/s
declare -A FLAG   # "" or "*" (foreign CPU above the threshold)
declare -A DCPU   # daemon CPU seconds
declare -A FCPU   # foreign CPU seconds
declare -A LOADS  # load1 at the start
declare -A IOPS   # randwrite: IOPS over the wall time incl. fsync
declare -A FIOIOPS
push() { eval "$1[\$2]=\"\${$1[\$2]:-}\${$1[\$2]:+ }\$3\""; }
SNAP0=$W/.snap0
SNAP1=$W/.snap1

# measure TEST FS BYTES CMD... : runs CMD, records MB/s (BYTES over the wall time), daemon
# and foreign CPU. Leaves WALL set. BYTES "-" = computed later by the caller (randwrite).
measure() {
    local t=$1 fs=$2 bytes=$3; shift 3
    local p c0 c1 t0 t1 l f fsec
    p=$(daemon_pid "$fs")
    l=$(load1)
    foreign_snapshot "$p" > "$SNAP0"
    c0=$(cpu_ticks "$p")
    t0=$(now)
    "$@"
    t1=$(now)
    c1=$(cpu_ticks "$p")
    foreign_snapshot "$p" > "$SNAP1"
    WALL=$(elapsed "$t0" "$t1")
    f=$(foreign_ticks "$SNAP0" "$SNAP1")
    fsec=$(cpu_s "$f")
    push DCPU "$t,$fs" "$(cpu_s $((c1 - c0)))"
    push FCPU "$t,$fs" "$fsec"
    push LOADS "$t,$fs" "$l"
    FL=$(awk -v f="$fsec" -v w="$WALL" 'BEGIN {print (f > 0.10 * w) ? "x" : "-"}')
    push FLAG "$t,$fs" "$FL"
    if [ "$bytes" != - ]; then
        MBS=$(awk -v b="$bytes" -v t="$WALL" 'BEGIN {printf "%.1f", b / 1e6 / t}')
        push RES "$t,$fs" "$MBS"
    fi
    log "$t $fs: ${MBS:-?} MB/s in ${WALL}s (daemon cpu $(cpu_s $((c1 - c0)))s, foreign cpu ${fsec}s$([ "$FL" = x ] && echo ' *'), load $l)"
}
has_test() { [[ ",$TESTS," == *",$1,"* ]]; }

# --- (i) sequential write -------------------------------------------------------------------
if has_test seqwrite; then
    for ((r = 1; r <= RUNS; r++)); do
        for fs in "${FSES[@]}"; do
            d=$(dir_of $fs)
            if [ $fs = s2sfs ]; then s_fresh; else rm -f "$d/f"; fi
            sync
            cat "$SRC" > /dev/null
            measure seqwrite $fs $GIB dd if="$SRC" of="$d/f" bs=1M conv=fsync status=none
        done
    done
else
    # seqread needs the file
    for fs in "${FSES[@]}"; do dd if="$SRC" of="$(dir_of $fs)/f" bs=1M conv=fsync status=none; done
fi

# --- (ii) sequential read, cold -------------------------------------------------------------
if has_test seqread; then
    r_mount
    dd if="$SRC" of="$R_MNT/f" bs=1M conv=fsync status=none
    if [ -n "$DISK_MBPS" ]; then throttle_start; fi
    for ((r = 1; r <= RUNS; r++)); do
        for fs in "${READ_FSES[@]}"; do
            d=$(dir_of $fs)
            remount $fs
            drop_caches
            measure seqread $fs $GIB dd if="$d/f" of=/dev/null bs=1M status=none
        done
    done
fi
VERIFY=ok
for fs in bindfs s2sfs $(has_test seqread && echo raw); do
    if ! cmp -s "$SRC" "$(dir_of $fs)/f"; then VERIFY="FAILED($fs)"; log "MISMATCH: $fs/f differs from the source"; fi
done
if has_test seqread; then r_umount; fi
throttle_end

# --- (iii) 4 KiB random writes --------------------------------------------------------------
FIO_OUT=$W/.fio.json
run_fio() {
    fio --name=randwrite4k --filename="$1" --rw=randwrite --bs=4k \
        --size="${RW_MIB}M" --ioengine=psync --iodepth=1 --numjobs=1 \
        --time_based --runtime="$RW_SECONDS" --end_fsync=1 --randseed=12345 \
        --output-format=json --output="$FIO_OUT"
}
if has_test randwrite; then
    for ((r = 1; r <= RUNS; r++)); do
        for fs in "${FSES[@]}"; do
            d=$(dir_of $fs)
            if [ $fs = s2sfs ]; then s_fresh; else rm -f "$d/r.dat"; fi
            dd if="$SRC" of="$d/r.dat" bs=1M count="$RW_MIB" conv=fsync status=none
            sync
            MBS=""
            measure randwrite $fs - run_fio "$d/r.dat"
            bytes=$(jq '.jobs[0].write.io_bytes' "$FIO_OUT")
            push RES "randwrite,$fs" "$(awk -v b="$bytes" -v t="$WALL" 'BEGIN {printf "%.1f", b / 1e6 / t}')"
            push IOPS "randwrite,$fs" "$(awk -v b="$bytes" -v t="$WALL" 'BEGIN {printf "%.0f", b / 4096 / t}')"
            push FIOIOPS "randwrite,$fs" "$(jq '.jobs[0].write.iops | floor' "$FIO_OUT")"
            log "  randwrite $fs: $(awk -v b="$bytes" -v t="$WALL" 'BEGIN {printf "%.0f", b / 4096 / t}') IOPS incl. fsync (fio: $(jq '.jobs[0].write.iops | floor' "$FIO_OUT"))"
        done
    done
fi
rm -f "$SNAP0" "$SNAP1" "$FIO_OUT"

# --- report -----------------------------------------------------------------------------------
# clean VALUES FLAGS -> the values of the clean runs if at least 3, else all of them
clean() {
    local -a v f; read -r -a v <<<"$1"; read -r -a f <<<"$2"
    local out=() i
    for i in "${!v[@]}"; do [ "${f[$i]:--}" = x ] || out+=("${v[$i]}"); done
    if [ ${#out[@]} -ge 3 ] || [ ${#out[@]} -eq ${#v[@]} ]; then echo "${out[*]}"; else echo "$1"; fi
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR) printf "%s-%s", lo, hi}'; }
med() { clean "${2}" "${FLAG[$1]}" | median; }   # med KEY VALUES
marked() { # values with '*' on the flagged runs
    local -a v f; read -r -a v <<<"$1"; read -r -a f <<<"$2"
    local i out=""
    for i in "${!v[@]}"; do out+="${v[$i]}$([ "${f[$i]:--}" = x ] && echo '*') "; done
    echo "${out% }"
}
nclean() { local n=0 x; for x in ${FLAG[$1]}; do [ "$x" = x ] || n=$((n + 1)); done; echo $n; }
declare -A TARGET=([seqwrite]=2.0 [seqread]=1.0 [randwrite]=0.7)
declare -A DESC=(
    [seqwrite]="seq write 1 GiB, bs=1M, conv=fsync"
    [seqread]="seq read 1 GiB, bs=1M, cold caches"
    [randwrite]="4 KiB random write, ${RW_MIB} MiB file, ${RW_SECONDS}s + fsync"
)
ALLTESTS=()
for t in seqwrite seqread randwrite; do has_test $t && ALLTESTS+=($t); done
fses_of() { if [ "$1" = seqread ]; then echo "${READ_FSES[@]}"; else echo "${FSES[@]}"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
jlist() { sed 's/^ *//;s/ *$//;s/ \+/,/g' <<<"$1"; }
jflags() { local x out=""; for x in $1; do out+="$([ "$x" = x ] && echo true || echo false),"; done; echo "${out%,}"; }

if [ "$JSON" = 1 ]; then
    printf '{"runs":%d,"source":"%s","verify":"%s","cpu_busy_before_pct":%s,"disk_mbps":%s,"tests":{' "$RUNS" "$SRC" "$VERIFY" "$IDLE_BUSY" "${DISK_MBPS:-null}"
    sep=""
    for t in "${ALLTESTS[@]}"; do
        printf '%s"%s":{' "$sep" "$t"; sep=","
        s2=""
        for fs in $(fses_of $t); do
            k="$t,$fs"
            printf '%s"%s":{"mb_s_runs":[%s],"mb_s_median":%s,"contaminated":[%s],"daemon_cpu_s":[%s],"foreign_cpu_s":[%s],"load1":[%s]' "$s2" "$fs" \
                "$(jlist "${RES[$k]}")" "$(med "$k" "${RES[$k]}")" "$(jflags "${FLAG[$k]}")" \
                "$(jlist "${DCPU[$k]}")" "$(jlist "${FCPU[$k]}")" "$(jlist "${LOADS[$k]}")"
            if [ $t = randwrite ]; then
                printf ',"iops_runs":[%s],"iops_median":%s,"fio_iops_runs":[%s]' \
                    "$(jlist "${IOPS[$k]}")" "$(med "$k" "${IOPS[$k]}")" "$(jlist "${FIOIOPS[$k]}")"
            fi
            printf '}'; s2=","
        done
        ms=$(med "$t,s2sfs" "${RES[$t,s2sfs]}"); mb=$(med "$t,bindfs" "${RES[$t,bindfs]}")
        rr=$(ratio "$ms" "$mb")
        printf ',"ratio_s2sfs_bindfs":%s,"target":%s,"met":%s}' "$rr" "${TARGET[$t]}" \
            "$(awk -v r="$rr" -v g="${TARGET[$t]}" 'BEGIN {print (r >= g) ? "true" : "false"}')"
    done
    printf '}}\n'
    [ "$VERIFY" = ok ]
    exit 0
fi

echo "s2sfs vs bindfs throughput — $RUNS run(s) each, median MB/s (10^6 B/s) of the clean runs"
echo "source $SRC; s2sfs binary $S2SFS"
[ -z "$DISK_MBPS" ] || echo "disk reads limited to $DISK_MBPS MB/s (every row, the FUSE daemons included)"
echo
printf '%-46s %13s %13s %13s %9s %8s %4s\n' test plain bindfs s2sfs "s2/bindfs" target met
for t in "${ALLTESTS[@]}"; do
    mp=$(med "$t,plain" "${RES[$t,plain]}"); mb=$(med "$t,bindfs" "${RES[$t,bindfs]}"); ms=$(med "$t,s2sfs" "${RES[$t,s2sfs]}")
    rr=$(ratio "$ms" "$mb")
    ok=$(awk -v r="$rr" -v g="${TARGET[$t]}" 'BEGIN {print (r >= g) ? "yes" : "NO"}')
    printf '%-46s %13s %13s %13s %9s %8s %4s\n' "${DESC[$t]}" "$mp" "$mb" "$ms" "${rr}x" ">=${TARGET[$t]}x" "$ok"
    printf '%-46s %13s %13s %13s\n' "  min-max over all runs" "$(range <<<"${RES[$t,plain]}")" \
        "$(range <<<"${RES[$t,bindfs]}")" "$(range <<<"${RES[$t,s2sfs]}")"
    printf '%-46s %13s %13s %13s\n' "  clean runs (of $RUNS)" "$(nclean "$t,plain")" "$(nclean "$t,bindfs")" "$(nclean "$t,s2sfs")"
    if [ $t = randwrite ]; then
        printf '%-46s %13s %13s %13s\n' "  IOPS (wall clock incl. fsync)" \
            "$(med "$t,plain" "${IOPS[$t,plain]}")" "$(med "$t,bindfs" "${IOPS[$t,bindfs]}")" "$(med "$t,s2sfs" "${IOPS[$t,s2sfs]}")"
        printf '%-46s %13s %13s %13s\n' "  IOPS as fio reports them" \
            "$(med "$t,plain" "${FIOIOPS[$t,plain]}")" "$(med "$t,bindfs" "${FIOIOPS[$t,bindfs]}")" "$(med "$t,s2sfs" "${FIOIOPS[$t,s2sfs]}")"
    fi
    if [ $t = seqread ]; then
        printf '%-46s %13s %13s %13s\n' "  daemon CPU s, median" "" "$(med "$t,bindfs" "${DCPU[$t,bindfs]}")" "$(med "$t,s2sfs" "${DCPU[$t,s2sfs]}")"
        mr=$(med "$t,raw" "${RES[$t,raw]}")
        printf '%-46s %13s %13s %13s %9s\n' "  s2sfs --codec raw (no decoding): MB/s" "" "" "$mr" \
            "$(ratio "$mr" "$mb")x"
        printf '%-46s %13s %13s %13s\n' "    min-max; daemon CPU s, median" "" "" \
            "$(range <<<"${RES[$t,raw]}"); $(med "$t,raw" "${DCPU[$t,raw]}")"
    fi
done
echo
echo "all runs: MB/s ('*' = foreign CPU > 10% of a core: left out of the median), daemon CPU s, foreign CPU s, load1"
for t in "${ALLTESTS[@]}"; do
    for fs in $(fses_of $t); do
        k="$t,$fs"
        printf '  %-9s %-6s MB/s   %s\n' "$t" "$fs" "$(marked "${RES[$k]}" "${FLAG[$k]}")"
        [ $fs = plain ] || printf '  %-9s %-6s daemon %s\n' "" "" "${DCPU[$k]}"
        printf '  %-9s %-6s foreign %s   load %s\n' "" "" "${FCPU[$k]}" "${LOADS[$k]}"
    done
done
echo "before the run: CPU ${IDLE_BUSY}% busy over 2 s, load average $LOAD_START; at the end: load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "read-back check (cmp against the source): $VERIFY"
[ "$VERIFY" = ok ]
