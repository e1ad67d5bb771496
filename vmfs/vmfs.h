/*
 * libvmfs: the public interface to a vmfs datastore. A datastore is opened from a
 * block device or a regular file; files are then named by inode numbers (as FUSE
 * does) or by paths. Every call is thread-safe. Every function returns 0 (or a
 * byte count) on success and a negative errno on failure; a failed call leaves the
 * datastore as it was. Metadata changes are journaled: they become durable at the
 * next commit (vmfs_sync, vmfs_fsync, the background commit every commit_ms, or
 * close), and a crash never leaves a half-done change behind.
 */
#ifndef VMFS_VMFS_H
#define VMFS_VMFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "encrypt/encrypt.h"

struct vmfs;

/* ---- creating a datastore ---------------------------------------------- */

struct vmfs_mkfs_opts {
	const char *label;        /* up to 63 bytes; NULL for none */
	uint64_t size;            /* 0: whole device/file; else create or grow a sparse file */
	uint32_t block_size;      /* file block size, power of two, 64 KiB .. 4 MiB; 0: 1 MiB */
	uint32_t host_slots;      /* heartbeat/host slots, 1 .. 2048; 0: 2048 */
	uint64_t journal_size;    /* per-host journal bytes; 0: sized from the datastore */
	bool force;               /* overwrite an existing filesystem signature */
	const uint8_t *uuid;      /* 16 bytes, or NULL for a random one */
	/* cluster timings in ms, stored in the superblock; 0: lockmgr's default (lk_timing_default) */
	uint32_t hb_interval_ms, hb_dead_ms, fence_ms, io_timeout_ms;
	/*
	 * Encryption (docs/ENCRYPTION.md): with a secret, the datastore is
	 * encrypted and keyslot 0 opens it with that secret, derived with kdf
	 * (NULL: enc_kdf_default for key_kind) and labelled key_label (may be NULL).
	 */
	const struct enc_secret *secret;
	enum enc_secret_kind key_kind;
	const struct enc_kdf_params *kdf;
	const char *key_label;
};

/*
 * Formats path. Writes only the fixed metadata (a few MiB, whatever the size).
 * Errors: -EEXIST when the device holds a vmfs or another known signature and
 * !force (errbuf names it); -EINVAL for bad options; -ENOSPC when too small.
 * errbuf (may be NULL) receives a one-line reason on failure.
 */
int vmfs_mkfs(const char *path, const struct vmfs_mkfs_opts *opts, char *errbuf, size_t errlen);

/* ---- opening -------------------------------------------------------------- */

struct vmfs_open_opts {
	bool readonly;            /* writes nothing to the device, ever; does not join the cluster */
	unsigned commit_ms;       /* 0: commit at the end of every change; else at most this late */
	/*
	 * standalone: do not join the cluster; use host slot `slot` and trust that no
	 * other process has the datastore open (fsck after it saw no host alive, and
	 * tests). Never for a datastore other hosts may use.
	 */
	bool standalone;
	unsigned slot;
	const char *hostname;     /* shown to other hosts (vmfsctl hosts); NULL: gethostname() */
	const char *watchdog;     /* a watchdog device petted at each heartbeat, or NULL (lockmgr) */
	/*
	 * An encrypted datastore is unlocked with secret (borrowed for the call
	 * only); kdf_max_kib (0: no limit) skips keyslots whose argon2id wants
	 * more memory. Without a secret it opens locked: its structure can be
	 * read and checked (fsck, info), not the contents of its files.
	 */
	const struct enc_secret *secret;
	uint32_t kdf_max_kib;
};

/*
 * Opens the datastore at path. A read-write open joins the cluster (claims a
 * heartbeat slot: about 2 s with default timings), then replays its slot's
 * journal if unfinished; a read-only open applies slot 0's journal in memory
 * only. Errors: -EUCLEAN / -EBADMSG for a damaged or foreign superblock,
 * -EPROTONOSUPPORT for an unknown incompat feature (-EROFS for an unknown
 * ro_compat feature on a read-write open), -ENOSPC when no heartbeat slot is
 * free, -EKEYREJECTED when the secret opens no keyslot (nothing was written
 * and the cluster was not joined), -EIO. errbuf receives a one-line reason on failure. *out is owned by
 * the caller.
 */
int vmfs_open(const char *path, const struct vmfs_open_opts *opts, struct vmfs **out,
	      char *errbuf, size_t errlen);

/* Commits, writes in place, marks the journal clean and frees fs. NULL is a no-op. */
int vmfs_close(struct vmfs *fs);

/* ---- attributes ------------------------------------------------------------ */

struct vmfs_stat {
	uint64_t ino;             /* inode number; stable for the inode's life */
	uint64_t gen;             /* inode generation: (ino, gen) is unique forever */
	uint32_t mode, nlink, uid, gid;
	uint64_t size;
	uint64_t blocks;          /* 512-byte units allocated, as st_blocks */
	uint32_t blksize;         /* preferred I/O size */
	int64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
	bool snapshot;            /* a snapshot (read-only; vmfs_snap_lookup) */
	uint32_t rdev_major, rdev_minor;  /* a character or block device's number; else 0 */
};

enum vmfs_set_flags {
	VMFS_SET_MODE = 1u << 0,
	VMFS_SET_UID = 1u << 1,
	VMFS_SET_GID = 1u << 2,
	VMFS_SET_SIZE = 1u << 3,
	VMFS_SET_ATIME = 1u << 4,
	VMFS_SET_MTIME = 1u << 5,
	VMFS_SET_ATIME_NOW = 1u << 6,
	VMFS_SET_MTIME_NOW = 1u << 7,
	VMFS_SET_CTIME = 1u << 8,
};

/* The root directory's inode number. */
uint64_t vmfs_root_ino(struct vmfs *fs);

/*
 * Where an open datastore reports what goes wrong after vmfs_open() returned
 * (a metadata block that fails its checksum, losing the heartbeat lease): one
 * line, without a newline, to fn; NULL restores the default, stderr with a
 * "vmfs: " prefix. A daemon whose stderr is gone sends them to syslog.
 */
void vmfs_set_report(struct vmfs *fs, void (*fn)(void *ctx, const char *line), void *ctx);

int vmfs_getattr(struct vmfs *fs, uint64_t ino, struct vmfs_stat *st);
/* Changes what flags name, taking values from in; returns the new attributes in out (may be NULL). */
int vmfs_setattr(struct vmfs *fs, uint64_t ino, const struct vmfs_stat *in, unsigned flags,
		 struct vmfs_stat *out);

/* ---- names ------------------------------------------------------------------
 * Calls that return a struct vmfs_stat for a name (lookup, create, mkdir,
 * mknod, symlink, link) take one reference on that inode, as a FUSE lookup does;
 * vmfs_forget drops n of them. An inode whose last name is gone lives on until
 * its references reach zero, then its space is freed (a crash in between is
 * cleaned up at the next open, through the host's orphan list).
 */
int vmfs_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st);
void vmfs_forget(struct vmfs *fs, uint64_t ino, uint64_t n);

/*
 * mode carries the type (S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK; not
 * S_IFDIR or S_IFLNK: vmfs_mkdir, vmfs_symlink). vmfs_mknod_dev gives a
 * character or block device its number, kept in the inode; vmfs_mknod makes
 * one numbered 0,0.
 */
int vmfs_mknod(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct vmfs_stat *st);
int vmfs_mknod_dev(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t major,
		   uint32_t minor, uint32_t uid, uint32_t gid, struct vmfs_stat *st);
int vmfs_mkdir(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct vmfs_stat *st);
int vmfs_symlink(struct vmfs *fs, uint64_t dir, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct vmfs_stat *st);
int vmfs_link(struct vmfs *fs, uint64_t ino, uint64_t newdir, const char *newname,
	      struct vmfs_stat *st);
int vmfs_unlink(struct vmfs *fs, uint64_t dir, const char *name);
int vmfs_rmdir(struct vmfs *fs, uint64_t dir, const char *name);

enum vmfs_rename_flags {
	VMFS_RENAME_NOREPLACE = 1u << 0, /* same values as RENAME_NOREPLACE / RENAME_EXCHANGE */
	VMFS_RENAME_EXCHANGE = 1u << 1,
};
int vmfs_rename(struct vmfs *fs, uint64_t dir, const char *name, uint64_t newdir,
		const char *newname, unsigned flags);

/* Copies the target (not NUL-terminated) into buf; returns its length or -errno. */
ssize_t vmfs_readlink(struct vmfs *fs, uint64_t ino, char *buf, size_t size);

/*
 * Calls fill for each entry at or after cookie, in a stable order, with the
 * cookie that resumes after it. "." and ".." come first (cookies 0 and 1).
 * fill returns non-zero to stop. Cookies stay valid while entries come and go.
 */
typedef int (*vmfs_filldir_fn)(void *ctx, const char *name, size_t namelen, uint64_t ino,
			       uint32_t dtype, uint64_t next_cookie);
int vmfs_readdir(struct vmfs *fs, uint64_t dir, uint64_t cookie, vmfs_filldir_fn fill, void *ctx);

/* ---- data --------------------------------------------------------------------
 * Any buffer alignment, offset and length work; sector-aligned buffers and
 * ranges skip the bounce buffer.
 */
ssize_t vmfs_pread(struct vmfs *fs, uint64_t ino, void *buf, size_t len, uint64_t off);
ssize_t vmfs_pwrite(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off);
/* Makes the file's data and metadata durable (commits the journal, flushes the device). */
int vmfs_fsync(struct vmfs *fs, uint64_t ino, bool datasync);
/* mode takes Linux's FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE. */
int vmfs_fallocate(struct vmfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len);
/* whence is SEEK_DATA or SEEK_HOLE; -ENXIO past the end, as lseek(2). */
int vmfs_lseek(struct vmfs *fs, uint64_t ino, uint64_t off, int whence, uint64_t *out);

/*
 * Where byte off of ino (a regular file, or a symlink's target) lives
 * (FIBMAP, for tools and tests): the device byte offset of the block or
 * sub-block holding it, the resource cluster that holds that, and the RC's
 * owner record (the host that allocates from it: slot + 1,
 * 0 for none; docs/FORMAT.md). A hole, or a byte kept in the inode, gives
 * hole = true. off must lie below the size (-ENXIO).
 */
struct vmfs_bmap_info {
	bool hole;
	uint64_t dev_off, rc;
	uint32_t rc_owner_slot1;
	uint64_t rc_owner_gen;
};
int vmfs_bmap(struct vmfs *fs, uint64_t ino, uint64_t off, struct vmfs_bmap_info *out);

/* ---- asynchronous data I/O ---------------------------------------------------
 * A queue belongs to one thread, which submits and reaps on it. Reads and
 * overwrites of allocated, sector-aligned ranges are queued on the device
 * (io_uring at the queue's depth), and so are 4 KiB-aligned first writes into
 * blocks a snapshot or clone shares (a short operation makes their redirects
 * before the I/O, another sets their grains when it completes, in the reap);
 * anything else that needs metadata work first (allocation, a TBZ block, a
 * short or unaligned range, an inline file) is done synchronously inside
 * vmfs_aio_submit and reported by the next reap. The file cannot be
 * truncated under a request in flight.
 */
struct vmfs_aio;
struct vmfs_aio_req {
	uint64_t ino;
	bool write;
	void *buf;
	size_t len;
	uint64_t off;
	ssize_t res;              /* set at completion: bytes done or -errno */
	void *priv;               /* the caller's */
	/* private to libvmfs */
	unsigned pending;
	int err;
	struct vmfs_aio_req *next;
	void *vi;
	void *grains;             /* redirect grains to set when the data is written */
	size_t ngrains;
	void *bounce;             /* an encrypted file's write: its ciphertext, the device's side of buf */
	void *key;                /* that file's keys (a reference); a done read holding it is deciphered when reaped */
};
int vmfs_aio_new(struct vmfs *fs, unsigned depth, struct vmfs_aio **out);
void vmfs_aio_free(struct vmfs_aio *q);          /* waits for what is in flight */
/*
 * Returns 0 once the request is on its way to the device (handed to the kernel
 * at once, one system call per request) or done; the caller keeps req alive
 * until reaped. Starting each request at once rather than batching them until
 * the next reap keeps the device busy: a caller that resubmits as completions
 * arrive refills the device's queue one request at a time, as fio does, instead
 * of letting it drain and refilling it in bursts (measured in docs/BENCHMARKS.md).
 */
int vmfs_aio_submit(struct vmfs_aio *q, struct vmfs_aio_req *req);
/*
 * Waits for at least min completed requests; returns how many were stored in
 * out (<= max). With min = 0 it collects what has completed without waiting.
 * An encrypted file's reads are deciphered as they are handed out: a reap
 * with min > 0 may leave completed ones for the next reap rather than
 * decipher past min (reap again; the caller refills the device meanwhile).
 */
int vmfs_aio_reap(struct vmfs_aio *q, unsigned min, struct vmfs_aio_req **out, unsigned max);
/*
 * An eventfd, owned by q, that the device signals as q's requests complete,
 * for a caller that also waits on other things (poll, its own io_uring): read
 * it, then vmfs_aio_reap(q, 0, ...). -EOPNOTSUPP unless the I/O engine is
 * io_uring. Requests done synchronously inside vmfs_aio_submit do not signal
 * it: reap after each submit too.
 */
int vmfs_aio_eventfd(struct vmfs_aio *q);
/*
 * With batch on, vmfs_aio_submit only queues a request for the device; the
 * next vmfs_aio_reap hands all that is queued over in one system call (one
 * doorbell for the burst). For callers that take requests in bursts and reap
 * after each, as vmfs-mount's io_uring queues do.
 */
void vmfs_aio_set_batch(struct vmfs_aio *q, bool batch);

/* ---- shared blocks: snapshots, clones, diffs --------------------------------
 * The mechanism under snapshot/ (docs/FORMAT.md, "Shared blocks" and
 * "Snapshots"). A snapshot is a hidden, read-only inode that shares its file's
 * blocks; writing either copies only what it changes. Callers take the files'
 * cluster locks (vmfs_file_lock) first; these calls take each file's I/O lock
 * exclusive while they run (writes in flight finish first, new ones wait).
 */
#define VMFS_SNAP_GROUP_MAX 64u          /* files snapshotted or reverted together */
struct vmfs_snap_info {
	uint64_t ino;           /* the snapshot's inode (readable with vmfs_pread) */
	uint64_t file;          /* the file it is a snapshot of */
	uint64_t parent;        /* the snapshot it descends from, 0 = none */
	uint64_t id;            /* 1, 2, ... in the order the file's snapshots were made */
	int64_t time_ns;        /* when it was made */
	uint64_t size;          /* the file's size then */
	char name[256];
};
/*
 * Snapshots files[0..n) (regular files, n <= VMFS_SNAP_GROUP_MAX) under one
 * name, in one transaction: after a crash all exist or none. snaps (may be
 * NULL) receives the new inodes. -EEXIST: a file has a snapshot of that name;
 * -EINVAL: a bad name (empty, '/', '@', "." or ".."), -ENAMETOOLONG: over
 * 255 bytes; -EMLINK: a block's or a file's count would pass the format's
 * maximum. O(1) in the files' sizes.
 */
int vmfs_snap_create(struct vmfs *fs, const uint64_t *files, size_t n, const char *name, uint64_t *snaps);
/* The file's snapshots, newest first (caller frees *out), and the one it descends from now (parent, may be NULL). */
int vmfs_snap_list(struct vmfs *fs, uint64_t file, struct vmfs_snap_info **out, size_t *n, uint64_t *parent);
/*
 * As vmfs_lookup, for snapshot name of file: *st describes the snapshot inode
 * (read-only: no write bits, snapshot set) and one lookup reference is taken
 * (vmfs_forget drops it). A snapshot deleted while referenced is freed when
 * the last reference goes; one another host holds open cannot be deleted (-EBUSY).
 */
int vmfs_snap_lookup(struct vmfs *fs, uint64_t file, const char *name, struct vmfs_stat *st);
/* The snapshot of file called name: 0, -ENOENT, or a bad name's error. */
int vmfs_snap_find(struct vmfs *fs, uint64_t file, const char *name, uint64_t *snap);
/*
 * Each files[i] gets exactly the content (and size) of its snapshot snaps[i],
 * all in one transaction; the snapshots stay, and files[i] now descends from
 * snaps[i] (its next snapshot's parent). What the files held alone is freed.
 */
int vmfs_snap_revert(struct vmfs *fs, const uint64_t *files, const uint64_t *snaps, size_t n);
/* Deletes one snapshot of file (any of them); its children descend from its parent. Frees what it held alone. */
int vmfs_snap_delete(struct vmfs *fs, uint64_t file, uint64_t snap);
/* Bytes that deleting ino (a snapshot or a file) would free: blocks no other map shares, its map and its inode. */
int vmfs_unique_bytes(struct vmfs *fs, uint64_t ino, uint64_t *bytes);
/*
 * Calls fn with each byte range (in order, merged, up to the larger size) in
 * which file or snapshot to may differ from from, found from their maps:
 * subtrees the two share are skipped, so the cost follows what changed. Ranges
 * are whole blocks of the file's map (block size, or 4 KiB for files up to
 * 1 MiB). fn returns non-zero to stop (returned).
 */
typedef int (*vmfs_extent_fn)(void *ctx, uint64_t off, uint64_t len);
int vmfs_map_diff(struct vmfs *fs, uint64_t from, uint64_t to, vmfs_extent_fn fn, void *ctx);
/*
 * A new regular file name in dir sharing every block of src (a file or a
 * snapshot): a linked clone, O(1) in src's size. Like vmfs_mknod otherwise
 * (takes a lookup reference); -EEXIST if the name exists, nothing changed.
 */
int vmfs_clone(struct vmfs *fs, uint64_t src, uint64_t dir, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct vmfs_stat *st);

/*
 * copy_file_range(2): copies up to len bytes from soff of src to doff of dst
 * (stopping at src's end; dst grows as needed) and returns how many. Where the
 * two offsets sit at the same place in a block, whole blocks are shared, not
 * copied: O(blocks) metadata, no data moves and no space is used until one of
 * the files is written; the unaligned head and tail are copied. Not atomic (as
 * copy_file_range): a failure can leave part of the range copied.
 */
ssize_t vmfs_copy_range(struct vmfs *fs, uint64_t src, uint64_t soff, uint64_t dst, uint64_t doff, size_t len);

/* ---- whole datastore -------------------------------------------------------- */

struct vmfs_statfs {
	uint64_t bsize;           /* unit of the counts below (4096) */
	uint64_t blocks, bfree;   /* capacity for file data and free units */
	uint64_t bavail;          /* free units file data may still take: bfree less the reserve */
	uint64_t files, ffree;    /* inodes that fit in all (an inode is one unit) and how many more fit now */
	uint32_t namemax;
};
int vmfs_statfs(struct vmfs *fs, struct vmfs_statfs *st);

/* Commits the running transaction and flushes the device. */
int vmfs_sync(struct vmfs *fs);

struct vmfs_info {
	char label[64];
	uint8_t uuid[16];
	uint32_t version_major, version_minor;
	uint64_t compat, ro_compat, incompat;
	uint64_t size;            /* bytes formatted */
	uint32_t block_size, sector_size;
	uint64_t data_blocks, free_blocks;
	uint64_t free_bytes;      /* free file blocks plus free sub-blocks */
	uint32_t host_slots, slot;
	uint64_t journal_size;    /* bytes of a new host's journal */
	uint64_t journals, journal_bytes; /* journals allocated (at most one per slot ever used at once) and their space */
	uint64_t reserved_blocks; /* free blocks kept for one more host's journal and directory changes */
	uint64_t pools, pool_free_units; /* file blocks cut into 4 KiB sub-blocks, and their free sub-blocks */
	/* "not allocated", "clean", "in use", "needs recovery": read-only opens report the worst of every host's */
	const char *journal_state;
	uint64_t rc_count, rc_inited;
	const char *io_engine;
	int64_t mkfs_time_ns;
	bool encrypted, unlocked; /* an encrypted datastore; opened with its key */
	uint32_t key_epoch;       /* the datastore key's generation (encrypted only) */
	unsigned keyslots;        /* active keyslots (encrypted only) */
};
int vmfs_get_info(struct vmfs *fs, struct vmfs_info *info);

/* ---- keys of an encrypted datastore (docs/ENCRYPTION.md) ---------------------
 * Each changes the key area under the cluster's metadata lock, writing every
 * changed record's primary copy, a flush, then its backup copy and a flush,
 * so a crash leaves each record whole in one copy. They need a read-write
 * handle opened with the key (-ENOKEY otherwise; -EROFS read-only).
 */
/*
 * Adds a keyslot for secret (slot -1: the first free one) with kdf (NULL:
 * enc_kdf_default for kind) and label. Returns 0 with *slot set, -ENOSPC
 * when all are used, -EEXIST, -EINVAL; errbuf says why.
 */
int vmfs_key_add(struct vmfs *fs, const struct enc_secret *secret, enum enc_secret_kind kind,
		 const struct enc_kdf_params *kdf, const char *label, int want, int *slot, char *errbuf, size_t errlen);
/* Removes keyslot i: -ENOENT empty, -EBUSY the last one. */
int vmfs_key_remove(struct vmfs *fs, int slot, char *errbuf, size_t errlen);
/*
 * Changes the datastore key (a shallow rekey, docs/ENCRYPTION.md): a new key
 * of the next epoch; every keyslot that secret opens is rewrapped under it
 * (and replaced by a slot for new_secret when it is not NULL, with
 * new_kind's default KDF); a slot secret does not open is dropped with
 * drop_others, else -EPERM names it and nothing changes. Then every live
 * host is waited for until it holds the new key (its poller learns it
 * within a heartbeat interval; -ETIMEDOUT after 30 s names one that did
 * not, the change stays open: run it again), every file key in the
 * datastore's tree and its snapshots is resealed, and the old key is
 * dropped from the key header. A change left open by a crash or a timeout
 * is finished by the next call (with any key that opens the datastore).
 * progress (may be NULL) is called with the files resealed so far.
 * Joins-the-cluster handle opened with the key; may take minutes.
 */
int vmfs_key_change(struct vmfs *fs, const struct enc_secret *secret, const struct enc_secret *new_secret,
		    enum enc_secret_kind new_kind, bool drop_others, void (*progress)(void *ctx, uint64_t files),
		    void *ctx, char *errbuf, size_t errlen);
/*
 * Deep rekey of a regular file, a symlink or a directory (docs/ENCRYPTION.md,
 * "Rekey"): a new file key and every block copied under it, online, one step
 * per call. A step takes the file's I/O lock (I/O waits while it runs),
 * begins the rekey when none is under way, copies max_bytes of blocks (0:
 * 8 MiB; at least one block) from where the last step stopped (after a
 * crash too) and commits; the step that reaches the end also drops the old
 * key. A directory's step rewrites its names under the new key in place, a
 * leaf of its tree per 4 KiB of max_bytes (0: 64 leaves; at most 64, at
 * least one). *pr: bytes done of the file's size (a directory: entries of
 * its entries), and finished. Call until finished. -EOPNOTSUPP: the
 * datastore is not encrypted; -ENOKEY: locked; -EROFS: read-only, or a
 * snapshot; -EINVAL: none of those kinds, or a file without keys. The
 * caller holds the file's lock (vmfs_file_lock) or is the host that has it
 * open; a directory needs none.
 */
struct vmfs_rekey_progress {
	uint64_t done, size;    /* bytes (a directory: entries) under the new key, of size */
	bool finished;          /* no rekey under way (any more) */
	uint64_t run;           /* vmfs_rekey_state: the whole-datastore run that last renewed its key (0: none) */
};
int vmfs_rekey_step(struct vmfs *fs, uint64_t ino, uint64_t max_bytes, struct vmfs_rekey_progress *pr);
/* Where a file's deep rekey stands (finished: none under way). */
int vmfs_rekey_state(struct vmfs *fs, uint64_t ino, struct vmfs_rekey_progress *pr);
/*
 * A deep rekey of the whole datastore as a run that an interruption does not
 * restart (docs/FORMAT.md, sb_rekey_run): begin (end false) opens a new run,
 * or joins the one still open, and gives its number in *run; every rekey
 * that finishes records the latest run's number in its file
 * (vmfs_rekey_state's run), so the files a run has renewed are known and
 * skipped; end closes run *run (when it is still the open one). 0,
 * -EOPNOTSUPP (not encrypted), -EROFS, or an I/O error.
 */
int vmfs_rekey_run(struct vmfs *fs, bool end, uint64_t *run);
/*
 * Zeroes every host's journal log, so that no metadata image written before
 * stays on the device: a deep rekey's names and inline data under the old
 * file keys (snap_rekey calls it when the last file is done; a key change
 * does the same for images sealed under the old datastore key). Takes the
 * metadata lock; other hosts' journals are empty while it is held.
 */
int vmfs_journal_scrub(struct vmfs *fs);
/* Fills info[ENC_SLOTS] with the keyslots as the device holds them now (no key needed). */
int vmfs_key_list(struct vmfs *fs, struct enc_slot_info *info, char *errbuf, size_t errlen);

/* Names the features set in a feature word, comma-separated, into buf. */
void vmfs_feature_names(int word, uint64_t bits, char *buf, size_t len);

/* ---- checking and repair ------------------------------------------------------ */

enum vmfs_fsck_mode {
	VMFS_FSCK_CHECK,          /* -n: open read-only, report, change nothing */
	VMFS_FSCK_PREEN,          /* -p: repair what loses nothing; report the rest */
	VMFS_FSCK_YES,            /* -y: repair everything */
};
struct vmfs_fsck_opts {
	enum vmfs_fsck_mode mode;
	bool force;               /* check even when every journal is clean */
	bool verbose;             /* name each pass */
	bool ignore_live_hosts;   /* repair even while a host's heartbeat advances (dangerous) */
	FILE *out;                /* one line per problem, in a fixed order; NULL: silent */
	void (*progress)(void *ctx, const char *pass, uint64_t done, uint64_t total);
	void *progress_ctx;
};
struct vmfs_fsck_result {
	unsigned found, fixed, left;
	uint64_t files, dirs, blocks_used;
	bool skipped_clean;       /* clean and not forced: nothing was checked */
	unsigned live_hosts;      /* hosts whose heartbeat advanced while fsck watched */
};
/*
 * Checks the datastore at path against every rule of docs/FORMAT.md and
 * repairs per mode. Returns 0 when the check ran (see *res), or -errno when it
 * could not (errbuf says why). The datastore must not be in use: a host slot
 * that is not free is watched first (up to the dead time when repairing, two
 * heartbeat intervals for -n), and a repair is refused with -EBUSY while any
 * host's heartbeat advances, unless ignore_live_hosts.
 */
int vmfs_fsck(const char *path, const struct vmfs_fsck_opts *o, struct vmfs_fsck_result *res, char *errbuf,
	      size_t errlen);

/* ---- cluster ------------------------------------------------------------------- */

/*
 * File locks, as VMs use them: exclusive to write, shared to read, multi-writer
 * for cluster-aware guests. Per host, counted: each vmfs_file_lock() needs one
 * vmfs_file_unlock(). A lock lives as long as this host's heartbeat. Returns 0,
 * -EBUSY when another live host holds the file in a conflicting mode (who, if
 * not NULL, names it in one line), -EIO when fenced. A no-op on read-only and
 * standalone handles. May block for a few I/Os; when the holder's heartbeat is
 * not seen to change (a host killed a moment ago), it watches the holder for up
 * to the dead time plus two heartbeat intervals and an I/O timeout (11 s with
 * the default timings), then recovers that host and takes the lock: a live
 * holder is -EBUSY after about one heartbeat interval.
 */
enum vmfs_lock_mode { VMFS_LOCK_EX = 1, VMFS_LOCK_SH = 2, VMFS_LOCK_MW = 3 };
int vmfs_file_lock(struct vmfs *fs, uint64_t ino, enum vmfs_lock_mode mode, char *who, size_t wholen);
int vmfs_file_unlock(struct vmfs *fs, uint64_t ino);

/* True once this host lost its lease: every write fails with -EIO from then on. */
bool vmfs_fenced(struct vmfs *fs);

/*
 * The name a host shows other hosts (vmfsctl hosts, lock holders): "MACHINE
 * (PROGRAM pid PID)" or, with detail, "MACHINE (PROGRAM pid PID, DETAIL)"
 * (vmfs-mount: its mountpoint), cut to fit len; MACHINE is the host name, or
 * "machine-" and the start of /etc/machine-id where there is none. What
 * vmfs_open uses when opts->hostname is NULL (without detail).
 */
void vmfs_host_name(char *buf, size_t len, const char *detail);
/*
 * Other hosts in a live slot whose name says they run on this machine (a
 * second mount of the same datastore here is a second host, with its own
 * journal and locks). Returns how many, and the first one's slot and name
 * (name: len bytes, cut), or -errno. Reads the heartbeat region once.
 */
int vmfs_peers_here(struct vmfs *fs, unsigned *slot, char *name, size_t len);

/*
 * The cluster as the disk shows it (vmfsctl hosts, locks): read-only, joins
 * nothing, works on a datastore opened read-only.
 *
 * vmfs_hosts() watches the heartbeat region for two heartbeat intervals and
 * lists every slot that is not free with generation 0 (caller frees *out).
 * vmfs_locks() calls fn for every lock record on disk, in table order, until
 * fn returns non-zero (which it returns); a dead host's locks stay listed until
 * it is recovered.
 */
enum vmfs_host_state { VMFS_HOST_FREE, VMFS_HOST_LIVE, VMFS_HOST_RECOVERING };
struct vmfs_host {
	unsigned slot;
	enum vmfs_host_state state;
	uint64_t gen;
	uint8_t uuid[16];
	char hostname[64];
	bool alive;             /* its heartbeat changed while watched */
	double age_s;           /* since it last changed; when !alive, a lower bound (the watch) */
};
int vmfs_hosts(struct vmfs *fs, struct vmfs_host **out, size_t *n);

enum vmfs_lock_kind { VMFS_LOCK_OTHER, VMFS_LOCK_INODE, VMFS_LOCK_META, VMFS_LOCK_RC, VMFS_LOCK_SLOT };
struct vmfs_lock {
	enum vmfs_lock_kind kind;
	uint64_t id;            /* inode, resource cluster or slot; OTHER: the raw lockmgr resource */
	enum vmfs_lock_mode mode; /* 0 when it is none of these */
	unsigned slot;          /* the holder's */
	uint64_t gen;
	char hostname[64];      /* "" if unknown */
	uint64_t version;
};
int vmfs_locks(struct vmfs *fs, int (*fn)(void *ctx, const struct vmfs_lock *l), void *ctx);
/* A lock's holder in the words of vmfs_file_lock's -EBUSY: "host slot S (HOST, generation G, exclusive)". */
void vmfs_lock_holder(const struct vmfs_lock *l, char *who, size_t wholen);

/* ---- paths (for tools and vmm) ----------------------------------------------- */

/*
 * Resolves a path from the datastore's root; a leading '/' is optional, so
 * "vms/a/disk0.img" and "/vms/a/disk0.img" name the same file. Symlinks are
 * not followed. No reference is taken. -EINVAL for an empty path.
 */
int vmfs_resolve(struct vmfs *fs, const char *path, uint64_t *ino);
/*
 * Writes a path of inode ino from the root into buf ("/" for the root),
 * walking i_parent upwards and finding each name in its directory: for a file
 * with several links, the one in the directory it was created in (or last
 * renamed into). -ENOENT when it has no name there (unlinked, still open),
 * -ENAMETOOLONG when buf is too small. Takes fs->lock per step.
 */
int vmfs_path(struct vmfs *fs, uint64_t ino, char *buf, size_t len);

#endif
