/*
 * Power-cut tests. The first part checks the crash engine of the device layer
 * (vmfs/dev_i.h) on its own. The second runs a deterministic workload through
 * libvmfs on a device that loses power at its k-th write, for hundreds of k
 * spread over the whole workload, reopens the datastore with the normal engine
 * (journal replay) and checks what it finds against a model of the workload.
 *
 * The model. Byte o of file f, as put there by f's g-th write, is
 * data_byte(f, g, o), so every byte read back names where it may come from. A
 * durable point is an fsync or sync that returned 0 and, with commit_ms = 0,
 * every completed change (each commits before it returns). After the cut the
 * datastore must hold a state of the window from the last durable point to the
 * end of the operation the cut interrupted: the namespace is the one after some
 * operation of the window, every file's size is one it had in the window, and
 * every byte is what the durable state held there, what a write of the window
 * put there, or zero where the window zeroed (truncate, punch, zero range,
 * extension). Files untouched in the window therefore come back exactly.
 *
 * After that check: every file grows to zeros, a clean close, no space leaked
 * once everything is removed, and a journal found clean by a read-only open.
 * When fsck.vmfs is built, fsck.vmfs -n must find the image clean both as the
 * cut left it (it replays in memory) and after the checks (on one point in
 * CRASH_FSCK_EVERY, default every point).
 *
 * Every cut point runs in a child process of its own on a fresh datastore in
 * /dev/shm, up to one child per CPU. CRASH_POINTS=N changes how many points the
 * suite runs in all (make crash-long: further rounds use other workload seeds);
 * CRASH_ONLY=config[+round]:k runs one point and keeps its image; CRASH_VERBOSE=1
 * prints every point. The third part holds each library bug the cuts found,
 * reduced to a few calls, and a check that the checks catch injected damage.
 */
#include "vmfs/dev_i.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"

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

#define SECTOR 512u
#define MIB (1ull << 20)
#define IMG_SIZE (128 * MIB)
#define DEFAULT_POINTS 720        /* cut points in all for make test */

static char tmpdir[PATH_MAX];

/* ---- helpers ------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Deterministic choices: a plain counter through mix64. */
struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	return mix64(r->s += 0x9E3779B97F4A7C15ull);
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static uint64_t between(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + below(r, hi - lo + 1);
}

/* The byte that write generation g of file f puts at offset o: never zero. */
static uint8_t data_byte(unsigned f, uint32_t g, uint64_t o)
{
	uint64_t w = mix64(((uint64_t)f << 48) ^ ((uint64_t)g << 32) ^ (o >> 3) ^ 0x5bd1e995ull);
	uint8_t b = (uint8_t)(w >> ((o & 7) * 8));

	return b ? b : 0xa5;
}

static void data_fill(uint8_t *buf, unsigned f, uint32_t g, uint64_t off, size_t len)
{
	size_t i = 0;

	for (; i < len && ((off + i) & 7); i++)
		buf[i] = data_byte(f, g, off + i);
	for (; i + 8 <= len; i += 8) {   /* one hash per word, as data_byte computes it */
		uint64_t w = mix64(((uint64_t)f << 48) ^ ((uint64_t)g << 32) ^ ((off + i) >> 3) ^ 0x5bd1e995ull);

		for (unsigned b = 0; b < 8; b++) {
			uint8_t v = (uint8_t)(w >> (b * 8));

			buf[i + b] = v ? v : 0xa5;
		}
	}
	for (; i < len; i++)
		buf[i] = data_byte(f, g, off + i);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The model's own invariants. The power-cut children run outside Check's
 * reach, so a broken one aborts the child, which the parent reports.
 */
static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "test_crash: %s\n", what);
		abort();
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	must(p != NULL, "out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	must(p != NULL, "out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	must(p != NULL, "out of memory");
	return p;
}

static void make_tmpdir(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/var/tmp";

	if (tmpdir[0])
		return;
	snprintf(tmpdir, sizeof(tmpdir), "%s/vmfs-test-crash.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	DIR *d;
	struct dirent *e;
	char p[PATH_MAX + 300];

	if (!tmpdir[0])
		return;
	d = opendir(tmpdir);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
	tmpdir[0] = 0;
}

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

static bool is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
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

/* ---- part 2: the model ----------------------------------------------------- */

#define MAX_OBJS 96
#define MAX_DENTS 96
#define NAME_LEN 32
#define ROOT 0                    /* object 0 is the root directory, 1 lost+found */

/* A file's bytes as runs of write generations; gaps read as zeros. */
struct seg {
	uint64_t start, end;
	uint32_t gen;
};

struct segmap {
	struct seg *v;
	size_t n;
};

/* What the window did to a file: a write (gen > 0) or a zeroing (gen 0) of [start, end). */
struct event {
	uint64_t start, end;
	uint32_t gen;
};

enum obj_type { T_FILE, T_DIR, T_LINK };

struct obj {
	enum obj_type type;
	uint64_t ino, igen;       /* vmfs identity; ino 0 until known */
	unsigned names;           /* entries naming it now */
	unsigned refs;            /* lookup references the workload holds */
	char *target;             /* symlinks */
	/* regular files: now, at the last durable point, and since it */
	uint32_t wgen;
	uint64_t size, dsize;
	struct segmap cur, dur;
	struct event *ev;
	size_t nev;
	uint64_t *sizes;
	size_t nsizes;
};

struct dent {
	int dir, obj;
	char name[NAME_LEN];
};

struct model {
	struct obj o[MAX_OBJS];
	int nobj;
	struct dent d[MAX_DENTS];
	int nd;
	char **ns;                /* namespaces after each operation of the window, [0] durable */
	size_t nns;
	int pending_obj;          /* created by the operation in flight (identity unknown) */
	unsigned ops, durable_ops;
};

/* Sets [start, end) to generation gen (0: zeros). Runs stay sorted and disjoint. */
static void map_set(struct segmap *m, uint64_t start, uint64_t end, uint32_t gen)
{
	struct seg *v;
	size_t n = 0;

	if (start >= end)
		return;
	v = xmalloc((m->n + 2) * sizeof(*v));
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].end <= start)
			v[n++] = m->v[i];
		else if (m->v[i].start < start && m->v[i].end > start)
			v[n++] = (struct seg){ m->v[i].start, start, m->v[i].gen };
	}
	if (gen)
		v[n++] = (struct seg){ start, end, gen };
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].start >= end)
			v[n++] = m->v[i];
		else if (m->v[i].end > end && m->v[i].start < end)
			v[n++] = (struct seg){ end, m->v[i].end, m->v[i].gen };
	}
	free(m->v);
	m->v = v;
	m->n = n;
}

static void map_copy(struct segmap *to, const struct segmap *from)
{
	free(to->v);
	to->v = xmalloc(from->n * sizeof(*to->v));
	if (from->n)
		memcpy(to->v, from->v, from->n * sizeof(*to->v));
	to->n = from->n;
}

static void obj_event(struct obj *o, uint64_t start, uint64_t end, uint32_t gen)
{
	if (start >= end)
		return;
	o->ev = xrealloc(o->ev, (o->nev + 1) * sizeof(*o->ev));
	o->ev[o->nev++] = (struct event){ start, end, gen };
}

static void obj_size(struct obj *o, uint64_t size)
{
	o->size = size;
	o->sizes = xrealloc(o->sizes, (o->nsizes + 1) * sizeof(*o->sizes));
	o->sizes[o->nsizes++] = size;
}

static int dent_cmp(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	return x->dir != y->dir ? x->dir - y->dir : strcmp(x->name, y->name);
}

/* The namespace as one canonical string: "dir/name=obj;" sorted. */
static char *ns_string(const struct dent *d, int n)
{
	struct dent *s = xmalloc((size_t)n * sizeof(*s));
	size_t cap = (size_t)n * (NAME_LEN + 24) + 1, len = 0;
	char *out = xmalloc(cap);

	memcpy(s, d, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), dent_cmp);
	out[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%d/%s=%d;", s[i].dir, s[i].name, s[i].obj);
	free(s);
	return out;
}

static void ns_push(struct model *m)
{
	m->ns = xrealloc(m->ns, (m->nns + 1) * sizeof(*m->ns));
	m->ns[m->nns++] = ns_string(m->d, m->nd);
}

/* Everything so far is durable: the window starts again here. */
static void model_durable(struct model *m)
{
	for (int i = 0; i < m->nobj; i++) {
		struct obj *o = &m->o[i];

		map_copy(&o->dur, &o->cur);
		o->dsize = o->size;
		o->nev = 0;
		o->nsizes = 0;
		obj_size(o, o->size);
	}
	for (size_t i = 0; i < m->nns; i++)
		free(m->ns[i]);
	m->nns = 0;
	ns_push(m);
	m->durable_ops = m->ops;
}

static void model_release(struct model *m)
{
	for (int i = 0; i < m->nobj; i++) {
		free(m->o[i].cur.v);
		free(m->o[i].dur.v);
		free(m->o[i].ev);
		free(m->o[i].sizes);
		free(m->o[i].target);
	}
	for (size_t i = 0; i < m->nns; i++)
		free(m->ns[i]);
	free(m->ns);
	memset(m, 0, sizeof(*m));
}

static int model_new_obj(struct model *m, enum obj_type t)
{
	struct obj *o;

	must(m->nobj < MAX_OBJS, "too many objects for the model");
	o = &m->o[m->nobj];
	memset(o, 0, sizeof(*o));
	o->type = t;
	obj_size(o, 0);
	return m->nobj++;
}

static int dent_find(const struct model *m, int dir, const char *name)
{
	for (int i = 0; i < m->nd; i++)
		if (m->d[i].dir == dir && !strcmp(m->d[i].name, name))
			return i;
	return -1;
}

static void dent_add(struct model *m, int dir, const char *name, int obj)
{
	must(m->nd < MAX_DENTS, "too many names for the model");
	m->d[m->nd].dir = dir;
	m->d[m->nd].obj = obj;
	snprintf(m->d[m->nd].name, NAME_LEN, "%s", name);
	m->nd++;
	m->o[obj].names++;
}

static void dent_del(struct model *m, int i)
{
	m->o[m->d[i].obj].names--;
	m->d[i] = m->d[--m->nd];
}

static void model_write(struct obj *o, unsigned id, uint64_t off, size_t len)
{
	(void)id;
	o->wgen++;
	if (off > o->size)
		obj_event(o, o->size, off, 0);   /* the gap reads as zeros */
	map_set(&o->cur, off, off + len, o->wgen);
	obj_event(o, off, off + len, o->wgen);
	obj_size(o, max_u64(o->size, off + len));
}

/* ---- part 2: the workload ------------------------------------------------- */

#define WBUF_MAX (3 * MIB)
#define RBUF_MAX (6 * MIB)
#define STEPS 150
#define MAX_FILES 14
#define MAX_DIRS 8

enum size_class { SC_INLINE, SC_SMALL, SC_LARGE };
static const uint64_t class_cap[] = { 2600, 1300 * 1024, 5 * MIB };

struct config {
	const char *name;
	unsigned commit_ms;
	enum dev_crash_mode mode;
	uint64_t seed;             /* the workload's choices */
	unsigned weight;           /* share of the cut points */
};

static const struct config configs[] = {
	{ "c0-drop", 0, DEV_CRASH_DROP, 11, 30 },
	{ "c60k-drop", 60000, DEV_CRASH_DROP, 12, 30 },
	{ "c0-tear", 0, DEV_CRASH_TEAR, 13, 15 },
	{ "c60k-tear", 60000, DEV_CRASH_TEAR, 14, 15 },
	{ "c60k-prefix", 60000, DEV_CRASH_PREFIX, 15, 5 },
	{ "c0-reorder", 0, DEV_CRASH_REORDER, 16, 5 },
};

static const uint8_t test_uuid[16] = { 0xc4, 0xa5, 0x11, 0x0f, 0xf0, 0x0d, 0x42, 0x17,
				       0x9b, 0x3e, 0x55, 0x01, 0x7c, 0x66, 0x20, 0x26 };

struct run {
	const struct config *cfg;
	struct vmfs *fs;
	struct vmfs_aio *aio;
	struct model m;
	struct rng rng;
	uint8_t *buf, *rbuf, *ebuf;
	unsigned fresh;                 /* counter for new names */
	enum size_class cls[MAX_OBJS];
	char op[200];                   /* the operation in flight */
	char why[2048];                 /* what went wrong, when something did */
	struct {
		char name[16];
		unsigned n;
	} hist[24];                     /* operations by kind (CRASH_VERBOSE) */
};

static void say(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct run *r, const char *fmt, ...)
{
	size_t len = strlen(r->why);
	va_list ap;

	if (len + 2 >= sizeof(r->why))
		return;
	if (len)
		r->why[len++] = '\n', r->why[len] = 0;
	va_start(ap, fmt);
	vsnprintf(r->why + len, sizeof(r->why) - len, fmt, ap);
	va_end(ap);
}

static void set_op(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_op(struct run *r, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(r->op, sizeof(r->op), "op %u: ", r->m.ops);

	va_start(ap, fmt);
	vsnprintf(r->op + n, sizeof(r->op) - (size_t)n, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < sizeof(r->hist) / sizeof(r->hist[0]); i++) {
		size_t len = strcspn(r->op + n, " ");

		if (len >= sizeof(r->hist[i].name))
			len = sizeof(r->hist[i].name) - 1;
		if (!r->hist[i].name[0])
			memcpy(r->hist[i].name, r->op + n, len);
		if (!strncmp(r->hist[i].name, r->op + n, len) && !r->hist[i].name[len]) {
			r->hist[i].n++;
			break;
		}
	}
}

static bool commits(const struct run *r)
{
	return r->cfg->commit_ms == 0;
}

/*
 * Ends an operation of the workload: records the namespace it left (the
 * window holds the state after the interrupted operation too); on success,
 * starts a new window when the operation is a durable point.
 */
static int op_done(struct run *r, int ret, bool durable)
{
	ns_push(&r->m);
	r->m.ops++;
	if (ret < 0)
		return ret;
	if (durable)
		model_durable(&r->m);
	return 0;
}

static uint64_t ino_of(struct run *r, int obj)
{
	return obj == ROOT ? vmfs_root_ino(r->fs) : r->m.o[obj].ino;
}

static int x_create(struct run *r, int dir, enum obj_type t)
{
	struct model *m = &r->m;
	char name[NAME_LEN], target[3200];
	struct vmfs_stat st;
	int id = model_new_obj(m, t), ret = 0;
	struct obj *o = &m->o[id];

	snprintf(name, sizeof(name), "%c%u", t == T_DIR ? 'd' : t == T_LINK ? 'l' : 'f', r->fresh++);
	dent_add(m, dir, name, id);
	if (t == T_FILE) {
		uint64_t c = below(&r->rng, 10);

		r->cls[id] = c < 3 ? SC_INLINE : c < 6 ? SC_SMALL : SC_LARGE;
	}
	if (t == T_LINK) {
		size_t len = below(&r->rng, 2) ? between(&r->rng, 3000, 3100) : between(&r->rng, 1, 200);

		for (size_t i = 0; i < len; i++)
			target[i] = (char)('a' + (id * 7 + i) % 26);
		target[len] = 0;
		o->target = xstrdup(target);
	}
	set_op(r, "create %s %d/%s (object %d)", t == T_DIR ? "dir" : t == T_LINK ? "symlink" : "file",
	       dir, name, id);
	if (t == T_DIR)
		ret = vmfs_mkdir(r->fs, ino_of(r, dir), name, 0755, 0, 0, &st);
	else if (t == T_LINK)
		ret = vmfs_symlink(r->fs, ino_of(r, dir), name, target, 0, 0, &st);
	else
		ret = vmfs_mknod(r->fs, ino_of(r, dir), name, S_IFREG | 0644, 0, 0, &st);
	if (!ret) {
		o->ino = st.ino;
		o->igen = st.gen;
		/* keep the reference of the create now and then, as a kernel holding the dentry would */
		if (t == T_FILE && below(&r->rng, 10) < 3)
			o->refs = 1;
		else
			vmfs_forget(r->fs, st.ino, 1);
	}
	return op_done(r, ret, commits(r));
}

static int x_write(struct run *r, int id, uint64_t off, size_t len, bool aio)
{
	struct obj *o = &r->m.o[id];
	ssize_t n;
	int ret;

	model_write(o, (unsigned)id, off, len);
	data_fill(r->buf, (unsigned)id, o->wgen, off, len);
	set_op(r, "%s object %d [%llu, +%zu) gen %u", aio ? "aio write" : "write", id,
	       (unsigned long long)off, len, o->wgen);
	if (aio) {
		struct vmfs_aio_req req = { .ino = o->ino, .write = true, .buf = r->buf, .len = len, .off = off };
		struct vmfs_aio_req *out[1];
		int got = vmfs_aio_submit(r->aio, &req);

		if (!got)
			got = vmfs_aio_reap(r->aio, 1, out, 1);
		n = got < 0 ? got : got != 1 ? -EIO : out[0]->res;
	} else {
		n = vmfs_pwrite(r->fs, o->ino, r->buf, len, off);
	}
	ret = n < 0 ? (int)n : (size_t)n != len ? -EIO : 0;
	/* an asynchronous overwrite commits nothing, so it is durable only at the next commit */
	return op_done(r, ret, !aio && commits(r));
}

static void model_truncate(struct obj *o, uint64_t size)
{
	if (size < o->size) {
		map_set(&o->cur, size, o->size, 0);
		obj_event(o, size, o->size, 0);
	} else {
		obj_event(o, o->size, size, 0);
	}
	obj_size(o, size);
}

static int x_truncate(struct run *r, int id, uint64_t size)
{
	struct obj *o = &r->m.o[id];
	struct vmfs_stat st = { .size = size };

	set_op(r, "truncate object %d from %llu to %llu", id, (unsigned long long)o->size,
	       (unsigned long long)size);
	model_truncate(o, size);
	return op_done(r, vmfs_setattr(r->fs, o->ino, &st, VMFS_SET_SIZE, NULL), commits(r));
}

static int x_falloc(struct run *r, int id, int mode, uint64_t off, uint64_t len)
{
	struct obj *o = &r->m.o[id];
	uint64_t end = off + len, e = min_u64(end, o->size);

	set_op(r, "fallocate object %d mode 0x%x [%llu, +%llu) size %llu", id, mode,
	       (unsigned long long)off, (unsigned long long)len, (unsigned long long)o->size);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			e = end;
		if (off < e) {
			map_set(&o->cur, off, e, 0);
			obj_event(o, off, e, 0);
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > o->size) {
		obj_event(o, o->size, end, 0);
		obj_size(o, end);
	}
	return op_done(r, vmfs_fallocate(r->fs, o->ino, mode, off, len), commits(r));
}

static int x_rename(struct run *r, int src, int ndir, const char *nname)
{
	struct model *m = &r->m;
	struct dent s = m->d[src];
	int dst = dent_find(m, ndir, nname), ret;

	set_op(r, "rename %d/%s -> %d/%s%s", s.dir, s.name, ndir, nname, dst >= 0 ? " (replacing)" : "");
	if (dst >= 0) {
		dent_del(m, dst);
		src = dent_find(m, s.dir, s.name);
	}
	m->d[src].dir = ndir;
	snprintf(m->d[src].name, NAME_LEN, "%s", nname);
	ret = vmfs_rename(r->fs, ino_of(r, s.dir), s.name, ino_of(r, ndir), nname, 0);
	return op_done(r, ret, commits(r));
}

static int x_remove(struct run *r, int i)
{
	struct model *m = &r->m;
	struct dent d = m->d[i];
	bool dir = m->o[d.obj].type == T_DIR;
	int ret;

	set_op(r, "%s %d/%s (object %d)", dir ? "rmdir" : "unlink", d.dir, d.name, d.obj);
	dent_del(m, i);
	if (dir)
		ret = vmfs_rmdir(r->fs, ino_of(r, d.dir), d.name);
	else
		ret = vmfs_unlink(r->fs, ino_of(r, d.dir), d.name);
	return op_done(r, ret, commits(r));
}

static int x_link(struct run *r, int id, int dir)
{
	char name[NAME_LEN];
	struct vmfs_stat st;
	int ret;

	snprintf(name, sizeof(name), "h%u", r->fresh++);
	set_op(r, "link object %d as %d/%s", id, dir, name);
	dent_add(&r->m, dir, name, id);
	ret = vmfs_link(r->fs, r->m.o[id].ino, ino_of(r, dir), name, &st);
	if (!ret)
		vmfs_forget(r->fs, st.ino, 1);
	return op_done(r, ret, commits(r));
}

/* Takes a lookup reference on a name, as an open file would hold it. */
static int x_hold(struct run *r, int i)
{
	struct dent d = r->m.d[i];
	struct vmfs_stat st;
	int ret;

	set_op(r, "lookup %d/%s (object %d) and hold it", d.dir, d.name, d.obj);
	ret = vmfs_lookup(r->fs, ino_of(r, d.dir), d.name, &st);
	if (!ret && (st.ino != r->m.o[d.obj].ino || st.gen != r->m.o[d.obj].igen)) {
		say(r, "lookup %d/%s found inode %llu, expected %llu", d.dir, d.name,
		    (unsigned long long)st.ino, (unsigned long long)r->m.o[d.obj].ino);
		ret = -EILSEQ;
	}
	if (!ret)
		r->m.o[d.obj].refs++;
	return op_done(r, ret, false);
}

/* vmfs_forget cannot fail, so it is never a durable point: a cut inside it shows up later. */
static int x_forget(struct run *r, int id)
{
	set_op(r, "forget object %d (%u names)", id, r->m.o[id].names);
	vmfs_forget(r->fs, r->m.o[id].ino, 1);
	r->m.o[id].refs--;
	return op_done(r, 0, false);
}

static int x_fsync(struct run *r, int id)
{
	int ret;

	if (id < 0) {
		set_op(r, "sync");
		ret = vmfs_sync(r->fs);
	} else {
		set_op(r, "fsync object %d", id);
		ret = vmfs_fsync(r->fs, r->m.o[id].ino, below(&r->rng, 2));
	}
	return op_done(r, ret, true);
}

/* The expected bytes [off, off+len) of a file as the model has it now. */
static void model_bytes(const struct obj *o, unsigned id, const struct segmap *map, uint8_t *buf,
			uint64_t off, size_t len)
{
	memset(buf, 0, len);
	for (size_t i = 0; i < map->n; i++) {
		uint64_t a = max_u64(map->v[i].start, off), b = min_u64(map->v[i].end, off + len);

		if (a < b)
			data_fill(buf + (a - off), id, map->v[i].gen, a, (size_t)(b - a));
	}
	(void)o;
}

/* Reads a file back during the workload: what was written must read back now. */
static int x_readback(struct run *r, int id)
{
	struct obj *o = &r->m.o[id];
	struct vmfs_stat st;
	ssize_t n;
	int ret;

	set_op(r, "read back object %d (%llu bytes)", id, (unsigned long long)o->size);
	ret = vmfs_getattr(r->fs, o->ino, &st);
	if (!ret && st.size != o->size) {
		say(r, "object %d: size %llu, expected %llu, without a crash", id,
		    (unsigned long long)st.size, (unsigned long long)o->size);
		return op_done(r, -EILSEQ, false);
	}
	if (ret)
		return op_done(r, ret, false);
	n = vmfs_pread(r->fs, o->ino, r->rbuf, o->size, 0);
	if (n < 0)
		return op_done(r, (int)n, false);
	model_bytes(o, (unsigned)id, &o->cur, r->ebuf, 0, o->size);
	if ((size_t)n != o->size || memcmp(r->rbuf, r->ebuf, o->size)) {
		size_t i = 0;

		while (i < (size_t)n && r->rbuf[i] == r->ebuf[i])
			i++;
		say(r, "object %d: read back %zd bytes differing at %zu, without a crash", id, n, i);
		return op_done(r, -EILSEQ, false);
	}
	return op_done(r, 0, false);
}

/* ---- choosing the next operation ---- */

static int count_type(struct run *r, enum obj_type t, bool linked)
{
	int n = 0;

	for (int i = 0; i < r->m.nobj; i++)
		n += r->m.o[i].type == t && (r->m.o[i].names || (!linked && r->m.o[i].refs));
	return n;
}

/* A random object of type t that has a name (or, unless linked, at least a reference). */
static int pick_obj(struct run *r, enum obj_type t, bool linked)
{
	int n = count_type(r, t, linked), k;

	if (!n)
		return -1;
	k = (int)below(&r->rng, (uint64_t)n);
	for (int i = 0; i < r->m.nobj; i++)
		if (r->m.o[i].type == t && (r->m.o[i].names || (!linked && r->m.o[i].refs)) && k-- == 0)
			return i;
	return -1;
}

/* A directory to create in: the root or one of the workload's. */
static int pick_dir(struct run *r)
{
	int n = count_type(r, T_DIR, true) - 1, k;   /* not lost+found */

	k = (int)below(&r->rng, (uint64_t)n + 1);
	if (k == 0)
		return ROOT;
	for (int i = 2; i < r->m.nobj; i++)
		if (r->m.o[i].type == T_DIR && r->m.o[i].names && --k == 0)
			return i;
	return ROOT;
}

/* A random entry naming an object of type t, never lost+found. */
static int pick_dent(struct run *r, enum obj_type t)
{
	int n = 0, k;

	for (int i = 0; i < r->m.nd; i++)
		n += r->m.d[i].obj != 1 && r->m.o[r->m.d[i].obj].type == t;
	if (!n)
		return -1;
	k = (int)below(&r->rng, (uint64_t)n);
	for (int i = 0; i < r->m.nd; i++)
		if (r->m.d[i].obj != 1 && r->m.o[r->m.d[i].obj].type == t && k-- == 0)
			return i;
	return -1;
}

static bool dir_empty(struct run *r, int obj)
{
	for (int i = 0; i < r->m.nd; i++)
		if (r->m.d[i].dir == obj)
			return false;
	return true;
}

/* Is obj the directory anc or below it? */
static bool within(struct run *r, int obj, int anc)
{
	for (int depth = 0; depth < MAX_OBJS; depth++) {
		int parent = -1;

		if (obj == anc)
			return true;
		if (obj == ROOT)
			return false;
		for (int i = 0; i < r->m.nd; i++)
			if (r->m.d[i].obj == obj)
				parent = r->m.d[i].dir;
		if (parent < 0)
			return false;
		obj = parent;
	}
	return false;
}

static void clamp_range(uint64_t cap, uint64_t *off, uint64_t *len)
{
	if (*len > cap)
		*len = cap;
	if (*len == 0)
		*len = 1;
	if (*off + *len > cap)
		*off = cap - *len;
}

static int step_write(struct run *r, int id, bool aio)
{
	struct obj *o = &r->m.o[id];
	uint64_t cap = class_cap[r->cls[id]], size = o->size, off = 0, len = 1;
	struct rng *g = &r->rng;

	if (aio && size >= 4096) {   /* aligned overwrites: the asynchronous path */
		off = 4096 * below(g, size / 4096);
		len = 4096 * between(g, 1, 16);
		if (off + len > size)
			len = (size - off) / 4096 * 4096;
		return x_write(r, id, off, (size_t)len, true);
	}
	if (r->cls[id] == SC_INLINE) {
		off = below(g, 1500);
		len = between(g, 1, below(g, 8) ? 500 : 1100);
	} else {
		switch (below(g, 7)) {
		case 0:   /* tiny */
			off = below(g, min_u64(size + 64, cap - 1));
			len = between(g, 1, 64);
			break;
		case 1:   /* sub-block, unaligned */
			off = below(g, min_u64(size + 4096, cap - 1));
			len = between(g, 100, 4000);
			break;
		case 2:   /* exactly one 4 KiB sub-block */
			off = 4096 * below(g, min_u64(size + 8192, cap) / 4096);
			len = 4096;
			break;
		case 3:   /* exactly one file block */
			off = MIB * below(g, min_u64(size + 2 * MIB, cap) / MIB + 1);
			len = MIB;
			break;
		case 4:   /* several blocks */
			off = below(g, size + 1);
			len = between(g, MIB + MIB / 8, 5 * MIB / 2);
			break;
		case 5:   /* across a block boundary */
			off = MIB * between(g, 1, 4) - between(g, 1, 5000);
			len = between(g, 2, 12000);
			break;
		default:  /* whole sectors */
			off = below(g, size + 1) & ~(uint64_t)(SECTOR - 1);
			len = SECTOR * between(g, 1, 16);
			break;
		}
	}
	clamp_range(cap, &off, &len);
	return x_write(r, id, off, (size_t)len, false);
}

static int step_truncate(struct run *r, int id)
{
	uint64_t cap = class_cap[r->cls[id]], size = r->m.o[id].size, to;
	struct rng *g = &r->rng;

	switch (below(g, 6)) {
	case 0:
		to = 0;
		break;
	case 1:
	case 2:
		to = below(g, size + 1);
		break;
	case 3:
		to = size / 4096 * 4096;
		break;
	default:
		to = between(g, size, cap);
		break;
	}
	return x_truncate(r, id, to);
}

static int step_falloc(struct run *r, int id)
{
	uint64_t cap = class_cap[r->cls[id]], size = r->m.o[id].size, off, len;
	struct rng *g = &r->rng;
	int mode;

	switch (below(g, 5)) {
	case 0:   /* preallocate, growing the size */
		mode = 0;
		off = below(g, size + 1);
		len = between(g, 1, MIB + MIB / 2);
		break;
	case 1:   /* preallocate, keeping the size (also past the end) */
		mode = FALLOC_FL_KEEP_SIZE;
		off = below(g, cap);
		len = between(g, 1, 2 * MIB);
		break;
	case 2:
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		off = below(g, size + 1);
		len = between(g, 1, size - off + 1);
		break;
	case 3:
		mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		off = below(g, size + 1);
		len = between(g, 1, size - off + 1);
		break;
	default:
		mode = FALLOC_FL_ZERO_RANGE;
		off = below(g, size + 1);
		len = between(g, 1, MIB + 1000);
		break;
	}
	clamp_range(cap, &off, &len);
	return x_falloc(r, id, mode, off, len);
}

static int step_rename(struct run *r)
{
	struct rng *g = &r->rng;
	char name[NAME_LEN];
	int src, ndir, dst;

	if (below(g, 5) == 0 && (src = pick_dent(r, T_DIR)) >= 0) {
		ndir = pick_dir(r);
		if (within(r, ndir, r->m.d[src].obj))
			ndir = r->m.d[src].dir;
		snprintf(name, sizeof(name), "D%u", r->fresh++);
		return x_rename(r, src, ndir, name);
	}
	src = pick_dent(r, below(g, 6) ? T_FILE : T_LINK);
	if (src < 0)
		src = pick_dent(r, T_FILE);
	if (src < 0)
		return 1;
	if (below(g, 3) == 0 && (dst = pick_dent(r, T_FILE)) >= 0 &&
	    r->m.d[dst].obj != r->m.d[src].obj) {
		snprintf(name, sizeof(name), "%s", r->m.d[dst].name);
		return x_rename(r, src, r->m.d[dst].dir, name);   /* over an existing file */
	}
	snprintf(name, sizeof(name), "r%u", r->fresh++);
	return x_rename(r, src, below(g, 2) ? r->m.d[src].dir : pick_dir(r), name);
}

/* One random operation. Returns 0, 1 when there was nothing to do, or the error that ended it. */
static int step(struct run *r)
{
	struct rng *g = &r->rng;
	uint64_t p = below(g, 100);
	int f = pick_obj(r, T_FILE, false), i;

	if (f < 0 || (p < 7 && count_type(r, T_FILE, false) < MAX_FILES))
		return x_create(r, pick_dir(r), T_FILE);
	if (p < 34)
		return step_write(r, f, false);
	if (p < 39)
		return step_write(r, f, true);
	if (p < 45)
		return step_truncate(r, f);
	if (p < 53)
		return step_falloc(r, f);
	if (p < 61)
		return step_rename(r);
	if (p < 66)
		return (i = pick_dent(r, below(g, 5) ? T_FILE : T_LINK)) >= 0 ? x_remove(r, i) : 1;
	if (p < 69)
		return (i = pick_dent(r, T_FILE)) >= 0 ? x_hold(r, i) : 1;
	if (p < 71) {
		for (int k = 0; k < r->m.nobj; k++)
			if (r->m.o[k].refs)
				return x_forget(r, k);
		return 1;
	}
	if (p < 73)
		return (f = pick_obj(r, T_FILE, true)) >= 0 ? x_link(r, f, pick_dir(r)) : 1;
	if (p < 76)
		return count_type(r, T_DIR, true) < MAX_DIRS ? x_create(r, pick_dir(r), T_DIR) : 1;
	if (p < 78) {
		for (int k = 0; k < r->m.nd; k++)
			if (r->m.d[k].obj > 1 && r->m.o[r->m.d[k].obj].type == T_DIR && dir_empty(r, r->m.d[k].obj))
				return x_remove(r, k);
		return 1;
	}
	if (p < 80)
		return x_create(r, pick_dir(r), T_LINK);
	if (p < 90)
		return x_fsync(r, f);
	if (p < 92)
		return x_fsync(r, -1);
	return x_readback(r, f);
}

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	model_new_obj(m, T_DIR);   /* root */
	model_new_obj(m, T_DIR);   /* lost+found */
	dent_add(m, ROOT, "lost+found", 1);
	m->o[ROOT].names = 1;
	model_durable(m);
}

static void run_init(struct run *r, const struct config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->rng.s = cfg->seed;
	r->buf = dev_alloc_buf(WBUF_MAX);
	r->rbuf = dev_alloc_buf(RBUF_MAX);
	r->ebuf = dev_alloc_buf(RBUF_MAX);
	must(r->buf && r->rbuf && r->ebuf, "out of memory");
	model_init(&r->m);
}

static void run_release(struct run *r)
{
	model_release(&r->m);
	free(r->buf);
	free(r->rbuf);
	free(r->ebuf);
}

/*
 * The workload: open with the crash engine armed at write cut (0: never), a
 * fixed start, STEPS random operations, close. Returns 0 when it ran to its
 * end, else the error of the operation that failed (r->op names it).
 */
static int workload(struct run *r, const char *img, uint64_t cut, uint64_t tear_seed)
{
	static const char *const modes[] = { "drop", "tear", "prefix", "reorder" };
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = r->cfg->commit_ms };
	char err[256] = "", num[32];
	struct vmfs_stat st;
	int ret;

	setenv("VMFS_IO_ENGINE", "crash", 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cut);
	setenv("VMFS_CRASH_AFTER_WRITES", num, 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)tear_seed);
	setenv("VMFS_CRASH_SEED", num, 1);
	setenv("VMFS_CRASH_MODE", modes[r->cfg->mode], 1);
	set_op(r, "open");
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	unsetenv("VMFS_IO_ENGINE");
	unsetenv("VMFS_CRASH_AFTER_WRITES");
	unsetenv("VMFS_CRASH_SEED");
	unsetenv("VMFS_CRASH_MODE");
	if (ret) {
		r->fs = NULL;
		snprintf(r->op + strlen(r->op), sizeof(r->op) - strlen(r->op), " (%s)", err);
		return ret;
	}
	r->m.o[ROOT].ino = vmfs_root_ino(r->fs);
	ret = vmfs_lookup(r->fs, r->m.o[ROOT].ino, "lost+found", &st);
	if (ret)
		return ret;
	r->m.o[1].ino = st.ino;
	r->m.o[1].igen = st.gen;
	vmfs_forget(r->fs, st.ino, 1);
	ret = vmfs_getattr(r->fs, r->m.o[ROOT].ino, &st);
	if (ret)
		return ret;
	r->m.o[ROOT].igen = st.gen;
	ret = vmfs_aio_new(r->fs, 8, &r->aio);
	if (ret)
		return ret;
	/* a fixed start: two directories and one file of each size class */
	ret = x_create(r, ROOT, T_DIR);
	if (!ret)
		ret = x_create(r, 2, T_DIR);
	for (int i = 0; i < 3 && !ret; i++) {
		int id = r->m.nobj;

		ret = x_create(r, i == 0 ? ROOT : i + 1, T_FILE);
		r->cls[id] = (enum size_class)i;
	}
	for (unsigned i = 0; i < STEPS && ret >= 0; i++)
		ret = step(r);
	if (ret < 0)
		return ret;
	set_op(r, "close");
	vmfs_aio_free(r->aio);
	r->aio = NULL;
	ret = vmfs_close(r->fs);
	r->fs = NULL;
	return op_done(r, ret, true);
}

/* Drops a library instance whose device lost power: it must let go without a fuss. */
static void discard(struct run *r)
{
	vmfs_aio_free(r->aio);
	r->aio = NULL;
	if (r->fs)
		vmfs_close(r->fs);
	r->fs = NULL;
}

/* ---- part 2: checking what the next open finds ------------------------------- */

struct rd_ent {
	char name[NAME_LEN];
	uint64_t ino;
	uint32_t dtype;
};

struct rd_list {
	struct rd_ent *v;
	size_t n;
	bool too_long;
};

static int rd_fill(void *ctx, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
		   uint64_t next)
{
	struct rd_list *l = ctx;

	(void)next;
	if (namelen >= NAME_LEN) {
		l->too_long = true;
		return 0;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	memcpy(l->v[l->n].name, name, namelen);
	l->v[l->n].name[namelen] = 0;
	l->v[l->n].ino = ino;
	l->v[l->n].dtype = dtype;
	l->n++;
	return 0;
}

/* Which object the window may have put at dir/name, for an inode the model has not seen yet. */
static int window_obj_at(const struct model *m, int dir, const char *name)
{
	char key[NAME_LEN + 16];
	size_t klen = (size_t)snprintf(key, sizeof(key), "%d/%s=", dir, name);

	for (size_t i = 0; i < m->nns; i++) {
		for (const char *p = m->ns[i]; (p = strstr(p, key)); p++) {
			if (p == m->ns[i] || p[-1] == ';')
				return atoi(p + klen);
		}
	}
	return -1;
}

static int obj_by_inode(struct run *r, int dir, const char *name, const struct vmfs_stat *st)
{
	struct model *m = &r->m;
	int id;

	for (int i = 0; i < m->nobj; i++)
		if (m->o[i].ino == st->ino && m->o[i].igen == st->gen)
			return i;
	/* an object whose create the cut interrupted (or lost+found, when the open was cut) */
	id = window_obj_at(m, dir, name);
	if (id >= 0 && !m->o[id].ino) {
		m->o[id].ino = st->ino;
		m->o[id].igen = st->gen;
		return id;
	}
	return -1;
}

static bool type_matches(enum obj_type t, uint32_t mode)
{
	return t == T_DIR ? S_ISDIR(mode) : t == T_LINK ? S_ISLNK(mode) : S_ISREG(mode);
}

static uint32_t dtype_of(uint32_t mode)
{
	return S_ISDIR(mode) ? DT_DIR : S_ISLNK(mode) ? DT_LNK : S_ISREG(mode) ? DT_REG : DT_UNKNOWN;
}

/* Is v a byte file id may show at off: durable, written or zeroed in the window? */
static bool byte_allowed(const struct obj *o, unsigned id, uint64_t off, uint8_t v, const char **from)
{
	for (size_t i = 0; i < o->nev; i++) {
		const struct event *e = &o->ev[i];

		if (off < e->start || off >= e->end)
			continue;
		if (v == (e->gen ? data_byte(id, e->gen, off) : 0)) {
			*from = e->gen ? "a write of the window" : "a zeroing of the window";
			return true;
		}
	}
	return false;
}

/* Names the write (of any file) that put byte v at off, for the report. */
static void byte_origin(const struct model *m, uint64_t off, uint8_t v, char *out, size_t len)
{
	int n = 0;

	out[0] = 0;
	for (int f = 0; f < m->nobj && n < 4; f++) {
		for (uint32_t g = 1; g <= m->o[f].wgen && n < 4; g++) {
			if (data_byte((unsigned)f, g, off) == v) {
				size_t l = strlen(out);

				snprintf(out + l, len - l, "%s(object %d gen %u?)", n ? " " : "", f, g);
				n++;
			}
		}
	}
	if (!n)
		snprintf(out, len, "no write of any file");
}

static int check_file(struct run *r, int id, const struct vmfs_stat *st)
{
	struct obj *o = &r->m.o[id];
	bool size_ok = false;
	uint64_t size = st->size;

	for (size_t i = 0; i < o->nsizes; i++)
		size_ok |= o->sizes[i] == size;
	if (!size_ok) {
		say(r, "object %d: size %llu after the cut; durable %llu, now %llu, %zu sizes in the window",
		    id, (unsigned long long)size, (unsigned long long)o->dsize, (unsigned long long)o->size,
		    o->nsizes);
		return -1;
	}
	if (size > RBUF_MAX) {
		say(r, "object %d: size %llu is larger than the workload makes", id, (unsigned long long)size);
		return -1;
	}
	{
		ssize_t n = vmfs_pread(r->fs, o->ino, r->rbuf, size, 0);

		if (n != (ssize_t)size) {
			say(r, "object %d: reading %llu bytes returned %zd", id, (unsigned long long)size, n);
			return -1;
		}
	}
	model_bytes(o, (unsigned)id, &o->dur, r->ebuf, 0, size);
	for (uint64_t off = 0; off < size;) {
		uint64_t chunk = min_u64(4096 - off % 4096, size - off);
		const char *from = NULL;

		if (!memcmp(r->rbuf + off, r->ebuf + off, chunk)) {
			off += chunk;
			continue;
		}
		for (uint64_t e = off + chunk; off < e; off++) {
			uint8_t v = r->rbuf[off];

			if (v == r->ebuf[off] || byte_allowed(o, (unsigned)id, off, v, &from))
				continue;
			{
				char origin[200];

				byte_origin(&r->m, off, v, origin, sizeof(origin));
				say(r, "object %d (size %llu): byte %llu is 0x%02x, durable 0x%02x, from %s; %zu window events",
				    id, (unsigned long long)size, (unsigned long long)off, v, r->ebuf[off], origin,
				    o->nev);
			}
			return -1;
		}
	}
	return 0;
}

struct walk_ent {
	int dir, obj;
	char name[NAME_LEN];
	struct vmfs_stat st;
};

/*
 * Walks the whole tree: readdir every directory, getattr every entry, read every
 * file and symlink, and compares with the model. Returns 0 or -1 (r->why says).
 */
static int check_tree(struct run *r)
{
	struct model *m = &r->m;
	struct walk_ent *ents = NULL;
	int queue[MAX_OBJS], nq = 0, ne = 0, bad = 0;
	bool seen_dir[MAX_OBJS] = { false }, found[MAX_OBJS] = { false };
	struct vmfs_stat rst;
	char *ns;
	bool ns_ok = false;

	if (vmfs_getattr(r->fs, vmfs_root_ino(r->fs), &rst)) {
		say(r, "getattr of the root failed");
		return -1;
	}
	m->o[ROOT].ino = rst.ino;
	queue[nq++] = ROOT;
	seen_dir[ROOT] = found[ROOT] = true;
	for (int qi = 0; qi < nq && !bad; qi++) {
		int dir = queue[qi];
		struct rd_list l = { 0 };
		int ret = vmfs_readdir(r->fs, m->o[dir].ino, 0, rd_fill, &l);
		uint64_t parent_ino = dir == ROOT ? m->o[ROOT].ino : 0;

		if (ret || l.too_long) {
			say(r, "readdir of object %d failed: %d%s", dir, ret, l.too_long ? " (a name too long)" : "");
			bad = 1;
		}
		for (int i = 0; i < ne; i++)
			if (ents[i].obj == dir)
				parent_ino = m->o[ents[i].dir].ino;
		for (size_t i = 0; i < l.n && !bad; i++) {
			struct walk_ent *e;
			int id;

			if (!strcmp(l.v[i].name, ".") || !strcmp(l.v[i].name, "..")) {
				uint64_t want = l.v[i].name[1] ? parent_ino : m->o[dir].ino;

				if (l.v[i].ino != want) {
					say(r, "directory object %d: '%s' is inode %llu, expected %llu", dir, l.v[i].name,
					    (unsigned long long)l.v[i].ino, (unsigned long long)want);
					bad = 1;
				}
				continue;
			}
			ents = xrealloc(ents, (size_t)(ne + 1) * sizeof(*ents));
			e = &ents[ne];
			memset(e, 0, sizeof(*e));
			e->dir = dir;
			snprintf(e->name, NAME_LEN, "%s", l.v[i].name);
			ret = vmfs_getattr(r->fs, l.v[i].ino, &e->st);
			if (ret) {
				say(r, "getattr of %d/%s (inode %llu) failed: %d", dir, e->name,
				    (unsigned long long)l.v[i].ino, ret);
				bad = 1;
				break;
			}
			if (dtype_of(e->st.mode) != l.v[i].dtype) {
				say(r, "%d/%s: entry type %u, inode mode 0%o", dir, e->name, l.v[i].dtype, e->st.mode);
				bad = 1;
				break;
			}
			id = obj_by_inode(r, dir, e->name, &e->st);
			if (id < 0 || !type_matches(m->o[id].type, e->st.mode)) {
				say(r, "%d/%s: inode %llu gen %llx is no object of the workload", dir, e->name,
				    (unsigned long long)e->st.ino, (unsigned long long)e->st.gen);
				bad = 1;
				break;
			}
			e->obj = id;
			ne++;
			found[id] = true;
			if (m->o[id].type == T_DIR) {
				if (seen_dir[id]) {
					say(r, "directory object %d is reachable twice", id);
					bad = 1;
					break;
				}
				seen_dir[id] = true;
				queue[nq++] = id;
			}
		}
		free(l.v);
	}
	if (bad)
		goto out;

	/* the namespace is the one after some operation of the window */
	{
		struct dent *d = xmalloc((size_t)(ne + 1) * sizeof(*d));

		for (int i = 0; i < ne; i++) {
			d[i].dir = ents[i].dir;
			d[i].obj = ents[i].obj;
			snprintf(d[i].name, NAME_LEN, "%s", ents[i].name);
		}
		ns = ns_string(d, ne);
		free(d);
	}
	for (size_t i = 0; i < m->nns && !ns_ok; i++)
		ns_ok = !strcmp(ns, m->ns[i]);
	if (!ns_ok) {
		say(r, "the namespace after the cut is no state of the window (%zu states)", m->nns);
		say(r, "  found:   %.600s", ns);
		say(r, "  durable: %.600s", m->ns[0]);
		say(r, "  last:    %.600s", m->ns[m->nns - 1]);
		bad = 1;
	}
	free(ns);

	/* link counts, then contents */
	for (int i = 0; i < ne && !bad; i++) {
		struct walk_ent *e = &ents[i];
		unsigned want = 0;

		if (S_ISDIR(e->st.mode)) {
			want = 2;
			for (int j = 0; j < ne; j++)
				want += ents[j].dir == e->obj && S_ISDIR(ents[j].st.mode);
		} else {
			for (int j = 0; j < ne; j++)
				want += ents[j].obj == e->obj;
		}
		if (e->st.nlink != want) {
			say(r, "%d/%s (object %d): nlink %u, but %u names", e->dir, e->name, e->obj, e->st.nlink, want);
			bad = 1;
		}
	}
	for (int i = 0; i < ne && !bad; i++) {
		struct walk_ent *e = &ents[i];
		struct obj *o = &m->o[e->obj];
		bool first = true;

		for (int j = 0; j < i; j++)
			first &= ents[j].obj != e->obj;
		if (!first)
			continue;
		if (o->type == T_FILE) {
			bad = check_file(r, e->obj, &e->st) < 0;
		} else if (o->type == T_LINK) {
			char t[4200];
			ssize_t n = vmfs_readlink(r->fs, o->ino, t, sizeof(t));

			if (n < 0 || (size_t)n != strlen(o->target) || memcmp(t, o->target, (size_t)n)) {
				say(r, "symlink object %d: readlink gave %zd bytes, expected %zu", e->obj, n,
				    strlen(o->target));
				bad = 1;
			}
		}
	}
	/* a file with no name left is gone: freed at once, or by the orphan list at this open */
	for (int i = 2; i < m->nobj && !bad; i++) {
		struct vmfs_stat st;

		if (found[i] || !m->o[i].ino)
			continue;
		if (!vmfs_getattr(r->fs, m->o[i].ino, &st) && st.gen == m->o[i].igen) {
			say(r, "object %d (inode %llu) has no name after the cut but still exists (nlink %u)", i,
			    (unsigned long long)m->o[i].ino, st.nlink);
			bad = 1;
		}
	}
out:
	free(ents);
	return bad ? -1 : 0;
}

/* Growing a file shows zeros, whatever the cut left past its end. */
static int check_growth(struct run *r)
{
	for (int i = 2; i < r->m.nobj; i++) {
		struct obj *o = &r->m.o[i];
		struct vmfs_stat st, in = { 0 };
		uint64_t to;
		ssize_t n;

		if (o->type != T_FILE || !o->ino || vmfs_getattr(r->fs, o->ino, &st) || st.gen != o->igen)
			continue;
		to = (st.size / MIB + 1) * MIB + 4096;
		in.size = to;
		if (vmfs_setattr(r->fs, o->ino, &in, VMFS_SET_SIZE, NULL)) {
			say(r, "object %d: growing it to %llu failed", i, (unsigned long long)to);
			return -1;
		}
		n = vmfs_pread(r->fs, o->ino, r->rbuf, to - st.size, st.size);
		if (n != (ssize_t)(to - st.size) || !is_zero(r->rbuf, to - st.size)) {
			size_t k = 0;

			while (n > 0 && k < (size_t)n && !r->rbuf[k])
				k++;
			say(r, "object %d: grown from %llu to %llu, byte %llu is not zero (read %zd)", i,
			    (unsigned long long)st.size, (unsigned long long)to,
			    (unsigned long long)(st.size + k), n);
			return -1;
		}
	}
	return 0;
}

/* Removes everything but lost+found, depth first. */
static int remove_all(struct vmfs *fs, uint64_t dir, int depth)
{
	struct rd_list l = { 0 };
	int ret = vmfs_readdir(fs, dir, 2, rd_fill, &l);

	for (size_t i = 0; i < l.n && !ret; i++) {
		if (depth == 0 && !strcmp(l.v[i].name, "lost+found"))
			continue;
		if (l.v[i].dtype == DT_DIR) {
			ret = remove_all(fs, l.v[i].ino, depth + 1);
			if (!ret)
				ret = vmfs_rmdir(fs, dir, l.v[i].name);
		} else {
			ret = vmfs_unlink(fs, dir, l.v[i].name);
		}
	}
	free(l.v);
	return ret;
}

/* How the space of a closed datastore is used, read from its RC descriptors and pool headers. */
struct space {
	uint64_t data_blocks;      /* file blocks referenced by files */
	uint64_t journal_blocks;
	uint64_t pools;
	uint64_t pool_units_used;  /* sub-blocks in use, pool headers not counted */
};

static int scan_space(const char *img, struct space *sp, char *why, size_t whylen)
{
	struct vmfs_sb_disk *sb = dev_alloc_buf(VMFS_UNIT);
	struct vmfs_rc_disk *rc = dev_alloc_buf(VMFS_UNIT);
	struct vmfs_pool_disk *pl = dev_alloc_buf(VMFS_UNIT);
	int fd = open(img, O_RDONLY), ret = -1;
	uint64_t rc_inited, rc_off, data_off, bs;

	memset(sp, 0, sizeof(*sp));
	if (fd < 0 || !sb || !rc || !pl || pread(fd, sb, VMFS_UNIT, 0) != VMFS_UNIT) {
		snprintf(why, whylen, "cannot read the superblock of %s", img);
		goto out;
	}
	rc_inited = le64_to_cpu(sb->sb_rc_inited);
	rc_off = le64_to_cpu(sb->sb_rc_table_off);
	data_off = le64_to_cpu(sb->sb_data_off);
	bs = 1ull << le32_to_cpu(sb->sb_block_shift);
	for (uint64_t i = 0; i < rc_inited; i++) {
		if (pread(fd, rc, VMFS_UNIT, (off_t)(rc_off + i * VMFS_UNIT)) != VMFS_UNIT) {
			snprintf(why, whylen, "cannot read resource cluster %llu", (unsigned long long)i);
			goto out;
		}
		for (uint32_t j = 0; j < le32_to_cpu(rc->rc_nblocks) && j < VMFS_RC_MAX_BLOCKS; j++) {
			uint16_t ref = le16_to_cpu(rc->rc_ref[j]);
			uint64_t blk = le64_to_cpu(rc->rc_first) + j;

			if (ref == VMFS_REF_FREE)
				continue;
			if (ref == VMFS_REF_JOURNAL) {
				sp->journal_blocks++;
			} else if (ref == VMFS_REF_POOL) {
				sp->pools++;
				if (pread(fd, pl, VMFS_UNIT, (off_t)(data_off + blk * bs)) != VMFS_UNIT) {
					snprintf(why, whylen, "cannot read pool %llu", (unsigned long long)blk);
					goto out;
				}
				for (uint32_t k = 1; k < le32_to_cpu(pl->pl_units) && k < VMFS_POOL_MAX_UNITS; k++)
					sp->pool_units_used += pl->pl_ref[k] != 0;
			} else {
				sp->data_blocks++;
			}
		}
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(sb);
	free(rc);
	free(pl);
	return ret;
}

/* ---- fsck hook ---- */

static const char *fsck_path(void)
{
	static char path[PATH_MAX];
	const char *bin = getenv("VMFS_BIN");

	snprintf(path, sizeof(path), "%s/fsck.vmfs", bin && *bin ? bin : "build/bin");
	return path;
}

static bool fsck_available(void)
{
	return access(fsck_path(), X_OK) == 0;
}

/* Runs fsck.vmfs -n on img (output to log); returns its exit status, or -1 when it could not run. */
static int run_fsck(const char *img, const char *log)
{
	pid_t pid;
	int status;

	if (!fsck_available())
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(fsck_path(), "fsck.vmfs", "-n", img, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- part 2: one cut point, and all of them ------------------------------------ */

static uint64_t baseline_free;        /* free units of a fresh datastore after its first open */
static struct space baseline_space;   /* and how it uses its space */

static int make_image(const char *img, char *err, size_t errlen)
{
	struct vmfs_mkfs_opts o = { .size = IMG_SIZE, .force = true, .host_slots = 4, .uuid = test_uuid };

	unlink(img);
	return vmfs_mkfs(img, &o, err, errlen);
}

static uint64_t tear_seed(const struct config *cfg, uint64_t cut)
{
	return mix64(cfg->seed * 1000003ull + cut);
}

/*
 * After the cut: open (replay), check the tree against the model, grow every
 * file, close; fsck when asked; open again, remove everything and compare the
 * free space with a fresh datastore's; a read-only open then finds the journal
 * clean. Returns 0, or -1 with r->why filled.
 */
static int recover_and_check(struct run *r, const char *img, const char *log, bool fsck)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
	struct vmfs_statfs sf;
	struct vmfs_info info;
	struct space sp;
	char err[256] = "";
	int ret;

	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "open after the cut failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	if (check_tree(r) || check_growth(r)) {
		vmfs_close(r->fs);
		r->fs = NULL;
		return -1;
	}
	ret = vmfs_close(r->fs);
	r->fs = NULL;
	if (ret) {
		say(r, "close after the checks failed: %s", strerror(-ret));
		return -1;
	}
	if (fsck) {
		ret = run_fsck(img, log);
		if (ret != 0 && ret != -1) {
			say(r, "fsck.vmfs -n after the checks exited %d (its output is above)", ret);
			return -1;
		}
	}
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "second open failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	ret = remove_all(r->fs, vmfs_root_ino(r->fs), 0);
	if (!ret)
		ret = vmfs_statfs(r->fs, &sf);
	if (ret)
		say(r, "removing everything failed: %s", strerror(-ret));
	if (vmfs_close(r->fs) && !ret) {
		say(r, "second close failed");
		ret = -EIO;
	}
	r->fs = NULL;
	if (ret)
		return -1;
	/* nothing leaked: no file block, no sub-block beyond a fresh datastore's; pools may stay */
	if (scan_space(img, &sp, err, sizeof(err))) {
		say(r, "%s", err);
		return -1;
	}
	if (sp.data_blocks || sp.journal_blocks != baseline_space.journal_blocks ||
	    sp.pool_units_used != baseline_space.pool_units_used ||
	    sf.bfree + (sp.pools - baseline_space.pools) != baseline_free) {
		say(r, "space after removing every file: %llu data blocks, %llu journal blocks, %llu pools with "
		    "%llu sub-blocks used, %llu units free; a fresh datastore: 0, %llu, %llu, %llu, %llu",
		    (unsigned long long)sp.data_blocks, (unsigned long long)sp.journal_blocks,
		    (unsigned long long)sp.pools, (unsigned long long)sp.pool_units_used,
		    (unsigned long long)sf.bfree, (unsigned long long)baseline_space.journal_blocks,
		    (unsigned long long)baseline_space.pools, (unsigned long long)baseline_space.pool_units_used,
		    (unsigned long long)baseline_free);
		return -1;
	}
	oo.readonly = true;
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "read-only open after the second close failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	vmfs_get_info(r->fs, &info);
	if (strcmp(info.journal_state, "clean")) {
		say(r, "the journal is '%s' after a clean close", info.journal_state);
		ret = -1;
	}
	vmfs_close(r->fs);
	r->fs = NULL;
	return ret ? -1 : 0;
}

/*
 * One cut point, in a child: fresh datastore, the workload cut at write cut
 * (0: never), then the checks. Prints a report on stderr (the point's log);
 * returns 0 when everything held. *writes gets the device's write count.
 */
static int run_point(const struct config *cfg, uint64_t cut, const char *img, const char *log, bool fsck,
		     uint64_t *writes)
{
	struct dev_crash_stats st = { 0 };
	struct run r;
	char err[256] = "";
	int ret, bad = 0;
	bool crashed;

	run_init(&r, cfg);
	ret = make_image(img, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "FAIL %s:%llu: mkfs: %s\n", cfg->name, (unsigned long long)cut, err);
		run_release(&r);
		return -1;
	}
	ret = workload(&r, img, cut, tear_seed(cfg, cut));
	discard(&r);
	crashed = dev_crash_last_closed(&st) && st.crashed;
	*writes = st.writes;
	if (ret < 0 && !crashed) {
		say(&r, "%s failed (%s) without a power cut", r.op, strerror(-ret));
		bad = 1;
	} else if (ret >= 0 && crashed) {
		say(&r, "the cut at write %llu went unreported: every operation succeeded",
		    (unsigned long long)cut);
		bad = 1;
	}
	if (!bad && fsck) {
		int code = run_fsck(img, log);

		if (code != 0 && code != -1) {
			say(&r, "fsck.vmfs -n on the image as the cut left it exited %d (its output is above)", code);
			bad = 1;
		}
	}
	if (!bad)
		bad = recover_and_check(&r, img, log, fsck) < 0;
	if (bad || getenv("CRASH_VERBOSE"))
		fprintf(stderr, "%s %s:%llu (mode %d, tear seed %llu): %s; %u ops, durable through op %u; "
			"%llu writes, %llu flushes, at the cut %llu pending, %llu landed, %llu torn\n%s%s"
			"reproduce: CRASH_ONLY=%s:%llu %s\n",
			bad ? "FAIL" : "ok", cfg->name, (unsigned long long)cut, cfg->mode,
			(unsigned long long)tear_seed(cfg, cut), crashed ? r.op : "no cut", r.m.ops,
			r.m.durable_ops, (unsigned long long)st.writes, (unsigned long long)st.flushes,
			(unsigned long long)st.pending, (unsigned long long)st.landed,
			(unsigned long long)st.torn, r.why, r.why[0] ? "\n" : "", cfg->name,
			(unsigned long long)cut, "build/tests/test_crash");
	if (!cut && getenv("CRASH_VERBOSE")) {
		fprintf(stderr, "operations of the workload:");
		for (size_t i = 0; i < sizeof(r.hist) / sizeof(r.hist[0]) && r.hist[i].name[0]; i++)
			fprintf(stderr, " %s %u", r.hist[i].name, r.hist[i].n);
		fprintf(stderr, "\n");
	}
	run_release(&r);
	return bad ? -1 : 0;
}

struct job {
	pid_t pid;
	uint64_t cut;
	char img[PATH_MAX + 64], log[PATH_MAX + 64];
};

/* Starts one cut point in a child whose stderr is its log; the child sends its write count on fd. */
static pid_t spawn_point(const struct config *cfg, struct job *j, bool fsck, int fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	{
		uint64_t writes = 0;
		int lfd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644), ret;

		if (lfd >= 0) {
			dup2(lfd, 2);
			close(lfd);
		}
		ret = run_point(cfg, j->cut, j->img, j->log, fsck, &writes);
		if (fd >= 0 && write(fd, &writes, sizeof(writes)) != sizeof(writes))
			ret = -1;
		exit(ret ? 1 : 0);
	}
}

static void print_log(const char *log, int max_lines)
{
	FILE *f = fopen(log, "r");
	char line[1024];

	while (f && max_lines-- > 0 && fgets(line, sizeof(line), f))
		fputs(line, stdout);
	if (f)
		fclose(f);
	fflush(stdout);
}

static unsigned env_uint(const char *name, unsigned def)
{
	const char *s = getenv(name);

	return s && *s ? (unsigned)strtoul(s, NULL, 0) : def;
}

static unsigned jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return env_uint("CRASH_JOBS", n < 1 ? 1 : n > 8 ? 8 : (unsigned)n);
}

static void compute_baseline(void)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
	struct vmfs_statfs sf;
	char img[PATH_MAX + 32], err[256] = "";
	struct vmfs *fs;

	make_tmpdir();
	snprintf(img, sizeof(img), "%s/baseline.img", tmpdir);
	ck_assert_msg(make_image(img, err, sizeof(err)) == 0, "mkfs: %s", err);
	ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "open: %s", err);
	ck_assert_int_eq(vmfs_statfs(fs, &sf), 0);
	ck_assert_int_eq(vmfs_close(fs), 0);
	baseline_free = sf.bfree;
	ck_assert_msg(scan_space(img, &baseline_space, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(baseline_space.data_blocks, 0);
	unlink(img);
}

/* Runs cuts[0..n) of cfg, njobs at a time; returns how many failed. */
static unsigned run_points(const struct config *cfg, const uint64_t *cuts, unsigned n, unsigned fsck_every)
{
	unsigned njobs = jobs(), next = 0, running = 0, failed = 0;
	struct job *js = calloc(njobs, sizeof(*js));

	ck_assert_ptr_nonnull(js);
	while (next < n || running) {
		int status;
		pid_t pid;

		while (next < n && running < njobs) {
			struct job *j = NULL;

			for (unsigned i = 0; i < njobs && !j; i++)
				if (!js[i].pid)
					j = &js[i];
			j->cut = cuts[next];
			snprintf(j->img, sizeof(j->img), "%s/%s.%llu.img", tmpdir, cfg->name, (unsigned long long)j->cut);
			snprintf(j->log, sizeof(j->log), "%s/%s.%llu.log", tmpdir, cfg->name, (unsigned long long)j->cut);
			j->pid = spawn_point(cfg, j, fsck_every && next % fsck_every == 0, -1);
			ck_assert_int_gt(j->pid, 0);
			next++;
			running++;
		}
		pid = waitpid(-1, &status, 0);
		ck_assert_int_gt(pid, 0);
		for (unsigned i = 0; i < njobs; i++) {
			struct job *j = &js[i];

			if (j->pid != pid)
				continue;
			j->pid = 0;
			running--;
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				if (++failed <= 6) {
					printf("--- %s cut %llu: %s %d\n", cfg->name, (unsigned long long)j->cut,
					       WIFEXITED(status) ? "exit" : "signal",
					       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
					print_log(j->log, 40);
				}
			} else if (getenv("CRASH_VERBOSE")) {
				print_log(j->log, 5);
			}
			if (!getenv("CRASH_KEEP") || !WIFEXITED(status) || !WEXITSTATUS(status))
				unlink(j->img);
			unlink(j->log);
		}
	}
	free(js);
	return failed;
}

/* The uncut workload in a child: it must pass the checks, and tells how many writes it makes. */
static uint64_t count_writes(const struct config *cfg)
{
	struct job j = { .cut = 0 };
	uint64_t writes = 0;
	int pfd[2], status;

	snprintf(j.img, sizeof(j.img), "%s/%s.uncut.img", tmpdir, cfg->name);
	snprintf(j.log, sizeof(j.log), "%s/%s.uncut.log", tmpdir, cfg->name);
	ck_assert_int_eq(pipe(pfd), 0);
	j.pid = spawn_point(cfg, &j, true, pfd[1]);
	ck_assert_int_gt(j.pid, 0);
	close(pfd[1]);
	if (read(pfd[0], &writes, sizeof(writes)) != sizeof(writes))
		writes = 0;
	close(pfd[0]);
	ck_assert_int_eq(waitpid(j.pid, &status, 0), j.pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || getenv("CRASH_VERBOSE"))
		print_log(j.log, 60);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the uncut workload failed its checks",
		      cfg->name);
	unlink(j.img);
	unlink(j.log);
	return writes;
}

static unsigned total_weight(void)
{
	unsigned w = 0;

	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
		w += configs[i].weight;
	return w;
}

/* Config cfg with its workload seed moved for round (0: as listed), named "name+round". */
static void config_round(const struct config *cfg, unsigned round, struct config *out, char *name, size_t len)
{
	*out = *cfg;
	out->seed = cfg->seed + round * 7919ull;
	if (round) {
		snprintf(name, len, "%s+%u", cfg->name, round);
		out->name = name;
	}
}

/*
 * The cut points of one config: spread evenly over the writes of the uncut
 * workload, the last included. When asked for more points than it has writes,
 * further rounds run the workload with other seeds.
 */
START_TEST(t_power_cuts)
{
	const struct config *cfg = &configs[_i];
	const char *only = getenv("CRASH_ONLY");
	unsigned total = env_uint("CRASH_POINTS", DEFAULT_POINTS), want, done = 0, failed = 0, rounds = 0;
	unsigned fsck_every = env_uint("CRASH_FSCK_EVERY", 1);
	uint64_t writes_all = 0;
	double t0 = now_s();
	char name[64];
	struct config c;

	make_tmpdir();
	compute_baseline();
	if (only) {   /* CRASH_ONLY=name[+round]:cut */
		const char *colon = strchr(only, ':'), *slash = strchr(only, '+');
		size_t nlen = (size_t)((slash && slash < colon ? slash : colon) - only);
		uint64_t cut;

		if (!colon || nlen != strlen(cfg->name) || strncmp(only, cfg->name, nlen))
			return;
		config_round(cfg, slash && slash < colon ? (unsigned)atoi(slash + 1) : 0, &c, name, sizeof(name));
		cut = strtoull(colon + 1, NULL, 0);
		setenv("CRASH_VERBOSE", "1", 1);
		setenv("CRASH_KEEP", "1", 1);
		failed = run_points(&c, &cut, 1, 1);
		printf("%s cut %llu: %s; image %s/%s.%llu.img\n", c.name, (unsigned long long)cut,
		       failed ? "FAILED" : "ok", tmpdir, c.name, (unsigned long long)cut);
		tmpdir[0] = 0;   /* keep it */
		ck_assert_uint_eq(failed, 0);
		return;
	}
	want = (unsigned)((uint64_t)total * cfg->weight / total_weight());
	if (want < 1)
		want = 1;
	while (done < want) {
		uint64_t writes, *cuts;
		unsigned n;

		config_round(cfg, rounds++, &c, name, sizeof(name));
		writes = count_writes(&c);
		ck_assert_uint_gt(writes, 100);
		writes_all += writes;
		n = (unsigned)min_u64(want - done, writes);
		cuts = calloc(n, sizeof(*cuts));
		ck_assert_ptr_nonnull(cuts);
		for (unsigned i = 0; i < n; i++)
			cuts[i] = 1 + (uint64_t)i * (writes - 1) / (n > 1 ? n - 1 : 1);
		failed += run_points(&c, cuts, n, fsck_available() ? fsck_every : 0);
		done += n;
		free(cuts);
	}
	printf("power cuts %s: %u workload seed(s), %llu writes uncut, %u cut points, %u failed, "
	       "fsck.vmfs %s%u, %.1f s\n", cfg->name, rounds, (unsigned long long)writes_all, done, failed,
	       fsck_available() ? "on 1 point in " : "not built (hook idle) ", fsck_available() ? fsck_every : 0,
	       now_s() - t0);
	fflush(stdout);
	remove_tmpdir();
	ck_assert_msg(failed == 0, "%s: %u of %u cut points failed (reports above)", cfg->name, failed, done);
}
END_TEST

/* ---- part 3: what the cuts found, one test each ------------------------------ */

/*
 * Each library bug the power cuts found, reduced to a few calls. A child that
 * ends without vmfs_close stands for a power cut after every write landed
 * (the sync engine leaves nothing in memory); the parent opens the image again.
 */
static char rimg[PATH_MAX + 32];

static void regress_setup(void)
{
	char err[256] = "";

	make_tmpdir();
	snprintf(rimg, sizeof(rimg), "%s/regress.img", tmpdir);
	ck_assert_msg(make_image(rimg, err, sizeof(err)) == 0, "mkfs: %s", err);
}

static void regress_teardown(void)
{
	unlink(rimg);
	remove_tmpdir();
}

static struct vmfs *ropen(unsigned commit_ms)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = commit_ms };
	char err[256] = "";
	struct vmfs *fs = NULL;
	int ret = vmfs_open(rimg, &oo, &fs, err, sizeof(err));

	ck_assert_msg(ret == 0, "open: %s", err);
	return fs;
}

/* Runs body in a child that stops without closing: the cut. Its exit status must be 0. */
static void cut_after(void (*body)(uint64_t *), uint64_t *shared)
{
	int pfd[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t v[4] = { 0 };

		body(v);
		_exit(write(pfd[1], v, sizeof(v)) == sizeof(v) ? 0 : 3);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], shared, 4 * sizeof(*shared)), 4 * (ssize_t)sizeof(*shared));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (%d)", status);
}

static struct vmfs *child_open(unsigned commit_ms)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = commit_ms };
	char err[256];
	struct vmfs *fs;

	if (vmfs_open(rimg, &oo, &fs, err, sizeof(err)))
		_exit(2);
	return fs;
}

static void reuse_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	struct vmfs_stat a, b;
	static uint8_t buf[8192];

	memset(buf, 0x11, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "b", S_IFREG | 0644, 0, 0, &b) ||
	    vmfs_mknod(fs, vmfs_root_ino(fs), "a", S_IFREG | 0644, 0, 0, &a))
		_exit(2);
	vmfs_forget(fs, a.ino, 1);
	vmfs_forget(fs, b.ino, 1);
	if (vmfs_unlink(fs, vmfs_root_ino(fs), "a") ||     /* a's inode unit is free once committed */
	    vmfs_pwrite(fs, b.ino, buf, sizeof(buf), 0) != sizeof(buf) ||  /* and comes back as b's data */
	    vmfs_fsync(fs, b.ino, false))
		_exit(2);
	v[0] = b.ino;
}

/* J6: replay must not write a freed inode's old image over data that reused its unit. */
START_TEST(t_regress_replay_over_reused_unit)
{
	uint64_t v[4];
	static uint8_t got[8192];
	struct vmfs *fs;

	cut_after(reuse_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), 0), (ssize_t)sizeof(got));
	for (size_t i = 0; i < sizeof(got); i++)
		ck_assert_msg(got[i] == 0x11, "byte %zu of fsync'd data is 0x%02x after replay", i, got[i]);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

static void orphan_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	struct vmfs_stat st, in = { .size = 0 };
	static uint8_t buf[3 << 20];

	if (vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st))  /* keeps a reference */
		_exit(2);
	memset(buf, 1, sizeof(buf));
	if (vmfs_pwrite(fs, st.ino, buf, sizeof(buf), 0) != sizeof(buf) ||
	    vmfs_unlink(fs, vmfs_root_ino(fs), "f") ||     /* held: on the orphan list */
	    vmfs_setattr(fs, st.ino, &in, VMFS_SET_SIZE, NULL) || vmfs_sync(fs))
		_exit(2);
	v[0] = st.ino;
}

/* O1: truncating an unlinked file that is still held keeps it on the orphan list. */
START_TEST(t_regress_orphan_truncate)
{
	struct vmfs_stat st;
	uint64_t v[4];
	struct vmfs *fs;

	cut_after(orphan_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), -ESTALE);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

static void growth_body(uint64_t *v)
{
	struct vmfs *fs = child_open(60000);
	struct vmfs_stat st;
	static uint8_t buf[5000];

	memset(buf, 0x22, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st) ||
	    vmfs_pwrite(fs, st.ino, buf, 5000, 0) != 5000 || vmfs_fsync(fs, st.ino, false) ||
	    vmfs_pwrite(fs, st.ino, buf, 1000, 5000) != 1000)   /* in place; its size is not committed */
		_exit(2);
	v[0] = st.ino;
}

/* Growing a file after a cut shows zeros, not what a lost write left past its end. */
START_TEST(t_regress_growth_after_cut)
{
	struct vmfs_stat st, in = { .size = 3 * MIB };
	static uint8_t got[8192];
	uint64_t v[4];
	struct vmfs *fs;
	uint64_t out;

	cut_after(growth_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), 0);
	ck_assert_uint_eq(st.size, 5000);
	/* each way of growing: a write past the end, fallocate, truncate */
	ck_assert_int_eq(vmfs_pwrite(fs, v[0], "x", 1, 5500), 1);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, 5501, 0), 5501);
	for (size_t i = 5000; i < 5500; i++)
		ck_assert_msg(got[i] == 0, "write past the end: byte %zu is 0x%02x", i, got[i]);
	ck_assert_int_eq(vmfs_fallocate(fs, v[0], 0, 5501, 600), 0);
	ck_assert_int_eq(vmfs_setattr(fs, v[0], &in, VMFS_SET_SIZE, NULL), 0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), 0), (ssize_t)sizeof(got));
	for (size_t i = 5000; i < sizeof(got); i++)
		ck_assert_msg(got[i] == (i == 5500 ? 'x' : 0), "byte %zu is 0x%02x", i, got[i]);
	ck_assert_int_eq(vmfs_lseek(fs, v[0], 0, SEEK_DATA, &out), 0);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

/* A power cut tearing the journal superblock (the last write of a close) leaves an openable datastore. */
START_TEST(t_regress_torn_journal_superblock)
{
	struct dev_crash_stats cs;
	unsigned torn = 0;
	uint64_t last;

	for (uint64_t seed = 0; seed <= 12; seed++) {
		struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
		char err[256] = "", num[32];
		struct vmfs *fs;
		struct vmfs_stat st;
		int ret;

		if (seed) {
			ck_assert_int_eq(make_image(rimg, err, sizeof(err)), 0);
			snprintf(num, sizeof(num), "%llu", (unsigned long long)last);
			setenv("VMFS_CRASH_AFTER_WRITES", num, 1);
			snprintf(num, sizeof(num), "%llu", (unsigned long long)seed);
			setenv("VMFS_CRASH_SEED", num, 1);
			setenv("VMFS_CRASH_MODE", "tear", 1);
		}
		setenv("VMFS_IO_ENGINE", "crash", 1);
		ret = vmfs_open(rimg, &oo, &fs, err, sizeof(err));
		unsetenv("VMFS_IO_ENGINE");
		unsetenv("VMFS_CRASH_AFTER_WRITES");
		unsetenv("VMFS_CRASH_SEED");
		unsetenv("VMFS_CRASH_MODE");
		ck_assert_msg(ret == 0, "open: %s", err);
		ck_assert_int_eq(vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st), 0);
		ck_assert_int_eq(vmfs_pwrite(fs, st.ino, "data", 4, 0), 4);
		ret = vmfs_close(fs);
		ck_assert(dev_crash_last_closed(&cs));
		if (!seed) {   /* the uncut run: how many writes, the last being the journal superblock */
			ck_assert_int_eq(ret, 0);
			last = cs.writes;
			continue;
		}
		ck_assert(cs.crashed && cs.torn == 1 && ret < 0);
		torn++;
		fs = ropen(0);
		ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "f", &st), 0);
		ck_assert_uint_eq(st.size, 4);
		ck_assert_int_eq(vmfs_close(fs), 0);
	}
	ck_assert_uint_eq(torn, 12);
}
END_TEST

static uint64_t raw_rc_inited(void)
{
	struct vmfs_sb_disk sb;
	int fd = open(rimg, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, &sb, sizeof(sb), 0);

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)sizeof(sb) ? le64_to_cpu(sb.sb_rc_inited) : 0;
}

static void rc_init_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	uint64_t before = raw_rc_inited();
	struct vmfs_stat st;
	static uint8_t buf[1 << 20];

	memset(buf, 0x33, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "big", S_IFREG | 0644, 0, 0, &st))
		_exit(2);
	/* grow until a resource cluster is initialised: a transaction that changes unit 0 */
	for (uint64_t off = 0; raw_rc_inited() == before; off += sizeof(buf))
		if (off > 100 * MIB || vmfs_pwrite(fs, st.ino, buf, sizeof(buf), off) != sizeof(buf) ||
		    vmfs_fsync(fs, st.ino, false))
			_exit(2);
	v[0] = st.ino;
}

/* A power cut tearing the primary superblock's in-place write: open uses the backup, replay fixes unit 0. */
START_TEST(t_regress_torn_primary_superblock)
{
	struct vmfs_sb_disk sb;
	struct vmfs_stat st;
	uint64_t v[4];
	uint8_t byte = 0x5a, got[16];
	struct vmfs *fs;
	int fd;

	fs = ropen(0);   /* the first open allocates the journal; a clean close checkpoints it */
	ck_assert_int_eq(vmfs_close(fs), 0);
	cut_after(rc_init_body, v);
	fd = open(rimg, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &byte, 1, VMFS_UNIT - 512), 1);   /* the last sector did not land */
	close(fd);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), 0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), st.size - sizeof(got)), (ssize_t)sizeof(got));
	ck_assert(got[0] == 0x33 && got[15] == 0x33);
	ck_assert_int_eq(vmfs_close(fs), 0);
	fd = open(rimg, O_RDONLY);
	ck_assert_int_eq(pread(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
	close(fd);
	ck_assert_uint_eq(base_crc32c(0, &sb, VMFS_CRC_OFF), le32_to_cpu(sb.sb_crc));   /* rewritten by replay */
}
END_TEST

/* The checks must catch damage: each kind of injected loss fails check_tree. */
START_TEST(t_checker_catches_damage)
{
	static const char *const kinds[] = { "flipped byte", "lost name", "lost size" };

	for (unsigned kind = 0; kind < 3; kind++) {
		struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
		char err[256] = "";
		struct run r;
		int victim = -1, d;

		run_init(&r, &configs[0]);
		ck_assert_int_eq(make_image(rimg, err, sizeof(err)), 0);
		ck_assert_int_eq(workload(&r, rimg, 0, 0), 0);   /* uncut: everything is durable */
		discard(&r);
		ck_assert_int_eq(vmfs_open(rimg, &oo, &r.fs, err, sizeof(err)), 0);
		for (int i = 2; i < r.m.nobj && victim < 0; i++)
			if (r.m.o[i].type == T_FILE && r.m.o[i].names && r.m.o[i].size > 100)
				victim = i;
		ck_assert_int_ge(victim, 0);
		if (kind == 0) {
			uint8_t b;

			ck_assert_int_eq(vmfs_pread(r.fs, r.m.o[victim].ino, &b, 1, 77), 1);
			b ^= 0x40;
			ck_assert_int_eq(vmfs_pwrite(r.fs, r.m.o[victim].ino, &b, 1, 77), 1);
		} else if (kind == 1) {
			for (d = 0; r.m.d[d].obj != victim; d++)
				;
			ck_assert_int_eq(vmfs_unlink(r.fs, ino_of(&r, r.m.d[d].dir), r.m.d[d].name), 0);
		} else {
			struct vmfs_stat in = { .size = r.m.o[victim].size - 1 };

			ck_assert_int_eq(vmfs_setattr(r.fs, r.m.o[victim].ino, &in, VMFS_SET_SIZE, NULL), 0);
		}
		ck_assert_msg(check_tree(&r) < 0, "a %s went unnoticed", kinds[kind]);
		ck_assert_msg(r.why[0], "no reason given for the %s", kinds[kind]);
		vmfs_close(r.fs);
		r.fs = NULL;
		run_release(&r);
	}
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("engine");
	unsigned points = env_uint("CRASH_POINTS", DEFAULT_POINTS);

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
	tcase_add_checked_fixture(tc, regress_setup, regress_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_regress_replay_over_reused_unit);
	tcase_add_test(tc, t_regress_orphan_truncate);
	tcase_add_test(tc, t_regress_growth_after_cut);
	tcase_add_test(tc, t_regress_torn_journal_superblock);
	tcase_add_test(tc, t_regress_torn_primary_superblock);
	tcase_add_test(tc, t_checker_catches_damage);
	suite_add_tcase(s, tc);

	tc = tcase_create("power_cuts");
	tcase_set_timeout(tc, 600 + points);
	tcase_add_loop_test(tc, t_power_cuts, 0, (int)(sizeof(configs) / sizeof(configs[0])));
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
