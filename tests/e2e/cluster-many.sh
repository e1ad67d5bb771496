#!/bin/bash
# Many hosts on one datastore at once. (d) 8 vmfs-mount daemons of one file
# create, rename and delete files in the same directories concurrently: all end
# with the same view, and fsck finds the datastore clean. (g) 64 daemons mounted
# at once, each creating files: every file shows everywhere, fsck is clean
# (with the default timings there: 64 daemons on two cores stall for longer
# than the fast test timings allow, and a host that cannot renew its heartbeat
# in time fences itself, as it must).
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl
need_cmd python3
IMG=$T/ds.img
vmfs_mkfs "$IMG" 2G -H 80 -J 4M -T 400,3200,2000,800

# view MNT: every name under MNT with its type and content hash, sorted
view() { (cd "$1" && find . -printf '%y %p\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

mount_many() { # N PREFIX: mounts N daemons at once
	local i
	for ((i = 0; i < $1; i++)); do
		mkdir -p "$T/$2$i"
		MOUNTS+=("$T/$2$i")
		"$VMFS_BIN/vmfs-mount" "$IMG" "$T/$2$i" &
	done
	wait
	for ((i = 0; i < $1; i++)); do
		mountpoint -q "$T/$2$i" || fail "$T/$2$i is not mounted"
	done
	for p in $(holders "$IMG"); do PIDS+=("$p"); done
}

log "(d) 8 hosts create, rename and delete in the same directories at once"
mount_many 8 m
mkdir "$T/m0/s1" "$T/m0/s2"
wait_until 5 eval '[ -d "$T/m7/s2" ]' || fail "mkdir on host 0 does not show on host 7"
for i in $(seq 0 7); do
	python3 - "$T/m$i" "$i" <<'PY' &
import os, random, sys
root, h = sys.argv[1], int(sys.argv[2])
r = random.Random(h)
for j in range(40):
    d = os.path.join(root, r.choice(["s1", "s2"]))
    name = os.path.join(d, "h%d-%d" % (h, j))
    with open(name, "w") as f:
        f.write("host %d file %d\n" % (h, j))
    k = r.random()
    if k < 0.3:
        os.rename(name, os.path.join(d, "shared-%d" % r.randrange(5)))   # many hosts rename onto these
    elif k < 0.5:
        os.unlink(name)
    elif k < 0.6:
        os.rename(name, os.path.join(root, "s2" if d.endswith("s1") else "s1", "moved-h%d-%d" % (h, j)))
    if j % 10 == 0:
        sub = os.path.join(d, "dir-h%d-%d" % (h, j))
        os.mkdir(sub)
        open(os.path.join(sub, "x"), "w").close()
        if r.random() < 0.5:
            os.unlink(os.path.join(sub, "x"))
            os.rmdir(sub)
PY
done
fails=0
for job in $(jobs -p); do wait "$job" || fails=$((fails + 1)); done
[ $fails -eq 0 ] || fail "$fails of the 8 workloads failed"
# Host 0 learns of the other hosts' last renames within one poll: until then
# a name it lists may be gone when it is read. The reference view is host 0's
# once two reads in a row agree.
settled_view() {
	view "$T/m0" >"$T/view0.new" 2>/dev/null || return 1
	cmp -s "$T/view0.new" "$T/view0" && return 0
	mv "$T/view0.new" "$T/view0"
	return 1
}
: >"$T/view0"
wait_until 5 settled_view || fail "host 0's view does not settle"
[ "$(grep -c '^f ' "$T/view0")" -gt 100 ] || fail "too few files survived: $(grep -c '^f ' "$T/view0")"
same_view() { view "$T/m$1" | cmp -s - "$T/view0"; }
for i in $(seq 1 7); do
	wait_until 5 same_view "$i" || { view "$T/m$i" | diff "$T/view0" - | head; fail "host $i sees another view than host 0"; }
done
echo "   all 8 hosts see the same $(grep -c '^f ' "$T/view0") files"
for i in $(seq 0 7); do fusermount3 -u "$T/m$i"; done
wait_until 60 released "$IMG" || fail "daemons still hold the image"
"$VMFS_BIN/fsck.vmfs" -fn "$IMG" || fail "fsck after (d) is not clean"
PIDS=()

log "(g) 64 hosts mounted at once, each creating a file"
# the default timings: 64 daemons on two cores may stall longer than the fast ones allow
IMG=$T/ds64.img
vmfs_mkfs "$IMG" 2G -H 80 -J 4M -T 1000,8000,5000,2000
t0=$EPOCHREALTIME
mount_many 64 g
echo "   64 mounts in $(elapsed "$t0")"
[ "$("$VMFS_BIN/vmfsctl" hosts "$IMG" | grep -c ' alive ')" -eq 64 ] || fail "vmfsctl hosts does not list 64 live hosts"
mkdir "$T/g0/all"
wait_until 5 eval '[ -d "$T/g63/all" ]' || fail "mkdir on host 0 does not show on host 63"
t0=$EPOCHREALTIME
for i in $(seq 0 63); do
	echo "$i" >"$T/g$i/all/h$i" &
done
fails=0
for job in $(jobs -p); do wait "$job" || fails=$((fails + 1)); done
[ $fails -eq 0 ] || fail "$fails of the 64 creators failed"
echo "   64 files from 64 hosts in $(elapsed "$t0")"
count_is() { [ "$(ls "$T/g$1/all" | wc -l)" -eq 64 ]; }
for i in 0 31 63; do
	wait_until 10 count_is "$i" || fail "host $i sees $(ls "$T/g$i/all" | wc -l) files, want 64"
done
for i in $(seq 0 63); do fusermount3 -u "$T/g$i"; done
wait_until 120 released "$IMG" || fail "daemons still hold the image"
"$VMFS_BIN/fsck.vmfs" -fn "$IMG" || fail "fsck after (g) is not clean"
