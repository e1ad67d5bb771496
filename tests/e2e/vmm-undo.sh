#!/bin/bash
# A vmm create that fails half-way leaves nothing behind (issue 14, point 5):
# on a 256 MiB datastore a VM whose --disk-from image is 600 MiB runs out of
# space; the VM folder, the files copied so far and the parent folder it made
# are removed, the free space is what it was (but for the journal of the
# slot vmm joined with, allocated at its first join), fsck finds nothing, and the
# datastore still takes a VM that fits. A create under an existing parent
# keeps the parent.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm vmfsctl fsck.vmfs
need_cmd python3
GUEST=$VMFS_BIN/../tests/guests/hello.bzImage
[ -f "$GUEST" ] || fail "$GUEST not built"
VMM=$VMFS_BIN/vmm
D=$T/ds.img
vmfs_mkfs "$D" 256M

free_bytes() { "$VMFS_BIN/vmfsctl" info --json "$D" | python3 -c 'import json, sys; print(json.load(sys.stdin)["free_bytes"])'; }
# no_path PATH: PATH does not exist on the datastore (seen through a read-only mount)
no_path() {
	vmfs_mount "$D" "$T/m" -o ro
	local there=0
	[ -e "$T/m$1" ] && there=1
	{ ls -la "$T/m" "$T/m$1" 2>/dev/null || true; } | sed 's/^/   /'
	vmfs_umount "$T/m" "$D"
	[ "$there" -eq 0 ] || fail "$1 is left on the datastore"
}
fsck_clean() {
	"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck -n: $1"; }
}

# a 600 MiB image with no all-zero MiB (a sparse copy would skip those)
{ yes vmfs-undo || true; } | head -c 600M >"$T/big.img"

log "vmm create --disk-from 600 MiB on a 256 MiB datastore: ENOSPC, nothing left"
free0=$(free_bytes)
rc=0
"$VMM" create "$D" /vms/big --kernel "$GUEST" --mem 32 --cpus 1 --disk-from "$T/big.img" 2>"$T/err" || rc=$?
cat "$T/err"
[ "$rc" -ne 0 ] || fail "vmm create of a 600 MiB disk on 256 MiB succeeded"
grep -q "No space left on device" "$T/err" || fail "ENOSPC not reported"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line on stderr (a cleanup failed?)"
no_path /vms
free1=$(free_bytes)
jsize=$("$VMFS_BIN/vmfsctl" info --json "$D" | python3 -c 'import json, sys; print(json.load(sys.stdin)["journal_size"])')
echo "   free bytes before $free0, after $free1 (the host's journal, allocated at its first join, is $jsize)"
# a few KiB of metadata may stay (a directory or inode table block); fsck below checks the accounting
[ "$((free1 + jsize + (1 << 20)))" -ge "$free0" ] || fail "the failed create did not give back its space ($free0 before, $free1 after)"
fsck_clean "after the failed create"

log "the datastore still takes a VM that fits; a failed create under an existing parent keeps the parent"
"$VMM" create "$D" /vms/small --kernel "$GUEST" --mem 32 --cpus 1 --disk 16M
rc=0
"$VMM" create "$D" /vms/big --kernel "$GUEST" --mem 32 --cpus 1 --disk 1M --disk-from "$T/big.img" 2>"$T/err" || rc=$?
cat "$T/err"
[ "$rc" -ne 0 ] || fail "the second oversized create succeeded"
no_path /vms/big
"$VMM" list "$D" | tee "$T/list"
grep -q '^/vms/small ' "$T/list" || fail "/vms/small or its parent went with the failed create"
[ "$(wc -l <"$T/list")" -eq 1 ] || fail "vmm list shows more than /vms/small"
fsck_clean "after the second failed create"
log "ok"
