#!/usr/bin/env bash
# bench/gpu.sh — the t5 codec's batched decoding on a GPU: every block of the bench text
# files compressed on the CPU, then decoded in batches on the first CUDA device and
# compared with the original (a GPU whose arithmetic differed anywhere would fail here),
# at several batch sizes. Meant for a GPU machine without a Rust toolchain:
#
#   here:        CARGO_TARGET_DIR=target-cuda ../shared/tools/cuda-build   # --features cuda
#   GPU machine: S2SFS=target-cuda/release/s2sfs bench/gpu.sh [CORPUS_DIR] [OUT_DIR]
#
# CORPUS_DIR defaults to ../shared/corpus/bench, else the repository's own text (docs and
# sources) when the corpus is not there. Writes gpu.txt (nvidia-smi) and batch-N.json
# (`s2sfs codec batch --json`) into OUT_DIR (default $OUT, else /tmp/s2sfs-gpu) and a
# summary on stdout. BATCHES overrides the batch sizes (default "64 256 1024").
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
S2SFS=${S2SFS:-$S2SFS_RELEASE}
CORPUS=${1:-$CORPUS_DEFAULT}
OUT_DIR=${2:-${OUT:-/tmp/s2sfs-gpu}}
BATCHES=${BATCHES:-64 256 1024}
lib=$(find / -name libcublas.so.13 2>/dev/null | head -1 || true)
[ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -x "$S2SFS" ] || { echo "bench/gpu.sh: $S2SFS missing (build it with ../shared/tools/cuda-build)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
FILES=()
for f in alice29.txt asyoulik.txt lcet10.txt plrabn12.txt cp.html fields.c grammar.lsp xargs.1 bible.txt world192.txt html urls.10K; do
    [ -f "$CORPUS/$f" ] && FILES+=("$CORPUS/$f")
done
if [ ${#FILES[@]} -eq 0 ]; then
    echo "bench/gpu.sh: no bench corpus at $CORPUS; using the repository's text files" >&2
    mapfile -t FILES < <(find "$REPO" -maxdepth 3 \( -name '*.md' -o -name '*.rs' \) -not -path '*/target*' | sort)
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt" || true
for b in $BATCHES; do
    "$S2SFS" codec batch --batch "$b" --json "${FILES[@]}" > "$OUT_DIR/batch-$b.json"
    echo "batch $b: $(tr -d '\n ' < "$OUT_DIR/batch-$b.json")"
done
