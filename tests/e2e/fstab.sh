#!/bin/bash
# mount(8) and /etc/fstab (issue 19, point 4), through mount.vmfs, the helper
# mount(8) runs for type vmfs, inside a private mount namespace whose
# /usr/sbin also shows this build's mount.vmfs (an overlay: nothing on the
# machine changes) and with a scratch fstab (mount --fstab):
#   - `mount -a`: a datastore with nofail,_netdev and a vmfs option mounts;
#     a missing device with nofail does not fail the run; a noauto line stays
#     unmounted; findmnt shows the device and the type fuse.vmfs;
#   - `mount DIR` of the noauto line, ro: reads work, writes are refused;
#   - `mount -t vmfs DEVICE DIR` without fstab; a bad option fails with
#     mount(8)'s exit 32 and a line saying why; -f (fake) mounts nothing;
#   - `umount DIR` ends each daemon, which closes its datastore cleanly
#     (fsck -n finds it clean).
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount fsck.vmfs mount.vmfs
need_cmd unshare findmnt
[ "$(id -u)" -eq 0 ] || skip "needs root (mount namespaces)"
A=$T/a.img
B=$T/b.img
vmfs_mkfs "$A" 256M
vmfs_mkfs "$B" 256M
mkdir -p "$T/sbin" "$T/ma" "$T/mb" "$T/mc" "$T/mmissing"
ln -s "$VMFS_BIN/mount.vmfs" "$T/sbin/mount.vmfs"
cat >"$T/fstab" <<F
# scratch fstab for tests/e2e/fstab.sh
$A	$T/ma	vmfs	defaults,nofail,_netdev,commit=500	0 0
$T/missing.img	$T/mmissing	vmfs	nofail,_netdev	0 0
$B	$T/mb	vmfs	noauto,ro,x-systemd.device-timeout=5s	0 0
F
# everything in one private namespace: its mounts go with it
cat >"$T/inner.sh" <<'S'
set -u
T=$1 A=$2 B=$3
mount -t overlay overlay -o "lowerdir=$T/sbin:/usr/sbin" /usr/sbin || { echo "inner: no overlay on /usr/sbin"; exit 1; }
mount --fstab "$T/fstab" -a; echo "inner: mount -a exit $?"
echo "inner: ma $(findmnt -n -o SOURCE,FSTYPE "$T/ma")"
echo "inner: mb $(findmnt -n -o SOURCE "$T/mb" || echo unmounted)"
echo "inner: mmissing $(findmnt -n -o SOURCE "$T/mmissing" || echo unmounted)"
echo hello >"$T/ma/file" && sync "$T/ma/file" && echo "inner: wrote ma/file"
mount --fstab "$T/fstab" "$T/mb"; echo "inner: mount mb exit $?"
echo "inner: mb $(findmnt -n -o SOURCE,FSTYPE,OPTIONS "$T/mb")"
ls "$T/mb" >/dev/null && echo "inner: read mb"
touch "$T/mb/x" 2>/dev/null && echo "inner: wrote mb/x" || echo "inner: mb refused a write"
umount "$T/mb"; echo "inner: umount mb exit $?"
umount "$T/ma"; echo "inner: umount ma exit $?"
mount -t vmfs "$A" "$T/mc"; echo "inner: mount -t vmfs exit $?"
echo "inner: mc $(cat "$T/mc/file")"
umount "$T/mc"; echo "inner: umount mc exit $?"
mount -t vmfs -o no_such_option "$B" "$T/mc" 2>"$T/bad.err"; echo "inner: bad option exit $? $(head -n 1 "$T/bad.err")"
mount -f -t vmfs "$B" "$T/mc"; echo "inner: fake exit $? $(findmnt -n -o SOURCE "$T/mc" || echo unmounted)"
S
unshare -m --propagation private bash "$T/inner.sh" "$T" "$A" "$B" >"$T/inner.out" 2>&1
cat "$T/inner.out"
want() { grep -qx "inner: $1" "$T/inner.out" || fail "want \"$1\""; }
want "mount -a exit 0"
want "ma $A fuse.vmfs"
want "mb unmounted"
want "mmissing unmounted"
grep -q "mount.vmfs: $T/missing.img: not there (nofail): $T/mmissing not mounted" "$T/inner.out" ||
	fail "mount.vmfs did not say the nofail device is not there"
want "wrote ma/file"
want "mount mb exit 0"
grep -q "^inner: mb $B fuse.vmfs ro," "$T/inner.out" || fail "mb is not mounted read-only"
want "read mb"
want "mb refused a write"
want "umount mb exit 0"
want "umount ma exit 0"
want "mount -t vmfs exit 0"
want "mc hello"
want "umount mc exit 0"
grep -q "^inner: bad option exit 32 .*no_such_option" "$T/inner.out" || fail "a bad option did not fail with exit 32 and say so"
want "fake exit 0 unmounted"
# each daemon ends after its umount, its datastore closed cleanly
wait_until 20 released "$A" || fail "a daemon still holds $A after umount"
wait_until 20 released "$B" || fail "a daemon still holds $B after umount"
for d in "$A" "$B"; do
	"$VMFS_BIN/fsck.vmfs" -n "$d" >"$T/fsck" 2>&1 || { cat "$T/fsck"; fail "fsck.vmfs -n $d after umount"; }
done
echo "fstab: ok"
