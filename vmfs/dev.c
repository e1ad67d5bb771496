/*
 * Device layer: opens a block device or a regular file with O_DIRECT and does
 * sector-aligned I/O through one of three engines (io_uring, libaio, plain
 * pread/pwrite), or the "crash" test engine that holds writes in memory until a
 * flush and loses them at a planned power cut. An engine only knows how to
 * prepare, submit and reap I/O on a context (a ring, an aio context, or
 * nothing at all); everything above that is shared: alignment checks, keeping
 * up to a context's depth in flight, finishing short transfers, retrying
 * EINTR/EAGAIN, turning a read past the end into -EIO. This file is that
 * shared core (open, geometry, the engine table, contexts, the synchronous and
 * queued calls); the engines are vmfs/dev_uring.c, dev_aio.c, dev_sync.c and
 * dev_crash.c, and vmfs/dev_engine_i.h is what they share with the core.
 *
 * Invariants: (1) a context is used by one thread at a time: synchronous calls
 * borrow one from the device's pool, a dev_queue owns one; (2) at most depth
 * I/Os of a context are prepared, in flight or completed-but-unreported, so its
 * rings and event arrays never overflow; (3) no synchronous call returns while
 * the kernel may still use one of its buffers.
 */
#include "vmfs/dev_engine_i.h"

#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEV_POOL_DEPTH 64        /* depth of the contexts the synchronous calls borrow */
#define DEV_QUEUE_MAX 4096       /* largest dev_queue depth */
#define DEV_IO_MAX (1u << 30)    /* largest single submission; the rest follows as a short transfer */

struct dev_queue {
	struct dev_ctx *ctx;
	struct dev_io_list ready;      /* finished, not yet reported by dev_queue_reap */
};

/* ---- small helpers ------------------------------------------------------ */

static void list_init(struct dev_io_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
	l->n = 0;
}

static void list_push(struct dev_io_list *l, struct dev_io *io)
{
	io->next = NULL;
	*l->tail = io;
	l->tail = &io->next;
	l->n++;
}

static struct dev_io *list_pop(struct dev_io_list *l)
{
	struct dev_io *io = l->head;

	if (!io)
		return NULL;
	l->head = io->next;
	if (!l->head)
		l->tail = &l->head;
	l->n--;
	return io;
}

void dev_io_span(const struct dev_io *io, void **buf, size_t *len, uint64_t *off)
{
	size_t left = io->req->len - io->done;

	*buf = (char *)io->req->buf + io->done;
	*len = base_min(left, (size_t)DEV_IO_MAX);
	*off = io->req->off + io->done;
}

long dev_io_sync(int fd, struct dev_io *io)
{
	void *buf;
	size_t len;
	uint64_t off;
	ssize_t n;

	if (io->op == IO_FSYNC)
		return fdatasync(fd) ? -errno : 0;
	dev_io_span(io, &buf, &len, &off);
	if (io->op == IO_READ)
		n = pread(fd, buf, len, (off_t)off);
	else
		n = pwrite(fd, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

/* The engines dev_open knows by name (engine_lookup). */
static const struct dev_engine *const engines[] = { &dev_uring_engine, &dev_aio_engine, &dev_sync_engine,
						     &dev_crash_engine };

/* ---- contexts ----------------------------------------------------------- */

static void ctx_free(struct dev_ctx *c)
{
	if (!c)
		return;
	c->dev->eng->ctx_release(c);
	if (c->evfd >= 0)
		close(c->evfd);
	free(c->out);
	free(c->ios);
	free(c);
}

static int ctx_new(struct vmfs_dev *dev, unsigned depth, struct dev_ctx **out)
{
	struct dev_ctx *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dev = dev;
	c->depth = depth;
	c->evfd = -1;
	c->ios = calloc(depth, sizeof(*c->ios));
	c->out = calloc(depth, sizeof(*c->out));
	if (!c->ios || !c->out) {
		r = -ENOMEM;
		goto err_free_ctx;
	}
	for (unsigned i = depth; i-- > 0;) {
		c->ios[i].next = c->free;
		c->free = &c->ios[i];
	}
	c->nfree = depth;
	list_init(&c->queued);
	list_init(&c->done);
	r = dev->eng->ctx_init(c);
	if (r < 0)
		goto err_free_ctx;
	*out = c;
	return 0;

err_free_ctx:
	free(c->out);
	free(c->ios);
	free(c);
	return r;
}

static struct dev_io *ctx_slot_get(struct dev_ctx *c, struct dev_req *req, enum io_op op)
{
	struct dev_io *io = c->free;

	c->free = io->next;
	c->nfree--;
	io->req = req;
	io->op = op;
	io->done = 0;
	io->res = 0;
	io->retries = 0;
	return io;
}

static void ctx_slot_put(struct dev_ctx *c, struct dev_io *io)
{
	io->next = c->free;
	c->free = io;
	c->nfree++;
}

static void ctx_queue(struct dev_ctx *c, struct dev_io *io)
{
	if (c->err) {
		io->res = c->err;
		io->retries = DEV_RETRY_MAX;
		list_push(&c->done, io);
	} else if (c->dev->eng->prep(c, io))
		list_push(&c->done, io);
	else
		list_push(&c->queued, io);
}

/*
 * Hands everything prepared to the kernel. When the kernel refuses while other
 * I/O is in flight, the rest waits for the next call (after a reap); when
 * nothing is in flight it fails the prepared I/O, which then completes with the
 * error, and the context is not reused (its ring may still hold them). wait:
 * the caller reaps at least one completion next and none is waiting in
 * c->done, so the engine may wait for one as it submits.
 */
static void ctx_submit(struct dev_ctx *c, bool wait)
{
	unsigned tries = 0;

	while (c->queued.n) {
		int r = c->dev->eng->submit(c, c->queued.n, wait && !c->done.n);

		if (r > 0) {
			for (int i = 0; i < r; i++)
				list_pop(&c->queued);
			c->inflight += (unsigned)r;
			continue;
		}
		if (c->inflight)
			return;
		if (r == -EINTR || ((r == -EAGAIN || r == -EBUSY || r == 0) && ++tries < DEV_RETRY_MAX))
			continue;
		c->err = r < 0 ? r : -EIO;
		while (c->queued.n) {
			struct dev_io *io = list_pop(&c->queued);

			io->res = c->err;
			io->retries = DEV_RETRY_MAX;
			list_push(&c->done, io);
		}
	}
}

/*
 * Collects completions into c->out: at least min of those outstanding (fewer
 * when fewer are), at most depth. Returns how many, or -errno when the engine
 * failed (the context is then broken: c->err).
 */
static int ctx_reap(struct dev_ctx *c, unsigned min)
{
	unsigned n = 0;

	while (c->done.n)
		c->out[n++] = list_pop(&c->done);
	if (c->inflight) {
		unsigned want = n < min ? base_min(min - n, c->inflight) : 0;
		int r = c->dev->eng->reap(c, want, c->inflight, c->out + n);

		if (r < 0) {
			c->err = r;
			return n ? (int)n : r;
		}
		c->inflight -= (unsigned)r;
		n += (unsigned)r;
	}
	return (int)n;
}

/*
 * Decides what a completed io becomes. Returns true when it is finished
 * (io->req->res holds 0 or -errno), false when its rest was queued again.
 */
static bool io_complete(struct dev_ctx *c, struct dev_io *io)
{
	struct dev_req *req = io->req;
	long r = io->res;
	int err = 0;

	if (r == -EINTR || r == -EAGAIN) {
		if (++io->retries <= DEV_RETRY_MAX) {
			ctx_queue(c, io);
			return false;
		}
		err = (int)r;
	} else if (r < 0) {
		err = (int)r;
	} else if (io->op != IO_FSYNC) {
		io->done += (size_t)r;
		if (r == 0 || io->done > req->len || (c->dev->direct && io->done % c->dev->sector)) {
			/* past the end (a read), no progress, or O_DIRECT stopping inside a sector (EOF) */
			err = -EIO;
		} else if (io->done < req->len) {
			ctx_queue(c, io);
			return false;
		}
	}
	req->res = err;
	return true;
}

/*
 * Runs n checked requests on c (as fdatasyncs when fsync), keeping up to depth
 * in flight; sets each res. Returns 0 or the first request's error.
 */
static int ctx_run(struct dev_ctx *c, struct dev_req *reqs, unsigned n, bool fsync)
{
	unsigned next = 0, busy = 0;
	int r;

	while (next < n || busy) {
		while (next < n && c->free) {
			struct dev_req *req = &reqs[next++];
			enum io_op op = fsync ? IO_FSYNC : (enum io_op)req->op;

			if (op != IO_FSYNC && req->len == 0) {
				req->res = 0;
				continue;
			}
			ctx_queue(c, ctx_slot_get(c, req, op));
			busy++;
		}
		ctx_submit(c, true);
		r = ctx_reap(c, 1);
		if (r < 0)
			goto err_fail_rest;
		for (int i = 0; i < r; i++) {
			struct dev_io *io = c->out[i];

			if (io_complete(c, io)) {
				ctx_slot_put(c, io);
				busy--;
			}
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (reqs[i].res)
			return reqs[i].res;
	return 0;

err_fail_rest:
	/* the engine broke: what has no result yet gets its error */
	for (unsigned i = 0; i < n; i++)
		if (i >= next || reqs[i].res == -EINPROGRESS)
			reqs[i].res = r;
	return r;
}

/* ---- the device's pool of contexts -------------------------------------- */

static int pool_get(struct vmfs_dev *dev, struct dev_ctx **out)
{
	struct dev_ctx *c;
	int r;

	pthread_mutex_lock(&dev->pool_lock);
	for (;;) {
		if (dev->pool) {
			c = dev->pool;
			dev->pool = c->next;
			pthread_mutex_unlock(&dev->pool_lock);
			*out = c;
			return 0;
		}
		dev->nctx++;
		pthread_mutex_unlock(&dev->pool_lock);
		r = ctx_new(dev, DEV_POOL_DEPTH, &c);
		pthread_mutex_lock(&dev->pool_lock);
		if (r == 0) {
			pthread_mutex_unlock(&dev->pool_lock);
			*out = c;
			return 0;
		}
		dev->nctx--;
		/* out of rings or aio events: wait for another thread's context */
		if ((r != -ENOMEM && r != -EAGAIN) || dev->nctx == 0)
			break;
		while (!dev->pool && dev->nctx > 0)
			pthread_cond_wait(&dev->pool_cond, &dev->pool_lock);
	}
	pthread_mutex_unlock(&dev->pool_lock);
	return r;
}

static void pool_put(struct vmfs_dev *dev, struct dev_ctx *c)
{
	pthread_mutex_lock(&dev->pool_lock);
	if (c->err) {
		dev->nctx--;
	} else {
		c->next = dev->pool;
		dev->pool = c;
	}
	pthread_cond_signal(&dev->pool_cond);
	pthread_mutex_unlock(&dev->pool_lock);
	if (c->err)
		ctx_free(c);
}

/* ---- opening ------------------------------------------------------------ */

static int engine_lookup(const char *name, const struct dev_engine **out)
{
	if (!name || !*name)
		name = getenv("VMFS_IO_ENGINE");
	if (!name || !*name)
		name = "uring";
	for (size_t i = 0; i < base_array_size(engines); i++) {
		if (!strcmp(engines[i]->name, name)) {
			*out = engines[i];
			return 0;
		}
	}
	fprintf(stderr, "vmfs: unknown I/O engine '%s' (expected uring, aio, sync or crash)\n", name);
	return -EINVAL;
}

static int file_sector_size(unsigned *out)
{
	const char *s = getenv("VMFS_SECTOR_SIZE");

	*out = 512;
	if (!s || !*s)
		return 0;
	if (!strcmp(s, "4096"))
		*out = 4096;
	else if (strcmp(s, "512")) {
		fprintf(stderr, "vmfs: VMFS_SECTOR_SIZE '%s': expected 512 or 4096\n", s);
		return -EINVAL;
	}
	return 0;
}

/* Creates the first context, falling back from io_uring to aio to sync. */
static int dev_start_engine(struct vmfs_dev *dev, const struct dev_engine *eng)
{
	static atomic_bool told;
	const struct dev_engine *wanted = eng;
	struct dev_ctx *c;
	int r, first_err = 0;

	for (;;) {
		dev->eng = eng;
		r = ctx_new(dev, DEV_POOL_DEPTH, &c);
		if (r == 0)
			break;
		if (!first_err)
			first_err = r;
		if (!eng->fallback || (r != -ENOSYS && r != -EPERM && r != -ENOMEM && r != -EAGAIN))
			return r;
		eng = eng->fallback;
	}
	if (eng != wanted && !atomic_exchange(&told, true))
		fprintf(stderr, "vmfs: I/O engine %s unavailable (%s), using %s\n",
			wanted->name, strerror(-first_err), eng->name);
	dev->pool = c;
	dev->nctx = 1;
	return 0;
}

static int dev_learn_geometry(struct vmfs_dev *dev, const struct stat *st)
{
	uint64_t size;
	int ssz;

	if (!S_ISBLK(st->st_mode)) {
		dev->size = (uint64_t)st->st_size;
		return file_sector_size(&dev->sector);
	}
	dev->blockdev = true;
	if (ioctl(dev->fd, BLKGETSIZE64, &size) < 0 || ioctl(dev->fd, BLKSSZGET, &ssz) < 0)
		return -errno;
	if (ssz < 512 || !base_is_pow2((uint64_t)ssz))
		return -EINVAL;
	dev->size = size;
	dev->sector = (unsigned)ssz;
	return 0;
}

const char *dev_strerror(int err)
{
	return err == -ENOTBLK ? "not a regular file or block device" : strerror(-err);
}

int dev_open(const char *path, unsigned flags, const char *engine, struct vmfs_dev **out)
{
	const struct dev_engine *eng;
	struct vmfs_dev *dev;
	struct stat st;
	int r, oflags;

	if (!path || !out || (flags & ~(unsigned)(DEV_RDONLY | DEV_CREATE)))
		return -EINVAL;
	r = engine_lookup(engine, &eng);
	if (r < 0)
		return r;
	/* refuse directories, character devices and FIFOs before open can block on them */
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
			return -ENOTBLK;
	} else if (errno != ENOENT || !(flags & DEV_CREATE)) {
		return -errno;
	}

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->flags = flags;
	oflags = (flags & DEV_RDONLY ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		 (flags & DEV_CREATE ? O_CREAT : 0);
	dev->fd = open(path, oflags | O_DIRECT, 0644);
	dev->direct = dev->fd >= 0;
	if (dev->fd < 0 && errno == EINVAL) {
		dev->fd = open(path, oflags, 0644);
		if (dev->fd >= 0)
			fprintf(stderr, "vmfs: %s: O_DIRECT not supported, using buffered I/O\n", path);
	}
	if (dev->fd < 0) {
		r = -errno;
		goto err_free_dev;
	}
	if (fstat(dev->fd, &st) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = -ENOTBLK;
		goto err_close_fd;
	}
	r = dev_learn_geometry(dev, &st);
	if (r < 0)
		goto err_close_fd;
	r = -pthread_mutex_init(&dev->pool_lock, NULL);
	if (r < 0)
		goto err_close_fd;
	r = -pthread_cond_init(&dev->pool_cond, NULL);
	if (r < 0)
		goto err_destroy_lock;
	if (eng == &dev_crash_engine) {
		r = dev_crash_new(dev);
		if (r < 0)
			goto err_destroy_cond;
	}
	r = dev_start_engine(dev, eng);
	if (r < 0)
		goto err_free_crash;
	*out = dev;
	return 0;

err_free_crash:
	dev_crash_discard(dev);
err_destroy_cond:
	pthread_cond_destroy(&dev->pool_cond);
err_destroy_lock:
	pthread_mutex_destroy(&dev->pool_lock);
err_close_fd:
	close(dev->fd);
err_free_dev:
	free(dev);
	return r;
}

void dev_close(struct vmfs_dev *dev)
{
	if (!dev)
		return;
	while (dev->pool) {
		struct dev_ctx *c = dev->pool;

		dev->pool = c->next;
		ctx_free(c);
	}
	dev_crash_free(dev);
	pthread_cond_destroy(&dev->pool_cond);
	pthread_mutex_destroy(&dev->pool_lock);
	close(dev->fd);
	free(dev);
}

/* ---- properties --------------------------------------------------------- */

uint64_t dev_size(const struct vmfs_dev *dev)
{
	struct stat st;

	uint64_t size = dev->size;

	/* a file may have grown under us (another host, a write past the end) */
	if (!dev->blockdev && fstat(dev->fd, &st) == 0)
		size = (uint64_t)st.st_size;
	if (dev->crash)     /* writes past the end may still be pending */
		size = base_max(size, dev_crash_end(dev));
	return size;
}

unsigned dev_sector_size(const struct vmfs_dev *dev)
{
	return dev->sector;
}

bool dev_is_blockdev(const struct vmfs_dev *dev)
{
	return dev->blockdev;
}

bool dev_readonly(const struct vmfs_dev *dev)
{
	return dev->flags & DEV_RDONLY;
}

const char *dev_engine_name(const struct vmfs_dev *dev)
{
	return dev->eng->name;
}

int dev_set_size(struct vmfs_dev *dev, uint64_t size)
{
	if (dev_readonly(dev))
		return -EROFS;
	if (dev->blockdev)
		return -ENOTTY;
	if (size > INT64_MAX)
		return -EFBIG;
	if (dev->crash && dev_crash_dead(dev))  /* the crash engine sizes the file at once: not a device write */
		return -EIO;
	while (ftruncate(dev->fd, (off_t)size) < 0)
		if (errno != EINTR)
			return -errno;
	dev->size = size;
	return 0;
}

/* ---- synchronous I/O ---------------------------------------------------- */

static bool dev_aligned(const struct vmfs_dev *dev, uint64_t v)
{
	return (v & (dev->sector - 1)) == 0;
}

void dev_set_write_gate(struct vmfs_dev *dev, bool (*gate)(void *arg), void *arg)
{
	dev->write_gate_arg = arg;
	dev->write_gate = gate;
}

/* The fencing check, made just before a write is handed to the engine. */
static bool dev_write_allowed(const struct vmfs_dev *dev)
{
	return !dev->write_gate || dev->write_gate(dev->write_gate_arg);
}

/*
 * -EINVAL for a bad op, a misaligned or overflowing request, -EROFS for a write
 * on a read-only dev, -EIO for a write after the write gate closed (fenced).
 */
static int req_check(const struct vmfs_dev *dev, const struct dev_req *req)
{
	if (req->op != DEV_OP_READ && req->op != DEV_OP_WRITE)
		return -EINVAL;
	if (req->op == DEV_OP_WRITE && dev_readonly(dev))
		return -EROFS;
	if (req->op == DEV_OP_WRITE && !dev_write_allowed(dev))
		return -EIO;
	if (req->len == 0)
		return 0;
	if (!dev_aligned(dev, req->off) || !dev_aligned(dev, req->len) ||
	    !dev_aligned(dev, (uintptr_t)req->buf) || !req->buf)
		return -EINVAL;
	if (req->off > INT64_MAX || req->len > INT64_MAX - req->off)
		return -EINVAL;
	return 0;
}

int dev_submit_wait(struct vmfs_dev *dev, struct dev_req *reqs, unsigned n)
{
	struct dev_ctx *c;
	int r, err = 0;

	if (n && !reqs)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		reqs[i].res = req_check(dev, &reqs[i]);
		if (reqs[i].res && !err)
			err = reqs[i].res;
	}
	if (err) {
		/* nothing was started: the valid requests are cancelled */
		for (unsigned i = 0; i < n; i++)
			if (!reqs[i].res)
				reqs[i].res = -ECANCELED;
		return err;
	}
	if (n == 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		reqs[i].res = -EINPROGRESS;
	r = pool_get(dev, &c);
	if (r < 0)
		goto err_fail_all;
	r = ctx_run(c, reqs, n, false);
	pool_put(dev, c);
	return r;

err_fail_all:
	for (unsigned i = 0; i < n; i++)
		reqs[i].res = r;
	return r;
}

int dev_pread(struct vmfs_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct dev_req req = { .op = DEV_OP_READ, .buf = buf, .len = len, .off = off };

	return dev_submit_wait(dev, &req, 1);
}

int dev_pwrite(struct vmfs_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct dev_req req = { .op = DEV_OP_WRITE, .buf = (void *)buf, .len = len, .off = off };

	return dev_submit_wait(dev, &req, 1);
}

int dev_flush(struct vmfs_dev *dev)
{
	struct dev_req req = { .res = -EINPROGRESS };
	struct dev_ctx *c;
	int r;

	if (dev_readonly(dev))
		return -EROFS;
	r = pool_get(dev, &c);
	if (r < 0)
		return r;
	r = ctx_run(c, &req, 1, true);
	pool_put(dev, c);
	return r;
}

static int zero_by_writing(struct vmfs_dev *dev, uint64_t off, uint64_t len)
{
	size_t chunk = (size_t)base_min(len, (uint64_t)DEV_ZERO_CHUNK);
	void *zeros = dev_alloc_buf(chunk);
	int r = 0;

	if (!zeros)
		return -ENOMEM;
	while (len && !r) {
		size_t n = (size_t)base_min(len, (uint64_t)chunk);

		r = dev_pwrite(dev, zeros, n, off);
		off += n;
		len -= n;
	}
	free(zeros);
	return r;
}

int dev_file_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* A range past the end grows the file (sparse, so already zero) before punching the rest. */
static int file_zero_range(struct vmfs_dev *dev, uint64_t off, uint64_t len)
{
	struct stat st;
	uint64_t size;
	int r;

	if (fstat(dev->fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	if (off + len > size) {
		r = dev_set_size(dev, off + len);
		if (r < 0 || off >= size)
			return r;
		len = size - off;
	}
	r = dev_file_fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	if (r == -EOPNOTSUPP)
		r = dev_file_fallocate(dev->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
	if (r == -EOPNOTSUPP)
		r = zero_by_writing(dev, off, len);
	return r;
}

int dev_zero_range(struct vmfs_dev *dev, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	if (dev_readonly(dev))
		return -EROFS;
	if (!dev_write_allowed(dev))
		return -EIO;
	if (len == 0)
		return 0;
	if (!dev_aligned(dev, off) || !dev_aligned(dev, len) || off > INT64_MAX ||
	    len > INT64_MAX - off)
		return -EINVAL;
	if (dev->crash)
		return dev_crash_zero_range(dev, off, len);
	if (!dev->blockdev)
		return file_zero_range(dev, off, len);
	if (ioctl(dev->fd, BLKZEROOUT, range) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOTTY)
		return -errno;
	return zero_by_writing(dev, off, len);
}

void *dev_alloc_buf(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	memset(p, 0, len);
	return p;
}

void *dev_alloc_big_buf(size_t len)
{
	size_t cap = base_round_up(len ? len : 1, (size_t)BASE_HUGE_PAGE);
	void *p;

	if (len < DEV_BIG_BUF)
		return dev_alloc_buf(len);
	if (posix_memalign(&p, BASE_HUGE_PAGE, cap))
		return NULL;
	(void)madvise(p, cap, MADV_HUGEPAGE); /* advice: without THP the buffer still works, on 4 KiB pages */
	return p;
}

/* ---- asynchronous queues ------------------------------------------------ */

/*
 * A queue hands its prepared requests to the kernel in one batch at the next
 * dev_queue_kick or dev_queue_reap. Each submitted request holds one of depth
 * slots until reap reports it; dev_queue_submit on a full queue returns -EBUSY.
 */
int dev_queue_new(struct vmfs_dev *dev, unsigned depth, struct dev_queue **out)
{
	struct dev_queue *q;
	int r;

	if (depth == 0 || depth > DEV_QUEUE_MAX)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	list_init(&q->ready);
	r = ctx_new(dev, depth, &q->ctx);
	if (r < 0)
		goto err_free_queue;
	*out = q;
	return 0;

err_free_queue:
	free(q);
	return r;
}

/* Waits for whatever is still in flight, so no buffer is written after free. */
void dev_queue_free(struct dev_queue *q)
{
	struct dev_ctx *c;

	if (!q)
		return;
	c = q->ctx;
	while (c->queued.n || c->inflight || c->done.n) {
		ctx_submit(c, true);
		if (ctx_reap(c, 1) < 0)
			break;
	}
	ctx_free(c);
	free(q);
}

int dev_queue_submit(struct dev_queue *q, struct dev_req *req)
{
	struct dev_ctx *c = q->ctx;
	struct dev_io *io;
	int r;

	if (!req)
		return -EINVAL;
	r = req_check(c->dev, req);
	if (r < 0)
		return r;
	if (!c->free)
		return -EBUSY;
	req->res = -EINPROGRESS;
	io = ctx_slot_get(c, req, (enum io_op)req->op);
	if (req->len == 0) {
		req->res = 0;
		list_push(&q->ready, io);
		return 0;
	}
	ctx_queue(c, io);
	return 0;
}

int dev_queue_eventfd(struct dev_queue *q)
{
	struct dev_ctx *c = q->ctx;
	int fd, r;

	if (c->evfd >= 0)
		return c->evfd;
	if (!c->dev->eng->notify)
		return -EOPNOTSUPP;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = c->dev->eng->notify(c, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->evfd = fd;
	return fd;
}

void dev_queue_kick(struct dev_queue *q)
{
	ctx_submit(q->ctx, false);
}

int dev_queue_reap(struct dev_queue *q, unsigned min, unsigned max, struct dev_req **out)
{
	struct dev_ctx *c = q->ctx;
	unsigned n = 0, busy = c->depth - c->nfree;

	if (min > max || (max && !out))
		return -EINVAL;
	min = base_min(min, busy);   /* never wait for more than was submitted */
	for (;;) {
		int r;

		ctx_submit(c, q->ready.n < min);
		r = ctx_reap(c, q->ready.n < min ? min - q->ready.n : 0);
		if (r < 0)
			return r;
		for (int i = 0; i < r; i++)
			if (io_complete(c, c->out[i]))
				list_push(&q->ready, c->out[i]);
		if (q->ready.n >= min)
			break;
	}
	ctx_submit(c, false);   /* the rest of short transfers goes out now */
	while (n < max && q->ready.n) {
		struct dev_io *io = list_pop(&q->ready);

		out[n++] = io->req;
		ctx_slot_put(c, io);
	}
	return (int)n;
}
