/*
 * vmm run's cluster join (vmm/join.c), on a thread of its own while the guest
 * boots. The preflight's read-only open has read the kernel and the initrd
 * and sized the disks, which is all a boot needs; the join then opens the
 * datastore read-write (joining waits out lockmgr's claim delay, 2.3 s with
 * the default timings, docs/LOCKING.md, H1), resolves each disk again and
 * checks it is the file the preflight saw, takes its cluster lock
 * (VMFS_LOCK_EX, or VMFS_LOCK_SH for a read-only disk) and attaches it to its
 * virtio-blk device (a resumed VM's vm.state is deleted just before:
 * vmm/suspend.h). The guest's first disk request waits for that; nothing
 * before it does. A failure prints its one line and stops the VM, which has
 * then done no disk I/O; vmm run exits 1. With ha=restart it then writes
 * ha.state "running" (vmm/ha.h). While the VM runs the thread watches the
 * lease: a fenced host (its heartbeat lost, docs/LOCKING.md, H4) stops the VM
 * with a line saying so (its writes already fail), exit 1, ha.state left
 * "running" for another host's agent.
 */
#ifndef VMM_JOIN_H
#define VMM_JOIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/config.h"

struct enc_secret;
struct vmfs;
struct vmm_blk;
struct vmm_ctl;
struct vmm_vm;

struct vmm_join {
	/* In, borrowed until vmm_join_release: */
	const char *dev, *path;   /* the datastore, the VM's folder */
	const struct vmm_conf *conf;
	const struct enc_secret *secret;  /* NULL: none */
	struct vmm_vm *vm;        /* stopped when the join fails */
	struct vmm_ctl *ctl;      /* given the datastore once joined; may be NULL */
	uint64_t ino[VMM_MAX_DISKS], size[VMM_MAX_DISKS];  /* as the preflight saw each disk */
	struct vmm_blk *blk[VMM_MAX_DISKS];
	uint64_t resume_ino, resume_gen;  /* the vm.state the VM was loaded from (deleted once the disks are locked), 0: a boot */
	/* Out, once vmm_join_wait returned: */
	struct vmfs *fs;          /* joined, or NULL */
	unsigned locked;          /* disks 0..locked-1 hold their lock */
	int ret;                  /* 0, or -errno (its line printed); -ENOLCK: fenced */
	bool ended_clean;         /* set by the caller before vmm_join_release: the VM ended as asked */
	uint64_t start_ns, joined_ns, locked_ns;  /* base_mono_ns(): the thread began, the open and the locks done */
	/* Private: */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* cancel set */
	bool started, cancel;
};

/*
 * Before anything starts, through the preflight's read-only handle (j's
 * inodes filled in): a disk that a live host holds in a conflicting mode is
 * refused at once with the line the lock would print (-EBUSY), rather than
 * after a boot and a join. It costs one read of the lock table; only when a
 * conflicting record is there does it watch the heartbeats (two intervals)
 * to tell a live holder from a dead one, whose lock the join recovers.
 */
int vmm_join_precheck(struct vmm_join *j, struct vmfs *ro);
/* Starts the join thread on j (filled in); -errno if it cannot start. */
int vmm_join_start(struct vmm_join *j);
/* Once the VM has ended: takes no more locks, waits for the thread; returns j->ret. */
int vmm_join_wait(struct vmm_join *j);
/*
 * Writes ha.state "stopped" when the VM ended clean (ha=restart), releases
 * the locks and closes the datastore: 0, or 1 with a line printed when the
 * close failed.
 */
int vmm_join_release(struct vmm_join *j);

#endif
