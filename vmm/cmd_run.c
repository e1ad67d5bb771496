/*
 * vmm run DEVICE /PATH/NAME: boots a VM with its serial console on stdout.
 * Everything that can be checked is checked through a read-only open before
 * the cluster is joined; then it holds the cluster lock on each disk
 * (VMFS_LOCK_EX when writable, VMFS_LOCK_SH when read-only) for the VM's
 * whole life, and exits with the guest's code (0 when it powers off).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"
#include "vmm/ctl.h"
#include "vmm/devices/devices.h"
#include "vmm/devices/virtio.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/store.h"
#include "vmm/x86/x86.h"

#define INITRD_MAX (1ull << 30)

/*
 * What vmm run needs from the VM folder, read through a read-only open (it
 * joins nothing and writes nothing), so that a missing folder, a bad vm.conf,
 * a missing disk or a kernel that is not a bzImage is refused before the
 * cluster is joined. The kernel and initrd (caller frees) are the ones booted.
 * Returns 0, or 1 with the reason printed.
 */
static int run_preflight(const char *dev, const char *path, struct vmm_conf *c, void **kernel, size_t *klen,
			 void **initrd, size_t *ilen)
{
	char err[300], p[4200];
	struct vmfs_stat st;
	struct vmfs *fs;
	uint64_t dir, ino;
	unsigned i;
	int ret;

	if (vmm_cmd_open_store(dev, true, &fs))
		return 1;
	ret = vmfs_resolve(fs, path, &dir);
	if (ret) {
		tool_err("%s: %s", path, strerror(-ret));
		goto out;
	}
	ret = vmm_store_read_conf(fs, dir, c, err, sizeof(err));
	if (ret) {
		tool_err("%s/vm.conf: %s", path, ret == -EINVAL ? err : strerror(-ret));
		goto out;
	}
	for (i = 0; i < c->ndisks; i++) {
		snprintf(p, sizeof(p), "%s/%s", path, c->disks[i].file);
		ret = vmfs_resolve(fs, p, &ino);
		if (!ret)
			ret = vmfs_getattr(fs, ino, &st);
		if (!ret && !S_ISREG(st.mode))
			ret = -EISDIR;
		if (ret) {
			tool_err("%s: %s", p, strerror(-ret));
			goto out;
		}
	}
	ret = vmm_store_read_file(fs, dir, c->kernel, VMM_KERNEL_MAX, kernel, klen);
	if (ret) {
		tool_err("%s/%s: %s", path, c->kernel, strerror(-ret));
		goto out;
	}
	ret = vmm_x86_check_kernel(*kernel, *klen, *klen, c->cmdline, err, sizeof(err));
	if (ret) {
		tool_err("%s/%s: %s", path, c->kernel, err);
		goto out;
	}
	if (c->initrd[0]) {
		ret = vmm_store_read_file(fs, dir, c->initrd, INITRD_MAX, initrd, ilen);
		if (ret) {
			tool_err("%s/%s: %s", path, c->initrd, strerror(-ret));
			goto out;
		}
	}
out:
	vmfs_close(fs);
	return ret ? 1 : 0;
}

/* The phases --timings reports, each ending at t[phase] (t[0]: the start). */
enum { PH_START, PH_PREFLIGHT, PH_JOIN, PH_LOCKS, PH_SETUP, PH_RUN, PHASES };

/*
 * One line on stderr: how long each phase took (ms), when the guest's first
 * disk request came (from the start), and each disk's I/O path.
 */
static void print_timings(const uint64_t *t, struct vmm_blk **blk, unsigned nblk, struct vmm_vm *vm)
{
	static const char *const name[PHASES] = { "", "preflight", "join", "locks", "setup", "run" };
	uint64_t first = 0;
	unsigned i;

	fprintf(stderr, "vmm: timings {\"ms\":{");
	for (i = 1; i < PHASES; i++)
		fprintf(stderr, "%s\"%s\":%.1f", i > 1 ? "," : "", name[i], (double)(t[i] - t[i - 1]) / 1e6);
	for (i = 0; i < nblk; i++) {
		struct vmm_blk_stats st;

		vmm_blk_get_stats(blk[i], &st);
		if (st.first_io_ns && (!first || st.first_io_ns < first))
			first = st.first_io_ns;
	}
	fprintf(stderr, ",\"first_disk_request\":%.1f},\"eventfd\":%s,\"disks\":[",
		first ? (double)(first - t[0]) / 1e6 : -1.0,
		(vm->caps & (VMM_CAP_IOEVENTFD | VMM_CAP_IRQFD)) == (VMM_CAP_IOEVENTFD | VMM_CAP_IRQFD) ? "true" : "false");
	for (i = 0; i < nblk; i++) {
		struct vmm_blk_stats st;

		vmm_blk_get_stats(blk[i], &st);
		fprintf(stderr, "%s{\"queues\":%llu,\"requests\":%llu,\"max_inflight\":%llu,\"exit_notifies\":%llu,"
			"\"irqfd_irqs\":%llu,\"ioctl_irqs\":%llu}", i ? "," : "", (unsigned long long)st.queues,
			(unsigned long long)(st.reads + st.writes), (unsigned long long)st.max_inflight,
			(unsigned long long)st.exit_notifies, (unsigned long long)st.irqfd_irqs,
			(unsigned long long)st.ioctl_irqs);
	}
	fprintf(stderr, "]}\n");
}

int vmm_cmd_run(int argc, char **argv)
{
	static const struct option lo[] = { { "ctl", required_argument, NULL, 'c' },
					    { "timings", no_argument, NULL, 't' },
					    { NULL, 0, NULL, 0 } };
	uint64_t ph[PHASES] = { base_mono_ns() };
	bool timings = false;
	const char *ctl_path = NULL;
	struct vmm_ctl *ctl = NULL;
	void *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	struct vmfs *fs = NULL;
	struct vmm_conf c;
	struct vmm_vm vm;
	bool vm_up = false;
	uint64_t dir, disk_ino[VMM_MAX_DISKS];
	struct vmm_blk *blk[VMM_MAX_DISKS];
	struct vmm_virtio *rng = NULL, *balloon = NULL;
	unsigned locked = 0, nblk = 0, i;
	char err[300], who[200];
	const char *path;
	int ret, rc = 1, opt;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 't') {
			timings = true;
			continue;
		}
		if (opt != 'c') {
			vmm_usage(stderr);
			return 2;
		}
		ctl_path = optarg;
	}
	if (argc - optind != 2) {
		vmm_usage(stderr);
		return 2;
	}
	argv += optind - 1;	/* argv[1] DEVICE, argv[2] /PATH/NAME as before */
	path = argv[2];
	if (!vmm_cmd_path_ok(path)) {
		tool_err("'%s': want /PATH/NAME, each part 1..63 letters, digits, '.', '_' or '-'", path);
		return 2;
	}
	/* Fail on a missing /dev/kvm before spending 2 s joining the cluster. */
	if (access("/dev/kvm", R_OK | W_OK)) {
		tool_err("/dev/kvm: %s", strerror(errno));
		return 1;
	}
	if (run_preflight(argv[1], path, &c, &kernel, &klen, &initrd, &ilen))
		goto out;
	ph[PH_PREFLIGHT] = base_mono_ns();
	if (vmm_cmd_open_store(argv[1], false, &fs))
		goto out;
	ph[PH_JOIN] = base_mono_ns();
	ret = vmfs_resolve(fs, path, &dir);
	if (ret) {
		tool_err("%s: %s", path, strerror(-ret));
		goto out;
	}
	for (i = 0; i < c.ndisks; i++) {
		char p[4200];

		snprintf(p, sizeof(p), "%s/%s", path, c.disks[i].file);
		ret = vmfs_resolve(fs, p, &disk_ino[i]);
		if (ret) {
			tool_err("%s: %s", p, strerror(-ret));
			goto out;
		}
		who[0] = 0;
		ret = vmfs_file_lock(fs, disk_ino[i], c.disks[i].readonly ? VMFS_LOCK_SH : VMFS_LOCK_EX, who,
				     sizeof(who));
		if (ret == -EBUSY) {
			tool_err("%s: in use by %s", p, who[0] ? who : "another host");
			goto out;
		}
		if (ret) {
			tool_err("%s: locking: %s", p, strerror(-ret));
			goto out;
		}
		locked++;
	}
	ph[PH_LOCKS] = base_mono_ns();
	ret = vmm_vm_init(&vm, c.mem_mib, c.cpus, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		goto out;
	}
	vm_up = true;
	for (i = 0; i < c.ndisks; i++) {
		struct vmfs_stat st;

		ret = vmfs_getattr(fs, disk_ino[i], &st);
		if (!ret)
			ret = vmm_blk_new(&vm, &vm.pci, fs, disk_ino[i], st.size & ~511ull, c.disks[i].readonly, &blk[i]);
		if (ret) {
			tool_err("%s/%s: virtio-blk: %s", path, c.disks[i].file, strerror(-ret));
			goto out;
		}
		nblk++;
	}
	if (c.rng && (ret = vmm_rng_new(&vm, &vm.pci, &rng))) {
		tool_err("virtio-rng: %s", strerror(-ret));
		goto out;
	}
	if (c.balloon && (ret = vmm_balloon_new(&vm, &vm.pci, &balloon))) {
		tool_err("virtio-balloon: %s", strerror(-ret));
		goto out;
	}
	ret = vmm_x86_boot(&vm, kernel, klen, initrd, ilen, c.cmdline, err, sizeof(err));
	if (ret) {
		tool_err("%s/%s: %s", path, c.kernel, err);
		goto out;
	}
	free(kernel);
	free(initrd);
	kernel = initrd = NULL;
	/*
	 * glibc keeps freed heap pages (the initrd's buffer often came from the
	 * heap once the kernel's raised the mmap threshold): give them back, they
	 * are megabytes of RSS for the VM's whole life.
	 */
	malloc_trim(0);
	if (!ctl_path && c.ctl[0])
		ctl_path = c.ctl;	/* --ctl overrides vm.conf's ctl= */
	if (ctl_path) {
		struct vmm_ctl_target t = { .vm = &vm, .conf = &c, .blk = blk, .nblk = nblk, .balloon = balloon,
					    .fs = fs, .vm_path = path };

		ret = vmm_ctl_new(ctl_path, &t, &ctl, err, sizeof(err));
		if (ret) {
			tool_err("%s %s", ctl_path == c.ctl ? "vm.conf ctl=" : "--ctl", err);
			goto out;
		}
	}
	ph[PH_SETUP] = base_mono_ns();
	ret = vmm_vm_run(&vm, err, sizeof(err));
	ph[PH_RUN] = base_mono_ns();
	if (timings)
		print_timings(ph, blk, nblk, &vm);
	if (ret) {
		tool_err("%s: %s", c.name, err);
		goto out;
	}
	rc = vm.exit_code;
out:
	vmm_ctl_free(ctl);
	/*
	 * The disks' I/O threads stop before guest memory goes (vmm_vm_run
	 * has joined the vCPU threads; aps_started is only a safety net).
	 */
	for (i = 0; vm_up && !vm.aps_started && i < nblk; i++)
		vmm_blk_free(blk[i]);
	if (vm_up && !vm.aps_started) {
		if (rng)
			vmm_virtio_release(rng);
		if (balloon)
			vmm_virtio_release(balloon);
		free(rng);
		free(balloon);
	}
	if (vm_up)
		vmm_vm_release(&vm);
	free(kernel);
	free(initrd);
	for (i = 0; i < locked; i++)
		vmfs_file_unlock(fs, disk_ino[i]);
	if (fs && vmfs_close(fs) && rc == 0) {
		tool_err("%s: close failed", argv[1]);
		rc = 1;
	}
	return rc;
}
