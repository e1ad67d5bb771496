/*
 * Pass 4: link counts, parents and orphan flags, from what passes 2 and 3
 * found: a file's count is the number of entries naming it, a directory's
 * two plus its subdirectories.
 */
#include "vmfs/fsck/fsck_i.h"

/* Pass 4: link counts and parents. */
int fsck_pass4(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	int r = 0;

	for (size_t h = 0; h < c->hsize && !r; h++) {
		for (struct ino_info *ii = c->ihash[h]; ii && !r; ii = ii->next) {
			struct vbuf *ib;
			uint32_t want, have;

			if (ii->bad || ii->lost || !ii->reached || (!ii->parent && ii->ino != fs->root_ino))
				continue; /* damaged, lost (pass 3) or an orphan */
			if (inode_read(fs, ii->ino, &ib))
				continue;
			want = ii->is_dir ? 2 + ii->subdirs : ii->links;
			have = le32_to_cpu(ib_inode(ib)->i_nlink);
			if (want != have && fsck_problem(c, PR_LINK_COUNT,
						    (unsigned long long)ii->ino, have, want)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_nlink = cpu_to_le32(want);
			}
			/* the library looks for it on the list when it is unlinked or truncated (inode.c) */
			if (!r && !ii->orphan && (le32_to_cpu(ib_inode(ib)->i_flags) & VMFS_IF_ORPHAN) &&
			    fsck_problem(c, PR_ORPHAN_FLAG, (unsigned long long)ii->ino)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_flags = cpu_to_le32(le32_to_cpu(ib_inode(ib)->i_flags) & ~VMFS_IF_ORPHAN);
			}
			if (!r && ii->is_dir && ii->ino != fs->root_ino &&
			    le64_to_cpu(ib_inode(ib)->i_parent) != ii->parent &&
			    fsck_problem(c, PR_DIR_PARENT, (unsigned long long)ii->ino,
				    (unsigned long long)le64_to_cpu(ib_inode(ib)->i_parent), (unsigned long long)ii->parent)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_parent = cpu_to_le64(ii->parent);
			}
			meta_put(fs, ib);
		}
	}
	return r;
}
