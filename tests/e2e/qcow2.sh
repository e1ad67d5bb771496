#!/bin/bash
# The qcow2 reader of vmfsctl import (tools/vmfsctl_qcow2.c) against qemu's
# own: images made with qemu-img and qemu-io (versions 2 and 3, cluster sizes
# 512 B to 2 MiB, zero clusters, deflate and zstd compression, an internal
# snapshot, metadata preallocation, the dirty bit, backing chains of qcow2 and
# raw files in other directories) must read through tests/tools/qcow2-cat
# byte for byte as `qemu-img convert -O raw` writes them, and qcow2-cat
# --map's runs must tile the image, its zero runs be zeros, and its runs be
# qemu-img map's (adjacent extents of the same "data" merged). Then damaged
# and unsupported images (truncated, a flipped L1 entry, a bad magic, garbage
# in a compressed cluster, an unknown incompatible feature, an absurd size,
# LUKS encryption, an external data file, extended L2 entries, backing loops,
# a missing backing file) must each be refused with exit 1 and one line.
source "$(dirname "$0")/lib.bash"
need_cmd qemu-img qemu-io python3 cmp

QC=$(dirname "$VMFS_BIN")/tests/tools/qcow2-cat
[ -x "$QC" ] || fail "$QC not built"
T=$(mktemp -d /var/tmp/vmfs-qcow2.XXXXXX)
trap e2e_cleanup EXIT
trap 'exit 143' TERM INT HUP
cd "$T"

qio() { # IMAGE COMMAND...: qemu-io -c for each command, quietly
	local img=$1 c args=()
	shift
	for c in "$@"; do args+=(-c "$c"); done
	qemu-io "${args[@]}" "$img" >/dev/null
}

# check IMAGE: bytes and map as qemu-img reads them.
check() {
	local img=$1 ref=$T/ref.raw
	"$QC" "$img" >"$T/out.raw" || fail "qcow2-cat $img"
	qemu-img convert -O raw "$img" "$ref"
	cmp "$T/out.raw" "$ref" || fail "$img: qcow2-cat's bytes differ from qemu-img convert's"
	"$QC" --map "$img" >"$T/map" || fail "qcow2-cat --map $img"
	qemu-img map --output=json "$img" >"$T/qmap.json"
	python3 - "$T/map" "$ref" "$T/qmap.json" <<'EOF' || fail "$img: bad map"
import json, os, sys
runs = [(int(o), int(l), k) for o, l, k in (line.split() for line in open(sys.argv[1]))]
size = os.path.getsize(sys.argv[2])
end = 0
with open(sys.argv[2], "rb") as f:
    for off, length, kind in runs:
        if off != end or length <= 0:
            sys.exit(f"run at {off} (length {length}) does not follow the one ending at {end}")
        end = off + length
        if kind == "zero":
            f.seek(off)
            left = length
            while left:
                b = f.read(min(left, 1 << 20))
                if b.count(0) != len(b):
                    sys.exit(f"zero run {off}+{length} holds data")
                left -= len(b)
if end != size:
    sys.exit(f"runs end at {end}, the image at {size}")
want = []
for e in json.load(open(sys.argv[3])):
    if want and want[-1][2] == ("data" if e["data"] else "zero"):
        want[-1][1] += e["length"]
    else:
        want.append([e["start"], e["length"], "data" if e["data"] else "zero"])
if [list(r) for r in runs] != want:
    sys.exit(f"map {runs} is not qemu-img map's {want}")
EOF
	ZERO_RUNS=$((ZERO_RUNS + $(grep -c ' zero$' "$T/map" || true)))
	echo "   $img: $(stat -c %s "$ref") bytes, $(wc -l <"$T/map") runs, $(grep -c ' data$' "$T/map" || true) of data"
}
ZERO_RUNS=0

# patch IMAGE WHAT...: damage a qcow2 header or table (python: the header is big-endian)
patch() {
	python3 - "$@" <<'EOF'
import struct, sys
path, what = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    h = bytearray(f.read(112))
    def field(off, fmt, value):
        f.seek(off)
        f.write(struct.pack(fmt, value))
    if what == "magic":
        field(0, ">I", 0x514649fc)
    elif what == "incompat":                 # an unknown incompatible feature
        field(72, ">Q", struct.unpack_from(">Q", h, 72)[0] | (1 << 20))
    elif what == "dirty":
        field(72, ">Q", struct.unpack_from(">Q", h, 72)[0] | 1)
    elif what == "size":                     # 2 PiB
        field(24, ">Q", 1 << 51)
    elif what == "l1":                       # L1 entry 0 pointed far past the end of the file
        l1 = struct.unpack_from(">Q", h, 40)[0]
        f.seek(l1)
        e = struct.unpack(">Q", f.read(8))[0]
        if not e & 0x00fffffffffffe00:
            sys.exit("L1 entry 0 is empty")
        field(l1, ">Q", e | (1 << 50))
    elif what == "compressed":               # garbage over the first compressed cluster's bytes
        cb = struct.unpack_from(">I", h, 20)[0]
        l1 = struct.unpack_from(">Q", h, 40)[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2)
        tab = f.read(1 << cb)
        for i in range(0, len(tab), 8):
            e = struct.unpack_from(">Q", tab, i)[0]
            if e & (1 << 62):
                f.seek(e & ((1 << (62 - (cb - 8))) - 1))
                f.write(b"\xff" * 64)
                break
        else:
            sys.exit("no compressed cluster under L1 entry 0")
    elif what == "backing":                  # the backing file name, same length
        name = sys.argv[3].encode()
        off, size = struct.unpack_from(">QI", h, 8)
        if len(name) != size:
            sys.exit(f"backing name of {size} bytes, not {len(name)}")
        field(off, f"{size}s", name)
    else:
        sys.exit("patch: " + what)
EOF
}

refused() { # IMAGE: qcow2-cat and qcow2-cat --map fail with one line
	expect_one_line_failure "$QC" "$1"
	[ "$LAST_RC" -eq 1 ] || fail "qcow2-cat $1: exit $LAST_RC, not 1"
	expect_one_line_failure "$QC" --map "$1"
}

# A pattern of writes over 4 MiB + 512: unaligned ones, across clusters, the last sector.
fill() {
	qio "$1" 'write -P 0x11 0 4k' 'write -P 0x22 100000 70000' 'write -P 0x33 1M 1M' \
		'write -P 0x44 3M 4k' 'write -P 0x55 4194304 512'
}

log "versions 2 and 3, cluster sizes, zero clusters"
for compat in 0.10 1.1; do
	for cs in 512 65536 2M; do
		img=$T/v$compat-$cs.qcow2
		qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs "$img" $((4 * 1048576 + 512))
		fill "$img"
		# zero writes: on data (v3: zero flags, with and without unmap), on nothing (v2: stays unallocated)
		qio "$img" 'write -z 1M 64k' 'write -z -u 1536k 128k' 'write -z 2560k 4k'
		check "$img"
	done
done
[ "$ZERO_RUNS" -gt 0 ] || fail "no zero run in the maps of images with holes: the map check could not fail"

log "compressed clusters: deflate (v2, v3) and zstd"
head -c 300000 /dev/urandom >"$T/rand"
python3 - "$T/src.raw" "$T/rand" <<'EOF'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(6 << 20)
    f.seek(0); f.write(bytes(range(256)) * 1024)            # compressible
    f.seek(1 << 20); f.write(open(sys.argv[2], "rb").read())  # incompressible: stored as is
    f.seek(3 << 20); f.write(b"vmfs" * 100000)
    f.seek((6 << 20) - 7); f.write(b"the end")
EOF
qemu-img convert -c -O qcow2 -o compat=0.10 "$T/src.raw" "$T/deflate-v2.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zlib "$T/src.raw" "$T/deflate.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/src.raw" "$T/zstd.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd,cluster_size=4k "$T/src.raw" "$T/zstd-4k.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zlib,cluster_size=2M "$T/src.raw" "$T/deflate-2m.qcow2"
for f in deflate-v2 deflate zstd zstd-4k deflate-2m; do
	check "$T/$f.qcow2"
	cmp "$T/ref.raw" "$T/src.raw" || fail "$f.qcow2 does not hold its source"
done
# a compressed image written over: compressed, standard and zero clusters side by side
qio "$T/zstd.qcow2" 'write -P 0x66 64k 64k' 'write -z 3M 128k'
check "$T/zstd.qcow2"

log "an internal snapshot, metadata preallocation, the dirty bit"
qemu-img create -q -f qcow2 "$T/snap.qcow2" 2M
qio "$T/snap.qcow2" 'write -P 0x77 0 1M'
qemu-img snapshot -c s1 "$T/snap.qcow2"
qio "$T/snap.qcow2" 'write -P 0x78 512k 1M'
check "$T/snap.qcow2"
cp "$T/snap.qcow2" "$T/dirty.qcow2"
patch "$T/dirty.qcow2" dirty
"$QC" "$T/dirty.qcow2" | cmp - "$T/ref.raw" || fail "the dirty image does not read as before"
qemu-img create -q -f qcow2 -o preallocation=metadata "$T/prealloc.qcow2" 3M
qio "$T/prealloc.qcow2" 'write -P 0x79 1000k 8k'
check "$T/prealloc.qcow2"

log "backing chains: qcow2 and raw, relative names across directories, shorter and longer bases"
mkdir -p "$T/a" "$T/b/c"
# a sparse raw base of 3 MiB with some data
python3 - "$T/b/c/base.raw" <<'EOF'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(3 << 20)
    f.seek(1000000); f.write(b"raw base data" * 100)
    f.seek(2 << 20); f.write(b"\xab" * 200000)
EOF
qemu-img create -q -f qcow2 -o compat=0.10 -b c/base.raw -F raw "$T/b/mid.qcow2" 5M
qio "$T/b/mid.qcow2" 'write -P 0x88 2M 64k' 'write -P 0x89 4M 64k'
qemu-img create -q -f qcow2 -b ../b/mid.qcow2 -F qcow2 "$T/a/top.qcow2" 6M
# zero clusters hide the base's data; a write covers part of a cluster (the rest from below)
qio "$T/a/top.qcow2" 'write -z 2M 64k' 'write -P 0x99 1000064 100' 'write -z 2176k 64k'
[ "$("$QC" --info "$T/a/top.qcow2")" = "size 6291456 chain 3" ] || fail "top.qcow2: $("$QC" --info "$T/a/top.qcow2")"
check "$T/a/top.qcow2"
(cd "$T/a" && check top.qcow2)			# a relative image path
check "$T/b/mid.qcow2"
qemu-img create -q -f qcow2 -o compat=0.10 -b ../b/mid.qcow2 -F qcow2 "$T/a/short.qcow2" 1M
check "$T/a/short.qcow2"				# a longer base: only its first 1 MiB
qemu-img create -q -f qcow2 -b "$T/zstd.qcow2" -F qcow2 "$T/a/abs.qcow2" 8M
check "$T/a/abs.qcow2"				# an absolute name, a compressed base

log "damaged and unsupported images are refused in one line"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
truncate -s 70000 "$T/bad.qcow2"		# inside the refcount block: no L1
refused "$T/bad.qcow2"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
truncate -s 300000 "$T/bad.qcow2"		# inside the L2 table: refused at open
refused "$T/bad.qcow2"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
truncate -s 330000 "$T/bad.qcow2"		# inside the first data cluster: the next one is past the end
refused "$T/bad.qcow2"
grep -q 'data cluster at 0x[0-9a-f]* for guest offset .* lies past the end' "$T/stderr" ||
	fail "a truncated image: $(cat "$T/stderr")"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" l1
refused "$T/bad.qcow2"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" magic
refused "$T/bad.qcow2"
grep -q 'not a qcow2 image' "$T/stderr" || fail "a bad magic: $(cat "$T/stderr")"
cp "$T/deflate.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" compressed
expect_one_line_failure "$QC" "$T/bad.qcow2"
cp "$T/zstd-4k.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" compressed
expect_one_line_failure "$QC" "$T/bad.qcow2"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" incompat
refused "$T/bad.qcow2"
grep -q 'unknown incompatible feature bit 20' "$T/stderr" || fail "an unknown feature: $(cat "$T/stderr")"
cp "$T/v1.1-65536.qcow2" "$T/bad.qcow2"
patch "$T/bad.qcow2" size
refused "$T/bad.qcow2"
if qemu-img create -q -f qcow2 --object secret,id=sec0,data=vmfs-test \
	-o encrypt.format=luks,encrypt.key-secret=sec0 "$T/luks.qcow2" 1M 2>"$T/luks.log"; then
	refused "$T/luks.qcow2"
	grep -q 'encrypted (LUKS)' "$T/stderr" || fail "LUKS: $(cat "$T/stderr")"
else
	echo "   (no LUKS image: $(head -n1 "$T/luks.log"))"
fi
qemu-img create -q -f qcow2 -o data_file="$T/data.raw" "$T/datafile.qcow2" 1M
refused "$T/datafile.qcow2"
qemu-img create -q -f qcow2 -o extended_l2=on "$T/extl2.qcow2" 1M
refused "$T/extl2.qcow2"
# loops: an image its own backing file, and two that back each other (names patched in place)
qemu-img create -q -f qcow2 -b "$T/loopX.qcow2" -F qcow2 -u "$T/loopA.qcow2" 1M
patch "$T/loopA.qcow2" backing "$T/loopA.qcow2"
refused "$T/loopA.qcow2"
grep -q 'a loop' "$T/stderr" || fail "a loop: $(cat "$T/stderr")"
qemu-img create -q -f qcow2 -b loopX.qcow2 -F qcow2 -u "$T/loopB.qcow2" 1M
qemu-img create -q -f qcow2 -b loopB.qcow2 -F qcow2 -u "$T/loopC.qcow2" 1M
patch "$T/loopB.qcow2" backing loopC.qcow2
refused "$T/loopC.qcow2"
qemu-img create -q -f qcow2 -b nowhere.qcow2 -F qcow2 -u "$T/missing.qcow2" 1M
refused "$T/missing.qcow2"
grep -q "backing file '$T/nowhere.qcow2'" "$T/stderr" || fail "a missing backing file: $(cat "$T/stderr")"
log "qcow2 ok"
