/*
 * The VM folder on a datastore (vmm/store.c), through libvmfs only: reading
 * vm.conf and the files it names, and making the folder and its files for
 * `vmm create`. Every name lookup's reference is dropped before a function
 * returns; nothing outside the folder (and the parents it makes) is touched.
 */
#ifndef VMM_STORE_H
#define VMM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs.h"
#include "vmm/config.h"

/*
 * Reads the folder's vm.conf. Returns 0, -ENOENT when dir has no vm.conf,
 * -EFBIG when it is larger than 64 KiB, -EINVAL (err says why) when it does
 * not parse, or another -errno from libvmfs.
 */
int vmm_store_read_conf(struct vmfs *fs, uint64_t dir, struct vmm_conf *c, char *err, size_t errlen);
/* Looks name up in dir (no reference kept): 0 with *st, or -errno. */
int vmm_store_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st);
/* Reads a whole file of the folder into a new buffer (*buf, caller frees); at most max bytes, else -EFBIG. */
int vmm_store_read_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t max, void **buf,
			size_t *len);

/*
 * Resolves an absolute path, making missing directories. With last_new the
 * last component must not exist yet (-EEXIST). *ino is the last directory;
 * *made counts the directories it made (the last *made components of path),
 * for vmm_store_rmdirs to undo; on failure it removes them itself (*made is
 * then 0, or what it could not remove).
 */
int vmm_store_mkdirs(struct vmfs *fs, const char *path, bool last_new, uint64_t *ino, unsigned *made);
/* Removes the last n components of path, deepest first; each must be an empty directory. */
int vmm_store_rmdirs(struct vmfs *fs, const char *path, unsigned n);
/* Creates an empty regular file name in dir (-EEXIST if it is there). */
int vmm_store_new_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t *ino);
/* Sets a file's size: growing leaves a hole (a thin disk). */
int vmm_store_set_size(struct vmfs *fs, uint64_t ino, uint64_t size);
/* Creates name in dir holding buf. */
int vmm_store_write(struct vmfs *fs, uint64_t dir, const char *name, const void *buf, size_t len);
/* Creates name in dir with the contents of host file src_fd; sparse skips all-zero 1 MiB chunks. */
int vmm_store_copy_in(struct vmfs *fs, uint64_t dir, const char *name, int src_fd, bool sparse);

/*
 * Calls fn for every VM on the datastore: the folders holding a vm.conf, up
 * to two levels below the root (/vms/NAME), with the folder's path and inode
 * and its parsed vm.conf, or c NULL and bad saying why it does not parse. A
 * non-zero return from fn stops the walk and is returned.
 */
typedef int (*vmm_store_walk_fn)(void *arg, const char *path, uint64_t dir, const struct vmm_conf *c,
				 const char *bad);
int vmm_store_walk(struct vmfs *fs, vmm_store_walk_fn fn, void *arg);

#endif
