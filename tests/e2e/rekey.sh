#!/bin/bash
# Deep rekey (issue 17, point 5): vmfsctl rekey --deep.
#  - through a mount, while a writer keeps writing the disk (random 4 KiB
#    writes at seeded offsets, each recorded with the time it returned) and a
#    snapshot and a clone share its blocks: the writer's writes land during
#    the rekey (its times fall between the rekey's start and end), every
#    write reads back after it, the rest of the disk is as it was, the
#    snapshot and the clone read as they were; fsck finds nothing; a fresh
#    mount reads the same;
#  - the folder's names are rekeyed with its files (the folder is listed
#    with them); a second host (another mount) that read the disk and
#    listed the folder before the rekey reads and lists them right after
#    it, without a remount;
#  - a rekey host killed mid-way (SIGKILL, its lock and journal left
#    behind): the next run takes the lock over, resumes and finishes; the
#    disk reads as it was and fsck finds nothing;
#  - on the device (a host of its own): --all rekeys every file, symlink
#    and directory, and every name is listed and found after it; a file
#    another host (the mount) has open is refused with that host's name and
#    nothing changes; a wrong key exits 3; a datastore without encryption
#    exits 1 with one line.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd python3
D=$T/ds.img
M=$T/m
head -c 32 /dev/urandom >"$T/key"
head -c 32 /dev/urandom >"$T/wrong"
KEY=(--key-file "$T/key")

log "an encrypted datastore: a VM folder with a 96 MiB disk, a snapshot and a clone of it"
vmfs_mkfs "$D" 1G --encrypt "${KEY[@]}"
vmfs_mount "$D" "$M" -o key-file="$T/key"
mkdir "$M/vm"
head -c $((96 << 20)) /dev/urandom >"$T/orig"
cp "$T/orig" "$M/vm/disk"
echo "memory=512" >"$M/vm/vm.conf"
LINK=$(printf 'l%.0s' {1..1000}) # a target in a unit of its own
ln -s "$LINK" "$M/vm/link"
"$VMFS_BIN/vmfsctl" snapshot create "$M" vm --name before >/dev/null || fail "snapshot"
"$VMFS_BIN/vmfsctl" clone "$M" vm/disk vm/clone >/dev/null || fail "clone"

log "a second host reads the disk before the rekey"
M2=$T/m2
vmfs_mount "$D" "$M2" -o key-file="$T/key"
P2=$DAEMON_PID
cmp "$T/orig" "$M2/vm/disk" || fail "the second host reads the disk wrong before the rekey"
NAMES=$(ls -A "$M2/vm" | tr '\n' ' ')
[ "$NAMES" = "clone disk link vm.conf " ] || fail "the second host lists vm/ as: $NAMES"

log "rekey through the mount while a writer writes the disk"
cat >"$T/writer.py" <<'PY'
import os, random, sys, time
path, ledger, ready, stop = sys.argv[1:5]
fd = os.open(path, os.O_RDWR)
size = os.fstat(fd).st_size
rng = random.Random(7)
n = 0
with open(ledger, "w") as led:
    while not os.path.exists(stop):
        off = rng.randrange(size // 4096) * 4096
        data = rng.randbytes(4096)
        os.pwrite(fd, data, off)
        if n % 16 == 0:
            os.fsync(fd)
        led.write("%d %d %.6f\n" % (n, off, time.time()))
        n += 1
        if n == 50:
            open(ready, "w").close()
    os.fsync(fd)
os.close(fd)
PY
python3 "$T/writer.py" "$M/vm/disk" "$T/ledger" "$T/ready" "$T/stop" &
WRITER=$!
PIDS+=("$WRITER")
wait_until 30 test -e "$T/ready" || fail "the writer did not start"
t0=$EPOCHREALTIME
"$VMFS_BIN/vmfsctl" rekey --deep "$M" vm >"$T/rekey.out" || fail "rekey through the mount failed"
t1=$EPOCHREALTIME
touch "$T/stop"
wait "$WRITER" || fail "the writer failed"
grep -q "^3 files and 1 directory rekeyed" "$T/rekey.out" || fail "rekey said: $(cat "$T/rekey.out")"
during=$(awk -v a="$t0" -v b="$t1" '$3 > a && $3 < b' "$T/ledger" | wc -l)
log "rekey of vm/ (96 MiB disk, clone, vm.conf) took $(elapsed "$t0"); the writer made $during writes meanwhile"
[ "$during" -gt 0 ] || fail "no write landed while the rekey ran: it did not run online"

# The model: the original disk with the writer's writes replayed (same seed).
cat >"$T/model.py" <<'PY'
import random, sys
orig, ledger, out = sys.argv[1:4]
b = bytearray(open(orig, "rb").read())
rng = random.Random(7)
n = sum(1 for _ in open(ledger))
for i in range(n):
    off = rng.randrange(len(b) // 4096) * 4096
    b[off:off + 4096] = rng.randbytes(4096)
open(out, "wb").write(b)
PY
python3 "$T/model.py" "$T/orig" "$T/ledger" "$T/model"
cmp "$T/model" "$M/vm/disk" || fail "the disk does not hold what was written during the rekey"
cmp "$T/orig" "$M/vm/.snapshots/disk@before" || fail "the snapshot changed"
cmp "$T/orig" "$M/vm/clone" || fail "the clone changed"
[ "$(cat "$M/vm/vm.conf")" = "memory=512" ] || fail "vm.conf changed"
cmp "$T/model" "$M2/vm/disk" || fail "the second host does not read the rekeyed disk right"
cmp "$T/orig" "$M2/vm/clone" || fail "the second host does not read the rekeyed clone right"
[ "$(ls -A "$M2/vm" | tr '\n' ' ')" = "$NAMES" ] || fail "the second host lists vm/ as: $(ls -A "$M2/vm")"
vmfs_umount_pid "$M2" "$P2"

log "on the device: a file the mount has open is refused with the holder's name"
exec 7<>"$M/vm/disk"
sum=$(sha256sum <"$D")
expect_one_line_failure "$VMFS_BIN/vmfsctl" rekey --deep "$D" vm/disk "${KEY[@]}"
grep -q "in use by" "$T/stderr" || fail "the refusal does not name the holder"
exec 7<&-
vmfs_umount "$M" "$D"
"$VMFS_BIN/fsck.vmfs" -n -f "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck after the rekey"; }

log "on the device: a wrong key exits 3 and writes nothing; --all rekeys every file"
sum=$(sha256sum <"$D")
expect_one_line_failure "$VMFS_BIN/vmfsctl" rekey --deep "$D" --all --key-file "$T/wrong"
[ "$LAST_RC" -eq 3 ] || fail "a wrong key: exit $LAST_RC, want 3"
[ "$(sha256sum <"$D")" = "$sum" ] || fail "a refused rekey changed the datastore"
"$VMFS_BIN/vmfsctl" rekey --deep --json "$D" --all "${KEY[@]}" >"$T/all.json" || fail "rekey --all failed"
[ "$(jq -r '"\(.rekeyed) \(.directories)"' "$T/all.json")" = "4 3" ] ||
	fail "rekey --all (3 files, a symlink; /, /lost+found, /vm): $(cat "$T/all.json")"
"$VMFS_BIN/fsck.vmfs" -n -f "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck after rekey --all"; }
vmfs_mount "$D" "$M" -o key-file="$T/key"
cmp "$T/model" "$M/vm/disk" || fail "the disk after rekey --all"
cmp "$T/orig" "$M/vm/.snapshots/disk@before" || fail "the snapshot after rekey --all"
cmp "$T/orig" "$M/vm/clone" || fail "the clone after rekey --all"
[ "$(readlink "$M/vm/link")" = "$LINK" ] || fail "the symlink after rekey --all"
[ "$(ls -A "$M/vm" | tr '\n' ' ')" = "$NAMES" ] || fail "vm/ lists after rekey --all as: $(ls -A "$M/vm")"
vmfs_umount "$M" "$D"

log "a rekey host killed mid-way: the next run takes its lock over and finishes the file"
K=$T/k.img
vmfs_mkfs "$K" 1G --encrypt "${KEY[@]}" -H 8 -T 400,3200,2000,800 # a dead host's lock is taken over in about 3 s
vmfs_mount "$K" "$M" -o key-file="$T/key"
head -c $((256 << 20)) /dev/urandom >"$T/big"
cp "$T/big" "$M/big"
vmfs_umount "$M" "$K"
"$VMFS_BIN/vmfsctl" rekey --deep "$K" big "${KEY[@]}" >/dev/null 2>&1 &
RK=$!
PIDS+=("$RK")
# the kill lands once the rekey holds the file's lock (or, on a fast machine, after it finished)
wait_until 30 sh -c "'$VMFS_BIN/vmfsctl' locks --json '$K' big --key-file '$T/key' | grep -q exclusive ||
	! kill -0 $RK 2>/dev/null" || fail "the rekey never took the file's lock"
kill -9 "$RK" 2>/dev/null || true
wait "$RK" 2>/dev/null && log "   (the rekey had finished before the kill)"
"$VMFS_BIN/vmfsctl" rekey --deep "$K" big "${KEY[@]}" >"$T/rekey2.out" || fail "the rekey after the kill failed"
"$VMFS_BIN/fsck.vmfs" -n -f "$K" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck after the killed rekey"; }
vmfs_mount "$K" "$M" -o key-file="$T/key"
cmp "$T/big" "$M/big" || fail "the file after a killed and resumed rekey"
vmfs_umount "$M" "$K"

log "on a terminal the rekey shows its progress; without one it prints none"
script -qec "'$VMFS_BIN/vmfsctl' rekey --deep '$K' big --key-file '$T/key'" /dev/null >"$T/tty.out" </dev/null ||
	fail "the rekey on a terminal failed"
grep -q "rekey 1/1 big" "$T/tty.out" && grep -q "100%" "$T/tty.out" ||
	fail "no progress on a terminal: $(tr '\r' '\n' <"$T/tty.out" | tail -n 3)"
! grep -q "%" "$T/rekey2.out" || fail "progress printed without a terminal"

log "a datastore without encryption: one line, exit 1"
vmfs_mkfs "$T/plain.img" 256M
vmfs_mount "$T/plain.img" "$M"
echo x >"$M/f"
vmfs_umount "$M" "$T/plain.img"
expect_one_line_failure "$VMFS_BIN/vmfsctl" rekey --deep "$T/plain.img" f
[ "$LAST_RC" -eq 1 ] || fail "a plain datastore: exit $LAST_RC, want 1"
grep -q "not encrypted" "$T/stderr" || fail "the refusal does not say the datastore is not encrypted"
log ok
