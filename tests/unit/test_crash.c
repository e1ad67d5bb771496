/*
 * Power-cut tests. This file checks the crash engine of the device layer
 * (vmfs/dev_crash.h) on its own (case engine) and builds the suite. The
 * second part (case power_cuts, tests/unit/crash/power.c) runs a
 * deterministic workload (crash/workload.c) through libvmfs on a device that
 * loses power at its k-th write, for hundreds of k spread over the whole
 * workload, reopens the datastore with the normal engine (journal replay) and
 * checks what it finds (crash/check.c) against a model of the workload
 * (crash/model.c). The third part (case regressions, crash/regress.c) holds
 * each library bug the cuts found, reduced to a few calls, and a check that
 * the checks catch injected damage.
 *
 * CRASH_POINTS=N changes how many points the suite runs in all (make
 * crash-long); CRASH_ONLY=config[+round]:k runs one point and keeps its
 * image; CRASH_VERBOSE=1 prints every point (crash/power.c says more).
 */
#include "vmfs/dev_i.h"
#include "vmfs/dev_crash.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"
#include "tests/unit/crash/crash.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- part 1: the crash engine itself ------------------------------------- */

#define EFILE (1u << 20)

static char epath[PATH_MAX + 32];

static void engine_setup(void)
{
	int fd;

	make_tmpdir();
	snprintf(epath, sizeof(epath), "%s/engine.img", tmpdir);
	fd = open(epath, O_CREAT | O_TRUNC | O_RDWR, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, EFILE), 0);
	close(fd);
}

static void engine_teardown(void)
{
	unlink(epath);
	remove_tmpdir();
}

static struct vmfs_dev *crash_open(const struct dev_crash_plan *plan)
{
	struct vmfs_dev *dev = NULL;
	int r = dev_open(epath, 0, "crash", &dev);

	ck_assert_msg(r == 0, "dev_open crash: %s", strerror(-r));
	ck_assert_str_eq(dev_engine_name(dev), "crash");
	if (plan)
		ck_assert_int_eq(dev_crash_arm(dev, plan), 0);
	return dev;
}

/* What the file itself holds, read behind the engine's back. */
static void file_read(void *buf, size_t len, uint64_t off)
{
	int fd = open(epath, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static uint8_t *pattern(size_t len, uint8_t seed)
{
	uint8_t *b = dev_alloc_buf(len);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i * 13 + (i >> 9));
	return b;
}

START_TEST(t_engine_pending_until_flush)
{
	struct vmfs_dev *dev = crash_open(NULL);
	uint8_t *a = pattern(8192, 1), *got = dev_alloc_buf(8192), plain[8192];
	struct dev_crash_stats st;

	ck_assert_int_eq(dev_pwrite(dev, a, 8192, 4096), 0);
	ck_assert_int_eq(dev_pread(dev, got, 8192, 4096), 0);
	ck_assert(memcmp(a, got, 8192) == 0);           /* reads see pending writes */
	file_read(plain, sizeof(plain), 4096);
	ck_assert(is_zero(plain, sizeof(plain)));         /* the file does not, yet */
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), 0);
	ck_assert_uint_eq(st.writes, 1);
	ck_assert_uint_eq(st.pending, 1);
	ck_assert_int_eq(dev_flush(dev), 0);
	file_read(plain, sizeof(plain), 4096);
	ck_assert(memcmp(a, plain, 8192) == 0);
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), 0);
	ck_assert_uint_eq(st.pending, 0);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert(!st.crashed);
	/* a partial overlap of a pending write is patched into what the file holds */
	memset(a, 0x77, 512);
	ck_assert_int_eq(dev_pwrite(dev, a, 512, 4096 + 1024), 0);
	ck_assert_int_eq(dev_pread(dev, got, 4096, 4096), 0);
	ck_assert(memcmp(got, plain, 1024) == 0);
	ck_assert(got[1024] == 0x77 && got[1535] == 0x77);
	ck_assert(memcmp(got + 1536, plain + 1536, 4096 - 1536) == 0);
	dev_close(dev);   /* closing is not a power cut */
	file_read(plain, 512, 4096 + 1024);
	ck_assert(plain[0] == 0x77 && plain[511] == 0x77);
	ck_assert(dev_crash_last_closed(&st) && st.writes == 2 && !st.crashed);
	free(a);
	free(got);
}
END_TEST

START_TEST(t_engine_cut_drops_unflushed)
{
	struct dev_crash_plan plan = { .after_writes = 4, .mode = DEV_CRASH_DROP };
	struct vmfs_dev *dev = crash_open(&plan);
	uint8_t *a = pattern(4096, 3), *b = pattern(4096, 9), *got = dev_alloc_buf(4096), plain[4096];
	struct dev_queue *q;
	struct dev_crash_stats st;

	ck_assert_int_eq(dev_pwrite(dev, a, 4096, 0), 0);        /* 1, flushed */
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_pwrite(dev, b, 4096, 0), 0);        /* 2, lost */
	ck_assert_int_eq(dev_zero_range(dev, 8192, 8192), 0);    /* 3, lost */
	ck_assert_int_eq(dev_pwrite(dev, b, 4096, 65536), -EIO); /* 4: the cut */
	ck_assert_int_eq(dev_pread(dev, got, 4096, 0), -EIO);    /* the machine is off */
	ck_assert_int_eq(dev_pwrite(dev, b, 4096, 0), -EIO);
	ck_assert_int_eq(dev_flush(dev), -EIO);
	ck_assert_int_eq(dev_zero_range(dev, 0, 4096), -EIO);
	ck_assert_int_eq(dev_queue_new(dev, 4, &q), 0);
	{
		struct dev_req req = { .op = DEV_OP_READ, .buf = got, .len = 4096, .off = 0 }, *out[4];

		ck_assert_int_eq(dev_queue_submit(q, &req), 0);
		ck_assert_int_eq(dev_queue_reap(q, 1, 4, out), 1);
		ck_assert_int_eq(out[0]->res, -EIO);
	}
	dev_queue_free(q);
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), 0);
	ck_assert(st.crashed && st.writes == 4 && st.landed == 0 && st.torn == 0);
	dev_close(dev);
	file_read(plain, 4096, 0);
	ck_assert(memcmp(plain, a, 4096) == 0);
	file_read(plain, 4096, 65536);
	ck_assert(is_zero(plain, 4096));
	free(a);
	free(b);
	free(got);
}
END_TEST

/* A torn write lands a sector-granular part of itself: each sector is old or new. */
START_TEST(t_engine_tear)
{
	unsigned partial = 0, none = 0, all = 0;

	for (uint64_t seed = 1; seed <= 64; seed++) {
		struct dev_crash_plan plan = { .after_writes = 2, .mode = DEV_CRASH_TEAR, .seed = seed };
		struct vmfs_dev *dev = crash_open(&plan);
		uint8_t *a = pattern(16384, 5), *b = pattern(16384, 200), plain[16384];
		unsigned news = 0;

		ck_assert_int_eq(dev_pwrite(dev, a, 16384, 0), 0);
		ck_assert_int_eq(dev_flush(dev), 0);
		ck_assert_int_eq(dev_pwrite(dev, b, 16384, 0), -EIO);
		dev_close(dev);
		file_read(plain, sizeof(plain), 0);
		for (unsigned s = 0; s < 16384 / SECTOR; s++) {
			bool old = !memcmp(plain + s * SECTOR, a + s * SECTOR, SECTOR);
			bool new = !memcmp(plain + s * SECTOR, b + s * SECTOR, SECTOR);

			ck_assert_msg(old || new, "seed %llu sector %u is neither old nor new",
				      (unsigned long long)seed, s);
			news += new;
		}
		partial += news > 0 && news < 32;
		none += news == 0;
		all += news == 32;
		free(a);
		free(b);
	}
	ck_assert_msg(partial > 16, "only %u of 64 tears were partial", partial);
	(void)none;
	(void)all;
}
END_TEST

/* PREFIX lands the first i pending writes whole; REORDER any of them. */
START_TEST(t_engine_prefix_and_reorder)
{
	for (int mode = DEV_CRASH_PREFIX; mode <= DEV_CRASH_REORDER; mode++) {
		unsigned seen_partial_set = 0;

		for (uint64_t seed = 1; seed <= 40; seed++) {
			struct dev_crash_plan plan = { .after_writes = 9, .mode = (enum dev_crash_mode)mode,
						       .seed = seed };
			struct vmfs_dev *dev = crash_open(&plan);
			uint8_t *w[8], plain[4096];
			bool landed[8];
			int nland = 0, last = -1;

			for (int i = 0; i < 8; i++) {
				w[i] = pattern(4096, (uint8_t)(i * 31 + 1));
				ck_assert_int_eq(dev_pwrite(dev, w[i], 4096, (uint64_t)i * 4096), 0);
			}
			ck_assert_int_eq(dev_zero_range(dev, 65536, 4096), -EIO);
			dev_close(dev);
			for (int i = 0; i < 8; i++) {
				file_read(plain, 4096, (uint64_t)i * 4096);
				landed[i] = !memcmp(plain, w[i], 4096);
				for (unsigned s = 0; s < 8 && !landed[i]; s++)
					ck_assert(is_zero(plain + s * SECTOR, SECTOR) ||
						  !memcmp(plain + s * SECTOR, w[i] + s * SECTOR, SECTOR));
				if (landed[i]) {
					nland++;
					last = i;
				}
				free(w[i]);
			}
			if (mode == DEV_CRASH_PREFIX)
				ck_assert_msg(nland == last + 1, "seed %llu: landed writes are not a prefix",
					      (unsigned long long)seed);
			seen_partial_set += nland > 0 && nland < 8;
			engine_teardown();
			engine_setup();
		}
		ck_assert(seen_partial_set > 5);
	}
}
END_TEST

START_TEST(t_engine_zero_range_and_growth)
{
	struct vmfs_dev *dev = crash_open(NULL);
	uint8_t *a = pattern(65536, 7), *got = dev_alloc_buf(65536), plain[4096];

	ck_assert_int_eq(dev_pwrite(dev, a, 65536, 0), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_zero_range(dev, 4096, 8192), 0);
	ck_assert_int_eq(dev_pread(dev, got, 65536, 0), 0);
	ck_assert(!memcmp(got, a, 4096) && is_zero(got + 4096, 8192) && !memcmp(got + 12288, a + 12288, 4096));
	/* a write past the end of the file is readable at once, and reaches the file at the flush */
	ck_assert_int_eq(dev_pwrite(dev, a, 4096, EFILE + 8192), 0);
	ck_assert_uint_ge(dev_size(dev), EFILE + 12288);
	ck_assert_int_eq(dev_pread(dev, got, 12288, EFILE), 0);
	ck_assert(is_zero(got, 8192) && !memcmp(got + 8192, a, 4096));
	ck_assert_int_eq(dev_pread(dev, got, 4096, EFILE + 12288), -EIO);  /* past every end */
	ck_assert_int_eq(dev_flush(dev), 0);
	file_read(plain, 4096, 4096);
	ck_assert(is_zero(plain, 4096));
	file_read(plain, 4096, EFILE + 8192);
	ck_assert(!memcmp(plain, a, 4096));
	dev_close(dev);
	free(a);
	free(got);
}
END_TEST

START_TEST(t_engine_queue_and_batches)
{
	struct dev_crash_plan plan = { .after_writes = 7 };
	struct vmfs_dev *dev = crash_open(&plan);
	uint8_t *bufs[6], *got = dev_alloc_buf(4096);
	struct dev_req reqs[3], *out[8];
	struct dev_queue *q;
	int n = 0;

	for (int i = 0; i < 6; i++)
		bufs[i] = pattern(4096, (uint8_t)(i + 40));
	for (int i = 0; i < 3; i++)       /* writes 1..3, as one batch */
		reqs[i] = (struct dev_req){ .op = DEV_OP_WRITE, .buf = bufs[i], .len = 4096, .off = i * 4096ull };
	ck_assert_int_eq(dev_submit_wait(dev, reqs, 3), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_queue_new(dev, 8, &q), 0);
	for (int i = 0; i < 3; i++) {     /* writes 4..6 through the queue */
		reqs[i] = (struct dev_req){ .op = DEV_OP_WRITE, .buf = bufs[3 + i], .len = 4096,
					    .off = (3 + i) * 4096ull };
		ck_assert_int_eq(dev_queue_submit(q, &reqs[i]), 0);
	}
	while (n < 3) {
		int r = dev_queue_reap(q, 1, 8, out);

		ck_assert_int_ge(r, 1);
		for (int i = 0; i < r; i++)
			ck_assert_int_eq(out[i]->res, 0);
		n += r;
	}
	reqs[0] = (struct dev_req){ .op = DEV_OP_READ, .buf = got, .len = 4096, .off = 4 * 4096 };
	ck_assert_int_eq(dev_queue_submit(q, &reqs[0]), 0);
	ck_assert_int_eq(dev_queue_reap(q, 1, 8, out), 1);
	ck_assert_int_eq(out[0]->res, 0);
	ck_assert(!memcmp(got, bufs[4], 4096));
	reqs[0] = (struct dev_req){ .op = DEV_OP_WRITE, .buf = bufs[0], .len = 4096, .off = 0 };  /* 7: cut */
	ck_assert_int_eq(dev_queue_submit(q, &reqs[0]), 0);
	ck_assert_int_eq(dev_queue_reap(q, 1, 8, out), 1);
	ck_assert_int_eq(out[0]->res, -EIO);
	dev_queue_free(q);
	dev_close(dev);
	for (int i = 0; i < 6; i++) {
		uint8_t plain[4096];

		file_read(plain, 4096, i * 4096ull);
		ck_assert(i < 3 ? !memcmp(plain, bufs[i], 4096) : is_zero(plain, 4096));
		free(bufs[i]);
	}
	free(got);
}
END_TEST

struct thr_arg {
	struct vmfs_dev *dev;
	int id;
	int err;
};

static void *engine_thread(void *p)
{
	struct thr_arg *a = p;
	uint8_t *buf = pattern(4096, (uint8_t)a->id), *got = dev_alloc_buf(4096);

	for (int i = 0; i < 200 && !a->err; i++) {
		uint64_t off = ((uint64_t)a->id * 50 + (unsigned)i % 50) * 4096;   /* 4 disjoint regions */

		buf[0] = (uint8_t)i;
		a->err = dev_pwrite(a->dev, buf, 4096, off);
		if (!a->err)
			a->err = dev_pread(a->dev, got, 4096, off);
		if (!a->err && memcmp(buf, got, 4096))
			a->err = -EILSEQ;
		if (!a->err && i % 50 == 0)
			a->err = dev_flush(a->dev);
	}
	free(buf);
	free(got);
	return NULL;
}

START_TEST(t_engine_threads)
{
	struct vmfs_dev *dev = crash_open(NULL);
	struct thr_arg args[4];
	pthread_t t[4];
	struct dev_crash_stats st;

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, engine_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(args[i].err == 0, "thread %d: %s", i, strerror(-args[i].err));
	}
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), 0);
	ck_assert_uint_eq(st.writes, 800);
	dev_close(dev);
}
END_TEST

/* The plan through the environment, as libvmfs opens its device on its own. */
START_TEST(t_engine_env_plan)
{
	struct vmfs_dev *dev = NULL;
	uint8_t *a = pattern(4096, 11);
	struct dev_crash_stats st;

	setenv("VMFS_IO_ENGINE", "crash", 1);
	setenv("VMFS_CRASH_AFTER_WRITES", "3", 1);
	setenv("VMFS_CRASH_TEAR", "1", 1);
	setenv("VMFS_CRASH_SEED", "77", 1);
	ck_assert_int_eq(dev_open(epath, 0, NULL, &dev), 0);
	ck_assert_str_eq(dev_engine_name(dev), "crash");
	ck_assert_int_eq(dev_pwrite(dev, a, 4096, 0), 0);
	ck_assert_int_eq(dev_pwrite(dev, a, 4096, 4096), 0);
	ck_assert_int_eq(dev_pwrite(dev, a, 4096, 8192), -EIO);
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), 0);
	ck_assert(st.crashed && st.torn == 1);
	dev_close(dev);
	setenv("VMFS_CRASH_MODE", "sideways", 1);
	ck_assert_int_eq(dev_open(epath, 0, NULL, &dev), -EINVAL);
	setenv("VMFS_CRASH_MODE", "reorder", 1);
	setenv("VMFS_CRASH_AFTER_WRITES", "x1", 1);
	ck_assert_int_eq(dev_open(epath, 0, NULL, &dev), -EINVAL);
	unsetenv("VMFS_IO_ENGINE");
	unsetenv("VMFS_CRASH_AFTER_WRITES");
	unsetenv("VMFS_CRASH_TEAR");
	unsetenv("VMFS_CRASH_SEED");
	unsetenv("VMFS_CRASH_MODE");
	/* other engines have no crash state */
	ck_assert_int_eq(dev_open(epath, 0, "sync", &dev), 0);
	ck_assert_int_eq(dev_crash_now(dev), -EINVAL);
	ck_assert_int_eq(dev_crash_get_stats(dev, &st), -EINVAL);
	dev_close(dev);
	free(a);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("engine");

	tcase_add_checked_fixture(tc, engine_setup, engine_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t_engine_pending_until_flush);
	tcase_add_test(tc, t_engine_cut_drops_unflushed);
	tcase_add_test(tc, t_engine_tear);
	tcase_add_test(tc, t_engine_prefix_and_reorder);
	tcase_add_test(tc, t_engine_zero_range_and_growth);
	tcase_add_test(tc, t_engine_queue_and_batches);
	tcase_add_test(tc, t_engine_threads);
	tcase_add_test(tc, t_engine_env_plan);
	suite_add_tcase(s, tc);

	tc = tcase_create("regressions");
	crash_regress_tests(tc);
	suite_add_tcase(s, tc);

	tc = tcase_create("power_cuts");
	crash_power_tests(tc);
	suite_add_tcase(s, tc);

	tc = tcase_create("snap_cuts");
	crash_snap_tests(tc);
	suite_add_tcase(s, tc);

	tc = tcase_create("enc_cuts");
	crash_enc_tests(tc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crash_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tmpdir();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
