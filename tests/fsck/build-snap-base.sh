#!/bin/bash
# Builds the datastore the snapshot cases (a `base` file saying "snap") start
# from: the common base (build-base.sh) plus snapshot A of /c, a write into
# /c (its block 1 becomes a redirect, docs/FORMAT.md "Redirects", which B
# then shares), snapshot B of /c, a clone /c3 of /c@A and
# snapshot S of /sparse (its two-level map shared). Block 0 of /c is then
# named by /c, A and B: count 3; /c3 shares A's root children.
# Usage: build-snap-base.sh BASE IMAGE MOUNTPOINT; writes IMAGE.sha256.
set -euo pipefail
base=$1 img=$2 mnt=$3
cp --sparse=always "$base" "$img"
ctl=$VMFS_BIN/vmfsctl
"$ctl" snapshot create "$img" /c --name A >/dev/null
mkdir -p "$mnt"
"$VMFS_BIN/vmfs-mount" -f -o commit=0 "$img" "$mnt" & daemon=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt"
printf 'written after A' | dd of="$mnt/c" bs=4096 seek=256 conv=notrunc status=none
fusermount3 -u "$mnt"
wait "$daemon"
"$ctl" snapshot create "$img" /c --name B >/dev/null
"$ctl" clone "$img" /c@A /c3 >/dev/null
"$ctl" snapshot create "$img" /sparse --name S >/dev/null
"$VMFS_BIN/vmfs-mount" -f -o ro "$img" "$mnt" & daemon=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt"
(cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$img.sha256"
fusermount3 -u "$mnt"
wait "$daemon"
