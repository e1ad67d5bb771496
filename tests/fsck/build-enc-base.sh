#!/bin/bash
# Builds the datastore the encryption cases (a `base` file saying "enc") start
# from: the layout of build-base.sh on an encrypted datastore (keyslot 0: the
# key file KEY), files of each layout, a directory, a symlink; writes
# IMAGE.sha256 and IMAGE.inodes ("PATH INODE" for each file: names are
# encrypted, so a case finds its inode here, not by walking directories).
# Usage: build-enc-base.sh IMAGE KEY MOUNTPOINT
set -euo pipefail
img=$1 key=$2 mnt=$3
"$VMFS_BIN/mkfs.vmfs" -q -f -H 1 -T 500,4000,2500,1000 -U 0f5c0f5c-0000-4000-8000-000000000002 --size 1G \
	--encrypt --key-file "$key" "$img"
mkdir -p "$mnt"
"$VMFS_BIN/vmfs-mount" -f -o commit=0,key-file="$key" "$img" "$mnt" & daemon=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt"
gen() { python3 -c 'import sys,random; r=random.Random(int(sys.argv[1])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[2])))' "$1" "$2"; }
echo small >"$mnt/a"
gen 1 10000 >"$mnt/b"
gen 2 3000000 >"$mnt/c"
mkdir "$mnt/d"
echo e >"$mnt/d/e"
ln -s a "$mnt/s"
(cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$img.sha256"
(cd "$mnt" && find . -type f -o -type l | sort | while read -r p; do echo "${p#./} $(stat -c %i "$p")"; done) >"$img.inodes"
fusermount3 -u "$mnt"
wait "$daemon"
