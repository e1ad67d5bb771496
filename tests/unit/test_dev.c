/*
 * Unit tests for the device layer (vmfs/dev_i.h). Every I/O test runs once per
 * engine (one TCase each for uring, aio and sync) on a sparse temporary file in
 * /var/tmp, checking data against an in-memory model; the 4096-byte-sector test
 * also runs on a loop device when we are root. The engine and O_DIRECT
 * fallbacks are tested in child processes in which a seccomp filter makes
 * io_uring_setup, io_setup or an O_DIRECT openat fail.
 */
#include "base/base.h"
#include "vmfs/dev_i.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/loop.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILE_SIZE (16u << 20)
#define SECTOR 512u

static char tmpdir[] = "/var/tmp/vmfs-test-dev.XXXXXX";
static char path[PATH_MAX];         /* this test's sparse file, FILE_SIZE bytes */
static const char *engine;          /* this TCase's engine */
static bool uring_works;            /* io_uring_queue_init succeeds on this machine */

/* ---- helpers ------------------------------------------------------------- */

/* xorshift64*: deterministic data, so a failure can be reproduced */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

static void fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t s = seed | 1;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&s);

		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

static void *xbuf(size_t len)
{
	void *p = dev_alloc_buf(len);

	ck_assert_ptr_nonnull(p);
	ck_assert(((uintptr_t)p & 4095) == 0);
	ck_assert(base_all_zero(p, len));
	return p;
}

/* Opens path with this TCase's engine and checks what the device reports. */
static struct vmfs_dev *open_dev(const char *p, unsigned flags)
{
	struct vmfs_dev *dev = NULL;
	const char *name;
	int r = dev_open(p, flags, engine, &dev);

	ck_assert_msg(r == 0, "dev_open %s (%s): %s", p, engine, strerror(-r));
	name = dev_engine_name(dev);
	if (strcmp(engine, "uring") || uring_works)
		ck_assert_str_eq(name, engine);
	else
		ck_assert_msg(!strcmp(name, "aio") || !strcmp(name, "sync"), "engine %s", name);
	ck_assert(dev_readonly(dev) == !!(flags & DEV_RDONLY));
	return dev;
}

static void fixture_setup(const char *eng)
{
	int fd;

	engine = eng;
	snprintf(path, sizeof(path), "%s/dev.XXXXXX", tmpdir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, FILE_SIZE), 0);
	close(fd);
}

static void setup_uring(void) { fixture_setup("uring"); }
static void setup_aio(void) { fixture_setup("aio"); }
static void setup_sync(void) { fixture_setup("sync"); }

static void teardown(void)
{
	unsetenv("VMFS_SECTOR_SIZE");
	unsetenv("VMFS_IO_ENGINE");
	unlink(path);
}

/* Reads [off, off+len) in chunks of up to 1 MiB and compares with model. */
static void verify(struct vmfs_dev *dev, const uint8_t *model, uint64_t off, uint64_t len)
{
	size_t chunk = 1u << 20;
	uint8_t *buf = xbuf(chunk);

	while (len) {
		size_t n = len < chunk ? len : chunk;
		int r = dev_pread(dev, buf, n, off);

		ck_assert_msg(r == 0, "read %zu at %llu: %s", n, (unsigned long long)off, strerror(-r));
		if (memcmp(buf, model, n)) {
			size_t i = 0;

			while (buf[i] == model[i])
				i++;
			ck_abort_msg("byte at %llu: %#x, expected %#x",
				     (unsigned long long)(off + i), buf[i], model[i]);
		}
		off += n;
		len -= n;
		model += n;
	}
	free(buf);
}

/* ---- tests run once per engine ------------------------------------------ */

START_TEST(props)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	char created[PATH_MAX + 8];
	mode_t old_mask;
	struct stat st;

	ck_assert_uint_eq(dev_size(dev), FILE_SIZE);
	ck_assert_uint_eq(dev_sector_size(dev), SECTOR);
	ck_assert(!dev_is_blockdev(dev));
	dev_close(dev);
	dev_close(NULL);

	/* DEV_CREATE makes an empty file with mode 0644 */
	snprintf(created, sizeof(created), "%s.new", path);
	ck_assert_int_eq(dev_open(created, 0, engine, &dev), -ENOENT);
	old_mask = umask(022);
	dev = open_dev(created, DEV_CREATE);
	umask(old_mask);
	ck_assert_uint_eq(dev_size(dev), 0);
	dev_close(dev);
	ck_assert_int_eq(stat(created, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	unlink(created);
}
END_TEST

START_TEST(random_rw)
{
	static const unsigned sizes[] = { 1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 127, 128, 255, 256, 1000, 2048 };
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *model = calloc(1, FILE_SIZE);
	uint8_t *wbuf = xbuf(8u << 20), *rbuf = xbuf(8u << 20);
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)_i;
	const uint64_t nsec = FILE_SIZE / SECTOR;

	ck_assert_ptr_nonnull(model);
	for (int i = 0; i < 400; i++) {
		uint64_t lsec = i == 0 ? 16384 : i % 3 ? sizes[rng_below(&seed, 16)] : 1 + rng_below(&seed, 2048);
		uint64_t osec = i == 1 ? nsec - lsec : rng_below(&seed, nsec - lsec + 1);
		size_t len = lsec * SECTOR;
		uint64_t off = osec * SECTOR;

		fill(wbuf, len, rng_next(&seed));
		ck_assert_int_eq(dev_pwrite(dev, wbuf, len, off), 0);
		memcpy(model + off, wbuf, len);
		memset(rbuf, 0xa5, len);
		ck_assert_int_eq(dev_pread(dev, rbuf, len, off), 0);
		ck_assert_msg(!memcmp(rbuf, wbuf, len), "write %d: %zu bytes at %llu read back wrong",
			      i, len, (unsigned long long)off);
	}
	/* the whole file, including the sparse parts that read as zeros */
	verify(dev, model, 0, FILE_SIZE);
	/* and again through odd-sized reads */
	for (uint64_t off = 0; off < FILE_SIZE;) {
		size_t len = (size_t)(1 + rng_below(&seed, 3000)) * SECTOR;

		if (off + len > FILE_SIZE)
			len = FILE_SIZE - off;
		ck_assert_int_eq(dev_pread(dev, rbuf, len, off), 0);
		ck_assert_msg(!memcmp(rbuf, model + off, len), "%zu at %llu", len, (unsigned long long)off);
		off += len;
	}
	ck_assert_uint_eq(dev_size(dev), FILE_SIZE);
	dev_close(dev);
	free(model);
	free(wbuf);
	free(rbuf);
}
END_TEST

START_TEST(unaligned)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *buf = xbuf(16384), *orig = xbuf(8192);
	struct dev_req reqs[3] = {
		{ .op = DEV_OP_WRITE, .buf = buf, .len = 4096, .off = 0 },
		{ .op = DEV_OP_WRITE, .buf = buf, .len = 4096, .off = 100 },
		{ .op = DEV_OP_READ, .buf = buf, .len = 4096, .off = 8192 },
	};
	struct dev_queue *q;

	fill(orig, 8192, 1);
	ck_assert_int_eq(dev_pwrite(dev, orig, 8192, 0), 0);
	fill(buf, 16384, 2);

	ck_assert_int_eq(dev_pwrite(dev, buf, 4096, 100), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf, 4096, 511), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf, 100, 0), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf, 4097, 0), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf + 1, 4096, 0), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf + 256, 4096, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, 100), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf, 1000, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf + 8, 4096, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, NULL, 4096, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, UINT64_MAX - 511), -EINVAL);
	ck_assert_int_eq(dev_zero_range(dev, 100, 4096), -EINVAL);
	ck_assert_int_eq(dev_zero_range(dev, 0, 100), -EINVAL);

	/* one bad request refuses the whole batch before any I/O */
	ck_assert_int_eq(dev_submit_wait(dev, reqs, 3), -EINVAL);
	ck_assert_int_eq(reqs[0].res, -ECANCELED);
	ck_assert_int_eq(reqs[1].res, -EINVAL);
	ck_assert_int_eq(reqs[2].res, -ECANCELED);

	ck_assert_int_eq(dev_queue_new(dev, 4, &q), 0);
	ck_assert_int_eq(dev_queue_submit(q, &reqs[1]), -EINVAL);
	ck_assert_int_eq(dev_queue_reap(q, 0, 4, (struct dev_req *[4]){ NULL }), 0);
	dev_queue_free(q);

	/* nothing of the refused writes reached the file */
	ck_assert_int_eq(dev_pread(dev, buf, 8192, 0), 0);
	ck_assert_mem_eq(buf, orig, 8192);

	/* length 0 is a no-op, wherever it points */
	ck_assert_int_eq(dev_pread(dev, buf, 0, 0), 0);
	ck_assert_int_eq(dev_pwrite(dev, buf + 1, 0, 3), 0);
	ck_assert_int_eq(dev_zero_range(dev, 0, 0), 0);
	ck_assert_int_eq(dev_submit_wait(dev, NULL, 0), 0);

	/* 512-aligned is enough for a 512-byte-sector file */
	ck_assert_int_eq(dev_pwrite(dev, buf + 512, 512, 512), 0);
	ck_assert_int_eq(dev_pread(dev, orig + 512, 512, 512), 0);
	ck_assert_mem_eq(orig + 512, buf + 512, 512);
	dev_close(dev);
	free(buf);
	free(orig);
}
END_TEST

START_TEST(read_past_eof)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *buf = xbuf(1u << 20), *data = xbuf(8192);
	struct dev_req reqs[3];

	fill(data, 8192, 3);
	ck_assert_int_eq(dev_pwrite(dev, data, 8192, FILE_SIZE - 8192), 0);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, FILE_SIZE), -EIO);
	ck_assert_int_eq(dev_pread(dev, buf, 8192, FILE_SIZE - 4096), -EIO);
	ck_assert_int_eq(dev_pread(dev, buf, 1u << 20, FILE_SIZE - 4096), -EIO);
	ck_assert_int_eq(dev_pread(dev, buf, 512, (uint64_t)FILE_SIZE * 4), -EIO);
	ck_assert_int_eq(dev_pread(dev, buf, 8192, FILE_SIZE - 8192), 0);
	ck_assert_mem_eq(buf, data, 8192);

	/* an end in the middle of a sector: the short read is still an error */
	ck_assert_int_eq(dev_set_size(dev, FILE_SIZE + 100), 0);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, FILE_SIZE - 2048), -EIO);
	ck_assert_int_eq(dev_set_size(dev, FILE_SIZE), 0);

	/* in a batch only the request past the end fails */
	memset(buf, 0, 8192);
	reqs[0] = (struct dev_req){ .op = DEV_OP_READ, .buf = buf, .len = 4096, .off = FILE_SIZE - 8192 };
	reqs[1] = (struct dev_req){ .op = DEV_OP_READ, .buf = buf + 8192, .len = 8192, .off = FILE_SIZE - 4096 };
	reqs[2] = (struct dev_req){ .op = DEV_OP_READ, .buf = buf + 4096, .len = 4096, .off = FILE_SIZE - 4096 };
	ck_assert_int_eq(dev_submit_wait(dev, reqs, 3), -EIO);
	ck_assert_int_eq(reqs[0].res, 0);
	ck_assert_int_eq(reqs[1].res, -EIO);
	ck_assert_int_eq(reqs[2].res, 0);
	ck_assert_mem_eq(buf, data, 8192);
	dev_close(dev);
	free(buf);
	free(data);
}
END_TEST

START_TEST(readonly)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *data = xbuf(65536), *buf = xbuf(65536);
	struct dev_req req = { .op = DEV_OP_WRITE, .buf = buf, .len = 4096, .off = 0 };
	struct dev_queue *q;
	struct stat st;

	fill(data, 65536, 4);
	ck_assert_int_eq(dev_pwrite(dev, data, 65536, 0), 0);
	dev_close(dev);

	dev = open_dev(path, DEV_RDONLY);
	ck_assert_int_eq(dev_pread(dev, buf, 65536, 0), 0);
	ck_assert_mem_eq(buf, data, 65536);
	memset(buf, 0x5a, 65536);
	ck_assert_int_eq(dev_pwrite(dev, buf, 4096, 0), -EROFS);
	ck_assert_int_eq(dev_flush(dev), -EROFS);
	ck_assert_int_eq(dev_zero_range(dev, 0, 4096), -EROFS);
	ck_assert_int_eq(dev_set_size(dev, FILE_SIZE * 2), -EROFS);
	ck_assert_int_eq(dev_submit_wait(dev, &req, 1), -EROFS);
	ck_assert_int_eq(req.res, -EROFS);
	ck_assert_int_eq(dev_queue_new(dev, 8, &q), 0);
	ck_assert_int_eq(dev_queue_submit(q, &req), -EROFS);
	dev_queue_free(q);
	ck_assert_int_eq(dev_pread(dev, buf, 65536, 0), 0);
	ck_assert_mem_eq(buf, data, 65536);
	dev_close(dev);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, FILE_SIZE);
	free(data);
	free(buf);
}
END_TEST

START_TEST(flush)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *buf = xbuf(4096);

	ck_assert_int_eq(dev_flush(dev), 0);
	fill(buf, 4096, 5);
	ck_assert_int_eq(dev_pwrite(dev, buf, 4096, 4096), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_close(dev);
	free(buf);
}
END_TEST

START_TEST(zero_range)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	const size_t mib = 1u << 20;
	uint8_t *model = xbuf(2 * mib), *buf = xbuf(2 * mib);
	struct stat before, after;

	fill(model, 2 * mib, 6);
	ck_assert_int_eq(dev_pwrite(dev, model, 2 * mib, mib), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(stat(path, &before), 0);

	ck_assert_int_eq(dev_zero_range(dev, mib + 256 * 1024, 256 * 1024 + 512), 0);
	memset(model + 256 * 1024, 0, 256 * 1024 + 512);
	ck_assert_int_eq(dev_zero_range(dev, mib + 2 * mib - 4096, 4096), 0);
	memset(model + 2 * mib - 4096, 0, 4096);
	/* the bytes around the zeroed ranges are untouched */
	ck_assert_int_eq(dev_pread(dev, buf, 2 * mib, mib), 0);
	ck_assert_mem_eq(buf, model, 2 * mib);
	ck_assert(base_all_zero(buf + 256 * 1024, 256 * 1024 + 512));
	ck_assert(!base_all_zero(buf + 256 * 1024 - 512, 512));
	ck_assert(!base_all_zero(buf + 512 * 1024 + 512, 512));
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_int_eq(after.st_size, FILE_SIZE);
	ck_assert_int_lt(after.st_blocks, before.st_blocks);   /* punched, not written */

	/* a range past the end grows the file and reads as zeros */
	fill(buf, 8192, 7);
	ck_assert_int_eq(dev_pwrite(dev, buf, 8192, FILE_SIZE - 8192), 0);
	ck_assert_int_eq(dev_zero_range(dev, FILE_SIZE - 4096, 8192), 0);
	ck_assert_uint_eq(dev_size(dev), FILE_SIZE + 4096);
	ck_assert_int_eq(dev_pread(dev, buf + 8192, 12288, FILE_SIZE - 8192), 0);
	ck_assert_mem_eq(buf + 8192, buf, 4096);
	ck_assert(base_all_zero(buf + 12288, 8192));
	dev_close(dev);
	free(model);
	free(buf);
}
END_TEST

START_TEST(submit_wait_200)
{
	enum { N = 200, SLOT = 65536 };
	struct vmfs_dev *dev = open_dev(path, 0);
	const uint64_t area_a = 8u << 20, area_len = 4u << 20;
	uint8_t *area = xbuf(area_len), *bufs = xbuf((size_t)N * SLOT), *check = xbuf(SLOT);
	struct dev_req reqs[N];
	unsigned slot_used[128] = { 0 };
	uint64_t seed = 0xabcdef12345ull;
	unsigned nw = 0, nr = 0;

	fill(area, area_len, 8);
	ck_assert_int_eq(dev_pwrite(dev, area, area_len, area_a), 0);
	for (unsigned i = 0; i < N; i++) {
		size_t len = (size_t)(1 + rng_below(&seed, SLOT / SECTOR)) * SECTOR;
		uint8_t *b = bufs + (size_t)i * SLOT;

		if (rng_below(&seed, 2) && nw < 100) {
			/* a write into its own 64 KiB slot of the first 8 MiB */
			unsigned slot;

			do
				slot = (unsigned)rng_below(&seed, 128);
			while (slot_used[slot]);
			slot_used[slot] = i + 1;
			fill(b, len, seed + i);
			reqs[i] = (struct dev_req){ .op = DEV_OP_WRITE, .buf = b, .len = len,
						    .off = (uint64_t)slot * SLOT + SLOT - len, .res = 1 };
			nw++;
		} else {
			uint64_t off = rng_below(&seed, (area_len - len) / SECTOR + 1) * SECTOR;

			reqs[i] = (struct dev_req){ .op = DEV_OP_READ, .buf = b, .len = len,
						    .off = area_a + off, .res = 1 };
			nr++;
		}
	}
	ck_assert_uint_gt(nw, 50);
	ck_assert_uint_gt(nr, 50);
	ck_assert_int_eq(dev_submit_wait(dev, reqs, N), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_msg(reqs[i].res == 0, "req %u: %d", i, reqs[i].res);
		if (reqs[i].op == DEV_OP_READ) {
			ck_assert_msg(!memcmp(reqs[i].buf, area + (reqs[i].off - area_a), reqs[i].len),
				      "read %u", i);
		} else {
			ck_assert_int_eq(dev_pread(dev, check, reqs[i].len, reqs[i].off), 0);
			ck_assert_msg(!memcmp(check, reqs[i].buf, reqs[i].len), "write %u", i);
		}
	}
	dev_close(dev);
	free(area);
	free(bufs);
	free(check);
}
END_TEST

/* kick: hand each request to the kernel as it is submitted rather than at the reap */
static void queue_pass(struct dev_queue *q, enum dev_op op, const uint32_t *blocks, unsigned n,
		       uint8_t *bufs, uint64_t seed, bool kick)
{
	enum { DEPTH = 32, BS = 4096 };
	struct dev_req reqs[DEPTH], *done[DEPTH];
	unsigned free_slots[DEPTH], nfree = DEPTH, next = 0, completed = 0;

	for (unsigned i = 0; i < DEPTH; i++)
		free_slots[i] = i;
	while (completed < n) {
		int r;

		while (nfree && next < n) {
			unsigned s = free_slots[--nfree];
			uint8_t *b = bufs + (size_t)s * BS;

			if (op == DEV_OP_WRITE)
				fill(b, BS, seed ^ blocks[next]);
			else
				memset(b, 0, BS);
			reqs[s] = (struct dev_req){ .op = op, .buf = b, .len = BS,
						    .off = (uint64_t)blocks[next] * BS };
			ck_assert_int_eq(dev_queue_submit(q, &reqs[s]), 0);
			if (kick)
				dev_queue_kick(q);
			next++;
		}
		if (nfree == 0) {
			struct dev_req extra = { .op = op, .buf = bufs, .len = BS, .off = 0 };

			ck_assert_int_eq(dev_queue_submit(q, &extra), -EBUSY);
		}
		r = dev_queue_reap(q, 1, DEPTH, done);
		ck_assert_int_ge(r, 1);
		ck_assert_int_le(r, DEPTH - (int)nfree);
		for (int i = 0; i < r; i++) {
			unsigned s = (unsigned)(done[i] - reqs);
			uint8_t expect[BS];

			ck_assert_uint_lt(s, DEPTH);
			ck_assert_int_eq(done[i]->res, 0);
			if (op == DEV_OP_READ) {
				fill(expect, BS, seed ^ (done[i]->off / BS));
				ck_assert_msg(!memcmp(done[i]->buf, expect, BS), "block %llu",
					      (unsigned long long)(done[i]->off / BS));
			}
			free_slots[nfree++] = s;
			completed++;
		}
	}
	ck_assert_uint_eq(nfree, DEPTH);
	ck_assert_int_eq(dev_queue_reap(q, 0, DEPTH, done), 0);
}

START_TEST(queue_2000)
{
	enum { NBLK = FILE_SIZE / 4096, N = 2000 };
	struct vmfs_dev *dev = open_dev(path, 0);
	static uint32_t blocks[NBLK];
	uint8_t *bufs = xbuf(32 * 4096);
	uint64_t seed = 0x5151ull, pattern = 0x77;
	struct dev_queue *q;
	struct dev_req *out[4];

	for (uint32_t i = 0; i < NBLK; i++)
		blocks[i] = i;
	for (uint32_t i = NBLK - 1; i > 0; i--) {   /* distinct random blocks */
		uint32_t j = (uint32_t)rng_below(&seed, i + 1), t = blocks[i];

		blocks[i] = blocks[j];
		blocks[j] = t;
	}
	ck_assert_int_eq(dev_queue_new(dev, 0, &q), -EINVAL);
	ck_assert_int_eq(dev_queue_new(dev, 32, &q), 0);
	ck_assert_int_eq(dev_queue_reap(q, 2, 1, out), -EINVAL);
	ck_assert_int_eq(dev_queue_reap(q, 0, 4, out), 0);
	dev_queue_kick(q);   /* nothing queued: nothing happens */
	ck_assert_int_eq(dev_queue_reap(q, 0, 4, out), 0);
	queue_pass(q, DEV_OP_WRITE, blocks, N / 2, bufs, pattern, false);
	queue_pass(q, DEV_OP_WRITE, blocks + N / 2, N - N / 2, bufs, pattern, true);
	queue_pass(q, DEV_OP_READ, blocks, N / 2, bufs, pattern, true);
	queue_pass(q, DEV_OP_READ, blocks + N / 2, N - N / 2, bufs, pattern, false);
	/* read back the other way too, and check an unwritten block reads as zeros */
	for (unsigned i = 0; i < N; i += 97) {
		uint8_t expect[4096];

		fill(expect, 4096, pattern ^ blocks[i]);
		ck_assert_int_eq(dev_pread(dev, bufs, 4096, (uint64_t)blocks[i] * 4096), 0);
		ck_assert_mem_eq(bufs, expect, 4096);
	}
	ck_assert_int_eq(dev_pread(dev, bufs, 4096, (uint64_t)blocks[N] * 4096), 0);
	ck_assert(base_all_zero(bufs, 4096));

	/* min 0 polls; a zero-length request completes with 0; free waits for the rest */
	{
		struct dev_req zero = { .op = DEV_OP_READ, .buf = NULL, .len = 0, .off = 7, .res = 1 };
		struct dev_req rd = { .op = DEV_OP_READ, .buf = bufs, .len = 4096, .off = 0, .res = 1 };
		int r, got = 0;

		ck_assert_int_eq(dev_queue_submit(q, &zero), 0);
		ck_assert_int_eq(dev_queue_submit(q, &rd), 0);
		r = dev_queue_reap(q, 0, 4, out);
		ck_assert_int_ge(r, 0);
		got += r;
		r = dev_queue_reap(q, 5, 5, out + got);   /* min above what is queued: waits for 2 */
		ck_assert_int_ge(r, 0);
		got += r;
		ck_assert_int_eq(got, 2);
		ck_assert_int_eq(zero.res, 0);
		ck_assert_int_eq(rd.res, 0);
		ck_assert_int_eq(dev_queue_submit(q, &rd), 0);
	}
	dev_queue_free(q);
	dev_queue_free(NULL);
	dev_close(dev);
	free(bufs);
}
END_TEST

struct worker {
	pthread_t thread;
	struct vmfs_dev *dev;
	unsigned id;
	unsigned errors;
	char first[160];
};

static void worker_fail(struct worker *w, const char *what, int r, uint64_t off)
{
	if (!w->errors++)
		snprintf(w->first, sizeof(w->first), "thread %u: %s at %llu: %d", w->id, what,
			 (unsigned long long)off, r);
}

/* Writes and reads back random pieces of its own 1 MiB, then checks all of it. */
static void *worker_run(void *arg)
{
	enum { REGION = 1u << 20 };
	struct worker *w = arg;
	uint64_t base = (uint64_t)w->id * REGION, seed = 0x1000 + w->id;
	uint8_t *model = calloc(1, REGION), *wbuf = dev_alloc_buf(REGION), *rbuf = dev_alloc_buf(REGION);

	if (!model || !wbuf || !rbuf) {
		worker_fail(w, "alloc", -ENOMEM, 0);
		goto out;
	}
	for (unsigned i = 0; i < 150; i++) {
		size_t len = (size_t)(1 + rng_below(&seed, 128)) * SECTOR;
		uint64_t off = rng_below(&seed, (REGION - len) / SECTOR + 1) * SECTOR;
		int r;

		fill(wbuf, len, rng_next(&seed));
		if (i % 10 == 9) {
			struct dev_req reqs[2] = {
				{ .op = DEV_OP_WRITE, .buf = wbuf, .len = len, .off = base + off },
				{ .op = DEV_OP_READ, .buf = rbuf, .len = REGION / 2, .off = base },
			};

			r = dev_submit_wait(w->dev, reqs, 2);
			if (r || reqs[0].res || reqs[1].res)
				worker_fail(w, "submit_wait", r, base + off);
			r = dev_flush(w->dev);
			if (r)
				worker_fail(w, "flush", r, 0);
		} else {
			r = dev_pwrite(w->dev, wbuf, len, base + off);
			if (r)
				worker_fail(w, "write", r, base + off);
		}
		memcpy(model + off, wbuf, len);
		r = dev_pread(w->dev, rbuf, len, base + off);
		if (r || memcmp(rbuf, wbuf, len))
			worker_fail(w, "read back", r, base + off);
	}
	if (dev_pread(w->dev, rbuf, REGION, base) || memcmp(rbuf, model, REGION))
		worker_fail(w, "final check", 0, base);
out:
	free(model);
	free(wbuf);
	free(rbuf);
	return NULL;
}

START_TEST(threads)
{
	enum { NT = 8 };
	struct vmfs_dev *dev = open_dev(path, 0);
	struct worker w[NT];

	for (unsigned i = 0; i < NT; i++) {
		w[i] = (struct worker){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, worker_run, &w[i]), 0);
	}
	for (unsigned i = 0; i < NT; i++)
		ck_assert_int_eq(pthread_join(w[i].thread, NULL), 0);
	for (unsigned i = 0; i < NT; i++)
		ck_assert_msg(w[i].errors == 0, "%u errors, first: %s", w[i].errors, w[i].first);
	dev_close(dev);
}
END_TEST

START_TEST(sector_4096_env)
{
	struct vmfs_dev *dev;
	uint8_t *buf = xbuf(16384), *back = xbuf(8192);

	setenv("VMFS_SECTOR_SIZE", "1000", 1);
	ck_assert_int_eq(dev_open(path, 0, engine, &dev), -EINVAL);
	setenv("VMFS_SECTOR_SIZE", "4096", 1);
	dev = open_dev(path, 0);
	ck_assert_uint_eq(dev_sector_size(dev), 4096);
	ck_assert_int_eq(dev_pread(dev, buf, 512, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, 512), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf, 4096, 3584), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf + 512, 4096, 0), -EINVAL);
	ck_assert_int_eq(dev_pwrite(dev, buf, 6144, 0), -EINVAL);
	ck_assert_int_eq(dev_zero_range(dev, 512, 4096), -EINVAL);
	fill(buf, 8192, 9);
	ck_assert_int_eq(dev_pwrite(dev, buf + 4096, 8192, 4096), 0);
	ck_assert_int_eq(dev_pread(dev, back, 8192, 4096), 0);
	ck_assert_mem_eq(back, buf + 4096, 8192);
	dev_close(dev);
	free(buf);
	free(back);
}
END_TEST

/* Reads one line of a command's output; false when it fails or prints nothing. */
static bool run_line(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(out, (int)len, f) != NULL;
	if (pclose(f) != 0)
		ok = false;
	if (ok)
		out[strcspn(out, "\n")] = 0;
	return ok && out[0];
}

START_TEST(loop_4096)
{
	char cmd[PATH_MAX + 80], loopdev[64];
	struct loop_info64 info;
	struct vmfs_dev *dev;
	uint8_t *model, *buf;
	uint64_t seed = 0x4096;
	int fd;

	if (geteuid() != 0) {
		fprintf(stderr, "test_dev: loop_4096 (%s) skipped: not root\n", engine);
		return;
	}
	snprintf(cmd, sizeof(cmd), "losetup --find --show --sector-size 4096 '%s' 2>/dev/null", path);
	if (!run_line(cmd, loopdev, sizeof(loopdev))) {
		fprintf(stderr, "test_dev: loop_4096 (%s) skipped: losetup failed\n", engine);
		return;
	}
	/* detach on last close, so a failing test leaves no loop device behind */
	fd = open(loopdev, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", loopdev, strerror(errno));
	ck_assert_int_eq(ioctl(fd, LOOP_GET_STATUS64, &info), 0);
	info.lo_flags |= LO_FLAGS_AUTOCLEAR;
	ck_assert_int_eq(ioctl(fd, LOOP_SET_STATUS64, &info), 0);

	dev = open_dev(loopdev, 0);
	ck_assert(dev_is_blockdev(dev));
	ck_assert_uint_eq(dev_sector_size(dev), 4096);
	ck_assert_uint_eq(dev_size(dev), FILE_SIZE);
	ck_assert_int_eq(dev_set_size(dev, FILE_SIZE * 2), -ENOTTY);
	model = xbuf(FILE_SIZE);
	buf = xbuf(1u << 20);
	ck_assert_int_eq(dev_pwrite(dev, buf, 512, 0), -EINVAL);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, 512), -EINVAL);
	for (int i = 0; i < 60; i++) {
		size_t len = (size_t)(1 + rng_below(&seed, 256)) * 4096;
		uint64_t off = rng_below(&seed, (FILE_SIZE - len) / 4096 + 1) * 4096;

		fill(buf, len, rng_next(&seed));
		ck_assert_int_eq(dev_pwrite(dev, buf, len, off), 0);
		memcpy(model + off, buf, len);
	}
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_zero_range(dev, 1u << 20, 1u << 20), 0);
	memset(model + (1u << 20), 0, 1u << 20);
	verify(dev, model, 0, FILE_SIZE);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, FILE_SIZE), -EIO);
	dev_close(dev);
	close(fd);
	free(model);
	free(buf);
}
END_TEST

START_TEST(set_size)
{
	struct vmfs_dev *dev = open_dev(path, 0);
	uint8_t *buf = xbuf(4096);
	struct stat st;

	ck_assert_int_eq(dev_set_size(dev, 3ull << 23), 0);   /* 24 MiB */
	ck_assert_uint_eq(dev_size(dev), 3ull << 23);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 3ll << 23);
	memset(buf, 0xff, 4096);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, 20u << 20), 0);
	ck_assert(base_all_zero(buf, 4096));
	ck_assert_int_eq(dev_set_size(dev, 8u << 20), 0);
	ck_assert_uint_eq(dev_size(dev), 8u << 20);
	ck_assert_int_eq(dev_pread(dev, buf, 4096, 12u << 20), -EIO);
	ck_assert_int_eq(dev_set_size(dev, UINT64_MAX), -EFBIG);
	dev_close(dev);
	free(buf);
}
END_TEST

/* ---- tests independent of the engine ------------------------------------ */

START_TEST(open_errors)
{
	struct vmfs_dev *dev = NULL;
	char missing[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/dev.XXXXXX", tmpdir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);

	ck_assert_int_eq(dev_open(tmpdir, 0, NULL, &dev), -ENOTBLK);
	ck_assert_int_eq(dev_open(tmpdir, DEV_RDONLY, NULL, &dev), -ENOTBLK);
	ck_assert_int_eq(dev_open(tmpdir, DEV_CREATE, NULL, &dev), -ENOTBLK);
	ck_assert_int_eq(dev_open("/dev/null", 0, NULL, &dev), -ENOTBLK);
	ck_assert_int_eq(dev_open("/dev/null", DEV_RDONLY, "sync", &dev), -ENOTBLK);
	ck_assert_int_eq(dev_open(missing, 0, NULL, &dev), -ENOENT);
	ck_assert_int_eq(dev_open(missing, DEV_RDONLY, "aio", &dev), -ENOENT);
	ck_assert_int_eq(dev_open(path, 0, "bogus", &dev), -EINVAL);
	ck_assert_int_eq(dev_open(path, 0, "URING", &dev), -EINVAL);
	ck_assert_int_eq(dev_open(path, 1u << 7, NULL, &dev), -EINVAL);
	ck_assert_ptr_null(dev);

	setenv("VMFS_IO_ENGINE", "bogus", 1);
	ck_assert_int_eq(dev_open(path, 0, NULL, &dev), -EINVAL);
	setenv("VMFS_IO_ENGINE", "sync", 1);
	ck_assert_int_eq(dev_open(path, 0, NULL, &dev), 0);
	ck_assert_str_eq(dev_engine_name(dev), "sync");
	dev_close(dev);
	ck_assert_int_eq(dev_open(path, 0, "aio", &dev), 0);   /* the argument wins */
	ck_assert_str_eq(dev_engine_name(dev), "aio");
	dev_close(dev);
	unsetenv("VMFS_IO_ENGINE");
	ck_assert_int_eq(dev_open(path, 0, NULL, &dev), 0);
	ck_assert_str_eq(dev_engine_name(dev), uring_works ? "uring" : "aio");
	dev_close(dev);
}
END_TEST

/* What the seccomp filter of a fallback child makes fail (0: nothing). */
struct fault {
	int uring_err;      /* io_uring_setup */
	int aio_err;        /* io_setup */
	bool no_direct;     /* openat with O_DIRECT: EINVAL, as on a filesystem without it */
};

static uint32_t fault_ret(int err)
{
	return err ? SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA) : SECCOMP_RET_ALLOW;
}

/*
 * In a child: installs the filter, opens the file twice and does some I/O.
 * Exits 10, 11 or 12 for engine uring, aio or sync; 20 and up when something failed.
 */
static void fallback_child(const struct fault *f)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, fault_ret(f->uring_err)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, fault_ret(f->aio_err)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, O_DIRECT),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, O_DIRECT, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, fault_ret(f->no_direct ? EINVAL : 0)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	struct vmfs_dev *a, *b;
	uint8_t *buf, *back;
	const char *name;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(20);
	if (dev_open(path, 0, "uring", &a))
		_exit(21);
	if (dev_open(path, 0, NULL, &b)) {
		dev_close(a);
		_exit(21);
	}
	buf = dev_alloc_buf(8192);
	back = dev_alloc_buf(8192);
	name = dev_engine_name(a);
	if (strcmp(name, dev_engine_name(b)))
		_exit(22);
	fill(buf, 8192, 10);
	if (dev_pwrite(a, buf, 8192, FILE_SIZE - 8192) || dev_flush(a) ||
	    dev_pread(b, back, 8192, FILE_SIZE - 8192) || memcmp(buf, back, 8192))
		_exit(23);
	if (dev_pread(b, back, 8192, FILE_SIZE - 4096) != -EIO || dev_pwrite(b, buf + 1, 512, 0) != -EINVAL)
		_exit(24);
	/* free all, so a leak checker running the child has nothing to report */
	dev_close(a);
	dev_close(b);
	free(buf);
	free(back);
	_exit(!strcmp(name, "uring") ? 10 : !strcmp(name, "aio") ? 11 : !strcmp(name, "sync") ? 12 : 25);
}

/* Returns the child's exit code; what it printed on stderr goes to err. */
static int run_fallback(const struct fault *f, char *err, size_t len)
{
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fallback_child(f);
	}
	close(pfd[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	n = read(pfd[0], err, len - 1);
	err[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

START_TEST(engine_fallback)
{
	char err[1024];
	int fd, r;

	snprintf(path, sizeof(path), "%s/dev.XXXXXX", tmpdir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, FILE_SIZE), 0);
	close(fd);

	r = run_fallback(&(struct fault){ .uring_err = ENOSYS }, err, sizeof(err));
	ck_assert_msg(r == 11, "exit %d, stderr: %s", r, err);
	ck_assert_msg(strstr(err, "uring unavailable") && strstr(err, "using aio"), "stderr: %s", err);
	ck_assert_uint_eq(count_lines(err), 1);
	r = run_fallback(&(struct fault){ .uring_err = EPERM }, err, sizeof(err));
	ck_assert_msg(r == 11, "exit %d, stderr: %s", r, err);
	r = run_fallback(&(struct fault){ .uring_err = ENOMEM, .aio_err = ENOSYS }, err, sizeof(err));
	ck_assert_msg(r == 12, "exit %d, stderr: %s", r, err);
	ck_assert_msg(strstr(err, "using sync"), "stderr: %s", err);
	ck_assert_uint_eq(count_lines(err), 1);
	/* O_DIRECT refused: buffered I/O, said once per open */
	r = run_fallback(&(struct fault){ .no_direct = true }, err, sizeof(err));
	ck_assert_msg(r == (uring_works ? 10 : 11), "exit %d, stderr: %s", r, err);
	ck_assert_msg(strstr(err, ": O_DIRECT not supported, using buffered I/O\n"), "stderr: %s", err);
	ck_assert_uint_eq(count_lines(err), uring_works ? 2 : 3);
	/* any other failure is reported, not hidden */
	r = run_fallback(&(struct fault){ .uring_err = EINVAL }, err, sizeof(err));
	ck_assert_msg(r == 21, "exit %d, stderr: %s", r, err);
}
END_TEST

/* ---- runner -------------------------------------------------------------- */

static void add_engine_tcase(Suite *s, const char *name, void (*setup)(void))
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, props);
	tcase_add_test(tc, random_rw);
	tcase_add_test(tc, unaligned);
	tcase_add_test(tc, read_past_eof);
	tcase_add_test(tc, readonly);
	tcase_add_test(tc, flush);
	tcase_add_test(tc, zero_range);
	tcase_add_test(tc, submit_wait_200);
	tcase_add_test(tc, queue_2000);
	tcase_add_test(tc, threads);
	tcase_add_test(tc, sector_4096_env);
	tcase_add_test(tc, loop_4096);
	tcase_add_test(tc, set_size);
	suite_add_tcase(s, tc);
}

static Suite *dev_suite(void)
{
	Suite *s = suite_create("dev");
	TCase *tc;

	add_engine_tcase(s, "uring", setup_uring);
	add_engine_tcase(s, "aio", setup_aio);
	add_engine_tcase(s, "sync", setup_sync);

	tc = tcase_create("common");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, open_errors);
	tcase_add_test(tc, engine_fallback);
	suite_add_tcase(s, tc);
	return s;
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[PATH_MAX + 300];

	if (d) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
}

int main(void)
{
	struct io_uring ring;
	SRunner *sr;
	int failed;

	if (!mkdtemp(tmpdir)) {
		perror("test_dev: mkdtemp");
		return EXIT_FAILURE;
	}
	if (io_uring_queue_init(8, &ring, 0) == 0) {
		uring_works = true;
		io_uring_queue_exit(&ring);
	} else {
		fprintf(stderr, "test_dev: io_uring unavailable here; the uring cases check the fallback\n");
	}
	unsetenv("VMFS_IO_ENGINE");
	unsetenv("VMFS_SECTOR_SIZE");
	sr = srunner_create(dev_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tmpdir();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
