#!/bin/bash
# vmm agent's decisions that need no VM to run (issue 18, point 3; the
# restarts themselves are tests/e2e/ha.sh, one level down in QEMU TCG). Three
# agents, separate processes, each a host of the cluster, on one datastore
# with ha=restart VMs whose ha.state says they should run:
#   - /vms/huge needs 2048 MiB and the agents may give 1024 (--mem-limit):
#     each says so (JSON event no_memory, with the sizes) and none tries it;
#   - /vms/nokernel's kernel is gone: an agent that wins its lock starts
#     vmm run, which fails; the agent logs vmm's reason (event failed) and
#     leaves it to the others for 30 s; the others say who holds it (busy)
#     or try in their turn;
#   - /vms/off's ha.state says stopped: nobody touches it;
#   - /vms/plain (no ha= line) is not looked at.
# Each decision is said once; syslog gets the same lines. SIGTERM ends each
# agent with exit 0 and no VM left running. Bad options: one line, exit 2.
# Also vmm run's read-only look, which needs no VM to run either: a disk that
# a live host holds (a vmfs-mount with it open for writing) is refused
# naming that host, before /dev/kvm is even looked at; once that host is
# killed (SIGKILL: its lock stays on disk, its heartbeat stops), the look
# lets the run go on (where /dev/kvm is missing it then says so instead).
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
VMM=$VMFS_BIN/vmm
K=$VMFS_BIN/../tests/guests/hello.bzImage
D=$T/ds.img

vmfs_mkfs "$D" 512M
for vm in huge nokernel off plain; do
	mem=32
	[ $vm = huge ] && mem=2048
	ha=(--ha restart)
	[ $vm = plain ] && ha=()
	"$VMM" create "$D" /vms/$vm --kernel "$K" --mem $mem --cpus 1 --disk 1M "${ha[@]}"
done
vmfs_mount "$D" "$T/m"
rm "$T/m/vms/nokernel/kernel"
printf 'running\n' >"$T/m/vms/huge/ha.state"
printf 'running\n' >"$T/m/vms/nokernel/ha.state"
printf 'running\n' >"$T/m/vms/plain/ha.state"
printf 'stopped\n' >"$T/m/vms/off/ha.state"
grep -qx 'ha=restart' "$T/m/vms/huge/vm.conf" || fail "vmm create --ha restart wrote no ha= line"
! grep -q '^ha=' "$T/m/vms/plain/vm.conf" || fail "vmm create without --ha wrote an ha= line"
vmfs_umount "$T/m" "$D"

log "bad options"
expect_one_line_failure "$VMM" agent "$D" --mem-limit 0
expect_one_line_failure "$VMM" agent "$D" --interval 5
expect_one_line_failure "$VMM" create "$D" /vms/x --kernel "$K" --mem 32 --cpus 1 --disk 1M --ha sometimes

log "vmm run's look: a disk a live host holds is refused before anything starts"
vmfs_mount_fg "$D" "$T/m"
exec 9<>"$T/m/vms/off/disk0.img"	# the mount takes the file's exclusive lock
expect_one_line_failure "$VMM" run "$D" /vms/off
grep -Eq "^vmm: /vms/off/disk0.img: in use by host slot [0-9]+ \(.*vmfs-mount pid $FG_PID.*, generation [0-9]+, exclusive\)\$" "$T/stderr" ||
	fail "vmm run did not refuse the disk the mount holds, naming it"
if ! have_kvm; then
	kill -9 "$FG_PID"
	wait "$FG_PID" 2>/dev/null || true
	exec 9>&-
	umount -l "$T/m" 2>/dev/null || fusermount3 -uz "$T/m" 2>/dev/null || true
	expect_one_line_failure "$VMM" run "$D" /vms/off
	grep -q "^vmm: /dev/kvm: No such file or directory$" "$T/stderr" ||
		fail "vmm run's look refused a disk whose holder is dead (it is for the join to recover)"
else
	exec 9>&-
	vmfs_umount "$T/m" "$D"
fi

log "three agents"
for h in A B C; do
	"$VMM" agent "$D" --json --mem-limit 1024 >"$T/$h.json" 2>"$T/$h.err" &
	PIDS+=($!)
	echo $! >"$T/$h.pid"
done
# every agent has said why it leaves /vms/huge, and /vms/nokernel was tried and failed (bounded: 60 s)
done_yet() {
	for h in A B C; do
		grep -q '"event":"no_memory","vm":"/vms/huge"' "$T/$h.json" || return 1
	done
	cat "$T"/?.json | grep '"vm":"/vms/nokernel"' | grep -q '"event":"failed"'
}
wait_until 60 done_yet || { cat "$T"/?.json "$T"/?.err; fail "the agents did not decide about /vms/huge and /vms/nokernel"; }
for h in A B C; do kill -TERM "$(cat "$T/$h.pid")"; done
for h in A B C; do
	rc=0
	wait "$(cat "$T/$h.pid")" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/$h.err"; fail "agent $h exited $rc on SIGTERM"; }
done
cat "$T"/?.json

log "what they said"
for h in A B C; do
	j=$T/$h.json
	grep -q '"event":"start"' "$j" || fail "$h did not say it started"
	grep '"event":"no_memory"' "$j" | grep -q '"vm":"/vms/huge","message":"should run but cannot here: it needs 2048 MiB, this host has [0-9]* MiB free; left to another host"' ||
		fail "$h did not say why it leaves /vms/huge"
	[ "$(grep -c '"event":"no_memory","vm":"/vms/huge"' "$j")" -eq 1 ] || fail "$h said no_memory for /vms/huge more than once"
	! grep -q '"event":"restart","vm":"/vms/huge"' "$j" || fail "$h started /vms/huge"
	! grep -q '"vm":"/vms/off"' "$j" || grep -q '"event":"stopped","vm":"/vms/off"' "$j" || fail "$h acted on /vms/off"
	! grep '"vm":"/vms/off"' "$j" | grep -q '"event":"restart"' || fail "$h started /vms/off"
	! grep -q '"vm":"/vms/plain"' "$j" || fail "$h looked at /vms/plain (no ha= line)"
	grep -q '"event":"exit"' "$j" || fail "$h did not say it ends"
done
cat "$T"/?.json | grep '"vm":"/vms/nokernel"' | grep '"event":"failed"' |
	grep -q 'vmm run failed (exit 1): /vms/nokernel/kernel: No such file or directory; left to the other hosts for 30 s' ||
	fail "no agent said why /vms/nokernel cannot start"
# the children's errors reach the agent's stderr, prefixed with the VM's path
cat "$T"/?.err | grep -q '^/vms/nokernel: vmm: /vms/nokernel/kernel: No such file or directory$' ||
	fail "vmm run's error did not reach the agent's stderr"
# each agent that failed /vms/nokernel tried it once (30 s backoff), and no two ran it at once
n=$(cat "$T"/?.json | grep -c '"event":"restart","vm":"/vms/nokernel"' || true)
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || fail "/vms/nokernel was started $n times (want 1 to 3: once per agent at most)"
log "ok"
