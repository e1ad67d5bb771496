/*
 * The run file of a vmfs-mount daemon, and `vmfs-mount -u`, which uses it to
 * make unmounting synchronous. See mount_pid.c.
 */
#ifndef VMFS_TOOLS_MOUNT_PID_H
#define VMFS_TOOLS_MOUNT_PID_H

#include <limits.h>

struct mount_pid {
	int fd;                   /* -1: none */
	char path[PATH_MAX];      /* the run file */
	char mnt[PATH_MAX];       /* the canonical mountpoint */
};

/*
 * Takes the run file of mountpoint (a directory that exists) before the
 * datastore is opened: creates it and holds an exclusive flock on it until the
 * process exits. Returns 0, or -1 with the reason printed (another live
 * vmfs-mount serves mountpoint; the run directory cannot be made).
 */
int mount_pid_claim(const char *mountpoint, struct mount_pid *mp);
/* Records this process (the daemon, after the fork) in the run file: "PID MOUNTPOINT". */
void mount_pid_write(const struct mount_pid *mp);
/* Removes the run file, after closing the datastore; the lock goes with the process (its exit closes the file). */
void mount_pid_release(struct mount_pid *mp);
/*
 * vmfs-mount -u MOUNTPOINT: unmounts and returns once the daemon serving it
 * has exited (written everything, left the cluster). Returns the exit code:
 * 0, or 32 with the reason printed.
 */
int mount_pid_unmount(const char *mountpoint);

#endif
