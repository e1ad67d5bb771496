/*
 * lockmgr's private header, included by the files of lockmgr/ only: the
 * in-memory forms of the on-disk records, the joined host (struct lk_host),
 * and the functions those files share (prefix lm_). The API is
 * lockmgr/lockmgr.h, the on-disk structs are in lockmgr/lockmgr_format.h, and
 * the invariants (H, M, T, W, R) are argued in docs/LOCKING.md. Each file
 * calls only files before it in this order: ondisk, host, liveness, paxos,
 * table, lock, watchdog, heartbeat, inspect.
 */
#ifndef VMFS_LOCKMGR_I_H
#define VMFS_LOCKMGR_I_H

#include "lockmgr/lockmgr.h"
#include "lockmgr/lockmgr_format.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS ((uint64_t)1000000)
#define LK_DRIFT_PPM 10000ull           /* clock-rate drift bound: 1% */
#define LK_LOCAL_HASH 256u
#define LK_REREAD_TRIES 3

struct slot_rec {
	enum lk_slot_state state;
	uint64_t gen;
	uint8_t uuid[16];
	uint64_t counter;
	char hostname[64];
};

struct leader {
	uint64_t lver;
	unsigned slot;
	uint64_t gen;
	bool released;
};

struct dblock {
	uint64_t mbal, bal, lver, inp_gen;
	unsigned inp_slot;
	bool has_inp;
};

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

struct backoff {
	uint64_t cur, max;
	unsigned grow;
};

enum holder_state { HS_ALIVE, HS_DEAD, HS_STALE, HS_RECOVERING };

struct owner {
	unsigned slot;
	uint64_t gen;
};

#define LK_NEED_RECOVERY 1

/* ondisk.c */
int lm_geometry_check(const struct lk_geometry *g, struct lk_layout *l, char *err, size_t errlen);
int lm_hb_decode(const void *buf, unsigned slot, struct slot_rec *r);
void lm_hb_encode(void *buf, unsigned slot, const struct slot_rec *r);
int lm_leader_decode(const void *buf, unsigned bucket, unsigned nslots, struct leader *l);
void lm_leader_encode(void *buf, unsigned bucket, const struct leader *l);
int lm_dsect_check(const void *buf, uint32_t ss, unsigned slot, unsigned group);
void lm_dsect_get(const void *buf, unsigned idx, struct dblock *d);
void lm_dsect_put(void *buf, uint32_t ss, unsigned slot, uint64_t gen, unsigned group, unsigned idx,
		  const struct dblock *d);
int lm_table_decode(const void *buf, unsigned bucket, unsigned copy, unsigned nslots, struct table *t);
int lm_table_pick(const void *buf, unsigned bucket, unsigned nslots, struct table *t);
void lm_table_encode(void *buf, unsigned bucket, unsigned copy, const struct table *t, unsigned slot,
		     uint64_t gen);
int lm_region_decode(const void *buf, const struct lk_geometry *g, const struct lk_layout *l,
		     char *err, size_t errlen);
int lm_read_slot(const struct lk_io *io, const struct lk_geometry *g, unsigned slot, void *buf,
		 struct slot_rec *r);

/* host.c */
void *lm_buf_alloc(size_t len);
void lm_io_random(const struct lk_io *io, void *buf, size_t len);
uint64_t lm_host_now(struct lk_host *h);
uint64_t lm_host_rand(struct lk_host *h);
void lm_host_trace(struct lk_host *h, enum lk_trace_event ev, unsigned bucket, uint64_t lver);
void lm_fence(struct lk_host *h);
int lm_host_read(struct lk_host *h, uint64_t off, void *buf, size_t len);
int lm_host_write(struct lk_host *h, uint64_t off, const void *buf, size_t len);
void lm_backoff_init(struct lk_host *h, struct backoff *bo, uint64_t start_us, uint64_t max_ms, unsigned grow);
void lm_backoff_sleep(struct lk_host *h, struct backoff *bo);
int lm_write_slot_rec(struct lk_host *h, unsigned slot, const struct slot_rec *r);
void lm_host_free(struct lk_host *h);
int lm_host_alloc(const struct lk_io *io, const struct lk_geometry *g, const struct lk_timing *t,
		  const struct lk_layout *lay, struct lk_host **out);

/* liveness.c */
enum holder_state lm_observe(struct lk_host *h, unsigned slot, uint64_t gen, const struct slot_rec *rec,
			     uint64_t t_sub, uint64_t t_done);
int lm_holder_state(struct lk_host *h, unsigned slot, uint64_t gen, enum holder_state *st, char *hostname);

/* paxos.c */
int lm_mutex_acquire(struct lk_host *h, unsigned b, uint64_t *lver_out);
int lm_mutex_release(struct lk_host *h, unsigned b, uint64_t lver);

/* table.c */
int lm_table_read(struct lk_host *h, unsigned b, void *buf, struct table *t);
int lm_table_write(struct lk_host *h, unsigned b, void *buf, struct table *t);
void lm_table_del_or_drop(struct table *t, unsigned i);
bool lm_modes_conflict(unsigned a, unsigned b);
int lm_lock_attempt(struct lk_host *h, unsigned b, uint64_t res, unsigned mode, unsigned flags,
		    uint64_t *version, struct lk_holder *holder, struct owner *dead);
int lm_unlock_attempt(struct lk_host *h, unsigned b, uint64_t res, bool bump, uint64_t *version);

/* lock.c */
int lm_read_region(struct lk_host *h, uint8_t *region, bool recover);

/* watchdog.c */
void lm_watchdog_pet(struct lk_host *h);
int lm_watchdog_open(struct lk_host *h, const char *path);
void lm_watchdog_disarm(struct lk_host *h);

#endif
