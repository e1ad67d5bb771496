#!/bin/bash
# Mutual exclusion across processes through the disk alone: 8 lk-counter
# processes share one file (O_DIRECT), each joins the cluster and takes one
# EX lock 1000 times, incrementing a counter on the file by read-modify-write
# inside it. The count must end at exactly 8000 and lk_check must find the
# regions well formed. A control run without the lock (4 x 300) must lose
# updates, which shows the count can detect a broken lock.
# test: long (minutes: started early, so that the two lanes end together)
. "$(dirname "$0")/lib.bash"

LKC=$(dirname "$VMFS_BIN")/tests/tools/lk-counter
[ -x "$LKC" ] || fail "$LKC not built"
T=$(mktemp -d /var/tmp/vmfs-e2e.XXXXXX)
trap e2e_cleanup EXIT
trap 'exit 143' TERM INT HUP

NPROC=${LK_COUNTER_PROCS:-8} ITERS=${LK_COUNTER_ITERS:-1000} SLOTS=10

run_all() { # IMAGE N ITERS [--no-lock]: N processes, waits for all, fails if any did
	local img=$1 n=$2 iters=$3 i p rc=0
	PIDS=()
	for ((i = 1; i <= n; i++)); do
		"$LKC" run "$img" "$SLOTS" "$iters" "host$i" ${4:-} >"$T/out.$i" 2>&1 &
		PIDS+=($!)
	done
	for p in "${PIDS[@]}"; do wait "$p" || rc=1; done
	PIDS=()
	cat "$T"/out.*
	rm -f "$T"/out.*
	return $rc
}

log "control: $((4 * 300)) increments without the lock"
"$LKC" format "$T/ctl" "$SLOTS"
run_all "$T/ctl" 4 300 --no-lock >/dev/null
ctl=$("$LKC" get "$T/ctl" "$SLOTS")
echo "  count $ctl of 1200"
[ "$ctl" -lt 1200 ] || fail "4 unlocked writers lost no update: this test could not see a broken lock"

log "$NPROC processes x $ITERS increments under an EX lock"
"$LKC" format "$T/lun" "$SLOTS"
start=$EPOCHREALTIME
run_all "$T/lun" "$NPROC" "$ITERS" || fail "a counter process failed"
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
count=$("$LKC" get "$T/lun" "$SLOTS")
want=$((NPROC * ITERS))
echo "  count $count of $want in $secs s ($(awk -v n="$want" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') lock+increment+unlock/s)"
[ "$count" -eq "$want" ] || fail "counter is $count, expected $want: mutual exclusion broken"
"$LKC" check "$T/lun" "$SLOTS" || fail "lk_check found problems"
log "ok"
