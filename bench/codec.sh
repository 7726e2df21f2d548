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
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
MODEL=()
if [ "${1:-}" = "--model" ]; then MODEL=(--model "$2"); shift 2; fi
CORPUS=${1:-$CORPUS_DEFAULT}
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

"$S2SFS" codec eval --codec t5 "${MODEL[@]}" --json "${paths[@]}" > "$work/eval.json"
printf '%-14s %9s %9s %6s %6s %9s %6s %9s %6s %9s %6s %8s %8s %9s\n' file bytes t5 ratio bpb zstd-19 ratio xz-9 ratio brotli-11 ratio "comp/s" "dec/s" "xz-9 file"
tz=0; tx=0; tb=0; tw=0
for i in "${!FILES[@]}"; do
    f=${FILES[$i]}; p=$CORPUS/$f
    z=$(per_block "$p" zstd -19 -q -c); x=$(per_block "$p" xz -9 -q -c); br=$(per_block "$p" brotli -q 11 -c)
    w=$(xz -9 -q -c < "$p" | wc -c)
    tz=$((tz + z)); tx=$((tx + x)); tb=$((tb + br)); tw=$((tw + w))
    jq -r --arg z "$z" --arg x "$x" --arg b "$br" --arg w "$w" --arg f "$f" ".[$i] | [\$f, .bytes, .frame_bytes, .ratio, .bits_per_byte, (\$z|tonumber), (.bytes/(\$z|tonumber)), (\$x|tonumber), (.bytes/(\$x|tonumber)), (\$b|tonumber), (.bytes/(\$b|tonumber)), .compress_kb_s, .decompress_kb_s, (.bytes/(\$w|tonumber))] | @tsv" "$work/eval.json" \
      | awk -F'\t' '{printf "%-14s %9d %9d %6.3f %6.3f %9d %6.3f %9d %6.3f %9d %6.3f %6.1fKB %6.1fKB %9.3f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14}'
done
jq -r --arg z "$tz" --arg x "$tx" --arg b "$tb" --arg w "$tw" '.[-1] | ["TOTAL", .bytes, .frame_bytes, .ratio, .bits_per_byte, ($z|tonumber), (.bytes/($z|tonumber)), ($x|tonumber), (.bytes/($x|tonumber)), ($b|tonumber), (.bytes/($b|tonumber)), .compress_kb_s, .decompress_kb_s, (.bytes/($w|tonumber))] | @tsv' "$work/eval.json" \
  | awk -F'\t' '{printf "%-14s %9d %9d %6.3f %6.3f %9d %6.3f %9d %6.3f %9d %6.3f %6.1fKB %6.1fKB %9.3f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14}'
echo "(t5 frames include the volume's 60-byte frame header; speeds: KB per second of one core's CPU time;"
echo " xz-9 file: ratio of xz -9 on the whole file, not per block)"

# The binary files: the learned coder alone, and through the chooser (the smallest of t5,
# zstd -19 and raw per block, as a t5 volume stores them), beside zstd -19 per block.
BINARY=(fireworks.jpeg geo.protodata kennedy.xls kppkn.gtb paper-100k.pdf ptt5 sum)
bpaths=(); for f in "${BINARY[@]}"; do [ -f "$CORPUS/$f" ] && bpaths+=("$CORPUS/$f"); done
if [ ${#bpaths[@]} -gt 0 ]; then
    "$S2SFS" codec eval --codec t5 "${MODEL[@]}" --json "${bpaths[@]}" > "$work/bin-t5.json"
    "$S2SFS" codec eval --codec auto "${MODEL[@]}" --json "${bpaths[@]}" > "$work/bin-auto.json"
    echo
    printf '%-14s %9s %9s %6s %9s %6s %13s %9s %6s\n' file bytes t5 ratio auto ratio "auto t5/zstd" zstd-19 ratio
    jq -r -s '(.[0] | map({key: .file, value: .}) | from_entries) as $t | .[1][] | [(.file|split("/")|last), .bytes, $t[.file].frame_bytes, $t[.file].ratio, .frame_bytes, .ratio, "\(.blocks_t5)/\(.blocks_zstd)", .zstd19_bytes, .zstd19_ratio] | @tsv' "$work/bin-t5.json" "$work/bin-auto.json" \
      | awk -F'\t' '{printf "%-14s %9d %9d %6.3f %9d %6.3f %13s %9d %6.3f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
fi
