/*
 * vmfs-populate: fills a datastore for the fsck benchmark through libvmfs:
 * NFILES small files spread over 100 directories, and one sparse file of
 * SPARSE bytes with 64 KiB of data at every GiB (a real multi-level map).
 *   vmfs-populate DEVICE NFILES SPARSE
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"

int main(int argc, char **argv)
{
	struct vmfs_open_opts oo = { .commit_ms = 5000 };
	struct vmfs_stat st, dir;
	struct vmfs *fs;
	uint64_t nfiles, sparse, root, dirs[100];
	static char data[65536];
	char err[256], name[64];
	int ret;

	tool_name = "vmfs-populate";
	if (argc != 4 || !tool_parse_u64(argv[2], &nfiles) || base_parse_size(argv[3], &sparse)) {
		fprintf(stderr, "usage: vmfs-populate DEVICE NFILES SPARSE\n");
		return 2;
	}
	ret = vmfs_open(argv[1], &oo, &fs, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		return 1;
	}
	root = vmfs_root_ino(fs);
	for (int d = 0; d < 100; d++) {
		snprintf(name, sizeof(name), "dir%02d", d);
		ret = vmfs_mkdir(fs, root, name, 0755, 0, 0, &dir);
		if (ret)
			goto fail;
		dirs[d] = dir.ino;
	}
	for (uint64_t i = 0; i < nfiles; i++) {
		int n = snprintf(name, sizeof(name), "file-%llu", (unsigned long long)i);
		ret = vmfs_mknod(fs, dirs[i % 100], name, S_IFREG | 0644, 0, 0, &st);
		if (!ret)
			ret = (int)vmfs_pwrite(fs, st.ino, name, (size_t)n, 0) < 0 ? -EIO : 0;
		if (ret)
			goto fail;
		vmfs_forget(fs, st.ino, 1);
	}
	memset(data, 0x5a, sizeof(data));
	ret = vmfs_mknod(fs, root, "sparse", S_IFREG | 0644, 0, 0, &st);
	for (uint64_t off = 0; !ret && off < sparse; off += 1ull << 30)
		ret = vmfs_pwrite(fs, st.ino, data, sizeof(data), off) < 0 ? -EIO : 0;
	if (!ret) {
		struct vmfs_stat in = { .size = sparse };
		ret = vmfs_setattr(fs, st.ino, &in, VMFS_SET_SIZE, NULL);
	}
	if (ret)
		goto fail;
	return vmfs_close(fs) ? 1 : 0;
fail:
	tool_err("%s", strerror(-ret));
	vmfs_close(fs);
	return 1;
}
