#!/usr/bin/env bash
# bench/archival.sh — archival (t5) and auto volumes on a corpus, side by side with peers.
#
#   bench/archival.sh [CORPUS_DIR]
#
# 1. Footprint: CORPUS_DIR (default ../shared/corpus/bench) copied into a fresh volume of
#    each kind (zstd, t5, auto + `s2sfs recompress`), unmounted, `du -sb` of the store
#    with and without STORE/models. Peers: each 128 KiB block alone with zstd -19 and
#    brotli -11, each file whole with xz -9e. Target: archival store without its model copy
#    below per-block zstd -19.
# 2. Cold sequential read of the archival volume (remount, drop caches, cat every file):
#    MB/s and daemon CPU-s per MB, against the one-core decode speed `s2sfs codec eval`
#    reports on the same files. Target: at least 1.8x.
# 3. Random 4 KiB reads of the archival volume (remount, drop caches): p50 and p99.
# 4. Sequential write (SEQ_MB MiB, default 256) on an auto volume while recompression runs,
#    against the same volume with recompression off. Target: at least 0.8x.
# 5. Recompression speed: logical KB/s of `s2sfs recompress` (both cores).
#
# Environment: BENCH_DIR (default /var/tmp/s2sfs-bench; not tmpfs), S2SFS (binary, default
# REPO/target/release/s2sfs), SEQ_MB. Needs root (drop_caches), zstd, brotli, xz, python3.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
SEQ_MB=${SEQ_MB:-256}
BLOCK=131072
case ${1:-} in -h|--help) usage ;; esac
CORPUS=$(cd "${1:-$CORPUS_DEFAULT}" && pwd)

for c in zstd brotli xz python3 split fusermount3 flock; do command -v $c >/dev/null || die "missing $c"; done
need_s2sfs
work_dir
lock_work_dir
MNT=$W/mnt
cleanup() { mountpoint -q "$MNT" 2>/dev/null && { "$S2SFS" umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT"; }; true; }
trap cleanup EXIT
cleanup
rm -rf "$W"
mkdir -p "$MNT" "$W/ref"

mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort)
BYTES=$(cd "$CORPUS" && cat -- "${FILES[@]}" | wc -c)
log "corpus $CORPUS: ${#FILES[@]} files, $BYTES bytes; $(nproc) cores; $S2SFS"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# --- peers ----------------------------------------------------------------------------------
i=0
for f in "${FILES[@]}"; do [ -s "$CORPUS/$f" ] && split -b $BLOCK -a 5 -d -- "$CORPUS/$f" "$W/ref/$(printf %03d $i)."; i=$((i+1)); done
csum() { find "$W/ref" -type f -print0 | xargs -0 -n 1 -P "$(nproc)" sh -c "$1"' < "$0" | wc -c' | awk '{s+=$1} END {print s}'; }
ZSTD19=$(csum "zstd -19 -c -q")
BROTLI11=$(csum "brotli -q 11 -c")
XZ9E=$(for f in "${FILES[@]}"; do xz -9e -c < "$CORPUS/$f" | wc -c; done | awk '{s+=$1} END {print s}')
log "peers: per-block zstd -19 $ZSTD19, per-block brotli -11 $BROTLI11, whole-file xz -9e $XZ9E"

daemon_cpu() { # utime+stime of the daemon serving $MNT, seconds
    local pid; pid=$(pgrep -f "s2sfs mount $MNT" | head -1)
    awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$pid/stat"
}
now() { date +%s.%N; }

# volume KIND MOUNT-OPTIONS... : copies the corpus in, unmounts; sets STORE_ALL, STORE_NOMODEL, COPY_S
volume() {
    local kind=$1; shift
    STORE=$W/store-$kind
    mkdir -p "$STORE"
    "$S2SFS" mount "$MNT" --store "$STORE" "$@" 9>&-
    local t0; t0=$(now)
    cp -r -- "$CORPUS/." "$MNT/"
    sync -f "$MNT"
    COPY_S=$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
}
measure() {
    STORE_ALL=$(du -sb "$STORE" | cut -f1)
    local models; models=$(du -sb "$STORE/models" | cut -f1)
    STORE_NOMODEL=$((STORE_ALL - models))
}

log "zstd volume"
volume zstd
"$S2SFS" umount "$MNT"; measure
ZSTD_ALL=$STORE_ALL; ZSTD_COPY=$COPY_S

log "archival volume (--codec t5)"
volume t5 --codec t5
"$S2SFS" umount "$MNT"; measure
T5_ALL=$STORE_ALL; T5_NOMODEL=$STORE_NOMODEL; T5_COPY=$COPY_S
T5_STORE=$STORE

log "auto volume + s2sfs recompress"
volume auto --codec auto --recompress-after off
"$S2SFS" recompress "$MNT" --json > "$W/recompress.json"
"$S2SFS" umount "$MNT"; measure
AUTO_ALL=$STORE_ALL; AUTO_NOMODEL=$STORE_NOMODEL; AUTO_COPY=$COPY_S
REC_S=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r.get("seconds", 0))' "$W/recompress.json")
REC_KBS=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.1f" % (r["logical_bytes"] / 1000 / max(r["seconds"], 1e-9)))' "$W/recompress.json")

log "cold sequential read of the archival volume"
"$S2SFS" mount "$MNT" --store "$T5_STORE" --codec t5 9>&-
sync; echo 3 > /proc/sys/vm/drop_caches
c0=$(daemon_cpu); t0=$(now)
for f in "${FILES[@]}"; do cat -- "$MNT/$f" > /dev/null; done
t1=$(now); c1=$(daemon_cpu)
READ_MBS=$(awk -v b="$BYTES" -v a="$t1" -v z="$t0" 'BEGIN { printf "%.3f", b / 1e6 / (a - z) }')
READ_CPU=$(awk -v b="$BYTES" -v a="$c1" -v z="$c0" 'BEGIN { printf "%.3f", (a - z) / (b / 1e6) }')
for f in "${FILES[@]}"; do cmp -s -- "$CORPUS/$f" "$MNT/$f" || die "$f does not read back exactly"; done

log "random 4 KiB reads of the archival volume"
"$S2SFS" umount "$MNT"; "$S2SFS" mount "$MNT" --store "$T5_STORE" --codec t5 9>&-
sync; echo 3 > /proc/sys/vm/drop_caches
RAND=$(python3 - "$MNT" "${FILES[@]}" <<'EOF'
import os, random, sys, time
mnt, files = sys.argv[1], sys.argv[2:]
random.seed(1)
sizes = {f: os.path.getsize(os.path.join(mnt, f)) for f in files}
lat = []
for _ in range(300):
    f = random.choice([f for f in files if sizes[f] >= 4096])
    off = random.randrange(0, sizes[f] - 4096 + 1) // 4096 * 4096
    fd = os.open(os.path.join(mnt, f), os.O_RDONLY)
    t = time.perf_counter(); os.pread(fd, 4096, off); lat.append(time.perf_counter() - t)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
lat.sort()
print("%.2f %.2f" % (lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3))
EOF
)
RAND_P50=${RAND% *}; RAND_P99=${RAND#* }
"$S2SFS" umount "$MNT"

log "one-core decode speed of s2sfs codec eval on the same files"
EVAL_DEC=$("$S2SFS" codec eval --json "${FILES[@]/#/$CORPUS/}" | python3 -c 'import json,sys; rows=json.load(sys.stdin); t=[r for r in rows if r["file"]=="TOTAL"][0]; print(t["decompress_kb_s"])')
READ_VS_EVAL=$(awk -v r="$READ_MBS" -v e="$EVAL_DEC" 'BEGIN { printf "%.2f", r * 1000 / e }')

log "sequential write of $SEQ_MB MiB on an auto volume, recompression off / running"
head -c $((SEQ_MB << 20)) < <(while :; do cat -- "${FILES[@]/#/$CORPUS/}"; done) > "$W/seq.src"
seqwrite() { # MOUNT-OPTIONS... : MB/s of dd into a volume holding a copy of the corpus
    rm -rf "$W/store-seq"; mkdir -p "$W/store-seq"
    "$S2SFS" mount "$MNT" --store "$W/store-seq" --codec auto "$@" 9>&-
    cp -r -- "$CORPUS/." "$MNT/"; sync -f "$MNT"; sleep 3
    local t0; t0=$(now)
    dd if="$W/seq.src" of="$MNT/seq" bs=1M conv=fsync status=none
    awk -v b=$((SEQ_MB << 20)) -v a="$(now)" -v z="$t0" 'BEGIN { printf "%.1f", b / 1e6 / (a - z) }'
    "$S2SFS" umount "$MNT"
}
SEQ_OFF=$(seqwrite --recompress-after off)
SEQ_ON=$(seqwrite --recompress-after 1s)
rm -f "$W/seq.src"

cat <<EOF
archival.sh: corpus ${#FILES[@]} files, $BYTES bytes, $(nproc) cores, $(date -u +%FT%TZ)

footprint (du -sb of the store after unmount; ratio = corpus bytes / stored bytes)
  zstd volume (default)                 $ZSTD_ALL  $(ratio $BYTES $ZSTD_ALL)   copy ${ZSTD_COPY}s
  archival volume (--codec t5)          $T5_ALL  $(ratio $BYTES $T5_ALL)   copy ${T5_COPY}s
    without the model copy              $T5_NOMODEL  $(ratio $BYTES $T5_NOMODEL)   vs per-block zstd -19: $(ratio $ZSTD19 $T5_NOMODEL)x
  auto volume + s2sfs recompress        $AUTO_ALL  $(ratio $BYTES $AUTO_ALL)   copy ${AUTO_COPY}s
    without the model copy              $AUTO_NOMODEL  $(ratio $BYTES $AUTO_NOMODEL)
  per-block zstd -19                    $ZSTD19  $(ratio $BYTES $ZSTD19)
  per-block brotli -11                  $BROTLI11  $(ratio $BYTES $BROTLI11)
  whole-file xz -9e                     $XZ9E  $(ratio $BYTES $XZ9E)
archival cold sequential read           $READ_MBS MB/s, $READ_CPU daemon CPU-s per MB; codec eval one-core decode $EVAL_DEC KB/s: ${READ_VS_EVAL}x
archival random 4 KiB reads (cold)      p50 $RAND_P50 ms, p99 $RAND_P99 ms
auto sequential write $SEQ_MB MiB        recompression off $SEQ_OFF MB/s, running $SEQ_ON MB/s: $(ratio $SEQ_ON $SEQ_OFF)x
recompression (s2sfs recompress)        ${REC_S}s, $REC_KBS logical KB/s
EOF
