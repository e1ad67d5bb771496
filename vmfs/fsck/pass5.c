/*
 * Pass 5: space accounting. Every resource cluster descriptor and pool header
 * is compared with the counts passes 1-3 claimed; a damaged one is rebuilt
 * from them. After it, the free counts are right, so pass 3's reconnections
 * may allocate.
 */
#include "vmfs/fsck/fsck_i.h"

/* An RC's owner record: empty, or a slot that exists; the reserved bytes zero. */
static bool rc_owner_ok(struct vmfs *fs, const struct vmfs_lockrec_disk *r)
{
	uint32_t slot1 = le32_to_cpu(r->lr_slot1);

	return slot1 <= le32_to_cpu(fs->sb.sb_host_slots) && !r->lr_reserved0 && (slot1 || !r->lr_gen) &&
	       base_all_zero(r->lr_reserved, sizeof(r->lr_reserved));
}

/*
 * Each redirect table the maps reached: a slot's count against the pointers
 * found to it. A slot no pointer names is freed (its blocks, which nothing
 * claimed, are then freed below as leaked).
 */
static int check_redirects(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	int r = 0;

	for (size_t h = 0; h < c->hsize && !r; h++)
		for (struct redir_exp *t = c->rhash[h]; t && !r; t = t->next) {
			struct vmfs_redir_disk *d;
			struct vbuf *tb;
			unsigned used = 0, slots;

			if (t->bad || redir_table_read(fs, t->unit, &tb))
				continue;
			d = (struct vmfs_redir_disk *)tb->data;
			slots = le16_to_cpu(d->rd_slots);
			for (unsigned s = 0; s < slots && !r; s++) {
				struct vmfs_redir_slot *sl = redir_slot(fs, tb, s);
				unsigned have = le16_to_cpu(sl->rs_ref), want = t->count[s];

				if (have != want && fsck_problem(c, PR_REDIR_SLOT_COUNT, (unsigned long long)t->unit, s, have,
								 want)) {
					r = fsck_dirty(c, tb);
					if (want)
						sl->rs_ref = cpu_to_le16((uint16_t)want);
					else
						memset(sl, 0, vmfs_redir_slot_size(fs->block_size / VMFS_GRAIN));
				}
				used += le16_to_cpu(sl->rs_ref) != 0;
			}
			if (!r && le16_to_cpu(d->rd_used) != used &&
			    fsck_problem(c, PR_REDIR_USED, (unsigned long long)t->unit, le16_to_cpu(d->rd_used), used)) {
				r = fsck_dirty(c, tb);
				d->rd_used = cpu_to_le16((uint16_t)used);
			}
			meta_put(fs, tb);
		}
	return r;
}

/* Pass 5: reference counts on disk against what was found. */
int fsck_pass5(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t inited = le64_to_cpu(fs->sb.sb_rc_inited), need = inited;
	int r = check_redirects(c);

	for (uint64_t rc = inited; rc < fs->rc_count; rc++)
		for (uint32_t i = 0; c->rcexp[rc] && i < fs->rc_blocks; i++)
			if (c->rcexp[rc][i])
				need = rc + 1;
	if (need > inited && fsck_problem(c, PR_RC_UNINITED,
				     (unsigned long long)inited, (unsigned long long)need - 1)) {
		struct vbuf *sbb;
		r = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
		if (!r) {
			r = fsck_dirty(c, sbb);
			((struct vmfs_sb_disk *)sbb->data)->sb_rc_inited = cpu_to_le64(need);
			fs->sb.sb_rc_inited = cpu_to_le64(need);
			meta_put(fs, sbb);
		}
		inited = need;
	}
	for (uint64_t rc = 0; rc < inited && !r; rc++) {
		uint32_t len = (uint32_t)base_min((uint64_t)fs->rc_blocks, fs->nblocks - rc * fs->rc_blocks), nfree = 0;
		struct vbuf *rb;
		struct vmfs_rc_disk *d;

		fsck_progress(c, 1);
		if (meta_read(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, &rb) ||
		    le64_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_first) != rc * fs->rc_blocks ||
		    le32_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_nblocks) != len) {
			if (!fsck_problem(c, PR_RC_DESC_BAD,
				     (unsigned long long)rc))
				continue;
			r = meta_new(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, rc, &rb);
			if (r)
				break;
			d = (struct vmfs_rc_disk *)rb->data;
			d->rc_first = cpu_to_le64(rc * fs->rc_blocks);
			d->rc_nblocks = cpu_to_le32(len);
			for (uint32_t i = 0; i < len; i++)
				d->rc_ref[i] = cpu_to_le16(c->rcexp[rc] ? c->rcexp[rc][i] : 0);
		}
		d = (struct vmfs_rc_disk *)rb->data;
		for (uint32_t i = 0; i < len && !r; i++) {
			uint16_t have = le16_to_cpu(d->rc_ref[i]), want = c->rcexp[rc] ? c->rcexp[rc][i] : 0;
			uint64_t blk = rc * fs->rc_blocks + i;

			if (have != want) {
				bool fix;
				if (!want)
					fix = fsck_problem(c, PR_BLOCK_LEAKED,
						      (unsigned long long)blk, have);
				else if (!have)
					fix = fsck_problem(c, PR_BLOCK_UNMARKED, (unsigned long long)blk);
				else
					fix = fsck_problem(c, PR_BLOCK_COUNT,
						      (unsigned long long)blk, have, want);
				if (fix) {
					r = fsck_dirty(c, rb);
					d->rc_ref[i] = cpu_to_le16(want);
					have = want;
				}
			}
			nfree += have == 0;
		}
		if (!r && le32_to_cpu(d->rc_nfree) != nfree &&
		    fsck_problem(c, PR_RC_FREE_COUNT, (unsigned long long)rc,
			    le32_to_cpu(d->rc_nfree), nfree)) {
			r = fsck_dirty(c, rb);
			d->rc_nfree = cpu_to_le32(nfree);
		}
		if (!r && !rc_owner_ok(fs, &d->rc_lock) &&
		    fsck_problem(c, PR_RC_OWNER_BAD,
			    (unsigned long long)rc, le32_to_cpu(d->rc_lock.lr_slot1), le32_to_cpu(fs->sb.sb_host_slots))) {
			r = fsck_dirty(c, rb); /* placement only (docs/FORMAT.md): no owner loses nothing */
			memset(&d->rc_lock, 0, sizeof(d->rc_lock));
		}
		meta_put(fs, rb);
		c->r->blocks_used += len - nfree;
	}
	/* pool headers */
	for (size_t h = 0; h < c->hsize && !r; h++) {
		for (struct pool_exp *pe = c->phash[h]; pe && !r; pe = pe->next) {
			uint16_t *s = fsck_rc_slot(c, pe->block);
			struct vmfs_pool_disk *p;
			struct vbuf *pb;
			uint32_t nfree = 0;

			if (!s || *s != VMFS_REF_POOL)
				continue; /* the block went to data: its claim was refused */
			if (meta_read(fs, fs_block_unit(fs, pe->block), VMFS_MAGIC_POOL, &pb) ||
			    le32_to_cpu(((struct vmfs_pool_disk *)pb->data)->pl_units) != fs->upb) {
				if (!fsck_problem(c, PR_POOL_HEADER_BAD,
					     (unsigned long long)pe->block))
					continue;
				r = meta_new(fs, fs_block_unit(fs, pe->block), VMFS_MAGIC_POOL, pe->block, &pb);
				if (r)
					break;
				p = (struct vmfs_pool_disk *)pb->data;
				p->pl_units = cpu_to_le32(fs->upb);
				for (uint32_t u = 0; u < fs->upb; u++)
					p->pl_ref[u] = cpu_to_le16(pe->ref[u]);
			}
			p = (struct vmfs_pool_disk *)pb->data;
			for (uint32_t u = 0; u < fs->upb && !r; u++) {
				uint16_t have = le16_to_cpu(p->pl_ref[u]), want = pe->ref[u];
				if (have != want && fsck_problem(c, PR_SUBBLOCK_COUNT,
							    (unsigned long long)fs_block_unit(fs, pe->block) + u, have, want)) {
					r = fsck_dirty(c, pb);
					p->pl_ref[u] = cpu_to_le16(want);
					have = want;
				}
				nfree += have == 0;
			}
			if (!r && le32_to_cpu(p->pl_nfree) != nfree &&
			    fsck_problem(c, PR_POOL_FREE_COUNT, (unsigned long long)pe->block,
				    le32_to_cpu(p->pl_nfree), nfree)) {
				r = fsck_dirty(c, pb);
				p->pl_nfree = cpu_to_le32(nfree);
			}
			meta_put(fs, pb);
		}
	}
	return r;
}
