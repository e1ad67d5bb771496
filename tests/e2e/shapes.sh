#!/bin/bash
# File shapes: runs the same operations on a vmfs mount and on a tmpfs, then
# compares the trees (names, types, modes, sizes, link counts, symlink targets)
# and the sha256 of every file; unmounts, remounts and compares again. Covers
# sizes around 4 KiB and 1 MiB boundaries, holes, a 10 GiB sparse file, 10k
# files in one directory, a 60-deep tree, renames, hard links, symlinks, chmod.
# SHAPES_QUICK=1 (the reruns on an encrypted datastore and over io_uring, which
# test the data path rather than the directory at scale): 2000 files in the
# directory, and the 10 GiB sparse file's ends and sampled middle only, not a
# full read.
# test: long (minutes: started early, so that the two lanes end together)
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount

MiB=$((1 << 20))
MANY=10000
[ "${SHAPES_QUICK:-0}" = 1 ] && MANY=2000
IMG=$T/datastore.img
MNT=$T/mnt
REF=$T/ref

# Runs in a subshell inside directory $1. Every byte comes from $T/pool.
populate() (
	cd "$1"
	local s i p
	for s in 0 1 3000 4095 4096 4097 $((MiB - 1)) $MiB $((MiB + 1)) $((5 * MiB + 123)); do
		head -c "$s" "$T/pool" >"size-$s"
	done

	mkdir holes
	dd if="$T/pool" of=holes/two-ends bs=4096 count=1 conv=notrunc status=none
	dd if="$T/pool" of=holes/two-ends bs=4096 count=1 skip=1 seek=768 conv=notrunc status=none
	head -c 100 "$T/pool" >holes/truncated-up
	truncate -s 7M holes/truncated-up
	dd if="$T/pool" of=holes/unaligned bs=777 count=1 skip=5 seek=2000000 \
		iflag=skip_bytes oflag=seek_bytes conv=notrunc status=none
	dd if="$T/pool" of=holes/unaligned bs=1000 count=5 seek=1048 conv=notrunc status=none
	head -c $((5 * MiB + 123)) "$T/pool" >holes/shrunk
	truncate -s 1234567 holes/shrunk
	truncate -s 3M holes/shrunk
	cp size-$((MiB + 1)) holes/overwritten
	dd if="$T/pool" of=holes/overwritten bs=3000 count=1 skip=7 seek=4097 \
		oflag=seek_bytes conv=notrunc status=none
	head -c 5000 "$T/pool" >>holes/overwritten

	dd if="$T/pool" of=big bs=4096 count=1 conv=notrunc status=none
	dd if="$T/pool" of=big bs=4096 count=1 skip=2 seek=$((10 * 262144 - 1)) conv=notrunc status=none

	mkdir many
	for ((i = 0; i < MANY; i++)); do
		echo "small file $i" >"many/f$i"
	done

	p=deep
	for ((i = 1; i <= 60; i++)); do
		p=$p/d$i
	done
	mkdir -p "$p"
	echo bottom >"$p/file"

	mkdir -p ren/a ren/b ren/dir1/sub ren/empty ren/full
	echo one >ren/a/f1
	echo two >ren/a/f2
	mv ren/a/f1 ren/a/f2
	echo three >ren/a/f3
	mv ren/a/f3 ren/b/f3
	echo old >ren/b/existing
	echo new >ren/a/over
	mv ren/a/over ren/b/existing
	echo z >ren/dir1/sub/deep
	mv ren/dir1 ren/b/dir1moved
	mv ren/b/dir1moved/sub ren/subup
	echo q >ren/full/q
	mv -T ren/full ren/empty
	mkdir ren/c
	mv ren/a ren/c/a-again

	mkdir links
	echo data >links/orig
	ln links/orig links/hard1
	ln links/orig ren/hard2
	rm links/orig
	echo more >>links/hard1
	ln -s orig-target links/sym-dangling
	ln -s ../size-4096 links/sym-rel
	ln -s /etc/hostname links/sym-abs
	ln -s "$(printf 'x%.0s' {1..1000})" links/sym-long
	cat links/sym-rel >links/through-symlink
	mv links/sym-rel links/sym-renamed

	chmod 0600 size-0
	chmod 0755 size-1
	chmod 4755 size-3000
	chmod 2750 ren/b
	chmod 1777 holes
	chmod 0000 size-4095
	touch -d '2001-02-03 04:05:06.123456789' size-4096
)

listing() {
	(cd "$1" && find . -mindepth 1 -printf '%P %y %m %s %n %l\n' |
		awk '$2 == "d" { $4 = "-"; $5 = "-" } 1' | LC_ALL=C sort)
}

sums() {
	(cd "$1" && find . -type f ! -name big -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# Compares the vmfs tree $1 with the reference tree $2.
compare() {
	local a=$1 b=$2 big=$1/big n
	listing "$a" >"$T/list.vmfs"
	listing "$b" >"$T/list.ref"
	diff "$T/list.ref" "$T/list.vmfs" >"$T/diff" || { head -n 40 "$T/diff"; fail "tree listings differ"; }
	sums "$a" >"$T/sums.vmfs"
	sums "$b" >"$T/sums.ref"
	diff "$T/sums.ref" "$T/sums.vmfs" >"$T/diff" || { head -n 40 "$T/diff"; fail "file contents differ"; }
	n=$(wc -l <"$T/sums.vmfs")
	[ "$n" -gt "$MANY" ] || fail "only $n files compared"

	[ "$(stat -c %s "$big")" -eq $((10 << 30)) ] || fail "big: wrong size"
	cmp -n 4096 "$big" "$b/big" || fail "big: first block differs"
	cmp -i $(((10 << 30) - 4096)) -n 4096 "$big" "$b/big" || fail "big: last block differs"
	for n in 4096 12345 $((5 << 30)) $(((10 << 30) - 8192)); do
		cmp -i "$n" -n 4096 "$big" /dev/zero || fail "big: not zero at $n"
	done
	[ "$(stat -c %Y.%y "$a/size-4096")" = "$(stat -c %Y.%y "$b/size-4096")" ] ||
		fail "size-4096: mtime $(stat -c %y "$a/size-4096"), want $(stat -c %y "$b/size-4096")"
}

head -c $((6 * MiB)) /dev/urandom >"$T/pool"
vmfs_mkfs "$IMG" 12G -H 64 # each open takes a file lock: 64 slots keep its Disk Paxos reads small
vmfs_mount "$IMG" "$MNT"
ref_mount "$REF"
mkdir "$MNT/t" "$REF/t"

log "populate tmpfs"
start=$EPOCHREALTIME
populate "$REF/t"
log "  $(elapsed "$start")"
log "populate vmfs"
start=$EPOCHREALTIME
populate "$MNT/t"
log "  $(elapsed "$start")"

log "compare"
compare "$MNT/t" "$REF/t"

blocks=$(stat -c %b "$MNT/t/big")
log "big: $blocks 512-byte blocks allocated"
[ "$blocks" -le 16384 ] || fail "10 GiB sparse file has $blocks blocks allocated"
df -P "$MNT" >"$T/df" || fail "df failed"
cat "$T/df"
size=$(df -B1 --output=size "$MNT" | tail -n1)
[ "$size" -gt $((11 << 30)) ] && [ "$size" -le $((12 << 30)) ] || fail "df size $size, want about 12 GiB"
log "image: $(du -k "$IMG" | cut -f1) KiB allocated for 12 GiB"

log "remount"
vmfs_umount "$MNT" "$IMG"
vmfs_mount "$IMG" "$MNT"
compare "$MNT/t" "$REF/t"

if [ "${SHAPES_QUICK:-0}" != 1 ]; then
	log "full read of the 10 GiB sparse file"
	start=$EPOCHREALTIME
	cmp "$MNT/t/big" "$REF/t/big" || fail "big differs"
	log "  $(elapsed "$start")"
fi

vmfs_umount "$MNT" "$IMG"
log "ok"
