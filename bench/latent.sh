#!/usr/bin/env bash
# bench/latent.sh — what the t5 latent saves: total frame bytes of the learned coder alone
# (`codec eval --codec t5`, 128 KiB blocks) with the encoder's latents against the same
# model with every latent empty (`--latent none`), on the text files of the bench corpus
# and on the files that training held out of a training corpus.
#
#   bench/latent.sh [--model DIR] [--supervised DIR] [--train-corpus DIR] [BENCH_DIR]
#
# --model: the model to measure (default: the built-in one). --supervised: the same model
# after supervised training alone (before its reinforcement-learning stage), measured the
# same way. --train-corpus: the corpus the model was trained on; its held-out files
# (`s2sfs train --list-held-out`) are measured too. Every frame is decoded and compared.
# "saved" is what the learned latent saves against the empty one, as a share of the
# empty-latent frames' payload (frame bytes less the 60-byte frame headers).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

S2SFS=${S2SFS:-$S2SFS_RELEASE}
MODEL=(); SUPERVISED=""; TRAIN=""
while [ $# -gt 0 ]; do
    case $1 in
        --model) MODEL=(--model "$2"); shift 2 ;;
        --supervised) SUPERVISED=$2; shift 2 ;;
        --train-corpus) TRAIN=$2; shift 2 ;;
        *) break ;;
    esac
done
CORPUS=${1:-$CORPUS_DEFAULT}
TEXT=(alice29.txt asyoulik.txt lcet10.txt plrabn12.txt cp.html fields.c grammar.lsp xargs.1 bible.txt world192.txt html urls.10K)
command -v jq >/dev/null || { echo "bench/latent.sh: jq is missing (apt-get install jq)" >&2; exit 1; }
[ -x "$S2SFS" ] || { echo "bench/latent.sh: $S2SFS missing (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '%s\n' "${TEXT[@]/#/$CORPUS/}" > "$work/bench-text"
sets=(bench-text)
if [ -n "$TRAIN" ]; then
    "$S2SFS" train --corpus "$TRAIN" --list-held-out > "$work/held-out"
    sets+=(held-out)
fi

# frame bytes, blocks and bytes of one eval (its TOTAL row): eval_total SET LATENT MODEL_ARGS...
eval_total() {
    local set=$1 latent=$2; shift 2
    mapfile -t files < "$work/$set"
    "$S2SFS" codec eval --codec t5 "$@" --latent "$latent" --json "${files[@]}" \
        | jq -r '.[-1] | [.frame_bytes, .blocks_t5 + .blocks_zstd + .blocks_raw, .bytes] | @tsv'
}

printf '%-11s %-11s %10s %12s %12s %8s %8s\n' set model bytes "learned" "empty" saved "bits/B"
row() {
    local set=$1 name=$2; shift 2
    read -r learned blocks bytes < <(eval_total "$set" learned "$@")
    read -r empty _ _ < <(eval_total "$set" none "$@")
    awk -v s="$set" -v n="$name" -v l="$learned" -v e="$empty" -v b="$blocks" -v by="$bytes" \
        'BEGIN { printf "%-11s %-11s %10d %12d %12d %7.2f%% %8.4f\n", s, n, by, l, e, 100 * (e - l) / (e - 60 * b), 8 * (l - 60 * b) / by }'
}
for set in "${sets[@]}"; do
    row "$set" model "${MODEL[@]}"
    [ -n "$SUPERVISED" ] && row "$set" supervised --model "$SUPERVISED"
done
echo "(learned / empty: total frame bytes with the encoder's latents / with every latent empty;"
echo " bits/B: payload bits per byte with the learned latents)"
