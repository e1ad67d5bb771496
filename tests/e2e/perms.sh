#!/bin/bash
# Permissions with -o allow_other: the kernel checks POSIX permissions
# (default_permissions), so an unprivileged user is refused a 0600 file and a
# 0700 directory but reads 0755 contents. Also: new files get the caller's
# uid/gid and the umask, and a set-group-ID directory passes on its group.
source "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount
need_cmd setpriv
[ "$(id -u)" -eq 0 ] || skip "needs root"

IMG=$T/datastore.img
MNT=$T/mnt
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
chmod 0755 "$T"
vmfs_mkfs "$IMG" 1G
mkdir -p "$MNT"
MOUNTS+=("$MNT")
"$VMFS_BIN/vmfs-mount" -o allow_other "$IMG" "$MNT" 2>"$T/err" ||
	skip "cannot mount with allow_other: $(cat "$T/err")"
PIDS+=("$(holders "$IMG")")
chmod 0755 "$MNT"

# as_nobody COMMAND...: runs it as uid/gid 65534, stderr in $T/err.
as_nobody() { "${NOBODY[@]}" "$@" 2>"$T/err"; }
# refused WHY COMMAND...: nobody must fail with strerror WHY.
refused() {
	local why=$1
	shift
	! as_nobody "$@" >/dev/null || fail "nobody could: $*"
	grep -q "$why" "$T/err" || fail "nobody: $*: $(cat "$T/err"), want $why"
}
denied() { refused "Permission denied" "$@"; }

umask 022
mkdir -m 0700 "$MNT/private"
echo secret >"$MNT/private/inside"
mkdir -m 0755 "$MNT/public"
echo hello >"$MNT/public/readme"
echo secret >"$MNT/secret"
chmod 0600 "$MNT/secret"

log "nobody is refused what POSIX refuses"
as_nobody stat "$MNT/secret" >/dev/null || fail "nobody cannot stat a 0600 file"
denied cat "$MNT/secret"
denied ls "$MNT/private"
denied cat "$MNT/private/inside"
denied touch "$MNT/public/new"
denied rm "$MNT/public/readme"
refused "Operation not permitted" chmod 0777 "$MNT/public/readme"

log "nobody reads 0755 contents"
[ "$(as_nobody ls "$MNT/public")" = readme ] || fail "nobody cannot list a 0755 directory"
[ "$(as_nobody cat "$MNT/public/readme")" = hello ] || fail "nobody cannot read a 0644 file"

log "ownership of new files"
mkdir -m 0777 "$MNT/shared"
chmod 0777 "$MNT/shared"
as_nobody sh -c "umask 027 && echo mine >'$MNT/shared/mine' && mkdir '$MNT/shared/mydir'" ||
	fail "nobody cannot create in a 0777 directory: $(cat "$T/err")"
[ "$(stat -c '%u %g %a' "$MNT/shared/mine")" = "65534 65534 640" ] ||
	fail "new file: $(stat -c '%u %g %a' "$MNT/shared/mine"), want 65534 65534 640"
[ "$(stat -c '%u %g %a' "$MNT/shared/mydir")" = "65534 65534 750" ] ||
	fail "new dir: $(stat -c '%u %g %a' "$MNT/shared/mydir"), want 65534 65534 750"
chown 65534:65534 "$MNT/secret"
[ "$(as_nobody cat "$MNT/secret")" = secret ] || fail "nobody cannot read its own 0600 file"

log "set-group-ID directory"
mkdir "$MNT/sgid"
chgrp 100 "$MNT/sgid"
chmod 2775 "$MNT/sgid"
touch "$MNT/sgid/file"
mkdir "$MNT/sgid/sub"
[ "$(stat -c %g "$MNT/sgid/file")" = 100 ] || fail "file in sgid dir: gid $(stat -c %g "$MNT/sgid/file")"
[ "$(stat -c '%g %A' "$MNT/sgid/sub")" = "100 drwxr-sr-x" ] ||
	fail "dir in sgid dir: $(stat -c '%g %A' "$MNT/sgid/sub"), want 100 drwxr-sr-x"

log "attributes survive a remount"
vmfs_umount "$MNT" "$IMG"
vmfs_mount "$IMG" "$MNT" -o allow_other
denied cat "$MNT/private/inside"
[ "$(stat -c '%u %g %a' "$MNT/shared/mine")" = "65534 65534 640" ] || fail "owner lost on remount"
[ "$(stat -c '%g %a' "$MNT/sgid/sub")" = "100 2755" ] || fail "sgid lost on remount"
vmfs_umount "$MNT" "$IMG"
log "ok"
