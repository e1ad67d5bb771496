/*
 * Synchronous unmount for vmfs-mount. Each daemon has a run file,
 * RUNDIR/vmfs-mount/HASH.pid (RUNDIR is /run for root, else $XDG_RUNTIME_DIR
 * or /tmp; HASH is FNV-1a of the canonical mountpoint), holding "PID
 * MOUNTPOINT". Invariants:
 *
 *  P1. The daemon holds an exclusive flock on its run file from before it
 *      opens the datastore until it exits, after vmfs_close (the kernel drops
 *      the lock when the last descriptor closes). So whoever gets the lock
 *      after the unmount knows the daemon wrote everything and left the
 *      cluster; no pid is trusted, and a recycled pid cannot fool it.
 *  P2. A run file whose lock nobody holds is stale (its daemon was killed)
 *      and is taken over by the next daemon of that mountpoint.
 *  P3. Only the lock holder removes the file, and a daemon that got the lock
 *      checks the path still names the file it locked (else it retries), so
 *      a file being removed is never taken.
 *  P4. The daemon writes its pid into the file before it opens the datastore,
 *      so once its mountpoint is mounted the file names it; -u opens a pidfd
 *      on it before unmounting and, after the lock, waits for the process to
 *      end too (the descriptors, and with them the lock, close in its exit,
 *      a moment before it is gone).
 *
 *   daemon: mount_pid_claim (open, LOCK_EX|LOCK_NB, same inode?) --> serve -->
 *           vmfs_close --> mount_pid_release (unlink) --> exit (lock dropped)
 *   vmfs-mount -u: open the run file --> umount --> flock(LOCK_SH) waits --> 0
 *                  (a stale run file: locked at once, umount, unlink --> 0)
 */
#include "tools/mount_pid.h"
#include "base/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_MOUNT 32

static int run_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		snprintf(buf, len, "/run/vmfs-mount");
	else if (xdg && xdg[0] == '/')
		snprintf(buf, len, "%s/vmfs-mount", xdg);
	else
		snprintf(buf, len, "/tmp/vmfs-mount-%u", (unsigned)geteuid());
	if (mkdir(buf, 0755) && errno != EEXIST) {
		tool_err("%s: cannot make the run directory: %s", buf, strerror(errno));
		return -1;
	}
	return 0;
}

/* mp->path for mp->mnt. */
static int run_file(struct mount_pid *mp)
{
	uint64_t h = 0xcbf29ce484222325ull;
	char dir[PATH_MAX - 32];

	for (const char *p = mp->mnt; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	if (run_dir(dir, sizeof(dir)))
		return -1;
	snprintf(mp->path, sizeof(mp->path), "%s/%016llx.pid", dir, (unsigned long long)h);
	return 0;
}

/*
 * The canonical mountpoint. A mountpoint whose daemon died cannot be
 * resolved (stat gives ENOTCONN): then its parent is, and the last name kept.
 */
static int canonical(const char *mountpoint, char *out)
{
	char *copy, *dir, *base, parent[PATH_MAX];
	int ret = -1;

	if (realpath(mountpoint, out))
		return 0;
	copy = strdup(mountpoint);
	if (!copy)
		return -1;
	base = basename(copy);
	if (strcmp(base, ".") && strcmp(base, "..") && strcmp(base, "/")) {
		base = strdup(base);
		dir = base ? dirname(copy) : NULL;
		if (dir && realpath(dir, parent) && strlen(parent) + strlen(base) + 2 <= PATH_MAX) {
			size_t pl = strcmp(parent, "/") ? strlen(parent) : 0;

			memcpy(out, parent, pl);
			out[pl] = '/';
			strcpy(out + pl + 1, base);
			ret = 0;
		}
		free(base);
	}
	free(copy);
	if (ret)
		tool_err("%s: %s", mountpoint, strerror(errno ? errno : EINVAL));
	return ret;
}

int mount_pid_claim(const char *mountpoint, struct mount_pid *mp)
{
	struct stat fst, pst;

	mp->fd = -1;
	if (!realpath(mountpoint, mp->mnt)) {
		tool_err("%s: %s", mountpoint, strerror(errno));
		return -1;
	}
	if (run_file(mp))
		return -1;
	for (;;) {
		mp->fd = open(mp->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (mp->fd < 0) {
			tool_err("%s: %s", mp->path, strerror(errno));
			return -1;
		}
		if (flock(mp->fd, LOCK_EX | LOCK_NB)) {
			char line[64] = "";

			if (pread(mp->fd, line, sizeof(line) - 1, 0) < 0)
				line[0] = 0;
			line[strcspn(line, " \n")] = 0;
			tool_err("%s: another vmfs-mount (pid %s) serves it", mp->mnt, line[0] ? line : "unknown");
			close(mp->fd);
			mp->fd = -1;
			return -1;
		}
		if (!fstat(mp->fd, &fst) && !stat(mp->path, &pst) && fst.st_dev == pst.st_dev &&
		    fst.st_ino == pst.st_ino)
			return 0;
		close(mp->fd);  /* P3: removed by its holder meanwhile: take the new one */
	}
}

void mount_pid_write(const struct mount_pid *mp)
{
	char line[PATH_MAX + 32];
	int n;

	if (mp->fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), mp->mnt);
	if (ftruncate(mp->fd, 0) || pwrite(mp->fd, line, (size_t)n, 0) != n)
		tool_err("%s: %s", mp->path, strerror(errno));
}

/* The descriptor stays open: exit closes it, and so drops the lock (P1, P4). */
void mount_pid_release(struct mount_pid *mp)
{
	if (mp->fd < 0)
		return;
	unlink(mp->path);
}

/* umount2 as root, fusermount3 -u otherwise (a user's FUSE mount). 0 or -errno-like failure printed. */
static int do_unmount(const char *mnt)
{
	int status;
	pid_t pid;

	if (geteuid() == 0) {
		if (!umount2(mnt, 0))
			return 0;
		tool_err("%s: cannot unmount: %s", mnt, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		tool_err("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
		tool_err("fusermount3: %s", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;   /* fusermount3 said why */
}

int mount_pid_unmount(const char *mountpoint)
{
	struct mount_pid mp;
	char line[PATH_MAX + 32], *sp;
	bool live;
	ssize_t n;
	int ret, pidfd;

	if (canonical(mountpoint, mp.mnt) || run_file(&mp))
		return EXIT_MOUNT;
	mp.fd = open(mp.path, O_RDONLY | O_CLOEXEC);
	if (mp.fd < 0) {
		tool_err("%s: no vmfs-mount serves it (%s: %s)", mp.mnt, mp.path, strerror(errno));
		return EXIT_MOUNT;
	}
	n = pread(mp.fd, line, sizeof(line) - 1, 0);
	line[n > 0 ? n : 0] = 0;
	line[strcspn(line, "\n")] = 0;
	sp = strchr(line, ' ');
	if (sp && strcmp(sp + 1, mp.mnt)) {
		tool_err("%s: its run file %s names %s", mp.mnt, mp.path, sp + 1);
		close(mp.fd);
		return EXIT_MOUNT;
	}
	live = flock(mp.fd, LOCK_EX | LOCK_NB) != 0;   /* P2: nobody holds it: the daemon was killed */
	/* the pid it wrote before it mounted (P4), to see the process itself end */
	pidfd = live && line[0] ? (int)syscall(SYS_pidfd_open, (pid_t)atoi(line), 0) : -1;
	ret = do_unmount(mp.mnt);
	if (!live && !ret)
		unlink(mp.path);        /* P3: as the lock's holder */
	/* P1: the daemon drops its lock only on exit, after closing the datastore */
	while (!ret && live && flock(mp.fd, LOCK_SH))
		if (errno != EINTR) {
			tool_err("%s: waiting for the daemon: %s", mp.path, strerror(errno));
			ret = -1;
		}
	/*
	 * P4: the lock goes when the daemon's descriptors close, in its exit; the
	 * process ends a moment later (sooner than the bound, which only keeps a
	 * pid that is not the daemon's from holding us).
	 */
	if (!ret && pidfd >= 0) {
		struct pollfd pf = { .fd = pidfd, .events = POLLIN };

		while (poll(&pf, 1, 10000) < 0 && errno == EINTR)
			;
	}
	if (pidfd >= 0)
		close(pidfd);
	close(mp.fd);
	return ret ? EXIT_MOUNT : 0;
}
