/*
 * join-cycles: one worker of tests/e2e/journal-reuse.sh. N times it joins the
 * datastore as a host (a read-write vmfs_open), rewrites its own file /NAME
 * with 1..64 KiB so each host changes metadata under META, and leaves
 * (vmfs_close).
 *
 *   join-cycles IMAGE N NAME
 *
 * Exit 0 when every cycle joined, wrote and left; 1 otherwise, with one line
 * on stderr naming the cycle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmfs/vmfs.h"

static const char *img, *name;

/* One host's life: join, rewrite /NAME, leave. */
static int cycle(unsigned i)
{
	struct vmfs_open_opts oo = { .commit_ms = 0, .hostname = name };
	static char data[64 << 10];
	struct vmfs_stat st, in = { .size = 0 };
	struct vmfs *fs;
	char err[256] = "";
	size_t len = 1 + (size_t)(random() % (long)sizeof(data));
	int ret;

	ret = vmfs_open(img, &oo, &fs, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "join-cycles %s: cycle %u: open: %s\n", name, i, err);
		return 1;
	}
	ret = vmfs_lookup(fs, vmfs_root_ino(fs), name, &st);
	if (ret == -ENOENT)
		ret = vmfs_mknod(fs, vmfs_root_ino(fs), name, S_IFREG | 0644, 0, 0, &st);
	if (!ret)
		ret = vmfs_setattr(fs, st.ino, &in, VMFS_SET_SIZE, NULL);
	memset(data, 'a' + (int)(i % 26), len);
	if (!ret && vmfs_pwrite(fs, st.ino, data, len, 0) != (ssize_t)len)
		ret = -EIO;
	if (ret)
		fprintf(stderr, "join-cycles %s: cycle %u: writing /%s: %s\n", name, i, name, strerror(-ret));
	if (vmfs_close(fs) && !ret) {
		fprintf(stderr, "join-cycles %s: cycle %u: close failed\n", name, i);
		ret = -EIO;
	}
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned n;

	if (argc != 4) {
		fprintf(stderr, "usage: join-cycles IMAGE N NAME\n");
		return 2;
	}
	img = argv[1];
	n = (unsigned)strtoul(argv[2], NULL, 0);
	name = argv[3];
	srandom((unsigned)getpid());
	for (unsigned i = 0; i < n; i++)
		if (cycle(i))
			return 1;
	return 0;
}
