/*
 * HA restart (vmm/ha.c): what a VM with ha=restart keeps on the datastore,
 * and what `vmm agent` decides from it. The VM folder's ha.state says whether
 * the VM should be running: `vmm run` writes "running" once it holds its
 * disks, and "stopped" when the VM ends as asked (the guest powered off, a
 * stop, SIGTERM); a host that dies or is fenced leaves "running". An agent
 * restarts a VM whose ha.state says running while no host holds its disks;
 * of several agents, the one that wins the lock on ha.state does
 * (docs/VMM.md, "HA restart").
 */
#ifndef VMM_HA_H
#define VMM_HA_H

#include <stdbool.h>
#include <stdint.h>

struct vmfs;

#define VMM_HA_FILE "ha.state"

enum vmm_ha_state { VMM_HA_STOPPED, VMM_HA_RUNNING };

/*
 * Reads dir's ha.state: no file is STOPPED (never run under HA); "stopped\n"
 * is STOPPED; anything else, a torn or foreign file too, is RUNNING: a VM is
 * better restarted than lost. 0 or -errno.
 */
int vmm_ha_read(struct vmfs *fs, uint64_t dir, enum vmm_ha_state *st);
/* Writes it (8 bytes at offset 0, one sector: old or new after a power cut) and syncs it. */
int vmm_ha_write(struct vmfs *fs, uint64_t dir, enum vmm_ha_state st);

/* What an agent sees of one ha=restart VM. */
struct vmm_ha_view {
	bool mine;                /* a vmm run child of this agent runs it */
	enum vmm_ha_state state;
	bool disks_held;          /* a host holds a lock on one of its disks (it runs, or its dead host is not yet recovered) */
	bool backing_off;         /* it failed to start here a moment ago: leave it to the others for a while */
	uint64_t need_mib, free_mib;  /* its memory, and what this host can still give */
};
enum vmm_ha_action {
	VMM_HA_LEAVE,             /* nothing to do */
	VMM_HA_NO_MEMORY,         /* it should run, but not here: say why, leave it to another host */
	VMM_HA_TRY,               /* take the lock on its ha.state; the winner restarts it */
};
enum vmm_ha_action vmm_ha_decide(const struct vmm_ha_view *v);

#endif
