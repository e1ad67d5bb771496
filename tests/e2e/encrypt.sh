#!/bin/bash
# Encryption at rest (issue 17): keyslots and file contents.
#  - mkfs.vmfs --encrypt with a key file; vmfsctl key list/add/remove (a
#    passphrase slot, a key-program slot), the last slot refused; a wrong key
#    or passphrase exits 3 with one line and changes nothing (vmfs-mount and
#    vmfsctl); a mount without a key is refused; fsck needs no key.
#  - contents and names: marker strings written as inline, small-file and
#    large-file contents, as a symlink target, and as file and directory names
#    (an inline directory and one of 400 entries, a tree) and a snapshot's
#    name never appear on the raw device, neither
#    after an unmount nor after a power cut (SIGKILL of the daemon after an
#    fsync: the journal committed, not replayed); they read back through
#    every keyslot, after the crash too.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
D=$T/ds.img
M=$T/m
mkdir -p "$M"
head -c 64 /dev/urandom >"$T/key"
head -c 64 /dev/urandom >"$T/other-key"
printf 'correct horse battery staple\n' >"$T/pass"
printf 'wrong passphrase\n' >"$T/wrong"
CHEAP=argon2id:t=1,m=8M,p=1

log "mkfs --encrypt: the key file opens slot 0; without a source and a terminal it is refused"
vmfs_mkfs "$D" 512M --encrypt --key-file "$T/key"
"$VMFS_BIN/vmfsctl" info "$D" | grep -q "encryption: *AES-256-XTS, datastore key epoch 1, 1 keyslot in use" ||
	fail "info does not show the encryption"
expect_one_line_failure setsid -w "$VMFS_BIN/mkfs.vmfs" --size 256M --encrypt "$T/noterm.img" </dev/null
grep -q "no terminal" "$T/stderr" || fail "mkfs --encrypt without a key and a terminal does not say why"
[ ! -e "$T/noterm.img" ] || fail "the refused mkfs left a file"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" --size 256M --key-file "$T/key" "$T/nokey.img"
printf 'short' >"$T/short"
expect_one_line_failure "$VMFS_BIN/mkfs.vmfs" --size 256M --encrypt --key-file "$T/short" "$T/short.img"
grep -q "at least 32" "$T/stderr" || fail "a short key file is not refused as such"

log "keyslots: add a passphrase and a key program, list, refuse a wrong key (exit 3, nothing written)"
"$VMFS_BIN/vmfsctl" key add "$D" --key-file "$T/key" --new-passphrase-file "$T/pass" --kdf "$CHEAP" \
	--label "admin passphrase" | grep -q "keyslot 1 added" || fail "key add (passphrase)"
"$VMFS_BIN/vmfsctl" key add "$D" --passphrase-file "$T/pass" --new-keycmd "cat $T/other-key" --slot 5 |
	grep -q "keyslot 5 added" || fail "key add (key program)"
"$VMFS_BIN/vmfsctl" key list --json "$D" >"$T/list.json"
[ "$(jq -r 'map(.slot) | join(",")' "$T/list.json")" = "0,1,5" ] || fail "key list: $(cat "$T/list.json")"
[ "$(jq -r '.[1].kdf + " " + .[1].label' "$T/list.json")" = "argon2id admin passphrase" ] || fail "slot 1 listed wrong"
[ "$(jq -r '.[0].kdf' "$T/list.json")" = hkdf-sha256 ] || fail "slot 0 is not hkdf-sha256"
sum=$(sha256sum <"$D")
expect_one_line_failure "$VMFS_BIN/vmfsctl" key add "$D" --passphrase-file "$T/wrong" --new-passphrase-file "$T/pass"
[ "$LAST_RC" -eq 3 ] || fail "vmfsctl with a wrong passphrase: exit $LAST_RC, want 3"
expect_one_line_failure "$VMFS_BIN/vmfs-mount" -o passphrase-file="$T/wrong" "$D" "$M"
[ "$LAST_RC" -eq 3 ] || fail "vmfs-mount with a wrong passphrase: exit $LAST_RC, want 3"
grep -q "no keyslot opens" "$T/stderr" || fail "the wrong key is not named as such"
expect_one_line_failure "$VMFS_BIN/vmfs-mount" "$D" "$M" </dev/null
[ "$LAST_RC" -eq 32 ] || fail "vmfs-mount without a key: exit $LAST_RC, want 32"
grep -q "is encrypted" "$T/stderr" || fail "a mount without a key does not say the datastore is encrypted"
[ "$(sha256sum <"$D")" = "$sum" ] || fail "a refused key changed the datastore"
not mounted "$M" || fail "mounted with a wrong key"

log "contents: inline, small, large and a symlink target"
vmfs_mount "$D" "$M" -o key-file="$T/key"
python3 - "$M" <<'PY'
import os, sys
m = sys.argv[1]
open(f"{m}/inline", "w").write("INLINEMARKER-" * 40)
open(f"{m}/small", "wb").write(b"".join(b"SMALLMARKER-%06d-" % i for i in range(20000)))
big = b"".join(b"LARGEMARKER-%08d-" % i for i in range(400000))
with open(f"{m}/large", "wb") as f:
    f.write(big)
    f.seek(5 << 20)  # a sparse gap, then an unaligned tail
    f.write(b"TAILMARKER-" * 1000)
os.symlink("/" + "LINKMARKER-" * 20, f"{m}/link")
os.symlink("/" + "LONGLINKMARKER-" * 200, f"{m}/longlink")  # past the inline 2 KiB: a sub-block
os.mkdir(f"{m}/DIRMARKER-folder")
open(f"{m}/DIRMARKER-folder/NAMEMARKER-in-an-inline-directory", "w").write("x")
os.mkdir(f"{m}/tree")
for i in range(400):  # a directory of node blocks
    open(f"{m}/tree/NAMEMARKER-{i:04d}-" + "n" * (i % 240), "w").write(str(i))
PY
( cd "$M" && sha256sum inline small large >"$T/sums" && readlink link longlink >"$T/links" &&
	find . | sort >"$T/names" && sha256sum tree/* >"$T/tree.sums" )
[ "$(wc -l <"$T/names")" -eq 410 ] || fail "the names written are not all listed ($(wc -l <"$T/names"))"
"$VMFS_BIN/vmfsctl" snapshot create "$M" small --name SNAPMARKER-of-the-small-file >/dev/null || fail "snapshot"
vmfs_umount "$M" "$D"

# scan IMAGE: no marker anywhere on the raw device (every data extent of the
# sparse image, holes read as zeros; chunks overlap so a marker across two is seen)
scan() {
	local marks="INLINEMARKER SMALLMARKER LARGEMARKER TAILMARKER LINKMARKER NAMEMARKER DIRMARKER SNAPMARKER"
	# shellcheck disable=SC2086
	python3 - "$1" $marks <<'PY' || fail "plaintext on the device"
import os, sys
sys.path.insert(0, os.environ["VMFS_TOP"] + "/tests/fsck")
from vmfsimg import data_extents
path, marks = sys.argv[1], [m.encode() for m in sys.argv[2:]]
fd = os.open(path, os.O_RDONLY)
found, scanned = {}, 0
for off, end in data_extents(fd):
    for pos in range(off, end, 4 << 20):
        chunk = os.pread(fd, min(4 << 20, end - pos) + 64, pos)
        scanned += min(4 << 20, end - pos)
        for m in marks:
            if m in chunk:
                found[m] = found.get(m, 0) + chunk.count(m)
print(f"   scanned {scanned >> 20} MiB of data extents: {found or 'no marker'}")
sys.exit(1 if found else 0)
PY
}
# the scanner itself finds a marker (a control: a scan that cannot fail proves nothing)
{ head -c 5000000 /dev/zero; printf 'xxTAILMARKERyy'; } >"$T/control"
(set +e; trap - ERR; scan "$T/control") >/dev/null 2>&1 && fail "the scanner misses a marker"
scan "$D"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck without a key found problems"; }

log "each keyslot reads the contents back: the passphrase, the key program"
vmfs_mount "$D" "$M" -o passphrase-file="$T/pass"
( cd "$M" && sha256sum -c --quiet "$T/sums" && [ "$(readlink link longlink)" = "$(cat "$T/links")" ] &&
	[ "$(find . | sort)" = "$(cat "$T/names")" ] && sha256sum -c --quiet "$T/tree.sums" ) ||
	fail "contents or names differ through the passphrase slot"
cmp "$M/small" "$M/.snapshots/small@SNAPMARKER-of-the-small-file" || fail "the snapshot (its name encrypted) does not read"
"$VMFS_BIN/vmfsctl" snapshot list "$D" small --passphrase-file "$T/pass" | grep -q "SNAPMARKER-of-the-small-file" ||
	fail "snapshot list does not show the snapshot's name"
# names: lookups, a rename and an unlink in an encrypted directory
mv "$M/tree/NAMEMARKER-0007-nnnnnnn" "$M/DIRMARKER-folder/NAMEMARKER-renamed"
rm "$M/tree/NAMEMARKER-0008-nnnnnnnn"
[ "$(cat "$M/DIRMARKER-folder/NAMEMARKER-renamed")" = 7 ] || fail "a renamed file does not read back"
[ ! -e "$M/tree/NAMEMARKER-0008-nnnnnnnn" ] && [ "$(ls "$M/tree" | wc -l)" -eq 398 ] || fail "unlink or listing wrong"
( cd "$M" && find . | sort >"$T/names" && sha256sum tree/* >"$T/tree.sums" )
vmfs_umount "$M" "$D"
vmfs_mount "$D" "$M" -o keycmd="cat $T/other-key"
( cd "$M" && sha256sum -c --quiet "$T/sums" ) || fail "contents differ through the key-program slot"

log "power cut: fsync'd writes, the daemon killed before the journal is checkpointed"
python3 - "$M" <<'PY'
import os, sys
m = sys.argv[1]
for name, data in (("crash-inline", b"INLINEMARKER-" * 30), ("crash-small", b"SMALLMARKER-" * 3000),
                   ("crash-large", b"LARGEMARKER-" * 200000), ("NAMEMARKER-crash", b"x")):
    fd = os.open(f"{m}/{name}", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
PY
kill -9 "$DAEMON_PID"
wait_until 10 not pid_alive "$DAEMON_PID" || fail "the daemon did not die"
fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
scan "$D"
vmfs_mount "$D" "$M" -o key-file="$T/key"
[ "$(head -c 26 "$M/crash-inline")" = "INLINEMARKER-INLINEMARKER-" ] || fail "the fsync'd inline file is lost"
[ "$(stat -c %s "$M/crash-large")" = 2400000 ] || fail "the fsync'd large file has the wrong size"
( cd "$M" && sha256sum -c --quiet "$T/sums" && sha256sum -c --quiet "$T/tree.sums" ) ||
	fail "contents changed across the crash"
vmfs_umount "$M" "$D"
scan "$D"

log "removing keyslots: the last one is refused"
"$VMFS_BIN/vmfsctl" key remove "$D" 5 --key-file "$T/key" >/dev/null
"$VMFS_BIN/vmfsctl" key remove "$D" 0 --passphrase-file "$T/pass" >/dev/null
expect_one_line_failure "$VMFS_BIN/vmfs-mount" -o key-file="$T/key" "$D" "$M"
[ "$LAST_RC" -eq 3 ] || fail "a removed slot's key still opens the datastore"
expect_one_line_failure "$VMFS_BIN/vmfsctl" key remove "$D" 1 --passphrase-file "$T/pass"
grep -q "last one" "$T/stderr" || fail "removing the last slot is not refused as such"
[ "$("$VMFS_BIN/vmfsctl" key list --json "$D" | jq -r 'map(.slot) | join(",")')" = 1 ] || fail "slots left wrong"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >/dev/null || fail "fsck after the key changes"
echo "encryption ok"
