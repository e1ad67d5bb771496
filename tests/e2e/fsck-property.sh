#!/bin/bash
# fsck's promise (issue 14): after fsck -y exits 0 or 1, fsck -n is clean, the
# datastore opens as a mount opens it (read-write), every directory, link and
# file reads to its end without an error, and fsck -n is still clean after that
# open is closed. vmfs-flip -P (tests/fuzz/flip.c, built with ASan and UBSan)
# proves it: each trial flips 1, 4 or 16 bits in random allocated units (both
# superblocks, host records, RC descriptors, pool headers, every sub-block in
# use, journal superblocks, host state and the live log; one flip in eight in
# a large file's block or a journal's old log), in one trial of four with the
# checksums recomputed, so the structure checks are tested and not only the
# checksum; fsck runs as a user runs it (no -f). fsck -y must exit 0 or 1;
# exit 8 (it could not work on the image, as on a damaged root directory until
# it learnt to make one again) is counted and shown (the first three), not a
# failure, since the rule binds after 0 or 1; exit 4 (problems -y left) fails.
#
#   1. FSCK_TRIALS trials on the seed datastores of fuzz_common.c (inline,
#      small, large, sparse and preallocated files, symlinks, a deep tree, a
#      320-entry B+tree directory; one trial in four on the copy whose journal
#      still holds transactions to replay);
#   2. FSCK_ISSUE_TRIALS trials on the datastore of the issue, made through a
#      FUSE mount (1 GiB, 1 MiB blocks, 300 small files of every size up to
#      8 KiB, a 20 MB file, a symlink), every 10th trial also mounted with
#      vmfs-mount and read through FUSE (read-mounted.bash). Skipped without FUSE.
#
# FSCK_SEED (default 1) picks the trials; a failure prints the line that
# replays it. `make fsck-long` runs many more on a new seed.
# test: long (minutes: started early, so that the two lanes end together)
source "$(dirname "$0")/lib.bash"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
TRIALS=${FSCK_TRIALS:-150}
ISSUE_TRIALS=${FSCK_ISSUE_TRIALS:-$((TRIALS / 3))}
SEED=${FSCK_SEED:-1}
FSCK=${VMFS_BIN}/fsck.vmfs
FLIP=$TOP/build-fuzz/bin/vmfs-flip

[ -x "$FSCK" ] || fail "no $FSCK (make all first)"
fuzz_init fsck-property

# flip ARGS...: vmfs-flip -P with ARGS on seed $SEED; a failure says how to replay it
flip() {
	local start=$EPOCHREALTIME rc=0
	"$FLIP" -P -f "$FSCK" -s "$SEED" -m 10 "$@" || rc=$?
	log "vmfs-flip -P -s $SEED $*: exit $rc in $(elapsed "$start")"
	[ "$rc" -eq 0 ] || fail "fsck's promise broken (replay a trial with: $FLIP -P -f $FSCK -s $SEED [-I IMAGE] -i TRIAL -n 1 -k DIR; the flipped image is DIR/fail-TRIAL.img)"
}

log "seed $SEED: $TRIALS trials on the seed images, $ISSUE_TRIALS on the issue's datastore"
mkdir "$T/seeds"
flip -n "$TRIALS" "$T/seeds"

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	log "no FUSE: the issue's datastore is not made, part 2 is skipped"
	exit 0
fi
img=$T/issue.img
"$VMFS_BIN/mkfs.vmfs" -q -f -H 1 --size 1G "$img"
vmfs_mount "$img" "$T/m"
python3 - "$T/m" <<'PY'
import os, random, sys
m = sys.argv[1]
r = random.Random(14)
os.mkdir(f"{m}/small")
for i in range(300):
    with open(f"{m}/small/f{i:03}", "wb") as f:
        f.write(r.randbytes(r.choice([0, 1, 100, 1500, 2048, 2049, 4096, 5000, 8192]) + i % 7))
with open(f"{m}/big", "wb") as f:
    f.write(r.randbytes(20 << 20))
os.symlink("small/f001", f"{m}/link")
PY
vmfs_umount "$T/m" "$img"
mkdir "$T/issue"
flip -I "$img" -M "$TOP/tests/e2e/read-mounted.bash" -e 10 -n "$ISSUE_TRIALS" "$T/issue"
