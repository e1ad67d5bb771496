#!/bin/bash
# make demo: a datastore in a local sparse file, mounted with vmfs-mount; a VM
# folder with a thin disk image written through the mount; vmfsctl info and df;
# then a clean unmount; a snapshot of the VM folder, a bad write, the diff, a
# revert that brings the data back, a linked clone, the snapshot exported
# compressed and imported back; then vmm creates a VM on the datastore and boots it
# (a freestanding test guest: a Linux kernel needs hardware KVM to boot in
# reasonable time, see docs/VMM.md), and suspends a counting guest into its
# folder and resumes it (one level down in QEMU TCG where /dev/kvm is
# missing or the emulating kind); last an encrypted datastore: made with a
# key file, written, the raw device searched for the text (not found), read
# back. Everything lives under build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/build/bin
DIR=$PWD/build/demo
IMG=$DIR/datastore.img
MNT=$DIR/mnt
DAEMON=

cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || umount -l "$MNT" || true; fi
	if [ -n "$DAEMON" ]; then wait "$DAEMON" 2>/dev/null || true; fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$DIR" "$MNT"
rm -f "$IMG"
step "mkfs.vmfs --size 64G -L demo $IMG   (sparse: only metadata is written)"
"$BIN/mkfs.vmfs" --size 64G -L demo "$IMG"
du -h --apparent-size "$IMG" | sed 's/^/  apparent size: /'
du -h "$IMG" | sed 's/^/  space used:    /'

step "vmfs-mount $IMG $MNT"
"$BIN/vmfs-mount" -f "$IMG" "$MNT" & DAEMON=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.05; done
mountpoint -q "$MNT" || { echo "demo: mount did not appear" >&2; exit 1; }

step "a VM folder with a 20 GiB thin disk"
mkdir -p "$MNT/vms/demo-vm"
printf 'name=demo-vm\nmemory=64\ncpus=1\nkernel=kernel\ncmdline=console=ttyS0\ndisk=disk.img\n' > "$MNT/vms/demo-vm/vm.conf"
cp build/tests/guests/hello.bzImage "$MNT/vms/demo-vm/kernel"
truncate -s 20G "$MNT/vms/demo-vm/disk.img"
ls -ls "$MNT/vms/demo-vm"

step "write 64 MiB at the start and 1 MiB at the end of the disk, with O_DIRECT"
dd if=/dev/urandom of="$DIR/payload" bs=1M count=64 status=none
dd if="$DIR/payload" of="$MNT/vms/demo-vm/disk.img" bs=1M oflag=direct conv=notrunc status=none
dd if="$DIR/payload" of="$MNT/vms/demo-vm/disk.img" bs=1M count=1 seek=20479 oflag=direct conv=notrunc status=none
sync "$MNT/vms/demo-vm/disk.img"
cmp -n $((64 << 20)) "$DIR/payload" "$MNT/vms/demo-vm/disk.img" && echo "  read back: identical"
ls -ls "$MNT/vms/demo-vm/disk.img" | awk '{printf "  thin: %s KiB allocated of %s bytes\n", $1, $6}'

step "df $MNT"
df -h "$MNT"

step "unmount, then vmfsctl info"
"$BIN/vmfs-mount" -u "$MNT"
wait "$DAEMON"; DAEMON=
"$BIN/vmfsctl" info "$IMG"

mount_demo() {
	"$BIN/vmfs-mount" -f "$IMG" "$MNT" & DAEMON=$!
	for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.05; done
	mountpoint -q "$MNT" || { echo "demo: mount did not appear" >&2; exit 1; }
}
umount_demo() {
	"$BIN/vmfs-mount" -u "$MNT"
	wait "$DAEMON"; DAEMON=
}
step "vmfsctl snapshot create $IMG /vms/demo-vm --name before-upgrade   (the disk and vm.conf together; O(1))"
"$BIN/vmfsctl" snapshot create "$IMG" /vms/demo-vm --name before-upgrade

step "an 'upgrade' goes wrong: 4 MiB of the disk overwritten"
mount_demo
dd if=/dev/zero of="$MNT/vms/demo-vm/disk.img" bs=1M count=4 seek=8 oflag=direct conv=notrunc status=none
cmp -s -n $((64 << 20)) "$DIR/payload" "$MNT/vms/demo-vm/disk.img" || echo "  the disk no longer holds what was written"
umount_demo

step "vmfsctl snapshot diff: the byte ranges changed since the snapshot (what a backup would copy)"
"$BIN/vmfsctl" snapshot diff "$IMG" /vms/demo-vm/disk.img before-upgrade
step "vmfsctl snapshot list: the tree, and the bytes each snapshot holds alone"
"$BIN/vmfsctl" snapshot list "$IMG" /vms/demo-vm

step "vmfsctl snapshot revert $IMG /vms/demo-vm before-upgrade"
"$BIN/vmfsctl" snapshot revert "$IMG" /vms/demo-vm before-upgrade
mount_demo
cmp -n $((64 << 20)) "$DIR/payload" "$MNT/vms/demo-vm/disk.img" && echo "  read back: identical to before the 'upgrade'"
umount_demo
rm -f "$DIR/payload"

step "vmfsctl clone: a writable linked clone of the snapshot, sharing every block"
"$BIN/vmfsctl" clone "$IMG" /vms/demo-vm/disk.img@before-upgrade /vms/clone.img
"$BIN/vmfsctl" info "$IMG" | grep -E "^(free|features)"

step "vmfsctl export --compress: the snapshot out as a zstd image; vmfsctl import: back in as a new thin file"
rm -f "$DIR/disk.zst"
"$BIN/vmfsctl" export --json --compress "$IMG" /vms/demo-vm/disk.img@before-upgrade "$DIR/disk.zst" | sed 's/^/  /'
ls -l "$DIR/disk.zst" | awk '{print "  " $5 " bytes: " $9}'
"$BIN/vmfsctl" import --json "$IMG" "$DIR/disk.zst" /vms/restored.img | sed 's/^/  /'
rm -f "$DIR/disk.zst"
echo "  the stream's content checksum held: /vms/restored.img holds what the snapshot held, thin again"

step "vmm create: a VM whose kernel is the freestanding test guest tests/guests/hello.c, with a 1 GiB thin disk"
"$BIN/vmm" create "$IMG" /vms/hello --kernel "$PWD/build/tests/guests/hello.bzImage" \
	--cmdline "console=ttyS0 demo=yes" --mem 64 --cpus 1 --disk 1G
"$BIN/vmm" list "$IMG"

step "vmm run $IMG /vms/hello   (boots it from the datastore through libvmfs; its console is the serial port)"
if [ -c /dev/kvm ]; then
	"$BIN/vmm" run "$IMG" /vms/hello
	echo "  the guest powered off; vmm exited $?"
else
	echo "  no /dev/kvm on this machine: vmm run needs it"
fi
step "suspend and resume through the datastore: vmm ctl SOCKET suspend, then vmm run resumes it"
# the counter guest (tests/guests/counter.c) counts in its memory and on its disk
"$BIN/vmm" create "$IMG" /vms/counter --kernel "$PWD/build/tests/guests/counter.bzImage" --mem 32 --cpus 1 --disk 1M
if [ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null; then
	SOCK=$DIR/counter.sock
	# waitfor PATTERN FILE: a bounded poll (60 s)
	waitfor() { for _ in $(seq 600); do grep -q "$1" "$2" && return 0; sleep 0.1; done; return 1; }
	"$BIN/vmm" run "$IMG" /vms/counter --ctl "$SOCK" </dev/null >"$DIR/counter.1" 2>&1 &
	VMPID=$!
	waitfor "^count 20$" "$DIR/counter.1" || echo "  the counter did not reach 20"
	grep -v "^count [1-9]" "$DIR/counter.1" | sed 's/^/  first run: /'
	echo "  vmm ctl $SOCK suspend: $("$BIN/vmm" ctl "$SOCK" suspend)"
	wait "$VMPID" || true
	sed -n 's/^vmm: /  first run: vmm: /p' "$DIR/counter.1"
	"$BIN/vmm" list "$IMG" | grep counter
	"$BIN/vmm" run "$IMG" /vms/counter --ctl "$SOCK" </dev/null >"$DIR/counter.2" 2>&1 &
	VMPID=$!
	waitfor "^count " "$DIR/counter.2" || echo "  the resumed counter did not count"
	"$BIN/vmm" ctl "$SOCK" stop >/dev/null
	wait "$VMPID" || true
	echo "  second run (no boot: the count goes on from the first run's memory):"
	sed 's/^/  second run: /' "$DIR/counter.2"
else
	echo "  no /dev/kvm on this machine: the same suspend and resume, one level down in QEMU TCG"
	echo "  (tests/e2e/suspend.sh: two boots of an outer VM with kvm-amd; the kit is Debian's kernel)"
	VMFS_BIN=$BIN VMFS_TOP=$PWD tests/e2e/suspend.sh 2>&1 | grep -v '^outer: log: count [0-9]*$' | sed 's/^/  | /'
fi

step "an encrypted datastore: mkfs.vmfs --encrypt --key-file KEY   (AES-256-XTS, keys in keyslots)"
EIMG=$DIR/encrypted.img
rm -f "$EIMG"
head -c 64 /dev/urandom >"$DIR/demo.key"
chmod 600 "$DIR/demo.key"
"$BIN/mkfs.vmfs" --size 1G -L secret --encrypt --key-file "$DIR/demo.key" "$EIMG"
"$BIN/vmfsctl" key list "$EIMG"
"$BIN/vmfs-mount" -o key-file="$DIR/demo.key" "$EIMG" "$MNT"
TEXT="the launch codes are 0000 $(date +%s%N)"
for i in $(seq 2000); do echo "$TEXT"; done >"$MNT/notes.txt"
echo "$TEXT" >"$MNT/short.txt"
"$BIN/vmfs-mount" -u "$MNT"
step "the raw device searched for the text written"
if grep -q -a "$TEXT" "$EIMG"; then echo "  FOUND in plaintext: this must not happen" >&2; exit 1; fi
echo "  not found anywhere in $EIMG"
step "mounted again with the key: read back"
"$BIN/vmfs-mount" -o key-file="$DIR/demo.key" "$EIMG" "$MNT"
[ "$(cat "$MNT/short.txt")" = "$TEXT" ] && [ "$(sort -u "$MNT/notes.txt")" = "$TEXT" ] && echo "  read back: $(cat "$MNT/short.txt")"
"$BIN/vmfs-mount" -u "$MNT"
echo "  a wrong key is refused (exit 3):"
head -c 64 /dev/urandom >"$DIR/wrong.key"
"$BIN/vmfs-mount" -o key-file="$DIR/wrong.key" "$EIMG" "$MNT" || echo "  vmfs-mount exited $?"

echo
echo "demo: done. The datastore stays in $IMG (mount it again with: $BIN/vmfs-mount $IMG $MNT)"
