/*
 * vmm: the command line of the KVM monitor. main() looks argv[1] up in the
 * table of subcommands (one file each, vmm/cmd_*.c) and returns what the
 * command returns; the usage text and the list of commands in the error for
 * an unknown one are built from the same table, so a command is one row.
 * Exit codes: 0 done (and --help, --version), 1 failed with one line on
 * stderr saying why, 2 bad usage, 3 the key given opens no keyslot of an
 * encrypted datastore; `vmm run` also 128 + signal when a signal stopped the
 * VM (a guest's power-off or reset is 0). Only main() exits.
 */
#include <stdio.h>
#include <string.h>

#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"

static const struct vmm_cmd cmds[] = {
	{ "create",
	  "DEVICE /PATH/NAME --kernel FILE [--initrd FILE] [--cmdline STR]\n"
	  "                  --mem MiB --cpus N (--disk SIZE | --disk-from FILE)... [--ha restart|off]",
	  vmm_cmd_create },
	{ "list", "DEVICE", vmm_cmd_list },
	{ "run", "DEVICE /PATH/NAME [--ctl SOCKET] [--timings]   (ctl default: vm.conf's ctl=;\n"
	  "                  resumes the VM when its folder holds a vm.state)", vmm_cmd_run },
	{ "agent", "DEVICE [--json] [--mem-limit MiB] [--interval MS]   (HA restart of ha=restart VMs)",
	  vmm_cmd_agent },
	{ "ctl",
	  "SOCKET (status | pause | resume | stop | suspend | balloon PAGES |\n"
	  "                       rate DISK BYTES_PER_S OPS_PER_S | snapshot NAME | rekey | revert NAME)",
	  vmm_cmd_ctl },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

void vmm_usage(FILE *f)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		fprintf(f, "%s vmm %s %s\n", i ? "      " : "usage:", cmds[i].name, cmds[i].usage);
	fprintf(f, "       an encrypted datastore's key, after any command: --key-file F | --passphrase-file F |\n"
		   "       --keycmd PROG\n");
}

/* --help: the usage and the exit codes. */
static void help(FILE *f)
{
	vmm_usage(f);
	fprintf(f, "       vmm -h | --help | --version\n"
		   "exit: 0 done, 1 failed (one line says why), 2 bad usage, 3 the key or passphrase opens\n"
		   "no keyslot; vmm run: 128 + the signal's number when a signal stopped the VM\n");
}

int main(int argc, char **argv)
{
	char want[256] = "";
	size_t i, n = 0;

	tool_name = "vmm";
	if (argc < 2) {
		vmm_usage(stderr);
		return 2;
	}
	if (tool_help_or_version(argv[1], help) || tool_subcommand_help(argc, argv, help))
		return 0;
	/* an encrypted datastore's key, after any subcommand */
	if (enc_secret_src_take(&argc, argv, &vmm_key_src, want, sizeof(want))) {
		tool_err("%s", want);
		return 2;
	}
	for (i = 0; i < NCMDS; i++)
		if (!strcmp(argv[1], cmds[i].name)) {
			int rc = cmds[i].fn(argc - 1, argv + 1);
			return vmm_key_rejected ? 3 : rc; /* the key opened no keyslot (said) */
		}
	/* "create, list, run or ctl" */
	for (i = 0; i < NCMDS && n < sizeof(want); i++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s", !i ? "" : i + 1 < NCMDS ? ", " : " or ",
				      cmds[i].name);
	tool_err("unknown command '%s' (want %s)", argv[1], want);
	return 2;
}
