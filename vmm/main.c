/*
 * vmm: the command line of the KVM monitor. `vmm create` makes a VM folder on
 * a datastore (vm.conf, the kernel and initrd copied in, thin disks), `vmm
 * list` shows the VMs, `vmm run` boots one with its serial console on stdout
 * while holding the cluster lock (VMFS_LOCK_EX) on each writable disk and a
 * shared one on each read-only disk. Every failure is one line on stderr and a
 * non-zero exit; `vmm run` exits 0 when the guest powers off.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmm/config.h"
#include "vmm/ctl.h"
#include "vmm/devices/devices.h"
#include "vmm/kvm.h"
#include "vmm/store.h"
#include "vmm/x86/x86.h"

#define KERNEL_MAX (256ull << 20)
#define INITRD_MAX (1ull << 30)

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm create DEVICE /PATH/NAME --kernel FILE [--initrd FILE] [--cmdline STR]\n"
		   "                  --mem MiB --cpus N (--disk SIZE | --disk-from FILE)...\n"
		   "       vmm list DEVICE\n"
		   "       vmm run DEVICE /PATH/NAME [--ctl SOCKET]   (default: vm.conf's ctl=)\n"
		   "       vmm ctl SOCKET (status | pause | resume | stop | balloon PAGES |\n"
		   "                       rate DISK BYTES_PER_S OPS_PER_S)\n");
}

static int open_store(const char *dev, bool readonly, struct vmfs **fs)
{
	/*
	 * commit_ms 1000, as vmfs-mount: a guest's writes are durable once its
	 * FLUSH returns (vmfs_fsync), which is all virtio-blk's volatile write
	 * cache promises. With 0 every allocating write committed and flushed
	 * the journal on its own (2 MB/s of first writes in bench/vmm).
	 */
	struct vmfs_open_opts oo = { .readonly = readonly, .commit_ms = 1000 }; /* named "MACHINE (vmm pid N)" */
	char err[256];
	int ret;

	ret = vmfs_open(dev, &oo, fs, err, sizeof(err));
	if (ret)
		tool_err("%s", err); /* libvmfs's reason names the device */
	return ret;
}

/* An absolute path whose every component is a valid name (no ".", "..", empty or odd characters). */
static bool vm_path_ok(const char *path)
{
	char buf[4096], *p, *save = NULL;
	bool any = false;

	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return false;
	strcpy(buf, path);
	if (strstr(buf, "//") || buf[strlen(buf) - 1] == '/')
		return false;
	for (p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (!vmm_name_ok(p))
			return false;
		any = true;
	}
	return any;
}

/*
 * Undoes a create that failed half-way: the files it made in the new folder
 * dir (those c names), then the folder and the parents it made (made of
 * them). A file or folder that cannot be removed is named on stderr.
 */
static void create_undo(struct vmfs *fs, const char *path, uint64_t dir, const struct vmm_conf *c, unsigned made)
{
	const char *names[VMM_MAX_DISKS + 3] = { "vm.conf", c->kernel, c->initrd };
	unsigned n = 3, i;
	int ret;

	for (i = 0; i < c->ndisks; i++)
		names[n++] = c->disks[i].file;
	for (i = 0; i < n; i++) {
		if (!names[i][0])
			continue;
		ret = vmfs_unlink(fs, dir, names[i]);
		if (ret && ret != -ENOENT)
			tool_err("%s/%s: cannot remove it after the failure: %s", path, names[i], strerror(-ret));
	}
	ret = vmm_store_rmdirs(fs, path, made);
	if (!ret)
		ret = vmfs_sync(fs);
	if (ret)
		tool_err("%s: cannot remove the folders made before the failure: %s", path, strerror(-ret));
}

/* vmm create's --kernel: a bzImage that takes the command line (its header is read, not the file). */
static int check_kernel_file(int kfd, const char *name, const char *cmdline)
{
	uint8_t head[VMM_BZ_HEADER_LEN];
	char err[200];
	struct stat st;
	ssize_t n;

	if (fstat(kfd, &st) || (n = pread(kfd, head, sizeof(head), 0)) < 0) {
		tool_err("--kernel '%s': %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > KERNEL_MAX) {
		tool_err("--kernel '%s': want a regular file of at most %llu MiB", name, KERNEL_MAX >> 20);
		return -1;
	}
	if (vmm_x86_check_kernel(head, (size_t)n, (uint64_t)st.st_size, cmdline, err, sizeof(err))) {
		tool_err("--kernel '%s': %s", name, err);
		return -1;
	}
	return 0;
}

struct disk_arg {
	const char *from;         /* host file, or NULL for a new thin disk */
	uint64_t size;
};

static int cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' }, { "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' },    { "disk", required_argument, NULL, 'd' },
		{ "disk-from", required_argument, NULL, 'f' }, { NULL, 0, NULL, 0 },
	};
	const char *kernel = NULL, *initrd = NULL, *dev, *path;
	struct disk_arg disks[VMM_MAX_DISKS];
	struct vmm_conf c = { .cpus = 0 };
	int kfd = -1, ifd = -1, dfd[VMM_MAX_DISKS], opt, ret = 1, i, n;
	struct vmfs *fs = NULL;
	char conf[VMM_CMDLINE_MAX + 1024];
	uint64_t v, dir, ino;
	unsigned made = 0;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'k': kernel = optarg; break;
		case 'i': initrd = optarg; break;
		case 'c':
			if (strlen(optarg) >= VMM_CMDLINE_MAX || strchr(optarg, '\n')) {
				tool_err("--cmdline: longer than %d bytes or holds a newline", VMM_CMDLINE_MAX - 1);
				return 2;
			}
			strcpy(c.cmdline, optarg);
			break;
		case 'm':
			if (!tool_parse_u64(optarg, &v) || v < VMM_MEM_MIN_MIB || v > VMM_MEM_MAX_MIB) {
				tool_err("--mem '%s': want MiB, %d..%d", optarg, VMM_MEM_MIN_MIB, VMM_MEM_MAX_MIB);
				return 2;
			}
			c.mem_mib = v;
			break;
		case 'p':
			if (!tool_parse_u64(optarg, &v) || v < 1 || v > VMM_MAX_CPUS) {
				tool_err("--cpus '%s': want 1..%d", optarg, VMM_MAX_CPUS);
				return 2;
			}
			c.cpus = (unsigned)v;
			break;
		case 'd':
		case 'f':
			if (c.ndisks == VMM_MAX_DISKS) {
				tool_err("more than %d disks", VMM_MAX_DISKS);
				return 2;
			}
			disks[c.ndisks].from = opt == 'f' ? optarg : NULL;
			disks[c.ndisks].size = 0;
			if (opt == 'd' && (base_parse_size(optarg, &disks[c.ndisks].size) || !disks[c.ndisks].size ||
					   disks[c.ndisks].size % 512)) {
				tool_err("--disk '%s': want a size in bytes (K, M, G, T suffixes), a multiple of 512", optarg);
				return 2;
			}
			c.ndisks++;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || !kernel || !c.mem_mib || !c.cpus || !c.ndisks) {
		tool_err("create: want DEVICE /PATH/NAME, --kernel, --mem, --cpus and at least one --disk or --disk-from");
		return 2;
	}
	dev = argv[optind];
	path = argv[optind + 1];
	if (!vm_path_ok(path)) {
		tool_err("'%s': want /PATH/NAME, each part 1..63 letters, digits, '.', '_' or '-'", path);
		return 2;
	}
	strcpy(c.name, strrchr(path, '/') + 1);
	strcpy(c.kernel, "kernel");
	c.rng = c.balloon = true;	/* on by default: vm.conf can drop them */
	if (initrd)
		strcpy(c.initrd, "initrd");
	for (i = 0; i < (int)c.ndisks; i++) {
		snprintf(c.disks[i].file, sizeof(c.disks[i].file), "disk%d.img", i);
		dfd[i] = -1;
	}

	/* Every host file opens before the datastore is touched: a typo changes nothing. */
	kfd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		tool_err("--kernel '%s': %s", kernel, strerror(errno));
		goto out;
	}
	if (initrd && (ifd = open(initrd, O_RDONLY | O_CLOEXEC)) < 0) {
		tool_err("--initrd '%s': %s", initrd, strerror(errno));
		goto out;
	}
	for (i = 0; i < (int)c.ndisks; i++) {
		if (disks[i].from && (dfd[i] = open(disks[i].from, O_RDONLY | O_CLOEXEC)) < 0) {
			tool_err("--disk-from '%s': %s", disks[i].from, strerror(errno));
			goto out;
		}
	}
	if (check_kernel_file(kfd, kernel, c.cmdline))
		goto out;
	n = vmm_conf_format(&c, conf, sizeof(conf));
	if (n < 0) {
		tool_err("vm.conf does not fit in %zu bytes", sizeof(conf));
		goto out;
	}

	if (open_store(dev, false, &fs))
		goto out;
	ret = vmm_store_mkdirs(fs, path, true, &dir, &made);
	if (ret) {
		tool_err("%s: %s", path, ret == -EEXIST ? "already exists" : strerror(-ret));
		if (made)
			tool_err("%s: cannot remove the folders made before the failure", path);
		ret = 1;
		goto out;
	}
	ret = vmm_store_copy_in(fs, dir, "kernel", kfd, false);
	if (!ret && ifd >= 0)
		ret = vmm_store_copy_in(fs, dir, "initrd", ifd, false);
	for (i = 0; !ret && i < (int)c.ndisks; i++) {
		if (disks[i].from) {
			ret = vmm_store_copy_in(fs, dir, c.disks[i].file, dfd[i], true);
		} else {
			ret = vmm_store_new_file(fs, dir, c.disks[i].file, &ino);
			if (!ret)
				ret = vmm_store_set_size(fs, ino, disks[i].size);
		}
	}
	if (!ret)
		ret = vmm_store_write(fs, dir, "vm.conf", conf, (size_t)n);
	if (!ret)
		ret = vmfs_sync(fs);
	if (ret) {
		tool_err("%s: creating the VM folder: %s", path, strerror(-ret));
		create_undo(fs, path, dir, &c, made);
		ret = 1;
		goto out;
	}
	ret = 0;
out:
	if (fs && vmfs_close(fs) && !ret) {
		tool_err("%s: close failed", dev);
		ret = 1;
	}
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	for (i = 0; i < (int)c.ndisks; i++)
		if (dfd[i] >= 0)
			close(dfd[i]);
	return ret ? 1 : 0;
}

/* The subdirectories of one directory, gathered first: libvmfs calls may not nest in a readdir callback. */
struct subdirs {
	size_t n, cap;
	uint64_t *ino;
	char (*name)[256];
};

static int collect_dir(void *arg, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
		       uint64_t next_cookie)
{
	struct subdirs *sd = arg;

	(void)next_cookie;
	if (dtype != DT_DIR || namelen >= 256 || (namelen == 1 && name[0] == '.') ||
	    (namelen == 2 && !memcmp(name, "..", 2)))
		return 0;
	if (sd->n == sd->cap) {
		size_t cap = sd->cap ? sd->cap * 2 : 16;
		uint64_t *ino2 = realloc(sd->ino, cap * sizeof(*ino2));
		char(*name2)[256];

		if (!ino2)
			return -ENOMEM;
		sd->ino = ino2;
		name2 = realloc(sd->name, cap * sizeof(*name2));
		if (!name2)
			return -ENOMEM;
		sd->name = name2;
		sd->cap = cap;
	}
	memcpy(sd->name[sd->n], name, namelen);
	sd->name[sd->n][namelen] = 0;
	sd->ino[sd->n++] = ino;
	return 0;
}

static int list_dir(struct vmfs *fs, uint64_t dir, const char *parent, int depth)
{
	struct subdirs sd = { 0 };
	char path[4096], err[200];
	struct vmm_conf c;
	size_t i;
	int ret;

	ret = vmfs_readdir(fs, dir, 0, collect_dir, &sd);
	for (i = 0; !ret && i < sd.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", parent, sd.name[i]);
		ret = vmm_store_read_conf(fs, sd.ino[i], &c, err, sizeof(err));
		if (!ret) {
			printf("%-32s %6llu MiB  %2u vCPU%s  %u disk%s\n", path, (unsigned long long)c.mem_mib,
			       c.cpus, c.cpus == 1 ? " " : "s", c.ndisks, c.ndisks == 1 ? "" : "s");
		} else if (ret == -EINVAL) {
			printf("%-32s (bad vm.conf: %s)\n", path, err);
			ret = 0;
		} else if (ret == -ENOENT) {
			ret = depth < 2 ? list_dir(fs, sd.ino[i], path, depth + 1) : 0;
		}
	}
	free(sd.ino);
	free(sd.name);
	return ret;
}

/* VMs are folders holding vm.conf, at most two levels below the root (/vms/NAME). */
static int cmd_list(int argc, char **argv)
{
	struct vmfs *fs;
	int ret;

	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (open_store(argv[1], true, &fs))
		return 1;
	ret = list_dir(fs, vmfs_root_ino(fs), "", 1);
	if (ret)
		tool_err("%s: reading directories: %s", argv[1], strerror(-ret));
	vmfs_close(fs);
	return ret ? 1 : 0;
}

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

	if (open_store(dev, true, &fs))
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
	ret = vmm_store_read_file(fs, dir, c->kernel, KERNEL_MAX, kernel, klen);
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

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = { { "ctl", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 } };
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
		if (opt != 'c') {
			usage(stderr);
			return 2;
		}
		ctl_path = optarg;
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	argv += optind - 1;	/* argv[1] DEVICE, argv[2] /PATH/NAME as before */
	path = argv[2];
	if (!vm_path_ok(path)) {
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
	if (open_store(argv[1], false, &fs))
		goto out;
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
		struct vmm_ctl_target t = { .vm = &vm, .conf = &c, .blk = blk, .nblk = nblk, .balloon = balloon };

		ret = vmm_ctl_new(ctl_path, &t, &ctl, err, sizeof(err));
		if (ret) {
			tool_err("%s %s", ctl_path == c.ctl ? "vm.conf ctl=" : "--ctl", err);
			goto out;
		}
	}
	ret = vmm_vm_run(&vm, err, sizeof(err));
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

/* vmm ctl SOCKET COMMAND [ARGS]: one request, the reply on stdout; exit 0 when it says "ok":true. */
static int cmd_ctl(int argc, char **argv)
{
	char req[256], reply[8192], err[300];
	uint64_t a, b, d;
	const char *cmd;

	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	cmd = argv[2];
	if (argc == 3 && (!strcmp(cmd, "status") || !strcmp(cmd, "pause") || !strcmp(cmd, "resume") ||
			  !strcmp(cmd, "stop"))) {
		snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	} else if (argc == 4 && !strcmp(cmd, "balloon")) {
		if (!tool_parse_u64(argv[3], &a)) {
			tool_err("balloon '%s': want a number of 4 KiB pages", argv[3]);
			return 2;
		}
		snprintf(req, sizeof(req), "{\"cmd\":\"balloon\",\"pages\":%llu}", (unsigned long long)a);
	} else if (argc == 6 && !strcmp(cmd, "rate")) {
		if (!tool_parse_u64(argv[3], &d) || !tool_parse_u64(argv[4], &a) || !tool_parse_u64(argv[5], &b)) {
			tool_err("rate: want DISK BYTES_PER_S OPS_PER_S as numbers (0: unlimited)");
			return 2;
		}
		snprintf(req, sizeof(req), "{\"cmd\":\"rate\",\"disk\":%llu,\"bytes_per_s\":%llu,\"ops_per_s\":%llu}",
			 (unsigned long long)d, (unsigned long long)a, (unsigned long long)b);
	} else {
		tool_err("ctl: unknown command or wrong arguments '%s' (want status, pause, resume, stop, "
			 "balloon PAGES or rate DISK BYTES_PER_S OPS_PER_S)", cmd);
		return 2;
	}
	if (vmm_ctl_request(argv[1], req, reply, sizeof(reply), err, sizeof(err))) {
		tool_err("%s", err);
		return 1;
	}
	printf("%s\n", reply);
	if (strncmp(reply, "{\"ok\":true", 10)) {
		tool_err("ctl %s: refused: %s", cmd, reply);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	tool_name = "vmm";
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "create"))
		return cmd_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	tool_err("unknown command '%s' (want create, list, run or ctl)", argv[1]);
	return 2;
}
