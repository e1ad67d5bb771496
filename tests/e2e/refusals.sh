#!/bin/bash
# Nothing is written before a command knows it can do its job (issue 14,
# point 7). Each refusal below must leave the datastore byte for byte as it
# was (sha256 of the image before and after), exit non-zero with one line on
# stderr: vmfs-mount with a missing mountpoint, a file as mountpoint, the
# datastore image itself as mountpoint, a bad option, a missing watchdog
# device; vmm run of a missing VM, a bad vm.conf, a missing disk, a kernel that
# is not a bzImage; vmm create with a kernel that is not a bzImage. Before the
# fix each of these joined the cluster first, writing a heartbeat claim.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
GUEST=$VMFS_BIN/../tests/guests/hello.bzImage
[ -f "$GUEST" ] || fail "$GUEST not built"
VMM=$VMFS_BIN/vmm
D=$T/ds.img
vmfs_mkfs "$D" 256M

# unchanged_by COMMAND...: COMMAND fails with one line and the image keeps its hash
unchanged_by() {
	local before after
	before=$(sha256sum <"$D")
	expect_one_line_failure "$@"
	after=$(sha256sum <"$D")
	[ "$before" = "$after" ] || fail "$*: the datastore changed though the command was refused"
}

log "vmfs-mount refuses before joining"
mkdir "$T/m"
: >"$T/file"
unchanged_by "$VMFS_BIN/vmfs-mount" "$D" "$T/no-such-dir"
[ "$LAST_RC" -eq 32 ] || fail "missing mountpoint: exit $LAST_RC, want 32"
unchanged_by "$VMFS_BIN/vmfs-mount" "$D" "$T/file"
grep -q "not a directory" "$T/stderr" || fail "a file as mountpoint is not named as such"
unchanged_by "$VMFS_BIN/vmfs-mount" "$D" "$D"
grep -q "the mountpoint is the datastore itself" "$T/stderr" || fail "the image as its own mountpoint is not refused as such"
unchanged_by "$VMFS_BIN/vmfs-mount" -o commit=soon "$D" "$T/m"
[ "$LAST_RC" -eq 1 ] || fail "bad option: exit $LAST_RC, want 1"
unchanged_by "$VMFS_BIN/vmfs-mount" -o watchdog="$T/no-watchdog" "$D" "$T/m"
grep -q "watchdog $T/no-watchdog: No such file or directory" "$T/stderr" || fail "a missing watchdog is not named"
not mountpoint -q "$T/m" || fail "mounted despite a refusal"

if have_kvm; then
	log "vmm create and vmm run refuse before joining"
	head -c 4096 /dev/urandom >"$T/junk"
	"$VMM" create "$D" /vms/ok --kernel "$GUEST" --mem 32 --cpus 1 --disk 1M
	"$VMM" create "$D" /vms/badconf --kernel "$GUEST" --mem 32 --cpus 1 --disk 1M
	"$VMM" create "$D" /vms/nodisk --kernel "$GUEST" --mem 32 --cpus 1 --disk 1M
	"$VMM" create "$D" /vms/badkernel --kernel "$GUEST" --mem 32 --cpus 1 --disk 1M
	vmfs_mount "$D" "$T/m"
	printf 'name=badconf\nmemory=lots\ncpus=1\nkernel=kernel\n' >"$T/m/vms/badconf/vm.conf"
	rm "$T/m/vms/nodisk/disk0.img"
	cp "$T/junk" "$T/m/vms/badkernel/kernel"
	vmfs_umount "$T/m" "$D"

	unchanged_by "$VMM" create "$D" /vms/junk --kernel "$T/junk" --mem 32 --cpus 1 --disk 1M
	grep -q "not a bzImage" "$T/stderr" || fail "create: a junk kernel is not reported as such"
	unchanged_by "$VMM" run "$D" /vms/nothere
	unchanged_by "$VMM" run "$D" /vms/badconf
	grep -q "vm.conf: line 2: memory 'lots'" "$T/stderr" || fail "run: the bad vm.conf line is not named"
	unchanged_by "$VMM" run "$D" /vms/nodisk
	grep -q "/vms/nodisk/disk0.img: No such file or directory" "$T/stderr" || fail "run: the missing disk is not named"
	unchanged_by "$VMM" run "$D" /vms/badkernel
	grep -q "/vms/badkernel/kernel: not a bzImage" "$T/stderr" || fail "run: a junk kernel is not reported as such"
	log "and a good VM still runs"
	timeout 60 "$VMM" run "$D" /vms/ok >"$T/out" 2>&1 || { cat "$T/out"; fail "the good VM did not run"; }
	grep -qx hello "$T/out" || fail "the good VM said nothing"
else
	echo "   no /dev/kvm: vmm refusals not checked"
fi
log "ok"
