#!/bin/bash
# Journal space follows the hosts present at once, not the hosts that ever
# joined (issue 14, point 3). A host joining prefers a free slot that already
# has a journal, so 1000 join-and-leave cycles cost no space beyond the
# journals of the most hosts that were ever there at the same time.
#
# At most K + 2 hosts are ever present at once in what follows: K workers, a
# mount that stays up throughout, and a killed daemon not yet recovered. So
# first K + 2 hosts mount at once (K + 2 journals: the baseline), and the last
# of them stays mounted, as a cluster's long-lived hosts do: its sweep
# recovers hosts that died holding nothing another host asked for. Then, in
# parallel, K workers join and leave about 1000 times in all: library hosts
# (tests/tools/join-cycles), vmfs-mount daemons (every 10th killed with
# SIGKILL instead of unmounted) and vmm runs of the hello guest (when /dev/kvm
# opens). No worker has more than one live host, and a killed daemon is
# recovered (dead after 2.4 s, swept every 0.5 s) well before the next kill.
# The datastore must end with at most one journal more than the baseline
# (hosts joining at the same moment may race for the last free slot that has
# one), and free space within one journal of it.
# Afterwards every file goes, fsck -fn is clean, and free space is exactly the
# fresh datastore's less the journals and the headers of the sub-block pools
# the hosts cut (nothing else leaked; pools of hosts that left are filled
# before new ones are cut, so there are no more of them than hosts at once).
# vmfsctl changes nothing today (its commands are read-only and do not join),
# so it has no worker here.
# test: long (minutes: started early, so that the two lanes end together)
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd jq
CYCLES=${VMFS_JOIN_CYCLES:-1000}
K=8
D=$T/ds.img
JC=$VMFS_BIN/../tests/tools/join-cycles
[ -x "$JC" ] || fail "$JC not built"

vmfs_mkfs "$D" 2G -H 64 -T 250,2400,1500,500 # dead after 2.4 s: a kill stalls META that long
info() { "$VMFS_BIN/vmfsctl" info --json "$D" | jq -r ".$1"; }
fresh=$(info free_blocks) bytes_fresh=$(info free_bytes) p_fresh=$(info pools) bsize=$(info block_size)
jblocks=$(( $(info journal_size) / bsize ))
[ "$(info journals)" -eq 0 ] || fail "a fresh datastore has journals"

log "baseline: $((K + 2)) hosts mounted at once; the last stays"
for ((i = 0; i <= K + 1; i++)); do vmfs_mount "$D" "$T/m$i"; done
for ((i = 0; i <= K; i++)); do vmfs_umount_pid "$T/m$i" "${PIDS[i]}"; done
base=$(info free_blocks) j0=$(info journals) bytes_base=$(info free_bytes) p_base=$(info pools)
log "baseline: $j0 journals of $jblocks blocks, $base of $fresh blocks free"
[ "$j0" -eq $((K + 2)) ] || fail "$((K + 2)) hosts at once made $j0 journals"

# mount worker: vmfs-mount -f in the background, so its own pid is known among the other hosts
mount_cycles() { # N
	local i pid m=$T/mw
	mkdir -p "$m"
	for ((i = 0; i < $1; i++)); do
		env --default-signal=INT,TERM,HUP "$VMFS_BIN/vmfs-mount" -f "$D" "$m" 2>>"$T/mw.log" &
		pid=$!
		echo "$pid" >"$T/mw.pid"
		wait_until 30 mountpoint -q "$m" || { echo "mount cycle $i: not mounted after 30 s"; return 1; }
		echo "cycle $i" >"$m/mount-worker" || { echo "mount cycle $i: write failed"; return 1; }
		if ((i % 10 == 9)); then
			kill -9 "$pid"
			wait "$pid" 2>/dev/null || true
			umount -l "$m"
		else
			fusermount3 -u "$m"
			wait "$pid" || { echo "mount cycle $i: the daemon exited $?"; return 1; }
		fi
	done
}

vmm_cycles() { # N
	local i G=$VMFS_BIN/../tests/guests/hello.bzImage
	"$VMFS_BIN/vmm" create "$D" /vms/h --kernel "$G" --mem 16 --cpus 1 --disk 1M >/dev/null
	for ((i = 1; i < $1; i++)); do
		timeout 60 "$VMFS_BIN/vmm" run "$D" /vms/h >"$T/vmm.out" 2>&1 || { echo "vmm run $i failed"; cat "$T/vmm.out"; return 1; }
		grep -qx hello "$T/vmm.out" || { echo "vmm run $i: no hello"; return 1; }
	done
}

workers=$K n_mount=$((CYCLES / 16)) n_vmm=0
if [ -x "$VMFS_BIN/vmm" ] && have_kvm; then
	n_vmm=$((CYCLES / 16))
	workers=$((K - 1))
else
	log "no /dev/kvm: no vmm worker"
fi
n_lib=$(( (CYCLES - n_mount - n_vmm + workers - 2) / (workers - 1) ))
log "$((workers - 1)) library workers x $n_lib cycles, $n_mount mount cycles (every 10th killed), $n_vmm vmm runs"
start=$EPOCHREALTIME
wp=()
for ((w = 1; w < workers; w++)); do
	"$JC" "$D" "$n_lib" "w$w" >"$T/w$w.log" 2>&1 &
	wp+=($!)
done
mount_cycles "$n_mount" >"$T/mount.log" 2>&1 &
wp+=($!)
if ((n_vmm)); then vmm_cycles "$n_vmm" >"$T/vmm.log" 2>&1 & wp+=($!); fi
PIDS+=("${wp[@]}")
AT_EXIT+=('[ -f "$T/mw.pid" ] && kill -9 "$(cat "$T/mw.pid")" 2>/dev/null; mountpoint -q "$T/mw" && umount -l "$T/mw"')
bad=0
for p in "${wp[@]}"; do wait "$p" || bad=1; done
for f in "$T"/w*.log "$T/mount.log" "$T/vmm.log"; do [ -s "$f" ] && { echo "--- $f"; tail -n 5 "$f"; }; done
((bad == 0)) || fail "a worker failed"
total=$(( (workers - 1) * n_lib + n_mount + n_vmm ))
log "$total join-and-leave cycles in $(elapsed "$start")"

log "every file goes; then fsck is clean, and only journals and sub-block pools hold space"
m=$T/m$((K + 1))
rm -rf "$m"/w* "$m/mount-worker" "$m/vms"
vmfs_umount "$m" "$D"
"$VMFS_BIN/fsck.vmfs" -fn "$D" || fail "fsck -fn after $total cycles"
read -r j1 p1 after bytes1 < <("$VMFS_BIN/vmfsctl" info --json "$D" | jq -r '"\(.journals) \(.pools) \(.free_blocks) \(.free_bytes)"')
log "after: $j1 journals, $p1 pools (fresh $p_fresh, baseline $p_base), $after blocks free (baseline $base)"
[ "$j1" -le $((j0 + 1)) ] || fail "$j1 journals after $total cycles, with at most $((K + 2)) hosts at once (baseline $j0)"
[ "$((p1 - p_fresh))" -le $((K + 2)) ] || fail "$p1 sub-block pools after $total cycles (fresh: $p_fresh)"
[ "$after" -eq $((fresh - j1 * jblocks - (p1 - p_fresh))) ] ||
	fail "$after blocks free with $j1 journals and $((p1 - p_fresh)) new pools, want $((fresh - j1 * jblocks - (p1 - p_fresh)))"
[ "$bytes1" -eq $((bytes_fresh - j1 * jblocks * bsize - (p1 - p_fresh) * 4096)) ] ||
	fail "$bytes1 bytes free with $j1 journals and $((p1 - p_fresh)) new pool headers: something else leaked"
[ $((bytes1 + jblocks * bsize + (p1 - p_base) * 4096)) -ge "$bytes_base" ] ||
	fail "free space went from $bytes_base to $bytes1 bytes: more than one journal"
log "ok: $total cycles: $j1 journals (baseline $j0), free space $bytes_base -> $bytes1 bytes"
