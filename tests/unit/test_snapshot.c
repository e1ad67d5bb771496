/*
 * Unit tests of shared blocks and snapshots: vmfs/vmfs.h's snapshot, revert,
 * delete, clone and diff calls, and snapshot/snapshot.h above them. Every test
 * keeps a model of what each file and snapshot must hold, reads each back
 * through the library, runs fsck (-n) on the result and, where everything is
 * deleted, checks that the datastore has every unit back.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"

#include "tests/unit/test_key.h"

static char img[64];
/* This run's directory: every test's image is made in it, and main empties it
 * at the end, after tests that failed (their process ends before teardown) too. */
static char run_dir[32] = "/var/tmp/vmfs-snap-XXXXXX";

/* mkfs of img, encrypted with key when it is not NULL. */
static void mk_key(uint64_t size, uint32_t bs, struct enc_secret *key)
{
	struct vmfs_mkfs_opts o = { .size = size, .block_size = bs, .force = true, .host_slots = 8,
				    .secret = key, .key_kind = ENC_SECRET_KEYFILE };
	char err[256] = "";
	snprintf(img, sizeof(img), "%s/img-XXXXXX", run_dir);
	int fd = mkstemp(img);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(vmfs_mkfs(img, &o, err, sizeof(err)) == 0, "mkfs: %s", err);
}

static void mk(uint64_t size, uint32_t bs)
{
	mk_key(size, bs, test_key());
}

static struct vmfs *op_with(struct enc_secret *key)
{
	struct vmfs_open_opts o = { .commit_ms = 0, .standalone = true, .secret = key };
	struct vmfs *fs = NULL;
	char err[256] = "";
	int ret = vmfs_open(img, &o, &fs, err, sizeof(err));
	ck_assert_msg(ret == 0, "open: %d %s", ret, err);
	return fs;
}

static struct vmfs *op(void)
{
	return op_with(test_key());
}

static void teardown(void)
{
	unlink(img);
}

static uint64_t create(struct vmfs *fs, uint64_t dir, const char *name)
{
	struct vmfs_stat st;
	int ret = vmfs_mknod(fs, dir, name, S_IFREG | 0644, 0, 0, &st);
	ck_assert_msg(ret == 0, "create %s: %d", name, ret);
	return st.ino;
}

static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 12)) ^ (seed >> 3));
}

/* A model file: its bytes and its size. */
struct model {
	uint8_t *b;
	size_t size, cap;
};

static void m_write(struct vmfs *fs, uint64_t ino, struct model *m, size_t off, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len);
	fill(buf, len, seed);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, buf, len, off), (ssize_t)len);
	ck_assert_uint_le(off + len, m->cap);
	memcpy(m->b + off, buf, len);
	if (off + len > m->size)
		m->size = off + len;
	free(buf);
}

static struct model m_new(size_t cap)
{
	struct model m = { .b = calloc(1, cap), .cap = cap };
	ck_assert_ptr_nonnull(m.b);
	return m;
}

static struct model m_copy(const struct model *m)
{
	struct model c = m_new(m->cap);
	memcpy(c.b, m->b, m->cap);
	c.size = m->size;
	return c;
}

static void m_check(struct vmfs *fs, uint64_t ino, const struct model *m, const char *what)
{
	struct vmfs_stat st;
	uint8_t *buf = malloc(m->size + 1);

	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
	ck_assert_msg(st.size == m->size, "%s: size %llu, expected %zu", what, (unsigned long long)st.size, m->size);
	ck_assert_int_eq(vmfs_pread(fs, ino, buf, m->size + 1, 0), (ssize_t)m->size);
	for (size_t i = 0; i < m->size; i++)
		if (buf[i] != m->b[i])
			ck_abort_msg("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, buf[i], m->b[i]);
	free(buf);
}

static uint64_t free_units(struct vmfs *fs)
{
	struct vmfs_info in;
	ck_assert_int_eq(vmfs_get_info(fs, &in), 0);
	return in.free_blocks * (in.block_size / 4096) + in.pool_free_units + in.pools;
}

static void fsck_clean(void)
{
	struct vmfs_fsck_opts o = { .mode = VMFS_FSCK_CHECK, .force = true, .out = stderr };
	struct vmfs_fsck_result r;
	char err[256] = "";
	ck_assert_msg(vmfs_fsck(img, &o, &r, err, sizeof(err)) == 0, "fsck: %s", err);
	ck_assert_msg(r.found == 0, "fsck found %u problems", r.found);
}

static uint64_t snap(struct vmfs *fs, uint64_t file, const char *name)
{
	uint64_t s = 0;
	int ret = vmfs_snap_create(fs, &file, 1, name, &s);
	ck_assert_msg(ret == 0, "snapshot %s: %d", name, ret);
	return s;
}

/* Writes of every shape into shared blocks leave the snapshot as it was. */
static void basic(uint32_t bs, size_t size)
{
	struct model live = m_new(size * 2), a, b;
	struct vmfs *fs;
	uint64_t ino, sa, sb, sc, base, par;
	struct vmfs_snap_info *list;
	size_t n;

	mk(512ull << 20, bs);
	fs = op();
	base = free_units(fs);
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, size, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	m_write(fs, ino, &live, 4096, 4096, 2);                  /* aligned, in a shared block */
	m_write(fs, ino, &live, 3 * bs + 17, 1000, 3);          /* unaligned */
	if (size >= 4 * (size_t)bs)
		m_write(fs, ino, &live, 2 * (size_t)bs, bs, 4); /* a whole shared block */
	m_write(fs, ino, &live, size - 10, 5000, 5);            /* across the end: grows */
	m_check(fs, ino, &live, "live after writes");
	m_check(fs, sa, &a, "A after writes");
	sb = snap(fs, ino, "B");
	b = m_copy(&live);
	m_write(fs, ino, &live, 100, 200, 6);
	ck_assert_int_eq(vmfs_snap_revert(fs, &ino, &sa, 1), 0);
	m_check(fs, ino, &a, "live reverted to A");
	m_check(fs, sb, &b, "B after revert");
	m_write(fs, ino, &a, 8192, 100, 7);
	sc = snap(fs, ino, "C");
	ck_assert_int_eq(vmfs_snap_list(fs, ino, &list, &n, &par), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(list[0].name, "C");
	ck_assert_uint_eq(list[0].parent, sa); /* revert to A, write, snapshot C: C's parent is A */
	ck_assert_uint_eq(list[1].parent, sa);
	ck_assert_uint_eq(list[2].parent, 0);
	ck_assert_uint_eq(par, sc);
	free(list);
	{ /* what list says A holds alone is exactly what deleting it gives back */
		uint64_t uniq, before;
		struct vmfs_info in;

		ck_assert_int_eq(vmfs_unique_bytes(fs, sa, &uniq), 0);
		ck_assert_int_eq(vmfs_get_info(fs, &in), 0);
		before = in.free_bytes;
		ck_assert_int_eq(vmfs_snap_delete(fs, ino, sa), 0); /* the oldest, with children */
		ck_assert_int_eq(vmfs_get_info(fs, &in), 0);
		ck_assert_msg(in.free_bytes - before == uniq, "deleting A freed %llu bytes, its unique bytes were %llu",
			      (unsigned long long)(in.free_bytes - before), (unsigned long long)uniq);
	}
	ck_assert_int_eq(vmfs_snap_list(fs, ino, &list, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(list[0].parent, 0);
	ck_assert_uint_eq(list[1].parent, 0);
	free(list);
	m_check(fs, sb, &b, "B after deleting A");
	m_check(fs, ino, &a, "live after deleting A");
	vmfs_close(fs);
	fsck_clean();
	fs = op();
	m_check(fs, sc, &a, "C after a remount");
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "disk"), 0); /* its snapshots go with it */
	ck_assert_uint_eq(free_units(fs), base);
	vmfs_close(fs);
	fsck_clean();
	free(live.b);
	free(a.b);
	free(b.b);
}

START_TEST(t_basic_large)
{
	basic(1u << 20, 12u << 20);
}
END_TEST

START_TEST(t_basic_64k)
{
	basic(64u << 10, 40u << 20); /* a taller map: pointer blocks are shared and copied */
}
END_TEST

START_TEST(t_basic_small)
{
	basic(64u << 10, 600u << 10); /* 4 KiB sub-blocks; grows into file blocks after the snapshot */
}
END_TEST

START_TEST(t_inline)
{
	struct model live = m_new(8192), a;
	struct vmfs *fs;
	uint64_t ino, sa;

	mk(256ull << 20, 0);
	fs = op();
	ino = create(fs, vmfs_root_ino(fs), "conf");
	m_write(fs, ino, &live, 0, 300, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	m_write(fs, ino, &live, 10, 5000, 2); /* leaves inline */
	m_check(fs, sa, &a, "inline A");
	ck_assert_int_eq(vmfs_snap_revert(fs, &ino, &sa, 1), 0);
	m_check(fs, ino, &a, "inline reverted");
	vmfs_close(fs);
	fsck_clean();
	free(live.b);
	free(a.b);
}
END_TEST

/* Truncate, punch and zero-range on shared blocks change only the live file. */
START_TEST(t_truncate_punch)
{
	struct model live = m_new(16u << 20), a;
	struct vmfs *fs;
	uint64_t ino, sa;

	mk(256ull << 20, 0);
	fs = op();
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 8u << 20, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 3u << 20), 0);
	memset(live.b + 1000, 0, 3u << 20);
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_ZERO_RANGE, (5u << 20) - 7, (1u << 20) + 9), 0);
	memset(live.b + (5u << 20) - 7, 0, (1u << 20) + 9);
	ck_assert_int_eq(vmfs_setattr(fs, ino, &(struct vmfs_stat){ .size = (7u << 20) + 5 }, VMFS_SET_SIZE, NULL), 0);
	memset(live.b + (7u << 20) + 5, 0, live.cap - ((7u << 20) + 5));
	live.size = (7u << 20) + 5;
	m_check(fs, ino, &live, "live after punch, zero, truncate");
	m_check(fs, sa, &a, "A after punch, zero, truncate");
	ck_assert_int_eq(vmfs_setattr(fs, ino, &(struct vmfs_stat){ .size = 9u << 20 }, VMFS_SET_SIZE, NULL), 0);
	live.size = 9u << 20;
	m_check(fs, ino, &live, "live grown again");
	vmfs_close(fs);
	fsck_clean();
	free(live.b);
	free(a.b);
}
END_TEST

struct ext_list {
	uint64_t off[64], len[64];
	unsigned n;
};

static int ext_cb(void *ctx, uint64_t off, uint64_t len)
{
	struct ext_list *e = ctx;
	ck_assert_uint_lt(e->n, 64);
	e->off[e->n] = off;
	e->len[e->n++] = len;
	return 0;
}

START_TEST(t_diff)
{
	struct model live = m_new(8u << 20);
	struct ext_list e = { 0 };
	struct vmfs *fs;
	uint64_t ino, sa, sb;

	mk(256ull << 20, 0);
	fs = op();
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 6u << 20, 1);
	sa = snap(fs, ino, "A");
	ck_assert_int_eq(vmfs_map_diff(fs, sa, ino, ext_cb, &e), 0);
	ck_assert_uint_eq(e.n, 0); /* nothing changed */
	m_write(fs, ino, &live, (1u << 20) + 5, 10, 2);
	m_write(fs, ino, &live, (2u << 20) + 5, 10, 3);
	m_write(fs, ino, &live, (4u << 20) + 5, 10, 4);
	sb = snap(fs, ino, "B");
	m_write(fs, ino, &live, (7u << 20), 100, 5); /* grows */
	ck_assert_int_eq(vmfs_map_diff(fs, sa, sb, ext_cb, &e), 0);
	ck_assert_uint_eq(e.n, 3); /* the 4 KiB grains written (redirects), not their 1 MiB blocks */
	ck_assert_uint_eq(e.off[0], 1u << 20);
	ck_assert_uint_eq(e.len[0], 4096);
	ck_assert_uint_eq(e.off[1], 2u << 20);
	ck_assert_uint_eq(e.len[1], 4096);
	ck_assert_uint_eq(e.off[2], 4u << 20);
	ck_assert_uint_eq(e.len[2], 4096);
	e.n = 0;
	ck_assert_int_eq(vmfs_map_diff(fs, sb, ino, ext_cb, &e), 0);
	ck_assert_uint_eq(e.n, 1);
	ck_assert_uint_eq(e.off[0], 6u << 20);
	ck_assert_uint_eq(e.len[0], (1u << 20) + 100);
	vmfs_close(fs);
	free(live.b);
}
END_TEST

static struct vmfs *op_ms(unsigned ms)
{
	struct vmfs_open_opts o = { .commit_ms = ms, .standalone = true, .secret = test_key() };
	struct vmfs *fs = NULL;
	char err[256] = "";
	int ret = vmfs_open(img, &o, &fs, err, sizeof(err));
	ck_assert_msg(ret == 0, "open: %d %s", ret, err);
	return fs;
}

static uint64_t dev_of(struct vmfs *fs, uint64_t ino, uint64_t off)
{
	struct vmfs_bmap_info bi;
	ck_assert_int_eq(vmfs_bmap(fs, ino, off, &bi), 0);
	return bi.dev_off;
}

/*
 * Redirects (docs/FORMAT.md): a first write into a shared block costs one
 * block and one sub-block, not a copy; the diff names its 4 KiB grains; a
 * partial grain is filled from the shared block; a block written whole, or
 * grain by grain to the last grain, collapses to a plain block; a snapshot of
 * a redirect and a write through it keep both views; queued (aio) writes at
 * QD32 take the same way. Every view reads back, fsck is clean, and deleting
 * everything gives every unit back.
 */
START_TEST(t_redirect)
{
	struct model live = m_new(16u << 20), a, b;
	struct ext_list e = { 0 };
	struct vmfs *fs;
	uint64_t ino, sa, sb, sc, fresh, f0;
	uint8_t *buf = aligned_alloc(4096, 1u << 20);

	mk(256ull << 20, 0);
	fs = op();
	fresh = free_units(fs);
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 16u << 20, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	f0 = free_units(fs);

	m_write(fs, ino, &live, (1u << 20) + 3 * 4096, 4096, 2); /* one grain */
	ck_assert_uint_eq(f0 - free_units(fs), 256 + 1);        /* a block and a redirect table, no copy */
	ck_assert_uint_ne(dev_of(fs, ino, 1u << 20), dev_of(fs, sa, 1u << 20));
	m_write(fs, ino, &live, (1u << 20) + 5 * 4096, 4096, 3); /* another grain: nothing more */
	ck_assert_uint_eq(f0 - free_units(fs), 256 + 1);
	f0 = free_units(fs);
	m_write(fs, ino, &live, (2u << 20) + 100, 700, 4);       /* part of a grain */
	ck_assert_uint_eq(f0 - free_units(fs), 256);            /* its redirect shares the table */
	m_write(fs, ino, &live, (2u << 20) + 4000, 200, 5);      /* across two grains, one of them set */
	m_check(fs, ino, &live, "live after grain writes");
	m_check(fs, sa, &a, "A after grain writes");
	ck_assert_int_eq(vmfs_map_diff(fs, sa, ino, ext_cb, &e), 0);
	ck_assert_uint_eq(e.n, 3);
	ck_assert_uint_eq(e.off[0], (1u << 20) + 3 * 4096);
	ck_assert_uint_eq(e.len[0], 4096);
	ck_assert_uint_eq(e.off[1], (1u << 20) + 5 * 4096);
	ck_assert_uint_eq(e.off[2], 2u << 20);
	ck_assert_uint_eq(e.len[2], 8192);

	f0 = free_units(fs);
	m_write(fs, ino, &live, 3u << 20, 1u << 20, 6);         /* a whole block: collapses at once */
	ck_assert_uint_eq(f0 - free_units(fs), 256);
	for (unsigned g = 0; g < 256; g++)                       /* block 1 to its last grain: collapses */
		if (g != 3 && g != 5)
			m_write(fs, ino, &live, (1u << 20) + g * 4096, 4096, 7 + g);
	ck_assert_uint_eq(f0 - free_units(fs), 256);            /* its slot is free; block 2's keeps the table */

	sb = snap(fs, ino, "B");                                  /* shares block 2's redirect */
	b = m_copy(&live);
	m_write(fs, ino, &live, (2u << 20) + 8192, 4096, 300);  /* through a shared redirect */
	m_write(fs, ino, &live, (2u << 20) + 200, 10, 301);
	m_check(fs, ino, &live, "live after writing through a shared redirect");
	m_check(fs, sb, &b, "B");
	m_check(fs, sa, &a, "A");
	vmfs_close(fs);
	fsck_clean();

	/* queued writes, QD32: 4 KiB first writes into shared blocks and into one block's clear grains */
	fs = op_ms(5000);
	sc = snap(fs, ino, "C");
	struct model c = m_copy(&live);
	struct vmfs_aio *q;
	struct vmfs_aio_req req[64], *done[64];
	ck_assert_int_eq(vmfs_aio_new(fs, 32, &q), 0);
	/*
	 * A queued write across a block C shares (block 3) and a hole (block 4,
	 * punched): the hole needs allocation, so it goes the synchronous way,
	 * redirect and allocation together, and reads back right below.
	 */
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4u << 20, 1u << 20), 0);
	memset(live.b + (4u << 20), 0, 1u << 20);
	fill(buf, 8192, 999);
	memcpy(live.b + (4u << 20) - 4096, buf, 8192);
	req[0] = (struct vmfs_aio_req){ .ino = ino, .write = true, .buf = buf, .len = 8192, .off = (4u << 20) - 4096 };
	ck_assert_int_eq(vmfs_aio_submit(q, &req[0]), 0);
	ck_assert_int_eq(vmfs_aio_reap(q, 1, done, 64), 1);
	ck_assert_int_eq(done[0]->res, 8192);
	for (unsigned i = 0; i < 64; i++) {
		uint64_t off = i < 32 ? (uint64_t)(4 + i % 12) * (1u << 20) + (i / 12) * 65536 + 8192 : (15u << 20) + (512u << 10) + (i - 32) * 4096;
		fill(buf + i * 4096 % (1u << 20), 4096, 1000 + i);
		memcpy(live.b + off, buf + i * 4096 % (1u << 20), 4096);
		req[i] = (struct vmfs_aio_req){ .ino = ino, .write = true, .buf = buf + i * 4096 % (1u << 20), .len = 4096,
						.off = off };
	}
	for (unsigned i = 0, reaped = 0; reaped < 64;) {
		if (i < 64 && i - reaped < 32) {
			ck_assert_int_eq(vmfs_aio_submit(q, &req[i++]), 0);
			continue;
		}
		int got = vmfs_aio_reap(q, 1, done, 64);
		ck_assert_int_ge(got, 1);
		for (int k = 0; k < got; k++)
			ck_assert_int_eq(done[k]->res, 4096);
		reaped += (unsigned)got;
	}
	vmfs_aio_free(q);
	m_check(fs, ino, &live, "live after queued writes");
	m_check(fs, sc, &c, "C after queued writes");
	ck_assert_int_eq(vmfs_fsync(fs, ino, false), 0);
	vmfs_close(fs);
	fsck_clean();

	fs = op();
	m_check(fs, ino, &live, "live reopened");
	m_check(fs, sa, &a, "A reopened");
	m_check(fs, sc, &c, "C reopened");
	ck_assert_int_eq(vmfs_snap_delete(fs, ino, sb), 0);
	ck_assert_int_eq(vmfs_snap_delete(fs, ino, sa), 0);
	m_check(fs, ino, &live, "live, A and B deleted");
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "disk"), 0);
	ck_assert_uint_eq(free_units(fs), fresh);
	vmfs_close(fs);
	fsck_clean();
	free(buf);
	free(live.b);
	free(a.b);
	free(b.b);
	free(c.b);
}
END_TEST

/* A clone shares everything; a chain of 100 clones of clones reads the original's bytes. */
START_TEST(t_clone_chain)
{
	struct model live = m_new(4u << 20), a;
	struct vmfs_stat st;
	struct vmfs *fs;
	uint64_t ino, sa, prev, base, dir;
	char name[32];

	mk(256ull << 20, 0);
	fs = op();
	base = free_units(fs);
	ino = create(fs, vmfs_root_ino(fs), "gold");
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "clones", 0755, 0, 0, &st), 0);
	dir = st.ino;
	m_write(fs, ino, &live, 0, 3u << 20, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	m_write(fs, ino, &live, 0, 4096, 2);
	prev = sa;
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		ck_assert_int_eq(vmfs_clone(fs, prev, dir, name, 0644, 0, 0, &st), 0);
		prev = st.ino;
	}
	m_check(fs, prev, &a, "clone 100 deep");
	ck_assert_int_eq(vmfs_clone(fs, ino, dir, "c5", 0644, 0, 0, &st), -EEXIST);
	m_write(fs, prev, &a, 4096 * 3, 4096, 9);
	m_check(fs, prev, &a, "clone written");
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "gold"), 0);
	m_check(fs, prev, &a, "clone after its source is gone");
	vmfs_close(fs);
	fsck_clean();
	fs = op();
	ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "clones", &st), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		ck_assert_int_eq(vmfs_unlink(fs, st.ino, name), 0);
	}
	vmfs_forget(fs, st.ino, 1); /* the lookup's reference */
	ck_assert_int_eq(vmfs_rmdir(fs, vmfs_root_ino(fs), "clones"), 0);
	ck_assert_uint_eq(free_units(fs), base); /* every block back */
	vmfs_close(fs);
	free(live.b);
	free(a.b);
}
END_TEST

START_TEST(t_names)
{
	struct vmfs *fs;
	uint64_t ino, s, files[2];
	char lng[300];

	mk(256ull << 20, 0);
	fs = op();
	ino = create(fs, vmfs_root_ino(fs), "disk");
	files[0] = ino;
	files[1] = create(fs, vmfs_root_ino(fs), "vm.conf");
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = 0;
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "", &s), -EINVAL);
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "a/b", &s), -EINVAL);
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "a@b", &s), -EINVAL);
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, lng, &s), -ENAMETOOLONG);
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "one", &s), 0);
	/* a duplicate in the second file of a group: neither file gets it */
	ck_assert_int_eq(vmfs_snap_create(fs, &files[1], 1, "two", &s), 0);
	ck_assert_int_eq(vmfs_snap_create(fs, files, 2, "two", NULL), -EEXIST);
	ck_assert_int_eq(vmfs_snap_find(fs, ino, "two", &s), -ENOENT);
	ck_assert_int_eq(vmfs_snap_find(fs, ino, "one", &s), 0);
	ck_assert_int_eq(vmfs_pwrite(fs, s, "x", 1, 0), -EROFS);
	ck_assert_int_eq(vmfs_snap_delete(fs, files[1], s), -ENOENT); /* not that file's */
	ck_assert_int_eq(vmfs_snap_create(fs, files, 2, "three", NULL), 0);
	vmfs_close(fs);
	fsck_clean();
}
END_TEST

START_TEST(t_many)
{
	struct model live = m_new(2u << 20), first;
	struct vmfs *fs;
	uint64_t ino, s0 = 0;
	char name[32];

	mk(512ull << 20, 64u << 10); /* each first write takes a block of its own (a redirect, or a copy through a shared one): 1024 of them */
	fs = op();
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 2u << 20, 1);
	first = m_copy(&live);
	for (int i = 0; i < 1024; i++) {
		uint64_t s;
		snprintf(name, sizeof(name), "s%d", i);
		s = snap(fs, ino, name);
		if (!i)
			s0 = s;
		m_write(fs, ino, &live, (size_t)(i * 7919) % ((2u << 20) - 64), 64, (uint64_t)i + 2);
	}
	m_check(fs, s0, &first, "the first of 1024");
	ck_assert_int_eq(vmfs_snap_revert(fs, &ino, &s0, 1), 0);
	m_check(fs, ino, &first, "reverted to the first of 1024");
	vmfs_close(fs);
	fsck_clean();
	free(live.b);
	free(first.b);
}
END_TEST

/*
 * A snapshot is never written, whichever way a write comes: once its file
 * rewrote every block, the snapshot's blocks are its own (count 1), so only
 * the snapshot flag stops an aligned overwrite, which takes the in-place path
 * (commit_ms > 0) or the asynchronous one.
 */
/* The deep-rekey test's key: the encrypted run's, or one of its own in a plain run. */
static struct enc_secret *rekey_key(void)
{
	static struct enc_secret *k;

	if (test_key())
		return test_key();
	if (!k)
		ck_assert_int_eq(enc_secret_from_buf("fedcba9876543210fedcba9876543210", 32, &k), 0);
	return k;
}

static struct vmfs *op_key(void)
{
	return op_with(rekey_key());
}

/* The device's bytes at off (the datastore's changes synced first). */
static void raw_read(struct vmfs *fs, uint64_t off, uint8_t *out, size_t len)
{
	int fd = open(img, O_RDONLY);

	ck_assert_int_eq(vmfs_sync(fs), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, out, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static bool all_zero(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* The raw bytes at a file offset's place on the device, and that place. */
static uint64_t raw_at(struct vmfs *fs, uint64_t ino, uint64_t off, uint8_t *out, size_t len)
{
	struct vmfs_bmap_info bi;
	int fd = open(img, O_RDONLY);

	ck_assert_int_eq(vmfs_bmap(fs, ino, off, &bi), 0);
	ck_assert(!bi.hole);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, out, len, (off_t)bi.dev_off), (ssize_t)len);
	close(fd);
	return bi.dev_off;
}

/*
 * Deep rekey of symlinks (a target is the link's data under its own key):
 * an inline target and one in a unit of its own each take one step; the
 * long one's unit moves and its bytes on the device change; both read back,
 * after a remount too, and fsck is clean. A rekey of the whole tree
 * (snap_rekey --all) counts them with the regular files.
 */
START_TEST(t_rekey_links)
{
	char shortt[100], longt[3000], got[4096];
	uint8_t before[512], after[512];
	struct vmfs_rekey_progress pr;
	struct snap_rekey_progress sp;
	struct vmfs_stat st;
	uint64_t sl, ll, at0, at1;
	size_t cursor = 0;
	struct vmfs *fs;
	char err[256] = "";

	memset(shortt, 's', sizeof(shortt) - 1);
	shortt[sizeof(shortt) - 1] = 0;
	for (size_t i = 0; i + 1 < sizeof(longt); i++)
		longt[i] = (char)('a' + i % 26);
	longt[sizeof(longt) - 1] = 0;
	mk_key(256ull << 20, 0, rekey_key());
	fs = op_key();
	ck_assert_int_eq(vmfs_symlink(fs, vmfs_root_ino(fs), "short", shortt, 0, 0, &st), 0);
	sl = st.ino;
	ck_assert_int_eq(vmfs_symlink(fs, vmfs_root_ino(fs), "long", longt, 0, 0, &st), 0);
	ll = st.ino;
	create(fs, vmfs_root_ino(fs), "file");
	at0 = raw_at(fs, ll, 0, before, sizeof(before));
	ck_assert_int_eq(vmfs_rekey_step(fs, sl, 0, &pr), 0);
	ck_assert(pr.finished);
	ck_assert_int_eq(vmfs_rekey_step(fs, ll, 0, &pr), 0);
	ck_assert(pr.finished);
	at1 = raw_at(fs, ll, 0, after, sizeof(after));
	ck_assert_uint_ne(at0, at1);
	ck_assert(memcmp(before, after, sizeof(after)));
	raw_read(fs, at0, before, sizeof(before));
	ck_assert_msg(all_zero(before, sizeof(before)), "the link's old unit is not zeroed");
	ck_assert_int_eq(vmfs_readlink(fs, sl, got, sizeof(got)), (ssize_t)strlen(shortt));
	ck_assert(!memcmp(got, shortt, strlen(shortt)));
	ck_assert_int_eq(vmfs_readlink(fs, ll, got, sizeof(got)), (ssize_t)strlen(longt));
	ck_assert(!memcmp(got, longt, strlen(longt)));
	/* the whole tree: the file and both links, and the root and /lost+found */
	do
		ck_assert_msg(snap_rekey(fs, "/", true, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (!sp.all_done);
	ck_assert_uint_eq(sp.files, 5);
	ck_assert_uint_eq(sp.dirs, 2);
	vmfs_close(fs);
	fsck_clean();
	fs = op_key();
	ck_assert_int_eq(vmfs_readlink(fs, sl, got, sizeof(got)), (ssize_t)strlen(shortt));
	ck_assert(!memcmp(got, shortt, strlen(shortt)));
	ck_assert_int_eq(vmfs_readlink(fs, ll, got, sizeof(got)), (ssize_t)strlen(longt));
	ck_assert(!memcmp(got, longt, strlen(longt)));
	vmfs_close(fs);
}
END_TEST

/* A stored directory entry, as found on the device. */
struct stored_name {
	uint64_t key;
	uint8_t len;
	uint8_t name[255];
};

/* Appends the entries of one leaf (hdr, then its items) to out. */
static void leaf_names(const uint8_t *hdr, const uint8_t *items, size_t cap, struct stored_name *out, size_t *n,
		       size_t max)
{
	struct vmfs_dirhdr_disk h;
	size_t off = 0;

	memcpy(&h, hdr, sizeof(h));
	if (h.dh_level != 0 || le16_to_cpu(h.dh_used) > cap)
		return;
	for (unsigned i = 0; i < le16_to_cpu(h.dh_count) && off + sizeof(struct vmfs_dirent_disk) <= cap; i++) {
		struct vmfs_dirent_disk de;

		memcpy(&de, items + off, sizeof(de));
		ck_assert_uint_lt(*n, max);
		out[*n].key = le64_to_cpu(de.de_key);
		out[*n].len = de.de_namelen;
		memcpy(out[*n].name, items + off + sizeof(de), de.de_namelen);
		++*n;
		off += sizeof(de) + de.de_namelen;
	}
}

/*
 * Directory dir's entries with their names as the device holds them at
 * home (copies false): its inline leaf, or the leaves of its tree (units
 * whose header says they are at home there); or (copies true) in the
 * images of them elsewhere: the journals'. The datastore closed.
 */
static size_t dir_on_device(uint64_t dir, struct stored_name *out, size_t max, bool copies)
{
	uint8_t *u = malloc(VMFS_UNIT);
	int fd = open(img, O_RDONLY);
	size_t n = 0;

	ck_assert(u && fd >= 0);
	for (uint64_t a = 1; pread(fd, u, VMFS_UNIT, (off_t)(a * VMFS_UNIT)) == VMFS_UNIT; a++) {
		const struct vmfs_mhdr *mh = (const void *)u;

		if ((le64_to_cpu(mh->mh_addr) != a) != copies)
			continue;
		if (le64_to_cpu(mh->mh_addr) == dir && le32_to_cpu(mh->mh_magic) == VMFS_MAGIC_INODE) {
			const struct vmfs_inode_disk *di = (const void *)u;

			if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE)
				leaf_names(di->i_root, di->i_root + sizeof(struct vmfs_dirhdr_disk),
					   VMFS_DIRINLINE_SPACE, out, &n, max);
		} else if (le32_to_cpu(mh->mh_magic) == VMFS_MAGIC_DIR && le64_to_cpu(mh->mh_owner) == dir) {
			const struct vmfs_dirnode_disk *dn = (const void *)u;

			leaf_names((const uint8_t *)&dn->dn_dh, dn->dn_items, VMFS_DIRNODE_SPACE, out, &n, max);
		}
	}
	close(fd);
	free(u);
	return n;
}

/* How many entries of before are found in after under the same key and with the same stored bytes. */
static size_t names_kept(const struct stored_name *before, size_t nb, const struct stored_name *after, size_t na,
			 size_t *matched)
{
	size_t same = 0;

	*matched = 0;
	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < na; j++)
			if (after[j].key == before[i].key) {
				ck_assert_uint_eq(after[j].len, before[i].len); /* a name keeps its length */
				++*matched;
				same += !memcmp(after[j].name, before[i].name, before[i].len);
				break;
			}
	return same;
}

struct dir_model {
	char (*name)[32];
	bool *live;
	size_t n;
	size_t seen;            /* readdir: live names met */
	bool stray;             /* readdir: a name the model does not hold */
};

static int model_fill(void *ctx, const char *name, size_t len, uint64_t ino, uint32_t dtype, uint64_t next)
{
	struct dir_model *m = ctx;
	size_t i;

	(void)ino;
	(void)dtype;
	(void)next;
	for (i = 0; i < m->n; i++)
		if (m->live[i] && strlen(m->name[i]) == len && !memcmp(m->name[i], name, len))
			break;
	if (i < m->n)
		m->seen++;
	else
		m->stray = true;
	return 0;
}

/* Every live name of the model is looked up and listed, and nothing else is listed. */
static void model_check(struct vmfs *fs, uint64_t dir, struct dir_model *m, const char *when)
{
	struct vmfs_stat st;
	size_t live = 0;

	for (size_t i = 0; i < m->n; i++) {
		int ret = vmfs_lookup(fs, dir, m->name[i], &st);

		ck_assert_msg(ret == (m->live[i] ? 0 : -ENOENT), "%s: lookup %s: %d", when, m->name[i], ret);
		live += m->live[i];
	}
	m->seen = 0;
	m->stray = false;
	ck_assert_int_eq(vmfs_readdir(fs, dir, 2, model_fill, m), 0);
	ck_assert_msg(!m->stray && m->seen == live, "%s: readdir listed %zu of %zu names%s", when, m->seen, live,
		      m->stray ? " and one it should not" : "");
}

/*
 * Deep rekey of directories (their names are their content): a directory
 * of 3000 names in a tree of leaves, one leaf a step, with names made,
 * removed and renamed between the steps on both sides of the mark, a
 * remount and fsck half-way (the rekey resumes where it stopped); a small
 * directory with its leaf inline. After: every name the device holds at
 * home for them has other bytes under the same key (hash and length kept,
 * so cookies stay), every name is found and listed, fsck is clean, and a
 * rekey of the whole tree counts the directories.
 */
START_TEST(t_rekey_dirs)
{
	enum { N = 3000, EXTRA = 40, MAXN = N + 2 * EXTRA, MAXC = 100000 };
	struct stored_name *before = calloc(MAXN, sizeof(*before)), *after = calloc(MAXN, sizeof(*after));
	struct stored_name *copies = calloc(MAXC, sizeof(*copies));
	struct stored_name sb[8], sa[8];
	struct dir_model m = { .name = calloc(MAXN, 32), .live = calloc(MAXN, sizeof(bool)) };
	struct vmfs_rekey_progress pr, st_pr;
	struct snap_rekey_progress sp;
	struct vmfs_stat st;
	uint64_t big, small, last_done = 0;
	size_t nb, na, nsb, nsa, nc, matched, cursor = 0, extra = 0;
	unsigned steps = 0;
	struct vmfs *fs;
	char err[256] = "";

	ck_assert(before && after && copies && m.name && m.live);
	mk_key(256ull << 20, 0, rekey_key());
	fs = op_key();
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "big", 0755, 0, 0, &st), 0);
	big = st.ino;
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "small", 0755, 0, 0, &st), 0);
	small = st.ino;
	for (size_t i = 0; i < N; i++) {
		snprintf(m.name[m.n], 32, "entry-%05zu-of-the-big-one", i);
		create(fs, big, m.name[m.n]);
		m.live[m.n++] = true;
	}
	create(fs, small, "a");
	create(fs, small, "bee");
	vmfs_close(fs);
	nb = dir_on_device(big, before, MAXN, false);
	ck_assert_uint_eq(nb, N);
	nsb = dir_on_device(small, sb, 8, false);
	ck_assert_uint_eq(nsb, 2);

	fs = op_key();
	for (;;) {
		size_t live = 0;

		ck_assert_int_eq(vmfs_rekey_step(fs, big, VMFS_UNIT, &pr), 0);
		steps++;
		for (size_t i = 0; i < m.n; i++)
			live += m.live[i];
		ck_assert_uint_eq(pr.size, live);
		if (pr.finished)
			break;
		ck_assert_uint_ge(pr.done, last_done);
		last_done = pr.done;
		/* names come and go between the steps, on both sides of the mark */
		if (extra < EXTRA) {
			size_t gone = extra * 97 % N, moved = (extra * 97 + 1500) % N;

			snprintf(m.name[m.n], 32, "new-%zu", extra);
			create(fs, big, m.name[m.n]);
			m.live[m.n++] = true;
			ck_assert_int_eq(vmfs_unlink(fs, big, m.name[gone]), 0);
			m.live[gone] = false;
			snprintf(m.name[m.n], 32, "renamed-%zu", extra);
			ck_assert_int_eq(vmfs_rename(fs, big, m.name[moved], big, m.name[m.n], 0), 0);
			m.live[moved] = false;
			m.live[m.n++] = true;
			extra++;
		}
		if (steps == 12) { /* half-way: remount, fsck, the rekey resumes from its mark */
			model_check(fs, big, &m, "mid-way");
			vmfs_close(fs);
			fsck_clean();
			fs = op_key();
			ck_assert_int_eq(vmfs_rekey_state(fs, big, &st_pr), 0);
			ck_assert(!st_pr.finished);
			ck_assert_uint_eq(st_pr.done, last_done);
			model_check(fs, big, &m, "mid-way, remounted");
		}
	}
	ck_assert_uint_gt(steps, 20); /* a leaf a step: the tree has dozens */
	ck_assert_uint_eq(extra, EXTRA);
	ck_assert_int_eq(vmfs_rekey_step(fs, small, 0, &pr), 0);
	ck_assert(pr.finished);
	ck_assert_int_eq(vmfs_rekey_state(fs, big, &st_pr), 0);
	ck_assert(st_pr.finished);
	model_check(fs, big, &m, "after");
	vmfs_close(fs);
	fsck_clean();

	/* on the device every name has other bytes under its key */
	na = dir_on_device(big, after, MAXN, false);
	ck_assert_uint_eq(names_kept(before, nb, after, na, &matched), 0);
	ck_assert_uint_ge(matched, N - 2 * EXTRA); /* all but the removed and the renamed */
	nsa = dir_on_device(small, sa, 8, false);
	ck_assert_uint_eq(names_kept(sb, nsb, sa, nsa, &matched), 0);
	ck_assert_uint_eq(matched, 2);

	/* the journal still holds images of big's leaves with their names under the old key, */
	nc = dir_on_device(big, copies, MAXC, true);
	ck_assert_uint_gt(names_kept(before, nb, copies, nc, &matched), 0);
	/* which the end of a rekey command (here of small/: light, the log does not wrap) zeroes */
	fs = op_key();
	do
		ck_assert_msg(snap_rekey(fs, "/small", false, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (!sp.all_done);
	ck_assert_uint_eq(sp.files, 3);
	vmfs_close(fs);
	nc = dir_on_device(big, copies, MAXC, true);
	ck_assert_uint_eq(names_kept(before, nb, copies, nc, &matched), 0);
	cursor = 0;

	fs = op_key();
	model_check(fs, big, &m, "remounted after");
	ck_assert_int_eq(vmfs_lookup(fs, small, "bee", &st), 0);
	/* the whole tree: the directories and their files */
	do
		ck_assert_msg(snap_rekey(fs, "/", true, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (!sp.all_done);
	ck_assert_uint_eq(sp.dirs, 4); /* /lost+found too: fsck's names, under no key */
	ck_assert_uint_eq(sp.files, N + 2 + 4); /* big keeps N names (as many made as removed) */
	model_check(fs, big, &m, "after --all");
	vmfs_close(fs);
	fsck_clean();
	free(before);
	free(after);
	free(copies);
	free(m.name);
	free(m.live);
}
END_TEST

/*
 * A step that runs out of space half-way is undone whole: the blocks it had
 * already freed are the file's again, and are not zeroed when the next
 * transaction commits (an undone operation takes its entries off the wipe
 * list, meta.c); the file reads back, after a remount too. The datastore
 * is filled to its reserve and one block: each block the step copies takes
 * a free block and frees one that stays out of use until the commit
 * (pending), so the copy of the seventh of the file's eight blocks finds
 * none.
 */
START_TEST(t_rekey_enospc)
{
	struct model m = m_new(8u << 20);
	struct vmfs_info in;
	struct vmfs_rekey_progress pr;
	uint64_t ino, fill, off = 0;
	struct vmfs *fs;

	mk_key(256ull << 20, 0, rekey_key());
	fs = op_key();
	ino = create(fs, vmfs_root_ino(fs), "file");
	m_write(fs, ino, &m, 0, 8u << 20, 3); /* eight blocks of 1 MiB */
	fill = create(fs, vmfs_root_ino(fs), "fill");
	for (uint64_t step = 64u << 20; step >= (1u << 20); step /= 2)
		while (vmfs_fallocate(fs, fill, 0, off, step) == 0)
			off += step;
	ck_assert_int_eq(vmfs_fallocate(fs, fill, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1u << 20), 0);
	ck_assert_int_eq(vmfs_sync(fs), 0);
	ck_assert_int_eq(vmfs_get_info(fs, &in), 0);
	ck_assert_uint_lt(in.free_blocks, 8); /* fewer than the file's blocks */
	ck_assert_int_eq(vmfs_rekey_step(fs, ino, 8u << 20, &pr), -ENOSPC);
	ck_assert_int_eq(vmfs_rekey_state(fs, ino, &pr), 0);
	ck_assert(pr.finished); /* not even begun */
	create(fs, vmfs_root_ino(fs), "after"); /* a transaction that commits */
	ck_assert_int_eq(vmfs_sync(fs), 0);
	m_check(fs, ino, &m, "the file after a step undone for want of space");
	vmfs_close(fs);
	fsck_clean();
	fs = op_key();
	m_check(fs, ino, &m, "the file after a remount");
	vmfs_close(fs);
	free(m.b);
}
END_TEST

/*
 * rekey --all is a run that an interruption does not restart: a run stopped
 * half-way (the process gone: a new cursor) and started again skips the
 * files it renewed (their blocks stay where it put them) and renews the
 * rest; once finished, the next run renews every file again. A file the
 * run renewed and then reverted to a snapshot from before it has the old
 * key back, and its run number with it: the run renews it again.
 */
START_TEST(t_rekey_resume_all)
{
	enum { NF = 6 };
	struct model m = m_new(256u << 10);
	struct snap_rekey_progress sp;
	struct vmfs_rekey_progress pr;
	struct vmfs_stat st;
	uint64_t ino[NF], at[NF], run[NF], s1;
	uint8_t raw[512];
	size_t cursor = 0, done1 = 0;
	struct vmfs *fs;
	char err[256] = "", name[16];

	mk_key(256ull << 20, 0, rekey_key());
	fs = op_key();
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "d", 0755, 0, 0, &st), 0);
	for (int i = 0; i < NF; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ino[i] = create(fs, i % 2 ? st.ino : vmfs_root_ino(fs), name);
		m_write(fs, ino[i], &m, 0, 256u << 10, 1); /* the same bytes in each */
	}
	s1 = snap(fs, ino[1], "before");
	/* the first run stops after a few of its files */
	do
		ck_assert_msg(snap_rekey(fs, "/", true, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (cursor < 5 && !sp.all_done);
	ck_assert(!sp.all_done);
	for (int i = 0; i < NF; i++) {
		ck_assert_int_eq(vmfs_rekey_state(fs, ino[i], &pr), 0);
		run[i] = pr.run;
		done1 += pr.run == 1;
		at[i] = raw_at(fs, ino[i], 0, raw, sizeof(raw));
	}
	ck_assert_uint_ge(done1, 1);
	ck_assert_uint_lt(done1, NF);
	/* /d/f1 (among the first the run takes) back to before the run: the old key, and run 0 */
	ck_assert_uint_eq(run[1], 1);
	ck_assert_int_eq(vmfs_snap_revert(fs, &ino[1], &s1, 1), 0);
	ck_assert_int_eq(vmfs_rekey_state(fs, ino[1], &pr), 0);
	ck_assert_uint_eq(pr.run, 0);
	run[1] = 0;
	at[1] = raw_at(fs, ino[1], 0, raw, sizeof(raw));
	vmfs_close(fs);

	/* started again (a new process): the run goes on where it stopped */
	fs = op_key();
	cursor = 0;
	do
		ck_assert_msg(snap_rekey(fs, "/", true, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (!sp.all_done);
	for (int i = 0; i < NF; i++) {
		uint64_t now = raw_at(fs, ino[i], 0, raw, sizeof(raw));

		ck_assert_int_eq(vmfs_rekey_state(fs, ino[i], &pr), 0);
		ck_assert_uint_eq(pr.run, 1);
		if (run[i] == 1)
			ck_assert_msg(now == at[i], "f%d: renewed again by the run that had renewed it", i);
		else
			ck_assert_msg(now != at[i], "f%d: not renewed by the run", i);
		at[i] = now;
		m_check(fs, ino[i], &m, "a file after the resumed run");
	}

	/* the run is over: the next renews every file */
	cursor = 0;
	do
		ck_assert_msg(snap_rekey(fs, "/", true, 64u << 20, &cursor, &sp, err, sizeof(err)) == 0, "%s", err);
	while (!sp.all_done);
	for (int i = 0; i < NF; i++) {
		ck_assert_uint_ne(raw_at(fs, ino[i], 0, raw, sizeof(raw)), at[i]);
		ck_assert_int_eq(vmfs_rekey_state(fs, ino[i], &pr), 0);
		ck_assert_uint_eq(pr.run, 2);
	}
	vmfs_close(fs);
	fsck_clean();
	free(m.b);
}
END_TEST

/* Large reads are deciphered on helper threads (vmfs/crypt_par.c); a child forked
 * after they started has none of them and must start its own, not wait forever. */
START_TEST(t_fork_read)
{
	struct model live = m_new(8u << 20);
	struct vmfs *fs;
	uint64_t ino;
	int status;
	pid_t pid;

	mk(256ull << 20, 1u << 20);
	/* plain preads: an io_uring's rings are shared memory, and the child's
	 * submissions and reaps would go through the parent's */
	setenv("VMFS_IO_ENGINE", "sync", 1);
	fs = op();
	unsetenv("VMFS_IO_ENGINE");
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 8u << 20, 1);
	m_check(fs, ino, &live, "the file before the fork");
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		uint8_t *b = malloc(live.size);

		alarm(60); /* a child that waits on its parent's helpers dies here */
		_exit(b && vmfs_pread(fs, ino, b, live.size, 0) == (ssize_t)live.size && !memcmp(b, live.b, live.size)
			      ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child's large read: status 0x%x", status);
	vmfs_close(fs); /* only the child used the handle after the fork: a handle is one process's */
	free(live.b);
}
END_TEST

/*
 * Deep rekey (issue 17, point 5): a file with holes, redirects, a snapshot
 * and a clone is rekeyed one step at a time while it is written on both
 * sides of the mark, snapshotted mid-way and read; every file, snapshot and
 * clone reads as its model throughout and after a remount; the file's bytes
 * on the device change and its blocks move (the snapshot keeps the old
 * ones); a snapshot taken mid-way, reverted to, finishes the rekey; small,
 * inline and empty files; fsck finds nothing; refusals.
 */
START_TEST(t_rekey_deep)
{
	const uint32_t bs = 1u << 20;
	const size_t size = 10u << 20;
	struct model live = m_new(size * 2), s1m, s2m, cm, small = m_new(1u << 20), tiny = m_new(4096);
	struct vmfs_rekey_progress pr;
	struct vmfs_stat st;
	uint8_t before[4096], after[4096], snapraw[4096];
	uint64_t ino, s1, s2, cl, sm, tn, empty, at0, at1, smat, base, steps = 0;
	uint8_t smraw[4096];
	struct vmfs *fs;

	mk_key(256ull << 20, bs, rekey_key());
	fs = op_key();
	base = free_units(fs);
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 3u << 20, 1);
	m_write(fs, ino, &live, 5u << 20, 2u << 20, 2); /* a hole between */
	m_write(fs, ino, &live, size - 5000, 5000, 3);
	s1 = snap(fs, ino, "s1");
	s1m = m_copy(&live);
	m_write(fs, ino, &live, 4096, 8192, 4);          /* redirects into shared blocks */
	m_write(fs, ino, &live, (5u << 20) + 777, 3000, 5);
	ck_assert_int_eq(vmfs_clone(fs, ino, vmfs_root_ino(fs), "clone", 0644, 0, 0, &st), 0);
	cl = st.ino;
	cm = m_copy(&live);
	sm = create(fs, vmfs_root_ino(fs), "small");
	m_write(fs, sm, &small, 0, 300u << 10, 6);
	tn = create(fs, vmfs_root_ino(fs), "tiny");
	m_write(fs, tn, &tiny, 0, 1000, 7);
	empty = create(fs, vmfs_root_ino(fs), "empty");
	at0 = raw_at(fs, ino, 2u << 20, before, sizeof(before));
	raw_at(fs, s1, 2u << 20, snapraw, sizeof(snapraw));

	/* refusals: a snapshot, a fifo (t_rekey_dirs: directories) */
	ck_assert_int_eq(vmfs_rekey_step(fs, s1, 0, &pr), -EROFS);
	ck_assert_int_eq(vmfs_mknod(fs, vmfs_root_ino(fs), "fifo", S_IFIFO | 0644, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_rekey_step(fs, st.ino, 0, &pr), -EINVAL);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "fifo"), 0);
	ck_assert_int_eq(vmfs_rekey_state(fs, ino, &pr), 0);
	ck_assert(pr.finished);

	s2 = 0;
	do {
		ck_assert_int_eq(vmfs_rekey_step(fs, ino, bs, &pr), 0);
		ck_assert_uint_eq(pr.size, live.size);
		steps++;
		/* writes on both sides of the mark, and across it */
		if (!pr.finished) {
			size_t m = (size_t)pr.done;
			m_write(fs, ino, &live, m > 10000 ? m - 10000 : 0, 20000, 100 + steps);
			m_write(fs, ino, &live, (m + 3 * bs) % size, 4096, 200 + steps);
			m_write(fs, ino, &live, (m / 2) & ~(size_t)4095, 4096, 300 + steps);
		}
		if (steps == 4) { /* a snapshot in the middle: it keeps both keys and the mark */
			s2 = snap(fs, ino, "s2");
			s2m = m_copy(&live);
		}
		m_check(fs, ino, &live, "the file during its rekey");
	} while (!pr.finished);
	ck_assert_uint_ge(steps, 10);
	ck_assert_uint_ne(s2, 0);
	m_check(fs, s1, &s1m, "a snapshot from before the rekey");
	m_check(fs, s2, &s2m, "a snapshot from its middle");
	m_check(fs, cl, &cm, "a clone from before it");
	/* the bytes moved and changed; the snapshot's block is still there as it was */
	at1 = raw_at(fs, ino, 2u << 20, after, sizeof(after));
	ck_assert_uint_ne(at0, at1);
	ck_assert(memcmp(before, after, sizeof(before)) != 0);
	ck_assert_uint_eq(raw_at(fs, s1, 2u << 20, after, sizeof(after)), at0);
	ck_assert(!memcmp(after, snapraw, sizeof(after)));
	ck_assert_int_eq(vmfs_rekey_state(fs, ino, &pr), 0);
	ck_assert(pr.finished);

	/* small (units), inline and empty files: one step each */
	smat = raw_at(fs, sm, 288u << 10, smraw, sizeof(smraw)); /* in the last step: nothing is allocated after it */
	ck_assert(!all_zero(smraw, sizeof(smraw)));
	ck_assert_int_eq(vmfs_rekey_step(fs, sm, 64u << 10, &pr), 0);
	ck_assert(!pr.finished);
	m_write(fs, sm, &small, 0, 4096, 8);
	m_write(fs, sm, &small, 200u << 10, 4096, 9);
	while (!pr.finished)
		ck_assert_int_eq(vmfs_rekey_step(fs, sm, 64u << 10, &pr), 0);
	ck_assert_int_eq(vmfs_rekey_step(fs, tn, 0, &pr), 0);
	ck_assert(pr.finished);
	ck_assert_int_eq(vmfs_rekey_step(fs, empty, 0, &pr), 0);
	ck_assert(pr.finished);
	m_check(fs, sm, &small, "a small file after its rekey");
	ck_assert_uint_ne(raw_at(fs, sm, 288u << 10, after, sizeof(after)), smat);
	raw_read(fs, smat, smraw, sizeof(smraw));
	ck_assert_msg(all_zero(smraw, sizeof(smraw)), "an old unit of the rekeyed file is not zeroed");
	m_check(fs, tn, &tiny, "an inline file after its rekey");
	m_write(fs, tn, &tiny, 500, 100, 10);
	m_check(fs, tn, &tiny, "an inline file written after its rekey");

	/* back to the snapshot from the middle: the rekey is under way again, and finishes */
	ck_assert_int_eq(vmfs_snap_revert(fs, &ino, &s2, 1), 0);
	ck_assert_int_eq(vmfs_rekey_state(fs, ino, &pr), 0);
	ck_assert(!pr.finished);
	m_check(fs, ino, &s2m, "reverted to the middle");
	vmfs_close(fs);
	fsck_clean();
	fs = op_key();
	m_check(fs, ino, &s2m, "reverted, after a remount");
	do
		ck_assert_int_eq(vmfs_rekey_step(fs, ino, 0, &pr), 0);
	while (!pr.finished);
	m_check(fs, ino, &s2m, "rekeyed again");
	m_check(fs, s1, &s1m, "s1 at the end");
	m_check(fs, s2, &s2m, "s2 at the end");
	m_check(fs, cl, &cm, "the clone at the end");
	vmfs_close(fs);
	fsck_clean();
	fs = op_key();
	m_check(fs, ino, &s2m, "the file after a remount");
	m_check(fs, sm, &small, "the small file after a remount");
	m_check(fs, tn, &tiny, "the inline file after a remount");
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "disk"), 0);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "clone"), 0);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "small"), 0);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "tiny"), 0);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "empty"), 0);
	ck_assert_uint_eq(free_units(fs), base); /* the old blocks all went back */
	vmfs_close(fs);
	fsck_clean();

	/* a datastore without encryption has nothing to rekey */
	if (!test_key()) {
		unlink(img);
		mk(256ull << 20, 0);
		fs = op();
		ino = create(fs, vmfs_root_ino(fs), "plain");
		ck_assert_int_eq(vmfs_rekey_step(fs, ino, 0, &pr), -EOPNOTSUPP);
		vmfs_close(fs);
	}
	free(live.b), free(s1m.b), free(s2m.b), free(cm.b), free(small.b), free(tiny.b);
}
END_TEST

START_TEST(t_snapshot_never_written)
{
	struct vmfs_open_opts oo = { .commit_ms = 1000, .standalone = true, .secret = test_key() };
	struct model live = m_new(2u << 20), a;
	struct vmfs_aio_req req, *done[1];
	struct vmfs_aio *q;
	struct vmfs *fs;
	char err[256] = "";
	uint64_t ino, sa;
	uint8_t *buf = aligned_alloc(4096, 4096);

	mk(256ull << 20, 0);
	ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "open: %s", err);
	ino = create(fs, vmfs_root_ino(fs), "disk");
	m_write(fs, ino, &live, 0, 2u << 20, 1);
	sa = snap(fs, ino, "A");
	a = m_copy(&live);
	m_write(fs, ino, &live, 0, 2u << 20, 2); /* every block copied: A's are A's alone now */
	memset(buf, 0x77, 4096);
	ck_assert_int_eq(vmfs_pwrite(fs, sa, buf, 4096, 0), -EROFS);
	ck_assert_int_eq(vmfs_pwrite(fs, sa, buf, 4096, 1u << 20), -EROFS);
	ck_assert_int_eq(vmfs_aio_new(fs, 1, &q), 0);
	req = (struct vmfs_aio_req){ .ino = sa, .write = true, .buf = buf, .len = 4096, .off = 4096 };
	ck_assert_int_eq(vmfs_aio_submit(q, &req), 0);
	ck_assert_int_eq(vmfs_aio_reap(q, 1, done, 1), 1);
	ck_assert_int_eq(done[0]->res, -EROFS);
	vmfs_aio_free(q);
	ck_assert_int_eq(vmfs_fallocate(fs, sa, FALLOC_FL_ZERO_RANGE, 0, 4096), -EROFS);
	ck_assert_int_eq(vmfs_setattr(fs, sa, &(struct vmfs_stat){ .size = 1 }, VMFS_SET_SIZE, NULL), -EROFS);
	ck_assert_int_eq(vmfs_setattr(fs, sa, &(struct vmfs_stat){ .mode = 0777 }, VMFS_SET_MODE, NULL), -EROFS);
	m_check(fs, sa, &a, "A after refused writes");
	m_check(fs, ino, &live, "the file");
	vmfs_close(fs);
	fsck_clean();
	free(buf);
	free(live.b);
	free(a.b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, t_basic_large);
	tcase_add_test(tc, t_basic_64k);
	tcase_add_test(tc, t_basic_small);
	tcase_add_test(tc, t_inline);
	tcase_add_test(tc, t_truncate_punch);
	tcase_add_test(tc, t_diff);
	tcase_add_test(tc, t_redirect);
	tcase_add_test(tc, t_clone_chain);
	tcase_add_test(tc, t_names);
	tcase_add_test(tc, t_snapshot_never_written);
	tcase_add_test(tc, t_many);
	tcase_add_test(tc, t_rekey_deep);
	tcase_add_test(tc, t_fork_read);
	tcase_add_test(tc, t_rekey_links);
	tcase_add_test(tc, t_rekey_dirs);
	tcase_add_test(tc, t_rekey_resume_all);
	tcase_add_test(tc, t_rekey_enospc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	struct dirent *e;
	DIR *d;
	int failed;

	if (!mkdtemp(run_dir)) {
		perror(run_dir);
		return 1;
	}
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if ((d = opendir(run_dir))) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(run_dir);
	return failed ? 1 : 0;
}
