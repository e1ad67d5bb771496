/*
 * vmm list DEVICE: shows the VMs on a datastore, the folders holding a
 * vm.conf up to two levels below the root, through a read-only open (no
 * cluster join). A folder whose vm.conf does not parse is listed with the
 * reason, not skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"
#include "vmm/store.h"

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
int vmm_cmd_list(int argc, char **argv)
{
	struct vmfs *fs;
	int ret;

	if (argc != 2) {
		vmm_usage(stderr);
		return 2;
	}
	if (vmm_cmd_open_store(argv[1], true, &fs))
		return 1;
	ret = list_dir(fs, vmfs_root_ino(fs), "", 1);
	if (ret)
		tool_err("%s: reading directories: %s", argv[1], strerror(-ret));
	vmfs_close(fs);
	return ret ? 1 : 0;
}
