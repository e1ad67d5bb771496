/*
 * vmm run's cluster join, beside the booting guest (vmm/join.h). The thread
 * owns nothing the vCPUs touch: it hands each device its file through
 * vmm_blk_attach, the control socket its datastore through vmm_ctl_set_fs,
 * and on failure asks the VM to stop (vmm_vm_stop), all of which any thread
 * may call.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/ctl.h"
#include "vmm/devices/devices.h"
#include "vmm/ha.h"
#include "vmm/join.h"
#include "vmm/kvm.h"
#include "vmm/suspend.h"
#include "vmm/vmstate.h"

#define STALE "replaced or resized while vmm run started; run it again"

#define LEASE_CHECK_MS 250

static bool cancelled(struct vmm_join *j)
{
	bool c;

	pthread_mutex_lock(&j->lock);
	c = j->cancel;
	pthread_mutex_unlock(&j->lock);
	return c;
}

/* ha=restart: the VM's ha.state, in its folder. */
static int ha_state(struct vmm_join *j, enum vmm_ha_state st)
{
	uint64_t dir;
	int ret = vmfs_resolve(j->fs, j->path, &dir);

	return ret ? ret : vmm_ha_write(j->fs, dir, st);
}

/*
 * While the VM runs: a fenced host stops it. The check is a flag lockmgr
 * sets when a renewal came too late or failed; it costs nothing to read.
 */
static int watch_lease(struct vmm_join *j)
{
	int ret = 0;

	pthread_mutex_lock(&j->lock);
	while (!j->cancel) {
		struct timespec ts = base_mono_deadline(LEASE_CHECK_MS);

		pthread_cond_timedwait(&j->cond, &j->lock, &ts);
		if (!j->cancel && vmfs_fenced(j->fs)) {
			tool_err("%s: this host lost its lease on %s (fenced): the VM is stopped", j->path, j->dev);
			ret = -ENOLCK;
			break;
		}
	}
	pthread_mutex_unlock(&j->lock);
	return ret;
}

/* Resolves and locks disk i: 0, or -errno with its line printed. */
static int lock_disk(struct vmm_join *j, unsigned i)
{
	const struct vmm_disk_conf *d = &j->conf->disks[i];
	struct vmfs_stat st;
	char p[4200], who[200] = "";
	uint64_t ino;
	int ret;

	snprintf(p, sizeof(p), "%s/%s", j->path, d->file);
	ret = vmfs_resolve(j->fs, p, &ino);
	if (!ret && ino != j->ino[i])
		ret = -ESTALE;
	if (ret) {
		tool_err("%s: %s", p, ret == -ESTALE ? STALE : strerror(-ret));
		return ret;
	}
	ret = vmfs_file_lock(j->fs, ino, d->readonly ? VMFS_LOCK_SH : VMFS_LOCK_EX, who, sizeof(who));
	if (ret == -EBUSY) {
		tool_err("%s: in use by %s", p, who[0] ? who : "another host");
		return ret;
	}
	if (ret) {
		tool_err("%s: locking: %s", p, strerror(-ret));
		return ret;
	}
	j->locked++;
	/* Under the lock nobody resizes it: it must be the size the guest was shown. */
	ret = vmfs_getattr(j->fs, ino, &st);
	if (!ret && (st.size & ~511ull) != j->size[i])
		ret = -ESTALE;
	if (ret) {
		tool_err("%s: %s", p, ret == -ESTALE ? STALE : strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * A resumed VM: its vm.state goes before the guest's first disk request, so
 * it is resumed once and never against a disk that moved on. The file must
 * still be the one the VM was loaded from.
 */
static int claim_state(struct vmm_join *j)
{
	uint64_t dir;
	int ret = vmfs_resolve(j->fs, j->path, &dir);

	if (!ret)
		ret = vmm_resume_claim(j->fs, dir, j->resume_ino, j->resume_gen);
	if (ret == -ESTALE)
		tool_err("%s/%s: resumed by another vmm meanwhile: this one stops", j->path, VMM_STATE_FILE);
	else if (ret)
		tool_err("%s/%s: deleting it: %s", j->path, VMM_STATE_FILE, strerror(-ret));
	return ret;
}

struct holder_scan {
	struct vmm_join *j;
	unsigned disk;            /* the first disk with a conflicting holder, or ndisks */
	struct vmfs_lock lock;    /* that holder's record */
};

static int holder_of(void *arg, const struct vmfs_lock *l)
{
	struct holder_scan *h = arg;
	unsigned i;

	if (l->kind != VMFS_LOCK_INODE)
		return 0;
	for (i = 0; i < h->j->conf->ndisks; i++) {
		if (l->id != h->j->ino[i])
			continue;
		/* A read-only disk's shared lock conflicts only with an exclusive one. */
		if (l->mode == VMFS_LOCK_EX || !h->j->conf->disks[i].readonly) {
			h->disk = i;
			h->lock = *l;
			return 1;
		}
	}
	return 0;
}

int vmm_join_precheck(struct vmm_join *j, struct vmfs *ro)
{
	struct holder_scan h = { .j = j, .disk = j->conf->ndisks };
	struct vmfs_host *hosts = NULL;
	char who[200];
	size_t n = 0, i;
	bool alive = false;

	if (vmfs_locks(ro, holder_of, &h) <= 0)
		return 0;
	/* A holder killed a moment ago is for the join to recover: refuse only a live one. */
	if (vmfs_hosts(ro, &hosts, &n))
		return 0;
	for (i = 0; i < n; i++)
		if (hosts[i].slot == h.lock.slot && hosts[i].gen == h.lock.gen && hosts[i].state == VMFS_HOST_LIVE)
			alive = hosts[i].alive;
	free(hosts);
	if (!alive)
		return 0;
	/* The words of vmfs_file_lock's -EBUSY, as the join would print them. */
	vmfs_lock_holder(&h.lock, who, sizeof(who));
	tool_err("%s/%s: in use by %s", j->path, j->conf->disks[h.disk].file, who);
	return -EBUSY;
}

static void *join_thread(void *arg)
{
	struct vmm_join *j = arg;
	unsigned i;
	int ret;

	ret = vmm_cmd_open_with(j->dev, false, j->secret, &j->fs);
	if (ret)
		j->fs = NULL;
	j->joined_ns = base_mono_ns();
	for (i = 0; !ret && i < j->conf->ndisks; i++)
		ret = cancelled(j) ? -ECANCELED : lock_disk(j, i);
	j->locked_ns = base_mono_ns();
	if (!ret && j->resume_ino)
		ret = claim_state(j);
	if (!ret && j->conf->ha_restart && (ret = ha_state(j, VMM_HA_RUNNING)))
		tool_err("%s/%s: %s", j->path, VMM_HA_FILE, strerror(-ret));
	if (!ret) {
		for (i = 0; i < j->conf->ndisks; i++)
			vmm_blk_attach(j->blk[i], j->fs, j->ino[i]);
		vmm_ctl_set_fs(j->ctl, j->fs);
		/*
		 * The open's temporaries came from the heap (vmm run raised
		 * glibc's mmap threshold loading the kernel) and were freed after
		 * vmm run's own malloc_trim: give them back too (10 MiB of RSS
		 * in bench/vmm's outer VM).
		 */
		malloc_trim(0);
		ret = watch_lease(j);
	}
	if (ret && ret != -ECANCELED)
		vmm_vm_stop(j->vm);
	j->ret = ret == -ECANCELED ? 0 : ret;
	return NULL;
}

int vmm_join_start(struct vmm_join *j)
{
	sigset_t all, old;
	int ret;

	j->fs = NULL;
	j->locked = 0;
	j->ret = 0;
	j->cancel = false;
	j->start_ns = base_mono_ns();
	pthread_mutex_init(&j->lock, NULL);
	base_cond_init_mono(&j->cond);
	/* No signals here: they are vCPU 0's (kvm.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&j->thread, NULL, join_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	j->started = !ret;
	return -ret;
}

int vmm_join_wait(struct vmm_join *j)
{
	if (!j->started)
		return j->ret;
	pthread_mutex_lock(&j->lock);
	j->cancel = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	j->started = false;
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	/* Fenced while the VM was ending for another reason (a stop signal came first): it is still a fence. */
	if (!j->ret && j->fs && vmfs_fenced(j->fs)) {
		tool_err("%s: this host lost its lease on %s (fenced): the VM is stopped", j->path, j->dev);
		j->ret = -ENOLCK;
	}
	return j->ret;
}

int vmm_join_release(struct vmm_join *j)
{
	unsigned i;
	int rc = 0, ret;

	/* Only a VM that ran (its disks locked) and ended as asked; a fenced host cannot write anyway. */
	if (j->fs && j->ended_clean && j->ret == 0 && j->locked == j->conf->ndisks && j->conf->ha_restart &&
	    (ret = ha_state(j, VMM_HA_STOPPED))) {
		tool_err("%s/%s: %s", j->path, VMM_HA_FILE, strerror(-ret));
		rc = 1;
	}
	for (i = 0; i < j->locked; i++)
		vmfs_file_unlock(j->fs, j->ino[i]);
	j->locked = 0;
	/* A fenced host cannot close cleanly (it may not write); its line was printed. */
	if (j->fs && vmfs_close(j->fs) && j->ret != -ENOLCK) {
		tool_err("%s: close failed", j->dev);
		rc = 1;
	}
	j->fs = NULL;
	return rc;
}
