/*
 * virtio-blk (virtio spec 5.2) on a file of the datastore, through libvmfs
 * only: IN and OUT are asynchronous requests on a vmfs_aio queue, FLUSH is
 * vmfs_fsync, DISCARD punches holes, and a read-only disk offers
 * VIRTIO_BLK_F_RO and fails writes with VIRTIO_BLK_S_IOERR. Each request is
 * checked before any I/O: a 16-byte header the device reads, data buffers, a
 * status byte it writes last, the sector range inside the disk.
 *
 * One virtqueue per vCPU (VIRTIO_BLK_F_MQ), each with a thread and a
 * vmfs_aio queue of its own, so no two queues share a lock on the I/O path.
 * A queue's thread sleeps in ppoll on two eventfds: its doorbell, which KVM
 * signals when the guest writes it (ioeventfd; without one the vCPU's MMIO
 * exit writes it), and its vmfs_aio queue's completions. It keeps up to the
 * ring's size of requests in flight, POOL_SEGS segments among them; while it
 * works it asks the guest not to ring (VIRTQ_USED_F_NO_NOTIFY), and it
 * returns each batch of completions with one interrupt (an irqfd write for
 * MSI-X, vmm/devices/virtio_pci.c). FLUSH, DISCARD and GET_ID wait for the
 * queue's own requests in flight first; libvmfs orders the rest (a hole
 * punch waits for every queue's I/O on the file: its I/O lock). Where the
 * I/O engine gives no completion eventfd (libaio), a queue runs one request
 * at a time, as before.
 *
 * A thread holds v->lock only to pop, push and count, never during I/O or a
 * wait (for the tokens its buckets lack, ratelimit.h: a timed ppoll, never a
 * spin), and a device reset meanwhile (v->resets changed) drops the
 * requests begun before it; docs/VMM.md, "Running", has more.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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
#define VIRTIO_BLK_F_MQ (1ull << 12)
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
/* Segments in flight per queue: two of the largest requests, or 256 of one page. */
#define POOL_SEGS 256
/* Chains in flight per queue: the largest ring (virtio_pci.c's QUEUE_MAX). */
#define QUEUE_REQS 256

struct blk_req {                  /* a chain in flight */
	uint16_t head;
	uint32_t type;
	uint8_t *status;
	uint64_t len, resets;     /* data bytes; v->resets when it was popped */
	uint32_t written;
	unsigned pending;         /* its segments in flight */
	bool failed;
	struct blk_req *next;     /* the free list, or a batch of finished ones */
};

struct blk_queue {
	struct vmm_blk *b;
	unsigned qi;
	pthread_t thread;
	bool started;
	int kick_fd;              /* the doorbell's eventfd */
	struct vmfs_aio *aio;     /* this queue's, POOL_SEGS deep */
	int aio_fd;               /* its completion eventfd, -1: one request at a time */
	bool aio_failed;          /* a reap failed: what was in flight may never come back */
	struct vmfs_aio_req seg[POOL_SEGS];
	struct vmfs_aio_req *free_seg;
	unsigned nfree_seg, inflight;
	struct blk_req req[QUEUE_REQS];
	struct blk_req *free_req;
	/* The chain popped last and not yet started (no tokens, or too few segments free): */
	bool held;
	struct vmm_virtio_buf bufs[VMM_VIRTIO_MAX_BUFS];
	unsigned n;
	uint16_t head;
	uint64_t held_resets;
};

struct vmm_blk {
	struct vmm_virtio v;
	uint64_t size;
	bool readonly;
	unsigned nq;
	struct blk_queue *q[VMM_VIRTIO_MAX_QUEUES];
	/* Under v.lock: */
	struct vmfs *fs;          /* NULL until vmm_blk_attach: the guest's requests wait in the ring */
	uint64_t ino;
	uint64_t attach_ns;       /* base_mono_ns() at the attach */
	bool stopping;
	bool quiesce;             /* a suspend wants the queues quiet (vmm_blk_quiesce) */
	unsigned nquiet;          /* queues that are */
	pthread_cond_t quiet_cond;
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

/* Wakes queue qu's thread: what a doorbell write does. */
static void kick(struct blk_queue *qu)
{
	uint64_t one = 1;

	if (write(qu->kick_fd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN at a counter near 2^64: the thread is awake anyway. */
	}
}

/* Finished requests back to the guest, one interrupt for the batch; drops those a reset took away. */
static void finish(struct blk_queue *qu, struct blk_req *done)
{
	struct vmm_blk *b = qu->b;
	struct vmm_virtio *v = &b->v;
	bool any = false;

	pthread_mutex_lock(&v->lock);
	while (done) {
		struct blk_req *r = done;

		done = r->next;
		if (!b->stopping && v->resets == r->resets) {
			if (r->type == VIRTIO_BLK_T_IN) {
				b->stats.reads++;
				b->stats.read_bytes += r->len;
			} else if (r->type == VIRTIO_BLK_T_OUT) {
				b->stats.writes++;
				b->stats.written_bytes += r->len;
			}
			vmm_virtq_put(v, qu->qi, r->head, r->written + 1);
			any = true;
		}
		r->next = qu->free_req;
		qu->free_req = r;
	}
	if (any)
		vmm_virtq_notify(v, qu->qi);
	pthread_mutex_unlock(&v->lock);
}

/* A request that ends without (more) I/O: its status, then back to the guest. */
static void complete(struct blk_queue *qu, struct blk_req *r, uint8_t status)
{
	r->status[0] = status;
	r->next = NULL;
	qu->inflight--;
	finish(qu, r);
}

/*
 * Reaps at least min segments (0: what is done) and finishes the requests
 * whose last segment came back. A short read (past a short file's end) reads
 * as zeros: the disk's size is what counts. A failed reap fails every request
 * in flight: the queue is broken (vmfs_aio_free waits for the rest).
 */
static int reap(struct blk_queue *qu, unsigned min)
{
	struct vmfs_aio_req *got[POOL_SEGS];
	struct blk_req *done = NULL;
	int n, i;

	if (!qu->aio || qu->aio_failed || qu->nfree_seg == POOL_SEGS)
		return 0;
	n = vmfs_aio_reap(qu->aio, min, got, POOL_SEGS);
	if (n == -EINTR)
		return 0;
	if (n < 0) {
		qu->aio_failed = true;
		for (i = 0; i < QUEUE_REQS; i++) {
			struct blk_req *r = &qu->req[i];

			if (r->pending) {
				r->pending = 0;
				r->status[0] = VIRTIO_BLK_S_IOERR;
				r->next = done;
				done = r;
				qu->inflight--;
			}
		}
		finish(qu, done);
		return -EIO;
	}
	for (i = 0; i < n; i++) {
		struct vmfs_aio_req *s = got[i];
		struct blk_req *r = s->priv;

		if (s->res != (ssize_t)s->len) {
			if (!s->write && s->res >= 0)
				memset((uint8_t *)s->buf + s->res, 0, s->len - (size_t)s->res);
			else
				r->failed = true;
		}
		s->next = qu->free_seg;
		qu->free_seg = s;
		qu->nfree_seg++;
		if (--r->pending == 0) {
			r->status[0] = r->failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
			if (r->failed)
				r->written = 0;
			r->next = done;
			done = r;
			qu->inflight--;
		}
	}
	if (done)
		finish(qu, done);
	return n;
}

/* Waits for this queue's requests in flight. */
static void drain(struct blk_queue *qu)
{
	while (qu->inflight && !qu->aio_failed)
		if (reap(qu, 1) < 0)
			break;
}

/* The data segments of the held IN or OUT chain: contiguous buffers merge. */
static unsigned segments(struct blk_queue *qu)
{
	unsigned i, k = 0;

	for (i = 1; i + 1 < qu->n; i++)
		if (i == 1 || qu->bufs[i - 1].p + qu->bufs[i - 1].len != qu->bufs[i].p)
			k++;
	return k;
}

/*
 * Starts the held chain as request r (type read once by the caller: the
 * guest may rewrite its header meanwhile). IN and OUT go on the aio queue;
 * the rest run here, after the queue's own requests in flight.
 */
static void start(struct blk_queue *qu, struct blk_req *r)
{
	struct vmm_blk *b = qu->b;
	struct vmm_virtio_buf *bufs = qu->bufs;
	unsigned i, n = qu->n;
	uint64_t sector, off;
	uint8_t st;

	r->written = 0;
	r->failed = false;
	r->pending = 0;
	if (r->type != VIRTIO_BLK_T_IN && r->type != VIRTIO_BLK_T_OUT) {
		drain(qu);
		qu->inflight++;
		if (r->type == VIRTIO_BLK_T_FLUSH) {
			st = vmfs_fsync(b->fs, b->ino, false) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		} else if (r->type == VIRTIO_BLK_T_GET_ID) {
			st = VIRTIO_BLK_S_IOERR;
			if (n >= 3 && bufs[1].device_writes) {
				memset(bufs[1].p, 0, bufs[1].len);
				memcpy(bufs[1].p, "vmfs-vmm", bufs[1].len < 8 ? bufs[1].len : 8);
				r->written = bufs[1].len < 20 ? bufs[1].len : 20;
				st = VIRTIO_BLK_S_OK;
			}
		} else if (r->type == VIRTIO_BLK_T_DISCARD) {
			st = discard(b, bufs, n);
		} else {
			st = VIRTIO_BLK_S_UNSUPP;
		}
		complete(qu, r, st);
		return;
	}
	qu->inflight++;
	memcpy(&sector, bufs[0].p + 8, 8);
	sector = le64_to_cpu(sector);
	if ((r->type == VIRTIO_BLK_T_OUT && b->readonly) || qu->aio_failed || sector > b->size / 512 ||
	    r->len > b->size - sector * 512) {
		complete(qu, r, VIRTIO_BLK_S_IOERR);
		return;
	}
	for (i = 1; i + 1 < n; i++) {
		/* IN fills buffers the device writes; OUT reads ones it may not. */
		if (bufs[i].device_writes != (r->type == VIRTIO_BLK_T_IN)) {
			complete(qu, r, VIRTIO_BLK_S_IOERR);
			return;
		}
	}
	if (r->type == VIRTIO_BLK_T_IN)
		r->written = (uint32_t)r->len;
	off = sector * 512;
	r->pending = 1;	/* held while submitting: a segment done at once must not finish it */
	for (i = 1; i + 1 < n; i++) {
		struct vmfs_aio_req *s = qu->free_seg;
		uint8_t *p = bufs[i].p;
		size_t len = bufs[i].len;

		/* The next buffers contiguous in memory go in the same segment (segments() counts so). */
		while (i + 2 < n && p + len == bufs[i + 1].p)
			len += bufs[++i].len;
		qu->free_seg = s->next;
		qu->nfree_seg--;
		*s = (struct vmfs_aio_req){ .ino = b->ino, .write = r->type == VIRTIO_BLK_T_OUT,
					    .buf = p, .len = len, .off = off, .priv = r };
		off += len;
		if (vmfs_aio_submit(qu->aio, s)) {
			s->next = qu->free_seg;
			qu->free_seg = s;
			qu->nfree_seg++;
			r->failed = true;
			break;
		}
		r->pending++;
	}
	if (--r->pending == 0) {
		complete(qu, r, r->failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
		return;
	}
	/*
	 * Segments done inside the submit (a first write allocates there) are
	 * reported by the next reap, not by the eventfd: queue_thread reaps
	 * after each pump, so a burst is all submitted before any completes.
	 */
	if (qu->aio_fd < 0)
		drain(qu);
}

/*
 * Pops and starts what the queue holds, as far as tokens, segments and
 * request slots allow. Returns true when it did anything; *wait_ns is set
 * when a held chain waits for tokens.
 */
static bool pump(struct blk_queue *qu, uint64_t *wait_ns)
{
	struct vmm_blk *b = qu->b;
	struct vmm_virtio *v = &b->v;
	struct vmm_virtq *q = &v->q[qu->qi];
	bool did = false;
	int ret;

	pthread_mutex_lock(&v->lock);
	/* Before the attach the guest's requests wait; the first one's time is kept (vmm run --timings). */
	if (!b->fs && !b->stats.first_io_ns && q->enabled && (v->status & 4) && !vmm_virtq_quiet(v, qu->qi))
		b->stats.first_io_ns = base_mono_ns();
	while (!b->stopping && !b->quiesce && b->fs && (qu->aio || qu->aio_failed) && q->enabled && (v->status & 4)) {
		struct blk_req *r;
		uint64_t wait, len;
		uint32_t type;

		if (!qu->held) {
			if (!qu->free_req)
				break;
			ret = vmm_virtq_pop(v, qu->qi, qu->bufs, &qu->n, &qu->head);
			if (ret == 0)
				break;
			if (!did)
				vmm_virtq_busy(v, qu->qi);
			did = true;
			if (ret < 0) {
				v->status |= 0x40;	/* DEVICE_NEEDS_RESET: the guest broke the ring */
				break;
			}
			if (qu->n < 2 || qu->bufs[0].len < 16 || qu->bufs[0].device_writes ||
			    !qu->bufs[qu->n - 1].device_writes || qu->bufs[qu->n - 1].len < 1) {
				/* Malformed: no status byte to report through, so it just completes. */
				vmm_virtq_push(v, qu->qi, qu->head, 0);
				continue;
			}
			qu->held = true;
			qu->held_resets = v->resets;
		}
		/* A reset since the pop took the ring away: the buffers may be reused. */
		if (v->resets != qu->held_resets) {
			qu->held = false;
			continue;
		}
		/* Read once: tokens, stats and the request itself all go by this type. */
		memcpy(&type, qu->bufs[0].p, 4);
		type = le32_to_cpu(type);
		if ((type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) && segments(qu) > qu->nfree_seg)
			break;	/* completions free segments; ppoll waits for them */
		len = request_bytes(type, qu->bufs, qu->n);
		if ((wait = vmm_limiter_take(&b->limit, len, base_mono_ns()))) {
			b->stats.throttled++;
			*wait_ns = wait;
			break;
		}
		qu->held = false;
		did = true;
		r = qu->free_req;
		qu->free_req = r->next;
		*r = (struct blk_req){ .head = qu->head, .type = type, .status = qu->bufs[qu->n - 1].p,
				       .len = len, .resets = qu->held_resets };
		if (!b->stats.first_io_ns)
			b->stats.first_io_ns = base_mono_ns();
		if (qu->inflight + 1 > b->stats.max_inflight)
			b->stats.max_inflight = qu->inflight + 1;
		/*
		 * The I/O runs without the lock, so vCPUs may notify, take
		 * interrupts and read the ISR meanwhile. The buffers are guest
		 * memory, mapped for the VM's life; the chain was checked and
		 * copied out by the pop; only this thread pops this queue.
		 */
		pthread_mutex_unlock(&v->lock);
		start(qu, r);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return did;
}

/* True once stopping; otherwise whether the queue may sleep (nothing it can start now, notifications on). */
static bool idle(struct blk_queue *qu, bool *stop)
{
	struct vmm_virtio *v = &qu->b->v;
	bool quiet = true;

	pthread_mutex_lock(&v->lock);
	*stop = qu->b->stopping;
	/*
	 * Only an empty ring is worth a last look: a queue that waits for the
	 * attach (its kick wakes it), a free request slot or a held chain's
	 * tokens or segments (a completion or the timeout wakes it) must sleep
	 * though chains wait in the ring, or it would spin.
	 */
	if (!*stop && !qu->held && qu->b->fs && qu->free_req && v->q[qu->qi].enabled && (v->status & 4))
		quiet = vmm_virtq_quiet(v, qu->qi);
	pthread_mutex_unlock(&v->lock);
	return quiet;
}

/*
 * Once the disk is attached the queue opens its vmfs_aio queue, on its own
 * thread (a queue belongs to the thread that uses it); a failure fails its
 * reads and writes.
 */
static void open_aio(struct blk_queue *qu)
{
	struct vmm_blk *b = qu->b;
	struct vmfs *fs;

	pthread_mutex_lock(&b->v.lock);
	fs = b->fs;
	pthread_mutex_unlock(&b->v.lock);
	if (!fs || qu->aio || qu->aio_failed)
		return;
	if (vmfs_aio_new(fs, POOL_SEGS, &qu->aio)) {
		qu->aio = NULL;
		qu->aio_failed = true;
		return;
	}
	qu->aio_fd = vmfs_aio_eventfd(qu->aio);
	if (qu->aio_fd < 0)
		qu->aio_fd = -1;	/* libaio: one request at a time */
	else
		vmfs_aio_set_batch(qu->aio, true);	/* a burst goes to the device in one system call, at the reap after the pump */
}

/*
 * A suspend wants the disk quiet: what is in flight finishes (answered in
 * the used ring), a chain popped but not started goes back to the ring (the
 * pop only moved last_avail: the guest's descriptors are untouched), and
 * the queue waits until the suspend is done or failed.
 */
/*
 * Looked at once per turn of the queue's loop, so without the lock (every
 * request's path): the flag is set under it and hold_quiet looks again there.
 */
static bool quiesce_wanted(struct blk_queue *qu)
{
	return __atomic_load_n(&qu->b->quiesce, __ATOMIC_ACQUIRE) && !__atomic_load_n(&qu->b->stopping, __ATOMIC_ACQUIRE);
}

static void hold_quiet(struct blk_queue *qu)
{
	struct vmm_blk *b = qu->b;
	struct vmm_virtio *v = &b->v;

	drain(qu);
	pthread_mutex_lock(&v->lock);
	if (qu->held) {
		if (v->resets == qu->held_resets)
			v->q[qu->qi].last_avail--;
		qu->held = false;
	}
	b->nquiet++;
	pthread_cond_broadcast(&b->quiet_cond);
	while (b->quiesce && !b->stopping)
		pthread_cond_wait(&b->quiet_cond, &v->lock);
	b->nquiet--;
	pthread_mutex_unlock(&v->lock);
}

void vmm_blk_quiesce(struct vmm_blk *b)
{
	unsigned i, n = 0;

	pthread_mutex_lock(&b->v.lock);
	__atomic_store_n(&b->quiesce, true, __ATOMIC_RELEASE);
	for (i = 0; i < b->nq; i++) {
		n += b->q[i]->started;
		kick(b->q[i]);
	}
	while (b->nquiet < n && !b->stopping)
		pthread_cond_wait(&b->quiet_cond, &b->v.lock);
	pthread_mutex_unlock(&b->v.lock);
}

void vmm_blk_unquiesce(struct vmm_blk *b)
{
	pthread_mutex_lock(&b->v.lock);
	__atomic_store_n(&b->quiesce, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&b->quiet_cond);
	for (unsigned i = 0; i < b->nq; i++)
		kick(b->q[i]);
	pthread_mutex_unlock(&b->v.lock);
}

struct vmm_virtio *vmm_blk_virtio(struct vmm_blk *b)
{
	return &b->v;
}

static void *queue_thread(void *arg)
{
	struct blk_queue *qu = arg;
	uint64_t val;
	bool stop = false;

	while (!stop) {
		uint64_t wait_ns = 0;
		struct pollfd pf[2] = { { .fd = qu->kick_fd, .events = POLLIN }, { .fd = qu->aio_fd, .events = POLLIN } };
		struct timespec ts;

		open_aio(qu);
		if (quiesce_wanted(qu)) {
			hold_quiet(qu);
			continue;
		}
		if (reap(qu, 0) > 0)
			continue;
		if (pump(qu, &wait_ns))
			continue;
		if (!idle(qu, &stop) || stop)
			continue;
		ts = (struct timespec){ .tv_sec = (time_t)(wait_ns / 1000000000ull), .tv_nsec = (long)(wait_ns % 1000000000ull) };
		if (qu->aio_fd < 0 || !qu->inflight)
			pf[1].fd = -1;
		if (ppoll(pf, 2, wait_ns ? &ts : NULL, NULL) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && read(qu->kick_fd, &val, sizeof(val)) < 0)
			continue;
		if ((pf[1].revents & POLLIN) && read(qu->aio_fd, &val, sizeof(val)) < 0)
			continue;
	}
	drain(qu);
	return NULL;
}

/* Called under v->lock from the vCPU's doorbell exit (no ioeventfd): wakes the queue's thread. */
static void blk_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_blk *b = v->priv;

	if (q < b->nq)
		kick(b->q[q]);
}

void vmm_blk_set_limit(struct vmm_blk *b, uint64_t bytes_per_s, uint64_t ops_per_s)
{
	uint64_t now = base_mono_ns();

	pthread_mutex_lock(&b->v.lock);
	vmm_bucket_set(&b->limit.bytes, bytes_per_s, now);
	vmm_bucket_set(&b->limit.ops, ops_per_s, now);
	b->stats.bytes_per_s = b->limit.bytes.rate;
	b->stats.ops_per_s = b->limit.ops.rate;
	for (unsigned i = 0; i < b->nq; i++)
		kick(b->q[i]);	/* a waiting request re-checks at the new rate */
	pthread_mutex_unlock(&b->v.lock);
}

void vmm_blk_get_stats(struct vmm_blk *b, struct vmm_blk_stats *st)
{
	pthread_mutex_lock(&b->v.lock);
	*st = b->stats;
	st->queues = b->nq;
	st->attach_ns = b->attach_ns;
	st->exit_notifies = b->v.exit_notifies;
	st->irqfd_irqs = b->v.irqfd_irqs;
	st->ioctl_irqs = b->v.ioctl_irqs;
	pthread_mutex_unlock(&b->v.lock);
}

static void blk_config(struct vmm_virtio *v, uint64_t off, uint8_t *data, unsigned len)
{
	struct vmm_blk *b = v->priv;
	uint8_t cfg[64] = { 0 };
	uint64_t cap = cpu_to_le64(b->size / 512);
	uint32_t bs = cpu_to_le32(512), dmax = cpu_to_le32(DISCARD_MAX_SECTORS), dseg = cpu_to_le32(DISCARD_MAX_SEG);
	uint32_t dalign = cpu_to_le32(1), seg_max = cpu_to_le32(BLK_SEG_MAX);
	uint16_t nq = cpu_to_le16((uint16_t)b->nq);

	memcpy(cfg, &cap, 8);		/* capacity in 512-byte sectors */
	memcpy(cfg + 12, &seg_max, 4);	/* seg_max */
	memcpy(cfg + 20, &bs, 4);	/* blk_size */
	memcpy(cfg + 34, &nq, 2);	/* num_queues */
	memcpy(cfg + 36, &dmax, 4);	/* max_discard_sectors */
	memcpy(cfg + 40, &dseg, 4);	/* max_discard_seg */
	memcpy(cfg + 44, &dalign, 4);	/* discard_sector_alignment */
	memset(data, 0, len);
	if (off < sizeof(cfg))
		memcpy(data, cfg + off, off + len <= sizeof(cfg) ? len : sizeof(cfg) - off);
}

static const struct vmm_virtio_ops blk_ops = { .notify = blk_notify, .config = blk_config };

static void queue_free(struct blk_queue *qu)
{
	if (!qu)
		return;
	if (qu->kick_fd >= 0)
		close(qu->kick_fd);
	if (qu->aio)
		vmfs_aio_free(qu->aio);
	free(qu);
}

static int queue_new(struct vmm_blk *b, unsigned qi, struct blk_queue **out)
{
	struct blk_queue *qu = calloc(1, sizeof(*qu));
	unsigned i;
	int ret;

	if (!qu)
		return -ENOMEM;
	qu->b = b;
	qu->qi = qi;
	qu->aio_fd = -1;
	qu->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (qu->kick_fd < 0) {
		ret = -errno;
		free(qu);
		return ret;
	}
	for (i = 0; i < POOL_SEGS; i++) {
		qu->seg[i].next = qu->free_seg;
		qu->free_seg = &qu->seg[i];
	}
	qu->nfree_seg = POOL_SEGS;
	for (i = 0; i < QUEUE_REQS; i++) {
		qu->req[i].next = qu->free_req;
		qu->free_req = &qu->req[i];
	}
	*out = qu;
	return 0;
}

void vmm_blk_attach(struct vmm_blk *b, struct vmfs *fs, uint64_t ino)
{
	unsigned i;

	pthread_mutex_lock(&b->v.lock);
	b->fs = fs;
	b->ino = ino;
	b->attach_ns = base_mono_ns();
	for (i = 0; i < b->nq; i++)
		kick(b->q[i]);
	pthread_mutex_unlock(&b->v.lock);
}

int vmm_blk_new(struct vmm_vm *vm, struct vmm_pci *bus, uint64_t size, bool readonly, struct vmm_blk **out)
{
	struct vmm_blk *b = calloc(1, sizeof(*b));
	unsigned i, nq = vm->ncpus ? vm->ncpus : 1;
	sigset_t all, old;
	int ret;

	if (!b)
		return -ENOMEM;
	if (nq > VMM_VIRTIO_MAX_QUEUES)
		nq = VMM_VIRTIO_MAX_QUEUES;
	b->size = size;
	b->readonly = readonly;
	b->nq = nq;
	b->v.priv = b;
	pthread_cond_init(&b->quiet_cond, NULL);
	ret = vmm_virtio_init(&b->v, vm, bus, 2, nq,
			      VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_MQ |
				      (readonly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD), &blk_ops);
	if (ret) {
		free(b);
		return ret;
	}
	for (i = 0; i < nq && !ret; i++) {
		ret = queue_new(b, i, &b->q[i]);
		if (!ret)
			vmm_virtio_set_kick(&b->v, i, b->q[i]->kick_fd);
	}
	/* The I/O threads take no signals: they are vCPU 0's (see kvm.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nq && !ret; i++) {
		ret = -pthread_create(&b->q[i]->thread, NULL, queue_thread, b->q[i]);
		b->q[i]->started = !ret;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		vmm_blk_free(b);
		return ret;
	}
	*out = b;
	return 0;
}

void vmm_blk_free(struct vmm_blk *b)
{
	unsigned i;

	if (!b)
		return;
	pthread_mutex_lock(&b->v.lock);
	__atomic_store_n(&b->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&b->quiet_cond);
	for (i = 0; i < b->nq; i++)
		if (b->q[i])
			kick(b->q[i]);
	pthread_mutex_unlock(&b->v.lock);
	for (i = 0; i < b->nq; i++)
		if (b->q[i] && b->q[i]->started)
			pthread_join(b->q[i]->thread, NULL);
	vmm_virtio_release(&b->v);
	for (i = 0; i < b->nq; i++)
		queue_free(b->q[i]);
	free(b);
}
