/*
 * The io_uring engine of the device layer (vmfs/dev.c), the default: one ring
 * per context, prepared SQEs submitted in order, completions reaped from the
 * CQ. It keeps the core's invariant 2: the SQ and CQ hold the context's depth,
 * which the core never exceeds, so io_uring_get_sqe cannot fail. Kernels
 * without io_uring fall back to libaio (vmfs/dev_aio.c).
 */
#include "vmfs/dev_engine_i.h"

#include <errno.h>
#include <liburing.h>

/*
 * COOP_TASKRUN: a completion is handed to the submitting thread at its next
 * entry into the kernel (or wakes it where it sleeps) instead of by an
 * interrupt that stops it wherever it runs. Every thread here that submits also
 * reaps, in the kernel or through uring_reap (which enters when TASKRUN_FLAG
 * says work waits), so nothing waits on a thread that is away. The interrupts
 * cost a third (a loop device) to three quarters (a tmpfs file) of the 4 KiB
 * random-write rate on a fast device. Kernels before
 * 5.19 refuse the flags: plain rings there.
 */
static int uring_ctx_init(struct dev_ctx *c)
{
	int ret = io_uring_queue_init(c->depth, &c->u.ring, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);

	return ret == -EINVAL ? io_uring_queue_init(c->depth, &c->u.ring, 0) : ret;
}

static void uring_ctx_release(struct dev_ctx *c)
{
	io_uring_queue_exit(&c->u.ring);
}

static int uring_notify(struct dev_ctx *c, int evfd)
{
	return io_uring_register_eventfd(&c->u.ring, evfd);
}

static bool uring_prep(struct dev_ctx *c, struct dev_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->u.ring);
	int fd = c->dev->fd;
	void *buf;
	size_t len;
	uint64_t off;

	if (!sqe) {        /* cannot happen: the SQ holds depth entries (invariant 2) */
		io->res = -EBUSY;
		io->retries = DEV_RETRY_MAX;
		return true;
	}
	if (io->op == IO_FSYNC) {
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	} else {
		dev_io_span(io, &buf, &len, &off);
		if (io->op == IO_READ)
			io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
		else
			io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
	}
	io_uring_sqe_set_data(sqe, io);
	return false;
}

/* With wait, one io_uring_enter both submits and waits: the synchronous calls make one, not two. */
static int uring_submit(struct dev_ctx *c, unsigned n, bool wait)
{
	(void)n;
	return wait ? io_uring_submit_and_wait(&c->u.ring, 1) : io_uring_submit(&c->u.ring);
}

static int uring_reap(struct dev_ctx *c, unsigned min, unsigned max, struct dev_io **out)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	int r;

	for (;;) {
		unsigned head, seen = 0;

		/* COOP_TASKRUN: completions that wait as task work reach the CQ at a kernel entry */
		if (IO_URING_READ_ONCE(*c->u.ring.sq.kflags) & IORING_SQ_TASKRUN)
			io_uring_get_events(&c->u.ring);

		io_uring_for_each_cqe(&c->u.ring, head, cqe) {
			struct dev_io *io;

			if (n == max)
				break;
			io = io_uring_cqe_get_data(cqe);
			io->res = cqe->res;
			out[n++] = io;
			seen++;
		}
		io_uring_cq_advance(&c->u.ring, seen);
		if (n >= min)
			return (int)n;
		r = io_uring_wait_cqe(&c->u.ring, &cqe);
		if (r < 0 && r != -EINTR && r != -EAGAIN)
			return n ? (int)n : r;
	}
}

const struct dev_engine dev_uring_engine = {
	.name = "uring",
	.fallback = &dev_aio_engine,
	.ctx_init = uring_ctx_init,
	.ctx_release = uring_ctx_release,
	.prep = uring_prep,
	.submit = uring_submit,
	.reap = uring_reap,
	.notify = uring_notify,
};
