/*
 * virtio-blk (virtio spec 5.2) on a file of the datastore, through libvmfs
 * only: IN and OUT are asynchronous requests on the disk's vmfs_aio queue,
 * FLUSH is vmfs_fsync, DISCARD punches holes, and a read-only disk offers
 * VIRTIO_BLK_F_RO and fails writes with VIRTIO_BLK_S_IOERR. Each request is
 * checked before any I/O: a 16-byte header the device reads, data buffers, a
 * status byte it writes last, the sector range inside the disk. Requests run
 * one at a time on the disk's own I/O thread (the vCPU's notify only wakes
 * it), each one's segments all in flight at once and all reaped before the
 * status is written. The thread holds v->lock only to pop and push, never
 * during the I/O or a wait (for a notify, or for the tokens its buckets lack,
 * ratelimit.h: a timed wait, never a spin), and a device reset meanwhile
 * (v->resets changed) drops the request; docs/VMM.md, "Running", has more.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "vmfs/vmfs.h"
#include "vmm/devices/devices.h"
#include "vmm/devices/pci.h"
#include "vmm/devices/virtio.h"
#include "vmm/kvm.h"
#include "vmm/ratelimit.h"

#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VIRTIO_BLK_T_DISCARD 11
#define DISCARD_MAX_SECTORS (1u << 22)	/* 2 GiB per segment */
#define DISCARD_MAX_SEG 32
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
/*
 * Data buffers per request: a chain holds the header, these and the status
 * byte, at most VMM_VIRTIO_MAX_BUFS in all. Without SEG_MAX Linux sends one
 * segment (a 4 KiB page) per request, each an exit and an I/O of its own.
 */
#define BLK_SEG_MAX (VMM_VIRTIO_MAX_BUFS - 2)

struct vmm_blk {
	struct vmm_virtio v;
	struct vmfs *fs;
	uint64_t ino, size;
	bool readonly;
	struct vmfs_aio *aio;     /* the I/O thread's; BLK_SEG_MAX deep */
	struct vmfs_aio_req reqs[BLK_SEG_MAX];
	bool aio_failed;          /* a reap failed: requests may be in flight, reqs is not free */
	/* Under v.lock: */
	pthread_t thread;
	pthread_cond_t wake;      /* CLOCK_MONOTONIC: a notify, a new limit, or stop */
	bool thread_started, kicked, stopping;
	struct vmm_limiter limit;
	struct vmm_blk_stats stats;
};

/*
 * DISCARD: segments of { le64 sector, le32 num_sectors, le32 flags }, copied
 * out of guest memory and all checked before any is punched (the guest may
 * rewrite its buffer meanwhile: only the copy counts).
 */
static uint8_t discard(struct vmm_blk *b, struct vmm_virtio_buf *bufs, unsigned n)
{
	struct { uint64_t sector; uint32_t count; } seg[DISCARD_MAX_SEG];
	unsigned i, k, nseg = 0;
	uint32_t j;

	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	for (i = 1; i + 1 < n; i++) {
		if (bufs[i].device_writes || bufs[i].len % 16)
			return VIRTIO_BLK_S_IOERR;
		for (j = 0; j < bufs[i].len; j += 16) {
			if (nseg == DISCARD_MAX_SEG)
				return VIRTIO_BLK_S_IOERR;
			memcpy(&seg[nseg].sector, bufs[i].p + j, 8);
			memcpy(&seg[nseg].count, bufs[i].p + j + 8, 4);
			seg[nseg].sector = le64_to_cpu(seg[nseg].sector);
			seg[nseg].count = le32_to_cpu(seg[nseg].count);
			if (seg[nseg].count > DISCARD_MAX_SECTORS || seg[nseg].sector > b->size / 512 ||
			    seg[nseg].count > b->size / 512 - seg[nseg].sector)
				return VIRTIO_BLK_S_IOERR;
			nseg++;
		}
	}
	for (k = 0; k < nseg; k++)
		if (seg[k].count && vmfs_fallocate(b->fs, b->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						   seg[k].sector * 512, (uint64_t)seg[k].count * 512))
			return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

/*
 * Submits b->reqs[0..k) and reaps them all, even after a failure (their
 * buffers are the guest's, their structs the disk's: nothing may be in
 * flight once this returns). A short read (past a short file's end) reads
 * as zeros: the disk's size is what counts.
 */
static uint8_t run_aio(struct vmm_blk *b, unsigned k, bool in, uint64_t total, uint32_t *written)
{
	struct vmfs_aio_req *done[BLK_SEG_MAX];
	unsigned i, submitted = 0, reaped = 0;
	bool ok = !b->aio_failed;
	int r;

	for (i = 0; i < k && ok; i++) {
		ok = !vmfs_aio_submit(b->aio, &b->reqs[i]);
		submitted += ok;
	}
	while (reaped < submitted) {
		r = vmfs_aio_reap(b->aio, 1, done, BLK_SEG_MAX);
		if (r < 0) {
			if (r == -EINTR)
				continue;
			/* The queue failed: every later read and write fails; vmfs_aio_free waits for the rest. */
			b->aio_failed = true;
			return VIRTIO_BLK_S_IOERR;
		}
		for (i = 0; i < (unsigned)r; i++) {
			struct vmfs_aio_req *q = done[i];

			if (q->res == (ssize_t)q->len)
				continue;
			if (in && q->res >= 0)
				memset((uint8_t *)q->buf + q->res, 0, q->len - (size_t)q->res);
			else
				ok = false;
		}
		reaped += (unsigned)r;
	}
	if (!ok)
		return VIRTIO_BLK_S_IOERR;
	if (in)
		*written += (uint32_t)total;
	return VIRTIO_BLK_S_OK;
}

/* type was read once by the caller: the guest may rewrite its header meanwhile. */
static uint8_t do_request(struct vmm_blk *b, uint32_t type, struct vmm_virtio_buf *bufs, unsigned n,
			  uint32_t *written)
{
	uint64_t sector, off, total = 0;
	unsigned i, k = 0;

	memcpy(&sector, bufs[0].p + 8, 8);
	sector = le64_to_cpu(sector);
	for (i = 1; i + 1 < n; i++)
		total += bufs[i].len;
	if (type == VIRTIO_BLK_T_FLUSH)
		return vmfs_fsync(b->fs, b->ino, false) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	if (type == VIRTIO_BLK_T_GET_ID) {
		if (n < 3 || !bufs[1].device_writes)
			return VIRTIO_BLK_S_IOERR;
		memset(bufs[1].p, 0, bufs[1].len);
		memcpy(bufs[1].p, "vmfs-vmm", bufs[1].len < 8 ? bufs[1].len : 8);
		*written = bufs[1].len < 20 ? bufs[1].len : 20;
		return VIRTIO_BLK_S_OK;
	}
	if (type == VIRTIO_BLK_T_DISCARD)
		return discard(b, bufs, n);
	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_OUT)
		return VIRTIO_BLK_S_UNSUPP;
	if (type == VIRTIO_BLK_T_OUT && b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (sector > b->size / 512 || total > b->size - sector * 512)
		return VIRTIO_BLK_S_IOERR;
	off = sector * 512;
	for (i = 1; i + 1 < n; i++) {
		/* IN fills buffers the device writes; OUT reads ones it may not. */
		if (bufs[i].device_writes != (type == VIRTIO_BLK_T_IN))
			return VIRTIO_BLK_S_IOERR;
		if (k && (uint8_t *)b->reqs[k - 1].buf + b->reqs[k - 1].len == bufs[i].p) {
			b->reqs[k - 1].len += bufs[i].len;
		} else {
			b->reqs[k++] = (struct vmfs_aio_req){ .ino = b->ino, .write = type == VIRTIO_BLK_T_OUT,
							      .buf = bufs[i].p, .len = bufs[i].len, .off = off };
		}
		off += bufs[i].len;
	}
	return run_aio(b, k, type == VIRTIO_BLK_T_IN, total, written);
}

/* The bytes a request of type moves, for the byte bucket: its data buffers for IN and OUT, else 0. */
static uint64_t request_bytes(uint32_t type, struct vmm_virtio_buf *bufs, unsigned n)
{
	uint64_t total = 0;
	unsigned i;

	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_OUT)
		return 0;
	for (i = 1; i + 1 < n; i++)
		total += bufs[i].len;
	return total;
}

/* Waits on b->wake until deadline_ns (monotonic) or a wakeup. Caller holds v.lock. */
static void wait_until(struct vmm_blk *b, uint64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000ull),
			       .tv_nsec = (long)(deadline_ns % 1000000000ull) };

	pthread_cond_timedwait(&b->wake, &b->v.lock, &ts);
}

/* Runs every available request of queue 0; returns with v.lock held, as it was taken. */
static void run_queue(struct vmm_blk *b)
{
	struct vmm_virtio *v = &b->v;
	struct vmm_virtio_buf bufs[VMM_VIRTIO_MAX_BUFS];
	unsigned n;
	uint16_t head;
	int ret;

	while (!b->stopping && v->q[0].enabled && (v->status & 4) &&
	       (ret = vmm_virtq_pop(v, 0, bufs, &n, &head)) != 0) {
		uint32_t written = 0;
		struct vmm_virtio_buf *st = &bufs[n - 1];
		uint64_t resets = v->resets, len, wait;
		uint32_t type;

		if (ret < 0) {
			v->status |= 0x40;	/* DEVICE_NEEDS_RESET: the guest broke the ring */
			return;
		}
		if (n < 2 || bufs[0].len < 16 || bufs[0].device_writes || !st->device_writes || st->len < 1) {
			/* Malformed: no status byte to report through, so it just completes. */
			vmm_virtq_push(v, 0, head, 0);
			continue;
		}
		/* Read once: tokens, stats and the request itself all go by this type. */
		memcpy(&type, bufs[0].p, 4);
		type = le32_to_cpu(type);
		len = request_bytes(type, bufs, n);
		while (!b->stopping && (wait = vmm_limiter_take(&b->limit, len, base_mono_ns()))) {
			b->stats.throttled++;
			wait_until(b, base_mono_ns() + wait);
		}
		/* A reset while waiting took the ring away: the buffers may be reused. */
		if (b->stopping || v->resets != resets)
			return;
		/*
		 * The I/O runs without the lock, so vCPUs may notify, take
		 * interrupts and read the ISR meanwhile. The buffers are guest
		 * memory, mapped for the VM's life; the chain was checked and
		 * copied out by the pop; nothing else pops this queue.
		 */
		pthread_mutex_unlock(&v->lock);
		st->p[0] = do_request(b, type, bufs, n, &written);
		pthread_mutex_lock(&v->lock);
		/* A reset during the I/O took the ring away: the completion is dropped. */
		if (b->stopping || v->resets != resets)
			return;
		if (type == VIRTIO_BLK_T_IN) {
			b->stats.reads++;
			b->stats.read_bytes += len;
		} else if (type == VIRTIO_BLK_T_OUT) {
			b->stats.writes++;
			b->stats.written_bytes += len;
		}
		vmm_virtq_push(v, 0, head, written + 1);
	}
}

static void *io_thread(void *arg)
{
	struct vmm_blk *b = arg;

	pthread_mutex_lock(&b->v.lock);
	while (!b->stopping) {
		if (!b->kicked) {
			pthread_cond_wait(&b->wake, &b->v.lock);
			continue;
		}
		b->kicked = false;
		run_queue(b);
	}
	pthread_mutex_unlock(&b->v.lock);
	return NULL;
}

/* Called under v->lock from the vCPU's notify exit: only wakes the I/O thread. */
static void blk_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_blk *b = v->priv;

	(void)q;
	b->kicked = true;
	pthread_cond_signal(&b->wake);
}

void vmm_blk_set_limit(struct vmm_blk *b, uint64_t bytes_per_s, uint64_t ops_per_s)
{
	uint64_t now = base_mono_ns();

	pthread_mutex_lock(&b->v.lock);
	vmm_bucket_set(&b->limit.bytes, bytes_per_s, now);
	vmm_bucket_set(&b->limit.ops, ops_per_s, now);
	b->stats.bytes_per_s = b->limit.bytes.rate;
	b->stats.ops_per_s = b->limit.ops.rate;
	pthread_cond_signal(&b->wake);	/* a waiting request re-checks at the new rate */
	pthread_mutex_unlock(&b->v.lock);
}

void vmm_blk_get_stats(struct vmm_blk *b, struct vmm_blk_stats *st)
{
	pthread_mutex_lock(&b->v.lock);
	*st = b->stats;
	pthread_mutex_unlock(&b->v.lock);
}

static void blk_config(struct vmm_virtio *v, uint64_t off, uint8_t *data, unsigned len)
{
	struct vmm_blk *b = v->priv;
	uint8_t cfg[64] = { 0 };
	uint64_t cap = cpu_to_le64(b->size / 512);
	uint32_t bs = cpu_to_le32(512), dmax = cpu_to_le32(DISCARD_MAX_SECTORS), dseg = cpu_to_le32(DISCARD_MAX_SEG);
	uint32_t dalign = cpu_to_le32(1), seg_max = cpu_to_le32(BLK_SEG_MAX);

	memcpy(cfg, &cap, 8);		/* capacity in 512-byte sectors */
	memcpy(cfg + 12, &seg_max, 4);	/* seg_max */
	memcpy(cfg + 20, &bs, 4);	/* blk_size */
	memcpy(cfg + 36, &dmax, 4);	/* max_discard_sectors */
	memcpy(cfg + 40, &dseg, 4);	/* max_discard_seg */
	memcpy(cfg + 44, &dalign, 4);	/* discard_sector_alignment */
	memset(data, 0, len);
	if (off < sizeof(cfg))
		memcpy(data, cfg + off, off + len <= sizeof(cfg) ? len : sizeof(cfg) - off);
}

static const struct vmm_virtio_ops blk_ops = { .notify = blk_notify, .config = blk_config };

int vmm_blk_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmfs *fs, uint64_t ino, uint64_t size,
		bool readonly, struct vmm_blk **out)
{
	struct vmm_blk *b = calloc(1, sizeof(*b));
	sigset_t all, old;
	int ret;

	if (!b)
		return -ENOMEM;
	b->fs = fs;
	b->ino = ino;
	b->size = size;
	b->readonly = readonly;
	b->v.priv = b;
	ret = vmm_virtio_init(&b->v, vm, bus, 2, 1,
			      VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_SEG_MAX |
				      (readonly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD), &blk_ops);
	if (ret) {
		free(b);
		return ret;
	}
	ret = vmfs_aio_new(fs, BLK_SEG_MAX, &b->aio);
	if (ret) {
		free(b);
		return ret;
	}
	base_cond_init_mono(&b->wake);
	/* The I/O thread takes no signals: they are vCPU 0's (see kvm.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&b->thread, NULL, io_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		pthread_cond_destroy(&b->wake);
		vmfs_aio_free(b->aio);
		free(b);
		return -ret;
	}
	b->thread_started = true;
	*out = b;
	return 0;
}

void vmm_blk_free(struct vmm_blk *b)
{
	if (!b)
		return;
	if (b->thread_started) {
		pthread_mutex_lock(&b->v.lock);
		b->stopping = true;
		pthread_cond_signal(&b->wake);
		pthread_mutex_unlock(&b->v.lock);
		pthread_join(b->thread, NULL);
	}
	pthread_cond_destroy(&b->wake);
	vmfs_aio_free(b->aio);
	free(b);
}
