/*
 * Unit tests of libvmfs: format checks, allocator, block map, directories,
 * journal replay and the file API. Most go through vmfs/vmfs.h; the journal and
 * allocator tests look inside through vmfs/vmfs_i.h to create exact states
 * (a transaction that reached the log but not its home blocks).
 */
#include <check.h>
#include <poll.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmfs/vmfs_i.h"

#include "tests/unit/test_key.h"

static char img[64];

static void mk(uint64_t size, uint32_t bs)
{
	struct vmfs_mkfs_opts o = { .size = size, .block_size = bs, .force = true, .host_slots = 8,
				    .secret = test_key(), .key_kind = ENC_SECRET_KEYFILE };
	char err[256] = "";
	strcpy(img, "/var/tmp/vmfs-unit-XXXXXX");
	int fd = mkstemp(img);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(vmfs_mkfs(img, &o, err, sizeof(err)) == 0, "mkfs: %s", err);
}

static struct vmfs *op(bool ro, unsigned commit_ms)
{
	struct vmfs_open_opts o = { .readonly = ro, .commit_ms = commit_ms, .standalone = true, .secret = test_key() };
	struct vmfs *fs = NULL;
	char err[256] = "";
	int ret = vmfs_open(img, &o, &fs, err, sizeof(err));
	ck_assert_msg(ret == 0, "open: %d %s", ret, err);
	return fs;
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

/* ---- format ---------------------------------------------------------------------------- */

START_TEST(t_block_checks)
{
	struct vmfs fs = { 0 };
	uint8_t *b = calloc(1, VMFS_UNIT);
	struct vmfs_mhdr *h = (struct vmfs_mhdr *)b;

	memset(fs.sb.sb_uuid, 0xab, 16);
	h->mh_magic = cpu_to_le32(VMFS_MAGIC_INODE);
	h->mh_addr = cpu_to_le64(77);
	meta_seal(&fs, b);
	ck_assert_int_eq(meta_check(&fs, b, 77, VMFS_MAGIC_INODE), 0);
	ck_assert_int_eq(meta_check(&fs, b, 78, VMFS_MAGIC_INODE), -EUCLEAN);   /* misplaced */
	ck_assert_int_eq(meta_check(&fs, b, 77, VMFS_MAGIC_PTR), -EUCLEAN);     /* wrong type */
	b[100] ^= 1;
	ck_assert_int_eq(meta_check(&fs, b, 77, VMFS_MAGIC_INODE), -EBADMSG);   /* torn */
	b[100] ^= 1;
	fs.sb.sb_uuid[0] = 0;
	ck_assert_int_eq(meta_check(&fs, b, 77, VMFS_MAGIC_INODE), -EUCLEAN);   /* older mkfs */
	free(b);
}
END_TEST

START_TEST(t_mkfs_geometry)
{
	struct vmfs_info in;
	struct vmfs_statfs sf;
	struct vmfs *fs;

	mk(256ull << 20, 0);
	fs = op(true, 0);
	vmfs_get_info(fs, &in);
	ck_assert_uint_eq(in.size, 256ull << 20);
	ck_assert_uint_eq(in.block_size, 1u << 20);
	ck_assert_str_eq(in.journal_state, "not allocated"); /* allocated at first join */
	vmfs_statfs(fs, &sf);
	ck_assert_uint_gt(sf.bfree, 200 * 256);
	ck_assert_uint_le(sf.bfree, sf.blocks);
	vmfs_close(fs);
}
END_TEST

START_TEST(t_bad_options)
{
	struct vmfs_mkfs_opts o = { .size = 256ull << 20, .block_size = 3000, .force = true };
	char err[256];
	ck_assert_int_eq(vmfs_mkfs("/var/tmp/vmfs-never", &o, err, sizeof(err)), -EINVAL);
	o.block_size = 0;
	o.size = 1 << 20;
	ck_assert_int_eq(vmfs_mkfs("/var/tmp/vmfs-never", &o, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(access("/var/tmp/vmfs-never", F_OK), -1); /* nothing was created */
}
END_TEST

START_TEST(t_refuses_existing)
{
	struct vmfs_mkfs_opts o = { .size = 256ull << 20 };
	char err[256] = "";
	mk(256ull << 20, 0);
	ck_assert_int_eq(vmfs_mkfs(img, &o, err, sizeof(err)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "already holds a vmfs"));
}
END_TEST

START_TEST(t_open_bad_superblock)
{
	struct vmfs_open_opts o = { .readonly = true, .secret = test_key() };
	struct vmfs *fs;
	char err[256] = "";
	uint8_t byte;
	int fd;

	mk(256ull << 20, 0);
	fd = open(img, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &byte, 1, 0x100), 1);
	byte ^= 0xff;
	ck_assert_int_eq(pwrite(fd, &byte, 1, 0x100), 1);
	ck_assert_int_eq(vmfs_open(img, &o, &fs, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "backup superblock is intact"));
	close(fd);
}
END_TEST

/* ---- allocator ------------------------------------------------------------------------ */

START_TEST(t_alloc_pending_and_rollback)
{
	struct vmfs *fs;
	uint64_t a, b, c, free0;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	op_begin(fs);
	free0 = fs->free_blocks;
	ck_assert_int_eq(alloc_block(fs, &a), 0);
	ck_assert_int_eq(alloc_block(fs, &b), 0);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_eq(fs->free_blocks, free0 - 2);
	ck_assert_int_eq(free_block(fs, a), 0);
	/* freed in the running transaction: not handed out again (J5) */
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(alloc_block(fs, &c), 0);
		ck_assert_uint_ne(c, a);
	}
	ck_assert_int_eq(op_end(fs, -EIO), -EIO); /* undo it all */
	ck_assert_uint_eq(fs->free_blocks, free0);
	op_begin(fs);
	ck_assert_int_eq(free_block(fs, a), -EUCLEAN); /* it is free again: double free caught */
	op_end(fs, 0);
	vmfs_close(fs);
}
END_TEST

static uint64_t fill_until_full(struct vmfs *fs, uint64_t ino, uint8_t *buf)
{
	uint64_t off = 0;
	for (;; off += 1 << 20) {
		ssize_t n = vmfs_pwrite(fs, ino, buf, 1 << 20, off);
		if (n < 0) {
			ck_assert_int_eq(n, -ENOSPC);
			return off;
		}
		ck_assert_uint_lt(off, 64ull << 20);
	}
}

START_TEST(t_enospc_leaves_no_trace)
{
	struct vmfs *fs;
	struct vmfs_statfs s0, s1, s2;
	struct vmfs_stat st;
	uint64_t ino, first, second;
	uint8_t *buf = malloc(1 << 20);

	mk(64ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, vmfs_root_ino(fs), "fill");
	memset(buf, 0x5a, 1 << 20);
	vmfs_statfs(fs, &s0);
	ck_assert_int_eq(vmfs_fallocate(fs, ino, 0, 0, 1ull << 40), -ENOSPC);
	vmfs_statfs(fs, &s1);
	ck_assert_uint_eq(s0.bfree, s1.bfree); /* the failed call changed nothing */
	first = fill_until_full(fs, ino, buf);
	ck_assert_uint_gt(first, 40ull << 20);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
	ck_assert_uint_eq(st.size, first); /* the failed write left the size alone */
	vmfs_statfs(fs, &s1);
	ck_assert_int_eq(vmfs_close(fs), 0);
	fs = op(false, 0);
	vmfs_statfs(fs, &s2);
	ck_assert_uint_eq(s1.bfree, s2.bfree); /* in-memory counts match the disk */
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "fill"), 0);
	ino = create(fs, vmfs_root_ino(fs), "again");
	second = fill_until_full(fs, ino, buf);
	ck_assert_uint_ge(second, first); /* every block came back */
	vmfs_close(fs);
	free(buf);
}
END_TEST

/* ---- block map and data ---------------------------------------------------------------- */

static void rw_check(struct vmfs *fs, uint64_t ino, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *w = malloc(len + 1), *r = malloc(len + 1);
	fill(w, len, seed);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, w, len, off), (ssize_t)len);
	memset(r, 0, len);
	ck_assert_int_eq(vmfs_pread(fs, ino, r + 1, len, off), (ssize_t)len); /* unaligned buffer */
	ck_assert_msg(!memcmp(w, r + 1, len), "mismatch at %llu+%zu", (unsigned long long)off, len);
	free(w);
	free(r);
}

START_TEST(t_shapes)
{
	static const size_t sizes[] = { 1, 100, 2048, 2049, 4095, 4096, 4097, 65536, 1048575, 1048576, 1048577, 3 << 20 };
	struct vmfs *fs;
	char name[32];

	mk(512ull << 20, 0);
	fs = op(false, 1000);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct vmfs_stat st;
		uint64_t ino;
		snprintf(name, sizeof(name), "f%u", i);
		ino = create(fs, vmfs_root_ino(fs), name);
		rw_check(fs, ino, 0, sizes[i], i);
		rw_check(fs, ino, sizes[i] / 3, sizes[i] / 2 + 1, i + 100); /* overwrite inside */
		ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
		ck_assert_uint_eq(st.size, sizes[i]);
	}
	vmfs_close(fs);
	/* again after reopening: same bytes */
	fs = op(true, 0);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *w = malloc(sizes[i]), *r = malloc(sizes[i]);
		struct vmfs_stat st;
		snprintf(name, sizeof(name), "f%u", i);
		ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), name, &st), 0);
		fill(w, sizes[i], i);
		fill(w + sizes[i] / 3, sizes[i] / 2 + 1, i + 100);
		ck_assert_int_eq(vmfs_pread(fs, st.ino, r, sizes[i], 0), (ssize_t)sizes[i]);
		ck_assert_msg(!memcmp(w, r, sizes[i]), "file %u differs after reopen", i);
		free(w);
		free(r);
	}
	vmfs_close(fs);
}
END_TEST

START_TEST(t_sparse_64t)
{
	struct vmfs *fs;
	uint64_t ino, off = (64ull << 40) - 4096, out;
	struct vmfs_stat st;
	uint8_t z[4096], one[4096];

	mk(256ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, vmfs_root_ino(fs), "huge");
	rw_check(fs, ino, off, 4096, 9);
	rw_check(fs, ino, 0, 4096, 10);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
	ck_assert_uint_eq(st.size, 64ull << 40);
	ck_assert_uint_lt(st.blocks * 512, 8ull << 20); /* two blocks and a few pointer blocks */
	memset(z, 1, sizeof(z));
	ck_assert_int_eq(vmfs_pread(fs, ino, z, 4096, 1ull << 40), 4096);
	memset(one, 0, sizeof(one));
	ck_assert_int_eq(memcmp(z, one, 4096), 0);
	ck_assert_int_eq(vmfs_lseek(fs, ino, 4096, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, 4096); /* inside the first block */
	ck_assert_int_eq(vmfs_lseek(fs, ino, 1 << 20, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, off & ~((1ull << 20) - 1));
	ck_assert_int_eq(vmfs_lseek(fs, ino, 0, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, 1 << 20);
	ck_assert_int_eq(vmfs_unlink(fs, vmfs_root_ino(fs), "huge"), 0);
	vmfs_close(fs);
}
END_TEST

START_TEST(t_fallocate_punch_zero)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	uint64_t ino, out;
	size_t len = 8 << 20;
	uint8_t *w = malloc(len), *r = malloc(len);

	mk(256ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, vmfs_root_ino(fs), "img");
	ck_assert_int_eq(vmfs_fallocate(fs, ino, 0, 0, len), 0);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
	ck_assert_uint_eq(st.size, len);
	ck_assert_uint_ge(st.blocks * 512, len);
	ck_assert_int_eq(vmfs_pread(fs, ino, r, len, 0), (ssize_t)len);
	memset(w, 0, len);
	ck_assert_int_eq(memcmp(w, r, len), 0); /* preallocated reads zeros (TBZ) */
	ck_assert_int_eq(vmfs_lseek(fs, ino, 0, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, 0);
	fill(w, len, 3);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, w, len, 0), (ssize_t)len);
	/* punch [1.5 MiB, 5 MiB + 7): whole blocks 2..4 freed, edges zeroed */
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 << 19, (7 << 19) + 7), 0);
	memset(w + (3 << 19), 0, (7 << 19) + 7);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), 0);
	ck_assert_uint_lt(st.blocks * 512, len - (3 << 20) + (64 << 10));
	ck_assert_int_eq(vmfs_lseek(fs, ino, 3 << 19, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, 2 << 20);
	ck_assert_int_eq(vmfs_lseek(fs, ino, 2 << 20, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, 5 << 20);
	/* zero range [6 MiB + 100, end): kept allocated, reads zero */
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_ZERO_RANGE, (6 << 20) + 100, (2 << 20) - 100), 0);
	memset(w + (6 << 20) + 100, 0, (2 << 20) - 100);
	ck_assert_int_eq(vmfs_pread(fs, ino, r, len, 0), (ssize_t)len);
	ck_assert_int_eq(memcmp(w, r, len), 0);
	ck_assert_int_eq(vmfs_fallocate(fs, ino, FALLOC_FL_PUNCH_HOLE, 0, 1), -EOPNOTSUPP);
	vmfs_close(fs);
	free(w);
	free(r);
}
END_TEST

START_TEST(t_truncate)
{
	struct vmfs *fs;
	struct vmfs_stat st = { 0 }, out;
	uint64_t ino;
	uint8_t *w = malloc(3 << 20), *r = malloc(3 << 20);

	mk(256ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, vmfs_root_ino(fs), "t");
	fill(w, 3 << 20, 5);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, w, 3 << 20, 0), 3 << 20);
	st.size = 1000000;
	ck_assert_int_eq(vmfs_setattr(fs, ino, &st, VMFS_SET_SIZE, &out), 0);
	ck_assert_uint_eq(out.size, 1000000);
	st.size = 3 << 20; /* grow again: the cut part reads zeros */
	ck_assert_int_eq(vmfs_setattr(fs, ino, &st, VMFS_SET_SIZE, &out), 0);
	memset(w + 1000000, 0, (3 << 20) - 1000000);
	ck_assert_int_eq(vmfs_pread(fs, ino, r, 3 << 20, 0), 3 << 20);
	ck_assert_int_eq(memcmp(w, r, 3 << 20), 0);
	st.size = 0;
	ck_assert_int_eq(vmfs_setattr(fs, ino, &st, VMFS_SET_SIZE, &out), 0);
	ck_assert_uint_eq(out.blocks, 8); /* only the inode */
	vmfs_close(fs);
	free(w);
	free(r);
}
END_TEST

/* ---- directories ------------------------------------------------------------------------ */

struct count_ctx {
	unsigned n, dots;
	uint64_t last;
	char *seen;
};

static int count_cb(void *ctx, const char *name, size_t len, uint64_t ino, uint32_t type, uint64_t next)
{
	struct count_ctx *c = ctx;
	(void)ino;
	(void)type;
	ck_assert_uint_gt(next, c->last); /* cookies only grow */
	c->last = next;
	if (len <= 2 && name[0] == '.') {
		c->dots++;
		return 0;
	}
	char tmp[64];
	ck_assert_uint_lt(len, sizeof(tmp));
	memcpy(tmp, name, len);
	tmp[len] = 0;
	ck_assert_int_eq(strncmp(tmp, "entry-", 6), 0);
	unsigned idx = (unsigned)atoi(tmp + 6);
	ck_assert_uint_lt(idx, 100000);
	ck_assert_int_eq(c->seen[idx], 0); /* each exactly once */
	c->seen[idx] = 1;
	c->n++;
	return 0;
}

START_TEST(t_dir_100k)
{
	const unsigned n = 100000;
	struct count_ctx c = { 0 };
	struct vmfs_stat st;
	struct vmfs *fs;
	uint64_t d;
	char name[64];

	mk(1ull << 30, 0);
	fs = op(false, 1000);
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "big", 0755, 0, 0, &st), 0);
	d = st.ino;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "entry-%u", i);
		create(fs, d, name);
	}
	ck_assert_int_eq(vmfs_mknod(fs, d, "entry-77", S_IFREG | 0644, 0, 0, &st), -EEXIST);
	for (unsigned i = 0; i < n; i += 997) {
		snprintf(name, sizeof(name), "entry-%u", i);
		ck_assert_int_eq(vmfs_lookup(fs, d, name, &st), 0);
	}
	vmfs_close(fs);
	fs = op(false, 1000);
	c.seen = calloc(n, 1);
	ck_assert_int_eq(vmfs_readdir(fs, d, 0, count_cb, &c), 0);
	ck_assert_uint_eq(c.n, n);
	ck_assert_uint_eq(c.dots, 2);
	/* remove every other entry, then all: the tree shrinks back to inline */
	for (unsigned i = 0; i < n; i += 2) {
		snprintf(name, sizeof(name), "entry-%u", i);
		ck_assert_int_eq(vmfs_unlink(fs, d, name), 0);
	}
	ck_assert_int_eq(vmfs_rmdir(fs, vmfs_root_ino(fs), "big"), -ENOTEMPTY);
	for (unsigned i = 1; i < n; i += 2) {
		snprintf(name, sizeof(name), "entry-%u", i);
		ck_assert_int_eq(vmfs_unlink(fs, d, name), 0);
	}
	ck_assert_int_eq(vmfs_getattr(fs, d, &st), 0);
	ck_assert_uint_eq(st.blocks, 8); /* back to one inline inode */
	ck_assert_int_eq(vmfs_rmdir(fs, vmfs_root_ino(fs), "big"), 0);
	free(c.seen);
	vmfs_close(fs);
}
END_TEST

struct resume_ctx {
	unsigned n, limit;
	uint64_t next;
};

static int resume_cb(void *ctx, const char *name, size_t len, uint64_t ino, uint32_t type, uint64_t next)
{
	struct resume_ctx *r = ctx;
	(void)name; (void)len; (void)ino; (void)type;
	if (r->n == r->limit)
		return 1;
	r->n++;
	r->next = next;
	return 0;
}

START_TEST(t_readdir_cookies_stable)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	struct resume_ctx r = { .limit = 50 };
	unsigned total = 0;
	char name[64];

	mk(256ull << 20, 0);
	fs = op(false, 1000);
	for (unsigned i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "n%u", i);
		create(fs, vmfs_root_ino(fs), name);
	}
	/* read in pages of 50 while inserting more (which splits nodes): no entry lost or repeated */
	uint64_t cookie = 0;
	for (;;) {
		r.n = 0;
		ck_assert_int_eq(vmfs_readdir(fs, vmfs_root_ino(fs), cookie, resume_cb, &r), 0);
		total += r.n;
		if (r.n < r.limit)
			break;
		cookie = r.next;
		snprintf(name, sizeof(name), "late%u", total);
		ck_assert_int_eq(vmfs_mknod(fs, vmfs_root_ino(fs), name, S_IFREG, 0, 0, &st), 0);
	}
	ck_assert_uint_ge(total, 2000 + 3); /* ".", "..", lost+found, the originals, maybe some late ones */
	vmfs_close(fs);
}
END_TEST

START_TEST(t_rename)
{
	struct vmfs *fs;
	struct vmfs_stat st, a, b;
	uint64_t r, d1, d2;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	r = vmfs_root_ino(fs);
	ck_assert_int_eq(vmfs_mkdir(fs, r, "d1", 0755, 0, 0, &st), 0);
	d1 = st.ino;
	ck_assert_int_eq(vmfs_mkdir(fs, d1, "d2", 0755, 0, 0, &st), 0);
	d2 = st.ino;
	create(fs, r, "x");
	create(fs, r, "y");
	ck_assert_int_eq(vmfs_rename(fs, r, "x", r, "y", VMFS_RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(vmfs_lookup(fs, r, "x", &a), 0);
	ck_assert_int_eq(vmfs_lookup(fs, r, "y", &b), 0);
	ck_assert_int_eq(vmfs_rename(fs, r, "x", r, "y", VMFS_RENAME_EXCHANGE), 0);
	ck_assert_int_eq(vmfs_lookup(fs, r, "x", &st), 0);
	ck_assert_uint_eq(st.ino, b.ino);
	ck_assert_int_eq(vmfs_rename(fs, r, "x", d2, "z", 0), 0); /* across directories */
	ck_assert_int_eq(vmfs_rename(fs, r, "y", d2, "z", 0), 0); /* over an existing file */
	ck_assert_int_eq(vmfs_lookup(fs, d2, "z", &st), 0);
	ck_assert_uint_eq(st.ino, a.ino);
	ck_assert_int_eq(vmfs_lookup(fs, r, "y", &st), -ENOENT);
	ck_assert_int_eq(vmfs_rename(fs, r, "d1", d2, "loop", 0), -EINVAL); /* into itself */
	ck_assert_int_eq(vmfs_rename(fs, d1, "d2", r, "d2moved", 0), 0);
	ck_assert_int_eq(vmfs_getattr(fs, d1, &st), 0);
	ck_assert_uint_eq(st.nlink, 2);
	ck_assert_int_eq(vmfs_getattr(fs, r, &st), 0);
	ck_assert_uint_eq(st.nlink, 5); /* ., .., lost+found, d1, d2moved */
	ck_assert_int_eq(vmfs_lookup(fs, d2, "..", &st), 0);
	ck_assert_uint_eq(st.ino, r);
	ck_assert_int_eq(vmfs_rename(fs, r, "d1", r, "d2moved", 0), -ENOTEMPTY);
	ck_assert_int_eq(vmfs_mkdir(fs, r, "empty", 0755, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_rename(fs, r, "d1", r, "empty", 0), 0); /* dir over empty dir */
	ck_assert_int_eq(vmfs_rmdir(fs, r, "empty"), 0);
	ck_assert_int_eq(vmfs_getattr(fs, r, &st), 0);
	ck_assert_uint_eq(st.nlink, 4);
	vmfs_close(fs);
}
END_TEST

START_TEST(t_links_symlinks_orphans)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	char buf[5000], target[3000];
	uint64_t r, ino;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	r = vmfs_root_ino(fs);
	ino = create(fs, r, "f");
	rw_check(fs, ino, 0, 10000, 1);
	ck_assert_int_eq(vmfs_link(fs, ino, r, "g", &st), 0);
	ck_assert_uint_eq(st.nlink, 2);
	memset(target, 'a', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	ck_assert_int_eq(vmfs_symlink(fs, r, "s", target, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_readlink(fs, st.ino, buf, sizeof(buf)), (ssize_t)strlen(target));
	ck_assert_int_eq(vmfs_symlink(fs, r, "s2", "short", 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_readlink(fs, st.ino, buf, sizeof(buf)), 5);
	ck_assert_int_eq(vmfs_unlink(fs, r, "f"), 0);
	ck_assert_int_eq(vmfs_unlink(fs, r, "g"), 0); /* still referenced: an orphan */
	rw_check(fs, ino, 5000, 100, 2);              /* still readable and writable */
	vmfs_forget(fs, ino, 3);                      /* create + link took references */
	ck_assert_int_eq(vmfs_getattr(fs, ino, &st), -ESTALE); /* freed */
	vmfs_close(fs);
}
END_TEST

/* Device nodes keep their numbers: in the inode, across a close and an open; other types have none. */
START_TEST(t_device_numbers)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	uint64_t r, chr, blk, fifo;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	r = vmfs_root_ino(fs);
	ck_assert_int_eq(vmfs_mknod_dev(fs, r, "null", S_IFCHR | 0666, 1, 3, 0, 0, &st), 0);
	ck_assert_uint_eq(st.rdev_major, 1);
	ck_assert_uint_eq(st.rdev_minor, 3);
	chr = st.ino;
	ck_assert_int_eq(vmfs_mknod_dev(fs, r, "big", S_IFBLK | 0660, 4095, 1048575, 0, 0, &st), 0);
	blk = st.ino;
	ck_assert_int_eq(vmfs_mknod_dev(fs, r, "fifo", S_IFIFO | 0600, 7, 7, 0, 0, &st), 0);
	ck_assert_uint_eq(st.rdev_major, 0);	/* only devices have a number */
	fifo = st.ino;
	ck_assert_int_eq(vmfs_mknod_dev(fs, r, "dir", S_IFDIR | 0755, 1, 1, 0, 0, &st), -EINVAL);
	ck_assert_int_eq(vmfs_close(fs), 0);
	fs = op(false, 0);
	ck_assert_int_eq(vmfs_getattr(fs, chr, &st), 0);
	ck_assert_uint_eq(st.mode, S_IFCHR | 0666);
	ck_assert_uint_eq(st.rdev_major, 1);
	ck_assert_uint_eq(st.rdev_minor, 3);
	ck_assert_int_eq(vmfs_getattr(fs, blk, &st), 0);
	ck_assert_uint_eq(st.mode, S_IFBLK | 0660);
	ck_assert_uint_eq(st.rdev_major, 4095);
	ck_assert_uint_eq(st.rdev_minor, 1048575);
	ck_assert_int_eq(vmfs_getattr(fs, fifo, &st), 0);
	ck_assert_uint_eq(st.rdev_major | st.rdev_minor, 0);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

/* ---- journal -------------------------------------------------------------------------------- */

START_TEST(t_journal_replay)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	pid_t pid;
	int status;

	mk(256ull << 20, 0);
	pid = fork();
	if (pid == 0) {
		/* a host that commits to its log, never writes in place, and dies */
		fs = op(false, 0);
		fs->j_no_inplace = true;
		for (int i = 0; i < 30; i++) {
			char name[16];
			snprintf(name, sizeof(name), "c%d", i);
			if (vmfs_mknod(fs, vmfs_root_ino(fs), name, S_IFREG | 0600, 0, 0, &st))
				_exit(2);
		}
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* read-only open sees the replayed state without writing */
	fs = op(true, 0);
	{
		struct vmfs_info in;
		vmfs_get_info(fs, &in);
		ck_assert_str_eq(in.journal_state, "needs recovery");
	}
	ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "c29", &st), 0);
	vmfs_close(fs);
	fs = op(false, 0);
	ck_assert(fs->j_replayed);
	for (int i = 0; i < 30; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), name, &st), 0);
	}
	vmfs_close(fs);
	fs = op(true, 0);
	{
		struct vmfs_info in;
		vmfs_get_info(fs, &in);
		ck_assert_str_eq(in.journal_state, "clean");
	}
	vmfs_close(fs);
}
END_TEST

START_TEST(t_torn_commit_ignored)
{
	struct vmfs *fs;
	struct vmfs_stat st;
	uint64_t commit_unit;
	pid_t pid;
	int status, fd;
	uint8_t junk[512];

	mk(256ull << 20, 0);
	fs = op(false, 0);
	create(fs, vmfs_root_ino(fs), "before");
	vmfs_close(fs);
	pid = fork();
	if (pid == 0) {
		fs = op(false, 0);
		fs->j_no_inplace = true;
		if (vmfs_mknod(fs, vmfs_root_ino(fs), "after", S_IFREG | 0600, 0, 0, &st))
			_exit(2);
		_exit(0);
	}
	/* tear the commit block of the child's last transaction */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	fs = op(true, 0);
	commit_unit = fs->j_unit + VMFS_JOURNAL_LOG_START + (fs->j_head - 1) % (fs->j_units - VMFS_JOURNAL_LOG_START);
	vmfs_close(fs);
	fd = open(img, O_RDWR);
	memset(junk, 0xee, sizeof(junk));
	ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), (off_t)(commit_unit * VMFS_UNIT + 1024)), 512);
	close(fd);
	fs = op(false, 0);
	ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "before", &st), 0);
	ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "after", &st), -ENOENT); /* never happened */
	create(fs, vmfs_root_ino(fs), "again");
	vmfs_close(fs);
}
END_TEST

START_TEST(t_engines)
{
	static const char *engines[] = { "uring", "aio", "sync" };
	for (unsigned e = 0; e < 3; e++) {
		struct vmfs *fs;
		uint64_t ino;
		setenv("VMFS_IO_ENGINE", engines[e], 1);
		mk(256ull << 20, 0);
		fs = op(false, 0);
		ck_assert_str_eq(dev_engine_name(fs->dev), engines[e]);
		ino = create(fs, vmfs_root_ino(fs), "e");
		rw_check(fs, ino, 12345, 3 << 20, e);
		vmfs_close(fs);
		unlink(img);
	}
	unsetenv("VMFS_IO_ENGINE");
}
END_TEST

START_TEST(t_sector_4k)
{
	struct vmfs *fs;
	uint64_t ino;
	setenv("VMFS_SECTOR_SIZE", "4096", 1);
	mk(256ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, vmfs_root_ino(fs), "s");
	rw_check(fs, ino, 1, 5000, 1); /* read-modify-write at 4 KiB sectors */
	rw_check(fs, ino, 4096 * 300 + 17, 1 << 20, 2);
	vmfs_close(fs);
	unsetenv("VMFS_SECTOR_SIZE");
}
END_TEST


START_TEST(t_aio)
{
	enum { N = 512, BS = 4096, QD = 32 };
	struct vmfs_aio_req reqs[QD], *done[QD];
	struct vmfs_aio *q;
	struct vmfs *fs;
	uint64_t ino;
	size_t len = 8 << 20;
	uint8_t *w = malloc(len), *r = malloc(len), *bufs;
	unsigned next = 0, inflight = 0, completed = 0, freeslots[QD], nfree = QD;

	for (unsigned i = 0; i < QD; i++)
		freeslots[i] = i;

	mk(256ull << 20, 0);
	fs = op(false, 1000);
	ino = create(fs, vmfs_root_ino(fs), "q");
	fill(w, len, 4);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, w, len, 0), (ssize_t)len);
	ck_assert_int_eq(posix_memalign((void **)&bufs, 4096, (size_t)QD * BS), 0);
	ck_assert_int_eq(vmfs_aio_new(fs, QD, &q), 0);
	/* N random 4 KiB overwrites at QD32, each slot remembering its offset */
	while (completed < N) {
		while (nfree && next < N) {
			unsigned slot = freeslots[--nfree];
			uint64_t blk = ((uint64_t)next * 2654435761u) % (len / BS);
			memset(bufs + (size_t)slot * BS, (int)(next & 0xff), BS);
			memset(w + blk * BS, (int)(next & 0xff), BS);
			reqs[slot] = (struct vmfs_aio_req){ .ino = ino, .write = true, .buf = bufs + (size_t)slot * BS,
							   .len = BS, .off = blk * BS };
			ck_assert_int_eq(vmfs_aio_submit(q, &reqs[slot]), 0);
			next++;
			inflight++;
		}
		int n = vmfs_aio_reap(q, 1, done, QD);
		ck_assert_int_ge(n, 1);
		for (int i = 0; i < n; i++) {
			ck_assert_int_eq(done[i]->res, BS);
			freeslots[nfree++] = (unsigned)(done[i] - reqs);
		}
		inflight -= (unsigned)n;
		completed += (unsigned)n;
	}
	/* read it all back through the queue in 64 KiB pieces, plus a read past the end */
	for (size_t off = 0; off < len; off += 65536) {
		struct vmfs_aio_req rr = { .ino = ino, .buf = r + off, .len = 65536, .off = off };
		ck_assert_int_eq(vmfs_aio_submit(q, &rr), 0);
		ck_assert_int_eq(vmfs_aio_reap(q, 1, done, 1), 1);
		ck_assert_int_eq(done[0]->res, 65536);
	}
	ck_assert_int_eq(memcmp(w, r, len), 0);
	/*
	 * QD reads of 256 KiB (the whole file) in flight at once into aligned
	 * buffers (the device reads into them; an encrypted file's large reads
	 * are deciphered there as they are handed out), reaped with min 1 and
	 * then with min 0, which must hand out all that completed: an
	 * eventfd's caller reaps once a signal.
	 */
	for (int pass = 0; pass < 2; pass++) {
		const size_t PIECE = len / QD; /* 256 KiB: large enough to be deciphered when reaped */
		uint8_t *rb;
		unsigned got = 0;

		ck_assert_int_eq(posix_memalign((void **)&rb, 4096, (size_t)QD * PIECE), 0);
		memset(rb, 0xee, (size_t)QD * PIECE);
		for (unsigned i = 0; i < QD; i++) {
			reqs[i] = (struct vmfs_aio_req){ .ino = ino, .buf = rb + (size_t)i * PIECE, .len = PIECE,
							 .off = (uint64_t)i * PIECE };
			ck_assert_int_eq(vmfs_aio_submit(q, &reqs[i]), 0);
		}
		if (pass == 1) { /* one waited for, then the rest without waiting */
			ck_assert_int_eq(vmfs_aio_reap(q, 1, done, 1), 1);
			ck_assert_int_eq(done[0]->res, PIECE);
			got = 1;
		}
		while (got < QD) {
			int n = vmfs_aio_reap(q, pass ? 0 : 1, done, QD);

			ck_assert_int_ge(n, 0);
			for (int i = 0; i < n; i++)
				ck_assert_int_eq(done[i]->res, PIECE);
			got += (unsigned)n;
		}
		ck_assert_int_eq(vmfs_aio_reap(q, 0, done, QD), 0);
		ck_assert_int_eq(memcmp(w, rb, (size_t)QD * PIECE), 0);
		free(rb);
	}
	{
		struct vmfs_aio_req tail = { .ino = ino, .buf = r, .len = 8192, .off = len - 4096 };
		ck_assert_int_eq(vmfs_aio_submit(q, &tail), 0);
		ck_assert_int_eq(vmfs_aio_reap(q, 1, done, 1), 1);
		ck_assert_int_eq(done[0]->res, 4096); /* short read at the end, like pread */
	}
	/* thin: every first write allocates (synchronous path) while others are in flight */
	{
		struct vmfs_stat in = { .size = len };
		uint64_t thin = create(fs, vmfs_root_ino(fs), "thin");
		ck_assert_int_eq(vmfs_setattr(fs, thin, &in, VMFS_SET_SIZE, NULL), 0);
		next = completed = 0;
		while (completed < len / BS) {
			while (nfree && next < len / BS) {
				unsigned slot = freeslots[--nfree];
				uint64_t blk = ((uint64_t)next * 2654435761u) % (len / BS);
				reqs[slot] = (struct vmfs_aio_req){ .ino = thin, .write = true, .buf = w + blk * BS,
								   .len = BS, .off = blk * BS };
				ck_assert_int_eq(vmfs_aio_submit(q, &reqs[slot]), 0);
				next++;
			}
			int n = vmfs_aio_reap(q, 1, done, QD);
			ck_assert_int_ge(n, 1);
			for (int i = 0; i < n; i++) {
				ck_assert_int_eq(done[i]->res, BS);
				freeslots[nfree++] = (unsigned)(done[i] - reqs);
			}
			completed += (unsigned)n;
		}
	}
	vmfs_aio_free(q);
	vmfs_close(fs);
	free(bufs);
	free(w);
	free(r);
}
END_TEST


/*
 * What vmfs-mount's io_uring queues rely on: an overwrite through the queue
 * moves the file's mtime (deferred like write_in_place's), a batched queue
 * hands nothing to the device until a reap, reap with min 0 does not wait,
 * and the eventfd is signalled when the device completes.
 */
START_TEST(t_aio_ring)
{
	enum { BS = 4096, QD = 8 };
	struct vmfs_aio_req reqs[QD], *done[QD];
	struct vmfs_stat before, after;
	struct vmfs_aio *q;
	struct vmfs *fs;
	uint64_t ino, v;
	uint8_t *bufs, *w = malloc(1 << 20);
	struct pollfd pfd;
	int efd, got = 0;

	mk(256ull << 20, 0);
	fs = op(false, 1000);
	ino = create(fs, vmfs_root_ino(fs), "r");
	fill(w, 1 << 20, 9);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, w, 1 << 20, 0), 1 << 20);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &before), 0);
	ck_assert_int_eq(posix_memalign((void **)&bufs, 4096, (size_t)QD * BS), 0);
	memset(bufs, 0x5a, (size_t)QD * BS);
	ck_assert_int_eq(vmfs_aio_new(fs, QD, &q), 0);
	efd = vmfs_aio_eventfd(q);
	ck_assert_int_ge(efd, 0);               /* the default engine is io_uring */
	ck_assert_int_eq(vmfs_aio_eventfd(q), efd);
	vmfs_aio_set_batch(q, true);
	for (unsigned i = 0; i < QD; i++) {
		reqs[i] = (struct vmfs_aio_req){ .ino = ino, .write = true, .buf = bufs + (size_t)i * BS,
						 .len = BS, .off = (uint64_t)i * 2 * BS };
		ck_assert_int_eq(vmfs_aio_submit(q, &reqs[i]), 0);
	}
	/* batched: nothing reached the device, so nothing can signal */
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 50), 0);
	/* the first reap with min 0 hands the burst over and returns at once */
	got = vmfs_aio_reap(q, 0, done, QD);
	ck_assert_int_ge(got, 0);
	while (got < QD) {
		int n;

		ck_assert_int_eq(poll(&pfd, 1, 5000), 1); /* the device's completion signals it */
		ck_assert_int_eq(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
		n = vmfs_aio_reap(q, 0, done + got, QD - (unsigned)got);
		ck_assert_int_ge(n, 0);
		got += n;
	}
	for (int i = 0; i < QD; i++)
		ck_assert_int_eq(done[i]->res, BS);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &after), 0);
	ck_assert_int_gt(after.mtime_ns, before.mtime_ns);
	ck_assert_int_gt(after.ctime_ns, before.ctime_ns);
	vmfs_aio_free(q);
	vmfs_close(fs);
	/* the times reached the disk, and so did the data */
	fs = op(true, 1000);
	ck_assert_int_eq(vmfs_getattr(fs, ino, &before), 0);
	ck_assert_int_eq(before.mtime_ns, after.mtime_ns);
	ck_assert_int_eq(vmfs_pread(fs, ino, w, BS, 2 * BS), BS);
	ck_assert_int_eq(memcmp(w, bufs, BS), 0);
	vmfs_close(fs);
	free(bufs);
	free(w);
}
END_TEST


START_TEST(t_punch_across_boundary)
{
	static const int modes[] = { FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE };
	static uint8_t buf[200000], zero[200000];
	struct vmfs *fs;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	for (int m = 0; m < 2; m++) {
		char name[16];
		snprintf(name, sizeof(name), "p%u", (unsigned)m & 7);
		uint64_t ino = create(fs, vmfs_root_ino(fs), name);
		/* block 0 a hole, data in block 1; the range covers no whole block */
		rw_check(fs, ino, 1 << 20, 4 << 20, 7);
		ck_assert_int_eq(vmfs_fallocate(fs, ino, modes[m], 1000000, 100000), 0);
		ck_assert_int_eq(vmfs_pread(fs, ino, buf, 100000, 1000000), 100000);
		ck_assert_int_eq(memcmp(buf, zero, 100000), 0);
		/* both blocks with data: the neighbours of the range survive */
		rw_check(fs, ino, 0, 3 << 20, 8);
		ck_assert_int_eq(vmfs_fallocate(fs, ino, modes[m], (1 << 20) - 5000, 10000), 0);
		ck_assert_int_eq(vmfs_pread(fs, ino, buf, 20000, (1 << 20) - 10000), 20000);
		ck_assert_int_eq(memcmp(buf + 5000, zero, 10000), 0);
		{
			uint8_t *w = malloc(3 << 20);
			fill(w, 3 << 20, 8);
			ck_assert_int_eq(memcmp(buf, w + (1 << 20) - 10000, 5000), 0);
			ck_assert_int_eq(memcmp(buf + 15000, w + (1 << 20) + 5000, 5000), 0);
			free(w);
		}
	}
	vmfs_close(fs);
}
END_TEST

/* A checksum of the whole image file: equal before and after means nothing was written. */
static uint64_t image_sum(void)
{
	uint8_t *b = malloc(1 << 20);
	uint64_t h = 1469598103934665603ull;
	ssize_t n;
	int fd = open(img, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	while ((n = read(fd, b, 1 << 20)) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ b[i]) * 1099511628211ull;
	close(fd);
	free(b);
	return h;
}

/*
 * Issue 16, point 10: a block whose count is at VMFS_REF_MAX is never shared
 * once more. A snapshot or a clone that would pass it fails with EMLINK and
 * writes nothing (the image is byte for byte the same); copy_file_range
 * copies instead of sharing. Internals set the count (64k snapshots would
 * take minutes) and put it back, so fsck finds the datastore clean after.
 */
START_TEST(t_shared_count_limit)
{
	uint8_t *data = malloc(2 << 20), *back = malloc(2 << 20);
	struct vmfs_stat st, dst;
	struct vmfs *fs;
	uint64_t ino, snap, unit, before, added = 0;
	struct vbuf *ib;
	int ret = 0;

	mk(256ull << 20, 0);
	fs = op(false, 0);
	ino = create(fs, fs->root_ino, "disk");
	fill(data, 2 << 20, 5);
	ck_assert_int_eq(vmfs_pwrite(fs, ino, data, 2 << 20, 0), 2 << 20);
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "a", &snap), 0);
	/* block 0's count: 2 (the file and a); raise it to the maximum */
	ck_assert_int_eq(op_begin(fs), 0);
	ck_assert_int_eq(inode_read(fs, ino, &ib), 0);
	unit = le64_to_cpu(((le64 *)ib_inode(ib)->i_root)[0]) & VMFS_PTR_ADDR_MASK;
	meta_put(fs, ib);
	while (!ret) {
		ret = ref_add(fs, unit);
		added += !ret;
	}
	ck_assert_int_eq(ret, -EMLINK);
	ck_assert_int_eq(op_end(fs, 0), 0);
	ck_assert_uint_eq(added, VMFS_REF_MAX - 2);
	ck_assert_int_eq(vmfs_sync(fs), 0);
	before = image_sum(); /* commit_ms 0, standalone: only an operation that succeeds writes */
	ck_assert_int_eq(vmfs_snap_create(fs, &ino, 1, "b", NULL), -EMLINK);
	ck_assert_int_eq(vmfs_clone(fs, ino, fs->root_ino, "clone", 0644, 0, 0, &st), -EMLINK);
	ck_assert_int_eq(vmfs_lookup(fs, fs->root_ino, "clone", &st), -ENOENT);
	ck_assert_msg(image_sum() == before, "a refused snapshot or clone wrote to the image");
	ret = 0;
	/* copy_file_range: block 0 is copied, block 1 shared */
	ck_assert_int_eq(vmfs_mknod(fs, fs->root_ino, "copy", S_IFREG | 0644, 0, 0, &dst), 0);
	ck_assert_int_eq(vmfs_copy_range(fs, ino, 0, dst.ino, 0, 2 << 20), 2 << 20);
	ck_assert_int_eq(vmfs_pread(fs, dst.ino, back, 2 << 20, 0), 2 << 20);
	ck_assert_int_eq(memcmp(back, data, 2 << 20), 0);
	/* the count back as it was, then everything checked */
	ck_assert_int_eq(op_begin(fs), 0);
	for (uint64_t i = 0; i < added && !ret; i++)
		ret = free_block(fs, unit);
	ck_assert_int_eq(op_end(fs, ret), 0);
	vmfs_close(fs);
	{
		struct vmfs_fsck_opts o = { .mode = VMFS_FSCK_CHECK, .force = true, .out = stderr };
		struct vmfs_fsck_result r;
		char err[256];
		ck_assert_int_eq(vmfs_fsck(img, &o, &r, err, sizeof(err)), 0);
		ck_assert_uint_eq(r.found, 0);
	}
	free(data);
	free(back);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vmfs");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, t_block_checks);
	tcase_add_test(tc, t_mkfs_geometry);
	tcase_add_test(tc, t_bad_options);
	tcase_add_test(tc, t_refuses_existing);
	tcase_add_test(tc, t_open_bad_superblock);
	tcase_add_test(tc, t_alloc_pending_and_rollback);
	tcase_add_test(tc, t_enospc_leaves_no_trace);
	tcase_add_test(tc, t_shapes);
	tcase_add_test(tc, t_sparse_64t);
	tcase_add_test(tc, t_fallocate_punch_zero);
	tcase_add_test(tc, t_truncate);
	tcase_add_test(tc, t_dir_100k);
	tcase_add_test(tc, t_readdir_cookies_stable);
	tcase_add_test(tc, t_rename);
	tcase_add_test(tc, t_links_symlinks_orphans);
	tcase_add_test(tc, t_device_numbers);
	tcase_add_test(tc, t_journal_replay);
	tcase_add_test(tc, t_torn_commit_ignored);
	tcase_add_test(tc, t_engines);
	tcase_add_test(tc, t_sector_4k);
	tcase_add_test(tc, t_aio);
	tcase_add_test(tc, t_aio_ring);
	tcase_add_test(tc, t_punch_across_boundary);
	tcase_add_test(tc, t_shared_count_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
