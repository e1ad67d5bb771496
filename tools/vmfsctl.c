/*
 * vmfsctl: inspects and manages a vmfs datastore. Read-only commands never
 * write to the device and never join the cluster.
 * Exit codes: 0 success, 1 the operation failed, 2 bad usage, 3 the key or
 * passphrase given opens no keyslot of an encrypted datastore.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/cli.h"
#include "tools/vmfsctl.h"
#include "vmfs/vmfs.h"

void usage(FILE *f)
{
	fprintf(f, "usage: vmfsctl info [--json] DEVICE\n"
		   "       vmfsctl hosts [--json] [--all] DEVICE hosts in the cluster (watches their heartbeats);\n"
		   "                                             --all: free slots too\n"
		   "       vmfsctl locks [--json] DEVICE [PATH]  lock holders, of every lock or of PATH (from the\n"
		   "                                             datastore's root, with or without a leading /)\n");
	snap_usage(f);
	image_usage(f);
	key_usage(f);
	rekey_usage(f);
	fprintf(f, "       On an encrypted datastore, a command that reads or names files takes the key:\n"
		   "         --key-file F | --passphrase-file F | --keycmd PROG\n");
}

/* --help: the usage, what DEVICE may be, the exit codes. */
static void help(FILE *f)
{
	usage(f);
	fprintf(f, "       vmfsctl -h | --help | --version\n"
		   "DEVICE: the datastore (a block device or a file); for snapshot, clone and rekey also\n"
		   "a vmfs-mount mountpoint (or a directory in one): the command runs in that daemon\n"
		   "exit: 0 done, 1 failed (one line says why), 2 bad usage, 3 the key or passphrase opens\n"
		   "no keyslot\n");
}

/* [--json] [--all] DEVICE [PATH]: 0, or 2 for bad usage (said). all: NULL where --all is not an option. */
static int parse_args(int argc, char **argv, bool *json, bool *all, const char **dev, const char **path, bool path_ok)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			*json = true;
		else if (all && !strcmp(argv[i], "--all"))
			*all = true;
		else if (argv[i][0] == '-' && argv[i][1])
			goto bad;
		else if (!*dev)
			*dev = argv[i];
		else if (path_ok && !*path)
			*path = argv[i];
		else
			goto bad;
	}
	if (*dev)
		return 0;
bad:
	usage(stderr);
	return 2;
}

/* --key-file, --passphrase-file, --keycmd, taken from any command's options */
static struct enc_secret_src key_src;
int exit_code = 1;

struct vmfs *open_store(const char *dev, bool readonly)
{
	struct vmfs_open_opts oo = { .readonly = readonly };
	struct enc_secret *s = NULL;
	enum enc_secret_kind kind;
	struct vmfs *fs = NULL;
	char err[320];
	int ret;

	exit_code = 1;
	if (enc_secret_src_set(&key_src) && enc_secret_get(&key_src, NULL, false, &s, &kind, err, sizeof(err))) {
		tool_err("%s", err);
		return NULL;
	}
	oo.secret = s;
	ret = vmfs_open(dev, &oo, &fs, err, sizeof(err));
	enc_secret_free(s);
	if (ret) {
		tool_err("%s", err);
		exit_code = key_exit(ret);
		return NULL;
	}
	return fs;
}

/* Opens DEVICE read-only (no cluster join, nothing written); NULL after saying why. */
struct vmfs *open_readonly(const char *dev)
{
	return open_store(dev, true);
}

static int cmd_info(int argc, char **argv)
{
	struct vmfs_info in;
	struct vmfs *fs;
	const char *dev = NULL;
	bool json = false;
	char uuid[37], a[32], b[32], feat[3][64];

	if (parse_args(argc, argv, &json, NULL, &dev, NULL, false))
		return 2;
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	vmfs_get_info(fs, &in);
	base_uuid_fmt(in.uuid, uuid);
	vmfs_feature_names(0, in.compat, feat[0], sizeof(feat[0]));
	vmfs_feature_names(1, in.ro_compat, feat[1], sizeof(feat[1]));
	vmfs_feature_names(2, in.incompat, feat[2], sizeof(feat[2]));
	if (json) {
		printf("{\"label\":");
		tool_json_str(in.label);
		printf(",\"uuid\":\"%s\",\"version\":\"%u.%u\",\"features\":{\"compat\":%llu,\"ro_compat\":%llu,"
		       "\"incompat\":%llu},\"size\":%llu,\"block_size\":%u,\"sector_size\":%u,\"data_blocks\":%llu,"
		       "\"free_blocks\":%llu,\"free_bytes\":%llu,\"reserved_blocks\":%llu,\"pools\":%llu,"
		       "\"pool_free_units\":%llu,\"host_slots\":%u,"
		       "\"journal_size\":%llu,\"journals\":%llu,\"journal_bytes\":%llu,"
		       "\"journal_state\":\"%s\",\"resource_clusters\":%llu,\"resource_clusters_used\":%llu,"
		       "\"created_ns\":%lld,\"encrypted\":%s,\"key_epoch\":%u,\"keyslots\":%u}\n",
		       uuid, in.version_major, in.version_minor, (unsigned long long)in.compat,
		       (unsigned long long)in.ro_compat, (unsigned long long)in.incompat, (unsigned long long)in.size,
		       in.block_size, in.sector_size, (unsigned long long)in.data_blocks,
		       (unsigned long long)in.free_blocks, (unsigned long long)in.free_bytes,
		       (unsigned long long)in.reserved_blocks, (unsigned long long)in.pools,
		       (unsigned long long)in.pool_free_units, in.host_slots, (unsigned long long)in.journal_size,
		       (unsigned long long)in.journals, (unsigned long long)in.journal_bytes, in.journal_state,
		       (unsigned long long)in.rc_count,
		       (unsigned long long)in.rc_inited, (long long)in.mkfs_time_ns, in.encrypted ? "true" : "false",
		       in.key_epoch, in.keyslots);
	} else {
		printf("label:           %s\n", in.label[0] ? in.label : "(none)");
		printf("uuid:            %s\n", uuid);
		printf("format version:  %u.%u\n", in.version_major, in.version_minor);
		printf("features:        compat %s, ro_compat %s, incompat %s\n", feat[0], feat[1], feat[2]);
		printf("size:            %s (%llu bytes)\n", base_fmt_size(in.size, a, sizeof(a)), (unsigned long long)in.size);
		printf("block size:      %u KiB (sector %u)\n", in.block_size >> 10, in.sector_size);
		printf("data blocks:     %llu, %llu free (%llu of them reserved)\n", (unsigned long long)in.data_blocks,
		       (unsigned long long)in.free_blocks, (unsigned long long)in.reserved_blocks);
		printf("free space:      %s (%llu free sub-blocks in %llu pools)\n", base_fmt_size(in.free_bytes, b, sizeof(b)),
		       (unsigned long long)in.pool_free_units, (unsigned long long)in.pools);
		printf("host slots:      %u\n", in.host_slots);
		printf("journals:        %llu, %s in all (%s for a new host); %s\n", (unsigned long long)in.journals,
		       base_fmt_size(in.journal_bytes, b, sizeof(b)), base_fmt_size(in.journal_size, a, sizeof(a)),
		       in.journal_state);
		printf("resource clusters: %llu (%llu in use)\n", (unsigned long long)in.rc_count,
		       (unsigned long long)in.rc_inited);
		if (in.encrypted)
			printf("encryption:      AES-256-XTS, datastore key epoch %u, %u keyslot%s in use\n",
			       in.key_epoch, in.keyslots, in.keyslots == 1 ? "" : "s");
	}
	vmfs_close(fs);
	return 0;
}

static const char *state_name(enum vmfs_host_state s, bool alive)
{
	switch (s) {
	case VMFS_HOST_FREE: return "free";
	case VMFS_HOST_LIVE: return alive ? "alive" : "dead";
	case VMFS_HOST_RECOVERING: return "recovering";
	}
	return "unknown";
}

/* Read-only: watches the heartbeat region for two intervals, then lists every used slot. */
static int cmd_hosts(int argc, char **argv)
{
	const char *dev = NULL;
	struct vmfs_host *s = NULL;
	struct vmfs *fs;
	bool json = false, all = false;
	char uuid[37];
	size_t n = 0, shown = 0;
	int ret;

	if (parse_args(argc, argv, &json, &all, &dev, NULL, false))
		return 2;
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	ret = vmfs_hosts(fs, &s, &n);
	if (ret) {
		tool_err("%s: cannot read the heartbeat region: %s", dev, strerror(-ret));
		vmfs_close(fs);
		return 1;
	}
	if (json)
		printf("[");
	else
		printf("%-5s %-36s %6s %10s %-10s %s\n", "SLOT", "HOST UUID", "GEN", "HEARTBEAT", "STATE", "HOST");
	for (size_t i = 0; i < n; i++) {
		if (s[i].state == VMFS_HOST_FREE && !all)
			continue; /* a host that left: its slot waits for the next one */
		base_uuid_fmt(s[i].uuid, uuid);
		if (json) {
			printf("%s{\"slot\":%u,\"uuid\":\"%s\",\"hostname\":", shown++ ? "," : "", s[i].slot, uuid);
			tool_json_str(s[i].hostname);
			printf(",\"generation\":%llu,\"heartbeat_age_s\":%.1f,\"heartbeat_age_at_least\":%s,"
			       "\"state\":\"%s\"}",
			       (unsigned long long)s[i].gen, s[i].age_s, s[i].alive ? "false" : "true",
			       state_name(s[i].state, s[i].alive));
		} else {
			char age[32];
			snprintf(age, sizeof(age), "%s%.1fs", s[i].alive ? "" : ">=", s[i].age_s);
			printf("%-5u %-36s %6llu %10s %-10s %s\n", s[i].slot, uuid, (unsigned long long)s[i].gen, age,
			       state_name(s[i].state, s[i].alive), s[i].hostname[0] ? s[i].hostname : "-");
		}
	}
	if (json)
		printf("]\n");
	free(s);
	vmfs_close(fs);
	return 0;
}

struct locks_ctx {
	struct vmfs *fs;
	bool json, filter;
	uint64_t ino;
	unsigned n;
};

static const char *mode_name(enum vmfs_lock_mode m)
{
	return m == VMFS_LOCK_EX ? "exclusive" : m == VMFS_LOCK_SH ? "read-only" : m == VMFS_LOCK_MW ? "multi-writer" : "?";
}

static int print_lock(void *arg, const struct vmfs_lock *h)
{
	struct locks_ctx *c = arg;
	unsigned long long id = h->id;
	char what[4200], path[4096];

	if (c->filter && (h->kind != VMFS_LOCK_INODE || h->id != c->ino))
		return 0;
	switch (h->kind) {
	case VMFS_LOCK_INODE:
		if (!vmfs_path(c->fs, id, path, sizeof(path)))
			snprintf(what, sizeof(what), "%s", path);
		else
			snprintf(what, sizeof(what), "inode %llu (no name)", id);
		break;
	case VMFS_LOCK_META: snprintf(what, sizeof(what), "metadata"); break;
	case VMFS_LOCK_RC: snprintf(what, sizeof(what), "resource cluster %llu", id); break;
	case VMFS_LOCK_SLOT: snprintf(what, sizeof(what), "recovery of slot %llu", id); break;
	default: snprintf(what, sizeof(what), "resource 0x%llx", id); break;
	}
	if (c->json) {
		printf("%s{\"resource\":", c->n ? "," : "");
		tool_json_str(what);
		if (h->kind == VMFS_LOCK_INODE)
			printf(",\"inode\":%llu", id);
		printf(",\"mode\":\"%s\",\"slot\":%u,\"hostname\":", mode_name(h->mode), h->slot);
		tool_json_str(h->hostname);
		printf(",\"generation\":%llu,\"version\":%llu}", (unsigned long long)h->gen,
		       (unsigned long long)h->version);
	} else {
		printf("%-12s slot %-5u gen %-6llu %-40s %s\n", mode_name(h->mode), h->slot, (unsigned long long)h->gen,
		       what, h->hostname[0] ? h->hostname : "-");
	}
	c->n++;
	return 0;
}

/* Read-only: every lock record, or those of PATH. A lock of a dead host is listed until it is recovered. */
static int cmd_locks(int argc, char **argv)
{
	struct locks_ctx c = { 0 };
	const char *dev = NULL, *path = NULL;
	struct vmfs *fs;
	uint64_t ino;
	int ret;

	if (parse_args(argc, argv, &c.json, NULL, &dev, &path, true))
		return 2;
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	c.fs = fs;
	if (path) {
		ret = vmfs_resolve(fs, path, &ino);
		if (ret) {
			tool_err("%s: %s", path, strerror(-ret));
			vmfs_close(fs);
			return 1;
		}
		c.filter = true;
		c.ino = ino;
	}
	if (c.json)
		printf("[");
	else
		printf("%-12s %-10s %-10s %-40s %s\n", "MODE", "OWNER", "GEN", "RESOURCE", "HOST");
	ret = vmfs_locks(fs, print_lock, &c);
	if (c.json)
		printf("]\n");
	vmfs_close(fs);
	if (ret) {
		tool_err("%s: cannot read the lock region: %s", dev, strerror(-ret));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[128];

	tool_name = "vmfsctl";
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (tool_help_or_version(argv[1], help) || tool_subcommand_help(argc, argv, help))
		return 0;
	if (!strcmp(argv[1], "key"))
		return cmd_key(argc - 1, argv + 1); /* its own key options */
	if (enc_secret_src_take(&argc, argv, &key_src, err, sizeof(err))) {
		tool_err("%s", err);
		return 2;
	}
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "hosts"))
		return cmd_hosts(argc - 1, argv + 1);
	if (!strcmp(argv[1], "locks"))
		return cmd_locks(argc - 1, argv + 1);
	if (!strcmp(argv[1], "snapshot"))
		return cmd_snapshot(argc - 1, argv + 1);
	if (!strcmp(argv[1], "clone"))
		return cmd_clone(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rekey"))
		return cmd_rekey(argc - 1, argv + 1);
	if (!strcmp(argv[1], "import"))
		return cmd_import(argc - 1, argv + 1);
	if (!strcmp(argv[1], "export"))
		return cmd_export(argc - 1, argv + 1);
	tool_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return 2;
}
