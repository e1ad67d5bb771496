/*
 * The sync engine of the device layer (vmfs/dev.c): plain pread, pwrite and
 * fdatasync, each done at prep, so nothing is ever in flight in the kernel
 * and a context needs no state. Its no-op context, submit and reap serve the
 * crash engine (vmfs/dev_crash.c) too, which also does its I/O at prep.
 */
#include "vmfs/dev_engine_i.h"

int dev_sync_ctx_init(struct dev_ctx *c)
{
	(void)c;
	return 0;
}

void dev_sync_ctx_release(struct dev_ctx *c)
{
	(void)c;
}

static bool sync_prep(struct dev_ctx *c, struct dev_io *io)
{
	io->res = dev_io_sync(c->dev->fd, io);
	return true;
}

int dev_sync_submit(struct dev_ctx *c, unsigned n, bool wait)
{
	(void)c;
	(void)n;
	(void)wait;
	return 0;
}

int dev_sync_reap(struct dev_ctx *c, unsigned min, unsigned max, struct dev_io **out)
{
	(void)c;
	(void)min;
	(void)max;
	(void)out;
	return 0;
}

const struct dev_engine dev_sync_engine = {
	.name = "sync",
	.ctx_init = dev_sync_ctx_init,
	.ctx_release = dev_sync_ctx_release,
	.prep = sync_prep,
	.submit = dev_sync_submit,
	.reap = dev_sync_reap,
};
