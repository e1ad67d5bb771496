/*
 * FUSE over io_uring for vmfs-mount (Linux 6.14 and later, with the fuse
 * module's enable_uring parameter on). See mount_ring.c.
 */
#ifndef VMFS_TOOLS_FUSE_RING_H
#define VMFS_TOOLS_FUSE_RING_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

struct vmfs;
struct fuse_ring;

/* Does this kernel offer FUSE over io_uring, and is it switched on? */
bool fuse_ring_available(void);

/*
 * Takes over the session's replies (fuse_session_custom_io) right after
 * fuse_session_mount; the rings start once the kernel has the INIT reply.
 * root is the vmfs inode FUSE_ROOT_ID stands for; the rings' complaints go to
 * report (stderr when NULL). NULL when the session's I/O cannot be taken
 * over: the classic /dev/fuse loop then serves alone.
 */
struct fuse_ring *fuse_ring_attach(struct fuse_session *se, struct vmfs *fs, uint64_t root,
				   void (*report)(void *ctx, const char *line), void *report_ctx);

/* Call from the init callback: the next reply this thread sends is INIT's. */
void fuse_ring_init_pending(void);

/*
 * Stops the ring threads (each finishes what it has in flight) and frees
 * everything; before fuse_session_unmount. Returns the number of requests
 * the rings served.
 */
uint64_t fuse_ring_stop(struct fuse_ring *fr);

#endif
