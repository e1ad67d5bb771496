/*
 * Unit tests for lockmgr/: the records and layout, the API on an in-memory
 * disk (a fake clock for the timing logic, real threads for thread safety),
 * and a deterministic simulator running many hosts of the real lockmgr code
 * against a simulated shared disk.
 *
 * The simulator is single-threaded: each simulated host is two ucontext
 * fibers (a worker and a renewer, as a real host has a renewal thread), and
 * every lk_io call of a fiber is a scheduling point. Fibers were chosen over
 * a step-driven core so that the code under test is the production code,
 * unmodified and blocking as it is in production. Time is virtual: one global
 * real time, and a clock per host with its own offset and a rate within the
 * 1% drift bound. An I/O takes a random latency up to the io_timeout bound on
 * its host's clock; each sector of it lands (write) or is sampled (read) at a
 * random instant between submission and completion, so I/Os of different
 * hosts interleave, reorder and tear across sectors. Hosts crash (their
 * in-flight writes still land; from then on their I/O has no effect and they
 * are fenced, and the code unwinds without touching the disk before the host
 * reboots as a new incarnation) and pause (not scheduled while virtual time
 * passes). The same PRNG seed gives the same run.
 *
 * The checker runs after every step: no two hosts that are not fenced may
 * believe they hold conflicting locks on one resource, or the same bucket
 * mutex; a counter kept on the disk and incremented under an EX lock must
 * never lose an update; recovery must only ever be asked for a host that is
 * crashed or fenced. Tests with a deliberately broken protocol (no delta
 * delay, no Disk Paxos phase 1) must make it report a violation.
 *
 * LK_SIM_SEEDS=N runs N seeds instead of the default 5000 (LK_SIM_FIRST=F
 * starts at seed F instead of 0); LK_SIM_SEED=S runs one seed verbosely, for
 * reproducing a failure; LK_SIM_IOERR=N fails one I/O in N (default 20000; a
 * failed write may or may not have landed).
 */
#include "lockmgr/lockmgr.h"
#include "lockmgr/lockmgr_format.h"
#include "base/base.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define MS ((uint64_t)1000000)

/*
 * For hot paths (the simulator, the memory disk): Check records the place of
 * every ck_assert that passes with a write(2), which cost more than the
 * simulation; this reaches Check only on failure.
 */
#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)
#define SEC (1000 * MS)

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi)  /* [lo, hi] */
{
	return lo + rng_next(s) % (hi - lo + 1);
}

/* ======================= records and layout ======================= */

START_TEST(timing_defaults_safe)
{
	struct lk_timing t;
	char err[200];

	lk_timing_default(&t);
	ck_assert_uint_eq(t.interval_ms, 1000);
	ck_assert_uint_eq(t.dead_ms, 8000);
	ck_assert_uint_eq(t.fence_ms, 5000);
	ck_assert_uint_eq(t.io_timeout_ms, 2000);
	ck_assert_int_eq(lk_timing_check(&t, err, sizeof(err)), 0);
	/* (2000 + 250) * 1.01 / 0.99 = 2295.5: the join waits 2.3 s, under the 3 s budget */
	ck_assert_uint_eq(lk_join_delay_ms(&t), 2297);

	t.dead_ms = 7000;       /* (5000 + 2000) * 1.01 = 7070 > 7000 * 0.99 */
	ck_assert_int_eq(lk_timing_check(&t, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "dead 7000"));
	t.dead_ms = 7200;       /* 7070 < 7128 */
	ck_assert_int_eq(lk_timing_check(&t, err, sizeof(err)), 0);
	t.fence_ms = 2900;      /* interval + io_timeout must stay below fence */
	ck_assert_int_eq(lk_timing_check(&t, err, sizeof(err)), -EINVAL);
	t = (struct lk_timing){ 0, 8000, 5000, 2000 };
	ck_assert_int_eq(lk_timing_check(&t, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(layout_pure_function)
{
	struct lk_layout l;

	/* the vmfs default: 2048 slots, 512-byte sectors, 4 MiB */
	ck_assert_int_eq(lk_layout_compute(2048, 512, 4 << 20, &l), 0);
	ck_assert_uint_eq(l.per_sector, 10);
	ck_assert_uint_eq(l.nbuckets, 30);
	ck_assert_uint_eq(l.ngroups, 3);
	ck_assert_uint_eq(l.leader_off, 4096);
	ck_assert_uint_eq(l.table_off, 4096 + 16384);
	ck_assert_uint_eq(l.dblock_off, 4096 + 16384 + 30 * 8192);
	ck_assert_uint_eq(l.size, l.dblock_off + 3ull * 2048 * 512);
	ck_assert_uint_le(l.size, 4 << 20);
	ck_assert_uint_gt(lk_lock_region_size(2048, 512, 31), 4 << 20);
	ck_assert_uint_eq(lk_lock_region_size(2048, 512, 30), l.size);
	/* 4 KiB sectors need 8 MiB per group of 84 buckets: 4 MiB holds none */
	ck_assert_int_eq(lk_layout_compute(2048, 4096, 4 << 20, &l), -EINVAL);
	ck_assert_int_eq(lk_layout_compute(2048, 4096, 16 << 20, &l), 0);
	ck_assert_uint_eq(l.per_sector, 84);
	ck_assert_uint_eq(l.ngroups, 1);
	ck_assert_uint_eq(lk_lock_region_size(8, 4096, 3), 4096 + 3 * 4096 + 3 * 8192 + 8 * 4096);
	ck_assert_uint_eq(lk_lock_region_size(8, 1000, 3), 0);
	ck_assert_uint_eq(lk_lock_region_size(0, 512, 3), 0);
	/* monotonic: the largest count that fits is what compute picks */
	for (uint32_t nb = 1; nb < 200; nb++) {
		uint64_t sz = lk_lock_region_size(16, 512, nb);

		ck_assert_uint_ge(lk_lock_region_size(16, 512, nb + 1), sz);
		ck_assert_int_eq(lk_layout_compute(16, 512, sz, &l), 0);
		ck_assert_uint_ge(l.nbuckets, nb);
		ck_assert_uint_le(l.size, sz);
	}
	/* the bucket hash is part of the format: these values must never change */
	ck_assert_uint_eq(lk_bucket_of(LK_RES(LK_NS_INODE, 1), 1000), lk_bucket_of(LK_RES(LK_NS_INODE, 1), 1000));
	ck_assert_uint_eq(lk_bucket_of(0, 1u << 31), 0);
	ck_assert_uint_eq(lk_bucket_of(1, 1000), 0x5692161d100b05e5ull % 1000);
}
END_TEST

/* ======================= in-memory disk ======================= */

struct memdisk {
	pthread_mutex_t mu;
	uint8_t *data;
	size_t size;
	uint32_t ss;
	uint64_t fake_now;      /* fake clock when fake */
	bool fake;
	uint64_t rng;
	unsigned reads, writes;
	int fail_writes;        /* fail the next N writes with -EIO */
	struct lk_host *tick[2]; /* fake clock: renewed whenever it moves, as their renewal threads would */
};

static int md_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct memdisk *d = ctx;

	REQUIRE((off % d->ss) == (0));
	REQUIRE((len % d->ss) == (0));
	REQUIRE(((uintptr_t)buf % 4096) == (0));
	REQUIRE((off + len) <= (d->size));
	pthread_mutex_lock(&d->mu);
	memcpy(buf, d->data + off, len);
	d->reads++;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int md_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct memdisk *d = ctx;
	int rc = 0;

	REQUIRE((off % d->ss) == (0));
	REQUIRE((len % d->ss) == (0));
	REQUIRE((off + len) <= (d->size));
	pthread_mutex_lock(&d->mu);
	if (d->fail_writes > 0) {
		d->fail_writes--;
		rc = -EIO;
	} else {
		memcpy(d->data + off, buf, len);
		d->writes++;
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static uint64_t md_now(void *ctx)
{
	struct memdisk *d = ctx;
	uint64_t t;

	if (!d->fake)
		return base_mono_ns();
	pthread_mutex_lock(&d->mu);
	t = d->fake_now;
	pthread_mutex_unlock(&d->mu);
	return t;
}

static void md_sleep(void *ctx, uint64_t ns)
{
	struct memdisk *d = ctx;
	struct timespec ts = { (time_t)(ns / SEC), (long)(ns % SEC) };

	if (!d->fake) {
		nanosleep(&ts, NULL);
		return;
	}
	pthread_mutex_lock(&d->mu);
	d->fake_now += ns;      /* the fake clock moves only when someone waits */
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < 2; i++)
		if (d->tick[i])
			REQUIRE(lk_renew(d->tick[i]) == 0);     /* lk_renew never sleeps */
}

static void md_random(void *ctx, void *buf, size_t len)
{
	struct memdisk *d = ctx;

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)rng_next(&d->rng);
	pthread_mutex_unlock(&d->mu);
}

static struct memdisk md;
static struct lk_io md_io = { &md, md_read, md_write, md_now, md_sleep, md_random };
static struct lk_geometry md_geo;
static struct lk_timing md_tim;

static void md_setup(bool fake, uint32_t nslots, uint32_t nbuckets)
{
	uint64_t lock_len = lk_lock_region_size(nslots, 512, nbuckets);

	memset(&md, 0, sizeof(md));
	pthread_mutex_init(&md.mu, NULL);
	md.ss = 512;
	md.fake = fake;
	md.fake_now = 1000 * SEC;
	md.rng = 0x9e3779b97f4a7c15ull;
	md_geo = (struct lk_geometry){ .sector_size = 512, .nslots = nslots, .slot_size = 512,
				       .hb_off = 4096, .lock_off = 4096 + base_round_up(nslots * 512, 4096),
				       .lock_len = lock_len };
	md.size = md_geo.lock_off + lock_len + 4096;
	md.data = calloc(1, md.size);
	ck_assert_ptr_nonnull(md.data);
	ck_assert_int_eq(lk_format(&md_io, &md_geo), 0);
	if (fake)
		md_tim = (struct lk_timing){ .interval_ms = 1000, .dead_ms = 8000, .fence_ms = 5000,
					     .io_timeout_ms = 2000 };
	else
		md_tim = (struct lk_timing){ .interval_ms = 50, .dead_ms = 1500, .fence_ms = 1000,
					     .io_timeout_ms = 200 };
}

static void md_teardown(void)
{
	free(md.data);
	pthread_mutex_destroy(&md.mu);
}

static int recover_count;
static int count_recover(void *arg, unsigned slot, uint64_t gen)
{
	(void)arg;
	(void)slot;
	(void)gen;
	recover_count++;
	return 0;
}

static struct lk_host *md_join(const char *name, bool thread)
{
	struct lk_join_opts o = { .hostname = name, .recover = count_recover, .no_renew_thread = !thread };
	struct lk_host *h;
	char err[256] = "";
	int rc;

	rc = lk_join(&md_io, &md_geo, &md_tim, &o, &h, err, sizeof(err));
	ck_assert_msg(rc == 0, "join: %d %s", rc, err);
	return h;
}

static void md_advance(uint64_t ns)
{
	md_sleep(&md, ns);
}

static int problems;
static char last_problem[256];
static void note_problem(void *arg, const char *p)
{
	(void)arg;
	problems++;
	snprintf(last_problem, sizeof(last_problem), "%s", p);
}

START_TEST(format_join_leave)
{
	struct lk_slot_info *si;
	struct lk_host *a, *b;
	uint8_t ua[16], ub[16];
	uint64_t t0;
	size_t n;

	md_setup(true, 4, 3);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	ck_assert_int_eq(lk_read_slots(&md_io, &md_geo, &si, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(si);

	t0 = md.fake_now;
	a = md_join("alpha", false);
	/* join time on the host's clock: the delta delay and nothing else that waits */
	ck_assert_uint_eq(md.fake_now - t0, (uint64_t)lk_join_delay_ms(&md_tim) * MS);
	b = md_join("beta", false);
	ck_assert_uint_ne(lk_host_slot(a), lk_host_slot(b));
	ck_assert_uint_eq(lk_host_gen(a), 1);
	lk_host_uuid(a, ua);
	lk_host_uuid(b, ub);
	ck_assert(memcmp(ua, ub, 16) != 0);

	ck_assert_int_eq(lk_read_slots(&md_io, &md_geo, &si, &n), 0);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(si[i].state, LK_SLOT_LIVE);
		ck_assert_uint_eq(si[i].gen, 1);
		ck_assert(!strcmp(si[i].hostname, si[i].slot == lk_host_slot(a) ? "alpha" : "beta"));
	}
	free(si);
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);

	unsigned slot_a = lk_host_slot(a);
	lk_leave(a);
	ck_assert_int_eq(lk_read_slots(&md_io, &md_geo, &si, &n), 0);
	ck_assert_uint_eq(n, 2);        /* the freed slot keeps its generation */
	for (size_t i = 0; i < n; i++)
		if (si[i].slot == slot_a)
			ck_assert(si[i].state == LK_SLOT_FREE && si[i].gen == 1);
	free(si);
	lk_leave(b);
	/* rejoining until the old slot comes up again: its generation grows */
	for (int i = 0; i < 20; i++) {
		a = md_join("alpha", false);
		if (lk_host_slot(a) == slot_a) {
			ck_assert_uint_eq(lk_host_gen(a), 2 + (uint64_t)0);
			lk_leave(a);
			break;
		}
		lk_leave(a);
		ck_assert_int_lt(i, 19);
	}
	md_teardown();
}
END_TEST

/* A preferred free slot is claimed before any other; one in use is passed over; with none free, any slot. */
START_TEST(join_prefers_slots)
{
	struct lk_join_opts o = { .hostname = "p", .recover = count_recover, .no_renew_thread = true };
	struct lk_host *a, *b, *c, *d;
	uint8_t prefer[1] = { 0 };
	char err[256] = "";

	md_setup(true, 4, 3);
	/* slot 2: every join takes it while it is free, whatever slot the random start picks */
	prefer[0] = 1u << 2;
	o.prefer = prefer;
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &a, err, sizeof(err)), 0);
		ck_assert_uint_eq(lk_host_slot(a), 2);
		lk_leave(a);
	}
	/* slots 1 and 3 preferred: the first two joins get them, the next ones the others */
	prefer[0] = (1u << 1) | (1u << 3);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &b, err, sizeof(err)), 0);
	ck_assert_uint_eq((1u << lk_host_slot(a)) | (1u << lk_host_slot(b)), prefer[0]);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &d, err, sizeof(err)), 0);
	ck_assert_uint_eq((1u << lk_host_slot(c)) | (1u << lk_host_slot(d)), 0xfu & ~prefer[0]);
	lk_leave(a);
	lk_leave(b);
	lk_leave(c);
	lk_leave(d);
	md_teardown();
}
END_TEST

START_TEST(lock_modes_and_versions)
{
	struct lk_host *a, *b;
	struct lk_holder hold;
	uint64_t r = LK_RES(LK_NS_INODE, 42), v1, v2, v3;

	md_setup(true, 4, 3);
	a = md_join("alpha", false);
	b = md_join("beta", false);

	ck_assert_int_eq(lk_lock(a, r, LK_EX, 0, &v1, NULL), 0);
	ck_assert_uint_ge(v1, 1);
	memset(&hold, 0, sizeof(hold));
	ck_assert_int_eq(lk_lock(b, r, LK_SH, 0, NULL, &hold), -EBUSY);
	ck_assert_uint_eq(hold.slot, lk_host_slot(a));
	ck_assert_uint_eq(hold.gen, lk_host_gen(a));
	ck_assert_int_eq(hold.mode, LK_EX);
	ck_assert_str_eq(hold.hostname, "alpha");
	ck_assert_int_eq(lk_lock(b, r, LK_MW, 0, NULL, NULL), -EBUSY);
	/* per-host references: EX covers a second EX or SH of the same host */
	ck_assert_int_eq(lk_lock(a, r, LK_SH, 0, &v2, NULL), 0);
	ck_assert_uint_eq(v2, v1);
	ck_assert_int_eq(lk_unlock(a, r, false, NULL), 0);
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, NULL, NULL), -EBUSY);
	ck_assert_int_eq(lk_unlock(a, r, false, NULL), 0);
	ck_assert_int_eq(lk_unlock(a, r, false, NULL), -ENOENT);

	/* unlocked without bump: the version survives */
	ck_assert_int_eq(lk_lock(b, r, LK_SH, 0, &v2, NULL), 0);
	ck_assert_uint_eq(v2, v1);
	ck_assert_int_eq(lk_lock(a, r, LK_SH, 0, &v3, NULL), 0);
	ck_assert_uint_eq(v3, v1);
	ck_assert_int_eq(lk_lock(a, r, LK_EX, 0, NULL, &hold), -EBUSY);    /* no conversion */
	ck_assert_uint_eq(hold.slot, lk_host_slot(a));
	ck_assert_int_eq(lk_lock(a, r + 1, LK_MW, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_lock(b, r + 1, LK_MW, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_lock(b, r + 1, LK_SH, 0, NULL, NULL), -EBUSY);  /* holds MW */
	ck_assert_int_eq(lk_unlock(b, r + 1, false, NULL), 0);
	ck_assert_int_eq(lk_lock(b, r + 1, LK_SH, 0, NULL, NULL), -EBUSY);  /* a holds MW */
	ck_assert_int_eq(lk_unlock(a, r + 1, false, NULL), 0);
	ck_assert_int_eq(lk_unlock(a, r, false, NULL), 0);
	ck_assert_int_eq(lk_unlock(b, r, false, NULL), 0);

	/* EX with bump: a new version, never one seen before */
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, &v2, NULL), 0);
	ck_assert_int_eq(lk_unlock(b, r, true, NULL), 0);
	ck_assert_int_eq(lk_lock(a, r, LK_EX, 0, &v3, NULL), 0);
	ck_assert_uint_gt(v3, v1);
	ck_assert_int_eq(lk_unlock(a, r, false, NULL), 0);
	ck_assert_int_eq(lk_lock(a, 7, 0, 0, NULL, NULL), -EINVAL);

	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	lk_leave(a);
	lk_leave(b);
	md_teardown();
}
END_TEST

/* Enough resources in one bucket to overflow its table: version records are collected, fresh versions follow. */
START_TEST(table_full_and_gc)
{
	struct lk_host *a;
	uint64_t res[LK_TABLE_ENTRIES + 10], first_v = 0, v;
	unsigned n = 0;

	md_setup(true, 4, 1);   /* one bucket */
	a = md_join("alpha", false);
	for (uint64_t id = 1; n < LK_TABLE_ENTRIES + 10; id++)
		res[n++] = LK_RES(LK_NS_USER, id);
	for (unsigned i = 0; i < LK_TABLE_ENTRIES; i++)
		ck_assert_int_eq(lk_lock(a, res[i], LK_EX, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_lock(a, res[LK_TABLE_ENTRIES], LK_EX, 0, NULL, NULL), -ENOSPC);
	ck_assert_int_eq(lk_lock(a, res[0], LK_EX, 0, &first_v, NULL), 0);     /* a reference, no I/O */
	ck_assert_int_eq(lk_unlock(a, res[0], false, NULL), 0);
	for (unsigned i = 0; i < LK_TABLE_ENTRIES; i++)
		ck_assert_int_eq(lk_unlock(a, res[i], false, NULL), 0);
	/* all 125 are version records now; ten new resources push the oldest out */
	for (unsigned i = LK_TABLE_ENTRIES; i < LK_TABLE_ENTRIES + 10; i++) {
		ck_assert_int_eq(lk_lock(a, res[i], LK_EX, 0, NULL, NULL), 0);
		ck_assert_int_eq(lk_unlock(a, res[i], false, NULL), 0);
	}
	ck_assert_int_eq(lk_lock(a, res[0], LK_EX, 0, &v, NULL), 0);
	ck_assert_uint_gt(v, first_v);  /* its record was collected: a fresh version (T4) */
	ck_assert_int_eq(lk_unlock(a, res[0], false, NULL), 0);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	lk_leave(a);
	md_teardown();
}
END_TEST

struct lock_list {
	unsigned n;
	uint64_t res[8];
	unsigned slot[8];
	enum lk_mode mode[8];
};

static int collect_lock(void *arg, uint64_t res, const struct lk_holder *h, uint64_t version)
{
	struct lock_list *l = arg;

	(void)version;
	ck_assert_uint_lt(l->n, 8);
	l->res[l->n] = res;
	l->slot[l->n] = h->slot;
	l->mode[l->n++] = h->mode;
	return 0;
}

/* A host that stops renewing is fenced at its deadline; another host sees it dead after dead_ms and recovers it. */
START_TEST(fence_and_recover)
{
	struct lk_host *a, *b;
	struct lock_list ll = { 0 };
	struct lk_slot_info *si;
	uint64_t r = LK_RES(LK_NS_INODE, 9);
	size_t n;

	md_setup(true, 4, 3);
	a = md_join("alpha", false);
	b = md_join("beta", false);
	ck_assert_int_eq(lk_lock(a, r, LK_EX, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_read_locks(&md_io, &md_geo, collect_lock, &ll), 0);
	ck_assert_uint_eq(ll.n, 1);
	ck_assert_uint_eq(ll.res[0], r);
	ck_assert_uint_eq(ll.slot[0], lk_host_slot(a));

	/* renewals keep a alive */
	for (int i = 0; i < 10; i++) {
		md_advance(900 * MS);
		ck_assert_int_eq(lk_renew(a), 0);
		ck_assert_int_eq(lk_renew(b), 0);
	}
	ck_assert(lk_write_ok(a));
	/* a stops; b keeps renewing; a's deadline passes */
	for (int i = 0; i < 5; i++) {
		md_advance(900 * MS);
		ck_assert_int_eq(lk_renew(b), 0);
	}
	ck_assert(lk_write_ok(a));
	md_advance(600 * MS);
	ck_assert(!lk_write_ok(a));
	ck_assert(lk_fenced(a));
	ck_assert_int_eq(lk_renew(a), -ENOLCK);
	ck_assert_int_eq(lk_lock(a, r + 1, LK_SH, 0, NULL, NULL), -ENOLCK);

	/* b: busy until it has watched a's counter stand still for dead_ms on its own clock */
	recover_count = 0;
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, NULL, NULL), -EBUSY);
	md_advance(4000 * MS);
	ck_assert_int_eq(lk_renew(b), 0);
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, NULL, NULL), -EBUSY);
	ck_assert_int_eq(recover_count, 0);
	md_advance(4100 * MS);
	ck_assert_int_eq(lk_renew(b), 0);
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, NULL, NULL), 0);
	ck_assert_int_eq(recover_count, 1);
	ck_assert_int_eq(lk_read_slots(&md_io, &md_geo, &si, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (si[i].slot == lk_host_slot(a))
			ck_assert(si[i].state == LK_SLOT_FREE && si[i].gen == lk_host_gen(a));
	free(si);
	ll.n = 0;
	ck_assert_int_eq(lk_read_locks(&md_io, &md_geo, collect_lock, &ll), 0);
	ck_assert_uint_eq(ll.n, 1);
	ck_assert_uint_eq(ll.slot[0], lk_host_slot(b));
	ck_assert_int_eq(lk_unlock(b, r, false, NULL), 0);
	lk_leave(a);    /* fenced: writes nothing */
	lk_leave(b);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	md_teardown();
}
END_TEST

/*
 * LK_WAIT_DEAD: a host that joins just after the holder of a lock was killed
 * watches the holder on its own clock from the start of its join and takes
 * the lock once H6 proves the death (no sooner than dead_ms after the join
 * began, no later than dead_ms + 2 intervals + io_timeout after lk_lock
 * began); a holder that renews meanwhile is -EBUSY after about one interval.
 */
START_TEST(wait_dead_holder)
{
	uint64_t r = LK_RES(LK_NS_INODE, 5), t0, t_join, took;
	struct lk_holder who;
	struct lk_host *a, *b, *c;

	md_setup(true, 4, 3);
	a = md_join("alpha", false);
	md.tick[0] = a;
	c = md_join("gamma", false);
	md.tick[1] = c;
	ck_assert_int_eq(lk_lock(a, r, LK_EX, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_lock(a, r + 1, LK_EX, 0, NULL, NULL), 0);
	md.tick[0] = NULL;      /* alpha is killed holding r and r + 1 */
	t_join = md_now(&md);
	b = md_join("beta", false);     /* a fresh process: it starts watching alpha as it joins */
	md.tick[0] = b;

	/* without the flag: busy at once (what vmm run saw) */
	ck_assert_int_eq(lk_lock(b, r, LK_EX, 0, NULL, NULL), -EBUSY);
	recover_count = 0;
	t0 = md_now(&md);
	ck_assert_int_eq(lk_lock(b, r, LK_EX, LK_WAIT_DEAD, NULL, &who), 0);
	took = md_now(&md) - t0;
	ck_assert_int_eq(recover_count, 1);
	ck_assert_uint_ge(md_now(&md) - t_join, (uint64_t)md_tim.dead_ms * MS);    /* H6 */
	/* the watch began with the join's read of the region, not after the join's delta-lease wait */
	ck_assert_uint_lt(md_now(&md) - t_join, (uint64_t)(md_tim.dead_ms + lk_join_delay_ms(&md_tim)) * MS);
	ck_assert_uint_le(took, (uint64_t)(md_tim.dead_ms + 2 * md_tim.interval_ms + md_tim.io_timeout_ms) * MS);
	/* the recovery freed alpha's other lock too */
	ck_assert_int_eq(lk_lock(b, r + 1, LK_EX, 0, NULL, NULL), 0);

	/* a live holder (gamma renews): busy, named, after about one interval, not the dead time */
	ck_assert_int_eq(lk_lock(c, r + 2, LK_SH, 0, NULL, NULL), 0);
	t0 = md_now(&md);
	memset(&who, 0, sizeof(who));
	ck_assert_int_eq(lk_lock(b, r + 2, LK_EX, LK_WAIT_DEAD, NULL, &who), -EBUSY);
	took = md_now(&md) - t0;
	ck_assert_uint_eq(who.slot, lk_host_slot(c));
	ck_assert_str_eq(who.hostname, "gamma");
	ck_assert_uint_le(took, 2 * (uint64_t)md_tim.interval_ms * MS);
	ck_assert_int_eq(recover_count, 1);

	md.tick[0] = md.tick[1] = NULL;
	ck_assert_int_eq(lk_unlock(b, r, false, NULL), 0);
	ck_assert_int_eq(lk_unlock(b, r + 1, false, NULL), 0);
	ck_assert_int_eq(lk_unlock(c, r + 2, false, NULL), 0);
	lk_leave(b);
	lk_leave(c);
	lk_leave(a);
	md_teardown();
}
END_TEST

/* A heartbeat record built by hand from lockmgr_format.h reads back field by field: the format is pinned. */
START_TEST(record_by_hand)
{
	struct lk_hb_disk rec;
	struct lk_slot_info *si;
	size_t n;

	md_setup(true, 4, 3);
	memset(&rec, 0, sizeof(rec));
	rec.hb_magic = cpu_to_le32(0x42484b4c);         /* "LKHB" */
	ck_assert_int_eq(memcmp(&rec.hb_magic, "LKHB", 4), 0);
	rec.hb_version = cpu_to_le16(1);
	rec.hb_state = cpu_to_le16(LK_SLOT_RECOVERING);
	rec.hb_slot = cpu_to_le32(2);
	rec.hb_gen = cpu_to_le64(77);
	memset(rec.hb_uuid, 0xab, 16);
	rec.hb_counter = cpu_to_le64(123456789);
	strcpy(rec.hb_hostname, "by-hand");
	rec.hb_crc = cpu_to_le32(base_crc32c(0, &rec, 0x1fc));
	memcpy(md.data + md_geo.hb_off + 2 * 512, &rec, sizeof(rec));
	ck_assert_int_eq(lk_read_slots(&md_io, &md_geo, &si, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(si[0].slot, 2);
	ck_assert_int_eq(si[0].state, LK_SLOT_RECOVERING);
	ck_assert_uint_eq(si[0].gen, 77);
	ck_assert_uint_eq(si[0].uuid[15], 0xab);
	ck_assert_uint_eq(si[0].counter, 123456789);
	ck_assert_str_eq(si[0].hostname, "by-hand");
	free(si);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	/* the same record in another slot's place is caught (it names its own slot) */
	memcpy(md.data + md_geo.hb_off + 3 * 512, &rec, sizeof(rec));
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), -EUCLEAN);
	ck_assert_int_eq(problems, 1);
	ck_assert_msg(strstr(last_problem, "slot 3: malformed"), "%s", last_problem);
	md_teardown();
}
END_TEST

struct lock_seen {
	unsigned n;
	uint64_t res[4];
};

static int seen_lock(void *arg, uint64_t res, const struct lk_holder *h, uint64_t version)
{
	struct lock_seen *l = arg;

	(void)h;
	(void)version;
	if (l->n < 4)
		l->res[l->n] = res;
	l->n++;
	return 0;
}

/* T2: a torn newest table copy leaves the previous table in force, for readers and for the next writer. */
START_TEST(torn_table_copy)
{
	struct lock_seen ls = { 0 };
	struct lk_layout lay;
	struct lk_host *a;
	uint64_t r1 = LK_RES(LK_NS_USER, 5), r2 = LK_RES(LK_NS_USER, 6), off;
	const struct lk_table_disk *c0, *c1;

	md_setup(true, 4, 1);   /* one bucket: both resources in it */
	ck_assert_int_eq(lk_layout_compute(4, 512, md_geo.lock_len, &lay), 0);
	ck_assert_uint_eq(lay.nbuckets, 1);
	off = md_geo.lock_off + lay.table_off;
	a = md_join("alpha", false);
	ck_assert_int_eq(lk_lock(a, r1, LK_EX, 0, NULL, NULL), 0);      /* seq 1 */
	ck_assert_int_eq(lk_lock(a, r2, LK_SH, 0, NULL, NULL), 0);      /* seq 2, in the other copy */
	c0 = (const void *)(md.data + off);
	c1 = (const void *)(md.data + off + LK_TABLE_BYTES);
	if (le64_to_cpu(c0->tb_seq) > le64_to_cpu(c1->tb_seq)) {       /* c1: the newest */
		const struct lk_table_disk *t = c0;

		c0 = c1;
		c1 = t;
	}
	ck_assert_uint_eq(le64_to_cpu(c0->tb_seq), 1);
	ck_assert_uint_eq(le64_to_cpu(c1->tb_seq), 2);
	ck_assert_uint_eq(le16_to_cpu(c1->tb_nentries), 2);
	/* tear the newest copy: its second half never landed */
	memset((uint8_t *)c1 + 2048, 0x5a, 2048);
	ck_assert_int_eq(lk_read_locks(&md_io, &md_geo, seen_lock, &ls), 0);
	ck_assert_uint_eq(ls.n, 1);
	ck_assert_uint_eq(ls.res[0], r1);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);        /* one torn copy is no damage */
	/* the next update builds on seq 1 and rewrites the torn copy */
	ck_assert_int_eq(lk_unlock(a, r1, false, NULL), 0);
	ck_assert_uint_eq(le64_to_cpu(c1->tb_seq), 2);
	ck_assert_uint_eq(le16_to_cpu(c1->tb_nentries), 1);     /* r1's version record only */
	ck_assert_uint_eq(c1->tb_entries[0].te_mode, 0);
	/* both copies torn is damage */
	memset((uint8_t *)c0 + 100, 0x5a, 8);
	memset((uint8_t *)c1 + 100, 0x5a, 8);
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), -EUCLEAN);
	ck_assert_int_eq(lk_lock(a, r1, LK_EX, 0, NULL, NULL), -EUCLEAN);
	lk_leave(a);
	md_teardown();
}
END_TEST

/* A failed heartbeat write fences at once (no second write queued behind it). */
START_TEST(failed_renewal_fences)
{
	struct lk_host *a;

	md_setup(true, 4, 3);
	a = md_join("alpha", false);
	md_advance(500 * MS);
	md.fail_writes = 1;
	ck_assert_int_eq(lk_renew(a), -ENOLCK);
	ck_assert(lk_fenced(a));
	ck_assert_int_eq(lk_lock(a, 5, LK_EX, 0, NULL, NULL), -ENOLCK);
	lk_leave(a);
	md_teardown();
}
END_TEST

START_TEST(check_finds_damage)
{
	struct lk_host *a;
	unsigned slot;

	md_setup(true, 4, 3);
	a = md_join("alpha", false);
	ck_assert_int_eq(lk_lock(a, 77, LK_EX, 0, NULL, NULL), 0);
	ck_assert_int_eq(lk_unlock(a, 77, false, NULL), 0);
	slot = lk_host_slot(a);
	lk_leave(a);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	md.data[md_geo.hb_off + slot * 512 + 0x40] ^= 1;        /* hostname byte */
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), -EUCLEAN);
	ck_assert_int_eq(problems, 1);
	ck_assert_msg(strstr(last_problem, "heartbeat slot") && strstr(last_problem, "bad checksum"), "%s",
		      last_problem);
	md.data[md_geo.hb_off + slot * 512 + 0x40] ^= 1;
	md.data[md_geo.lock_off + 3] ^= 0x80;                   /* region magic */
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), -EUCLEAN);
	ck_assert_int_eq(problems, 1);
	char err[256];
	struct lk_join_opts o = { .no_renew_thread = true };
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &a, err, sizeof(err)), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(err, "bad magic"));
	md_teardown();
}
END_TEST

START_TEST(watchdog_pets)
{
	char path[] = "/tmp/lk-wd.XXXXXX", buf[64];
	struct lk_join_opts o = { .hostname = "wd", .no_renew_thread = true, .watchdog = path };
	struct lk_host *a;
	char err[256];
	int fd;
	ssize_t n;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	md_setup(true, 4, 3);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &a, err, sizeof(err)), 0);
	md_advance(500 * MS);
	ck_assert_int_eq(lk_renew(a), 0);
	lk_leave(a);
	n = pread(fd, buf, sizeof(buf), 0);
	/* open pets once, the join's renewal and ours once each, then the magic close */
	ck_assert_int_eq(n, 4);
	ck_assert(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 'V');
	/* fenced: no more pets and no magic close */
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(lk_join(&md_io, &md_geo, &md_tim, &o, &a, err, sizeof(err)), 0);
	md_advance(6 * SEC);
	ck_assert_int_eq(lk_renew(a), -ENOLCK);
	lk_leave(a);
	n = pread(fd, buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 2);
	ck_assert(buf[0] == 0 && buf[1] == 0);
	close(fd);
	unlink(path);
	md_teardown();
}
END_TEST

/* Real threads: two hosts, four threads each, taking and dropping locks; per resource a count of EX holders. */
struct mt_arg {
	struct lk_host *h;
	unsigned id;
	int errors;
	unsigned done;
};
static int mt_holders[4];
static pthread_mutex_t mt_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t mt_counter;

static void *mt_main(void *p)
{
	struct mt_arg *a = p;
	uint64_t s = 0x1234 + a->id;

	for (int i = 0; i < 60; i++) {
		unsigned k = (unsigned)(rng_next(&s) % 4);
		uint64_t res = LK_RES(LK_NS_USER, 100 + k);
		int rc = lk_lock(a->h, res, LK_EX, LK_WAIT, NULL, NULL);

		if (rc) {
			a->errors++;
			continue;
		}
		pthread_mutex_lock(&mt_mu);
		mt_holders[k]++;
		mt_counter++;
		pthread_mutex_unlock(&mt_mu);
		if (rng_next(&s) % 4 == 0)
			usleep(200);
		pthread_mutex_lock(&mt_mu);
		mt_holders[k]--;
		pthread_mutex_unlock(&mt_mu);
		if (lk_unlock(a->h, res, rng_next(&s) % 2, NULL))
			a->errors++;
		a->done++;
	}
	return NULL;
}

START_TEST(threads_two_hosts)
{
	struct mt_arg args[8];
	struct lk_host *h[2];
	pthread_t th[8];
	struct lock_list ll = { 0 };

	md_setup(false, 4, 3);
	h[0] = md_join("one", true);
	h[1] = md_join("two", true);
	for (unsigned i = 0; i < 8; i++) {
		args[i] = (struct mt_arg){ .h = h[i % 2], .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, mt_main, &args[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].errors, 0);
		ck_assert_uint_eq(args[i].done, 60);
	}
	ck_assert_uint_eq(mt_counter, 480);
	ck_assert(lk_write_ok(h[0]) && lk_write_ok(h[1]));
	ck_assert_int_eq(lk_read_locks(&md_io, &md_geo, collect_lock, &ll), 0);
	ck_assert_uint_eq(ll.n, 0);
	lk_leave(h[0]);
	lk_leave(h[1]);
	problems = 0;
	ck_assert_int_eq(lk_check(&md_io, &md_geo, note_problem, NULL), 0);
	md_teardown();
}
END_TEST

/* lk_watch_slots on a real clock: a renewing host is alive and recent, a left one is not listed alive. */
START_TEST(watch_slots)
{
	struct lk_slot_info *si;
	struct lk_host *a, *b;
	unsigned sb;
	size_t n;

	md_setup(false, 4, 3);
	a = md_join("alive", true);
	b = md_join("gone", true);
	sb = lk_host_slot(b);
	lk_leave(b);
	ck_assert_int_eq(lk_watch_slots(&md_io, &md_geo, 300, &si, &n), 0);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		if (si[i].slot == sb) {
			ck_assert_int_eq(si[i].state, LK_SLOT_FREE);
			ck_assert(!si[i].alive);
			ck_assert(si[i].age_s >= 0.29);
		} else {
			ck_assert_str_eq(si[i].hostname, "alive");
			ck_assert(si[i].alive);
			ck_assert(si[i].age_s < 0.29);
		}
	}
	free(si);
	lk_leave(a);
	md_teardown();
}
END_TEST

/* ======================= the simulator ======================= */

#define SIM_MAX_HOSTS 6
#define SIM_MAX_BUCKETS 4
#define SIM_MAX_BELIEFS 4
#define SIM_STACK (512u << 10)

struct sim;
struct shost;

/*
 * Fiber switches: on x86-64 a few instructions saving the callee-saved
 * registers and the stack pointer (swapcontext makes a sigprocmask system call
 * at every switch, which was most of the simulator's run time); elsewhere
 * ucontext.
 */
#if defined(__x86_64__) && !defined(SIM_UCONTEXT)
#define SIM_ASM_SWITCH 1
void sim_switch(void **save_sp, void *load_sp);
__asm__(".text\n"
	".globl sim_switch\n"
	".type sim_switch, @function\n"
	"sim_switch:\n"
	"\tpushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq %rsi, %rsp\n"
	"\tpopq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n"
	"\tret\n"
	".size sim_switch, .-sim_switch\n");
#endif

struct fiber {
#ifdef SIM_ASM_SWITCH
	void *sp;
#else
	ucontext_t ctx;
#endif
	void *stack;
	bool done;
	struct shost *host;
	void (*fn)(struct shost *);
	void *fake_stack;
};

enum ev_type { EV_WAKE, EV_PART };

struct io_op {
	struct shost *host;
	bool write;
	uint64_t off;
	size_t len;
	uint8_t *buf;           /* read: the caller's buffer; write: our copy */
	uint8_t *part_of;       /* per sector: which of the two instants moves it */
	unsigned parts_left;
	bool counter;           /* the workload's counter write */
	bool failed;            /* lands, but its host is told -EIO */
	uint64_t expect;        /* the value its host read */
};

struct event {
	uint64_t t, seq;
	enum ev_type type;
	struct fiber *f;
	struct io_op *op;
	unsigned part;
};

struct belief {
	uint64_t res;
	enum lk_mode mode;
};

struct shost {
	struct sim *sim;
	unsigned id;
	uint64_t clk_t0;        /* clock: local = clk_l0 + (T - clk_t0) * (1 + ppm / 1e6) */
	uint64_t clk_l0;
	int64_t ppm;            /* changes now and then, always within the drift bound */
	struct lk_io io;
	bool crashed;
	uint64_t paused_until;
	struct lk_host *lk;     /* the current incarnation, NULL between */
	unsigned slot;
	uint64_t gen;
	struct fiber *worker, *renewer;
	bool renew_stop;
	struct belief bel[SIM_MAX_BELIEFS];
	unsigned nbel;
	bool mutex[SIM_MAX_BUCKETS];
	uint64_t counter_read;
	uint64_t rng;
};

struct sim_params {
	unsigned hosts, nslots, nbuckets;
	uint32_t ss;
	struct lk_timing tim;
	uint64_t run_ns;        /* workers take no new operation after this */
	unsigned crash_permille, pause_permille;
	unsigned faults;
	bool joins_together;    /* all hosts join at once (the delta-lease race) */
	unsigned ioerr_one_in;  /* one I/O in this many fails (LK_SIM_IOERR, default 20000) */
};

struct sim_stats {
	uint64_t steps, events, ios, io_errors, locks_ok, locks_busy, locks_fenced, unlocks, increments, joins, join_fail,
		crashes, pauses, fenced_found, recoveries, mutexes, end_ns;
};

struct sim {
	uint64_t seed, rng, now, seq;
	struct sim_params p;
	struct lk_geometry geo;
	uint8_t *disk;
	size_t disk_size;
	uint64_t counter_off;
	uint64_t counter_landed;
	struct event *heap;
	size_t nheap, capheap;
	struct shost hosts[SIM_MAX_HOSTS];
#ifdef SIM_ASM_SWITCH
	void *main_sp;
#else
	ucontext_t main_ctx;
#endif
	const void *main_stack_bottom;
	size_t main_stack_size;
	struct fiber *cur;
	unsigned live_fibers;
	char violation[512];
	bool stopping;          /* after a violation: every host crashed, fibers unwind */
	bool verbose;
	struct sim_stats st;
};


static void sim_violation(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_violation(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->violation[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->violation, sizeof(s->violation), fmt, ap);
	va_end(ap);
}

static void sim_log(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_log(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->verbose)
		return;
	fprintf(stderr, "%10.3f ", (double)s->now / 1e9);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- event heap: (t, seq) order, seq increasing: deterministic ---- */

static bool ev_less(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct event e)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? 2 * s->capheap : 256;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
		REQUIRE(s->heap);
	}
	e.seq = s->seq++;
	i = s->nheap++;
	while (i && ev_less(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct event ev_pop(struct sim *s)
{
	struct event top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_less(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_less(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* ---- fibers ---- */

static struct fiber *fiber_starting;   /* the fiber a first switch enters */

static void fiber_to_main(struct fiber *f, bool dying)
{
	struct sim *s = f->host->sim;
#ifdef SIM_ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &f->fake_stack, s->main_stack_bottom, s->main_stack_size);
#endif
	(void)dying;
#ifdef SIM_ASM_SWITCH
	sim_switch(&f->sp, s->main_sp);
#else
	swapcontext(&f->ctx, &s->main_ctx);
#endif
#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(f->fake_stack, &s->main_stack_bottom, &s->main_stack_size);
#endif
}

static void fiber_run(struct sim *s, struct fiber *f)
{
	void *fake = NULL;

	s->cur = f;
	fiber_starting = f;
#ifdef SIM_ASAN
	__sanitizer_start_switch_fiber(&fake, f->stack, SIM_STACK);
#endif
#ifdef SIM_ASM_SWITCH
	sim_switch(&s->main_sp, f->sp);
#else
	swapcontext(&s->main_ctx, &f->ctx);
#endif
#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	(void)fake;
	s->cur = NULL;
}

static void fiber_entry(unsigned lo, unsigned hi)
{
	struct fiber *f = (struct fiber *)(((uintptr_t)hi << 32) | lo);
	struct sim *s;

	if (!f)
		f = fiber_starting;
	s = f->host->sim;

#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(NULL, &s->main_stack_bottom, &s->main_stack_size);
#endif
	f->fn(f->host);
	f->done = true;
	s->live_fibers--;
	fiber_to_main(f, true);
	abort();        /* never resumed */
}

#ifdef SIM_ASM_SWITCH
static void fiber_start(void)
{
	fiber_entry(0, 0);
}
#endif

/* Fiber stacks are kept for reuse: mapping and unmapping one per fiber cost more than running it. */
static void *stack_pool[32];
static unsigned stack_pool_n;

static void *stack_get(void)
{
	void *st;

	if (stack_pool_n)
		return stack_pool[--stack_pool_n];
	st = mmap(NULL, SIM_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(st != MAP_FAILED);
	return st;
}

static void stack_put(void *st)
{
	if (stack_pool_n < base_array_size(stack_pool))
		stack_pool[stack_pool_n++] = st;
	else
		munmap(st, SIM_STACK);
}

static struct fiber *fiber_new(struct shost *h, void (*fn)(struct shost *), uint64_t start)
{
	struct fiber *f = calloc(1, sizeof(*f));
	uintptr_t p = (uintptr_t)f;

	REQUIRE(f);
	f->host = h;
	f->fn = fn;
	f->stack = stack_get();
#ifdef SIM_ASM_SWITCH
	{
		/* six zeroed registers, then fiber_start as the return address, the entry aligned as after a call */
		uintptr_t *top = (uintptr_t *)((uint8_t *)f->stack + SIM_STACK - 64);

		top[6] = (uintptr_t)fiber_start;
		f->sp = top;
		memset(top, 0, 6 * sizeof(*top));
		(void)p;
	}
#else
	getcontext(&f->ctx);
	f->ctx.uc_stack.ss_sp = f->stack;
	f->ctx.uc_stack.ss_size = SIM_STACK;
	f->ctx.uc_link = NULL;
	makecontext(&f->ctx, (void (*)(void))fiber_entry, 2, (unsigned)(p & 0xffffffffu), (unsigned)(p >> 32));
#endif
	h->sim->live_fibers++;
	ev_push(h->sim, (struct event){ .t = start, .type = EV_WAKE, .f = f });
	return f;
}

static void fiber_free(struct fiber *f)
{
	if (!f)
		return;
	stack_put(f->stack);
	free(f);
}

/* The running fiber waits until real time t (later if its host is paused). */
static void fiber_wait_until(struct sim *s, uint64_t t)
{
	struct fiber *f = s->cur;

	ev_push(s, (struct event){ .t = t, .type = EV_WAKE, .f = f });
	fiber_to_main(f, false);
}

/* ---- host clocks ---- */

static uint64_t host_clock(const struct shost *h, uint64_t t)
{
	uint64_t dt = t - h->clk_t0;

	return h->clk_l0 + dt + (uint64_t)((__int128)dt * h->ppm / 1000000);
}

/* A new clock rate from now on; the clock stays continuous and monotonic. */
static void host_set_rate(struct shost *h, uint64_t now, int64_t ppm)
{
	h->clk_l0 = host_clock(h, now);
	h->clk_t0 = now;
	h->ppm = ppm;
}

/* Real duration for a local duration on h's clock (rounded up). */
static uint64_t host_to_real(const struct shost *h, uint64_t local)
{
	return (uint64_t)(((__int128)local * 1000000 + (1000000 + h->ppm) - 1) / (1000000 + h->ppm));
}

/* ---- lk_io of a simulated host ---- */

static uint64_t sim_now(void *ctx)
{
	struct shost *h = ctx;

	if (h->crashed)
		return UINT64_MAX / 2;  /* a crashed host is fenced: its code unwinds */
	return host_clock(h, h->sim->now);
}

static void sim_sleep(void *ctx, uint64_t ns)
{
	struct shost *h = ctx;
	struct sim *s = h->sim;

	fiber_wait_until(s, s->now + host_to_real(h, ns) + 1);
}

static void sim_random(void *ctx, void *buf, size_t len)
{
	struct shost *h = ctx;

	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)rng_next(&h->rng);
}

/* I/O latency on the host's clock: mostly fast, sometimes slow, rarely near the bound. */
static uint64_t sim_latency(struct sim *s, struct shost *h)
{
	uint64_t bound = (uint64_t)s->p.tim.io_timeout_ms * MS, r = rng_next(&s->rng) % 1000;

	if (r < 850)
		return rng_range(&s->rng, 50000, 2 * MS);
	if (r < 985)
		return rng_range(&s->rng, 2 * MS, bound / 10);
	(void)h;
	return rng_range(&s->rng, bound / 10, bound - bound / 40);     /* room for a rate change in flight */
}

static void op_part(struct sim *s, struct io_op *op, unsigned part)
{
	uint32_t ss = s->geo.sector_size;

	for (size_t i = 0; i < op->len / ss; i++) {
		if (op->part_of[i] != part)
			continue;
		if (op->write)
			memcpy(s->disk + op->off + i * ss, op->buf + i * ss, ss);
		else
			memcpy(op->buf + i * ss, s->disk + op->off + i * ss, ss);
	}
	if (--op->parts_left)
		return;
	if (op->write)
		free(op->buf);
	free(op->part_of);
	free(op);
}

static int sim_io(struct shost *h, bool write, uint64_t off, void *buf, size_t len)
{
	struct sim *s = h->sim;
	uint32_t ss = s->geo.sector_size;
	uint64_t lat, t_end, t_at[2];
	struct io_op *op;
	bool failed;

	REQUIRE(off % ss == 0 && len % ss == 0 && len);
	REQUIRE((uintptr_t)buf % 4096 == 0);  /* the lk_io contract (O_DIRECT) */
	REQUIRE(off + len <= s->disk_size);
	if (h->crashed)
		return -EIO;
	s->st.ios++;
	op = calloc(1, sizeof(*op));
	REQUIRE(op);
	op->host = h;
	op->write = write;
	op->off = off;
	op->len = len;
	op->part_of = malloc(len / ss);
	REQUIRE(op->part_of);
	if (write) {
		op->buf = malloc(len);
		REQUIRE(op->buf);
		memcpy(op->buf, buf, len);
		if (off == s->counter_off) {
			op->counter = true;
			op->expect = h->counter_read;
		}
	} else {
		op->buf = buf;
	}
	lat = host_to_real(h, sim_latency(s, h));
	t_end = s->now + lat;
	if (rng_next(&s->rng) % s->p.ioerr_one_in == 0) {
		/* an I/O error: a read returns nothing, a write may or may not have landed */
		s->st.io_errors++;
		if (!write || rng_next(&s->rng) % 2) {
			free(write ? op->buf : NULL);
			free(op->part_of);
			free(op);
			fiber_wait_until(s, t_end);
			return -EIO;
		}
		op->failed = true;
	}
	t_at[0] = rng_range(&s->rng, s->now, t_end);
	t_at[1] = rng_range(&s->rng, s->now, t_end);
	op->parts_left = len / ss > 1 ? 2 : 1;
	for (size_t i = 0; i < len / ss; i++)
		op->part_of[i] = op->parts_left == 2 ? (uint8_t)(rng_next(&s->rng) & 1) : 0;
	for (unsigned p = 0; p < op->parts_left; p++)
		ev_push(s, (struct event){ .t = t_at[p], .type = EV_PART, .op = op, .part = p });
	failed = op->failed;    /* op may be freed by its last part before we resume */
	fiber_wait_until(s, t_end);
	return h->crashed || failed ? -EIO : 0;
}

static int sim_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	return sim_io(ctx, false, off, buf, len);
}

static int sim_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	return sim_io(ctx, true, off, (void *)buf, len);
}

/* ---- the checker ---- */

static bool sim_modes_conflict(enum lk_mode a, enum lk_mode b)
{
	return a == LK_EX || b == LK_EX || a != b;
}

/* A host counts while it runs, is joined and may still write. */
static bool host_counts(struct shost *h)
{
	return !h->crashed && h->lk && lk_write_ok(h->lk);
}

static void sim_check(struct sim *s)
{
	for (unsigned i = 0; i < s->p.hosts; i++) {
		struct shost *a = &s->hosts[i];

		if (!host_counts(a))
			continue;
		for (unsigned j = i + 1; j < s->p.hosts; j++) {
			struct shost *b = &s->hosts[j];

			if (!host_counts(b))
				continue;
			for (unsigned x = 0; x < a->nbel; x++)
				for (unsigned y = 0; y < b->nbel; y++)
					if (a->bel[x].res == b->bel[y].res &&
					    sim_modes_conflict(a->bel[x].mode, b->bel[y].mode))
						sim_violation(s, "hosts %u and %u both hold 0x%" PRIx64
							      " (modes %d, %d) at %.6f s", i, j, a->bel[x].res,
							      a->bel[x].mode, b->bel[y].mode, (double)s->now / 1e9);
			for (unsigned k = 0; k < s->p.nbuckets; k++)
				if (a->mutex[k] && b->mutex[k])
					sim_violation(s, "hosts %u and %u both hold the mutex of bucket %u at %.6f s", i,
						      j, k, (double)s->now / 1e9);
		}
	}
}

static void sim_trace(void *arg, enum lk_trace_event ev, unsigned bucket, uint64_t lver)
{
	struct shost *h = arg;

	if (ev == LK_TRACE_MUTEX_ACQUIRED) {
		REQUIRE((bucket) < (SIM_MAX_BUCKETS));
		h->mutex[bucket] = true;
		h->sim->st.mutexes++;
		sim_check(h->sim);
	} else if (ev == LK_TRACE_MUTEX_RELEASED) {
		h->mutex[bucket] = false;
	} else if (ev == LK_TRACE_RECOVERED) {
		h->sim->st.recoveries++;
	}
	sim_log(h->sim, "host %u: trace %d bucket %u lver %" PRIu64, h->id, ev, bucket, lver);
}

/* The journal replay stand-in: the recovered host must be crashed or fenced; takes a little time. */
static int sim_recover(void *arg, unsigned slot, uint64_t gen)
{
	struct shost *h = arg;
	struct sim *s = h->sim;

	for (unsigned i = 0; i < s->p.hosts; i++) {
		struct shost *o = &s->hosts[i];

		if (o != h && o->lk && o->slot == slot && o->gen == gen && host_counts(o))
			sim_violation(s, "host %u recovers slot %u gen %" PRIu64 " of host %u, which is alive",
				      h->id, slot, gen, i);
	}
	sim_log(s, "host %u: recovering slot %u gen %" PRIu64, h->id, slot, gen);
	sim_sleep(h, rng_range(&h->rng, 1, 300) * MS);
	return 0;
}

/* ---- the workload ---- */

static void belief_add(struct shost *h, uint64_t res, enum lk_mode mode)
{
	REQUIRE((h->nbel) < (SIM_MAX_BELIEFS));
	h->bel[h->nbel++] = (struct belief){ res, mode };
	sim_check(h->sim);
}

static void belief_del(struct shost *h, uint64_t res)
{
	for (unsigned i = 0; i < h->nbel; i++) {
		if (h->bel[i].res == res) {
			h->bel[i] = h->bel[--h->nbel];
			return;
		}
	}
	ck_abort_msg("belief of 0x%" PRIx64 " missing", res);
}

static void renewer_main(struct shost *h)
{
	struct sim *s = h->sim;

	while (!h->renew_stop && !h->crashed) {
		if (lk_renew(h->lk) == -ENOLCK)
			break;
		sim_sleep(h, (uint64_t)s->p.tim.interval_ms * MS);
	}
}

#define RES_COUNTER LK_RES(LK_NS_USER, 1)

/* Under an EX lock: read the counter, write it + 1 if still allowed to write. */
static int counter_increment(struct shost *h)
{
	struct sim *s = h->sim;
	uint32_t ss = s->geo.sector_size;
	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t v;
	int rc;

	REQUIRE(buf);
	rc = sim_read(h, s->counter_off, buf, ss);
	if (!rc) {
		memcpy(&v, buf, 8);
		h->counter_read = v;
		v++;
		memcpy(buf, &v, 8);
		rc = lk_write_ok(h->lk) ? sim_write(h, s->counter_off, buf, ss) : -ENOLCK;
	}
	free(buf);
	return rc;
}

static void incarnation(struct shost *h)
{
	struct sim *s = h->sim;
	struct lk_join_opts o = { .hostname = "sim", .recover = sim_recover, .recover_arg = h,
				  .no_renew_thread = true, .trace = sim_trace, .trace_arg = h,
				  .test_faults = s->p.faults };
	char err[256];
	unsigned nops;
	int rc;

	rc = lk_join(&h->io, &s->geo, &s->p.tim, &o, &h->lk, err, sizeof(err));
	if (rc) {
		s->st.join_fail++;
		sim_log(s, "host %u: join failed: %d %s", h->id, rc, err);
		h->lk = NULL;
		return;
	}
	s->st.joins++;
	h->slot = lk_host_slot(h->lk);
	h->gen = lk_host_gen(h->lk);
	sim_log(s, "host %u: joined slot %u gen %" PRIu64, h->id, h->slot, h->gen);
	h->renew_stop = false;
	h->renewer = fiber_new(h, renewer_main, s->now);

	nops = (unsigned)rng_range(&h->rng, 3, 25);
	for (unsigned i = 0; i < nops && s->now < s->p.run_ns && !h->crashed; i++) {
		uint64_t res, ver, r2 = LK_RES(LK_NS_USER, 2 + rng_next(&h->rng) % 3);

		if (rng_next(&h->rng) % 4 == 0) {
			rc = lk_recover_dead(h->lk);
			if (h->crashed || rc == -ENOLCK || lk_fenced(h->lk))
				break;
			if (rc == -EIO)
				continue;
			if (rc < 0) {
				sim_violation(s, "host %u: lk_recover_dead: %d", h->id, rc);
				break;
			}
		}
		unsigned pick = (unsigned)(rng_next(&h->rng) % 20);
		unsigned flags = pick < 14 ? LK_WAIT : pick < 17 ? LK_WAIT_DEAD : 0;
		enum lk_mode mode;

		if (rng_next(&h->rng) % 2) {
			res = RES_COUNTER;
			mode = LK_EX;
		} else {
			res = LK_RES(LK_NS_USER, 2 + rng_next(&h->rng) % 3);
			mode = (enum lk_mode)rng_range(&h->rng, LK_EX, LK_MW);
		}
		rc = lk_lock(h->lk, res, mode, flags, &ver, NULL);
		if (h->crashed)
			break;
		if (rc == -EIO) {       /* an injected error: a host that wrote something fenced itself */
			s->st.locks_fenced += lk_fenced(h->lk);
			if (lk_fenced(h->lk))
				break;
			continue;
		}
		if (rc == -ENOLCK) {
			s->st.locks_fenced++;
			break;
		}
		if (rc == -EBUSY) {
			s->st.locks_busy++;
			continue;
		}
		if (rc) {
			sim_violation(s, "host %u: lk_lock: %d", h->id, rc);
			break;
		}
		s->st.locks_ok++;
		belief_add(h, res, mode);
		if (res == RES_COUNTER && counter_increment(h) == 0)
			s->st.increments++;
		/* sometimes a second lock, never waiting for it (no lock-order deadlock) */
		bool second = r2 != res && rng_next(&h->rng) % 4 == 0 &&
			      lk_lock(h->lk, r2, LK_SH, 0, NULL, NULL) == 0;
		if (second)
			belief_add(h, r2, LK_SH);
		sim_sleep(h, rng_next(&h->rng) % 10 == 0 ? rng_range(&h->rng, 100, 3000) * MS
							  : rng_range(&h->rng, 0, 20) * MS);
		if (second) {
			belief_del(h, r2);
			lk_unlock(h->lk, r2, false, NULL);
		}
		belief_del(h, res);
		rc = lk_unlock(h->lk, res, rng_next(&h->rng) % 3 == 0, NULL);
		s->st.unlocks++;
		if (rc == -ENOLCK || h->crashed || lk_fenced(h->lk))
			break;
		if (rc == -EIO)
			continue;       /* a read failed before anything was written: still held, lk_leave drops it */
		if (rc) {
			sim_violation(s, "host %u: lk_unlock: %d", h->id, rc);
			break;
		}
		sim_sleep(h, rng_range(&h->rng, 0, 30) * MS);
	}
	if (lk_fenced(h->lk) && !h->crashed)
		s->st.fenced_found++;
	h->renew_stop = true;
	while (!h->renewer->done)
		sim_sleep(h, 5 * MS);
	fiber_free(h->renewer);
	h->renewer = NULL;
	h->nbel = 0;
	memset(h->mutex, 0, sizeof(h->mutex));
	lk_leave(h->lk);
	h->lk = NULL;
	memset(h->mutex, 0, sizeof(h->mutex));
}

static void worker_main(struct shost *h)
{
	struct sim *s = h->sim;

	while (s->now < s->p.run_ns && !s->stopping) {
		incarnation(h);
		if (h->crashed && !s->stopping) {       /* reboot: a new incarnation later */
			h->crashed = false;
			h->paused_until = 0;
		}
		sim_sleep(h, rng_range(&h->rng, 10, 3000) * MS);
	}
}

/* ---- running one seed ---- */

static void sim_disturb(struct sim *s)
{
	unsigned r = (unsigned)(rng_next(&s->rng) % 100000);
	struct shost *h = &s->hosts[rng_next(&s->rng) % s->p.hosts];

	if (r >= 99000) {               /* clock rates wander within the bound */
		host_set_rate(h, s->now, (int64_t)rng_range(&s->rng, 0, 19800) - 9900);
		return;
	}
	if (s->now >= s->p.run_ns || !h->lk || h->crashed || s->stopping)
		return;
	if (r < s->p.crash_permille) {
		h->crashed = true;
		s->st.crashes++;
		sim_log(s, "host %u: crash", h->id);
	} else if (r < s->p.crash_permille + s->p.pause_permille && h->paused_until <= s->now) {
		uint64_t len = rng_range(&s->rng, 1, 15) * SEC;

		h->paused_until = s->now + len;
		s->st.pauses++;
		sim_log(s, "host %u: paused %.1f s", h->id, (double)len / 1e9);
	}
}

static void sim_run(struct sim *s)
{
	const uint64_t stuck = s->p.run_ns + 900 * SEC;

	while (s->nheap) {
		struct event e = ev_pop(s);

		REQUIRE((e.t) >= (s->now));
		s->now = e.t;
		s->st.events++;
		if (s->now > stuck && !s->violation[0])
			sim_violation(s, "liveness: fibers still running at %.1f s", (double)s->now / 1e9);
		if (s->violation[0] && !s->stopping) {
			/* stop checking; crash every host so its code unwinds and frees what it holds */
			s->stopping = true;
			for (unsigned i = 0; i < s->p.hosts; i++)
				s->hosts[i].crashed = true;
		}
		if (e.type == EV_PART) {
			struct io_op *op = e.op;

			if (op->counter && e.part == op->part_of[0]) {
				uint64_t cur;

				memcpy(&cur, s->disk + op->off, 8);
				if (cur != op->expect)
					sim_violation(s, "lost update: host %u's counter write of %" PRIu64
						      " lands on %" PRIu64, op->host->id, op->expect + 1, cur);
				s->counter_landed++;
			}
			op_part(s, op, e.part);
			continue;
		}
		if (e.f->host->paused_until > s->now) {
			ev_push(s, (struct event){ .t = e.f->host->paused_until, .type = EV_WAKE, .f = e.f });
			continue;
		}
		s->st.steps++;
		fiber_run(s, e.f);
		if (!s->stopping)
			sim_check(s);
		if (e.f->done && e.f == e.f->host->worker) {
			e.f->host->worker = NULL;
			fiber_free(e.f);
		}
		sim_disturb(s);
	}
}

static void sim_setup(struct sim *s, uint64_t seed, const struct sim_params *p)
{
	uint64_t lock_len, hb_len;

	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	s->p = *p;
	REQUIRE((p->hosts) <= (SIM_MAX_HOSTS));
	REQUIRE((p->nbuckets) <= (SIM_MAX_BUCKETS));
	lock_len = lk_lock_region_size(p->nslots, p->ss, p->nbuckets);
	hb_len = base_round_up((uint64_t)p->nslots * base_max(512u, p->ss), 4096);
	s->geo = (struct lk_geometry){ .sector_size = p->ss, .nslots = p->nslots,
				       .slot_size = base_max(512u, p->ss), .hb_off = 4096,
				       .lock_off = 4096 + hb_len, .lock_len = lock_len };
	s->counter_off = s->geo.lock_off + lock_len;
	s->disk_size = s->counter_off + 4096;
	s->disk = calloc(1, s->disk_size);
	REQUIRE(s->disk);
	for (unsigned i = 0; i < p->hosts; i++) {
		struct shost *h = &s->hosts[i];

		h->sim = s;
		h->id = i;
		h->clk_l0 = rng_range(&s->rng, 0, 1000) * SEC;
		h->clk_t0 = 0;
		h->ppm = (int64_t)rng_range(&s->rng, 0, 19800) - 9900;
		h->io = (struct lk_io){ h, sim_read, sim_write, sim_now, sim_sleep, sim_random };
		h->rng = rng_next(&s->rng) | 1;
	}
}

/* Unscheduled I/O on the simulated disk, for lk_format before the hosts start. */
static int direct_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct sim *s = ctx;

	memcpy(buf, s->disk + off, len);
	return 0;
}

static int direct_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct sim *s = ctx;

	REQUIRE((off + len) <= (s->disk_size));
	memcpy(s->disk + off, buf, len);
	return 0;
}

/* Runs one seed; returns false with s->violation set if the checker objected. */
static bool sim_seed(uint64_t seed, const struct sim_params *p, bool verbose, struct sim_stats *total)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct lk_io fmt_io = { .read = direct_read, .write = direct_write };
	bool ok;

	REQUIRE(s);
	sim_setup(s, seed, p);
	s->verbose = verbose;
	fmt_io.ctx = s;
	REQUIRE(lk_format(&fmt_io, &s->geo) == 0);

	for (unsigned i = 0; i < p->hosts; i++) {
		uint64_t start = p->joins_together ? rng_range(&s->rng, 0, 3 * MS)
						   : rng_range(&s->rng, 0, 5 * SEC);

		s->hosts[i].worker = fiber_new(&s->hosts[i], worker_main, start);
	}
	sim_run(s);
	if (!s->violation[0]) {
		uint64_t v;

		memcpy(&v, s->disk + s->counter_off, 8);
		if (v != s->counter_landed)
			sim_violation(s, "counter %" PRIu64 " after %" PRIu64 " increments landed", v,
				      s->counter_landed);
	}
	ok = !s->violation[0];
	if (!ok && verbose)
		fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, s->violation);
	s->st.end_ns = s->now;
	if (total) {
		uint64_t *dst = (uint64_t *)total, *src = (uint64_t *)&s->st;

		for (size_t i = 0; i < sizeof(s->st) / sizeof(uint64_t); i++)
			dst[i] += src[i];
		if (!ok)
			fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, s->violation);
	}
	REQUIRE((s->live_fibers) == (0));
	REQUIRE((s->nheap) == (0));
	free(s->heap);
	free(s->disk);
	free(s);
	return ok;
}

static unsigned env_uint(const char *name, unsigned def)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 0) : def;
}

static void default_params(struct sim_params *p, uint64_t seed)
{
	uint64_t r = seed * 0x2545f4914f6cdd1dull + 7;

	memset(p, 0, sizeof(*p));
	p->hosts = (unsigned)rng_range(&r, 2, 5);
	p->nslots = p->hosts + (unsigned)rng_range(&r, 0, 2);
	p->nbuckets = (unsigned)rng_range(&r, 1, 3);
	p->ss = rng_next(&r) % 4 ? 512 : 4096;
	lk_timing_default(&p->tim);
	p->run_ns = rng_range(&r, 20, 60) * SEC;
	p->crash_permille = 15;         /* per 100000 steps */
	p->pause_permille = 15;
	p->joins_together = rng_next(&r) % 2;
	p->ioerr_one_in = env_uint("LK_SIM_IOERR", 20000);
}


static void print_stats(const char *what, unsigned seeds, const struct sim_stats *t, double secs)
{
	fprintf(stderr,
		"%s: %u seeds in %.1f s: %" PRIu64 " steps, %" PRIu64 " I/Os (%" PRIu64 " failed), %" PRIu64 " locks (%" PRIu64
		" busy, %" PRIu64 " fenced), %" PRIu64 " increments, %" PRIu64 " joins (%" PRIu64
		" failed), %" PRIu64 " mutex rounds, %" PRIu64 " crashes, %" PRIu64 " pauses, %" PRIu64
		" fenced hosts found out, %" PRIu64 " recoveries, %.0f virtual s\n",
		what, seeds, secs, t->steps, t->ios, t->io_errors, t->locks_ok, t->locks_busy, t->locks_fenced, t->increments,
		t->joins, t->join_fail, t->mutexes, t->crashes, t->pauses, t->fenced_found, t->recoveries,
		(double)t->end_ns / 1e9);
}

START_TEST(sim_many_seeds)
{
	unsigned seeds = env_uint("LK_SIM_SEEDS", 5000), first = env_uint("LK_SIM_FIRST", 0), failed = 0;
	const char *one = getenv("LK_SIM_SEED");
	struct sim_stats tot = { 0 };
	uint64_t t0 = base_mono_ns();
	struct sim_params p;

	if (one && *one) {
		uint64_t seed = strtoull(one, NULL, 0);

		default_params(&p, seed);
		ck_assert_msg(sim_seed(seed, &p, true, &tot), "seed %" PRIu64 " failed", seed);
		print_stats("sim", 1, &tot, (double)(base_mono_ns() - t0) / 1e9);
		return;
	}
	for (unsigned i = 0; i < seeds; i++) {
		default_params(&p, first + i);
		if (!sim_seed(first + i, &p, false, &tot))
			failed++;
	}
	print_stats("sim", seeds, &tot, (double)(base_mono_ns() - t0) / 1e9);
	ck_assert_msg(!failed, "%u of %u seeds violated safety (LK_SIM_SEED=N reproduces one)", failed, seeds);
	/* the runs must have exercised what they claim to */
	ck_assert_uint_gt(tot.increments, 1000);
	ck_assert_uint_gt(tot.crashes, 10);
	ck_assert_uint_gt(tot.recoveries, 5);
	ck_assert_uint_gt(tot.fenced_found, 5);
	ck_assert_uint_gt(tot.locks_busy, 100);
}
END_TEST

/* The checker must be able to fail: a broken protocol has to be caught within a bounded number of seeds. */
static void expect_violation(unsigned faults, bool together, unsigned max_seeds)
{
	struct sim_params p;

	for (unsigned i = 0; i < max_seeds; i++) {
		default_params(&p, 100000 + i);
		p.faults = faults;
		p.joins_together = together;
		p.crash_permille = 0;
		p.pause_permille = 0;
		if (!sim_seed(100000 + i, &p, false, NULL)) {
			fprintf(stderr, "fault 0x%x: violation found at seed %u\n", faults, 100000 + i);
			return;
		}
	}
	ck_abort_msg("fault 0x%x: no violation in %u seeds: the checker cannot see this bug", faults, max_seeds);
}

START_TEST(sim_catches_skipped_phase1)
{
	expect_violation(LK_FAULT_SKIP_PHASE1, false, 300);
}
END_TEST

START_TEST(sim_catches_skipped_delta_delay)
{
	expect_violation(LK_FAULT_SKIP_DELTA_DELAY, true, 300);
}
END_TEST

static Suite *lockmgr_suite(void)
{
	Suite *s = suite_create("lockmgr");
	TCase *tc = tcase_create("records");

	tcase_add_test(tc, timing_defaults_safe);
	tcase_add_test(tc, layout_pure_function);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, format_join_leave);
	tcase_add_test(tc, join_prefers_slots);
	tcase_add_test(tc, lock_modes_and_versions);
	tcase_add_test(tc, table_full_and_gc);
	tcase_add_test(tc, fence_and_recover);
	tcase_add_test(tc, wait_dead_holder);
	tcase_add_test(tc, failed_renewal_fences);
	tcase_add_test(tc, record_by_hand);
	tcase_add_test(tc, torn_table_copy);
	tcase_add_test(tc, check_finds_damage);
	tcase_add_test(tc, watchdog_pets);
	tcase_add_test(tc, threads_two_hosts);
	tcase_add_test(tc, watch_slots);
	suite_add_tcase(s, tc);

	tc = tcase_create("sim");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, sim_many_seeds);
	tcase_add_test(tc, sim_catches_skipped_phase1);
	tcase_add_test(tc, sim_catches_skipped_delta_delay);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lockmgr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
