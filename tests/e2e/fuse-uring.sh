#!/bin/bash
# FUSE over io_uring (Linux 6.14 and later, fuse module parameter enable_uring):
# with the parameter on for this test (put back at exit), vmfs-mount serves
# through one ring per CPU. (a) shapes.sh (SHAPES_QUICK=1) and posix.sh pass
# over the rings.
# (b) 8 threads write 4 KiB blocks at random offsets of a file with O_DIRECT
# and read it back through a foreground mount, while a ninth thread stats the
# file, lists its folder, seeks for data, and fallocates and truncates another
# file and the file itself to the sizes they have (requests served beside the
# I/O in flight, and requests that must wait for it to drain): the sizes are
# right, nothing hangs, the bytes match a model, mtime
# moved, the mount names io_uring, runs its ring threads and says it served at
# least as many requests as there were writes, and it goes on serving after the
# module parameter is switched off under it; remounted with -o no_uring (the
# classic /dev/fuse loop), it says nothing of io_uring and the same bytes read
# back. (c) More requests than the rings have entries: fio pinned to CPU 0
# writes 1 MiB blocks with 128 in flight through libaio (the kernel lets its
# 64 background requests through, more than that CPU's queue has entries);
# then 48 fio threads pinned to each CPU write 1 MiB blocks with O_DIRECT (a
# queue has 32 entries, so every entry of every thread is out at the device at
# once). Both verify what they wrote: fio ends, the bytes check, every ring
# thread still runs.
# Skipped where the kernel has no FUSE over io_uring.
# test: alone (it switches the fuse module's enable_uring for the whole machine)
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount fsck.vmfs
need_cmd python3 fio
PARAM=/sys/module/fuse/parameters/enable_uring
[ -w "$PARAM" ] || skip "this kernel ($(uname -r)) has no FUSE over io_uring ($PARAM)"
OLD=$(cat "$PARAM")
AT_EXIT+=("echo '$OLD' >'$PARAM'")
echo Y >"$PARAM"

log "(a) shapes.sh and posix.sh over the rings"
for t in shapes posix; do
	SHAPES_QUICK=1 bash "$(dirname "$0")/$t.sh" >"$T/$t.log" 2>&1 || { tail -n 20 "$T/$t.log"; fail "$t.sh fails over io_uring"; }
	echo "   $t.sh: ok"
done

log "(b) O_DIRECT writes from 8 threads, read back, over the rings and then without"
IMG=$T/ds.img
vmfs_mkfs "$IMG" 1G
vmfs_mount_fg "$IMG" "$T/m" 2>"$T/ring.err"
ls /proc/"$FG_PID"/task/*/comm >/dev/null
grep -qx 'vmfs-ring0' /proc/"$FG_PID"/task/*/comm || fail "no vmfs-ring0 thread in the daemon"
cat >"$T/io.py" <<'PY'
import hashlib, mmap, os, random, sys, threading
path, mode = sys.argv[1], sys.argv[2]
BS, NB, NT, PER = 4096, 16384, 8, 512          # 64 MiB, 8 threads, 512 writes each
def block(i, gen):                               # the bytes of block i after write gen
    return hashlib.sha256(b"%d/%d" % (i, gen)).digest() * (BS // 32)
def model():
    final = [block(i, 0) for i in range(NB)]
    for t in range(NT):
        r = random.Random(t)
        for k in range(PER):
            i = r.randrange(NB // NT) * NT + t      # thread t owns blocks = t mod NT
            final[i] = block(i, k + 1)
    return final
if mode == "layout":
    with open(path, "wb") as f:
        for i in range(NB):
            f.write(block(i, 0))
        os.fsync(f.fileno())
elif mode == "write":
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    errs = []
    def work(t):
        try:
            buf = mmap.mmap(-1, BS)
            r = random.Random(t)
            for k in range(PER):
                i = r.randrange(NB // NT) * NT + t
                buf[:] = block(i, k + 1)
                assert os.pwritev(fd, [buf], i * BS) == BS
        except Exception as e:
            errs.append(e)
    def meta():     # requests served beside the writes in flight: stat, readdir, lseek, and
        try:        # fallocate and truncate of another file, which wait for the queue to drain
            d, name = os.path.split(path)
            other = os.path.join(d, "other")
            ofd = os.open(other, os.O_RDWR | os.O_CREAT, 0o644)
            for k in range(200):
                assert os.stat(path).st_size == NB * BS, "stat: size %d" % os.stat(path).st_size
                assert name in os.listdir(d), "readdir: no %s" % name
                assert os.lseek(fd, 0, os.SEEK_DATA) == 0
                os.posix_fallocate(ofd, 0, (k + 1) * BS)
                os.ftruncate(ofd, k * BS // 2)
                os.truncate(path, NB * BS)          # the file under I/O: sizes as they are,
                os.posix_fallocate(fd, 0, BS)       # but each takes its iolock exclusive
            os.close(ofd)
            os.unlink(other)
        except Exception as e:
            errs.append(e)
    done = threading.Event()
    def read(t):    # reads in flight beside the truncates (the kernel lets them overlap; not writes)
        try:
            rfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            buf, r = mmap.mmap(-1, 1 << 20), random.Random(100 + t)
            while not done.is_set():
                assert os.preadv(rfd, [buf], r.randrange(NB * BS >> 20) << 20) == 1 << 20
            os.close(rfd)
        except Exception as e:
            errs.append(e)
    rd = [threading.Thread(target=read, args=(t,)) for t in range(2)]
    for x in rd: x.start()
    th = [threading.Thread(target=work, args=(t,)) for t in range(NT)] + [threading.Thread(target=meta)]
    for x in th: x.start()
    for x in th: x.join()
    done.set()
    for x in rd: x.join()
    os.close(fd)
    if errs:
        sys.exit("write: %r" % errs[0])
elif mode == "check":
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    final = model()
    for off in range(0, NB * BS, 1 << 20):
        assert os.preadv(fd, [buf], off) == 1 << 20
        for j in range(256):
            if buf[j * BS:(j + 1) * BS] != final[off // BS + j]:
                sys.exit("block %d differs from the model" % (off // BS + j))
    os.close(fd)
    print("checked %d blocks" % NB)
PY
python3 "$T/io.py" "$T/m/disk" layout
m0=$(stat -c %Y.%y "$T/m/disk")
timeout -k 5 60 python3 "$T/io.py" "$T/m/disk" write || fail "writes over the rings, with stat, readdir, fallocate and truncate beside them, hang or fail"
# the connection keeps its rings when the parameter goes off (it told the
# kernel so at INIT); without that every reply would be refused and I/O hang
echo N >"$PARAM"
timeout -k 5 60 python3 "$T/io.py" "$T/m/disk" write || fail "writes over the rings hang or fail once enable_uring is off"
timeout -k 5 60 python3 "$T/io.py" "$T/m/disk" check || fail "reads over the rings hang or fail once enable_uring is off"
m1=$(stat -c %Y.%y "$T/m/disk")
[ "$m0" != "$m1" ] || fail "mtime did not move with the O_DIRECT overwrites ($m0)"
vmfs_umount "$T/m" "$IMG"
wait "$FG_PID" || fail "the ring mount exited $?"
grep -q 'FUSE over io_uring$' "$T/ring.err" || { cat "$T/ring.err"; fail "the mount did not use io_uring"; }
served=$(sed -n 's/.*FUSE over io_uring served \([0-9]*\) requests$/\1/p' "$T/ring.err")
[ -n "$served" ] && [ "$served" -ge 8192 ] || { cat "$T/ring.err"; fail "the rings served ${served:-no} requests, fewer than the 8192 writes"; }
echo "   the rings served $served requests"

vmfs_mount_fg "$IMG" "$T/m" -o no_uring 2>"$T/classic.err"
python3 "$T/io.py" "$T/m/disk" check
vmfs_umount "$T/m" "$IMG"
wait "$FG_PID" || fail "the classic mount exited $?"
! grep -q io_uring "$T/classic.err" || { cat "$T/classic.err"; fail "-o no_uring still used io_uring"; }
"$VMFS_BIN/fsck.vmfs" -fn "$IMG" >/dev/null || fail "fsck is not clean"

log "(c) more requests than the rings have entries, from every CPU"
echo Y >"$PARAM"
vmfs_mount_fg "$IMG" "$T/m" 2>"$T/deep.err"
rings() { cat /proc/"$FG_PID"/task/*/comm 2>/dev/null | grep -c '^vmfs-ring' || true; }
nrings=$(rings)
[ "$nrings" -ge 1 ] || fail "no ring threads in the daemon"
fio --name=deep --filename="$T/m/deep.1" --rw=write --bs=1M --size=256M --iodepth=128 --ioengine=libaio \
    --direct=1 --cpus_allowed=0 --verify=crc32c --do_verify=1 --verify_state_save=0 --output="$T/deep1.fio" &
FIO_PID=$!
PIDS+=("$FIO_PID")   # after the daemon's: killing it first lets a stuck fio's requests end
wait_until 120 not pid_alive "$FIO_PID" || fail "fio with 128 writes in flight from CPU 0 still runs after 120 s (ring threads: $(rings) of $nrings left)"
wait "$FIO_PID" || { cat "$T/deep1.fio"; fail "fio with 128 writes in flight from CPU 0 failed or did not verify"; }
echo "   256 MiB written with 128 in flight from CPU 0 and verified"
percpu=()
for ((c = 0; c < $(nproc); c++)); do percpu+=(--name="cpu$c" --cpus_allowed="$c"); done
mkdir "$T/m/deep"
fio --thread --directory="$T/m/deep" --rw=write --bs=1M --size=4M --numjobs=48 --ioengine=psync --direct=1 \
    --verify=crc32c --do_verify=1 --verify_state_save=0 --output="$T/deep.fio" "${percpu[@]}" &
FIO_PID=$!
PIDS+=("$FIO_PID")
wait_until 120 not pid_alive "$FIO_PID" || fail "fio's $((48 * $(nproc))) writers still run after 120 s (ring threads: $(rings) of $nrings left)"
wait "$FIO_PID" || { cat "$T/deep.fio"; fail "fio's $((48 * $(nproc))) writers failed or did not verify"; }
[ "$(rings)" = "$nrings" ] || fail "$nrings ring threads before, $(rings) after"
echo "   $((48 * $(nproc))) writers, 48 a CPU, wrote and verified $((4 * 48 * $(nproc))) MiB; $nrings ring threads still run"
vmfs_umount "$T/m" "$IMG"
wait "$FG_PID" || fail "the ring mount exited $?"
"$VMFS_BIN/fsck.vmfs" -fn "$IMG" >/dev/null || fail "fsck is not clean after the many writers"
