/*
 * Inodes: a 4 KiB sub-block each, whose unit address is the inode number. This
 * file creates, reads and frees them, keeps the per-host orphan list and the
 * in-memory table of inodes that callers hold references to.
 *
 * Orphans: an inode whose last name is removed while someone still holds it, or
 * whose space is being released over several transactions, is on its host's
 * orphan list (head in the host state block, link in i_orphan_next) with
 * VMFS_IF_ORPHAN set. Invariants: O1. an inode with nlink 0 that still exists is
 * on an orphan list; O2. an inode on the list with nlink > 0 may own blocks past
 * i_size that are being freed; O3. at open, orphans_process() finishes both.
 */
#include "vmfs/vmfs_i.h"

#include <sys/stat.h>

int inode_read(struct vmfs *fs, uint64_t ino, struct vbuf **out)
{
	struct vmfs_inode_disk *di;
	uint32_t layout;
	int ret;

	if (!addr_in_data(fs, ino) || unit_is_block(fs, ino)) {
		fs_err(fs, "inode %llu: not a valid inode number", (unsigned long long)ino);
		return -EUCLEAN;
	}
	{
		char *saved = fs->errbuf, msg[256] = "";
		fs->errbuf = msg; /* quiet until we know it is not just a freed inode */
		ret = meta_read(fs, ino, VMFS_MAGIC_INODE, out);
		if (ret == -EUCLEAN && !meta_read(fs, ino, VMFS_MAGIC_FREED, out)) {
			meta_put(fs, *out);
			ret = -ESTALE; /* an inode that was freed: a stale handle, not corruption */
		}
		fs->errbuf = saved;
		if (ret && ret != -ESTALE)
			fs_err(fs, "%s", msg);
		if (ret)
			return ret;
	}
	di = ib_inode(*out);
	layout = le32_to_cpu(di->i_flags) & VMFS_IF_LAYOUT;
	if (!base_is_pow2(layout) || di->i_height > VMFS_MAX_HEIGHT ||
	    /* inline bytes of anything but a directory (files, symlinks) are read up to i_size */
	    ((layout & VMFS_IF_INLINE) && (di->i_height || (!S_ISDIR(le32_to_cpu(di->i_mode)) &&
							    le64_to_cpu(di->i_size) > VMFS_INLINE_MAX))) ||
	    ((layout & VMFS_IF_SMALL) && le64_to_cpu(di->i_size) > VMFS_SMALL_MAX && !S_ISDIR(le32_to_cpu(di->i_mode)))) {
		fs_err(fs, "inode %llu: inconsistent layout (flags 0x%x, height %u, size %llu)",
		       (unsigned long long)ino, le32_to_cpu(di->i_flags), di->i_height,
		       (unsigned long long)le64_to_cpu(di->i_size));
		meta_put(fs, *out);
		return -EUCLEAN;
	}
	return 0;
}

void inode_touch(struct vbuf *ib, bool m, bool c)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	le64 now = cpu_to_le64((uint64_t)base_real_ns());

	if (m)
		di->i_mtime = now;
	if (c)
		di->i_ctime = now;
}

int inode_new(struct vmfs *fs, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t parent, struct vbuf **out)
{
	uint64_t unit;
	int ret = alloc_unit(fs, ALLOC_DATA, &unit);

	if (ret)
		return ret;
	ret = meta_new(fs, unit, VMFS_MAGIC_INODE, parent, out);
	if (!ret)
		inode_init(*out, mode, uid, gid, parent);
	return ret;
}

void inode_init(struct vbuf *ib, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t parent)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	le64 now = cpu_to_le64((uint64_t)base_real_ns());
	uint64_t igen;

	di->i_mode = cpu_to_le32(mode);
	di->i_uid = cpu_to_le32(uid);
	di->i_gid = cpu_to_le32(gid);
	di->i_nlink = cpu_to_le32(S_ISDIR(mode) ? 2 : 1);
	di->i_atime = di->i_mtime = di->i_ctime = di->i_btime = now;
	base_random(&igen, sizeof(igen));
	di->i_igen = cpu_to_le64(igen | 1);
	di->i_flags = cpu_to_le32(VMFS_IF_INLINE);
	di->i_parent = cpu_to_le64(parent);
	di->i_units = cpu_to_le64(1);
	if (S_ISDIR(mode))
		dir_init_inline(di);
}

void inode_to_stat(struct vmfs *fs, struct vbuf *ib, struct vmfs_stat *st)
{
	struct vmfs_inode_disk *di = ib_inode(ib);

	memset(st, 0, sizeof(*st));
	st->ino = ib->addr;
	st->gen = le64_to_cpu(di->i_igen);
	st->mode = le32_to_cpu(di->i_mode);
	st->nlink = le32_to_cpu(di->i_nlink);
	st->uid = le32_to_cpu(di->i_uid);
	st->gid = le32_to_cpu(di->i_gid);
	st->size = S_ISDIR(st->mode) ? le64_to_cpu(di->i_units) * VMFS_UNIT : le64_to_cpu(di->i_size);
	st->blocks = le64_to_cpu(di->i_units) * (VMFS_UNIT / 512);
	st->blksize = S_ISREG(st->mode) && (le32_to_cpu(di->i_flags) & VMFS_IF_LARGE) ? fs->block_size : VMFS_UNIT;
	st->atime_ns = (int64_t)le64_to_cpu(di->i_atime);
	st->mtime_ns = (int64_t)le64_to_cpu(di->i_mtime);
	st->ctime_ns = (int64_t)le64_to_cpu(di->i_ctime);
	st->btime_ns = (int64_t)le64_to_cpu(di->i_btime);
	st->snapshot = le32_to_cpu(di->i_flags) & VMFS_IF_SNAPSHOT;
	if (S_ISCHR(st->mode) || S_ISBLK(st->mode)) {
		st->rdev_major = (uint32_t)(le64_to_cpu(di->i_rdev) >> 32);
		st->rdev_minor = (uint32_t)le64_to_cpu(di->i_rdev);
	}
	if (st->snapshot)
		st->mode &= ~0222u; /* a snapshot is never written */
	{
		int64_t ns = times_pending(fs, ib->addr, le64_to_cpu(di->i_igen), false);
		st->mtime_ns = ns > st->mtime_ns ? ns : st->mtime_ns;
		st->ctime_ns = ns > st->ctime_ns ? ns : st->ctime_ns;
	}
}

/*
 * Deferred times. A write that only overwrites allocated blocks changes no
 * metadata but mtime and ctime; writing the inode for each such write would
 * take META exclusive per write (two hosts writing their own VM disks would
 * pass it back and forth) and journal the inode each time. Instead the time is
 * kept here, under fs->lock, shown by stat at once (inode_to_stat), and
 * written by times_flush(): at fsync, at a file lock's last unlock, at close,
 * and by the committer every commit_ms. The next change of the inode itself
 * applies it too (times_apply). A power cut can lose a deferred time (ext4's
 * lazytime does the same), never data: overwrites need no metadata.
 * Entries name (ino, igen), so a freed and reused inode is left alone.
 */
static struct times_pending *times_find(struct vmfs *fs, uint64_t ino, uint64_t igen)
{
	for (unsigned i = 0; i < fs->ntimes; i++)
		if (fs->times[i].ino == ino && fs->times[i].igen == igen)
			return &fs->times[i];
	return NULL;
}

/* Under fs->lock: ino's data changed now. false if the table is full (write the inode then). */
bool times_defer(struct vmfs *fs, uint64_t ino, uint64_t igen)
{
	struct times_pending *t = times_find(fs, ino, igen);

	if (!t) {
		if (fs->ntimes == TIMES_PENDING_MAX)
			return false;
		t = &fs->times[fs->ntimes++];
		*t = (struct times_pending){ .ino = ino, .igen = igen };
	}
	t->ns = base_real_ns();
	return true;
}

/* Under fs->lock: ino's deferred time, 0 if none; take removes it. */
int64_t times_pending(struct vmfs *fs, uint64_t ino, uint64_t igen, bool take)
{
	struct times_pending *t = times_find(fs, ino, igen);
	int64_t ns;

	if (!t)
		return 0;
	ns = t->ns;
	if (take)
		*t = fs->times[--fs->ntimes];
	return ns;
}

/* In an operation, on a dirtied inode: folds its deferred time in (never moving a time back). */
void times_apply(struct vmfs *fs, struct vbuf *ib)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	int64_t ns = times_pending(fs, ib->addr, le64_to_cpu(di->i_igen), true);

	if ((int64_t)le64_to_cpu(di->i_mtime) < ns)
		di->i_mtime = cpu_to_le64((uint64_t)ns);
	if ((int64_t)le64_to_cpu(di->i_ctime) < ns)
		di->i_ctime = cpu_to_le64((uint64_t)ns);
}

/* Writes every deferred time into its inode, in one operation. Takes fs->lock. */
int times_flush(struct vmfs *fs)
{
	int ret;

	pthread_mutex_lock(&fs->lock);
	if (!fs->ntimes || fs->ro) {
		pthread_mutex_unlock(&fs->lock);
		return 0;
	}
	pthread_mutex_unlock(&fs->lock);
	ret = op_begin(fs);
	while (!ret && fs->ntimes) {
		struct times_pending t = fs->times[fs->ntimes - 1];
		struct vbuf *ib;
		int r = inode_read(fs, t.ino, &ib);

		if (r || le64_to_cpu(ib_inode(ib)->i_igen) != t.igen) { /* gone: nothing to keep */
			if (!r)
				meta_put(fs, ib);
			if (r && r != -ESTALE && r != -ENOENT && r != -EUCLEAN)
				ret = r;
			times_pending(fs, t.ino, t.igen, true);
			continue;
		}
		ret = meta_dirty(fs, ib);
		if (!ret)
			times_apply(fs, ib);
		meta_put(fs, ib);
	}
	return op_end(fs, ret);
}

/* ---- orphans ---------------------------------------------------------------- */

static int hstate_read(struct vmfs *fs, struct vbuf **out)
{
	if (!fs->j_unit)
		return -EROFS;
	return meta_read(fs, fs->j_unit + 1, VMFS_MAGIC_HSTATE, out);
}

int orphan_add(struct vmfs *fs, struct vbuf *ib)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct vmfs_hstate_disk *hs;
	struct vbuf *hb;
	int ret;

	if (le32_to_cpu(di->i_flags) & VMFS_IF_ORPHAN)
		return 0;
	ret = hstate_read(fs, &hb);
	if (ret)
		return ret;
	ret = meta_dirty(fs, hb);
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret) {
		hs = (struct vmfs_hstate_disk *)hb->data;
		di->i_orphan_next = hs->hs_orphan_head;
		hs->hs_orphan_head = cpu_to_le64(ib->addr);
		di->i_flags = cpu_to_le32(le32_to_cpu(di->i_flags) | VMFS_IF_ORPHAN);
	}
	meta_put(fs, hb);
	return ret;
}

int orphan_remove(struct vmfs *fs, struct vbuf *ib)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct vbuf *hb, *prev = NULL;
	le64 *link;
	int ret, guard = 0;

	if (!(le32_to_cpu(di->i_flags) & VMFS_IF_ORPHAN))
		return 0;
	ret = hstate_read(fs, &hb);
	if (ret)
		return ret;
	link = &((struct vmfs_hstate_disk *)hb->data)->hs_orphan_head;
	while (le64_to_cpu(*link) != ib->addr) {
		uint64_t next = le64_to_cpu(*link);
		meta_put(fs, prev);
		prev = NULL;
		if (!next || ++guard > 1000000) {
			fs_err(fs, "inode %llu: marked orphan but not on the orphan list", (unsigned long long)ib->addr);
			ret = -EUCLEAN;
			goto out;
		}
		ret = inode_read(fs, next, &prev);
		if (ret)
			goto out;
		link = &ib_inode(prev)->i_orphan_next;
	}
	ret = meta_dirty(fs, prev ? prev : hb);
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret) {
		*link = di->i_orphan_next;
		di->i_orphan_next = 0;
		di->i_flags = cpu_to_le32(le32_to_cpu(di->i_flags) & ~VMFS_IF_ORPHAN);
	}
out:
	meta_put(fs, prev);
	meta_put(fs, hb);
	return ret;
}

/* Frees every block at or past byte from (whole blocks), in bounded transactions. */
int inode_release_space(struct vmfs *fs, struct vbuf *ib, uint64_t from)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bbytes = (uint64_t)inode_layout_blkunits(fs, di) * VMFS_UNIT;
	bool done = false;
	int ret = 0;

	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE)
		return 0;
	while (!done) {
		ret = bmap_free_range(fs, ib, base_div_round_up(from, bbytes), UINT64_MAX, 128, &done);
		if (!ret)
			ret = op_maybe_commit(fs);
		if (ret)
			break;
	}
	return ret;
}

/* Frees an inode with no names left, and everything it owns. */
int inode_drop(struct vmfs *fs, uint64_t ino)
{
	struct vbuf *ib;
	int ret = inode_read(fs, ino, &ib);

	if (ret)
		return ret;
	if (ib_inode(ib)->i_nlink) {
		meta_put(fs, ib);
		return 0;
	}
	ret = orphan_add(fs, ib); /* O1 across the transactions below */
	if (!ret && ((struct vmfs_snap_disk *)ib_inode(ib)->i_snap)->sn_head)
		ret = snap_drop_all(fs, ib); /* a file's snapshots go with it */
	if (!ret)
		ret = S_ISDIR(le32_to_cpu(ib_inode(ib)->i_mode)) ? dir_release(fs, ib) : inode_release_space(fs, ib, 0);
	if (!ret)
		ret = orphan_remove(fs, ib);
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret) {
		/* a freed inode must not pass for a live one: its block stays, its magic goes */
		ib_inode(ib)->i_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_FREED);
		ret = free_unit(fs, ino);
	}
	meta_put(fs, ib);
	return ret;
}

int orphans_process(struct vmfs *fs)
{
	struct vbuf *hb;
	uint64_t ino;
	int ret = hstate_read(fs, &hb), guard = 0;

	if (ret)
		return ret == -EROFS ? 0 : ret;
	ino = le64_to_cpu(((struct vmfs_hstate_disk *)hb->data)->hs_orphan_head);
	meta_put(fs, hb);
	while (ino && !ret) {
		struct vbuf *ib;
		uint64_t next;

		if (++guard > 1000000)
			return -EUCLEAN;
		ret = inode_read(fs, ino, &ib);
		if (ret)
			break;
		next = le64_to_cpu(ib_inode(ib)->i_orphan_next);
		ret = op_begin(fs);
		if (ret) {
			/* the cluster refused: op_end() below reports it */
		} else if (ib_inode(ib)->i_nlink == 0) {
			ret = inode_drop(fs, ino);
		} else {
			ret = inode_release_space(fs, ib, le64_to_cpu(ib_inode(ib)->i_size));
			if (!ret)
				ret = orphan_remove(fs, ib);
		}
		meta_put(fs, ib);
		ret = op_end(fs, ret);
		ino = next;
	}
	return ret;
}

/* ---- in-memory inodes ------------------------------------------------------- */

int itab_init(struct vmfs *fs)
{
	fs->ihash_size = 1 << 14;
	fs->ihash = calloc(fs->ihash_size, sizeof(*fs->ihash));
	return fs->ihash ? 0 : -ENOMEM;
}

static size_t ihash_idx(struct vmfs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 40) & (fs->ihash_size - 1);
}

struct vinode *vinode_find(struct vmfs *fs, uint64_t ino)
{
	for (struct vinode *vi = fs->ihash[ihash_idx(fs, ino)]; vi; vi = vi->hnext)
		if (vi->ino == ino)
			return vi;
	return NULL;
}

/* Under fs->lock: finds or makes the in-memory inode and pins it. NULL: no memory. */
struct vinode *vinode_get(struct vmfs *fs, uint64_t ino)
{
	struct vinode *vi = vinode_find(fs, ino);
	size_t i;

	if (!vi) {
		vi = calloc(1, sizeof(*vi));
		if (!vi)
			return NULL;
		vi->ino = ino;
		pthread_rwlock_init(&vi->iolock, NULL);
		i = ihash_idx(fs, ino);
		vi->hnext = fs->ihash[i];
		fs->ihash[i] = vi;
	}
	vi->pins++;
	return vi;
}

/* Under fs->lock: unpins; the last user of an unreferenced inode frees the struct. */
void vinode_put(struct vmfs *fs, struct vinode *vi)
{
	struct vinode **pp;

	if (!vi || --vi->pins || vi->lookups)
		return;
	for (pp = &fs->ihash[ihash_idx(fs, vi->ino)]; *pp != vi; pp = &(*pp)->hnext)
		;
	*pp = vi->hnext;
	pthread_rwlock_destroy(&vi->iolock);
	free(vi);
}

/* vinode_get/vinode_put for callers that do not hold fs->lock (the data paths). */
struct vinode *vinode_pin(struct vmfs *fs, uint64_t ino)
{
	struct vinode *vi;

	pthread_mutex_lock(&fs->lock);
	vi = vinode_get(fs, ino);
	pthread_mutex_unlock(&fs->lock);
	return vi;
}

void vinode_unpin(struct vmfs *fs, struct vinode *vi)
{
	pthread_mutex_lock(&fs->lock);
	vinode_put(fs, vi);
	pthread_mutex_unlock(&fs->lock);
}

void itab_release(struct vmfs *fs)
{
	for (size_t i = 0; fs->ihash && i < fs->ihash_size; i++) {
		while (fs->ihash[i]) {
			struct vinode *vi = fs->ihash[i];
			fs->ihash[i] = vi->hnext;
			pthread_rwlock_destroy(&vi->iolock);
			free(vi);
		}
	}
	free(fs->ihash);
	fs->ihash = NULL;
}
