#!/bin/bash
# The harness itself: a test that fails while its FUSE daemon is stuck still
# cleans up. A child test mounts a datastore, pins the mount (a process whose
# working directory is in it, so fusermount3 -u finds it busy), stops the
# daemon with SIGSTOP, and fails. Its cleanup must end on its own (no stat or
# umount(8) that waits on the stopped daemon), kill the daemon, detach the
# mount and remove its temporary directory.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount
need_cmd timeout

cat >"$T/child.sh" <<EOF
. "$(realpath "$(dirname "$0")")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount
vmfs_mkfs "\$T/ds.img" 256M
vmfs_mount_fg "\$T/ds.img" "\$T/m"
(cd "\$T/m" && exec sleep 600) &
echo "\$FG_PID \$! \$T" >"\$1"
kill -STOP "\$FG_PID"
fail "deliberate, with the daemon stopped"
EOF

log "a test fails with its daemon stopped and its mount busy"
rc=0
timeout -k 5 90 bash "$T/child.sh" "$T/state" >"$T/child.log" 2>&1 || rc=$?
read -r daemon pin child_t <"$T/state" || fail "the child test did not get as far as mounting"
PIDS+=("$pin")
[ "$rc" = 1 ] || { cat "$T/child.log"; fail "the failing test exited $rc, not 1 (124: its cleanup hung)"; }
grep -q "FAIL: deliberate" "$T/child.log" || { cat "$T/child.log"; fail "the child failed for another reason"; }
not pid_alive "$daemon" || fail "the stopped daemon ($daemon) outlived the cleanup"
not mounted "$child_t/m" || fail "$child_t/m is still mounted"
[ ! -e "$child_t" ] || fail "the cleanup left $child_t"
echo "   cleaned up: daemon gone, mount detached, $child_t removed"
