#!/bin/bash
# HA restart from the disk alone (issue 18, point 3), with the counter guest
# (tests/guests/counter.c) and three hosts as separate process groups in one
# outer VM (QEMU TCG with kvm-amd, as linux.sh: /dev/kvm here is not
# hardware). Each host is a `vmm agent --json` and the VMs it runs. Host A
# also starts /vms/ha (ha=restart) by hand.
#   1. SIGKILL host A (its agent and the VM): /vms/ha runs again on exactly
#      one of B and C, its counter resumed where A's left it.
#   2. SIGSTOP the host now running it: it runs again on the other
#      survivor. SIGCONT the stopped host: its vmm says it is fenced and
#      ends, its agent says so and ends, and its guest never writes again
#      (any count it prints is of a write that landed before the stop; the
#      disk's last record is the new instance's).
# What the agents decide without a VM running (no room, a missing kernel)
# is tests/e2e/ha-agent.sh.
# test: long (one level down in QEMU TCG, about 75 s; nothing is timed)
# Times are printed, not judged (the restart time with the default timings
# is measured by make bench: bench/ha). docs/VMM.md, "HA restart".
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/linux-lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmm
need_cmd cpio timeout python3
linux_kit
VMM=$VMFS_BIN/vmm
COUNTER=$VMFS_BIN/../tests/guests/counter.bzImage
D=$T/ds.img
START=$EPOCHREALTIME
# heartbeat 1 s, dead after 10 s, fence after 5 s, I/O timeout 3 s (a join
# waits about 3 s): a little more room than lockmgr's defaults for a loaded
# machine under TCG. HA_TIMINGS="" keeps the defaults (bench/ha).
TIMINGS=${HA_TIMINGS-1000,10000,5000,3000}
QEMU_TIMEOUT=${HA_QEMU_TIMEOUT:-400}

log "datastore: /vms/ha, ha=restart"
vmfs_mkfs "$D" 1G ${TIMINGS:+-T "$TIMINGS"}
"$VMM" create "$D" /vms/ha --kernel "$COUNTER" --mem 32 --cpus 1 --disk 1M --ha restart
vmfs_mount "$D" "$T/m"
sed -i 's/^devices=.*/devices=/' "$T/m/vms/ha/vm.conf"
vmfs_umount "$T/m" "$D"

log "outer initramfs: kvm-amd, virtio-blk, vmm"
outer_add_bin "$T/outer" "$VMM" /bin/vmm
{
	echo "$INIT_HEAD" | sed 's/^#!.*/&\nWHO=outer/'
	cat <<'EOF'
[ -c /dev/kvm ] || echo "outer: no /dev/kvm"
up() { cut -d" " -f1 /proc/uptime; }
# waitfor PATTERN FILE...: a bounded poll (120 s of the outer VM's clock) until one of the
# files has a line matching PATTERN; prints that file's name, fails after the bound
waitfor() {
	local pat=$1 end=$(($(cut -d. -f1 /proc/uptime) + 120))
	shift
	while ! grep -q "$pat" "$@" 2>/dev/null && [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		sleep 0.2
	done
	grep -l "$pat" "$@" 2>/dev/null | head -n1
	grep -q "$pat" "$@" 2>/dev/null
}
# every 15 s, each log's last line: where a slow or stuck step stands
(
	while sleep 15; do
		for f in /A.ha /A.err /B.err /C.err /B.json /C.json; do
			[ -s $f ] && echo "outer: progress $(up) s $f: $(tail -n1 $f | cut -c1-160)"
		done
	done
) &
# host NAME ARGS...: a process group of its own: the agent, its VM children, and anything else it starts
host() {
	local name=$1
	shift
	setsid sh -c 'echo $$ >/'$name'.pgid; exec /bin/vmm agent /dev/vda --json "$@" >/'$name'.json 2>/'$name'.err' sh "$@" &
}
echo "outer: init at $(up) s"
host A
host B
host C
i=0
while [ ! -s /A.pgid ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -s /A.pgid ] || echo "outer: host A did not start"
# A's VMs, started by hand (killed with A's group below)
sh -c 'exec /bin/vmm run /dev/vda /vms/ha' </dev/null >/A.ha 2>&1 &
echo $! >/A.ha.pid
# show: what a host or a VM printed, when a step did not come, and where every vmm thread waits
show() {
	local p t
	for f in "$@"; do sed "s|^|outer: $f: |" /$f; done
	for p in $(pidof vmm); do
		for t in /proc/$p/task/*; do
			echo "outer: thread $p $(cat $t/comm) $(cat $t/wchan) $(head -n 3 $t/stack 2>/dev/null | sed 's/^\[<0>\] //' | tr '\n' ' ')"
		done
	done
}
waitfor "^count 10$" /A.ha >/dev/null || show A.ha A.err A.json B.err
echo "outer: A runs /vms/ha at $(up) s: $(grep -c '^count' /A.ha) counts"
# 1. SIGKILL host A: its agent's group and its VMs
t0=$(up)
kill -KILL -"$(cat /A.pgid)" $(cat /A.ha.pid)
echo "outer: killed A at $t0 s"
w=$(waitfor "^/vms/ha: counter: boot id .* resumes" /B.err /C.err) || show B.err C.err
t1=$(up)
echo "outer: /vms/ha resumed on ${w#/} at $t1 s"
W1=${w#/}
W1=${W1%.err}
[ "$W1" = B ] && W2=C || W2=B
waitfor "^/vms/ha: count " /$W1.err >/dev/null
# 2. SIGSTOP the host running /vms/ha (its agent and its VMs: one group)
t2=$(up)
kill -STOP -"$(cat /$W1.pgid)"
echo "outer: stopped $W1 at $t2 s"
w=$(waitfor "^/vms/ha: counter: boot id .* resumes" /$W2.err) || show $W2.err $W2.json
t3=$(up)
echo "outer: /vms/ha resumed on $W2 at $t3 s"
waitfor "^/vms/ha: count " /$W2.err >/dev/null
lines=$(wc -l </$W1.err)
echo "outer: $W1.err had $lines lines when continued"
kill -CONT -"$(cat /$W1.pgid)"
echo "outer: continued $W1 at $(up) s"
waitfor '"event":"fenced"' /$W1.json >/dev/null
echo "outer: $W1's agent fenced at $(up) s"
# the end: the surviving agents stop their VMs (ha.state "stopped")
for h in B C; do kill -TERM -"$(cat /$h.pgid)" 2>/dev/null; done
i=0
while pidof vmm >/dev/null && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
for f in A.ha A.json A.err B.json B.err C.json C.err; do
	sed "s|^|outer: log $f: |" /$f
done
echo "outer: W1 $W1 W2 $W2 times $t0 $t1 $t2 $t3"
echo "outer: done at $(up) s"
poweroff -f
EOF
} >"$T/outer/init"
mk_initramfs "$T/outer" "$T/outer.cpio" kvm_amd virtio_pci virtio_blk

log "outer QEMU (TCG, -cpu max), at most $QEMU_TIMEOUT s"
outer_qemu "$QEMU_TIMEOUT" "$T/outer.cpio" 512 "" -drive "file=$D,format=raw,if=virtio,cache=writeback" >/dev/null
C=$T/console
[ "$QEMU_RC" -eq 0 ] || { cat "$C"; fail "the outer QEMU exited $QEMU_RC"; }
grep -q '^outer: done at' "$C" || { cat "$C"; fail "the outer init did not finish"; }
grep '^outer: [^l]' "$C"
log "each host's log"
grep '^outer: log ' "$C" | grep -v ': count [0-9]*$' | head -n 200
read -r W1 W2 t0 t1 t2 t3 < <(sed -n 's/^outer: W1 \(.\) W2 \(.\) times \([0-9.]*\) \([0-9.]*\) \([0-9.]*\) \([0-9.]*\)$/\1 \2 \3 \4 \5 \6/p' "$C")
[ -n "${t2:-}" ] || fail "the outer init did not get through the steps"
logf() { sed -n "s|^outer: log $1: ||p" "$C"; }

log "1. A killed: /vms/ha again on exactly one survivor"
restarts() { logf "$1.json" | grep '"event":"restart"' | grep -c "\"vm\":\"$2\"" || true; }
n_ha=$(($(restarts B /vms/ha) + $(restarts C /vms/ha)))
[ "$n_ha" -eq 2 ] || fail "/vms/ha was restarted $n_ha times in all (want 2: after the kill and after the stop)"
aid=$(logf A.ha | sed -n 's/^counter: boot id \([0-9a-f]*\) starts at 0$/\1/p')
[ -n "$aid" ] || fail "the counter did not start on A"
logf "$W1.err" | grep -q "^/vms/ha: counter: boot id [0-9a-f]* resumes at [1-9][0-9]* after boot id $aid\$" ||
	fail "/vms/ha on $W1 did not resume A's count"
echo "restart after SIGKILL: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (killed A at $t0 s, /vms/ha counted again on $W1 at $t1 s, outer VM clock)"

log "2. $W1 stopped: /vms/ha again on $W2, and $W1 fenced, never writing again once continued"
echo "restart after SIGSTOP: $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", b - a }') s (stopped $W1 at $t2 s, /vms/ha counted again on $W2 at $t3 s)"
w1id=$(logf "$W1.err" | sed -n 's|^/vms/ha: counter: boot id \([0-9a-f]*\) resumes.*|\1|p' | tail -n1)
last=$(logf "$W1.err" | sed -n 's|^/vms/ha: count \([0-9]*\)$|\1|p' | tail -n1)
resumed=$(logf "$W2.err" | sed -n "s|^/vms/ha: counter: boot id [0-9a-f]* resumes at \([0-9]*\) after boot id $w1id\$|\1|p")
[ -n "$resumed" ] || fail "/vms/ha on $W2 did not resume $W1's count"
[ "$resumed" -ge "$last" ] || fail "$W2 resumed at $resumed, before $W1's last count $last"
lines=$(sed -n "s/^outer: $W1.err had \([0-9]*\) lines when continued$/\1/p" "$C")
logf "$W1.err" | tail -n +$((lines + 1)) >"$T/after"
# A count it prints once continued may only be of a write that landed before the stop (at most where $W2 resumed).
while read -r n; do
	[ "$n" -le "$resumed" ] || { cat "$T/after"; fail "$W1's guest wrote count $n after it was continued ($W2 resumed at $resumed)"; }
done < <(sed -n 's|^/vms/ha: count \([0-9]*\)$|\1|p' "$T/after")
grep -q "^/vms/ha: vmm: /vms/ha: this host lost its lease on /dev/vda (fenced): the VM is stopped$" "$T/after" ||
	{ cat "$T/after"; fail "$W1's vmm did not say it was fenced"; }
logf "$W1.json" | grep -q '"event":"fenced"' || fail "$W1's agent did not say it was fenced"

log "the disk's last record is the last instance's; ha.state says stopped after the agents stopped"
vmfs_mount "$D" "$T/m" -o ro
w2id=$(logf "$W2.err" | sed -n "s|^/vms/ha: counter: boot id \([0-9a-f]*\) resumes at [0-9]* after boot id $w1id\$|\1|p")
python3 - "$T/m/vms/ha/disk0.img" "$w2id" <<'PY' || fail "the last record on /vms/ha's disk is not the last instance's"
import struct, sys
b = open(sys.argv[1], "rb").read(24)
magic, bid, n = struct.unpack("<8sQQ", b)
print("last record:", magic, "%016x" % bid, n)
sys.exit(magic != b"HACOUNT1" or "%016x" % bid != sys.argv[2])
PY
[ "$(cat "$T/m/vms/ha/ha.state")" = stopped ] || fail "ha.state of /vms/ha is not 'stopped' after its agent stopped it"
vmfs_umount "$T/m" "$D"
log "ok, $(elapsed "$START")"
