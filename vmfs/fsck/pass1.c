/*
 * Pass 1: host records, journals and the superblock copies. Each host's
 * journal is replayed (on disk when repairing, in memory with -n) and its
 * blocks claimed; a record or journal that cannot be trusted is cleared, which
 * frees its space and loses its transactions (J1-J3 of docs/FORMAT.md). The
 * superblock copies are judged after replay, which may rewrite them.
 */
#include "vmfs/fsck/fsck_i.h"

static int check_journals(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	unsigned slots = le32_to_cpu(fs->sb.sb_host_slots);
	int ret = 0;

	for (unsigned s = 0; s < slots && !ret; s++) {
		struct vmfs_hostrec_disk rec;
		uint64_t unit, units;
		int r = hostrec_read(fs, s, &rec);

		if (r == -ENOENT)
			continue;
		if (r) {
			if (fsck_problem(c, PR_HOST_RECORD_BAD, s)) {
				/* without a record the slot's journal is unreferenced: it becomes free space */
				ret = hostrec_clear(fs, s);
			}
			continue;
		}
		unit = le64_to_cpu(rec.hr_journal);
		units = le64_to_cpu(rec.hr_journal_units);
		if (!unit_is_block(fs, unit) || units < 16 || units % fs->upb ||
		    units / fs->upb > fs->rc_blocks || !addr_in_data(fs, unit + units - 1)) {
			if (fsck_problem(c, PR_JOURNAL_EXTENT_BAD, s,
				    (unsigned long long)unit, (unsigned long long)units))
				ret = hostrec_clear(fs, s);
			continue;
		}
		for (uint64_t b = 0; b < units / fs->upb; b++)
			if (fsck_claim_block(c, unit + b * fs->upb, VMFS_REF_JOURNAL))
				fsck_problem(c, PR_JOURNAL_BLOCK_SHARED, s,
					(unsigned long long)fs_unit_block(fs, unit) + b);
		fs->slot = s;
		r = journal_open(fs);
		if (r == -EUCLEAN || r == -EBADMSG) {
			if (fsck_problem(c, PR_JOURNAL_SB_BAD, s))
				r = journal_reset(fs, s, unit, units);
			else
				r = 0;
		} else if (r == 0 && fs->j_replayed && c->o->out) {
			fprintf(c->o->out, "host slot %u: journal replayed%s\n", s, fsck_repairing(c) ? "" : " (in memory)");
		}
		if (r == 0 && fsck_repairing(c))
			r = journal_close(fs);
		ret = r;
		fs->j_unit = 0;
	}
	return ret;
}

/*
 * The two superblock copies, judged after journal replay: a transaction that
 * holds unit 0 rewrites both (in place, or in memory with -n), so a copy torn
 * by a power cut during that transaction's in-place write is no problem.
 */
static int check_superblocks(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	struct vbuf *sbb;
	int r = 0;

	if (fs->j_sb_replayed)
		return 0;
	if (!c->sb_pok) {
		if (fsck_problem(c, PR_SB_PRIMARY_BAD))
			r = meta_overlay_dirty(fs, 0, c->sb_b);
	} else if (!c->sb_bok || memcmp(c->sb_p, c->sb_b, VMFS_UNIT)) {
		if (fsck_problem(c, PR_SB_BACKUP_DIFFERS)) {
			r = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
			if (!r) {
				r = fsck_dirty(c, sbb);
				meta_put(fs, sbb);
			}
		}
	}
	return r;
}


static bool key_problem(void *ctx, int rec, int which, int state)
{
	struct fsck *c = ctx;
	char name[32];

	if (rec < 0)
		snprintf(name, sizeof(name), "the key header");
	else
		snprintf(name, sizeof(name), "keyslot %d", rec);
	if (state == 2)
		return fsck_problem(c, PR_KEYSLOT_LOST, name);
	if (state == 1)
		return fsck_problem(c, PR_KEY_COPY_STALE, which ? "backup" : "primary", name);
	return fsck_problem(c, PR_KEY_COPY_BAD, which ? "backup" : "primary", name);
}

/*
 * The key area of an encrypted datastore (docs/FORMAT.md, "Encryption"):
 * a damaged or older copy of a record is written again from the good one;
 * a slot with no good copy is written empty; a header with no good copy
 * cannot be made again without the key, and is reported.
 */
static int check_keys(struct fsck *c)
{
	int r;

	if (!crypt_enabled(c->fs))
		return 0;
	r = crypt_fsck_area(c->fs, key_problem, c, &c->key_epoch, &c->key_prev_epoch);
	if (r == -EUCLEAN) {
		fsck_problem(c, PR_KEY_HEADER_LOST);
		c->key_epoch = 0;
		r = 0;
	}
	return r;
}

int fsck_pass1(struct fsck *c)
{
	struct vbuf *sbb;
	int r = check_journals(c);

	if (!r)
		r = check_superblocks(c);
	if (!r)
		r = check_keys(c);
	if (!r) { /* the journal may have changed the superblock */
		r = meta_read(c->fs, 0, VMFS_MAGIC_SB, &sbb);
		if (!r) {
			memcpy(&c->fs->sb, sbb->data, sizeof(c->fs->sb));
			meta_put(c->fs, sbb);
		}
	}
	return r;
}
