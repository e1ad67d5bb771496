/*
 * vmm's subcommands, one file each (vmm/cmd_<name>.c, as kvmtool's
 * builtin-*.c), reached through the table in vmm/main.c. A command gets
 * argv[1..] of the process (its own name is argv[0]) and returns the exit
 * code: 0 done, 1 failed with one line on stderr saying why, 2 bad usage;
 * `vmm run` returns the guest's exit code instead of 0. Only main() exits.
 */
#ifndef VMM_CMD_H
#define VMM_CMD_H

#include <stdbool.h>
#include <stdio.h>

struct enc_secret;
struct vmfs;

/* One row of main.c's table: `vmm NAME USAGE` in the usage text, run by fn. */
struct vmm_cmd {
	const char *name;
	const char *usage;        /* what follows "vmm NAME "; later lines carry their own indent */
	int (*fn)(int argc, char **argv);
};

int vmm_cmd_create(int argc, char **argv);
int vmm_cmd_list(int argc, char **argv);
int vmm_cmd_run(int argc, char **argv);
int vmm_cmd_ctl(int argc, char **argv);
int vmm_cmd_agent(int argc, char **argv);

/* Prints the usage text of every command in the table to f (vmm/main.c). */
void vmm_usage(FILE *f);

/* The largest kernel vmm create copies in and vmm run loads. */
#define VMM_KERNEL_MAX (256ull << 20)

/*
 * Opens the datastore on dev for a command (vmm/cmd_common.c), read-only or
 * joining the cluster, with the key vmm_key_src names (--key-file,
 * --passphrase-file, --keycmd after any command, taken out by main); on
 * failure prints libvmfs's reason and returns its -errno (-EKEYREJECTED: no
 * keyslot opens). The caller closes *fs with vmfs_close.
 */
int vmm_cmd_open_store(const char *dev, bool readonly, struct vmfs **fs);
/* The same in two steps, for a command that opens twice with one key (vmm run): *s is NULL without a key source. */
int vmm_cmd_get_secret(struct enc_secret **s);
int vmm_cmd_open_with(const char *dev, bool readonly, const struct enc_secret *s, struct vmfs **fs);
extern struct enc_secret_src vmm_key_src;
extern bool vmm_key_rejected;     /* a vmm_cmd_open_store was refused the key: vmm exits 3 */
/* An absolute path whose every component is a valid name (no ".", "..", empty or odd characters). */
bool vmm_cmd_path_ok(const char *path);

#endif
