#!/bin/sh
# Installs the Debian packages vmfs needs to build, test and benchmark.
# Idempotent: asks apt only for what is missing. Run as root (make demo/test call it).
set -eu
PKGS="build-essential pkg-config clang llvm libfuse3-dev fuse3 liburing-dev libaio-dev
libzstd-dev zlib1g-dev libsystemd-dev libssl-dev libargon2-dev libxxhash-dev libblkid-dev check fio util-linux coreutils e2fsprogs jq python3
libclang-rt-dev psmisc spin qemu-system-x86 qemu-utils cpio groff-base"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
