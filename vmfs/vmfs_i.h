/*
 * libvmfs internals, shared by the files of vmfs/ only.
 *
 * Concurrency: one mutex, fs->lock, guards all metadata: the buffer cache, the
 * running transaction, the allocator and the in-memory inode table. File data
 * moves without it: a reader or writer maps its range under fs->lock, drops it,
 * and does the device I/O holding only the inode's iolock (shared for reads and
 * aligned overwrites of allocated blocks, exclusive for anything that allocates,
 * frees or read-modify-writes). Lock order: vinode->iolock, then fs->lock.
 *
 * Operations: every change runs between op_begin() and op_end(). The first time
 * an operation dirties a block, meta_dirty() keeps the block's old image; when the
 * operation fails, op_end() puts every old image back, so a failed call leaves
 * the datastore (and the cache) exactly as it was. Dirty blocks join the running
 * transaction, which journal_commit() writes to the host's journal.
 */
#ifndef VMFS_VMFS_I_H
#define VMFS_VMFS_I_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "lockmgr/lockmgr.h"
#include "vmfs/dev_i.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"

struct vbuf {
	uint64_t addr;
	uint8_t *data;                  /* VMFS_UNIT bytes, O_DIRECT-aligned */
	uint8_t *undo;                  /* image before the running operation, or NULL */
	struct vbuf *hnext;             /* hash chain */
	struct vbuf *lru_prev, *lru_next;
	struct vbuf *dirty_next;        /* running transaction list */
	struct vbuf *undo_next;         /* running operation list */
	unsigned refs;
	bool dirty, in_undo, is_new, overlay, stale;
};

struct vinode {
	uint64_t ino;
	struct vinode *hnext;
	uint64_t lookups;               /* references held by vmfs_lookup() callers */
	unsigned pins;                  /* internal users, under fs->lock */
	pthread_rwlock_t iolock;
	unsigned lk_refs;               /* this host's file locks on it (cluster.c), under fs->flock */
	enum lk_mode lk_mode;
};

/* A data write's mtime/ctime not yet in its inode (file.c, "deferred times"). */
struct times_pending {
	uint64_t ino, igen;
	int64_t ns;
};
#define TIMES_PENDING_MAX 64

struct pool_info {
	uint64_t block;                 /* file block holding the pool */
	uint32_t nfree;
};

struct vmfs {
	struct vmfs_dev *dev;
	bool ro;
	pthread_mutex_t lock;
	char *errbuf;                   /* where op errors are described (may be NULL) */
	void (*report)(void *ctx, const char *line); /* else here (vmfs_set_report), else stderr */
	void *report_ctx;
	bool fence_reported;            /* the lost lease is reported once */
	struct times_pending times[TIMES_PENDING_MAX]; /* under lock */
	unsigned ntimes;

	/* geometry, from the superblock */
	struct vmfs_sb_disk sb;
	uint32_t block_size, block_shift, upb;   /* units per file block */
	uint64_t nblocks, data_unit, rc_table_unit;
	uint32_t rc_blocks;
	uint64_t rc_count;
	uint64_t root_ino, hash_seed;
	unsigned slot;

	/* encryption (crypt.c): the datastore key, NULL when not encrypted or not unlocked */
	struct enc_key *key;
	struct enc_key *key_prev;       /* during a key change: the other epoch's key (crypt.c) */
	void *fkeys;                    /* opened file keys (crypt.c) */
	uint64_t key_poll_ns;           /* when the poller last read the key header */

	/* buffer cache */
	struct vbuf **bhash;
	size_t bhash_size, nbufs, max_bufs;
	struct vbuf lru;                /* sentinel: clean, unreferenced buffers */

	/* running operation and transaction */
	struct vbuf *undo_list;
	struct vbuf *dirty_list;
	size_t ndirty;
	bool op_active;
	int op_depth;
	uint64_t *pending;              /* units freed in the running transaction */
	size_t npending, pending_cap;
	uint64_t *wipe;                 /* of them, those to zero once it commits (a deep rekey's old blocks) */
	size_t nwipe, wipe_cap;
	size_t op_nwipe;                /* nwipe when the running operation began: an undone one takes its own back */
	bool wipe_freed;                /* frees go on the wipe list too (rekey.c, during a step) */

	/* journal */
	uint64_t j_unit, j_units;       /* extent; 0 = none */
	uint64_t j_seq, j_head;         /* next sequence and log position */
	uint64_t j_tail_seq, j_tail;
	bool j_replayed, j_sb_replayed, j_no_inplace;
	bool no_journal;                /* no journal (mkfs, fsck): meta_write_direct() writes blocks in place */
	const char *journal_state;
	int fatal;                      /* an in-place write failed: everything fails now */

	/* allocator */
	uint32_t *rc_free;              /* per RC, free file blocks */
	uint8_t *rc_mine;               /* per RC, 1 if its owner record names this host (clustered) */
	uint64_t claim_after_ns;        /* no RC to claim was found: look again after this */
	uint64_t pool_claim_after_ns;   /* no pool of a departed host was found: look again after this */
	uint64_t rc_cur;
	uint32_t rc_rotor;
	struct pool_info *pools;
	size_t npools, pools_cap, pool_cur;
	uint64_t free_blocks, free_units_in_pools, inodes_used;
	uint64_t redir_hint;            /* redirect table last given a slot (redirect.c), 0 = none */

	/* in-memory inodes */
	struct vinode **ihash;
	size_t ihash_size;

	/* background commit */
	unsigned commit_ms;
	pthread_t committer;
	pthread_cond_t commit_cond;
	bool committer_running, stopping;
	uint64_t last_commit_ns;

	/* cluster (cluster.c); lk is NULL for read-only and standalone handles */
	struct lk_host *lk;
	struct lk_io lkio;
	enum lk_mode meta_mode;         /* how META is held now; 0: not held */
	uint64_t meta_version;          /* META's version the cache matches; 0: none */
	uint64_t meta_since_ns;
	bool meta_changed;              /* metadata changed under the META held now */
	bool recovered;                 /* a dead host's journal was replayed since META was last taken */
	pthread_mutex_t flock;          /* file-lock counts (vinode lk_*) */
	pthread_t poll_thread;
	pthread_cond_t poll_cond;
	bool poll_running;
};

/* crypt.c: the key area of an encrypted datastore */
bool crypt_enabled(const struct vmfs *fs);
/* mkfs: makes the datastore key, keyslot 0 for o->secret, and writes the key area; fs->key gets the key. */
int crypt_mkfs(struct vmfs *fs, const struct vmfs_mkfs_opts *o, char *errbuf, size_t errlen);
/* open: unlocks with secret (none: stays locked); -EKEYREJECTED when no keyslot opens. */
int crypt_open(struct vmfs *fs, const struct enc_secret *secret, uint32_t max_kib, char *errbuf, size_t errlen);
void crypt_release(struct vmfs *fs);
/* The encryption fields of vmfs_info (reads the key area; takes no lock). */
void crypt_info(struct vmfs *fs, struct vmfs_info *in);
/*
 * The keys of inode ino (di: its image): *out is NULL for an inode without
 * keys, else a reference (crypt_file_put). -ENOKEY: the datastore is
 * locked; -EIO: its i_crypt cannot be opened (reported). Any lock may be held.
 */
int crypt_file_get(struct vmfs *fs, uint64_t ino, const struct vmfs_inode_disk *di, struct enc_file **out);
void crypt_file_put(struct vmfs *fs, struct enc_file *f);
/*
 * The data cipher with f's keys over len bytes, units numbered from tweak:
 * key 0, but during a deep rekey key 1 for the units below f->mark (which
 * crypt_file_get set from the inode; it changes only under the iolock
 * exclusive, as rekey.c moves it).
 */
int crypt_run(const struct enc_file *f, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len);
/* crypt_run in this thread alone (crypt_run splits a large request over the cores: crypt_par.c). */
int crypt_run_serial(const struct enc_file *f, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len);
/* The data cipher with key `which` (0 or 1) of f, whatever the mark. */
int crypt_run_key(const struct enc_file *f, unsigned which, bool encrypt, uint64_t tweak, const void *in, void *out,
		  size_t len);
/*
 * A deep rekey's step on di's i_crypt (in an operation, di dirty): begin
 * (end false) gives it a new key 1; end makes key 1 its only key. Under the
 * key of i_crypt's epoch. 0, -EINVAL (already begun / not begun), -ENOKEY,
 * -EIO.
 */
int crypt_file_rekey(struct vmfs *fs, struct vmfs_inode_disk *di, bool end);
/*
 * A file's inline bytes (i_root, VMFS_INLINE_MAX of them) to or from plain,
 * through its keys when it has them (a copy when it does not).
 */
int crypt_inline(struct vmfs *fs, uint64_t ino, struct vmfs_inode_disk *di, bool encrypt, uint8_t *plain);
/*
 * A snapshot name of file `file` (fdi: its image; the file's keys, which
 * all its snapshots share the name key of) from in to out, 256 bytes each
 * (the name NUL-padded): one AES-256-XTS run under the file's snapshot-name
 * key when it has keys (the length does not show), else a copy. The same
 * name always encrypts to the same bytes: a name is found by comparing.
 */
int crypt_snapname(struct vmfs *fs, uint64_t file, const struct vmfs_inode_disk *fdi, bool encrypt, const void *in,
		   void *out);
/*
 * For fsck (no key): the key area's problems, one call per record copy that
 * is damaged or older than its twin (rec -1 the header, else a slot; which 0
 * primary, 1 backup; state 0 damaged, 1 older, 2 neither copy good), and,
 * when problem says to fix any, the area
 * written again whole from the good copies (both copies of every record).
 * Returns the header's epoch through *epoch (and, during a key change, the
 * old one through *prev, else 0); -EUCLEAN when the header has
 * no good copy (the datastore cannot be unlocked), else 0 or -errno.
 */
/* The poller: a key change by another host is learned here and acknowledged in this host's record. */
void crypt_poll(struct vmfs *fs);
int crypt_fsck_area(struct vmfs *fs, bool (*problem)(void *ctx, int rec, int which, int state), void *ctx,
		    uint32_t *epoch, uint32_t *prev);
/* Gives a new regular file, symlink or directory its keys on an encrypted datastore (-ENOKEY when locked). */
int crypt_file_new(struct vmfs *fs, struct vmfs_inode_disk *di);

#define fs_err(fs, ...) vmfs_report((fs), __VA_ARGS__)
void vmfs_report(struct vmfs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- meta.c: cache, validation, operations, journal ---- */
void meta_seal(struct vmfs *fs, void *block);
int meta_check(struct vmfs *fs, const void *block, uint64_t addr, uint32_t magic);
int meta_read(struct vmfs *fs, uint64_t addr, uint32_t magic, struct vbuf **out);
int meta_new(struct vmfs *fs, uint64_t addr, uint32_t magic, uint64_t owner, struct vbuf **out);
int meta_dirty(struct vmfs *fs, struct vbuf *b);
void meta_put(struct vmfs *fs, struct vbuf *b);
void meta_forget(struct vmfs *fs, uint64_t addr);
int cache_init(struct vmfs *fs);
void cache_release(struct vmfs *fs);

/*
 * A bare struct vmfs: zeroed, its locks and commit condition made; no device,
 * cache, inode table or allocator yet. vmfs_open, vmfs_mkfs and vmfs_fsck each
 * start from one. fs_free() releases whichever of those were set up since, closes
 * the device and frees fs; fs_free(NULL) does nothing.
 */
int fs_new(struct vmfs **out);
void fs_free(struct vmfs *fs);

int fs_enter(struct vmfs *fs, bool write);
void fs_thread_stop(struct vmfs *fs, pthread_cond_t *wake, pthread_t thread, bool *running);
void fs_leave(struct vmfs *fs);
int op_begin(struct vmfs *fs);
int op_end(struct vmfs *fs, int err);
int op_maybe_commit(struct vmfs *fs);

int journal_commit(struct vmfs *fs);
int journal_checkpoint(struct vmfs *fs);
/*
 * Zeroes the log of every host's journal: no block image written before
 * stays on the device (a key change's images sealed under the old key, a
 * deep rekey's names and inline data under old file keys). Takes META
 * exclusive (an operation of its own; none may be running).
 */
int journal_scrub(struct vmfs *fs);
int journal_recover(struct vmfs *fs, unsigned slot);
int journal_overlay_others(struct vmfs *fs);
int journal_slots(struct vmfs *fs, uint8_t *bits, uint64_t *count, uint64_t *units);
int cache_drop_all(struct vmfs *fs);
int journal_open(struct vmfs *fs);
int journal_join(struct vmfs *fs);
int journal_close(struct vmfs *fs);
int journal_replay_ro(struct vmfs *fs);
int hostrec_read(struct vmfs *fs, unsigned slot, struct vmfs_hostrec_disk *rec);
int hostrec_clear(struct vmfs *fs, unsigned slot);
int hostrec_set_key_epoch(struct vmfs *fs, uint32_t epoch);
int journal_reset(struct vmfs *fs, unsigned slot, uint64_t unit, uint64_t units);
int meta_write_direct(struct vmfs *fs);
int meta_prefetch(struct vmfs *fs, uint64_t unit, unsigned n);
int meta_overlay(struct vmfs *fs, uint64_t addr, const void *image);
int meta_overlay_dirty(struct vmfs *fs, uint64_t addr, const void *image);

/* ---- super.c ---- */
void super_geometry(struct vmfs *fs);
const char *sb_geometry_error(const struct vmfs_sb_disk *sb);

/* ---- cluster.c ---- */
int cluster_join(struct vmfs *fs, const char *hostname, const char *watchdog, char *errbuf, size_t errlen);
int cluster_start(struct vmfs *fs);
void cluster_leave(struct vmfs *fs);
/* This datastore's heartbeat and lock regions, for lockmgr's inspection calls (fsck, vmfs_hosts). */
void vmfs_cluster_io(struct vmfs *fs, struct lk_io *io, struct lk_geometry *g, struct lk_timing *t);
int cluster_meta(struct vmfs *fs, bool write);
bool cluster_held_elsewhere(struct vmfs *fs, uint64_t ino);
int cluster_meta_release(struct vmfs *fs);
int sb_check(const struct vmfs_sb_disk *sb);

/* ---- alloc.c ---- */
int alloc_init(struct vmfs *fs);
void alloc_release(struct vmfs *fs);
/*
 * What an allocation is for decides how much of the reserve it may use
 * (docs/FORMAT.md, "Reserve"): file data, new inodes and block maps none;
 * directory nodes (a rename or a delete may rebalance a directory) all but
 * one journal's worth; a journal all of it.
 */
enum alloc_kind { ALLOC_DATA, ALLOC_META, ALLOC_JOURNAL };
uint64_t alloc_reserve(struct vmfs *fs, enum alloc_kind kind);
int alloc_block(struct vmfs *fs, uint64_t *unit);
int alloc_extent(struct vmfs *fs, uint64_t nblocks, uint16_t ref, uint64_t *unit);
int alloc_unit(struct vmfs *fs, enum alloc_kind kind, uint64_t *unit);
int free_block(struct vmfs *fs, uint64_t unit);
int free_unit(struct vmfs *fs, uint64_t unit);
bool unit_is_block(struct vmfs *fs, uint64_t unit);
bool addr_in_data(struct vmfs *fs, uint64_t unit);
void alloc_undo_hook(struct vmfs *fs, struct vbuf *b, const uint8_t *newer);
/* The reference count of the block or sub-block at unit; ref_add adds one (-EMLINK at VMFS_REF_MAX). */
int ref_get(struct vmfs *fs, uint64_t unit, uint16_t *ref);
int ref_add(struct vmfs *fs, uint64_t unit);

/* ---- bmap.c: the file map ---- */
struct vmfs_inode_disk;
int bmap_get(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *ptr);
/* bmap_get, and *shared: whether another map shares the block or a pointer block on the way to it. */
int bmap_get_shared(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *ptr, bool *shared);
int bmap_set(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t ptr);
/* Drops this map's reference to data pointer p (a block or a sub-block, by the layout) and its units (di dirtied). */
int bmap_drop_data(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p);
int bmap_next(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *found, uint64_t *ptr);
int bmap_free_range(struct vmfs *fs, struct vbuf *ib, uint64_t start, uint64_t end, uint64_t budget, bool *done);
uint64_t bmap_capacity(unsigned height);

/* Units a data pointer counts in its map's i_units: a block (a redirect counts its new block), or a sub-block. */
uint64_t bmap_ptr_units(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p);
/* The count of what a pointer names (a REDIRECT pointer's is its slot's), and one more. */
int ptr_ref_get(struct vmfs *fs, uint64_t p, uint16_t *ref);
int ptr_ref_add(struct vmfs *fs, uint64_t p);

/* ---- redirect.c: writes into shared blocks, grain by grain (docs/FORMAT.md, "Redirects") ---- */
struct redir {                          /* a redirect: its table, held, and its slot */
	struct vbuf *b;
	struct vmfs_redir_slot *s;
};
/* A redirect table, checked as a whole (meta_put it), and its slot s. */
int redir_table_read(struct vmfs *fs, uint64_t unit, struct vbuf **out);
struct vmfs_redir_slot *redir_slot(struct vmfs *fs, struct vbuf *table, unsigned s);
/* The redirect REDIRECT pointer p names, checked (a free slot is damage); redir_put it. */
int redir_get(struct vmfs *fs, uint64_t p, struct redir *r);
void redir_put(struct vmfs *fs, struct redir *r);
bool redir_bit(const struct redir *r, unsigned g);
uint64_t redir_backing(const struct redir *r);
uint64_t redir_new(const struct redir *r);
/* Device byte offset of byte `in` of the block; *run: bytes from there (of n) read from the same block. */
uint64_t redir_locate(const struct redir *r, uint64_t in, uint64_t n, uint64_t *run);
/* *all: every grain of bytes [in, in + n) of the block is in the slot's own block already. */
int redir_covers(struct vmfs *fs, uint64_t p, uint64_t in, uint64_t n, bool *all);
/* The block's bytes as the map reads them. */
int redir_read_block(struct vmfs *fs, uint64_t p, uint8_t *blk);
/* A slot's count (the pointers naming it), and one more (-EMLINK at VMFS_REF_MAX). */
int redir_ref_get(struct vmfs *fs, uint64_t p, uint16_t *ref);
int redir_ref_add(struct vmfs *fs, uint64_t p);
/* In an operation: entry lblk, naming the shared plain block backing, becomes a new redirect (*out). */
int redir_create(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t backing, uint64_t *out);
/*
 * In an operation, after the grains' data is on the device: sets grains
 * [first, first + count) of lblk's redirect and collapses a full one (backing
 * freed only with may_free: the caller holds the iolock exclusive).
 */
int redir_commit(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, unsigned first, unsigned count, bool may_free);
/* One pointer to the redirect goes; the last takes its blocks' counts with it. */
int redir_drop(struct vmfs *fs, uint64_t p);

/* ---- inode.c ---- */
static inline struct vmfs_inode_disk *ib_inode(struct vbuf *b) { return (struct vmfs_inode_disk *)b->data; }
int inode_read(struct vmfs *fs, uint64_t ino, struct vbuf **out);
int inode_new(struct vmfs *fs, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t parent, struct vbuf **out);
/* The fields of a new, empty inode (inline; a directory with no entries) in ib, from meta_new(). */
void inode_init(struct vbuf *ib, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t parent);
void inode_touch(struct vbuf *ib, bool m, bool c);
void inode_to_stat(struct vmfs *fs, struct vbuf *ib, struct vmfs_stat *st);
bool times_defer(struct vmfs *fs, uint64_t ino, uint64_t igen);
int64_t times_pending(struct vmfs *fs, uint64_t ino, uint64_t igen, bool take);
void times_apply(struct vmfs *fs, struct vbuf *ib);
int times_flush(struct vmfs *fs);
int inode_release_space(struct vmfs *fs, struct vbuf *ib, uint64_t from_byte);
int inode_drop(struct vmfs *fs, uint64_t ino);
int orphan_add(struct vmfs *fs, struct vbuf *ib);
int orphan_remove(struct vmfs *fs, struct vbuf *ib);
int orphans_process(struct vmfs *fs);
struct vinode *vinode_get(struct vmfs *fs, uint64_t ino);
/* One lookup reference on ino, as a name lookup takes (namei.c; vmfs_forget drops it). Under fs->lock. */
void inode_take_ref(struct vmfs *fs, uint64_t ino);
void vinode_put(struct vmfs *fs, struct vinode *vi);
struct vinode *vinode_find(struct vmfs *fs, uint64_t ino);
struct vinode *vinode_pin(struct vmfs *fs, uint64_t ino);
void vinode_unpin(struct vmfs *fs, struct vinode *vi);
int itab_init(struct vmfs *fs);
void itab_release(struct vmfs *fs);
uint64_t block_lblk_units(struct vmfs *fs, struct vmfs_inode_disk *di);

/* ---- dir.c ---- */
int dir_lookup(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t *ino, uint8_t *type);
int dir_insert(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t ino, uint8_t type);
int dir_remove(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len);
int dir_set(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t ino, uint8_t type);
/*
 * The same for the item with this exact key and name, wherever the name hashes
 * (fsck: an entry filed under the wrong key, or one of two with one name).
 * -ENOENT when there is none.
 */
int dir_remove_at(struct vmfs *fs, struct vbuf *dib, uint64_t key, const char *name, size_t len);
int dir_set_at(struct vmfs *fs, struct vbuf *dib, uint64_t key, const char *name, size_t len, uint64_t ino,
	       uint8_t type);
typedef int (*dir_iter_fn)(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type);
int dir_iterate(struct vmfs *fs, struct vbuf *dib, uint64_t from, dir_iter_fn fn, void *ctx);
void dir_init_inline(struct vmfs_inode_disk *di);
int dir_node_items(struct vmfs *fs, struct vbuf *dib, struct vbuf *node, unsigned level, dir_iter_fn fn, void *ctx);
uint64_t dir_key_prefix(struct vmfs *fs, const char *name, size_t len);
/* True when the directory stores its names encrypted (its inode has keys): fsck cannot read or hash them. */
bool dir_names_encrypted(struct vmfs *fs, struct vbuf *dib);
int dir_release(struct vmfs *fs, struct vbuf *dib);
/*
 * A deep rekey's step on a directory (rekey.c; in an operation): the names
 * of the items from key *mark on, under f's key 0, are rewritten under its
 * key 1 in place (the tree keeps its shape: a name's hash and length stay),
 * about `leaves` leaves of them, in whole hash groups. *mark: where the next
 * step starts (the start of a group), UINT64_MAX when no name is left
 * under key 0.
 */
int dir_rekey(struct vmfs *fs, struct vbuf *dib, const struct enc_file *f, unsigned leaves, uint64_t *mark);

/* ---- share.c ---- */
/* In the running operation: the new inode nb gets a shared copy of src's content. */
int share_clone(struct vmfs *fs, uint64_t src, struct vbuf *nb);
/* In the running operation (inode_drop): drops every snapshot of file ib. */
int snap_drop_all(struct vmfs *fs, struct vbuf *ib);

/* ---- file.c ---- */
int file_truncate(struct vmfs *fs, uint64_t ino, uint64_t size);
int file_write_internal(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off);
/*
 * Deep rekey (rekey.c): block lblk of the file in ib, as the map reads it
 * (a shared block, a redirect's grains), moves to a new block of its own
 * with every unit below `mark` under key 1 (units of zeros stay zeros); the
 * old block is dropped (a snapshot or clone sharing it keeps it). A hole or
 * a TBZ block is left alone. The bytes are read under key's current split
 * (key->mark). Under fs->lock, in an operation, with the iolock exclusive.
 */
int file_rekey_block(struct vmfs *fs, struct vbuf *ib, const struct enc_file *key, uint64_t lblk, uint64_t mark);
/* Which inodes file.c's calls take besides regular files, and how. */
enum get_file_flags {
	GET_LINK_OK = 1u << 0,          /* a symlink (its target reads as its data) */
	GET_WRITE = 1u << 1,            /* to change: a snapshot (never written) is -EROFS */
	GET_DIR_OK = 1u << 2,           /* a directory */
};
/*
 * Runs fn on regular file ino (ib: its inode; a symlink or a directory too
 * with GET_LINK_OK, GET_DIR_OK in kinds) under its iolock exclusive, in one
 * operation: I/O in flight ends first, new I/O waits. -EROFS for a
 * read-only handle or a snapshot, -EISDIR, -EINVAL for other inodes.
 */
int file_exclusive(struct vmfs *fs, uint64_t ino, unsigned kinds, int (*fn)(struct vmfs *fs, struct vbuf *ib, void *ctx),
		   void *ctx);

/* helpers */
static inline uint64_t mode_dtype(uint32_t mode) { return (mode >> 12) & 15; }
static inline uint64_t fs_block_unit(struct vmfs *fs, uint64_t blk) { return fs->data_unit + blk * fs->upb; }
static inline uint64_t fs_unit_block(struct vmfs *fs, uint64_t unit) { return (unit - fs->data_unit) / fs->upb; }
int inode_layout_blkunits(struct vmfs *fs, struct vmfs_inode_disk *di); /* units per mapped block */

#endif
