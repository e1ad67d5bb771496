#!/bin/bash
# Fuzz smoke test: builds the libFuzzer harnesses of tests/fuzz/ (make
# fuzz-build: clang, ASan, UBSan) and runs each over its seed corpus
# (tests/fuzz/corpus/NAME) plus 300 mutations from a fixed seed, so a harness
# that no longer builds or runs, a seed that now crashes, or a shallow crash
# fails make test. Real fuzzing is `make fuzz`. Skips only when clang or its
# fuzzer runtime (libclang-rt-dev) is missing.
source "$(dirname "$0")/lib.bash"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
RUNS=${FUZZ_SMOKE_RUNS:-300}

need_cmd clang make
T=$(mktemp -d /var/tmp/vmfs-fuzz-smoke.XXXXXX)
trap 'rm -rf --one-file-system "$T"' EXIT
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)(n & 0); }' >"$T/probe.c"
clang -fsanitize=fuzzer,address,undefined "$T/probe.c" -o "$T/probe" 2>"$T/probe.log" ||
	skip "clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing?): $(head -n1 "$T/probe.log")"

log "make fuzz-build"
flock /tmp/vmfs-fuzz-build.lock make -C "$TOP" --no-print-directory fuzz-build >"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log"; fail "make fuzz-build"; }

for n in superblock inode dir bmap journal vmconf keys vmstate qcow2; do
	h=$TOP/build-fuzz/bin/fuzz_$n
	[ -d "$TOP/tests/fuzz/corpus/$n" ] || fail "no seed corpus tests/fuzz/corpus/$n"
	mkdir -p "$T/$n"
	start=$EPOCHREALTIME
	rc=0
	VMFS_IO_ENGINE=sync timeout 600 "$h" -runs="$RUNS" -seed=1 -timeout=30 -artifact_prefix="$T/$n-" \
		"$T/$n" "$TOP/tests/fuzz/corpus/$n" >"$T/$n.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		grep -v '^vmfs: ' "$T/$n.log" | tail -n 60
		fail "fuzz_$n exit $rc (rerun: $h -runs=$RUNS -seed=1 DIR tests/fuzz/corpus/$n)"
	fi
	seeds=$(find "$TOP/tests/fuzz/corpus/$n" -type f | wc -l)
	log "fuzz_$n: $seeds seeds, $(grep -o 'Done [0-9]* runs' "$T/$n.log" | tail -n1) in $(elapsed "$start")"
done
