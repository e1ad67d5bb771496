/*
 * libFuzzer harness: qcow2 images (tools/vmfsctl_qcow2.c), which vmfsctl
 * import reads from wherever a user found them. Input: the image's bytes, in
 * a memfd opened as DIR/fuzz.qcow2, where DIR (made once, removed at exit)
 * holds two possible backing files: base.raw (raw, 12 KiB with a hole) and
 * base.qcow2 (a qcow2 image written here, backed by base.raw), so that seeds
 * naming them reach chains; any other relative name opens nothing (an
 * absolute one may open a real file, read-only: harmless). A refusal must say
 * why in one line. An image that opens is walked along its map (at most
 * MAP_CALLS runs, each between 1 byte and the end) with reads of at most
 * READ_MAX bytes per run: a zero run must read as zeros at its start and at
 * its end, one read must equal two halves read apart, and an error must say
 * why in one line. Needs no image of ours, so it does not use fuzz_harness.c.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tools/vmfsctl_qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAP_CALLS 64
#define READ_MAX 8192u

static int mfd = -1;
static char dir[] = "/tmp/vmfs-fuzz-qcow2.XXXXXX";
static char path[64], raw_path[64], qcow2_path[64];

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

static void write_file(const char *name, const uint8_t *buf, size_t len, off_t off)
{
	FILE *f = fopen(name, off ? "r+" : "w");

	if (!f || fseeko(f, off, SEEK_SET) || fwrite(buf, 1, len, f) != len || fclose(f))
		abort();
}

static void remove_dir(void)
{
	unlink(raw_path);
	unlink(qcow2_path);
	rmdir(dir);
}

/*
 * base.raw: 4 KiB of data, a hole, 4 KiB of data. base.qcow2: version 3,
 * 512-byte clusters, 16 KiB, backed by base.raw; cluster 0 the header, 1 the
 * refcount table, 2 the L1, 3 the L2, 4 a data cluster for guest cluster 2,
 * 5 the refcount block (qemu-img check finds it clean); guest cluster 3 a
 * zero cluster.
 */
static void make_backing_files(void)
{
	uint8_t b[4096];

	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/fuzz.qcow2", dir);
	snprintf(raw_path, sizeof(raw_path), "%s/base.raw", dir);
	snprintf(qcow2_path, sizeof(qcow2_path), "%s/base.qcow2", dir);
	atexit(remove_dir);
	memset(b, 0xb1, sizeof(b));
	write_file(raw_path, b, 4096, 0);
	write_file(raw_path, b, 4096, 8192);
	memset(b, 0, sizeof(b));
	put_be32(b, 0x514649fb);
	put_be32(b + 4, 3);
	put_be32(b + 20, 9);			/* cluster_bits */
	put_be64(b + 24, 16384);		/* size */
	put_be32(b + 36, 1);			/* L1 entries */
	put_be64(b + 40, 1024);			/* L1 */
	put_be64(b + 48, 512);			/* refcount table */
	put_be32(b + 56, 1);
	put_be32(b + 96, 4);			/* refcount order */
	put_be32(b + 100, 104);			/* header length */
	put_be32(b + 104, 0xe2792aca);		/* backing format: raw */
	put_be32(b + 108, 3);
	memcpy(b + 112, "raw", 3);
	put_be64(b + 8, 128);			/* backing file name, after the end of the extensions */
	put_be32(b + 16, 8);
	memcpy(b + 128, "base.raw", 8);
	put_be64(b + 1024, 1536 | (UINT64_C(1) << 63));
	put_be64(b + 1536 + 2 * 8, 2048 | (UINT64_C(1) << 63));
	put_be64(b + 1536 + 3 * 8, 1);
	memset(b + 2048, 0xc2, 512);
	put_be64(b + 512, 2560);
	for (unsigned i = 0; i < 6; i++)
		b[2560 + 2 * i + 1] = 1;		/* be16 refcount 1 */
	write_file(qcow2_path, b, 6 * 512, 0);
}

/* A refusal says why, in one line. */
static int said(int ret, const char *err)
{
	if (ret && (!err[0] || strchr(err, '\n')))
		abort();
	return ret;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/* Reads n bytes at off whole and in two halves; checks zeros where the map said so. */
static int check_read(struct qcow2 *q, uint64_t off, size_t n, bool zero)
{
	static uint8_t whole[READ_MAX], halves[READ_MAX];
	char err[256] = "";
	size_t h = n / 2;
	int ret;

	ret = said(qcow2_read(q, whole, n, off, err, sizeof(err)), err);
	if (ret)
		return ret;
	if (zero && !all_zero(whole, n))
		abort();	/* the map called data zero */
	if (said(qcow2_read(q, halves, h, off, err, sizeof(err)), err) ||
	    said(qcow2_read(q, halves + h, n - h, off + h, err, sizeof(err)), err))
		abort();	/* read whole, but not in parts */
	if (memcmp(whole, halves, n))
		abort();
	return 0;
}

static void walk(struct qcow2 *q)
{
	uint64_t size = qcow2_size(q), off = 0, len;
	char err[256] = "";
	bool data;
	size_t n;

	if (size > QCOW2_MAX_SIZE || size % 512 || qcow2_chain_length(q) < 1 ||
	    qcow2_chain_length(q) > QCOW2_MAX_CHAIN)
		abort();
	for (unsigned calls = 0; off < size && calls < MAP_CALLS; calls++, off += len) {
		if (said(qcow2_map(q, off, &len, &data, err, sizeof(err)), err))
			return;
		if (!len || len > size - off)
			abort();
		n = len < READ_MAX ? (size_t)len : READ_MAX;
		if (check_read(q, off, n, !data))
			return;
		if (len > n && check_read(q, off + len - n, n, !data))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	struct qcow2 *q;

	if (mfd < 0) {
		mfd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
		if (mfd < 0) {
			perror("fuzz_qcow2: memfd_create");
			abort();
		}
		make_backing_files();
	}
	if (ftruncate(mfd, 0) || (size && pwrite(mfd, data, size, 0) != (ssize_t)size))
		abort();
	if (said(qcow2_open(mfd, path, &q, err, sizeof(err)), err))
		return 0;
	walk(q);
	qcow2_close(q);
	return 0;
}
