/*
 * vmfsctl: inspects and manages a vmfs datastore. Read-only commands never
 * write to the device and never join the cluster.
 * Exit codes: 0 success, 1 the operation failed, 2 bad usage.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "tools/common.h"
#include "vmfs/vmfs.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: vmfsctl info [--json] DEVICE\n");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int cmd_info(int argc, char **argv)
{
	struct vmfs_open_opts oo = { .readonly = true };
	struct vmfs_info in;
	struct vmfs *fs;
	const char *dev = NULL;
	bool json = false;
	char err[256], uuid[37], a[32], b[32], feat[3][64];
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || dev) {
			usage(stderr);
			return 2;
		} else
			dev = argv[i];
	}
	if (!dev) {
		usage(stderr);
		return 2;
	}
	ret = vmfs_open(dev, &oo, &fs, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		return 1;
	}
	vmfs_get_info(fs, &in);
	base_uuid_fmt(in.uuid, uuid);
	vmfs_feature_names(0, in.compat, feat[0], sizeof(feat[0]));
	vmfs_feature_names(1, in.ro_compat, feat[1], sizeof(feat[1]));
	vmfs_feature_names(2, in.incompat, feat[2], sizeof(feat[2]));
	if (json) {
		printf("{\"label\":");
		json_str(in.label);
		printf(",\"uuid\":\"%s\",\"version\":\"%u.%u\",\"features\":{\"compat\":%llu,\"ro_compat\":%llu,"
		       "\"incompat\":%llu},\"size\":%llu,\"block_size\":%u,\"sector_size\":%u,\"data_blocks\":%llu,"
		       "\"free_blocks\":%llu,\"free_bytes\":%llu,\"host_slots\":%u,\"journal_size\":%llu,"
		       "\"journal_state\":\"%s\",\"resource_clusters\":%llu,\"resource_clusters_used\":%llu,"
		       "\"created_ns\":%lld}\n",
		       uuid, in.version_major, in.version_minor, (unsigned long long)in.compat,
		       (unsigned long long)in.ro_compat, (unsigned long long)in.incompat, (unsigned long long)in.size,
		       in.block_size, in.sector_size, (unsigned long long)in.data_blocks,
		       (unsigned long long)in.free_blocks, (unsigned long long)in.free_bytes, in.host_slots,
		       (unsigned long long)in.journal_size, in.journal_state, (unsigned long long)in.rc_count,
		       (unsigned long long)in.rc_inited, (long long)in.mkfs_time_ns);
	} else {
		printf("label:           %s\n", in.label[0] ? in.label : "(none)");
		printf("uuid:            %s\n", uuid);
		printf("format version:  %u.%u\n", in.version_major, in.version_minor);
		printf("features:        compat %s, ro_compat %s, incompat %s\n", feat[0], feat[1], feat[2]);
		printf("size:            %s (%llu bytes)\n", base_fmt_size(in.size, a, sizeof(a)), (unsigned long long)in.size);
		printf("block size:      %u KiB (sector %u)\n", in.block_size >> 10, in.sector_size);
		printf("data blocks:     %llu, %llu free\n", (unsigned long long)in.data_blocks,
		       (unsigned long long)in.free_blocks);
		printf("free space:      %s\n", base_fmt_size(in.free_bytes, b, sizeof(b)));
		printf("host slots:      %u\n", in.host_slots);
		printf("journal:         %s per host; slot %u %s\n", base_fmt_size(in.journal_size, a, sizeof(a)),
		       in.slot, in.journal_state);
		printf("resource clusters: %llu (%llu in use)\n", (unsigned long long)in.rc_count,
		       (unsigned long long)in.rc_inited);
	}
	vmfs_close(fs);
	return 0;
}

int main(int argc, char **argv)
{
	tool_name = "vmfsctl";
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	tool_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return 2;
}
