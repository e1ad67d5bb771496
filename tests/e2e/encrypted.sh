#!/bin/bash
# The end-to-end suites of issue 17, point 8, on an encrypted datastore: the
# POSIX conformance run (posix.sh), two hosts on one datastore (cluster.sh) and
# the file shapes (shapes.sh with SHAPES_QUICK=1: its data path, not its
# scale), with E2E_ENCRYPT=1 (lib.bash: the datastore is made with --encrypt
# and every mount and tool passes its key).
# test: long (minutes: started early, so that the two lanes end together)
. "$(dirname "$0")/lib.bash"
e2e_init mkfs.vmfs vmfs-mount vmfsctl fsck.vmfs
for t in posix cluster shapes; do
	start=$EPOCHREALTIME
	rc=0
	E2E_ENCRYPT=1 SHAPES_QUICK=1 bash "$(dirname "$0")/$t.sh" >"$T/$t.log" 2>&1 || rc=$?
	if [ "$rc" -eq 77 ]; then
		echo "   $t: skipped ($(tail -n1 "$T/$t.log"))"
		continue
	fi
	[ "$rc" -eq 0 ] || { tail -n 40 "$T/$t.log"; fail "$t on an encrypted datastore: exit $rc"; }
	grep -q "on an encrypted datastore" "$T/$t.log" || fail "$t did not run encrypted"
	log "$t on an encrypted datastore: ok in $(elapsed "$start")"
done
