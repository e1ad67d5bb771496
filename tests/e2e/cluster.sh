#!/bin/bash
# Two hosts on one datastore (two vmfs-mount daemons of one file), coordinating
# through the disk only: changes on one show on the other; a file open for
# writing is locked against the other host (EBUSY, and vmfsctl locks names the
# holder); vmfsctl hosts lists both; fsck refuses to repair while they live; a
# host killed with SIGKILL loses its file to the other within the dead time,
# with its fsync'd data intact; a host stopped past the takeover time writes
# nothing once it resumes (it is fenced). Fast cluster timings (-T) keep it short.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl
need_cmd python3
IMG=$T/ds.img A=$T/a B=$T/b
DEAD_MS=3200
vmfs_mkfs "$IMG" 2G -H 16 -T 400,$DEAD_MS,2000,800 # room for a loaded box: a 1 s fence was missed there

vmfs_mount "$IMG" "$A"; PA=$DAEMON_PID
vmfs_mount_fg "$IMG" "$B" 2>"$T/b.err"; PB=$FG_PID # in the foreground: its complaints on stderr

log "vmfsctl hosts lists both hosts alive"
out=$("$VMFS_BIN/vmfsctl" hosts "$IMG")
echo "$out"
[ "$(grep -c ' alive ' <<<"$out")" -eq 2 ] || fail "vmfsctl hosts: want 2 alive hosts"
"$VMFS_BIN/vmfsctl" hosts --json "$IMG" | python3 -c '
import json, sys
h = json.load(sys.stdin)
alive = [x for x in h if x["state"] == "alive"]
assert len(alive) == 2 and len({x["slot"] for x in alive}) == 2 and len({x["uuid"] for x in alive}) == 2, h
' || fail "vmfsctl hosts --json"

# seen_on MNT CMD...: waits (bounded) until CMD holds there; prints how long it took
seen() { local t0=$EPOCHREALTIME; wait_until 5 "$@" || return 1; echo "   seen after $(elapsed "$t0")"; }
has() { [ -e "$1" ]; }
gone() { [ ! -e "$1" ]; }
content_is() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
size_is() { [ "$(stat -c %s "$1" 2>/dev/null)" = "$2" ]; }

log "A's changes show on B, and B's on A"
mkdir "$A/d"
echo one >"$A/d/f"
seen content_is "$B/d/f" one || fail "a file created on A does not show on B"
mv "$A/d/f" "$A/d/g"
seen has "$B/d/g" || fail "a rename on A does not show on B"
seen gone "$B/d/f" || fail "the old name still shows on B"
echo two >"$A/d/g"
seen content_is "$B/d/g" two || fail "a rewrite on A does not show on B"
truncate -s 100000 "$A/d/g"
seen size_is "$B/d/g" 100000 || fail "a truncate on A does not show on B"
echo three >"$B/d/h"
seen content_is "$A/d/h" three || fail "a file created on B does not show on A"
rm "$A/d/g"
seen gone "$B/d/g" || fail "an unlink on A does not show on B"

log "a file open for writing on A is locked against B"
exec 7>>"$A/d/h"
try_open() { # MNTFILE MODE -> prints the errno name or ok
	python3 -c '
import errno, os, sys
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY if sys.argv[2] == "w" else os.O_RDONLY))
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$1" "$2"
}
[ "$(try_open "$B/d/h" w)" = EBUSY ] || fail "B opened for writing a file A has open for writing"
[ "$(try_open "$B/d/h" r)" = EBUSY ] || fail "B opened for reading a file A has open for writing"
[ "$(try_open "$A/d/h" w)" = ok ] || fail "A cannot open its own locked file again"
grep -q "inode [0-9]*: locked by .*slot" "$T/b.err" || fail "B did not say who holds the lock: $(head -c 400 "$T/b.err")"
out=$("$VMFS_BIN/vmfsctl" locks "$IMG" /d/h "${KEY_ARGS[@]}")
echo "$out"
slot_a=$("$VMFS_BIN/vmfsctl" hosts --json "$IMG" | python3 -c '
import json, sys
print(min(x["slot"] for x in json.load(sys.stdin) if x["state"] == "alive"))')
grep -q "exclusive" <<<"$out" || fail "vmfsctl locks does not show the exclusive lock"
"$VMFS_BIN/vmfsctl" locks --json "$IMG" /d/h "${KEY_ARGS[@]}" | python3 -c '
import json, sys
l = json.load(sys.stdin)
assert len(l) == 1 and l[0]["mode"] == "exclusive", l' || fail "vmfsctl locks --json"
exec 7>&-
wait_until 5 eval '[ "$(try_open "$B/d/h" w)" = ok ]' || fail "B cannot open the file after A closed it"
exec 7<"$A/d/h"
[ "$(try_open "$B/d/h" r)" = ok ] || fail "read-only opens on two hosts do not share"
[ "$(try_open "$B/d/h" w)" = EBUSY ] || fail "B opened for writing a file A has open for reading"
exec 7<&-

log "fsck refuses to repair while hosts are alive; fsck -n warns"
rc=0; out=$("$VMFS_BIN/fsck.vmfs" -fy "$IMG" 2>&1) || rc=$?
echo "   fsck -fy -> exit $rc: $out"
[ $rc -eq 8 ] && grep -q "alive" <<<"$out" || fail "fsck -y ran while hosts were alive"
rc=0; out=$("$VMFS_BIN/fsck.vmfs" -fn "$IMG" 2>&1) || rc=$?
grep -q "warning: 2 hosts are alive" <<<"$out" || fail "fsck -n did not warn about the live hosts: $out"

log "SIGKILL: a host dies holding a file open for writing, with transactions in flight"
python3 - "$A/k" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, bytes([7]) * (1 << 20))
os.fsync(fd)
os.write(fd, bytes([8]) * (1 << 20))   # not fsync'd: may or may not survive
PY
exec 7>>"$A/k"
( for i in $(seq 1 100000); do touch "$A/spin.$i" 2>/dev/null || exit 0; done ) & spinner=$!
PIDS+=("$spinner")
wait_until 5 has "$A/spin.20" || fail "the creating loop on A did not start"
t0=$EPOCHREALTIME
kill -9 "$PA"
wait_until 10 not pid_alive "$PA" || fail "SIGKILL did not stop A's daemon"
exec 7>&-
wait "$spinner" 2>/dev/null || true
takeover() { [ "$(try_open "$B/k" w)" = ok ]; }
wait_until 30 takeover || fail "B could not take A's file over"
echo "   B took the file over $(elapsed "$t0") after the SIGKILL (dead time ${DEAD_MS} ms)"
python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
assert len(d) >= 1 << 20 and d[:1 << 20] == bytes([7]) * (1 << 20), "fsync'\''d data changed"
assert all(b in (7, 8, 0) for b in d[1 << 20:]), "bytes never written"' "$B/k" || fail "A's fsync'd data is not intact"
fusermount3 -u "$A" 2>/dev/null || umount -l "$A"

log "SIGSTOP past the takeover time: the stopped host writes nothing after it"
vmfs_mount_fg "$IMG" "$A" 2>"$T/a.err"; PA=$FG_PID
python3 - "$A/s" "$T/writer.log" <<'PY' & writer=$!
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
with open(sys.argv[2], "w") as log:
    while True:
        try:
            os.write(fd, b"A %08d\n" % n)
            os.fsync(fd)
        except OSError as e:
            log.write("error %d after %d\n" % (e.errno, n)); log.flush()
            sys.exit(0)
        n += 1
        log.write("%d\n" % n); log.flush()
PY
PIDS+=("$writer")
wait_until 5 has "$A/s" || fail "the writer on A did not start"
wait_until 5 eval '[ "$(wc -l <"$T/writer.log")" -gt 20 ]' || fail "the writer on A makes no progress"
kill -STOP "$PA"
t0=$EPOCHREALTIME
takeover_s() { [ "$(try_open "$B/s" w)" = ok ]; }
wait_until 30 takeover_s || { kill -CONT "$PA"; fail "B could not take the stopped host's file over"; }
echo "   B took the file over $(elapsed "$t0") after the SIGSTOP"
exec 7>>"$B/s"
echo "B took over" >&7
sync "$B/s"
before=$(sha256sum <"$B/s")
kill -CONT "$PA"
wait_until 20 eval 'grep -q error "$T/writer.log"' || fail "the resumed host's writes did not fail"
grep error "$T/writer.log"
grep -q "error 5 " "$T/writer.log" || fail "the resumed host's write failed, but not with EIO"
[ "$(grep -c "lost its heartbeat lease (fenced)" "$T/a.err")" = 1 ] ||
	fail "the fenced host did not say so exactly once: $(head -c 600 "$T/a.err")"
[ "$(sha256sum <"$B/s")" = "$before" ] || fail "a write from the stopped host landed after the takeover"
tail -n1 "$B/s" | grep -q "B took over" || fail "B's own write is not the last one"
exec 7>&-
fusermount3 -u "$A" 2>/dev/null || umount -l "$A"
wait_until 20 not pid_alive "$PA" || kill -9 "$PA"

log "-o watchdog: petted at each heartbeat, closed with the magic 'V' on unmount; a missing one is refused"
: >"$T/wd"
vmfs_mount "$IMG" "$T/w" -o watchdog="$T/wd"; PW=$DAEMON_PID
petted() { [ "$(stat -c %s "$T/wd")" -ge 3 ]; }
wait_until 10 petted || fail "the watchdog is not petted"
vmfs_umount_pid "$T/w" "$PW"
[ "$(tail -c1 "$T/wd")" = V ] || fail "the watchdog was not closed with 'V'"
rc=0; out=$("$VMFS_BIN/vmfs-mount" -o watchdog="$T/no/such/watchdog" "$IMG" "$T/w" 2>&1) || rc=$?
[ $rc -eq 32 ] && grep -q watchdog <<<"$out" || fail "a mount with a missing watchdog: exit $rc: $out"

log "unmount; fsck finds the datastore clean and no host left"
vmfs_umount_pid "$B" "$PB"
"$VMFS_BIN/fsck.vmfs" -fn "$IMG" || fail "fsck is not clean"
