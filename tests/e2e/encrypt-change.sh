#!/bin/bash
# A change of the datastore key (shallow rekey, issue 17 points 5 and 7),
# online: two hosts (vmfs-mount daemons) have the encrypted datastore mounted
# and keep reading and writing while a third (vmfsctl key change) makes a new
# datastore key. Both see every file, old and new, without a remount; then a
# fresh mount (the old key no longer derivable from the header) reads every
# file back, which it can only if every file key was resealed. Before the
# change the hosts' journals hold inode images whose file keys are sealed
# under the old key; after it, none is left anywhere on the device. A slot whose
# secret is not given stops the change before it writes anything, unless
# --drop-others; a new key file replaces the old one's slot.
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
need_cmd python3
D=$T/ds.img
A=$T/a B=$T/b
head -c 64 /dev/urandom >"$T/key"
head -c 64 /dev/urandom >"$T/key2"
printf 'second slot\n' >"$T/pass"
vmfs_mkfs "$D" 1G -H 8 --encrypt --key-file "$T/key"
"$VMFS_BIN/vmfsctl" key add "$D" --key-file "$T/key" --new-passphrase-file "$T/pass" --kdf argon2id:t=1,m=8M,p=1 >/dev/null

log "two hosts mounted; files, a folder, a snapshot"
vmfs_mount "$D" "$A" -o key-file="$T/key"
vmfs_mount "$D" "$B" -o key-file="$T/key"
mkdir "$A/dir"
for i in $(seq 1 40); do echo "file $i" >"$A/dir/f$i"; done
head -c 3000000 /dev/urandom >"$A/big"
"$VMFS_BIN/vmfsctl" snapshot create "$A" /big --name before >/dev/null
( cd "$A" && sha256sum big dir/* >"$T/sums" )

# Inode images away from their home unit (the journals' copies) whose i_crypt
# (0x100: version, flags, le16 epoch) is sealed under datastore key epoch $2.
images_sealed_under() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
path, epoch = sys.argv[1], int(sys.argv[2])
n = unit = 0
with open(path, "rb") as f:
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        for o in range(0, len(chunk) - 4095, 4096):
            if chunk[o:o + 4] == b"VMIN" and struct.unpack_from("<Q", chunk, o + 8)[0] != unit + o // 4096 \
                    and chunk[o + 0x100] and struct.unpack_from("<H", chunk, o + 0x102)[0] == epoch:
                n += 1
        unit += len(chunk) // 4096
print(n)
PY
}
before=$(images_sealed_under "$D" 1)
[ "$before" -gt 0 ] || fail "no journal image of an inode found before the change: the scan sees nothing"

log "a slot whose secret is not given stops the change, and nothing is written"
sum=$(sha256sum <"$D")
expect_one_line_failure "$VMFS_BIN/vmfsctl" key change "$D" --key-file "$T/key"
grep -q "keyslot 1 does not open with the key given" "$T/stderr" || fail "the refusal does not name the slot"
[ "$("$VMFS_BIN/vmfsctl" info --json "$D" | jq .key_epoch)" = 1 ] || fail "a refused change moved the epoch"

log "the change, while B writes"
( for i in $(seq 1 200); do echo "during $i" >"$B/during-$i" || exit 1; done ) & writer=$!
"$VMFS_BIN/vmfsctl" key change "$D" --key-file "$T/key" --new-key-file "$T/key2" --drop-others >"$T/change.out"
wait "$writer" || fail "B's writes failed during the key change"
grep -q "datastore key changed: epoch 2, 1 keyslot" "$T/change.out" || fail "key change: $(cat "$T/change.out")"
after=$(images_sealed_under "$D" 1)
[ "$after" = 0 ] || fail "$after inode images sealed under the old key are still on the device (before: $before)"
log "journal images sealed under the old key: $before before the change, 0 after"
[ "$("$VMFS_BIN/vmfsctl" key list --json "$D" | jq -c 'map([.epoch, .label])')" = '[[2,"changed"]]' ] ||
	fail "the slots after the change: $("$VMFS_BIN/vmfsctl" key list --json "$D")"

log "both hosts read every file, old and new, and write, without a remount"
for m in "$A" "$B"; do
	( cd "$m" && sha256sum -c --quiet "$T/sums" ) || fail "$m: a file differs after the key change"
	[ "$(cat "$m/during-200")" = "during 200" ] || fail "$m: a file written during the change"
	cmp -s "$m/big" "$m/.snapshots/big@before" || fail "$m: the snapshot differs"
done
echo after >"$A/after-a"
echo after >"$B/after-b"
[ "$(cat "$B/after-a")" = after ] && [ "$(cat "$A/after-b")" = after ] || fail "files made after the change"
"$VMFS_BIN/vmfs-mount" -u "$B" # A still holds the image: vmfs_umount's check is for the last one
vmfs_umount "$A" "$D"

log "a fresh mount with the new key reads everything; the old key file opens nothing"
expect_one_line_failure "$VMFS_BIN/vmfs-mount" -o key-file="$T/key" "$D" "$A"
[ "$LAST_RC" -eq 3 ] || fail "the replaced key file still opens the datastore (exit $LAST_RC)"
vmfs_mount "$D" "$A" -o key-file="$T/key2"
( cd "$A" && sha256sum -c --quiet "$T/sums" && cat during-* after-* >/dev/null && cmp -s big .snapshots/big@before ) ||
	fail "a file key was not resealed: the fresh mount cannot read everything"
vmfs_umount "$A" "$D"
"$VMFS_BIN/fsck.vmfs" -fn "$D" >"$T/fsck.out" || { cat "$T/fsck.out"; fail "fsck after the key change"; }
echo "key change ok"
