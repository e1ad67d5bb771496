/*
 * vmfsctl snapshot create|list|revert|delete|diff and vmfsctl clone: the
 * snapshot/ module's commands. Commands that change the datastore join the
 * cluster as a host of their own (about 2 s) and take the files' locks; list
 * and diff open it read-only and write nothing. Exit codes as every vmfsctl
 * command: 0 done, 1 failed (one line on stderr says why), 2 bad usage.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "base/cli.h"
#include "snapshot/snapshot.h"
#include "tools/mount_ctl.h"
#include "tools/vmfsctl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

void snap_usage(FILE *f)
{
	fprintf(f, "       vmfsctl snapshot create [--json] DEVICE PATH [--name NAME]\n"
		   "                                             snapshot a file, or a folder's files together\n"
		   "       vmfsctl snapshot list [--json] DEVICE PATH   the snapshot tree, with each one's unique bytes\n"
		   "       vmfsctl snapshot revert [--json] DEVICE PATH NAME\n"
		   "       vmfsctl snapshot delete [--json] DEVICE PATH NAME\n"
		   "       vmfsctl snapshot diff [--json] DEVICE PATH FROM [TO]\n"
		   "                                             byte ranges that differ (TO: the live file)\n"
		   "       vmfsctl clone [--json] DEVICE SRC[@SNAPSHOT] DST   a linked clone sharing every block\n");
}

/* --json, --name NAME and up to max positional arguments: 0, or 2 (said). */
struct args {
	bool json;
	const char *name;
	const char *pos[4];
	int npos;
};

static int parse(int argc, char **argv, struct args *a, int min, int max, bool name_ok)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			a->json = true;
		else if (name_ok && !strcmp(argv[i], "--name") && i + 1 < argc)
			a->name = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1])
			goto bad;
		else if (a->npos < max)
			a->pos[a->npos++] = argv[i];
		else
			goto bad;
	}
	if (a->npos >= min)
		return 0;
bad:
	usage(stderr);
	return 2;
}

bool is_mount(const char *dev)
{
	struct stat st;

	return stat(dev, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Runs op inside the vmfs-mount daemon serving dir (tools/mount_ctl.h): with
 * its locks, so files it has open may be snapshotted. 0, or 1 after saying why;
 * -EEXIST comes back as such when exists_ok.
 */
static int via_mount(const char *dir, enum snap_op op, const char *path, const char *name, const char *dst,
		     bool exists_ok)
{
	struct vmfs_mount_ctl c = { .op = op };
	int fd = open(dir, O_RDONLY | O_DIRECTORY), ret;

	if (fd < 0) {
		tool_err("%s: %s", dir, strerror(errno));
		return 1;
	}
	snprintf(c.path, sizeof(c.path), "%s", path);
	snprintf(c.name, sizeof(c.name), "%s", name ? name : "");
	snprintf(c.dst, sizeof(c.dst), "%s", dst ? dst : "");
	if ((name && strlen(name) >= sizeof(c.name)) || strlen(path) >= sizeof(c.path) ||
	    (dst && strlen(dst) >= sizeof(c.dst))) {
		close(fd);
		tool_err("%s: %s", path, name && strlen(name) >= sizeof(c.name) ? "name too long (at most 255 bytes)"
										  : "path too long");
		return 1;
	}
	ret = ioctl(fd, VMFS_IOC_SNAP, &c);
	close(fd);
	if (ret) {
		tool_err("%s: %s", dir, errno == ENOTTY || errno == ENOSYS ? "not a vmfs mount (nor a datastore)"
									   : strerror(errno));
		return 1;
	}
	if (c.result == -EEXIST && exists_ok)
		return c.result;
	if (c.result) {
		c.err[sizeof(c.err) - 1] = 0;
		tool_err("%s", c.err[0] ? c.err : strerror(-c.result));
		return 1;
	}
	return 0;
}

/*
 * The datastore a vmfs mount serves (for list and diff, which only read): the
 * source of the longest fuse.vmfs mount in /proc/self/mountinfo that holds dir.
 */
static const char *mount_source(const char *dir, char *buf, size_t len)
{
	char real[PATH_MAX], line[3 * PATH_MAX], mnt[PATH_MAX], fstype[64], src[PATH_MAX];
	size_t best = 0;
	FILE *f;

	if (!realpath(dir, real) || !(f = fopen("/proc/self/mountinfo", "r")))
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		size_t n;

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %4095s", fstype, src) != 2 || strcmp(fstype, "fuse.vmfs"))
			continue;
		n = strlen(mnt);
		if (n > best && !strncmp(real, mnt, n) && (real[n] == 0 || real[n] == '/' || n == 1)) {
			best = n;
			snprintf(buf, len, "%s", src);
		}
	}
	fclose(f);
	return best ? buf : NULL;
}

/* DEVICE for a command that only reads: a datastore, or the one a mount serves. NULL after saying why. */
static const char *readable(const char *dev, char *buf, size_t len)
{
	const char *src;

	if (!is_mount(dev))
		return dev;
	src = mount_source(dev, buf, len);
	if (!src)
		tool_err("%s: not a vmfs mount (nor a datastore)", dev);
	return src;
}

/* Joins the cluster as a host of its own: NULL after saying why. */
static struct vmfs *open_rw(const char *dev)
{
	return open_store(dev, false);
}

/* Closes fs; a failed close (the final commit) fails the command. */
static int finish(struct vmfs *fs, int ret)
{
	int c = vmfs_close(fs);

	if (c && !ret) {
		tool_err("cannot close the datastore: %s", strerror(-c));
		return 1;
	}
	return ret;
}

/*
 * Runs op on DEVICE: inside the vmfs-mount daemon when DEVICE is a mount (it
 * holds the locks of the files it has open), else as a host of its own after
 * every check has passed on a read-only open (snap_precheck), so a refused
 * command exits having written nothing, not even a heartbeat. 0, or 1 after
 * saying why; -EEXIST comes back as such when exists_ok.
 */
static int change(const char *dev, enum snap_op op, const char *path, const char *name, const char *dst,
		  bool exists_ok)
{
	struct vmfs *fs;
	char err[512];
	int ret;

	if (is_mount(dev))
		return via_mount(dev, op, path, name, dst, exists_ok);
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	ret = snap_precheck(fs, op, path, name, dst, err, sizeof(err));
	vmfs_close(fs);
	if (!ret) {
		fs = open_rw(dev);
		if (!fs)
			return exit_code;
		ret = snap_run(fs, op, path, name, dst, err, sizeof(err));
		if (finish(fs, 0) && !ret)
			return 1; /* (said) */
	}
	if (ret == -EEXIST && exists_ok)
		return ret;
	if (ret)
		tool_err("%s", err);
	return ret ? 1 : 0;
}

/* The files PATH stands for, as JSON ("files":[...]), read from DEVICE (or the datastore a mount serves). */
static void json_files(const char *dev, const char *path)
{
	char devbuf[PATH_MAX], err[512];
	const char *src = readable(dev, devbuf, sizeof(devbuf));
	struct vmfs *fs = src ? open_readonly(src) : NULL;
	struct snap_files f = { 0 };

	printf("\"files\":[");
	if (fs && !snap_files_get(fs, path, &f, err, sizeof(err))) {
		for (size_t i = 0; i < f.n; i++) {
			printf(i ? "," : "");
			tool_json_str(f.name[i]);
		}
		snap_files_release(&f);
	}
	printf("]");
	vmfs_close(fs);
}

static int cmd_create(int argc, char **argv)
{
	char def[64], name[80];
	struct args a;
	int ret;

	if (parse(argc, argv, &a, 2, 2, true))
		return 2;
	if (a.name) {
		ret = change(a.pos[0], SNAP_CREATE, a.pos[1], a.name, NULL, false);
	} else { /* the time, made unique if two snapshots land in one second */
		snap_default_name(def, sizeof(def));
		snprintf(name, sizeof(name), "%s", def);
		ret = change(a.pos[0], SNAP_CREATE, a.pos[1], name, NULL, true);
		for (int i = 2; ret == -EEXIST && i < 100; i++) {
			snprintf(name, sizeof(name), "%s-%d", def, i);
			ret = change(a.pos[0], SNAP_CREATE, a.pos[1], name, NULL, i < 99);
		}
	}
	if (ret)
		return 1;
	if (a.json) {
		printf("{\"created\":");
		tool_json_str(a.name ? a.name : name);
		printf(",");
		json_files(a.pos[0], a.pos[1]);
		printf("}\n");
	} else {
		printf("snapshot '%s'\n", a.name ? a.name : name);
	}
	return 0;
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *name_of(const struct snap_file_tree *t, uint64_t ino)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->snaps[i].ino == ino)
			return t->snaps[i].name;
	return NULL;
}

/* Prints the children of parent (oldest first), indented by depth, and "(now)" where the live file is. */
static void print_tree(const struct snap_file_tree *t, uint64_t parent, int depth)
{
	for (size_t k = t->n; k-- > 0;) { /* the list is newest first */
		const struct vmfs_snap_info *s = &t->snaps[k];
		char when[32];

		if (s->parent != parent)
			continue;
		fmt_time(s->time_ns, when, sizeof(when));
		printf("  %*s%-*s %6llu  %s  %14llu  %14llu\n", depth * 2, "", 24 - depth * 2 > 1 ? 24 - depth * 2 : 1,
		       s->name, (unsigned long long)s->id, when, (unsigned long long)s->size,
		       (unsigned long long)t->unique[k]);
		print_tree(t, s->ino, depth + 1);
	}
	if (t->parent == parent)
		printf("  %*s(now: the live file)\n", depth * 2, "");
}

static int cmd_list(int argc, char **argv)
{
	char devbuf[PATH_MAX];
	const char *dev;
	struct snap_listing l;
	char err[512];
	struct args a;
	struct vmfs *fs;

	if (parse(argc, argv, &a, 2, 2, false))
		return 2;
	if (!(dev = readable(a.pos[0], devbuf, sizeof(devbuf))))
		return 1;
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	if (snap_list(fs, a.pos[1], &l, err, sizeof(err))) {
		tool_err("%s", err);
		return finish(fs, 1);
	}
	if (a.json)
		printf("[");
	for (size_t i = 0; i < l.n; i++) {
		const struct snap_file_tree *t = &l.files[i];

		if (!a.json) {
			printf("%s%s: %zu snapshot%s\n", i ? "\n" : "", t->path, t->n, t->n == 1 ? "" : "s");
			if (t->n) {
				printf("  %-24s %6s  %-20s  %14s  %14s\n", "NAME", "ID", "CREATED", "SIZE", "UNIQUE BYTES");
				print_tree(t, 0, 0);
			}
			continue;
		}
		printf("%s{\"file\":", i ? "," : "");
		tool_json_str(t->path);
		printf(",\"parent\":");
		if (name_of(t, t->parent))
			tool_json_str(name_of(t, t->parent));
		else
			printf("null");
		printf(",\"snapshots\":[");
		for (size_t k = 0; k < t->n; k++) {
			const struct vmfs_snap_info *s = &t->snaps[k];
			char when[32];

			fmt_time(s->time_ns, when, sizeof(when));
			printf("%s{\"name\":", k ? "," : "");
			tool_json_str(s->name);
			printf(",\"id\":%llu,\"time\":\"%s\",\"time_ns\":%lld,\"parent\":", (unsigned long long)s->id, when,
			       (long long)s->time_ns);
			if (name_of(t, s->parent))
				tool_json_str(name_of(t, s->parent));
			else
				printf("null");
			printf(",\"size\":%llu,\"unique_bytes\":%llu}", (unsigned long long)s->size,
			       (unsigned long long)t->unique[k]);
		}
		printf("]}");
	}
	if (a.json)
		printf("]\n");
	snap_listing_release(&l);
	return finish(fs, 0);
}

/* revert or delete: both take PATH NAME and act on every file of PATH that has NAME */
static int cmd_change(int argc, char **argv, bool revert)
{
	struct args a;

	if (parse(argc, argv, &a, 3, 3, false))
		return 2;
	if (change(a.pos[0], revert ? SNAP_REVERT : SNAP_DELETE, a.pos[1], a.pos[2], NULL, false))
		return 1;
	if (a.json) {
		printf("{\"%s\":", revert ? "reverted" : "deleted");
		tool_json_str(a.pos[2]);
		printf(",\"path\":");
		tool_json_str(a.pos[1]);
		printf("}\n");
	}
	return 0;
}

struct diff_out {
	bool json;
	unsigned n;
	uint64_t bytes;
};

static int diff_print(void *ctx, uint64_t off, uint64_t len)
{
	struct diff_out *d = ctx;

	if (d->json)
		printf("%s{\"offset\":%llu,\"length\":%llu}", d->n ? "," : "", (unsigned long long)off,
		       (unsigned long long)len);
	else
		printf("%llu %llu\n", (unsigned long long)off, (unsigned long long)len);
	d->n++;
	d->bytes += len;
	return 0;
}

static int cmd_diff(int argc, char **argv)
{
	char err[512], devbuf[PATH_MAX];
	const char *dev;
	struct args a;
	struct diff_out d = { 0 };
	struct vmfs *fs;
	int ret;

	if (parse(argc, argv, &a, 3, 4, false))
		return 2;
	if (!(dev = readable(a.pos[0], devbuf, sizeof(devbuf))))
		return 1;
	fs = open_readonly(dev);
	if (!fs)
		return exit_code;
	d.json = a.json;
	if (a.json) {
		printf("{\"file\":");
		tool_json_str(a.pos[1]);
		printf(",\"from\":");
		tool_json_str(a.pos[2]);
		printf(",\"to\":");
		if (a.npos > 3)
			tool_json_str(a.pos[3]);
		else
			printf("null");
		printf(",\"extents\":[");
	}
	ret = snap_diff(fs, a.pos[1], a.pos[2], a.npos > 3 ? a.pos[3] : NULL, diff_print, &d, err, sizeof(err));
	if (a.json)
		printf("],\"changed_bytes\":%llu}\n", (unsigned long long)d.bytes);
	fflush(stdout);
	if (ret)
		tool_err("%s", err);
	return finish(fs, ret ? 1 : 0);
}

int cmd_snapshot(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "create"))
		return cmd_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "revert"))
		return cmd_change(argc - 1, argv + 1, true);
	if (!strcmp(argv[1], "delete"))
		return cmd_change(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "diff"))
		return cmd_diff(argc - 1, argv + 1);
	tool_err("unknown snapshot command '%s'", argv[1]);
	usage(stderr);
	return 2;
}

int cmd_clone(int argc, char **argv)
{
	struct args a;

	if (parse(argc, argv, &a, 3, 3, false))
		return 2;
	if (change(a.pos[0], SNAP_CLONE, a.pos[1], NULL, a.pos[2], false))
		return 1;
	if (a.json) {
		printf("{\"clone\":");
		tool_json_str(a.pos[2]);
		printf(",\"source\":");
		tool_json_str(a.pos[1]);
		printf("}\n");
	}
	return 0;
}
