# bench/common.sh — what the bench scripts share. Sourced right after `set -euo pipefail`:
# `usage` prints the sourcing script's header comment, everything up to that line.
#
# Sets REPO (the repository), BENCH_DIR (work dir, default /var/tmp/s2sfs-bench),
# S2SFS_RELEASE (the release binary, what S2SFS defaults to) and CORPUS_DEFAULT (the bench
# corpus beside the repository). Messages name the script: BENCH_NAME is its name without .sh.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/s2sfs-bench}
S2SFS_RELEASE=$REPO/target/release/s2sfs
CORPUS_DEFAULT=$REPO/../shared/corpus/bench
BENCH_NAME=$(basename "$0" .sh)

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0; }
log() { echo "[$BENCH_NAME $(date +%T)] $*" >&2; }
die() { echo "$BENCH_NAME.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing '$1': apt-get install -y $2"; } # need COMMAND DEBIAN_PACKAGE
need_s2sfs() { [ -x "$S2SFS" ] || die "no s2sfs binary at $S2SFS: run 'cargo build --release' in $REPO"; }

# When not given, S2SFS and STRESS_BIN are release builds of the working tree, made now.
build_s2sfs_unless_set() {
    if [ -z "${S2SFS:-}" ]; then
        S2SFS=$S2SFS_RELEASE
        log "building s2sfs (release)"
        (cd "$REPO" && nice cargo build --release --locked --bin s2sfs >&2)
    fi
}
build_stress_bin_unless_set() {
    if [ -z "${STRESS_BIN:-}" ]; then
        log "building the tests/stress.rs test binary (release)"
        STRESS_BIN=$(cd "$REPO" && nice cargo test --release --locked --test stress --no-run --message-format=json 2>/dev/null |
            jq -r 'select(.reason == "compiler-artifact" and .target.name == "stress" and .profile.test == true) | .executable' | tail -1)
    fi
}

# work_dir: W=BENCH_DIR/BENCH_NAME. Not on tmpfs: the benches measure stores on a disk.
work_dir() {
    mkdir -p "$BENCH_DIR"
    [ "$(stat -f -c %T "$BENCH_DIR")" = tmpfs ] && die "BENCH_DIR $BENCH_DIR is on tmpfs; use a disk directory"
    W=$BENCH_DIR/$BENCH_NAME
}
# One run at a time per work dir: a second run would wipe this one's volumes. The lock is
# fd 9, which mounts close (9>&-) so that no daemon keeps it after the run.
lock_work_dir() {
    exec 9>"$BENCH_DIR/.$BENCH_NAME.lock"
    flock -n 9 || die "another $BENCH_NAME run is using $W (lock $BENCH_DIR/.$BENCH_NAME.lock); wait for it or set BENCH_DIR"
}

s2_unmount_quietly() { "$S2SFS" umount "$1" >/dev/null 2>&1 || fusermount3 -uz "$1" 2>/dev/null || true; }

# The machine is shared: what else runs is part of every result.
load3() { cut -d' ' -f1-3 /proc/loadavg; }
others() { pgrep -c -x 'rustc|cargo|cc1|cc1plus|ld|ld.lld|mold|build-script-b' 2>/dev/null || true; }
# CPU busy % over 2 s (the load average of this VM counts FUSE waits and never drops to 0)
busy() {
    local u n sy i w q sq st u2 n2 sy2 i2 w2 q2 sq2 st2
    read -r _ u n sy i w q sq st _ < /proc/stat; sleep 2
    read -r _ u2 n2 sy2 i2 w2 q2 sq2 st2 _ < /proc/stat
    awk -v b=$(( (u2+n2+sy2+q2+sq2+st2) - (u+n+sy+q+sq+st) )) -v i=$(( (i2+w2) - (i+w) )) 'BEGIN {printf "%.0f", 100 * b / (b + i)}'
}
