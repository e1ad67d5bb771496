/*
 * What the device layer's engines share with its core (vmfs/dev.c), private
 * to vmfs/dev*.c: the context and device structs, the engine ops, the core's
 * helpers for the engines, and the crash engine's hooks the core calls. An
 * engine keeps the core's invariants (vmfs/dev.c): a context is used by one
 * thread at a time and holds at most depth I/Os.
 */
#ifndef VMFS_DEV_ENGINE_I_H
#define VMFS_DEV_ENGINE_I_H

#include "vmfs/dev_i.h"

#include <libaio.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEV_RETRY_MAX 1000       /* EINTR/EAGAIN resubmissions of one request */
#define DEV_ZERO_CHUNK (1u << 20)

enum io_op { IO_READ, IO_WRITE, IO_FSYNC };

/* One request on its way through a context; a context owns depth of these. */
struct dev_io {
	struct dev_req *req;      /* borrowed from the caller; for IO_FSYNC a private one */
	enum io_op op;
	size_t done;              /* bytes already transferred */
	long res;                 /* result of the last submission: bytes or -errno */
	unsigned retries;
	struct dev_io *next;      /* free list, prepared FIFO, done list or ready list */
	struct iocb iocb;         /* aio: the control block the kernel holds while in flight */
};

struct dev_io_list {
	struct dev_io *head, **tail;
	unsigned n;
};

struct dev_ctx {
	struct vmfs_dev *dev;
	struct dev_ctx *next;          /* the device pool's free list */
	unsigned depth;
	unsigned inflight;             /* handed to the kernel, completion not yet seen */
	int err;                       /* engine failed (-errno): no more I/O, freed instead of pooled */
	struct dev_io *ios;            /* depth slots */
	struct dev_io *free;
	unsigned nfree;
	struct dev_io_list queued;     /* prepared, not yet handed to the kernel */
	struct dev_io_list done;       /* completed without the kernel's queue (sync, failed submit) */
	struct dev_io **out;           /* depth completions, for ctx_reap */
	int evfd;                      /* dev_queue_eventfd's, or -1 */
	union {
		struct io_uring ring;
		struct {
			io_context_t ctx;
			struct iocb **iocbs;
			struct io_event *events;
		} aio;
	} u;
};

/*
 * An engine. prep queues the rest of io (or, returning true, performs it at
 * once and sets io->res); submit hands up to n prepared I/Os to the kernel, in
 * the order they were prepared, and returns how many it took or -errno (with
 * wait, the caller reaps next and needs a completion: an engine may wait for
 * one in the same system call); reap
 * waits for at least min of the c->inflight I/Os, stores at most max of them
 * (with io->res set) in out and returns how many.
 */
struct dev_engine {
	const char *name;
	const struct dev_engine *fallback;   /* when ctx_init says ENOSYS/EPERM/ENOMEM/EAGAIN */
	int (*ctx_init)(struct dev_ctx *c);
	void (*ctx_release)(struct dev_ctx *c);
	bool (*prep)(struct dev_ctx *c, struct dev_io *io);
	int (*submit)(struct dev_ctx *c, unsigned n, bool wait);
	int (*reap)(struct dev_ctx *c, unsigned min, unsigned max, struct dev_io **out);
	int (*notify)(struct dev_ctx *c, int evfd);  /* signal evfd at each completion (optional) */
};

struct dev_crash;

struct vmfs_dev {
	int fd;
	unsigned flags;
	bool blockdev;
	bool direct;                   /* O_DIRECT (false after the buffered fallback) */
	unsigned sector;
	_Atomic uint64_t size;
	const struct dev_engine *eng;
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct dev_ctx *pool;          /* idle contexts */
	unsigned nctx;                 /* contexts alive, idle or borrowed */
	struct dev_crash *crash;       /* the crash engine's state; NULL for the others */
	bool (*write_gate)(void *arg); /* fencing: false refuses every write (dev_set_write_gate) */
	void *write_gate_arg;
};

/* The engines (vmfs/dev_uring.c, dev_aio.c, dev_sync.c, dev_crash.c). */
extern const struct dev_engine dev_uring_engine;
extern const struct dev_engine dev_aio_engine;
extern const struct dev_engine dev_sync_engine;
extern const struct dev_engine dev_crash_engine;

/* dev.c: the part of io still to transfer, capped at one submission's size. */
void dev_io_span(const struct dev_io *io, void **buf, size_t *len, uint64_t *off);
/* dev.c: io done at once with pread, pwrite or fdatasync: bytes or -errno. */
long dev_io_sync(int fd, struct dev_io *io);
/* dev.c: fallocate, retried on EINTR; 0 or -errno. */
int dev_file_fallocate(int fd, int mode, uint64_t off, uint64_t len);

/* dev_sync.c: the context of engines that do all their I/O at prep (sync, crash). */
int dev_sync_ctx_init(struct dev_ctx *c);
void dev_sync_ctx_release(struct dev_ctx *c);
int dev_sync_submit(struct dev_ctx *c, unsigned n, bool wait);
int dev_sync_reap(struct dev_ctx *c, unsigned min, unsigned max, struct dev_io **out);

/* dev_crash.c: what the core asks of a "crash" device (dev->crash set). */
int dev_crash_new(struct vmfs_dev *dev);           /* at open: the plan from the environment */
void dev_crash_discard(struct vmfs_dev *dev);      /* open failed: free, nothing lands */
void dev_crash_free(struct vmfs_dev *dev);         /* close: pending writes land (not a cut) */
uint64_t dev_crash_end(const struct vmfs_dev *dev);
bool dev_crash_dead(const struct vmfs_dev *dev);
int dev_crash_zero_range(struct vmfs_dev *dev, uint64_t off, uint64_t len);

#endif
