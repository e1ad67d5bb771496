#!/bin/bash
# mkfs.vmfs across the range: 256 MiB, 16 TiB and 1 PiB sparse files (on a
# tmpfs, whose files may be that large), each formatted writing only a few MiB,
# readable by vmfsctl info (text and --json) and mountable; block sizes and
# host counts from the command line are what info reports; 4 KiB sectors work.
# A --size that cannot be had (a file larger than ext4 allows, a tmpfs with
# no room for the metadata) fails and leaves no file behind, but never removes
# a file that was there before.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl
need_cmd python3

mkdir "$T/tmpfs"
mount -t tmpfs -o size=2G tmpfs "$T/tmpfs"
MOUNTS+=("$T/tmpfs")
D=$T/tmpfs

used_kib() { du -k "$1" | cut -f1; }
json() { "$VMFS_BIN/vmfsctl" info --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$2"; }

for size in 256M 16T 1P; do
	log "mkfs --size $size"
	"$VMFS_BIN/mkfs.vmfs" -q -L "ds-$size" --size "$size" "$D/$size.img"
	kib=$(used_kib "$D/$size.img")
	echo "  $size: ${kib} KiB written"
	[ "$kib" -le $((8 * 1024)) ] || fail "mkfs of $size wrote $kib KiB (want a few MiB at most)"
	[ "$(json "$D/$size.img" label)" = "ds-$size" ] || fail "label not reported"
	[ "$(json "$D/$size.img" journal_state)" = "not allocated" ] || fail "a fresh datastore has no journal yet"
	"$VMFS_BIN/vmfsctl" info "$D/$size.img" | grep -q "^uuid: " || fail "info has no uuid line"
done
bytes=$(json "$D/1P.img" size)
[ "$bytes" -eq $((1 << 50)) ] || fail "1P datastore reports $bytes bytes"

log "the 1 PiB datastore mounts and holds a file at its far end"
vmfs_mount "$D/1P.img" "$T/m"
dd if=/dev/urandom of="$T/chunk" bs=64k count=1 status=none
dd if="$T/chunk" of="$T/m/far" bs=64k seek=$(((60 << 40) / 65536)) conv=notrunc status=none
cmp "$T/chunk" <(dd if="$T/m/far" bs=64k skip=$(((60 << 40) / 65536)) status=none) || fail "far data differs"
df -B1 "$T/m" | awk 'NR==2 && $2 > 1e15 {ok=1} END {exit !ok}' || fail "df does not report the capacity"
vmfs_umount "$T/m" "$D/1P.img"
[ "$(json "$D/1P.img" journal_state)" = clean ] || fail "journal not clean after unmount"

log "options reach the disk"
"$VMFS_BIN/mkfs.vmfs" -q -b 256K -H 64 -J 8M --size 1G "$D/opts.img"
[ "$(json "$D/opts.img" block_size)" -eq 262144 ] || fail "block size"
[ "$(json "$D/opts.img" host_slots)" -eq 64 ] || fail "host slots"
[ "$(json "$D/opts.img" journal_size)" -eq $((8 << 20)) ] || fail "journal size"

log "4 KiB logical sectors"
VMFS_SECTOR_SIZE=4096 "$VMFS_BIN/mkfs.vmfs" -q --size 1G "$T/s4k.img"
[ "$(json "$T/s4k.img" sector_size)" -eq 4096 ] || fail "sector size not recorded"
VMFS_SECTOR_SIZE=4096 vmfs_mount "$T/s4k.img" "$T/m4"
printf 'odd-sized %s\n' {1..999} >"$T/m4/odd"
printf 'odd-sized %s\n' {1..999} | cmp - "$T/m4/odd" || fail "4k-sector read back differs"
log "a failed mkfs --size removes the file it made, and only that"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" --size 17T "$T/toolarge.img"	# ext4 under /var/tmp: at most 16 TiB
grep -q "File too large" "$T/stderr" || fail "EFBIG not reported"
[ ! -e "$T/toolarge.img" ] || fail "a failed mkfs --size 17T left its file"
mkdir "$T/tiny"
mount -t tmpfs -o size=8k tmpfs "$T/tiny"
MOUNTS+=("$T/tiny")
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" --size 256M "$T/tiny/ds.img"
grep -q "No space left on device" "$T/stderr" || fail "ENOSPC not reported"
[ ! -e "$T/tiny/ds.img" ] || fail "a failed mkfs --size on a full tmpfs left its file"
head -c 1M /dev/urandom >"$T/before.img"
sum=$(sha256sum <"$T/before.img")
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" -f --size 17T "$T/before.img"
[ "$(sha256sum <"$T/before.img")" = "$sum" ] || fail "a failed mkfs removed or changed a file that was there before"
echo "ok"
