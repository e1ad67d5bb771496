/*
 * The lock table of a bucket: read, judge, change and write it under the
 * bucket mutex, one attempt at a time (lm_lock_attempt, lm_unlock_attempt).
 * Keeps T1-T5 of docs/LOCKING.md (one entry per host and resource, double
 * buffering, write only under the mutex and release only after, versions
 * never repeat, bump) and W1-W2 (wants); dead holders are found by H6 and
 * handed up as LK_NEED_RECOVERY.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int lm_table_read(struct lk_host *h, unsigned b, void *buf, struct table *t)
{
	for (int tries = 0;; tries++) {
		int rc = lm_host_read(h, h->g.lock_off + lk_layout_table(&h->lay, b), buf, 2 * LK_TABLE_BYTES);

		if (rc < 0)
			return rc;
		rc = lm_table_pick(buf, b, h->g.nslots, t);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc == -EBADMSG ? -EUCLEAN : rc;
	}
}

/* T2: writes the copy that does not hold the table we read, with seq + 1. Holder of the mutex only. */
int lm_table_write(struct lk_host *h, unsigned b, void *buf, struct table *t)
{
	unsigned copy = t->copy == 0 ? 1 : 0;
	int rc;

	t->seq++;
	lm_table_encode(buf, b, copy, t, h->slot, h->gen);
	rc = lm_host_write(h, h->g.lock_off + lk_layout_table(&h->lay, b) + copy * LK_TABLE_BYTES, buf,
			   LK_TABLE_BYTES);
	if (rc < 0) {
		lm_fence(h);
		return rc;
	}
	t->copy = (int)copy;
	return 0;
}

static void table_del(struct table *t, unsigned i)
{
	t->e[i] = t->e[--t->n];
}

static bool table_has_holders(const struct table *t, uint64_t res)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].res == res && t->e[i].mode && !t->e[i].want)
			return true;
	return false;
}

static bool table_has_own_want(const struct lk_host *h, const struct table *t, uint64_t res)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].res == res && t->e[i].want && t->e[i].slot == h->slot && t->e[i].gen == h->gen)
			return true;
	return false;
}

static uint64_t table_version(const struct table *t, uint64_t res)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].res == res)
			return t->e[i].version;
	return 0;
}

/* Removes entry i; if it held the last lock of its resource, a version record stays (T4). */
static void table_drop(struct table *t, unsigned i, bool new_version)
{
	struct entry e = t->e[i];

	table_del(t, i);
	if (table_has_holders(t, e.res) || table_version(t, e.res))
		return;
	e.mode = 0;
	e.want = false;
	e.slot = 0;
	e.gen = 0;
	if (new_version)
		e.version = t->next_version++;
	t->e[t->n++] = e;
}

/* A stale entry goes: a want leaves no trace, a lock leaves its resource a new version. */
void lm_table_del_or_drop(struct table *t, unsigned i)
{
	if (t->e[i].want)
		table_del(t, i);
	else
		table_drop(t, i, true);
}

bool lm_modes_conflict(unsigned a, unsigned b)
{
	if (!a || !b)
		return false;
	if (a == LK_EX || b == LK_EX)
		return true;
	return a != b;  /* SH against MW */
}

static bool is_slot_res(uint64_t res)
{
	return res >> 56 == LK_NS_SLOT;
}

/*
 * Judges the holders of res against mode: 0 (free to take), -EBUSY (a live
 * holder, in *holder), LK_NEED_RECOVERY (a dead unrecovered holder, in *dead)
 * or an I/O error. Entries of stale owners are dropped on the way (*changed).
 * A dead holder of a slot's recovery lock is stale too (R2).
 */
static int table_judge(struct lk_host *h, struct table *t, uint64_t res, unsigned mode, bool *changed,
		       struct lk_holder *holder, struct owner *dead)
{
	bool waiting = table_has_own_want(h, t, res);

	for (unsigned i = t->n; i-- > 0;) {
		struct entry e = t->e[i];
		enum holder_state st;
		char name[64];
		int rc;

		if (e.res != res || !e.mode || (e.slot == h->slot && e.gen == h->gen))
			continue;
		if (!lm_modes_conflict(e.mode, mode))
			continue;
		if (e.want && waiting)
			continue;       /* W2: waiters race among themselves */
		rc = lm_holder_state(h, e.slot, e.gen, &st, name);
		if (rc < 0)
			return rc;
		if (st == HS_STALE || (st != HS_ALIVE && (is_slot_res(res) || e.want))) {
			lm_table_del_or_drop(t, i);
			*changed = true;
			continue;
		}
		if (holder) {
			holder->slot = e.slot;
			holder->gen = e.gen;
			holder->mode = (enum lk_mode)e.mode;
			memcpy(holder->hostname, name, 64);
		}
		if (st == HS_ALIVE)
			return -EBUSY;
		dead->slot = e.slot;
		dead->gen = e.gen;
		return LK_NEED_RECOVERY;
	}
	return 0;
}

/* Room for one entry: drops version records first, then entries of stale owners. */
static int table_make_room(struct lk_host *h, struct table *t, bool *changed)
{
	unsigned victim = t->n;

	for (unsigned i = 0; i < t->n; i++)
		if (!t->e[i].mode && (victim == t->n || t->e[i].version < t->e[victim].version))
			victim = i;
	if (victim < t->n) {
		table_del(t, victim);   /* T4: a recreated record gets a fresh version */
		*changed = true;
		return 0;
	}
	for (unsigned i = t->n; i-- > 0;) {
		enum holder_state st;
		int rc;

		if (t->e[i].slot == h->slot && t->e[i].gen == h->gen)
			continue;
		rc = lm_holder_state(h, t->e[i].slot, t->e[i].gen, &st, NULL);
		if (rc < 0)
			return rc;
		if (st == HS_STALE) {
			table_del(t, i);
			*changed = true;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Adds our entry for res (T1: one entry per host and resource; T4: versions from the counter). */
static int table_add(struct lk_host *h, struct table *t, uint64_t res, unsigned mode, uint64_t *version,
		     bool *changed)
{
	uint64_t ver = table_version(t, res);
	int rc;

	for (unsigned i = 0; i < t->n; i++) {
		if (t->e[i].res != res)
			continue;
		if (!t->e[i].mode || (t->e[i].slot == h->slot && t->e[i].gen == h->gen)) {
			t->e[i].mode = mode;    /* the version record (or our want, or a forgotten entry of ours) becomes ours */
			t->e[i].want = false;
			t->e[i].slot = h->slot;
			t->e[i].gen = h->gen;
			*version = t->e[i].version;
			*changed = true;
			return 0;
		}
	}
	if (t->n == LK_TABLE_ENTRIES) {
		rc = table_make_room(h, t, changed);
		if (rc < 0)
			return rc;
	}
	if (!ver)
		ver = t->next_version++;
	t->e[t->n++] = (struct entry){ .res = res, .version = ver, .gen = h->gen, .slot = h->slot, .mode = mode };
	*version = ver;
	*changed = true;
	return 0;
}

/*
 * One attempt to take res in bucket b (caller holds h->bucket_mu[b]): first a
 * look at the table without the mutex (a busy verdict from a stale copy only
 * makes us wait), then mutex, read, judge, add, write, release.
 */
/* W1: a host that waits (LK_WAIT) and finds res busy records its want, once. */
static void table_add_want(struct lk_host *h, struct table *t, uint64_t res, unsigned mode, bool *changed)
{
	uint64_t ver = table_version(t, res);

	if (table_has_own_want(h, t, res) || t->n == LK_TABLE_ENTRIES)
		return;         /* a full table: wait without it (a holder just lets go later) */
	if (!ver)
		ver = t->next_version++;
	t->e[t->n++] = (struct entry){ .res = res, .version = ver, .gen = h->gen, .slot = h->slot, .mode = mode,
				       .want = true };
	*changed = true;
}

int lm_lock_attempt(struct lk_host *h, unsigned b, uint64_t res, unsigned mode, unsigned flags,
		    uint64_t *version, struct lk_holder *holder, struct owner *dead)
{
	bool changed = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc, rel;

	t = malloc(sizeof(*t));
	tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lm_table_read(h, b, tbuf, t);
	if (rc == -EIO || rc == -ENOMEM)
		goto out;
	if (!rc) {
		rc = table_judge(h, t, res, mode, &changed, holder, dead);
		/* busy: wait without the mutex, unless our want is still to be recorded */
		if (rc && !(rc == -EBUSY && (flags & LK_WAIT) && !table_has_own_want(h, t, res)))
			goto out;
	}
	rc = lm_mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	changed = false;
	rc = lm_table_read(h, b, tbuf, t);
	if (!rc) {
		rc = table_judge(h, t, res, mode, &changed, holder, dead);
		if (rc == -EBUSY && (flags & LK_WAIT))
			table_add_want(h, t, res, mode, &changed);
		if (!rc)
			rc = table_add(h, t, res, mode, version, &changed);
		if (changed && (rc == 0 || rc == -EBUSY || rc == LK_NEED_RECOVERY || rc == -ENOSPC)) {
			rel = lm_table_write(h, b, tbuf, t);       /* fences itself on failure */
			if (rel < 0)
				rc = rel;
		}
	}
	if (lk_write_ok(h)) {
		rel = lm_mutex_release(h, b, lver);        /* T3: only after the table write completed */
		if (rel < 0)
			rc = rel;
	}
	if (lk_fenced(h) && (rc >= 0 || rc == -EBUSY))
		rc = -ENOLCK;
out:
	free(tbuf);
	free(t);
	return rc;
}

/* Removes our entry of res (caller holds h->bucket_mu[b]). */
int lm_unlock_attempt(struct lk_host *h, unsigned b, uint64_t res, bool bump, uint64_t *version)
{
	bool changed = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc;

	t = malloc(sizeof(*t));
	tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lm_mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	rc = lm_table_read(h, b, tbuf, t);
	if (rc < 0) {
		lm_fence(h);
		goto out;
	}
	for (unsigned i = t->n; i-- > 0;) {
		if (t->e[i].res == res && t->e[i].mode && t->e[i].slot == h->slot && t->e[i].gen == h->gen) {
			table_drop(t, i, false);
			changed = true;
		}
	}
	if (bump) {                     /* T5: caches tagged with the old version re-read */
		uint64_t ver = t->next_version++;

		for (unsigned i = 0; i < t->n; i++)
			if (t->e[i].res == res)
				t->e[i].version = ver;
		changed = true;
	}
	if (version)
		*version = table_version(t, res);
	if (changed) {
		rc = lm_table_write(h, b, tbuf, t);
		if (rc < 0)
			goto out;
	}
	rc = lm_mutex_release(h, b, lver);
out:
	free(tbuf);
	free(t);
	return rc;
}
