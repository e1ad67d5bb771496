/*
 * Device layer (private to vmfs/ and the tools that link libvmfs): opens a block
 * device or a regular file with O_DIRECT, learns its logical sector size, and
 * does aligned I/O through one of three engines: io_uring (default), libaio, or
 * plain pread/pwrite, chosen by VMFS_IO_ENGINE=uring|aio|sync. Every engine gives
 * the same results; the engine table lets tests add engines. One test engine
 * exists: "crash", a device that loses power on cue (vmfs/dev_crash.h). The
 * engines are vmfs/dev_uring.c, dev_aio.c, dev_sync.c and dev_crash.c.
 *
 * Invariants: every offset, length and buffer address passed in is a multiple of
 * dev_sector_size() (callers align; dev_* returns -EINVAL otherwise); a call
 * returns only when the I/O is complete; short transfers are retried until done
 * or turned into -EIO; all calls are thread-safe.
 */
#ifndef VMFS_DEV_I_H
#define VMFS_DEV_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmfs_dev;

enum dev_open_flags {
	DEV_RDONLY = 1u << 0,  /* O_RDONLY; every write returns -EROFS */
	DEV_CREATE = 1u << 1,  /* create a regular file if missing (mkfs --size) */
};

/*
 * Opens path. engine NULL means $VMFS_IO_ENGINE, then "uring"; when io_uring is
 * unavailable (ENOSYS, EPERM) it falls back to aio, then sync, and says so once
 * on stderr. Errors: -ENOENT, -EACCES, -EINVAL (unknown engine name), -ENOTBLK
 * (a path that is neither a regular file nor a block device: a directory,
 * /dev/null, a FIFO), -errno from open.
 */
int dev_open(const char *path, unsigned flags, const char *engine, struct vmfs_dev **out);
/* What went wrong in dev_open, for a message: ENOTBLK is said as "not a regular file or block device". */
const char *dev_strerror(int err);
void dev_close(struct vmfs_dev *dev);  /* NULL is a no-op */

uint64_t dev_size(const struct vmfs_dev *dev);        /* bytes (file size or BLKGETSIZE64) */
unsigned dev_sector_size(const struct vmfs_dev *dev); /* 512 or 4096 (BLKSSZGET; files: 512, or $VMFS_SECTOR_SIZE) */
bool dev_is_blockdev(const struct vmfs_dev *dev);
bool dev_readonly(const struct vmfs_dev *dev);
const char *dev_engine_name(const struct vmfs_dev *dev); /* "uring", "aio", "sync", "crash" */

/* Grows a regular file to size bytes (sparse, ftruncate). -ENOTTY on a block device. */
int dev_set_size(struct vmfs_dev *dev, uint64_t size);

/*
 * Fencing: once gate(arg) returns false, every write and zero-range fails with
 * -EIO before it reaches the engine. gate is called before each submission, from
 * any thread, and must be cheap (lk_write_ok: one clock read). Set it before the
 * first write; NULL removes it.
 */
void dev_set_write_gate(struct vmfs_dev *dev, bool (*gate)(void *arg), void *arg);

int dev_pread(struct vmfs_dev *dev, void *buf, size_t len, uint64_t off);
int dev_pwrite(struct vmfs_dev *dev, const void *buf, size_t len, uint64_t off);
/* Makes every completed write durable (fdatasync / IORING_OP_FSYNC). */
int dev_flush(struct vmfs_dev *dev);
/*
 * Afterwards the range reads as zeros, guaranteed: fallocate(PUNCH_HOLE|KEEP_SIZE)
 * on files, BLKZEROOUT on block devices, writing zeros as the fallback.
 */
int dev_zero_range(struct vmfs_dev *dev, uint64_t off, uint64_t len);

/*
 * Batched I/O: submits n requests at once and waits for all of them; each gets
 * its own result in res (0 or -errno). Returns 0 when all succeeded, else the
 * first error. The engine keeps up to its queue depth in flight.
 */
enum dev_op { DEV_OP_READ, DEV_OP_WRITE };
struct dev_req {
	enum dev_op op;
	void *buf;
	size_t len;
	uint64_t off;
	int res;
};
int dev_submit_wait(struct vmfs_dev *dev, struct dev_req *reqs, unsigned n);

/*
 * Asynchronous queue for callers that keep many I/Os in flight from one thread
 * (the bench tool, vmm). A queue belongs to one thread. dev_queue_submit queues a
 * request (the caller keeps req alive until it completes); dev_queue_kick hands
 * everything queued to the kernel in one system call without waiting;
 * dev_queue_reap does the same, then waits until at least min requests have
 * completed, stores up to max completed request pointers in out and returns how
 * many (or -errno). A kick's errors reach the requests and are reported by reap.
 */
struct dev_queue;
int dev_queue_new(struct vmfs_dev *dev, unsigned depth, struct dev_queue **out);
void dev_queue_free(struct dev_queue *q);
int dev_queue_submit(struct dev_queue *q, struct dev_req *req);
void dev_queue_kick(struct dev_queue *q);
int dev_queue_reap(struct dev_queue *q, unsigned min, unsigned max, struct dev_req **out);
/*
 * An eventfd (non-blocking, owned by q) the engine signals as requests of q
 * complete, for callers that wait on other things too; -EOPNOTSUPP when the
 * engine cannot (only io_uring can).
 */
int dev_queue_eventfd(struct dev_queue *q);

/* Allocates len bytes aligned for O_DIRECT (4096), zeroed. free() releases it. */
void *dev_alloc_buf(size_t len);
/*
 * For buffers of DEV_BIG_BUF bytes and more that vmfs itself keeps and does
 * I/O from (encrypted files' ciphertext): 2 MiB-aligned and backed by
 * transparent huge pages where the kernel gives them, so that a 1 MiB
 * transfer is one request without 256 page pins; not zeroed. free()
 * releases it.
 */
#define DEV_BIG_BUF (256u << 10)
void *dev_alloc_big_buf(size_t len);

#endif
