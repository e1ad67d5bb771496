#!/bin/bash
# POSIX and Linux semantics through the mount: renameat2 NOREPLACE/EXCHANGE,
# fallocate (preallocate, keep size, punch hole, zero range), random I/O with
# truncate and fallocate checked against a model (fsx), SEEK_DATA and
# SEEK_HOLE, O_DIRECT I/O with 4 KiB and 1 MiB blocks, an unlinked file that
# stays readable while open, readdir while entries are removed, and statfs
# following 100 MiB of writes and their removal, parallel writers.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount
need_cmd python3 fallocate

MiB=$((1 << 20))
IMG=$T/datastore.img
MNT=$T/mnt
vmfs_mkfs "$IMG" 4G -b 1M -H 64 # cheaper file locks (Disk Paxos reads every slot)
B=$MiB # file block size
vmfs_mount "$IMG" "$MNT"
D=$MNT/t
mkdir "$D"
head -c $((16 * MiB)) /dev/urandom >"$T/pool"

py() { python3 -c "$@"; }

# True when bytes [off, off+len) of file $1 are zero.
zeros() { cmp -s -i "$2" -n "$3" "$1" /dev/zero; }
# True when bytes [off, off+len) of file $1 equal the pool's.
same() { cmp -s -i "$2:$2" -n "$3" "$1" "$T/pool"; }
blocks() { stat -c %b "$1"; }
# True once the mount has at least $1 free units again.
free_at_least() { [ "$(stat -f -c %f "$MNT")" -ge "$1" ]; }

log "renameat2"
echo a >"$D/ra"
echo b >"$D/rb"
mkdir "$D/rdir"
echo inside >"$D/rdir/x"
py '
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
NOREPLACE, EXCHANGE = 1, 2
def ren(a, b, flags):
    r = libc.renameat2(-100, a.encode(), -100, b.encode(), flags)
    return 0 if r == 0 else ctypes.get_errno()
def body(p):
    with open(p) as f:
        return f.read()
d = sys.argv[1]
a, b, r = d + "/ra", d + "/rb", d + "/rdir"
assert ren(a, b, NOREPLACE) == errno.EEXIST, "NOREPLACE over a file"
assert body(a) == "a\n" and body(b) == "b\n", "NOREPLACE changed something"
assert ren(a, d + "/rc", NOREPLACE) == 0, "NOREPLACE to a new name"
assert body(d + "/rc") == "a\n" and not os.path.exists(a)
assert ren(d + "/rc", b, EXCHANGE) == 0, "EXCHANGE two files"
assert body(d + "/rc") == "b\n" and body(b) == "a\n", "EXCHANGE did not swap"
assert ren(b, r, EXCHANGE) == 0, "EXCHANGE file and directory"
assert os.path.isdir(b) and body(b + "/x") == "inside\n" and body(r) == "a\n"
assert ren(b, d + "/missing", EXCHANGE) == errno.ENOENT, "EXCHANGE with a missing name"
assert ren(b, r, NOREPLACE | EXCHANGE) == errno.EINVAL
' "$D"

log "fallocate: preallocate, keep size"
f=$D/prealloc
fallocate -l 8M "$f"
[ "$(stat -c %s "$f")" -eq $((8 * MiB)) ] || fail "prealloc: size $(stat -c %s "$f")"
[ "$(blocks "$f")" -ge $((8 * MiB / 512)) ] || fail "prealloc: only $(blocks "$f") blocks"
zeros "$f" 0 $((8 * MiB)) || fail "prealloc: not zero"
echo -n hi >"$D/keep"
fallocate -n -l 4M "$D/keep"
[ "$(stat -c %s "$D/keep")" -eq 2 ] || fail "keep size: size changed"
[ "$(blocks "$D/keep")" -ge $((4 * MiB / 512)) ] || fail "keep size: only $(blocks "$D/keep") blocks"
[ "$(cat "$D/keep")" = hi ] || fail "keep size: data changed"

log "fallocate: punch hole"
f=$D/punch
head -c $((8 * MiB)) "$T/pool" >"$f"
before=$(blocks "$f")
fallocate -p -o $((1 * MiB)) -l $((2 * MiB)) "$f"
after=$(blocks "$f")
log "  st_blocks $before -> $after"
[ "$after" -le $((before - 2 * MiB / 512)) ] || fail "punch: st_blocks $before -> $after"
zeros "$f" $MiB $((2 * MiB)) || fail "punch: hole not zero"
same "$f" 0 $MiB && same "$f" $((3 * MiB)) $((5 * MiB)) || fail "punch: data around the hole changed"
[ "$(stat -c %s "$f")" -eq $((8 * MiB)) ] || fail "punch: size changed"
fallocate -p -o 4000 -l 10000 "$f"
zeros "$f" 4000 10000 || fail "unaligned punch: not zero"
same "$f" 0 4000 && same "$f" 14000 $((MiB - 14000)) || fail "unaligned punch: data around it changed"

log "fallocate: zero range"
fallocate -z -o $((5 * MiB + 100)) -l $((MiB + 5)) "$f"
zeros "$f" $((5 * MiB + 100)) $((MiB + 5)) || fail "zero range: not zero"
same "$f" $((3 * MiB)) $((2 * MiB + 100)) && same "$f" $((6 * MiB + 105)) $((2 * MiB - 105)) ||
	fail "zero range: data around it changed"
fallocate -z -o $((7 * MiB)) -l $((2 * MiB)) "$f"
[ "$(stat -c %s "$f")" -eq $((9 * MiB)) ] || fail "zero range past EOF: size $(stat -c %s "$f")"

log "punch and zero range across a block boundary, next to a hole"
f=$D/cross
dd if="$T/pool" of="$f" bs=65536 count=1 seek=$((B / 65536)) conv=notrunc status=none
dd if="$T/pool" of="$f" bs=65536 count=1 seek=$((3 * B / 65536)) conv=notrunc status=none
fallocate -p -o $((B - 50000)) -l 100000 "$f"
zeros "$f" $((B - 50000)) 100000 || fail "punch across a block boundary: not zero"
cmp -s -i $((B + 50000)):50000 -n $((65536 - 50000)) "$f" "$T/pool" || fail "punch: data after it changed"
fallocate -z -o $((3 * B - 50000)) -l 100000 "$f"
zeros "$f" $((3 * B - 50000)) 100000 || fail "zero range across a block boundary: not zero"

log "random I/O against a model (fsx)"
py '
import ctypes, os, random, sys
libc = ctypes.CDLL(None, use_errno=True)
def falloc(fd, mode, off, n):
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)):
        raise OSError(ctypes.get_errno(), "fallocate")
def grow(m, end):
    if len(m) < end:
        m.extend(bytes(end - len(m)))
rnd = random.Random(4711)
model = bytearray()
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
ops = []
for i in range(800):
    op = rnd.choice("wwwtpza")
    off = rnd.randrange(12 << 20)
    n = rnd.choice([1, 511, 4095, 4096, 4097, 65536, 1 << 20, (1 << 20) + 3, rnd.randrange(1, 3 << 20)])
    ops.append((op, off, n))
    if op == "w":
        data = rnd.randbytes(n)
        os.pwrite(fd, data, off)
        grow(model, off + n)
        model[off:off + n] = data
    elif op == "t":
        os.ftruncate(fd, off)
        del model[off:]
        grow(model, off)
    elif op == "p":
        falloc(fd, 3, off, n)
        end = min(off + n, len(model))
        model[off:end] = bytes(max(0, end - off))
    elif op == "z":
        falloc(fd, 0x10, off, n)
        grow(model, off + n)
        model[off:off + n] = bytes(n)
    else:
        falloc(fd, 0, off, n)
        grow(model, off + n)
    if os.fstat(fd).st_size != len(model):
        sys.exit("op %d %s: size %d, want %d" % (i, ops[-1], os.fstat(fd).st_size, len(model)))
    if i % 25 == 24 or i == 799:
        got = os.pread(fd, len(model) + 1, 0)
        if got != model:
            bad = next(j for j in range(len(model)) if got[j] != model[j])
            sys.exit("after op %d: byte %d differs; last ops %s" % (i, bad, ops[-25:]))
os.close(fd)
' "$D/fsx"

log "SEEK_DATA / SEEK_HOLE"
f=$D/sparse
dd if="$T/pool" of="$f" bs=4096 count=1 conv=notrunc status=none
dd if="$T/pool" of="$f" bs=4096 count=1 seek=1024 conv=notrunc status=none
truncate -s 10M "$D/empty"
py '
import errno, os, sys
MiB = 1 << 20
def seek(fd, off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return -e.errno
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
assert size == 4 * MiB + 4096, size
assert seek(fd, 0, os.SEEK_DATA) == 0
h = seek(fd, 0, os.SEEK_HOLE)
assert 4096 <= h < 4 * MiB, "SEEK_HOLE from 0: %d" % h
d = seek(fd, h, os.SEEK_DATA)
assert h < d <= 4 * MiB, "SEEK_DATA from the hole: %d" % d
os.lseek(fd, h, os.SEEK_SET)
assert os.read(fd, 4 * MiB - h) == bytes(4 * MiB - h), "hole not zero"
assert seek(fd, 4 * MiB, os.SEEK_DATA) == 4 * MiB
assert seek(fd, 4 * MiB, os.SEEK_HOLE) == size, "SEEK_HOLE at the tail: %d" % seek(fd, 4 * MiB, os.SEEK_HOLE)
assert seek(fd, size, os.SEEK_DATA) == -errno.ENXIO
assert seek(fd, size + 1000, os.SEEK_HOLE) == -errno.ENXIO
fd2 = os.open(sys.argv[2], os.O_RDONLY)
assert seek(fd2, 0, os.SEEK_DATA) == -errno.ENXIO, "data in an empty file"
assert seek(fd2, 0, os.SEEK_HOLE) == 0
print("   hole at %d, data again at %d" % (h, d))
' "$f" "$D/empty"

log "O_DIRECT"
for bs in 4K 1M; do
	f=$D/direct-$bs
	dd if="$T/pool" of="$f" bs=$bs count=$((16 * MiB / $(numfmt --from=iec $bs))) oflag=direct status=none
	cmp "$f" "$T/pool" || fail "O_DIRECT $bs: written data differs"
	dd if="$f" bs=$bs iflag=direct status=none | cmp - "$T/pool" || fail "O_DIRECT $bs: read differs"
	dd if="$T/pool" of="$f" bs=$bs count=3 skip=1 seek=2 oflag=direct conv=notrunc status=none
	dd if="$f" bs=$bs skip=2 count=3 iflag=direct status=none |
		cmp - <(dd if="$T/pool" bs=$bs skip=1 count=3 status=none) || fail "O_DIRECT $bs: overwrite"
done

log "unlinked open file"
bfree0=$(stat -f -c %f "$MNT")
py '
import os, sys
p = sys.argv[1]
data = os.urandom(20 << 20)
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, data)
os.unlink(p)
assert not os.path.exists(p) and os.path.basename(p) not in os.listdir(os.path.dirname(p))
assert os.fstat(fd).st_nlink == 0
assert os.pread(fd, len(data), 0) == data, "unlinked file lost its data"
os.pwrite(fd, b"tail", len(data))
assert os.pread(fd, 4, len(data)) == b"tail"
os.fsync(fd)
os.close(fd)
' "$D/unlinked"
# The kernel sends forget after the close, asynchronously: poll for the space.
wait_until 20 free_at_least $((bfree0 - 256)) ||
	fail "space of the unlinked file not freed: $bfree0 -> $(stat -f -c %f "$MNT") free"

log "readdir while removing"
mkdir "$D/dir"
for ((i = 0; i < 3000; i++)); do
	: >"$D/dir/entry-$i"
done
py '
import ctypes, os, platform, struct, sys
# getdents64 with a small buffer, so the scan takes many FUSE readdir calls
# (glibc readdir would ask for st_blksize bytes and get the whole directory).
SYS_getdents64 = {"x86_64": 217, "aarch64": 61}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1024)
def batch(fd):
    n = libc.syscall(SYS_getdents64, fd, buf, len(buf))
    assert n >= 0, os.strerror(ctypes.get_errno())
    out, pos = [], 0
    while pos < n:
        reclen = struct.unpack_from("<H", buf.raw, pos + 16)[0]
        out.append(buf.raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode())
        pos += reclen
    return out
d = sys.argv[1]
names = sorted(os.listdir(d))
assert len(names) == 3000, len(names)
seen, removed, calls = [], set(), 0
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
while True:
    got = batch(fd)
    if not got:
        break
    calls += 1
    seen += [n for n in got if n not in (".", "..")]
    if not removed and len(seen) >= 700:
        for n in names[::3]:
            os.unlink(os.path.join(d, n))
            removed.add(n)
os.close(fd)
dups = len(seen) - len(set(seen))
assert dups == 0, "%d names returned twice" % dups
missing = set(names) - removed - set(seen)
assert not missing, "%d surviving names never returned, e.g. %s" % (len(missing), sorted(missing)[:5])
assert sorted(os.listdir(d)) == sorted(set(names) - removed)
print("   %d getdents calls, %d names returned, %d removed during the scan" % (calls, len(seen), len(removed)))
' "$D/dir"

log "parallel writers (multithreaded daemon)"
mkdir "$D/par"
py '
import hashlib, os, random, sys
from concurrent.futures import ProcessPoolExecutor
d = sys.argv[1]
def files(w):
    rnd, kept = random.Random(w), {}
    for i in range(150):
        name = "%s/w%d-%d" % (d, w, i)
        data = rnd.randbytes(rnd.choice([10, 5000, 70000, 300000]))
        with open(name, "wb") as f:
            f.write(data)
        if i % 5 == 0:
            os.rename(name, name + "r")
            name += "r"
        if i % 7 == 0:
            os.unlink(name)
        else:
            kept[name] = hashlib.sha256(data).hexdigest()
    return kept
def stripes(w):
    fd = os.open(d + "/striped", os.O_WRONLY | os.O_CREAT, 0o644)
    for i in range(32):
        os.pwrite(fd, bytes([w + 1]) * 65536, (i * 6 + w) * 65536)
    os.close(fd)
with ProcessPoolExecutor(6) as ex:
    kept = {}
    for k in ex.map(files, range(6)):
        kept.update(k)
    list(ex.map(stripes, range(6)))
names = {os.path.join(d, n) for n in os.listdir(d)} - {d + "/striped"}
assert names == set(kept), "%d names listed, %d expected" % (len(names), len(kept))
for n, h in kept.items():
    with open(n, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == h, n + ": content differs"
with open(d + "/striped", "rb") as f:
    data = f.read()
for i in range(32 * 6):
    assert data[i << 16:(i + 1) << 16] == bytes([i % 6 + 1]) * 65536, "stripe %d differs" % i
print("   %d files from 6 processes" % len(kept))
' "$D/par"

log "statfs follows writes"
bs=$(stat -f -c %S "$MNT")
free0=$(stat -f -c %f "$MNT")
dd if=/dev/urandom of="$D/hundred" bs=1M count=100 conv=fsync status=none
free1=$(stat -f -c %f "$MNT")
log "  free units of $bs bytes: $free0 -> $free1"
[ $(((free0 - free1) * bs)) -ge $((100 * MiB)) ] || fail "statfs: 100 MiB written, free fell by $(((free0 - free1) * bs))"
[ $(((free0 - free1) * bs)) -le $((110 * MiB)) ] || fail "statfs: 100 MiB written, free fell by $(((free0 - free1) * bs))"
rm "$D/hundred"
wait_until 20 free_at_least $((free0 - 256)) ||
	fail "statfs: space not back after rm: $free0 -> $(stat -f -c %f "$MNT")"

vmfs_umount "$MNT" "$IMG"
log "ok"
