/*
 * Suspend and resume through the datastore (vmm/suspend.c). `vmm ctl SOCKET
 * suspend` parks the vCPUs, lets the disks go quiet, writes the guest's RAM,
 * vCPU and device state into the VM's folder as vm.state (vmm/vmstate.h:
 * first as vm.state.new, renamed once whole and synced, so a failure leaves
 * the folder as it was and the VM running), then ends the VM as a stop
 * would: its disks unlocked, ha.state "stopped". `vmm run` on any host then
 * finds vm.state: its preflight checks the whole file against the VM (a
 * damaged or foreign file is refused before anything starts), the VM is
 * built as vm.conf says and loaded from the file instead of booted, and the
 * join deletes vm.state once it holds the disks' locks and before the
 * guest's first disk request, so a state is resumed once and never against
 * a disk that moved on.
 */
#ifndef VMM_SUSPEND_H
#define VMM_SUSPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

struct vmfs;
struct vmm_blk;
struct vmm_state_id;
struct vmm_virtio;
struct vmm_vm;

/* The running VM a suspend or a resume acts on; all borrowed. */
struct vmm_suspend {
	struct vmm_vm *vm;
	const struct vmm_conf *conf;
	const char *dev, *path;   /* the datastore and the VM's folder, for messages */
	struct vmm_blk **blk;     /* one per disk */
	unsigned nblk;
	struct vmm_virtio *balloon;  /* NULL: none */
	const uint64_t *disk_ino; /* each disk's inode */
	bool suspended;           /* set once vm.state is written: the VM then ends */
};

struct vmm_suspend_result {
	uint64_t bytes, ram_bytes, us;
};

/*
 * The identity a vm.state of this VM carries (vmm/vmstate.h): the
 * datastore's UUID, the folder's and each disk's inode and generation,
 * each disk's size, memory, vCPUs and devices. 0 or -errno.
 */
int vmm_state_id_of(struct vmfs *fs, uint64_t dir, const struct vmm_conf *c, const uint64_t *disk_ino,
		    struct vmm_state_id *id);

/* Suspends the VM into its folder on fs (joined: this host holds the disks). 0, or -errno with err saying why. */
int vmm_suspend(struct vmm_suspend *s, struct vmfs *fs, struct vmm_suspend_result *res, char *err, size_t errlen);

/*
 * The preflight's look: 1 when the folder dir holds a vm.state that is
 * whole and this VM's (*ino, *gen: the file), 0 when it holds none, -errno
 * with err saying why it cannot be resumed.
 */
int vmm_resume_check(struct vmfs *ro, uint64_t dir, const struct vmm_state_id *id, uint64_t *ino, uint64_t *gen,
		     char *err, size_t errlen);
/*
 * Loads vm.state (inode ino, checked again as it is read) into s's VM,
 * built but not started: RAM, vCPUs, interrupt controllers, devices.
 * Shows progress on a terminal. 0, or -errno with err saying why.
 */
int vmm_resume_load(struct vmm_suspend *s, struct vmfs *ro, uint64_t ino, const struct vmm_state_id *id, char *err,
		    size_t errlen);
/*
 * The join's step between the locks and the attach: deletes vm.state from
 * dir when it is still the file (ino, gen) the VM was loaded from; -ESTALE
 * when another vmm took it meanwhile.
 */
int vmm_resume_claim(struct vmfs *fs, uint64_t dir, uint64_t ino, uint64_t gen);

/* For vmm list: 1 with a line on the folder's vm.state ("suspended DATE on HOST, N MiB") in buf, 0: none. */
int vmm_suspend_describe(struct vmfs *fs, uint64_t dir, char *buf, size_t len);

#endif
