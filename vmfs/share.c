/*
 * Shared blocks: snapshots, reverts, clones and map diffs, the mechanism that
 * snapshot/ builds its catalog on (docs/FORMAT.md, "Shared blocks" and
 * "Snapshots"; docs/ARCHITECTURE.md, "Snapshots").
 *
 * A map is shared by copying the 256 root pointers of one inode into another
 * and counting each root child once more (share_map): O(1) in the file's size.
 * From then on both maps are VMFS_IF_SHARED and bmap.c copies a pointer block
 * before changing it (S1), file.c copies a data block before writing it (S3),
 * and a free of a shared subtree only drops its count (S2). A snapshot is a
 * hidden inode (VMFS_IF_SNAPSHOT) on its file's list (struct vmfs_snap_disk).
 *
 * Invariants kept here: N1. every snapshot on a file's list names that file in
 * sn_file and has VMFS_IF_SNAPSHOT; the list holds sn_count entries and no
 * name twice. N2. a snapshot's sn_parent, and the file's, is 0 or a snapshot
 * on the same list. N3. a snapshot leaves the list in the transaction that puts
 * it on the orphan list (nlink 0), so a crash while its blocks are released
 * finishes the release at the next open (O3), exactly as for an unlinked file.
 */
#include "vmfs/vmfs_i.h"

#include <sys/stat.h>

static struct vmfs_snap_disk *snap_of(struct vbuf *ib)
{
	return (struct vmfs_snap_disk *)ib_inode(ib)->i_snap;
}

static bool is_snapshot(struct vmfs_inode_disk *di)
{
	return le32_to_cpu(di->i_flags) & VMFS_IF_SNAPSHOT;
}

/* Marks the datastore as one whose blocks may be shared (in the running operation). */
static int share_feature(struct vmfs *fs)
{
	struct vbuf *sbb;
	int ret;

	if (le64_to_cpu(fs->sb.sb_incompat) & VMFS_INCOMPAT_SHARED)
		return 0;
	ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret)
		return ret;
	ret = meta_dirty(fs, sbb);
	if (!ret) {
		struct vmfs_sb_disk *sb = (struct vmfs_sb_disk *)sbb->data;
		sb->sb_incompat = cpu_to_le64(le64_to_cpu(sb->sb_incompat) | VMFS_INCOMPAT_SHARED);
		fs->sb.sb_incompat = sb->sb_incompat;
	}
	meta_put(fs, sbb);
	return ret;
}

/*
 * Gives dst (a new, empty inode, dirtied) the content of src: its layout, size
 * and map, sharing every root child (one more reference each). -EMLINK when a
 * block's count is at VMFS_REF_MAX. Under fs->lock, in an operation.
 */
static int share_map(struct vmfs *fs, struct vbuf *src, struct vbuf *dst)
{
	struct vmfs_inode_disk *s = ib_inode(src), *d = ib_inode(dst);
	uint32_t layout = le32_to_cpu(s->i_flags) & VMFS_IF_LAYOUT;
	const le64 *roots = (const le64 *)s->i_root;
	int ret = 0;

	if (layout != VMFS_IF_INLINE) {
		ret = meta_dirty(fs, src);
		for (unsigned i = 0; i < VMFS_ROOT_PTRS && !ret; i++)
			if (roots[i])
				ret = ptr_ref_add(fs, le64_to_cpu(roots[i]));
		if (!ret)
			ret = share_feature(fs);
		if (ret)
			return ret;
		s->i_flags = cpu_to_le32(le32_to_cpu(s->i_flags) | VMFS_IF_SHARED);
	}
	memcpy(d->i_root, s->i_root, VMFS_INLINE_MAX);
	memcpy(d->i_crypt, s->i_crypt, sizeof(d->i_crypt)); /* the blocks are under its keys */
	d->i_crypt_mark = s->i_crypt_mark;                  /* and, during a deep rekey, split as its are */
	d->i_crypt_run = s->i_crypt_run;
	d->i_height = s->i_height;
	d->i_size = s->i_size;
	d->i_units = s->i_units; /* the map's units, and the inode's own one */
	d->i_flags = cpu_to_le32((le32_to_cpu(d->i_flags) & ~(VMFS_IF_LAYOUT | VMFS_IF_SHARED)) | layout |
				 (layout != VMFS_IF_INLINE ? VMFS_IF_SHARED : 0));
	return 0;
}

/* Moves src's map into dst (a new, empty inode): no count changes. src is left empty and inline. */
static void move_map(struct vbuf *src, struct vbuf *dst)
{
	struct vmfs_inode_disk *s = ib_inode(src), *d = ib_inode(dst);
	uint32_t keep = VMFS_IF_LAYOUT | VMFS_IF_SHARED;

	memcpy(d->i_root, s->i_root, VMFS_INLINE_MAX);
	memcpy(d->i_crypt, s->i_crypt, sizeof(d->i_crypt));
	d->i_crypt_mark = s->i_crypt_mark;
	d->i_crypt_run = s->i_crypt_run;
	d->i_height = s->i_height;
	d->i_size = s->i_size;
	d->i_units = s->i_units;
	d->i_flags = cpu_to_le32((le32_to_cpu(d->i_flags) & ~keep) | (le32_to_cpu(s->i_flags) & keep));
	memset(s->i_root, 0, VMFS_INLINE_MAX);
	s->i_height = 0;
	s->i_size = 0;
	s->i_units = cpu_to_le64(1);
	s->i_flags = cpu_to_le32((le32_to_cpu(s->i_flags) & ~keep) | VMFS_IF_INLINE);
}

/* A live regular file that may have snapshots (not a snapshot, not unlinked). */
static int read_file(struct vmfs *fs, uint64_t ino, struct vbuf **ib)
{
	int ret = inode_read(fs, ino, ib);
	struct vmfs_inode_disk *di;

	if (ret)
		return ret;
	di = ib_inode(*ib);
	if (!S_ISREG(le32_to_cpu(di->i_mode)))
		ret = S_ISDIR(le32_to_cpu(di->i_mode)) ? -EISDIR : -EINVAL;
	else if (is_snapshot(di))
		ret = -EINVAL;
	else if (!di->i_nlink)
		ret = -ENOENT;
	if (ret)
		meta_put(fs, *ib);
	return ret;
}

/* Snapshot snap of file ib (N1), or -ENOENT. */
static int read_snap(struct vmfs *fs, struct vbuf *ib, uint64_t snap, struct vbuf **sb)
{
	int ret;

	if (!snap)
		return -ENOENT;
	ret = inode_read(fs, snap, sb);
	if (ret)
		return ret == -ESTALE ? -ENOENT : ret;
	if (!is_snapshot(ib_inode(*sb)) || le64_to_cpu(snap_of(*sb)->sn_file) != ib->addr || !ib_inode(*sb)->i_nlink) {
		meta_put(fs, *sb);
		return -ENOENT;
	}
	return 0;
}

/*
 * Calls fn for each snapshot on ib's list, newest first, until fn returns
 * non-zero (returned). The list is checked as it is walked (N1): a link to
 * something that is not a snapshot of this file, or more entries than
 * sn_count says, is -EUCLEAN.
 */
static int list_walk(struct vmfs *fs, struct vbuf *ib, int (*fn)(void *ctx, struct vbuf *sb), void *ctx)
{
	uint64_t next = le64_to_cpu(snap_of(ib)->sn_head), count = le32_to_cpu(snap_of(ib)->sn_count), seen = 0;
	int ret = 0;

	while (next && !ret) {
		struct vbuf *sb;

		if (++seen > count) {
			fs_err(fs, "inode %llu: its snapshot list is longer than its count %llu",
			       (unsigned long long)ib->addr, (unsigned long long)count);
			return -EUCLEAN;
		}
		ret = read_snap(fs, ib, next, &sb);
		if (ret) {
			fs_err(fs, "inode %llu: snapshot list links to %llu, which is not one of its snapshots",
			       (unsigned long long)ib->addr, (unsigned long long)next);
			return ret == -ENOENT ? -EUCLEAN : ret;
		}
		next = le64_to_cpu(snap_of(sb)->sn_next);
		ret = fn(ctx, sb);
		meta_put(fs, sb);
	}
	return ret;
}

struct name_ctx {
	uint8_t stored[VMFS_SNAP_NAME_MAX + 1]; /* the name as i_snapname holds it */
	uint64_t found;
};

static int name_cb(void *ctx, struct vbuf *sb)
{
	struct name_ctx *c = ctx;

	if (memcmp(ib_inode(sb)->i_snapname, c->stored, sizeof(c->stored)))
		return 0;
	c->found = sb->addr;
	return 1;
}

/*
 * A snapshot name (at most VMFS_SNAP_NAME_MAX bytes) as i_snapname holds it:
 * NUL-padded, under file's snapshot-name key when it has keys.
 */
static int seal_name(struct vmfs *fs, uint64_t file, const struct vmfs_inode_disk *fdi, const char *name, void *out)
{
	char plain[VMFS_SNAP_NAME_MAX + 1] = { 0 };

	memcpy(plain, name, strlen(name));
	return crypt_snapname(fs, file, fdi, true, plain, out);
}

static int find_name(struct vmfs *fs, struct vbuf *ib, const char *name, uint64_t *snap)
{
	struct name_ctx c = { .found = 0 };
	int ret;

	*snap = 0;
	if (strlen(name) > VMFS_SNAP_NAME_MAX)
		return 0;
	ret = seal_name(fs, ib->addr, ib_inode(ib), name, c.stored);
	if (!ret)
		ret = list_walk(fs, ib, name_cb, &c);

	*snap = c.found;
	return ret < 0 ? ret : 0;
}

static int check_snap_name(const char *name)
{
	size_t len = strlen(name);

	if (!len || strchr(name, '/') || strchr(name, '@') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return len > VMFS_SNAP_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* Pins files[0..n) and takes their iolocks exclusive, in inode order (no writes in flight). */
static int lock_files(struct vmfs *fs, const uint64_t *files, size_t n, struct vinode ***out)
{
	struct vinode **v = calloc(n ? n : 1, sizeof(*v));
	uint64_t *order = malloc((n ? n : 1) * sizeof(*order));

	if (!v || !order) {
		free(v);
		free(order);
		return -ENOMEM;
	}
	memcpy(order, files, n * sizeof(*order));
	for (size_t i = 1; i < n; i++) /* insertion sort: a VM's handful of disks */
		for (size_t j = i; j > 0 && order[j - 1] > order[j]; j--) {
			uint64_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if (i && order[i] == order[i - 1])
			continue;
		v[i] = vinode_pin(fs, order[i]);
		if (!v[i]) {
			for (size_t j = 0; j < i; j++)
				if (v[j]) {
					pthread_rwlock_unlock(&v[j]->iolock);
					vinode_unpin(fs, v[j]);
				}
			free(v);
			free(order);
			return -ENOMEM;
		}
		pthread_rwlock_wrlock(&v[i]->iolock);
	}
	free(order);
	*out = v;
	return 0;
}

static void unlock_files(struct vmfs *fs, struct vinode **v, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (v[i]) {
			pthread_rwlock_unlock(&v[i]->iolock);
			vinode_unpin(fs, v[i]);
		}
	free(v);
}

/* ---- create ---------------------------------------------------------------- */

static int snap_one(struct vmfs *fs, uint64_t file, const char *name, uint64_t *snap)
{
	struct vmfs_snap_disk *fsn, *ssn;
	struct vmfs_inode_disk *di, *si;
	struct vbuf *ib, *sb = NULL;
	uint64_t dup, id;
	int ret = read_file(fs, file, &ib);

	if (ret)
		return ret;
	di = ib_inode(ib);
	fsn = snap_of(ib);
	ret = find_name(fs, ib, name, &dup);
	if (!ret && dup)
		ret = -EEXIST;
	if (!ret && le32_to_cpu(fsn->sn_count) >= VMFS_SNAP_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret) {
		times_apply(fs, ib);
		ret = inode_new(fs, le32_to_cpu(di->i_mode), le32_to_cpu(di->i_uid), le32_to_cpu(di->i_gid), file, &sb);
	}
	if (!ret)
		ret = share_map(fs, ib, sb);
	if (ret)
		goto out;
	si = ib_inode(sb);
	ssn = snap_of(sb);
	id = le64_to_cpu(fsn->sn_id) ? le64_to_cpu(fsn->sn_id) : 1;
	si->i_flags = cpu_to_le32(le32_to_cpu(si->i_flags) | VMFS_IF_SNAPSHOT);
	si->i_atime = di->i_atime;
	si->i_mtime = di->i_mtime;
	si->i_ctime = di->i_ctime;
	ret = seal_name(fs, file, di, name, si->i_snapname); /* checked: at most 255 bytes */
	if (ret)
		goto out;
	ssn->sn_file = cpu_to_le64(file);
	ssn->sn_next = fsn->sn_head;
	ssn->sn_parent = fsn->sn_parent;
	ssn->sn_id = cpu_to_le64(id);
	fsn->sn_head = cpu_to_le64(sb->addr);
	fsn->sn_parent = cpu_to_le64(sb->addr);
	fsn->sn_id = cpu_to_le64(id + 1);
	fsn->sn_count = cpu_to_le32(le32_to_cpu(fsn->sn_count) + 1);
	if (snap)
		*snap = sb->addr;
out:
	meta_put(fs, sb);
	meta_put(fs, ib);
	return ret;
}

int vmfs_snap_create(struct vmfs *fs, const uint64_t *files, size_t n, const char *name, uint64_t *snaps)
{
	struct vinode **v;
	int ret = check_snap_name(name);

	if (ret)
		return ret;
	if (fs->ro)
		return -EROFS;
	if (!n || n > VMFS_SNAP_GROUP_MAX)
		return n ? -E2BIG : -EINVAL;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (files[i] == files[j])
				return -EINVAL;
	ret = lock_files(fs, files, n, &v);
	if (ret)
		return ret;
	ret = op_begin(fs);
	for (size_t i = 0; i < n && !ret; i++) /* one operation: every file or none (crash-consistent) */
		ret = snap_one(fs, files[i], name, snaps ? &snaps[i] : NULL);
	ret = op_end(fs, ret);
	unlock_files(fs, v, n);
	return ret;
}

/* ---- list ------------------------------------------------------------------- */

struct list_ctx {
	struct vmfs *fs;
	struct vbuf *file;              /* its snapshots' names are under its keys */
	struct vmfs_snap_info *v;
	size_t n, cap;
};

static int list_cb(void *ctx, struct vbuf *sb)
{
	struct list_ctx *c = ctx;
	struct vmfs_inode_disk *si = ib_inode(sb);
	struct vmfs_snap_info *s;
	int ret;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		s = realloc(c->v, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		c->v = s;
		c->cap = cap;
	}
	s = &c->v[c->n++];
	memset(s, 0, sizeof(*s));
	s->ino = sb->addr;
	s->file = le64_to_cpu(snap_of(sb)->sn_file);
	s->parent = le64_to_cpu(snap_of(sb)->sn_parent);
	s->id = le64_to_cpu(snap_of(sb)->sn_id);
	s->time_ns = (int64_t)le64_to_cpu(si->i_btime);
	s->size = le64_to_cpu(si->i_size);
	ret = crypt_snapname(c->fs, c->file->addr, ib_inode(c->file), false, si->i_snapname, s->name);
	s->name[VMFS_SNAP_NAME_MAX] = 0;
	if (ret)
		c->n--;
	return ret;
}

int vmfs_snap_list(struct vmfs *fs, uint64_t file, struct vmfs_snap_info **out, size_t *n, uint64_t *parent)
{
	struct list_ctx c = { .fs = fs };
	struct vbuf *ib;
	int ret = fs_enter(fs, false);

	*out = NULL;
	*n = 0;
	if (ret)
		return ret;
	ret = read_file(fs, file, &ib);
	if (!ret) {
		if (parent)
			*parent = le64_to_cpu(snap_of(ib)->sn_parent);
		c.file = ib;
		ret = list_walk(fs, ib, list_cb, &c);
		meta_put(fs, ib);
	}
	fs_leave(fs);
	if (ret < 0) {
		free(c.v);
		return ret;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

/*
 * The snapshot of file called name (*snap), in one look under the lock; with
 * st, also its attributes and one lookup reference (vmfs_snap_lookup).
 */
static int snap_find(struct vmfs *fs, uint64_t file, const char *name, uint64_t *snap, struct vmfs_stat *st)
{
	struct vbuf *ib, *sb;
	int ret = check_snap_name(name);

	*snap = 0;
	if (!ret)
		ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = read_file(fs, file, &ib);
	if (!ret) {
		ret = find_name(fs, ib, name, snap);
		if (!ret && !*snap)
			ret = -ENOENT;
		if (!ret && st && !(ret = read_snap(fs, ib, *snap, &sb))) {
			inode_to_stat(fs, sb, st);
			meta_put(fs, sb);
			inode_take_ref(fs, *snap);
		}
		meta_put(fs, ib);
	}
	fs_leave(fs);
	return ret;
}

int vmfs_snap_find(struct vmfs *fs, uint64_t file, const char *name, uint64_t *snap)
{
	return snap_find(fs, file, name, snap, NULL);
}

int vmfs_snap_lookup(struct vmfs *fs, uint64_t file, const char *name, struct vmfs_stat *st)
{
	uint64_t snap;

	return snap_find(fs, file, name, &snap, st);
}

/* ---- revert ----------------------------------------------------------------- */

/*
 * In the running operation: file's map moves into a new inode that goes on
 * the orphan list (its blocks are released later, like an unlinked file's), and
 * file gets a shared copy of snap's. *old is that new inode.
 */
static int revert_one(struct vmfs *fs, uint64_t file, uint64_t snap, uint64_t *old)
{
	struct vbuf *ib, *sb = NULL, *tb = NULL;
	struct vmfs_inode_disk *di;
	int ret = read_file(fs, file, &ib);

	if (ret)
		return ret;
	di = ib_inode(ib);
	ret = read_snap(fs, ib, snap, &sb);
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret)
		ret = inode_new(fs, S_IFREG, 0, 0, file, &tb);
	if (ret)
		goto out;
	times_pending(fs, file, le64_to_cpu(di->i_igen), true); /* the content changes now */
	move_map(ib, tb);
	ib_inode(tb)->i_nlink = 0;
	ret = orphan_add(fs, tb);
	if (!ret)
		ret = share_map(fs, sb, ib);
	if (ret)
		goto out;
	snap_of(ib)->sn_parent = cpu_to_le64(snap);
	inode_touch(ib, true, true);
	*old = tb->addr;
out:
	meta_put(fs, tb);
	meta_put(fs, sb);
	meta_put(fs, ib);
	return ret;
}

int vmfs_snap_revert(struct vmfs *fs, const uint64_t *files, const uint64_t *snaps, size_t n)
{
	uint64_t *old;
	struct vinode **v;
	int ret;

	if (fs->ro)
		return -EROFS;
	if (!n || n > VMFS_SNAP_GROUP_MAX)
		return n ? -E2BIG : -EINVAL;
	old = calloc(n, sizeof(*old));
	if (!old)
		return -ENOMEM;
	ret = lock_files(fs, files, n, &v);
	if (ret) {
		free(old);
		return ret;
	}
	ret = op_begin(fs);
	/* every file switches in the operation's first transaction: no commit comes between them */
	for (size_t i = 0; i < n && !ret; i++)
		ret = revert_one(fs, files[i], snaps[i], &old[i]);
	for (size_t i = 0; i < n && !ret; i++)
		ret = inode_drop(fs, old[i]); /* may commit as it goes: the old maps are orphans (O3) */
	ret = op_end(fs, ret);
	unlock_files(fs, v, n);
	free(old);
	return ret;
}

/* ---- delete ----------------------------------------------------------------- */

struct unlink_ctx {
	struct vmfs *fs;
	uint64_t snap, next, parent;
	struct vbuf *prev;      /* the snapshot before it on the list, held */
};

static int unlink_cb(void *ctx, struct vbuf *sb)
{
	struct unlink_ctx *c = ctx;
	struct vmfs_snap_disk *s = snap_of(sb);
	int ret;

	if (le64_to_cpu(s->sn_next) == c->snap) {
		c->prev = sb;
		sb->refs++; /* kept past the walk's put */
	}
	if (le64_to_cpu(s->sn_parent) != c->snap)
		return 0;
	ret = meta_dirty(c->fs, sb); /* N2: its children now descend from its parent */
	if (!ret)
		s->sn_parent = cpu_to_le64(c->parent);
	return ret;
}

/*
 * N3: in the running operation, takes snap off ib's list (children and the
 * file re-parented to its parent) and puts it on the orphan list; the caller
 * then drops it with inode_drop().
 */
static int snap_unlink(struct vmfs *fs, struct vbuf *ib, uint64_t snap)
{
	struct unlink_ctx c = { .fs = fs, .snap = snap };
	struct vmfs_snap_disk *fsn = snap_of(ib);
	struct vbuf *sb;
	int ret = read_snap(fs, ib, snap, &sb);

	if (ret)
		return ret;
	c.parent = le64_to_cpu(snap_of(sb)->sn_parent);
	c.next = le64_to_cpu(snap_of(sb)->sn_next);
	ret = meta_dirty(fs, ib);
	if (!ret)
		ret = meta_dirty(fs, sb);
	if (!ret)
		ret = list_walk(fs, ib, unlink_cb, &c);
	if (!ret && c.prev)
		ret = meta_dirty(fs, c.prev);
	if (ret)
		goto out;
	if (c.prev)
		snap_of(c.prev)->sn_next = cpu_to_le64(c.next);
	else if (le64_to_cpu(fsn->sn_head) == snap)
		fsn->sn_head = cpu_to_le64(c.next);
	if (le64_to_cpu(fsn->sn_parent) == snap)
		fsn->sn_parent = cpu_to_le64(c.parent);
	fsn->sn_count = cpu_to_le32(le32_to_cpu(fsn->sn_count) - 1);
	snap_of(sb)->sn_next = 0;
	ib_inode(sb)->i_nlink = 0;
	ret = orphan_add(fs, sb);
out:
	meta_put(fs, c.prev);
	meta_put(fs, sb);
	return ret;
}

/*
 * A snapshot off its list (nlink 0, an orphan): freed now, or, while this host
 * reads it (a mount's FILE@NAME holds a lookup reference), when the last
 * reference goes (vmfs_forget), as an unlinked file is.
 */
static int snap_release(struct vmfs *fs, uint64_t snap)
{
	struct vinode *vi = vinode_find(fs, snap);

	if (vi && (vi->lookups || vi->pins))
		return 0;
	return inode_drop(fs, snap);
}

int vmfs_snap_delete(struct vmfs *fs, uint64_t file, uint64_t snap)
{
	struct vbuf *ib;
	int ret;

	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs); /* the file's data does not change: its I/O goes on */
	if (!ret && cluster_held_elsewhere(fs, snap))
		ret = -EBUSY; /* another host reads it (its mount's FILE@NAME is open) */
	if (!ret)
		ret = read_file(fs, file, &ib);
	if (!ret) {
		ret = snap_unlink(fs, ib, snap);
		meta_put(fs, ib);
	}
	if (!ret)
		ret = snap_release(fs, snap);
	return op_end(fs, ret);
}

/* inode_drop() of a file with snapshots: each goes first (N3), the list shrinking as it goes. */
int snap_drop_all(struct vmfs *fs, struct vbuf *ib)
{
	int ret = 0;

	while (!ret && snap_of(ib)->sn_head) {
		uint64_t snap = le64_to_cpu(snap_of(ib)->sn_head);
		ret = snap_unlink(fs, ib, snap);
		if (!ret)
			ret = snap_release(fs, snap);
		if (!ret)
			ret = op_maybe_commit(fs);
	}
	return ret;
}

/* ---- what a map holds alone, and what two maps differ in ------------------------ */

struct uniq_ctx {
	struct vmfs_inode_disk *di;
	uint64_t units;
};

/*
 * A redirect this map holds alone: its own block, and the block it replaces
 * when no other map has it (its table's 4 KiB, shared with other slots, not).
 */
static int uniq_redir(struct vmfs *fs, struct uniq_ctx *c, uint64_t p)
{
	struct redir r;
	uint16_t ref;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	ret = ref_get(fs, redir_backing(&r), &ref);
	redir_put(fs, &r);
	if (!ret)
		c->units += fs->upb + (ref == 1 ? fs->upb : 0);
	return ret;
}

static int uniq_rec(struct vmfs *fs, struct uniq_ctx *c, const le64 *ptrs, unsigned n, unsigned level)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t p = le64_to_cpu(ptrs[i]) & VMFS_PTR_ADDR_MASK;
		uint16_t ref;
		struct vbuf *b;
		int ret;

		if (!p)
			continue;
		ret = ptr_ref_get(fs, le64_to_cpu(ptrs[i]), &ref);
		if (ret)
			return ret;
		if (ref != 1)
			continue; /* another map holds it (and all below it) too */
		if (level == 0 && (le64_to_cpu(ptrs[i]) & VMFS_PTR_REDIRECT)) {
			ret = uniq_redir(fs, c, le64_to_cpu(ptrs[i]));
			if (ret)
				return ret;
			continue;
		}
		if (level == 0) {
			c->units += (uint64_t)inode_layout_blkunits(fs, c->di);
			continue;
		}
		ret = meta_read(fs, p, VMFS_MAGIC_PTR, &b);
		if (ret)
			return ret;
		c->units++;
		ret = uniq_rec(fs, c, ((struct vmfs_ptr_disk *)b->data)->pb_ptr, VMFS_PTRS_PER_BLOCK, level - 1);
		meta_put(fs, b);
		if (ret)
			return ret;
	}
	return 0;
}

int vmfs_unique_bytes(struct vmfs *fs, uint64_t ino, uint64_t *bytes)
{
	struct uniq_ctx c = { .units = 1 }; /* the inode */
	struct vbuf *ib;
	int ret = fs_enter(fs, false);

	if (ret)
		return ret;
	ret = inode_read(fs, ino, &ib);
	if (!ret) {
		c.di = ib_inode(ib);
		if (!(le32_to_cpu(c.di->i_flags) & VMFS_IF_INLINE) && c.di->i_height)
			ret = c.di->i_height > VMFS_MAX_HEIGHT ? -EUCLEAN
							       : uniq_rec(fs, &c, (const le64 *)c.di->i_root, VMFS_ROOT_PTRS,
									  c.di->i_height - 1u);
		meta_put(fs, ib);
	}
	fs_leave(fs);
	*bytes = c.units * VMFS_UNIT;
	return ret;
}

struct diff_ctx {
	vmfs_extent_fn fn;
	void *ctx;
	uint64_t bb, limit;     /* bytes per mapped block; report nothing at or past limit */
	uint64_t run_off, run_len;
};

static int diff_emit(struct diff_ctx *c, uint64_t off, uint64_t len)
{
	int ret;

	if (off >= c->limit)
		return 0;
	len = base_min(len, c->limit - off);
	if (c->run_len && c->run_off + c->run_len == off) {
		c->run_len += len;
		return 0;
	}
	if (c->run_len) {
		ret = c->fn(c->ctx, c->run_off, c->run_len);
		if (ret)
			return ret;
	}
	c->run_off = off;
	c->run_len = len;
	return 0;
}

static uint64_t level_span(unsigned level)
{
	uint64_t s = 1;
	for (unsigned i = 0; i < level; i++)
		s *= VMFS_PTRS_PER_BLOCK;
	return s;
}

/* A node of one side: n entries of the given level (0: data), starting at logical block base. */
struct dnode {
	const le64 *p;
	unsigned n, level;
};

static int diff_rec(struct vmfs *fs, struct diff_ctx *c, struct dnode a, struct dnode b, uint64_t base);

/* A data entry as the block it is based on and the grains that differ from it (a redirect's set bits). */
struct dside {
	uint64_t base;
	struct redir r;                 /* r.b NULL: not a redirect */
};

static int dside_get(struct vmfs *fs, uint64_t p, struct dside *d)
{
	d->r.b = NULL;
	d->base = p & (VMFS_PTR_ADDR_MASK | VMFS_PTR_TBZ);
	if (!(p & VMFS_PTR_REDIRECT))
		return 0;
	int ret = redir_get(fs, p, &d->r);
	if (!ret)
		d->base = redir_backing(&d->r);
	return ret;
}

/*
 * Block b0 where one side or both are redirects: when both are based on the
 * same block, only the grains either side replaced differ (changed blocks at
 * 4 KiB, as a backup wants them); otherwise the whole block.
 */
static int diff_grains(struct vmfs *fs, struct diff_ctx *c, uint64_t pa, uint64_t pb, uint64_t b0)
{
	struct dside a, b = { .r.b = NULL };
	int ret = dside_get(fs, pa, &a);

	if (!ret)
		ret = dside_get(fs, pb, &b);
	if (!ret && a.base != b.base)
		ret = diff_emit(c, b0 * c->bb, c->bb);
	for (unsigned g = 0; !ret && a.base == b.base && g < c->bb / VMFS_GRAIN; g++)
		if ((a.r.b && redir_bit(&a.r, g)) || (b.r.b && redir_bit(&b.r, g)))
			ret = diff_emit(c, b0 * c->bb + (uint64_t)g * VMFS_GRAIN, VMFS_GRAIN);
	meta_put(fs, a.r.b);
	meta_put(fs, b.r.b);
	return ret;
}

static int diff_entry(struct vmfs *fs, struct diff_ctx *c, uint64_t pa, uint64_t pb, unsigned level, uint64_t b0)
{
	static const le64 zeros[VMFS_PTRS_PER_BLOCK];
	struct vbuf *ba = NULL, *bb = NULL;
	int ret = 0;

	if (pa == pb)
		return 0; /* the same subtree: nothing below differs (shared maps skip here) */
	if (level == 0) {
		if ((!pa || (pa & VMFS_PTR_TBZ)) && (!pb || (pb & VMFS_PTR_TBZ)))
			return 0; /* both read as zeros */
		if ((pa | pb) & VMFS_PTR_REDIRECT)
			return diff_grains(fs, c, pa, pb, b0);
		return diff_emit(c, b0 * c->bb, c->bb);
	}
	if (pa)
		ret = meta_read(fs, pa & VMFS_PTR_ADDR_MASK, VMFS_MAGIC_PTR, &ba);
	if (!ret && pb)
		ret = meta_read(fs, pb & VMFS_PTR_ADDR_MASK, VMFS_MAGIC_PTR, &bb);
	if (!ret)
		ret = diff_rec(fs, c,
			       (struct dnode){ ba ? ((struct vmfs_ptr_disk *)ba->data)->pb_ptr : zeros, VMFS_PTRS_PER_BLOCK,
					       level - 1 },
			       (struct dnode){ bb ? ((struct vmfs_ptr_disk *)bb->data)->pb_ptr : zeros, VMFS_PTRS_PER_BLOCK,
					       level - 1 },
			       b0);
	meta_put(fs, ba);
	meta_put(fs, bb);
	return ret;
}

static int diff_rec(struct vmfs *fs, struct diff_ctx *c, struct dnode a, struct dnode b, uint64_t base)
{
	uint64_t span = level_span(a.level);
	unsigned n = a.n > b.n ? a.n : b.n;

	for (unsigned i = 0; i < n; i++) {
		uint64_t pa = i < a.n ? le64_to_cpu(a.p[i]) : 0, pb = i < b.n ? le64_to_cpu(b.p[i]) : 0;
		int ret;

		if ((base + i * span) * c->bb >= c->limit)
			break;
		ret = diff_entry(fs, c, pa, pb, a.level, base + i * span);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A side's root, brought down to the given level: a taller map's root entry 0
 * holds what a shorter map's roots hold (growing moves the roots there), and
 * its other entries map blocks the shorter map has not.
 */
static int diff_lift(struct vmfs *fs, struct diff_ctx *c, struct dnode *tall, unsigned level, struct vbuf **held)
{
	static const le64 zeros[VMFS_PTRS_PER_BLOCK];
	int ret = 0;

	while (tall->level > level && !ret) {
		uint64_t span = level_span(tall->level), p0 = le64_to_cpu(tall->p[0]);
		struct vbuf *b = NULL;

		for (unsigned i = 1; i < tall->n && !ret; i++)
			ret = diff_entry(fs, c, le64_to_cpu(tall->p[i]), 0, tall->level, i * span);
		if (!ret && p0)
			ret = meta_read(fs, p0 & VMFS_PTR_ADDR_MASK, VMFS_MAGIC_PTR, &b);
		if (ret)
			break;
		meta_put(fs, *held);
		*held = b;
		*tall = (struct dnode){ b ? ((struct vmfs_ptr_disk *)b->data)->pb_ptr : zeros, VMFS_PTRS_PER_BLOCK,
					tall->level - 1 };
	}
	return ret;
}

int vmfs_map_diff(struct vmfs *fs, uint64_t from, uint64_t to, vmfs_extent_fn fn, void *ctx)
{
	struct diff_ctx c = { .fn = fn, .ctx = ctx };
	struct vbuf *ia = NULL, *ib = NULL, *ha = NULL, *hb = NULL;
	struct vmfs_inode_disk *a, *b;
	uint64_t sa, sb;
	int ret = fs_enter(fs, false);

	if (ret)
		return ret;
	ret = inode_read(fs, from, &ia);
	if (!ret)
		ret = inode_read(fs, to, &ib);
	if (ret)
		goto out;
	a = ib_inode(ia);
	b = ib_inode(ib);
	if (!S_ISREG(le32_to_cpu(a->i_mode)) || !S_ISREG(le32_to_cpu(b->i_mode))) {
		ret = -EINVAL;
		goto out;
	}
	sa = le64_to_cpu(a->i_size);
	sb = le64_to_cpu(b->i_size);
	c.limit = base_min(sa, sb);
	if ((le32_to_cpu(a->i_flags) & VMFS_IF_LAYOUT) != (le32_to_cpu(b->i_flags) & VMFS_IF_LAYOUT)) {
		ret = diff_emit(&c, 0, c.limit); /* a layout change rewrote every byte */
	} else if (le32_to_cpu(a->i_flags) & VMFS_IF_INLINE) {
		for (uint64_t i = 0; i < c.limit && !ret; i++)
			if (a->i_root[i] != b->i_root[i])
				ret = diff_emit(&c, i, 1);
	} else if (a->i_height > VMFS_MAX_HEIGHT || b->i_height > VMFS_MAX_HEIGHT) {
		ret = -EUCLEAN;
	} else if (a->i_height && b->i_height) {
		struct dnode na = { (const le64 *)a->i_root, VMFS_ROOT_PTRS, a->i_height - 1u };
		struct dnode nb = { (const le64 *)b->i_root, VMFS_ROOT_PTRS, b->i_height - 1u };

		c.bb = (uint64_t)inode_layout_blkunits(fs, a) * VMFS_UNIT;
		ret = diff_lift(fs, &c, &na, nb.level, &ha);
		if (!ret)
			ret = diff_lift(fs, &c, &nb, na.level, &hb);
		if (!ret)
			ret = diff_rec(fs, &c, na, nb, 0);
	} else if (a->i_height || b->i_height) { /* one side maps nothing: the other's mapped blocks differ */
		struct dnode n = a->i_height ? (struct dnode){ (const le64 *)a->i_root, VMFS_ROOT_PTRS, a->i_height - 1u }
					     : (struct dnode){ (const le64 *)b->i_root, VMFS_ROOT_PTRS, b->i_height - 1u };
		static const le64 zeros[VMFS_ROOT_PTRS];

		c.bb = (uint64_t)inode_layout_blkunits(fs, a) * VMFS_UNIT;
		ret = diff_rec(fs, &c, n, (struct dnode){ zeros, VMFS_ROOT_PTRS, n.level }, 0);
	}
	c.limit = UINT64_MAX;
	if (!ret && sa != sb) /* bytes only one side has */
		ret = diff_emit(&c, base_min(sa, sb), base_max(sa, sb) - base_min(sa, sb));
	if (!ret && c.run_len)
		ret = fn(ctx, c.run_off, c.run_len);
out:
	meta_put(fs, ha);
	meta_put(fs, hb);
	meta_put(fs, ia);
	meta_put(fs, ib);
	fs_leave(fs);
	return ret;
}

/* ---- clone ------------------------------------------------------------------ */

/* In the running operation: the new inode nb takes a shared copy of src's content. */
int share_clone(struct vmfs *fs, uint64_t src, struct vbuf *nb)
{
	struct vbuf *sb;
	int ret = inode_read(fs, src, &sb);

	if (ret)
		return ret;
	if (!S_ISREG(le32_to_cpu(ib_inode(sb)->i_mode)))
		ret = S_ISDIR(le32_to_cpu(ib_inode(sb)->i_mode)) ? -EISDIR : -EINVAL;
	else if (!ib_inode(sb)->i_nlink)
		ret = -ENOENT;
	if (!ret) {
		if (!is_snapshot(ib_inode(sb))) {
			ret = meta_dirty(fs, sb);
			if (!ret)
				times_apply(fs, sb);
		}
		if (!ret)
			ret = share_map(fs, sb, nb);
	}
	meta_put(fs, sb);
	return ret;
}

/* ---- copy_file_range: shared whole blocks, copied edges ------------------------------ */

/* Copies [soff, soff + len) of src to doff of dst through the file API (the edges, or what cannot be shared). */
static int copy_bytes(struct vmfs *fs, uint64_t src, uint64_t soff, uint64_t dst, uint64_t doff, uint64_t len)
{
	size_t chunk = (size_t)base_min(len, (uint64_t)(1u << 20));
	uint8_t *buf = len ? malloc(chunk) : NULL;
	int ret = 0;

	if (len && !buf)
		return -ENOMEM;
	while (len && !ret) {
		size_t n = (size_t)base_min(len, (uint64_t)chunk);
		ssize_t r = vmfs_pread(fs, src, buf, n, soff);

		if (r >= 0 && (size_t)r != n)
			r = -EIO; /* the source shrank under the copy */
		if (r >= 0)
			r = vmfs_pwrite(fs, dst, buf, n, doff);
		ret = r < 0 ? (int)r : 0;
		soff += n;
		doff += n;
		len -= n;
	}
	free(buf);
	return ret;
}

/*
 * In one operation, with both files' I/O locks held: dst's blocks
 * [dblk, dblk + n) become shared copies of src's [sblk, sblk + n). Stops early
 * (*done blocks shared) at a block whose count is at its maximum.
 */
static int share_blocks(struct vmfs *fs, uint64_t src, uint64_t sblk, uint64_t dst, uint64_t dblk, uint64_t n,
			uint64_t *done)
{
	struct vbuf *sb, *db;
	int ret = op_begin(fs);

	*done = 0;
	if (!ret)
		ret = inode_read(fs, src, &sb);
	if (ret)
		return op_end(fs, ret);
	ret = inode_read(fs, dst, &db);
	if (ret) {
		meta_put(fs, sb);
		return op_end(fs, ret);
	}
	if (!(le32_to_cpu(ib_inode(sb)->i_flags) & VMFS_IF_LARGE) ||
	    !(le32_to_cpu(ib_inode(db)->i_flags) & VMFS_IF_LARGE) || is_snapshot(ib_inode(db)))
		ret = -EOPNOTSUPP; /* the caller copies instead */
	/* encrypted: a block reads right only under its own file's keys and at its own offset */
	if (!ret && (memcmp(ib_inode(sb)->i_crypt, ib_inode(db)->i_crypt, sizeof(ib_inode(db)->i_crypt)) ||
		     (enc_crypt_present(ib_inode(sb)->i_crypt) &&
		      (sblk != dblk || ib_inode(sb)->i_crypt_mark != ib_inode(db)->i_crypt_mark))))
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = meta_dirty(fs, sb);
	if (!ret)
		ret = meta_dirty(fs, db);
	if (!ret)
		ret = share_feature(fs);
	if (!ret) {
		ib_inode(sb)->i_flags = cpu_to_le32(le32_to_cpu(ib_inode(sb)->i_flags) | VMFS_IF_SHARED);
		ib_inode(db)->i_flags = cpu_to_le32(le32_to_cpu(ib_inode(db)->i_flags) | VMFS_IF_SHARED);
	}
	for (uint64_t i = 0; i < n && !ret; i++) {
		struct vmfs_inode_disk *dd = ib_inode(db);
		uint64_t p, q;

		ret = bmap_get(fs, ib_inode(sb), sblk + i, &p);
		if (!ret)
			ret = bmap_get(fs, dd, dblk + i, &q);
		if (ret || p == q)
			continue;
		if (p) {
			ret = ptr_ref_add(fs, p);
			if (ret == -EMLINK) { /* never a wrap: the rest is copied */
				ret = 0;
				break;
			}
		}
		if (!ret)
			ret = bmap_set(fs, db, dblk + i, p);
		if (!ret && q)
			ret = bmap_drop_data(fs, dd, q);
		if (!ret && p)
			dd->i_units = cpu_to_le64(le64_to_cpu(dd->i_units) + bmap_ptr_units(fs, dd, p));
		if (!ret)
			ret = op_maybe_commit(fs);
		if (!ret)
			*done = i + 1;
	}
	if (!ret)
		inode_touch(db, true, true);
	meta_put(fs, db);
	meta_put(fs, sb);
	return op_end(fs, ret);
}

ssize_t vmfs_copy_range(struct vmfs *fs, uint64_t src, uint64_t soff, uint64_t dst, uint64_t doff, size_t len)
{
	struct vmfs_stat ss, ds;
	uint64_t bb = fs->block_size, head, n = 0, done = 0;
	uint64_t ino[2] = { src, dst };
	struct vinode **v;
	int ret;

	if (fs->ro)
		return -EROFS;
	ret = vmfs_getattr(fs, src, &ss);
	if (!ret)
		ret = vmfs_getattr(fs, dst, &ds);
	if (ret)
		return ret;
	if (!S_ISREG(ss.mode) || !S_ISREG(ds.mode))
		return S_ISDIR(ss.mode) || S_ISDIR(ds.mode) ? -EISDIR : -EINVAL;
	if (soff >= ss.size || !len)
		return 0;
	len = (size_t)base_min((uint64_t)len, ss.size - soff);
	if (doff + len < doff)
		return -EFBIG;
	if (src == dst && soff < doff + len && doff < soff + len)
		return copy_bytes(fs, src, soff, dst, doff, len) ? -EIO : (ssize_t)len; /* overlapping: plain copy */
	if (ds.size < doff + len) { /* the final size first: the gap reads as zeros, the layout is right */
		ret = vmfs_setattr(fs, dst, &(struct vmfs_stat){ .size = doff + len }, VMFS_SET_SIZE, NULL);
		if (ret)
			return ret;
	}
	head = (bb - soff % bb) % bb;
	if (soff % bb == doff % bb && len >= head + bb && src != dst)
		n = (len - head) / bb;
	if (n) {
		ret = lock_files(fs, ino, 2, &v);
		if (ret)
			return ret;
		ret = share_blocks(fs, src, (soff + head) / bb, dst, (doff + head) / bb, n, &done);
		unlock_files(fs, v, 2);
		if (ret == -EOPNOTSUPP)
			ret = 0; /* a small or inline file: copied below */
		if (ret)
			return ret;
	}
	if (!done) {
		ret = copy_bytes(fs, src, soff, dst, doff, len);
	} else {
		uint64_t mid = head + done * bb;
		ret = copy_bytes(fs, src, soff, dst, doff, head);
		if (!ret)
			ret = copy_bytes(fs, src, soff + mid, dst, doff + mid, len - mid);
	}
	return ret ? ret : (ssize_t)len;
}
