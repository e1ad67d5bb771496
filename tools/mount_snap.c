/*
 * vmfs-mount's read-only snapshot view (tools/mount_snap.h): DIR/.snapshots
 * and its FILE@NAME entries, built from vmfs's snapshot calls on each request
 * (nothing is cached: a snapshot made or deleted by any host shows at once).
 */
#include "tools/mount_snap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int snapdir_stat(struct vmfs *fs, uint64_t dir, struct vmfs_stat *st)
{
	int ret = vmfs_getattr(fs, dir, st);

	if (ret)
		return ret;
	if (!S_ISDIR(st->mode))
		return -ENOTDIR;
	st->ino = dir | MOUNT_SNAPDIR;
	st->mode = S_IFDIR | 0555;
	st->nlink = 2;
	st->size = 0;
	st->blocks = 0;
	st->snapshot = true;
	return 0;
}

int snapdir_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st)
{
	const char *at = strrchr(name, '@');
	char file[256];
	struct vmfs_stat fst;
	int ret;

	if (!at || at == name || !at[1] || (size_t)(at - name) >= sizeof(file))
		return -ENOENT;
	memcpy(file, name, (size_t)(at - name));
	file[at - name] = 0;
	ret = vmfs_lookup(fs, dir, file, &fst);
	if (ret)
		return ret;
	ret = S_ISREG(fst.mode) ? vmfs_snap_lookup(fs, fst.ino, at + 1, st) : -ENOENT;
	vmfs_forget(fs, fst.ino, 1);
	return ret == -EINVAL || ret == -ENAMETOOLONG ? -ENOENT : ret;
}

struct list_ctx {
	struct vmfs *fs;
	char **names;
	uint64_t *inos;
	size_t n, cap;
	int err;
};

static int add(struct list_ctx *c, const char *file, size_t flen, const char *snap, uint64_t ino)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		char **nn = realloc(c->names, cap * sizeof(*nn));
		uint64_t *ni;

		if (!nn)
			return -ENOMEM;
		c->names = nn;
		ni = realloc(c->inos, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		c->inos = ni;
		c->cap = cap;
	}
	if (asprintf(&c->names[c->n], "%.*s@%s", (int)flen, file, snap) < 0)
		return -ENOMEM;
	c->inos[c->n++] = ino;
	return 0;
}

/* vmfs_readdir's callback runs under the library's lock: it only collects the regular files. */
struct files {
	char **names;
	uint64_t *inos;
	size_t n, cap;
	int err;
};

static int fill(void *ctx, const char *name, size_t namelen, uint64_t ino, uint32_t dtype, uint64_t next_cookie)
{
	struct files *f = ctx;

	(void)next_cookie;
	if (dtype != (S_IFREG >> 12))
		return 0;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 32;
		char **nn = realloc(f->names, cap * sizeof(*nn));
		uint64_t *ni = nn ? realloc(f->inos, cap * sizeof(*ni)) : NULL;

		if (nn)
			f->names = nn;
		if (!ni) {
			f->err = -ENOMEM;
			return 1;
		}
		f->inos = ni;
		f->cap = cap;
	}
	f->names[f->n] = strndup(name, namelen);
	if (!f->names[f->n]) {
		f->err = -ENOMEM;
		return 1;
	}
	f->inos[f->n++] = ino;
	return 0;
}

int snapdir_list(struct vmfs *fs, uint64_t dir, char ***names, uint64_t **inos, size_t *n)
{
	struct files f = { 0 };
	struct list_ctx c = { .fs = fs };
	int ret = vmfs_readdir(fs, dir, 2, fill, &f);

	if (!ret)
		ret = f.err;
	for (size_t i = 0; i < f.n && !ret; i++) {
		struct vmfs_snap_info *s;
		size_t k;

		ret = vmfs_snap_list(fs, f.inos[i], &s, &k, NULL);
		if (ret == -ENOENT) /* removed since readdir saw it */
			ret = 0;
		for (size_t j = k; j-- > 0 && !ret;) /* oldest first */
			ret = add(&c, f.names[i], strlen(f.names[i]), s[j].name, s[j].ino);
		free(s);
	}
	snapdir_list_free(f.names, f.inos, f.n);
	if (ret) {
		snapdir_list_free(c.names, c.inos, c.n);
		return ret;
	}
	*names = c.names;
	*inos = c.inos;
	*n = c.n;
	return 0;
}

void snapdir_list_free(char **names, uint64_t *inos, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(inos);
}
