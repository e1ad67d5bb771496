/*
 * mount.vmfs: the helper mount(8) runs for the filesystem type vmfs (an
 * /etc/fstab line, `mount -t vmfs DEVICE DIR`, systemd's mount units).
 * mount(8) calls it as
 *
 *     mount.vmfs DEVICE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]
 *
 * It drops the options that are mount(8)'s and systemd's alone (defaults,
 * auto, noauto, nofail, _netdev, user, users, nouser, owner, group,
 * comment=..., x-...), does nothing for -f (a fake mount) or, with nofail,
 * for a device that does not exist (as mount(8) has it), enters the mount
 * namespace -N names, and runs `vmfs-mount -o OPTIONS DEVICE DIR`, the
 * program installed beside it, which returns once the datastore is mounted
 * (its daemon then serves it) or has failed, saying why. Exit codes are
 * mount(8)'s: 0 mounted, 1 bad usage, 32 the mount failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cli.h"

#define EXIT_MOUNT_USAGE 1
#define EXIT_MOUNT_FAIL 32

static void usage(FILE *f)
{
	fprintf(f, "usage: mount.vmfs DEVICE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]\n"
		   "  run by mount(8) for type vmfs (an /etc/fstab line, mount -t vmfs); it runs vmfs-mount\n"
		   "  -o OPTIONS     vmfs-mount's options (vmfs-mount(8)); mount(8)'s own (defaults, nofail,\n"
		   "                 _netdev, noauto, user, x-...) are dropped; nofail: a missing DEVICE is no error\n"
		   "  -f             fake: do nothing     -v  say what runs\n"
		   "  -s, -n, -t     accepted, ignored    -N NAMESPACE  mount in that mount namespace\n"
		   "  -h, --help     this help            --version     the version\n"
		   "exit: 0 mounted, 1 bad usage, 32 the mount failed\n");
}

/* An option only mount(8) or systemd reads. */
static bool mount8_only(const char *o)
{
	static const char *const names[] = { "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users",
					     "nouser", "owner", "group" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(o, names[i]))
			return true;
	return !strncmp(o, "comment=", 8) || !strncmp(o, "x-", 2);
}

/* Appends the options of list that vmfs-mount takes to out ("" when none); *nofail: list has nofail. */
static int filter_opts(const char *list, char *out, size_t len, bool *nofail)
{
	char *copy = strdup(list), *o, *save = NULL;
	size_t n = strlen(out);

	if (!copy)
		return -ENOMEM;
	for (o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		int w;

		if (!strcmp(o, "nofail"))
			*nofail = true;
		if (!*o || mount8_only(o))
			continue;
		w = snprintf(out + n, len - n, "%s%s", n ? "," : "", o);
		if (w < 0 || (size_t)w >= len - n) {
			free(copy);
			return -E2BIG;
		}
		n += (size_t)w;
	}
	free(copy);
	return 0;
}

/* vmfs-mount beside this program, else from PATH. */
static void mount_prog(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n > 0) {
		buf[n] = 0;
		slash = strrchr(buf, '/');
		if (slash && (size_t)(slash - buf) + sizeof("/vmfs-mount") <= len) {
			strcpy(slash, "/vmfs-mount");
			if (!access(buf, X_OK))
				return;
		}
	}
	snprintf(buf, len, "vmfs-mount");
}

/* -N: a namespace file, or a PID whose mount namespace to enter. */
static int enter_ns(const char *ns)
{
	char path[PATH_MAX];
	int fd, ret = 0;

	if (*ns && strspn(ns, "0123456789") == strlen(ns))
		snprintf(path, sizeof(path), "/proc/%s/ns/mnt", ns);
	else
		snprintf(path, sizeof(path), "%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNS))
		ret = -errno;
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	char opts[4096] = "", prog[PATH_MAX];
	const char *ns = NULL, *dev, *dir;
	bool fake = false, verbose = false, nofail = false;
	int c, status, ret;
	pid_t pid;

	tool_name = "mount.vmfs";
	if (argc == 2 && tool_help_or_version(argv[1], usage))
		return 0;
	if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		usage(stderr);
		return EXIT_MOUNT_USAGE;
	}
	dev = argv[1];
	dir = argv[2];
	optind = 3;
	while ((c = getopt(argc, argv, "sfnvN:o:t:")) != -1) {
		switch (c) {
		case 's': case 'n': case 't':
			break;	/* sloppy, no mtab, the type: nothing to do */
		case 'f':
			fake = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'N':
			ns = optarg;
			break;
		case 'o':
			if (filter_opts(optarg, opts, sizeof(opts), &nofail)) {
				tool_err("options too long");
				return EXIT_MOUNT_USAGE;
			}
			break;
		default:
			usage(stderr);
			return EXIT_MOUNT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_MOUNT_USAGE;
	}
	if (ns && (ret = enter_ns(ns))) {
		tool_err("-N %s: %s", ns, strerror(-ret));
		return EXIT_MOUNT_FAIL;
	}
	/* nofail: as mount(8) has it, a device that does not exist is no error */
	if (nofail && access(dev, F_OK) && errno == ENOENT) {
		fprintf(stderr, "mount.vmfs: %s: not there (nofail): %s not mounted\n", dev, dir);
		return 0;
	}
	mount_prog(prog, sizeof(prog));
	if (verbose)
		fprintf(stderr, "mount.vmfs: %s%s%s %s %s%s\n", prog, opts[0] ? " -o " : "", opts, dev, dir,
			fake ? " (fake: not run)" : "");
	if (fake)
		return 0;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		tool_err("fork: %s", strerror(errno));
		return EXIT_MOUNT_FAIL;
	}
	if (pid == 0) {
		if (opts[0])
			execlp(prog, "vmfs-mount", "-o", opts, dev, dir, (char *)NULL);
		else
			execlp(prog, "vmfs-mount", dev, dir, (char *)NULL);
		tool_err("%s: %s", prog, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_MOUNT_FAIL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	/* vmfs-mount said why; a usage error of ours is still a usage error */
	return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? EXIT_MOUNT_USAGE : EXIT_MOUNT_FAIL;
}
