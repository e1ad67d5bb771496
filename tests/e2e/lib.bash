# Shared helpers for the end-to-end tests, sourced by each tests/e2e/*.sh (this
# file is not a test: run-all.sh only runs *.sh). e2e_init makes the test's own
# temporary directory $T under /var/tmp and an EXIT trap that unmounts what the
# test mounted, stops the daemons it started (by pid) and removes $T, whether
# the test passed or not. Waits are bounded polls, never sleeps taken on trust.

set -euo pipefail
set -E
trap 'e2e_err $? "$LINENO" "$BASH_COMMAND"' ERR

# Names the command that failed: its first line only (a subshell body can be long).
e2e_err() {
	local cmd=${3%%$'\n'*}
	echo "${BASH_SOURCE[1]##*/}:$2: \"${cmd:0:200}\" failed (exit $1)" >&2
}

VMFS_BIN=${VMFS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}
MOUNTS=()	# mount points to undo, in order of mounting
PIDS=()		# daemons to stop
AT_EXIT=()	# commands (strings, eval'd) the cleanup runs last, in order

log() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skip: $*"; exit 77; }

# True when /dev/kvm is a character device this process can open read-write.
# (A bare `exec 3<>/dev/kvm` creates a regular file where there is none, and
# every later test would then take it for KVM.)
have_kvm() { [ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null; }

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c not installed"
	done
}

# mounted DIR: DIR is a mount point, read from the mount table (a stat of a
# FUSE mount whose daemon is stuck would hang, as mountpoint(1) and umount(8) do)
mounted() {
	awk -v m="$1" '$5 == m {f = 1} END {exit !f}' /proc/self/mountinfo
}

# Unmounts what it can, stops the processes (a stuck FUSE daemon's death fails
# its requests), and only then lets go of the mounts that were still busy.
e2e_cleanup() {
	local rc=$? i m p
	set +e
	trap - ERR
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mounted "${MOUNTS[i]}" && timeout 10 fusermount3 -u "${MOUNTS[i]}" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || continue
		wait_until 10 not pid_alive "$p" || kill -9 "$p" 2>/dev/null
	done
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mounted "${MOUNTS[i]}" && umount -l "${MOUNTS[i]}"
	done
	# run files of daemons killed under $T: nobody holds their lock, so they may go (as its holder)
	for m in /run/vmfs-mount/*.pid; do
		[ -n "${T:-}" ] && grep -q "^[0-9]* $T/" "$m" 2>/dev/null && flock -n "$m" rm -f "$m"
	done
	[ -n "${T:-}" ] && rm -rf --one-file-system "$T"
	for m in "${AT_EXIT[@]}"; do eval "$m"; done
	exit "$rc"
}

# For the tests that run the sanitized programs of build-fuzz/ (NAME names the
# directory): $T in RAM when /dev/shm is writable, cleaned up at exit as
# e2e_init's is (mounts, daemons, $T), then make fuzz-build in $TOP (its
# output shown only when it fails).
fuzz_init() {
	local base=/dev/shm
	need_cmd clang make
	[ -d "$base" ] && [ -w "$base" ] || base=/var/tmp
	T=$(mktemp -d "$base/vmfs-$1.XXXXXX")
	trap e2e_cleanup EXIT
	log "make fuzz-build"
	# run-all.sh runs tests side by side: one make of build-fuzz at a time
	flock /tmp/vmfs-fuzz-build.lock make -C "$TOP" --no-print-directory fuzz-build >"$T/build.log" 2>&1 ||
		{ tail -n 30 "$T/build.log"; fail "make fuzz-build"; }
}

# Checks the binaries and FUSE, then makes $T and the cleanup trap.
e2e_init() {
	local b
	for b in "$@"; do
		[ -x "$VMFS_BIN/$b" ] || fail "$VMFS_BIN/$b not built"
	done
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	need_cmd fusermount3 mountpoint
	T=$(mktemp -d /var/tmp/vmfs-e2e.XXXXXX)
	trap e2e_cleanup EXIT
	trap 'exit 143' TERM INT HUP
	# E2E_ENCRYPT=1 (tests/e2e/encrypted.sh): the same test on an encrypted
	# datastore. vmfs_mkfs and the mounts then pass a key; KEY_ARGS holds the
	# options for the other tools (empty otherwise).
	KEY_ARGS=()
	if [ "${E2E_ENCRYPT:-0}" = 1 ]; then
		head -c 64 /dev/urandom >"$T/e2e.key"
		KEY_ARGS=(--key-file "$T/e2e.key")
		log "on an encrypted datastore"
	fi
}

# Bounded polls: wait_until SECONDS COMMAND... retries every 50 ms. COMMAND's
# arguments are expanded once: put whatever must be re-read in a function.
wait_until() {
	local limit=$(($1 * 20)) i
	shift
	for ((i = 0; i < limit; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

not() { ! "$@"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f s", b - a }'; }
# True while process $1 runs (a zombie does not count).
pid_alive() {
	local state
	state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# Pids of the processes that hold file $1 open.
holders() {
	local f
	f=$(realpath "$1")
	{ find /proc/[0-9]*/fd -maxdepth 1 -lname "$f" 2>/dev/null || true; } | cut -d/ -f3 | sort -u
}

# The process holding file $1 that is not yet in PIDS (several mounts of one image).
new_holder() {
	local p q known
	for p in $(holders "$1"); do
		known=
		for q in "${PIDS[@]}"; do [ "$p" = "$q" ] && known=1; done
		[ -z "$known" ] && { echo "$p"; return 0; }
	done
	return 0
}

# True when no process holds file $1 open.
released() { [ -z "$(holders "$1")" ]; }

# The default cluster timings unless the caller sets -T (tests that kill
# daemons do, to be taken over sooner). Shorter ones for every test would fence
# daemons whose heartbeat write waits behind a long fsync of the backing file.
vmfs_mkfs() { # IMAGE SIZE [mkfs.vmfs options...]
	local img=$1 size=$2
	shift 2
	if [ ${#KEY_ARGS[@]} -gt 0 ]; then set -- "$@" --encrypt "${KEY_ARGS[@]}"; fi
	"$VMFS_BIN/mkfs.vmfs" --size "$size" -f "$@" "$img" >/dev/null
}

# The mount option that passes the key of an E2E_ENCRYPT run (none otherwise).
key_mount_opts() {
	if [ ${#KEY_ARGS[@]} -gt 0 ]; then echo "-o key-file=${KEY_ARGS[1]}"; fi
}

# vmfs_mount IMAGE MNT [vmfs-mount options...]: mounts as a daemon and records
# the daemon's pid in PIDS and DAEMON_PID.
vmfs_mount() {
	local img=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	MOUNTS+=("$mnt")
	# shellcheck disable=SC2046
	"$VMFS_BIN/vmfs-mount" $(key_mount_opts) "$@" "$img" "$mnt"
	mountpoint -q "$mnt" || fail "vmfs-mount returned but $mnt is not mounted"
	DAEMON_PID=$(new_holder "$img")
	[ -n "$DAEMON_PID" ] || fail "no new daemon holds $img"
	PIDS+=("$DAEMON_PID")
}

# vmfs_mount_fg IMAGE MNT [options...]: vmfs-mount -f in the background with
# SIGINT/SIGTERM/SIGHUP at their defaults (bash ignores SIGINT in background
# jobs, and libfuse only installs handlers over the default); sets FG_PID.
vmfs_mount_fg() {
	local img=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	MOUNTS+=("$mnt")
	# shellcheck disable=SC2046
	env --default-signal=INT,TERM,HUP "$VMFS_BIN/vmfs-mount" -f $(key_mount_opts) "$@" "$img" "$mnt" &
	FG_PID=$!
	PIDS+=("$FG_PID")
	wait_until 10 mountpoint -q "$mnt" || fail "$mnt not mounted after 10 s"
}

# vmfs_umount MNT IMAGE: vmfs-mount -u, which returns once the daemon has
# written everything and exited: nothing may hold IMAGE then.
vmfs_umount() {
	local mnt=$1 img=$2
	"$VMFS_BIN/vmfs-mount" -u "$mnt" || fail "vmfs-mount -u $mnt failed"
	not mountpoint -q "$mnt" || fail "$mnt still mounted"
	released "$img" || fail "something still holds $img after vmfs-mount -u returned"
}

# vmfs_umount_pid MNT PID: as vmfs_umount, for one of several daemons of one image.
vmfs_umount_pid() {
	local mnt=$1 pid=$2
	"$VMFS_BIN/vmfs-mount" -u "$mnt" || fail "vmfs-mount -u $mnt failed"
	not mountpoint -q "$mnt" || fail "$mnt still mounted"
	not pid_alive "$pid" || fail "daemon $pid still runs after vmfs-mount -u returned"
}

# A tmpfs to run the same operations on, for reference.
ref_mount() {
	mkdir -p "$1"
	MOUNTS+=("$1")
	mount -t tmpfs -o size=2g,mode=0755 vmfs-e2e-ref "$1" || skip "cannot mount tmpfs"
}

# Runs COMMAND... and expects it to fail with exactly one line on stderr.
expect_one_line_failure() {
	local rc=0 lines
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	lines=$(wc -l <"$T/stderr")
	echo "   $* -> exit $rc: $(head -c 300 "$T/stderr")"
	[ "$rc" -ne 0 ] || fail "$* succeeded"
	[ "$lines" -eq 1 ] || { cat "$T/stderr" >&2; fail "$*: $lines lines on stderr, want 1"; }
	LAST_RC=$rc
}

# The mq guest (tests/guests/mq.c): every virtio-blk queue at once.
# mq_check FILE MODE NQ: its run's output in FILE (lines may carry a prefix)
# finished ("mq ok": its MSI-X messages reached the LAPIC, at the vectors
# reprogrammed after BAR0 moved) with NQ queues, and vmm run --timings shows
# the I/O path MODE names: "eventfd" (doorbells through KVM's ioeventfd, also
# after the BAR moved: no MMIO exit for any; MSI-X through irqfds, no
# ioctl) or "exits" (VMM_NO_EVENTFD=1: every doorbell an MMIO exit, every
# message KVM_SIGNAL_MSI). Both have each burst of 32 requests in flight.
mq_check() {
	local f=$1 mode=$2 nq=$3 t n
	grep -q 'mq ok$' "$f" || fail "the mq guest ($mode) did not finish: $(grep -m1 -E 'FAIL|vmm:' "$f")"
	grep -q "mq: num_queues $nq, notify multiplier 4\$" "$f" || fail "the mq guest ($mode) did not find $nq queues"
	t=$(grep -o 'vmm: timings {.*' "$f") || fail "vmm run --timings printed no timings ($mode)"
	echo "mq $mode: $t"
	[[ $t == *"\"queues\":$nq,"* ]] || fail "the disk has not $nq queues ($mode)"
	# the guest makes each burst of 32 visible at once: vmm submits all 32 before it reaps any
	n=$(sed 's/.*"max_inflight":\([0-9]*\).*/\1/' <<<"$t")
	[ "$n" -eq 32 ] || fail "$n requests in flight on a queue at most, not 32 ($mode)"
	case $mode in
	eventfd) [[ $t == *'"eventfd":true'* && $t == *'"exit_notifies":0,'* ]] ||
		fail "with eventfds the doorbells still came as MMIO exits"
		[[ $t != *'"irqfd_irqs":0,'* && $t == *'"ioctl_irqs":0}'* ]] ||
			fail "with eventfds the MSI-X messages did not all go through irqfds" ;;
	exits) [[ $t == *'"eventfd":false'* && $t != *'"exit_notifies":0,'* ]] ||
		fail "with VMM_NO_EVENTFD=1 the doorbells did not come as MMIO exits"
		[[ $t == *'"irqfd_irqs":0,'* && $t != *'"ioctl_irqs":0}'* ]] ||
			fail "with VMM_NO_EVENTFD=1 the MSI-X messages did not go by ioctl" ;;
	esac
}

# mq_check_data IMAGE NQ: the bytes the mq guest wrote, read back from IMAGE
# (its disk, through a vmfs mount): request i of queue q at 4 KiB (q 32 + i).
mq_check_data() {
	python3 - "$1" "$2" <<'PY' || fail "the mq guest's writes are not in its disk image"
import sys
img, nq = sys.argv[1], int(sys.argv[2])
with open(img, 'rb') as f:
    for q in range(nq):
        for i in range(32):
            f.seek(4096 * (q * 32 + i))
            got = f.read(4096)
            want = bytes((q * 61 + i * 7 + j * 13 + 1) & 0xff for j in range(4096))
            if got != want:
                sys.exit(f"queue {q} request {i} differs")
PY
}
