#!/bin/bash
# Clean shutdown: a foreground vmfs-mount exits 0 and unmounts on SIGTERM,
# SIGINT and SIGHUP, a daemon exits after fusermount3 -u, and what was written
# (fsynced or not) is there after the next mount.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount

IMG=$T/datastore.img
MNT=$T/mnt
vmfs_mkfs "$IMG" 2G
head -c $((3 << 20)) /dev/urandom >"$T/data"

# Waits up to 30 s for the foreground daemon FG_PID and checks it exited 0.
fg_wait_clean() {
	local rc=0
	wait_until 30 not pid_alive "$FG_PID" || fail "daemon did not exit within 30 s"
	wait "$FG_PID" || rc=$?
	[ "$rc" -eq 0 ] || fail "daemon exited $rc after $1, want 0"
	not mountpoint -q "$MNT" || fail "$MNT still mounted after $1"
	released "$IMG" || fail "something still holds $IMG after $1"
}

for sig in TERM INT HUP; do
	log "SIG$sig"
	vmfs_mount_fg "$IMG" "$MNT"
	dd if="$T/data" of="$MNT/synced-$sig" bs=64K conv=fsync status=none
	cp "$T/data" "$MNT/unsynced-$sig"
	mkdir "$MNT/dir-$sig"
	kill -"$sig" "$FG_PID"
	fg_wait_clean "SIG$sig"
done

log "fusermount3 -u"
vmfs_mount "$IMG" "$MNT"
for sig in TERM INT HUP; do
	cmp "$MNT/synced-$sig" "$T/data" || fail "synced-$sig differs after SIG$sig"
	cmp "$MNT/unsynced-$sig" "$T/data" || fail "unsynced-$sig differs after SIG$sig"
	[ -d "$MNT/dir-$sig" ] || fail "dir-$sig lost after SIG$sig"
done
echo last >"$MNT/last"
daemon=$DAEMON_PID
fusermount3 -u "$MNT"
wait_until 30 not pid_alive "$daemon" || fail "daemon $daemon still running after fusermount3 -u"
not mountpoint -q "$MNT" || fail "still mounted after fusermount3 -u"

log "foreground daemon and fusermount3 -u"
vmfs_mount_fg "$IMG" "$MNT"
[ "$(cat "$MNT/last")" = last ] || fail "last lost after fusermount3 -u"
fusermount3 -u "$MNT"
fg_wait_clean "fusermount3 -u"
log "ok"
