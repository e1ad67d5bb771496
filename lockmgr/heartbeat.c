/*
 * Heartbeats (delta leases, as sanlock's delta_lease.c): the timing rules,
 * and this host's own slot: lk_join claims it, lk_renew renews it from the
 * renewal thread, lk_leave frees it. Keeps H1-H5 of docs/LOCKING.md (one
 * holder per slot via the join delay, generations never reused, no blind
 * overwrite, fencing, fencing beats takeover: lk_timing_check); the join's
 * reads of the region also start H6's watch of the other hosts.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- timings ---- */

void lk_timing_default(struct lk_timing *t)
{
	t->interval_ms = 1000;
	t->dead_ms = 8000;
	t->fence_ms = 5000;
	t->io_timeout_ms = 2000;
}

/* How long a re-read may take before the claim write is submitted (join, H1). */
static uint64_t join_eps_ms(const struct lk_timing *t)
{
	return t->io_timeout_ms / 8;
}

/*
 * The claim of a racing joiner lands at most eps + io_timeout after its re-read
 * was submitted (its clock); the wait must outlast that on any other clock:
 * delay / (1 + d) > (eps + io) / (1 - d).
 */
uint32_t lk_join_delay_ms(const struct lk_timing *t)
{
	uint64_t w = (uint64_t)t->io_timeout_ms + join_eps_ms(t);

	return (uint32_t)((w * (1000000 + LK_DRIFT_PPM) + (1000000 - LK_DRIFT_PPM) - 1) /
			  (1000000 - LK_DRIFT_PPM) + 1);
}

int lk_timing_check(const struct lk_timing *t, char *errbuf, size_t errlen)
{
	uint64_t lhs, rhs;

	if (!t->interval_ms || !t->dead_ms || !t->fence_ms || !t->io_timeout_ms) {
		base_set_err(errbuf, errlen, 0, "lockmgr: timings must be non-zero");
		return -EINVAL;
	}
	if ((uint64_t)t->interval_ms + t->io_timeout_ms >= t->fence_ms) {
		base_set_err(errbuf, errlen, 0, "lockmgr: interval %u ms + io_timeout %u ms must be below fence %u ms",
			t->interval_ms, t->io_timeout_ms, t->fence_ms);
		return -EINVAL;
	}
	/* H5: (fence + io) * (1 + d) < dead * (1 - d) */
	lhs = ((uint64_t)t->fence_ms + t->io_timeout_ms) * (1000000 + LK_DRIFT_PPM);
	rhs = (uint64_t)t->dead_ms * (1000000 - LK_DRIFT_PPM);
	if (lhs >= rhs) {
		base_set_err(errbuf, errlen, 0,
			"lockmgr: (fence %u ms + io_timeout %u ms) * 1.01 must be below dead %u ms * 0.99",
			t->fence_ms, t->io_timeout_ms, t->dead_ms);
		return -EINVAL;
	}
	if (lk_join_delay_ms(t) >= t->fence_ms) {
		base_set_err(errbuf, errlen, 0, "lockmgr: join delay %u ms must be below fence %u ms",
			lk_join_delay_ms(t), t->fence_ms);
		return -EINVAL;
	}
	return 0;
}

/* ---- heartbeats: join, renew, leave (H1-H6) ---- */

static bool rec_is_ours(const struct lk_host *h, const struct slot_rec *r)
{
	return r->state == LK_SLOT_LIVE && r->gen == h->gen && !memcmp(r->uuid, h->uuid, 16);
}

int lk_renew(struct lk_host *h)
{
	struct slot_rec rec;
	uint64_t t_sub, t_done;
	void *buf;
	int rc;

	buf = lm_buf_alloc(h->g.sector_size);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&h->hb_mu);
	if (!lk_write_ok(h)) {
		rc = -ENOLCK;
		goto out;
	}
	rc = lm_read_slot(&h->io, &h->g, h->slot, buf, &rec);
	if (rc == -EIO || rc == -ENOMEM)
		goto out;       /* no write happened: the deadline decides */
	if (rc < 0 || !rec_is_ours(h, &rec)) {
		lm_fence(h);       /* H3: someone else wrote our slot; never overwrite it */
		rc = -ENOLCK;
		goto out;
	}
	rec.counter = ++h->counter;
	memcpy(rec.hostname, h->hostname, 64);
	lm_hb_encode(buf, h->slot, &rec);
	t_sub = lm_host_now(h);
	if (!lk_write_ok(h)) {
		rc = -ENOLCK;
		goto out;
	}
	rc = h->io.write(h->io.ctx, h->g.hb_off + (uint64_t)h->slot * h->g.slot_size, buf, h->g.sector_size);
	t_done = lm_host_now(h);
	if (rc < 0 || t_done - t_sub > (uint64_t)h->t.io_timeout_ms * NS_PER_MS || !lk_write_ok(h)) {
		/* a failed or late heartbeat: stop rather than queue another write behind it */
		lm_fence(h);
		rc = -ENOLCK;
		goto out;
	}
	atomic_store(&h->deadline_ns, t_sub + (uint64_t)h->t.fence_ms * NS_PER_MS);    /* H4 */
	lm_watchdog_pet(h);
	rc = 0;
out:
	pthread_mutex_unlock(&h->hb_mu);
	free(buf);
	return rc;
}

static void *renew_main(void *arg)
{
	struct lk_host *h = arg;
	uint64_t period = (uint64_t)h->t.interval_ms * NS_PER_MS, next = lm_host_now(h);

	while (!atomic_load(&h->stop)) {
		uint64_t now = lm_host_now(h);

		if (now >= next) {
			if (lk_renew(h) == -ENOLCK)
				break;
			next += period;
			if (next < now)
				next = now + period;
			continue;
		}
		h->io.sleep_ns(h->io.ctx, base_min(next - now, 10 * NS_PER_MS));
	}
	return NULL;
}

/*
 * H1: one claim of slot s, free when last read, with a delta lease. The claim
 * write is submitted within eps of the re-read's submission (else the re-read
 * is retried), lands within io_timeout after that, and the read-back comes
 * lk_join_delay_ms() after our own claim completed: a racing claim that read
 * the slot free before ours landed has landed by then, and the read-back sees
 * it. 1 when the slot is ours (h->slot, h->gen set), 0 when another host has
 * it or every re-read was slow, -errno.
 */
static int claim_one(struct lk_host *h, unsigned s, uint8_t *sbuf, char *err, size_t errlen)
{
	const uint64_t eps = join_eps_ms(&h->t) * NS_PER_MS, io = (uint64_t)h->t.io_timeout_ms * NS_PER_MS;
	struct slot_rec rec, claim;
	int rc;

	for (int tries = 0; tries < LK_REREAD_TRIES; tries++) {
		uint64_t t0, t1, t2;

		t0 = lm_host_now(h);
		rc = lm_read_slot(&h->io, &h->g, s, sbuf, &rec);
		t1 = lm_host_now(h);
		if (rc == -EIO || rc == -ENOMEM)
			return rc;
		if (rc < 0 || rec.state != LK_SLOT_FREE)
			return 0;
		if (t1 - t0 > eps)
			continue;       /* the re-read was slow: it may be stale by the time we write */
		memset(&claim, 0, sizeof(claim));
		claim.state = LK_SLOT_LIVE;
		claim.gen = rec.gen + 1;
		memcpy(claim.uuid, h->uuid, 16);
		claim.counter = h->counter = 1;
		memcpy(claim.hostname, h->hostname, 64);
		lm_hb_encode(sbuf, s, &claim);
		atomic_store(&h->deadline_ns, t1 + (uint64_t)h->t.fence_ms * NS_PER_MS);
		rc = lm_host_write(h, h->g.hb_off + (uint64_t)s * h->g.slot_size, sbuf, h->g.sector_size);
		t2 = lm_host_now(h);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: writing the claim of slot %u: %s", s, strerror(-rc));
			return rc;
		}
		if (t2 - t0 > eps + io) {
			base_set_err(err, errlen, 0, "lockmgr: claiming slot %u took %" PRIu64 " ms (bound %" PRIu64
				" ms): storage slower than io_timeout", s, (t2 - t0) / NS_PER_MS,
				(eps + io) / NS_PER_MS);
			return -EIO;
		}
		if (!(h->faults & LK_FAULT_SKIP_DELTA_DELAY))
			h->io.sleep_ns(h->io.ctx, (uint64_t)lk_join_delay_ms(&h->t) * NS_PER_MS);
		rc = lm_read_slot(&h->io, &h->g, s, sbuf, &rec);
		if (rc == -EIO || rc == -ENOMEM)
			return rc;
		h->slot = s;
		h->gen = claim.gen;
		return !rc && rec_is_ours(h, &rec); /* else another host's claim landed after ours */
	}
	return 0;
}

#define PREFER_PASSES 3u /* reads of the region in which a preferred slot is sought */

/*
 * Claims a free slot, a preferred one (a bit per slot; prefer may be NULL)
 * when one is free. Passes, each over a fresh read of the region and from a
 * random slot (hosts joining at once seldom go for the same one): the
 * preferred slots, again while another host took one we went for (the read
 * was stale by then), at most PREFER_PASSES times; then the others.
 */
static int claim_slot(struct lk_host *h, const uint8_t *prefer, char *err, size_t errlen)
{
	size_t rlen = (size_t)h->g.nslots * h->g.slot_size;
	uint8_t *region, *sbuf;
	int rc = 0;

	region = lm_buf_alloc(rlen);
	sbuf = lm_buf_alloc(h->g.sector_size);
	if (!region || !sbuf) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned pass = prefer ? 0 : PREFER_PASSES, lost = 1; pass <= PREFER_PASSES; pass++) {
		bool others = pass == PREFER_PASSES;
		unsigned start;

		if (!others && !lost)
			continue;       /* no preferred slot was taken from under us: on to the others */
		lost = 0;
		/*
		 * Each read also watches the other hosts (the first one starts it): a
		 * host killed just before we started is then proven dead (H6) dead_ms
		 * after it, and the join's delta-lease wait counts toward that
		 * (LK_WAIT_DEAD).
		 */
		rc = lm_read_region(h, region, false);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: reading the heartbeat region: %s", strerror(-rc));
			goto out;
		}
		start = (unsigned)(lm_host_rand(h) % h->g.nslots);
		for (unsigned i = 0; i < h->g.nslots; i++) {
			unsigned s = (start + i) % h->g.nslots;
			bool preferred = prefer && (prefer[s / 8] >> (s % 8)) & 1;
			struct slot_rec rec;

			if (preferred == others || lm_hb_decode(region + (size_t)s * h->g.slot_size, s, &rec) < 0 ||
			    rec.state != LK_SLOT_FREE)
				continue;
			rc = claim_one(h, s, sbuf, err, errlen);
			if (rc < 0)
				goto out;
			if (rc == 1) {
				rc = 0;
				goto out;
			}
			lost = 1;
		}
	}
	base_set_err(err, errlen, 0, "lockmgr: no free heartbeat slot among %u", h->g.nslots);
	rc = -ENOSPC;
out:
	free(region);
	free(sbuf);
	return rc;
}

/* Loads our dblock sectors (M2: only we write them, so this copy stays current). */
static int load_dsects(struct lk_host *h, char *err, size_t errlen)
{
	uint32_t ss = h->g.sector_size;

	for (unsigned k = 0; k < h->lay.ngroups; k++) {
		int rc;

		h->dsect[k] = lm_buf_alloc(ss);
		if (!h->dsect[k])
			return -ENOMEM;
		rc = lm_host_read(h, h->g.lock_off + lk_layout_group(&h->lay, k) + (uint64_t)h->slot * ss, h->dsect[k],
				  ss);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: reading the dblocks of slot %u: %s", h->slot, strerror(-rc));
			return rc;
		}
		rc = lm_dsect_check(h->dsect[k], ss, h->slot, k);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: dblock sector of slot %u, group %u: %s", h->slot, k,
				rc == -EBADMSG ? "bad checksum" : "malformed");
			return -EUCLEAN;
		}
	}
	return 0;
}

int lk_join(const struct lk_io *io, const struct lk_geometry *g, const struct lk_timing *t,
	    const struct lk_join_opts *o, struct lk_host **out, char *errbuf, size_t errlen)
{
	struct lk_join_opts none = { 0 };
	struct lk_layout lay;
	struct lk_host *h;
	void *rbuf = NULL;
	int rc;

	*out = NULL;
	if (!o)
		o = &none;
	if (!io || !io->read || !io->write || !io->now_ns || !io->sleep_ns) {
		base_set_err(errbuf, errlen, 0, "lockmgr: incomplete lk_io");
		return -EINVAL;
	}
	rc = lk_timing_check(t, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = lm_geometry_check(g, &lay, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = lm_host_alloc(io, g, t, &lay, &h);
	if (rc < 0)
		return rc;
	lm_io_random(io, &h->rng, sizeof(h->rng));
	h->rng |= 1;
	lm_io_random(io, h->uuid, sizeof(h->uuid));
	if (o->hostname)
		memcpy(h->hostname, o->hostname, strnlen(o->hostname, 63));
	h->recover = o->recover;
	h->recover_arg = o->recover_arg;
	h->trace = o->trace;
	h->trace_arg = o->trace_arg;
	h->faults = o->test_faults;

	rbuf = lm_buf_alloc(g->sector_size);
	if (!rbuf) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = io->read(io->ctx, g->lock_off, rbuf, g->sector_size);
	if (rc < 0) {
		base_set_err(errbuf, errlen, 0, "lockmgr: reading the lock region header: %s", strerror(-rc));
		goto err_free;
	}
	rc = lm_region_decode(rbuf, g, &lay, errbuf, errlen);
	if (rc < 0)
		goto err_free;
	rc = claim_slot(h, o->prefer, errbuf, errlen);
	if (rc < 0)
		goto err_free;
	rc = load_dsects(h, errbuf, errlen);
	if (rc < 0)
		goto err_free_slot;
	if (o->watchdog) {
		rc = lm_watchdog_open(h, o->watchdog);
		if (rc < 0) {
			base_set_err(errbuf, errlen, 0, "lockmgr: watchdog %s: %s", o->watchdog, strerror(-rc));
			goto err_free_slot;
		}
	}
	rc = lk_renew(h);
	if (rc < 0) {
		base_set_err(errbuf, errlen, 0, "lockmgr: slot %u: first renewal failed: %s", h->slot, strerror(-rc));
		goto err_free_slot;
	}
	if (!o->no_renew_thread) {
		rc = -pthread_create(&h->renew_thread, NULL, renew_main, h);
		if (rc < 0) {
			base_set_err(errbuf, errlen, 0, "lockmgr: cannot start the renewal thread: %s", strerror(-rc));
			goto err_free_slot;
		}
		h->renew_running = true;
	}
	free(rbuf);
	*out = h;
	return 0;

err_free_slot:
	if (lk_write_ok(h)) {           /* the slot is ours: give it back */
		struct slot_rec rec = { .state = LK_SLOT_FREE, .gen = h->gen };

		lm_write_slot_rec(h, h->slot, &rec);
	}
err_free:
	free(rbuf);
	lm_host_free(h);
	return rc;
}

void lk_leave(struct lk_host *h)
{
	if (!h)
		return;
	for (;;) {                      /* every lock, whatever its reference count */
		struct local_lock *l = NULL;
		uint64_t res;

		pthread_mutex_lock(&h->mu);
		for (unsigned i = 0; i < LK_LOCAL_HASH && !l; i++)
			l = h->locals[i];
		if (l) {
			l->refs = 1;
			res = l->res;
		}
		pthread_mutex_unlock(&h->mu);
		if (!l)
			break;
		if (lk_unlock(h, res, false, NULL) < 0 && !lk_fenced(h))
			lm_fence(h);       /* cannot release cleanly: leave the slot to recovery */
	}
	if (h->renew_running) {
		atomic_store(&h->stop, true);
		pthread_join(h->renew_thread, NULL);
		h->renew_running = false;
	}
	pthread_mutex_lock(&h->hb_mu);
	if (lk_write_ok(h)) {
		struct slot_rec rec = { .state = LK_SLOT_FREE, .gen = h->gen };

		lm_write_slot_rec(h, h->slot, &rec);       /* H2: gen kept, the next claim gets gen + 1 */
		lm_watchdog_disarm(h);
	}
	pthread_mutex_unlock(&h->hb_mu);
	lm_host_free(h);
}
