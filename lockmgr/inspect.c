/*
 * lockmgr without joining: format a lock region, read the slots and locks,
 * watch the slots for renewals, and check a region for damage (lk_check, used
 * by fsck). It writes only in lk_format and lk_format_header, for a LUN no
 * host has joined; everything read is decoded by ondisk.c, untrusted.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int format(const struct lk_io *io, const struct lk_geometry *g, bool zeroed)
{
	const size_t chunk = 1 << 20;
	struct lk_region_disk *rg;
	struct lk_layout lay;
	uint8_t *zero;
	int rc;

	rc = lm_geometry_check(g, &lay, NULL, 0);
	if (rc < 0)
		return rc;
	zero = lm_buf_alloc(chunk);
	if (!zero)
		return -ENOMEM;
	for (uint64_t off = 0; !zeroed && off < (uint64_t)g->nslots * g->slot_size && !rc; off += chunk)
		rc = io->write(io->ctx, g->hb_off + off, zero,
			       base_min(chunk, (uint64_t)g->nslots * g->slot_size - off));
	for (uint64_t off = 0; !zeroed && off < g->lock_len && !rc; off += chunk)
		rc = io->write(io->ctx, g->lock_off + off, zero, base_min(chunk, g->lock_len - off));
	if (!rc) {
		rg = (struct lk_region_disk *)zero;
		memset(zero, 0, g->sector_size);
		rg->rg_magic = cpu_to_le32(LK_MAGIC_REGION);
		rg->rg_version = cpu_to_le16(LK_FORMAT_VERSION);
		rg->rg_sector_size = cpu_to_le32(g->sector_size);
		rg->rg_nslots = cpu_to_le32(g->nslots);
		rg->rg_nbuckets = cpu_to_le32(lay.nbuckets);
		rg->rg_table_bytes = cpu_to_le32(LK_TABLE_BYTES);
		rg->rg_lock_len = cpu_to_le64(g->lock_len);
		rg->rg_crc = cpu_to_le32(base_crc32c(0, rg, offsetof(struct lk_region_disk, rg_crc)));
		rc = io->write(io->ctx, g->lock_off, zero, g->sector_size);
	}
	free(zero);
	return rc;
}

int lk_format(const struct lk_io *io, const struct lk_geometry *g)
{
	return format(io, g, false);
}

int lk_format_header(const struct lk_io *io, const struct lk_geometry *g)
{
	return format(io, g, true);
}

/* Reads the whole heartbeat region; each slot decoded with bounded re-reads. */
static int read_region_slots(const struct lk_io *io, const struct lk_geometry *g, struct slot_rec *recs,
			     int *errs)
{
	size_t rlen = (size_t)g->nslots * g->slot_size;
	uint8_t *region = lm_buf_alloc(rlen), *sbuf = lm_buf_alloc(g->sector_size);
	int rc = -ENOMEM;

	if (!region || !sbuf)
		goto out;
	rc = io->read(io->ctx, g->hb_off, region, rlen);
	if (rc < 0)
		goto out;
	for (unsigned s = 0; s < g->nslots; s++) {
		errs[s] = lm_hb_decode(region + (size_t)s * g->slot_size, s, &recs[s]);
		if (errs[s] == -EBADMSG) {
			rc = lm_read_slot(io, g, s, sbuf, &recs[s]);
			if (rc == -EIO)
				goto out;
			errs[s] = rc;
			rc = 0;
		}
	}
out:
	free(region);
	free(sbuf);
	return rc;
}

static void slot_info_fill(struct lk_slot_info *si, unsigned s, const struct slot_rec *r)
{
	memset(si, 0, sizeof(*si));
	si->slot = s;
	si->state = r->state;
	si->gen = r->gen;
	memcpy(si->uuid, r->uuid, 16);
	memcpy(si->hostname, r->hostname, 64);
	si->counter = r->counter;
}

int lk_read_slots(const struct lk_io *io, const struct lk_geometry *g, struct lk_slot_info **out, size_t *n)
{
	struct lk_layout lay;
	struct slot_rec *recs;
	int *errs, rc;

	*out = NULL;
	*n = 0;
	rc = lm_geometry_check(g, &lay, NULL, 0);
	if (rc < 0)
		return rc;
	recs = calloc(g->nslots, sizeof(*recs));
	errs = calloc(g->nslots, sizeof(*errs));
	*out = calloc(g->nslots, sizeof(**out));
	if (!recs || !errs || !*out) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_region_slots(io, g, recs, errs);
	for (unsigned s = 0; !rc && s < g->nslots; s++)
		if (!errs[s] && (recs[s].state != LK_SLOT_FREE || recs[s].gen))
			slot_info_fill(&(*out)[(*n)++], s, &recs[s]);
out:
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	free(recs);
	free(errs);
	return rc;
}

static uint64_t real_now(const struct lk_io *io)
{
	return io->now_ns ? io->now_ns(io->ctx) : base_mono_ns();
}

int lk_watch_slots(const struct lk_io *io, const struct lk_geometry *g, uint32_t watch_ms,
		   struct lk_slot_info **out, size_t *n)
{
	struct slot_rec *first = NULL, *cur = NULL;
	uint64_t *changed_at = NULL, start, now;
	int *errs = NULL, rc;

	rc = lk_read_slots(io, g, out, n);
	if (rc < 0)
		return rc;
	first = calloc(g->nslots, sizeof(*first));
	cur = calloc(g->nslots, sizeof(*cur));
	errs = calloc(g->nslots, sizeof(*errs));
	changed_at = calloc(g->nslots, sizeof(*changed_at));
	if (!first || !cur || !errs || !changed_at) {
		rc = -ENOMEM;
		goto out;
	}
	start = real_now(io);
	rc = read_region_slots(io, g, first, errs);
	now = start;
	while (!rc && now - start < (uint64_t)watch_ms * NS_PER_MS) {
		uint64_t step = base_min((uint64_t)watch_ms * NS_PER_MS / 10 + 1, 100 * NS_PER_MS);

		if (io->sleep_ns)
			io->sleep_ns(io->ctx, step);
		else
			usleep((useconds_t)(step / 1000));
		rc = read_region_slots(io, g, cur, errs);
		now = real_now(io);
		for (unsigned s = 0; !rc && s < g->nslots; s++) {
			if (!errs[s] && (cur[s].counter != first[s].counter || cur[s].gen != first[s].gen)) {
				first[s] = cur[s];
				changed_at[s] = now;
			}
		}
	}
	for (size_t i = 0; !rc && i < *n; i++) {
		struct lk_slot_info *si = &(*out)[i];
		unsigned s = si->slot;

		si->alive = changed_at[s] != 0 && first[s].state == LK_SLOT_LIVE;
		si->age_s = (double)(now - (changed_at[s] ? changed_at[s] : start)) / 1e9;
		si->counter = first[s].counter;
	}
out:
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	free(first);
	free(cur);
	free(errs);
	free(changed_at);
	return rc;
}

int lk_read_locks(const struct lk_io *io, const struct lk_geometry *g,
		  int (*fn)(void *arg, uint64_t res, const struct lk_holder *holder, uint64_t version), void *arg)
{
	struct slot_rec *recs = NULL;
	struct table *t = NULL;
	struct lk_layout lay;
	int *errs = NULL, rc;
	void *tbuf = NULL;

	rc = lm_geometry_check(g, &lay, NULL, 0);
	if (rc < 0)
		return rc;
	recs = calloc(g->nslots, sizeof(*recs));
	errs = calloc(g->nslots, sizeof(*errs));
	t = malloc(sizeof(*t));
	tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	if (!recs || !errs || !t || !tbuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_region_slots(io, g, recs, errs);
	for (unsigned b = 0; !rc && b < lay.nbuckets; b++) {
		for (int tries = 0;; tries++) {
			rc = io->read(io->ctx, g->lock_off + lk_layout_table(&lay, b), tbuf, 2 * LK_TABLE_BYTES);
			if (rc < 0)
				goto out;
			rc = lm_table_pick(tbuf, b, g->nslots, t);
			if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
				break;
		}
		if (rc < 0)
			goto out;
		for (unsigned i = 0; i < t->n; i++) {
			struct lk_holder hold = { 0 };

			if (!t->e[i].mode || t->e[i].want) /* version records and waiters hold nothing */
				continue;
			hold.slot = t->e[i].slot;
			hold.gen = t->e[i].gen;
			hold.mode = (enum lk_mode)t->e[i].mode;
			if (!errs[hold.slot] && recs[hold.slot].gen == hold.gen)
				memcpy(hold.hostname, recs[hold.slot].hostname, 64);
			rc = fn(arg, t->e[i].res, &hold, t->e[i].version);
			if (rc)
				goto out;	/* fn's value is the call's */
		}
	}
out:
	free(recs);
	free(errs);
	free(t);
	free(tbuf);
	return rc;
}

static void problem(void (*fn)(void *, const char *), void *arg, int *count, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void problem(void (*fn)(void *, const char *), void *arg, int *count, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	(*count)++;
	if (fn)
		fn(arg, line);
}

static const char *decode_err(int rc)
{
	return rc == -EBADMSG ? "bad checksum" : "malformed";
}

int lk_check(const struct lk_io *io, const struct lk_geometry *g, void (*fn)(void *arg, const char *problem),
	     void *arg)
{
	uint32_t ss = g->sector_size;
	struct slot_rec *recs = NULL;
	struct table *t = NULL;
	struct lk_layout lay;
	int *errs = NULL, rc, bad = 0;
	uint8_t *buf = NULL;
	char err[256];

	rc = lm_geometry_check(g, &lay, err, sizeof(err));
	if (rc < 0) {
		problem(fn, arg, &bad, "%s", err);
		return -EUCLEAN;
	}
	recs = calloc(g->nslots, sizeof(*recs));
	errs = calloc(g->nslots, sizeof(*errs));
	t = malloc(sizeof(*t));
	buf = lm_buf_alloc(base_max((size_t)g->nslots * ss, 2 * LK_TABLE_BYTES));
	if (!recs || !errs || !t || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_region_slots(io, g, recs, errs);
	if (rc < 0)
		goto out;
	for (unsigned s = 0; s < g->nslots; s++)
		if (errs[s])
			problem(fn, arg, &bad, "lockmgr: heartbeat slot %u: %s", s, decode_err(errs[s]));
	rc = io->read(io->ctx, g->lock_off, buf, ss);
	if (rc < 0)
		goto out;
	if (lm_region_decode(buf, g, &lay, err, sizeof(err)) < 0)
		problem(fn, arg, &bad, "%s", err);
	for (unsigned b = 0; b < lay.nbuckets; b++) {
		struct leader l;
		int r0, r1;

		rc = io->read(io->ctx, g->lock_off + lk_layout_leader(&lay, b), buf, ss);
		if (rc < 0)
			goto out;
		r0 = lm_leader_decode(buf, b, g->nslots, &l);
		if (r0 < 0)
			problem(fn, arg, &bad, "lockmgr: bucket %u: leader: %s", b, decode_err(r0));
		rc = io->read(io->ctx, g->lock_off + lk_layout_table(&lay, b), buf, 2 * LK_TABLE_BYTES);
		if (rc < 0)
			goto out;
		/* one torn copy is an unfinished update (T2); both unusable, or a malformed one, is damage */
		r0 = lm_table_decode(buf, b, 0, g->nslots, t);
		r1 = lm_table_decode(buf + LK_TABLE_BYTES, b, 1, g->nslots, t);
		if (r0 == -EUCLEAN || r1 == -EUCLEAN || (r0 < 0 && r1 < 0))
			problem(fn, arg, &bad, "lockmgr: bucket %u: table copies %s, %s", b,
				r0 < 0 ? decode_err(r0) : "ok", r1 < 0 ? decode_err(r1) : "ok");
		if (lm_table_pick(buf, b, g->nslots, t) == 0) {
			for (unsigned i = 0; i < t->n; i++) {
				if (lk_bucket_of(t->e[i].res, lay.nbuckets) != b)
					problem(fn, arg, &bad, "lockmgr: bucket %u: entry %u: resource 0x%016" PRIx64
						" belongs in bucket %u", b, i, t->e[i].res,
						lk_bucket_of(t->e[i].res, lay.nbuckets));
				for (unsigned j = 0; j < i; j++)
					if (t->e[j].res == t->e[i].res &&
					    (t->e[j].version != t->e[i].version ||
					     (t->e[j].slot == t->e[i].slot && t->e[j].gen == t->e[i].gen)))
						problem(fn, arg, &bad, "lockmgr: bucket %u: entries %u and %u of "
							"resource 0x%016" PRIx64 " disagree", b, j, i, t->e[i].res);
			}
		}
	}
	for (unsigned k = 0; k < lay.ngroups; k++) {
		rc = io->read(io->ctx, g->lock_off + lk_layout_group(&lay, k), buf, (size_t)g->nslots * ss);
		if (rc < 0)
			goto out;
		for (unsigned s = 0; s < g->nslots; s++) {
			int r = lm_dsect_check(buf + (size_t)s * ss, ss, s, k);

			if (r < 0)
				problem(fn, arg, &bad, "lockmgr: dblocks of slot %u, group %u: %s", s, k,
					decode_err(r));
		}
	}
	rc = bad ? -EUCLEAN : 0;
out:
	free(recs);
	free(errs);
	free(t);
	free(buf);
	return rc;
}
