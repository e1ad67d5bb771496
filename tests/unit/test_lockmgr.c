/*
 * Unit tests for lockmgr/: the records and layout, the API on an in-memory
 * disk (a fake clock for the timing logic, real threads for thread safety),
 * and a deterministic simulator running many hosts of the real lockmgr code
 * against a simulated shared disk (tests/unit/lockmgr/sim.c, whose comment
 * says what it simulates and checks).
 *
 * LK_SIM_SEEDS=N runs N seeds instead of the default 5000 (LK_SIM_FIRST=F
 * starts at seed F instead of 0); LK_SIM_SEED=S runs one seed verbosely, for
 * reproducing a failure; LK_SIM_IOERR=N fails one I/O in N (default 20000; a
 * failed write may or may not have landed).
 */
#include "lockmgr/lockmgr.h"
#include "lockmgr/lockmgr_format.h"
#include "base/base.h"
#include "tests/unit/lockmgr/sim.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static int stop_lock(void *arg, uint64_t res, const struct lk_holder *h, uint64_t version)
{
	(void)arg, (void)res, (void)h, (void)version;
	return 7;
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
	/* a callback that stops the walk has its value returned (vmm run's look tells a holder by it) */
	ck_assert_int_eq(lk_read_locks(&md_io, &md_geo, stop_lock, NULL), 7);

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
