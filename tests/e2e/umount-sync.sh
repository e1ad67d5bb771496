#!/bin/bash
# Unmount is finished when it returns (issue 14, point 8). With metadata left
# dirty (commit=60000, nothing fsynced), `vmfs-mount -u MOUNTPOINT` returns
# only once the daemon has written everything, left the cluster and exited:
# right after it the daemon is gone, the image hashes the same before and
# after an fsck -n that finds it clean, the journal is clean, and the data is
# there at the next mount. The same for a foreground mount. A run file left
# by a SIGKILLed daemon is stale: -u unmounts the dead mount without waiting
# and removes the file. A second daemon on a served
# mountpoint is refused before it writes anything; -u of a busy mount or of
# a directory nobody serves fails with one line.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd python3
MOUNT=$VMFS_BIN/vmfs-mount
D=$T/ds.img
vmfs_mkfs "$D" 1G
head -c $((20 << 20)) /dev/urandom >"$T/data"
journal_state() { "$VMFS_BIN/vmfsctl" info --json "$D" | python3 -c 'import json, sys; print(json.load(sys.stdin)["journal_state"])'; }

# settled_after_unmount DAEMON_PID [killed]: checks, with no wait, that the
# unmount is over (with killed, a SIGKILLed host's journal may still wait for
# recovery: the journal state is not checked)
settled_after_unmount() {
	local h1 h2
	pid_alive "$1" && fail "daemon $1 still runs after vmfs-mount -u returned"
	not mounted "$T/m" || fail "$T/m still mounted after vmfs-mount -u returned"
	h1=$(sha256sum <"$D")
	"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck -n right after vmfs-mount -u"; }
	h2=$(sha256sum <"$D")
	[ "$h1" = "$h2" ] || fail "the image changed after vmfs-mount -u returned"
	[ "${2:-}" = killed ] || [ "$(journal_state)" = clean ] || fail "journal not clean right after vmfs-mount -u"
}

# dirty: writes that stay in the daemon's memory (commit=60000, no fsync)
dirty() {
	cp "$T/data" "$T/m/data-$1"
	mkdir "$T/m/dir-$1"
	for i in $(seq 50); do echo "$1 $i" >"$T/m/dir-$1/f$i"; done
}

log "daemon: vmfs-mount -u returns after the daemon exited"
vmfs_mount "$D" "$T/m" -o commit=60000
dirty daemon
pid=$DAEMON_PID
"$MOUNT" -u "$T/m"
settled_after_unmount "$pid"

log "foreground: the same, and it exits 0"
vmfs_mount_fg "$D" "$T/m" -o commit=60000
cmp "$T/data" "$T/m/data-daemon" || fail "data written before the first unmount is lost"
[ "$(cat "$T/m/dir-daemon/f50")" = "daemon 50" ] || fail "small files written before the first unmount are lost"
dirty fg
"$MOUNT" -u "$T/m"
settled_after_unmount "$FG_PID"
wait "$FG_PID" || fail "the foreground daemon did not exit 0"

log "a served mountpoint refuses a second daemon before it writes; -u of a busy mount fails and keeps it"
vmfs_mount "$D" "$T/m"
pid=$DAEMON_PID
mkdir -p "$T/m2"
# the live daemon renews its heartbeat, so the image's hash moves: count the slots ever used instead
slots_used() { "$VMFS_BIN/vmfsctl" hosts --json "$D" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
n1=$(slots_used)
expect_one_line_failure "$MOUNT" "$D" "$T/m"
grep -q "another vmfs-mount (pid $pid) serves it" "$T/stderr" || fail "the serving daemon is not named"
n2=$(slots_used)
[ "$n1" = "$n2" ] || fail "the refused mount joined the cluster ($n1 slots used before, $n2 after)"
( cd "$T/m" && exec python3 -c 'import signal; print("in", flush=True); signal.pause()' >"$T/busy.out" ) &
busy=$!
PIDS+=("$busy")
wait_until 30 grep -qx in "$T/busy.out" || fail "the busy process did not start"
expect_one_line_failure "$MOUNT" -u "$T/m"
[ "$LAST_RC" -eq 32 ] || fail "-u of a busy mount exited $LAST_RC, want 32"
mounted "$T/m" && pid_alive "$pid" || fail "a failed -u took the mount or the daemon down"
kill "$busy"
wait "$busy" 2>/dev/null || true
"$MOUNT" -u "$T/m"
settled_after_unmount "$pid"

log "a SIGKILLed daemon's run file is stale: -u unmounts the dead mount at once and removes the file"
vmfs_mount_fg "$D" "$T/m"
kill -9 "$FG_PID"
wait "$FG_PID" 2>/dev/null || true
mounted "$T/m" || fail "the killed daemon's mount is gone (the test would prove nothing)"
runfile=$(grep -lx "$FG_PID .*" /run/vmfs-mount/*.pid) || fail "no run file names the killed daemon $FG_PID"
"$MOUNT" -u "$T/m"
not mounted "$T/m" || fail "-u left the dead mount"
[ ! -e "$runfile" ] || fail "-u left the stale run file $runfile"
vmfs_mount "$D" "$T/m"
"$MOUNT" -u "$T/m"
settled_after_unmount "$DAEMON_PID" killed

log "-u of a directory nobody serves"
expect_one_line_failure "$MOUNT" -u "$T/m2"
[ "$LAST_RC" -eq 32 ] || fail "-u of an unserved directory exited $LAST_RC, want 32"
log "ok"
