/*
 * Liveness of other hosts (H6 in docs/LOCKING.md): judges (slot, gen) alive,
 * dead, stale or recovering from what this host saw of its heartbeat counter,
 * timed on this host's own clock. Death is proven only by a read submitted at
 * least dead_ms after the counter was first seen; a record that cannot be read
 * or decoded counts as alive, since only proof of death frees a lock.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * Judges (slot, gen) from its record, read by an I/O submitted at t_sub and
 * completed at t_done (this host's clock), and remembers the counter.
 */
enum holder_state lm_observe(struct lk_host *h, unsigned slot, uint64_t gen, const struct slot_rec *rec,
			     uint64_t t_sub, uint64_t t_done)
{
	enum holder_state st;
	struct slot_obs *o;

	if (rec->state == LK_SLOT_FREE || rec->gen != gen)
		return HS_STALE;
	if (rec->state == LK_SLOT_RECOVERING)
		return HS_RECOVERING;
	pthread_mutex_lock(&h->mu);
	o = &h->obs[slot];
	if (!o->valid || o->gen != gen || o->counter != rec->counter) {
		o->valid = true;
		o->gen = gen;
		o->counter = rec->counter;
		o->seen_ns = t_done;
		st = HS_ALIVE;
	} else {
		st = t_sub >= o->seen_ns + (uint64_t)h->t.dead_ms * NS_PER_MS ? HS_DEAD : HS_ALIVE;
	}
	pthread_mutex_unlock(&h->mu);
	return st;
}

/*
 * Reads just slot's record and judges (slot, gen): STALE when the slot is free
 * or holds another generation, RECOVERING, DEAD when a read submitted at least
 * dead_ms after this host first saw the current counter (on its own clock)
 * still shows it, else ALIVE. A record that cannot be read or decoded is ALIVE:
 * only proof of death frees a lock.
 */
int lm_holder_state(struct lk_host *h, unsigned slot, uint64_t gen, enum holder_state *st, char *hostname)
{
	struct slot_rec rec;
	uint64_t t_sub, t_done;
	void *buf;
	int rc;

	if (hostname)
		hostname[0] = 0;
	if (slot == h->slot) {
		*st = gen == h->gen ? HS_ALIVE : HS_STALE;
		if (hostname)
			memcpy(hostname, h->hostname, 64);
		return 0;
	}
	if (slot >= h->g.nslots) {
		*st = HS_STALE;
		return 0;
	}
	buf = lm_buf_alloc(h->g.sector_size);
	if (!buf)
		return -ENOMEM;
	t_sub = lm_host_now(h);
	rc = lm_read_slot(&h->io, &h->g, slot, buf, &rec);
	t_done = lm_host_now(h);
	free(buf);
	if (rc == -EIO || rc == -ENOMEM)
		return rc;
	if (rc < 0) {                   /* undecodable: cannot prove death */
		*st = HS_ALIVE;
		return 0;
	}
	if (hostname)
		memcpy(hostname, rec.hostname, 64);
	*st = lm_observe(h, slot, gen, &rec, t_sub, t_done);
	return 0;
}

int lk_owner_stale(struct lk_host *h, unsigned slot, uint64_t gen)
{
	enum holder_state st;
	int rc = lm_holder_state(h, slot, gen, &st, NULL);

	return rc < 0 ? rc : st == HS_STALE;
}
