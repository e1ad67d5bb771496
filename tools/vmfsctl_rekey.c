/*
 * vmfsctl rekey --deep DEVICE PATH|--all: new file keys and every block
 * copied under them, a directory's names rewritten under its new key
 * (docs/ENCRYPTION.md, "Rekey"), online. Given a mount
 * (or a directory in one) instead of DEVICE, it runs inside that vmfs-mount
 * daemon, which may be serving the files to a running VM; given a device,
 * it joins the cluster as a host of its own and takes each file's lock
 * exclusive while it works on it (a file another host has open is refused
 * with that host's name). Progress on a terminal; interrupted (or cut off
 * by a crash), running it again finishes the file it was on from where it
 * stopped, and --all skips the files its run had finished. Exit codes: 0 done, 1 failed, 2 bad usage, 3 no keyslot opens
 * with the key given.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "snapshot/snapshot.h"
#include "tools/mount_ctl.h"
#include "tools/vmfsctl.h"

#define PER_CALL (64ull << 20)  /* bytes of blocks per call (per request to a mount) */

void rekey_usage(FILE *f)
{
	fprintf(f, "       vmfsctl rekey --deep [--json] DEVICE PATH|--all\n"
		   "                                             new file keys, every block copied under them, online\n");
}

/* Progress on a terminal: one bar per file, "rekey i/n PATH [###...]  42%". */
struct shown {
	struct tool_progress bar;
	char label[1100];
	size_t file;
	bool on;
};

static void show(struct shown *s, const struct snap_rekey_progress *p)
{
	if (!p->files)
		return;
	if (s->on && (p->file != s->file || p->all_done)) {
		tool_progress_done(&s->bar);
		s->on = false;
	}
	if (p->all_done)
		return;
	if (!s->on) {
		snprintf(s->label, sizeof(s->label), "rekey %zu/%zu %s", p->file + 1, p->files, p->name);
		tool_progress_init(&s->bar, s->label, p->size);
		s->file = p->file;
		s->on = true;
	}
	tool_progress_update(&s->bar, p->done);
}

/* One call through the mount at dir: 0, or -errno after saying why. */
static int via_mount(const char *dir, const char *path, bool all, size_t *cursor, struct snap_rekey_progress *p)
{
	struct vmfs_mount_rekey r = { .all = all, .cursor = *cursor, .max_bytes = PER_CALL };
	int fd = open(dir, O_RDONLY | O_DIRECTORY), ret;

	if (fd < 0) {
		tool_err("%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (strlen(path) >= sizeof(r.path)) {
		close(fd);
		tool_err("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(r.path, sizeof(r.path), "%s", path);
	ret = ioctl(fd, VMFS_IOC_REKEY, &r);
	close(fd);
	if (ret) {
		ret = -errno;
		tool_err("%s: %s", dir, ret == -ENOTTY || ret == -ENOSYS ? "not a vmfs mount (nor a datastore)"
									 : strerror(-ret));
		return ret;
	}
	if (r.result) {
		r.err[sizeof(r.err) - 1] = 0;
		tool_err("%s", r.err[0] ? r.err : strerror(-r.result));
		return r.result;
	}
	*cursor = (size_t)r.cursor;
	p->files = (size_t)r.files;
	p->file = (size_t)r.file;
	p->done = r.done;
	p->size = r.size;
	p->all_done = r.all_done;
	p->dirs = r.dirs;
	r.name[sizeof(r.name) - 1] = 0;
	snprintf(p->name, sizeof(p->name), "%s", r.name);
	return 0;
}

int cmd_rekey(int argc, char **argv)
{
	bool deep = false, json = false, all = false;
	struct shown shown = { 0 };
	const char *pos[2] = { NULL, NULL }, *dev, *path;
	struct snap_rekey_progress p = { 0 };
	struct vmfs *fs = NULL;
	size_t cursor = 0, npos = 0, files = 0;
	uint64_t t0 = base_mono_ns();
	char err[512];
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--deep"))
			deep = true;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--all"))
			all = true;
		else if (argv[i][0] != '-' && npos < 2)
			pos[npos++] = argv[i];
		else
			npos = 3;
	}
	if (!deep || npos > 2 || npos < 1 || (all ? npos != 1 : npos != 2)) {
		if (!deep && npos <= 2)
			tool_err("rekey: only --deep is a rekey of files (a new datastore key: vmfsctl key change)");
		usage(stderr);
		return 2;
	}
	dev = pos[0];
	path = all ? "/" : pos[1];
	if (!is_mount(dev)) {
		fs = open_store(dev, false);
		if (!fs)
			return exit_code;
	}
	do {
		ret = fs ? snap_rekey(fs, path, all, PER_CALL, &cursor, &p, err, sizeof(err))
			 : via_mount(dev, path, all, &cursor, &p);
		if (ret && fs)
			tool_err("%s", err);
		show(&shown, &p);
	} while (!ret && !p.all_done);
	if (shown.on)
		tool_progress_done(&shown.bar);
	if (fs && vmfs_close(fs) && !ret) {
		tool_err("cannot close the datastore");
		ret = -EIO;
	}
	if (ret)
		return 1;
	files = p.files - p.dirs;
	if (json)
		printf("{\"rekeyed\":%zu,\"directories\":%zu,\"seconds\":%.3f}\n", files, p.dirs,
		       (double)(base_mono_ns() - t0) / 1e9);
	else if (p.dirs)
		printf("%zu file%s and %zu director%s rekeyed (new file keys, every block and name copied under them)\n",
		       files, files == 1 ? "" : "s", p.dirs, p.dirs == 1 ? "y" : "ies");
	else
		printf("%zu file%s rekeyed (new file keys, every block copied under them)\n", files,
		       files == 1 ? "" : "s");
	return 0;
}
