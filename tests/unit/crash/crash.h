/*
 * What the files of the power-cut tests share (tests/unit/test_crash.c and
 * the files of tests/unit/crash/): the model's and the workload's types, the
 * configs, and the functions each file offers the ones after it in this
 * order: util, model, workload, check, power, regress, test_crash.c. Each
 * function is documented where it is defined.
 */
#ifndef VMFS_TESTS_CRASH_H
#define VMFS_TESTS_CRASH_H

#include "vmfs/dev_crash.h"
#include "vmfs/vmfs.h"

#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECTOR 512u
#define MIB (1ull << 20)

/* Deterministic choices: a plain counter through mix64. */
struct rng {
	uint64_t s;
};

#define MAX_OBJS 96
#define MAX_DENTS 96
#define NAME_LEN 32
#define ROOT 0                    /* object 0 is the root directory, 1 lost+found */

/* A file's bytes as runs of write generations; gaps read as zeros. */
struct seg {
	uint64_t start, end;
	uint32_t gen;
};

struct segmap {
	struct seg *v;
	size_t n;
};

/* What the window did to a file: a write (gen > 0) or a zeroing (gen 0) of [start, end). */
struct event {
	uint64_t start, end;
	uint32_t gen;
};

enum obj_type { T_FILE, T_DIR, T_LINK };

struct obj {
	enum obj_type type;
	uint64_t ino, igen;       /* vmfs identity; ino 0 until known */
	unsigned names;           /* entries naming it now */
	unsigned refs;            /* lookup references the workload holds */
	char *target;             /* symlinks */
	/* regular files: now, at the last durable point, and since it */
	uint32_t wgen;
	uint64_t size, dsize;
	struct segmap cur, dur;
	struct event *ev;
	size_t nev;
	uint64_t *sizes;
	size_t nsizes;
};

struct dent {
	int dir, obj;
	char name[NAME_LEN];
};

struct model {
	struct obj o[MAX_OBJS];
	int nobj;
	struct dent d[MAX_DENTS];
	int nd;
	char **ns;                /* namespaces after each operation of the window, [0] durable */
	size_t nns;
	int pending_obj;          /* created by the operation in flight (identity unknown) */
	unsigned ops, durable_ops;
};

#define WBUF_MAX (3 * MIB)
#define RBUF_MAX (6 * MIB)
#define STEPS 150
#define MAX_FILES 14
#define MAX_DIRS 8

enum size_class { SC_INLINE, SC_SMALL, SC_LARGE };

struct config {
	const char *name;
	unsigned commit_ms;
	enum dev_crash_mode mode;
	uint64_t seed;             /* the workload's choices */
	unsigned weight;           /* share of the cut points */
};

struct run {
	const struct config *cfg;
	struct vmfs *fs;
	struct vmfs_aio *aio;
	struct model m;
	struct rng rng;
	uint8_t *buf, *rbuf, *ebuf;
	unsigned fresh;                 /* counter for new names */
	enum size_class cls[MAX_OBJS];
	char op[200];                   /* the operation in flight */
	char why[2048];                 /* what went wrong, when something did */
	struct {
		char name[16];
		unsigned n;
	} hist[24];                     /* operations by kind (CRASH_VERBOSE) */
};

struct space {
	uint64_t data_blocks;      /* file blocks referenced by files */
	uint64_t journal_blocks;
	uint64_t pools;
	uint64_t pool_units_used;  /* sub-blocks in use, pool headers not counted */
};

extern char tmpdir[PATH_MAX];            /* util.c: made by make_tmpdir */
extern const struct config configs[];    /* power.c: the power_cuts loop runs one per entry */

/* util.c */
uint64_t mix64(uint64_t z);
uint64_t below(struct rng *r, uint64_t n);
uint64_t between(struct rng *r, uint64_t lo, uint64_t hi);
uint8_t data_byte(unsigned f, uint32_t g, uint64_t o);
void data_fill(uint8_t *buf, unsigned f, uint32_t g, uint64_t off, size_t len);
uint64_t max_u64(uint64_t a, uint64_t b);
uint64_t min_u64(uint64_t a, uint64_t b);
double now_s(void);
void must(bool ok, const char *what);
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
void make_tmpdir(void);
void remove_tmpdir(void);
bool is_zero(const uint8_t *p, size_t len);

/* model.c */
void map_set(struct segmap *m, uint64_t start, uint64_t end, uint32_t gen);
void obj_event(struct obj *o, uint64_t start, uint64_t end, uint32_t gen);
void obj_size(struct obj *o, uint64_t size);
char *ns_string(const struct dent *d, int n);
void ns_push(struct model *m);
void model_durable(struct model *m);
void model_release(struct model *m);
int model_new_obj(struct model *m, enum obj_type t);
int dent_find(const struct model *m, int dir, const char *name);
void dent_add(struct model *m, int dir, const char *name, int obj);
void dent_del(struct model *m, int i);
void model_write(struct obj *o, unsigned id, uint64_t off, size_t len);

/* workload.c */
void say(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t ino_of(struct run *r, int obj);
void model_bytes(const struct obj *o, unsigned id, const struct segmap *map, uint8_t *buf,
		 uint64_t off, size_t len);
void run_init(struct run *r, const struct config *cfg);
void run_release(struct run *r);
int workload(struct run *r, const char *img, uint64_t cut, uint64_t tear_seed);
void discard(struct run *r);

/* check.c */
int check_tree(struct run *r);
int check_growth(struct run *r);
int remove_all(struct vmfs *fs, uint64_t dir, int depth);
int scan_space(const char *img, struct space *sp, char *why, size_t whylen);
bool fsck_available(void);
int run_fsck(const char *img, const char *log);

/* power.c */
int make_image(const char *img, char *err, size_t errlen);

/* The cases power_cuts (power.c) and regressions (regress.c): fixture, timeout, tests. */
void crash_power_tests(TCase *tc);
void crash_regress_tests(TCase *tc);
void crash_snap_tests(TCase *tc);     /* snap.c: power cuts through snapshots (case snap_cuts) */
void crash_enc_tests(TCase *tc);      /* snap.c: the same on an encrypted datastore (case enc_cuts) */

#endif
