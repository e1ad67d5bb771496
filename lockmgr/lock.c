/*
 * lk_lock and lk_unlock: this host's lock records, the retry loop with its
 * waits (LK_WAIT, LK_WAIT_DEAD), recovery of dead hosts and the table queries
 * lk_wanted (W3) and lk_held_elsewhere. Keeps R1-R3 of docs/LOCKING.md:
 * recovery runs under the slot's recovery lock, a dead recoverer is replaced,
 * and a table without the dead host's entries is left alone. Calls point one
 * way: lk_lock -> recover_slot -> lock_once -> table.c.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- local (per host) lock records ---- */

static struct local_lock **local_slot(struct lk_host *h, uint64_t res)
{
	struct local_lock **pp = &h->locals[lk_bucket_of(res, LK_LOCAL_HASH)];

	while (*pp && (*pp)->res != res)
		pp = &(*pp)->next;
	return pp;
}

/*
 * One try at res, without recovery (caller checked lk_write_ok): a lock this
 * host holds already decides at once (*local; fresh asks for a lock not held
 * here yet, so then it is busy), else one lm_lock_attempt() in res's bucket,
 * whose success gets a local record. 0 with *ver, -EBUSY with *hold,
 * LK_NEED_RECOVERY with *dead, or -errno. lk_lock() loops over it and
 * recovers; recover_slot() takes its recovery lock with one fresh try, so
 * recovery never recurses into lk_lock().
 */
static int lock_once(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, bool fresh,
		     uint64_t *ver, struct lk_holder *hold, struct owner *dead, bool *local)
{
	unsigned b = lk_bucket_of(res, h->lay.nbuckets);
	struct local_lock **pp, *loc;
	int rc;

	*local = false;
	pthread_mutex_lock(&h->bucket_mu[b]);
	pthread_mutex_lock(&h->mu);
	loc = *local_slot(h, res);
	if (loc) {
		if (fresh || !(loc->mode == mode || loc->mode == LK_EX)) {
			hold->slot = h->slot;
			hold->gen = h->gen;
			hold->mode = loc->mode;
			memcpy(hold->hostname, h->hostname, 64);
			rc = -EBUSY;
		} else {
			loc->refs++;
			*ver = loc->version;
			rc = 0;
		}
		pthread_mutex_unlock(&h->mu);
		pthread_mutex_unlock(&h->bucket_mu[b]);
		*local = true;
		return rc;
	}
	pthread_mutex_unlock(&h->mu);
	rc = lm_lock_attempt(h, b, res, mode, flags, ver, hold, dead);
	if (!rc) {
		loc = calloc(1, sizeof(*loc));
		if (!loc) {
			rc = -ENOMEM;   /* on disk but not in memory: give it back */
			lm_unlock_attempt(h, b, res, false, NULL);
		} else {
			*loc = (struct local_lock){ .res = res, .mode = mode, .version = *ver, .refs = 1 };
			pthread_mutex_lock(&h->mu);
			pp = local_slot(h, res);
			*pp = loc;
			pthread_mutex_unlock(&h->mu);
		}
	}
	pthread_mutex_unlock(&h->bucket_mu[b]);
	return rc;
}

/* ---- recovery (R1-R3) ---- */

/* Drops every entry of (slot, gen) from bucket b, each freed resource getting a new version. */
static int purge_bucket(struct lk_host *h, unsigned b, unsigned slot, uint64_t gen)
{
	bool found = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc;

	t = malloc(sizeof(*t));
	tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		free(t);
		free(tbuf);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->bucket_mu[b]);
	/* R3: a dead host adds no entry, so a table without one of its entries needs no update */
	rc = lm_table_read(h, b, tbuf, t);
	for (unsigned i = 0; !rc && i < t->n; i++)
		found |= t->e[i].mode && t->e[i].slot == slot && t->e[i].gen == gen;
	if (!rc && !found)
		goto out;
	rc = lm_mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	rc = lm_table_read(h, b, tbuf, t);
	if (rc < 0) {
		lm_fence(h);
		goto out;
	}
	found = false;
	for (unsigned i = t->n; i-- > 0;) {
		if (t->e[i].mode && t->e[i].slot == slot && t->e[i].gen == gen) {
			lm_table_del_or_drop(t, i);
			found = true;
		}
	}
	if (found) {
		rc = lm_table_write(h, b, tbuf, t);
		if (rc < 0)
			goto out;
	}
	rc = lm_mutex_release(h, b, lver);
out:
	pthread_mutex_unlock(&h->bucket_mu[b]);
	free(tbuf);
	free(t);
	return rc;
}

/*
 * Recovers dead (slot, gen) under its recovery lock (R1): RECOVERING, the
 * caller's journal replay, every entry of (slot, gen) dropped, FREE with the
 * generation kept. -EBUSY if another host (or thread) is recovering it.
 */
static int recover_slot(struct lk_host *h, unsigned slot, uint64_t gen)
{
	uint64_t res = LK_RES(LK_NS_SLOT, slot), ver = 0;
	struct owner dead = { 0, 0 };
	struct lk_holder hold = { .slot = 0 };
	struct slot_rec rec;
	bool local;
	void *buf;
	int rc, rc2;

	if (!lk_write_ok(h))
		return -ENOLCK;
	rc = lock_once(h, res, LK_EX, 0, true, &ver, &hold, &dead, &local);
	if (rc == LK_NEED_RECOVERY)
		rc = -EBUSY;    /* a fresh try does not recover (R2 drops a dead recoverer anyway) */
	if (rc < 0)
		return rc;
	buf = lm_buf_alloc(h->g.sector_size);
	if (!buf) {
		rc = -ENOMEM;
		goto unlock;
	}
	rc = lm_read_slot(&h->io, &h->g, slot, buf, &rec);
	if (rc < 0 || rec.state == LK_SLOT_FREE || rec.gen != gen)
		goto unlock;    /* recovered by someone else meanwhile (or unreadable) */
	if (rec.state == LK_SLOT_LIVE) {
		/* only reached once lm_holder_state() proved (slot, gen) dead: it stays dead (H6) */
		rec.state = LK_SLOT_RECOVERING;
		rc = lm_write_slot_rec(h, slot, &rec);
		if (rc < 0)
			goto unlock;
	}
	rc = h->recover(h->recover_arg, slot, gen);
	if (rc < 0)
		goto unlock;
	for (unsigned b = 0; b < h->lay.nbuckets && !rc; b++)
		rc = purge_bucket(h, b, slot, gen);
	if (rc < 0)
		goto unlock;
	memset(&rec, 0, sizeof(rec));
	rec.state = LK_SLOT_FREE;
	rec.gen = gen;                  /* H2: the next claim gets gen + 1 */
	rc = lm_write_slot_rec(h, slot, &rec);
	if (!rc)
		lm_host_trace(h, LK_TRACE_RECOVERED, slot, gen);
unlock:
	free(buf);
	rc2 = lk_unlock(h, res, false, NULL);
	return rc < 0 ? rc : rc2;
}

/* ---- lk_lock / lk_unlock ---- */

/*
 * LK_WAIT_DEAD: the busy holder one lk_lock call watches. from_ns is when the
 * call first found it in the way, after the read that judged it completed, so
 * a counter first seen later (obs seen_ns > from_ns) is a renewal made while
 * we watched: the holder lives. Until then it may be a host killed a moment
 * ago, which H6 proves dead after dead_ms.
 */
struct dead_watch {
	unsigned slot;
	uint64_t gen;
	uint64_t from_ns, until_ns;
	bool on;
};

/* True while hold may still be proven dead within the watch: the caller polls again. */
static bool watch_holder(struct lk_host *h, const struct lk_holder *hold, struct dead_watch *w)
{
	uint64_t now = lm_host_now(h);
	const struct slot_obs *o;
	bool renewed;

	if (hold->slot == h->slot && hold->gen == h->gen)
		return false;   /* this host, in another mode: no waiting changes that */
	if (!w->on || w->slot != hold->slot || w->gen != hold->gen) {
		uint64_t span_ms = (uint64_t)h->t.dead_ms + 2ull * h->t.interval_ms + h->t.io_timeout_ms;

		*w = (struct dead_watch){ .slot = hold->slot, .gen = hold->gen, .from_ns = now,
					  .until_ns = now + span_ms * NS_PER_MS, .on = true };
		return true;
	}
	pthread_mutex_lock(&h->mu);
	o = &h->obs[hold->slot];
	renewed = o->valid && o->gen == hold->gen && o->seen_ns > w->from_ns;
	pthread_mutex_unlock(&h->mu);
	return !renewed && now < w->until_ns;
}

int lk_lock(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, uint64_t *version,
	    struct lk_holder *holder)
{
	struct dead_watch watch = { .on = false };
	struct lk_holder hold;
	struct backoff bo;
	int rc;

	if (mode != LK_EX && mode != LK_SH && mode != LK_MW)
		return -EINVAL;
	lm_backoff_init(h, &bo, 500, 50, 150);
	for (;;) {
		struct owner dead = { 0, 0 };
		uint64_t ver = 0;
		bool local;

		if (!lk_write_ok(h))
			return -ENOLCK;
		memset(&hold, 0, sizeof(hold));
		rc = lock_once(h, res, mode, flags, false, &ver, &hold, &dead, &local);
		if (!rc) {
			if (version)
				*version = ver;
			return 0;
		}
		if (local) {
			if (holder)
				*holder = hold;
			return rc;
		}
		if (rc == LK_NEED_RECOVERY) {
			rc = -EBUSY;
			if (h->recover) {
				rc = recover_slot(h, dead.slot, dead.gen);
				if (!rc)
					continue;
			}
		}
		if (rc == -EBUSY && (flags & LK_WAIT)) {
			lm_backoff_sleep(h, &bo);
			continue;
		}
		if (rc == -EBUSY && (flags & LK_WAIT_DEAD) && watch_holder(h, &hold, &watch)) {
			h->io.sleep_ns(h->io.ctx, (uint64_t)h->t.interval_ms * NS_PER_MS / 2);
			continue;       /* the protocol's own poll of the holder's heartbeat (H6) */
		}
		if (rc == -EBUSY && holder)
			*holder = hold;
		return rc;
	}
}

int lk_unlock(struct lk_host *h, uint64_t res, bool bump, uint64_t *version)
{
	unsigned b = lk_bucket_of(res, h->lay.nbuckets);
	struct local_lock *loc;
	bool last = false;
	int rc = 0;

	pthread_mutex_lock(&h->bucket_mu[b]);
	pthread_mutex_lock(&h->mu);
	loc = *local_slot(h, res);
	if (loc && loc->refs > 1) {
		loc->refs--;
		if (version)
			*version = loc->version;
	} else if (loc) {
		last = true;
	}
	pthread_mutex_unlock(&h->mu);
	if (!loc) {
		rc = -ENOENT;
	} else if (last) {
		rc = lk_write_ok(h) ? lm_unlock_attempt(h, b, res, bump, version) : -ENOLCK;
		if (rc == 0 || lk_fenced(h)) {
			pthread_mutex_lock(&h->mu);
			*local_slot(h, res) = loc->next;
			pthread_mutex_unlock(&h->mu);
			free(loc);
		}
	}
	pthread_mutex_unlock(&h->bucket_mu[b]);
	return rc;
}

/*
 * W3: another host's want of res, in a mode that conflicts with ours, whose
 * owner is not provably stale. Reads the table without the mutex (a want is
 * only ever a hint: a holder that lets go early loses nothing).
 */
bool lk_wanted(struct lk_host *h, uint64_t res)
{
	unsigned b = lk_bucket_of(res, h->lay.nbuckets), held = 0;
	struct local_lock *loc;
	bool wanted = false;
	struct table *t;
	void *tbuf;

	if (!lk_write_ok(h))
		return false;
	pthread_mutex_lock(&h->mu);
	loc = *local_slot(h, res);
	if (loc)
		held = loc->mode;
	pthread_mutex_unlock(&h->mu);
	if (!held)
		return false;
	t = malloc(sizeof(*t));
	tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	if (t && tbuf && !lm_table_read(h, b, tbuf, t)) {
		for (unsigned i = 0; i < t->n && !wanted; i++) {
			const struct entry *e = &t->e[i];
			enum holder_state st;

			if (e->res != res || !e->want || (e->slot == h->slot && e->gen == h->gen) ||
			    !lm_modes_conflict(e->mode, held))
				continue;
			wanted = !lm_holder_state(h, e->slot, e->gen, &st, NULL) && st != HS_STALE;
		}
	}
	free(tbuf);
	free(t);
	return wanted;
}

int lk_held_elsewhere(struct lk_host *h, uint64_t res, struct lk_holder *holder)
{
	unsigned b = lk_bucket_of(res, h->lay.nbuckets);
	struct table *t = malloc(sizeof(*t));
	void *tbuf = lm_buf_alloc(2 * LK_TABLE_BYTES);
	int rc = t && tbuf ? 0 : -ENOMEM;

	if (!rc)
		rc = lm_table_read(h, b, tbuf, t);
	for (unsigned i = 0; !rc && i < t->n; i++) {
		const struct entry *e = &t->e[i];
		enum holder_state st;
		char name[64];

		if (e->res != res || e->want || !e->mode || (e->slot == h->slot && e->gen == h->gen))
			continue;
		rc = lm_holder_state(h, e->slot, e->gen, &st, name);
		if (rc || st == HS_STALE)
			continue;
		rc = 1;
		if (holder) {
			*holder = (struct lk_holder){ .slot = e->slot, .gen = e->gen, .mode = e->mode };
			memcpy(holder->hostname, name, sizeof(holder->hostname));
		}
	}
	free(tbuf);
	free(t);
	return rc;
}

/*
 * Observes every other used slot of a copy of the heartbeat region read
 * between t_sub and t_done (H6: starts or goes on watching its counter on this
 * host's clock). With recover, recovers the slots proven dead and returns how
 * many; without (a host still joining, whose own slot is not known yet), only
 * watches.
 */
static int observe_slots(struct lk_host *h, const uint8_t *region, uint64_t t_sub, uint64_t t_done, bool recover)
{
	int rc = 0, done = 0;

	for (unsigned s = 0; !rc && s < h->g.nslots; s++) {
		struct slot_rec rec;
		enum holder_state st;

		if ((recover && s == h->slot) || lm_hb_decode(region + (size_t)s * h->g.slot_size, s, &rec) < 0 ||
		    rec.state == LK_SLOT_FREE)
			continue;
		st = lm_observe(h, s, rec.gen, &rec, t_sub, t_done);
		if (!recover || (st != HS_DEAD && st != HS_RECOVERING))
			continue;
		rc = recover_slot(h, s, rec.gen);
		if (rc == -EBUSY)
			rc = 0;         /* another host or thread is at it */
		else if (!rc)
			done++;
	}
	return rc < 0 ? rc : done;
}

/* Reads the heartbeat region into region (nslots * slot_size bytes) and observes it. */
int lm_read_region(struct lk_host *h, uint8_t *region, bool recover)
{
	uint64_t t_sub = lm_host_now(h), t_done;
	int rc = lm_host_read(h, h->g.hb_off, region, (size_t)h->g.nslots * h->g.slot_size);

	t_done = lm_host_now(h);
	return rc < 0 ? rc : observe_slots(h, region, t_sub, t_done, recover);
}

int lk_recover_dead(struct lk_host *h)
{
	uint8_t *region;
	int rc;

	if (!lk_write_ok(h))
		return -ENOLCK;
	if (!h->recover)
		return -EINVAL;
	region = lm_buf_alloc((size_t)h->g.nslots * h->g.slot_size);
	if (!region)
		return -ENOMEM;
	rc = lm_read_region(h, region, true);
	free(region);
	return rc;
}
