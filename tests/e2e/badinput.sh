#!/bin/bash
# Bad input: random bytes, an ext4 image, a truncated vmfs, a vmfs with both
# superblock copies damaged and one with an unknown incompat feature must each
# be refused by vmfs-mount, vmfsctl info and fsck.vmfs -n with a non-zero exit
# and exactly one line on stderr, without a byte of the image changing. Then
# nonsense command lines must fail as usage errors.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl
need_cmd python3 mkfs.ext4

MiB=$((1 << 20))
MNT=$T/mnt
mkdir -p "$MNT"
MOUNTS+=("$MNT")

# Superblock layout, read from vmfs/vmfs_format.h: a primary and a backup copy,
# incompat a le64, the crc32c (le32) at 0xffc over bytes 0..0xffb.
FORMAT_H=${VMFS_TOP:-$(dirname "$0")/../..}/vmfs/vmfs_format.h
SB_BACKUP=$(sed -n 's/^#define VMFS_SB_BACKUP_OFF \(0x[0-9a-fA-F]*\).*/\1/p' "$FORMAT_H")
INCOMPAT=$(sed -n 's/.*offsetof(struct vmfs_sb_disk, sb_incompat) == \(0x[0-9a-fA-F]*\).*/\1/p' "$FORMAT_H")
[ -n "$SB_BACKUP" ] && [ -n "$INCOMPAT" ] || fail "cannot read the superblock layout from $FORMAT_H"

# patch_sb IMAGE MODE: flip (byte 0x100, crc left stale) or incompat (set bit
# 63 and recompute the crc) in both superblock copies.
patch_sb() {
	python3 - "$1" "$2" "$INCOMPAT" 0 "$SB_BACKUP" <<'EOF'
import struct, sys

def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff

path, mode, incompat_off = sys.argv[1], sys.argv[2], int(sys.argv[3], 0)
offsets = [int(o, 0) for o in sys.argv[4:]]
with open(path, "r+b") as f:
    for off in offsets:
        f.seek(off)
        sb = bytearray(f.read(4096))
        stored = struct.unpack_from("<I", sb, 0xffc)[0]
        if crc32c(sb[:0xffc]) != stored:
            sys.exit("superblock at %#x: crc32c 0x%08x, stored 0x%08x: layout assumption wrong"
                     % (off, crc32c(sb[:0xffc]), stored))
        if mode == "flip":
            sb[0x100] ^= 0xff
        else:
            incompat = struct.unpack_from("<Q", sb, incompat_off)[0] | (1 << 63)
            struct.pack_into("<Q", sb, incompat_off, incompat)
            struct.pack_into("<I", sb, 0xffc, crc32c(sb[:0xffc]))
        f.seek(off)
        f.write(sb)
EOF
}

# Every tool must refuse IMAGE in one line and leave it as it was.
refuse() {
	local img=$1 sum
	log "$(basename "$img")"
	sum=$(sha256sum <"$img")
	expect_one_line_failure "$VMFS_BIN/vmfs-mount" "$img" "$MNT"
	[ "$LAST_RC" -eq 32 ] || fail "vmfs-mount exited $LAST_RC, want 32"
	not mountpoint -q "$MNT" || fail "vmfs-mount mounted $img"
	expect_one_line_failure "$VMFS_BIN/vmfs-mount" -o ro "$img" "$MNT"
	not mountpoint -q "$MNT" || fail "vmfs-mount -o ro mounted $img"
	expect_one_line_failure "$VMFS_BIN/vmfsctl" info "$img"
	expect_one_line_failure "$VMFS_BIN/vmfsctl" info --json "$img"
	if [ -x "$VMFS_BIN/fsck.vmfs" ] && [ -z "${FSCK_REPAIRABLE:-}" ]; then
		expect_one_line_failure "$VMFS_BIN/fsck.vmfs" -n "$img"
	fi
	[ "$(sha256sum <"$img")" = "$sum" ] || fail "$img changed"
}

head -c $((64 * MiB)) /dev/urandom >"$T/random.img"
refuse "$T/random.img"

truncate -s 64M "$T/ext4.img"
mkfs.ext4 -q -F "$T/ext4.img"
refuse "$T/ext4.img"

vmfs_mkfs "$T/truncated.img" 1G
truncate -s 10M "$T/truncated.img"
refuse "$T/truncated.img"

vmfs_mkfs "$T/badsb.img" 1G
patch_sb "$T/badsb.img" flip
refuse "$T/badsb.img"

vmfs_mkfs "$T/incompat.img" 1G
patch_sb "$T/incompat.img" incompat
refuse "$T/incompat.img"

good_for_mkfs=$T/incompat.img
# only the primary damaged: still refused (the message points at fsck and the backup)
vmfs_mkfs "$T/badprimary.img" 1G
printf '\xff' | dd of="$T/badprimary.img" bs=1 seek=$((0x101)) conv=notrunc status=none
FSCK_REPAIRABLE=1 refuse "$T/badprimary.img"
# fsck, unlike the others, can use the backup: it reports the damage (exit 4, nothing written) and -y repairs it
sum=$(sha256sum <"$T/badprimary.img")
rc=0; out=$("$VMFS_BIN/fsck.vmfs" -n "$T/badprimary.img" 2>&1) || rc=$?
[ $rc -eq 4 ] || fail "fsck -n on a damaged primary superblock exited $rc, want 4"
grep -q "primary superblock is damaged" <<<"$out" || fail "fsck -n did not name the damaged superblock: $out"
[ "$(sha256sum <"$T/badprimary.img")" = "$sum" ] || fail "fsck -n wrote to the image"
rc=0; "$VMFS_BIN/fsck.vmfs" -y "$T/badprimary.img" >/dev/null 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "fsck -y on a damaged primary superblock exited $rc, want 1"
"$VMFS_BIN/vmfsctl" info "$T/badprimary.img" >/dev/null || fail "the repaired datastore does not open"

log "mkfs.vmfs refuses an existing filesystem unless -f"
sum=$(sha256sum <"$T/ext4.img")
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" "$T/ext4.img"
[ "$(sha256sum <"$T/ext4.img")" = "$sum" ] || fail "mkfs.vmfs wrote to an ext4 image without -f"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" "$good_for_mkfs"
"$VMFS_BIN/mkfs.vmfs" -q -f "$T/ext4.img" || fail "mkfs.vmfs -f refused an ext4 image"
"$VMFS_BIN/vmfsctl" info "$T/ext4.img" >/dev/null || fail "the forced mkfs did not make a datastore"

log "nonsense command lines"
# usage_error EXPECTED_RC COMMAND...: any non-zero exit when EXPECTED_RC is "any".
usage_error() {
	local want=$1 rc=0
	shift
	"$@" >/dev/null 2>"$T/stderr" || rc=$?
	echo "   ${*#"$VMFS_BIN"/} -> exit $rc: $(head -n1 "$T/stderr")"
	[ "$rc" -ne 0 ] || fail "$* succeeded"
	[ "$want" = any ] || [ "$rc" -eq "$want" ] || fail "$* exited $rc, want $want"
	[ -s "$T/stderr" ] || fail "$*: nothing on stderr"
}
good=$T/good.img
vmfs_mkfs "$good" 1G
truncate -s 1G "$T/blank.img"
usage_error any "$VMFS_BIN/mkfs.vmfs" --size banana "$T/new1.img"
[ ! -e "$T/new1.img" ] || fail "mkfs.vmfs --size banana created a file"
usage_error any "$VMFS_BIN/mkfs.vmfs" --size 1K "$T/new2.img"
usage_error any "$VMFS_BIN/mkfs.vmfs" -b 3000 "$T/blank.img"
usage_error 1 "$VMFS_BIN/mkfs.vmfs" -T 1000,2000,5000,1000 "$T/blank.img"   # fence after takeover: unsafe
grep -q "unsafe\|fence" "$T/stderr" || fail "mkfs.vmfs -T with unsafe timings: $(cat "$T/stderr")"
usage_error 1 "$VMFS_BIN/mkfs.vmfs" -T 100,200 "$T/blank.img"
usage_error 1 "$VMFS_BIN/vmfsctl" locks "$good" /no/such/file
usage_error 2 "$VMFS_BIN/vmfsctl" hosts
usage_error any "$VMFS_BIN/mkfs.vmfs"
usage_error 1 "$VMFS_BIN/vmfs-mount"
usage_error 1 "$VMFS_BIN/vmfs-mount" "$good"
usage_error 1 "$VMFS_BIN/vmfs-mount" "$good" "$MNT" extra
usage_error 1 "$VMFS_BIN/vmfs-mount" -z "$good" "$MNT"
usage_error 1 "$VMFS_BIN/vmfs-mount" -o nonsense_opt "$good" "$MNT"
usage_error 1 "$VMFS_BIN/vmfs-mount" -o commit=soon "$good" "$MNT"
not mountpoint -q "$MNT" || fail "mounted despite a bad option"
usage_error 32 "$VMFS_BIN/vmfs-mount" "$T/missing.img" "$MNT"
expect_one_line_failure "$VMFS_BIN/vmfs-mount" "$T/missing.img" "$MNT"
usage_error 32 "$VMFS_BIN/vmfs-mount" "$good" "$T/no-such-dir"
usage_error any "$VMFS_BIN/vmfsctl"
usage_error any "$VMFS_BIN/vmfsctl" info
usage_error any "$VMFS_BIN/vmfsctl" info "$T/missing.img"
usage_error any "$VMFS_BIN/vmfsctl" frobnicate "$good"
[ -z "$(holders "$good")" ] || fail "a failed command left a process holding $good"
log "ok"
