#!/bin/bash
# Snapshots, revert, delete, diff and clones through vmfsctl (issue 16, points
# 2, 5, 7 and 11), with a VM folder on a mounted datastore:
#  - a folder's files are snapshotted together; a write, a diff that names
#    exactly the changed block, a revert that brings back every byte (checked
#    by sha256 through a mount); revert to A, write, snapshot C: C's parent is A;
#  - a clone of a snapshot holds the snapshot's bytes and stays as it was when
#    its source is written and deleted;
#  - a file a mount holds open for writing is refused, naming the mount's
#    host, and allowed through that mount (vmfsctl ... MOUNTPOINT ...); once closed, a snapshot and a revert made while it is mounted are
#    what the mount reads, and DIR/.snapshots/FILE@NAME reads each snapshot
#    (read-only, hidden from readdir) while the file is open for writing; a
#    snapshot open there is busy for other hosts, and deleted through the
#    mount it stays readable by the open file until closed;
#  - bad input (missing file, folder or snapshot, a duplicate, over-long or
#    '/'-holding name, a clone onto an existing path) fails with one line,
#    exit 1, and leaves the image byte for byte as it was;
#  - deleting every snapshot and clone gives back every block: free space and
#    journals add up to what a datastore that never had them shows.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
CTL=$VMFS_BIN/vmfsctl
D=$T/ds.img
M=$T/m
vmfs_mkfs "$D" 256M -T 400,3200,2000,800   # shorter timings: each changing vmfsctl joins faster
fresh_free=$("$CTL" info --json "$D" | python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["free_bytes"] + i["pools"] * 4096)')

# unchanged_by COMMAND...: COMMAND fails with one line, exit 1, and the image keeps its hash
unchanged_by() {
	local before after
	before=$(sha256sum <"$D")
	expect_one_line_failure "$@"
	[ "$LAST_RC" -eq 1 ] || fail "$*: exit $LAST_RC, want 1"
	after=$(sha256sum <"$D")
	[ "$before" = "$after" ] || fail "$*: the datastore changed though the command was refused"
}
sum() { sha256sum <"$1" | cut -d' ' -f1; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

log "a VM folder: a disk and its vm.conf"
vmfs_mount "$D" "$M"
mkdir "$M/vm"
head -c $((12 << 20)) /dev/urandom >"$T/disk.a"
cp "$T/disk.a" "$M/vm/disk0"
printf 'name=vm\nmemory=64\n' >"$M/vm/vm.conf"
cp "$M/vm/vm.conf" "$T/conf.a"
vmfs_umount "$M" "$D"

log "snapshot A of the folder: both files, one transaction"
out=$("$CTL" snapshot create --json "$D" /vm --name A)
[ "$(echo "$out" | jq_py 'len(d["files"])')" = 2 ] || fail "snapshot A: $out"

log "writes after A: a diff names exactly the 4 KiB grains written"
vmfs_mount "$D" "$M"
dd if=/dev/urandom of="$M/vm/disk0" bs=4096 seek=$(((5 << 20) / 4096 + 3)) count=2 conv=notrunc status=none
echo "cpus=2" >>"$M/vm/vm.conf"
cp "$M/vm/disk0" "$T/disk.b"
vmfs_umount "$M" "$D"
ext=$("$CTL" snapshot diff --json "$D" /vm/disk0 A | jq_py '[(e["offset"], e["length"]) for e in d["extents"]]')
[ "$ext" = "[(5255168, 8192)]" ] || fail "diff A..live: $ext, want the two grains written at 5 MiB + 12 KiB"
[ "$("$CTL" snapshot diff "$D" /vm/disk0 A | wc -l)" = 1 ] || fail "the text diff is not one line"

log "revert the folder to A: every byte back"
"$CTL" snapshot revert "$D" /vm A
vmfs_mount "$D" "$M"
[ "$(sum "$M/vm/disk0")" = "$(sum "$T/disk.a")" ] || fail "disk0 is not A's after the revert"
[ "$(sum "$M/vm/vm.conf")" = "$(sum "$T/conf.a")" ] || fail "vm.conf is not A's after the revert"
dd if=/dev/urandom of="$M/vm/disk0" bs=1M seek=1 count=1 conv=notrunc status=none
cp "$M/vm/disk0" "$T/disk.c"
vmfs_umount "$M" "$D"
"$CTL" snapshot create "$D" /vm --name C
tree=$("$CTL" snapshot list --json "$D" /vm)
[ "$(echo "$tree" | jq_py '[s["parent"] for s in d[0]["snapshots"] if s["name"] == "C"][0]')" = A ] ||
	fail "C's parent is not A: $tree"
[ "$(echo "$tree" | jq_py 'd[0]["parent"]')" = C ] || fail "the live disk does not descend from C: $tree"
"$CTL" snapshot list "$D" /vm | grep -q "(now: the live file)" || fail "list shows no live file"

log "a clone of A, then its source is written and deleted"
"$CTL" clone "$D" /vm/disk0@A /gold
vmfs_mount "$D" "$M"
[ "$(sum "$M/gold")" = "$(sum "$T/disk.a")" ] || fail "the clone of A does not hold A's bytes"
dd if=/dev/urandom of="$M/vm/disk0" bs=1M count=12 conv=notrunc status=none
[ "$(sum "$M/gold")" = "$(sum "$T/disk.a")" ] || fail "writing the source changed the clone"

log "a file open for writing on another host is refused, naming it"
exec 7<>"$M/vm/disk0"
expect_one_line_failure "$CTL" snapshot create "$D" /vm/disk0 --name busy
grep -q "in use by .*vmfs-mount" "$T/stderr" || fail "the refusal does not name the mount: $(cat "$T/stderr")"
log "through the mount that holds it open (DEVICE given as the mountpoint): allowed, durable at once"
"$CTL" snapshot create "$M" /vm/disk0 --name M >/dev/null
[ "$(sum "$M/vm/.snapshots/disk0@M")" = "$(sum "$M/vm/disk0")" ] || fail "disk0@M is not the disk"
"$CTL" snapshot list --json "$M/vm" /vm/disk0 | grep -q '"name":"M"' || fail "list through the mount misses M"
"$CTL" clone "$M" /vm/disk0@M /via-mount
[ "$(sum "$M/via-mount")" = "$(sum "$M/vm/disk0")" ] || fail "the clone made through the mount differs"
"$CTL" snapshot delete "$M" /vm/disk0 M
[ -e "$M/vm/.snapshots/disk0@M" ] && fail "M still shows after its delete"
rm "$M/via-mount"
exec 7>&-
log "a snapshot and a revert while it is mounted: the mount reads them"
"$CTL" snapshot create "$D" /vm/disk0 --name D
cp "$M/vm/disk0" "$T/disk.d"

log "DIR/.snapshots/FILE@NAME: a consistent image read while the file is written"
exec 7<>"$M/vm/disk0"
dd if=/dev/urandom bs=1M count=3 seek=2 conv=notrunc status=none >&7
[ "$(sum "$M/vm/.snapshots/disk0@D")" = "$(sum "$T/disk.d")" ] || fail "disk0@D does not read as the disk did at D"
[ "$(sum "$M/vm/.snapshots/disk0@A")" = "$(sum "$T/disk.a")" ] || fail "disk0@A does not read as A"
exec 7>&-
ls "$M/vm/.snapshots" | sort | tr '\n' ' ' | grep -qx "disk0@A disk0@C disk0@D vm.conf@A vm.conf@C " ||
	fail "the view lists $(ls "$M/vm/.snapshots" | tr '\n' ' ')"
ls -a "$M/vm" | grep -q snapshots && fail "readdir lists the hidden .snapshots"
echo x 2>/dev/null >>"$M/vm/.snapshots/disk0@A" && fail "a snapshot was written through the view"
touch "$M/vm/.snapshots/new" 2>/dev/null && fail "a file was made in the view"
[ "$(stat -c %A "$M/vm/.snapshots/disk0@A")" = "-r--r--r--" ] || fail "a snapshot in the view is not read-only"

log "a snapshot open in the view: another host cannot delete it; the mount can, and its reader keeps the bytes"
exec 8<"$M/vm/.snapshots/disk0@A"
expect_one_line_failure "$CTL" snapshot delete "$D" /vm/disk0 A
grep -q "busy" "$T/stderr" || fail "deleting a snapshot another host reads is not refused as busy"
"$CTL" snapshot delete "$M" /vm/disk0 A
[ -e "$M/vm/.snapshots/disk0@A" ] && fail "disk0@A still shows after its delete"
[ "$(sha256sum <&8 | cut -d' ' -f1)" = "$(sum "$T/disk.a")" ] || fail "the open reader lost the deleted snapshot's bytes"
exec 8<&-
dd if=/dev/urandom of="$M/vm/disk0" bs=1M count=2 conv=notrunc status=none
"$CTL" snapshot revert "$D" /vm/disk0 C
[ "$(sum "$M/vm/disk0")" = "$(sum "$T/disk.c")" ] || fail "the mount does not read the revert made by another host"

log "cp within the mount shares blocks (copy_file_range): no space used, unaligned edges copied"
mkdir "$M/cp"
head -c $((64 << 20)) /dev/urandom >"$M/cp/src"
src_sum=$(sum "$M/cp/src")
used0=$(df -B1 --output=used "$M" | tail -1)
cp "$M/cp/src" "$M/cp/dst"
used1=$(df -B1 --output=used "$M" | tail -1)
[ $((used1 - used0)) -lt $((1 << 20)) ] || fail "cp of 64 MiB used $((used1 - used0)) bytes"
cmp "$M/cp/src" "$M/cp/dst" || fail "the shared copy differs"
python3 - "$M/cp" <<'PY' || fail "an unaligned copy_file_range is wrong"
import os, sys
d = sys.argv[1]
src = os.open(f"{d}/src", os.O_RDONLY)
for name, so, do, n in (("a", 1000, 1000, (5 << 20) + 123), ("b", 4096, 0, 3 << 20), ("c", 7, 1 << 20, 70000)):
    dst = os.open(f"{d}/{name}", os.O_RDWR | os.O_CREAT, 0o644)
    got = 0
    while got < n:
        k = os.copy_file_range(src, dst, n - got, offset_src=so + got, offset_dst=do + got)
        assert k > 0
        got += k
    assert os.pread(dst, n, do) == os.pread(src, n, so), name
    assert os.pread(dst, do, 0) == bytes(do), name
    os.close(dst)
PY
dd if=/dev/zero of="$M/cp/dst" bs=1M seek=3 count=1 conv=notrunc status=none
[ "$(sum "$M/cp/src")" = "$src_sum" ] || fail "writing the copy changed its source"
cmp -s "$M/cp/src" "$M/cp/dst" && fail "writing the copy did not change it"
[ "$(cmp "$M/cp/src" "$M/cp/dst" | awk '{print $5}' | tr -d ,)" -gt $((3 << 20)) ] ||
	fail "the copy differs before the block written"
vmfs_umount "$M" "$D"

log "bad input: one line, exit 1, the image unchanged"
long=$(printf 'x%.0s' $(seq 300))
unchanged_by "$CTL" snapshot create "$D" /vm/nothere --name X
unchanged_by "$CTL" snapshot create "$D" /nofolder/disk0 --name X
unchanged_by "$CTL" snapshot create "$D" /vm --name A
grep -q "snapshot 'A' exists" "$T/stderr" || fail "a duplicate is not named as such"
unchanged_by "$CTL" snapshot create "$D" /vm --name "$long"
grep -q "too long" "$T/stderr" || fail "an over-long name is not named as such"
unchanged_by "$CTL" snapshot create "$D" /vm --name a/b
unchanged_by "$CTL" snapshot revert "$D" /vm nope
grep -q "no snapshot 'nope'" "$T/stderr" || fail "a missing snapshot is not named"
unchanged_by "$CTL" snapshot delete "$D" /vm nope
unchanged_by "$CTL" snapshot delete "$D" /vm/nothere A
unchanged_by "$CTL" snapshot diff "$D" /vm/disk0 nope
unchanged_by "$CTL" clone "$D" /vm/disk0@nope /other
unchanged_by "$CTL" clone "$D" /vm/disk0 /gold
grep -q "/gold: exists" "$T/stderr" || fail "a clone onto an existing path is not named"
unchanged_by "$CTL" clone "$D" /vm/disk0 /nofolder/x
rc=0
"$CTL" snapshot >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "bad usage: exit $rc, want 2"

log "snapshots read back after all that, and fsck is clean"
vmfs_mount "$D" "$M"
"$CTL" clone "$D" /vm/disk0@D /d-check
[ "$(sum "$M/d-check")" = "$(sum "$T/disk.d")" ] || fail "snapshot D does not hold what the disk held"
vmfs_umount "$M" "$D"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck -n found problems"; }

log "every snapshot and clone deleted: every block back"
for s in A C D; do "$CTL" snapshot delete "$D" /vm "$s"; done
[ "$("$CTL" snapshot list --json "$D" /vm | jq_py 'sum(len(f["snapshots"]) for f in d)')" = 0 ] ||
	fail "snapshots left after deleting them all"
vmfs_mount "$D" "$M"
rm -r "$M/vm" "$M/gold" "$M/d-check" "$M/cp"
vmfs_umount "$M" "$D"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck -n found problems at the end"; }
end_free=$("$CTL" info --json "$D" | python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["free_bytes"] + i["pools"] * 4096 + i["journal_bytes"])')
[ "$end_free" = "$fresh_free" ] || fail "free space plus journals is $end_free, a fresh datastore has $fresh_free"
log "ok"
