#!/bin/bash
# Taking over a killed host's locks needs no bystander (issue 14, point 6).
# With the default timings (dead after 8 s) and no other host on the
# datastore: SIGKILL a `vmm run` holding its disk and a control socket (from
# --ctl, then from vm.conf's ctl=) and start it again at once: the new run
# watches the dead holder's heartbeat itself, recovers it and runs, and the
# stale socket is replaced. A live vmm's socket and a file that is not a
# socket are never removed, and a live holder is refused at once. Then a
# vmfs-mount holding a file open for writing is SIGKILLed and the file is
# opened for writing again through a new mount, and by `vmm run` (vmfsctl has
# no command that opens a file: info, hosts and locks are read-only). In these
# two, and in one vmm case, another host takes the metadata lock before the
# kill, so the killed host holds only the file's lock: the new opener must
# prove the death itself (LK_WAIT_DEAD) instead of finding it recovered while
# it waited for the metadata lock. Each
# restart time is measured from the start of the new command and logged; the
# bound is the dead time plus 4 s, generous for a loaded 2-core machine.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm fsck.vmfs
have_kvm || skip "cannot open /dev/kvm"
need_cmd python3
GUEST=$VMFS_BIN/../tests/guests/hello.bzImage
[ -f "$GUEST" ] || fail "$GUEST not built"
VMM=$VMFS_BIN/vmm
D=$T/ds.img
DEAD=8
BOUND=$((DEAD + 4))
vmfs_mkfs "$D" 1G -T 1000,${DEAD}000,5000,2000

# start_vm NAME OUT [vmm run options...]: vmm run in the background; sets VM_PID.
start_vm() {
	local name=$1 out=$2
	shift 2
	# a run before may have left "ready" in out: the background redirection truncates it only when the child gets there
	rm -f "$out" "$out.err"
	"$VMM" run "$D" "/vms/$name" "$@" >"$out" 2>"$out.err" &
	VM_PID=$!
	PIDS+=("$VM_PID")
}
said_ready() { grep -qx ready "$1" 2>/dev/null; }
# within_bound WHAT START: logs the time since START and fails beyond BOUND s
within_bound() {
	local took
	took=$(awk -v a="$2" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	echo "   $1: $took s (dead time $DEAD s, bound $BOUND s)"
	awk -v t="$took" -v b="$BOUND" 'BEGIN { exit !(t <= b) }' || fail "$1 took $took s, more than $BOUND s"
}

"$VMM" create "$D" /vms/k --kernel "$GUEST" --cmdline "guest=hang" --mem 32 --cpus 1 --disk 1M
"$VMM" create "$D" /vms/c --kernel "$GUEST" --cmdline "guest=hang" --mem 32 --cpus 1 --disk 1M
"$VMM" create "$D" /vms/k2 --kernel "$GUEST" --cmdline "guest=hang" --mem 32 --cpus 1 --disk 1M
vmfs_mount "$D" "$T/m"
echo "ctl=$T/conf.sock" >>"$T/m/vms/c/vm.conf"
vmfs_umount "$T/m" "$D"

# steal_meta: another host takes the metadata lock (META) and leaves, so that
# a host killed afterwards holds only its file locks. A killed host that held
# META is recovered by the next host's open, which waits for META (LK_WAIT):
# that path never reached the file lock of a dead host.
steal_meta() {
	vmfs_mount "$D" "$T/meta"
	touch "$T/meta/stolen-$RANDOM"
	vmfs_umount_pid "$T/meta" "$DAEMON_PID"	# vmm holds the image too
}

# kill_restart NAME SOCKET [--ctl SOCKET]: SIGKILLs a running vmm of NAME, restarts it at once
kill_restart() {
	local name=$1 sock=$2 start
	shift 2
	start_vm "$name" "$T/$name.out" "$@"
	wait_until 60 said_ready "$T/$name.out" || { cat "$T/$name.out"*; fail "$name did not say ready"; }
	"$VMM" ctl "$sock" status | grep -q '"state":"running"' || fail "$name: no status through $sock"
	[ -z "${STEAL:-}" ] || steal_meta
	kill -9 "$VM_PID"
	wait "$VM_PID" 2>/dev/null || true
	[ -S "$sock" ] || fail "$name: the killed vmm's socket is gone (the test would prove nothing)"
	start=$EPOCHREALTIME
	start_vm "$name" "$T/$name.out2" "$@"
	wait_until 60 said_ready "$T/$name.out2" || { cat "$T/$name.out2"*; fail "$name did not run again after SIGKILL"; }
	within_bound "$name: restart after SIGKILL to ready" "$start"
	"$VMM" ctl "$sock" status | grep -q '"state":"running"' || fail "$name: the new vmm does not answer on $sock"
}

log "SIGKILL vmm run --ctl, start it again at once with the same socket"
kill_restart k "$T/k.sock" --ctl "$T/k.sock"
K_PID=$VM_PID

log "a live holder is refused at once, naming it; a live vmm's socket is not taken"
start=$EPOCHREALTIME
expect_one_line_failure "$VMM" run "$D" /vms/k
grep -q "in use by .*vmm pid $K_PID" "$T/stderr" || fail "the live holder is not named"
took=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
echo "   refused after $took s (join included)"
awk -v t="$took" -v d="$DEAD" 'BEGIN { exit !(t < d) }' || fail "a live holder was waited on for the dead time ($took s)"
expect_one_line_failure "$VMM" run "$D" /vms/k2 --ctl "$T/k.sock"
grep -q "Address already in use" "$T/stderr" || fail "a live socket was not refused"
"$VMM" ctl "$T/k.sock" status | grep -q '"name":"k"' || fail "the live vmm's socket was taken"
echo "not a socket" >"$T/plain"
expect_one_line_failure "$VMM" run "$D" /vms/k2 --ctl "$T/plain"
[ "$(cat "$T/plain")" = "not a socket" ] || fail "a plain file at the socket path was replaced"
"$VMM" ctl "$T/k.sock" stop >/dev/null
wait "$K_PID" || fail "vmm of k did not exit 0 after stop"

log "SIGKILL vmm run with vm.conf's ctl=, start it again at once"
kill_restart c "$T/conf.sock"
"$VMM" ctl "$T/conf.sock" stop >/dev/null
wait "$VM_PID" || fail "vmm of c did not exit 0 after stop"

log "the same when the killed vmm held only its disk's lock (another host took META before the kill)"
STEAL=1 kill_restart c "$T/conf.sock"
"$VMM" ctl "$T/conf.sock" stop >/dev/null
wait "$VM_PID" || fail "vmm of c did not exit 0 after stop"

# hold_open FILE: a process holding FILE open for writing; sets HOLD_PID once it is open
hold_open() {
	python3 -c 'import os, signal, sys; os.open(sys.argv[1], os.O_RDWR); print("open", flush=True); signal.pause()' \
		"$1" >"$T/hold.out" 2>&1 &
	HOLD_PID=$!
	PIDS+=("$HOLD_PID")
	wait_until 30 grep -qx open "$T/hold.out" || { cat "$T/hold.out"; fail "cannot open $1 for writing"; }
}
# kill_mount: SIGKILLs the mount at $T/m and the process holding a file open through it
kill_mount() {
	kill -9 "$FG_PID" "$HOLD_PID"
	wait "$FG_PID" 2>/dev/null || true
	wait "$HOLD_PID" 2>/dev/null || true
	umount -l "$T/m" 2>/dev/null || fusermount3 -uz "$T/m"
}

log "SIGKILL a vmfs-mount holding a file open for writing; a new mount opens it for writing"
vmfs_mount_fg "$D" "$T/m"
hold_open "$T/m/vms/k/disk0.img"
steal_meta
kill_mount
start=$EPOCHREALTIME
vmfs_mount_fg "$D" "$T/m"
python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDWR))' "$T/m/vms/k/disk0.img" ||
	fail "the file held by the killed mount cannot be opened for writing through a new mount"
within_bound "mount and open for writing after SIGKILL of the mount" "$start"
fusermount3 -u "$T/m"
wait "$FG_PID" || fail "the second mount did not exit 0"

log "SIGKILL a vmfs-mount holding a VM's disk open for writing; vmm run takes it"
vmfs_mount_fg "$D" "$T/m"
hold_open "$T/m/vms/k/disk0.img"
steal_meta
kill_mount
start=$EPOCHREALTIME
start_vm k "$T/k.out3"
wait_until 60 said_ready "$T/k.out3" || { cat "$T/k.out3"*; fail "vmm run did not take the disk of the killed mount"; }
within_bound "vmm run after SIGKILL of the mount" "$start"
kill -TERM "$VM_PID"
rc=0
wait "$VM_PID" || rc=$?
[ "$rc" -eq 143 ] || fail "vmm run exited $rc on SIGTERM, want 143"

log "the datastore is clean"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck -n after the takeovers"; }
log "ok"
