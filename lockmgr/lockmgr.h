/*
 * lockmgr: how hosts that share one LUN agree on who owns what, through the
 * disk alone. Three layers, each specified with numbered invariants in
 * docs/LOCKING.md:
 *
 *   heartbeats   one slot per host, claimed with a delta lease (Chockler and
 *                Malkhi: write, wait, read back) and renewed on an interval;
 *                a host is alive while its renewal counter keeps changing, as
 *                judged on the observer's own monotonic clock.
 *   bucket mutex one Disk Paxos instance (Gafni and Lamport) per lock-table
 *                bucket, held only while that bucket's table is rewritten.
 *   lock table   records (resource, mode, owner slot, owner generation,
 *                version). A record is valid exactly as long as its owner's
 *                heartbeat lives, so holding a lock costs no I/O.
 *
 * lockmgr knows nothing of vmfs: it reads and writes sectors through struct
 * lk_io, and reads its clock through it, so the same code runs on a device, on
 * a shared file, and in the simulator of tests/unit/lockmgr/sim.c.
 */
#ifndef VMFS_LOCKMGR_H
#define VMFS_LOCKMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Storage and time, provided by the caller. read and write move whole sectors
 * (off and len multiples of lk_geometry.sector_size, buf aligned to 4096 so
 * O_DIRECT works) and return 0 or a negative errno; a write that returned 0 is
 * visible to every host. A write must not still be in flight when it returns:
 * an I/O that times out in the caller's layer returns an error only once the
 * request is dead. now_ns is a monotonic clock of this host only; sleep_ns
 * sleeps on it. All may block and are called from any thread that calls into
 * lockmgr. random (may be NULL: getrandom(2)) fills buf; the simulator makes
 * it deterministic.
 */
struct lk_io {
	void *ctx;
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len);
	int (*write)(void *ctx, uint64_t off, const void *buf, size_t len);
	uint64_t (*now_ns)(void *ctx);
	void (*sleep_ns)(void *ctx, uint64_t ns);
	void (*random)(void *ctx, void *buf, size_t len);
};

/* Where lockmgr's regions live on the LUN; fixed at mkfs. */
struct lk_geometry {
	uint32_t sector_size;   /* 512 or 4096: the unit of atomic writes */
	uint32_t nslots;        /* heartbeat slots, 1 .. LK_MAX_SLOTS */
	uint32_t slot_size;     /* bytes per heartbeat slot: max(512, sector_size) */
	uint64_t hb_off;        /* heartbeat region: nslots * slot_size bytes */
	uint64_t lock_off;      /* lock region: lk_lock_region_size() bytes */
	uint64_t lock_len;
};
#define LK_MAX_SLOTS 2048u

/*
 * Cluster timings, fixed at mkfs and stored on disk so all hosts agree. Safety
 * needs fence_ms + io_timeout_ms, stretched by the clock-drift bound, to stay
 * below dead_ms (lk_timing_check); docs/LOCKING.md gives the argument.
 */
struct lk_timing {
	uint32_t interval_ms;   /* heartbeat renewal period (default 1000) */
	uint32_t dead_ms;       /* unchanged this long: the host is dead (8000) */
	uint32_t fence_ms;      /* no renewal this long: stop writing (5000) */
	uint32_t io_timeout_ms; /* bound on any one I/O (2000) */
};
void lk_timing_default(struct lk_timing *t);
/* 0, or -EINVAL with a reason in errbuf if the timings are unsafe. */
int lk_timing_check(const struct lk_timing *t, char *errbuf, size_t errlen);

/* Bytes of lock region for nbuckets buckets (mkfs picks nbuckets). */
uint64_t lk_lock_region_size(uint32_t nslots, uint32_t sector_size, uint32_t nbuckets);
/* Writes the empty heartbeat and lock regions (mkfs). */
int lk_format(const struct lk_io *io, const struct lk_geometry *g);
/* As lk_format, for regions the caller has already zeroed (mkfs: a lazy format writes KiB, not MiB). */
int lk_format_header(const struct lk_io *io, const struct lk_geometry *g);

/* ---- joined hosts ---- */

struct lk_host;

enum lk_mode {
	LK_EX = 1,      /* exclusive: one host */
	LK_SH = 2,      /* shared read-only: many hosts, no writer */
	LK_MW = 3,      /* multi-writer: many hosts that coordinate among themselves */
};

/*
 * Resource ids: a 8-bit namespace and a 56-bit id. vmfs uses LK_NS_INODE with
 * the inode number, LK_NS_RC with the resource-cluster index, and LK_NS_META
 * for its global metadata lock; LK_NS_SLOT is lockmgr's own (recovery of a dead
 * slot).
 */
enum lk_ns { LK_NS_SLOT = 1, LK_NS_META = 2, LK_NS_INODE = 3, LK_NS_RC = 4, LK_NS_USER = 0x80 };
#define LK_RES(ns, id) (((uint64_t)(ns) << 56) | ((uint64_t)(id) & ((1ull << 56) - 1)))

/*
 * Called when a lock this host needs is held by a dead host that has not been
 * recovered: the caller replays slot's journal (vmfs) and returns 0, or a
 * negative errno to abandon the recovery (another host will retry). lockmgr
 * holds the slot's recovery lock around the call, so at most one live host
 * recovers a slot at a time; afterwards it drops every lock of (slot, gen)
 * and marks the slot free. Runs in the thread of the lk_lock or
 * lk_recover_dead call, with no lockmgr mutex held: it may take other locks,
 * but not one the dead host holds (those wait for this very recovery). It may
 * run again for the same (slot, gen) if a recoverer dies: it must be
 * idempotent (journal replay is).
 */
typedef int (*lk_recover_fn)(void *arg, unsigned slot, uint64_t gen);

/*
 * Protocol events, for checkers (the simulator) and debugging: called in the
 * thread making the transition, with no lockmgr lock other than the bucket's
 * own local mutex held; must not call into lockmgr. MUTEX_ACQUIRED after the
 * winning leader record is written, MUTEX_RELEASED just before the release is
 * submitted, RECOVERED after a dead slot was freed (arg = its slot).
 */
enum lk_trace_event { LK_TRACE_MUTEX_ACQUIRED = 1, LK_TRACE_MUTEX_RELEASED = 2, LK_TRACE_RECOVERED = 3 };
typedef void (*lk_trace_fn)(void *arg, enum lk_trace_event ev, unsigned bucket, uint64_t lver);

/*
 * Deliberate protocol breakage, for tests that prove the checkers can fail.
 * Never set outside tests.
 */
enum lk_test_faults {
	LK_FAULT_SKIP_DELTA_DELAY = 1u << 0,    /* join reads back at once */
	LK_FAULT_SKIP_PHASE1 = 1u << 1,         /* Disk Paxos without phase 1 */
};

struct lk_join_opts {
	const char *hostname;   /* shown by vmfsctl hosts; truncated to 63 bytes */
	lk_recover_fn recover;  /* may be NULL: then a dead holder is reported as -EBUSY */
	void *recover_arg;
	bool no_renew_thread;   /* the caller calls lk_renew() itself (simulator) */
	const char *watchdog;   /* path of a watchdog device to pet, or NULL */
	lk_trace_fn trace;      /* may be NULL */
	void *trace_arg;
	unsigned test_faults;   /* enum lk_test_faults; 0 */
	/*
	 * Free slots to claim first, a bit per slot (bit s of byte s / 8), or NULL.
	 * Borrowed for the call. vmfs names the slots that already have a journal,
	 * so that joining reuses one instead of allocating another.
	 */
	const uint8_t *prefer;
};

/*
 * Joins the cluster: claims a free heartbeat slot with a delta lease (takes
 * lk_join_delay_ms() plus a few I/Os: 2.3 s with the default timings), a
 * preferred one (o->prefer) when one is free, gives
 * it a fresh host UUID and the next generation, and starts the renewal
 * thread. *out is the caller's until lk_leave(). Errors: -ENOSPC (no free
 * slot), -EIO, -EINVAL (bad geometry, timings or unformatted region),
 * -EUCLEAN (a corrupt record of ours). errbuf gets one line on failure.
 */
int lk_join(const struct lk_io *io, const struct lk_geometry *g, const struct lk_timing *t,
	    const struct lk_join_opts *o, struct lk_host **out, char *errbuf, size_t errlen);
/*
 * Releases every lock this host holds, stops renewing, marks the slot free
 * (unless fenced: then nothing is written and the slot waits for recovery),
 * closes the watchdog ('V' first unless fenced) and frees h. NULL is a no-op.
 * No other call on h may run concurrently or follow.
 */
void lk_leave(struct lk_host *h);

/* The wait between writing a slot claim and reading it back (from io_timeout_ms). */
uint32_t lk_join_delay_ms(const struct lk_timing *t);

unsigned lk_host_slot(const struct lk_host *h);
uint64_t lk_host_gen(const struct lk_host *h);
void lk_host_uuid(const struct lk_host *h, uint8_t uuid[16]);

/*
 * Whether (slot, gen) is provably no longer a member: its slot is free, holds
 * another generation, or lies beyond the region. Returns 1 if so, 0 if it may
 * still live (a host that died but is not yet recovered counts as living), or
 * -errno. Reads that one slot, not the region. For records outside lockmgr's
 * tables that name a host (vmfs: the owner of a resource cluster).
 */
int lk_owner_stale(struct lk_host *h, unsigned slot, uint64_t gen);

/*
 * One renewal: writes the heartbeat if its deadline allows (the renewal thread
 * calls this every interval_ms). Returns 0, or -ENOLCK once the host is fenced.
 */
int lk_renew(struct lk_host *h);

/*
 * Fencing. A write to the datastore may be submitted only while
 * lk_write_ok(h) holds: now is before the fence deadline (the submit time of
 * the last successful renewal plus fence_ms). Once false it stays false and
 * every lockmgr call returns -ENOLCK. Cheap: one clock read, no lock.
 */
bool lk_write_ok(struct lk_host *h);
bool lk_fenced(struct lk_host *h);

/* Who holds a resource, for messages and vmfsctl locks. */
struct lk_holder {
	unsigned slot;
	uint64_t gen;
	enum lk_mode mode;
	char hostname[64];      /* from the holder's heartbeat slot, "" if unknown */
};

enum lk_lock_flags {
	LK_WAIT = 1u << 0,      /* wait for a live holder to let go, or to die (then recover) */
	/*
	 * Wait only for a holder that may be dead: one whose heartbeat this call
	 * has not seen change. It is watched on this host's clock, polled every
	 * half heartbeat interval, for up to dead_ms plus two intervals and an
	 * I/O timeout, until it is proven dead (then recovered, and the lock
	 * taken) or seen to renew (then -EBUSY at once). A process that starts
	 * just after another host was killed gets its locks without waiting for
	 * a bystander to prove the death. Ignored with LK_WAIT.
	 */
	LK_WAIT_DEAD = 1u << 1,
};

/*
 * Takes res in mode. Locks are per host, not per thread: a host that already
 * holds res in the same mode, or in LK_EX, gets a reference on what it holds
 * (lk_unlock drops one); holding it in another mode is -EBUSY naming this host
 * (there is no conversion: unlock first). Thread-safe; takes the bucket's
 * local mutex, never across the recover callback.
 * *version (may be NULL) gets the resource's version: it changes whenever an
 * exclusive holder unlocks with bump, so a cache tagged with it stays valid
 * while it is unchanged. Errors: -EBUSY (held by a live host in a conflicting
 * mode; *holder, may be NULL, names one), -ENOLCK (fenced), -ENOSPC (bucket
 * full), -EIO. May block for I/O; with LK_WAIT for as long as it takes,
 * with LK_WAIT_DEAD for up to about dead_ms + 2 * interval_ms + io_timeout_ms.
 */
int lk_lock(struct lk_host *h, uint64_t res, enum lk_mode mode, unsigned flags, uint64_t *version,
	    struct lk_holder *holder);
/*
 * Drops one reference; the last one removes the record, bumping the version if
 * bump. *version (may be NULL) gets the version the resource has afterwards.
 * -ENOENT if this host does not hold res; -ENOLCK if fenced (the local
 * reference is dropped anyway: the record on disk dies with the host's slot).
 */
int lk_unlock(struct lk_host *h, uint64_t res, bool bump, uint64_t *version);

/*
 * True when another live host waits for res (it called lk_lock with LK_WAIT
 * and found this host in the way: its want is recorded in the table). A
 * holder that caches a lock polls this and lets go. Reads res's bucket.
 */
bool lk_wanted(struct lk_host *h, uint64_t res);

/*
 * Whether another host that is not provably gone holds res (in any mode):
 * 1 with *holder (may be NULL) naming one, 0 if none, or -errno. Reads res's
 * bucket, takes nothing; a hint that holds while the holder keeps its lock
 * (vmfs: a file in use elsewhere is not deleted).
 */
int lk_held_elsewhere(struct lk_host *h, uint64_t res, struct lk_holder *holder);

/*
 * Recovers every other slot this host can prove dead: LIVE with a counter it
 * has watched stand still for dead_ms (on its own clock, over calls: the first
 * call only starts watching), or RECOVERING with nobody holding its recovery
 * lock. A dead host holding no lock anybody needs is otherwise never recovered
 * and its slot never freed: call this periodically (vmfs: housekeeping, or
 * when a join elsewhere reports -ENOSPC). Reads the heartbeat region once,
 * plus the recovery of each dead slot (see lk_recover_fn). Returns the number
 * of slots recovered, -EINVAL without a recover callback, -ENOLCK if fenced.
 */
int lk_recover_dead(struct lk_host *h);

/* ---- inspection without joining (vmfsctl, fsck) ---- */

enum lk_slot_state {
	LK_SLOT_FREE = 0,       /* never used, left cleanly, or recovered */
	LK_SLOT_LIVE = 1,       /* claimed; alive or dead depends on its renewals */
	LK_SLOT_RECOVERING = 2, /* its host died and a live host is replaying it */
};

struct lk_slot_info {
	unsigned slot;
	enum lk_slot_state state;
	uint64_t gen;
	uint8_t uuid[16];
	char hostname[64];
	uint64_t counter;       /* renewal counter */
	bool alive;             /* lk_watch_slots only: renewed while watched */
	double age_s;           /* lk_watch_slots only: seconds since the counter last changed,
				   a lower bound (the watch time) when it never did */
};

/*
 * Reads the used heartbeat slots into out (caller frees *out): every slot that
 * is not FREE with generation 0. Does not join and writes nothing.
 */
int lk_read_slots(const struct lk_io *io, const struct lk_geometry *g, struct lk_slot_info **out,
		  size_t *n);

/* Every lock record on disk, for vmfsctl locks; fn returns non-zero to stop, and that is returned. */
int lk_read_locks(const struct lk_io *io, const struct lk_geometry *g,
		  int (*fn)(void *arg, uint64_t res, const struct lk_holder *holder, uint64_t version),
		  void *arg);

/*
 * Like lk_read_slots, but watches the heartbeat region for watch_ms on this
 * host's clock and fills alive and age_s. fsck refuses to repair while any
 * slot is alive; vmfsctl hosts shows the age.
 */
int lk_watch_slots(const struct lk_io *io, const struct lk_geometry *g, uint32_t watch_ms,
		   struct lk_slot_info **out, size_t *n);

/* Checks the regions are well formed (fsck): 0, or -EUCLEAN with one line per problem via fn. */
int lk_check(const struct lk_io *io, const struct lk_geometry *g,
	     void (*fn)(void *arg, const char *problem), void *arg);

#endif
