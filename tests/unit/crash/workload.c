/*
 * The power-cut workload (tests/unit/test_crash.c, part 2): a deterministic
 * sequence of about 150 operations through libvmfs (create, write, aio,
 * truncate, fallocate, rename, link, remove, fsync, read back), chosen by the
 * config's seed and recorded in the model (model.c) as each completes.
 * workload() runs it on a crash device armed to cut at a given write; the
 * model then holds the window the cut must leave the datastore in.
 */
#include "vmfs/dev_i.h"
#include "vmfs/dev_crash.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"
#include "tests/unit/crash/crash.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const uint64_t class_cap[] = { 2600, 1300 * 1024, 5 * MIB };

void say(struct run *r, const char *fmt, ...)
{
	size_t len = strlen(r->why);
	va_list ap;

	if (len + 2 >= sizeof(r->why))
		return;
	if (len)
		r->why[len++] = '\n', r->why[len] = 0;
	va_start(ap, fmt);
	vsnprintf(r->why + len, sizeof(r->why) - len, fmt, ap);
	va_end(ap);
}

static void set_op(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_op(struct run *r, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(r->op, sizeof(r->op), "op %u: ", r->m.ops);

	va_start(ap, fmt);
	vsnprintf(r->op + n, sizeof(r->op) - (size_t)n, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < sizeof(r->hist) / sizeof(r->hist[0]); i++) {
		size_t len = strcspn(r->op + n, " ");

		if (len >= sizeof(r->hist[i].name))
			len = sizeof(r->hist[i].name) - 1;
		if (!r->hist[i].name[0])
			memcpy(r->hist[i].name, r->op + n, len);
		if (!strncmp(r->hist[i].name, r->op + n, len) && !r->hist[i].name[len]) {
			r->hist[i].n++;
			break;
		}
	}
}

static bool commits(const struct run *r)
{
	return r->cfg->commit_ms == 0;
}

/*
 * Ends an operation of the workload: records the namespace it left (the
 * window holds the state after the interrupted operation too); on success,
 * starts a new window when the operation is a durable point.
 */
static int op_done(struct run *r, int ret, bool durable)
{
	ns_push(&r->m);
	r->m.ops++;
	if (ret < 0)
		return ret;
	if (durable)
		model_durable(&r->m);
	return 0;
}

uint64_t ino_of(struct run *r, int obj)
{
	return obj == ROOT ? vmfs_root_ino(r->fs) : r->m.o[obj].ino;
}

static int x_create(struct run *r, int dir, enum obj_type t)
{
	struct model *m = &r->m;
	char name[NAME_LEN], target[3200];
	struct vmfs_stat st;
	int id = model_new_obj(m, t), ret = 0;
	struct obj *o = &m->o[id];

	snprintf(name, sizeof(name), "%c%u", t == T_DIR ? 'd' : t == T_LINK ? 'l' : 'f', r->fresh++);
	dent_add(m, dir, name, id);
	if (t == T_FILE) {
		uint64_t c = below(&r->rng, 10);

		r->cls[id] = c < 3 ? SC_INLINE : c < 6 ? SC_SMALL : SC_LARGE;
	}
	if (t == T_LINK) {
		size_t len = below(&r->rng, 2) ? between(&r->rng, 3000, 3100) : between(&r->rng, 1, 200);

		for (size_t i = 0; i < len; i++)
			target[i] = (char)('a' + (id * 7 + i) % 26);
		target[len] = 0;
		o->target = xstrdup(target);
	}
	set_op(r, "create %s %d/%s (object %d)", t == T_DIR ? "dir" : t == T_LINK ? "symlink" : "file",
	       dir, name, id);
	if (t == T_DIR)
		ret = vmfs_mkdir(r->fs, ino_of(r, dir), name, 0755, 0, 0, &st);
	else if (t == T_LINK)
		ret = vmfs_symlink(r->fs, ino_of(r, dir), name, target, 0, 0, &st);
	else
		ret = vmfs_mknod(r->fs, ino_of(r, dir), name, S_IFREG | 0644, 0, 0, &st);
	if (!ret) {
		o->ino = st.ino;
		o->igen = st.gen;
		/* keep the reference of the create now and then, as a kernel holding the dentry would */
		if (t == T_FILE && below(&r->rng, 10) < 3)
			o->refs = 1;
		else
			vmfs_forget(r->fs, st.ino, 1);
	}
	return op_done(r, ret, commits(r));
}

static int x_write(struct run *r, int id, uint64_t off, size_t len, bool aio)
{
	struct obj *o = &r->m.o[id];
	ssize_t n;
	int ret;

	model_write(o, (unsigned)id, off, len);
	data_fill(r->buf, (unsigned)id, o->wgen, off, len);
	set_op(r, "%s object %d [%llu, +%zu) gen %u", aio ? "aio write" : "write", id,
	       (unsigned long long)off, len, o->wgen);
	if (aio) {
		struct vmfs_aio_req req = { .ino = o->ino, .write = true, .buf = r->buf, .len = len, .off = off };
		struct vmfs_aio_req *out[1];
		int got = vmfs_aio_submit(r->aio, &req);

		if (!got)
			got = vmfs_aio_reap(r->aio, 1, out, 1);
		n = got < 0 ? got : got != 1 ? -EIO : out[0]->res;
	} else {
		n = vmfs_pwrite(r->fs, o->ino, r->buf, len, off);
	}
	ret = n < 0 ? (int)n : (size_t)n != len ? -EIO : 0;
	/* an asynchronous overwrite commits nothing, so it is durable only at the next commit */
	return op_done(r, ret, !aio && commits(r));
}

static void model_truncate(struct obj *o, uint64_t size)
{
	if (size < o->size) {
		map_set(&o->cur, size, o->size, 0);
		obj_event(o, size, o->size, 0);
	} else {
		obj_event(o, o->size, size, 0);
	}
	obj_size(o, size);
}

static int x_truncate(struct run *r, int id, uint64_t size)
{
	struct obj *o = &r->m.o[id];
	struct vmfs_stat st = { .size = size };

	set_op(r, "truncate object %d from %llu to %llu", id, (unsigned long long)o->size,
	       (unsigned long long)size);
	model_truncate(o, size);
	return op_done(r, vmfs_setattr(r->fs, o->ino, &st, VMFS_SET_SIZE, NULL), commits(r));
}

static int x_falloc(struct run *r, int id, int mode, uint64_t off, uint64_t len)
{
	struct obj *o = &r->m.o[id];
	uint64_t end = off + len, e = min_u64(end, o->size);

	set_op(r, "fallocate object %d mode 0x%x [%llu, +%llu) size %llu", id, mode,
	       (unsigned long long)off, (unsigned long long)len, (unsigned long long)o->size);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			e = end;
		if (off < e) {
			map_set(&o->cur, off, e, 0);
			obj_event(o, off, e, 0);
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > o->size) {
		obj_event(o, o->size, end, 0);
		obj_size(o, end);
	}
	return op_done(r, vmfs_fallocate(r->fs, o->ino, mode, off, len), commits(r));
}

static int x_rename(struct run *r, int src, int ndir, const char *nname)
{
	struct model *m = &r->m;
	struct dent s = m->d[src];
	int dst = dent_find(m, ndir, nname), ret;

	set_op(r, "rename %d/%s -> %d/%s%s", s.dir, s.name, ndir, nname, dst >= 0 ? " (replacing)" : "");
	if (dst >= 0) {
		dent_del(m, dst);
		src = dent_find(m, s.dir, s.name);
	}
	m->d[src].dir = ndir;
	snprintf(m->d[src].name, NAME_LEN, "%s", nname);
	ret = vmfs_rename(r->fs, ino_of(r, s.dir), s.name, ino_of(r, ndir), nname, 0);
	return op_done(r, ret, commits(r));
}

static int x_remove(struct run *r, int i)
{
	struct model *m = &r->m;
	struct dent d = m->d[i];
	bool dir = m->o[d.obj].type == T_DIR;
	int ret;

	set_op(r, "%s %d/%s (object %d)", dir ? "rmdir" : "unlink", d.dir, d.name, d.obj);
	dent_del(m, i);
	if (dir)
		ret = vmfs_rmdir(r->fs, ino_of(r, d.dir), d.name);
	else
		ret = vmfs_unlink(r->fs, ino_of(r, d.dir), d.name);
	return op_done(r, ret, commits(r));
}

static int x_link(struct run *r, int id, int dir)
{
	char name[NAME_LEN];
	struct vmfs_stat st;
	int ret;

	snprintf(name, sizeof(name), "h%u", r->fresh++);
	set_op(r, "link object %d as %d/%s", id, dir, name);
	dent_add(&r->m, dir, name, id);
	ret = vmfs_link(r->fs, r->m.o[id].ino, ino_of(r, dir), name, &st);
	if (!ret)
		vmfs_forget(r->fs, st.ino, 1);
	return op_done(r, ret, commits(r));
}

/* Takes a lookup reference on a name, as an open file would hold it. */
static int x_hold(struct run *r, int i)
{
	struct dent d = r->m.d[i];
	struct vmfs_stat st;
	int ret;

	set_op(r, "lookup %d/%s (object %d) and hold it", d.dir, d.name, d.obj);
	ret = vmfs_lookup(r->fs, ino_of(r, d.dir), d.name, &st);
	if (!ret && (st.ino != r->m.o[d.obj].ino || st.gen != r->m.o[d.obj].igen)) {
		say(r, "lookup %d/%s found inode %llu, expected %llu", d.dir, d.name,
		    (unsigned long long)st.ino, (unsigned long long)r->m.o[d.obj].ino);
		ret = -EILSEQ;
	}
	if (!ret)
		r->m.o[d.obj].refs++;
	return op_done(r, ret, false);
}

/* vmfs_forget cannot fail, so it is never a durable point: a cut inside it shows up later. */
static int x_forget(struct run *r, int id)
{
	set_op(r, "forget object %d (%u names)", id, r->m.o[id].names);
	vmfs_forget(r->fs, r->m.o[id].ino, 1);
	r->m.o[id].refs--;
	return op_done(r, 0, false);
}

static int x_fsync(struct run *r, int id)
{
	int ret;

	if (id < 0) {
		set_op(r, "sync");
		ret = vmfs_sync(r->fs);
	} else {
		set_op(r, "fsync object %d", id);
		ret = vmfs_fsync(r->fs, r->m.o[id].ino, below(&r->rng, 2));
	}
	return op_done(r, ret, true);
}

/* The expected bytes [off, off+len) of a file as the model has it now. */
void model_bytes(const struct obj *o, unsigned id, const struct segmap *map, uint8_t *buf,
		 uint64_t off, size_t len)
{
	memset(buf, 0, len);
	for (size_t i = 0; i < map->n; i++) {
		uint64_t a = max_u64(map->v[i].start, off), b = min_u64(map->v[i].end, off + len);

		if (a < b)
			data_fill(buf + (a - off), id, map->v[i].gen, a, (size_t)(b - a));
	}
	(void)o;
}

/* Reads a file back during the workload: what was written must read back now. */
static int x_readback(struct run *r, int id)
{
	struct obj *o = &r->m.o[id];
	struct vmfs_stat st;
	ssize_t n;
	int ret;

	set_op(r, "read back object %d (%llu bytes)", id, (unsigned long long)o->size);
	ret = vmfs_getattr(r->fs, o->ino, &st);
	if (!ret && st.size != o->size) {
		say(r, "object %d: size %llu, expected %llu, without a crash", id,
		    (unsigned long long)st.size, (unsigned long long)o->size);
		return op_done(r, -EILSEQ, false);
	}
	if (ret)
		return op_done(r, ret, false);
	n = vmfs_pread(r->fs, o->ino, r->rbuf, o->size, 0);
	if (n < 0)
		return op_done(r, (int)n, false);
	model_bytes(o, (unsigned)id, &o->cur, r->ebuf, 0, o->size);
	if ((size_t)n != o->size || memcmp(r->rbuf, r->ebuf, o->size)) {
		size_t i = 0;

		while (i < (size_t)n && r->rbuf[i] == r->ebuf[i])
			i++;
		say(r, "object %d: read back %zd bytes differing at %zu, without a crash", id, n, i);
		return op_done(r, -EILSEQ, false);
	}
	return op_done(r, 0, false);
}

/* ---- choosing the next operation ---- */

static int count_type(struct run *r, enum obj_type t, bool linked)
{
	int n = 0;

	for (int i = 0; i < r->m.nobj; i++)
		n += r->m.o[i].type == t && (r->m.o[i].names || (!linked && r->m.o[i].refs));
	return n;
}

/* A random object of type t that has a name (or, unless linked, at least a reference). */
static int pick_obj(struct run *r, enum obj_type t, bool linked)
{
	int n = count_type(r, t, linked), k;

	if (!n)
		return -1;
	k = (int)below(&r->rng, (uint64_t)n);
	for (int i = 0; i < r->m.nobj; i++)
		if (r->m.o[i].type == t && (r->m.o[i].names || (!linked && r->m.o[i].refs)) && k-- == 0)
			return i;
	return -1;
}

/* A directory to create in: the root or one of the workload's. */
static int pick_dir(struct run *r)
{
	int n = count_type(r, T_DIR, true) - 1, k;   /* not lost+found */

	k = (int)below(&r->rng, (uint64_t)n + 1);
	if (k == 0)
		return ROOT;
	for (int i = 2; i < r->m.nobj; i++)
		if (r->m.o[i].type == T_DIR && r->m.o[i].names && --k == 0)
			return i;
	return ROOT;
}

/* A random entry naming an object of type t, never lost+found. */
static int pick_dent(struct run *r, enum obj_type t)
{
	int n = 0, k;

	for (int i = 0; i < r->m.nd; i++)
		n += r->m.d[i].obj != 1 && r->m.o[r->m.d[i].obj].type == t;
	if (!n)
		return -1;
	k = (int)below(&r->rng, (uint64_t)n);
	for (int i = 0; i < r->m.nd; i++)
		if (r->m.d[i].obj != 1 && r->m.o[r->m.d[i].obj].type == t && k-- == 0)
			return i;
	return -1;
}

static bool dir_empty(struct run *r, int obj)
{
	for (int i = 0; i < r->m.nd; i++)
		if (r->m.d[i].dir == obj)
			return false;
	return true;
}

/* Is obj the directory anc or below it? */
static bool within(struct run *r, int obj, int anc)
{
	for (int depth = 0; depth < MAX_OBJS; depth++) {
		int parent = -1;

		if (obj == anc)
			return true;
		if (obj == ROOT)
			return false;
		for (int i = 0; i < r->m.nd; i++)
			if (r->m.d[i].obj == obj)
				parent = r->m.d[i].dir;
		if (parent < 0)
			return false;
		obj = parent;
	}
	return false;
}

static void clamp_range(uint64_t cap, uint64_t *off, uint64_t *len)
{
	if (*len > cap)
		*len = cap;
	if (*len == 0)
		*len = 1;
	if (*off + *len > cap)
		*off = cap - *len;
}

static int step_write(struct run *r, int id, bool aio)
{
	struct obj *o = &r->m.o[id];
	uint64_t cap = class_cap[r->cls[id]], size = o->size, off = 0, len = 1;
	struct rng *g = &r->rng;

	if (aio && size >= 4096) {   /* aligned overwrites: the asynchronous path */
		off = 4096 * below(g, size / 4096);
		len = 4096 * between(g, 1, 16);
		if (off + len > size)
			len = (size - off) / 4096 * 4096;
		return x_write(r, id, off, (size_t)len, true);
	}
	if (r->cls[id] == SC_INLINE) {
		off = below(g, 1500);
		len = between(g, 1, below(g, 8) ? 500 : 1100);
	} else {
		switch (below(g, 7)) {
		case 0:   /* tiny */
			off = below(g, min_u64(size + 64, cap - 1));
			len = between(g, 1, 64);
			break;
		case 1:   /* sub-block, unaligned */
			off = below(g, min_u64(size + 4096, cap - 1));
			len = between(g, 100, 4000);
			break;
		case 2:   /* exactly one 4 KiB sub-block */
			off = 4096 * below(g, min_u64(size + 8192, cap) / 4096);
			len = 4096;
			break;
		case 3:   /* exactly one file block */
			off = MIB * below(g, min_u64(size + 2 * MIB, cap) / MIB + 1);
			len = MIB;
			break;
		case 4:   /* several blocks */
			off = below(g, size + 1);
			len = between(g, MIB + MIB / 8, 5 * MIB / 2);
			break;
		case 5:   /* across a block boundary */
			off = MIB * between(g, 1, 4) - between(g, 1, 5000);
			len = between(g, 2, 12000);
			break;
		default:  /* whole sectors */
			off = below(g, size + 1) & ~(uint64_t)(SECTOR - 1);
			len = SECTOR * between(g, 1, 16);
			break;
		}
	}
	clamp_range(cap, &off, &len);
	return x_write(r, id, off, (size_t)len, false);
}

static int step_truncate(struct run *r, int id)
{
	uint64_t cap = class_cap[r->cls[id]], size = r->m.o[id].size, to;
	struct rng *g = &r->rng;

	switch (below(g, 6)) {
	case 0:
		to = 0;
		break;
	case 1:
	case 2:
		to = below(g, size + 1);
		break;
	case 3:
		to = size / 4096 * 4096;
		break;
	default:
		to = between(g, size, cap);
		break;
	}
	return x_truncate(r, id, to);
}

static int step_falloc(struct run *r, int id)
{
	uint64_t cap = class_cap[r->cls[id]], size = r->m.o[id].size, off, len;
	struct rng *g = &r->rng;
	int mode;

	switch (below(g, 5)) {
	case 0:   /* preallocate, growing the size */
		mode = 0;
		off = below(g, size + 1);
		len = between(g, 1, MIB + MIB / 2);
		break;
	case 1:   /* preallocate, keeping the size (also past the end) */
		mode = FALLOC_FL_KEEP_SIZE;
		off = below(g, cap);
		len = between(g, 1, 2 * MIB);
		break;
	case 2:
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		off = below(g, size + 1);
		len = between(g, 1, size - off + 1);
		break;
	case 3:
		mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		off = below(g, size + 1);
		len = between(g, 1, size - off + 1);
		break;
	default:
		mode = FALLOC_FL_ZERO_RANGE;
		off = below(g, size + 1);
		len = between(g, 1, MIB + 1000);
		break;
	}
	clamp_range(cap, &off, &len);
	return x_falloc(r, id, mode, off, len);
}

static int step_rename(struct run *r)
{
	struct rng *g = &r->rng;
	char name[NAME_LEN];
	int src, ndir, dst;

	if (below(g, 5) == 0 && (src = pick_dent(r, T_DIR)) >= 0) {
		ndir = pick_dir(r);
		if (within(r, ndir, r->m.d[src].obj))
			ndir = r->m.d[src].dir;
		snprintf(name, sizeof(name), "D%u", r->fresh++);
		return x_rename(r, src, ndir, name);
	}
	src = pick_dent(r, below(g, 6) ? T_FILE : T_LINK);
	if (src < 0)
		src = pick_dent(r, T_FILE);
	if (src < 0)
		return 1;
	if (below(g, 3) == 0 && (dst = pick_dent(r, T_FILE)) >= 0 &&
	    r->m.d[dst].obj != r->m.d[src].obj) {
		snprintf(name, sizeof(name), "%s", r->m.d[dst].name);
		return x_rename(r, src, r->m.d[dst].dir, name);   /* over an existing file */
	}
	snprintf(name, sizeof(name), "r%u", r->fresh++);
	return x_rename(r, src, below(g, 2) ? r->m.d[src].dir : pick_dir(r), name);
}

/* One random operation. Returns 0, 1 when there was nothing to do, or the error that ended it. */
static int step(struct run *r)
{
	struct rng *g = &r->rng;
	uint64_t p = below(g, 100);
	int f = pick_obj(r, T_FILE, false), i;

	if (f < 0 || (p < 7 && count_type(r, T_FILE, false) < MAX_FILES))
		return x_create(r, pick_dir(r), T_FILE);
	if (p < 34)
		return step_write(r, f, false);
	if (p < 39)
		return step_write(r, f, true);
	if (p < 45)
		return step_truncate(r, f);
	if (p < 53)
		return step_falloc(r, f);
	if (p < 61)
		return step_rename(r);
	if (p < 66)
		return (i = pick_dent(r, below(g, 5) ? T_FILE : T_LINK)) >= 0 ? x_remove(r, i) : 1;
	if (p < 69)
		return (i = pick_dent(r, T_FILE)) >= 0 ? x_hold(r, i) : 1;
	if (p < 71) {
		for (int k = 0; k < r->m.nobj; k++)
			if (r->m.o[k].refs)
				return x_forget(r, k);
		return 1;
	}
	if (p < 73)
		return (f = pick_obj(r, T_FILE, true)) >= 0 ? x_link(r, f, pick_dir(r)) : 1;
	if (p < 76)
		return count_type(r, T_DIR, true) < MAX_DIRS ? x_create(r, pick_dir(r), T_DIR) : 1;
	if (p < 78) {
		for (int k = 0; k < r->m.nd; k++)
			if (r->m.d[k].obj > 1 && r->m.o[r->m.d[k].obj].type == T_DIR && dir_empty(r, r->m.d[k].obj))
				return x_remove(r, k);
		return 1;
	}
	if (p < 80)
		return x_create(r, pick_dir(r), T_LINK);
	if (p < 90)
		return x_fsync(r, f);
	if (p < 92)
		return x_fsync(r, -1);
	return x_readback(r, f);
}

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	model_new_obj(m, T_DIR);   /* root */
	model_new_obj(m, T_DIR);   /* lost+found */
	dent_add(m, ROOT, "lost+found", 1);
	m->o[ROOT].names = 1;
	model_durable(m);
}

void run_init(struct run *r, const struct config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->rng.s = cfg->seed;
	r->buf = dev_alloc_buf(WBUF_MAX);
	r->rbuf = dev_alloc_buf(RBUF_MAX);
	r->ebuf = dev_alloc_buf(RBUF_MAX);
	must(r->buf && r->rbuf && r->ebuf, "out of memory");
	model_init(&r->m);
}

void run_release(struct run *r)
{
	model_release(&r->m);
	free(r->buf);
	free(r->rbuf);
	free(r->ebuf);
}

/*
 * The workload: open with the crash engine armed at write cut (0: never), a
 * fixed start, STEPS random operations, close. Returns 0 when it ran to its
 * end, else the error of the operation that failed (r->op names it).
 */
int workload(struct run *r, const char *img, uint64_t cut, uint64_t tear_seed)
{
	static const char *const modes[] = { "drop", "tear", "prefix", "reorder" };
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = r->cfg->commit_ms };
	char err[256] = "", num[32];
	struct vmfs_stat st;
	int ret;

	setenv("VMFS_IO_ENGINE", "crash", 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cut);
	setenv("VMFS_CRASH_AFTER_WRITES", num, 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)tear_seed);
	setenv("VMFS_CRASH_SEED", num, 1);
	setenv("VMFS_CRASH_MODE", modes[r->cfg->mode], 1);
	set_op(r, "open");
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	unsetenv("VMFS_IO_ENGINE");
	unsetenv("VMFS_CRASH_AFTER_WRITES");
	unsetenv("VMFS_CRASH_SEED");
	unsetenv("VMFS_CRASH_MODE");
	if (ret) {
		r->fs = NULL;
		snprintf(r->op + strlen(r->op), sizeof(r->op) - strlen(r->op), " (%s)", err);
		return ret;
	}
	r->m.o[ROOT].ino = vmfs_root_ino(r->fs);
	ret = vmfs_lookup(r->fs, r->m.o[ROOT].ino, "lost+found", &st);
	if (ret)
		return ret;
	r->m.o[1].ino = st.ino;
	r->m.o[1].igen = st.gen;
	vmfs_forget(r->fs, st.ino, 1);
	ret = vmfs_getattr(r->fs, r->m.o[ROOT].ino, &st);
	if (ret)
		return ret;
	r->m.o[ROOT].igen = st.gen;
	ret = vmfs_aio_new(r->fs, 8, &r->aio);
	if (ret)
		return ret;
	/* a fixed start: two directories and one file of each size class */
	ret = x_create(r, ROOT, T_DIR);
	if (!ret)
		ret = x_create(r, 2, T_DIR);
	for (int i = 0; i < 3 && !ret; i++) {
		int id = r->m.nobj;

		ret = x_create(r, i == 0 ? ROOT : i + 1, T_FILE);
		r->cls[id] = (enum size_class)i;
	}
	for (unsigned i = 0; i < STEPS && ret >= 0; i++)
		ret = step(r);
	if (ret < 0)
		return ret;
	set_op(r, "close");
	vmfs_aio_free(r->aio);
	r->aio = NULL;
	ret = vmfs_close(r->fs);
	r->fs = NULL;
	return op_done(r, ret, true);
}

/* Drops a library instance whose device lost power: it must let go without a fuss. */
void discard(struct run *r)
{
	vmfs_aio_free(r->aio);
	r->aio = NULL;
	if (r->fs)
		vmfs_close(r->fs);
	r->fs = NULL;
}
