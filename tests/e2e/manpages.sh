#!/bin/bash
# The operator's toolkit (issue 19): man pages, --help, --version and bash
# completion, each checked against the programs themselves.
# - every page of docs/man/ formats with groff -ww (and mandoc -T lint -W
#   warning, where mandoc is installed) without a single warning, and its .TH
#   names its file;
# - each tool's page documents every option its --help prints (each --long and
#   -x token), has an EXIT STATUS section, and lists there every code the
#   "exit:" line of --help names;
# - every tool answers --help (usage on stdout, nothing on stderr, exit 0) and
#   --version (exactly "TOOL (vmfs) VMFS_VERSION" of base/version.h, exit 0),
#   while a usage error still goes to stderr with the tool's usage exit code;
# - docs/completion/vmfsctl and vmm load in bash, complete the commands (the
#   same set --help names), subcommands, control requests, option values and
#   files, and offer exactly the long options --help prints.
. "$(dirname "$0")/lib.bash"
TOP=${VMFS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
MAN=$TOP/docs/man
COMP=$TOP/docs/completion
TOOLS=(mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl vmm mount.vmfs)
declare -A PAGE=([mkfs.vmfs]=mkfs.vmfs.8 [fsck.vmfs]=fsck.vmfs.8 [vmfs-mount]=vmfs-mount.8
	[vmfsctl]=vmfsctl.8 [vmm]=vmm.1 [mount.vmfs]=mount.vmfs.8)
declare -A USAGE_RC=([mkfs.vmfs]=1 [fsck.vmfs]=16 [vmfs-mount]=1 [vmfsctl]=2 [vmm]=2 [mount.vmfs]=1)
for b in "${TOOLS[@]}"; do
	[ -x "$VMFS_BIN/$b" ] || fail "$VMFS_BIN/$b not built"
done
need_cmd groff bash
T=$(mktemp -d /var/tmp/vmfs-e2e.XXXXXX)
trap e2e_cleanup EXIT
trap 'exit 143' TERM INT HUP

VERSION=$(sed -n 's/^#define VMFS_VERSION "\(.*\)"$/\1/p' "$TOP/base/version.h")
[ -n "$VERSION" ] || fail "no VMFS_VERSION in base/version.h"

# options TEXT: the option tokens of TEXT (--long and -x, not the "-file" of
# "key-file" nor the "-2" of "-T 1000,2000"), one per line, sorted, unique
options() {
	grep -oE '(^|[^A-Za-z0-9_-])--?[A-Za-z][A-Za-z0-9_-]*' <<<"$1" | sed 's/^[^-]*//' | sort -u || true
}

# roff_text PAGE: the page's source with roff's escapes for "-" and fonts undone
roff_text() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\&//g' "$1"
}

log "lint: groff -ww$(command -v mandoc >/dev/null && echo ', mandoc -T lint')"
for name in mkfs.vmfs.8 fsck.vmfs.8 vmfs-mount.8 mount.vmfs.8 vmfsctl.8 vmm.1 vmfs.7; do
	[ -f "$MAN/$name" ] || fail "docs/man/$name is missing"
done
n=0
for page in "$MAN"/*.[1-8]; do
	name=${page##*/}
	for dev in ps utf8; do
		out=$(groff -ww -z -man -T"$dev" "$page" 2>&1) || fail "$name: groff -T$dev failed: $out"
		[ -z "$out" ] || fail "$name: groff -ww -T$dev warns:"$'\n'"$out"
	done
	if command -v mandoc >/dev/null; then
		out=$(mandoc -T lint -W warning "$page" 2>&1) || fail "$name: mandoc -T lint: $out"
		[ -z "$out" ] || fail "$name: mandoc -T lint warns:"$'\n'"$out"
	fi
	# .TH TITLE SECTION: the file's name in capitals and its suffix
	th=$(sed -n 's/^\.TH \([^ ]*\) \([0-9]\) .*/\1.\2/p' "$page" | tr '[:upper:]' '[:lower:]')
	[ "$th" = "$name" ] || fail "$name: .TH says '$th'"
	for sec in NAME DESCRIPTION "SEE ALSO"; do
		grep -qx "\.SH \"\?$sec\"\?" "$page" || fail "$name: no $sec section"
	done
	n=$((n + 1))
done
echo "   $n pages, no warnings"

log "--help and --version of each tool; its man page against its --help"
for tool in "${TOOLS[@]}"; do
	bin=$VMFS_BIN/$tool page=$MAN/${PAGE[$tool]}
	rc=0
	"$bin" --help >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq 0 ] || fail "$tool --help exited $rc"
	[ ! -s "$T/err" ] || fail "$tool --help wrote to stderr: $(head -n3 "$T/err")"
	head -n1 "$T/out" | grep -q "^usage: $tool " || fail "$tool --help: no usage line first: $(head -n1 "$T/out")"
	help=$(cat "$T/out")
	rc=0
	"$bin" --version >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq 0 ] || fail "$tool --version exited $rc"
	[ ! -s "$T/err" ] || fail "$tool --version wrote to stderr: $(head -n3 "$T/err")"
	[ "$(cat "$T/out")" = "$tool (vmfs) $VERSION" ] ||
		fail "$tool --version printed '$(cat "$T/out")', want '$tool (vmfs) $VERSION'"

	# a usage error: nothing on stdout, a reason on stderr, the tool's code
	for args in "--no-such-option" ""; do
		rc=0
		# shellcheck disable=SC2086
		"$bin" $args </dev/null >"$T/out" 2>"$T/err" || rc=$?
		[ "$rc" -eq "${USAGE_RC[$tool]}" ] || fail "$tool $args: exit $rc, want ${USAGE_RC[$tool]} (usage)"
		[ ! -s "$T/out" ] || fail "$tool $args: a usage error wrote to stdout"
		[ -s "$T/err" ] || fail "$tool $args: a usage error said nothing on stderr"
	done

	text=$(roff_text "$page")
	documented=$(options "$text")
	missing=$(comm -23 <(options "$help") <(echo "$documented"))
	[ -z "$missing" ] || fail "${PAGE[$tool]} does not document what $tool --help prints: ${missing//$'\n'/ }"
	grep -qx '\.SH "\?EXIT STATUS"\?' "$page" || fail "${PAGE[$tool]}: no EXIT STATUS section"
	# each code of the "exit:" line is a tag of EXIT STATUS
	codes=$(sed -n '/^exit:/,$p' <<<"$help" | grep -oE '\b[0-9]+\b' | sort -un || true)
	[ -n "$codes" ] || fail "$tool --help names no exit codes"
	status=$(sed -n '/^\.SH "\?EXIT STATUS"\?$/,/^\.SH/p' <<<"$text")
	for c in $codes; do
		grep -qE "^\.BR? $c( |$)" <<<"$status" || fail "${PAGE[$tool]}: EXIT STATUS lacks $c, which $tool --help names"
	done
	echo "   $tool: $(options "$help" | wc -l) options and exit codes ${codes//$'\n'/ } documented; $tool (vmfs) $VERSION"
done

# comp FILE WORD...: what FILE's completion offers for the command line
# WORD... (the last word is the one completed), sorted, from a bash of its
# own; the completion may print nothing on stderr
comp() {
	local rc=0
	bash --norc --noprofile -c '
		file=$1
		shift
		source "$file" || exit 90
		fn=$(complete -p "$1" 2>/dev/null | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
		[ -n "$fn" ] || exit 91
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort
	' comp "$COMP/$1" "${@:2}" 2>"$T/comp.err" || rc=$?
	[ "$rc" -eq 0 ] || fail "completion $1 of '${*:2}': exit $rc (90: does not load, 91: no complete -F)"
	[ ! -s "$T/comp.err" ] || fail "completion $1 of '${*:2}' wrote to stderr: $(head -n3 "$T/comp.err")"
}

# same WHAT GOT EXPECTED: the two lists (words by lines or spaces) are equal as sets
same() {
	local got want
	got=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | sort -u)
	want=$(tr ' ' '\n' <<<"$3" | sed '/^$/d' | sort -u)
	[ "$got" = "$want" ] || fail "$1: '${got//$'\n'/ }', want '${want//$'\n'/ }'"
}

# completes EXPECTED FILE WORD...: comp FILE WORD... offers exactly EXPECTED
completes() {
	local want=$1 got
	shift
	got=$(comp "$@") || exit 1
	same "$1 completion of '${*:2}'" "$got" "$want"
}

# long_options FILE LINE...: the --long options FILE's completion offers after
# each LINE (a command and subcommand, split at spaces), all together
long_options() {
	local file=$1 line out all=""
	shift
	for line in "$@"; do
		# shellcheck disable=SC2086
		out=$(comp "$file" $file $line --) || exit 1
		all+=" $out"
	done
	tr ' ' '\n' <<<"$all" | grep '^--' || true
}

log "TOOL COMMAND --help: the help, exit 0"
for cmd in "vmfsctl snapshot create" "vmfsctl import" "vmm run" "vmm ctl /run/x.sock"; do
	rc=0
	# shellcheck disable=SC2086
	"$VMFS_BIN/"$cmd --help >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq 0 ] && [ ! -s "$T/err" ] && head -n1 "$T/out" | grep -q "^usage: " ||
		fail "$cmd --help: exit $rc, $(head -n1 "$T/out") $(head -n1 "$T/err")"
done

log "bash completion: vmfsctl"
for f in vmfsctl vmm; do
	[ -f "$COMP/$f" ] || fail "docs/completion/$f is missing"
done
help=$("$VMFS_BIN/vmfsctl" --help)
completes "$(sed -nE 's/^(usage:)? +vmfsctl ([a-z]+).*/\2/p' <<<"$help")" vmfsctl vmfsctl ""
completes "$(sed -nE 's/^ +vmfsctl snapshot ([a-z]+).*/\1/p' <<<"$help")" vmfsctl vmfsctl snapshot ""
completes "$(sed -nE 's/^ +vmfsctl key ([a-z]+).*/\1/p' <<<"$help")" vmfsctl vmfsctl key ""
completes "--json --all --key-file --passphrase-file --keycmd" vmfsctl vmfsctl hosts --
completes "argon2id hkdf-sha256" vmfsctl vmfsctl key add dev --kdf ""
: >"$T/ds0.img"
: >"$T/key0"
completes "$T/ds0.img" vmfsctl vmfsctl info "$T/ds"
completes "" vmfsctl vmfsctl snapshot create "$T/ds0.img" "$T/ds"	# a PATH in the datastore
completes "$T/key0" vmfsctl vmfsctl rekey --deep --key-file = "$T/ke"
completes "raw qcow2 zst" vmfsctl vmfsctl import --format ""
completes "$T/key0" vmfsctl vmfsctl import "$T/ds0.img" "$T/ke"	# SOURCE: a file of this machine
completes "" vmfsctl vmfsctl import "$T/ds0.img" "$T/key0" /v	# PATH: in the datastore
completes "$T/key0" vmfsctl vmfsctl export "$T/ds0.img" /vms/a "$T/ke"	# DEST: a file of this machine
offered=$(long_options vmfsctl "" info hosts locks clone rekey import export "snapshot create" "snapshot list" \
	"snapshot revert" "snapshot delete" "snapshot diff" "key list" "key add" "key remove" "key change") || exit 1
same "vmfsctl: the long options completed against those of vmfsctl --help" "$offered" \
	"$(options "$help" | grep '^--')"
echo "   commands, subcommands, values, files; $(sort -u <<<"$offered" | wc -l) long options, as --help"

log "bash completion: vmm"
help=$("$VMFS_BIN/vmm" --help)
completes "$(sed -nE 's/^(usage:)? +vmm ([a-z]+).*/\2/p' <<<"$help")" vmm vmm ""
completes "$(tr '\n' ' ' <<<"$help" | sed -E 's/.*vmm ctl SOCKET \(([^)]*)\).*/\1/' | tr '|' '\n' | awk '{print $1}')" \
	vmm vmm ctl /run/x.sock ""
completes "restart off" vmm vmm create dev /vms/a --ha ""
completes "--ctl --timings --key-file --passphrase-file --keycmd" vmm vmm run dev /vms/a --
: >"$T/bzImage"
completes "$T/bzImage" vmm vmm create dev /vms/a --kernel "$T/bz"
completes "$T/ds0.img" vmm vmm list "$T/ds"
completes "" vmm vmm run "$T/ds0.img" /v	# a /PATH/NAME in the datastore
offered=$(long_options vmm "" create list run agent) || exit 1
same "vmm: the long options completed against those of vmm --help" "$offered" "$(options "$help" | grep '^--')"
echo "   commands, control requests, values, files; $(sort -u <<<"$offered" | wc -l) long options, as --help"
log "ok"
