/*
 * snap-bench: the snapshot rows of make bench (bench/snap, docs/BENCHMARKS.md),
 * measured through libvmfs on a datastore the script made:
 *
 *   snap-bench DEVICE create SIZE N      a file whose map is full (every block
 *       allocated by fallocate: the map a fully written file has, without
 *       writing SIZE of data), then N snapshots and N clones of it, each timed
 *   snap-bench DEVICE readlat SIZE SECONDS DEPTH...   a file of SIZE written
 *       with data; 4 KiB random reads at QD1 (O_DIRECT, as every libvmfs read)
 *       for SECONDS at each snapshot depth, 4 KiB written between snapshots so
 *       the maps differ; the live file and the oldest snapshot both read
 *   snap-bench DEVICE delete SIZE UNIQUE a full-map file of SIZE, a snapshot,
 *       UNIQUE bytes written (1 MiB at a time) so the snapshot holds them
 *       alone, then the snapshot deleted: time, and the bytes this process
 *       wrote to the device meanwhile (/proc/self/io)
 *   snap-bench DEVICE snap PATH NAME     one snapshot of PATH (for the first-
 *       write rows, which vmfs-bench then measures)
 *   snap-bench DEVICE clonechain SIZE SECONDS DEPTH   a file of SIZE written,
 *       then a clone of it, a clone of that clone, ... DEPTH deep, 4 KiB
 *       written into each clone so no two maps are alike; 4 KiB random reads at
 *       QD1 of the deepest clone, between reads of the original
 *
 * Each prints one JSON line per result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double now_ms(void)
{
	return (double)base_mono_ns() / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_times(const char *what, uint64_t size, double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("{\"row\":\"%s\",\"size\":%llu,\"n\":%u,\"min_ms\":%.3f,\"median_ms\":%.3f,\"max_ms\":%.3f}\n", what,
	       (unsigned long long)size, n, v[0], v[n / 2], v[n - 1]);
	fflush(stdout);
}

static int new_file(struct vmfs *fs, const char *name, uint64_t *ino)
{
	struct vmfs_stat st;
	int ret;

	vmfs_unlink(fs, vmfs_root_ino(fs), name);
	ret = vmfs_mknod(fs, vmfs_root_ino(fs), name, S_IFREG | 0644, 0, 0, &st);
	*ino = st.ino;
	return ret;
}

static int full_map(struct vmfs *fs, const char *name, uint64_t size, uint64_t *ino)
{
	struct vmfs_stat st;
	int ret = new_file(fs, name, ino);

	if (!ret)
		ret = vmfs_fallocate(fs, *ino, 0, 0, size);
	if (!ret)
		ret = vmfs_getattr(fs, *ino, &st);
	if (!ret && st.blocks * 512 < size) {
		tool_err("%s: %llu bytes allocated of %llu", name, (unsigned long long)st.blocks * 512,
			 (unsigned long long)size);
		ret = -EIO;
	}
	return ret ? ret : vmfs_sync(fs);
}

static int write_all(struct vmfs *fs, uint64_t ino, uint64_t off, uint64_t len, uint8_t *buf)
{
	for (uint64_t done = 0; done < len; done += 1 << 20) {
		ssize_t n = vmfs_pwrite(fs, ino, buf, 1 << 20, off + done);
		if (n != 1 << 20)
			return n < 0 ? (int)n : -EIO;
	}
	return vmfs_fsync(fs, ino, false);
}

static int do_create(struct vmfs *fs, uint64_t size, unsigned n)
{
	double *ts = calloc(n, sizeof(*ts)), *tc = calloc(n, sizeof(*tc));
	uint64_t ino;
	int ret = ts && tc ? full_map(fs, "bench-create", size, &ino) : -ENOMEM;

	for (unsigned i = 0; i < n && !ret; i++) {
		char name[32];
		struct vmfs_stat st;
		double t0;

		snprintf(name, sizeof(name), "s%u", i);
		t0 = now_ms();
		ret = vmfs_snap_create(fs, &ino, 1, name, NULL);
		if (!ret) /* made and durable: committed and flushed, as vmfsctl's is */
			ret = vmfs_sync(fs);
		ts[i] = now_ms() - t0;
		snprintf(name, sizeof(name), "bench-clone-%u", i);
		vmfs_unlink(fs, vmfs_root_ino(fs), name);
		t0 = now_ms();
		if (!ret)
			ret = vmfs_clone(fs, ino, vmfs_root_ino(fs), name, 0644, 0, 0, &st);
		if (!ret)
			ret = vmfs_sync(fs);
		tc[i] = now_ms() - t0;
		if (!ret)
			vmfs_forget(fs, st.ino, 1);
	}
	if (!ret) {
		print_times("snapshot_create", size, ts, n);
		print_times("clone_create", size, tc, n);
	}
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-clone-%u", i);
		vmfs_unlink(fs, vmfs_root_ino(fs), name);
	}
	vmfs_unlink(fs, vmfs_root_ino(fs), "bench-create");
	free(ts);
	free(tc);
	return ret;
}

/* 4 KiB random reads of ino at QD1 for secs: median and mean latency in us. */
static int read_lat(struct vmfs *fs, uint64_t ino, uint64_t size, double secs, uint8_t *buf, double *p50, double *mean)
{
	size_t cap = 1 << 20, n = 0;
	double *v = malloc(cap * sizeof(*v)), t_end = now_ms() + secs * 1000, sum = 0;

	if (!v)
		return -ENOMEM;
	while (now_ms() < t_end && n < cap) {
		uint64_t off = next_rand() % (size / 4096) * 4096;
		double t0 = now_ms();
		ssize_t r = vmfs_pread(fs, ino, buf, 4096, off);

		if (r != 4096) {
			free(v);
			return r < 0 ? (int)r : -EIO;
		}
		v[n] = (now_ms() - t0) * 1000;
		sum += v[n++];
	}
	qsort(v, n, sizeof(*v), cmp_double);
	*p50 = v[n / 2];
	*mean = sum / (double)n;
	free(v);
	return 0;
}

/*
 * The disk's latency drifts over a run: each depth's reads are sandwiched
 * between reads of a control file (same size, written at the same time, never
 * snapshotted), and reported as a ratio to the mean of the two.
 */
static int do_readlat(struct vmfs *fs, uint64_t size, double secs, char **depths, int nd)
{
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	uint64_t ino, ctl, first = 0;
	unsigned have = 0;
	int ret = buf ? new_file(fs, "bench-read", &ino) : -ENOMEM;

	for (size_t i = 0; buf && i < 1 << 20; i++)
		buf[i] = (uint8_t)next_rand();
	if (!ret)
		ret = new_file(fs, "bench-control", &ctl);
	for (uint64_t off = 0; !ret && off < size; off += 64 << 20) { /* the two files side by side on the disk */
		ret = write_all(fs, ino, off, base_min(64ull << 20, size - off), buf);
		if (!ret)
			ret = write_all(fs, ctl, off, base_min(64ull << 20, size - off), buf);
	}
	for (int d = 0; d < nd && !ret; d++) {
		uint64_t want = strtoull(depths[d], NULL, 10);
		double p50, mean, sp50 = 0, smean = 0;


		while (have < want && !ret) {
			char name[32];
			uint64_t s;

			snprintf(name, sizeof(name), "d%u", have);
			ret = vmfs_snap_create(fs, &ino, 1, name, &s);
			if (!have)
				first = s;
			have++;
			if (!ret && vmfs_pwrite(fs, ino, buf, 4096, next_rand() % (size / 4096) * 4096) != 4096)
				ret = -EIO;
		}
		double c1, c1m, c2, c2m;
		if (!ret)
			ret = read_lat(fs, ctl, size, secs, buf, &c1, &c1m);
		if (!ret)
			ret = read_lat(fs, ino, size, secs, buf, &p50, &mean);
		if (!ret && first)
			ret = read_lat(fs, first, size, secs, buf, &sp50, &smean);
		if (!ret)
			ret = read_lat(fs, ctl, size, secs, buf, &c2, &c2m);
		if (!ret)
			printf("{\"row\":\"read_4k_qd1\",\"depth\":%llu,\"live_p50_us\":%.1f,\"live_mean_us\":%.1f,"
			       "\"oldest_snapshot_p50_us\":%.1f,\"control_p50_us\":%.1f,\"live_ratio\":%.3f,"
			       "\"oldest_snapshot_ratio\":%.3f}\n",
			       (unsigned long long)want, p50, mean, sp50, (c1 + c2) / 2, p50 / ((c1 + c2) / 2),
			       first ? sp50 / ((c1 + c2) / 2) : 0.0);
		fflush(stdout);
	}
	vmfs_unlink(fs, vmfs_root_ino(fs), "bench-read");
	vmfs_unlink(fs, vmfs_root_ino(fs), "bench-control");
	free(buf);
	return ret;
}

/* A clone of a clone ... depth deep reads like the file it started from (issue 16, point 2). */
static int do_clonechain(struct vmfs *fs, uint64_t size, double secs, unsigned depth)
{
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	uint64_t ino, prev;
	double o1, o1m, o2, o2m, p50, mean;
	int ret = buf ? new_file(fs, "bench-chain0", &ino) : -ENOMEM;

	for (size_t i = 0; buf && i < 1 << 20; i++)
		buf[i] = (uint8_t)next_rand();
	for (uint64_t off = 0; !ret && off < size; off += 64 << 20)
		ret = write_all(fs, ino, off, base_min(64ull << 20, size - off), buf);
	prev = ino;
	for (unsigned d = 1; d <= depth && !ret; d++) {
		char name[32];
		struct vmfs_stat st;

		snprintf(name, sizeof(name), "bench-chain%u", d);
		ret = vmfs_clone(fs, prev, vmfs_root_ino(fs), name, S_IFREG | 0644, 0, 0, &st);
		if (!ret && vmfs_pwrite(fs, st.ino, buf, 4096, next_rand() % (size / 4096) * 4096) != 4096)
			ret = -EIO;
		prev = st.ino;
	}
	if (!ret)
		ret = read_lat(fs, ino, size, secs, buf, &o1, &o1m);
	if (!ret)
		ret = read_lat(fs, prev, size, secs, buf, &p50, &mean);
	if (!ret)
		ret = read_lat(fs, ino, size, secs, buf, &o2, &o2m);
	if (!ret)
		printf("{\"row\":\"clone_chain_read_4k_qd1\",\"depth\":%u,\"deepest_p50_us\":%.1f,\"deepest_mean_us\":%.1f,"
		       "\"original_p50_us\":%.1f,\"ratio\":%.3f}\n",
		       depth, p50, mean, (o1 + o2) / 2, p50 / ((o1 + o2) / 2));
	for (unsigned d = 0; d <= depth; d++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-chain%u", d);
		vmfs_unlink(fs, vmfs_root_ino(fs), name);
	}
	free(buf);
	return ret;
}

static uint64_t io_written(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	unsigned long long v = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static int do_delete(struct vmfs *fs, uint64_t size, uint64_t unique)
{
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	uint64_t ino, snap, w0, uniq = 0;
	double t0, ms;
	int ret = buf ? full_map(fs, "bench-delete", size, &ino) : -ENOMEM;

	for (size_t i = 0; buf && i < 1 << 20; i++)
		buf[i] = (uint8_t)next_rand();
	if (!ret)
		ret = vmfs_snap_create(fs, &ino, 1, "old", &snap);
	if (!ret)
		ret = write_all(fs, ino, 0, unique, buf);
	if (!ret)
		ret = vmfs_unique_bytes(fs, snap, &uniq);
	if (!ret)
		ret = vmfs_sync(fs);
	if (ret)
		goto out;
	w0 = io_written();
	t0 = now_ms();
	ret = vmfs_snap_delete(fs, ino, snap);
	if (!ret)
		ret = vmfs_sync(fs);
	ms = now_ms() - t0;
	if (!ret)
		printf("{\"row\":\"snapshot_delete\",\"size\":%llu,\"unique_bytes\":%llu,\"ms\":%.1f,"
		       "\"bytes_written\":%llu}\n",
		       (unsigned long long)size, (unsigned long long)uniq, ms,
		       (unsigned long long)(io_written() - w0));
out:
	vmfs_unlink(fs, vmfs_root_ino(fs), "bench-delete");
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	struct vmfs_open_opts oo = { .commit_ms = 1000 };
	struct vmfs *fs;
	uint64_t a = 0, b = 0, c = 0;
	char err[256];
	int ret;

	tool_name = "snap-bench";
	if (argc < 4 || (!strcmp(argv[2], "create") && (argc != 5 || base_parse_size(argv[3], &a) ||
							 !tool_parse_u64(argv[4], &b) || !b)) ||
	    (!strcmp(argv[2], "readlat") && (argc < 6 || base_parse_size(argv[3], &a) || !tool_parse_u64(argv[4], &b))) ||
	    (!strcmp(argv[2], "delete") && (argc != 5 || base_parse_size(argv[3], &a) || base_parse_size(argv[4], &b))) ||
	    (!strcmp(argv[2], "snap") && argc != 5) ||
	    (!strcmp(argv[2], "clonechain") && (argc != 6 || base_parse_size(argv[3], &a) || !tool_parse_u64(argv[4], &b) ||
						 !tool_parse_u64(argv[5], &c) || !c || c > 10000))) {
		fprintf(stderr, "usage: snap-bench DEVICE (create SIZE N | readlat SIZE SECONDS DEPTH... |\n"
				"                          delete SIZE UNIQUE | snap PATH NAME |\n"
				"                          clonechain SIZE SECONDS DEPTH)\n");
		return 2;
	}
	ret = vmfs_open(argv[1], &oo, &fs, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		return 1;
	}
	if (!strcmp(argv[2], "create"))
		ret = do_create(fs, a, (unsigned)b);
	else if (!strcmp(argv[2], "readlat"))
		ret = do_readlat(fs, a, (double)b, argv + 5, argc - 5);
	else if (!strcmp(argv[2], "delete"))
		ret = do_delete(fs, a, b);
	else if (!strcmp(argv[2], "clonechain"))
		ret = do_clonechain(fs, a, (double)b, (unsigned)c);
	else if (!strcmp(argv[2], "snap")) {
		uint64_t ino;
		ret = vmfs_resolve(fs, argv[3], &ino);
		if (!ret)
			ret = vmfs_snap_create(fs, &ino, 1, argv[4], NULL);
	} else {
		tool_err("unknown mode '%s'", argv[2]);
		ret = -EINVAL;
	}
	if (ret)
		tool_err("%s: %s", argv[2], strerror(-ret));
	if (vmfs_close(fs) && !ret)
		ret = -EIO;
	return ret ? 1 : 0;
}
