#!/bin/bash
# vmfsctl import and export (issue 19, point 6), against qemu-img: an image
# with data, zeros written out, holes and an odd tail goes in raw and comes
# out raw bit for bit, thin both ways; as qcow2 (v2, v3, compressed with zlib
# and zstd, on a backing file) it comes in exactly as `qemu-img convert -O
# raw` reads it; `export --compress` (zstd, checksummed) comes back through
# import the same; a snapshot exports what it held while the live file moves
# on; a damaged or truncated compressed image, an existing PATH or DEST, a
# live file another host writes and bad usage are refused with one line,
# leaving no file behind.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl
need_cmd qemu-img qemu-io python3 cmp
D=$T/ds.img
CTL=$VMFS_BIN/vmfsctl
vmfs_mkfs "$D" 1G
SRC=$T/src.raw
# 40 MiB + 12345 bytes: random data, text, zeros written out, holes, a tail
python3 - "$SRC" <<'PY'
import os, random, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.truncate(40 * 2**20 + 12345)
    f.seek(0); f.write(bytes(r.getrandbits(8) for _ in range(3 * 2**20)))
    f.seek(9 * 2**20); f.write(b"".join(b"line %d of a log file, fairly compressible\n" % i for i in range(60000)))
    f.seek(20 * 2**20); f.write(bytes(4 * 2**20))
    f.seek(30 * 2**20 + 4096); f.write(os.urandom(8192))
    f.seek(40 * 2**20); f.write(b"the tail" * 1543)
PY
# json FIELD FILE: a number from the --json line
json() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }
# exported PATH FILE: the datastore file, read by export (read-only: no join), is FILE, byte for byte
exported() {
	rm -f "$T/check.raw"
	"$CTL" export "$D" "$1" "$T/check.raw" || fail "export of $1"
	cmp "$T/check.raw" "$2" || fail "$1 differs from $2"
}
# same PATH FILE: the same through a read-only mount (an independent reader); $blocks: its allocation
same() {
	vmfs_mount "$D" "$T/m" -o ro
	cmp "$T/m$1" "$2" || { vmfs_umount "$T/m" "$D"; fail "$1 differs from $2"; }
	blocks=$(stat -c %b "$T/m$1")
	vmfs_umount "$T/m" "$D"
}

log "raw in, raw out"
"$CTL" import --json "$D" "$SRC" /raw.img >"$T/in.json" || fail "import of a raw image"
cat "$T/in.json"
same /raw.img "$SRC"
# 8 MiB of blocks with data (3 + 3 + 1 + 1), and its map
[ "$blocks" -le $(((3 + 3 + 1 + 1) * 2048 + 128)) ] || fail "the imported file is not thin: $blocks sectors"
[ "$(json bytes_skipped "$T/in.json")" -ge $((30 * 2**20)) ] || fail "import skipped less than the holes and zeros"
"$CTL" export --json "$D" /raw.img "$T/out.raw" >"$T/out.json" || fail "export raw"
cat "$T/out.json"
cmp "$T/out.raw" "$SRC" || fail "the raw export differs from the source"
[ "$(stat -c %b "$T/out.raw")" -lt "$(stat -c %b "$SRC")" ] || [ "$(stat -c %b "$T/out.raw")" -le $((8 * 2048)) ] ||
	fail "the raw export is not sparse: $(stat -c %b "$T/out.raw") sectors"

log "qcow2 in: each as qemu-img convert -O raw reads it"
qemu-img create -q -f raw "$T/base.raw" 40M
qemu-io -f raw -c "write -P 0x5a 1M 3M" -c "write -P 0x11 30M 64k" "$T/base.raw" >/dev/null
qemu-img convert -q -f raw -O qcow2 -o compat=0.10 "$SRC" "$T/v2.qcow2"
qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$SRC" "$T/v3.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zlib "$SRC" "$T/zlib.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zstd "$SRC" "$T/zstd.qcow2"
qemu-img create -q -f qcow2 -b "$T/base.raw" -F raw "$T/over.qcow2"
qemu-io -f qcow2 -c "write -P 0x77 2M 1M" -c "write -z 1M 64k" -c "write -P 0x33 39M 128k" "$T/over.qcow2" >/dev/null
for q in v2 v3 zlib zstd over; do
	qemu-img convert -q -O raw "$T/$q.qcow2" "$T/$q.want"
	"$CTL" import "$D" "$T/$q.qcow2" "/$q.img" || fail "import of $q.qcow2"
	exported "/$q.img" "$T/$q.want"
	echo "   $q.qcow2: as qemu-img reads it"
done

log "export --compress, and back"
"$CTL" export --json --compress --threads 2 "$D" /raw.img "$T/out.zst" >"$T/z.json" || fail "export --compress"
cat "$T/z.json"
[ "$(stat -c %s "$T/out.zst")" -lt $((4 * 2**20)) ] || fail "the compressed export is $(stat -c %s "$T/out.zst") bytes"
"$CTL" import --json "$D" "$T/out.zst" /back.img >"$T/back.json" || fail "import of the compressed export"
exported /back.img "$SRC"
grep -q '"format":"zst"' "$T/back.json" || fail "the compressed export was not found to be zst"

log "a snapshot exports what it held"
"$CTL" snapshot create "$D" /raw.img --name before >/dev/null || fail "snapshot create"
vmfs_mount "$D" "$T/m"
printf 'changed after the snapshot' | dd of="$T/m/raw.img" bs=1 seek=100 conv=notrunc status=none
vmfs_umount "$T/m" "$D"
"$CTL" export "$D" /raw.img@before "$T/snap.raw" || fail "export of a snapshot"
cmp "$T/snap.raw" "$SRC" || fail "the snapshot's export is not what it held"
"$CTL" export "$D" /raw.img "$T/live.raw" || fail "export of the live file"
! cmp -s "$T/live.raw" "$SRC" || fail "the live file's export did not see the change"

log "refusals: one line, nothing left behind"
cp "$T/out.zst" "$T/bad.zst"
python3 - "$T/bad.zst" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x40
open(sys.argv[1], "wb").write(b)
PY
head -c $(($(stat -c %s "$T/out.zst") / 2)) "$T/out.zst" >"$T/short.zst"
expect_one_line_failure "$CTL" import "$D" "$T/bad.zst" /bad.img
grep -q "damaged" "$T/stderr" || fail "a damaged compressed image: $(cat "$T/stderr")"
expect_one_line_failure "$CTL" import "$D" "$T/short.zst" /short.img
grep -q "truncated\|damaged" "$T/stderr" || fail "a truncated compressed image: $(cat "$T/stderr")"
head -c 300 "$T/v3.qcow2" >"$T/cut.qcow2"
expect_one_line_failure "$CTL" import "$D" "$T/cut.qcow2" /cut.img
expect_one_line_failure "$CTL" import "$D" "$SRC" /raw.img
grep -q "exists" "$T/stderr" || fail "an existing PATH: $(cat "$T/stderr")"
expect_one_line_failure "$CTL" import "$D" "$T/no-such-image" /x.img
expect_one_line_failure "$CTL" export "$D" /raw.img "$T/out.raw"
expect_one_line_failure "$CTL" export "$D" /no-such.img "$T/x.raw"
[ ! -e "$T/x.raw" ] || fail "a failed export left $T/x.raw"
vmfs_mount "$D" "$T/m"
for f in bad short cut x; do
	[ ! -e "$T/m/$f.img" ] || fail "a failed import left /$f.img"
done
# a live file another host holds for writing: the mount holds raw.img while a writer has it open
exec 3>>"$T/m/raw.img"
expect_one_line_failure "$CTL" export "$D" /raw.img "$T/held.raw"
grep -q "in use by" "$T/stderr" || fail "a live file being written: $(cat "$T/stderr")"
exec 3>&-
vmfs_umount "$T/m" "$D"
rc=0
"$CTL" import "$D" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "import without its operands: exit $rc, want 2"
"$VMFS_BIN/fsck.vmfs" -n "$D" >"$T/fsck" 2>&1 || { cat "$T/fsck"; fail "fsck.vmfs -n at the end"; }
echo "image: ok"
