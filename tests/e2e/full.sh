#!/bin/bash
# A full datastore stays manageable (issue 14, point 4). Allocation for file
# data stops at the reserve (one journal and 64 units), so a datastore filled
# to its last block through the mount, or by a `vmm create --disk-from` that
# runs out of space, still mounts read-write, takes a second host at once (its
# journal comes out of the reserve), lets files be deleted, and gives the space
# back; fsck is clean at every step. On a full datastore whose free blocks lie
# in short runs, a new host's journal is allocated shorter (halving down to
# 4 MiB) rather than refused. vmm create that fails leaves nothing.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd jq
D=$T/ds.img
info() { "$VMFS_BIN/vmfsctl" info --json "$D" | jq -r ".$1"; }
fsck_clean() { "$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck -fn: $1"; }; }

vmfs_mkfs "$D" 256M
reserve=$(info reserved_blocks)
log "256 MiB datastore, $(info free_blocks) free blocks, $reserve reserved"
[ "$reserve" -gt 0 ] || fail "no reserve"

log "fill through the mount: one big file, then small files, until ENOSPC"
vmfs_mount "$D" "$T/m"
rc=0
dd if=/dev/urandom of="$T/m/big" bs=1M status=none 2>"$T/dd.err" || rc=$?
[ $rc -ne 0 ] && grep -q "No space left" "$T/dd.err" || fail "dd did not end with ENOSPC (exit $rc: $(cat "$T/dd.err"))"
mkdir "$T/m/small"
n=0
while head -c 3000 /dev/urandom >"$T/m/small/f$n" 2>/dev/null; do n=$((n + 1)); done
log "big: $(stat -c %s "$T/m/big") bytes; $n small files of 3000 bytes after it"
df -B1 "$T/m" | tail -n 1
[ "$(stat -f -c %a "$T/m")" -le 16 ] || fail "statfs still shows $(stat -f -c %a "$T/m") units available for data"
sha=$(sha256sum <"$T/m/big")
vmfs_umount "$T/m" "$D"
fsck_clean "after the fill"
free=$(info free_blocks)
log "full: $free free blocks, $reserve reserved"
[ "$free" -le "$reserve" ] || fail "$free blocks free after the fill, more than the reserve $reserve"

log "it mounts read-write, and a second host joins at once (a journal from the reserve)"
vmfs_mount "$D" "$T/m"
vmfs_mount "$D" "$T/m2"
[ "$(info journals)" -eq 2 ] || fail "two hosts, $(info journals) journals"
[ "$(sha256sum <"$T/m2/big")" = "$sha" ] || fail "big reads back different"
log "delete through the second host; the space comes back"
rm "$T/m2/big"
rm -r "$T/m/small"
vmfs_umount_pid "$T/m2" "${PIDS[-1]}"
vmfs_umount "$T/m" "$D"
fsck_clean "after the delete"
after=$(info free_blocks)
log "after the delete: $after free blocks"
[ "$after" -gt $((free + 200)) ] || fail "deleting gave back $((after - free)) blocks"

log "full and fragmented: a new host gets a shorter journal when no 32 MiB extent is free"
vmfs_mkfs "$D" 512M -J 32M
vmfs_mount "$D" "$T/m"
n=0
while dd if=/dev/zero of="$T/m/f$n" bs=1M count=8 status=none 2>/dev/null; do n=$((n + 1)); done
for ((k = 0; k < n; k += 2)); do rm "$T/m/f$k"; done # free runs of 8 blocks, none of 32
sync "$T/m"
vmfs_mount "$D" "$T/m2" 2>/dev/null || fail "a second host could not join the fragmented datastore"
vmfs_umount_pid "$T/m2" "${PIDS[-1]}"
vmfs_umount "$T/m" "$D"
fsck_clean "after the short journal"
jb=$(info journal_bytes)
log "$n files of 8 MiB, every other one deleted: journals $(info journals), $((jb >> 20)) MiB"
[ "$(info journals)" -eq 2 ] && [ "$jb" -lt $((64 << 20)) ] && [ "$jb" -ge $((36 << 20)) ] ||
	fail "want a 32 MiB journal and a shorter one (4 to 16 MiB), have $(info journals) with $jb bytes"

G=$VMFS_BIN/../tests/guests/hello.bzImage
if [ -x "$VMFS_BIN/vmm" ] && [ -f "$G" ]; then
	log "vmm create --disk-from an image larger than the datastore: ENOSPC, nothing left behind"
	vmfs_mkfs "$D" 256M
	dd if=/dev/urandom of="$T/big.img" bs=1M count=600 status=none # not sparse: every block is data
	rc=0
	"$VMFS_BIN/vmm" create "$D" /vms/k --kernel "$G" --mem 16 --cpus 1 --disk-from "$T/big.img" 2>"$T/err" || rc=$?
	echo "   vmm create -> exit $rc: $(cat "$T/err")"
	[ $rc -ne 0 ] || fail "vmm create of a 600 MiB disk on 256 MiB succeeded"
	grep -q "No space left\|ENOSPC\|space" "$T/err" || fail "vmm create's error does not say the datastore is full"
	fsck_clean "after the failed vmm create"
	vmfs_mount "$D" "$T/m"
	[ ! -e "$T/m/vms/k" ] || { ls -laR "$T/m/vms"; fail "the failed vmm create left /vms/k"; }
	echo data >"$T/m/after" || fail "no write after the failed vmm create"
	vmfs_umount "$T/m" "$D"
	"$VMFS_BIN/vmm" create "$D" /vms/k --kernel "$G" --mem 16 --cpus 1 --disk 64M || fail "vmm create after the failed one"
	fsck_clean "after vmm create"
fi
log "ok"
