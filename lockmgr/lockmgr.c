/*
 * lockmgr: heartbeats (delta leases), bucket mutexes (Disk Paxos, one instance
 * per lease version as in sanlock) and the lock table, over the caller's sector
 * I/O and clock. Invariants H1-H6 (heartbeats and fencing), M1-M5 (bucket
 * mutex), T1-T5 (lock table) and R1-R3 (recovery) are stated and argued in
 * docs/LOCKING.md; the code cites them where it keeps them. Every write this
 * file submits on behalf of a joined host goes through host_write(), which
 * checks the fence deadline first (H4).
 */
#include "lockmgr/lockmgr.h"
#include "lockmgr/lockmgr_format.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/watchdog.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NS_PER_MS ((uint64_t)1000000)
#define LK_DRIFT_PPM 10000ull           /* clock-rate drift bound: 1% */
#define LK_LOCAL_HASH 256u
#define LK_REREAD_TRIES 3

/* ---- small helpers ---- */

/* I/O buffers: 4 KiB aligned and zeroed, so O_DIRECT lk_io implementations work. */
static void *buf_alloc(size_t len)
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

static void io_random(const struct lk_io *io, void *buf, size_t len)
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

static int geometry_check(const struct lk_geometry *g, struct lk_layout *l, char *err, size_t errlen)
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

struct slot_rec {
	enum lk_slot_state state;
	uint64_t gen;
	uint8_t uuid[16];
	uint64_t counter;
	char hostname[64];
};

static int hb_decode(const void *buf, unsigned slot, struct slot_rec *r)
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

static void hb_encode(void *buf, unsigned slot, const struct slot_rec *r)
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

struct leader {
	uint64_t lver;
	unsigned slot;
	uint64_t gen;
	bool released;
};

static int leader_decode(const void *buf, unsigned bucket, unsigned nslots, struct leader *l)
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

static void leader_encode(void *buf, unsigned bucket, const struct leader *l)
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

struct dblock {
	uint64_t mbal, bal, lver, inp_gen;
	unsigned inp_slot;
	bool has_inp;
};

/* 0 for a well-formed or all-zero dblock sector of (slot, group). */
static int dsect_check(const void *buf, uint32_t ss, unsigned slot, unsigned group)
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

static void dsect_get(const void *buf, unsigned idx, struct dblock *d)
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

static void dsect_put(void *buf, uint32_t ss, unsigned slot, uint64_t gen, unsigned group, unsigned idx,
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

struct entry {
	uint64_t res, version, gen;
	unsigned slot, mode;
	bool want;                      /* LK_ENTRY_WANT: a waiter, not a holder */
};

struct table {
	uint64_t seq, next_version;
	int copy;                       /* the copy this table was read from */
	unsigned n;
	struct entry e[LK_TABLE_ENTRIES];
};

/* 0 valid, 1 all zero, -EBADMSG torn or flipped, -EUCLEAN malformed. */
static int table_decode(const void *buf, unsigned bucket, unsigned copy, unsigned nslots, struct table *t)
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
static int table_pick(const void *buf, unsigned bucket, unsigned nslots, struct table *t)
{
	struct table c[2];
	int rc[2], best = -1;

	for (unsigned i = 0; i < 2; i++) {
		memset(&c[i], 0, offsetof(struct table, e));
		rc[i] = table_decode((const uint8_t *)buf + i * LK_TABLE_BYTES, bucket, i, nslots, &c[i]);
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

static void table_encode(void *buf, unsigned bucket, unsigned copy, const struct table *t, unsigned slot,
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

static int region_decode(const void *buf, const struct lk_geometry *g, const struct lk_layout *l,
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
static int read_slot(const struct lk_io *io, const struct lk_geometry *g, unsigned slot, void *buf,
		     struct slot_rec *r)
{
	for (int tries = 0;; tries++) {
		int rc = io->read(io->ctx, g->hb_off + (uint64_t)slot * g->slot_size, buf, g->sector_size);

		if (rc < 0)
			return rc;
		rc = hb_decode(buf, slot, r);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc;
	}
}

/* ---- the host ---- */

struct local_lock {
	struct local_lock *next;
	uint64_t res;
	enum lk_mode mode;
	uint64_t version;
	unsigned refs;
};

/* H6: what this host saw of another slot's renewals, on its own clock. */
struct slot_obs {
	uint64_t gen;
	uint64_t counter;
	uint64_t seen_ns;       /* completion of the first read that showed counter */
	bool valid;
};

struct lk_host {
	struct lk_io io;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_layout lay;
	unsigned slot;
	uint64_t gen;
	uint8_t uuid[16];
	char hostname[64];
	lk_recover_fn recover;
	void *recover_arg;
	lk_trace_fn trace;
	void *trace_arg;
	unsigned faults;

	_Atomic uint64_t deadline_ns;   /* H4: submit time of the last good renewal + fence */
	atomic_bool fenced;             /* sticky */

	pthread_mutex_t hb_mu;          /* renewals and the other writes of our slot */
	uint64_t counter;               /* under hb_mu */
	int wd_fd;                      /* under hb_mu */

	pthread_mutex_t mu;             /* locals, obs, rng: short sections, never across I/O */
	struct local_lock *locals[LK_LOCAL_HASH];
	struct slot_obs *obs;           /* nslots */
	uint64_t rng;

	pthread_mutex_t *bucket_mu;     /* per bucket: this host's disk work on it, across I/O */
	pthread_mutex_t *group_mu;      /* per group: our dblock sector, across its write (M2) */
	uint8_t **dsect;                /* per group: in-memory copy of our dblock sector */

	pthread_t renew_thread;
	bool renew_running;
	atomic_bool stop;
};

static uint64_t host_now(struct lk_host *h)
{
	return h->io.now_ns(h->io.ctx);
}

static uint64_t host_rand(struct lk_host *h)
{
	uint64_t v;

	pthread_mutex_lock(&h->mu);
	v = rng_step(&h->rng);
	pthread_mutex_unlock(&h->mu);
	return v;
}

static void host_trace(struct lk_host *h, enum lk_trace_event ev, unsigned bucket, uint64_t lver)
{
	if (h->trace)
		h->trace(h->trace_arg, ev, bucket, lver);
}

static void fence(struct lk_host *h)
{
	atomic_store(&h->fenced, true);
}

bool lk_write_ok(struct lk_host *h)
{
	if (atomic_load(&h->fenced))
		return false;
	if (host_now(h) >= atomic_load(&h->deadline_ns)) {
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

static int host_read(struct lk_host *h, uint64_t off, void *buf, size_t len)
{
	return h->io.read(h->io.ctx, off, buf, len);
}

/* H4: every write of a joined host is submitted only before its fence deadline. */
static int host_write(struct lk_host *h, uint64_t off, const void *buf, size_t len)
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
struct backoff {
	uint64_t cur, max;
	unsigned grow;
};

static void backoff_init(struct lk_host *h, struct backoff *bo, uint64_t start_us, uint64_t max_ms, unsigned grow)
{
	bo->cur = start_us * 1000;
	bo->max = base_max(bo->cur, base_min(max_ms, (uint64_t)h->t.interval_ms / 4) * NS_PER_MS);
	bo->grow = grow;
}

static void backoff_sleep(struct lk_host *h, struct backoff *bo)
{
	uint64_t ns = bo->cur / 2 + host_rand(h) % bo->cur;

	h->io.sleep_ns(h->io.ctx, ns);
	bo->cur = base_min(bo->cur * bo->grow / 100, bo->max);
}

/* ---- liveness of other hosts (H6) ---- */

enum holder_state { HS_ALIVE, HS_DEAD, HS_STALE, HS_RECOVERING };

/*
 * Judges (slot, gen) from its record, read by an I/O submitted at t_sub and
 * completed at t_done (this host's clock), and remembers the counter.
 */
static enum holder_state observe(struct lk_host *h, unsigned slot, uint64_t gen, const struct slot_rec *rec,
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
static int holder_state(struct lk_host *h, unsigned slot, uint64_t gen, enum holder_state *st, char *hostname)
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
	buf = buf_alloc(h->g.sector_size);
	if (!buf)
		return -ENOMEM;
	t_sub = host_now(h);
	rc = read_slot(&h->io, &h->g, slot, buf, &rec);
	t_done = host_now(h);
	free(buf);
	if (rc == -EIO || rc == -ENOMEM)
		return rc;
	if (rc < 0) {                   /* undecodable: cannot prove death */
		*st = HS_ALIVE;
		return 0;
	}
	if (hostname)
		memcpy(hostname, rec.hostname, 64);
	*st = observe(h, slot, gen, &rec, t_sub, t_done);
	return 0;
}

int lk_owner_stale(struct lk_host *h, unsigned slot, uint64_t gen)
{
	enum holder_state st;
	int rc = holder_state(h, slot, gen, &st, NULL);

	return rc < 0 ? rc : st == HS_STALE;
}

/* ---- bucket mutex: Disk Paxos (M1-M5) ---- */

struct owner {
	unsigned slot;
	uint64_t gen;
};

static int read_leader(struct lk_host *h, unsigned b, void *buf, struct leader *l)
{
	for (int tries = 0;; tries++) {
		int rc = host_read(h, h->g.lock_off + lk_layout_leader(&h->lay, b), buf, h->g.sector_size);

		if (rc < 0)
			return rc;
		rc = leader_decode(buf, b, h->g.nslots, l);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc == -EBADMSG ? -EUCLEAN : rc;
	}
}

static int write_leader(struct lk_host *h, unsigned b, const struct leader *l)
{
	void *buf = buf_alloc(h->g.sector_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	leader_encode(buf, b, l);
	rc = host_write(h, h->g.lock_off + lk_layout_leader(&h->lay, b), buf, h->g.sector_size);
	free(buf);
	return rc;
}

/* Whether our dblock of bucket b is in instance lver (we are one of its proposers). */
static bool own_dblock_in(struct lk_host *h, unsigned b, uint64_t lver)
{
	unsigned grp = b / h->lay.per_sector;
	struct dblock d;

	pthread_mutex_lock(&h->group_mu[grp]);
	dsect_get(h->dsect[grp], b % h->lay.per_sector, &d);
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
	dsect_put(h->dsect[grp], h->g.sector_size, h->slot, h->gen, grp, b % h->lay.per_sector, d);
	rc = host_write(h, off, h->dsect[grp], h->g.sector_size);
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

	rc = host_read(h, h->g.lock_off + lk_layout_group(&h->lay, grp), gbuf, (size_t)h->g.nslots * ss);
	if (rc < 0)
		return rc;
	for (unsigned q = 0; q < h->g.nslots; q++) {
		const uint8_t *sec = (const uint8_t *)gbuf + (size_t)q * ss;
		struct dblock d;

		if (q == h->slot)
			continue;
		rc = dsect_check(sec, ss, q, grp);
		if (rc < 0)
			return -EUCLEAN;
		dsect_get(sec, idx, &d);
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

	gbuf = buf_alloc((size_t)h->g.nslots * h->g.sector_size);
	if (!gbuf)
		return -ENOMEM;
	pthread_mutex_lock(&h->group_mu[grp]);
	dsect_get(h->dsect[grp], b % h->lay.per_sector, &mine);
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
		fence(h);
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
static int mutex_acquire(struct lk_host *h, unsigned b, uint64_t *lver_out)
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

	lbuf = buf_alloc(h->g.sector_size);
	if (!lbuf)
		return -ENOMEM;
	backoff_init(h, &bo, 300, 20, 125);
	backoff_init(h, &duel, 1000, 20, 150);
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
			rc = holder_state(h, known_owner.slot, known_owner.gen, &st, NULL);
			if (rc < 0)
				break;
			if (st == HS_ALIVE) {
				backoff_sleep(h, &bo);
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
					host_trace(h, LK_TRACE_MUTEX_ACQUIRED, b, L.lver);
					rc = 0;
					break;
				}
				rc = holder_state(h, L.slot, L.gen, &st, NULL);
				if (rc < 0)
					break;
				if (st == HS_ALIVE) {
					backoff_sleep(h, &bo);
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
					rc = holder_state(h, riv.who[i].slot, riv.who[i].gen, &st, NULL);
					if (rc < 0)
						break;
					waiting = st == HS_ALIVE;
				}
				if (rc < 0)
					break;
				if (waiting) {
					backoff_sleep(h, &bo);
					continue;
				}
			}
		}
		rc = ballot(h, b, target, &hint_lver, &hint_mbal, &riv, &w);
		voted = true;
		if (rc == -EAGAIN) {
			/* outbid: give the rival time to finish its phases before bidding again */
			backoff_sleep(h, &duel);
			continue;
		}
		if (rc < 0)
			break;
		if (w.slot == h->slot && w.gen == h->gen) {
			struct leader nl = { .lver = target, .slot = h->slot, .gen = h->gen, .released = false };

			rc = write_leader(h, b, &nl);   /* M3: only the winner writes the leader */
			if (rc < 0) {
				fence(h);
				break;
			}
			*lver_out = target;
			host_trace(h, LK_TRACE_MUTEX_ACQUIRED, b, target);
			break;
		}
		rc = holder_state(h, w.slot, w.gen, &st, NULL);
		if (rc < 0)
			break;
		hint_lver = base_max(hint_lver, target);
		if (st == HS_ALIVE) {
			known = target;
			known_owner = w;
			backoff_sleep(h, &bo);
		} else {
			over = target;
		}
	}
	if (rc < 0 && voted)
		fence(h);       /* M5: a vote of ours may be out there; we cannot leave it unresolved */
	free(lbuf);
	return rc;
}

/* Releases bucket b's mutex won at lver: after the table write completed (T3). */
static int mutex_release(struct lk_host *h, unsigned b, uint64_t lver)
{
	struct leader l = { .lver = lver, .slot = h->slot, .gen = h->gen, .released = true };
	int rc;

	host_trace(h, LK_TRACE_MUTEX_RELEASED, b, lver);
	rc = write_leader(h, b, &l);
	if (rc < 0)
		fence(h);       /* the mutex stays ours on disk until our slot is dead (M5) */
	return rc;
}

/* ---- lock table (T1-T5) ---- */

static int table_read(struct lk_host *h, unsigned b, void *buf, struct table *t)
{
	for (int tries = 0;; tries++) {
		int rc = host_read(h, h->g.lock_off + lk_layout_table(&h->lay, b), buf, 2 * LK_TABLE_BYTES);

		if (rc < 0)
			return rc;
		rc = table_pick(buf, b, h->g.nslots, t);
		if (rc != -EBADMSG || tries == LK_REREAD_TRIES - 1)
			return rc == -EBADMSG ? -EUCLEAN : rc;
	}
}

/* T2: writes the copy that does not hold the table we read, with seq + 1. Holder of the mutex only. */
static int table_write(struct lk_host *h, unsigned b, void *buf, struct table *t)
{
	unsigned copy = t->copy == 0 ? 1 : 0;
	int rc;

	t->seq++;
	table_encode(buf, b, copy, t, h->slot, h->gen);
	rc = host_write(h, h->g.lock_off + lk_layout_table(&h->lay, b) + copy * LK_TABLE_BYTES, buf,
			LK_TABLE_BYTES);
	if (rc < 0) {
		fence(h);
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

static void table_drop(struct table *t, unsigned i, bool new_version);

/* A stale entry goes: a want leaves no trace, a lock leaves its resource a new version. */
static void table_del_or_drop(struct table *t, unsigned i)
{
	if (t->e[i].want)
		table_del(t, i);
	else
		table_drop(t, i, true);
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

static bool modes_conflict(unsigned a, unsigned b)
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

#define LK_NEED_RECOVERY 1

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
		if (!modes_conflict(e.mode, mode))
			continue;
		if (e.want && waiting)
			continue;       /* W2: waiters race among themselves */
		rc = holder_state(h, e.slot, e.gen, &st, name);
		if (rc < 0)
			return rc;
		if (st == HS_STALE || (st != HS_ALIVE && (is_slot_res(res) || e.want))) {
			table_del_or_drop(t, i);
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
		rc = holder_state(h, t->e[i].slot, t->e[i].gen, &st, NULL);
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

static int lock_attempt(struct lk_host *h, unsigned b, uint64_t res, unsigned mode, unsigned flags,
			uint64_t *version, struct lk_holder *holder, struct owner *dead)
{
	bool changed = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc, rel;

	t = malloc(sizeof(*t));
	tbuf = buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = table_read(h, b, tbuf, t);
	if (rc == -EIO || rc == -ENOMEM)
		goto out;
	if (!rc) {
		rc = table_judge(h, t, res, mode, &changed, holder, dead);
		/* busy: wait without the mutex, unless our want is still to be recorded */
		if (rc && !(rc == -EBUSY && (flags & LK_WAIT) && !table_has_own_want(h, t, res)))
			goto out;
	}
	rc = mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	changed = false;
	rc = table_read(h, b, tbuf, t);
	if (!rc) {
		rc = table_judge(h, t, res, mode, &changed, holder, dead);
		if (rc == -EBUSY && (flags & LK_WAIT))
			table_add_want(h, t, res, mode, &changed);
		if (!rc)
			rc = table_add(h, t, res, mode, version, &changed);
		if (changed && (rc == 0 || rc == -EBUSY || rc == LK_NEED_RECOVERY || rc == -ENOSPC)) {
			rel = table_write(h, b, tbuf, t);       /* fences itself on failure */
			if (rel < 0)
				rc = rel;
		}
	}
	if (lk_write_ok(h)) {
		rel = mutex_release(h, b, lver);        /* T3: only after the table write completed */
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
static int unlock_attempt(struct lk_host *h, unsigned b, uint64_t res, bool bump, uint64_t *version)
{
	bool changed = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc;

	t = malloc(sizeof(*t));
	tbuf = buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	rc = table_read(h, b, tbuf, t);
	if (rc < 0) {
		fence(h);
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
		rc = table_write(h, b, tbuf, t);
		if (rc < 0)
			goto out;
	}
	rc = mutex_release(h, b, lver);
out:
	free(tbuf);
	free(t);
	return rc;
}

/* ---- local (per host) lock records ---- */

static struct local_lock **local_slot(struct lk_host *h, uint64_t res)
{
	struct local_lock **pp = &h->locals[lk_bucket_of(res, LK_LOCAL_HASH)];

	while (*pp && (*pp)->res != res)
		pp = &(*pp)->next;
	return pp;
}

/* ---- recovery (R1-R3) ---- */

static int lock_internal(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, bool fresh,
			 uint64_t *version, struct lk_holder *holder);

/* Drops every entry of (slot, gen) from bucket b, each freed resource getting a new version. */
static int purge_bucket(struct lk_host *h, unsigned b, unsigned slot, uint64_t gen)
{
	bool found = false;
	struct table *t;
	uint64_t lver;
	void *tbuf;
	int rc;

	t = malloc(sizeof(*t));
	tbuf = buf_alloc(2 * LK_TABLE_BYTES);
	if (!t || !tbuf) {
		free(t);
		free(tbuf);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->bucket_mu[b]);
	/* R3: a dead host adds no entry, so a table without one of its entries needs no update */
	rc = table_read(h, b, tbuf, t);
	for (unsigned i = 0; !rc && i < t->n; i++)
		found |= t->e[i].mode && t->e[i].slot == slot && t->e[i].gen == gen;
	if (!rc && !found)
		goto out;
	rc = mutex_acquire(h, b, &lver);
	if (rc < 0)
		goto out;
	rc = table_read(h, b, tbuf, t);
	if (rc < 0) {
		fence(h);
		goto out;
	}
	found = false;
	for (unsigned i = t->n; i-- > 0;) {
		if (t->e[i].mode && t->e[i].slot == slot && t->e[i].gen == gen) {
			table_del_or_drop(t, i);
			found = true;
		}
	}
	if (found) {
		rc = table_write(h, b, tbuf, t);
		if (rc < 0)
			goto out;
	}
	rc = mutex_release(h, b, lver);
out:
	pthread_mutex_unlock(&h->bucket_mu[b]);
	free(tbuf);
	free(t);
	return rc;
}

static int write_slot_rec(struct lk_host *h, unsigned slot, const struct slot_rec *r)
{
	void *buf = buf_alloc(h->g.sector_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	hb_encode(buf, slot, r);
	rc = host_write(h, h->g.hb_off + (uint64_t)slot * h->g.slot_size, buf, h->g.sector_size);
	free(buf);
	return rc;
}

/*
 * Recovers dead (slot, gen) under its recovery lock (R1): RECOVERING, the
 * caller's journal replay, every entry of (slot, gen) dropped, FREE with the
 * generation kept. -EBUSY if another host (or thread) is recovering it.
 */
static int recover_slot(struct lk_host *h, unsigned slot, uint64_t gen)
{
	uint64_t res = LK_RES(LK_NS_SLOT, slot), ver;
	struct slot_rec rec;
	void *buf;
	int rc, rc2;

	rc = lock_internal(h, res, LK_EX, 0, true, &ver, NULL);
	if (rc < 0)
		return rc;
	buf = buf_alloc(h->g.sector_size);
	if (!buf) {
		rc = -ENOMEM;
		goto unlock;
	}
	rc = read_slot(&h->io, &h->g, slot, buf, &rec);
	if (rc < 0 || rec.state == LK_SLOT_FREE || rec.gen != gen)
		goto unlock;    /* recovered by someone else meanwhile (or unreadable) */
	if (rec.state == LK_SLOT_LIVE) {
		/* only reached once holder_state() proved (slot, gen) dead: it stays dead (H6) */
		rec.state = LK_SLOT_RECOVERING;
		rc = write_slot_rec(h, slot, &rec);
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
	rc = write_slot_rec(h, slot, &rec);
	if (!rc)
		host_trace(h, LK_TRACE_RECOVERED, slot, gen);
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
	uint64_t now = host_now(h);
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

static int lock_internal(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, bool fresh,
			 uint64_t *version, struct lk_holder *holder)
{
	unsigned b = lk_bucket_of(res, h->lay.nbuckets);
	struct dead_watch watch = { .on = false };
	struct lk_holder hold;
	struct backoff bo;
	int rc;

	backoff_init(h, &bo, 500, 50, 150);
	for (;;) {
		struct local_lock **pp, *loc;
		struct owner dead = { 0, 0 };
		uint64_t ver = 0;

		if (!lk_write_ok(h))
			return -ENOLCK;
		memset(&hold, 0, sizeof(hold));
		pthread_mutex_lock(&h->bucket_mu[b]);
		pthread_mutex_lock(&h->mu);
		loc = *local_slot(h, res);
		if (loc) {
			if (fresh || !(loc->mode == mode || loc->mode == LK_EX)) {
				hold.slot = h->slot;
				hold.gen = h->gen;
				hold.mode = loc->mode;
				memcpy(hold.hostname, h->hostname, 64);
				rc = -EBUSY;
			} else {
				loc->refs++;
				ver = loc->version;
				rc = 0;
			}
			pthread_mutex_unlock(&h->mu);
			pthread_mutex_unlock(&h->bucket_mu[b]);
			if (!rc && version)
				*version = ver;
			if (rc && holder)
				*holder = hold;
			return rc;
		}
		pthread_mutex_unlock(&h->mu);
		rc = lock_attempt(h, b, res, mode, flags, &ver, &hold, &dead);
		if (!rc) {
			loc = calloc(1, sizeof(*loc));
			if (!loc) {
				rc = -ENOMEM;   /* on disk but not in memory: give it back */
				unlock_attempt(h, b, res, false, NULL);
			} else {
				*loc = (struct local_lock){ .res = res, .mode = mode, .version = ver, .refs = 1 };
				pthread_mutex_lock(&h->mu);
				pp = local_slot(h, res);
				*pp = loc;
				pthread_mutex_unlock(&h->mu);
			}
		}
		pthread_mutex_unlock(&h->bucket_mu[b]);
		if (!rc) {
			if (version)
				*version = ver;
			return 0;
		}
		if (rc == LK_NEED_RECOVERY) {
			rc = -EBUSY;
			if (h->recover && !fresh) {
				rc = recover_slot(h, dead.slot, dead.gen);
				if (!rc)
					continue;
			}
		}
		if (rc == -EBUSY && (flags & LK_WAIT)) {
			backoff_sleep(h, &bo);
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

int lk_lock(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, uint64_t *version,
	    struct lk_holder *holder)
{
	if (mode != LK_EX && mode != LK_SH && mode != LK_MW)
		return -EINVAL;
	return lock_internal(h, res, mode, flags, false, version, holder);
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
		rc = lk_write_ok(h) ? unlock_attempt(h, b, res, bump, version) : -ENOLCK;
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
	tbuf = buf_alloc(2 * LK_TABLE_BYTES);
	if (t && tbuf && !table_read(h, b, tbuf, t)) {
		for (unsigned i = 0; i < t->n && !wanted; i++) {
			const struct entry *e = &t->e[i];
			enum holder_state st;

			if (e->res != res || !e->want || (e->slot == h->slot && e->gen == h->gen) ||
			    !modes_conflict(e->mode, held))
				continue;
			wanted = !holder_state(h, e->slot, e->gen, &st, NULL) && st != HS_STALE;
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
	void *tbuf = buf_alloc(2 * LK_TABLE_BYTES);
	int rc = t && tbuf ? 0 : -ENOMEM;

	if (!rc)
		rc = table_read(h, b, tbuf, t);
	for (unsigned i = 0; !rc && i < t->n; i++) {
		const struct entry *e = &t->e[i];
		enum holder_state st;
		char name[64];

		if (e->res != res || e->want || !e->mode || (e->slot == h->slot && e->gen == h->gen))
			continue;
		rc = holder_state(h, e->slot, e->gen, &st, name);
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

		if ((recover && s == h->slot) || hb_decode(region + (size_t)s * h->g.slot_size, s, &rec) < 0 ||
		    rec.state == LK_SLOT_FREE)
			continue;
		st = observe(h, s, rec.gen, &rec, t_sub, t_done);
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
static int read_region(struct lk_host *h, uint8_t *region, bool recover)
{
	uint64_t t_sub = host_now(h), t_done;
	int rc = host_read(h, h->g.hb_off, region, (size_t)h->g.nslots * h->g.slot_size);

	t_done = host_now(h);
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
	region = buf_alloc((size_t)h->g.nslots * h->g.slot_size);
	if (!region)
		return -ENOMEM;
	rc = read_region(h, region, true);
	free(region);
	return rc;
}

/* ---- heartbeats: join, renew, leave (H1-H6) ---- */

static bool rec_is_ours(const struct lk_host *h, const struct slot_rec *r)
{
	return r->state == LK_SLOT_LIVE && r->gen == h->gen && !memcmp(r->uuid, h->uuid, 16);
}

static void watchdog_pet(struct lk_host *h)
{
	if (h->wd_fd >= 0 && write(h->wd_fd, "\0", 1) != 1) {
		/* nothing to do: a watchdog that misses pets resets the machine, which is safe */
	}
}

int lk_renew(struct lk_host *h)
{
	struct slot_rec rec;
	uint64_t t_sub, t_done;
	void *buf;
	int rc;

	buf = buf_alloc(h->g.sector_size);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&h->hb_mu);
	if (!lk_write_ok(h)) {
		rc = -ENOLCK;
		goto out;
	}
	rc = read_slot(&h->io, &h->g, h->slot, buf, &rec);
	if (rc == -EIO || rc == -ENOMEM)
		goto out;       /* no write happened: the deadline decides */
	if (rc < 0 || !rec_is_ours(h, &rec)) {
		fence(h);       /* H3: someone else wrote our slot; never overwrite it */
		rc = -ENOLCK;
		goto out;
	}
	rec.counter = ++h->counter;
	memcpy(rec.hostname, h->hostname, 64);
	hb_encode(buf, h->slot, &rec);
	t_sub = host_now(h);
	if (!lk_write_ok(h)) {
		rc = -ENOLCK;
		goto out;
	}
	rc = h->io.write(h->io.ctx, h->g.hb_off + (uint64_t)h->slot * h->g.slot_size, buf, h->g.sector_size);
	t_done = host_now(h);
	if (rc < 0 || t_done - t_sub > (uint64_t)h->t.io_timeout_ms * NS_PER_MS || !lk_write_ok(h)) {
		/* a failed or late heartbeat: stop rather than queue another write behind it */
		fence(h);
		rc = -ENOLCK;
		goto out;
	}
	atomic_store(&h->deadline_ns, t_sub + (uint64_t)h->t.fence_ms * NS_PER_MS);    /* H4 */
	watchdog_pet(h);
	rc = 0;
out:
	pthread_mutex_unlock(&h->hb_mu);
	free(buf);
	return rc;
}

static void *renew_main(void *arg)
{
	struct lk_host *h = arg;
	uint64_t period = (uint64_t)h->t.interval_ms * NS_PER_MS, next = host_now(h);

	while (!atomic_load(&h->stop)) {
		uint64_t now = host_now(h);

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

		t0 = host_now(h);
		rc = read_slot(&h->io, &h->g, s, sbuf, &rec);
		t1 = host_now(h);
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
		hb_encode(sbuf, s, &claim);
		atomic_store(&h->deadline_ns, t1 + (uint64_t)h->t.fence_ms * NS_PER_MS);
		rc = host_write(h, h->g.hb_off + (uint64_t)s * h->g.slot_size, sbuf, h->g.sector_size);
		t2 = host_now(h);
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
		rc = read_slot(&h->io, &h->g, s, sbuf, &rec);
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

	region = buf_alloc(rlen);
	sbuf = buf_alloc(h->g.sector_size);
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
		rc = read_region(h, region, false);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: reading the heartbeat region: %s", strerror(-rc));
			goto out;
		}
		start = (unsigned)(host_rand(h) % h->g.nslots);
		for (unsigned i = 0; i < h->g.nslots; i++) {
			unsigned s = (start + i) % h->g.nslots;
			bool preferred = prefer && (prefer[s / 8] >> (s % 8)) & 1;
			struct slot_rec rec;

			if (preferred == others || hb_decode(region + (size_t)s * h->g.slot_size, s, &rec) < 0 ||
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

static void host_free(struct lk_host *h)
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

static int host_alloc(const struct lk_io *io, const struct lk_geometry *g, const struct lk_timing *t,
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
		host_free(h);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < lay->nbuckets; i++)
		pthread_mutex_init(&h->bucket_mu[i], NULL);
	for (unsigned i = 0; i < lay->ngroups; i++)
		pthread_mutex_init(&h->group_mu[i], NULL);
	*out = h;
	return 0;
}

/* Loads our dblock sectors (M2: only we write them, so this copy stays current). */
static int load_dsects(struct lk_host *h, char *err, size_t errlen)
{
	uint32_t ss = h->g.sector_size;

	for (unsigned k = 0; k < h->lay.ngroups; k++) {
		int rc;

		h->dsect[k] = buf_alloc(ss);
		if (!h->dsect[k])
			return -ENOMEM;
		rc = host_read(h, h->g.lock_off + lk_layout_group(&h->lay, k) + (uint64_t)h->slot * ss, h->dsect[k],
			       ss);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: reading the dblocks of slot %u: %s", h->slot, strerror(-rc));
			return rc;
		}
		rc = dsect_check(h->dsect[k], ss, h->slot, k);
		if (rc < 0) {
			base_set_err(err, errlen, 0, "lockmgr: dblock sector of slot %u, group %u: %s", h->slot, k,
				rc == -EBADMSG ? "bad checksum" : "malformed");
			return -EUCLEAN;
		}
	}
	return 0;
}

/* 0, or -errno: a host asked to run with a watchdog does not run without one. */
static int watchdog_open(struct lk_host *h, const char *path)
{
	int secs = (int)base_max(1u, h->t.fence_ms / 1000);

	h->wd_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (h->wd_fd < 0)
		return -errno;
	/* fire no later than the fence deadline after the last pet (best effort: a file has no ioctl) */
	(void)ioctl(h->wd_fd, WDIOC_SETTIMEOUT, &secs);
	watchdog_pet(h);
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
	rc = geometry_check(g, &lay, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = host_alloc(io, g, t, &lay, &h);
	if (rc < 0)
		return rc;
	io_random(io, &h->rng, sizeof(h->rng));
	h->rng |= 1;
	io_random(io, h->uuid, sizeof(h->uuid));
	if (o->hostname)
		memcpy(h->hostname, o->hostname, strnlen(o->hostname, 63));
	h->recover = o->recover;
	h->recover_arg = o->recover_arg;
	h->trace = o->trace;
	h->trace_arg = o->trace_arg;
	h->faults = o->test_faults;

	rbuf = buf_alloc(g->sector_size);
	if (!rbuf) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = io->read(io->ctx, g->lock_off, rbuf, g->sector_size);
	if (rc < 0) {
		base_set_err(errbuf, errlen, 0, "lockmgr: reading the lock region header: %s", strerror(-rc));
		goto err_free;
	}
	rc = region_decode(rbuf, g, &lay, errbuf, errlen);
	if (rc < 0)
		goto err_free;
	rc = claim_slot(h, o->prefer, errbuf, errlen);
	if (rc < 0)
		goto err_free;
	rc = load_dsects(h, errbuf, errlen);
	if (rc < 0)
		goto err_free_slot;
	if (o->watchdog) {
		rc = watchdog_open(h, o->watchdog);
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

		write_slot_rec(h, h->slot, &rec);
	}
err_free:
	free(rbuf);
	host_free(h);
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
			fence(h);       /* cannot release cleanly: leave the slot to recovery */
	}
	if (h->renew_running) {
		atomic_store(&h->stop, true);
		pthread_join(h->renew_thread, NULL);
		h->renew_running = false;
	}
	pthread_mutex_lock(&h->hb_mu);
	if (lk_write_ok(h)) {
		struct slot_rec rec = { .state = LK_SLOT_FREE, .gen = h->gen };

		write_slot_rec(h, h->slot, &rec);       /* H2: gen kept, the next claim gets gen + 1 */
		if (h->wd_fd >= 0 && write(h->wd_fd, "V", 1) != 1) {
			/* the watchdog stays armed: the machine resets, which is safe */
		}
	}
	pthread_mutex_unlock(&h->hb_mu);
	host_free(h);
}

/* ---- inspection without joining ---- */

static int format(const struct lk_io *io, const struct lk_geometry *g, bool zeroed)
{
	const size_t chunk = 1 << 20;
	struct lk_region_disk *rg;
	struct lk_layout lay;
	uint8_t *zero;
	int rc;

	rc = geometry_check(g, &lay, NULL, 0);
	if (rc < 0)
		return rc;
	zero = buf_alloc(chunk);
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
	uint8_t *region = buf_alloc(rlen), *sbuf = buf_alloc(g->sector_size);
	int rc = -ENOMEM;

	if (!region || !sbuf)
		goto out;
	rc = io->read(io->ctx, g->hb_off, region, rlen);
	if (rc < 0)
		goto out;
	for (unsigned s = 0; s < g->nslots; s++) {
		errs[s] = hb_decode(region + (size_t)s * g->slot_size, s, &recs[s]);
		if (errs[s] == -EBADMSG) {
			rc = read_slot(io, g, s, sbuf, &recs[s]);
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
	rc = geometry_check(g, &lay, NULL, 0);
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

	rc = geometry_check(g, &lay, NULL, 0);
	if (rc < 0)
		return rc;
	recs = calloc(g->nslots, sizeof(*recs));
	errs = calloc(g->nslots, sizeof(*errs));
	t = malloc(sizeof(*t));
	tbuf = buf_alloc(2 * LK_TABLE_BYTES);
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
			rc = table_pick(tbuf, b, g->nslots, t);
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
			if (fn(arg, t->e[i].res, &hold, t->e[i].version))
				goto out;
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

	rc = geometry_check(g, &lay, err, sizeof(err));
	if (rc < 0) {
		problem(fn, arg, &bad, "%s", err);
		return -EUCLEAN;
	}
	recs = calloc(g->nslots, sizeof(*recs));
	errs = calloc(g->nslots, sizeof(*errs));
	t = malloc(sizeof(*t));
	buf = buf_alloc(base_max((size_t)g->nslots * ss, 2 * LK_TABLE_BYTES));
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
	if (region_decode(buf, g, &lay, err, sizeof(err)) < 0)
		problem(fn, arg, &bad, "%s", err);
	for (unsigned b = 0; b < lay.nbuckets; b++) {
		struct leader l;
		int r0, r1;

		rc = io->read(io->ctx, g->lock_off + lk_layout_leader(&lay, b), buf, ss);
		if (rc < 0)
			goto out;
		r0 = leader_decode(buf, b, g->nslots, &l);
		if (r0 < 0)
			problem(fn, arg, &bad, "lockmgr: bucket %u: leader: %s", b, decode_err(r0));
		rc = io->read(io->ctx, g->lock_off + lk_layout_table(&lay, b), buf, 2 * LK_TABLE_BYTES);
		if (rc < 0)
			goto out;
		/* one torn copy is an unfinished update (T2); both unusable, or a malformed one, is damage */
		r0 = table_decode(buf, b, 0, g->nslots, t);
		r1 = table_decode(buf + LK_TABLE_BYTES, b, 1, g->nslots, t);
		if (r0 == -EUCLEAN || r1 == -EUCLEAN || (r0 < 0 && r1 < 0))
			problem(fn, arg, &bad, "lockmgr: bucket %u: table copies %s, %s", b,
				r0 < 0 ? decode_err(r0) : "ok", r1 < 0 ? decode_err(r1) : "ok");
		if (table_pick(buf, b, g->nslots, t) == 0) {
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
			int r = dsect_check(buf + (size_t)s * ss, ss, s, k);

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
