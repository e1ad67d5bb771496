/*
 * Helpers of the power-cut tests (tests/unit/test_crash.c and crash/): the
 * deterministic choices, the data pattern every write uses, allocation and
 * checks that fail the test rather than return, and the temporary directory.
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

char tmpdir[PATH_MAX];

uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct rng *r)
{
	return mix64(r->s += 0x9E3779B97F4A7C15ull);
}

uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

uint64_t between(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + below(r, hi - lo + 1);
}

/* The byte that write generation g of file f puts at offset o: never zero. */
uint8_t data_byte(unsigned f, uint32_t g, uint64_t o)
{
	uint64_t w = mix64(((uint64_t)f << 48) ^ ((uint64_t)g << 32) ^ (o >> 3) ^ 0x5bd1e995ull);
	uint8_t b = (uint8_t)(w >> ((o & 7) * 8));

	return b ? b : 0xa5;
}

void data_fill(uint8_t *buf, unsigned f, uint32_t g, uint64_t off, size_t len)
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

uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The model's own invariants. The power-cut children run outside Check's
 * reach, so a broken one aborts the child, which the parent reports.
 */
void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "test_crash: %s\n", what);
		abort();
	}
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	must(p != NULL, "out of memory");
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	must(p != NULL, "out of memory");
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	must(p != NULL, "out of memory");
	return p;
}

void make_tmpdir(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/var/tmp";

	if (tmpdir[0])
		return;
	snprintf(tmpdir, sizeof(tmpdir), "%s/vmfs-test-crash.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

void remove_tmpdir(void)
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

bool is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}
