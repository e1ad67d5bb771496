/*
 * The control socket of a running VM (vmm/ctl.c): a Unix socket that serves
 * JSON lines (status, pause, resume, stop, suspend, balloon, rate, snapshot, revert) on a thread of its
 * own, and the client `vmm ctl` sends one request with. What it acts on is
 * borrowed and must outlive it; vmm_ctl_free stops the thread and removes the
 * socket.
 */
#ifndef VMM_CTL_H
#define VMM_CTL_H

#include <stddef.h>

struct vmfs;

struct vmm_blk;
struct vmm_conf;
struct vmm_suspend;
struct vmm_virtio;
struct vmm_vm;

/* What the control socket acts on; all borrowed, and they must outlive it. */
struct vmm_ctl_target {
	struct vmm_vm *vm;
	const struct vmm_conf *conf;
	struct vmm_blk **blk;     /* one per vm.conf disk, in order */
	unsigned nblk;
	struct vmm_virtio *balloon;  /* NULL when the VM has none */
	struct vmfs *fs;          /* the datastore, for snapshot and rekey; NULL until vmm_ctl_set_fs */
	const char *vm_path;      /* the VM's folder on it (/PATH/NAME) */
	struct vmm_suspend *suspend;  /* what suspend acts on (vmm/suspend.h) */
};

/*
 * Listens on a new Unix socket at path (it must not exist, or be a stale socket
 * that refuses connections, left by a killed vmm: that one is replaced) and serves JSON
 * lines on a thread of its own. Returns 0, or -errno with err saying why.
 */
struct vmm_ctl;
int vmm_ctl_new(const char *path, const struct vmm_ctl_target *t, struct vmm_ctl **out, char *err, size_t errlen);
/* Offers snapshot and rekey on fs, once vmm run has joined the cluster (any thread; NULL c: a no-op). */
void vmm_ctl_set_fs(struct vmm_ctl *c, struct vmfs *fs);
/* Stops the thread, removes the socket; NULL is a no-op. */
void vmm_ctl_free(struct vmm_ctl *c);
/*
 * The client: sends one request line to the socket at path and puts the
 * reply line (without its newline) in reply. Waits at most 30 s for it.
 */
int vmm_ctl_request(const char *path, const char *request, char *reply, size_t len, char *err, size_t errlen);

#endif
