#!/bin/bash
# make install and make uninstall (issue 19, point 1): everything lands under
# DESTDIR with PREFIX=/usr where Debian puts a filesystem's files; a program
# built with nothing but `pkg-config --cflags --libs vmfs` against the
# installed library links libvmfs.so.MAJOR and runs (it formats, writes and
# reads back a datastore); mkfs(8) and fsck(8) find mkfs.vmfs and fsck.vmfs
# by type (in a private mount namespace whose /usr/sbin also shows the
# installed ones); make uninstall leaves no file behind.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs
need_cmd pkg-config make cc readelf unshare
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(basename "$(dirname "$VMFS_BIN")")
# a sanitized libvmfs.so would need its runtime preloaded into the program
[ "$BUILD" = build ] || skip "installs the plain build only (this run uses $BUILD)"
R=$T/root
VERSION=$(sed -n 's/^#define VMFS_VERSION "\(.*\)"/\1/p' "$TOP/base/version.h")
MAJOR=${VERSION%%.*}

log "make install DESTDIR=$R PREFIX=/usr"
flock /tmp/vmfs-install-build.lock make -C "$TOP" --no-print-directory install DESTDIR="$R" PREFIX=/usr >"$T/install.log" 2>&1 ||
	{ tail -n 30 "$T/install.log"; fail "make install"; }
(cd "$R" && find . -type f -o -type l | sort) >"$T/files"
cat "$T/files"
for f in usr/sbin/mkfs.vmfs usr/sbin/fsck.vmfs usr/sbin/mount.vmfs usr/sbin/vmfs-mount usr/sbin/vmfsctl usr/bin/vmm \
	usr/lib/libvmfs.a "usr/lib/libvmfs.so.$VERSION" "usr/lib/libvmfs.so.$MAJOR" usr/lib/libvmfs.so \
	usr/lib/pkgconfig/vmfs.pc usr/include/vmfs/vmfs/vmfs.h usr/include/vmfs/encrypt/encrypt.h; do
	grep -qx "./$f" "$T/files" || fail "make install did not install /$f"
done
readelf -d "$R/usr/lib/libvmfs.so.$VERSION" | grep -q "SONAME.*\[libvmfs.so.$MAJOR\]" || fail "libvmfs.so's soname is not libvmfs.so.$MAJOR"
# only the public API is exported
nm -D --defined-only "$R/usr/lib/libvmfs.so.$VERSION" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' >"$T/exports"
grep -qx vmfs_open "$T/exports" || fail "libvmfs.so does not export vmfs_open"
! grep -qvE '^(vmfs_|enc_)' "$T/exports" || fail "libvmfs.so exports more than vmfs_* and enc_*: $(grep -vE '^(vmfs_|enc_)' "$T/exports" | head -n 5 | tr '\n' ' ')"

log "a program built with pkg-config --cflags --libs vmfs"
cat >"$T/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <vmfs/vmfs.h>

int main(int argc, char **argv)
{
	struct vmfs_mkfs_opts mo = { .size = 256ull << 20, .force = true, .host_slots = 4 };
	struct vmfs_open_opts oo = { .standalone = true };
	struct vmfs_stat st;
	struct vmfs *fs;
	char err[256], back[32] = "";
	const char msg[] = "hello from an installed libvmfs";

	if (argc != 2 || vmfs_mkfs(argv[1], &mo, err, sizeof(err)) || vmfs_open(argv[1], &oo, &fs, err, sizeof(err))) {
		fprintf(stderr, "prog: %s\n", argc == 2 ? err : "usage: prog IMAGE");
		return 1;
	}
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "hello", S_IFREG | 0644, 0, 0, &st) ||
	    vmfs_pwrite(fs, st.ino, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg) ||
	    vmfs_pread(fs, st.ino, back, sizeof(msg), 0) != (ssize_t)sizeof(msg) || memcmp(back, msg, sizeof(msg)) ||
	    vmfs_close(fs)) {
		fprintf(stderr, "prog: the round trip failed\n");
		return 1;
	}
	printf("%s\n", back);
	return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$R/usr/lib/pkgconfig
flags=$(pkg-config --cflags --libs vmfs) || fail "pkg-config does not know vmfs"
[ "$(pkg-config --modversion vmfs)" = "$VERSION" ] || fail "vmfs.pc's version is not $VERSION"
echo "pkg-config --cflags --libs vmfs: $flags"
# shellcheck disable=SC2086 # the flags are words
cc -Wall -Werror "$T/prog.c" -o "$T/prog" $flags || fail "the program does not build against the installed library"
readelf -d "$T/prog" | grep -q "NEEDED.*\[libvmfs.so.$MAJOR\]" || fail "the program does not link libvmfs.so.$MAJOR"
out=$(LD_LIBRARY_PATH=$R/usr/lib "$T/prog" "$T/prog.img") || fail "the program failed: $out"
[ "$out" = "hello from an installed libvmfs" ] || fail "the program printed: $out"
echo "the program: $out"

log "mkfs -t vmfs and fsck -t vmfs find the installed tools"
truncate -s 256M "$T/bytype.img"
unshare -m sh -c '
	mount -t overlay overlay -o "lowerdir=$1/usr/sbin:/usr/sbin" /usr/sbin &&
	mkfs -t vmfs -H 4 "$2" >"$3/mkfs.out" 2>&1 && fsck -t vmfs -n "$2" >"$3/fsck.out" 2>&1' sh "$R" "$T/bytype.img" "$T" ||
	{ cat "$T/mkfs.out" "$T/fsck.out" 2>/dev/null; fail "mkfs -t vmfs or fsck -t vmfs failed"; }
grep -q "0 problems, 0 fixed, 0 left$" "$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck -t vmfs did not find the new datastore clean"; }
tail -n 2 "$T/mkfs.out" "$T/fsck.out"

log "make uninstall"
make -C "$TOP" --no-print-directory uninstall DESTDIR="$R" PREFIX=/usr >"$T/uninstall.log" 2>&1 ||
	{ cat "$T/uninstall.log"; fail "make uninstall"; }
left=$(cd "$R" && find . -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install: ok"
