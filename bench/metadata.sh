#!/usr/bin/env bash
# bench/metadata.sh — metadata-heavy work, s2sfs vs bindfs (and an older s2sfs), side by side.
#
#   bench/metadata.sh [--json] [--runs N] [--churn-ops N] [--threads T] [--tree-files N]
#
# Per run (default 3), per filesystem, on a fresh volume / empty bindfs backing directory:
#   untar       tar -xf TREE.tar of a source tree under git (N files, default 20000: the
#               first N files under 1000 KiB of $TREE_SRC in sorted order, default the
#               Python standard library of python3; committed to git once before the
#               runs; the same tar for every filesystem)
#   git status  `git status --porcelain` in the extracted tree, twice; the second is timed
#   rm -rf      of the extracted tree
#   churn       xfstests generic/007's churn (the `bench_churn` test of tests/stress.rs, the
#               code of the `name_churn_never_hangs` test): T threads (default 4) create,
#               stat and unlink names out of 100 in one directory, N operations per thread
#               (default 250000: 4 x 250000 is ten times generic/007's 100000); a stall of
#               30 s ends the run as a hang (the daemon is killed; counted as 0 ops/s and
#               in the "churn hangs" row). Reported: operations per second.
# After every s2sfs run: umount and `s2sfs fsck` (must be clean).
# Reported: medians over the runs, in seconds (churn: ops/s), and s2sfs / bindfs.
#
# Environment: BENCH_DIR (work dir, default /var/tmp/s2sfs-bench; not tmpfs),
#              TREE_SRC (the directory the source tree is taken from),
#              S2SFS (binary, default REPO/target/release/s2sfs; built when it is the default),
#              S2SFS_BEFORE (optional: another s2sfs binary, measured as "before" in the
#              same run, e.g. a build of the commit before a change),
#              STRESS_BIN (the tests/stress.rs test binary; default: built with
#              `cargo test --release --test stress --no-run`).
# Must run as root (mounts). Table on stdout (JSON with --json); progress on stderr.
# Exit status: non-zero when a run fails, hangs or leaves fsck unclean.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

JSON=0 RUNS=3 CHURN_OPS=250000 THREADS=4 TREE_FILES=20000
while [ $# -gt 0 ]; do
    case $1 in
        --json) JSON=1 ;;
        --runs) RUNS=$2; shift ;;
        --churn-ops) CHURN_OPS=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --tree-files) TREE_FILES=$2; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

need bindfs bindfs
need git git
need jq jq
need fusermount3 fuse3
[ "$(id -u)" = 0 ] || die "run as root (mounts)"

build_s2sfs_unless_set
build_stress_bin_unless_set
[ -x "$S2SFS" ] || die "no s2sfs binary at $S2SFS"
[ -x "$STRESS_BIN" ] || die "no stress test binary (STRESS_BIN=$STRESS_BIN)"
FSES=(bindfs s2sfs)
if [ -n "${S2SFS_BEFORE:-}" ]; then
    [ -x "$S2SFS_BEFORE" ] || die "S2SFS_BEFORE=$S2SFS_BEFORE is not an executable"
    FSES+=(before)
fi

work_dir
OUT=$W/out
bin_of() { case $1 in s2sfs) echo "$S2SFS" ;; before) echo "$S2SFS_BEFORE" ;; esac; }
mnt_of() { echo "$W/$1-mnt"; }
back_of() { echo "$W/$1-back"; }
umount_fs() {
    case $1 in
        bindfs) fusermount3 -u "$(mnt_of $1)" ;;
        *) "$(bin_of $1)" umount "$(mnt_of $1)" ;;
    esac
}
fresh() { # an empty volume of FS mounted
    local m b
    m=$(mnt_of $1) b=$(back_of $1)
    if mountpoint -q "$m"; then umount_fs $1; fi
    rm -rf "$b"; mkdir -p "$b" "$m"
    case $1 in
        bindfs) bindfs "$b" "$m" ;;
        *) "$(bin_of $1)" mount "$m" --store "$b" ;;
    esac
}
cleanup() {
    for fs in "${FSES[@]}"; do
        if mountpoint -q "$(mnt_of $fs)" 2>/dev/null; then umount_fs $fs >/dev/null 2>&1 || fusermount3 -uz "$(mnt_of $fs)" || true; fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
FAILED=""
fail() { FAILED="$FAILED $*"; log "FAILURE: $*"; }

cleanup
rm -rf "$W"
mkdir -p "$OUT"

# The source tree: the first TREE_FILES files of TREE_SRC, in git.
TREE=$W/tree
log "making the source tree ($TREE_FILES files) and its tar"
mkdir -p "$TREE"
SRC=${TREE_SRC:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
[ -d "$SRC" ] || die "no source tree at $SRC (set TREE_SRC)"
(cd "$SRC" && find . -type f -size -1000k > "$W/files.all")
LC_ALL=C sort "$W/files.all" | awk -v n="$TREE_FILES" 'NR <= n' > "$W/files"
(cd "$SRC" && tar -cf - -T "$W/files") | tar -xf - -C "$TREE"
(cd "$TREE" && git init -q && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm tree)
tar -cf "$W/tree.tar" -C "$W" tree
rm -rf "$TREE"
TREE_BYTES=$(stat -c %s "$W/tree.tar")

declare -A HANGS
secs() { # secs CMD...: wall seconds of CMD
    local t0 t1
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}
for ((r = 1; r <= RUNS; r++)); do
    for fs in "${FSES[@]}"; do
        fresh $fs
        d=$(mnt_of $fs)
        log "run $r on $fs: untar, git status, rm -rf"
        untar=$(secs tar -xf "$W/tree.tar" -C "$d")
        git -C "$d/tree" status --porcelain > "$OUT/status.$fs.$r.1" 2>&1 || fail "git status ($fs run $r)"
        status=$(secs git -C "$d/tree" status --porcelain)
        [ -s "$OUT/status.$fs.$r.1" ] && fail "git status found changes on $fs (run $r): $(head -3 "$OUT/status.$fs.$r.1")"
        rmrf=$(secs rm -rf "$d/tree")
        mkdir "$d/churn"
        log "run $r on $fs: churn, $THREADS threads x $CHURN_OPS operations"
        S2SFS_STRESS_DIR=$d/churn S2SFS_STRESS_LABEL=$fs S2SFS_CHURN_OPS=$CHURN_OPS S2SFS_CHURN_THREADS=$THREADS \
            "$STRESS_BIN" bench_churn --exact --ignored --nocapture --test-threads=1 > "$OUT/churn.$fs.$r.txt" 2>&1 &
        pid=$!
        # A hung daemon keeps the churn's threads in uninterruptible sleep: killing it frees them.
        while kill -0 $pid 2>/dev/null; do
            if grep -q 'CHURN-STALL' "$OUT/churn.$fs.$r.txt"; then
                pkill -9 -f -- "mount $d " || true
                break
            fi
            sleep 2
        done
        if wait $pid; then
            churn=$(grep -o 'ops_per_sec=[0-9.]*' "$OUT/churn.$fs.$r.txt" | cut -d= -f2)
            umount_fs $fs
        else
            # A hang counts as 0 ops/s (and in the hangs row); the killed daemon's store
            # must still be clean.
            churn=0
            HANGS[$fs]=$(( ${HANGS[$fs]:-0} + 1 ))
            fail "churn ($fs run $r): $(grep -m1 -E 'CHURN-STALL|panicked' "$OUT/churn.$fs.$r.txt" || tail -1 "$OUT/churn.$fs.$r.txt")"
            fusermount3 -uz "$d" 2>/dev/null || true
        fi
        echo "$fs $r $untar $status $rmrf $churn" >> "$OUT/results.txt"
        if [ $fs != bindfs ] && ! "$(bin_of $fs)" fsck --store "$(back_of $fs)" > "$OUT/fsck.$fs.$r.txt" 2>&1; then
            fail "fsck ($fs run $r)"
        fi
    done
done

med() { # med FS COLUMN: median of that column over the runs
    awk -v fs="$1" -v c="$2" '$1 == fs { print $c }' "$OUT/results.txt" | sort -g |
        awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f", a / b }'; }
NAMES=(untar "git status" "rm -rf" "churn ops/s")
if [ $JSON = 1 ]; then
    for fs in "${FSES[@]}"; do
        jq -n --arg fs "$fs" --argjson untar "$(med $fs 3)" --argjson status "$(med $fs 4)" --argjson rmrf "$(med $fs 5)" \
            --argjson churn "$(med $fs 6)" --argjson hangs "${HANGS[$fs]:-0}" \
            '{fs: $fs, untar_s: $untar, git_status_s: $status, rm_rf_s: $rmrf, churn_ops_per_s: $churn, churn_hangs: $hangs}'
    done | jq -s --argjson runs "$RUNS" --argjson files "$TREE_FILES" --argjson bytes "$TREE_BYTES" --argjson ops "$CHURN_OPS" \
        --argjson threads "$THREADS" --arg failed "$FAILED" \
        '{runs: $runs, tree_files: $files, tree_tar_bytes: $bytes, churn_ops_per_thread: $ops, churn_threads: $threads, failed: $failed, results: .}'
else
    echo "metadata work: $RUNS runs, medians; tree $TREE_FILES files ($TREE_BYTES bytes of tar); churn $THREADS x $CHURN_OPS ops"
    printf '%-14s' ""; for fs in "${FSES[@]}"; do printf '%12s' "$fs"; done; printf '%16s\n' "s2sfs/bindfs"
    for i in 0 1 2 3; do
        printf '%-14s' "${NAMES[$i]}"
        for fs in "${FSES[@]}"; do printf '%12s' "$(med $fs $((i + 3)))"; done
        printf '%16s\n' "$(ratio "$(med s2sfs $((i + 3)))" "$(med bindfs $((i + 3)))")"
    done
    printf '%-14s' "churn hangs"; for fs in "${FSES[@]}"; do printf '%12s' "${HANGS[$fs]:-0}/$RUNS"; done; echo
    [ -n "$FAILED" ] && echo "FAILED:$FAILED"
fi
[ -z "$FAILED" ]
