/*
 * One host of lockmgr (struct lk_host): its clock, random numbers, trace hook,
 * sector I/O, the back-off of the protocol's waits, its allocation and
 * release, and the I/O helpers every other file shares. Keeps H4: every write
 * submitted for a joined host goes through lm_host_write(), which refuses once
 * the fence deadline has passed, and a fenced host stays fenced (lk_renew's
 * heartbeat write checks the deadline itself, just before it).
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ---- */

/* I/O buffers: 4 KiB aligned and zeroed, so O_DIRECT lk_io implementations work. */
void *lm_buf_alloc(size_t len)
{
	void *p;

	len = base_round_up(len ? len : 1, 4096);
	if (posix_memalign(&p, 4096, len))
		return NULL;
	memset(p, 0, len);
	return p;
}

static uint64_t rng_step(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

void lm_io_random(const struct lk_io *io, void *buf, size_t len)
{
	if (io->random) {
		io->random(io->ctx, buf, len);
		return;
	}
	if (base_random(buf, len) < 0) {        /* getrandom cannot fail on Linux >= 3.17; be safe */
		uint64_t s = base_mono_ns() | 1;

		for (size_t i = 0; i < len; i++)
			((uint8_t *)buf)[i] = (uint8_t)rng_step(&s);
	}
}

/* ---- the host ---- */

uint64_t lm_host_now(struct lk_host *h)
{
	return h->io.now_ns(h->io.ctx);
}

uint64_t lm_host_rand(struct lk_host *h)
{
	uint64_t v;

	pthread_mutex_lock(&h->mu);
	v = rng_step(&h->rng);
	pthread_mutex_unlock(&h->mu);
	return v;
}

void lm_host_trace(struct lk_host *h, enum lk_trace_event ev, unsigned bucket, uint64_t lver)
{
	if (h->trace)
		h->trace(h->trace_arg, ev, bucket, lver);
}

void lm_fence(struct lk_host *h)
{
	atomic_store(&h->fenced, true);
}

bool lk_write_ok(struct lk_host *h)
{
	if (atomic_load(&h->fenced))
		return false;
	if (lm_host_now(h) >= atomic_load(&h->deadline_ns)) {
		atomic_store(&h->fenced, true);
		return false;
	}
	return true;
}

bool lk_fenced(struct lk_host *h)
{
	return !lk_write_ok(h);
}

unsigned lk_host_slot(const struct lk_host *h)
{
	return h->slot;
}

uint64_t lk_host_gen(const struct lk_host *h)
{
	return h->gen;
}

void lk_host_uuid(const struct lk_host *h, uint8_t uuid[16])
{
	memcpy(uuid, h->uuid, 16);
}

int lm_host_read(struct lk_host *h, uint64_t off, void *buf, size_t len)
{
	return h->io.read(h->io.ctx, off, buf, len);
}

/* H4: every write of a joined host is submitted only before its fence deadline. */
int lm_host_write(struct lk_host *h, uint64_t off, const void *buf, size_t len)
{
	if (!lk_write_ok(h))
		return -ENOLCK;
	return h->io.write(h->io.ctx, off, buf, len);
}

/*
 * Randomized exponential backoff on the host's clock (the protocol's own
 * waits): a sleep of [cur/2, 3cur/2), cur growing by `grow` percent per wait
 * up to max. Bucket mutexes are held for a few I/Os, so their waits start
 * short and grow slowly; a lock may be held for long, its waits grow faster.
 */

void lm_backoff_init(struct lk_host *h, struct backoff *bo, uint64_t start_us, uint64_t max_ms, unsigned grow)
{
	bo->cur = start_us * 1000;
	bo->max = base_max(bo->cur, base_min(max_ms, (uint64_t)h->t.interval_ms / 4) * NS_PER_MS);
	bo->grow = grow;
}

void lm_backoff_sleep(struct lk_host *h, struct backoff *bo)
{
	uint64_t ns = bo->cur / 2 + lm_host_rand(h) % bo->cur;

	h->io.sleep_ns(h->io.ctx, ns);
	bo->cur = base_min(bo->cur * bo->grow / 100, bo->max);
}

int lm_write_slot_rec(struct lk_host *h, unsigned slot, const struct slot_rec *r)
{
	void *buf = lm_buf_alloc(h->g.sector_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	lm_hb_encode(buf, slot, r);
	rc = lm_host_write(h, h->g.hb_off + (uint64_t)slot * h->g.slot_size, buf, h->g.sector_size);
	free(buf);
	return rc;
}

void lm_host_free(struct lk_host *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < LK_LOCAL_HASH; i++) {
		while (h->locals[i]) {
			struct local_lock *l = h->locals[i];

			h->locals[i] = l->next;
			free(l);
		}
	}
	if (h->dsect)
		for (unsigned i = 0; i < h->lay.ngroups; i++)
			free(h->dsect[i]);
	free(h->dsect);
	if (h->bucket_mu)
		for (unsigned i = 0; i < h->lay.nbuckets; i++)
			pthread_mutex_destroy(&h->bucket_mu[i]);
	if (h->group_mu)
		for (unsigned i = 0; i < h->lay.ngroups; i++)
			pthread_mutex_destroy(&h->group_mu[i]);
	free(h->bucket_mu);
	free(h->group_mu);
	free(h->obs);
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&h->hb_mu);
	if (h->wd_fd >= 0)
		close(h->wd_fd);
	free(h);
}

int lm_host_alloc(const struct lk_io *io, const struct lk_geometry *g, const struct lk_timing *t,
		  const struct lk_layout *lay, struct lk_host **out)
{
	struct lk_host *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->io = *io;
	h->g = *g;
	h->t = *t;
	h->lay = *lay;
	h->wd_fd = -1;
	atomic_init(&h->deadline_ns, 0);
	atomic_init(&h->fenced, false);
	atomic_init(&h->stop, false);
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->hb_mu, NULL);
	h->obs = calloc(g->nslots, sizeof(*h->obs));
	h->bucket_mu = calloc(lay->nbuckets, sizeof(*h->bucket_mu));
	h->group_mu = calloc(lay->ngroups, sizeof(*h->group_mu));
	h->dsect = calloc(lay->ngroups, sizeof(*h->dsect));
	if (!h->obs || !h->bucket_mu || !h->group_mu || !h->dsect) {
		free(h->bucket_mu);
		free(h->group_mu);
		h->bucket_mu = NULL;
		h->group_mu = NULL;
		lm_host_free(h);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < lay->nbuckets; i++)
		pthread_mutex_init(&h->bucket_mu[i], NULL);
	for (unsigned i = 0; i < lay->ngroups; i++)
		pthread_mutex_init(&h->group_mu[i], NULL);
	*out = h;
	return 0;
}
