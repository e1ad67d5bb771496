#!/bin/bash
# systemd (issue 19, point 5): the units in docs/systemd (vmfs-mount@,
# vmm@, vmm-agent), with their paths set to this build's programs as make
# install sets them, pass `systemd-analyze verify` with nothing to say; and
# vmfs-mount -f, as vmfs-mount@.service runs it (Type=notify), tells the
# notify socket READY=1 only once the datastore is mounted, and STOPPING=1
# when it is unmounted (a socket of the test's own stands in for systemd's,
# which is how sd_notify finds it: $NOTIFY_SOCKET).
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
need_cmd systemd-analyze python3 mountpoint
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}

log "systemd-analyze verify"
mkdir -p "$T/units"
for u in "$TOP"/docs/systemd/*.service; do
	sed "s|@SBINDIR@|$VMFS_BIN|g; s|@BINDIR@|$VMFS_BIN|g" "$u" >"$T/units/${u##*/}"
done
ls "$T/units"
(cd "$T/units" && systemd-analyze verify --man=no ./*.service) >"$T/verify" 2>&1 || { cat "$T/verify"; fail "systemd-analyze verify failed"; }
[ ! -s "$T/verify" ] || { cat "$T/verify"; fail "systemd-analyze verify had something to say"; }
grep -q '^Type=notify$' "$T/units/vmfs-mount@.service" || fail "vmfs-mount@.service is not Type=notify"

log "vmfs-mount -f tells its notify socket when it is ready and when it stops"
IMG=$T/ds.img
MNT=$T/mnt
vmfs_mkfs "$IMG" 256M
mkdir -p "$MNT"
MOUNTS+=("$MNT")
# the listener: each datagram as a line, with whether MNT was a mount point when it came
python3 - "$T/notify.sock" "$MNT" >"$T/notify.log" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".ready", "w").close()
while True:
    msg = s.recv(4096).decode()
    mounted = os.path.ismount(sys.argv[2])
    for line in msg.split("\n"):
        print("%s mounted=%s" % (line, mounted), flush=True)
    if "STOPPING=1" in msg:
        break
PY
PIDS+=($!)
wait_until 10 test -e "$T/notify.sock.ready" || fail "the listener did not start"
NOTIFY_SOCKET=$T/notify.sock "$VMFS_BIN/vmfs-mount" -f "$IMG" "$MNT" 2>"$T/mount.err" &
MPID=$!
PIDS+=($MPID)
ready() { grep -q '^READY=1 ' "$T/notify.log"; }
wait_until 30 ready || { cat "$T/notify.log" "$T/mount.err"; fail "no READY=1"; }
grep -q '^READY=1 mounted=True$' "$T/notify.log" || { cat "$T/notify.log"; fail "READY=1 came before the mount"; }
grep -q "^STATUS=serving $IMG on $MNT mounted=True$" "$T/notify.log" || { cat "$T/notify.log"; fail "no STATUS line"; }
echo data >"$MNT/f"
"$VMFS_BIN/vmfs-mount" -u "$MNT" || fail "vmfs-mount -u"
wait "$MPID" || fail "vmfs-mount -f exited $?"
stopping() { grep -q '^STOPPING=1 ' "$T/notify.log"; }
wait_until 10 stopping || { cat "$T/notify.log"; fail "no STOPPING=1"; }
cat "$T/notify.log"
echo "systemd: ok"
