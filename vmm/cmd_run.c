/*
 * vmm run DEVICE /PATH/NAME: boots a VM with its serial console on stdout,
 * or resumes it when its folder holds a vm.state (vmm/suspend.h).
 * Everything that can be checked is checked through a read-only open, which
 * joins nothing: vm.conf, the disks, the kernel (read then, with the initrd).
 * The guest boots at once while the cluster join runs beside it (vmm/join.c),
 * which then holds the cluster lock on each disk (VMFS_LOCK_EX when
 * writable, VMFS_LOCK_SH when read-only) for the VM's whole life; the guest's
 * first disk request waits for it. vmm run exits with the guest's code (0
 * when it powers off), or 1 when the join or a lock failed.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
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
#include "vmm/join.h"
#include "vmm/kvm.h"
#include "vmm/store.h"
#include "vmm/suspend.h"
#include "vmm/vmstate.h"
#include "vmm/x86/x86.h"

#define INITRD_MAX (1ull << 30)

/*
 * What vmm run needs from the VM folder, read through a read-only open (it
 * joins nothing and writes nothing), so that a missing folder, a bad vm.conf,
 * a missing disk or a kernel that is not a bzImage is refused before anything
 * starts. The kernel and initrd (caller frees) are the ones booted; each
 * disk's inode and size go to j. A folder holding a vm.state is a VM to
 * resume: the file is checked whole against the VM (id), j->resume_ino
 * names it, and no kernel is read. Returns 0, or 1 with the reason printed.
 */
static int run_preflight(struct vmm_join *j, struct vmm_conf *c, struct vmm_state_id *id, void **kernel,
			 size_t *klen, void **initrd, size_t *ilen)
{
	char err[300], p[4200];
	struct vmfs_stat st;
	struct vmfs *fs;
	uint64_t dir;
	unsigned i;
	int ret;

	if (vmm_cmd_open_with(j->dev, true, j->secret, &fs))
		return 1;
	ret = vmfs_resolve(fs, j->path, &dir);
	if (ret) {
		tool_err("%s: %s", j->path, strerror(-ret));
		goto out;
	}
	ret = vmm_store_read_conf(fs, dir, c, err, sizeof(err));
	if (ret) {
		tool_err("%s/vm.conf: %s", j->path, ret == -EINVAL ? err : strerror(-ret));
		goto out;
	}
	for (i = 0; i < c->ndisks; i++) {
		snprintf(p, sizeof(p), "%s/%s", j->path, c->disks[i].file);
		ret = vmfs_resolve(fs, p, &j->ino[i]);
		if (!ret)
			ret = vmfs_getattr(fs, j->ino[i], &st);
		if (!ret && !S_ISREG(st.mode))
			ret = -EISDIR;
		if (ret) {
			tool_err("%s: %s", p, strerror(-ret));
			goto out;
		}
		j->size[i] = st.size & ~511ull;
	}
	ret = vmm_join_precheck(j, fs);
	if (ret)
		goto out;
	/* A suspended VM: the whole file is checked now; its kernel is in its RAM. */
	ret = vmm_state_id_of(fs, dir, c, j->ino, id);
	if (ret) {
		tool_err("%s: %s", j->path, strerror(-ret));
		goto out;
	}
	ret = vmm_resume_check(fs, dir, id, &j->resume_ino, &j->resume_gen, err, sizeof(err));
	if (ret < 0) {
		tool_err("%s/%s: cannot resume it: %s", j->path, VMM_STATE_FILE, err);
		goto out;
	}
	if (ret == 1) {
		ret = 0;
		goto out;
	}
	ret = vmm_store_read_file(fs, dir, c->kernel, VMM_KERNEL_MAX, kernel, klen);
	if (ret) {
		tool_err("%s/%s: %s", j->path, c->kernel, strerror(-ret));
		goto out;
	}
	ret = vmm_x86_check_kernel(*kernel, *klen, *klen, c->cmdline, err, sizeof(err));
	if (ret) {
		tool_err("%s/%s: %s", j->path, c->kernel, err);
		goto out;
	}
	if (c->initrd[0]) {
		ret = vmm_store_read_file(fs, dir, c->initrd, INITRD_MAX, initrd, ilen);
		if (ret) {
			tool_err("%s/%s: %s", j->path, c->initrd, strerror(-ret));
			goto out;
		}
	}
out:
	vmfs_close(fs);
	return ret ? 1 : 0;
}

/* Loads the VM (built, not started) from its vm.state through a read-only open of its own. 0, or 1 said. */
static int resume(struct vmm_suspend *s, const struct vmm_join *j, const struct vmm_state_id *id)
{
	struct vmfs *ro;
	char err[300];
	int ret;

	if (vmm_cmd_open_with(j->dev, true, j->secret, &ro))
		return 1;
	ret = vmm_resume_load(s, ro, j->resume_ino, id, err, sizeof(err));
	vmfs_close(ro);
	if (ret) {
		tool_err("%s/%s: cannot resume it: %s", j->path, VMM_STATE_FILE, err);
		return 1;
	}
	fprintf(stderr, "vmm: %s: resumed from %s/%s\n", j->path, j->path, VMM_STATE_FILE);
	return 0;
}

static double ms(uint64_t from, uint64_t to)
{
	return from && to >= from ? (double)(to - from) / 1e6 : -1.0;
}

/*
 * One line on stderr (vmm run --timings), in ms from the start: the
 * preflight (read-only open, kernel and initrd read), the VM's setup (KVM,
 * devices, the kernel loaded) and the guest's run, in that order; beside
 * them, the join thread's open and locks; the guest's first disk request and
 * how long it waited for the join; and each disk's I/O path.
 */
static void print_timings(uint64_t t0, uint64_t preflight, uint64_t setup, uint64_t end, const struct vmm_join *j,
			  struct vmm_blk **blk, unsigned nblk, struct vmm_vm *vm)
{
	struct vmm_blk_stats st[VMM_MAX_DISKS];
	uint64_t first = 0, attach = 0;
	unsigned i;
	char *line = NULL;
	size_t len = 0;
	/* built whole, then one write: a console on the same stream cannot land inside it */
	FILE *f = open_memstream(&line, &len);

	if (!f)
		return;

	for (i = 0; i < nblk; i++) {
		vmm_blk_get_stats(blk[i], &st[i]);
		if (st[i].first_io_ns && (!first || st[i].first_io_ns < first))
			first = st[i].first_io_ns;
		if (st[i].attach_ns > attach)
			attach = st[i].attach_ns;
	}
	fprintf(f,
		"vmm: timings {\"ms\":{\"preflight\":%.1f,\"setup\":%.1f,\"guest_start\":%.1f,\"join\":%.1f,"
		"\"locks\":%.1f,\"disks_ready\":%.1f,\"first_disk_request\":%.1f,\"disk_wait\":%.1f,\"run\":%.1f},"
		"\"eventfd\":%s,\"disks\":[",
		ms(t0, preflight), ms(preflight, setup), ms(t0, setup), ms(j->start_ns, j->joined_ns),
		ms(j->joined_ns, j->locked_ns), ms(t0, attach), ms(t0, first),
		first && attach > first ? ms(first, attach) : 0.0, ms(setup, end),
		(vm->caps & (VMM_CAP_IOEVENTFD | VMM_CAP_IRQFD)) == (VMM_CAP_IOEVENTFD | VMM_CAP_IRQFD) ? "true" : "false");
	for (i = 0; i < nblk; i++)
		fprintf(f, "%s{\"queues\":%llu,\"requests\":%llu,\"max_inflight\":%llu,\"exit_notifies\":%llu,"
			"\"irqfd_irqs\":%llu,\"ioctl_irqs\":%llu}", i ? "," : "", (unsigned long long)st[i].queues,
			(unsigned long long)(st[i].reads + st[i].writes), (unsigned long long)st[i].max_inflight,
			(unsigned long long)st[i].exit_notifies, (unsigned long long)st[i].irqfd_irqs,
			(unsigned long long)st[i].ioctl_irqs);
	fprintf(f, "]}\n");
	if (!fclose(f))
		fwrite(line, 1, len, stderr);
	free(line);
}

int vmm_cmd_run(int argc, char **argv)
{
	static const struct option lo[] = { { "ctl", required_argument, NULL, 'c' },
					    { "timings", no_argument, NULL, 't' },
					    { NULL, 0, NULL, 0 } };
	uint64_t t0 = base_mono_ns(), t_preflight = 0, t_setup = 0, t_end;
	bool timings = false;
	const char *ctl_path = NULL;
	struct vmm_ctl *ctl = NULL;
	void *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	struct enc_secret *secret = NULL;
	struct vmm_join j = { 0 };
	struct vmm_state_id id;
	struct vmm_suspend sus = { 0 };
	struct vmm_conf c;
	struct vmm_vm vm;
	bool vm_up = false;
	struct vmm_blk *blk[VMM_MAX_DISKS];
	struct vmm_virtio *rng = NULL, *balloon = NULL;
	unsigned nblk = 0, i;
	char err[300];
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
	/* One key for both opens: a prompt asks once, before the guest's console starts. */
	if (vmm_cmd_get_secret(&secret))
		return 1;
	j.dev = argv[1];
	j.path = path;
	j.conf = &c;
	j.secret = secret;
	if (run_preflight(&j, &c, &id, &kernel, &klen, &initrd, &ilen))
		goto out;
	/* After the read-only look (cheap, joins nothing): what is wrong with the VM is said first. */
	if (access("/dev/kvm", R_OK | W_OK)) {
		tool_err("/dev/kvm: %s", strerror(errno));
		goto out;
	}
	t_preflight = base_mono_ns();
	ret = vmm_vm_init(&vm, c.mem_mib, c.cpus, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		goto out;
	}
	vm_up = true;
	j.vm = &vm;
	for (i = 0; i < c.ndisks; i++) {
		ret = vmm_blk_new(&vm, &vm.pci, j.size[i], c.disks[i].readonly, &blk[i]);
		if (ret) {
			tool_err("%s/%s: virtio-blk: %s", path, c.disks[i].file, strerror(-ret));
			goto out;
		}
		j.blk[i] = blk[i];
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
	sus = (struct vmm_suspend){ .vm = &vm, .conf = &c, .dev = j.dev, .path = path, .blk = blk, .nblk = nblk,
				    .balloon = balloon, .disk_ino = j.ino };
	if (j.resume_ino) {
		ret = resume(&sus, &j, &id);
		if (ret)
			goto out;
	} else {
		ret = vmm_x86_boot(&vm, kernel, klen, initrd, ilen, c.cmdline, err, sizeof(err));
		if (ret) {
			tool_err("%s/%s: %s", path, c.kernel, err);
			goto out;
		}
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
					    .vm_path = path, .suspend = &sus };

		ret = vmm_ctl_new(ctl_path, &t, &ctl, err, sizeof(err));
		if (ret) {
			tool_err("%s %s", ctl_path == c.ctl ? "vm.conf ctl=" : "--ctl", err);
			goto out;
		}
	}
	j.ctl = ctl;
	ret = vmm_join_start(&j);
	if (ret) {
		tool_err("joining the cluster: %s", strerror(-ret));
		goto out;
	}
	t_setup = base_mono_ns();
	ret = vmm_vm_run(&vm, err, sizeof(err));
	t_end = base_mono_ns();
	/*
	 * The VM has ended: a second stop signal (an agent's, a user's second
	 * Ctrl-C) must not cut the rest short (ha.state, the unlocks, the
	 * close). It stays pending and dies with the process; SIGKILL still works.
	 */
	{
		sigset_t stop;

		sigemptyset(&stop);
		sigaddset(&stop, SIGTERM);
		sigaddset(&stop, SIGINT);
		sigaddset(&stop, SIGHUP);
		sigprocmask(SIG_BLOCK, &stop, NULL);
	}
	if (ret)
		tool_err("%s: %s", c.name, err);
	else
		rc = vm.exit_code;
	if (!ret && sus.suspended)
		fprintf(stderr, "vmm: %s: suspended into %s/%s; vmm run resumes it\n", path, path, VMM_STATE_FILE);
	if (vmm_join_wait(&j))
		rc = 1;	/* its line is printed; the VM was stopped for it */
	j.ended_clean = !ret && j.ret == 0;
	if (timings)
		print_timings(t0, t_preflight, t_setup, t_end, &j, blk, nblk, &vm);
	if (ret)
		rc = 1;
out:
	vmm_join_wait(&j);	/* a no-op unless the join started and nothing waited for it yet */
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
	if (vmm_join_release(&j) && rc == 0)
		rc = 1;
	enc_secret_free(secret);
	return rc;
}
