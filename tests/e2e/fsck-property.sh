#!/bin/bash
# fsck's promise (issue 14): after fsck -y exits 0 or 1, fsck -n is clean, the
# datastore opens as a mount opens it (read-write), every directory, link and
# file reads to its end without an error, and fsck -n is still clean after that
# open is closed. vmfs-flip -P (tests/fuzz/flip.c, built with ASan and UBSan)
# proves it over FSCK_TRIALS trials on the seed datastore of fuzz_common.c
# (inline, small, large, sparse and preallocated files, symlinks, a deep tree,
# a 320-entry B+tree directory): each flips 1, 4 or 16 bits in random allocated
# units (both superblocks, host records, RC descriptors, pool headers, every
# sub-block in use, journal superblocks and host state; one flip in eight in a
# large file's block or a journal's log), in one trial of four with the
# checksums recomputed, so the structure checks are tested and not only the
# checksum. fsck -y exiting 4 or 8 (it gave up) is counted, not a failure.
# FSCK_SEED (default 1) picks the trials; a failure prints the line that
# replays it, and the image is kept while the test's directory is (-k).
# `make fsck-long` runs thousands of trials on a new seed.
source "$(dirname "$0")/lib.bash"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
TRIALS=${FSCK_TRIALS:-800}
SEED=${FSCK_SEED:-1}
FSCK=${VMFS_BIN}/fsck.vmfs

[ -x "$FSCK" ] || fail "no $FSCK (make all first)"
fuzz_init fsck-property

log "seed $SEED, $TRIALS trials"
start=$EPOCHREALTIME
rc=0
"$TOP/build-fuzz/bin/vmfs-flip" -P -f "$FSCK" -n "$TRIALS" -s "$SEED" -m 10 "$T" || rc=$?
log "vmfs-flip -P -n $TRIALS -s $SEED: exit $rc in $(elapsed "$start")"
[ "$rc" -eq 0 ] || fail "fsck's promise broken (replay a trial with: build-fuzz/bin/vmfs-flip -P -f $FSCK -s $SEED -i TRIAL -n 1 -k DIR; the flipped image is DIR/fail-TRIAL.img)"
