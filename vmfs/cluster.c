/*
 * vmfs as one host among many on a shared LUN. A read-write open joins the
 * cluster through lockmgr (a heartbeat slot; its journal is that slot's), and
 * every metadata access runs under the cluster-wide metadata lock META, which
 * this host keeps cached until another host asks for it (docs/LOCKING.md,
 * "vmfs on lockmgr"). Invariants:
 *
 *  C1. Metadata (every block in the buffer cache, the superblock copy and the
 *      allocator's counters) is read only while this host holds META shared
 *      or exclusive, and changed only while it holds META exclusive.
 *  C2. META is let go only after the running transaction is committed, written
 *      in place, flushed, and the journal tail moved past it: a host holding no
 *      META has an empty journal. So a dead host's journal holds only
 *      transactions made under a META it still held when it died, over blocks
 *      nobody has changed since, and replaying it is safe.
 *  C3. On taking META the cache is kept only if META's version is the one this
 *      host saw when it last let go; otherwise every cached block and the
 *      allocator summary are dropped and read again. A host that changed
 *      metadata lets go with a version bump, and lockmgr bumps the version of
 *      an exclusive lock it takes from a dead host.
 *  C4. Every write to the device is submitted only while lk_write_ok() holds
 *      (the device's write gate): a fenced host writes nothing.
 *  C5. A file open for writing holds its inode's lock exclusive (or
 *      multi-writer); open for reading, shared.
 *  C6. A file's last name is not removed (unlink, rename over it) while
 *      another host holds a lock on it: EBUSY, as VMFS answers for a running
 *      VM's disk. This host's own opens keep it as an orphan instead.
 *
 *   none --cluster_meta(read)--> SH --cluster_meta(write)--> [let go] --> EX
 *   SH/EX --release poller sees another host waiting--> cluster_meta_release() --> none
 */
#include "vmfs/vmfs_i.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define META_RES LK_RES(LK_NS_META, 0)

/* Set while this thread holds fs->lock inside lk_lock(META): a recovery it triggers must not take it again. */
static __thread bool in_meta_lock;
#define POLL_MS 20u             /* how often a holder looks for hosts waiting on its locks */
#define MIN_HOLD_MS 5u          /* a fresh holder does some work before it yields */
#define SWEEP_INTERVALS 2u      /* heartbeat intervals between sweeps for dead hosts */
#define FILE_LOCK_PATIENCE_MS 1000u /* how long an open waits for another host's file lock to go */

/* ---- lockmgr's view of the device -------------------------------------------------- */

static int lkio_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	return dev_pread(((struct vmfs *)ctx)->dev, buf, len, off);
}

static int lkio_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	return dev_pwrite(((struct vmfs *)ctx)->dev, buf, len, off);
}

static uint64_t lkio_now(void *ctx)
{
	(void)ctx;
	return base_mono_ns();
}

static void lkio_sleep(void *ctx, uint64_t ns)
{
	(void)ctx;
	base_sleep_ns(ns);
}

void vmfs_cluster_io(struct vmfs *fs, struct lk_io *io, struct lk_geometry *g, struct lk_timing *t)
{
	const struct vmfs_sb_disk *sb = &fs->sb;

	*io = (struct lk_io){ .ctx = fs, .read = lkio_read, .write = lkio_write, .now_ns = lkio_now,
			      .sleep_ns = lkio_sleep };
	*g = (struct lk_geometry){
		.sector_size = le32_to_cpu(sb->sb_slot_size),
		.nslots = le32_to_cpu(sb->sb_host_slots),
		.slot_size = le32_to_cpu(sb->sb_slot_size),
		.hb_off = le64_to_cpu(sb->sb_hb_off),
		.lock_off = le64_to_cpu(sb->sb_lock_off),
		.lock_len = le64_to_cpu(sb->sb_lock_len),
	};
	*t = (struct lk_timing){
		.interval_ms = le32_to_cpu(sb->sb_hb_interval_ms),
		.dead_ms = le32_to_cpu(sb->sb_hb_dead_ms),
		.fence_ms = le32_to_cpu(sb->sb_fence_ms),
		.io_timeout_ms = le32_to_cpu(sb->sb_io_timeout_ms),
	};
}

static bool write_gate(void *arg)
{
	struct vmfs *fs = arg;
	return lk_write_ok(fs->lk);
}

/* ---- the cache under META (C3) -------------------------------------------------------- */

/* Drops every cached block and reloads the superblock and the allocator. fs->lock held, no transaction. */
static int cluster_invalidate(struct vmfs *fs)
{
	struct vbuf *sbb;
	int ret;

	if (fs->ndirty || fs->undo_list) {
		fs_err(fs, "internal: metadata cache invalidated with a transaction running");
		return -EIO;
	}
	ret = cache_drop_all(fs);
	if (ret)
		return ret;
	fs->redir_hint = 0; /* another host may have freed that table */
	ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret)
		return ret;
	memcpy(&fs->sb, sbb->data, sizeof(fs->sb));
	meta_put(fs, sbb);
	if (sb_geometry_error(&fs->sb)) {
		fs_err(fs, "superblock: %s", sb_geometry_error(&fs->sb));
		return -EUCLEAN;
	}
	alloc_release(fs);
	return alloc_init(fs);
}

/*
 * Makes sure this host holds META in a mode good for write (exclusive) or
 * read (shared or exclusive). Called with fs->lock held. Standalone and
 * read-only handles have nothing to take.
 */
int cluster_meta(struct vmfs *fs, bool write)
{
	enum lk_mode want = write ? LK_EX : LK_SH;
	struct lk_holder holder;
	uint64_t version = 0;
	int ret;

	if (!fs->lk)
		return 0;
	if (!lk_write_ok(fs->lk)) { /* fenced: what the cache says may be stale, and nothing may be written */
		if (!fs->fence_reported || fs->errbuf)
			fs_err(fs, "this host lost its heartbeat lease (fenced): the datastore is unavailable here until it is mounted again");
		fs->fence_reported = true;
		return -EIO;
	}
	if (fs->meta_mode == LK_EX || (fs->meta_mode == LK_SH && !write))
		return 0;
	if (fs->meta_mode) { /* shared, exclusive wanted: let go first (nothing to write back) */
		ret = cluster_meta_release(fs);
		if (ret)
			return ret;
	}
	in_meta_lock = true;
	ret = lk_lock(fs->lk, META_RES, want, LK_WAIT, &version, &holder);
	in_meta_lock = false;
	if (ret) {
		fs_err(fs, "cannot take the metadata lock: %s", ret == -ENOLCK ? "this host is fenced" : strerror(-ret));
		return -EIO;
	}
	fs->meta_mode = want;
	fs->meta_since_ns = base_mono_ns();
	fs->meta_changed = fs->recovered; /* a replayed journal changed blocks: others must reread */
	fs->recovered = false;
	if (version != fs->meta_version || !version) {
		ret = cluster_invalidate(fs);
		if (ret) {
			lk_unlock(fs->lk, META_RES, false, NULL);
			fs->meta_mode = 0;
			fs->meta_version = 0;
			return ret;
		}
		fs->meta_version = version;
	}
	return 0;
}

/* C2: commit, write in place, flush, move the tail; then let META go. fs->lock held. */
int cluster_meta_release(struct vmfs *fs)
{
	uint64_t version = fs->meta_version;
	int ret = 0;

	if (!fs->lk || !fs->meta_mode)
		return 0;
	if (fs->meta_mode == LK_EX) {
		ret = journal_checkpoint(fs);
		if (ret) /* keep the lock: what is not in place must not be seen (it goes with our heartbeat) */
			return ret;
	}
	ret = lk_unlock(fs->lk, META_RES, fs->meta_changed, &version);
	fs->meta_mode = 0;
	fs->meta_version = ret ? 0 : version;
	return ret;
}

/* ---- the poller: yield META to a host that waits for it --------------------------- */

/*
 * Also the sweep: every SWEEP_INTERVALS heartbeat intervals it asks lockmgr to
 * recover hosts that died holding nothing anybody asked for (their slots and
 * orphan lists would otherwise wait for the next host that needs them).
 */
static void *poller(void *arg)
{
	struct vmfs *fs = arg;
	uint64_t next_sweep = 0;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stopping) {
		struct timespec ts;

		if (base_mono_ns() >= next_sweep) {
			next_sweep = base_mono_ns() + SWEEP_INTERVALS * 1000000ull *
						  le32_to_cpu(fs->sb.sb_hb_interval_ms);
			pthread_mutex_unlock(&fs->lock);
			lk_recover_dead(fs->lk); /* errors: the next sweep tries again */
			pthread_mutex_lock(&fs->lock);
			continue;
		}

		ts = base_mono_deadline(POLL_MS);
		pthread_cond_timedwait(&fs->poll_cond, &fs->lock, &ts);
		if (!fs->stopping && fs->key) { /* an encrypted datastore: a key change another host began */
			pthread_mutex_unlock(&fs->lock);
			crypt_poll(fs);
			pthread_mutex_lock(&fs->lock);
		}
		if (fs->stopping || !fs->meta_mode || lk_fenced(fs->lk))
			continue;
		if (base_mono_ns() - fs->meta_since_ns < MIN_HOLD_MS * 1000000ull)
			continue;
		pthread_mutex_unlock(&fs->lock); /* the check reads the disk: let operations run meanwhile */
		bool wanted = lk_wanted(fs->lk, META_RES);
		pthread_mutex_lock(&fs->lock);
		if (wanted && fs->meta_mode && !fs->op_active)
			cluster_meta_release(fs);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

/* ---- recovery of a dead host (called by lockmgr inside lk_lock) ------------------- */

/*
 * The dead host's locks still stand while this runs, so by C2 whatever its
 * journal holds covers blocks nobody changed since. fs->lock guards this
 * host's journal state, which journal_recover() sets aside meanwhile; it is
 * already held when the recovery comes from cluster_meta().
 */
static int recover_slot(void *arg, unsigned slot, uint64_t gen)
{
	struct vmfs *fs = arg;
	bool take = !in_meta_lock;
	int ret;

	(void)gen;
	if (take)
		pthread_mutex_lock(&fs->lock);
	ret = journal_recover(fs, slot);
	fs->meta_version = 0; /* blocks changed under us: the cache goes (C3) */
	fs->recovered = true;
	if (take)
		pthread_mutex_unlock(&fs->lock);
	return ret;
}

/* ---- join and leave ----------------------------------------------------------------- */

/* This machine's name: its host name, or where there is none (an initramfs says "(none)") its machine id. */
static void machine_name(char *buf, size_t len)
{
	char id[64];
	FILE *f;

	if (gethostname(buf, len))
		buf[0] = 0;
	buf[len - 1] = 0;
	if (buf[0] && strcmp(buf, "(none)"))
		return;
	snprintf(buf, len, "localhost");
	f = fopen("/etc/machine-id", "re");
	if (!f)
		return;
	if (fgets(id, sizeof(id), f) && strspn(id, "0123456789abcdef") >= 12)
		snprintf(buf, len, "machine-%.12s", id);
	fclose(f);
}

void vmfs_host_name(char *buf, size_t len, const char *detail)
{
	char machine[64];
	int n;

	machine_name(machine, sizeof(machine));
	if (detail)
		n = snprintf(buf, len, "%s (%s pid %d, %s)", machine, program_invocation_short_name, (int)getpid(),
			     detail);
	else
		n = snprintf(buf, len, "%s (%s pid %d)", machine, program_invocation_short_name, (int)getpid());
	if (n >= (int)len && len > 4) /* cut: say so */
		memcpy(buf + len - 4, "...", 4);
}

int vmfs_peers_here(struct vmfs *fs, unsigned *slot, char *name, size_t len)
{
	struct lk_slot_info *si = NULL;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	char machine[64];
	size_t n = 0, mlen;
	int ret, found = 0;

	machine_name(machine, sizeof(machine));
	mlen = strlen(machine);
	vmfs_cluster_io(fs, &io, &g, &t);
	ret = lk_read_slots(&io, &g, &si, &n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (si[i].state != LK_SLOT_LIVE || (fs->lk && si[i].slot == lk_host_slot(fs->lk)) ||
		    strncmp(si[i].hostname, machine, mlen) || si[i].hostname[mlen] != ' ')
			continue;
		if (!found++) {
			*slot = si[i].slot;
			snprintf(name, len, "%s", si[i].hostname);
		}
	}
	free(si);
	return found;
}

static_assert(sizeof(((struct vmfs_host *)0)->hostname) == sizeof(((struct lk_slot_info *)0)->hostname), "");
static_assert(sizeof(((struct vmfs_lock *)0)->hostname) == sizeof(((struct lk_holder *)0)->hostname), "");

int vmfs_hosts(struct vmfs *fs, struct vmfs_host **out, size_t *n)
{
	struct lk_slot_info *si = NULL;
	struct vmfs_host *h;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	int ret;

	vmfs_cluster_io(fs, &io, &g, &t);
	ret = lk_watch_slots(&io, &g, 2 * t.interval_ms + 100, &si, n);
	if (ret)
		return ret;
	h = calloc(*n ? *n : 1, sizeof(*h));
	if (!h) {
		free(si);
		return -ENOMEM;
	}
	for (size_t i = 0; i < *n; i++) {
		h[i] = (struct vmfs_host){ .slot = si[i].slot, .gen = si[i].gen, .alive = si[i].alive, .age_s = si[i].age_s,
					   .state = si[i].state == LK_SLOT_LIVE ? VMFS_HOST_LIVE :
						    si[i].state == LK_SLOT_RECOVERING ? VMFS_HOST_RECOVERING : VMFS_HOST_FREE };
		memcpy(h[i].uuid, si[i].uuid, sizeof(h[i].uuid));
		memcpy(h[i].hostname, si[i].hostname, sizeof(h[i].hostname));
	}
	free(si);
	*out = h;
	return 0;
}

struct locks_ctx {
	int (*fn)(void *ctx, const struct vmfs_lock *l);
	void *ctx;
};

static int lock_record(void *arg, uint64_t res, const struct lk_holder *holder, uint64_t version)
{
	static const enum vmfs_lock_kind kinds[] = { [LK_NS_INODE] = VMFS_LOCK_INODE, [LK_NS_META] = VMFS_LOCK_META,
						     [LK_NS_RC] = VMFS_LOCK_RC, [LK_NS_SLOT] = VMFS_LOCK_SLOT };
	struct locks_ctx *c = arg;
	unsigned ns = (unsigned)(res >> 56);
	struct vmfs_lock l = {
		.kind = ns < base_array_size(kinds) ? kinds[ns] : VMFS_LOCK_OTHER,
		.mode = holder->mode == LK_EX ? VMFS_LOCK_EX : holder->mode == LK_SH ? VMFS_LOCK_SH :
			holder->mode == LK_MW ? VMFS_LOCK_MW : 0,
		.slot = holder->slot,
		.gen = holder->gen,
		.version = version,
	};

	l.id = l.kind == VMFS_LOCK_OTHER ? res : res & ((1ull << 56) - 1);
	memcpy(l.hostname, holder->hostname, sizeof(l.hostname));
	return c->fn(c->ctx, &l);
}

int vmfs_locks(struct vmfs *fs, int (*fn)(void *ctx, const struct vmfs_lock *l), void *ctx)
{
	struct locks_ctx c = { fn, ctx };
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;

	vmfs_cluster_io(fs, &io, &g, &t);
	return lk_read_locks(&io, &g, lock_record, &c);
}

int cluster_join(struct vmfs *fs, const char *hostname, const char *watchdog, char *errbuf, size_t errlen)
{
	struct lk_join_opts jo = { .hostname = hostname, .recover = recover_slot, .recover_arg = fs,
				   .watchdog = watchdog };
	struct lk_io io;
	struct lk_geometry g;
	struct lk_timing t;
	uint8_t *prefer;
	char host[64];
	int ret;

	if (!hostname) {
		vmfs_host_name(host, sizeof(host), NULL);
		jo.hostname = host;
	}
	vmfs_cluster_io(fs, &io, &g, &t);
	fs->lkio = io;
	/* a free slot that has a journal first: journals follow the hosts present, not those ever seen */
	prefer = calloc(1, (g.nslots + 7) / 8);
	if (!prefer)
		return -ENOMEM;
	ret = journal_slots(fs, prefer, NULL, NULL);
	if (!ret)
		jo.prefer = prefer;
	ret = lk_join(&fs->lkio, &g, &t, &jo, &fs->lk, errbuf, errlen);
	free(prefer);
	if (ret)
		return ret;
	dev_set_write_gate(fs->dev, write_gate, fs);
	fs->slot = lk_host_slot(fs->lk);
	ret = base_cond_init_mono(&fs->poll_cond); /* the poller's deadlines are monotonic */
	if (ret) {
		dev_set_write_gate(fs->dev, NULL, NULL);
		lk_leave(fs->lk);
		fs->lk = NULL;
	}
	return ret;
}

/* Starts yielding META to other hosts: the end of vmfs_open, which holds it until then. */
int cluster_start(struct vmfs *fs)
{
	int ret;

	if (!fs->lk)
		return 0;
	ret = pthread_create(&fs->poll_thread, NULL, poller, fs);
	if (ret)
		return -ret;
	fs->poll_running = true;
	return 0;
}

/* Stops the poller, lets META go (C2) and leaves the cluster. fs->stopping is set. */
void cluster_leave(struct vmfs *fs)
{
	if (!fs->lk)
		return;
	fs_thread_stop(fs, &fs->poll_cond, fs->poll_thread, &fs->poll_running);
	pthread_mutex_lock(&fs->lock);
	cluster_meta_release(fs);
	pthread_mutex_unlock(&fs->lock);
	lk_leave(fs->lk);
	fs->lk = NULL;
	dev_set_write_gate(fs->dev, NULL, NULL);
	pthread_cond_destroy(&fs->poll_cond);
}

/* ---- file locks (C5) ---------------------------------------------------------------- */

static const enum lk_mode lk_modes[] = { [VMFS_LOCK_EX] = LK_EX, [VMFS_LOCK_SH] = LK_SH, [VMFS_LOCK_MW] = LK_MW };

void vmfs_lock_holder(const struct vmfs_lock *l, char *who, size_t wholen)
{
	if (who && wholen)
		snprintf(who, wholen, "host slot %u (%s, generation %llu, %s)", l->slot,
			 l->hostname[0] ? l->hostname : "unknown host", (unsigned long long)l->gen,
			 l->mode == VMFS_LOCK_EX ? "exclusive" : l->mode == VMFS_LOCK_SH ? "read-only" : "multi-writer");
}

static void name_holder(const struct lk_holder *h, char *who, size_t wholen)
{
	struct vmfs_lock l = { .slot = h->slot, .gen = h->gen,
			       .mode = h->mode == LK_EX ? VMFS_LOCK_EX : h->mode == LK_SH ? VMFS_LOCK_SH : VMFS_LOCK_MW };

	memcpy(l.hostname, h->hostname, sizeof(l.hostname));
	vmfs_lock_holder(&l, who, wholen);
}

/*
 * This host's opens of one inode share one cluster lock: vinode->lk_mode and
 * lk_refs count them (under fs->flock), and each reference keeps the inode
 * pinned. A stronger mode than the one held is taken by letting the weaker go
 * first and taking it back if that fails.
 */
int vmfs_file_lock(struct vmfs *fs, uint64_t ino, enum vmfs_lock_mode mode, char *who, size_t wholen)
{
	struct lk_holder holder;
	struct vinode *vi;
	enum lk_mode want;
	int ret = 0;

	if (mode != VMFS_LOCK_EX && mode != VMFS_LOCK_SH && mode != VMFS_LOCK_MW)
		return -EINVAL;
	if (!fs->lk)
		return 0;
	want = lk_modes[mode];
	vi = vinode_pin(fs, ino);
	if (!vi)
		return -ENOMEM;
	pthread_mutex_lock(&fs->flock);
	if (vi->lk_refs && (vi->lk_mode == want || vi->lk_mode == LK_EX)) {
		vi->lk_refs++;
		goto out;
	}
	if (vi->lk_refs && want != LK_EX) { /* shared and multi-writer do not mix, on one host either */
		ret = -EBUSY;
		if (who && wholen)
			snprintf(who, wholen, "this host (%s)", vi->lk_mode == LK_SH ? "read-only" : "multi-writer");
		goto out;
	}
	if (vi->lk_refs)
		lk_unlock(fs->lk, LK_RES(LK_NS_INODE, ino), false, NULL);
	/*
	 * A holder that just closed the file lets go a moment later (FUSE sends
	 * release after close returns): retry for up to FILE_LOCK_PATIENCE_MS
	 * before calling the file busy. A holder whose heartbeat does not move
	 * may have been killed a moment ago: LK_WAIT_DEAD watches it for up to
	 * the dead time, recovers it and takes the lock, with no other host
	 * needed to prove the death first.
	 */
	for (uint64_t until = base_mono_ns() + FILE_LOCK_PATIENCE_MS * 1000000ull, nap = 5;; nap = nap * 2 > 100 ? 100 : nap * 2) {
		memset(&holder, 0, sizeof(holder));
		ret = lk_lock(fs->lk, LK_RES(LK_NS_INODE, ino), want, LK_WAIT_DEAD, NULL, &holder);
		if (ret != -EBUSY || base_mono_ns() + nap * 1000000ull > until || holder.slot == lk_host_slot(fs->lk))
			break;
		lkio_sleep(NULL, nap * 1000000ull);
	}
	if (!ret) {
		vi->lk_mode = want;
		vi->lk_refs++;
		goto out;
	}
	if (ret == -EBUSY)
		name_holder(&holder, who, wholen);
	else if (ret == -ENOLCK)
		ret = -EIO;
	if (vi->lk_refs && lk_lock(fs->lk, LK_RES(LK_NS_INODE, ino), vi->lk_mode, LK_WAIT, NULL, NULL))
		fs_err(fs, "inode %llu: its %s lock is lost (fenced?)", (unsigned long long)ino,
		       vi->lk_mode == LK_SH ? "read-only" : "multi-writer");
out:
	pthread_mutex_unlock(&fs->flock);
	if (ret)
		vinode_unpin(fs, vi);
	return ret;
}

int vmfs_file_unlock(struct vmfs *fs, uint64_t ino)
{
	struct vinode *vi;
	int ret = 0;

	if (!fs->lk)
		return 0;
	times_flush(fs); /* the next holder sees this host's writes in the times; failing, the lock goes anyway */
	pthread_mutex_lock(&fs->lock);
	vi = vinode_find(fs, ino);
	pthread_mutex_unlock(&fs->lock);
	if (!vi)
		return -ENOENT;
	pthread_mutex_lock(&fs->flock);
	if (!vi->lk_refs) {
		pthread_mutex_unlock(&fs->flock);
		return -ENOENT;
	}
	if (--vi->lk_refs == 0)
		ret = lk_unlock(fs->lk, LK_RES(LK_NS_INODE, ino), false, NULL);
	pthread_mutex_unlock(&fs->flock);
	vinode_unpin(fs, vi); /* this reference's pin */
	return ret == -ENOLCK ? -EIO : ret;
}

/* Whether another host holds a file lock on ino (C6): its last name stays then. fs->lock held. */
bool cluster_held_elsewhere(struct vmfs *fs, uint64_t ino)
{
	return fs->lk && lk_held_elsewhere(fs->lk, LK_RES(LK_NS_INODE, ino), NULL) != 0; /* an error counts as held */
}

bool vmfs_fenced(struct vmfs *fs)
{
	return fs->lk && lk_fenced(fs->lk);
}
