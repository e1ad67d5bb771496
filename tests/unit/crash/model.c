/*
 * The model of the power-cut workload (tests/unit/test_crash.c, part 2):
 * what every file, name and byte may be after a cut.
 *
 * Byte o of file f, as put there by f's g-th write, is
 * data_byte(f, g, o), so every byte read back names where it may come from. A
 * durable point is an fsync or sync that returned 0 and, with commit_ms = 0,
 * every completed change (each commits before it returns). After the cut the
 * datastore must hold a state of the window from the last durable point to the
 * end of the operation the cut interrupted: the namespace is the one after some
 * operation of the window, every file's size is one it had in the window, and
 * every byte is what the durable state held there, what a write of the window
 * put there, or zero where the window zeroed (truncate, punch, zero range,
 * extension). Files untouched in the window therefore come back exactly.
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

/* Sets [start, end) to generation gen (0: zeros). Runs stay sorted and disjoint. */
void map_set(struct segmap *m, uint64_t start, uint64_t end, uint32_t gen)
{
	struct seg *v;
	size_t n = 0;

	if (start >= end)
		return;
	v = xmalloc((m->n + 2) * sizeof(*v));
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].end <= start)
			v[n++] = m->v[i];
		else if (m->v[i].start < start && m->v[i].end > start)
			v[n++] = (struct seg){ m->v[i].start, start, m->v[i].gen };
	}
	if (gen)
		v[n++] = (struct seg){ start, end, gen };
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].start >= end)
			v[n++] = m->v[i];
		else if (m->v[i].end > end && m->v[i].start < end)
			v[n++] = (struct seg){ end, m->v[i].end, m->v[i].gen };
	}
	free(m->v);
	m->v = v;
	m->n = n;
}

static void map_copy(struct segmap *to, const struct segmap *from)
{
	free(to->v);
	to->v = xmalloc(from->n * sizeof(*to->v));
	if (from->n)
		memcpy(to->v, from->v, from->n * sizeof(*to->v));
	to->n = from->n;
}

void obj_event(struct obj *o, uint64_t start, uint64_t end, uint32_t gen)
{
	if (start >= end)
		return;
	o->ev = xrealloc(o->ev, (o->nev + 1) * sizeof(*o->ev));
	o->ev[o->nev++] = (struct event){ start, end, gen };
}

void obj_size(struct obj *o, uint64_t size)
{
	o->size = size;
	o->sizes = xrealloc(o->sizes, (o->nsizes + 1) * sizeof(*o->sizes));
	o->sizes[o->nsizes++] = size;
}

static int dent_cmp(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	return x->dir != y->dir ? x->dir - y->dir : strcmp(x->name, y->name);
}

/* The namespace as one canonical string: "dir/name=obj;" sorted. */
char *ns_string(const struct dent *d, int n)
{
	struct dent *s = xmalloc((size_t)n * sizeof(*s));
	size_t cap = (size_t)n * (NAME_LEN + 24) + 1, len = 0;
	char *out = xmalloc(cap);

	memcpy(s, d, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), dent_cmp);
	out[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%d/%s=%d;", s[i].dir, s[i].name, s[i].obj);
	free(s);
	return out;
}

void ns_push(struct model *m)
{
	m->ns = xrealloc(m->ns, (m->nns + 1) * sizeof(*m->ns));
	m->ns[m->nns++] = ns_string(m->d, m->nd);
}

/* Everything so far is durable: the window starts again here. */
void model_durable(struct model *m)
{
	for (int i = 0; i < m->nobj; i++) {
		struct obj *o = &m->o[i];

		map_copy(&o->dur, &o->cur);
		o->dsize = o->size;
		o->nev = 0;
		o->nsizes = 0;
		obj_size(o, o->size);
	}
	for (size_t i = 0; i < m->nns; i++)
		free(m->ns[i]);
	m->nns = 0;
	ns_push(m);
	m->durable_ops = m->ops;
}

void model_release(struct model *m)
{
	for (int i = 0; i < m->nobj; i++) {
		free(m->o[i].cur.v);
		free(m->o[i].dur.v);
		free(m->o[i].ev);
		free(m->o[i].sizes);
		free(m->o[i].target);
	}
	for (size_t i = 0; i < m->nns; i++)
		free(m->ns[i]);
	free(m->ns);
	memset(m, 0, sizeof(*m));
}

int model_new_obj(struct model *m, enum obj_type t)
{
	struct obj *o;

	must(m->nobj < MAX_OBJS, "too many objects for the model");
	o = &m->o[m->nobj];
	memset(o, 0, sizeof(*o));
	o->type = t;
	obj_size(o, 0);
	return m->nobj++;
}

int dent_find(const struct model *m, int dir, const char *name)
{
	for (int i = 0; i < m->nd; i++)
		if (m->d[i].dir == dir && !strcmp(m->d[i].name, name))
			return i;
	return -1;
}

void dent_add(struct model *m, int dir, const char *name, int obj)
{
	must(m->nd < MAX_DENTS, "too many names for the model");
	m->d[m->nd].dir = dir;
	m->d[m->nd].obj = obj;
	snprintf(m->d[m->nd].name, NAME_LEN, "%s", name);
	m->nd++;
	m->o[obj].names++;
}

void dent_del(struct model *m, int i)
{
	m->o[m->d[i].obj].names--;
	m->d[i] = m->d[--m->nd];
}

void model_write(struct obj *o, unsigned id, uint64_t off, size_t len)
{
	(void)id;
	o->wgen++;
	if (off > o->size)
		obj_event(o, o->size, off, 0);   /* the gap reads as zeros */
	map_set(&o->cur, off, off + len, o->wgen);
	obj_event(o, off, off + len, o->wgen);
	obj_size(o, max_u64(o->size, off + len));
}
