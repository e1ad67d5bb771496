/*
 * snapshot/: snapshots of files and VM folders, revert, linked clones and
 * changed-block diffs, on vmfs's shared blocks (vmfs/vmfs.h, "shared blocks";
 * docs/ARCHITECTURE.md, "Snapshots").
 *
 * A PATH names a regular file or a folder (from the datastore's root, a
 * leading '/' optional). A folder stands for the regular files directly in it
 * (a VM's disks and its vm.conf): they are snapshotted and reverted together,
 * in one transaction, so a crash leaves all of them done or none. A snapshot
 * is named by the file it belongs to and its name; a folder's snapshot NAME is
 * each file's snapshot NAME.
 *
 * Cluster: snapshotting or cloning a file takes its file lock shared and
 * reverting takes it exclusive, so a file another host holds open for writing
 * (for a revert: open at all) is refused with -EBUSY and the holder's name; the
 * host that holds it (this handle) may go on.
 *
 * Every call returns 0 or a negative errno, and on failure puts one line (no
 * newline) in err. A failed call leaves the datastore as it was.
 */
#ifndef VMFS_SNAPSHOT_H
#define VMFS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs.h"

/* The files a PATH stands for, sorted by name. */
struct snap_files {
	size_t n;
	uint64_t *ino;
	char **name;            /* a file's path from the root */
	bool folder;            /* PATH was a folder */
	size_t dirs;            /* how many of them are directories (snap_files_rekey) */
};
int snap_files_get(struct vmfs *fs, const char *path, struct snap_files *out, char *err, size_t errlen);
void snap_files_release(struct snap_files *f);
/*
 * What a deep rekey of PATH renews: a file; a folder's files (as
 * snap_files_get), then the folder itself (its names); with all, every
 * regular file, symlink and directory in the tree under folder PATH ("/"
 * for the datastore) and the folder, sorted by path.
 */
int snap_files_rekey(struct vmfs *fs, const char *path, bool all, struct snap_files *out, char *err, size_t errlen);

/* A name for a snapshot made now ("YYYY-MM-DDTHH:MM:SSZ", UTC) when the user gives none. */
void snap_default_name(char *buf, size_t len);

/*
 * What the changing calls below check before they change anything, on any
 * handle (a read-only one too): that PATH exists, the name is valid and free
 * (create) or names a snapshot of PATH (revert, delete), and for a clone that
 * SRC (and its snapshot) exists and DST does not while its folder does. vmfsctl
 * runs it on a read-only handle before it joins the cluster, so a refused
 * command writes nothing at all. name: the snapshot name, dst: the clone's.
 */
enum snap_op { SNAP_CREATE, SNAP_REVERT, SNAP_DELETE, SNAP_CLONE };
int snap_precheck(struct vmfs *fs, enum snap_op op, const char *path, const char *name, const char *dst, char *err,
		  size_t errlen);

/*
 * The changing calls below are durable when they return (committed and
 * flushed): another host's next look sees them.
 */
int snap_create(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen);
/*
 * snap_create, and how long the files' I/O was held (io_pause_ns, may be NULL):
 * from taking their I/O locks (writes in flight finish first, new ones wait)
 * to the snapshot's transaction done. vmm ctl reports it for a running VM.
 */
int snap_create_timed(struct vmfs *fs, const char *path, const char *name, uint64_t *io_pause_ns, char *err,
		      size_t errlen);
/* Every file of PATH that has a snapshot NAME goes back to it; -ENOENT when none has. */
int snap_revert(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen);
/* Deletes snapshot NAME of every file of PATH that has it; -ENOENT when none has. */
int snap_delete(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen);

/* A file's snapshot tree as `list` shows it. */
struct snap_file_tree {
	char *path;
	uint64_t ino;
	uint64_t parent;                /* the snapshot the live file descends from, 0 = none */
	struct vmfs_snap_info *snaps;   /* newest first */
	uint64_t *unique;               /* per snapshot: bytes deleting it would free */
	size_t n;
};
struct snap_listing {
	struct snap_file_tree *files;
	size_t n;
};
int snap_list(struct vmfs *fs, const char *path, struct snap_listing *out, char *err, size_t errlen);
void snap_listing_release(struct snap_listing *l);

/* The byte ranges in which file PATH's snapshot TO (NULL: the live file) differs from snapshot FROM. */
int snap_diff(struct vmfs *fs, const char *path, const char *from, const char *to, vmfs_extent_fn fn, void *ctx,
	      char *err, size_t errlen);

/*
 * What SRC ("PATH" or "PATH@SNAPSHOT") names: the file (*file) and the inode
 * whose bytes are SRC's (*ino: the file, or its snapshot; *snap true then).
 */
int snap_source(struct vmfs *fs, const char *src, uint64_t *file, uint64_t *ino, bool *snap, char *err, size_t errlen);
/*
 * A new file's place: DST's folder (*dir) and its last component (*base,
 * inside *buf, which the caller frees); -EEXIST when DST exists, -ENOENT
 * when its folder does not.
 */
int snap_new_path(struct vmfs *fs, const char *dst, uint64_t *dir, char **buf, const char **base, char *err,
		  size_t errlen);
/* A linked clone of SRC ("PATH" or "PATH@SNAPSHOT") at DST, which must not exist. */
int snap_clone(struct vmfs *fs, const char *src, const char *dst, char *err, size_t errlen);

/* One of the four by op: name is the snapshot's (create, revert, delete), dst the clone's (SRC is path). */
int snap_run(struct vmfs *fs, enum snap_op op, const char *path, const char *name, const char *dst, char *err,
	     size_t errlen);

/*
 * Deep rekey (vmfs_rekey_step) of the files PATH stands for, or with all of
 * every file, symlink and directory in the tree (snap_files_rekey), one call
 * at a time: each call works on file *cursor (0 at first) for up to
 * max_bytes of its blocks, taking its file lock exclusive for the call
 * (another host that has it open is refused with -EBUSY and its name; this
 * handle's own opens go on, their I/O waiting only while a batch is copied;
 * a directory takes none: each step is one operation), and moves *cursor
 * on when the file is done. *p says where it stands; all_done when every
 * file is done. A file whose rekey a crash interrupted resumes where it
 * stopped. With all, the calls are one run (vmfs_rekey_run) from the first
 * to the one that finishes: a *cursor of 0 after an interruption skips the
 * files the run has finished.
 */
struct snap_rekey_progress {
	size_t files, file;             /* how many, and the one worked on (0-based) */
	size_t dirs;                    /* how many of the files are directories */
	bool dir;                       /* the one worked on is one (done, size: its entries) */
	char name[1024];                /* its path */
	uint64_t done, size;            /* its bytes under the new key, of its size */
	bool all_done;
};
int snap_rekey(struct vmfs *fs, const char *path, bool all, uint64_t max_bytes, size_t *cursor,
	       struct snap_rekey_progress *p, char *err, size_t errlen);

#endif
