#!/usr/bin/env bash
# The Debian package, end to end: `cargo deb` builds it, dpkg installs it, and the
# installed files alone (the binary, /sbin/mount.s2sfs, the model in /usr/share/s2sfs)
# mount a zstd and a t5 volume with `mount -t s2sfs`; the man pages and completions are
# installed, the systemd unit passes `systemd-analyze verify`, and removing the package
# takes its files away. Needs root, dpkg, fuse3, systemd-analyze and cargo-deb (.ci/run
# installs them). It installs the package on this machine and removes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

fail() {
    echo "package test: FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, mount)"
command -v cargo-deb >/dev/null || fail "cargo-deb is missing (cargo install cargo-deb --locked)"

WORK=$(mktemp -d /tmp/s2sfs-package.XXXXXX)
cleanup() {
    for m in "$WORK"/mnt-*; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; }
    done
    [ -d "$WORK/model-away" ] && mv "$WORK/model-away" /usr/share/s2sfs/models/default 2>/dev/null
    dpkg -s s2sfs >/dev/null 2>&1 && dpkg --purge s2sfs >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "=== cargo deb"
cargo deb --locked 2>&1 | tail -n 3
deb=$(ls -t target/debian/s2sfs_*.deb | head -n 1)
[ -f "$deb" ] || fail "cargo deb made no package"

# Every earlier default model in the tree (models/ID) ships for reading.
previous=() previous_weights=()
for dir in models/*/; do
    id=$(basename "$dir")
    [ "$id" = default ] && continue
    previous+=("$id")
    previous_weights+=("/usr/share/s2sfs/models/$id/weights.safetensors")
done

echo "=== dpkg -i $deb"
dpkg -i "$deb"
for f in /usr/bin/s2sfs /sbin/mount.s2sfs /lib/systemd/system/s2sfs@.service \
    /usr/share/s2sfs/models/default/config.json /usr/share/s2sfs/models/default/tokenizer.json \
    /usr/share/s2sfs/models/default/weights.safetensors \
    "${previous_weights[@]}" \
    /usr/share/man/man1/s2sfs.1.gz \
    /usr/share/man/man1/s2sfs-mount.1.gz /usr/share/bash-completion/completions/s2sfs \
    /usr/share/zsh/vendor-completions/_s2sfs /usr/share/fish/vendor_completions.d/s2sfs.fish; do
    [ -e "$f" ] || fail "$f is not installed"
    dpkg -S "$f" >/dev/null 2>&1 || fail "$f does not belong to the package"
done
zcat /usr/share/man/man1/s2sfs-mount.1.gz | grep -q 'foreground' || fail "s2sfs-mount(1) does not document --foreground"
bash -c 'source /usr/share/bash-completion/completions/s2sfs && complete -p s2sfs' >/dev/null ||
    fail "the bash completion does not register for s2sfs"

# Nothing from the build tree: run from elsewhere, with the system's PATH only.
cd "$WORK"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset S2SFS
version=$(/usr/bin/s2sfs --version)
echo "$version"
echo "$version" | grep -q "^default model [0-9a-f]\{64\} (/usr/share/s2sfs/models/default)$" ||
    fail "the installed s2sfs does not take its default model from /usr/share/s2sfs/models/default"

echo "=== systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/s2sfs@.service || fail "the unit does not verify"

text() { # a few hundred KiB of varied text
    for i in $(seq 1 3000); do echo "line $i: the quick brown fox $((i * 7919 % 1000)) jumps over the lazy dog"; done
}
prose() { # English prose (Debian's base-files), where the learned coder beats zstd -19 by far:
    # on text as repetitive as text()'s the two are within 2% and either may win a block
    cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0
}

mount_volume() { # NAME OPTIONS CONTENT: mount -t s2sfs, write CONTENT's output, unmount, mount again, compare
    local name=$1 opts=$2 content=$3 store="$WORK/store-$1" mnt="$WORK/mnt-$1"
    mkdir -p "$store" "$mnt"
    mount -t s2sfs "$store" "$mnt" -o "$opts" || fail "mount -t s2sfs -o $opts failed"
    "$content" > "$WORK/want-$name"
    cp "$WORK/want-$name" "$mnt/file"
    umount "$mnt" || fail "umount of the $name volume failed"
    mount -t s2sfs "$store" "$mnt" -o "$opts" || fail "the $name volume does not mount again"
    cmp "$WORK/want-$name" "$mnt/file" || fail "the $name volume read back other bytes"
    s2sfs stats "$mnt" --json > "$WORK/stats-$name.json"
    umount "$mnt"
}

echo "=== mount -t s2sfs (zstd)"
mount_volume zstd codec=zstd text
echo "=== mount -t s2sfs (t5, the installed model)"
mount_volume t5 codec=t5 prose
grep -q '"t5":{"blocks":[1-9]' "$WORK/stats-t5.json" || fail "the t5 volume stored no t5 frames: $(cat "$WORK/stats-t5.json")"

echo "=== files of the previous default models decode with the installed binary alone"
text > "$WORK/old.txt"
for old in "${previous[@]}"; do
    s2sfs codec compress --codec t5 --model "/usr/share/s2sfs/models/$old" "$WORK/old.txt" "$WORK/old.s2" ||
        fail "codec compress with the previous default $old failed"
    s2sfs codec decompress "$WORK/old.s2" "$WORK/old.out" || fail "a file of the previous default $old does not decode"
    cmp "$WORK/old.txt" "$WORK/old.out" || fail "a file of the previous default $old decoded to other bytes"
done

echo "=== a missing model is named"
mv /usr/share/s2sfs/models/default "$WORK/model-away"
mkdir -p "$WORK/store-nomodel" "$WORK/mnt-nomodel"
if out=$(mount -t s2sfs "$WORK/store-nomodel" "$WORK/mnt-nomodel" -o codec=t5 2>&1); then
    fail "a t5 volume mounted without its model"
fi
echo "$out" | grep -q "default model is not installed" || fail "no clear error without the model: $out"
mv "$WORK/model-away" /usr/share/s2sfs/models/default

echo "=== dpkg --purge"
dpkg --purge s2sfs
for f in /usr/bin/s2sfs /sbin/mount.s2sfs /usr/share/s2sfs/models/default/weights.safetensors; do
    [ ! -e "$f" ] || fail "$f is still there after dpkg --purge"
done
echo "package test: pass ($(basename "$deb"): installed, mounted zstd and t5 volumes with mount -t s2sfs, unit verified, removed)"
