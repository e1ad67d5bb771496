/*
 * The request vmfsctl sends a vmfs-mount daemon (an ioctl on the mountpoint,
 * or on any directory or file of the mount), so that snapshot and clone
 * commands run inside the host that has the files open: that host holds their
 * locks, so it may snapshot a file a VM writes through it, where another host
 * would be refused. Only root may send it (the daemon checks the caller).
 */
#ifndef VMFS_TOOLS_MOUNT_CTL_H
#define VMFS_TOOLS_MOUNT_CTL_H

#include <stdint.h>
#include <sys/ioctl.h>

struct vmfs_mount_ctl {
	uint32_t op;            /* enum snap_op (snapshot/snapshot.h) */
	int32_t result;         /* out: 0 or -errno */
	char path[1024];        /* from the datastore's root */
	char name[256];         /* the snapshot's name */
	char dst[1024];         /* a clone's path */
	char err[512];          /* out: one line when result < 0 */
};

#define VMFS_IOC_SNAP _IOWR('V', 0x51, struct vmfs_mount_ctl)

/* vmfsctl rekey --deep through the mount: one snap_rekey call (snapshot/snapshot.h) per request. */
struct vmfs_mount_rekey {
	int32_t result;         /* out: 0 or -errno */
	uint32_t all;           /* every file, symlink and directory (path: "/") */
	uint64_t cursor;        /* in/out: the file worked on */
	uint64_t max_bytes;     /* of blocks this request */
	uint64_t files, file, done, size;       /* out: snap_rekey_progress */
	uint32_t all_done;      /* out */
	uint32_t dirs;          /* out: how many of the files are directories */
	char path[1024];
	char name[1024];        /* out: the file's path */
	char err[512];          /* out: one line when result < 0 */
};

#define VMFS_IOC_REKEY _IOWR('V', 0x52, struct vmfs_mount_rekey)

#endif
