/*
 * The libaio engine of the device layer (vmfs/dev.c): one aio context per
 * device context, iocbs submitted in order with io_submit, completions reaped
 * with io_getevents. Filesystems do not implement IOCB_CMD_FDSYNC, so a flush
 * is a synchronous fdatasync at prep. Falls back to the sync engine
 * (vmfs/dev_sync.c); the event arrays hold the context's depth (invariant 2).
 */
#include "vmfs/dev_engine_i.h"

#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <time.h>

static int aio_ctx_init(struct dev_ctx *c)
{
	int r;

	c->u.aio.iocbs = calloc(c->depth, sizeof(*c->u.aio.iocbs));
	c->u.aio.events = calloc(c->depth, sizeof(*c->u.aio.events));
	if (!c->u.aio.iocbs || !c->u.aio.events) {
		r = -ENOMEM;
		goto err_free_arrays;
	}
	r = io_setup((int)c->depth, &c->u.aio.ctx);
	if (r < 0)
		goto err_free_arrays;
	return 0;

err_free_arrays:
	free(c->u.aio.iocbs);
	free(c->u.aio.events);
	return r;
}

static void aio_ctx_release(struct dev_ctx *c)
{
	io_destroy(c->u.aio.ctx);   /* waits for anything still in flight */
	free(c->u.aio.iocbs);
	free(c->u.aio.events);
}

static bool aio_prep(struct dev_ctx *c, struct dev_io *io)
{
	int fd = c->dev->fd;
	void *buf;
	size_t len;
	uint64_t off;

	if (io->op == IO_FSYNC) {   /* filesystems do not implement IOCB_CMD_FDSYNC */
		io->res = dev_io_sync(fd, io);
		return true;
	}
	dev_io_span(io, &buf, &len, &off);
	if (io->op == IO_READ)
		io_prep_pread(&io->iocb, fd, buf, len, (long long)off);
	else
		io_prep_pwrite(&io->iocb, fd, buf, len, (long long)off);
	io->iocb.data = io;
	return false;
}

static int aio_submit(struct dev_ctx *c, unsigned n, bool wait)
{
	struct dev_io *io = c->queued.head;

	(void)wait;   /* io_submit cannot wait */
	for (unsigned i = 0; i < n; i++, io = io->next)
		c->u.aio.iocbs[i] = &io->iocb;
	return io_submit(c->u.aio.ctx, (long)n, c->u.aio.iocbs);
}

static int aio_reap(struct dev_ctx *c, unsigned min, unsigned max, struct dev_io **out)
{
	struct timespec poll = { 0, 0 };
	int r;

	do
		r = io_getevents(c->u.aio.ctx, (long)min, (long)max, c->u.aio.events,
				 min ? NULL : &poll);
	while (r == -EINTR);
	if (r < 0)
		return r;
	for (int i = 0; i < r; i++) {
		struct dev_io *io = c->u.aio.events[i].data;

		io->res = (long)c->u.aio.events[i].res;
		out[i] = io;
	}
	return r;
}

const struct dev_engine dev_aio_engine = {
	.name = "aio",
	.fallback = &dev_sync_engine,
	.ctx_init = aio_ctx_init,
	.ctx_release = aio_ctx_release,
	.prep = aio_prep,
	.submit = aio_submit,
	.reap = aio_reap,
};
