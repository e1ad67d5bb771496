/*
 * FUSE over io_uring (Documentation/filesystems/fuse-io-uring.rst): ring
 * entries (a header and a payload buffer each) are registered with the kernel's
 * per-CPU queues by IORING_OP_URING_CMD; the kernel fills an entry with a
 * request and the reply goes back in the same buffers with COMMIT_AND_FETCH,
 * which re-arms the entry. Two threads per CPU, each with its own io_uring,
 * register SHARE entries on their CPU's queue and SHARE on the next one's, so a
 * burst from one CPU is copied in by several threads at once (why:
 * docs/ARCHITECTURE.md, "Concurrency"). Reads and writes go to the device
 * through the thread's own vmfs_aio queue straight from the page-aligned,
 * huge-page-backed payload; every other request goes to libfuse as if read from
 * /dev/fuse, its reply caught in the session's custom writev. Forgets and
 * interrupts, and everything until all queues are armed, still come through
 * /dev/fuse. The INIT reply gets FUSE_OVER_IO_URING added, binding the
 * connection to the rings; a refused registration turns io_uring off and the
 * classic loop serves alone. The wire structures are the kernel's
 * (include/uapi/linux/fuse.h, protocol 7.42), spelled out because Debian 12's
 * headers predate them.
 */
#define FUSE_USE_VERSION 314

#include "tools/mount_ring.h"

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#define SHARE 8                    /* entries a thread registers on each of its two queues */
#define ENTRIES (2 * SHARE)        /* a thread's */
#define THREADS_PER_CPU 2
#define PAYLOAD (1u << 20)         /* >= the kernel's max_payload_sz: max_write, max_pages (vm_init) */
#define ENABLE_PARAM "/sys/module/fuse/parameters/enable_uring"
#define OVER_IO_URING_FLAGS2 (1u << (41 - 32))   /* FUSE_OVER_IO_URING, in fuse_init_out.flags2 */

enum { RING_CMD_REGISTER = 1, RING_CMD_COMMIT_AND_FETCH = 2 };

struct ring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct ring_header {
	char in_out[128];          /* fuse_in_header in, fuse_out_header out */
	char op_in[128];           /* the request's first argument */
	struct ring_ent_in_out ent;
};

struct ring_cmd {                  /* the SQE's 80-byte command area */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

/* user_data of the two polls; ring entries are tagged with their address */
enum { TAG_AIO = 1, TAG_STOP = 2 };

struct ring_thread;

struct ring_ent {
	struct ring_thread *t;
	struct ring_header *hdr;
	uint8_t *payload;
	struct iovec iov[2];
	struct vmfs_aio_req aio;
	uint64_t unique;           /* the request being served */
	uint16_t qid;              /* the kernel's queue (a CPU) the entry is registered with */
	bool caught;               /* the libfuse reply landed here */
};

struct ring_thread {
	struct fuse_ring *fr;
	unsigned idx;
	struct io_uring ring;
	struct vmfs_aio *aio;
	int aio_fd;
	unsigned inflight;         /* aio requests not yet reaped */
	unsigned live;             /* entries registered and not returned with an error */
	bool stopping;
	uint8_t *scratch;          /* a request rebuilt for libfuse */
	uint8_t *payloads;         /* ENTRIES * PAYLOAD, huge-page aligned */
	struct ring_ent ents[ENTRIES];
	pthread_t thread;
	bool started;
};

/* Where the rings' complaints go: vmfs-mount's report path (syslog for a daemon), or stderr. */
struct ring_report {
	void (*fn)(void *ctx, const char *line);
	void *ctx;
};

struct fuse_ring {
	struct ring_report rep;
	struct fuse_session *se;
	struct vmfs *fs;
	uint64_t root;
	int fd;
	int stop_fd;
	unsigned nq;               /* the kernel's queues; THREADS_PER_CPU * nq threads */
	struct ring_thread *ts;
	_Atomic uint64_t served;
	bool running;
};

/* One session per process: the custom writev finds the ring here. */
static struct fuse_ring *the_ring;
static __thread struct ring_ent *tl_ent;        /* the entry a libfuse call serves */
static __thread bool tl_init_pending;

static void start_all(struct fuse_ring *fr);

static void report_err(const struct ring_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_err(const struct ring_report *rep, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (rep->fn)
		rep->fn(rep->ctx, line);
	else
		tool_err("%s", line);
}

bool fuse_ring_available(void)
{
	char c = 'N';
	int fd = open(ENABLE_PARAM, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = 'N';
	close(fd);
	return c == 'Y' || c == '1';
}

void fuse_ring_init_pending(void)
{
	tl_init_pending = true;
}

/* ---- the ring's commands -------------------------------------------------------- */

static struct io_uring_sqe *sqe_get(struct ring_thread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	if (!sqe) { /* the SQ is full: hand it to the kernel and try again */
		io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;
}

static int ent_cmd(struct ring_ent *e, uint32_t op)
{
	struct ring_thread *t = e->t;
	struct io_uring_sqe *sqe = sqe_get(t);
	struct ring_cmd *cmd;

	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, 2 * sizeof(*sqe)); /* SQE128: the command area runs into the second half */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = t->fr->fd;
	sqe->cmd_op = op;
	sqe->addr = (uintptr_t)e->iov;
	sqe->len = 2;
	cmd = (struct ring_cmd *)sqe->cmd;
	cmd->commit_id = op == RING_CMD_COMMIT_AND_FETCH ? e->hdr->ent.commit_id : 0;
	cmd->qid = e->qid;
	io_uring_sqe_set_data(sqe, e);
	if (op == RING_CMD_REGISTER)
		t->live++;
	return 0;
}

static int poll_arm(struct ring_thread *t, int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = sqe_get(t);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	sqe->user_data = tag;
	return 0;
}

/* Replies with the out header and len payload bytes already in place, and re-arms the entry. */
static void ent_reply(struct ring_ent *e, int error, uint32_t len)
{
	struct fuse_out_header oh = { .len = (uint32_t)sizeof(oh) + (error ? 0 : len),
				      .error = error ? -error : 0, .unique = e->unique };

	memcpy(e->hdr->in_out, &oh, sizeof(oh));
	e->hdr->ent.payload_sz = error ? 0 : len;
	atomic_fetch_add_explicit(&e->t->fr->served, 1, memory_order_relaxed);
	ent_cmd(e, RING_CMD_COMMIT_AND_FETCH);
}

/* ---- serving a request ------------------------------------------------------------- */

static uint64_t to_vmfs(struct fuse_ring *fr, uint64_t nodeid)
{
	return nodeid == FUSE_ROOT_ID ? fr->root : nodeid;
}

static void aio_done(struct ring_thread *t, struct vmfs_aio_req *r)
{
	struct ring_ent *e = r->priv;

	t->inflight--;
	if (r->res < 0) {
		ent_reply(e, (int)-r->res, 0);
	} else if (r->write) {
		struct fuse_write_out wo = { .size = (uint32_t)r->res };

		memcpy(e->payload, &wo, sizeof(wo));
		ent_reply(e, 0, sizeof(wo));
	} else {
		ent_reply(e, 0, (uint32_t)r->res);
	}
}

/*
 * Replies to what the device has finished; with drain, waits until all of this
 * thread's I/O has (a synchronous request may need the iolocks it holds).
 */
static void aio_collect(struct ring_thread *t, bool drain)
{
	struct vmfs_aio_req *done[ENTRIES];
	int n;

	while (t->inflight && (n = vmfs_aio_reap(t->aio, drain, done, ENTRIES)) > 0)
		for (int i = 0; i < n; i++)
			aio_done(t, done[i]);
}

static void serve_io(struct ring_ent *e, const struct fuse_in_header *ih, bool write)
{
	struct ring_thread *t = e->t;
	uint64_t off;
	uint32_t size;
	int ret;

	if (write) {
		struct fuse_write_in wi;

		memcpy(&wi, e->hdr->op_in, sizeof(wi));
		off = wi.offset;
		size = wi.size;
		if (size > e->hdr->ent.payload_sz) {
			ent_reply(e, EINVAL, 0);
			return;
		}
	} else {
		struct fuse_read_in ri;

		memcpy(&ri, e->hdr->op_in, sizeof(ri));
		off = ri.offset;
		size = ri.size;
	}
	if (size > PAYLOAD || off > INT64_MAX) {
		ent_reply(e, EINVAL, 0);
		return;
	}
	e->aio = (struct vmfs_aio_req){ .ino = to_vmfs(t->fr, ih->nodeid), .write = write,
					.buf = e->payload, .len = size, .off = off, .priv = e };
	ret = vmfs_aio_submit(t->aio, &e->aio);
	if (ret < 0) {
		ent_reply(e, -ret, 0);
		return;
	}
	t->inflight++;
}

/*
 * Requests whose handlers take no inode's iolock: they may run while this
 * thread's reads and writes, which hold iolocks shared, are in flight. The
 * kernel sends a GETATTR before each read once the attributes' timeout has
 * passed; waiting for the thread's I/O to drain first held the next read back until
 * the device had finished all the others, one request in flight at a time.
 * Everything else (SETATTR and FALLOCATE take an iolock exclusive; FSYNC and
 * RELEASE stay ordered after the I/O too) waits for the drain.
 */
static bool lockless_op(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_GETATTR: case FUSE_LOOKUP: case FUSE_STATFS: case FUSE_ACCESS:
	case FUSE_READLINK: case FUSE_OPENDIR: case FUSE_READDIR: case FUSE_READDIRPLUS:
	case FUSE_RELEASEDIR: case FUSE_FLUSH: case FUSE_LSEEK: case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		return true;
	default:
		return false;
	}
}

/* Anything else: libfuse serves it as if it came from /dev/fuse; ring_writev catches the reply. */
static void serve_other(struct ring_ent *e, const struct fuse_in_header *ih)
{
	struct ring_thread *t = e->t;
	uint32_t pay = e->hdr->ent.payload_sz, first;
	struct fuse_buf fb = { 0 };

	if (ih->len < sizeof(*ih) + pay || ih->len - sizeof(*ih) - pay > sizeof(e->hdr->op_in) ||
	    pay > PAYLOAD) {
		ent_reply(e, EINVAL, 0);
		return;
	}
	first = ih->len - (uint32_t)sizeof(*ih) - pay;
	memcpy(t->scratch, ih, sizeof(*ih));
	memcpy(t->scratch + sizeof(*ih), e->hdr->op_in, first);
	memcpy(t->scratch + sizeof(*ih) + first, e->payload, pay);
	fb.mem = t->scratch;
	fb.size = ih->len;
	aio_collect(t, !lockless_op(ih->opcode));
	e->caught = false;
	tl_ent = e;
	fuse_session_process_buf(t->fr->se, &fb);
	tl_ent = NULL;
	if (!e->caught) /* no reply (a forget): the entry still goes back */
		ent_reply(e, 0, 0);
}

static void serve(struct ring_ent *e)
{
	struct fuse_in_header ih;

	memcpy(&ih, e->hdr->in_out, sizeof(ih));
	e->unique = ih.unique;
	if (ih.opcode == FUSE_WRITE || ih.opcode == FUSE_READ)
		serve_io(e, &ih, ih.opcode == FUSE_WRITE);
	else
		serve_other(e, &ih);
}

/*
 * Tells the kernel to give up on io_uring for this connection: it must refuse
 * a registration for a queue that does not exist, and then clears the
 * connection's io_uring flag and wakes the requests waiting for the rings.
 */
static void kernel_ring_off(struct fuse_ring *fr)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 };
	struct ring_header hdr = { 0 };
	struct iovec iov[2] = { { &hdr, sizeof(hdr) }, { NULL, 0 } };
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;

	report_err(&fr->rep, "FUSE over io_uring: the rings did not come up; serving through /dev/fuse");
	if (io_uring_queue_init_params(4, &ring, &p) < 0)
		return;
	sqe = io_uring_get_sqe(&ring);
	if (sqe) {
		memset(sqe, 0, 2 * sizeof(*sqe));
		sqe->opcode = IORING_OP_URING_CMD;
		sqe->fd = fr->fd;
		sqe->cmd_op = RING_CMD_REGISTER;
		sqe->addr = (uintptr_t)iov;
		sqe->len = 2;
		((struct ring_cmd *)sqe->cmd)->qid = UINT16_MAX;
		if (io_uring_submit_and_wait(&ring, 1) >= 0 && !io_uring_peek_cqe(&ring, &cqe))
			io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_queue_exit(&ring);
}

/* The INIT reply, with FUSE_OVER_IO_URING added (and FUSE_INIT_EXT, which makes flags2 count). */
static ssize_t writev_init(int fd, struct iovec *iov, int count)
{
	struct fuse_init_out io;
	struct iovec v[2];

	if (count != 2 || iov[1].iov_len < offsetof(struct fuse_init_out, flags2) + sizeof(io.flags2) ||
	    iov[1].iov_len > sizeof(io))
		return writev(fd, iov, count);
	memset(&io, 0, sizeof(io));
	memcpy(&io, iov[1].iov_base, iov[1].iov_len);
	io.flags |= FUSE_INIT_EXT;
	io.flags2 |= OVER_IO_URING_FLAGS2;
	v[0] = iov[0];
	v[1] = (struct iovec){ &io, iov[1].iov_len };
	return writev(fd, v, 2);
}

/* The session's writev: a reply for the entry this thread serves goes into it, the rest to the fd. */
static ssize_t ring_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct ring_ent *e = tl_ent;
	ssize_t n;

	(void)userdata;
	if (e && count >= 1 && iov[0].iov_len == sizeof(struct fuse_out_header)) {
		struct fuse_out_header oh;
		size_t len = 0;

		memcpy(&oh, iov[0].iov_base, sizeof(oh));
		if (oh.unique == e->unique) {
			for (int i = 1; i < count; i++) {
				if (len + iov[i].iov_len > PAYLOAD) {
					errno = EINVAL;
					return -1;
				}
				memcpy(e->payload + len, iov[i].iov_base, iov[i].iov_len);
				len += iov[i].iov_len;
			}
			e->caught = true;
			ent_reply(e, -oh.error, (uint32_t)len);
			return (ssize_t)(sizeof(oh) + len);
		}
	}
	if (!tl_init_pending || !the_ring || the_ring->running)
		return writev(fd, iov, count);
	tl_init_pending = false;
	n = writev_init(fd, iov, count);
	if (n >= 0) {
		int saved = errno;

		start_all(the_ring);
		errno = saved;
	}
	return n;
}

static ssize_t ring_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
}

/* ---- the threads ------------------------------------------------------------------- */

static void thread_cqe(struct ring_thread *t, struct io_uring_cqe *cqe)
{
	uint64_t tag = cqe->user_data, v;

	if (tag == TAG_AIO || tag == TAG_STOP) {
		if (tag == TAG_STOP)
			t->stopping = true;
		else if (read(t->aio_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			t->stopping = true;
		if (!(cqe->flags & IORING_CQE_F_MORE) && !t->stopping)
			poll_arm(t, tag == TAG_AIO ? t->aio_fd : t->fr->stop_fd, tag);
		return;
	}
	struct ring_ent *e = (struct ring_ent *)(uintptr_t)tag;

	if (cqe->res < 0) { /* unmounted (ENOTCONN), cancelled, or refused at registration */
		t->live--;
		if (cqe->res != -ENOTCONN && cqe->res != -ECANCELED && !t->stopping)
			report_err(&t->fr->rep, "FUSE over io_uring, thread %u: %s", t->idx, strerror(-cqe->res));
		return;
	}
	serve(e);
}

static void *thread_main(void *arg)
{
	struct ring_thread *t = arg;
	char name[16];

	snprintf(name, sizeof(name), "vmfs-ring%u", t->idx);
	pthread_setname_np(pthread_self(), name);
	/* io_uring_enable_rings(), which Debian 12's liburing declares but does not export */
	if (syscall(__NR_io_uring_register, t->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		report_err(&t->fr->rep, "FUSE over io_uring, thread %u: %s", t->idx, strerror(errno));
		kernel_ring_off(t->fr);
		return NULL;
	}
	for (unsigned i = 0; i < ENTRIES; i++)
		ent_cmd(&t->ents[i], RING_CMD_REGISTER);
	poll_arm(t, t->aio_fd, TAG_AIO);
	poll_arm(t, t->fr->stop_fd, TAG_STOP);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int ret = io_uring_submit_and_wait(&t->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			report_err(&t->fr->rep, "FUSE over io_uring, thread %u: %s", t->idx, strerror(-ret));
			break;
		}
		io_uring_for_each_cqe(&t->ring, head, cqe) {
			thread_cqe(t, cqe);
			seen++;
		}
		io_uring_cq_advance(&t->ring, seen);
		aio_collect(t, false);
		/*
		 * Not "no entry is with the kernel": under a deep queue every entry
		 * can be ours at once, each waiting for the device.
		 */
		if (t->stopping || !t->live) {
			aio_collect(t, true);
			io_uring_submit(&t->ring); /* the last replies */
			break;
		}
	}
	return NULL;
}

static void thread_release(struct ring_thread *t)
{
	if (t->aio)
		vmfs_aio_free(t->aio);
	if (t->ring.ring_fd > 0)
		io_uring_queue_exit(&t->ring);
	for (unsigned i = 0; i < ENTRIES; i++)
		free(t->ents[i].hdr);
	free(t->payloads);
	free(t->scratch);
}

/* Thread idx serves queue idx % nq and the one after it. */
static int thread_setup(struct fuse_ring *fr, struct ring_thread *t, unsigned idx)
{
	/*
	 * The thread alone submits, and the kernel runs the ring's task
	 * work (handing us requests) only when that thread asks for completions,
	 * not by interrupting it: the ring is enabled in that thread.
	 */
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED };
	int ret;

	t->fr = fr;
	t->idx = idx;
	ret = io_uring_queue_init_params(2 * ENTRIES + 8, &t->ring, &p);
	if (ret == -EINVAL) { /* before Linux 6.1; FUSE over io_uring came in 6.14 anyway */
		p = (struct io_uring_params){ .flags = IORING_SETUP_SQE128 | IORING_SETUP_R_DISABLED };
		ret = io_uring_queue_init_params(2 * ENTRIES + 8, &t->ring, &p);
	}
	if (ret < 0) {
		t->ring.ring_fd = -1;
		return ret;
	}
	ret = vmfs_aio_new(fr->fs, ENTRIES, &t->aio);
	if (ret < 0)
		return ret;
	vmfs_aio_set_batch(t->aio, true); /* one doorbell per burst: aio_collect hands them over */
	t->aio_fd = vmfs_aio_eventfd(t->aio);
	if (t->aio_fd < 0)
		return t->aio_fd;
	if (posix_memalign((void **)&t->scratch, 4096, PAYLOAD + 512) ||
	    posix_memalign((void **)&t->payloads, BASE_HUGE_PAGE, (size_t)ENTRIES * PAYLOAD))
		return -ENOMEM;
	/*
	 * Only advice: without transparent huge pages (or with none free) the
	 * buffers are 4 KiB pages and a 1 MiB transfer may take two requests.
	 */
	madvise(t->payloads, (size_t)ENTRIES * PAYLOAD, MADV_HUGEPAGE);
	for (unsigned i = 0; i < ENTRIES; i++) {
		struct ring_ent *e = &t->ents[i];

		e->t = t;
		e->qid = (uint16_t)((idx + (i < SHARE ? 0 : 1)) % fr->nq);
		e->payload = t->payloads + (size_t)i * PAYLOAD;
		if (posix_memalign((void **)&e->hdr, 64, sizeof(*e->hdr)))
			return -ENOMEM;
		memset(e->hdr, 0, sizeof(*e->hdr));
		e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
		e->iov[1] = (struct iovec){ e->payload, PAYLOAD };
	}
	return 0;
}

/* After the INIT reply (the kernel refuses registrations before it). */
static void start_all(struct fuse_ring *fr)
{
	fr->running = true;
	for (unsigned i = 0; i < THREADS_PER_CPU * fr->nq; i++) {
		struct ring_thread *t = &fr->ts[i];

		int ret = pthread_create(&t->thread, NULL, thread_main, t);

		if (ret) {
			report_err(&fr->rep, "FUSE over io_uring: cannot start thread %u: %s", i, strerror(ret));
			kernel_ring_off(fr);
			break;
		}
		t->started = true;
	}
}

/* The kernel's num_possible_cpus(): one more than the last CPU in /sys/devices/system/cpu/possible. */
static unsigned possible_cpus(void)
{
	char buf[256];
	unsigned last = 0;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");

	if (f && fgets(buf, sizeof(buf), f)) {
		char *p = buf + strcspn(buf, "\n");

		while (p > buf && (p[-1] >= '0' && p[-1] <= '9'))
			p--;
		last = (unsigned)strtoul(p, NULL, 10);
	} else {
		last = (unsigned)get_nprocs_conf() - 1;
	}
	if (f)
		fclose(f);
	return last + 1;
}

struct fuse_ring *fuse_ring_attach(struct fuse_session *se, struct vmfs *fs, uint64_t root,
				   void (*report)(void *ctx, const char *line), void *report_ctx)
{
	static const struct fuse_custom_io io = { .writev = ring_writev, .read = ring_read };
	struct ring_report rep = { report, report_ctx };
	struct fuse_ring *fr = calloc(1, sizeof(*fr));
	int ret = -ENOMEM;

	if (!fr)
		goto err;
	fr->rep = rep;
	fr->se = se;
	fr->fs = fs;
	fr->root = root;
	fr->fd = fuse_session_fd(se);
	fr->nq = possible_cpus(); /* the kernel makes a queue per possible CPU */
	fr->stop_fd = eventfd(0, EFD_CLOEXEC);
	fr->ts = calloc(THREADS_PER_CPU * fr->nq, sizeof(*fr->ts));
	if (fr->stop_fd < 0 || !fr->ts)
		goto err;
	for (unsigned i = 0; i < THREADS_PER_CPU * fr->nq; i++) {
		ret = thread_setup(fr, &fr->ts[i], i);
		if (ret < 0)
			goto err;
	}
	if (fuse_session_custom_io(se, &io, fr->fd)) {
		ret = -EINVAL;
		goto err;
	}
	the_ring = fr;
	return fr;
err:
	report_err(&rep, "FUSE over io_uring not used: %s", strerror(-ret));
	if (fr) {
		for (unsigned i = 0; fr->ts && i < THREADS_PER_CPU * fr->nq; i++)
			thread_release(&fr->ts[i]);
		if (fr->stop_fd >= 0)
			close(fr->stop_fd);
		free(fr->ts);
		free(fr);
	}
	return NULL;
}

uint64_t fuse_ring_stop(struct fuse_ring *fr)
{
	uint64_t one = 1, served;

	if (!fr)
		return 0;
	if (write(fr->stop_fd, &one, sizeof(one)) < 0)
		report_err(&fr->rep, "FUSE over io_uring: stop: %s", strerror(errno));
	for (unsigned i = 0; i < THREADS_PER_CPU * fr->nq; i++) {
		if (fr->ts[i].started)
			pthread_join(fr->ts[i].thread, NULL);
		thread_release(&fr->ts[i]);
	}
	served = atomic_load(&fr->served);
	close(fr->stop_fd);
	free(fr->ts);
	free(fr);
	the_ring = NULL;
	return served;
}
