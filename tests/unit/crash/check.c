/*
 * The checker of the power-cut tests (tests/unit/test_crash.c, part 2): after
 * a cut, the datastore reopened with the normal engine must hold a state of
 * the model's window (model.c): namespace, sizes and every byte.
 *
 * After that check: every file grows to zeros, a clean close, no space leaked
 * once everything is removed, and a journal found clean by a read-only open.
 * When fsck.vmfs is built, fsck.vmfs -n must find the image clean both as the
 * cut left it (it replays in memory) and after the checks (on one point in
 * CRASH_FSCK_EVERY, default every point).
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

struct rd_ent {
	char name[NAME_LEN];
	uint64_t ino;
	uint32_t dtype;
};

struct rd_list {
	struct rd_ent *v;
	size_t n;
	bool too_long;
};

static int rd_fill(void *ctx, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
		   uint64_t next)
{
	struct rd_list *l = ctx;

	(void)next;
	if (namelen >= NAME_LEN) {
		l->too_long = true;
		return 0;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	memcpy(l->v[l->n].name, name, namelen);
	l->v[l->n].name[namelen] = 0;
	l->v[l->n].ino = ino;
	l->v[l->n].dtype = dtype;
	l->n++;
	return 0;
}

/* Which object the window may have put at dir/name, for an inode the model has not seen yet. */
static int window_obj_at(const struct model *m, int dir, const char *name)
{
	char key[NAME_LEN + 16];
	size_t klen = (size_t)snprintf(key, sizeof(key), "%d/%s=", dir, name);

	for (size_t i = 0; i < m->nns; i++) {
		for (const char *p = m->ns[i]; (p = strstr(p, key)); p++) {
			if (p == m->ns[i] || p[-1] == ';')
				return atoi(p + klen);
		}
	}
	return -1;
}

static int obj_by_inode(struct run *r, int dir, const char *name, const struct vmfs_stat *st)
{
	struct model *m = &r->m;
	int id;

	for (int i = 0; i < m->nobj; i++)
		if (m->o[i].ino == st->ino && m->o[i].igen == st->gen)
			return i;
	/* an object whose create the cut interrupted (or lost+found, when the open was cut) */
	id = window_obj_at(m, dir, name);
	if (id >= 0 && !m->o[id].ino) {
		m->o[id].ino = st->ino;
		m->o[id].igen = st->gen;
		return id;
	}
	return -1;
}

static bool type_matches(enum obj_type t, uint32_t mode)
{
	return t == T_DIR ? S_ISDIR(mode) : t == T_LINK ? S_ISLNK(mode) : S_ISREG(mode);
}

static uint32_t dtype_of(uint32_t mode)
{
	return S_ISDIR(mode) ? DT_DIR : S_ISLNK(mode) ? DT_LNK : S_ISREG(mode) ? DT_REG : DT_UNKNOWN;
}

/* Is v a byte file id may show at off: durable, written or zeroed in the window? */
static bool byte_allowed(const struct obj *o, unsigned id, uint64_t off, uint8_t v, const char **from)
{
	for (size_t i = 0; i < o->nev; i++) {
		const struct event *e = &o->ev[i];

		if (off < e->start || off >= e->end)
			continue;
		if (v == (e->gen ? data_byte(id, e->gen, off) : 0)) {
			*from = e->gen ? "a write of the window" : "a zeroing of the window";
			return true;
		}
	}
	return false;
}

/* Names the write (of any file) that put byte v at off, for the report. */
static void byte_origin(const struct model *m, uint64_t off, uint8_t v, char *out, size_t len)
{
	int n = 0;

	out[0] = 0;
	for (int f = 0; f < m->nobj && n < 4; f++) {
		for (uint32_t g = 1; g <= m->o[f].wgen && n < 4; g++) {
			if (data_byte((unsigned)f, g, off) == v) {
				size_t l = strlen(out);

				snprintf(out + l, len - l, "%s(object %d gen %u?)", n ? " " : "", f, g);
				n++;
			}
		}
	}
	if (!n)
		snprintf(out, len, "no write of any file");
}

static int check_file(struct run *r, int id, const struct vmfs_stat *st)
{
	struct obj *o = &r->m.o[id];
	bool size_ok = false;
	uint64_t size = st->size;

	for (size_t i = 0; i < o->nsizes; i++)
		size_ok |= o->sizes[i] == size;
	if (!size_ok) {
		say(r, "object %d: size %llu after the cut; durable %llu, now %llu, %zu sizes in the window",
		    id, (unsigned long long)size, (unsigned long long)o->dsize, (unsigned long long)o->size,
		    o->nsizes);
		return -1;
	}
	if (size > RBUF_MAX) {
		say(r, "object %d: size %llu is larger than the workload makes", id, (unsigned long long)size);
		return -1;
	}
	{
		ssize_t n = vmfs_pread(r->fs, o->ino, r->rbuf, size, 0);

		if (n != (ssize_t)size) {
			say(r, "object %d: reading %llu bytes returned %zd", id, (unsigned long long)size, n);
			return -1;
		}
	}
	model_bytes(o, (unsigned)id, &o->dur, r->ebuf, 0, size);
	for (uint64_t off = 0; off < size;) {
		uint64_t chunk = min_u64(4096 - off % 4096, size - off);
		const char *from = NULL;

		if (!memcmp(r->rbuf + off, r->ebuf + off, chunk)) {
			off += chunk;
			continue;
		}
		for (uint64_t e = off + chunk; off < e; off++) {
			uint8_t v = r->rbuf[off];

			if (v == r->ebuf[off] || byte_allowed(o, (unsigned)id, off, v, &from))
				continue;
			{
				char origin[200];

				byte_origin(&r->m, off, v, origin, sizeof(origin));
				say(r, "object %d (size %llu): byte %llu is 0x%02x, durable 0x%02x, from %s; %zu window events",
				    id, (unsigned long long)size, (unsigned long long)off, v, r->ebuf[off], origin,
				    o->nev);
			}
			return -1;
		}
	}
	return 0;
}

struct walk_ent {
	int dir, obj;
	char name[NAME_LEN];
	struct vmfs_stat st;
};

/*
 * Walks the whole tree: readdir every directory, getattr every entry, read every
 * file and symlink, and compares with the model. Returns 0 or -1 (r->why says).
 */
int check_tree(struct run *r)
{
	struct model *m = &r->m;
	struct walk_ent *ents = NULL;
	int queue[MAX_OBJS], nq = 0, ne = 0, bad = 0;
	bool seen_dir[MAX_OBJS] = { false }, found[MAX_OBJS] = { false };
	struct vmfs_stat rst;
	char *ns;
	bool ns_ok = false;

	if (vmfs_getattr(r->fs, vmfs_root_ino(r->fs), &rst)) {
		say(r, "getattr of the root failed");
		return -1;
	}
	m->o[ROOT].ino = rst.ino;
	queue[nq++] = ROOT;
	seen_dir[ROOT] = found[ROOT] = true;
	for (int qi = 0; qi < nq && !bad; qi++) {
		int dir = queue[qi];
		struct rd_list l = { 0 };
		int ret = vmfs_readdir(r->fs, m->o[dir].ino, 0, rd_fill, &l);
		uint64_t parent_ino = dir == ROOT ? m->o[ROOT].ino : 0;

		if (ret || l.too_long) {
			say(r, "readdir of object %d failed: %d%s", dir, ret, l.too_long ? " (a name too long)" : "");
			bad = 1;
		}
		for (int i = 0; i < ne; i++)
			if (ents[i].obj == dir)
				parent_ino = m->o[ents[i].dir].ino;
		for (size_t i = 0; i < l.n && !bad; i++) {
			struct walk_ent *e;
			int id;

			if (!strcmp(l.v[i].name, ".") || !strcmp(l.v[i].name, "..")) {
				uint64_t want = l.v[i].name[1] ? parent_ino : m->o[dir].ino;

				if (l.v[i].ino != want) {
					say(r, "directory object %d: '%s' is inode %llu, expected %llu", dir, l.v[i].name,
					    (unsigned long long)l.v[i].ino, (unsigned long long)want);
					bad = 1;
				}
				continue;
			}
			ents = xrealloc(ents, (size_t)(ne + 1) * sizeof(*ents));
			e = &ents[ne];
			memset(e, 0, sizeof(*e));
			e->dir = dir;
			snprintf(e->name, NAME_LEN, "%s", l.v[i].name);
			ret = vmfs_getattr(r->fs, l.v[i].ino, &e->st);
			if (ret) {
				say(r, "getattr of %d/%s (inode %llu) failed: %d", dir, e->name,
				    (unsigned long long)l.v[i].ino, ret);
				bad = 1;
				break;
			}
			if (dtype_of(e->st.mode) != l.v[i].dtype) {
				say(r, "%d/%s: entry type %u, inode mode 0%o", dir, e->name, l.v[i].dtype, e->st.mode);
				bad = 1;
				break;
			}
			id = obj_by_inode(r, dir, e->name, &e->st);
			if (id < 0 || !type_matches(m->o[id].type, e->st.mode)) {
				say(r, "%d/%s: inode %llu gen %llx is no object of the workload", dir, e->name,
				    (unsigned long long)e->st.ino, (unsigned long long)e->st.gen);
				bad = 1;
				break;
			}
			e->obj = id;
			ne++;
			found[id] = true;
			if (m->o[id].type == T_DIR) {
				if (seen_dir[id]) {
					say(r, "directory object %d is reachable twice", id);
					bad = 1;
					break;
				}
				seen_dir[id] = true;
				queue[nq++] = id;
			}
		}
		free(l.v);
	}
	if (bad)
		goto out;

	/* the namespace is the one after some operation of the window */
	{
		struct dent *d = xmalloc((size_t)(ne + 1) * sizeof(*d));

		for (int i = 0; i < ne; i++) {
			d[i].dir = ents[i].dir;
			d[i].obj = ents[i].obj;
			snprintf(d[i].name, NAME_LEN, "%s", ents[i].name);
		}
		ns = ns_string(d, ne);
		free(d);
	}
	for (size_t i = 0; i < m->nns && !ns_ok; i++)
		ns_ok = !strcmp(ns, m->ns[i]);
	if (!ns_ok) {
		say(r, "the namespace after the cut is no state of the window (%zu states)", m->nns);
		say(r, "  found:   %.600s", ns);
		say(r, "  durable: %.600s", m->ns[0]);
		say(r, "  last:    %.600s", m->ns[m->nns - 1]);
		bad = 1;
	}
	free(ns);

	/* link counts, then contents */
	for (int i = 0; i < ne && !bad; i++) {
		struct walk_ent *e = &ents[i];
		unsigned want = 0;

		if (S_ISDIR(e->st.mode)) {
			want = 2;
			for (int j = 0; j < ne; j++)
				want += ents[j].dir == e->obj && S_ISDIR(ents[j].st.mode);
		} else {
			for (int j = 0; j < ne; j++)
				want += ents[j].obj == e->obj;
		}
		if (e->st.nlink != want) {
			say(r, "%d/%s (object %d): nlink %u, but %u names", e->dir, e->name, e->obj, e->st.nlink, want);
			bad = 1;
		}
	}
	for (int i = 0; i < ne && !bad; i++) {
		struct walk_ent *e = &ents[i];
		struct obj *o = &m->o[e->obj];
		bool first = true;

		for (int j = 0; j < i; j++)
			first &= ents[j].obj != e->obj;
		if (!first)
			continue;
		if (o->type == T_FILE) {
			bad = check_file(r, e->obj, &e->st) < 0;
		} else if (o->type == T_LINK) {
			char t[4200];
			ssize_t n = vmfs_readlink(r->fs, o->ino, t, sizeof(t));

			if (n < 0 || (size_t)n != strlen(o->target) || memcmp(t, o->target, (size_t)n)) {
				say(r, "symlink object %d: readlink gave %zd bytes, expected %zu", e->obj, n,
				    strlen(o->target));
				bad = 1;
			}
		}
	}
	/* a file with no name left is gone: freed at once, or by the orphan list at this open */
	for (int i = 2; i < m->nobj && !bad; i++) {
		struct vmfs_stat st;

		if (found[i] || !m->o[i].ino)
			continue;
		if (!vmfs_getattr(r->fs, m->o[i].ino, &st) && st.gen == m->o[i].igen) {
			say(r, "object %d (inode %llu) has no name after the cut but still exists (nlink %u)", i,
			    (unsigned long long)m->o[i].ino, st.nlink);
			bad = 1;
		}
	}
out:
	free(ents);
	return bad ? -1 : 0;
}

/* Growing a file shows zeros, whatever the cut left past its end. */
int check_growth(struct run *r)
{
	for (int i = 2; i < r->m.nobj; i++) {
		struct obj *o = &r->m.o[i];
		struct vmfs_stat st, in = { 0 };
		uint64_t to;
		ssize_t n;

		if (o->type != T_FILE || !o->ino || vmfs_getattr(r->fs, o->ino, &st) || st.gen != o->igen)
			continue;
		to = (st.size / MIB + 1) * MIB + 4096;
		in.size = to;
		if (vmfs_setattr(r->fs, o->ino, &in, VMFS_SET_SIZE, NULL)) {
			say(r, "object %d: growing it to %llu failed", i, (unsigned long long)to);
			return -1;
		}
		n = vmfs_pread(r->fs, o->ino, r->rbuf, to - st.size, st.size);
		if (n != (ssize_t)(to - st.size) || !is_zero(r->rbuf, to - st.size)) {
			size_t k = 0;

			while (n > 0 && k < (size_t)n && !r->rbuf[k])
				k++;
			say(r, "object %d: grown from %llu to %llu, byte %llu is not zero (read %zd)", i,
			    (unsigned long long)st.size, (unsigned long long)to,
			    (unsigned long long)(st.size + k), n);
			return -1;
		}
	}
	return 0;
}

/* Removes everything but lost+found, depth first. */
int remove_all(struct vmfs *fs, uint64_t dir, int depth)
{
	struct rd_list l = { 0 };
	int ret = vmfs_readdir(fs, dir, 2, rd_fill, &l);

	for (size_t i = 0; i < l.n && !ret; i++) {
		if (depth == 0 && !strcmp(l.v[i].name, "lost+found"))
			continue;
		if (l.v[i].dtype == DT_DIR) {
			ret = remove_all(fs, l.v[i].ino, depth + 1);
			if (!ret)
				ret = vmfs_rmdir(fs, dir, l.v[i].name);
		} else {
			ret = vmfs_unlink(fs, dir, l.v[i].name);
		}
	}
	free(l.v);
	return ret;
}

/* How the space of a closed datastore is used, read from its RC descriptors and pool headers. */

int scan_space(const char *img, struct space *sp, char *why, size_t whylen)
{
	struct vmfs_sb_disk *sb = dev_alloc_buf(VMFS_UNIT);
	struct vmfs_rc_disk *rc = dev_alloc_buf(VMFS_UNIT);
	struct vmfs_pool_disk *pl = dev_alloc_buf(VMFS_UNIT);
	int fd = open(img, O_RDONLY), ret = -1;
	uint64_t rc_inited, rc_off, data_off, bs;

	memset(sp, 0, sizeof(*sp));
	if (fd < 0 || !sb || !rc || !pl || pread(fd, sb, VMFS_UNIT, 0) != VMFS_UNIT) {
		snprintf(why, whylen, "cannot read the superblock of %s", img);
		goto out;
	}
	rc_inited = le64_to_cpu(sb->sb_rc_inited);
	rc_off = le64_to_cpu(sb->sb_rc_table_off);
	data_off = le64_to_cpu(sb->sb_data_off);
	bs = 1ull << le32_to_cpu(sb->sb_block_shift);
	for (uint64_t i = 0; i < rc_inited; i++) {
		if (pread(fd, rc, VMFS_UNIT, (off_t)(rc_off + i * VMFS_UNIT)) != VMFS_UNIT) {
			snprintf(why, whylen, "cannot read resource cluster %llu", (unsigned long long)i);
			goto out;
		}
		for (uint32_t j = 0; j < le32_to_cpu(rc->rc_nblocks) && j < VMFS_RC_MAX_BLOCKS; j++) {
			uint16_t ref = le16_to_cpu(rc->rc_ref[j]);
			uint64_t blk = le64_to_cpu(rc->rc_first) + j;

			if (ref == VMFS_REF_FREE)
				continue;
			if (ref == VMFS_REF_JOURNAL) {
				sp->journal_blocks++;
			} else if (ref == VMFS_REF_POOL) {
				sp->pools++;
				if (pread(fd, pl, VMFS_UNIT, (off_t)(data_off + blk * bs)) != VMFS_UNIT) {
					snprintf(why, whylen, "cannot read pool %llu", (unsigned long long)blk);
					goto out;
				}
				for (uint32_t k = 1; k < le32_to_cpu(pl->pl_units) && k < VMFS_POOL_MAX_UNITS; k++)
					sp->pool_units_used += pl->pl_ref[k] != 0;
			} else {
				sp->data_blocks++;
			}
		}
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(sb);
	free(rc);
	free(pl);
	return ret;
}

/* ---- fsck hook ---- */

static const char *fsck_path(void)
{
	static char path[PATH_MAX];
	const char *bin = getenv("VMFS_BIN");

	snprintf(path, sizeof(path), "%s/fsck.vmfs", bin && *bin ? bin : "build/bin");
	return path;
}

bool fsck_available(void)
{
	return access(fsck_path(), X_OK) == 0;
}

/* Runs fsck.vmfs -n on img (output to log); returns its exit status, or -1 when it could not run. */
int run_fsck(const char *img, const char *log)
{
	pid_t pid;
	int status;

	if (!fsck_available())
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(fsck_path(), "fsck.vmfs", "-n", img, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
