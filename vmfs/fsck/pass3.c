/*
 * Pass 3: connectivity. Inodes allocated in a pool but reached by no name
 * (nor by an orphan list) are checked as pass 2 would and noted; once pass 5
 * has made the space right, fsck_pass3_reconnect() links them into
 * /lost+found as "#INO" (making it, or linking it into / again, first).
 */
#include "vmfs/fsck/fsck_i.h"

#include <dirent.h>
#include <sys/stat.h>

/* Pass 3: allocated sub-blocks that hold inodes nothing reaches. */
int fsck_pass3(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t inited = le64_to_cpu(fs->sb.sb_rc_inited);
	int r = 0;

	for (uint64_t rc = 0; rc < inited && !r; rc++) {
		struct vbuf *rb = NULL;
		struct vmfs_rc_disk *d = NULL;

		/* a damaged descriptor (rebuilt in pass 5): every block with a pool header is a pool */
		if (!meta_read(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, &rb))
			d = (struct vmfs_rc_disk *)rb->data;
		for (uint32_t i = 0; i < fs->rc_blocks && rc * fs->rc_blocks + i < fs->nblocks && !r; i++) {
			uint64_t blk = rc * fs->rc_blocks + i;
			uint16_t *s;
			struct vbuf *pb = NULL;
			struct vmfs_pool_disk *p = NULL;

			if (d && le16_to_cpu(d->rc_ref[i]) != VMFS_REF_POOL)
				continue;
			s = fsck_rc_slot(c, blk);
			if (!s || (*s && *s != VMFS_REF_POOL))
				continue; /* claimed as data: pass 5 says so */
			/*
			 * A damaged header (rebuilt in pass 5 from what is claimed) says
			 * nothing of what is in use: every sub-block that holds an inode
			 * is looked at, or the lost ones would be freed with it.
			 */
			if (!meta_read(fs, fs_block_unit(fs, blk), VMFS_MAGIC_POOL, &pb)) {
				*s = VMFS_REF_POOL; /* an empty pool is legitimate */
				p = (struct vmfs_pool_disk *)pb->data;
				if (!fsck_pool_get(c, blk, true)) {
					meta_put(fs, pb);
					r = -ENOMEM;
					break;
				}
			} else if (!d) {
				continue; /* neither the descriptor nor a header says it is a pool */
			}
			for (uint32_t u = 1; u < fs->upb && u < VMFS_POOL_MAX_UNITS && !r; u++) {
				uint64_t unit = fs_block_unit(fs, blk) + u;
				struct pool_exp *pe = fsck_pool_get(c, blk, false);
				struct ino_info *ii;
				struct vbuf *ib;

				if ((p && !p->pl_ref[u]) || (pe && pe->ref[u]))
					continue;
				if (inode_read(fs, unit, &ib))
					continue; /* a leaked or damaged sub-block: pass 5 frees it */
				meta_put(fs, ib);
				ii = fsck_ino_get(c, unit);
				if (!ii || ii->reached || ii->lost)
					continue; /* named, or lost already (its directory was damaged) */
				fsck_claim_unit(c, unit);
				ii->lost = true;
				ii->is_dir = S_ISDIR(fsck_mode_of(c, unit));
				r = fsck_check_inode(c, unit, ii);
				if (!r)
					r = fsck_walk_queue(c);
				if (!r)
					r = fsck_note_lost(c, unit);
			}
			meta_put(fs, pb);
		}
		meta_put(fs, rb);
	}
	return r;
}

/* Loads the allocator once, after the space is right again. */
static int alloc_ready(struct fsck *c)
{
	int r = c->alloc_ready ? 0 : alloc_init(c->fs);

	c->alloc_ready = !r;
	return r;
}

/*
 * /lost+found itself is named by no directory (its entry or the root was
 * damaged): it is linked into the root again before anything goes into it.
 */
static int relink_lost_found(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t lf = le64_to_cpu(fs->sb.sb_lostfound_ino);
	struct ino_info *li = fsck_ino_find(c, lf);
	struct vbuf *rb = NULL, *lfb = NULL;
	int r;

	if (!li || !li->lost || li->bad || !li->is_dir ||
	    !fsck_problem(c, PR_LOSTFOUND_UNLINKED,
		     (unsigned long long)lf))
		return 0;
	r = alloc_ready(c);
	if (!r)
		r = meta_read(fs, fs->root_ino, VMFS_MAGIC_INODE, &rb);
	if (!r)
		r = inode_read(fs, lf, &lfb);
	if (!r)
		r = fsck_dirty(c, lfb);
	if (!r)
		r = dir_insert(fs, rb, "lost+found", 10, lf, DT_DIR);
	if (!r) {
		ib_inode(rb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(rb)->i_nlink) + 1);
		ib_inode(lfb)->i_nlink = cpu_to_le32(2 + li->subdirs);
		ib_inode(lfb)->i_parent = cpu_to_le64(fs->root_ino);
		li->lost = false;
	}
	meta_put(fs, lfb);
	meta_put(fs, rb);
	return r == -EEXIST ? 0 : r; /* another 'lost+found' took the name: then nothing goes into this one */
}

/* Links unreachable inodes into /lost+found as "#INO" (after the space is right again). */
int fsck_pass3_reconnect(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t lf = le64_to_cpu(fs->sb.sb_lostfound_ino);
	struct vbuf *lfb = NULL, *rb;
	int r = relink_lost_found(c);

	for (size_t i = 0; i < c->nlost && !r; i++) {
		struct ino_info *ii = fsck_ino_find(c, c->lost[i]);
		struct vbuf *ib;
		char name[32];

		if (!ii || !ii->lost || ii->bad || ii->ino == lf)
			continue; /* a lost directory named it (it came along), it is damaged, or it is /lost+found */
		if (!fsck_problem(c, PR_INODE_LOST, (unsigned long long)ii->ino))
			continue;
		if (!lfb) {
			r = alloc_ready(c);
			if (r)
				break;
			if (inode_read(fs, lf, &lfb) || !S_ISDIR(le32_to_cpu(ib_inode(lfb)->i_mode))) {
				meta_put(fs, lfb);
				lfb = NULL;
				r = meta_read(fs, fs->root_ino, VMFS_MAGIC_INODE, &rb);
				if (!r)
					r = inode_new(fs, S_IFDIR | 0700, 0, 0, fs->root_ino, &lfb);
				if (!r)
					r = dir_insert(fs, rb, "lost+found", 10, lfb->addr, DT_DIR);
				if (!r) {
					struct vbuf *sbb;
					ib_inode(rb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(rb)->i_nlink) + 1);
					if (!meta_read(fs, 0, VMFS_MAGIC_SB, &sbb)) {
						fsck_dirty(c, sbb);
						((struct vmfs_sb_disk *)sbb->data)->sb_lostfound_ino = cpu_to_le64(lfb->addr);
						meta_put(fs, sbb);
					}
				}
				meta_put(fs, rb);
				if (r)
					break;
			}
			r = fsck_dirty(c, lfb);
		}
		snprintf(name, sizeof(name), "#%llu", (unsigned long long)ii->ino);
		r = r ? r : inode_read(fs, ii->ino, &ib);
		if (r)
			break;
		r = fsck_dirty(c, ib);
		if (!r)
			r = dir_insert(fs, lfb, name, strlen(name), ii->ino,
				       (uint8_t)mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)));
		if (!r) {
			if (ii->is_dir) {
				ib_inode(ib)->i_nlink = cpu_to_le32(2 + ii->subdirs);
				ib_inode(ib)->i_parent = cpu_to_le64(lfb->addr);
				ib_inode(lfb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(lfb)->i_nlink) + 1);
			} else {
				struct vmfs_inode_disk *di = ib_inode(ib);
				di->i_nlink = cpu_to_le32(ii->links + 1);
				/* a snapshot its file no longer lists becomes a plain file: its bytes are kept */
				di->i_flags = cpu_to_le32(le32_to_cpu(di->i_flags) & ~VMFS_IF_SNAPSHOT);
				memset(di->i_snap, 0, sizeof(di->i_snap));
				memset(di->i_snapname, 0, sizeof(di->i_snapname));
			}
		}
		meta_put(fs, ib);
	}
	meta_put(fs, lfb);
	return r;
}
