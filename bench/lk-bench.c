/*
 * lk-bench: lockmgr's costs on a real datastore. Forks N hosts (processes);
 * each joins the cluster (timed), then for SECONDS takes and lets go one
 * shared lock (contended when N > 1) or a lock of its own (-s: uncontended
 * even with N hosts), and reports the acquire latency (median, p99) and the
 * rate. The datastore is only read through libvmfs for its geometry; lockmgr
 * talks to it through an O_DIRECT file descriptor of its own.
 * Usage: lk-bench [-s] DEVICE N SECONDS. Prints one line per host, then a total.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "lockmgr/lockmgr.h"
#include "vmfs/vmfs_i.h" /* vmfs_cluster_io: the datastore's lock regions, as the unit tests use them */

static int fd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static int fd_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	ssize_t n = pwrite(*(int *)ctx, buf, len, (off_t)off);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static uint64_t now(void *ctx)
{
	(void)ctx;
	return base_mono_ns();
}

static void nap(void *ctx, uint64_t ns)
{
	(void)ctx;
	base_sleep_ns(ns);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One host: join, lock/unlock for secs, print "host I join_ms ops median_us p99_us". */
static int run_host(const char *dev, const struct lk_geometry *g, const struct lk_timing *t, unsigned i,
		    unsigned secs, bool own)
{
	struct lk_join_opts jo = { .hostname = "lk-bench" };
	struct lk_host *h;
	struct lk_io io;
	uint64_t t0, join_ns, end, *lat, n = 0, cap = 1 << 20;
	char err[256] = "";
	int fd = open(dev, O_RDWR | O_DIRECT), ret;

	if (fd < 0) {
		fprintf(stderr, "lk-bench: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	io = (struct lk_io){ .ctx = &fd, .read = fd_read, .write = fd_write, .now_ns = now, .sleep_ns = nap };
	t0 = base_mono_ns();
	ret = lk_join(&io, g, t, &jo, &h, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "lk-bench: host %u: join: %s\n", i, err[0] ? err : strerror(-ret));
		return 1;
	}
	join_ns = base_mono_ns() - t0;
	lat = malloc(cap * sizeof(*lat));
	if (!lat)
		return 1;
	end = base_mono_ns() + (uint64_t)secs * 1000000000u;
	while (base_mono_ns() < end && n < cap) {
		uint64_t res = LK_RES(LK_NS_USER, own ? 1000 + i : 1), s = base_mono_ns();
		ret = lk_lock(h, res, LK_EX, LK_WAIT, NULL, NULL);
		if (ret) {
			fprintf(stderr, "lk-bench: host %u: lock: %s\n", i, strerror(-ret));
			break;
		}
		lat[n++] = base_mono_ns() - s;
		lk_unlock(h, res, false, NULL);
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("host %u join_ms %.0f ops %llu median_us %.0f p99_us %.0f\n", i, join_ns / 1e6, (unsigned long long)n,
	       n ? lat[n / 2] / 1e3 : 0.0, n ? lat[n * 99 / 100] / 1e3 : 0.0);
	fflush(stdout);
	free(lat);
	lk_leave(h);
	close(fd);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct vmfs_open_opts oo = { .readonly = true };
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	struct vmfs *fs;
	unsigned n, secs, fails = 0;
	bool own = false;
	char err[256];
	int ret;

	if (argc > 1 && !strcmp(argv[1], "-s")) {
		own = true;
		argv++;
		argc--;
	}
	if (argc != 4 || (n = (unsigned)atoi(argv[2])) < 1 || n > 256 || (secs = (unsigned)atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: lk-bench [-s] DEVICE HOSTS SECONDS\n");
		return 2;
	}
	ret = vmfs_open(argv[1], &oo, &fs, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "lk-bench: %s\n", err);
		return 1;
	}
	vmfs_cluster_io(fs, &io, &g, &t);
	vmfs_close(fs);
	for (unsigned i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0)
			return 1;
		if (p == 0)
			_exit(run_host(argv[1], &g, &t, i, secs, own));
	}
	for (unsigned i = 0; i < n; i++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			fails++;
	}
	return fails ? 1 : 0;
}
