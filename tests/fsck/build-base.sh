#!/bin/bash
# Builds the datastore every fsck case starts from, the same way each time
# (one host slot, so the mount that fills it always journals in slot 0):
# fixed UUID (so fixed name hashes), files of each layout, links, a symlink, a
# directory big enough to be a tree, and a sparse file with a two-level map.
# Usage: build-base.sh IMAGE MOUNTPOINT; writes IMAGE.sha256 (path and hash of every file).
set -euo pipefail
img=$1 mnt=$2
"$VMFS_BIN/mkfs.vmfs" -q -f -H 1 -T 500,4000,2500,1000 -U 0f5c0f5c-0000-4000-8000-000000000001 --size 1G "$img"
mkdir -p "$mnt"
"$VMFS_BIN/vmfs-mount" -f -o commit=0 "$img" "$mnt" & daemon=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt"
gen() { python3 -c 'import sys,random; r=random.Random(int(sys.argv[1])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[2])))' "$1" "$2"; }
echo small >"$mnt/a"
gen 1 10000 >"$mnt/b"
gen 2 3000000 >"$mnt/c"
gen 3 2500000 >"$mnt/c2"
mkdir "$mnt/d"
echo e >"$mnt/d/e"
ln "$mnt/a" "$mnt/a2"
ln -s a "$mnt/s"
mkdir "$mnt/many"
for i in $(seq 1 300); do echo "entry $i" >"$mnt/many/file-$i"; done
gen 4 65536 | dd of="$mnt/sparse" bs=1M seek=300 conv=notrunc status=none
(cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$img.sha256"
fusermount3 -u "$mnt"
wait "$daemon"
