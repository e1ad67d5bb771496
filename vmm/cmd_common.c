/*
 * What vmm's subcommands share: opening the datastore named on the command
 * line (read-only for list and run's checks, joining the cluster to create
 * or run) and checking a /PATH/NAME argument. A path that passes holds only
 * vmm_name_ok components, so it can never leave the datastore's tree.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"

struct enc_secret_src vmm_key_src;
bool vmm_key_rejected;

int vmm_cmd_get_secret(struct enc_secret **s)
{
	enum enc_secret_kind kind;
	char err[320];
	int ret;

	*s = NULL;
	if (!enc_secret_src_set(&vmm_key_src))
		return 0;
	ret = enc_secret_get(&vmm_key_src, NULL, false, s, &kind, err, sizeof(err));
	if (ret)
		tool_err("%s", err);
	return ret;
}

int vmm_cmd_open_with(const char *dev, bool readonly, const struct enc_secret *s, struct vmfs **fs)
{
	/*
	 * commit_ms 1000, as vmfs-mount: a guest's writes are durable once its
	 * FLUSH returns (vmfs_fsync), which is all virtio-blk's volatile write
	 * cache promises (docs/VMM.md, "Running", has what 0 cost).
	 */
	struct vmfs_open_opts oo = { .readonly = readonly, .commit_ms = 1000, .secret = s }; /* named "MACHINE (vmm pid N)" */
	char err[320];
	int ret;

	ret = vmfs_open(dev, &oo, fs, err, sizeof(err));
	if (ret)
		tool_err("%s", err); /* libvmfs's reason names the device */
	if (ret == -EKEYREJECTED)
		vmm_key_rejected = true;
	return ret;
}

int vmm_cmd_open_store(const char *dev, bool readonly, struct vmfs **fs)
{
	struct enc_secret *s;
	int ret = vmm_cmd_get_secret(&s);

	if (ret)
		return ret;
	ret = vmm_cmd_open_with(dev, readonly, s, fs);
	enc_secret_free(s);
	return ret;
}

bool vmm_cmd_path_ok(const char *path)
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
