# Shared shell for booting Debian's kernel through vmm one level down, sourced
# after lib.bash by tests/e2e/linux.sh and bench/vmm (this file is not a test:
# run-all.sh only runs *.sh). linux_kit makes (or finds) the kit of
# scripts/linux-kit.sh and sets KIT, KVER, MODS and KHZ; mk_initramfs packs
# busybox, modules in load order and an init; outer_add_bin copies a binary
# and the libraries ldd names into an initramfs tree; outer_qemu boots the
# outer VM (QEMU TCG, -cpu max: emulated AMD SVM, so kvm-amd works inside it)
# in the background, its pid in the e2e cleanup list, under a timeout.
# docs/VMM.md, "Linux tests".

# Sets TOP, KIT, KVER, MODS, KHZ. A kit that cannot be made fails, never skips.
linux_kit() {
	command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not installed (make deps installs qemu-system-x86)"
	TOP=${VMFS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	KIT=${VMFS_KIT:-$TOP/build/kit}
	"$TOP/scripts/linux-kit.sh" "$KIT" || fail "the Linux test kit could not be made in $KIT (see the linux-kit line above)"
	KVER=$(cat "$KIT/kver")
	MODS=$KIT/modules
	# Under TCG the kernel may hang calibrating its clock: tell it the TSC rate
	# (QEMU's TCG passes the host's TSC through, and so does KVM one level down).
	KHZ=$(awk '/^cpu MHz/ { printf "%d", $4 * 1000; exit }' /proc/cpuinfo)
	[ -n "$KHZ" ] || fail "no cpu MHz in /proc/cpuinfo"
}

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
# Use it as: echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=name/'
INIT_HEAD='#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in $(cat /modules.list); do
	insmod /lib/modules/$m || echo "$WHO: insmod $m failed"
done
# wait_vda: a bounded wait (10 s) for the virtio disk the modules just probed
wait_vda() {
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
'

# outer_add_bin DIR FILE [PATH]: FILE at PATH (default: its own path) under
# DIR, with the shared libraries ldd lists for it at their own paths.
outer_add_bin() {
	local dir=$1 f=$2 to=${3:-$2} lib
	mkdir -p "$dir$(dirname "$to")"
	cp -L "$f" "$dir$to"
	for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
		[ -e "$dir$lib" ] && continue
		mkdir -p "$dir$(dirname "$lib")"
		cp -L "$lib" "$dir$lib"
	done
}

# outer_qemu TIMEOUT CPIO MEM_MIB CMDLINE_EXTRA QEMU_ARGS...: boots the outer VM
# with the kit's kernel and CPIO, serial output in $T/serial and (CRs dropped)
# $T/console, which is also printed. Sets QEMU_RC (124: the timeout hit).
outer_qemu() {
	local timeout=$1 cpio=$2 mem=$3 extra=$4 pid
	shift 4
	QEMU_RC=0
	timeout --kill-after=5 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp 1 \
		-nographic -nodefaults -no-reboot -serial stdio -monitor none \
		-kernel "$KIT/vmlinuz" -initrd "$cpio" \
		-append "console=ttyS0 quiet panic=-1 tsc_early_khz=$KHZ $extra" \
		"$@" </dev/null >"$T/serial" 2>&1 &
	# In the background so that a signal to the script runs the cleanup trap
	# at once (bash defers traps while a foreground child runs), which stops QEMU.
	pid=$!
	PIDS+=("$pid")
	wait "$pid" || QEMU_RC=$?
	tr -d '\r' <"$T/serial" >"$T/console"
	cat "$T/console"
}
