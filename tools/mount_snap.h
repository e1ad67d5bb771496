/*
 * vmfs-mount's read-only snapshot view: every directory DIR has a hidden
 * DIR/.snapshots (not listed by readdir, found by name) holding FILE@NAME for
 * each snapshot NAME of each regular file FILE in DIR. A backup copies a
 * consistent image from there while the VM keeps writing FILE. The view's
 * directory has the inode number of DIR with MOUNT_SNAPDIR set (inode numbers
 * are unit addresses, below 2^56); FILE@NAME is the snapshot's own inode.
 */
#ifndef VMFS_TOOLS_MOUNT_SNAP_H
#define VMFS_TOOLS_MOUNT_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs.h"

#define MOUNT_SNAPDIR (1ull << 62)
#define MOUNT_SNAPDIR_NAME ".snapshots"

static inline bool mount_is_snapdir(uint64_t ino) { return ino & MOUNT_SNAPDIR; }

/* DIR/.snapshots's attributes (from DIR's: read-only, a directory). */
int snapdir_stat(struct vmfs *fs, uint64_t dir, struct vmfs_stat *st);
/* FILE@NAME in DIR/.snapshots: the snapshot's attributes; a lookup reference is taken (vmfs_forget). */
int snapdir_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st);
/* Every FILE@NAME of DIR, in a stable order: names[i] and inos[i] (caller frees with snapdir_list_free). */
int snapdir_list(struct vmfs *fs, uint64_t dir, char ***names, uint64_t **inos, size_t *n);
void snapdir_list_free(char **names, uint64_t *inos, size_t n);

#endif
