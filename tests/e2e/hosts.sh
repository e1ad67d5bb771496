#!/bin/bash
# Hosts and locks read as an operator needs them (issue 14, point 9): each
# host is named by machine, program, pid and (a mount) its mountpoint; a
# second mount of one datastore on this machine warns that it is a second
# host; vmfsctl hosts lists free slots only with --all; vmfsctl locks names a
# file lock by its path and takes a path with or without a leading /. Bad
# devices and sizes get messages that say what is wrong, each path once and
# each size in the unit typed.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd jq
D=$T/ds.img
vmfs_mkfs "$D" 1G -H 16
machine=$(hostname)

log "two mounts on this machine: the second warns, both are named"
vmfs_mount "$D" "$T/a" 2>"$T/a.err"
[ ! -s "$T/a.err" ] || fail "the first mount printed: $(cat "$T/a.err")"
pa=$DAEMON_PID
vmfs_mount "$D" "$T/b" 2>"$T/b.err"
pb=$DAEMON_PID
cat "$T/b.err"
grep -q "warning: .*already open on this machine (slot [0-9]*: $machine (vmfs-mount pid $pa, $T/a)); this mount is another host" "$T/b.err" ||
	fail "the second mount did not warn that it is a second host"
[ "$(wc -l <"$T/b.err")" -eq 1 ] || fail "the warning is not one line"
"$VMFS_BIN/vmfsctl" hosts "$D" | tee "$T/hosts"
grep -q " alive .*$machine (vmfs-mount pid $pa, $T/a)$" "$T/hosts" || fail "vmfsctl hosts does not name the first mount"
grep -q " alive .*$machine (vmfs-mount pid $pb, $T/b)$" "$T/hosts" || fail "vmfsctl hosts does not name the second mount"

log "vmfsctl locks: a file lock by its path, asked with and without a leading /"
mkdir -p "$T/a/vms/x"
echo data >"$T/a/vms/x/disk0.img"
sync "$T/a/vms/x/disk0.img" # committed: a read-only open sees what the journal holds
exec 7>>"$T/a/vms/x/disk0.img" # held open for writing: an exclusive lock of host a
"$VMFS_BIN/vmfsctl" locks "$D" | tee "$T/locks"
grep -Eq "^exclusive +slot [0-9]+ +gen [0-9]+ +/vms/x/disk0.img +$machine \(vmfs-mount pid $pa" "$T/locks" ||
	fail "vmfsctl locks does not name /vms/x/disk0.img and its holder"
for p in /vms/x/disk0.img vms/x/disk0.img; do
	r=$("$VMFS_BIN/vmfsctl" locks --json "$D" "$p" | jq -r '.[] | "\(.resource) \(.mode)"')
	[ "$r" = "/vms/x/disk0.img exclusive" ] || fail "vmfsctl locks $p: '$r'"
done
exec 7>&-

log "vmfsctl hosts: a host that left shows only with --all"
vmfs_umount_pid "$T/b" "$pb"
"$VMFS_BIN/vmfsctl" hosts "$D" >"$T/hosts"
[ "$(grep -c ' alive ' "$T/hosts")" -eq 1 ] && ! grep -q ' free ' "$T/hosts" ||
	{ cat "$T/hosts"; fail "vmfsctl hosts without --all: want one live host and no free slot"; }
"$VMFS_BIN/vmfsctl" hosts --all "$D" >"$T/hosts"
grep -q ' free ' "$T/hosts" || { cat "$T/hosts"; fail "vmfsctl hosts --all does not list the freed slot"; }
[ "$("$VMFS_BIN/vmfsctl" hosts --json "$D" | jq length)" -eq 1 ] || fail "vmfsctl hosts --json lists free slots"
vmfs_umount "$T/a" "$D"

log "messages: what is wrong, the path once, sizes in the unit typed"
mkdir -p "$T/dir"
for dev in "$T/dir" /dev/null; do
	for cmd in "vmfsctl info" "fsck.vmfs -n" "mkfs.vmfs" "vmfs-mount"; do
		set -- $cmd
		args=("$dev")
		[ "$1" = vmfs-mount ] && args+=("$T/a")
		expect_one_line_failure "$VMFS_BIN/$1" "${@:2}" "${args[@]}"
		grep -qx "$1: $dev: not a regular file or block device" "$T/stderr" || fail "$cmd $dev: $(cat "$T/stderr")"
	done
done
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" --size 10M "$T/small.img"
grep -q "size 10 MiB: must be from 64 MiB" "$T/stderr" || fail "mkfs --size 10M: $(cat "$T/stderr")"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" -J 3000M --size 1G "$T/j.img"
grep -q "journal size 3000 MiB: must be from 4 MiB to 64 MiB" "$T/stderr" || fail "mkfs -J 3000M: $(cat "$T/stderr")"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" -b 8M --size 1G "$T/b.img"
grep -q "block size 8 MiB: must be" "$T/stderr" || fail "mkfs -b 8M: $(cat "$T/stderr")"
log "ok"
