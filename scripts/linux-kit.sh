#!/bin/bash
# Makes the Linux test kit in DIR (default build/kit) from Debian packages,
# extracted with dpkg-deb -x, never installed: the kernel linux-image-amd64
# depends on (its version is read from what was downloaded, not hard-coded)
# and busybox-static. Idempotent: a finished kit has DIR/ready, and then
# nothing is fetched again. On success DIR holds
#     vmlinuz    the kernel (bzImage)
#     busybox    the static busybox
#     modules/   lib/modules/KVER of that kernel (modules.dep inside)
#     kver       the kernel version, one line
# Any failure is one line on stderr starting "linux-kit:" and exit 1.
set -euo pipefail
DIR=${1:-build/kit}
die() { echo "linux-kit: $*" >&2; exit 1; }

[ -f "$DIR/ready" ] && exit 0
for c in apt-get dpkg-deb; do
	command -v "$c" >/dev/null || die "$c not found (a Debian host is needed to make the kit)"
done
mkdir -p "$DIR/debs" 2>/dev/null || die "cannot make $DIR/debs"
DIR=$(cd "$DIR" && pwd)
rm -rf "$DIR/root" "$DIR/modules" "$DIR/vmlinuz" "$DIR/busybox" "$DIR/kver"

# apt-get download writes into the current directory; as root it warns that
# _apt cannot write there, which is harmless: keep only real errors.
fetch() { # PACKAGE...
	(cd "$DIR/debs" && apt-get download "$@" >/dev/null 2>"$DIR/apt.err") ||
		die "apt-get download $* failed: $(grep -v '^W:' "$DIR/apt.err" | head -n1)"
}
ls "$DIR"/debs/linux-image-amd64_*.deb >/dev/null 2>&1 || fetch linux-image-amd64
ls "$DIR"/debs/busybox-static_*.deb >/dev/null 2>&1 || fetch busybox-static
meta=$(ls "$DIR"/debs/linux-image-amd64_*.deb | tail -n1)
# Depends: linux-image-6.1.0-NN-amd64 (= VERSION): the real kernel package
kpkg=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*-amd64\).*/\1/p' | head -n1)
[ -n "$kpkg" ] || die "$meta: no linux-image-*-amd64 in its Depends"
ls "$DIR"/debs/"${kpkg}"_*.deb >/dev/null 2>&1 || fetch "$kpkg"

mkdir -p "$DIR/root"
for d in "$DIR/debs/${kpkg}"_*.deb "$DIR"/debs/busybox-static_*.deb; do
	dpkg-deb -x "$d" "$DIR/root" || die "dpkg-deb -x $d failed"
done
kver=${kpkg#linux-image-}
[ -f "$DIR/root/boot/vmlinuz-$kver" ] || die "$kpkg has no boot/vmlinuz-$kver"
[ -x "$DIR/root/bin/busybox" ] || die "busybox-static has no bin/busybox"
# The package ships no modules.dep (its postinst runs depmod): make it with
# the kit's own busybox, so the host needs no kmod.
"$DIR/root/bin/busybox" depmod -b "$DIR/root" "$kver" || die "depmod $kver failed"
[ -s "$DIR/root/lib/modules/$kver/modules.dep" ] || die "depmod made no modules.dep for $kver"
ln -s "root/boot/vmlinuz-$kver" "$DIR/vmlinuz"
ln -s "root/lib/modules/$kver" "$DIR/modules"
ln -s root/bin/busybox "$DIR/busybox"
echo "$kver" >"$DIR/kver"
rm -f "$DIR/apt.err"
touch "$DIR/ready"
echo "linux-kit: $DIR: kernel $kver, $(dpkg-deb -f "$DIR"/debs/busybox-static_*.deb Version | sed 's/^/busybox-static /')"
