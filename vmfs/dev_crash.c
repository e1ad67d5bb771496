/*
 * The crash engine of the device layer (vmfs/dev.c), for power-cut tests: a
 * device that loses power on cue (the plan: vmfs/dev_crash.h). It does its
 * I/O at prep, with the sync engine's no-op context. Pending writes form a
 * FIFO of private copies; a read is served from the file and then patched
 * with every pending write in order, so it sees the latest data. dev_flush
 * applies the FIFO to the file in order and fdatasyncs. The cut applies what
 * the mode lets land, fdatasyncs that, frees the rest and marks the device
 * dead.
 *
 * Invariants: (1) every I/O and plan change runs under crash->lock; (2) the
 * file holds exactly the flushed writes, plus, after the cut, what landed at
 * the cut; (3) once crashed, nothing more reaches the file.
 */
#include "vmfs/dev_crash.h"
#include "vmfs/dev_engine_i.h"

#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct crash_write {
	uint64_t off;
	size_t len;
	uint8_t *data;                 /* sector-aligned copy; NULL: zeros (dev_zero_range) */
	struct crash_write *next;
};

struct dev_crash {
	pthread_mutex_t lock;
	struct dev_crash_plan plan;
	struct dev_crash_stats st;
	uint64_t rng;
	struct crash_write *head, **tail;
	uint64_t end;                  /* the furthest byte a pending write reaches */
};

static pthread_mutex_t crash_last_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dev_crash_stats crash_last;
static bool crash_last_valid;

static uint64_t crash_rand(struct dev_crash *cr)
{
	/* splitmix64: a fixed seed gives the same tears on every run */
	uint64_t z = (cr->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int raw_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Zeroes [off, off+len) of the file itself, as dev_zero_range would, bypassing the engine. */
static int raw_zero(struct vmfs_dev *dev, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };
	uint8_t *zeros;
	struct stat st;
	int r = -EOPNOTSUPP;

	if (dev->blockdev) {
		if (ioctl(dev->fd, BLKZEROOUT, range) == 0)
			return 0;
	} else {
		if (fstat(dev->fd, &st) < 0)
			return -errno;
		if (off + len > (uint64_t)st.st_size) {
			while (ftruncate(dev->fd, (off_t)(off + len)) < 0)
				if (errno != EINTR)
					return -errno;
			if (off >= (uint64_t)st.st_size)
				return 0;  /* grown sparse: zeros already */
			len = (uint64_t)st.st_size - off;
		}
		r = dev_file_fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		if (r == 0)
			return 0;
	}
	zeros = dev_alloc_buf(DEV_ZERO_CHUNK);
	if (!zeros)
		return -ENOMEM;
	for (r = 0; len && !r;) {
		size_t n = (size_t)base_min(len, (uint64_t)DEV_ZERO_CHUNK);

		r = raw_pwrite(dev->fd, zeros, n, off);
		off += n;
		len -= n;
	}
	free(zeros);
	return r;
}

static int crash_apply(struct vmfs_dev *dev, const struct crash_write *w)
{
	return w->data ? raw_pwrite(dev->fd, w->data, w->len, w->off) : raw_zero(dev, w->off, w->len);
}

/* Lands a random sector-granular part of w: a prefix, or any subset of its sectors. */
static int crash_tear(struct vmfs_dev *dev, struct dev_crash *cr, const struct crash_write *w)
{
	size_t ss = dev->sector, n = w->len / ss, keep = n;
	bool prefix = crash_rand(cr) & 1;
	uint8_t *zeros = NULL;
	int r = 0;

	if (prefix)
		keep = (size_t)(crash_rand(cr) % (n + 1));
	if (!w->data && !(zeros = dev_alloc_buf(ss)))
		return -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		if (prefix ? i >= keep : (crash_rand(cr) & 1))
			continue;
		r = raw_pwrite(dev->fd, w->data ? w->data + i * ss : zeros, ss, w->off + i * ss);
	}
	free(zeros);
	return r;
}

static void crash_drop_all(struct dev_crash *cr)
{
	while (cr->head) {
		struct crash_write *w = cr->head;

		cr->head = w->next;
		free(w->data);
		free(w);
	}
	cr->tail = &cr->head;
	cr->st.pending = 0;
	cr->end = 0;
}

/* The power goes: what the mode allows lands, the rest is lost, the device dies. */
static void crash_cut(struct vmfs_dev *dev, struct dev_crash *cr)
{
	uint64_t upto = 0, i = 0;
	struct crash_write *w;
	int r = 0;

	if (cr->plan.mode == DEV_CRASH_PREFIX)
		upto = crash_rand(cr) % (cr->st.pending + 1);
	for (w = cr->head; w && !r; w = w->next, i++) {
		bool last = !w->next;
		unsigned what = 0; /* 0 lost, 1 whole, 2 torn */

		switch (cr->plan.mode) {
		case DEV_CRASH_DROP:
			break;
		case DEV_CRASH_TEAR:
			what = last ? 2 : 0;
			break;
		case DEV_CRASH_PREFIX:
			what = i < upto ? 1 : i == upto ? 2 : 0;
			break;
		case DEV_CRASH_REORDER:
			what = (unsigned)(crash_rand(cr) % 3);
			break;
		}
		if (what == 1) {
			r = crash_apply(dev, w);
			cr->st.landed++;
		} else if (what == 2) {
			r = crash_tear(dev, cr, w);
			cr->st.torn++;
		}
	}
	if (!r && fdatasync(dev->fd) < 0)
		r = -errno;
	if (r)
		fprintf(stderr, "vmfs: crash engine: landing writes at the cut failed: %s\n", strerror(-r));
	crash_drop_all(cr);
	cr->st.crashed = true;
}

/* Queues a write (data NULL: zeros); the planned write cuts the power. Under cr->lock. */
static int crash_write(struct vmfs_dev *dev, struct dev_crash *cr, const void *data, size_t len,
		       uint64_t off)
{
	struct crash_write *w;

	if (cr->st.crashed)
		return -EIO;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (data) {
		w->data = dev_alloc_buf(len);
		if (!w->data) {
			free(w);
			return -ENOMEM;
		}
		memcpy(w->data, data, len);
	}
	w->off = off;
	w->len = len;
	*cr->tail = w;
	cr->tail = &w->next;
	cr->end = base_max(cr->end, off + len);
	cr->st.pending++;
	if (++cr->st.writes == cr->plan.after_writes) {
		crash_cut(dev, cr);
		return -EIO;
	}
	return 0;
}

/* Reads what the file holds, patched with the pending writes. Returns bytes or -errno. */
static long crash_read(struct vmfs_dev *dev, struct dev_crash *cr, uint8_t *buf, size_t len,
		       uint64_t off)
{
	struct stat st;
	uint64_t size;
	size_t got = 0;

	if (cr->st.crashed)
		return -EIO;
	if (fstat(dev->fd, &st) < 0)
		return -errno;
	size = base_max((uint64_t)st.st_size, cr->end);
	if (off >= size)
		return 0;
	len = (size_t)base_min((uint64_t)len, size - off);
	while (got < len) {
		ssize_t n = pread(dev->fd, buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	memset(buf + got, 0, len - got);  /* past the file's end, before a pending write's */
	for (struct crash_write *w = cr->head; w; w = w->next) {
		uint64_t a = base_max(off, w->off), b = base_min(off + len, w->off + w->len);

		if (a >= b)
			continue;
		if (w->data)
			memcpy(buf + (a - off), w->data + (a - w->off), b - a);
		else
			memset(buf + (a - off), 0, b - a);
	}
	return (long)len;
}

static int crash_flush(struct vmfs_dev *dev, struct dev_crash *cr)
{
	int r = 0;

	if (cr->st.crashed)
		return -EIO;
	while (cr->head && !r) {
		struct crash_write *w = cr->head;

		r = crash_apply(dev, w);
		if (r)
			break;
		cr->head = w->next;
		cr->st.pending--;
		free(w->data);
		free(w);
	}
	if (!cr->head) {
		cr->tail = &cr->head;
		cr->end = 0;
	}
	if (!r && fdatasync(dev->fd) < 0)
		r = -errno;
	if (!r)
		cr->st.flushes++;
	return r;
}

static bool crash_prep(struct dev_ctx *c, struct dev_io *io)
{
	struct dev_crash *cr = c->dev->crash;
	void *buf;
	size_t len;
	uint64_t off;

	pthread_mutex_lock(&cr->lock);
	if (io->op == IO_FSYNC) {
		io->res = crash_flush(c->dev, cr);
	} else {
		dev_io_span(io, &buf, &len, &off);
		if (io->op == IO_READ)
			io->res = crash_read(c->dev, cr, buf, len, off);
		else
			io->res = crash_write(c->dev, cr, buf, len, off);
		if (io->op == IO_WRITE && io->res == 0)
			io->res = (long)len;
	}
	pthread_mutex_unlock(&cr->lock);
	return true;
}

int dev_crash_zero_range(struct vmfs_dev *dev, uint64_t off, uint64_t len)
{
	struct dev_crash *cr = dev->crash;
	int r;

	if (len > SIZE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&cr->lock);
	r = crash_write(dev, cr, NULL, (size_t)len, off);
	pthread_mutex_unlock(&cr->lock);
	return r;
}

static int crash_env_u64(const char *name, uint64_t *out)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return 0;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end || *s == '-') {
		fprintf(stderr, "vmfs: %s '%s': expected a number\n", name, s);
		return -EINVAL;
	}
	return 0;
}

static int crash_plan_from_env(struct dev_crash_plan *p)
{
	static const char *const modes[] = { "drop", "tear", "prefix", "reorder" };
	const char *m = getenv("VMFS_CRASH_MODE"), *tear = getenv("VMFS_CRASH_TEAR");
	int r;

	memset(p, 0, sizeof(*p));
	p->seed = 1;
	r = crash_env_u64("VMFS_CRASH_AFTER_WRITES", &p->after_writes);
	if (!r)
		r = crash_env_u64("VMFS_CRASH_SEED", &p->seed);
	if (r)
		return r;
	if (tear && *tear && strcmp(tear, "0"))
		p->mode = DEV_CRASH_TEAR;
	if (!m || !*m)
		return 0;
	for (size_t i = 0; i < base_array_size(modes); i++) {
		if (!strcmp(m, modes[i])) {
			p->mode = (enum dev_crash_mode)i;
			return 0;
		}
	}
	fprintf(stderr, "vmfs: VMFS_CRASH_MODE '%s': expected drop, tear, prefix or reorder\n", m);
	return -EINVAL;
}

static void crash_set_plan(struct dev_crash *cr, const struct dev_crash_plan *plan)
{
	cr->plan = *plan;
	cr->rng = plan->seed;
}

int dev_crash_new(struct vmfs_dev *dev)
{
	struct dev_crash_plan plan;
	struct dev_crash *cr;
	int r = crash_plan_from_env(&plan);

	if (r)
		return r;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	r = -pthread_mutex_init(&cr->lock, NULL);
	if (r) {
		free(cr);
		return r;
	}
	cr->tail = &cr->head;
	crash_set_plan(cr, &plan);
	dev->crash = cr;
	return 0;
}

/* Closing is not a power cut: what is pending lands. */
void dev_crash_free(struct vmfs_dev *dev)
{
	struct dev_crash *cr = dev->crash;

	if (!cr)
		return;
	if (!cr->st.crashed && crash_flush(dev, cr))
		fprintf(stderr, "vmfs: crash engine: writing pending data at close failed\n");
	pthread_mutex_lock(&crash_last_lock);
	crash_last = cr->st;
	crash_last_valid = true;
	pthread_mutex_unlock(&crash_last_lock);
	crash_drop_all(cr);
	pthread_mutex_destroy(&cr->lock);
	free(cr);
	dev->crash = NULL;
}

/* dev_open's unwinding before any I/O: no flush, and not the "last closed" device. */
void dev_crash_discard(struct vmfs_dev *dev)
{
	if (dev->crash) {
		pthread_mutex_destroy(&dev->crash->lock);
		free(dev->crash);
	}
}

/* The furthest byte a pending write reaches (dev_size). */
uint64_t dev_crash_end(const struct vmfs_dev *dev)
{
	uint64_t end;

	pthread_mutex_lock(&dev->crash->lock);
	end = dev->crash->end;
	pthread_mutex_unlock(&dev->crash->lock);
	return end;
}

/* Whether the power was cut (dev_set_size fails then). */
bool dev_crash_dead(const struct vmfs_dev *dev)
{
	bool crashed;

	pthread_mutex_lock(&dev->crash->lock);
	crashed = dev->crash->st.crashed;
	pthread_mutex_unlock(&dev->crash->lock);
	return crashed;
}

int dev_crash_arm(struct vmfs_dev *dev, const struct dev_crash_plan *plan)
{
	if (!dev->crash || !plan)
		return -EINVAL;
	pthread_mutex_lock(&dev->crash->lock);
	crash_set_plan(dev->crash, plan);
	pthread_mutex_unlock(&dev->crash->lock);
	return 0;
}

int dev_crash_now(struct vmfs_dev *dev)
{
	if (!dev->crash)
		return -EINVAL;
	pthread_mutex_lock(&dev->crash->lock);
	if (!dev->crash->st.crashed)
		crash_cut(dev, dev->crash);
	pthread_mutex_unlock(&dev->crash->lock);
	return 0;
}

int dev_crash_get_stats(struct vmfs_dev *dev, struct dev_crash_stats *st)
{
	if (!dev->crash || !st)
		return -EINVAL;
	pthread_mutex_lock(&dev->crash->lock);
	*st = dev->crash->st;
	pthread_mutex_unlock(&dev->crash->lock);
	return 0;
}

bool dev_crash_last_closed(struct dev_crash_stats *st)
{
	bool valid;

	pthread_mutex_lock(&crash_last_lock);
	valid = crash_last_valid;
	if (valid)
		*st = crash_last;
	pthread_mutex_unlock(&crash_last_lock);
	return valid;
}

const struct dev_engine dev_crash_engine = {
	.name = "crash",
	.ctx_init = dev_sync_ctx_init,
	.ctx_release = dev_sync_ctx_release,
	.prep = crash_prep,
	.submit = dev_sync_submit,
	.reap = dev_sync_reap,
};
