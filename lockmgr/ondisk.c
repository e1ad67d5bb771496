/*
 * lockmgr on disk: the geometry check and the encode and decode of every
 * record (heartbeat slot, leader, dblock sector, lock table, region header),
 * as laid out in lockmgr/lockmgr_format.h and docs/LOCKING.md, On-disk layout.
 * Bytes from disk are untrusted: a decoder returns 0, -EBADMSG (checksum) or
 * -EUCLEAN (malformed), never asserts, and lm_read_slot() re-reads a torn slot
 * a bounded number of times. lm_table_pick() keeps T2 (the valid copy with
 * the higher sequence number is the table).
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

/* ---- geometry ---- */

uint64_t lk_lock_region_size(uint32_t nslots, uint32_t sector_size, uint32_t nbuckets)
{
	struct lk_layout l;

	if (!nslots || nslots > LK_MAX_SLOTS || !lk_sector_size_ok(sector_size) || !nbuckets ||
	    nbuckets > LK_MAX_BUCKETS)
		return 0;
	lk_layout_fill(nslots, sector_size, nbuckets, &l);
	return l.size;
}

int lm_geometry_check(const struct lk_geometry *g, struct lk_layout *l, char *err, size_t errlen)
{
	uint64_t hb_len;

	if (!lk_sector_size_ok(g->sector_size)) {
		base_set_err(err, errlen, 0, "lockmgr: sector size %u (expected 512..4096, a power of two)",
			g->sector_size);
		return -EINVAL;
	}
	if (!g->nslots || g->nslots > LK_MAX_SLOTS) {
		base_set_err(err, errlen, 0, "lockmgr: %u host slots (expected 1..%u)", g->nslots, LK_MAX_SLOTS);
		return -EINVAL;
	}
	if (g->slot_size != base_max(512u, g->sector_size)) {
		base_set_err(err, errlen, 0, "lockmgr: slot size %u (expected %u)", g->slot_size,
			base_max(512u, g->sector_size));
		return -EINVAL;
	}
	if (g->hb_off % 4096 || g->lock_off % 4096) {
		base_set_err(err, errlen, 0, "lockmgr: heartbeat or lock region not 4 KiB aligned");
		return -EINVAL;
	}
	hb_len = (uint64_t)g->nslots * g->slot_size;
	if (g->hb_off < g->lock_off + g->lock_len && g->lock_off < g->hb_off + hb_len) {
		base_set_err(err, errlen, 0, "lockmgr: heartbeat and lock regions overlap");
		return -EINVAL;
	}
	if (lk_layout_compute(g->nslots, g->sector_size, g->lock_len, l) < 0) {
		base_set_err(err, errlen, 0, "lockmgr: lock region of %" PRIu64 " bytes holds no bucket (%" PRIu64
			" needed for one)", g->lock_len,
			lk_lock_region_size(g->nslots, g->sector_size, 1));
		return -EINVAL;
	}
	return 0;
}

/* ---- records ---- */

int lm_hb_decode(const void *buf, unsigned slot, struct slot_rec *r)
{
	const struct lk_hb_disk *d = buf;
	unsigned state;

	memset(r, 0, sizeof(*r));
	if (base_all_zero(buf, sizeof(*d)))
		return 0;
	if (le32_to_cpu(d->hb_magic) != LK_MAGIC_HB)
		return -EUCLEAN;
	if (le32_to_cpu(d->hb_crc) != base_crc32c(0, d, offsetof(struct lk_hb_disk, hb_crc)))
		return -EBADMSG;
	state = le16_to_cpu(d->hb_state);
	if (le16_to_cpu(d->hb_version) != LK_FORMAT_VERSION || le32_to_cpu(d->hb_slot) != slot ||
	    state > LK_SLOT_RECOVERING)
		return -EUCLEAN;
	r->state = (enum lk_slot_state)state;
	r->gen = le64_to_cpu(d->hb_gen);
	memcpy(r->uuid, d->hb_uuid, 16);
	r->counter = le64_to_cpu(d->hb_counter);
	memcpy(r->hostname, d->hb_hostname, 63);
	if (r->state != LK_SLOT_FREE && !r->gen)
		return -EUCLEAN;
	return 0;
}

void lm_hb_encode(void *buf, unsigned slot, const struct slot_rec *r)
{
	struct lk_hb_disk *d = buf;

	memset(d, 0, sizeof(*d));
	d->hb_magic = cpu_to_le32(LK_MAGIC_HB);
	d->hb_version = cpu_to_le16(LK_FORMAT_VERSION);
	d->hb_state = cpu_to_le16((uint16_t)r->state);
	d->hb_slot = cpu_to_le32(slot);
	d->hb_gen = cpu_to_le64(r->gen);
	memcpy(d->hb_uuid, r->uuid, 16);
	d->hb_counter = cpu_to_le64(r->counter);
	memcpy(d->hb_hostname, r->hostname, strnlen(r->hostname, 63));
	d->hb_crc = cpu_to_le32(base_crc32c(0, d, offsetof(struct lk_hb_disk, hb_crc)));
}

int lm_leader_decode(const void *buf, unsigned bucket, unsigned nslots, struct leader *l)
{
	const struct lk_leader_disk *d = buf;

	memset(l, 0, sizeof(*l));
	l->released = true;
	if (base_all_zero(buf, sizeof(*d)))
		return 0;
	if (le32_to_cpu(d->ld_magic) != LK_MAGIC_LEADER)
		return -EUCLEAN;
	if (le32_to_cpu(d->ld_crc) != base_crc32c(0, d, offsetof(struct lk_leader_disk, ld_crc)))
		return -EBADMSG;
	if (le16_to_cpu(d->ld_version) != LK_FORMAT_VERSION || le32_to_cpu(d->ld_bucket) != bucket ||
	    le32_to_cpu(d->ld_owner_slot) >= nslots)
		return -EUCLEAN;
	l->lver = le64_to_cpu(d->ld_lver);
	l->slot = le32_to_cpu(d->ld_owner_slot);
	l->gen = le64_to_cpu(d->ld_owner_gen);
	l->released = le16_to_cpu(d->ld_flags) & LK_LEADER_RELEASED;
	return 0;
}

void lm_leader_encode(void *buf, unsigned bucket, const struct leader *l)
{
	struct lk_leader_disk *d = buf;

	memset(d, 0, sizeof(*d));
	d->ld_magic = cpu_to_le32(LK_MAGIC_LEADER);
	d->ld_version = cpu_to_le16(LK_FORMAT_VERSION);
	d->ld_flags = cpu_to_le16(l->released ? LK_LEADER_RELEASED : 0);
	d->ld_bucket = cpu_to_le32(bucket);
	d->ld_owner_slot = cpu_to_le32(l->slot);
	d->ld_lver = cpu_to_le64(l->lver);
	d->ld_owner_gen = cpu_to_le64(l->gen);
	d->ld_crc = cpu_to_le32(base_crc32c(0, d, offsetof(struct lk_leader_disk, ld_crc)));
}

/* 0 for a well-formed or all-zero dblock sector of (slot, group). */
int lm_dsect_check(const void *buf, uint32_t ss, unsigned slot, unsigned group)
{
	const struct lk_dsect_head *hd = buf;
	le32 crc;

	if (base_all_zero(buf, ss))
		return 0;
	if (le32_to_cpu(hd->ds_magic) != LK_MAGIC_DBLOCK)
		return -EUCLEAN;
	memcpy(&crc, (const uint8_t *)buf + ss - 4, 4);
	if (le32_to_cpu(crc) != base_crc32c(0, buf, ss - 4))
		return -EBADMSG;
	if (le16_to_cpu(hd->ds_version) != LK_FORMAT_VERSION || le32_to_cpu(hd->ds_slot) != slot ||
	    le32_to_cpu(hd->ds_group) != group || le16_to_cpu(hd->ds_count) != LK_DBLOCKS_PER_SECTOR(ss))
		return -EUCLEAN;
	return 0;
}

void lm_dsect_get(const void *buf, unsigned idx, struct dblock *d)
{
	struct lk_dblock_disk dd;

	memcpy(&dd, (const uint8_t *)buf + sizeof(struct lk_dsect_head) + idx * sizeof(dd), sizeof(dd));
	d->mbal = le64_to_cpu(dd.db_mbal);
	d->bal = le64_to_cpu(dd.db_bal);
	d->lver = le64_to_cpu(dd.db_lver);
	d->inp_gen = le64_to_cpu(dd.db_inp_gen);
	d->inp_slot = le32_to_cpu(dd.db_inp_slot);
	d->has_inp = le32_to_cpu(dd.db_flags) & LK_DBLOCK_INP;
}

void lm_dsect_put(void *buf, uint32_t ss, unsigned slot, uint64_t gen, unsigned group, unsigned idx,
		  const struct dblock *d)
{
	struct lk_dsect_head hd = {
		.ds_magic = cpu_to_le32(LK_MAGIC_DBLOCK),
		.ds_version = cpu_to_le16(LK_FORMAT_VERSION),
		.ds_count = cpu_to_le16((uint16_t)LK_DBLOCKS_PER_SECTOR(ss)),
		.ds_slot = cpu_to_le32(slot),
		.ds_group = cpu_to_le32(group),
		.ds_gen = cpu_to_le64(gen),
	};
	struct lk_dblock_disk dd = {
		.db_mbal = cpu_to_le64(d->mbal),
		.db_bal = cpu_to_le64(d->bal),
		.db_lver = cpu_to_le64(d->lver),
		.db_inp_gen = cpu_to_le64(d->inp_gen),
		.db_inp_slot = cpu_to_le32(d->inp_slot),
		.db_flags = cpu_to_le32(d->has_inp ? LK_DBLOCK_INP : 0),
	};
	le32 crc;

	memcpy(buf, &hd, sizeof(hd));
	memcpy((uint8_t *)buf + sizeof(hd) + idx * sizeof(dd), &dd, sizeof(dd));
	crc = cpu_to_le32(base_crc32c(0, buf, ss - 4));
	memcpy((uint8_t *)buf + ss - 4, &crc, 4);
}

/* 0 valid, 1 all zero, -EBADMSG torn or flipped, -EUCLEAN malformed. */
int lm_table_decode(const void *buf, unsigned bucket, unsigned copy, unsigned nslots, struct table *t)
{
	const struct lk_table_disk *d = buf;

	if (base_all_zero(buf, sizeof(*d)))
		return 1;
	if (le32_to_cpu(d->tb_magic) != LK_MAGIC_TABLE)
		return -EUCLEAN;
	if (le32_to_cpu(d->tb_crc) != base_crc32c(0, d, offsetof(struct lk_table_disk, tb_crc)))
		return -EBADMSG;
	if (le16_to_cpu(d->tb_version) != LK_FORMAT_VERSION || le32_to_cpu(d->tb_bucket) != bucket ||
	    le32_to_cpu(d->tb_copy) != copy || le16_to_cpu(d->tb_nentries) > LK_TABLE_ENTRIES)
		return -EUCLEAN;
	t->seq = le64_to_cpu(d->tb_seq);
	t->next_version = le64_to_cpu(d->tb_next_version);
	t->copy = (int)copy;
	t->n = le16_to_cpu(d->tb_nentries);
	for (unsigned i = 0; i < t->n; i++) {
		const struct lk_entry_disk *e = &d->tb_entries[i];

		t->e[i].res = le64_to_cpu(e->te_res);
		t->e[i].version = le64_to_cpu(e->te_version);
		t->e[i].gen = le64_to_cpu(e->te_owner_gen);
		t->e[i].slot = le32_to_cpu(e->te_owner_slot);
		t->e[i].mode = e->te_mode;
		t->e[i].want = e->te_flags & LK_ENTRY_WANT;
		if (t->e[i].mode > LK_MW || t->e[i].slot >= nslots || !t->e[i].version ||
		    t->e[i].version >= t->next_version || (e->te_flags & ~LK_ENTRY_WANT) ||
		    (t->e[i].want && !t->e[i].mode))
			return -EUCLEAN;
	}
	return 0;
}

/*
 * T2: of the two copies, the valid one with the higher sequence number is the
 * table; an all-zero copy is the empty table of sequence 0. -EBADMSG when
 * neither copy is usable.
 */
int lm_table_pick(const void *buf, unsigned bucket, unsigned nslots, struct table *t)
{
	struct table c[2];
	int rc[2], best = -1;

	for (unsigned i = 0; i < 2; i++) {
		memset(&c[i], 0, offsetof(struct table, e));
		rc[i] = lm_table_decode((const uint8_t *)buf + i * LK_TABLE_BYTES, bucket, i, nslots, &c[i]);
		if (rc[i] == 1) {
			c[i].seq = 0;
			c[i].next_version = 1;
			c[i].n = 0;
			c[i].copy = (int)i;
			rc[i] = 0;
		}
		if (rc[i] == -EUCLEAN)
			return -EUCLEAN;
		if (!rc[i] && (best < 0 || c[i].seq > c[best].seq))
			best = (int)i;
	}
	if (best < 0)
		return -EBADMSG;
	memcpy(t, &c[best], offsetof(struct table, e) + c[best].n * sizeof(struct entry));
	return 0;
}

void lm_table_encode(void *buf, unsigned bucket, unsigned copy, const struct table *t, unsigned slot,
		     uint64_t gen)
{
	struct lk_table_disk *d = buf;

	memset(d, 0, sizeof(*d));
	d->tb_magic = cpu_to_le32(LK_MAGIC_TABLE);
	d->tb_version = cpu_to_le16(LK_FORMAT_VERSION);
	d->tb_nentries = cpu_to_le16((uint16_t)t->n);
	d->tb_bucket = cpu_to_le32(bucket);
	d->tb_copy = cpu_to_le32(copy);
	d->tb_seq = cpu_to_le64(t->seq);
	d->tb_next_version = cpu_to_le64(t->next_version);
	d->tb_writer_slot = cpu_to_le32(slot);
	d->tb_writer_gen = cpu_to_le64(gen);
	for (unsigned i = 0; i < t->n; i++) {
		struct lk_entry_disk *e = &d->tb_entries[i];

		e->te_res = cpu_to_le64(t->e[i].res);
		e->te_version = cpu_to_le64(t->e[i].version);
		e->te_owner_gen = cpu_to_le64(t->e[i].gen);
		e->te_owner_slot = cpu_to_le32(t->e[i].slot);
		e->te_mode = (uint8_t)t->e[i].mode;
		e->te_flags = t->e[i].want ? LK_ENTRY_WANT : 0;
	}
	d->tb_crc = cpu_to_le32(base_crc32c(0, d, offsetof(struct lk_table_disk, tb_crc)));
}

int lm_region_decode(const void *buf, const struct lk_geometry *g, const struct lk_layout *l,
		     char *err, size_t errlen)
{
	const struct lk_region_disk *d = buf;

	if (base_all_zero(buf, sizeof(*d))) {
		base_set_err(err, errlen, 0, "lockmgr: lock region at %" PRIu64 " is not formatted", g->lock_off);
		return -EINVAL;
	}
	if (le32_to_cpu(d->rg_magic) != LK_MAGIC_REGION) {
		base_set_err(err, errlen, 0, "lockmgr: lock region at %" PRIu64 ": bad magic 0x%08x", g->lock_off,
			le32_to_cpu(d->rg_magic));
		return -EUCLEAN;
	}
	if (le32_to_cpu(d->rg_crc) != base_crc32c(0, d, offsetof(struct lk_region_disk, rg_crc))) {
		base_set_err(err, errlen, 0, "lockmgr: lock region header: bad checksum");
		return -EBADMSG;
	}
	if (le16_to_cpu(d->rg_version) != LK_FORMAT_VERSION || le32_to_cpu(d->rg_sector_size) != g->sector_size ||
	    le32_to_cpu(d->rg_nslots) != g->nslots || le32_to_cpu(d->rg_nbuckets) != l->nbuckets ||
	    le32_to_cpu(d->rg_table_bytes) != LK_TABLE_BYTES || le64_to_cpu(d->rg_lock_len) != g->lock_len) {
		base_set_err(err, errlen, 0,
			"lockmgr: lock region header says version %u, sector %u, %u slots, %u buckets, "
			"length %" PRIu64 " (expected %u, %u, %u, %u, %" PRIu64 ")",
			le16_to_cpu(d->rg_version), le32_to_cpu(d->rg_sector_size), le32_to_cpu(d->rg_nslots),
			le32_to_cpu(d->rg_nbuckets), le64_to_cpu(d->rg_lock_len), LK_FORMAT_VERSION,
			g->sector_size, g->nslots, l->nbuckets, g->lock_len);
		return -EUCLEAN;
	}
	return 0;
}

/* Reads one heartbeat slot, re-reading a bounded number of times on a bad checksum. */
int lm_read_slot(const struct lk_io *io, const struct lk_geometry *g, unsigned slot, void *buf,
		 struct slot_rec *r)
{
	for (int tries = 0;; tries++) {
		int rc = io->read(io->ctx, g->hb_off + (uint64_t)slot * g->slot_size, buf, g->sector_size);

		if (rc < 0)
			return rc;
		rc = lm_hb_decode(buf, slot, r);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc;
	}
}
