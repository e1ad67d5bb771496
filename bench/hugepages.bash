# Sourced by bench/io and bench/snap: 2 MiB huge pages for every I/O buffer,
# fio's (--mem=shmhuge) and vmfs-bench's (VMFS_BENCH_HUGETLB), so that a
# 1 MiB transfer is one request on either side and neither pays for 256 page
# pins the other does not. huge_setup N asks for N more huge pages (one
# process at a time holds QD x BS of buffers) and sets FIO_MEM and MEM_HOW;
# huge_restore gives them back (call it from the script's EXIT trap).
HUGE=/proc/sys/vm/nr_hugepages
HUGE_OLD=
FIO_MEM=malloc
MEM_HOW="4 KiB pages for the I/O buffers: the kernel had no huge pages to give (memory too fragmented, or huge pages held: ipcs -m), so a 1 MiB transfer may be split in two requests on either side"
huge_free() { awk '/HugePages_Free/ {print $2}' /proc/meminfo; }
huge_setup() {
	local n=$1
	[ -w "$HUGE" ] || return 0
	HUGE_OLD=$(cat "$HUGE")
	echo $((HUGE_OLD + n)) >"$HUGE"
	# a fragmented memory may not have n free 2 MiB runs: compact it and ask again
	if [ "$(huge_free)" -lt "$n" ] && [ -w /proc/sys/vm/compact_memory ]; then
		echo 1 >/proc/sys/vm/compact_memory
		echo $((HUGE_OLD + n)) >"$HUGE"
	fi
	if [ "$(huge_free)" -ge "$n" ]; then
		FIO_MEM=shmhuge; export VMFS_BENCH_HUGETLB=1
		MEM_HOW="huge pages (2 MiB) for every I/O buffer"
	fi
}
huge_restore() {
	if [ -n "$HUGE_OLD" ]; then echo "$HUGE_OLD" >"$HUGE"; fi
	return 0
}
