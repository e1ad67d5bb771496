/*
 * lk-counter: a host of its own on a shared file, for tests/e2e/lock-counter.sh.
 * The file is a tiny LUN: heartbeat slots, a lock region, then one sector
 * holding a counter. "run" joins, and ITERS times takes one resource EX (with
 * LK_WAIT), reads the counter, writes it + 1 and unlocks; if the locks work,
 * N processes of ITERS each leave exactly N * ITERS. I/O is O_DIRECT
 * pread/pwrite of 4 KiB sectors; timings are shorter than the defaults
 * (interval 200 ms, io_timeout 1.5 s, fence 4 s, dead 6 s: joining takes
 * 1.7 s) but leave room for this shared VM's disk, where one O_DIRECT write
 * under load has been seen to take over 500 ms.
 *
 *   lk-counter format FILE NSLOTS
 *   lk-counter run FILE NSLOTS ITERS NAME [--no-lock]
 *   lk-counter get FILE NSLOTS
 *   lk-counter check FILE NSLOTS
 *
 * Exit 0 on success, 1 on any failure (one line on stderr says what).
 */
#include "lockmgr/lockmgr.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SS 4096u
#define NBUCKETS 4u
#define RES_COUNTER LK_RES(LK_NS_USER, 1)

static int fd = -1;

static int f_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int f_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t f_now(void *ctx)
{
	(void)ctx;
	return base_mono_ns();
}

static void f_sleep(void *ctx, uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	(void)ctx;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const struct lk_io io = { NULL, f_read, f_write, f_now, f_sleep, NULL };

static void geometry(unsigned nslots, struct lk_geometry *g, uint64_t *counter_off)
{
	g->sector_size = SS;
	g->nslots = nslots;
	g->slot_size = SS;
	g->hb_off = SS;
	g->lock_off = SS + (uint64_t)nslots * SS;
	g->lock_len = lk_lock_region_size(nslots, SS, NBUCKETS);
	*counter_off = g->lock_off + g->lock_len;
}

static void timing(struct lk_timing *t)
{
	t->interval_ms = 200;
	t->io_timeout_ms = 1500;
	t->fence_ms = 4000;
	t->dead_ms = 6000;
}

static int no_recover(void *arg, unsigned slot, uint64_t gen)
{
	(void)arg;
	fprintf(stderr, "lk-counter: recovering slot %u gen %" PRIu64 " (a host died)\n", slot, gen);
	return 0;
}

static int counter_rw(uint64_t off, uint64_t *val, bool write)
{
	uint8_t *buf = aligned_alloc(4096, SS);
	int rc;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, SS);
	if (write) {
		le64 v = cpu_to_le64(*val);

		memcpy(buf, &v, 8);
		rc = f_write(NULL, off, buf, SS);
	} else {
		le64 v;

		rc = f_read(NULL, off, buf, SS);
		memcpy(&v, buf, 8);
		*val = le64_to_cpu(v);
	}
	free(buf);
	return rc;
}

static int run(unsigned nslots, unsigned iters, const char *name, bool lock)
{
	struct lk_join_opts o = { .hostname = name, .recover = no_recover };
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_host *h;
	uint64_t off, t0, t1, t2;
	char err[256];
	int rc;

	geometry(nslots, &g, &off);
	timing(&t);
	t0 = base_mono_ns();
	rc = lk_join(&io, &g, &t, &o, &h, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "lk-counter: %s: join: %s\n", name, err);
		return 1;
	}
	t1 = base_mono_ns();
	for (unsigned i = 0; i < iters; i++) {
		uint64_t v;

		if (lock) {
			rc = lk_lock(h, RES_COUNTER, LK_EX, LK_WAIT, NULL, NULL);
			if (rc) {
				fprintf(stderr, "lk-counter: %s: lk_lock: %s\n", name, strerror(-rc));
				goto err_leave;
			}
		}
		rc = counter_rw(off, &v, false);
		if (!rc) {
			v++;
			/* the counter write is a datastore write: only while not fenced */
			rc = !lock || lk_write_ok(h) ? counter_rw(off, &v, true) : -ENOLCK;
		}
		if (rc) {
			fprintf(stderr, "lk-counter: %s: counter: %s\n", name, strerror(-rc));
			goto err_leave;
		}
		if (lock) {
			rc = lk_unlock(h, RES_COUNTER, false, NULL);
			if (rc) {
				fprintf(stderr, "lk-counter: %s: lk_unlock: %s\n", name, strerror(-rc));
				goto err_leave;
			}
		}
	}
	t2 = base_mono_ns();
	printf("%s: slot %u gen %" PRIu64 " join %.0f ms, %u increments in %.2f s\n", name, lk_host_slot(h),
	       lk_host_gen(h), (double)(t1 - t0) / 1e6, iters, (double)(t2 - t1) / 1e9);
	lk_leave(h);
	return 0;

err_leave:
	lk_leave(h);
	return 1;
}

static void show_problem(void *arg, const char *p)
{
	(void)arg;
	fprintf(stderr, "%s\n", p);
}

int main(int argc, char **argv)
{
	struct lk_geometry g;
	unsigned nslots;
	uint64_t off, v = 0;
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: lk-counter format|run|get|check FILE NSLOTS [ITERS NAME [--no-lock]]\n");
		return 1;
	}
	nslots = (unsigned)strtoul(argv[3], NULL, 0);
	geometry(nslots, &g, &off);
	if (!g.lock_len) {
		fprintf(stderr, "lk-counter: bad slot count '%s'\n", argv[3]);
		return 1;
	}
	fd = open(argv[2], O_RDWR | O_DIRECT | (strcmp(argv[1], "format") ? 0 : O_CREAT), 0600);
	if (fd < 0) {
		fprintf(stderr, "lk-counter: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[1], "format")) {
		if (ftruncate(fd, (off_t)(off + SS)) < 0) {
			fprintf(stderr, "lk-counter: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		rc = lk_format(&io, &g);
		if (!rc)
			rc = counter_rw(off, &v, true);
	} else if (!strcmp(argv[1], "run") && argc >= 6) {
		rc = run(nslots, (unsigned)strtoul(argv[4], NULL, 0), argv[5],
			 !(argc > 6 && !strcmp(argv[6], "--no-lock")));
		close(fd);
		return rc;
	} else if (!strcmp(argv[1], "get")) {
		rc = counter_rw(off, &v, false);
		if (!rc)
			printf("%" PRIu64 "\n", v);
	} else if (!strcmp(argv[1], "check")) {
		rc = lk_check(&io, &g, show_problem, NULL);
	} else {
		fprintf(stderr, "lk-counter: unknown command '%s'\n", argv[1]);
		return 1;
	}
	close(fd);
	if (rc) {
		fprintf(stderr, "lk-counter: %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	return 0;
}
