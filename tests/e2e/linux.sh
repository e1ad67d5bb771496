#!/bin/bash
# Debian's Linux kernel booted through vmm from a vmfs datastore. /dev/kvm on
# the build machines is not hardware (docs/REFERENCES.md, "This machine"), so
# the test runs one level down: QEMU TCG (-cpu max emulates AMD SVM) boots the
# Debian kernel with an outer busybox initramfs that loads kvm-amd and runs
# `vmm run /dev/vda /vms/linux` on the datastore, QEMU's virtio disk. vmm boots
# the same kernel again with the inner initramfs stored in the VM's folder. The
# inner init mounts the VM's ext4 disk (virtio-blk, by interrupts), writes a
# file, syncs and unmounts; then, each after a line on the serial console from
# the outer init, a second start of the VM must be refused naming the holder,
# inflating the balloon (vmm ctl) must lower the guest's MemTotal and a 2 MiB/s
# rate limit must hold within 10% for a dd in the guest, and the VM, once
# suspended (vmm ctl suspend), must resume in a second vmm run with its disk
# and console going on (issue 18, point 4); a snapshot of the
# running VM (vmm ctl snapshot) taken while the guest reads its disk must
# succeed, report how long disk I/O paused, and hold the guest's file as a
# clean ext4 (read through the mount's .snapshots view). The inner kernel
# finds its 2 vCPUs, the IOAPIC and the PCI devices through vmm's ACPI tables
# and takes the virtio interrupts as INTx through the DSDT's _PRT (pci=nomsi).
# Then the guest runs `poweroff -f` (ACPI S5 through PM1a_CNT: vmm exits 0)
# and the host reads the file out of the image through libvmfs (vmfs-mount,
# debugfs). The kit
# (kernel, modules, busybox) comes from scripts/linux-kit.sh; a kit that
# cannot be made fails the test, it is never skipped. Where /dev/kvm is
# hardware it also boots the kernel directly on this machine's vmm; where it
# is not, it says why not. docs/VMM.md, "Linux tests".
# test: alone (QEMU TCG emulates a machine that boots Linux under vmm: its timeouts assume both cores)
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/linux-lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
need_cmd cpio timeout
linux_kit
VMM=$VMFS_BIN/vmm
D=$T/ds.img
START=$EPOCHREALTIME
QEMU_TIMEOUT=${LINUX_QEMU_TIMEOUT:-300}

log "inner initramfs (the VM's initrd): virtio-blk, virtio-balloon and ext4; an init that writes a file and powers off"
mkdir -p "$T/inner"
{
	echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=inner/'
	cat <<'EOF'
echo "inner: init $(uname -r) $(cat /proc/cmdline)"
# What the kernel took from vmm's ACPI tables: the CPUs (MADT), the interrupt
# routing (MADT, DSDT _PRT) and the tables themselves.
echo "inner: cpus $(grep -c ^processor /proc/cpuinfo)"
echo "inner: $(dmesg | grep -o 'ACPI: Using IOAPIC for interrupt routing' | head -n1)"
echo "inner: acpi tables $(ls /sys/firmware/acpi/tables | tr '\n' ' ')"
wait_vda
if mount -t ext4 /dev/vda /mnt && { cat /mnt/from-host.txt && uname -r; } >/mnt/from-guest.txt &&
	sync && umount /mnt; then
	echo "inner: wrote from-guest.txt"
else
	echo "inner: the ext4 round trip failed"
	cat /proc/partitions
	ls /sys/bus/pci/devices /sys/bus/virtio/devices
	dmesg | tail -n 30
fi
# Each phase waits for a line on the serial console from the outer init,
# which does its part (a second start, the balloon, a rate limit) first.
echo "inner: waiting for the second start"
read -r line
echo "inner: memtotal before $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) kB"
echo "inner: waiting for the balloon"
read -r line
echo "inner: memtotal after $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) kB"
echo "inner: waiting for the snapshot"
read -r line
# the disk is read while the outer init snapshots the running VM
dd if=/dev/vda of=/dev/null bs=64k count=256 2>/dev/null &
echo "inner: reading during the snapshot"
read -r line
wait
echo "inner: read during the snapshot done"
echo "inner: waiting for the rate limit"
read -r line
# The first read takes the bucket's one-second burst; the second is timed.
dd if=/dev/vda of=/dev/null bs=64k count=32 2>/dev/null
t0=$(cut -d" " -f1 /proc/uptime)
dd if=/dev/vda of=/dev/null bs=64k skip=32 count=128 2>/dev/null
t1=$(cut -d" " -f1 /proc/uptime)
echo "inner: read 8388608 bytes in $t0 $t1"
# Suspended here by the outer init (vmm ctl suspend) and resumed by a second
# vmm run: the line it reads comes through the resumed VM's serial port; the
# disk, the clock and the interrupts must all go on.
echo "inner: waiting for the suspend at $(cut -d" " -f1 /proc/uptime) s"
read -r line
echo "inner: resumed at $(cut -d" " -f1 /proc/uptime) s"
if mount -t ext4 /dev/vda /mnt && echo "written after the resume" >/mnt/resumed.txt && sync && umount /mnt &&
	dd if=/dev/vda of=/dev/null bs=64k count=64 2>/dev/null; then
	echo "inner: wrote resumed.txt"
else
	echo "inner: the disk failed after the resume"
fi
grep virtio /proc/interrupts | tr -s ' ' | sed 's/^/inner: irq/'
echo "inner: powering off"
poweroff -f
EOF
} >"$T/inner/init"
mk_initramfs "$T/inner" "$T/inner.cpio" virtio_pci virtio_blk virtio_balloon crc32c_generic ext4

log "outer initramfs: busybox, kvm-amd, virtio-blk, vmm and its libraries"
outer_add_bin "$T/outer" "$VMM" /bin/vmm
{
	echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=outer/'
	echo "STALL_AT=${LINUX_STALL_AT:-150} QUIET=${LINUX_STALL_QUIET:-90}"
	cat <<'EOF'
[ -c /dev/kvm ] || echo "outer: no /dev/kvm"
echo "outer: init at $(cut -d" " -f1 /proc/uptime) s"
# vm_report TAG WHY: where the VM is, in lines "outer: TAG: ...": vmm's disk
# counters (vmm ctl status) around KVM's exits over 2 s by vCPU, reason and
# guest RIP, each RIP named from /proc/kallsyms (both kernels are this one,
# booted with nokaslr, so the outer's symbols are the inner's addresses), the
# interrupts the LAPIC accepted and where each vmm thread waits. A stall
# (docs/VMM.md, "Linux tests") reports as "stall": the inner kernel has not
# reached its init by STALL_AT s of this clock (it does by about 60 s) or, once
# it has, vmm's output has not grown for QUIET s (90; each phase prints within
# about 20 s); again every 40 s after. Every run reports once as "sample",
# while the guest waits for the second start, and the host checks that report,
# so a report that no longer works fails the test rather than the next stall.
vm_report() {
	local tag=$1 tf t n vcpu why rip
	echo "outer: $tag: $2 at $(cut -d" " -f1 /proc/uptime) s: KVM exits over 2 s"
	echo "outer: $tag: status $(/bin/vmm ctl /ctl status 2>&1)"
	[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing || return
	tf=/sys/kernel/tracing
	echo 1 >$tf/events/kvm/kvm_exit/enable
	echo 1 >$tf/events/kvm/kvm_apic_accept_irq/enable
	sleep 2
	echo 0 >$tf/events/kvm/kvm_exit/enable
	echo 0 >$tf/events/kvm/kvm_apic_accept_irq/enable
	echo "outer: $tag: status $(/bin/vmm ctl /ctl status 2>&1)"
	cp $tf/trace /report.trace
	echo >$tf/trace
	sed -n 's/.*kvm_exit: vcpu \([0-9]*\) reason \([^ ]*\) rip 0x\([0-9a-f]*\).*/\1 \2 \3/p' /report.trace |
		sort | uniq -c | sort -rn | head -n 12 >/report.top
	echo "outer: $tag: $(grep -c kvm_exit: /report.trace) exits, $(grep -c kvm_apic_accept_irq: /report.trace) interrupts accepted"
	grep kvm_apic_accept_irq: /report.trace | sed 's/.*kvm_apic_accept_irq: //' | sort | uniq -c | sort -rn | head -n 4 |
		sed "s/^/outer: $tag: irq /"
	# where vmm's threads are: blocked in userspace (futex) or halted in KVM
	for t in /proc/$(sed -n 's/^outer: vmm pid //p' /vmm.out)/task/*; do
		echo "outer: $tag: thread $(cat $t/comm) $(cat $t/wchan) $(head -n 4 $t/stack | sed 's/^\[<0>\] //' | tr '\n' ' ')"
	done
	# one sort: each RIP lands after the symbol that holds it
	{ cat /proc/kallsyms; sed -n 's/.* \(ffffffff8[0-9a-f]*\)$/\1 ~ @rip/p' /report.top; } | sort |
		awk '$2 != "~" { a = $1; s = $3 } $2 == "~" { print $1, a, s }' >/report.syms
	while read -r n vcpu why rip; do
		set -- $(grep "^$rip " /report.syms | head -n1)
		[ -n "${3:-}" ] && set -- "$3+0x$(printf %x $((0x$rip - 0x$2)))" || set -- "(not the kernel's text)"
		echo "outer: $tag: $n exits vcpu $vcpu $why rip $rip $1"
	done </report.top
}
(
	next=$STALL_AT lines=0 why="no inner init" sampled=0
	while ! grep -q "outer: vmm exit" /vmm.out 2>/dev/null; do
		now=$(cut -d. -f1 /proc/uptime)
		n=$(wc -l </vmm.out 2>/dev/null || echo 0)
		if grep -q "inner: init " /vmm.out 2>/dev/null && [ "$n" != "$lines" ]; then
			lines=$n next=$((now + QUIET)) why="no output from vmm for $QUIET s"
		fi
		if [ $sampled = 0 ] && grep -q "inner: waiting for the second start" /vmm.out; then
			vm_report sample "the guest waits for the second start"
			sampled=1
			touch /sampled
		fi
		[ "$now" -lt "$next" ] || { vm_report stall "$why"; next=$((now + 40)); }
		sleep 1
	done
) &
# vmm runs /vms/linux with its stdin on a fifo, a control socket, and its
# output on the console and in /vmm.out. The guest waits for a line before
# each phase: once it has written its file (and vmm holds the disk lock) a
# second start must be refused naming the first; then the balloon is inflated
# by 8192 pages (32 MiB); then disk 0 is limited to 2 MiB/s.
# Beside it, two runs of the mq guest (tests/guests/mq.c), every virtio-blk
# queue at once: with KVM's eventfds, and without them (every doorbell an
# MMIO exit). They run on a datastore of their own (/dev/vdb) whose I/O
# timeout of 3 s makes a join of about 3.5 s: the polled guest spins while
# its disk waits for the join, and the Linux guest boots meanwhile.
/bin/vmm run /dev/vdb /vms/mq --timings </dev/null >/mq-eventfd.out 2>&1 &
VMM_NO_EVENTFD=1 /bin/vmm run /dev/vdb /vms/mq2 --timings </dev/null >/mq-exits.out 2>&1 &
mkfifo /in
sh -c '/bin/vmm run /dev/vda /vms/linux --ctl /ctl --timings </in 2>&1 & echo "outer: vmm pid $!"; wait $!; echo "outer: vmm exit $? at $(cut -d" " -f1 /proc/uptime) s"' | tee /vmm.out &
exec 3>/in
# waitfor LINE: a bounded poll (300 s) of vmm's output
waitfor() {
	i=0
	while ! grep -q "$1" /vmm.out && ! grep -q "outer: vmm exit" /vmm.out && [ $i -lt 3000 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
waitfor "inner: waiting for the second start"
rc=0
/bin/vmm run /dev/vda /vms/linux </dev/null >/dev/null 2>/second.err || rc=$?
echo "outer: second start exit $rc: $(cat /second.err)"
echo "outer: at $(cut -d" " -f1 /proc/uptime) s"
# the sample report's lines first: the guest's next ones would mix with them
i=0
while [ ! -e /sampled ] && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo go >&3
waitfor "inner: waiting for the balloon"
echo "outer: vmm ctl balloon 8192: $(/bin/vmm ctl /ctl balloon 8192 2>&1)"
# a bounded poll: 120 s of the outer VM's clock
end=$(($(cut -d. -f1 /proc/uptime) + 120))
while ! /bin/vmm ctl /ctl status >/status.out 2>&1 || ! grep -q '"actual_pages":8192' /status.out; do
	[ "$(cut -d. -f1 /proc/uptime)" -lt $end ] || break
	sleep 0.1
done
echo "outer: balloon $(grep -o '"balloon":{[^}]*}' /status.out) at $(cut -d" " -f1 /proc/uptime) s"
echo go >&3
waitfor "inner: waiting for the snapshot"
echo go >&3
waitfor "inner: reading during the snapshot"
echo "outer: vmm ctl snapshot: $(/bin/vmm ctl /ctl snapshot live 2>&1)"
echo go >&3
waitfor "inner: waiting for the rate limit"
/bin/vmm ctl /ctl rate 0 2097152 0 >/dev/null || echo "outer: vmm ctl rate failed"
echo go >&3
# suspend into the VM's folder, resume in a second vmm run (its stdin another fifo)
waitfor "inner: waiting for the suspend"
echo "outer: vmm ctl suspend: $(/bin/vmm ctl /ctl suspend 2>&1)"
waitfor "outer: vmm exit"
mkfifo /in2
sh -c '/bin/vmm run /dev/vda /vms/linux --ctl /ctl </in2 2>&1; echo "outer: resumed vmm exit $?"' | tee /vmm2.out &
exec 4>/in2
i=0
while ! grep -q "resumed from\|outer: resumed vmm exit" /vmm2.out 2>/dev/null && [ $i -lt 1200 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo go >&4
wait
sed 's/^/outer: mq eventfd: /' /mq-eventfd.out
sed 's/^/outer: mq exits: /' /mq-exits.out
echo "outer: done at $(cut -d" " -f1 /proc/uptime) s"
poweroff -f
EOF
} >"$T/outer/init"
mk_initramfs "$T/outer" "$T/outer.cpio" kvm_amd virtio_pci virtio_blk

log "an ext4 image with a file from the host"
TOKEN="from-the-host-$$-$RANDOM"
mkdir -p "$T/ext4root"
echo "$TOKEN" >"$T/ext4root/from-host.txt"
mkfs.ext4 -q -F -d "$T/ext4root" "$T/ext4.img" 16M >/dev/null

log "datastore with /vms/linux (kernel $KVER)"
# Long cluster timings (heartbeat every 1 s, dead after 60 s, fence after
# 40 s, I/O timeout 15 s): under TCG on a loaded box the outer VM's vmm missed
# the default 5 s fence, lost its lease and failed the guest's reads.
vmfs_mkfs "$D" 1G -T 1000,60000,40000,15000
# pci=nomsi: the virtio devices take INTx, routed by the DSDT's _PRT (the
# irq guest covers MSI-X; bench/vmm boots Linux with MSI-X).
# i8042_init skipped: there is no keyboard controller, and probing one polls
# a port thousands of times (each poll an exit, costly one level down).
# no_timer_check: VMs commonly skip the IO-APIC timer check (it did not cure
# the stall that docs/VMM.md, "Linux tests", describes).
CMDLINE="console=ttyS0 quiet nokaslr initcall_blacklist=i8042_init no_timer_check pci=nomsi panic=-1 tsc_early_khz=$KHZ ${LINUX_INNER_EXTRA:-}"
"$VMM" create "$D" /vms/linux --kernel "$KIT/vmlinuz" --initrd "$T/inner.cpio" \
	--cmdline "$CMDLINE" --mem 128 --cpus 2 --disk-from "$T/ext4.img"

vmfs_mkfs "$T/mq.img" 256M -T 1000,60000,40000,3000
for vm in mq mq2; do
	"$VMM" create "$T/mq.img" /vms/$vm --kernel "$VMFS_BIN/../tests/guests/mq.bzImage" --cmdline "cpus=2" --mem 32 --cpus 2 --disk 1M
done

log "outer QEMU (TCG, -cpu max), at most $QEMU_TIMEOUT s"
outer_qemu "$QEMU_TIMEOUT" "$T/outer.cpio" 512 nokaslr -drive "file=$D,format=raw,if=virtio,cache=writeback" \
	-drive "file=$T/mq.img,format=raw,if=virtio,cache=writeback"
rc=$QEMU_RC
echo "qemu exit $rc after $(elapsed "$START")"
if [ "$rc" -eq 124 ]; then
	grep -q 'inner: init ' "$T/console" ||
		fail "the outer QEMU did not finish within $QEMU_TIMEOUT s: the inner kernel never reached init (the early-boot stall in docs/VMM.md, \"Linux tests\")"
	fail "the outer QEMU did not finish within $QEMU_TIMEOUT s (the last phase line above shows where it stopped)"
fi
[ "$rc" -eq 0 ] || fail "the outer QEMU exited $rc"
grep -q 'inner: init ' "$T/console" || fail "the inner kernel did not reach its init"
grep -q 'inner: wrote from-guest.txt$' "$T/console" || fail "the guest did not write its file on ext4"
vmmpid=$(sed -n 's/.*outer: vmm pid \([0-9]*\)$/\1/p' "$T/console")
[ -n "$vmmpid" ] || fail "the outer init did not start vmm"
grep -q "outer: second start exit 1: vmm: /vms/linux/disk0.img: in use by .*vmm pid $vmmpid" "$T/console" ||
	fail "a second start of /vms/linux was not refused naming vmm pid $vmmpid"
before=$(sed -n 's/.*inner: memtotal before \([0-9]*\) kB$/\1/p' "$T/console")
after=$(sed -n 's/.*inner: memtotal after \([0-9]*\) kB$/\1/p' "$T/console")
[ -n "$before" ] && [ -n "$after" ] || fail "the guest did not report MemTotal before and after the balloon"
echo "MemTotal $before kB -> $after kB"
[ $((before - after)) -ge 30720 ] || fail "inflating the balloon by 32 MiB lowered MemTotal by $((before - after)) kB"
read -r t0 t1 < <(sed -n 's/.*inner: read 8388608 bytes in \([0-9.]*\) \([0-9.]*\)$/\1 \2/p' "$T/console")
[ -n "${t1:-}" ] || fail "the guest did not time its read under the rate limit"
rate=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", 8 / (b - a) }')
echo "read 8 MiB in $t0..$t1 s of guest time: $rate MiB/s under a 2 MiB/s limit"
awk -v r="$rate" 'BEGIN { exit !(r >= 1.8 && r <= 2.2) }' || fail "the rate limit of 2 MiB/s did not hold within 10% ($rate MiB/s)"
grep -q "inner: cpus 2$" "$T/console" || fail "the inner kernel did not find both vCPUs"
grep -q "inner: ACPI: Using IOAPIC for interrupt routing$" "$T/console" || fail "the inner kernel did not route interrupts through ACPI"
grep -q "inner: acpi tables .*APIC .*DSDT .*FACP" "$T/console" || fail "the inner kernel did not take the MADT, DSDT and FADT"
# virtio0 is the disk (slot 1, GSI 16): INTx through the IOAPIC, and it counted interrupts
grep -Eq "inner: irq 16: [0-9 ]*[1-9][0-9]* [0-9 ]*IO-APIC 16-fasteoi virtio0$" "$T/console" ||
	fail "the disk's interrupts did not come as INTx on IOAPIC pin 16"
# point 4: suspended into vm.state by one vmm, resumed by another, the guest's disk and console going on
grep -q 'outer: vmm ctl suspend: {"ok":true,"state":"suspended"' "$T/console" ||
	fail "vmm ctl suspend failed: $(grep 'outer: vmm ctl suspend' "$T/console")"
grep -q '^vmm: /vms/linux: resumed from /vms/linux/vm.state$' "$T/console" || fail "the second vmm run did not resume /vms/linux"
grep -q "inner: wrote resumed.txt$" "$T/console" || fail "the resumed guest's disk did not work: $(grep 'inner: .*resume' "$T/console")"
grep -q 'outer: resumed vmm exit 0$' "$T/console" || fail "the resumed vmm run did not exit 0"
echo "suspend: $(grep -o '"bytes":[0-9]*,"ram_bytes":[0-9]*,"total_us":[0-9]*' "$T/console"); guest clock $(sed -n 's/.*inner: waiting for the suspend at \([0-9.]*\) s$/\1/p' "$T/console") s at the suspend, $(sed -n 's/.*inner: resumed at \([0-9.]*\) s$/\1/p' "$T/console") s after the resume"
grep -q "inner: powering off$" "$T/console" || fail "the guest did not get through its phases"
# issue 16, point 6: a snapshot of the running VM, its disk being read; the pause is reported, not judged
snap=$(grep -o 'outer: vmm ctl snapshot: {"ok":true,"snapshot":"live","io_pause_us":[0-9]*,"total_us":[0-9]*' "$T/console") ||
	fail "vmm ctl snapshot of the running VM failed: $(grep 'outer: vmm ctl snapshot' "$T/console")"
grep -q "inner: read during the snapshot done$" "$T/console" || fail "the guest's reads across the snapshot did not finish"
echo "snapshot of the running VM: guest disk I/O paused $(echo "$snap" | sed 's/.*"io_pause_us":\([0-9]*\).*/\1/') us, the call took $(echo "$snap" | sed 's/.*"total_us":\([0-9]*\).*/\1/') us (QEMU TCG, one level down)"
grep -q 'outer: vmm exit 0 at ' "$T/console" || fail "vmm run did not exit 0 inside the outer VM"
grep -q 'outer: done at ' "$T/console" || fail "the outer init did not finish"
# the stall report, as every run samples it (see vm_report)
grep -q '^outer: sample: status {"ok":true' "$T/console" || fail "the sample report has no vmm ctl status"
grep -Eq '^outer: sample: [1-9][0-9]* exits, [0-9]+ interrupts accepted$' "$T/console" || fail "the sample report counted no KVM exits"
grep -Eq '^outer: sample: thread vmm .*kvm_(vcpu_block|arch_vcpu_ioctl_run)' "$T/console" || fail "the sample report shows no vCPU thread in KVM"
grep -Eq '^outer: sample: [0-9]+ exits vcpu [0-9]+ [a-z0-9_]+ rip ffffffff8[0-9a-f]+ [A-Za-z0-9_.]+\+0x[0-9a-f]+$' "$T/console" ||
	fail "the sample report named no guest RIP"
! grep -v '^vmm: timings \|^vmm: /vms/linux: suspended into /vms/linux/vm.state; vmm run resumes it$\|^vmm: /vms/linux: resumed from /vms/linux/vm.state$' "$T/console" |
	grep -q '^vmm: ' || fail "vmm run failed inside the outer VM"
# the Linux guest's disk: a queue per vCPU, doorbells through ioeventfd
t=$(grep -o '^vmm: timings {.*' "$T/console") || fail "vmm run --timings printed nothing"
[[ $t == *'"eventfd":true'* && $t == *'"queues":2,'* && $t == *'"exit_notifies":0,'* ]] ||
	fail "the Linux guest's disk did not run 2 queues on eventfd doorbells: $t"
echo "Linux guest: $t"
# the mq guest, run before the Linux guest in the same outer VM
sed -n 's/^outer: mq eventfd: //p' "$T/console" >"$T/mq-eventfd"
sed -n 's/^outer: mq exits: //p' "$T/console" >"$T/mq-exits"
mq_check "$T/mq-eventfd" eventfd 2
mq_check "$T/mq-exits" exits 2

log "the guest's file, read out of the ext4 image through libvmfs (vmfs-mount + debugfs)"
vmfs_mount "$D" "$T/m" -o ro
debugfs -R "cat /from-guest.txt" "$T/m/vms/linux/disk0.img" >"$T/got" 2>/dev/null
printf '%s\n%s\n' "$TOKEN" "$KVER" | cmp - "$T/got" || { cat "$T/got"; fail "from-guest.txt is not what the guest should have written"; }
[ "$(debugfs -R "cat /resumed.txt" "$T/m/vms/linux/disk0.img" 2>/dev/null)" = "written after the resume" ] ||
	fail "resumed.txt is not what the resumed guest wrote"
[ ! -e "$T/m/vms/linux/vm.state" ] || fail "vm.state is still there after the resume"
e2fsck -fn "$T/m/vms/linux/disk0.img" >"$T/fsck" 2>&1 || { cat "$T/fsck"; fail "the ext4 image is not clean after the guest's unmount"; }
# the snapshot taken while the guest ran holds the file it had written, as a clean ext4
sv="$T/m/vms/linux/.snapshots/disk0.img@live"
debugfs -R "cat /from-guest.txt" "$sv" >"$T/got-snap" 2>/dev/null
printf '%s\n%s\n' "$TOKEN" "$KVER" | cmp - "$T/got-snap" || fail "the running VM's snapshot does not hold from-guest.txt"
e2fsck -fn "$sv" >"$T/fsck-snap" 2>&1 || { cat "$T/fsck-snap"; fail "the running VM's snapshot is not a clean ext4"; }
vmfs_umount "$T/m" "$D"
vmfs_mount "$T/mq.img" "$T/m" -o ro
mq_check_data "$T/m/vms/mq/disk0.img" 2
mq_check_data "$T/m/vms/mq2/disk0.img" 2
vmfs_umount "$T/m" "$T/mq.img"

# Where /dev/kvm is hardware (the CPU has VMX or SVM), the same kernel boots
# directly too, on this machine's vmm: its init says so, reads its ext4 disk
# and powers off. Where /dev/kvm is missing or the emulating kind (KVM's PVM
# mode on these machines: no VMX/SVM flag, docs/REFERENCES.md), say so.
if ! have_kvm; then
	echo "direct boot skipped: cannot open /dev/kvm"
elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	echo "direct boot skipped: /dev/kvm is the emulating kind (no vmx or svm in /proc/cpuinfo)"
else
	log "direct boot on this machine's /dev/kvm (hardware virtualization)"
	mkdir -p "$T/direct"
	{
		echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=direct/'
		cat <<'EOF2'
echo "direct: init $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
wait_vda
mount -t ext4 -o ro /dev/vda /mnt && echo "direct: $(cat /mnt/from-host.txt)" && umount /mnt
poweroff -f
EOF2
	} >"$T/direct/init"
	mk_initramfs "$T/direct" "$T/direct.cpio" virtio_pci virtio_blk crc32c_generic ext4
	"$VMM" create "$D" /vms/direct --kernel "$KIT/vmlinuz" --initrd "$T/direct.cpio" \
		--cmdline "console=ttyS0 quiet pci=nomsi panic=-1" --mem 256 --cpus 2 --disk-from "$T/ext4.img"
	rc=0
	timeout 120 "$VMM" run "$D" /vms/direct --timings </dev/null >"$T/direct.out" 2>&1 || rc=$?
	tr -d '\r' <"$T/direct.out" | grep -v '^\[' | tail -n 20
	[ "$rc" -eq 0 ] || fail "the direct boot exited $rc"
	grep -q "^direct: init $KVER, 2 cpus" "$T/direct.out" || fail "the direct boot did not reach its init"
	grep -q "^direct: $TOKEN" "$T/direct.out" || fail "the direct boot did not read its disk"
fi
log "ok, $(elapsed "$START")"
