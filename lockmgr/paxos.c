/*
 * The bucket mutex: Disk Paxos (Gafni and Lamport), one instance per lease
 * version as in sanlock's paxos_lease.c, over a bucket's leader sector and one
 * dblock per host. Keeps M1-M5 of docs/LOCKING.md (unique ballots, one writer
 * per dblock sector, leader writes ordered by lver, instances decided in
 * order, no abandoned vote); a winner's death is judged by H6 (liveness.c).
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int read_leader(struct lk_host *h, unsigned b, void *buf, struct leader *l)
{
	for (int tries = 0;; tries++) {
		int rc = lm_host_read(h, h->g.lock_off + lk_layout_leader(&h->lay, b), buf, h->g.sector_size);

		if (rc < 0)
			return rc;
		rc = lm_leader_decode(buf, b, h->g.nslots, l);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc == -EBADMSG ? -EUCLEAN : rc;
	}
}

static int write_leader(struct lk_host *h, unsigned b, const struct leader *l)
{
	void *buf = lm_buf_alloc(h->g.sector_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	lm_leader_encode(buf, b, l);
	rc = lm_host_write(h, h->g.lock_off + lk_layout_leader(&h->lay, b), buf, h->g.sector_size);
	free(buf);
	return rc;
}

/* Whether our dblock of bucket b is in instance lver (we are one of its proposers). */
static bool own_dblock_in(struct lk_host *h, unsigned b, uint64_t lver)
{
	unsigned grp = b / h->lay.per_sector;
	struct dblock d;

	pthread_mutex_lock(&h->group_mu[grp]);
	lm_dsect_get(h->dsect[grp], b % h->lay.per_sector, &d);
	pthread_mutex_unlock(&h->group_mu[grp]);
	return d.lver == lver;
}

/* M1: ballot numbers of slot s are s + 1 modulo nslots, so no two hosts share one. */
static uint64_t next_mbal(struct lk_host *h, uint64_t above)
{
	uint64_t n = h->g.nslots;

	return (above / n + 1) * n + h->slot + 1;
}

/* Writes our dblock of bucket b into our sector of its group (M2: our writes of it are serialized). */
static int write_dblock(struct lk_host *h, unsigned b, const struct dblock *d)
{
	unsigned grp = b / h->lay.per_sector;
	uint64_t off = h->g.lock_off + lk_layout_group(&h->lay, grp) + (uint64_t)h->slot * h->g.sector_size;
	int rc;

	pthread_mutex_lock(&h->group_mu[grp]);
	lm_dsect_put(h->dsect[grp], h->g.sector_size, h->slot, h->gen, grp, b % h->lay.per_sector, d);
	rc = lm_host_write(h, off, h->dsect[grp], h->g.sector_size);
	pthread_mutex_unlock(&h->group_mu[grp]);
	return rc;
}

/* The hosts whose dblocks show the latest instance seen (rivals.lver), as (slot, gen) of their writers. */
#define LK_MAX_RIVALS 8
struct rivals {
	uint64_t lver;
	unsigned n;
	struct owner who[LK_MAX_RIVALS];
};

static void rivals_note(struct rivals *r, uint64_t lver, unsigned slot, uint64_t gen)
{
	if (lver < r->lver)
		return;
	if (lver > r->lver) {
		r->lver = lver;
		r->n = 0;
	}
	if (r->n < LK_MAX_RIVALS)
		r->who[r->n++] = (struct owner){ slot, gen };
}

/*
 * Reads every host's dblocks of bucket b (one I/O) and checks them against our
 * ballot: -EAGAIN if another host joined a later instance or a higher ballot of
 * this one (hints and rivals updated), else 0 with *best the vote of highest
 * ballot.
 */
static int scan_dblocks(struct lk_host *h, unsigned b, void *gbuf, uint64_t lver, uint64_t mbal,
			uint64_t *hint_lver, uint64_t *hint_mbal, struct rivals *riv, struct dblock *best)
{
	unsigned grp = b / h->lay.per_sector, idx = b % h->lay.per_sector;
	uint32_t ss = h->g.sector_size;
	int rc, again = 0;

	rc = lm_host_read(h, h->g.lock_off + lk_layout_group(&h->lay, grp), gbuf, (size_t)h->g.nslots * ss);
	if (rc < 0)
		return rc;
	for (unsigned q = 0; q < h->g.nslots; q++) {
		const uint8_t *sec = (const uint8_t *)gbuf + (size_t)q * ss;
		struct dblock d;

		if (q == h->slot)
			continue;
		rc = lm_dsect_check(sec, ss, q, grp);
		if (rc < 0)
			return -EUCLEAN;
		lm_dsect_get(sec, idx, &d);
		if (base_all_zero(sec, ss) || d.lver < lver)
			continue;
		rivals_note(riv, d.lver, q, le64_to_cpu(((const struct lk_dsect_head *)sec)->ds_gen));
		if (d.lver > lver) {
			*hint_lver = base_max(*hint_lver, d.lver);
			again = -EAGAIN;
			continue;
		}
		if (d.mbal > mbal) {    /* "It aborts the ballot if ... disk[d][q].mbal > dblock[p].mbal" */
			*hint_mbal = base_max(*hint_mbal, d.mbal);
			again = -EAGAIN;
			continue;
		}
		if (d.has_inp && d.bal > best->bal)
			*best = d;
	}
	return again;
}

/*
 * One Disk Paxos ballot of instance lver of bucket b (Gafni and Lamport, as in
 * sanlock's run_ballot): phase 1 writes our dblock with a new mbal and reads
 * all; phase 2 writes our vote (the input of highest bal seen, or ourselves)
 * and reads all. 0 with *winner the committed value, -EAGAIN to retry, or an
 * error, after which this host has fenced itself: a vote of ours may be out
 * there (M5).
 */
static int ballot(struct lk_host *h, unsigned b, uint64_t lver, uint64_t *hint_lver, uint64_t *hint_mbal,
		  struct rivals *riv, struct owner *winner)
{
	unsigned grp = b / h->lay.per_sector;
	struct dblock mine, best;
	void *gbuf;
	int rc;

	gbuf = lm_buf_alloc((size_t)h->g.nslots * h->g.sector_size);
	if (!gbuf)
		return -ENOMEM;
	pthread_mutex_lock(&h->group_mu[grp]);
	lm_dsect_get(h->dsect[grp], b % h->lay.per_sector, &mine);
	pthread_mutex_unlock(&h->group_mu[grp]);
	if (mine.lver != lver) {        /* a new instance: nothing of ours in it yet */
		memset(&mine, 0, sizeof(mine));
		mine.lver = lver;
	}
	mine.mbal = next_mbal(h, base_max(mine.mbal, *hint_mbal));
	best = mine;
	if (!best.has_inp)
		best.bal = 0;

	if (!(h->faults & LK_FAULT_SKIP_PHASE1)) {
		/* phase 1: keeps bal and inp (the paper's dblock[p] keeps them across ballots) */
		rc = write_dblock(h, b, &mine);
		if (rc < 0)
			goto out;
		rc = scan_dblocks(h, b, gbuf, lver, mine.mbal, hint_lver, hint_mbal, riv, &best);
		if (rc < 0)
			goto out;
	}
	/* "If nonInitBlks is empty, p sets dblock[p].inp to its own input value" */
	if (!best.has_inp) {
		best.inp_slot = h->slot;
		best.inp_gen = h->gen;
	}
	mine.bal = mine.mbal;
	mine.inp_slot = best.inp_slot;
	mine.inp_gen = best.inp_gen;
	mine.has_inp = true;
	/* phase 2 */
	rc = write_dblock(h, b, &mine);
	if (rc < 0)
		goto out;
	best.bal = 0;
	rc = scan_dblocks(h, b, gbuf, lver, mine.mbal, hint_lver, hint_mbal, riv, &best);
	if (rc < 0)
		goto out;
	/* "When it completes phase 2, p has committed dblock[p].inp." */
	winner->slot = mine.inp_slot;
	winner->gen = mine.inp_gen;
	rc = 0;
out:
	if (rc < 0 && rc != -EAGAIN)
		lm_fence(h);
	free(gbuf);
	return rc;
}

/*
 * Takes bucket b's mutex: returns 0 with *lver the instance we won, or
 * -ENOLCK / -EIO / -EUCLEAN / -ENOMEM (then fenced if anything of ours was
 * written). Waits, with backoff, while a live host holds it or is committing
 * it. Caller holds h->bucket_mu[b].
 *
 *   leader current and released, or owner dead/stale -> ballot(lver + 1)
 *   leader current, owner alive                       -> wait
 *   a dblock shows a later lver than the leader       -> ballot(that lver): learn
 *   ballot won by us                                  -> commit leader, hold
 *   ballot won by a live host                         -> wait for its commit
 *   ballot won by a dead host                         -> that instance is over
 */
int lm_mutex_acquire(struct lk_host *h, unsigned b, uint64_t *lver_out)
{
	uint64_t hint_lver = 0, hint_mbal = 0, over = 0, known = 0;
	struct owner known_owner = { 0, 0 }, w;
	struct rivals riv = { 0 };
	struct backoff bo, duel;
	bool voted = false;
	enum holder_state st;
	struct leader L;
	void *lbuf;
	int rc;

	lbuf = lm_buf_alloc(h->g.sector_size);
	if (!lbuf)
		return -ENOMEM;
	lm_backoff_init(h, &bo, 300, 20, 125);
	lm_backoff_init(h, &duel, 1000, 20, 150);
	for (;;) {
		uint64_t m, target;

		if (!lk_write_ok(h)) {
			rc = -ENOLCK;
			break;
		}
		rc = read_leader(h, b, lbuf, &L);
		if (rc < 0)
			break;
		m = base_max(L.lver, hint_lver);
		if (known && known > L.lver && known >= m) {
			/* a live host won instance `known` but has not committed the leader yet */
			rc = lm_holder_state(h, known_owner.slot, known_owner.gen, &st, NULL);
			if (rc < 0)
				break;
			if (st == HS_ALIVE) {
				lm_backoff_sleep(h, &bo);
				continue;
			}
			over = known;
			known = 0;
		}
		if (m <= over) {
			target = over + 1;
		} else if (L.lver == m) {
			if (!L.released) {
				if (L.slot == h->slot && L.gen == h->gen) {
					*lver_out = L.lver;     /* ours already: nobody else can hold it */
					lm_host_trace(h, LK_TRACE_MUTEX_ACQUIRED, b, L.lver);
					rc = 0;
					break;
				}
				rc = lm_holder_state(h, L.slot, L.gen, &st, NULL);
				if (rc < 0)
					break;
				if (st == HS_ALIVE) {
					lm_backoff_sleep(h, &bo);
					continue;
				}
			}
			target = m + 1;
		} else {
			/*
			 * Instance m is under way or its winner has not committed the
			 * leader. A proposer of m keeps at it; anybody else waits while
			 * a live host proposes in m (a ballot of ours would only abort
			 * it) and runs a ballot to learn m's value once they are all dead.
			 */
			target = m;
			if (!own_dblock_in(h, b, m) && riv.lver == m) {
				bool waiting = false;

				for (unsigned i = 0; i < riv.n && !waiting; i++) {
					rc = lm_holder_state(h, riv.who[i].slot, riv.who[i].gen, &st, NULL);
					if (rc < 0)
						break;
					waiting = st == HS_ALIVE;
				}
				if (rc < 0)
					break;
				if (waiting) {
					lm_backoff_sleep(h, &bo);
					continue;
				}
			}
		}
		rc = ballot(h, b, target, &hint_lver, &hint_mbal, &riv, &w);
		voted = true;
		if (rc == -EAGAIN) {
			/* outbid: give the rival time to finish its phases before bidding again */
			lm_backoff_sleep(h, &duel);
			continue;
		}
		if (rc < 0)
			break;
		if (w.slot == h->slot && w.gen == h->gen) {
			struct leader nl = { .lver = target, .slot = h->slot, .gen = h->gen, .released = false };

			rc = write_leader(h, b, &nl);   /* M3: only the winner writes the leader */
			if (rc < 0) {
				lm_fence(h);
				break;
			}
			*lver_out = target;
			lm_host_trace(h, LK_TRACE_MUTEX_ACQUIRED, b, target);
			break;
		}
		rc = lm_holder_state(h, w.slot, w.gen, &st, NULL);
		if (rc < 0)
			break;
		hint_lver = base_max(hint_lver, target);
		if (st == HS_ALIVE) {
			known = target;
			known_owner = w;
			lm_backoff_sleep(h, &bo);
		} else {
			over = target;
		}
	}
	if (rc < 0 && voted)
		lm_fence(h);       /* M5: a vote of ours may be out there; we cannot leave it unresolved */
	free(lbuf);
	return rc;
}

/* Releases bucket b's mutex won at lver: after the table write completed (T3). */
int lm_mutex_release(struct lk_host *h, unsigned b, uint64_t lver)
{
	struct leader l = { .lver = lver, .slot = h->slot, .gen = h->gen, .released = true };
	int rc;

	lm_host_trace(h, LK_TRACE_MUTEX_RELEASED, b, lver);
	rc = write_leader(h, b, &l);
	if (rc < 0)
		lm_fence(h);       /* the mutex stays ours on disk until our slot is dead (M5) */
	return rc;
}
