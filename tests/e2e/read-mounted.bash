#!/bin/bash
# read-mounted.bash IMAGE: mounts IMAGE with vmfs-mount (FUSE), reads every
# regular file to its end and every symlink, lists every directory, unmounts.
# Exits 0 when all of it went well; the mount is undone even when it did not.
# A helper of fsck-property.sh (vmfs-flip -P -M), not a test: run-all.sh
# runs only *.sh. Needs VMFS_BIN.
source "$(dirname "$0")/lib.bash"
img=$1
e2e_init vmfs-mount
trap 'exit 142' ALRM	# vmfs-flip's time limit (alarm, kept across exec): clean up, then go
vmfs_mount "$img" "$T/m"
rc=0
timeout 10 find "$T/m" -type d -exec ls -la {} + >/dev/null || rc=1
timeout 10 find "$T/m" -type l -exec readlink {} + >/dev/null || rc=1
timeout 10 find "$T/m" -type f -exec cat {} + >/dev/null || rc=1
vmfs_umount "$T/m" "$img"
[ $rc -eq 0 ] || fail "reading $img through a mount met errors"
