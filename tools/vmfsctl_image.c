/*
 * vmfsctl import and export: disk images between a host file and a file of
 * the datastore, as qemu-img convert and vmkfstools -i move them.
 *
 *   import [--json] [--format raw|qcow2|zst] DEVICE SOURCE PATH
 *       SOURCE is a raw image, a qcow2 image (versions 2 and 3, compressed
 *       clusters, a backing file: tools/vmfsctl_qcow2.c) or an export made
 *       with --compress (a zstd stream, its content checksummed); the format
 *       is found by its magic unless --format says. PATH, which must not
 *       exist, becomes a thin file: holes in the source (SEEK_DATA),
 *       unallocated qcow2 clusters and all-zero blocks are not written. A
 *       failure removes PATH: the datastore is as it was.
 *   export [--json] [--compress] [--level N] [--threads N] DEVICE SRC DEST
 *       SRC is PATH or PATH@SNAPSHOT (a snapshot is a consistent image of a
 *       running VM's disk); a live file another host holds for writing is
 *       refused. DEST, a new host file, is raw and sparse (holes where the
 *       datastore has none or the bytes are zero), or with --compress a
 *       zstd stream (multithreaded, level 3 by default, a checksum of its
 *       content), which `vmfsctl import` and `zstd -d` read back. A failure
 *       removes DEST.
 *
 * Both show a progress bar on a terminal and, with --json, print a summary:
 * bytes read, written, skipped (holes and zeros), seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "base/base.h"
#include "base/cli.h"
#include "snapshot/snapshot.h"
#include "tools/vmfsctl.h"
#include "tools/vmfsctl_qcow2.h"
#include "vmfs/vmfs.h"

#define CHUNK (1u << 20)          /* the unit of zero detection and of writes */
#define BATCH (8u << 20)          /* bytes read from the source at once */

enum fmt { FMT_AUTO, FMT_RAW, FMT_QCOW2, FMT_ZST };
static const char *const fmt_name[] = { "auto", "raw", "qcow2", "zst" };

struct totals {
	uint64_t size, read, written, skipped;
	uint64_t t0;
};

void image_usage(FILE *f)
{
	fprintf(f, "       vmfsctl import [--json] [--format raw|qcow2|zst] DEVICE SOURCE PATH\n"
		   "                                             a host image into a new thin file PATH\n"
		   "       vmfsctl export [--json] [--compress] [--level N] [--threads N] DEVICE PATH[@SNAPSHOT] DEST\n"
		   "                                             a file or snapshot into a new host file DEST\n"
		   "                                             (sparse raw, or zstd with --compress)\n");
}

static void summary(bool json, const char *what, const char *from, const char *to, const char *format,
		    const struct totals *t)
{
	double secs = (double)(base_mono_ns() - t->t0) / 1e9;

	if (!json)
		return;
	printf("{\"%s\":", what);
	tool_json_str(to);
	printf(",\"source\":");
	tool_json_str(from);
	printf(",\"format\":\"%s\",\"size\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,"
	       "\"bytes_skipped\":%llu,\"seconds\":%.3f}\n", format, (unsigned long long)t->size,
	       (unsigned long long)t->read, (unsigned long long)t->written, (unsigned long long)t->skipped, secs);
}

/* ---- import ----------------------------------------------------------------------- */

/*
 * The writes of an import go to a pool of writer threads, several in flight
 * at once (a new file's writes allocate, which libvmfs does synchronously,
 * so its asynchronous queue would not overlap them): the source is read
 * into one of NBUF batch buffers while the writers drain the others.
 */
#define WRITERS 2
#define NBUF 8
#define WQ 64

struct witem {
	const uint8_t *buf;
	size_t len;
	uint64_t off;
	unsigned slot;
};

struct import {
	struct vmfs *fs;
	uint64_t ino;
	int fd;
	const char *src;
	enum fmt fmt;
	struct qcow2 *q;
	struct totals t;
	struct tool_progress bar;
	char err[512];
	/* the writer pool, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *bufs[NBUF];
	unsigned pending[NBUF], cur;
	struct witem q_items[WQ];
	unsigned qhead, qcount;
	int werr;
	bool stop;
	pthread_t th[WRITERS];
	unsigned nth;
};

static void *writer(void *arg)
{
	struct import *im = arg;

	pthread_mutex_lock(&im->lock);
	for (;;) {
		struct witem w;
		ssize_t n;

		while (!im->qcount && !im->stop)
			pthread_cond_wait(&im->cond, &im->lock);
		if (!im->qcount)
			break;
		w = im->q_items[im->qhead];
		im->qhead = (im->qhead + 1) % WQ;
		im->qcount--;
		pthread_cond_broadcast(&im->cond);
		pthread_mutex_unlock(&im->lock);
		n = im->werr ? 0 : vmfs_pwrite(im->fs, im->ino, w.buf, w.len, w.off);
		pthread_mutex_lock(&im->lock);
		if (n != (ssize_t)w.len && !im->werr)
			im->werr = n < 0 ? (int)n : -EIO;
		im->pending[w.slot]--;
		pthread_cond_broadcast(&im->cond);
	}
	pthread_mutex_unlock(&im->lock);
	return NULL;
}

static int pool_start(struct import *im)
{
	pthread_mutex_init(&im->lock, NULL);
	pthread_cond_init(&im->cond, NULL);
	for (unsigned i = 0; i < NBUF; i++)
		if (!(im->bufs[i] = malloc(BATCH)))
			return -ENOMEM;
	for (; im->nth < WRITERS; im->nth++)
		if (pthread_create(&im->th[im->nth], NULL, writer, im))
			return im->nth ? 0 : -EAGAIN;
	return 0;
}

/* Waits for every write queued; the first error of any. */
static int pool_drain(struct import *im)
{
	int ret;

	pthread_mutex_lock(&im->lock);
	for (;;) {
		unsigned busy = 0;

		for (unsigned i = 0; i < NBUF; i++)
			busy += im->pending[i];
		if (!busy)
			break;
		pthread_cond_wait(&im->cond, &im->lock);
	}
	ret = im->werr;
	pthread_mutex_unlock(&im->lock);
	return ret;
}

static void pool_stop(struct import *im)
{
	if (im->nth) {
		pool_drain(im);
		pthread_mutex_lock(&im->lock);
		im->stop = true;
		pthread_cond_broadcast(&im->cond);
		pthread_mutex_unlock(&im->lock);
		for (unsigned i = 0; i < im->nth; i++)
			pthread_join(im->th[i], NULL);
		pthread_cond_destroy(&im->cond);
		pthread_mutex_destroy(&im->lock);
	}
	for (unsigned i = 0; i < NBUF; i++)
		free(im->bufs[i]);
}

/* The next batch buffer, once the writes from it are done. */
static uint8_t *next_buf(struct import *im)
{
	pthread_mutex_lock(&im->lock);
	im->cur = (im->cur + 1) % NBUF;
	while (im->pending[im->cur])
		pthread_cond_wait(&im->cond, &im->lock);
	pthread_mutex_unlock(&im->lock);
	return im->bufs[im->cur];
}

/*
 * Queues the writes of buf (len bytes at off of PATH; buf is the current
 * batch buffer), each run of CHUNKs that are not all zero one write: an
 * all-zero CHUNK stays a hole. 0, or the first write error so far.
 */
static int put(struct import *im, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t at = 0;
	int ret;

	while (at < len) {
		size_t n = len - at < CHUNK ? len - at : CHUNK, run = 0;

		if (base_all_zero(buf + at, n)) {
			im->t.skipped += n;
			at += n;
			continue;
		}
		/* the run of chunks with data from here */
		while (at + run < len) {
			size_t k = len - at - run < CHUNK ? len - at - run : CHUNK;

			if (run && base_all_zero(buf + at + run, k))
				break;
			run += k;
		}
		pthread_mutex_lock(&im->lock);
		while (im->qcount == WQ)
			pthread_cond_wait(&im->cond, &im->lock);
		im->q_items[(im->qhead + im->qcount++) % WQ] =
			(struct witem){ .buf = buf + at, .len = run, .off = off + at, .slot = im->cur };
		im->pending[im->cur]++;
		pthread_cond_broadcast(&im->cond);
		pthread_mutex_unlock(&im->lock);
		im->t.written += run;
		at += run;
	}
	pthread_mutex_lock(&im->lock);
	ret = im->werr;
	pthread_mutex_unlock(&im->lock);
	return ret;
}

static int import_raw(struct import *im)
{
	uint8_t *buf;
	uint64_t off = 0, end;
	int ret;

	while (off < im->t.size) {
		/* the next data run: SEEK_DATA and SEEK_HOLE where the source's filesystem has them */
		off_t d = lseek(im->fd, (off_t)off, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break;	/* a hole to the end */
		if (d < 0)
			d = (off_t)off, h = (off_t)im->t.size;
		else if ((h = lseek(im->fd, d, SEEK_HOLE)) < 0)
			h = (off_t)im->t.size;
		im->t.skipped += (uint64_t)d - off;
		for (off = (uint64_t)d, end = (uint64_t)h; off < end;) {
			size_t n = end - off < BATCH ? (size_t)(end - off) : BATCH;
			ssize_t r;

			buf = next_buf(im);
			r = pread(im->fd, buf, n, (off_t)off);

			if (r <= 0) {
				snprintf(im->err, sizeof(im->err), "%s: %s", im->src, r < 0 ? strerror(errno) : "shorter than it was");
				return r < 0 ? -errno : -EIO;
			}
			im->t.read += (uint64_t)r;
			ret = put(im, buf, (size_t)r, off);
			if (ret)
				return ret;
			off += (uint64_t)r;
			tool_progress_update(&im->bar, off);
		}
	}
	im->t.skipped += im->t.size > off ? im->t.size - off : 0;
	return 0;
}

static int import_qcow2(struct import *im)
{
	uint8_t *buf;
	uint64_t off = 0;
	int ret;

	while (off < im->t.size) {
		uint64_t len = im->t.size - off;
		bool data;

		ret = qcow2_map(im->q, off, &len, &data, im->err, sizeof(im->err));
		if (ret)
			return ret;
		if (!len) {
			snprintf(im->err, sizeof(im->err), "%s: its map is empty at %llu", im->src, (unsigned long long)off);
			return -EIO;
		}
		if (!data) {
			im->t.skipped += len;
			off += len;
			tool_progress_update(&im->bar, off);
			continue;
		}
		for (uint64_t end = off + len; off < end;) {
			size_t n = end - off < BATCH ? (size_t)(end - off) : BATCH;

			buf = next_buf(im);
			ret = qcow2_read(im->q, buf, n, off, im->err, sizeof(im->err));
			if (ret)
				return ret;
			im->t.read += n;
			ret = put(im, buf, n, off);
			if (ret)
				return ret;
			off += n;
			tool_progress_update(&im->bar, off);
		}
	}
	return 0;
}

/*
 * One call of the decoder into the batch buffer *buf (*fill bytes in it):
 * a full buffer is queued for writing at *off and the next one taken.
 * *last: what the decoder returned (0: a frame ended); *made: bytes it gave.
 */
static int zstep(struct import *im, ZSTD_DCtx *d, ZSTD_inBuffer *ib, uint8_t **buf, size_t *fill, uint64_t *off,
		 size_t *last, size_t *made)
{
	ZSTD_outBuffer ob = { *buf + *fill, BATCH - *fill, 0 };
	int ret = 0;

	*last = ZSTD_decompressStream(d, &ob, ib);
	if (ZSTD_isError(*last)) {
		snprintf(im->err, sizeof(im->err), "%s: damaged (zstd: %s)", im->src, ZSTD_getErrorName(*last));
		return -EINVAL;
	}
	if (made)
		*made = ob.pos;
	*fill += ob.pos;
	if (*fill == BATCH) {
		ret = put(im, *buf, *fill, *off);
		*off += *fill;
		*fill = 0;
		*buf = next_buf(im);
	}
	return ret;
}

/* A zstd stream: decompressed through the batch buffers; its checksum is checked at each frame's end. */
static int import_zst(struct import *im)
{
	uint8_t *buf = next_buf(im);
	ZSTD_DCtx *d = ZSTD_createDCtx();
	size_t in_cap = ZSTD_DStreamInSize(), last = 0, fill = 0;
	uint8_t *in = malloc(in_cap);
	uint64_t off = 0, pos = 0;
	bool eof = false;
	int ret = 0;

	if (!d || !in) {
		ret = -ENOMEM;
		goto out;
	}
	while (!ret) {
		ZSTD_inBuffer ib;
		ssize_t r = pread(im->fd, in, in_cap, (off_t)pos);

		if (r < 0) {
			ret = -errno;
			snprintf(im->err, sizeof(im->err), "%s: %s", im->src, strerror(errno));
			break;
		}
		if (r == 0) {
			eof = true;
			break;
		}
		pos += (uint64_t)r;
		im->t.read += (uint64_t)r;
		ib = (ZSTD_inBuffer){ in, (size_t)r, 0 };
		while (ib.pos < ib.size && !ret)
			ret = zstep(im, d, &ib, &buf, &fill, &off, &last, NULL);
		tool_progress_update(&im->bar, pos);
	}
	/* what the decoder still holds, then: a stream that stops inside a frame was cut short */
	while (!ret && eof && last != 0) {
		ZSTD_inBuffer ib = { in, 0, 0 };
		size_t made;

		ret = zstep(im, d, &ib, &buf, &fill, &off, &last, &made);
		if (!ret && !made && last) {
			snprintf(im->err, sizeof(im->err), "%s: truncated (its last zstd frame does not end)", im->src);
			ret = -EINVAL;
		}
	}
	if (!ret && fill) {
		ret = put(im, buf, fill, off);
		off += fill;
	}
	im->t.size = off;
out:
	ZSTD_freeDCtx(d);
	free(in);
	return ret;
}

static enum fmt probe(int fd)
{
	uint8_t head[8] = { 0 };

	if (pread(fd, head, sizeof(head), 0) < 4)
		return FMT_RAW;
	if (qcow2_probe(head, sizeof(head)))
		return FMT_QCOW2;
	if (head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd)
		return FMT_ZST;
	return FMT_RAW;
}

/* Opens the source and sets im->t.size (0 for zst: known at its end). Says why on failure. */
static int open_source(struct import *im)
{
	struct stat st;
	int ret;

	im->fd = open(im->src, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0 || fstat(im->fd, &st)) {
		tool_err("%s: %s", im->src, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		tool_err("%s: not a file or a block device", im->src);
		return -EINVAL;
	}
	if (im->fmt == FMT_AUTO)
		im->fmt = probe(im->fd);
	switch (im->fmt) {
	case FMT_QCOW2:
		ret = qcow2_open(im->fd, im->src, &im->q, im->err, sizeof(im->err));
		if (ret) {
			tool_err("%s", im->err);
			return ret;
		}
		im->t.size = qcow2_size(im->q);
		return 0;
	case FMT_ZST:
		im->t.size = 0;
		return 0;
	default:
		if (S_ISBLK(st.st_mode)) {
			uint64_t end = (uint64_t)lseek(im->fd, 0, SEEK_END);

			im->t.size = end;
		} else {
			im->t.size = (uint64_t)st.st_size;
		}
		return 0;
	}
}

/* The next of the three operands: false (usage said) for an unknown option, a fourth operand or (arg NULL) too few. */
static bool operand(const char *arg, const char *pos[3], int *n)
{
	if (!arg || (arg[0] == '-' && arg[1]) || *n == 3) {
		usage(stderr);
		return false;
	}
	pos[(*n)++] = arg;
	return true;
}

static int parse_fmt(const char *s, enum fmt *f)
{
	for (int i = FMT_RAW; i <= FMT_ZST; i++)
		if (!strcmp(s, fmt_name[i])) {
			*f = (enum fmt)i;
			return 0;
		}
	tool_err("--format '%s': want raw, qcow2 or zst", s);
	return -EINVAL;
}

int cmd_import(int argc, char **argv)
{
	struct import im = { .fd = -1, .fmt = FMT_AUTO };
	const char *pos[3], *base;
	char *dirbuf = NULL, err[512];
	struct vmfs_stat st;
	bool json = false, made = false;
	uint64_t dir;
	int n = 0, ret, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
			if (parse_fmt(argv[++i], &im.fmt))
				return 2;
		} else if (!operand(argv[i], pos, &n)) {
			return 2;
		}
	}
	if (n != 3 && !operand(NULL, pos, &n))
		return 2;
	im.src = pos[1];
	im.t.t0 = base_mono_ns();
	/* the source first: a bad image is said before the datastore is joined */
	if (open_source(&im))
		goto out;
	if (pool_start(&im)) {
		tool_err("out of memory");
		goto out;
	}
	im.fs = open_store(pos[0], false);
	if (!im.fs) {
		rc = exit_code;
		goto out;
	}
	ret = snap_new_path(im.fs, pos[2], &dir, &dirbuf, &base, err, sizeof(err));
	if (!ret)
		ret = vmfs_mknod(im.fs, dir, base, S_IFREG | 0644, 0, 0, &st);
	if (ret) {
		tool_err("%s", ret == -EEXIST || ret == -ENOENT || ret == -ENOTDIR || ret == -EINVAL ? err : strerror(-ret));
		goto out;
	}
	made = true;
	vmfs_forget(im.fs, st.ino, 1);
	im.ino = st.ino;
	/* the size first: a thin file of the image's size, then its data */
	{
		struct vmfs_stat sz = { .size = im.t.size };

		ret = vmfs_setattr(im.fs, im.ino, &sz, VMFS_SET_SIZE, NULL);
	}
	if (!ret) {
		tool_progress_init(&im.bar, "import", im.fmt == FMT_ZST ? (uint64_t)lseek(im.fd, 0, SEEK_END) : im.t.size);
		ret = im.fmt == FMT_QCOW2 ? import_qcow2(&im) : im.fmt == FMT_ZST ? import_zst(&im) : import_raw(&im);
		/* every write done (or failed) before the size is set, the file synced or removed */
		if (pool_drain(&im) && !ret)
			ret = im.werr;
		tool_progress_done(&im.bar);
	}
	if (!ret && im.fmt == FMT_ZST) {
		struct vmfs_stat sz = { .size = im.t.size };

		ret = vmfs_setattr(im.fs, im.ino, &sz, VMFS_SET_SIZE, NULL);
	}
	if (!ret)
		ret = vmfs_fsync(im.fs, im.ino, false);
	if (ret) {
		tool_err("%s", im.err[0] ? im.err : strerror(-ret));
		goto out;
	}
	summary(json, "import", im.src, pos[2], fmt_name[im.fmt], &im.t);
	rc = 0;
out:
	pool_stop(&im);
	if (rc && made) {
		/* the datastore as it was */
		ret = vmfs_unlink(im.fs, dir, base);
		if (ret)
			tool_err("%s: removing the partial file: %s", pos[2], strerror(-ret));
	}
	if (im.fs && vmfs_close(im.fs) && !rc) {
		tool_err("%s: close failed", pos[0]);
		rc = 1;
	}
	if (im.q)
		qcow2_close(im.q);
	if (im.fd >= 0)
		close(im.fd);
	free(dirbuf);
	return rc;
}

/* ---- export ----------------------------------------------------------------------- */

struct export {
	struct vmfs *fs;
	uint64_t ino;
	int fd;
	const char *dest;
	bool compress;
	int level, threads;
	ZSTD_CCtx *z;
	uint8_t *zout;
	size_t zcap;
	uint64_t out_off;
	struct totals t;
	struct tool_progress bar;
};

static int out_write(struct export *ex, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = pwrite(ex->fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
		ex->t.written += (uint64_t)w;
	}
	return 0;
}

/* Feeds len bytes (buf, or zeros when buf is NULL) to the compressor; end: the last of them. */
static int zfeed(struct export *ex, const uint8_t *buf, size_t len, bool end)
{
	static const uint8_t zeros[CHUNK];
	int ret = 0;

	do {
		size_t n = buf ? len : (len < sizeof(zeros) ? len : sizeof(zeros));
		ZSTD_inBuffer ib = { buf ? buf : zeros, n, 0 };
		bool last = end && n == len;
		size_t left;

		do {
			ZSTD_outBuffer ob = { ex->zout, ex->zcap, 0 };

			left = ZSTD_compressStream2(ex->z, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left))
				return -EIO;
			if (ob.pos && (ret = out_write(ex, ex->zout, ob.pos, ex->out_off)))
				return ret;
			ex->out_off += ob.pos;
		} while (last ? left != 0 : ib.pos < ib.size);
		len -= n;
		if (buf)
			buf += n;
	} while (len);
	return 0;
}

/* Every byte of the file in order: data read and written (or compressed), holes and zero chunks skipped. */
static int export_data(struct export *ex, uint8_t *buf)
{
	uint64_t off = 0;
	int ret;

	while (off < ex->t.size) {
		uint64_t d, h;

		ret = vmfs_lseek(ex->fs, ex->ino, off, SEEK_DATA, &d);
		if (ret == -ENXIO)
			d = ex->t.size;
		else if (ret)
			return ret;
		if (d > off) {	/* a hole */
			ex->t.skipped += d - off;
			if (ex->compress && (ret = zfeed(ex, NULL, d - off, d == ex->t.size)))
				return ret;
			off = d;
			if (off == ex->t.size)
				break;
		}
		ret = vmfs_lseek(ex->fs, ex->ino, off, SEEK_HOLE, &h);
		if (ret)
			return ret;
		while (off < h) {
			size_t n = h - off < BATCH ? (size_t)(h - off) : BATCH;
			ssize_t r = vmfs_pread(ex->fs, ex->ino, buf, n, off);

			if (r != (ssize_t)n)
				return r < 0 ? (int)r : -EIO;
			ex->t.read += n;
			if (ex->compress) {
				ret = zfeed(ex, buf, n, off + n == ex->t.size);
			} else {
				ret = 0;
				for (size_t at = 0; at < n && !ret; at += CHUNK) {
					size_t k = n - at < CHUNK ? n - at : CHUNK;

					if (base_all_zero(buf + at, k))
						ex->t.skipped += k;
					else
						ret = out_write(ex, buf + at, k, off + at);
				}
			}
			if (ret)
				return ret;
			off += n;
			tool_progress_update(&ex->bar, off);
		}
	}
	/* an empty file still makes a (empty) frame */
	if (ex->compress && ex->t.size == 0)
		return zfeed(ex, NULL, 0, true);
	return 0;
}

static int parse_int(const char *s, int lo, int hi, const char *what, int *out)
{
	uint64_t v;

	if (!tool_parse_u64(s, &v) || v < (uint64_t)lo || v > (uint64_t)hi) {
		tool_err("%s '%s': want %d..%d", what, s, lo, hi);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

/* A live file some host holds for writing is changing under the export: refuse, naming it. */
struct writer_scan {
	uint64_t ino;
	struct vmfs_lock lock;
	bool found;
};

static int writer_of(void *arg, const struct vmfs_lock *l)
{
	struct writer_scan *w = arg;

	if (l->kind != VMFS_LOCK_INODE || l->id != w->ino || l->mode != VMFS_LOCK_EX)
		return 0;
	w->lock = *l;
	w->found = true;
	return 1;
}

int cmd_export(int argc, char **argv)
{
	struct export ex = { .fd = -1, .level = 3, .threads = (int)sysconf(_SC_NPROCESSORS_ONLN) };
	const char *pos[3];
	struct writer_scan ws = { 0 };
	struct vmfs_stat st;
	char err[512], who[200];
	uint64_t file;
	uint8_t *buf = NULL;
	bool json = false, snap, made = false;
	int n = 0, ret, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--compress"))
			ex.compress = true;
		else if (!strcmp(argv[i], "--level") && i + 1 < argc) {
			if (parse_int(argv[++i], 1, ZSTD_maxCLevel(), "--level", &ex.level))
				return 2;
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			if (parse_int(argv[++i], 1, 256, "--threads", &ex.threads))
				return 2;
		} else if (!operand(argv[i], pos, &n)) {
			return 2;
		}
	}
	if (n != 3 && !operand(NULL, pos, &n))
		return 2;
	if (ex.threads < 1)
		ex.threads = 1;
	ex.dest = pos[2];
	ex.t.t0 = base_mono_ns();
	ex.fs = open_store(pos[0], true);
	if (!ex.fs)
		return exit_code;
	ret = snap_source(ex.fs, pos[1], &file, &ex.ino, &snap, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		goto out;
	}
	if (!snap) {
		ws.ino = file;
		vmfs_locks(ex.fs, writer_of, &ws);
		if (ws.found) {
			vmfs_lock_holder(&ws.lock, who, sizeof(who));
			tool_err("%s: in use by %s: export a snapshot of it (vmfsctl snapshot create, then %s@NAME)",
				 pos[1], who, pos[1]);
			goto out;
		}
	}
	ret = vmfs_getattr(ex.fs, ex.ino, &st);
	if (!ret && !S_ISREG(st.mode))
		ret = -EINVAL;
	if (ret) {
		tool_err("%s: %s", pos[1], ret == -EINVAL ? "not a regular file" : strerror(-ret));
		goto out;
	}
	ex.t.size = st.size;
	buf = malloc(BATCH);
	ex.fd = open(ex.dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (ex.fd < 0) {
		tool_err("%s: %s", ex.dest, strerror(errno));
		goto out;
	}
	made = true;
	if (!buf) {
		tool_err("out of memory");
		goto out;
	}
	if (ex.compress) {
		ex.z = ZSTD_createCCtx();
		ex.zcap = ZSTD_CStreamOutSize();
		ex.zout = malloc(ex.zcap);
		if (!ex.z || !ex.zout || ZSTD_isError(ZSTD_CCtx_setParameter(ex.z, ZSTD_c_compressionLevel, ex.level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(ex.z, ZSTD_c_checksumFlag, 1)) ||
		    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(ex.z, ex.t.size))) {
			tool_err("zstd: cannot set up the compressor");
			goto out;
		}
		/* threads: a libzstd built without them compresses on this one */
		if (ex.threads > 1)
			ZSTD_CCtx_setParameter(ex.z, ZSTD_c_nbWorkers, ex.threads);
	}
	tool_progress_init(&ex.bar, "export", ex.t.size);
	ret = export_data(&ex, buf);
	tool_progress_done(&ex.bar);
	if (!ret && !ex.compress && ftruncate(ex.fd, (off_t)ex.t.size))
		ret = -errno;
	if (!ret && fsync(ex.fd))
		ret = -errno;
	if (ret) {
		tool_err("%s: %s", ret == -EIO && ex.compress ? "zstd" : ex.dest, strerror(-ret));
		goto out;
	}
	summary(json, "export", pos[1], ex.dest, ex.compress ? "zst" : "raw", &ex.t);
	rc = 0;
out:
	if (ex.fd >= 0)
		close(ex.fd);
	if (rc && made)
		unlink(ex.dest);	/* no partial image left behind */
	ZSTD_freeCCtx(ex.z);
	free(ex.zout);
	free(buf);
	vmfs_close(ex.fs);
	return rc;
}
