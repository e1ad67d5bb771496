#!/bin/bash
# Suspend and resume through the datastore (issue 18, point 4), with the
# counter guest (tests/guests/counter.c: it counts in its memory and writes
# each count to its disk) in two boots of the outer VM (QEMU TCG with
# kvm-amd, as ha.sh: /dev/kvm here is not hardware), so the suspend and the
# resume are two vmm processes on two machine boots:
#   1. boot 1: vmm run /vms/c (2 vCPUs, ha=restart, a control socket), `vmm ctl
#      suspend` once it counts; vmm run ends 0 and says where the state went,
#      and ha.state says stopped (no agent would restart it).
#   2. here, with no /dev/kvm: vmm list shows it suspended; vm.state
#      damaged, truncated, copied to another
#      VM's folder, or made for other memory, is refused by vmm run's
#      preflight with a one-line reason, exit 1, and the file is left as it
#      was; vmfsctl/fsck see a clean datastore.
#   3. boot 2: vmm run /vms/c resumes it: the guest goes on counting from its
#      memory (no new boot: no "counter: boot id" line; the disk's last record
#      carries boot 1's id), and vm.state is gone from the folder.
# test: long (two outer boots in QEMU TCG, about 60 s; nothing is timed)
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/linux-lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm fsck.vmfs
need_cmd cpio timeout python3 cmp
linux_kit
VMM=$VMFS_BIN/vmm
COUNTER=$VMFS_BIN/../tests/guests/counter.bzImage
D=$T/ds.img
QEMU_TIMEOUT=${SUSPEND_QEMU_TIMEOUT:-300}

log "datastore: /vms/c (counter, 2 vCPUs, ctl=/run/c.sock) and /vms/other"
vmfs_mkfs "$D" 1G -T 1000,10000,5000,3000
"$VMM" create "$D" /vms/c --kernel "$COUNTER" --mem 32 --cpus 2 --disk 1M --ha restart
"$VMM" create "$D" /vms/other --kernel "$COUNTER" --mem 32 --cpus 2 --disk 1M
vmfs_mount "$D" "$T/m"
for v in c other; do
	sed -i 's/^devices=.*/devices=/' "$T/m/vms/$v/vm.conf"
done
echo "ctl=/run/c.sock" >>"$T/m/vms/c/vm.conf"
vmfs_umount "$T/m" "$D"

# boot N BODY: the outer VM runs vmm with BODY as the rest of its init; its console is $T/console.N
boot() {
	local n=$1 body=$2
	rm -rf "$T/outer"
	outer_add_bin "$T/outer" "$VMM" /bin/vmm
	{
		echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=outer/'
		cat <<'EOF'
[ -c /dev/kvm ] || echo "outer: no /dev/kvm"
mkdir -p /run
up() { cut -d" " -f1 /proc/uptime; }
# waitfor PATTERN FILE: a bounded poll (120 s of the outer VM's clock)
waitfor() {
	local end=$(($(cut -d. -f1 /proc/uptime) + 120))
	while ! grep -q "$1" "$2" 2>/dev/null && [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		sleep 0.2
	done
	grep -q "$1" "$2" 2>/dev/null
}
EOF
		echo "$body"
		cat <<'EOF'
sed 's|^|outer: log: |' /c.out
echo "outer: done at $(up) s"
poweroff -f
EOF
	} >"$T/outer/init"
	mk_initramfs "$T/outer" "$T/outer.cpio" kvm_amd virtio_pci virtio_blk
	log "outer boot $n (QEMU TCG, at most $QEMU_TIMEOUT s)"
	outer_qemu "$QEMU_TIMEOUT" "$T/outer.cpio" 384 "" -drive "file=$D,format=raw,if=virtio,cache=writeback" >/dev/null
	cp "$T/console" "$T/console.$n"
	[ "$QEMU_RC" -eq 0 ] || { cat "$T/console.$n"; fail "boot $n: the outer QEMU exited $QEMU_RC"; }
	grep -q '^outer: done at' "$T/console.$n" || { cat "$T/console.$n"; fail "boot $n: the outer init did not finish"; }
	grep '^outer: ' "$T/console.$n" | grep -v ': log: count [0-9]*$'
}
logs() { sed -n 's|^outer: log: ||p' "$T/console.$1"; }

boot 1 '
/bin/vmm run /dev/vda /vms/c </dev/null >/c.out 2>&1 &
pid=$!
waitfor "^count 20$" /c.out || echo "outer: the counter did not reach 20"
echo "outer: suspend: $(/bin/vmm ctl /run/c.sock suspend 2>&1)"
wait $pid
echo "outer: vmm run exit $?"
'
C1=$T/console.1
grep -q 'outer: suspend: {"ok":true,"state":"suspended","file":"/vms/c/vm.state"' "$C1" || { grep -v "log: count" "$C1"; fail "the suspend was not ok"; }
grep -q "outer: vmm run exit 0$" "$C1" || fail "vmm run did not end 0 after the suspend"
logs 1 | grep -q '^vmm: /vms/c: suspended into /vms/c/vm.state; vmm run resumes it$' || fail "vmm run did not say where the state went"
id1=$(logs 1 | sed -n 's/^counter: boot id \([0-9a-f]*\) starts at 0$/\1/p')
[ -n "$id1" ] || fail "the counter did not start in boot 1"
last=$(logs 1 | sed -n 's/^count \([0-9]*\)$/\1/p' | tail -n1)
echo "boot 1: boot id $id1, last count printed $last"

log "2. refusals, here without /dev/kvm: each before anything starts, the file left as it was"
vmfs_mount "$D" "$T/m"
[ -f "$T/m/vms/c/vm.state" ] || fail "no vm.state in /vms/c"
[ ! -e "$T/m/vms/c/vm.state.new" ] || fail "vm.state.new left in /vms/c"
# ha=restart: a suspended VM is stopped as asked, so no agent restarts it
[ "$(head -c 8 "$T/m/vms/c/ha.state")" = stopped ] || fail "ha.state after the suspend: $(head -c 8 "$T/m/vms/c/ha.state")"
size=$(stat -c %s "$T/m/vms/c/vm.state")
echo "vm.state: $size bytes"
cp "$T/m/vms/c/vm.state" "$T/good"
vmfs_umount "$T/m" "$D"
"$VMM" list "$D" | tee "$T/list"
grep -Eq '^/vms/c +32 MiB +2 vCPUs +1 disk +suspended [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} on .+, [0-9]+ KiB$' "$T/list" ||
	fail "vmm list does not show /vms/c suspended"
# refused DESCRIPTION VM PATTERN: vmm run VM exits 1 with one line matching PATTERN
refused() {
	expect_one_line_failure "$VMM" run "$D" "$2"
	[ "$LAST_RC" -eq 1 ] || fail "$1: exit $LAST_RC, want 1"
	grep -q "$3" "$T/stderr" || fail "$1: the line does not say why: $(cat "$T/stderr")"
}
# One mount for all of it (vmm run's read-only look joins nothing beside it):
# with_state VM FILE puts FILE as VM's vm.state, synced; state_is VM FILE checks it is still FILE.
vmfs_mount "$D" "$T/m"
with_state() {
	cp "$2" "$T/m/vms/$1/vm.state"
	sync "$T/m/vms/$1/vm.state"
}
state_is() { cmp -s "$2" "$T/m/vms/$1/vm.state" || fail "$1/vm.state changed"; }
cp "$T/good" "$T/bad"
python3 - "$T/bad" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x10
open(p, "wb").write(b)
PY
with_state c "$T/bad"
refused "a flipped byte" /vms/c "^vmm: /vms/c/vm.state: cannot resume it: .*damaged (checksum)$"
state_is c "$T/bad"
head -c $((size / 3)) "$T/good" >"$T/short"
with_state c "$T/short"
refused "a truncated file" /vms/c "^vmm: /vms/c/vm.state: cannot resume it: truncated"
state_is c "$T/short"
head -c 100 "$T/good" >"$T/tiny"
with_state c "$T/tiny"
refused "a file shorter than its header" /vms/c "cannot resume it: truncated: 100 bytes, not even a header$"
"$VMM" list "$D" | grep -q '^/vms/c .* vm.state unreadable: truncated: 100 bytes, not even a header$' ||
	fail "vmm list does not flag the truncated vm.state"
with_state c "$T/good"
with_state other "$T/good"
refused "another VM's file" /vms/other "^vmm: /vms/other/vm.state: cannot resume it: it belongs to another VM's folder (copied here?)$"
state_is other "$T/good"
rm "$T/m/vms/other/vm.state"
sed -i 's/^memory=.*/memory=64/' "$T/m/vms/c/vm.conf"
sync "$T/m/vms/c/vm.conf"
refused "other memory" /vms/c "cannot resume it: suspended with 32 MiB of memory, vm.conf now says 64$"
sed -i 's/^memory=.*/memory=32/' "$T/m/vms/c/vm.conf"
sync "$T/m/vms/c/vm.conf"
state_is c "$T/good"
# the good file gets past the preflight: here it then needs /dev/kvm
if ! have_kvm; then
	expect_one_line_failure "$VMM" run "$D" /vms/c
	grep -q "^vmm: /dev/kvm: " "$T/stderr" || fail "the good vm.state was refused: $(cat "$T/stderr")"
fi
vmfs_umount "$T/m" "$D"
"$VMFS_BIN/fsck.vmfs" -n "$D" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log"; fail "fsck.vmfs -n after the refusals"; }

boot 2 '
/bin/vmm run /dev/vda /vms/c </dev/null >/c.out 2>&1 &
pid=$!
waitfor "^vmm: /vms/c: resumed from /vms/c/vm.state$" /c.out || echo "outer: no resume line"
n=0
while [ $n -lt 600 ] && [ "$(grep -c "^count " /c.out)" -lt 3 ]; do sleep 0.2; n=$((n + 1)); done
echo "outer: stop: $(/bin/vmm ctl /run/c.sock stop 2>&1)"
wait $pid
echo "outer: vmm run exit $?"
'
log "3. the guest went on from its memory"
logs 2 | grep -q '^vmm: /vms/c: resumed from /vms/c/vm.state$' || fail "vmm run did not resume /vms/c"
! logs 2 | grep -q '^counter: boot id' || fail "the guest booted again: $(logs 2 | grep '^counter: boot id')"
first=$(logs 2 | sed -n 's/^count \([0-9]*\)$/\1/p' | head -n1)
[ -n "$first" ] || fail "the resumed guest did not count"
[ "$first" -gt "$last" ] && [ "$first" -le $((last + 20)) ] ||
	fail "the resumed guest counted $first first; boot 1 printed $last last (want the next ten)"
grep -q '^outer: vmm run exit 0$' "$T/console.2" || fail "vmm run did not end 0 after the stop"
echo "boot 2: counted on from $first (boot 1 printed $last last)"
vmfs_mount "$D" "$T/m" -o ro
[ ! -e "$T/m/vms/c/vm.state" ] || fail "vm.state is still there after the resume"
python3 - "$T/m/vms/c/disk0.img" "$id1" <<'PY' || fail "the disk's last record is not boot 1's instance"
import struct, sys
magic, bid, n = struct.unpack("<8sQQ", open(sys.argv[1], "rb").read(24))
assert magic == b"HACOUNT1" and bid == int(sys.argv[2], 16), (magic, hex(bid), n)
print("disk record: boot id %x, count %d" % (bid, n))
PY
vmfs_umount "$T/m" "$D"
"$VMFS_BIN/fsck.vmfs" -n "$D" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log"; fail "fsck.vmfs -n at the end"; }
echo "suspend: ok"
