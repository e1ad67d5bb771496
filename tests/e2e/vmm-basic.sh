#!/bin/bash
# vmm on a datastore: create a VM whose kernel is the freestanding hello guest
# (tests/guests/hello.c, a bzImage-shaped binary) with a 64 MiB thin disk, list
# it, run it on /dev/kvm and check its serial output and exit code (the guest
# powers off through the i8042 reset command). The blk guest drives virtio-blk
# over PCI: it reads data the host put in the image, writes a sector that is
# then read back through libvmfs (vmfs-mount), and discards a block it wrote,
# which must leave a hole. While one run holds its disk's
# cluster lock a second run fails naming the holder. Bad input gives one-line
# errors: a missing kernel file, an existing VM, a bad vm.conf, no /dev/kvm.
# The irq guest reads the MP table and takes virtio-blk and serial (stdin)
# interrupts through the IOAPIC. The ctl guest is driven through the control
# socket (vmm ctl): status, pause, resume, a balloon target, a rate limit, stop.
# The smp guest starts the other vCPUs with INIT/SIPI. The acpi guest checks
# the ACPI tables byte by byte and powers off through PM1a_CNT (S5), then
# resets through the FADT's reset register. A ctl= line in vm.conf opens the
# control socket without --ctl; a relative one is refused.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
have_kvm || skip "cannot open /dev/kvm"
GUEST=$VMFS_BIN/../tests/guests/hello.bzImage
[ -f "$GUEST" ] || fail "$GUEST not built"
VMM=$VMFS_BIN/vmm
D=$T/ds.img

vmfs_mkfs "$D" 1G

log "create and list"
"$VMM" create "$D" /vms/hello --kernel "$GUEST" --cmdline "console=ttyS0 marker=42" --mem 64 --cpus 1 --disk 64M
"$VMM" list "$D" | tee "$T/list"
grep -Eq '^/vms/hello +64 MiB +1 vCPU +1 disk$' "$T/list" || fail "vmm list does not show /vms/hello"

log "run: serial output and exit code"
rc=0
timeout 60 "$VMM" run "$D" /vms/hello >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] || fail "vmm run exited $rc"
[ "$(cat "$T/out")" = $'hello\ncmdline: console=ttyS0 marker=42' ] || fail "unexpected serial output"
[ ! -s "$T/err" ] || fail "vmm run wrote to stderr"

log "the thin disk is 64 MiB and thin (at most 1 MiB allocated)"
vmfs_mount "$D" "$T/m" -o ro
[ "$(stat -c %s "$T/m/vms/hello/disk0.img")" -eq $((64 << 20)) ] || fail "disk0.img is not 64 MiB"
[ "$(stat -c %b "$T/m/vms/hello/disk0.img")" -le 2048 ] || fail "disk0.img is not thin (more than 1 MiB allocated)"
cmp "$GUEST" "$T/m/vms/hello/kernel" || fail "the kernel copy differs"
grep -qx 'disk=disk0.img' "$T/m/vms/hello/vm.conf" || fail "vm.conf has no disk line"
grep -qx 'devices=virtio-rng,virtio-balloon' "$T/m/vms/hello/vm.conf" || fail "vm.conf has no devices line"
vmfs_umount "$T/m" "$D"

log "virtio-blk over PCI: the blk guest reads host data, writes sector 7, flushes, reads it back"
BLK=$VMFS_BIN/../tests/guests/blk.bzImage
{ printf 'from-the-host-ok'; head -c $((4 << 20)) /dev/zero; } >"$T/img"
"$VMM" create "$D" /vms/blk --kernel "$BLK" --mem 32 --cpus 1 --disk-from "$T/img"
rc=0
timeout 60 "$VMM" run "$D" /vms/blk >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] || fail "vmm run of the blk guest exited $rc"
grep -qx "blk: capacity $(( ((4 << 20) + 16) / 512 )) sectors" "$T/out" || fail "wrong capacity"
grep -qx "blk: sector 0: from-the-host-ok" "$T/out" || fail "the guest did not read the host's data"
grep -qx "blk ok" "$T/out" || fail "the blk guest did not finish"
vmfs_mount "$D" "$T/m" -o ro
cmp <(for i in $(seq 32); do printf 'vmm-blk-sector-7'; done) \
	<(dd if="$T/m/vms/blk/disk0.img" bs=512 skip=7 count=1 status=none) || fail "sector 7 in the image is not what the guest wrote"
cmp <(head -c 3584 "$T/img") <(head -c 3584 "$T/m/vms/blk/disk0.img") || fail "sectors 0-6 changed"
grep -qx "blk: discarded sectors 2048-4095" "$T/out" || fail "the guest did not discard"
cmp <(head -c 512 /dev/zero) <(dd if="$T/m/vms/blk/disk0.img" bs=512 skip=2048 count=1 status=none) || fail "sector 2048 is not zero after discard"
alloc=$(( $(stat -c %b "$T/m/vms/blk/disk0.img") * 512 ))
echo "   disk0.img: $alloc bytes allocated after the discard"
[ "$alloc" -lt $((2 << 20)) ] || fail "the discard did not free the block (still $alloc bytes allocated)"
vmfs_umount "$T/m" "$D"

# run_guest NAME: creates /vms/NAME with tests/guests/NAME.bzImage, runs it, expects "NAME ok" and exit 0.
run_guest() {
	local rc=0
	"$VMM" create "$D" "/vms/$1" --kernel "$VMFS_BIN/../tests/guests/$1.bzImage" --mem 32 --cpus 1 --disk 1M
	timeout 60 "$VMM" run "$D" "/vms/$1" >"$T/out" 2>"$T/err" || rc=$?
	cat "$T/out" "$T/err"
	[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$1 ok" ] || fail "the $1 guest failed (exit $rc)"
}
log "virtio-blk multiqueue: the mq guest keeps 32 requests in flight on each of 2 queues, with and without eventfds"
"$VMM" create "$D" /vms/mq --kernel "$VMFS_BIN/../tests/guests/mq.bzImage" --cmdline "cpus=2" --mem 32 --cpus 2 --disk 1M
timeout 60 "$VMM" run "$D" /vms/mq --timings >"$T/mq-eventfd" 2>&1 || { cat "$T/mq-eventfd"; fail "vmm run of the mq guest failed"; }
VMM_NO_EVENTFD=1 timeout 60 "$VMM" run "$D" /vms/mq --timings >"$T/mq-exits" 2>&1 || { cat "$T/mq-exits"; fail "vmm run of the mq guest failed (VMM_NO_EVENTFD=1)"; }
mq_check "$T/mq-eventfd" eventfd 2
mq_check "$T/mq-exits" exits 2
vmfs_mount "$D" "$T/m" -o ro
mq_check_data "$T/m/vms/mq/disk0.img" 2
vmfs_umount "$T/m" "$D"

log "virtio-rng: the rng guest draws twice from it"
run_guest rng
log "virtio-balloon: an inflated page goes back to the host and reads as zeros"
run_guest balloon

log "interrupts: the irq guest checks the MP table, takes virtio-blk completions (INTx, MSI-X) and serial input by interrupt"
"$VMM" create "$D" /vms/irq --kernel "$VMFS_BIN/../tests/guests/irq.bzImage" --cmdline "cpus=3" --mem 32 --cpus 3 --disk 1M
rc=0
printf 'ping\n' | timeout 60 "$VMM" run "$D" /vms/irq >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] || fail "vmm run of the irq guest exited $rc"
[ "$(cat "$T/out")" = "irq: mp table ok, 3 cpus
irq: virtio-blk completions by interrupt on IOAPIC pin 16
irq: virtio-blk completions by MSI-X, a masked one held in the PBA
irq: serial input by interrupt on IOAPIC pin 4: ping
irq ok" ] || fail "the irq guest failed"

log "several vCPUs: the smp guest starts its APs with INIT and SIPI through the in-kernel LAPIC"
"$VMM" create "$D" /vms/smp --kernel "$VMFS_BIN/../tests/guests/smp.bzImage" --cmdline "cpus=3" --mem 32 --cpus 3 --disk 1M
rc=0
timeout 60 "$VMM" run "$D" /vms/smp >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = $'2 APs started\nsmp ok' ] || fail "the smp guest failed (exit $rc)"

log "ACPI: the acpi guest walks RSDP, XSDT, FADT, MADT and DSDT and powers off through PM1a_CNT (S5), or resets"
"$VMM" create "$D" /vms/acpi --kernel "$VMFS_BIN/../tests/guests/acpi.bzImage" --cmdline "cpus=3" --mem 32 --cpus 3 --disk 1M
ACPI_TABLES="acpi: RSDP, XSDT, RSDT, FADT, FACS, DSDT and MADT ok
acpi: MADT: 3 cpus, IOAPIC id 3 at 0xfec00000
acpi: _PRT matches 3 PCI slots"
rc=0
timeout 60 "$VMM" run "$D" /vms/acpi >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$ACPI_TABLES
acpi: S5 is SLP_TYP 5, powering off through PM1a_CNT" ] || fail "the acpi guest failed (exit $rc)"
[ ! -s "$T/err" ] || fail "vmm run wrote to stderr on an ACPI power-off"
vmfs_mount "$D" "$T/m"
sed -i 's/^cmdline=.*/cmdline=cpus=3 acpi=reset/' "$T/m/vms/acpi/vm.conf"
vmfs_umount "$T/m" "$D"
rc=0
timeout 60 "$VMM" run "$D" /vms/acpi >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err"
[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$ACPI_TABLES
acpi: resetting through RESET_REG" ] || fail "the acpi guest's reset through RESET_REG failed (exit $rc)"

log "the control socket: status, pause, resume, balloon target, rate limit, snapshot, stop"
"$VMM" create "$D" /vms/ctl --kernel "$VMFS_BIN/../tests/guests/ctl.bzImage" --mem 32 --cpus 2 --disk 1M
CTL=$T/ctl.sock
"$VMM" run "$D" /vms/ctl --ctl "$CTL" >"$T/ctl.out" 2>"$T/ctl.err" &
CTL_PID=$!
PIDS+=("$CTL_PID")
ctl_said() { grep -qx "$1" "$T/ctl.out" 2>/dev/null; }
wait_until 60 ctl_said "ctl: ready" || { cat "$T/ctl.out" "$T/ctl.err"; fail "the ctl guest did not say ready"; }
"$VMM" ctl "$CTL" status | tee "$T/status"
grep -q '"ok":true,"name":"ctl","state":"running","vcpus":2,"memory_mib":32,"balloon":{"target_pages":0,"actual_pages":0}' "$T/status" || fail "status is wrong"
grep -q '"disks":\[{"file":"disk0.img","readonly":false,"bytes_per_s":0,"ops_per_s":0,"reads":0,' "$T/status" || fail "status shows no disk"
[ "$("$VMM" ctl "$CTL" pause)" = '{"ok":true,"state":"paused"}' ] || fail "pause failed"
"$VMM" ctl "$CTL" status | grep -q '"state":"paused"' || fail "status does not say paused"
[ "$("$VMM" ctl "$CTL" resume)" = '{"ok":true,"state":"running"}' ] || fail "resume failed"
# requests the server refuses, and one the client refuses
expect_one_line_failure "$VMM" ctl "$CTL" rate 1 0 0
grep -q '"ok":false,"error":"want \\"disk\\"' "$T/stdout" || fail "a bad disk index is not refused"
expect_one_line_failure "$VMM" ctl "$CTL" balloon 99999999
expect_one_line_failure "$VMM" ctl "$CTL" frobnicate
# one operation a second on disk 0, then the balloon target that lets the guest go on
"$VMM" ctl "$CTL" rate 0 0 1
"$VMM" ctl "$CTL" balloon 5
wait_until 60 ctl_said "ctl: done" || { cat "$T/ctl.out" "$T/ctl.err"; fail "the ctl guest did not finish"; }
ctl_said "ctl: balloon target 5" || fail "the guest did not see the balloon target"
"$VMM" ctl "$CTL" status | tee "$T/status"
grep -q '"balloon":{"target_pages":5,"actual_pages":5}' "$T/status" || fail "status does not show the guest's actual pages"
grep -q '"bytes_per_s":0,"ops_per_s":1,"reads":4,"writes":0,"read_bytes":2048,' "$T/status" || fail "status does not show the limit and the 4 reads"
# four reads at one a second with a burst of one: at least one of them waited (no timing asserted)
grep -q '"throttled":0}' "$T/status" && fail "no request waited for the rate limit"
# a snapshot of the running VM's folder (disk and vm.conf together); revert is refused while it runs
"$VMM" ctl "$CTL" snapshot s1 | tee "$T/snap"
grep -q '^{"ok":true,"snapshot":"s1","io_pause_us":[0-9]*,"total_us":[0-9]*}$' "$T/snap" || fail "ctl snapshot failed"
expect_one_line_failure "$VMM" ctl "$CTL" revert s1
grep -q '"ok":false,"error":"the VM is running' "$T/stdout" || fail "revert of a running VM is not refused"
[ "$("$VMM" ctl "$CTL" stop)" = '{"ok":true,"state":"stopping"}' ] || fail "stop failed"
rc=0
wait "$CTL_PID" || rc=$?
"$VMFS_BIN/vmfsctl" snapshot list --json "$D" /vms/ctl | grep -q '"file":"/vms/ctl/disk0.img","parent":"s1"' ||
	fail "the VM's disk has no snapshot s1 after the run"
cat "$T/ctl.err"
[ "$rc" -eq 0 ] || fail "vmm run exited $rc after stop, want 0"
[ ! -e "$CTL" ] || fail "the control socket is left behind"
expect_one_line_failure "$VMM" ctl "$CTL" status
grep -q "No such file or directory" "$T/stderr" || fail "a missing socket is not reported"

log "a second run of a running VM fails naming the holder"
"$VMM" create "$D" /vms/hang --kernel "$GUEST" --cmdline "guest=hang" --mem 32 --cpus 2 --disk 1M
"$VMM" run "$D" /vms/hang >"$T/hang.out" 2>"$T/hang.err" &
HANG_PID=$!
PIDS+=("$HANG_PID")
ready() { grep -qx ready "$T/hang.out" 2>/dev/null; }
wait_until 60 ready || { cat "$T/hang.out" "$T/hang.err"; fail "the hang guest did not say ready"; }
expect_one_line_failure "$VMM" run "$D" /vms/hang
grep -q "/vms/hang/disk0.img: in use by .*vmm pid $HANG_PID" "$T/stderr" || fail "the holder is not named"

log "SIGTERM stops the VM cleanly: exit 143 and the lock is released at once; SIGINT stops a paused VM"
kill -TERM "$HANG_PID"
rc=0
wait "$HANG_PID" || rc=$?
cat "$T/hang.err"
[ "$rc" -eq 143 ] || fail "vmm run exited $rc on SIGTERM, want 143"
[ ! -s "$T/hang.err" ] || fail "vmm run wrote to stderr on SIGTERM"
# A lock left behind would be held until the dead host's heartbeat times out.
"$VMM" run "$D" /vms/hang --ctl "$T/hang.sock" >"$T/hang.out" 2>"$T/hang.err" &
HANG_PID=$!
PIDS+=("$HANG_PID")
wait_until 60 ready || { cat "$T/hang.out" "$T/hang.err"; fail "a second run after SIGTERM did not start"; }
# paused (both vCPUs parked) it must still stop on a signal
"$VMM" ctl "$T/hang.sock" pause
kill -INT "$HANG_PID"
wait_until 30 not pid_alive "$HANG_PID" || fail "a paused VM did not stop on SIGINT"
rc=0
wait "$HANG_PID" || rc=$?
[ "$rc" -eq 130 ] || fail "vmm run exited $rc on SIGINT, want 130"

log "one-line errors"
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$T/nonexistent" --mem 64 --cpus 1 --disk 1M
grep -q "nonexistent" "$T/stderr" || fail "the missing kernel is not named"
expect_one_line_failure "$VMM" create "$D" /vms/hello --kernel "$GUEST" --mem 64 --cpus 1 --disk 1M
grep -q "already exists" "$T/stderr" || fail "an existing VM is not reported"
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$GUEST" --mem 1 --cpus 1 --disk 1M
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$GUEST" --mem 64 --cpus 0 --disk 1M
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$GUEST" --mem 64 --cpus 1 --disk 1Q
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$GUEST" --mem 64 --cpus 1
expect_one_line_failure "$VMM" create "$D" /vms/../x --kernel "$GUEST" --mem 64 --cpus 1 --disk 1M
expect_one_line_failure "$VMM" run "$D" /vms/nothere
expect_one_line_failure "$VMM" frobnicate "$D"
# a kernel that is not a bzImage
"$VMM" create "$D" /vms/notbz --kernel "$D.nope" --mem 64 --cpus 1 --disk 1M 2>/dev/null && fail "created from a missing file"
head -c 4096 /dev/urandom >"$T/junk"
expect_one_line_failure "$VMM" create "$D" /vms/junk --kernel "$T/junk" --mem 64 --cpus 1 --disk 1M
grep -q "not a bzImage" "$T/stderr" || fail "a junk kernel is not reported as such"
"$VMM" create "$D" /vms/junk --kernel "$GUEST" --mem 64 --cpus 1 --disk 1M
# a vm.conf with a bad line
vmfs_mount "$D" "$T/m"
printf 'name=junk\nmemory=lots\ncpus=1\nkernel=kernel\n' >"$T/m/vms/junk/vm.conf"
# the rng guest without virtio-rng in vm.conf finds no device
sed -i 's/^devices=.*/devices=/' "$T/m/vms/rng/vm.conf"
# a read-only disk (disk=FILE:ro): the blk guest's writes must fail
"$VMM" create "$D" /vms/ro --kernel "$VMFS_BIN/../tests/guests/blk.bzImage" --cmdline blk=ro --mem 32 --cpus 1 --disk 1M
sed -i 's/^disk=disk0.img$/disk=disk0.img:ro/' "$T/m/vms/ro/vm.conf"
# the control socket named in vm.conf (ctl=), and a ctl= that is refused
echo "ctl=$T/conf.sock" >>"$T/m/vms/hang/vm.conf"
echo "ctl=../conf.sock" >>"$T/m/vms/smp/vm.conf"
vmfs_umount "$T/m" "$D"
rc=0
timeout 60 "$VMM" run "$D" /vms/ro >"$T/out" 2>&1 || rc=$?
cat "$T/out"
[ "$rc" -eq 0 ] && grep -qx "blk ro ok" "$T/out" || fail "the read-only disk was writable or the guest failed (exit $rc)"
expect_one_line_failure "$VMM" run "$D" /vms/junk
grep -q "vm.conf: line 2: memory 'lots'" "$T/stderr" || fail "the bad vm.conf line is not named"
expect_one_line_failure "$VMM" run "$D" /vms/smp
grep -q "vm.conf: line [0-9]*: ctl '../conf.sock' (want an absolute path" "$T/stderr" || fail "a relative ctl= is not refused"
"$VMM" run "$D" /vms/hang >"$T/hang.out" 2>"$T/hang.err" &
HANG_PID=$!
PIDS+=("$HANG_PID")
conf_sock() { "$VMM" ctl "$T/conf.sock" status >"$T/status" 2>/dev/null; }
wait_until 60 conf_sock || { cat "$T/hang.out" "$T/hang.err"; fail "no control socket from vm.conf's ctl="; }
grep -q '"ok":true,"name":"hang","state":"running"' "$T/status" || fail "status through vm.conf's ctl= is wrong"
"$VMM" ctl "$T/conf.sock" stop >/dev/null
rc=0
wait "$HANG_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "vmm run exited $rc after stop through vm.conf's ctl=, want 0"
[ ! -e "$T/conf.sock" ] || fail "the control socket from vm.conf's ctl= is left behind"
timeout 60 "$VMM" run "$D" /vms/rng >"$T/out" 2>&1
grep -qx "FAIL: no such virtio device on PCI bus 0" "$T/out" || fail "devices= did not drop virtio-rng"
"$VMM" list "$D" | grep -q '^/vms/junk .*bad vm.conf: line 2' || fail "vmm list does not flag the bad vm.conf"
# no /dev/kvm: a private mount namespace with an empty /dev
if unshare -m true 2>/dev/null; then
	expect_one_line_failure unshare -m sh -c 'mount -t tmpfs none /dev && exec "$0" run "$1" /vms/hello' "$VMM" "$D"
	grep -q "/dev/kvm: No such file or directory" "$T/stderr" || fail "a missing /dev/kvm is not reported"
fi
log "ok"
