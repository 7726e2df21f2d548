# The 1 GiB mixed source shared by bench/throughput.sh and bench/rss.sh: 64 MiB chunks of
# the bench corpus (one continuous stream from OFF MiB on, so no two blocks are equal)
# alternating with random data. Sourced; uses the caller's CORPUS, GIB, log and die.

make_mixed() {
    local out=$1 off=$2 tmp=$1.tmp
    local files=() f
    mapfile -t files < <(find "$CORPUS" -maxdepth 1 -type f | LC_ALL=C sort)
    local per=$(cat -- "${files[@]}" | wc -c)
    local need=$(((off + 512) << 20))
    local reps=$(((need + per - 1) / per)) r
    log "generating $out (corpus stream from $off MiB + random, interleaved by 64 MiB)"
    for ((r = 0; r < reps; r++)); do cat -- "${files[@]}"; done > "$tmp.corpus"
    truncate -s "$need" "$tmp.corpus"
    : > "$tmp"
    for ((c = 0; c < 8; c++)); do
        dd if="$tmp.corpus" bs=1M skip=$((off + c * 64)) count=64 status=none >> "$tmp"
        head -c $((64 << 20)) /dev/urandom >> "$tmp"
    done
    rm -f "$tmp.corpus"
    [ "$(stat -c %s "$tmp")" = $GIB ] || die "generated $tmp has the wrong size"
    mv "$tmp" "$out"
}
