#!/bin/bash
# The fsck corruption corpus (tests/fsck/NN-*/): each case damages exactly one
# thing in a copy of the same base datastore. For each: the first pass
# (fsck.vmfs -fn) must print exactly the case's `expect` and exit 4, writing
# nothing; fsck.vmfs -fy must print exactly the case's `expect-fy` (what it
# repaired, and how) and exit 1; a second -fn must exit 0; and every file the
# case does not list in `damages` must read back unchanged through a mount.
# A case whose `base` file says "snap" starts from the snapshot base instead
# (build-snap-base.sh: the same datastore with snapshots and a clone); "enc"
# from an encrypted datastore (build-enc-base.sh, key tests/fsck/enc.key: fsck
# runs without it, the read-back mounts with it).
# UPDATE=1 rewrites the expect files (review them before committing).
# test: long (minutes: started early, so that the two lanes end together)
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl
need_cmd python3
CASES=$(cd "$(dirname "$0")/../fsck" && pwd)
plain=$T/base.img
VMFS_BIN=$VMFS_BIN bash "$CASES/build-base.sh" "$plain" "$T/m"
VMFS_BIN=$VMFS_BIN bash "$CASES/build-snap-base.sh" "$plain" "$T/snap.img" "$T/m"
VMFS_BIN=$VMFS_BIN bash "$CASES/build-enc-base.sh" "$T/enc.img" "$CASES/enc.key" "$T/m"
# run_case DIR W: one case, on worker W's own image and mount point.
run_case() {
	local dir=$1 w=$2 name img m base mopts out sum rc
	name=$(basename "$dir")
	img=$T/case$w.img m=$T/m$w
	base=$plain
	mopts=()
	case "$(cat "$dir/base" 2>/dev/null || true)" in
	snap) base=$T/snap.img ;;
	enc) base=$T/enc.img mopts=(-o key-file="$CASES/enc.key") ;;
	esac
	cp --sparse=always "$base" "$img"
	python3 "$dir/damage.py" "$img" "$CASES" "$base.inodes"
	sum=$(python3 "$CASES/vmfsimg.py" sha "$img")
	out=$("$VMFS_BIN/fsck.vmfs" -fn "$img" 2>&1 || true)
	out=${out//$img/IMAGE}
	if [ -n "${UPDATE:-}" ]; then printf '%s\n' "$out" >"$dir/expect"; fi
	diff -u "$dir/expect" <(printf '%s\n' "$out") || fail "$name: first pass differs from expect"
	[ "$(python3 "$CASES/vmfsimg.py" sha "$img")" = "$sum" ] || fail "$name: fsck -n changed the image"
	rc=0
	"$VMFS_BIN/fsck.vmfs" -fn "$img" >/dev/null 2>&1 || rc=$?
	[ $rc -eq 4 ] || fail "$name: fsck -n exited $rc on a damaged image, want 4"
	rc=0
	"$VMFS_BIN/fsck.vmfs" -fy "$img" >"$T/y$w.out" 2>&1 || rc=$?
	sed -i "s|$img|IMAGE|g" "$T/y$w.out"
	if [ -n "${UPDATE:-}" ]; then cp "$T/y$w.out" "$dir/expect-fy"; fi
	diff -u "$dir/expect-fy" "$T/y$w.out" || fail "$name: the repair pass differs from expect-fy"
	[ $rc -eq 1 ] || { cat "$T/y$w.out"; fail "$name: fsck -y exited $rc, want 1"; }
	rc=0
	"$VMFS_BIN/fsck.vmfs" -fn "$img" >"$T/n2$w.out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$T/n2$w.out"; fail "$name: second pass exited $rc, want 0 (clean)"; }
	# every undamaged file reads back unchanged
	vmfs_mount "$img" "$m" "${mopts[@]}"
	python3 - "$base.sha256" "$m" "$dir/damages" <<'PY' || fail "$name: an undamaged file changed"
import fnmatch, hashlib, sys
sums, mnt, damages = sys.argv[1:4]
skip = [p.strip() for p in open(damages) if p.strip()]
bad = 0
for line in open(sums):
    h, path = line.split(None, 1)
    path = path.strip()[2:]
    if any(fnmatch.fnmatch(path, p) for p in skip):
        continue
    if hashlib.sha256(open(f"{mnt}/{path}", "rb").read()).hexdigest() != h:
        print(f"{path} changed")
        bad += 1
sys.exit(1 if bad else 0)
PY
	vmfs_umount "$m" "$img"
	echo "$name: ok"
}

# The cases run three at a time: most of a case is waiting (the mount's join,
# fsck's I/O), not computing. Each worker's output goes to its own log; the
# cleanup unmounts every worker's mount point whatever happens in a worker.
W=3
cases=("$CASES"/${CASES_ONLY:-[0-9]*}/)
wpids=()
for ((w = 0; w < W; w++)); do
	MOUNTS+=("$T/m$w")
	(
		for ((i = w; i < ${#cases[@]}; i += W)); do
			run_case "${cases[i]}" "$w"
		done
	) >"$T/w$w.log" 2>&1 &
	wpids+=($!)
done
bad=0
for ((w = 0; w < W; w++)); do
	wait "${wpids[w]}" || bad=1
done
for ((w = 0; w < W; w++)); do cat "$T/w$w.log"; done
[ $bad -eq 0 ] || fail "a case failed (its worker's log is above)"
n=$(cat "$T"/w[0-9]*.log | grep -c ': ok$' || true)
[ -n "${CASES_ONLY:-}" ] || [ $n -ge 46 ] || fail "only $n cases"
echo "$n cases ok"
