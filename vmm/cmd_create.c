/*
 * vmm create DEVICE /PATH/NAME: makes a VM folder on a datastore, holding
 * vm.conf, the kernel and initrd copied in and thin disks (or copies of host
 * images). Every host file is opened and the kernel's header checked before
 * the datastore is touched, so a typo changes nothing; a create that fails
 * half-way removes what it made (create_undo).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"
#include "vmm/store.h"
#include "vmm/x86/x86.h"

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
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > VMM_KERNEL_MAX) {
		tool_err("--kernel '%s': want a regular file of at most %llu MiB", name, VMM_KERNEL_MAX >> 20);
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

int vmm_cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' }, { "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' },    { "disk", required_argument, NULL, 'd' },
		{ "disk-from", required_argument, NULL, 'f' }, { "ha", required_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
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
		case 'h':
			if (strcmp(optarg, "restart") && strcmp(optarg, "off")) {
				tool_err("--ha '%s': want restart or off", optarg);
				return 2;
			}
			c.ha_restart = !strcmp(optarg, "restart");
			break;
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
			vmm_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || !kernel || !c.mem_mib || !c.cpus || !c.ndisks) {
		tool_err("create: want DEVICE /PATH/NAME, --kernel, --mem, --cpus and at least one --disk or --disk-from");
		return 2;
	}
	dev = argv[optind];
	path = argv[optind + 1];
	if (!vmm_cmd_path_ok(path)) {
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

	if (vmm_cmd_open_store(dev, false, &fs))
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
