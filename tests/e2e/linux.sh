#!/bin/bash
# Debian's Linux kernel booted through vmm from a vmfs datastore. /dev/kvm on
# the build machines is not hardware (docs/REFERENCES.md, "This machine"), so
# the test runs one level down: QEMU TCG (-cpu max emulates AMD SVM) boots the
# Debian kernel with an outer busybox initramfs that loads kvm-amd and runs
# `vmm run /dev/vda /vms/linux` on the datastore, QEMU's virtio disk. vmm boots
# the same kernel again with the inner initramfs stored in the VM's folder; the
# inner init prints a line on the serial console and powers off (sysrq b with
# reboot=k: the i8042 reset). The outer init prints vmm's exit code and powers
# off QEMU. The kit (kernel, modules, busybox) comes from scripts/linux-kit.sh;
# a kit that cannot be made fails the test, it is never skipped.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
need_cmd cpio timeout
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not installed (make deps installs qemu-system-x86)"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
KIT=${VMFS_KIT:-$TOP/build/kit}
"$TOP/scripts/linux-kit.sh" "$KIT" || fail "the Linux test kit could not be made in $KIT (see the linux-kit line above)"
KVER=$(cat "$KIT/kver")
MODS=$KIT/modules
VMM=$VMFS_BIN/vmm
D=$T/ds.img
START=$EPOCHREALTIME
# Under TCG the kernel may hang calibrating its clock: tell it the TSC rate
# (QEMU's TCG passes the host's TSC through, and so does KVM one level down).
KHZ=$(awk '/^cpu MHz/ { printf "%d", $4 * 1000; exit }' /proc/cpuinfo)
[ -n "$KHZ" ] || fail "no cpu MHz in /proc/cpuinfo"
QEMU_TIMEOUT=${LINUX_QEMU_TIMEOUT:-300}

# mod_order NAME...: the module files (paths under $MODS) that load NAME and
# its dependencies, dependencies first, each once, from modules.dep.
declare -A MOD_SEEN
mod_order() {
	local name path deps d
	for name in "$@"; do
		path=$(grep -E "(^|/)${name//_/[_-]}\.ko(\.[a-z]+)?:" "$MODS/modules.dep" | head -n1 | cut -d: -f1)
		[ -n "$path" ] || fail "module $name is not in $KVER's modules.dep"
		[ -n "${MOD_SEEN[$path]:-}" ] && continue
		MOD_SEEN[$path]=1
		deps=$(grep -E "^$path:" "$MODS/modules.dep" | cut -d: -f2)
		for d in $deps; do
			d=${d##*/}
			mod_order "${d%%.ko*}"
		done
		echo "$path"
	done
}

# mk_initramfs DIR OUT MODULE...: busybox, the modules in load order
# (/modules.list), DIR's init, as an uncompressed newc cpio (no decompression
# under TCG).
mk_initramfs() {
	local dir=$1 out=$2 m
	shift 2
	mkdir -p "$dir"/{bin,dev,proc,sys,mnt,lib/modules}
	cp "$KIT/busybox" "$dir/bin/busybox"
	ln -sf busybox "$dir/bin/sh"
	MOD_SEEN=()
	mod_order "$@" >"$T/order"
	: >"$dir/modules.list"
	while read -r m; do
		cp "$MODS/$m" "$dir/lib/modules/"
		echo "${m##*/}" >>"$dir/modules.list"
	done <"$T/order"
	chmod +x "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc -R 0:0 --quiet) >"$out"
}

# The init scripts share their start: mounts, the console, the modules.
INIT_HEAD='#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
# say: one line on the console through printk (/dev/kmsg at KERN_CRIT, shown
# even with quiet). The UART of vmm raises no interrupts yet, so a write(2) to the
# serial tty from user space stops after its first byte; printk polls the UART.
say() { echo "<2>$WHO: $*" >/dev/kmsg; }
for m in $(cat /modules.list); do
	insmod /lib/modules/$m || say "insmod $m failed"
done
'

log "inner initramfs (the VM's initrd): busybox, an init that reports and powers off"
mkdir -p "$T/inner"
{
	echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=inner/'
	cat <<'EOF'
say "init $(uname -r) $(cat /proc/cmdline)"
say "powering off"
# reboot -f stops in the kernel's device shutdown (an unanswered wait, not
# found yet); sysrq b restarts at once: reboot=k, the i8042 reset command.
sync
echo b >/proc/sysrq-trigger
EOF
} >"$T/inner/init"
mk_initramfs "$T/inner" "$T/inner.cpio"

log "outer initramfs: busybox, kvm-amd, virtio-blk, vmm and its libraries"
mkdir -p "$T/outer"
mkdir -p "$T/outer/bin"
cp "$VMM" "$T/outer/bin/vmm"
for lib in $(ldd "$VMM" | grep -o '/[^ ]*'); do
	mkdir -p "$T/outer$(dirname "$lib")"
	cp -L "$lib" "$T/outer$lib"
done
{
	echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=outer/'
	cat <<'EOF'
[ -c /dev/kvm ] || say "no /dev/kvm"
rc=0
/bin/vmm run /dev/vda /vms/linux || rc=$?
say "vmm exit $rc"
poweroff -f
EOF
} >"$T/outer/init"
mk_initramfs "$T/outer" "$T/outer.cpio" kvm_amd virtio_pci virtio_blk

log "datastore with /vms/linux (kernel $KVER)"
vmfs_mkfs "$D" 1G
"$VMM" create "$D" /vms/linux --kernel "$KIT/vmlinuz" --initrd "$T/inner.cpio" \
	--cmdline "console=ttyS0 quiet pci=conf1 initcall_blacklist=i8042_init reboot=k panic=-1 tsc_early_khz=$KHZ" --mem 128 --cpus 1 --disk 64M

log "outer QEMU (TCG, -cpu max), at most $QEMU_TIMEOUT s"
rc=0
timeout --kill-after=5 "$QEMU_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 \
	-nographic -nodefaults -no-reboot -serial stdio -monitor none \
	-kernel "$KIT/vmlinuz" -initrd "$T/outer.cpio" \
	-append "console=ttyS0 quiet panic=-1 tsc_early_khz=$KHZ" \
	-drive "file=$D,format=raw,if=virtio,cache=writeback" </dev/null >"$T/serial" 2>&1 || rc=$?
tr -d '\r' <"$T/serial" >"$T/console"
cat "$T/console"
echo "qemu exit $rc after $(elapsed "$START")"
[ "$rc" -ne 124 ] || fail "the outer QEMU did not finish within $QEMU_TIMEOUT s"
[ "$rc" -eq 0 ] || fail "the outer QEMU exited $rc"
grep -q 'inner: init ' "$T/console" || fail "the inner kernel did not reach its init"
grep -q 'outer: vmm exit 0$' "$T/console" || fail "vmm run did not exit 0 inside the outer VM"
log "ok, $(elapsed "$START")"
