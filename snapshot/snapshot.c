/*
 * The snapshot catalog as users see it: paths that name a file or a VM folder,
 * snapshot names, the tree `list` prints, clones at a path. The blocks, the
 * hidden snapshot inodes and the transactions are vmfs's (vmfs/share.c); this
 * file decides which files a command covers, takes their cluster locks and
 * turns errors into one line that names the path and the snapshot.
 */
#include "snapshot/snapshot.h"

#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* What a vmfs error means for a snapshot command, in words. */
static const char *why(int ret)
{
	switch (ret) {
	case -EEXIST: return "a snapshot of that name exists";
	case -ENAMETOOLONG: return "name too long (at most 255 bytes)";
	case -EINVAL: return "bad name (empty, '.', '..', or with '/' or '@')";
	case -EMLINK: return "too many references to a block (the format's limit)";
	case -E2BIG: return "too many files in the folder (at most 64 are snapshotted together)";
	default: return strerror(-ret);
	}
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (p)
		snprintf(p, a + b + 2, "%s%s%s", dir, !b || (a && dir[a - 1] == '/') ? "" : "/", name);
	return p;
}

struct collect {
	struct vmfs *fs;
	uint64_t dir;
	const char *path;
	struct snap_files *f;
	int err;
	struct snap_files *subdirs;     /* recursive: directories found, walked after */
	bool links;                     /* symlinks too */
};

/* Adds ino and path dir/name (dir alone for name "") to f: 0 or -ENOMEM. */
static int files_add(struct snap_files *f, const char *dir, const char *name, uint64_t ino)
{
	uint64_t *ni = realloc(f->ino, (f->n + 1) * sizeof(*ni));
	char **nn;

	if (ni)
		f->ino = ni;
	nn = realloc(f->name, (f->n + 1) * sizeof(*nn));
	if (nn)
		f->name = nn;
	if (!ni || !nn || !(f->name[f->n] = join(dir, name)))
		return -ENOMEM;
	f->ino[f->n++] = ino;
	return 0;
}

static int collect_fill(void *ctx, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
			uint64_t next_cookie)
{
	struct collect *c = ctx;
	char buf[256]; /* a name is at most 255 bytes */
	struct snap_files *to = dtype == (S_IFREG >> 12) || (c->links && dtype == (S_IFLNK >> 12)) ? c->f
				: dtype == (S_IFDIR >> 12) ? c->subdirs : NULL;

	(void)next_cookie;
	if (!to)
		return 0;
	memcpy(buf, name, namelen);
	buf[namelen] = 0;
	c->err = files_add(to, c->path, buf, ino);
	return c->err ? 1 : 0;
}

static int by_name(const void *a, const void *b, void *ctx)
{
	const struct snap_files *f = ctx;
	return strcmp(f->name[*(const size_t *)a], f->name[*(const size_t *)b]);
}

static void sort_files(struct snap_files *f)
{
	size_t *idx = malloc(f->n * sizeof(*idx) + 1);
	uint64_t *ino = malloc(f->n * sizeof(*ino) + 1);
	char **name = malloc(f->n * sizeof(*name) + 1);

	if (!idx || !ino || !name)
		goto out; /* unsorted still works */
	for (size_t i = 0; i < f->n; i++)
		idx[i] = i;
	qsort_r(idx, f->n, sizeof(*idx), by_name, f);
	for (size_t i = 0; i < f->n; i++) {
		ino[i] = f->ino[idx[i]];
		name[i] = f->name[idx[i]];
	}
	memcpy(f->ino, ino, f->n * sizeof(*ino));
	memcpy(f->name, name, f->n * sizeof(*name));
out:
	free(idx);
	free(ino);
	free(name);
}

/* PATH's inode and attributes; f emptied. */
static int lookup(struct vmfs *fs, const char *path, struct snap_files *f, uint64_t *ino, struct vmfs_stat *st)
{
	int ret = vmfs_resolve(fs, path, ino);

	memset(f, 0, sizeof(*f));
	return ret ? ret : vmfs_getattr(fs, *ino, st);
}

/* f holds PATH alone: 0 or -ENOMEM. */
static int files_one(struct snap_files *f, const char *path, uint64_t ino)
{
	f->ino = malloc(sizeof(*f->ino));
	f->name = malloc(sizeof(*f->name));
	if (!f->ino || !f->name || !(f->name[0] = strdup(path))) {
		snap_files_release(f);
		return -ENOMEM;
	}
	f->ino[0] = ino;
	f->n = 1;
	return 0;
}

int snap_files_get(struct vmfs *fs, const char *path, struct snap_files *f, char *err, size_t errlen)
{
	struct vmfs_stat st;
	uint64_t ino;
	int ret = lookup(fs, path, f, &ino, &st);

	if (ret)
		return base_set_err(err, errlen, ret, "%s: %s", path, strerror(-ret));
	if (S_ISDIR(st.mode)) {
		struct collect c = { .fs = fs, .dir = ino, .path = path, .f = f };

		f->folder = true;
		ret = vmfs_readdir(fs, ino, 2, collect_fill, &c); /* from cookie 2: past "." and ".." */
		if (!ret)
			ret = c.err;
		if (!ret && !f->n)
			ret = base_set_err(err, errlen, -ENOENT, "%s: the folder holds no regular file", path);
		else if (ret)
			base_set_err(err, errlen, ret, "%s: %s", path, strerror(-ret));
		if (ret) {
			snap_files_release(f);
			return ret;
		}
		sort_files(f);
		return 0;
	}
	if (!S_ISREG(st.mode))
		return base_set_err(err, errlen, -EINVAL, "%s: not a regular file or a folder", path);
	ret = files_one(f, path, ino);
	return ret ? base_set_err(err, errlen, ret, "%s: out of memory", path) : 0;
}

/* Every regular file, symlink and directory in the tree under folder PATH, the folder too. */
static int files_all(struct vmfs *fs, const char *path, struct snap_files *f, char *err, size_t errlen)
{
	struct snap_files dirs = { 0 };
	struct vmfs_stat st;
	uint64_t ino;
	int ret = lookup(fs, path, f, &ino, &st);

	if (!ret && !S_ISDIR(st.mode))
		ret = -ENOTDIR;
	if (!ret)
		ret = files_one(&dirs, path, ino);
	f->folder = true;
	/* breadth first: each directory's files and subdirectories, then theirs */
	for (size_t i = 0; !ret && i < dirs.n; i++) {
		struct collect c = { .fs = fs, .dir = dirs.ino[i], .path = dirs.name[i], .f = f, .subdirs = &dirs,
				     .links = true };

		ret = vmfs_readdir(fs, dirs.ino[i], 2, collect_fill, &c);
		if (!ret)
			ret = c.err;
	}
	for (size_t i = 0; !ret && i < dirs.n; i++)
		ret = files_add(f, dirs.name[i], "", dirs.ino[i]);
	f->dirs = dirs.n;
	snap_files_release(&dirs);
	if (ret) {
		snap_files_release(f);
		return base_set_err(err, errlen, ret, "%s: %s", path, strerror(-ret));
	}
	sort_files(f);
	return 0;
}

int snap_files_rekey(struct vmfs *fs, const char *path, bool all, struct snap_files *f, char *err, size_t errlen)
{
	uint64_t ino;
	int ret;

	if (all)
		return files_all(fs, path, f, err, errlen);
	ret = snap_files_get(fs, path, f, err, errlen);
	if (ret || !f->folder)
		return ret;
	/* the folder's names, after its files */
	ret = vmfs_resolve(fs, path, &ino);
	if (!ret)
		ret = files_add(f, path, "", ino);
	if (ret) {
		snap_files_release(f);
		return base_set_err(err, errlen, ret, "%s: %s", path, strerror(-ret));
	}
	f->dirs = 1;
	return 0;
}

void snap_files_release(struct snap_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->name[i]);
	free(f->name);
	free(f->ino);
	memset(f, 0, sizeof(*f));
}

void snap_default_name(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Takes the files' locks; on -EBUSY err names the holder. *held: how many were
 * taken. Shared is enough to snapshot or clone a file (no other host may be
 * writing it; readers may go on); a revert changes the content: exclusive.
 */
static int lock_all(struct vmfs *fs, const struct snap_files *f, enum vmfs_lock_mode mode, size_t *held, char *err,
		    size_t errlen)
{
	char who[160];

	for (*held = 0; *held < f->n; (*held)++) {
		int ret = vmfs_file_lock(fs, f->ino[*held], mode, who, sizeof(who));
		if (ret == -EBUSY)
			return base_set_err(err, errlen, ret, "%s: in use by %s", f->name[*held], who);
		if (ret)
			return base_set_err(err, errlen, ret, "%s: cannot lock: %s", f->name[*held], strerror(-ret));
	}
	return 0;
}

static void unlock_all(struct vmfs *fs, const struct snap_files *f, size_t held)
{
	while (held-- > 0)
		vmfs_file_unlock(fs, f->ino[held]);
}

int snap_create(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen)
{
	return snap_create_timed(fs, path, name, NULL, err, errlen);
}

/* Durable when the call returns: committed and flushed, whoever the caller (vmfsctl, a mount, vmm). */
static int durable(struct vmfs *fs, int ret, const char *path, char *err, size_t errlen)
{
	if (ret || !(ret = vmfs_sync(fs)))
		return ret;
	return base_set_err(err, errlen, ret, "%s: cannot make the change durable: %s", path, strerror(-ret));
}

/* PATH's files, at most VMFS_SNAP_GROUP_MAX, none with a snapshot called name (the one that has it is named). */
static int create_files(struct vmfs *fs, const char *path, const char *name, struct snap_files *f, char *err,
			size_t errlen)
{
	int ret = snap_files_get(fs, path, f, err, errlen);

	if (ret)
		return ret;
	if (f->n > VMFS_SNAP_GROUP_MAX)
		ret = base_set_err(err, errlen, -E2BIG, "%s: %s", path, why(-E2BIG));
	for (size_t i = 0; i < f->n && !ret; i++) {
		uint64_t s;
		ret = vmfs_snap_find(fs, f->ino[i], name, &s);
		if (!ret)
			ret = base_set_err(err, errlen, -EEXIST, "%s: snapshot '%s' exists", f->name[i], name);
		else if (ret == -ENOENT)
			ret = 0;
		else
			base_set_err(err, errlen, ret, "%s: snapshot '%s': %s", f->name[i], name, why(ret));
	}
	if (ret)
		snap_files_release(f);
	return ret;
}

int snap_create_timed(struct vmfs *fs, const char *path, const char *name, uint64_t *io_pause_ns, char *err,
		      size_t errlen)
{
	struct snap_files f;
	size_t held = 0;
	uint64_t t0;
	int ret = create_files(fs, path, name, &f, err, errlen);

	if (ret)
		return ret;
	ret = lock_all(fs, &f, VMFS_LOCK_SH, &held, err, errlen);
	if (!ret) {
		t0 = base_mono_ns();
		ret = vmfs_snap_create(fs, f.ino, f.n, name, NULL); /* holds the files' I/O for its length */
		if (io_pause_ns)
			*io_pause_ns = base_mono_ns() - t0;
		if (ret)
			base_set_err(err, errlen, ret, "%s: snapshot '%s': %s", path, name, why(ret));
	}
	unlock_all(fs, &f, held);
	snap_files_release(&f);
	return durable(fs, ret, path, err, errlen);
}

/*
 * Which of PATH's files have snapshot NAME: their inodes and snapshots packed
 * at the front of *files / *snaps, *n of them. -ENOENT (said) when none has.
 */
static int pick(struct vmfs *fs, const char *path, const char *name, struct snap_files *f, uint64_t **snaps,
		size_t *n, char *err, size_t errlen)
{
	int ret = snap_files_get(fs, path, f, err, errlen);

	*n = 0;
	if (ret)
		return ret;
	*snaps = calloc(f->n, sizeof(**snaps));
	if (!*snaps) {
		snap_files_release(f);
		return base_set_err(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	for (size_t i = 0; i < f->n; i++) {
		uint64_t s;
		ret = vmfs_snap_find(fs, f->ino[i], name, &s);
		if (ret == -ENOENT)
			continue;
		if (ret) {
			base_set_err(err, errlen, ret, "%s: snapshot '%s': %s", f->name[i], name, why(ret));
			goto err;
		}
		if (*n != i) { /* keep the files with it at the front, in order */
			char *t = f->name[*n];
			uint64_t ino = f->ino[*n];

			f->name[*n] = f->name[i];
			f->name[i] = t;
			f->ino[*n] = f->ino[i];
			f->ino[i] = ino;
		}
		(*snaps)[(*n)++] = s;
	}
	if (*n)
		return 0;
	ret = base_set_err(err, errlen, -ENOENT, "%s: no snapshot '%s'", path, name);
err:
	free(*snaps);
	*snaps = NULL;
	snap_files_release(f);
	return ret;
}

int snap_revert(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen)
{
	struct snap_files f, mine;
	uint64_t *snaps;
	size_t n, held = 0;
	int ret = pick(fs, path, name, &f, &snaps, &n, err, errlen);

	if (ret)
		return ret;
	mine = f;
	mine.n = n;
	ret = lock_all(fs, &mine, VMFS_LOCK_EX, &held, err, errlen);
	if (!ret) {
		ret = vmfs_snap_revert(fs, f.ino, snaps, n);
		if (ret)
			base_set_err(err, errlen, ret, "%s: revert to '%s': %s", path, name, why(ret));
	}
	unlock_all(fs, &mine, held);
	free(snaps);
	snap_files_release(&f);
	return durable(fs, ret, path, err, errlen);
}

int snap_delete(struct vmfs *fs, const char *path, const char *name, char *err, size_t errlen)
{
	struct snap_files f;
	uint64_t *snaps = NULL;
	size_t n;
	int ret = pick(fs, path, name, &f, &snaps, &n, err, errlen);

	if (ret)
		return ret;
	for (size_t i = 0; !ret && i < n; i++) {
		ret = vmfs_snap_delete(fs, f.ino[i], snaps[i]);
		if (ret)
			base_set_err(err, errlen, ret, "%s: delete '%s': %s", f.name[i], name, why(ret));
	}
	free(snaps);
	snap_files_release(&f);
	return durable(fs, ret, path, err, errlen);
}

int snap_list(struct vmfs *fs, const char *path, struct snap_listing *out, char *err, size_t errlen)
{
	struct snap_files f;
	int ret = snap_files_get(fs, path, &f, err, errlen);

	memset(out, 0, sizeof(*out));
	if (ret)
		return ret;
	out->files = calloc(f.n, sizeof(*out->files));
	if (!out->files) {
		snap_files_release(&f);
		return base_set_err(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	for (size_t i = 0; i < f.n && !ret; i++) {
		struct snap_file_tree *t = &out->files[out->n++];

		t->path = f.name[i];
		f.name[i] = NULL;
		t->ino = f.ino[i];
		ret = vmfs_snap_list(fs, t->ino, &t->snaps, &t->n, &t->parent);
		if (!ret && t->n && !(t->unique = calloc(t->n, sizeof(*t->unique))))
			ret = -ENOMEM;
		for (size_t j = 0; j < t->n && !ret; j++)
			ret = vmfs_unique_bytes(fs, t->snaps[j].ino, &t->unique[j]);
		if (ret)
			base_set_err(err, errlen, ret, "%s: %s", t->path, strerror(-ret));
	}
	snap_files_release(&f);
	if (ret)
		snap_listing_release(out);
	return ret;
}

void snap_listing_release(struct snap_listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->files[i].path);
		free(l->files[i].snaps);
		free(l->files[i].unique);
	}
	free(l->files);
	memset(l, 0, sizeof(*l));
}

/* The regular file at path (not a folder), with its error said. */
static int one_file(struct vmfs *fs, const char *path, uint64_t *ino, char *err, size_t errlen)
{
	struct vmfs_stat st;
	int ret = vmfs_resolve(fs, path, ino);

	if (!ret)
		ret = vmfs_getattr(fs, *ino, &st);
	if (ret)
		return base_set_err(err, errlen, ret, "%s: %s", path, strerror(-ret));
	if (!S_ISREG(st.mode))
		return base_set_err(err, errlen, S_ISDIR(st.mode) ? -EISDIR : -EINVAL, "%s: not a regular file", path);
	return 0;
}

static int find_snap(struct vmfs *fs, const char *path, uint64_t ino, const char *name, uint64_t *snap, char *err,
		     size_t errlen)
{
	int ret = vmfs_snap_find(fs, ino, name, snap);

	if (ret == -ENOENT)
		return base_set_err(err, errlen, ret, "%s: no snapshot '%s'", path, name);
	if (ret)
		return base_set_err(err, errlen, ret, "%s: snapshot '%s': %s", path, name, why(ret));
	return 0;
}

int snap_diff(struct vmfs *fs, const char *path, const char *from, const char *to, vmfs_extent_fn fn, void *ctx,
	      char *err, size_t errlen)
{
	uint64_t ino, a, b;
	int ret = one_file(fs, path, &ino, err, errlen);

	if (!ret)
		ret = find_snap(fs, path, ino, from, &a, err, errlen);
	b = ino;
	if (!ret && to)
		ret = find_snap(fs, path, ino, to, &b, err, errlen);
	if (!ret) {
		ret = vmfs_map_diff(fs, a, b, fn, ctx);
		if (ret < 0)
			base_set_err(err, errlen, ret, "%s: diff: %s", path, strerror(-ret));
	}
	return ret;
}

/*
 * A clone's destination: the folder (*dino) and the name in it (*base, in *buf,
 * which the caller frees). The name must be new.
 */
static int clone_dst(struct vmfs *fs, const char *dst, uint64_t *dino, char **buf, const char **base, char *err,
		     size_t errlen)
{
	char *dir = strdup(dst), *slash;
	struct vmfs_stat st;
	int ret;

	*buf = dir;
	if (!dir)
		return base_set_err(err, errlen, -ENOMEM, "out of memory");
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = 0;
	slash = strrchr(dir, '/');
	*base = slash ? slash + 1 : dir;
	if (slash)
		*slash = 0;
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
		return base_set_err(err, errlen, -EINVAL, "%s: not a name for a new file", dst);
	if (strlen(*base) > 255)
		return base_set_err(err, errlen, -ENAMETOOLONG, "%s: name too long", dst);
	ret = vmfs_resolve(fs, slash && *dir ? dir : "/", dino);
	if (!ret)
		ret = vmfs_getattr(fs, *dino, &st);
	if (ret)
		return base_set_err(err, errlen, ret, "%s: %s", dst,
				    ret == -ENOENT ? "its folder does not exist" : strerror(-ret));
	if (!S_ISDIR(st.mode))
		return base_set_err(err, errlen, -ENOTDIR, "%s: its folder is not a folder", dst);
	ret = vmfs_lookup(fs, *dino, *base, &st);
	if (!ret) {
		vmfs_forget(fs, st.ino, 1);
		return base_set_err(err, errlen, -EEXIST, "%s: exists", dst);
	}
	return ret == -ENOENT ? 0 : base_set_err(err, errlen, ret, "%s: %s", dst, strerror(-ret));
}

/* SRC or SRC@SNAPSHOT: the file (*ino) and what to share (*from: the file or its snapshot). */
static int clone_src(struct vmfs *fs, const char *src, char **path, char **at, uint64_t *ino, uint64_t *from,
		     char *err, size_t errlen)
{
	int ret;

	*path = strdup(src);
	if (!*path)
		return base_set_err(err, errlen, -ENOMEM, "out of memory");
	*at = strrchr(*path, '@');
	if (*at)
		*(*at)++ = 0;
	ret = one_file(fs, *path, ino, err, errlen);
	*from = *ino;
	if (!ret && *at)
		ret = find_snap(fs, *path, *ino, *at, from, err, errlen);
	return ret;
}

int snap_source(struct vmfs *fs, const char *src, uint64_t *file, uint64_t *ino, bool *snap, char *err, size_t errlen)
{
	char *path, *at;
	int ret = clone_src(fs, src, &path, &at, file, ino, err, errlen);

	*snap = at != NULL;
	free(path);
	return ret;
}

int snap_new_path(struct vmfs *fs, const char *dst, uint64_t *dir, char **buf, const char **base, char *err,
		  size_t errlen)
{
	int ret = clone_dst(fs, dst, dir, buf, base, err, errlen);

	if (ret) {
		free(*buf);
		*buf = NULL;
	}
	return ret;
}

int snap_precheck(struct vmfs *fs, enum snap_op op, const char *path, const char *name, const char *dst, char *err,
		  size_t errlen)
{
	struct snap_files f;
	uint64_t *snaps, ino, from, dino;
	char *p = NULL, *at, *buf = NULL;
	const char *base;
	size_t n;
	int ret;

	switch (op) {
	case SNAP_CREATE:
		ret = create_files(fs, path, name, &f, err, errlen);
		if (!ret)
			snap_files_release(&f);
		return ret;
	case SNAP_REVERT:
	case SNAP_DELETE:
		ret = pick(fs, path, name, &f, &snaps, &n, err, errlen);
		if (!ret) {
			free(snaps);
			snap_files_release(&f);
		}
		return ret;
	case SNAP_CLONE:
		ret = clone_src(fs, path, &p, &at, &ino, &from, err, errlen);
		if (!ret)
			ret = clone_dst(fs, dst, &dino, &buf, &base, err, errlen);
		free(p);
		free(buf);
		return ret;
	}
	return -EINVAL;
}

int snap_clone(struct vmfs *fs, const char *src, const char *dst, char *err, size_t errlen)
{
	char *path, *at, *dir = NULL;
	const char *base;
	struct snap_files lock = { 0 };
	struct vmfs_stat st;
	uint64_t ino, from, dino;
	size_t held = 0;
	int ret = clone_src(fs, src, &path, &at, &ino, &from, err, errlen);

	if (!ret)
		ret = clone_dst(fs, dst, &dino, &dir, &base, err, errlen);
	if (ret)
		goto out;
	if (!at) { /* the source's blocks must not change while they become shared */
		lock.n = 1;
		lock.ino = &ino;
		lock.name = &path;
		ret = lock_all(fs, &lock, VMFS_LOCK_SH, &held, err, errlen);
	}
	if (!ret)
		ret = vmfs_getattr(fs, ino, &st);
	if (!ret) {
		ret = vmfs_clone(fs, from, dino, base, st.mode & 07777, st.uid, st.gid, &st);
		if (!ret)
			vmfs_forget(fs, st.ino, 1);
		else if (ret == -EEXIST)
			base_set_err(err, errlen, ret, "%s: exists", dst);
		else
			base_set_err(err, errlen, ret, "%s: clone of %s: %s", dst, src, why(ret));
	}
	if (held)
		unlock_all(fs, &lock, held);
out:
	free(dir);
	free(path);
	return durable(fs, ret, dst, err, errlen);
}

int snap_run(struct vmfs *fs, enum snap_op op, const char *path, const char *name, const char *dst, char *err,
	     size_t errlen)
{
	switch (op) {
	case SNAP_CREATE: return snap_create(fs, path, name, err, errlen);
	case SNAP_REVERT: return snap_revert(fs, path, name, err, errlen);
	case SNAP_DELETE: return snap_delete(fs, path, name, err, errlen);
	case SNAP_CLONE: return snap_clone(fs, path, dst, err, errlen);
	}
	return base_set_err(err, errlen, -EINVAL, "unknown snapshot request %u", (unsigned)op);
}
