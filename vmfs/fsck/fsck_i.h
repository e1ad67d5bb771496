/*
 * fsck's private header: what the passes share. struct fsck is one run's
 * state (options, the in-memory counts of counts.c, the queue of directories
 * to walk and the inodes found lost); the passes run in the order of fsck.c and
 * each reports through fsck_problem(), whose codes are the table of problems.h.
 */
#ifndef VMFS_FSCK_I_H
#define VMFS_FSCK_I_H

#include "vmfs/vmfs_i.h"
#include "vmfs/fsck/problems.h"

#define WHERE_MAX 1024         /* " (/PATH)" shown in messages, cut there */

struct ino_info {
	uint64_t ino;
	uint32_t links;                 /* directory entries naming it */
	uint32_t subdirs;               /* for directories: subdirectories found */
	uint64_t parent;                /* directory it was first found in */
	uint64_t units;                 /* units counted for it */
	char *name;                     /* directories: the name it was first found under */
	bool reached, is_dir, bad, lost, orphan;
	struct ino_info *next;
};

struct pool_exp {
	uint64_t block;
	uint16_t *ref;
	struct pool_exp *next;
};

struct fsck {
	struct vmfs *fs;
	const struct vmfs_fsck_opts *o;
	struct vmfs_fsck_result *r;
	uint16_t **rcexp;               /* per RC, expected count of each block */
	struct pool_exp **phash;
	struct ino_info **ihash;
	struct ptr_memo **pmemo;        /* shared pointer blocks: units below each (counts.c) */
	struct redir_exp **rhash;       /* redirect tables reached: pointers to each slot (counts.c) */
	size_t hsize;
	uint64_t *queue;                /* directories still to walk */
	size_t qn, qcap;
	uint64_t *lost;                 /* unreachable inodes to reconnect */
	size_t nlost, lostcap;
	const char *pass;
	uint64_t done, total;
	char quiet[256];
	struct vmfs_sb_disk *sb_p, *sb_b; /* both superblock copies as read, judged after replay */
	bool sb_pok, sb_bok;
	/* the file being checked, as reported: " (PATH)", or "" when no name reached it */
	char where[WHERE_MAX];
	bool alloc_ready;               /* the allocator is loaded (pass 5 repairs that allocate) */
	bool root_damaged;              /* pass 2 could not go on without a root */
	uint32_t key_epoch;             /* an encrypted datastore's key epoch (pass 1) */
	uint32_t key_prev_epoch;        /* during a key change, the old one's (file keys may be of either) */
};

static inline bool fsck_repairing(struct fsck *c) { return c->o->mode != VMFS_FSCK_CHECK; }
static inline int fsck_dirty(struct fsck *c, struct vbuf *b) { return meta_dirty(c->fs, b); }

/* ---- problems (problem.c) ---- */

enum fsck_preen { PREEN_NO, PREEN_FIX };
enum fsck_code {
#define X(code, preen, msg) code,
	FSCK_PROBLEMS(X)
#undef X
	PR_COUNT
};
/* each problem's message, by name, so the compiler checks a report's arguments against it */
#define X(code, preen, msg) static const char code##_msg[] = msg;
FSCK_PROBLEMS(X)
#undef X

/*
 * Reports problem code with its message and the arguments; true when it is to
 * be fixed now (by the mode and the table's -p column). Counts it in the result.
 */
#define fsck_problem(c, code, ...) fsck_report(c, code, code##_msg, ##__VA_ARGS__)
bool fsck_report(struct fsck *c, enum fsck_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* " (/PATH)" of name in directory dir (or of dir, name NULL) into buf; "" when no name reached it. */
const char *fsck_path_of(struct fsck *c, uint64_t dir, const char *name, char *buf, size_t len);
void fsck_start_pass(struct fsck *c, const char *name, uint64_t total);
void fsck_progress(struct fsck *c, uint64_t step);

/* ---- the counts of what was found (counts.c) ---- */

int fsck_counts_init(struct fsck *c);
void fsck_counts_release(struct fsck *c);
/* The inode's record, made when missing (NULL: out of memory); _find does not make one. */
struct ino_info *fsck_ino_get(struct fsck *c, uint64_t ino);
struct ino_info *fsck_ino_find(struct fsck *c, uint64_t ino);
/* The expected count of file block blk (NULL: out of memory). */
uint16_t *fsck_rc_slot(struct fsck *c, uint64_t blk);
struct pool_exp *fsck_pool_get(struct fsck *c, uint64_t blk, bool create);
/* Claims: 0, 1 when already claimed, -1 when the address is not valid for it. */
int fsck_claim_block(struct fsck *c, uint64_t unit, uint16_t kind);
int fsck_claim_unit(struct fsck *c, uint64_t unit);
void fsck_unclaim_unit(struct fsck *c, uint64_t unit);
int fsck_memo_set(struct fsck *c, uint64_t addr, uint64_t units);
/* A redirect table reached by the maps: the pointers found to each slot, checked in pass 5. */
struct redir_exp {
	uint64_t unit;
	bool bad;                       /* damaged: every pointer to it is cleared */
	uint16_t count[VMFS_REDIR_MAX_SLOTS];
	struct redir_exp *next;
};
/* The table at unit; *created says it was not met before (NULL: out of memory). */
struct redir_exp *fsck_redir_get(struct fsck *c, uint64_t unit, bool *created);
bool fsck_memo_get(struct fsck *c, uint64_t addr, uint64_t *units);
int fsck_push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x);
/* Notes an unreachable inode for pass 3 to link into /lost+found. */
int fsck_note_lost(struct fsck *c, uint64_t ino);

/* ---- the passes (pass1.c .. pass5.c); each returns 0 or -errno ---- */

int fsck_pass1(struct fsck *c);
int fsck_pass2(struct fsck *c);
/* Checks one inode (already claimed) and everything it owns; walks the queued directories. */
int fsck_check_inode(struct fsck *c, uint64_t ino, struct ino_info *ii);
int fsck_walk_queue(struct fsck *c);
uint32_t fsck_mode_of(struct fsck *c, uint64_t ino);
int fsck_pass3(struct fsck *c);
int fsck_pass4(struct fsck *c);
int fsck_pass5(struct fsck *c);
int fsck_pass3_reconnect(struct fsck *c);

#endif
