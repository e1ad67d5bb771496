#!/bin/bash
# Special files through the mount keep what mknod(2) gave them (issue 19,
# point 7): a character device, a block device with a large major and minor,
# a FIFO and a socket, each with its type and (devices) number, as stat
# shows them, before and after an unmount and a mount again; and fsck finds
# the datastore clean.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount fsck.vmfs
need_cmd stat python3
[ "$(id -u)" -eq 0 ] || skip "needs root (mknod of devices)"
IMG=$T/datastore.img
MNT=$T/mnt
vmfs_mkfs "$IMG" 256M
umask 022
vmfs_mount "$IMG" "$MNT"
mknod "$MNT/null" c 1 3
mknod -m 0660 "$MNT/disk" b 259 70000
mkfifo "$MNT/fifo"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$MNT/sock"
# what stat says: type, major and minor (decimal), mode
show() { stat -c '%n %F %Hr,%Lr %a' "$MNT/null" "$MNT/disk" "$MNT/fifo" "$MNT/sock" | sed "s|$MNT/||"; }
want='null character special file 1,3 644
disk block special file 259,70000 660
fifo fifo 0,0 644
sock socket 0,0 755'
show >"$T/before"
cat "$T/before"
[ "$(cat "$T/before")" = "$want" ] || fail "special files are not as made: $(cat "$T/before")"
vmfs_umount "$MNT" "$IMG"
vmfs_mount "$IMG" "$MNT"
show >"$T/after"
[ "$(cat "$T/after")" = "$want" ] || fail "after a remount: $(cat "$T/after")"
vmfs_umount "$MNT" "$IMG"
"$VMFS_BIN/fsck.vmfs" -n "$IMG" >"$T/fsck" 2>&1 || { cat "$T/fsck"; fail "fsck.vmfs -n"; }
echo "mknod: ok"
