/*
 * vmm list DEVICE: shows the VMs on a datastore, the folders holding a
 * vm.conf up to two levels below the root, through a read-only open (no
 * cluster join). A folder whose vm.conf does not parse is listed with the
 * reason, not skipped; a suspended VM says when, where and how big its
 * vm.state is.
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
#include "vmm/suspend.h"

static int print_vm(void *arg, const char *path, uint64_t dir, const struct vmm_conf *c, const char *bad)
{
	struct vmfs *fs = arg;
	char state[300];

	if (bad) {
		printf("%-32s (bad vm.conf: %s)\n", path, bad);
		return 0;
	}
	printf("%-32s %6llu MiB  %2u vCPU%s  %u disk%s", path, (unsigned long long)c->mem_mib, c->cpus,
	       c->cpus == 1 ? " " : "s", c->ndisks, c->ndisks == 1 ? "" : "s");
	if (vmm_suspend_describe(fs, dir, state, sizeof(state)) > 0)
		printf("  %s", state);
	printf("\n");
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
	ret = vmm_store_walk(fs, print_vm, fs);
	if (ret)
		tool_err("%s: reading directories: %s", argv[1], strerror(-ret));
	vmfs_close(fs);
	return ret ? 1 : 0;
}
