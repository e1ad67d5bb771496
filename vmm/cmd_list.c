/*
 * vmm list DEVICE: shows the VMs on a datastore, the folders holding a
 * vm.conf up to two levels below the root, through a read-only open (no
 * cluster join). A folder whose vm.conf does not parse is listed with the
 * reason, not skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"
#include "vmm/store.h"

static int print_vm(void *arg, const char *path, uint64_t dir, const struct vmm_conf *c, const char *bad)
{
	(void)arg;
	(void)dir;
	if (bad)
		printf("%-32s (bad vm.conf: %s)\n", path, bad);
	else
		printf("%-32s %6llu MiB  %2u vCPU%s  %u disk%s\n", path, (unsigned long long)c->mem_mib, c->cpus,
		       c->cpus == 1 ? " " : "s", c->ndisks, c->ndisks == 1 ? "" : "s");
	return 0;
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
	ret = vmm_store_walk(fs, print_vm, NULL);
	if (ret)
		tool_err("%s: reading directories: %s", argv[1], strerror(-ret));
	vmfs_close(fs);
	return ret ? 1 : 0;
}
