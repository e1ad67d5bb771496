#!/bin/bash
# Runs every test and ends with one line "N passed, N failed".
# Unit tests: each Check binary in $BUILD/tests (every Check test counts once).
# End-to-end: each tests/e2e/*.sh (one test each, run in its own temp dir with a
# timeout; a script that exits 77 is skipped). TESTS=pattern runs a subset.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export VMFS_BIN="$PWD/$BUILD/bin" VMFS_TOP="$PWD"
pass=0 fail=0 skip=0 failed=()
log=$(mktemp -d /tmp/vmfs-test-log.XXXXXX)
filter=${TESTS:-}

for t in "$BUILD"/tests/*; do
	[ -f "$t" ] && [ -x "$t" ] || continue	# tests/tools/ holds helpers, not suites
	name=unit/$(basename "$t")
	[[ -n $filter && $name != *$filter* ]] && continue
	out="$log/$(basename "$t").log"
	CK_FORK=yes timeout 600 "$t" >"$out" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$out" | tail -n1)
	if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
		n=${BASH_REMATCH[1]} f=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
		pass=$((pass + n - f)) fail=$((fail + f))
		((f)) && failed+=("$name") && grep -E ':[EF]:' "$out" | head -n 20
		[[ $rc -ne 0 && $f -eq 0 ]] && fail=$((fail + 1)) && failed+=("$name (exit $rc)")
	else
		fail=$((fail + 1)); failed+=("$name (exit $rc, no Check summary)"); tail -n 20 "$out"
	fi
	echo "$name: ${line:-exit $rc}"
done

for t in tests/e2e/*.sh; do
	[ -f "$t" ] || continue
	name=e2e/$(basename "$t" .sh)
	[[ -n $filter && $name != *$filter* ]] && continue
	out="$log/$(basename "$t").log"
	start=$(date +%s)
	timeout --kill-after=10 "${E2E_TIMEOUT:-900}" bash "$t" >"$out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) pass=$((pass + 1)); echo "$name: ok (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "$name: skipped ($(tail -n1 "$out"))" ;;
	*) fail=$((fail + 1)); failed+=("$name"); echo "$name: FAILED (exit $rc, ${secs}s)"; tail -n 30 "$out" | sed 's/^/    /' ;;
	esac
done

[ ${#failed[@]} -gt 0 ] && printf 'failed: %s\n' "${failed[@]}"
echo "logs: $log"
if ((skip)); then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ]
