#!/bin/bash
# The Promela models of tests/lockmgr/lockmgr.pml under spin: the delta-lease
# join (2 joiners, one slot, discrete clock with bounded I/O) and the Disk
# Paxos bucket mutex with its double-buffered table update and a crash (2
# hosts, bounded instances and ballots) must verify with no error; each
# mutant (read-back after only io_timeout; ballots without phase 1) must make
# spin report an assertion violation, which shows the assertions can fail.
. "$(dirname "$0")/lib.bash"
need_cmd spin gcc
MODEL=$(cd "$(dirname "$0")/../lockmgr" && pwd)/lockmgr.pml
T=$(mktemp -d /var/tmp/vmfs-e2e.XXXXXX)
trap e2e_cleanup EXIT
trap 'exit 143' TERM INT HUP
cd "$T"

verify() { # EXPECT(ok|violation) SPIN-DEFINES...
	local expect=$1 out errors
	shift
	rm -f pan pan.* ./*.trail
	spin -a "$@" "$MODEL" >spin.log 2>&1 || { cat spin.log; fail "spin -a $* failed"; }
	gcc -O2 -w -DSAFETY -o pan pan.c || fail "pan.c of $* does not build"
	out=$(./pan -E -m1000000 2>&1) || true
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out")
	echo "  spin $*: errors ${errors:-?}, $(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1 states/p' <<<"$out" | head -n1)"
	grep -q "max search depth too small" <<<"$out" && fail "$*: search depth too small"
	case $expect in
	ok) [ "$errors" = 0 ] || { echo "$out" | head -n 20; fail "spin found an error in the model ($*)"; } ;;
	violation) [ -n "$errors" ] && [ "$errors" -gt 0 ] && grep -q "assertion violated" <<<"$out" ||
		fail "mutant $* passed: the model's assertions cannot see that bug" ;;
	esac
}

log "join (delta lease)"
verify ok -DJOIN -DJ=2
verify violation -DJOIN -DJ=2 -DMUTANT_SHORT_DELAY
log "bucket mutex (Disk Paxos), table update, crash"
verify ok -DMUTEX -DN=2
verify violation -DMUTEX -DN=2 -DMUTANT_NO_PHASE1
log "ok"
