/*
 * HA restart's state file and the agent's decision (vmm/ha.h). The state is
 * one of two 8-byte words, so an overwrite is one sector and a power cut
 * leaves one or the other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmfs/vmfs.h"
#include "vmm/ha.h"
#include "vmm/store.h"

#define WORD_LEN 8
static const char words[2][WORD_LEN + 1] = { [VMM_HA_STOPPED] = "stopped\n", [VMM_HA_RUNNING] = "running\n" };

int vmm_ha_read(struct vmfs *fs, uint64_t dir, enum vmm_ha_state *st)
{
	void *buf = NULL;
	size_t len = 0;
	int ret = vmm_store_read_file(fs, dir, VMM_HA_FILE, 4096, &buf, &len);

	if (ret == -ENOENT) {
		*st = VMM_HA_STOPPED;
		return 0;
	}
	if (ret == -EFBIG) {
		*st = VMM_HA_RUNNING;
		return 0;
	}
	if (ret)
		return ret;
	*st = len == WORD_LEN && !memcmp(buf, words[VMM_HA_STOPPED], WORD_LEN) ? VMM_HA_STOPPED : VMM_HA_RUNNING;
	free(buf);
	return 0;
}

int vmm_ha_write(struct vmfs *fs, uint64_t dir, enum vmm_ha_state st)
{
	struct vmfs_stat s;
	uint64_t ino;
	ssize_t n;
	int ret = vmfs_lookup(fs, dir, VMM_HA_FILE, &s);

	if (ret == -ENOENT) {
		ret = vmm_store_new_file(fs, dir, VMM_HA_FILE, &ino);
	} else if (!ret) {
		vmfs_forget(fs, s.ino, 1);
		ino = s.ino;
		if (s.size != WORD_LEN)
			ret = vmm_store_set_size(fs, ino, WORD_LEN);
	}
	if (ret)
		return ret;
	n = vmfs_pwrite(fs, ino, words[st], WORD_LEN, 0);
	if (n != WORD_LEN)
		return n < 0 ? (int)n : -EIO;
	return vmfs_fsync(fs, ino, false);
}

enum vmm_ha_action vmm_ha_decide(const struct vmm_ha_view *v)
{
	if (v->mine || v->state != VMM_HA_RUNNING || v->disks_held || v->backing_off)
		return VMM_HA_LEAVE;
	if (v->need_mib > v->free_mib)
		return VMM_HA_NO_MEMORY;
	return VMM_HA_TRY;
}
