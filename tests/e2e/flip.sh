#!/bin/bash
# Byte-flip robustness (issue 3, "bad input everywhere"). vmfs-flip
# (tests/fuzz/flip.c, built with ASan and UBSan by make fuzz-build) first walks
# crafted damage no random flip finds (vmfs-flip -c: maps and directories whose
# pointers all lead to one block), then makes a datastore of a few dozen inline,
# small, large and sparse files, symlinks, nested directories and a 320-entry
# B+tree directory and FLIP_ITERATIONS times flips 1..8 bytes in random metadata
# blocks (checksums recomputed in about half the iterations) and walks the
# result read-only in a child with a time limit: a crash, a hang or a sanitizer
# report fails, a clean error does not.
#
# When $VMFS_BIN/fsck.vmfs exists (FLIP_FSCK=0 turns this off), every
# FLIP_FSCK_EVERY-th image also goes through fsck -f -n, -f -y, -f -n: every exit
# in {0,1,2,4,8}, and clean after -y unless -y gave up (8). Damage fsck -n missed
# (the walk finds errors in an image it called clean, before or after repair) is
# counted, and fails with FLIP_FSCK_STRICT=1. FLIP_SEED picks the images
# (default 1); a failure prints how to replay it.
# test: long (minutes: started early, so that the two lanes end together)
source "$(dirname "$0")/lib.bash"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
ITER=${FLIP_ITERATIONS:-250}
SEED=${FLIP_SEED:-1}
FSCK_EVERY=${FLIP_FSCK_EVERY:-5}
FSCK=${VMFS_BIN}/fsck.vmfs

fuzz_init flip

"$TOP/build-fuzz/bin/vmfs-flip" -c "$T" || fail "crafted damage"

args=(-n "$ITER" -s "$SEED")
if [ "${FLIP_FSCK:-1}" = 0 ]; then
	log "FLIP_FSCK=0: the fsck part is off"
elif [ -x "$FSCK" ]; then
	args+=(-f "$FSCK" -F "$FSCK_EVERY")
	[ "${FLIP_FSCK_STRICT:-0}" = 1 ] && args+=(-S)
	log "fsck.vmfs found: every ${FSCK_EVERY}th image also goes through fsck -f -n, -f -y, -f -n"
else
	log "no $FSCK: the fsck part is off"
fi
start=$EPOCHREALTIME
rc=0
"$TOP/build-fuzz/bin/vmfs-flip" "${args[@]}" "$T" || rc=$?
log "vmfs-flip ${args[*]}: exit $rc in $(elapsed "$start")"
[ "$rc" -eq 0 ] || fail "vmfs-flip found failures (replay one with: build-fuzz/bin/vmfs-flip -s SEED -i ITERATION -n 1 -k DIR)"
