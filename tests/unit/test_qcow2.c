/*
 * Unit tests for the qcow2 reader of vmfsctl import (tools/vmfsctl_qcow2.c).
 * Images are written by a small writer here (not qemu: tests/e2e/qcow2.sh
 * holds the reader against qemu-img), which also keeps what each image's
 * guest must read, so that every read is checked against an expectation
 * written independently of the reader: every kind of cluster at every
 * cluster size, backing chains of qcow2 and raw files, each damage and
 * unsupported feature refused with its errno and one line, every byte of a
 * small image flipped and every length cut off without a crash (and what
 * still opens must read its map's zero runs as zeros), and the bounded work
 * of one qcow2_map().
 */
#include "tools/vmfsctl_qcow2.h"

#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static char tmpdir[] = "/tmp/vmfs-qcow2-XXXXXX";

enum cl_state { CL_UNALLOC, CL_ZERO, CL_DATA };

/* An image being written, and what its guest reads (unallocated clusters read as zeros here). */
struct img {
	uint8_t *buf;
	size_t len;
	unsigned version, cb;
	uint64_t cs, size;
	uint64_t l1_off;
	uint32_t l1_size;
	uint64_t incompat;
	unsigned ctype;			/* 0 deflate, 1 zstd */
	const char *backing, *backing_fmt;
	const char *feature_name;	/* a feature name table entry for incompatible bit 7 */
	uint8_t *guest;
	uint8_t *state;			/* enum cl_state per guest cluster */
};

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static void grow(struct img *m, size_t len)
{
	if (len <= m->len)
		return;
	m->buf = realloc(m->buf, len);
	ck_assert_ptr_nonnull(m->buf);
	memset(m->buf + m->len, 0, len - m->len);
	m->len = len;
}

/* n clusters at the end of the file (cluster-aligned). */
static uint64_t alloc_clusters(struct img *m, uint64_t n)
{
	uint64_t off = (m->len + m->cs - 1) & ~(m->cs - 1);

	grow(m, off + n * m->cs);
	return off;
}

/* Cluster 0 the header, 1 the refcount table, then the L1 table. */
static void img_init(struct img *m, unsigned version, unsigned cb, uint64_t size)
{
	uint64_t span = (UINT64_C(1) << (cb - 3)) << cb, l1_clusters;

	memset(m, 0, sizeof(*m));
	m->version = version;
	m->cb = cb;
	m->cs = UINT64_C(1) << cb;
	m->size = size;
	m->l1_size = (uint32_t)((size + span - 1) / span);
	grow(m, 2 * m->cs);
	l1_clusters = (m->l1_size * UINT64_C(8) + m->cs - 1) / m->cs;
	m->l1_off = alloc_clusters(m, l1_clusters ? l1_clusters : 1);
	if (size > (256u << 20))
		return;		/* no guest to keep: for maps of large empty images only */
	m->guest = calloc(1, size + 1);
	m->state = calloc(1, (size >> cb) + 2);
	ck_assert(m->guest && m->state);
}

static void img_free(struct img *m)
{
	free(m->buf);
	free(m->guest);
	free(m->state);
}

/* The L2 table of guest offset guest, made (and linked in the L1) when missing. */
static uint64_t img_l2(struct img *m, uint64_t guest)
{
	uint8_t *l1e = m->buf + m->l1_off + (guest >> (2 * m->cb - 3)) * 8;
	uint64_t off = get_be64(l1e) & UINT64_C(0x00fffffffffffe00);

	if (!off) {
		off = alloc_clusters(m, 1);
		put_be64(m->buf + m->l1_off + (guest >> (2 * m->cb - 3)) * 8, off | (UINT64_C(1) << 63));
	}
	return off;
}

static uint8_t *l2_slot(struct img *m, uint64_t guest)
{
	uint64_t l2 = img_l2(m, guest);

	return m->buf + l2 + ((guest >> m->cb) & (m->cs / 8 - 1)) * 8;
}

static void guest_set(struct img *m, uint64_t guest, const uint8_t *bytes, enum cl_state st)
{
	uint64_t start = guest & ~(m->cs - 1), n = m->cs;

	if (start + n > m->size)
		n = m->size - start;
	if (bytes)
		memcpy(m->guest + start, bytes, n);
	else
		memset(m->guest + start, 0, n);
	m->state[guest >> m->cb] = (uint8_t)st;
}

/* Cluster content for seed: bytes that compress (runs) but differ cluster to cluster. */
static void pattern(uint8_t *p, uint64_t len, unsigned seed)
{
	for (uint64_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + (i / 64) * 7 + (i % 3 == 0 ? i / 512 : 0));
}

/* A standard data cluster for the guest cluster at guest; returns its host offset. */
static uint64_t img_data(struct img *m, uint64_t guest, unsigned seed)
{
	uint64_t off = alloc_clusters(m, 1);

	pattern(m->buf + off, m->cs, seed);
	put_be64(l2_slot(m, guest), off | (UINT64_C(1) << 63));
	guest_set(m, guest, m->buf + off, CL_DATA);
	return off;
}

/* A zero cluster (version 3), keeping the cluster's offset as preallocation when keep. */
static void img_zero(struct img *m, uint64_t guest, bool keep)
{
	uint8_t *e = l2_slot(m, guest);

	put_be64(e, (keep ? get_be64(e) & UINT64_C(0x00fffffffffffe00) : 0) | 1);
	guest_set(m, guest, NULL, CL_ZERO);
}

/* Compresses cluster bytes raw as qemu does: raw deflate or one zstd frame. */
static size_t compress_cluster(const struct img *m, const uint8_t *src, uint64_t srclen, uint8_t *dst, size_t cap)
{
	z_stream zs = { 0 };
	size_t n;

	if (m->ctype == 1) {
		n = ZSTD_compress(dst, cap, src, srclen, 3);
		ck_assert(!ZSTD_isError(n));
		return n;
	}
	ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (uint8_t *)src;
	zs.avail_in = (uInt)srclen;
	zs.next_out = dst;
	zs.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	n = cap - zs.avail_out;
	deflateEnd(&zs);
	return n;
}

/* A compressed descriptor for bytes at host offset off, len bytes long. */
static uint64_t compressed_entry(const struct img *m, uint64_t off, uint64_t len)
{
	uint64_t sectors = ((off + len - 1) >> 9) - (off >> 9);

	ck_assert_uint_lt(sectors, UINT64_C(1) << (m->cb - 8));
	return (UINT64_C(1) << 62) | (sectors << (62 - (m->cb - 8))) | off;
}

/* A compressed cluster, written where the file ends (not aligned, as qemu packs them). */
static uint64_t img_compressed(struct img *m, uint64_t guest, unsigned seed)
{
	uint8_t *src = malloc(m->cs), *dst = malloc(2 * m->cs);
	uint64_t off = m->len;
	size_t n;

	ck_assert(src && dst);
	pattern(src, m->cs, seed);
	n = compress_cluster(m, src, m->cs, dst, 2 * m->cs);
	grow(m, off + n);
	memcpy(m->buf + off, dst, n);
	put_be64(l2_slot(m, guest), compressed_entry(m, off, n));
	guest_set(m, guest, src, CL_DATA);
	free(src);
	free(dst);
	return off;
}

/* The header, its extensions and the backing file name into cluster 0. */
static void img_finish(struct img *m)
{
	uint8_t *h = m->buf;
	uint32_t hlen = m->version == 2 ? 72 : 112, off, n;

	memset(h, 0, m->cs);
	put_be32(h, 0x514649fb);
	put_be32(h + 4, m->version);
	put_be32(h + 20, m->cb);
	put_be64(h + 24, m->size);
	put_be32(h + 36, m->l1_size);
	put_be64(h + 40, m->l1_off);
	put_be64(h + 48, m->cs);
	put_be32(h + 56, 1);
	if (m->version == 3) {
		put_be64(h + 72, m->incompat | (m->ctype ? 8 : 0));
		put_be32(h + 96, 4);
		put_be32(h + 100, hlen);
		h[104] = (uint8_t)m->ctype;
	}
	off = hlen;
	if (m->backing_fmt) {
		n = (uint32_t)strlen(m->backing_fmt);
		put_be32(h + off, 0xe2792aca);
		put_be32(h + off + 4, n);
		memcpy(h + off + 8, m->backing_fmt, n);
		off += 8 + ((n + 7) & ~7u);
	}
	if (m->feature_name) {
		put_be32(h + off, 0x6803f857);
		put_be32(h + off + 4, 48);
		h[off + 8] = 0;
		h[off + 9] = 7;
		strncpy((char *)h + off + 10, m->feature_name, 46);
		off += 8 + 48;
	}
	off += 8;	/* the end of the extensions */
	if (m->backing) {
		n = (uint32_t)strlen(m->backing);
		put_be64(h + 8, off);
		put_be32(h + 16, n);
		memcpy(h + off, m->backing, n);
	}
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static char *tmp_path(const char *name)
{
	static char paths[8][256];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
	return p;
}

static void img_save(struct img *m, const char *name)
{
	img_finish(m);
	write_file(tmp_path(name), m->buf, m->len);
}

/* A refusal says why in one line. */
static void one_line(const char *err)
{
	ck_assert_msg(err[0], "refused without a reason");
	ck_assert_msg(!strchr(err, '\n'), "a message of more than one line: %s", err);
}

/* Opens path: 0 and *q, or the error (fd closed again). */
static int open_path(const char *path, struct qcow2 **q, int *fd, char *err, size_t errlen)
{
	int ret;

	*fd = open(path, O_RDONLY);
	ck_assert_int_ge(*fd, 0);
	ret = qcow2_open(*fd, path, q, err, errlen);
	if (ret) {
		one_line(err);
		ck_assert_ptr_null(*q);
		close(*fd);
	}
	return ret;
}

static void close_img(struct qcow2 *q, int fd)
{
	qcow2_close(q);
	close(fd);
}

/*
 * Reads all of q and walks its map: 0 and the bytes in *out (caller frees),
 * or the first error. Checks the map's runs tile the image and its zero runs
 * read as zeros.
 */
static int read_all(struct qcow2 *q, uint8_t **out, char *err, size_t errlen)
{
	uint64_t size = qcow2_size(q), off, len;
	uint8_t *buf = malloc(size + 1);
	bool data;
	int ret;

	ck_assert_ptr_nonnull(buf);
	ret = qcow2_read(q, buf, size, 0, err, errlen);
	for (off = 0; !ret && off < size; off += len) {
		ret = qcow2_map(q, off, &len, &data, err, errlen);
		if (ret)
			break;
		ck_assert_uint_gt(len, 0);
		ck_assert_uint_le(len, size - off);
		if (!data && len && (buf[off] || memcmp(buf + off, buf + off + 1, len - 1)))
			ck_abort_msg("zero run %llu+%llu holds data", (unsigned long long)off, (unsigned long long)len);
	}
	if (ret) {
		one_line(err);
		free(buf);
		return ret;
	}
	*out = buf;
	return 0;
}

/* q reads as want (size bytes), whole and in odd pieces. */
static void check_reads(struct qcow2 *q, const uint8_t *want, uint64_t size)
{
	uint8_t *got, piece[1000];
	char err[256];

	ck_assert_uint_eq(qcow2_size(q), size);
	ck_assert_int_eq(read_all(q, &got, err, sizeof(err)), 0);
	if (memcmp(got, want, size)) {
		uint64_t i = 0;

		while (got[i] == want[i])
			i++;
		ck_abort_msg("byte %llu: %u, not %u", (unsigned long long)i, got[i], want[i]);
	}
	free(got);
	for (uint64_t off = 0; off < size; off += 997) {
		uint64_t n = size - off < sizeof(piece) ? size - off : sizeof(piece);

		ck_assert_int_eq(qcow2_read(q, piece, n, off, err, sizeof(err)), 0);
		ck_assert(memcmp(piece, want + off, n) == 0);
	}
}

/* The map from off: its first run. */
static void check_run(struct qcow2 *q, uint64_t off, uint64_t want_len, bool want_data)
{
	uint64_t len;
	bool data;
	char err[256];

	ck_assert_int_eq(qcow2_map(q, off, &len, &data, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, want_len);
	ck_assert_int_eq(data, want_data);
}

/* Every kind of cluster in one image (version 3 unless v2: no zero clusters there). */
static void every_kind(struct img *m, unsigned version, unsigned cb, unsigned ctype)
{
	uint64_t cs = UINT64_C(1) << cb;

	img_init(m, version, cb, 12 * cs + 512);
	m->ctype = ctype;
	img_data(m, 0, 1);
	img_data(m, cs, 2);		/* contiguous with cluster 0 in the file */
	img_compressed(m, 3 * cs, 3);
	img_compressed(m, 4 * cs, 4);	/* packed right after the one before */
	img_data(m, 6 * cs, 5);
	if (version == 3) {
		img_data(m, 7 * cs, 6);
		img_zero(m, 7 * cs, true);	/* preallocated zeros: the old data must not show */
		img_zero(m, 8 * cs, false);
	}
	img_data(m, 12 * cs, 7);	/* the last cluster, one sector of it in the image */
}

/* An image of every kind of cluster, saved as name, opened and read whole and in pieces. */
static struct qcow2 *open_every_kind(struct img *m, unsigned version, unsigned cb, unsigned ctype,
				     const char *name, int *fd)
{
	struct qcow2 *q;
	char err[256];

	every_kind(m, version, cb, ctype);
	img_save(m, name);
	ck_assert_int_eq(open_path(tmp_path(name), &q, fd, err, sizeof(err)), 0);
	ck_assert_uint_eq(qcow2_chain_length(q), 1);
	check_reads(q, m->guest, m->size);
	return q;
}

START_TEST(kinds_v3)
{
	struct img m;
	struct qcow2 *q;
	int fd;

	q = open_every_kind(&m, 3, 16, 0, "v3.qcow2", &fd);
	check_run(q, 0, 2 << 16, true);
	check_run(q, 2 << 16, 1 << 16, false);
	check_run(q, 3 << 16, 2 << 16, true);
	check_run(q, 5 << 16, 1 << 16, false);
	check_run(q, 6 << 16, 1 << 16, true);
	check_run(q, 7 << 16, 5 << 16, false);	/* zero, zero, unallocated */
	check_run(q, (7 << 16) + 100, (5 << 16) - 100, false);
	check_run(q, 12 << 16, 512, true);
	close_img(q, fd);
	img_free(&m);
}
END_TEST

/* zstd, version 2; and every cluster size, 512 B to 2 MiB (deflate and zstd by turns). */
START_TEST(kinds)
{
	static const struct { unsigned version, cb, ctype; } c[] = { { 3, 12, 1 }, { 2, 9, 0 } };
	unsigned version = _i < 2 ? c[_i].version : 3, cb = _i < 2 ? c[_i].cb : 9 + (unsigned)_i - 2;
	unsigned ctype = _i < 2 ? c[_i].ctype : (unsigned)_i % 2;
	struct qcow2 *q;
	struct img m;
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "v%u-cb%u-%s.qcow2", version, cb, ctype ? "zstd" : "deflate");
	q = open_every_kind(&m, version, cb, ctype, name, &fd);
	close_img(q, fd);
	img_free(&m);
}
END_TEST

/* The guest bytes a chain reads: layer i's own, else layer i + 1's, past a layer's end zeros. */
static uint8_t chain_byte(struct img **layers, unsigned n, const uint8_t *raw, uint64_t raw_size, uint64_t i)
{
	for (unsigned l = 0; l < n; l++) {
		if (i >= layers[l]->size)
			return 0;
		switch (layers[l]->state[i >> layers[l]->cb]) {
		case CL_DATA:
			return layers[l]->guest[i];
		case CL_ZERO:
			return 0;
		default:
			break;
		}
	}
	return raw && i < raw_size ? raw[i] : 0;
}

START_TEST(backing_chain)
{
	struct img top, mid, *layers[2] = { &top, &mid };
	uint64_t raw_size = 300000, len;
	uint8_t *raw = calloc(1, raw_size), *want;
	struct qcow2 *q;
	char err[256], sub[300];
	bool data;
	int fd;

	ck_assert_ptr_nonnull(raw);
	/* a raw base, shorter than the rest, with a hole (where the filesystem keeps holes) */
	for (uint64_t i = 0; i < 100000; i++)
		raw[i] = (uint8_t)(i * 13 + 5);
	for (uint64_t i = 200000; i < raw_size; i++)
		raw[i] = (uint8_t)(i * 3 + 1);
	fd = open(tmp_path("base.raw"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, raw, 100000, 0), 100000);
	ck_assert_int_eq(pwrite(fd, raw + 200000, raw_size - 200000, 200000), (ssize_t)(raw_size - 200000));
	close(fd);
	/* mid: version 2, 512-byte clusters, in a subdirectory; its base named without a format */
	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	img_init(&mid, 2, 9, 400384);
	img_data(&mid, 512, 1);
	img_compressed(&mid, 150000, 2);
	img_data(&mid, 399872, 3);
	mid.backing = "../base.raw";
	img_save(&mid, "sub/mid.qcow2");
	/* top: version 3, 4 KiB clusters, larger; zero clusters over data below */
	img_init(&top, 3, 12, 1 << 20);
	img_data(&top, 8192, 4);
	img_zero(&top, 0, false);
	img_zero(&top, 204800, false);
	img_compressed(&top, 500000, 5);
	top.backing = "sub/mid.qcow2";
	top.backing_fmt = "qcow2";
	img_save(&top, "top.qcow2");

	want = malloc(top.size);
	ck_assert_ptr_nonnull(want);
	for (uint64_t i = 0; i < top.size; i++)
		want[i] = chain_byte(layers, 2, raw, raw_size, i);
	ck_assert_int_eq(open_path(tmp_path("top.qcow2"), &q, &fd, err, sizeof(err)), 0);
	ck_assert_uint_eq(qcow2_chain_length(q), 3);
	check_reads(q, want, top.size);
	check_run(q, 0, 4096, false);		/* a zero cluster over the raw base's data */
	ck_assert_int_eq(qcow2_map(q, 4096, &len, &data, err, sizeof(err)), 0);
	ck_assert(data);			/* mid's data, then the raw base's */
	ck_assert_uint_ge(len, 100000 - 4096);
	ck_assert_uint_le(len, 200704);
	check_run(q, 399872, 512, true);	/* mid's last cluster */
	ck_assert_int_eq(qcow2_map(q, 401408, &len, &data, err, sizeof(err)), 0);
	ck_assert(!data);			/* past the ends of mid and base */
	ck_assert_uint_eq(len, 499712 - 401408);
	close_img(q, fd);

	/* the same, the base given its format, the middle with none (probed by its magic) */
	top.backing_fmt = NULL;
	mid.backing_fmt = "raw";
	img_save(&mid, "sub/mid.qcow2");
	img_save(&top, "top.qcow2");
	ck_assert_int_eq(open_path(tmp_path("top.qcow2"), &q, &fd, err, sizeof(err)), 0);
	check_reads(q, want, top.size);
	close_img(q, fd);

	/* opened by a relative path: names resolve from the image's directory, not the cwd */
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(open_path("top.qcow2", &q, &fd, err, sizeof(err)), 0);
	check_reads(q, want, top.size);
	close_img(q, fd);
	ck_assert_int_eq(chdir(sub), 0);
	ck_assert_int_eq(open_path("../top.qcow2", &q, &fd, err, sizeof(err)), 0);
	close_img(q, fd);
	img_free(&top);
	img_free(&mid);
	free(want);
	free(raw);
}
END_TEST

/* A chain of n qcow2 files chainN.qcow2 -> chainN-1 ... -> chain1.qcow2. */
static void make_chain(unsigned n)
{
	char name[32], backing[32];
	struct img m;

	for (unsigned i = 1; i <= n; i++) {
		img_init(&m, 3, 9, 4096);
		img_data(&m, (i % 8) * 512, i);
		snprintf(name, sizeof(name), "chain%u.qcow2", i);
		snprintf(backing, sizeof(backing), "chain%u.qcow2", i - 1);
		m.backing = i > 1 ? backing : NULL;
		img_save(&m, name);
		img_free(&m);
	}
}

/* m with backing file name backing (and format fmt), saved as name: opening it gives ret, saying says. */
static void expect_backing(struct img *m, const char *name, const char *backing, const char *fmt, int ret,
			   const char *says)
{
	struct qcow2 *q;
	char err[256];
	int fd;

	m->backing = backing;
	m->backing_fmt = fmt;
	img_save(m, name);
	ck_assert_int_eq(open_path(tmp_path(name), &q, &fd, err, sizeof(err)), ret);
	if (!ret) {
		close_img(q, fd);
		return;
	}
	ck_assert_msg(strstr(err, says), "'%s' does not say '%s'", err, says);
}

START_TEST(backing_limits)
{
	struct qcow2 *q;
	char err[256], path[300];
	struct img m;
	int fd;

	make_chain(QCOW2_MAX_CHAIN + 1);
	ck_assert_int_eq(open_path(tmp_path("chain16.qcow2"), &q, &fd, err, sizeof(err)), 0);
	ck_assert_uint_eq(qcow2_chain_length(q), QCOW2_MAX_CHAIN);
	close_img(q, fd);
	ck_assert_int_eq(open_path(tmp_path("chain17.qcow2"), &q, &fd, err, sizeof(err)), -ELOOP);
	ck_assert_ptr_nonnull(strstr(err, "16 files"));

	/* loops: itself; two files backing each other; a link to a file in the chain is that file */
	img_init(&m, 3, 9, 4096);
	expect_backing(&m, "self.qcow2", "self.qcow2", NULL, -ELOOP, "a loop");
	expect_backing(&m, "ping.qcow2", "pong.qcow2", NULL, -ENOENT, "pong.qcow2");
	expect_backing(&m, "pong.qcow2", "ping.qcow2", NULL, -ELOOP, "a loop");
	ck_assert_int_eq(link(tmp_path("ping.qcow2"), tmp_path("ping-link.qcow2")), 0);
	expect_backing(&m, "pong.qcow2", "ping-link.qcow2", NULL, -ELOOP, "a loop");
	ck_assert_int_eq(open_path(tmp_path("ping.qcow2"), &q, &fd, err, sizeof(err)), -ELOOP);

	/* missing, a protocol, a format not supported, a FIFO (never opened: it would block), a directory */
	expect_backing(&m, "b.qcow2", "nowhere.qcow2", NULL, -ENOENT, "nowhere.qcow2");
	expect_backing(&m, "b.qcow2", "nbd://localhost/disk", NULL, -ENOTSUP, "protocol");
	expect_backing(&m, "b.qcow2", "chain1.qcow2", "vmdk", -ENOTSUP, "'vmdk'");
	expect_backing(&m, "b.qcow2", "chain1.qcow2", "qcow2", 0, NULL);
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	expect_backing(&m, "b.qcow2", "fifo", NULL, -EINVAL, "not a regular file");
	snprintf(path, sizeof(path), "%s/sub2", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	expect_backing(&m, "b.qcow2", "sub2", NULL, -EINVAL, "not a regular file");
	/* a backing file that is itself damaged: refused, and named */
	write_file(tmp_path("junk"), "QFI\xfb\0\0\0\x07", 8);
	expect_backing(&m, "b.qcow2", "junk", NULL, -ENOTSUP, "backing file");
	expect_backing(&m, "b.qcow2", "junk", NULL, -ENOTSUP, "version 7");
	img_free(&m);
}
END_TEST

/* Damage to a small image of every kind of cluster, and what it must give. */
struct damage {
	const char *name;
	void (*make)(struct img *m);
	int ret;
	const char *says;
	bool at_read;			/* open succeeds, reading fails */
	bool zstd_only;			/* deflate takes it (as qemu's does) */
};

static uint8_t *hdr(struct img *m)
{
	img_finish(m);
	return m->buf;
}

static void d_magic(struct img *m) { hdr(m)[3] = 0xfc; }
static void d_version1(struct img *m) { put_be32(hdr(m) + 4, 1); }
static void d_version4(struct img *m) { put_be32(hdr(m) + 4, 4); }
static void d_cb8(struct img *m) { put_be32(hdr(m) + 20, 8); }
static void d_cb22(struct img *m) { put_be32(hdr(m) + 20, 22); }
static void d_hlen(struct img *m) { put_be32(hdr(m) + 100, 96); }
static void d_hlen_big(struct img *m) { put_be32(hdr(m) + 100, (uint32_t)m->cs + 8); }
static void d_aes(struct img *m) { put_be32(hdr(m) + 32, 1); }
static void d_luks(struct img *m) { put_be32(hdr(m) + 32, 2); }
static void d_corrupt(struct img *m) { m->incompat = 2; img_finish(m); }
static void d_data_file(struct img *m) { m->incompat = 4; img_finish(m); }
static void d_ext_l2(struct img *m) { m->incompat = 16; img_finish(m); }
static void d_unknown(struct img *m)
{
	m->incompat = 1u << 7;
	m->feature_name = "frobnicate\nnow";
	img_finish(m);
}
static void d_unknown_unnamed(struct img *m) { m->incompat = UINT64_C(1) << 63; img_finish(m); }
static uint8_t *zstd_hdr(struct img *m) { m->ctype = 1; return hdr(m); }
static void d_ctype_no_bit(struct img *m) { put_be64(zstd_hdr(m) + 72, 0); }
static void d_bit_no_ctype(struct img *m) { zstd_hdr(m)[104] = 0; }
static void d_ctype_2(struct img *m) { zstd_hdr(m)[104] = 2; }
static void d_ctype_v3_short(struct img *m) { put_be32(zstd_hdr(m) + 100, 104); }	/* the type is absent */
static void d_refcount_order(struct img *m) { put_be32(hdr(m) + 96, 7); }
static void d_size(struct img *m) { put_be64(hdr(m) + 24, QCOW2_MAX_SIZE + 512); }
static void d_l1_small(struct img *m) { put_be64(hdr(m) + 24, m->size << 10); }
static void d_l1_huge(struct img *m) { put_be32(hdr(m) + 36, (32u << 20) / 8 + 1); }
static void d_l1_unaligned(struct img *m) { put_be64(hdr(m) + 40, m->l1_off + 8); }
static void d_l1_zero(struct img *m) { put_be64(hdr(m) + 40, 0); }
static void d_l1_past(struct img *m) { put_be64(hdr(m) + 40, m->len + m->cs); }
static void d_l1_refcount(struct img *m) { put_be64(hdr(m) + 40, m->cs); }
static void d_rt_empty(struct img *m) { put_be32(hdr(m) + 56, 0); }
static void d_rt_unaligned(struct img *m) { put_be64(hdr(m) + 48, m->cs + 512); }
static void d_rt_huge(struct img *m) { put_be32(hdr(m) + 56, (8u << 20) / (uint32_t)m->cs + 1); }
static void d_rt_wrap(struct img *m) { put_be64(hdr(m) + 48, UINT64_MAX & ~(m->cs - 1)); }
static void d_ext_long(struct img *m)
{
	m->backing_fmt = "raw";
	m->backing = "x";
	put_be32(hdr(m) + 116, 4000);
}
static void d_backing_long(struct img *m) { m->backing = "x"; put_be32(hdr(m) + 16, 1024); }
static void d_backing_off(struct img *m) { m->backing = "x"; put_be64(hdr(m) + 8, m->cs + 1); }
static void d_backing_nul(struct img *m) { m->backing = "ab"; hdr(m)[121] = 0; }
static void d_backing_in_header(struct img *m) { m->backing = "x"; put_be64(hdr(m) + 8, 40); }
static void d_dirty(struct img *m) { m->incompat = 1; img_finish(m); }

static uint8_t *l1e(struct img *m) { return m->buf + m->l1_off; }
static uint8_t *l2e(struct img *m, unsigned index) { return l2_slot(m, (uint64_t)index << m->cb); }

static void d_l2_unaligned(struct img *m) { put_be64(l1e(m), get_be64(l1e(m)) + 512); }
static void d_l2_past(struct img *m) { put_be64(l1e(m), get_be64(l1e(m)) + (UINT64_C(1) << 40)); }
static void d_l2_on_l1(struct img *m) { put_be64(l1e(m), m->l1_off); }
static void d_l2_on_rt(struct img *m) { put_be64(l1e(m), m->cs); }
static void d_data_unaligned(struct img *m) { put_be64(l2e(m, 0), get_be64(l2e(m, 0)) + 512); }
static void d_data_past(struct img *m) { put_be64(l2e(m, 0), (m->len + m->cs) & ~(m->cs - 1)); }
static void d_data_on_l1(struct img *m) { put_be64(l2e(m, 1), m->l1_off); }
static void d_data_on_rt(struct img *m) { put_be64(l2e(m, 6), m->cs); }
static void d_zero_unaligned(struct img *m) { put_be64(l2e(m, 7), get_be64(l2e(m, 7)) + 512); }
static void d_comp_past(struct img *m) { put_be64(l2e(m, 3), compressed_entry(m, m->len + 10, 100)); }
static void d_comp_header(struct img *m) { put_be64(l2e(m, 3), compressed_entry(m, 100, 100)); }
static void d_comp_on_l1(struct img *m) { put_be64(l2e(m, 3), compressed_entry(m, m->l1_off + 4, 100)); }
static void d_comp_garbage(struct img *m)
{
	uint64_t e = get_be64(l2e(m, 3));

	memset(m->buf + (e & ((UINT64_C(1) << (62 - (m->cb - 8))) - 1)), 0xff, 16);
}
/* a deflate stream of half a cluster: it ends short */
static void d_comp_short(struct img *m)
{
	uint8_t src[256] = { 0 }, dst[512];
	uint64_t off = m->len;
	size_t n = compress_cluster(m, src, m->cs / 2 < sizeof(src) ? m->cs / 2 : sizeof(src), dst, sizeof(dst));

	grow(m, off + n);
	memcpy(m->buf + off, dst, n);
	put_be64(l2e(m, 4), compressed_entry(m, off, n));
}
/* one frame of two clusters' bytes: longer than a cluster */
static void d_comp_long(struct img *m)
{
	uint8_t *src = calloc(1, 2 * m->cs), dst[1024];
	uint64_t off = m->len;
	size_t n = compress_cluster(m, src, 2 * m->cs, dst, sizeof(dst));

	grow(m, off + n);
	memcpy(m->buf + off, dst, n);
	put_be64(l2e(m, 4), compressed_entry(m, off, n));
	free(src);
}
/* a compressed cluster 8 bytes before a sector's end, its descriptor giving it that sector only */
static void d_comp_cut(struct img *m)
{
	uint8_t *src = malloc(m->cs), dst[4096];
	uint64_t off = ((m->len + 511) & ~UINT64_C(511)) + 504;
	size_t n;

	ck_assert_ptr_nonnull(src);
	pattern(src, m->cs, 3);
	n = compress_cluster(m, src, m->cs, dst, sizeof(dst));
	ck_assert_uint_gt(n, 8);
	grow(m, off + n);
	memcpy(m->buf + off, dst, n);
	put_be64(l2e(m, 3), compressed_entry(m, off, 8));
	free(src);
}
static void d_zero_v2(struct img *m) { put_be64(l2e(m, 6), get_be64(l2e(m, 6)) | 1); }
static void d_truncated(struct img *m) { img_finish(m); m->len = 50; }

static void v2(struct img *m);

static const struct damage damages[] = {
	{ "magic", d_magic, -EINVAL, "not a qcow2 image", false, false },
	{ "version 1", d_version1, -ENOTSUP, "version 1", false, false },
	{ "version 4", d_version4, -ENOTSUP, "version 4", false, false },
	{ "cluster_bits 8", d_cb8, -EUCLEAN, "cluster_bits 8", false, false },
	{ "cluster_bits 22", d_cb22, -EUCLEAN, "cluster_bits 22", false, false },
	{ "header length", d_hlen, -EUCLEAN, "header length 96", false, false },
	{ "header length past the cluster", d_hlen_big, -EUCLEAN, "header length", false, false },
	{ "AES", d_aes, -ENOTSUP, "encrypted (AES)", false, false },
	{ "LUKS", d_luks, -ENOTSUP, "encrypted (LUKS)", false, false },
	{ "corrupt bit", d_corrupt, -EUCLEAN, "marked corrupt", false, false },
	{ "external data file", d_data_file, -ENOTSUP, "external data file", false, false },
	{ "extended L2", d_ext_l2, -ENOTSUP, "extended L2", false, false },
	{ "unknown feature", d_unknown, -ENOTSUP, "bit 7 ('frobnicate?now')", false, false },
	{ "unknown feature, unnamed", d_unknown_unnamed, -ENOTSUP, "feature bit 63", false, false },
	{ "compression type without its bit", d_ctype_no_bit, -EUCLEAN, "compression type 1 without", false, false },
	{ "compression bit without a type", d_bit_no_ctype, -EUCLEAN, "compression type 0 with", false, false },
	{ "compression type 2", d_ctype_2, -ENOTSUP, "compression type 2", false, false },
	{ "compression bit, no type field", d_ctype_v3_short, -EUCLEAN, "compression type 0 with", false, false },
	{ "refcount order", d_refcount_order, -EUCLEAN, "refcount order 7", false, false },
	{ "virtual size", d_size, -EFBIG, "1 PiB", false, false },
	{ "L1 too small", d_l1_small, -EUCLEAN, "needs", false, false },
	{ "L1 too large", d_l1_huge, -EUCLEAN, "more than the 4194304", false, false },
	{ "L1 unaligned", d_l1_unaligned, -EUCLEAN, "not cluster-aligned", false, false },
	{ "L1 in the header", d_l1_zero, -EUCLEAN, "overlaps the header", false, false },
	{ "L1 past the end", d_l1_past, -EUCLEAN, "L1 table at", false, false },
	{ "L1 on the refcount table", d_l1_refcount, -EUCLEAN, "overlaps the refcount table", false, false },
	{ "refcount table empty", d_rt_empty, -EUCLEAN, "empty", false, false },
	{ "refcount table unaligned", d_rt_unaligned, -EUCLEAN, "refcount table", false, false },
	{ "refcount table too large", d_rt_huge, -EUCLEAN, "too large", false, false },
	{ "refcount table at the end of 64 bits", d_rt_wrap, -EUCLEAN, "refcount table", false, false },
	{ "header extension too long", d_ext_long, -EUCLEAN, "header extension 0xe2792aca", false, false },
	{ "backing name too long", d_backing_long, -EUCLEAN, "too long", false, false },
	{ "backing name past the first cluster", d_backing_off, -EUCLEAN, "past the first cluster", false, false },
	{ "backing name with a NUL", d_backing_nul, -EUCLEAN, "NUL", false, false },
	{ "backing name in the header", d_backing_in_header, -EUCLEAN, "overlaps the header", false, false },
	{ "truncated header", d_truncated, -EUCLEAN, "truncated", false, false },
	{ "L2 unaligned", d_l2_unaligned, -EUCLEAN, "L2 table offset not cluster-aligned", false, false },
	{ "L2 past the end", d_l2_past, -EUCLEAN, "past the end of the file", false, false },
	{ "L2 on the L1", d_l2_on_l1, -EUCLEAN, "overlaps the L1 table", false, false },
	{ "L2 on the refcount table", d_l2_on_rt, -EUCLEAN, "overlaps the refcount table", false, false },
	{ "data unaligned", d_data_unaligned, -EUCLEAN, "not cluster-aligned", true, false },
	{ "data past the end", d_data_past, -EUCLEAN, "data cluster at", true, false },
	{ "data on the L1", d_data_on_l1, -EUCLEAN, "overlaps the L1 table", true, false },
	{ "data on the refcount table", d_data_on_rt, -EUCLEAN, "overlaps the refcount table", true, false },
	{ "zero cluster unaligned", d_zero_unaligned, -EUCLEAN, "not cluster-aligned", true, false },
	{ "compressed past the end", d_comp_past, -EUCLEAN, "compressed cluster at", true, false },
	{ "compressed in the header", d_comp_header, -EUCLEAN, "overlaps the header", true, false },
	{ "compressed on the L1", d_comp_on_l1, -EUCLEAN, "overlaps the L1 table", true, false },
	{ "compressed garbage", d_comp_garbage, -EUCLEAN, "compressed cluster at", true, false },
	{ "compressed short", d_comp_short, -EUCLEAN, "decompresses to 256 bytes", true, false },
	/* a deflate stream may go on past a full cluster, as qemu allows; a zstd frame may not */
	{ "compressed too long", d_comp_long, -EUCLEAN, "zstd frame longer than a cluster", true, true },
	{ "compressed cut short", d_comp_cut, -EUCLEAN, "compressed cluster at", true, false },
	{ "zero flag in version 2", v2, -EUCLEAN, "zero flag in a version 2 image", true, false },
};

static void v2(struct img *m) { (void)m; }	/* made by the test: a version 2 image */

START_TEST(refusals)
{
	const struct damage *d = &damages[_i];
	struct img m;
	struct qcow2 *q;
	uint8_t *got;
	char err[256] = "";
	int fd, ret;

	for (unsigned ctype = d->zstd_only; ctype < 2; ctype++) {
		if (d->make == v2) {
			if (ctype)
				continue;
			every_kind(&m, 2, 12, 0);
			img_finish(&m);
			d_zero_v2(&m);
		} else {
			every_kind(&m, 3, 12, ctype);
			img_finish(&m);
			d->make(&m);
		}
		write_file(tmp_path("bad.qcow2"), m.buf, m.len);
		ret = open_path(tmp_path("bad.qcow2"), &q, &fd, err, sizeof(err));
		if (!ret) {
			ck_assert_msg(d->at_read, "%s: opened", d->name);
			ret = read_all(q, &got, err, sizeof(err));
			close_img(q, fd);
		} else {
			ck_assert_msg(!d->at_read, "%s: refused at open: %s", d->name, err);
		}
		ck_assert_msg(ret == d->ret, "%s: %d, not %d (%s)", d->name, ret, d->ret, err);
		ck_assert_msg(strstr(err, d->says), "%s: '%s' does not say '%s'", d->name, err, d->says);
		ck_assert_msg(strstr(err, "bad.qcow2"), "%s: '%s' does not name the file", d->name, err);
		img_free(&m);
	}
}
END_TEST

/* What is only odd, not damaged, reads: the dirty bit; L1 entries sharing an L2 table. */
START_TEST(accepted)
{
	struct img m;
	struct qcow2 *q;
	char err[256];
	int fd;

	every_kind(&m, 3, 12, 0);
	d_dirty(&m);
	img_save(&m, "dirty.qcow2");
	ck_assert_int_eq(open_path(tmp_path("dirty.qcow2"), &q, &fd, err, sizeof(err)), 0);
	check_reads(q, m.guest, m.size);
	close_img(q, fd);
	img_free(&m);

	/* 3 L1 entries (of 512 clusters each), one L2 table: the same data three times */
	img_init(&m, 3, 12, 3 * 512 * 4096);
	img_data(&m, 4096, 1);
	put_be64(m.buf + m.l1_off + 8, get_be64(m.buf + m.l1_off));
	put_be64(m.buf + m.l1_off + 16, get_be64(m.buf + m.l1_off));
	memcpy(m.guest + 512 * 4096 + 4096, m.guest + 4096, 4096);
	memcpy(m.guest + 1024 * 4096 + 4096, m.guest + 4096, 4096);
	img_save(&m, "shared.qcow2");
	ck_assert_int_eq(open_path(tmp_path("shared.qcow2"), &q, &fd, err, sizeof(err)), 0);
	check_reads(q, m.guest, m.size);
	close_img(q, fd);
	img_free(&m);
}
END_TEST

START_TEST(bounds)
{
	struct img m;
	struct qcow2 *q;
	uint8_t b[16];
	uint64_t len;
	bool data;
	char err[256];
	int fd;

	every_kind(&m, 3, 12, 0);
	img_save(&m, "bounds.qcow2");
	ck_assert_int_eq(open_path(tmp_path("bounds.qcow2"), &q, &fd, err, sizeof(err)), 0);
	ck_assert_int_eq(qcow2_read(q, b, 0, m.size, err, sizeof(err)), 0);
	ck_assert_int_eq(qcow2_read(q, b, 1, m.size, err, sizeof(err)), -EINVAL);
	one_line(err);
	ck_assert_int_eq(qcow2_read(q, b, 16, UINT64_MAX - 8, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(qcow2_map(q, m.size, &len, &data, err, sizeof(err)), -EINVAL);
	one_line(err);
	close_img(q, fd);
	qcow2_close(NULL);
	ck_assert(qcow2_probe("QFI\xfb", 4));
	ck_assert(!qcow2_probe("QFI", 3));
	ck_assert(!qcow2_probe("QFI\xfa", 4));
	/* an image of size 0 has no L1 table to read */
	img_free(&m);
	img_init(&m, 3, 16, 0);
	img_save(&m, "empty.qcow2");
	ck_assert_int_eq(open_path(tmp_path("empty.qcow2"), &q, &fd, err, sizeof(err)), 0);
	ck_assert_uint_eq(qcow2_size(q), 0);
	ck_assert_int_eq(qcow2_read(q, b, 0, 0, err, sizeof(err)), 0);
	close_img(q, fd);
	/* a size not a multiple of 512 is cut to whole sectors, as qemu does */
	img_free(&m);
	img_init(&m, 3, 9, 1000);
	img_save(&m, "odd.qcow2");
	ck_assert_int_eq(open_path(tmp_path("odd.qcow2"), &q, &fd, err, sizeof(err)), 0);
	ck_assert_uint_eq(qcow2_size(q), 512);
	close_img(q, fd);
	img_free(&m);
}
END_TEST

/*
 * One qcow2_map does bounded work: 1 PiB of nothing maps in one call (the
 * L1 entries are few), but 64 GiB of L2 tables of unallocated entries (all
 * the L1 entries point at one table) take several calls, each short of the
 * end. And a data cluster at the start of that table shows at every L1 entry.
 */
START_TEST(map_bounded)
{
	uint64_t size, off, len, calls, l2;
	struct qcow2 *q;
	struct img m;
	bool data;
	char err[256];
	int fd;

	img_init(&m, 3, 21, QCOW2_MAX_SIZE);
	img_save(&m, "pib.qcow2");
	ck_assert_int_eq(open_path(tmp_path("pib.qcow2"), &q, &fd, err, sizeof(err)), 0);
	check_run(q, 0, QCOW2_MAX_SIZE, false);
	check_run(q, 12345 * 512, QCOW2_MAX_SIZE - 12345 * 512, false);
	close_img(q, fd);
	img_free(&m);

	size = UINT64_C(64) << 30;
	img_init(&m, 3, 16, 0);
	m.size = size;
	m.l1_size = (uint32_t)(size >> 29);
	grow(&m, m.l1_off + m.l1_size * 8);
	l2 = alloc_clusters(&m, 1);
	for (uint32_t i = 0; i < m.l1_size; i++)
		put_be64(m.buf + m.l1_off + i * 8, l2);
	img_save(&m, "wide.qcow2");
	ck_assert_int_eq(open_path(tmp_path("wide.qcow2"), &q, &fd, err, sizeof(err)), 0);
	for (off = 0, calls = 0; off < size; off += len, calls++) {
		ck_assert_int_eq(qcow2_map(q, off, &len, &data, err, sizeof(err)), 0);
		ck_assert(!data);
		ck_assert_uint_gt(len, 0);
	}
	ck_assert_uint_gt(calls, 1);
	ck_assert_uint_lt(calls, 100);
	close_img(q, fd);

	put_be64(m.buf + l2, alloc_clusters(&m, 1));
	img_save(&m, "wide.qcow2");
	ck_assert_int_eq(open_path(tmp_path("wide.qcow2"), &q, &fd, err, sizeof(err)), 0);
	check_run(q, 0, 1 << 16, true);
	check_run(q, 1 << 16, (1 << 29) - (1 << 16), false);
	check_run(q, 1 << 29, 1 << 16, true);
	close_img(q, fd);
	img_free(&m);
}
END_TEST

/* Opens, reads and maps the len bytes at image through a memfd; whatever they are, no crash. */
static void try_bytes(int mfd, const uint8_t *image, size_t len)
{
	struct qcow2 *q;
	uint8_t *got;
	char err[256];

	ck_assert_int_eq(ftruncate(mfd, 0), 0);
	ck_assert_int_eq(pwrite(mfd, image, len, 0), (ssize_t)len);
	/* a backing file name from the damage resolves under a directory that does not exist */
	if (qcow2_open(mfd, "/nonexistent-vmfs-test/flip.qcow2", &q, err, sizeof(err))) {
		one_line(err);
		return;
	}
	if (qcow2_size(q) <= (1u << 20)) {
		if (!read_all(q, &got, err, sizeof(err)))
			free(got);
	} else {
		got = malloc(1 << 16);
		ck_assert_ptr_nonnull(got);
		if (qcow2_read(q, got, 1 << 16, 0, err, sizeof(err)))
			one_line(err);
		free(got);
	}
	qcow2_close(q);
}

/* Every byte of small images flipped three ways, and every length of them. */
START_TEST(flips)
{
	static const uint8_t xors[] = { 0xff, 0x01, 0x80 };
	int mfd = memfd_create("qcow2-flip", MFD_CLOEXEC);
	struct img m;
	uint8_t *copy;

	ck_assert_int_ge(mfd, 0);
	every_kind(&m, _i == 2 ? 2 : 3, 9, _i == 1);
	img_finish(&m);
	copy = malloc(m.len);
	ck_assert_ptr_nonnull(copy);
	for (size_t i = 0; i < m.len; i++) {
		for (unsigned f = 0; f < sizeof(xors); f++) {
			memcpy(copy, m.buf, m.len);
			copy[i] ^= xors[f];
			try_bytes(mfd, copy, m.len);
		}
	}
	for (size_t len = 0; len < m.len; len++)
		try_bytes(mfd, m.buf, len);
	free(copy);
	close(mfd);
	img_free(&m);
}
END_TEST

static Suite *qcow2_suite(void)
{
	Suite *s = suite_create("qcow2");
	TCase *tc = tcase_create("reads");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, kinds_v3);
	tcase_add_loop_test(tc, kinds, 0, 2 + 13);
	tcase_add_test(tc, accepted);
	tcase_add_test(tc, bounds);
	tcase_add_test(tc, map_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("chains");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, backing_chain);
	tcase_add_test(tc, backing_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, refusals, 0, (int)(sizeof(damages) / sizeof(damages[0])));
	tcase_add_loop_test(tc, flips, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

/* Removes tmpdir and what the tests left in it (files, and the directories one level down). */
static void remove_tmpdir(void)
{
	char path[512], sub[768];
	struct dirent *e, *f;
	DIR *d = opendir(tmpdir), *d2;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		if (unlink(path) && (d2 = opendir(path))) {
			while ((f = readdir(d2)))
				if (f->d_name[0] != '.') {
					snprintf(sub, sizeof(sub), "%s/%s", path, f->d_name);
					unlink(sub);
				}
			closedir(d2);
			rmdir(path);
		}
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!mkdtemp(tmpdir)) {
		perror("test_qcow2: mkdtemp");
		return EXIT_FAILURE;
	}
	sr = srunner_create(qcow2_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (!getenv("QKEEP")) remove_tmpdir(); else printf("kept %s\n", tmpdir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
