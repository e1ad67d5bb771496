#!/bin/bash
# SIGKILL the FUSE daemon in the middle of a workload, many times: after each
# kill the datastore must pass fsck.vmfs -n (the journal replayed in memory),
# mount again (the journal replayed for real), pass fsck -n again, and every
# file whose fsync returned before the kill must read back exactly.
# test: long (minutes: started early, so that the two lanes end together)
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount fsck.vmfs
need_cmd python3
ROUNDS=${SIGKILL_ROUNDS:-10}
img=$T/ds.img
vmfs_mkfs "$img" 2G -H 64 -T 400,3200,2000,800 # taken over after about 3 s; 64 slots keep file locks cheap
mkdir -p "$T/m"

# The workload: files of several shapes, written, renamed over, truncated and
# removed; after each fsync it appends "path sha256" to the ledger (outside the
# datastore), so the ledger names only what was durable.
cat >"$T/work.py" <<'PY'
import hashlib, os, random, sys
root, ledger, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = random.Random(seed)
led = open(ledger, "a", buffering=1)
os.makedirs(f"{root}/w{seed}", exist_ok=True)
i = 0
while True:
    i += 1
    name = f"{root}/w{seed}/f{r.randrange(40)}"
    size = r.choice([0, 1, 100, 2048, 2049, 4096, 70000, 1 << 20, (1 << 20) + 5, 3 << 20])
    data = r.randbytes(size)
    op = r.random()
    led.write(f"{name} DIRTY\n")  # from here until the next line about it, either state may survive
    if op < 0.7:
        tmp = name + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, name)
        fd = os.open(os.path.dirname(name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        led.write(f"{name} {hashlib.sha256(data).hexdigest()}\n")
    elif op < 0.85 and os.path.exists(name):
        os.truncate(name, r.randrange(1 << 20))
    elif os.path.exists(name):
        os.unlink(name)
        fd = os.open(os.path.dirname(name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        led.write(f"{name} GONE\n")
PY

: >"$T/ledger" # there from the start: the progress polls below count its lines
for round in $(seq "$ROUNDS"); do
	vmfs_mount_fg "$img" "$T/m"
	daemon=$FG_PID
	python3 "$T/work.py" "$T/m" "$T/ledger" "$round" 2>/dev/null &
	worker=$!
	# let it run a varying amount of work, measured in ledger lines, not time
	target=$(( $(wc -l <"$T/ledger") + 3 + round % 7 ))
	wait_until 60 bash -c "[ \$(wc -l <'$T/ledger') -ge $target ]" || fail "round $round: workload made no progress"
	kill -9 "$daemon"
	wait "$daemon" 2>/dev/null || true
	wait "$worker" 2>/dev/null || true
	umount -l "$T/m" 2>/dev/null || fusermount3 -uz "$T/m" 2>/dev/null || true
	rc=0
	"$VMFS_BIN/fsck.vmfs" -fn "$img" >"$T/fsck.out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$T/fsck.out"; fail "round $round: fsck -n after SIGKILL exited $rc"; }
	# what the ledger says last about each file of this round's worker is what must be there
	vmfs_mount_fg "$img" "$T/m"
	python3 - "$T/ledger" "$T/m" "$round" <<'PY' || fail "round $round: acknowledged data lost"
import hashlib, os, sys
ledger, mnt, rnd = sys.argv[1], sys.argv[2], sys.argv[3]
last = {}
for line in open(ledger):
    path, h = line.split()
    if f"/w{rnd}/" in path:
        last[path] = h
bad = checked = 0
for path, h in last.items():
    p = mnt + path[path.index(f"/w{rnd}/"):]
    if h == "DIRTY":
        continue  # changed after its last fsync: either state is right
    checked += 1
    if h == "GONE":
        if os.path.exists(p):
            print(f"{p}: removed and fsync'd, but here"); bad += 1
        continue
    try:
        got = hashlib.sha256(open(p, "rb").read()).hexdigest()
    except FileNotFoundError:
        got = "missing"
    if got != h:
        print(f"{p}: want {h[:12]}, have {got[:12]}"); bad += 1
print(f"checked {checked} files")
sys.exit(1 if bad else 0)
PY
	fusermount3 -u "$T/m"
	wait "$FG_PID"
	rc=0
	"$VMFS_BIN/fsck.vmfs" -fn "$img" >"$T/fsck.out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$T/fsck.out"; fail "round $round: fsck -n after remount exited $rc"; }
done
echo "$ROUNDS rounds, $(wc -l <"$T/ledger") acknowledged operations"
