#!/bin/bash
# Runs every test and ends with one line "N passed, N failed".
# Unit tests: each Check binary in $BUILD/tests (every Check test counts once);
# a suite that takes test_key() runs again on an encrypted datastore.
# End-to-end: each tests/e2e/*.sh (one test each, run in its own temp dir with a
# timeout; a script that exits 77 is skipped). TESTS=pattern runs a subset.
#
# Tests run TEST_JOBS at a time (default 2: most of them wait on joins, fsyncs
# and guests rather than compute). A test whose script or source has a line
# "# test: alone" runs with nothing beside it: it changes machine-wide state
# (the fuse module's enable_uring), or its timings or its emulated guest need
# the machine to themselves; one with "# test: long" takes minutes and starts
# early. Each result line appears when its test ends.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${TEST_JOBS:-2}
export VMFS_BIN="$PWD/$BUILD/bin" VMFS_TOP="$PWD"
# The tests run the Debian tools scripts/install-deps.sh installs, not what a
# user's PATH puts before them: a pyenv shim costs 0.4 s per python3 call, and
# the corpus alone makes 180 of them.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
log=$(mktemp -d /tmp/vmfs-test-log.XXXXXX)
filter=${TESTS:-}
start_all=$(date +%s)

# The list, in three parts that keep both lanes busy to the end: the "alone"
# tests first, while nothing else would wait on them; then the unit tests and
# the e2e tests marked "# test: long" (minutes each); the short ones last.
alone=() long=() rest=()
# add KIND NAME COMMAND SOURCE DEFAULT: files the test by its source's "# test:"
# line (DEFAULT without one); an entry is "kind name command alone|lane".
add() {
	local mode=$5
	if grep -q '^# test: alone' "$4" 2>/dev/null; then
		mode=alone
	elif grep -q '^# test: long' "$4" 2>/dev/null; then
		mode=long
	fi
	case $mode in
	alone) alone+=("$1 $2 $3 alone") ;;
	long) long+=("$1 $2 $3 lane") ;;
	*) rest+=("$1 $2 $3 lane") ;;
	esac
}
for t in "$BUILD"/tests/*; do
	[ -f "$t" ] && [ -x "$t" ] || continue	# tests/tools/ holds helpers, not suites
	name=unit/$(basename "$t")
	[[ -n $filter && $name != *$filter* ]] && continue
	add unit "$name" "$t" "tests/unit/$(basename "$t").c" long
	# a suite that takes test_key() (tests/unit/test_key.h) runs a second time on an encrypted datastore
	if grep -q test_key "tests/unit/$(basename "$t").c" 2>/dev/null; then
		add unitenc "$name+encrypted" "$t" "tests/unit/$(basename "$t").c" long
	fi
done
for t in tests/e2e/*.sh; do
	[ -f "$t" ] || continue
	name=e2e/$(basename "$t" .sh)
	[[ -n $filter && $name != *$filter* ]] && continue
	add e2e "$name" "$t" "$t" rest
done
tests=("${alone[@]}" "${long[@]}" "${rest[@]}")

# Runs one test; its result goes to $log/NAME.res as "pass fail skip|line to print".
run_one() {
	local kind=$1 name=$2 t=$3 base out res rc start secs line n f
	base=${name//\//_}
	out=$log/$base.log res=$log/$base.res
	start=$(date +%s)
	if [ "$kind" = unit ] || [ "$kind" = unitenc ]; then
		VMFS_TEST_ENCRYPT=$([ "$kind" = unitenc ] && echo 1 || echo 0) \
			CK_FORK=yes timeout "${UNIT_TIMEOUT:-600}" "$t" >"$out" 2>&1
		rc=$?
		line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$out" | tail -n1)
		if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
			n=${BASH_REMATCH[1]} f=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
			((rc != 0 && f == 0)) && f=1
			{
				echo "$((n - f)) $f 0"
				echo "$name: $line ($(( $(date +%s) - start ))s)"
				((f)) && grep -E ':[EF]:' "$out" | head -n 20
				((rc != 0)) && echo "$name: exit $rc"
			} >"$res"
		else
			{ echo "0 1 0"; echo "$name: exit $rc, no Check summary"; tail -n 20 "$out"; } >"$res"
		fi
		return
	fi
	timeout --kill-after=10 "${E2E_TIMEOUT:-900}" bash "$t" >"$out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) { echo "1 0 0"; echo "$name: ok (${secs}s)"; } >"$res" ;;
	77) { echo "0 0 1"; echo "$name: skipped ($(tail -n1 "$out"))"; } >"$res" ;;
	*) { echo "0 1 0"; echo "$name: FAILED (exit $rc, ${secs}s)"; tail -n 30 "$out" | sed 's/^/    /'; } >"$res" ;;
	esac
}

pass=0 fail=0 skip=0 failed=()
declare -A running=()	# pid -> name
collect() { # waits for one test to end and prints its result
	local pid name base r
	wait -n -p pid "${!running[@]}" 2>/dev/null || true
	[ -n "${pid:-}" ] || return 0
	name=${running[$pid]}
	unset "running[$pid]"
	base=${name//\//_}
	if [ -f "$log/$base.res" ]; then
		read -r r <"$log/$base.res"
		set -- $r
		pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
		(($2)) && failed+=("$name")
		tail -n +2 "$log/$base.res"
	else
		fail=$((fail + 1)) failed+=("$name")
		echo "$name: FAILED (no result)"
	fi
}

for entry in "${tests[@]}"; do
	set -- $entry
	if [ "$4" = alone ]; then
		while ((${#running[@]})); do collect; done
	else
		while ((${#running[@]} >= JOBS)); do collect; done
	fi
	run_one "$1" "$2" "$3" &
	running[$!]=$2
	if [ "$4" = alone ]; then
		while ((${#running[@]})); do collect; done
	fi
done
while ((${#running[@]})); do collect; done

# The failures again at the end, where a truncated log still shows them.
for name in "${failed[@]}"; do
	echo "failed: $name"
	base=${name//\//_}
	[ -f "$log/$base.res" ] && tail -n +3 "$log/$base.res" | head -n 20 | sed 's/^/    /'
	[ -f "$log/$base.log" ] && tail -n 10 "$log/$base.log" | sed 's/^/    | /'
done
echo "logs: $log ($(( ($(date +%s) - start_all) / 60 )) min $(( ($(date +%s) - start_all) % 60 )) s)"
if ((skip)); then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ]
