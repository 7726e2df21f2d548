#!/usr/bin/env bash
# bench/codec.sh — the t5 codec against zstd -19, xz -9 and brotli -11, every file cut into
# 128 KiB blocks and each block compressed alone (what a volume stores), on the text files
# of the bench corpus.
#
#   bench/codec.sh [--model DIR] [CORPUS_DIR]
#
# s2sfs's numbers come from `s2sfs codec eval` (it decodes every frame and compares it with
# its block; speeds are one core's CPU time); the peers' from their Debian CLIs on the same
# blocks. Prints a table per file and the totals; ratio = bytes / compressed bytes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
S2SFS=${S2SFS:-$REPO/target/release/s2sfs}
MODEL=()
if [ "${1:-}" = "--model" ]; then MODEL=(--model "$2"); shift 2; fi
CORPUS=${1:-$REPO/../shared/corpus/bench}
FILES=(alice29.txt asyoulik.txt lcet10.txt plrabn12.txt cp.html fields.c grammar.lsp xargs.1 bible.txt world192.txt html urls.10K)
for t in zstd xz brotli jq; do command -v $t >/dev/null || { echo "bench/codec.sh: $t is missing (apt-get install $t)" >&2; exit 1; }; done
[ -x "$S2SFS" ] || { echo "bench/codec.sh: $S2SFS missing (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
paths=(); for f in "${FILES[@]}"; do paths+=("$CORPUS/$f"); done

# Sum of each 128 KiB block compressed alone by a CLI: per_block FILE CMD...
per_block() {
    local file=$1; shift
    rm -f "$work"/blk.*
    split -b 131072 -a 4 "$file" "$work/blk."
    local total=0 b
    for b in "$work"/blk.*; do total=$((total + $("$@" < "$b" | wc -c))); done
    echo $total
}

"$S2SFS" codec eval "${MODEL[@]}" --json "${paths[@]}" > "$work/eval.json"
printf '%-14s %9s %9s %6s %6s %9s %6s %9s %6s %9s %6s %8s %8s\n' file bytes t5 ratio bpb zstd-19 ratio xz-9 ratio brotli-11 ratio "comp/s" "dec/s"
tz=0; tx=0; tb=0
for i in "${!FILES[@]}"; do
    f=${FILES[$i]}; p=$CORPUS/$f
    z=$(per_block "$p" zstd -19 -q -c); x=$(per_block "$p" xz -9 -q -c); br=$(per_block "$p" brotli -q 11 -c)
    tz=$((tz + z)); tx=$((tx + x)); tb=$((tb + br))
    jq -r --arg z "$z" --arg x "$x" --arg b "$br" --arg f "$f" ".[$i] | [\$f, .bytes, .frame_bytes, .ratio, .bits_per_byte, (\$z|tonumber), (.bytes/(\$z|tonumber)), (\$x|tonumber), (.bytes/(\$x|tonumber)), (\$b|tonumber), (.bytes/(\$b|tonumber)), .compress_kb_s, .decompress_kb_s] | @tsv" "$work/eval.json" \
      | awk -F'\t' '{printf "%-14s %9d %9d %6.3f %6.3f %9d %6.3f %9d %6.3f %9d %6.3f %6.1fKB %6.1fKB\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13}'
done
jq -r --arg z "$tz" --arg x "$tx" --arg b "$tb" '.[-1] | ["TOTAL", .bytes, .frame_bytes, .ratio, .bits_per_byte, ($z|tonumber), (.bytes/($z|tonumber)), ($x|tonumber), (.bytes/($x|tonumber)), ($b|tonumber), (.bytes/($b|tonumber)), .compress_kb_s, .decompress_kb_s] | @tsv' "$work/eval.json" \
  | awk -F'\t' '{printf "%-14s %9d %9d %6.3f %6.3f %9d %6.3f %9d %6.3f %9d %6.3f %6.1fKB %6.1fKB\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13}'
echo "(t5 frames include the volume's 60-byte frame header; speeds: KB per second of one core's CPU time)"
