/*
 * qcow2 reader (the format of qemu's docs/interop/qcow2.txt), read-only, for
 * vmfsctl import: an image's guest bytes through its L1 and L2 tables and its
 * backing chain, and a map of data and zero runs. Invariants: every offset
 * read from a file is checked (alignment, inside the file, clear of the header
 * cluster, the L1 and the refcount table) before it is used; memory is
 * bounded by constants, not by the file (the L1 and L2 tables are read one
 * cluster at a time through a cache of CACHE_BYTES, compressed clusters
 * through two buffers); each call's work is bounded by its length (read) or by
 * MAP_BUDGET table entries (map). Nothing is ever written.
 */
#include "tools/vmfsctl_qcow2.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/*
 * The header, big-endian, at offset 0 of the file. Version 2 ends at 0x48;
 * version 3 has header_length (at least 0x68) bytes, compression_type only
 * when header_length is past 0x68.
 */
struct qcow2_header_disk {
	uint32_t h_magic;		/* 0x00 QCOW2_MAGIC */
	uint32_t h_version;		/* 0x04 2 or 3 */
	uint64_t h_backing_offset;	/* 0x08 backing file name in the first cluster, 0: none */
	uint32_t h_backing_size;	/* 0x10 its length (no NUL), at most 1023 */
	uint32_t h_cluster_bits;	/* 0x14 */
	uint64_t h_size;		/* 0x18 virtual size */
	uint32_t h_crypt_method;	/* 0x20 0 none, 1 AES, 2 LUKS */
	uint32_t h_l1_size;		/* 0x24 entries in the active L1 table */
	uint64_t h_l1_offset;		/* 0x28 */
	uint64_t h_refcount_offset;	/* 0x30 refcount table */
	uint32_t h_refcount_clusters;	/* 0x38 its length in clusters */
	uint32_t h_nb_snapshots;	/* 0x3c */
	uint64_t h_snapshots_offset;	/* 0x40 */
	/* version 3 */
	uint64_t h_incompat;		/* 0x48 enum qcow2_incompat */
	uint64_t h_compat;		/* 0x50 */
	uint64_t h_autoclear;		/* 0x58 */
	uint32_t h_refcount_order;	/* 0x60 at most 6 */
	uint32_t h_header_length;	/* 0x64 */
	uint8_t h_compression_type;	/* 0x68 0 deflate, 1 zstd */
	uint8_t h_pad[7];		/* 0x69 */
};
static_assert(sizeof(struct qcow2_header_disk) == 0x70, "");

#define QCOW2_MAGIC 0x514649fbu		/* "QFI\xfb" */
#define QCOW2_V2_HEADER 0x48u
#define QCOW2_V3_HEADER 0x68u

enum qcow2_incompat {
	QCOW2_DIRTY = 1u << 0,		/* refcounts may be stale: reading is fine */
	QCOW2_CORRUPT = 1u << 1,
	QCOW2_DATA_FILE = 1u << 2,	/* guest clusters in an external file */
	QCOW2_COMPRESSION = 1u << 3,	/* compression_type is not deflate */
	QCOW2_EXTENDED_L2 = 1u << 4,	/* 128-bit L2 entries, subclusters */
};
#define QCOW2_INCOMPAT_KNOWN 0x1fu

/* Header extensions: be32 type, be32 length, data padded to 8 bytes. */
enum qcow2_ext {
	QCOW2_EXT_END = 0,
	QCOW2_EXT_BACKING_FORMAT = 0xe2792aca,
	QCOW2_EXT_FEATURE_NAMES = 0x6803f857,	/* 48-byte entries: type, bit, name[46] */
};

/*
 * Table entries (be64). An L1 entry holds an L2 table's offset; an L2 entry
 * a standard descriptor (offset, bit 0 "reads as zeros" in version 3) or,
 * with bit 62, a compressed one: the host byte offset in bits 0..x-1 and the
 * number of 512-byte sectors beyond the first in bits x..61,
 * x = 62 - (cluster_bits - 8). Bit 63 (refcount is one) does not matter here.
 */
#define QCOW2_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QCOW2_L2_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_L2_ZERO UINT64_C(1)

#define MIN_CLUSTER_BITS 9u
#define MAX_CLUSTER_BITS 21u			/* 2 MiB, qemu's limit */
#define MAX_L1_BYTES (32u << 20)		/* qemu's limit */
#define MAX_REFCOUNT_BYTES (8u << 20)		/* qemu's limit */
#define MAX_BACKING_NAME 1023u
#define CACHE_BYTES (8u << 20)			/* table clusters of the whole chain */
#define CACHE_MAX_SLOTS 32u
#define ZSTD_WINDOW_LOG_MAX 23			/* 8 MiB: 4x the largest cluster */
#define MAP_BUDGET (UINT64_C(1) << 16)		/* table entries one qcow2_map looks at */

enum layer_format { LAYER_QCOW2, LAYER_RAW };

/* One file of the chain: layers[0] is the image, layers[i + 1] the backing file of layers[i]. */
struct layer {
	int fd;
	bool own_fd;			/* opened here (a backing file), closed by qcow2_close */
	enum layer_format format;
	char *path;			/* to open, and to resolve its backing file's name */
	char *label;			/* for messages: "'path'" or "backing file 'path'", one line */
	uint64_t size;			/* virtual size; bytes past it read as zeros */
	uint64_t file_size;
	dev_t dev;
	ino_t ino;
	/* qcow2 only */
	unsigned version;
	unsigned cluster_bits;
	uint64_t cluster_size;
	bool zstd;			/* compressed clusters are zstd, not deflate */
	uint64_t l1_offset;
	uint64_t l1_bytes;		/* as the header declares it */
	uint64_t l1_entries;		/* those the virtual size uses (all inside the file) */
	uint64_t refcount_offset;
	uint64_t refcount_bytes;
};

/* What a range of guest bytes in one layer is. */
enum extent_kind { EXT_UNALLOC, EXT_ZERO, EXT_DATA, EXT_COMPRESSED };

struct extent {
	enum extent_kind kind;
	uint64_t len;			/* bytes from the guest offset looked up */
	uint64_t host;			/* EXT_DATA: where that guest offset is in the file */
	uint64_t entry;			/* EXT_COMPRESSED: the L2 entry */
};

/*
 * The extent a layer's last table lookup found: a sequential reader or map
 * walk asks for the rest of it next, and gets it without a second scan of its
 * L2 entries (else a map walk over a long unallocated run, its backing file
 * alternating data and holes, would scan the run again for each piece).
 */
struct extent_memo {
	bool valid;
	uint64_t guest;			/* where x starts */
	struct extent x;
};

/* A cached table cluster: a piece of an L1 table or an L2 table. */
struct cache_slot {
	unsigned layer;
	uint64_t off;			/* host offset in that layer's file */
	uint64_t used;			/* LRU clock; 0: empty */
	uint8_t *buf;			/* max_cluster bytes, allocated on first use */
};

struct qcow2 {
	unsigned n;			/* files in the chain */
	struct layer layers[QCOW2_MAX_CHAIN];
	size_t max_cluster;		/* the largest cluster in the chain */
	struct cache_slot *slots;
	unsigned nslots;
	unsigned last;			/* the slot found or filled last */
	uint64_t clock;
	uint8_t *cbuf;			/* compressed bytes: up to 2 clusters */
	uint8_t *zbuf;			/* the last cluster decompressed ... */
	bool z_valid;
	unsigned z_layer;		/* ... of this layer */
	uint64_t z_entry;		/* ... and this L2 entry */
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zstd;
	struct extent_memo memo[QCOW2_MAX_CHAIN];
};

/* Reading a backing chain's file names and format out of an image. */
struct backing_ref {
	bool present;
	char name[MAX_BACKING_NAME + 1];
	char format[32];		/* from the header extension, "" when absent */
};

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* [a, a + alen) and [b, b + blen) share a byte (lengths may be 0; no overflow). */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	if (!alen || !blen)
		return false;
	return a < b ? b - a < alen : a - b < blen;
}

/* A copy of s fit for a one-line message: control characters become '?'. */
static char *printable(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	p[len] = 0;
	return p;
}

bool qcow2_probe(const void *head, size_t len)
{
	return len >= 4 && get_be32(head) == QCOW2_MAGIC;
}

/* Reads len bytes at off of L's file; bytes past its end read as zeros. */
static int file_read(const struct layer *L, void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		if (off >= (uint64_t)INT64_MAX) {
			memset(p, 0, len);
			break;
		}
		n = pread(L->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(err, errlen, -errno, "%s: read of %zu bytes at 0x%" PRIx64 ": %s",
				    L->label, len, off, strerror(errno));
		if (n == 0) {
			memset(p, 0, len);
			break;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* L's file: its size, identity and type (a regular file or a block device). */
static int layer_stat(struct layer *L, char *err, size_t errlen)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(L->fd, &st))
		return fail(err, errlen, -errno, "%s: %s", L->label, strerror(errno));
	L->dev = st.st_dev;
	L->ino = st.st_ino;
	if (S_ISREG(st.st_mode)) {
		L->file_size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(L->fd, BLKGETSIZE64, &bytes))
			return fail(err, errlen, -errno, "%s: size of the block device: %s", L->label, strerror(errno));
		L->file_size = bytes;
	} else {
		return fail(err, errlen, -EINVAL, "%s: not a regular file or block device", L->label);
	}
	return 0;
}

/* The cached table cluster at off (len bytes, len <= max_cluster) of layer li, read on a miss. */
static int table_get(struct qcow2 *q, unsigned li, uint64_t off, size_t len, const uint8_t **tab,
		     char *err, size_t errlen)
{
	struct cache_slot *s = &q->slots[q->last], *victim = &q->slots[0];
	int ret;

	if (s->used && s->layer == li && s->off == off) {
		*tab = s->buf;		/* the common case: the slot used last (no clock tick: it is the newest) */
		return 0;
	}
	for (unsigned i = 0; i < q->nslots; i++) {
		s = &q->slots[i];
		if (s->used && s->layer == li && s->off == off) {
			s->used = ++q->clock;
			q->last = i;
			*tab = s->buf;
			return 0;
		}
		if (s->used < victim->used)
			victim = s;
	}
	if (!victim->buf) {
		victim->buf = malloc(q->max_cluster);
		if (!victim->buf)
			return fail(err, errlen, -ENOMEM, "%s: out of memory for a table cluster", q->layers[li].label);
	}
	victim->used = 0;
	ret = file_read(&q->layers[li], victim->buf, len, off, err, errlen);
	if (ret)
		return ret;
	victim->layer = li;
	victim->off = off;
	victim->used = ++q->clock;
	q->last = (unsigned)(victim - q->slots);
	*tab = victim->buf;
	return 0;
}

/*
 * A cluster-sized structure (what: "L2 table", "data cluster", "compressed
 * cluster") at host offset off, len bytes long, for guest offset guest: past
 * the header cluster, clear of the L1 and the refcount table, and starting
 * inside the file (whole: ending inside it too; a data cluster's tail past
 * the end reads as zeros, as qemu's does).
 */
static int check_host(const struct layer *L, const char *what, uint64_t off, uint64_t len, bool whole,
		      uint64_t guest, char *err, size_t errlen)
{
	if (off < L->cluster_size)
		return fail(err, errlen, -EUCLEAN, "%s: %s at 0x%" PRIx64 " for guest offset 0x%" PRIx64
			    " overlaps the header cluster", L->label, what, off, guest);
	if (off >= L->file_size || (whole && len > L->file_size - off))
		return fail(err, errlen, -EUCLEAN, "%s: %s at 0x%" PRIx64 " for guest offset 0x%" PRIx64
			    " lies past the end of the file (0x%" PRIx64 " bytes)", L->label, what, off, guest,
			    L->file_size);
	if (overlaps(off, len, L->l1_offset, L->l1_bytes))
		return fail(err, errlen, -EUCLEAN, "%s: %s at 0x%" PRIx64 " for guest offset 0x%" PRIx64
			    " overlaps the L1 table (0x%" PRIx64 ")", L->label, what, off, guest, L->l1_offset);
	if (overlaps(off, len, L->refcount_offset, L->refcount_bytes))
		return fail(err, errlen, -EUCLEAN, "%s: %s at 0x%" PRIx64 " for guest offset 0x%" PRIx64
			    " overlaps the refcount table (0x%" PRIx64 ")", L->label, what, off, guest,
			    L->refcount_offset);
	return 0;
}

/* Where a compressed descriptor's bytes are: offset and length (to the end of its last sector). */
static void compressed_range(const struct layer *L, uint64_t entry, uint64_t *off, uint64_t *len)
{
	unsigned shift = 62 - (L->cluster_bits - 8);
	uint64_t sectors = ((entry >> shift) & ((UINT64_C(1) << (L->cluster_bits - 8)) - 1)) + 1;

	*off = entry & ((UINT64_C(1) << shift) - 1);
	*len = sectors * 512 - (*off & 511);
}

/* The L1 entry of index (< l1_entries) in layer li, its L2 table's offset checked. */
static int l1_entry(struct qcow2 *q, unsigned li, uint64_t index, uint64_t *l2_offset, char *err, size_t errlen)
{
	const struct layer *L = &q->layers[li];
	uint64_t pos = index * 8, start = pos & ~(L->cluster_size - 1), entry, off;
	const uint8_t *tab;
	int ret;

	ret = table_get(q, li, L->l1_offset + start, min_u64(L->cluster_size, L->l1_entries * 8 - start), &tab,
			err, errlen);
	if (ret)
		return ret;
	entry = get_be64(tab + (pos - start));
	off = entry & QCOW2_OFFSET_MASK;
	if (off & (L->cluster_size - 1))
		return fail(err, errlen, -EUCLEAN, "%s: L1 entry %" PRIu64 " (0x%016" PRIx64 "): L2 table offset"
			    " not cluster-aligned", L->label, index, entry);
	if (off) {
		ret = check_host(L, "L2 table", off, L->cluster_size, true,
				 index << (2 * L->cluster_bits - 3), err, errlen);
		if (ret)
			return ret;
	}
	*l2_offset = off;
	return 0;
}

/* What L2 entry e (of the cluster at guest offset guest) of layer L says, checked. */
static int classify(const struct layer *L, uint64_t e, uint64_t guest, enum extent_kind *kind, uint64_t *host,
		    char *err, size_t errlen)
{
	uint64_t off, len;

	if (e & QCOW2_L2_COMPRESSED) {
		compressed_range(L, e, &off, &len);
		if (off >> 56)
			return fail(err, errlen, -EUCLEAN, "%s: L2 entry 0x%016" PRIx64 " for guest offset 0x%"
				    PRIx64 ": compressed offset past 64 PiB", L->label, e, guest);
		*kind = EXT_COMPRESSED;
		*host = off;
		return check_host(L, "compressed cluster", off, len, false, guest, err, errlen);
	}
	off = e & QCOW2_OFFSET_MASK;
	if (off & (L->cluster_size - 1))
		return fail(err, errlen, -EUCLEAN, "%s: L2 entry 0x%016" PRIx64 " for guest offset 0x%" PRIx64
			    ": cluster offset not cluster-aligned", L->label, e, guest);
	*host = off;
	if (e & QCOW2_L2_ZERO) {
		/* qemu never sets it in version 2, and calls an image that has it corrupt */
		if (L->version < 3)
			return fail(err, errlen, -EUCLEAN, "%s: L2 entry 0x%016" PRIx64 " for guest offset 0x%"
				    PRIx64 ": zero flag in a version 2 image", L->label, e, guest);
		*kind = EXT_ZERO;	/* the offset, if any, is only preallocation: not read */
		return 0;
	}
	if (!off) {
		*kind = EXT_UNALLOC;
		return 0;
	}
	*kind = EXT_DATA;
	return check_host(L, "data cluster", off, L->cluster_size, false, guest, err, errlen);
}

/*
 * What the guest bytes from guest (< size) of qcow2 layer li are, up to max
 * bytes but not past the L2 table: one extent of contiguous entries of one
 * kind (data clusters contiguous in the file too; a compressed cluster
 * alone). Each entry looked at costs one of *budget; at least one is looked
 * at whatever the budget.
 */
static int lookup_tables(struct qcow2 *q, unsigned li, uint64_t guest, uint64_t max, struct extent *x,
			 uint64_t *budget, char *err, size_t errlen)
{
	const struct layer *L = &q->layers[li];
	unsigned cb = L->cluster_bits;
	uint64_t cs = L->cluster_size, entries = cs / 8, span = entries << cb;
	uint64_t l2_offset, index, e, host = 0, at;
	enum extent_kind kind = EXT_UNALLOC;
	const uint8_t *tab;
	int ret;

	max = min_u64(max, span - (guest & (span - 1)));
	ret = l1_entry(q, li, guest >> (2 * cb - 3), &l2_offset, err, errlen);
	if (ret)
		return ret;
	if (*budget)
		(*budget)--;
	if (!l2_offset) {
		*x = (struct extent){ .kind = EXT_UNALLOC, .len = max };
		return 0;
	}
	ret = table_get(q, li, l2_offset, cs, &tab, err, errlen);
	if (ret)
		return ret;
	x->len = 0;
	for (index = (guest >> cb) & (entries - 1); index < entries && x->len < max; index++) {
		at = (guest & ~(cs - 1)) + (x->len ? x->len + (guest & (cs - 1)) : 0);
		e = get_be64(tab + index * 8);
		ret = classify(L, e, at, &kind, &host, err, errlen);
		if (ret)
			return ret;
		if (!x->len) {
			x->kind = kind;
			x->host = host + (guest & (cs - 1));
			x->entry = e;
			x->len = cs - (guest & (cs - 1));
		} else {
			if (kind != x->kind || kind == EXT_COMPRESSED || (kind == EXT_DATA && host != x->host + x->len))
				break;
			x->len += cs;
		}
		if (*budget)
			(*budget)--;
		if (!*budget || kind == EXT_COMPRESSED)
			break;
	}
	x->len = min_u64(x->len, max);
	return 0;
}

/* lookup_tables(), or what is left of the extent it found last for this layer (for one of *budget). */
static int lookup(struct qcow2 *q, unsigned li, uint64_t guest, uint64_t max, struct extent *x,
		  uint64_t *budget, char *err, size_t errlen)
{
	struct extent_memo *m = &q->memo[li];
	uint64_t skip;
	int ret;

	if (m->valid && guest >= m->guest && guest - m->guest < m->x.len) {
		skip = guest - m->guest;
		*x = m->x;
		x->len = min_u64(x->len - skip, max);
		if (x->kind == EXT_DATA)
			x->host += skip;
		if (*budget)
			(*budget)--;
		return 0;
	}
	ret = lookup_tables(q, li, guest, max, x, budget, err, errlen);
	if (ret)
		return ret;
	*m = (struct extent_memo){ .valid = true, .guest = guest, .x = *x };
	return 0;
}

/* Decompresses the cluster of L2 entry entry (guest offset guest) of layer li into q->zbuf. */
static int decompress(struct qcow2 *q, unsigned li, uint64_t entry, uint64_t guest, char *err, size_t errlen)
{
	const struct layer *L = &q->layers[li];
	uint64_t off, len, got;
	size_t zret = 1, in_pos, out_pos;
	int ret, zr;

	if (q->z_valid && q->z_layer == li && q->z_entry == entry)
		return 0;
	q->z_valid = false;
	compressed_range(L, entry, &off, &len);
	len = min_u64(len, L->file_size - off);	/* the last sector may be short: qemu writes no padding */
	ret = file_read(L, q->cbuf, len, off, err, errlen);
	if (ret)
		return ret;
	if (L->zstd) {
		ZSTD_inBuffer in = { q->cbuf, len, 0 };
		ZSTD_outBuffer out = { q->zbuf, L->cluster_size, 0 };

		if (!q->zstd) {
			q->zstd = ZSTD_createDCtx();
			if (!q->zstd)
				return fail(err, errlen, -ENOMEM, "%s: out of memory for zstd", L->label);
			zret = ZSTD_DCtx_setParameter(q->zstd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
			if (ZSTD_isError(zret))
				return fail(err, errlen, -EIO, "%s: zstd: %s", L->label, ZSTD_getErrorName(zret));
		} else {
			ZSTD_DCtx_reset(q->zstd, ZSTD_reset_session_only);
		}
		while (out.pos < out.size) {
			in_pos = in.pos;
			out_pos = out.pos;
			zret = ZSTD_decompressStream(q->zstd, &out, &in);
			if (ZSTD_isError(zret))
				return fail(err, errlen, -EUCLEAN, "%s: compressed cluster at 0x%" PRIx64 " for guest"
					    " offset 0x%" PRIx64 ": zstd: %s", L->label, off, guest,
					    ZSTD_getErrorName(zret));
			if (!zret || (in.pos == in_pos && out.pos == out_pos))
				break;	/* the frame ended short, or the input ran out */
		}
		got = out.pos;
		if (got == L->cluster_size && zret)
			return fail(err, errlen, -EUCLEAN, "%s: compressed cluster at 0x%" PRIx64 " for guest offset"
				    " 0x%" PRIx64 ": zstd frame longer than a cluster", L->label, off, guest);
	} else {
		if (!q->zs_ready) {
			memset(&q->zs, 0, sizeof(q->zs));
			if (inflateInit2(&q->zs, -15) != Z_OK)	/* raw deflate, as qemu writes it */
				return fail(err, errlen, -ENOMEM, "%s: out of memory for zlib", L->label);
			q->zs_ready = true;
		} else if (inflateReset(&q->zs) != Z_OK) {
			return fail(err, errlen, -EIO, "%s: zlib: cannot reset", L->label);
		}
		q->zs.next_in = q->cbuf;
		q->zs.avail_in = (uInt)len;
		q->zs.next_out = q->zbuf;
		q->zs.avail_out = (uInt)L->cluster_size;
		zr = inflate(&q->zs, Z_FINISH);
		got = L->cluster_size - q->zs.avail_out;
		/* as qemu: a full cluster is enough, whatever follows it in the stream */
		if (zr != Z_STREAM_END && zr != Z_BUF_ERROR && got < L->cluster_size)
			return fail(err, errlen, -EUCLEAN, "%s: compressed cluster at 0x%" PRIx64 " for guest offset"
				    " 0x%" PRIx64 ": deflate: %s", L->label, off, guest,
				    q->zs.msg ? q->zs.msg : "bad data");
	}
	if (got != L->cluster_size)
		return fail(err, errlen, -EUCLEAN, "%s: compressed cluster at 0x%" PRIx64 " for guest offset 0x%"
			    PRIx64 " decompresses to %" PRIu64 " bytes, not %" PRIu64, L->label, off, guest, got,
			    L->cluster_size);
	q->z_valid = true;
	q->z_layer = li;
	q->z_entry = entry;
	return 0;
}

/* len guest bytes at off of layer li (of any offset: past its size they are zeros). */
static int layer_read(struct qcow2 *q, unsigned li, uint8_t *buf, uint64_t len, uint64_t off, char *err,
		      size_t errlen)
{
	const struct layer *L = &q->layers[li];
	struct extent x;
	uint64_t budget;
	int ret = 0;

	if (off >= L->size) {
		memset(buf, 0, len);
		return 0;
	}
	if (len > L->size - off) {
		memset(buf + (L->size - off), 0, len - (L->size - off));
		len = L->size - off;
	}
	if (L->format == LAYER_RAW)
		return file_read(L, buf, len, off, err, errlen);
	while (len) {
		budget = UINT64_MAX;
		ret = lookup(q, li, off, len, &x, &budget, err, errlen);
		if (ret)
			return ret;
		switch (x.kind) {
		case EXT_UNALLOC:
			if (li + 1 < q->n)
				ret = layer_read(q, li + 1, buf, x.len, off, err, errlen);
			else
				memset(buf, 0, x.len);
			break;
		case EXT_ZERO:
			memset(buf, 0, x.len);
			break;
		case EXT_DATA:
			ret = file_read(L, buf, x.len, x.host, err, errlen);
			break;
		case EXT_COMPRESSED:
			ret = decompress(q, li, x.entry, off, err, errlen);
			if (!ret)
				memcpy(buf, q->zbuf + (off & (L->cluster_size - 1)), x.len);
			break;
		}
		if (ret)
			return ret;
		buf += x.len;
		off += x.len;
		len -= x.len;
	}
	return 0;
}

/* A raw file's data and holes (SEEK_DATA, SEEK_HOLE; all data where they do not work). */
static void raw_map(const struct layer *L, uint64_t off, uint64_t max, uint64_t *len, bool *data)
{
	off_t d, h;

	*data = true;
	*len = max;
	d = lseek(L->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			*data = false;	/* no data from off to the end */
		return;
	}
	if ((uint64_t)d > off) {
		*data = false;
		*len = min_u64((uint64_t)d - off, max);
		return;
	}
	h = lseek(L->fd, (off_t)off, SEEK_HOLE);
	if (h > d)
		*len = min_u64((uint64_t)h - off, max);
}

/* The run from off (up to max bytes) in layer li and the layers below it; see qcow2_map(). */
static int layer_map(struct qcow2 *q, unsigned li, uint64_t off, uint64_t max, uint64_t *len, bool *data,
		     uint64_t *budget, char *err, size_t errlen)
{
	const struct layer *L = &q->layers[li];
	uint64_t lim, done = 0, n;
	struct extent x;
	bool d = false;
	int ret;

	*data = false;
	if (off >= L->size) {
		*len = max;
		return 0;
	}
	lim = min_u64(max, L->size - off);
	if (L->format == LAYER_RAW) {
		raw_map(L, off, lim, &done, data);
		if (*budget)
			(*budget)--;
	} else {
		while (done < lim) {
			ret = lookup(q, li, off + done, lim - done, &x, budget, err, errlen);
			if (ret)
				return ret;
			n = x.len;
			if (x.kind == EXT_UNALLOC && li + 1 < q->n) {
				ret = layer_map(q, li + 1, off + done, x.len, &n, &d, budget, err, errlen);
				if (ret)
					return ret;
			} else {
				d = x.kind == EXT_DATA || x.kind == EXT_COMPRESSED;
			}
			if (!done)
				*data = d;
			else if (d != *data)
				break;
			done += n;
			if (!*budget)
				break;
		}
	}
	if (!*data && done == lim)
		done = max;	/* zeros go on past the layer's end */
	*len = done;
	return 0;
}

/* An image's backing file name and format, from the first cluster hc (hc_len bytes read of it). */
static int read_backing(const struct layer *L, const uint8_t *hc, uint64_t hc_len, uint32_t header_len,
			const struct qcow2_header_disk *h, struct backing_ref *b, char *err, size_t errlen)
{
	uint64_t off = be64toh(h->h_backing_offset);
	uint32_t len = be32toh(h->h_backing_size);

	b->present = false;
	if (!off)
		return 0;
	if (off > L->cluster_size)
		return fail(err, errlen, -EUCLEAN, "%s: backing file name at 0x%" PRIx64 ", past the first cluster",
			    L->label, off);
	if (len > MAX_BACKING_NAME || len > L->cluster_size - off)
		return fail(err, errlen, -EUCLEAN, "%s: backing file name of %" PRIu32 " bytes: too long",
			    L->label, len);
	if (!len)
		return 0;	/* qemu takes an empty name for none */
	if (off < header_len)
		return fail(err, errlen, -EUCLEAN, "%s: backing file name at 0x%" PRIx64 " overlaps the header",
			    L->label, off);
	if (off + len > hc_len)
		return fail(err, errlen, -EUCLEAN, "%s: backing file name at 0x%" PRIx64 " lies past the end of"
			    " the file", L->label, off);
	if (memchr(hc + off, 0, len))
		return fail(err, errlen, -EUCLEAN, "%s: backing file name holds a NUL byte", L->label);
	memcpy(b->name, hc + off, len);
	b->name[len] = 0;
	b->present = true;
	return 0;
}

/*
 * The header extensions in hc[start, end): the backing file format into b,
 * the feature name table (for messages) into *names, *nnames entries. A
 * malformed area is reported in ext_err (the caller reports it after the
 * feature bits, which may explain it); returns its errno or 0.
 */
static int read_extensions(const struct layer *L, const uint8_t *hc, uint64_t start, uint64_t end,
			   struct backing_ref *b, const uint8_t **names, uint64_t *nnames, char *err, size_t errlen)
{
	uint64_t off = start;
	uint32_t type, len;

	b->format[0] = 0;
	*names = NULL;
	*nnames = 0;
	while (off < end) {
		if (end - off < 8)
			return fail(err, errlen, -EUCLEAN, "%s: header extension at 0x%" PRIx64 " runs past 0x%"
				    PRIx64, L->label, off, end);
		type = get_be32(hc + off);
		len = get_be32(hc + off + 4);
		if (type == QCOW2_EXT_END)
			break;
		off += 8;
		if (len > end - off)
			return fail(err, errlen, -EUCLEAN, "%s: header extension 0x%08" PRIx32 " at 0x%" PRIx64
				    " of %" PRIu32 " bytes runs past 0x%" PRIx64, L->label, type, off - 8, len, end);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (len >= sizeof(b->format) || memchr(hc + off, 0, len))
				return fail(err, errlen, -EUCLEAN, "%s: backing format name of %" PRIu32 " bytes:"
					    " not a format name", L->label, len);
			memcpy(b->format, hc + off, len);
			b->format[len] = 0;
		} else if (type == QCOW2_EXT_FEATURE_NAMES) {
			*names = hc + off;
			*nnames = len / 48;
		}
		off += ((uint64_t)len + 7) & ~UINT64_C(7);
	}
	return 0;
}

/* Refuses an unknown incompatible feature, named from the image's own table when it has one. */
static int unknown_feature(const struct layer *L, uint64_t bits, const uint8_t *names, uint64_t nnames,
			   char *err, size_t errlen)
{
	unsigned bit = (unsigned)__builtin_ctzll(bits);
	char *name = NULL;
	int ret;

	for (uint64_t i = 0; i < nnames; i++) {
		const uint8_t *e = names + i * 48;

		if (e[0] == 0 && e[1] == bit) {
			name = printable((const char *)e + 2, strnlen((const char *)e + 2, 46));
			break;
		}
	}
	ret = fail(err, errlen, -ENOTSUP, "%s: unknown incompatible feature bit %u%s%s%s", L->label, bit,
		   name ? " ('" : "", name ? name : "", name ? "')" : "");
	free(name);
	return ret;
}

/* The header and extensions of qcow2 layer L (fd, label, file_size set); its backing file into b. */
static int qcow2_layer_open(struct layer *L, struct backing_ref *b, char *err, size_t errlen)
{
	struct qcow2_header_disk h = { 0 };
	uint64_t incompat = 0, size, hc_len, ext_end, span_bits, need, l1_size;
	uint32_t header_len, cb, crypt;
	char ext_err[256] = "";
	const uint8_t *names;
	uint64_t nnames;
	uint8_t *hc = NULL;
	unsigned ctype = 0;
	int ret, ext_ret;

	if (L->file_size < 4)
		return fail(err, errlen, -EINVAL, "%s: not a qcow2 image (%" PRIu64 " bytes)", L->label,
			    L->file_size);
	ret = file_read(L, &h, sizeof(h), 0, err, errlen);
	if (ret)
		return ret;
	if (be32toh(h.h_magic) != QCOW2_MAGIC)
		return fail(err, errlen, -EINVAL, "%s: not a qcow2 image (no QFI\\xfb magic)", L->label);
	L->version = be32toh(h.h_version);
	if (L->version != 2 && L->version != 3)
		return fail(err, errlen, -ENOTSUP, "%s: qcow2 version %u not supported (2 and 3 are)", L->label,
			    L->version);
	if (L->file_size < (L->version == 2 ? QCOW2_V2_HEADER : QCOW2_V3_HEADER))
		return fail(err, errlen, -EUCLEAN, "%s: truncated: %" PRIu64 " bytes, less than a version %u header",
			    L->label, L->file_size, L->version);
	cb = be32toh(h.h_cluster_bits);
	if (cb < MIN_CLUSTER_BITS || cb > MAX_CLUSTER_BITS)
		return fail(err, errlen, -EUCLEAN, "%s: cluster_bits %u out of range (%u..%u)", L->label, cb,
			    MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
	L->cluster_bits = cb;
	L->cluster_size = UINT64_C(1) << cb;
	if (L->version == 2) {
		header_len = QCOW2_V2_HEADER;
		memset((uint8_t *)&h + QCOW2_V2_HEADER, 0, sizeof(h) - QCOW2_V2_HEADER);	/* extensions, not fields */
	} else {
		header_len = be32toh(h.h_header_length);
		if (header_len < QCOW2_V3_HEADER || header_len > L->cluster_size)
			return fail(err, errlen, -EUCLEAN, "%s: header length %u out of range (%u..%" PRIu64 ")",
				    L->label, header_len, QCOW2_V3_HEADER, L->cluster_size);
		if (header_len <= QCOW2_V3_HEADER)
			h.h_compression_type = 0;	/* absent */
		incompat = be64toh(h.h_incompat);
		ctype = h.h_compression_type;
	}
	if (L->file_size < header_len)
		return fail(err, errlen, -EUCLEAN, "%s: truncated: %" PRIu64 " bytes, less than its %u-byte header",
			    L->label, L->file_size, header_len);

	/* the first cluster: header, extensions, backing file name */
	hc_len = min_u64(L->cluster_size, L->file_size);
	hc = calloc(1, L->cluster_size);
	if (!hc)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", L->label);
	ret = file_read(L, hc, hc_len, 0, err, errlen);
	if (ret)
		goto out_free_hc;
	ext_end = be64toh(h.h_backing_offset);
	if (!ext_end || ext_end > L->cluster_size)
		ext_end = L->cluster_size;
	ext_ret = read_extensions(L, hc, header_len, ext_end, b, &names, &nnames, ext_err, sizeof(ext_err));

	crypt = be32toh(h.h_crypt_method);
	if (crypt) {
		ret = fail(err, errlen, -ENOTSUP, "%s: encrypted (%s): not supported, decrypt it with qemu-img"
			   " convert first", L->label, crypt == 1 ? "AES" : crypt == 2 ? "LUKS" : "unknown method");
		goto out_free_hc;
	}
	if (incompat & ~(uint64_t)QCOW2_INCOMPAT_KNOWN) {
		ret = unknown_feature(L, incompat & ~(uint64_t)QCOW2_INCOMPAT_KNOWN, names, nnames, err, errlen);
		goto out_free_hc;
	}
	/*
	 * A dirty image (bit 0) is read as it is: only its refcounts may lag
	 * behind (lazy refcounts), and nothing here reads them; qemu too reads
	 * one without repairing it when it opens it read-only.
	 */
	if (incompat & QCOW2_CORRUPT) {
		ret = fail(err, errlen, -EUCLEAN, "%s: marked corrupt by qemu: repair it first (qemu-img check -r"
			   " all)", L->label);
		goto out_free_hc;
	}
	if (incompat & QCOW2_DATA_FILE) {
		ret = fail(err, errlen, -ENOTSUP, "%s: has an external data file: not supported", L->label);
		goto out_free_hc;
	}
	if (incompat & QCOW2_EXTENDED_L2) {
		ret = fail(err, errlen, -ENOTSUP, "%s: has extended L2 entries (subclusters): not supported",
			   L->label);
		goto out_free_hc;
	}
	if (!(incompat & QCOW2_COMPRESSION) != !ctype) {
		ret = fail(err, errlen, -EUCLEAN, "%s: compression type %u %s the compression type feature bit",
			   L->label, ctype, ctype ? "without" : "with");
		goto out_free_hc;
	}
	if (ctype > 1) {
		ret = fail(err, errlen, -ENOTSUP, "%s: unknown compression type %u (0 deflate and 1 zstd are known)",
			   L->label, ctype);
		goto out_free_hc;
	}
	L->zstd = ctype == 1;
	if (ext_ret) {
		ret = fail(err, errlen, ext_ret, "%s", ext_err);
		goto out_free_hc;
	}
	if (L->version == 3 && be32toh(h.h_refcount_order) > 6) {
		ret = fail(err, errlen, -EUCLEAN, "%s: refcount order %u out of range (0..6)", L->label,
			   be32toh(h.h_refcount_order));
		goto out_free_hc;
	}

	/* sizes and tables */
	size = be64toh(h.h_size);
	if (size > QCOW2_MAX_SIZE) {
		ret = fail(err, errlen, -EFBIG, "%s: virtual size %" PRIu64 " bytes: more than the 1 PiB supported",
			   L->label, size);
		goto out_free_hc;
	}
	L->size = size & ~UINT64_C(511);	/* as qemu: whole sectors */
	L->refcount_offset = be64toh(h.h_refcount_offset);
	L->refcount_bytes = (uint64_t)be32toh(h.h_refcount_clusters) << cb;
	if (!L->refcount_bytes || L->refcount_bytes > MAX_REFCOUNT_BYTES || !L->refcount_offset ||
	    (L->refcount_offset & (L->cluster_size - 1)) || L->refcount_offset > UINT64_MAX - L->refcount_bytes) {
		ret = fail(err, errlen, -EUCLEAN, "%s: refcount table of %" PRIu32 " clusters at 0x%" PRIx64
			   ": %s", L->label, be32toh(h.h_refcount_clusters), L->refcount_offset,
			   !L->refcount_bytes ? "empty" : L->refcount_bytes > MAX_REFCOUNT_BYTES ? "too large" :
			   "not a cluster-aligned offset");
		goto out_free_hc;
	}
	span_bits = 2 * cb - 3;		/* guest bytes one L1 entry maps */
	need = (L->size + (UINT64_C(1) << span_bits) - 1) >> span_bits;
	l1_size = be32toh(h.h_l1_size);
	L->l1_offset = be64toh(h.h_l1_offset);
	L->l1_bytes = l1_size * 8;
	L->l1_entries = need;
	if (L->l1_bytes > MAX_L1_BYTES) {
		ret = fail(err, errlen, -EUCLEAN, "%s: L1 table of %" PRIu64 " entries: more than the %u supported",
			   L->label, l1_size, MAX_L1_BYTES / 8);
		goto out_free_hc;
	}
	if (l1_size < need) {
		ret = fail(err, errlen, -EUCLEAN, "%s: L1 table of %" PRIu64 " entries: a virtual size of %"
			   PRIu64 " bytes needs %" PRIu64, L->label, l1_size, L->size, need);
		goto out_free_hc;
	}
	if (!need) {
		L->l1_bytes = 0;	/* never read */
	} else if (L->l1_offset < L->cluster_size || (L->l1_offset & (L->cluster_size - 1)) ||
		   L->l1_offset > L->file_size || need * 8 > L->file_size - L->l1_offset ||
		   overlaps(L->l1_offset, L->l1_bytes, L->refcount_offset, L->refcount_bytes)) {
		ret = fail(err, errlen, -EUCLEAN, "%s: L1 table at 0x%" PRIx64 " (entries: %" PRIu64 "): %s",
			   L->label, L->l1_offset, l1_size,
			   L->l1_offset < L->cluster_size ? "overlaps the header cluster" :
			   (L->l1_offset & (L->cluster_size - 1)) ? "not cluster-aligned" :
			   L->l1_offset > L->file_size || need * 8 > L->file_size - L->l1_offset ?
			   "lies past the end of the file" : "overlaps the refcount table");
		goto out_free_hc;
	}
	ret = read_backing(L, hc, hc_len, header_len, &h, b, err, errlen);
out_free_hc:
	free(hc);
	return ret;
}

/* Every L1 entry the image uses points at a possible L2 table (a bad one is refused at open, not mid-import). */
static int check_l1(struct qcow2 *q, unsigned li, char *err, size_t errlen)
{
	uint64_t l2_offset;
	int ret;

	for (uint64_t i = 0; i < q->layers[li].l1_entries; i++) {
		ret = l1_entry(q, li, i, &l2_offset, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

/* The path of backing file name, relative to the directory of image path (as qemu does). */
static char *backing_path(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	size_t dir = name[0] == '/' || !slash ? 0 : (size_t)(slash - image) + 1;
	char *p = malloc(dir + strlen(name) + 1);

	if (!p)
		return NULL;
	memcpy(p, image, dir);
	strcpy(p + dir, name);
	return p;
}

static int set_label(struct layer *L, const char *fmt, const char *path)
{
	char *name = printable(path, strlen(path));
	int n;

	if (!name)
		return -ENOMEM;
	n = asprintf(&L->label, fmt, name);
	free(name);
	if (n < 0) {
		L->label = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Opens the backing file b of layer q->layers[q->n - 1] as layer q->n:
 * read-only, a regular file or a block device (stat first, so that a FIFO
 * or a tty is never opened), not a file already in the chain.
 */
static int open_backing(struct qcow2 *q, const struct backing_ref *b, char *err, size_t errlen)
{
	const struct layer *up = &q->layers[q->n - 1];
	struct layer *L = &q->layers[q->n];
	const char *p = b->name + strcspn(b->name, ":/");
	struct stat st;
	char head[4];
	int ret;

	if (*p == ':')
		return fail(err, errlen, -ENOTSUP, "%s: backing file name with a protocol: not supported",
			    up->label);
	if (q->n == QCOW2_MAX_CHAIN)
		return fail(err, errlen, -ELOOP, "%s: has a backing file, and the chain is already %u files long",
			    up->label, QCOW2_MAX_CHAIN);
	L->fd = -1;
	L->path = backing_path(up->path, b->name);
	if (!L->path || set_label(L, "backing file '%s'", L->path))
		return fail(err, errlen, -ENOMEM, "%s: out of memory", up->label);
	q->n++;			/* from here qcow2_close() frees it */
	if (stat(L->path, &st))
		return fail(err, errlen, -errno, "%s of %s: %s", L->label, up->label, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return fail(err, errlen, -EINVAL, "%s of %s: not a regular file or block device", L->label,
			    up->label);
	L->fd = open(L->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (L->fd < 0)
		return fail(err, errlen, -errno, "%s of %s: %s", L->label, up->label, strerror(errno));
	L->own_fd = true;
	ret = layer_stat(L, err, errlen);
	if (ret)
		return ret;
	if (L->dev != st.st_dev || L->ino != st.st_ino)
		return fail(err, errlen, -EAGAIN, "%s: changed while it was opened", L->label);
	for (unsigned i = 0; i + 1 < q->n; i++)
		if (q->layers[i].dev == L->dev && q->layers[i].ino == L->ino)
			return fail(err, errlen, -ELOOP, "%s of %s: a loop (it is %s)", L->label, up->label,
				    q->layers[i].label);
	if (!strcmp(b->format, "raw")) {
		L->format = LAYER_RAW;
	} else if (!strcmp(b->format, "qcow2")) {
		L->format = LAYER_QCOW2;
	} else if (b->format[0]) {
		char *f = printable(b->format, strlen(b->format));

		ret = fail(err, errlen, -ENOTSUP, "%s of %s: format '%s' not supported (raw and qcow2 are)",
			   L->label, up->label, f ? f : "?");
		free(f);
		return ret;
	} else {
		/* no format named (old images): its magic says */
		ret = file_read(L, head, sizeof(head), 0, err, errlen);
		if (ret)
			return ret;
		L->format = L->file_size >= 4 && qcow2_probe(head, sizeof(head)) ? LAYER_QCOW2 : LAYER_RAW;
	}
	if (L->format == LAYER_RAW)
		L->size = L->file_size;
	return 0;
}

int qcow2_open(int fd, const char *path, struct qcow2 **out, char *err, size_t errlen)
{
	struct backing_ref b;
	struct qcow2 *q;
	struct layer *L;
	int ret;

	if (errlen)
		err[0] = 0;
	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return fail(err, errlen, -ENOMEM, "qcow2: out of memory");
	L = &q->layers[0];
	L->fd = fd;
	L->path = strdup(path);
	if (!L->path || set_label(L, "'%s'", path)) {
		ret = fail(err, errlen, -ENOMEM, "qcow2: out of memory");
		goto err_close;
	}
	q->n = 1;
	ret = layer_stat(L, err, errlen);
	if (ret)
		goto err_close;
	for (;;) {
		L = &q->layers[q->n - 1];
		if (L->format == LAYER_RAW)
			break;
		ret = qcow2_layer_open(L, &b, err, errlen);
		if (ret)
			goto err_close;
		if (L->cluster_size > q->max_cluster)
			q->max_cluster = L->cluster_size;
		if (!b.present)
			break;
		ret = open_backing(q, &b, err, errlen);
		if (ret)
			goto err_close;
	}

	/* the table cache and the compression buffers, sized for the largest cluster */
	q->nslots = (unsigned)(CACHE_BYTES / q->max_cluster);
	if (q->nslots > CACHE_MAX_SLOTS)
		q->nslots = CACHE_MAX_SLOTS;
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	q->cbuf = malloc(2 * q->max_cluster);
	q->zbuf = malloc(q->max_cluster);
	if (!q->slots || !q->cbuf || !q->zbuf) {
		ret = fail(err, errlen, -ENOMEM, "%s: out of memory", q->layers[0].label);
		goto err_close;
	}
	for (unsigned i = 0; i < q->n; i++) {
		if (q->layers[i].format != LAYER_QCOW2)
			continue;
		ret = check_l1(q, i, err, errlen);
		if (ret)
			goto err_close;
	}
	*out = q;
	return 0;

err_close:
	qcow2_close(q);
	return ret;
}

uint64_t qcow2_size(const struct qcow2 *q)
{
	return q->layers[0].size;
}

unsigned qcow2_chain_length(const struct qcow2 *q)
{
	return q->n;
}

int qcow2_read(struct qcow2 *q, void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	uint64_t size = qcow2_size(q);

	if (off > size || len > size - off)
		return fail(err, errlen, -EINVAL, "%s: read of %zu bytes at 0x%" PRIx64 " past the end (0x%" PRIx64
			    " bytes)", q->layers[0].label, len, off, size);
	return layer_read(q, 0, buf, len, off, err, errlen);
}

int qcow2_map(struct qcow2 *q, uint64_t off, uint64_t *len, bool *data, char *err, size_t errlen)
{
	uint64_t size = qcow2_size(q), budget = MAP_BUDGET;

	if (off >= size)
		return fail(err, errlen, -EINVAL, "%s: map at 0x%" PRIx64 " past the end (0x%" PRIx64 " bytes)",
			    q->layers[0].label, off, size);
	return layer_map(q, 0, off, size - off, len, data, &budget, err, errlen);
}

void qcow2_close(struct qcow2 *q)
{
	if (!q)
		return;
	for (unsigned i = 0; i < q->n; i++) {
		if (q->layers[i].own_fd)
			close(q->layers[i].fd);
		free(q->layers[i].path);
		free(q->layers[i].label);
	}
	if (q->slots)
		for (unsigned i = 0; i < q->nslots; i++)
			free(q->slots[i].buf);
	free(q->slots);
	free(q->cbuf);
	free(q->zbuf);
	if (q->zs_ready)
		inflateEnd(&q->zs);
	ZSTD_freeDCtx(q->zstd);
	free(q);
}
