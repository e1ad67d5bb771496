/*
 * Names and attributes: lookup, create, link, unlink, rmdir, rename (with
 * RENAME_NOREPLACE and RENAME_EXCHANGE), readdir, getattr, setattr, readlink and
 * path resolution. Each call is one operation: all of it lands in one
 * transaction, or (on any error) none of it does.
 *
 * Link counts: a file's nlink is its number of names; a directory's is 2 plus
 * its subdirectories. An inode whose nlink reaches 0 is freed at once when no
 * caller holds a reference, else put on the orphan list until the last
 * vmfs_forget (see inode.c, O1).
 */
#include "vmfs/vmfs_i.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#define VMFS_LINK_MAX 65000u

static int check_name(const char *name, size_t *len)
{
	*len = strlen(name);
	if (*len == 0 || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return *len > VMFS_NAME_MAX ? -ENAMETOOLONG : 0;
}

static int read_dir(struct vmfs *fs, uint64_t ino, struct vbuf **out)
{
	int ret = inode_read(fs, ino, out);

	if (ret)
		return ret;
	if (!S_ISDIR(le32_to_cpu(ib_inode(*out)->i_mode))) {
		meta_put(fs, *out);
		return -ENOTDIR;
	}
	if (!ib_inode(*out)->i_nlink) { /* removed while someone still holds it */
		meta_put(fs, *out);
		return -ENOENT;
	}
	return 0;
}

static void nlink_add(struct vbuf *ib, int d)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	di->i_nlink = cpu_to_le32((uint32_t)((int)le32_to_cpu(di->i_nlink) + d));
}

void inode_take_ref(struct vmfs *fs, uint64_t ino)
{
	struct vinode *vi = vinode_get(fs, ino);
	if (vi) {
		vi->lookups++;
		vinode_put(fs, vi);
	}
}

/* nlink of ib just reached 0: free it now, or keep it for its holders. */
static int unlinked(struct vmfs *fs, struct vbuf *ib)
{
	struct vinode *vi = vinode_find(fs, ib->addr);

	if (ib_inode(ib)->i_nlink)
		return 0;
	if (cluster_held_elsewhere(fs, ib->addr)) /* a VM's disk in use on another host is not deleted under it */
		return -EBUSY;
	if (vi && (vi->lookups || vi->pins))
		return orphan_add(fs, ib);
	return inode_drop(fs, ib->addr);
}

uint64_t vmfs_root_ino(struct vmfs *fs)
{
	return fs->root_ino;
}

int vmfs_getattr(struct vmfs *fs, uint64_t ino, struct vmfs_stat *st)
{
	struct vbuf *ib;
	int ret;

	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = inode_read(fs, ino, &ib);
	if (!ret) {
		inode_to_stat(fs, ib, st);
		meta_put(fs, ib);
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

int vmfs_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st)
{
	struct vbuf *dib, *ib;
	uint64_t ino;
	uint8_t type;
	size_t len = strlen(name);
	int ret;

	if (len > VMFS_NAME_MAX)
		return -ENAMETOOLONG;
	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = read_dir(fs, dir, &dib);
	if (ret)
		goto out;
	if (!strcmp(name, "."))
		ino = dir;
	else if (!strcmp(name, ".."))
		ino = dir == fs->root_ino ? dir : le64_to_cpu(ib_inode(dib)->i_parent);
	else
		ret = len ? dir_lookup(fs, dib, name, len, &ino, &type) : -ENOENT;
	meta_put(fs, dib);
	if (!ret)
		ret = inode_read(fs, ino, &ib);
	if (!ret) {
		inode_to_stat(fs, ib, st);
		meta_put(fs, ib);
		inode_take_ref(fs, ino);
	}
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

void vmfs_forget(struct vmfs *fs, uint64_t ino, uint64_t n)
{
	struct vinode *vi;
	struct vbuf *ib;

	int refused = op_begin(fs); /* without META the count still drops; the inode waits for fsck */

	vi = vinode_find(fs, ino);
	if (!vi) {
		op_end(fs, 0);
		return;
	}
	vi->lookups -= base_min(n, vi->lookups);
	vi->pins++;
	if (!vi->lookups && vi->pins == 1 && !fs->ro && !refused && !inode_read(fs, ino, &ib)) {
		bool gone = ib_inode(ib)->i_nlink == 0;
		meta_put(fs, ib);
		if (gone && inode_drop(fs, ino))
			fs_err(fs, "inode %llu: could not free it; fsck will", (unsigned long long)ino);
	}
	vinode_put(fs, vi);
	op_end(fs, 0);
}

/* Writes a symlink target as the new inode's data, inside the running operation. */
static int set_target(struct vmfs *fs, struct vbuf *ib, const char *target, size_t len)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint8_t *blk;
	uint64_t unit;
	int ret;

	struct enc_file *f;

	di->i_size = cpu_to_le64(len);
	blk = dev_alloc_buf(VMFS_UNIT);
	if (!blk)
		return -ENOMEM;
	memset(blk, 0, VMFS_UNIT);
	memcpy(blk, target, len);
	if (len <= VMFS_INLINE_MAX) {
		ret = crypt_inline(fs, ib->addr, di, true, blk);
		free(blk);
		return ret;
	}
	ret = crypt_file_get(fs, ib->addr, di, &f);
	if (!ret && f)
		ret = crypt_run(f, true, 0, blk, blk, VMFS_UNIT);
	crypt_file_put(fs, f);
	if (ret) {
		free(blk);
		return ret;
	}
	di->i_flags = cpu_to_le32((le32_to_cpu(di->i_flags) & ~VMFS_IF_LAYOUT) | VMFS_IF_SMALL);
	ret = alloc_unit(fs, ALLOC_DATA, &unit);
	if (!ret) {
		di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) + 1);
		ret = dev_pwrite(fs->dev, blk, VMFS_UNIT, unit * VMFS_UNIT);
	}
	if (!ret)
		ret = bmap_set(fs, ib, 0, unit);
	free(blk);
	return ret;
}

/* A new inode named name in dir: a symlink to target, or a regular file sharing clone_src's blocks (not 0). */
static int make_node(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint64_t rdev,
		     uint32_t uid, uint32_t gid, const char *target, uint64_t clone_src, struct vmfs_stat *st)
{
	struct vbuf *dib, *ib = NULL;
	size_t len, tlen = target ? strlen(target) : 0;
	int ret = check_name(name, &len);

	if (ret)
		return ret == -EINVAL ? -EEXIST : ret;
	if (target && (tlen == 0 || tlen >= VMFS_UNIT))
		return tlen ? -ENAMETOOLONG : -ENOENT;
	if (fs->ro)
		return -EROFS;
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	default:
		return -EINVAL;
	}
	ret = op_begin(fs);
	if (!ret)
		ret = read_dir(fs, dir, &dib);
	if (ret)
		goto out;
	if (S_ISDIR(mode) && le32_to_cpu(ib_inode(dib)->i_nlink) >= VMFS_LINK_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = meta_dirty(fs, dib);
	if (!ret)
		ret = inode_new(fs, mode, uid, gid, dir, &ib);
	if (!ret && !clone_src)
		ret = crypt_file_new(fs, ib_inode(ib));
	if (!ret && (S_ISCHR(mode) || S_ISBLK(mode)))
		ib_inode(ib)->i_rdev = cpu_to_le64(rdev);
	if (!ret && target)
		ret = set_target(fs, ib, target, tlen);
	if (!ret && clone_src)
		ret = share_clone(fs, clone_src, ib);
	if (!ret)
		ret = dir_insert(fs, dib, name, len, ib->addr, (uint8_t)mode_dtype(mode));
	if (!ret) {
		if (S_ISDIR(mode))
			nlink_add(dib, 1);
		inode_touch(dib, true, true);
		inode_to_stat(fs, ib, st);
		inode_take_ref(fs, ib->addr);
	}
	meta_put(fs, ib);
	meta_put(fs, dib);
out:
	return op_end(fs, ret);
}

int vmfs_mknod_dev(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t major,
		   uint32_t minor, uint32_t uid, uint32_t gid, struct vmfs_stat *st)
{
	if (S_ISDIR(mode) || S_ISLNK(mode))
		return -EINVAL;
	return make_node(fs, dir, name, mode, (uint64_t)major << 32 | minor, uid, gid, NULL, 0, st);
}

int vmfs_mknod(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
	       struct vmfs_stat *st)
{
	return vmfs_mknod_dev(fs, dir, name, mode, 0, 0, uid, gid, st);
}

int vmfs_clone(struct vmfs *fs, uint64_t src, uint64_t dir, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct vmfs_stat *st)
{
	return make_node(fs, dir, name, S_IFREG | (mode & 07777), 0, uid, gid, NULL, src, st);
}

int vmfs_mkdir(struct vmfs *fs, uint64_t dir, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
	       struct vmfs_stat *st)
{
	return make_node(fs, dir, name, S_IFDIR | (mode & 07777), 0, uid, gid, NULL, 0, st);
}

int vmfs_symlink(struct vmfs *fs, uint64_t dir, const char *name, const char *target, uint32_t uid,
		 uint32_t gid, struct vmfs_stat *st)
{
	return make_node(fs, dir, name, S_IFLNK | 0777, 0, uid, gid, target, 0, st);
}

int vmfs_link(struct vmfs *fs, uint64_t ino, uint64_t newdir, const char *newname, struct vmfs_stat *st)
{
	struct vbuf *dib, *ib = NULL;
	size_t len;
	int ret = check_name(newname, &len);

	if (ret)
		return ret == -EINVAL ? -EEXIST : ret;
	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs);
	if (!ret)
		ret = read_dir(fs, newdir, &dib);
	if (ret)
		goto out;
	ret = inode_read(fs, ino, &ib);
	if (!ret && S_ISDIR(le32_to_cpu(ib_inode(ib)->i_mode)))
		ret = -EPERM;
	else if (!ret && !ib_inode(ib)->i_nlink)
		ret = -ENOENT;
	else if (!ret && le32_to_cpu(ib_inode(ib)->i_nlink) >= VMFS_LINK_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret)
		ret = meta_dirty(fs, dib);
	if (!ret)
		ret = dir_insert(fs, dib, newname, len, ino, (uint8_t)mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)));
	if (!ret) {
		nlink_add(ib, 1);
		inode_touch(ib, false, true);
		inode_touch(dib, true, true);
		inode_to_stat(fs, ib, st);
		inode_take_ref(fs, ino);
	}
	meta_put(fs, ib);
	meta_put(fs, dib);
out:
	return op_end(fs, ret);
}

static int remove_name(struct vmfs *fs, uint64_t dir, const char *name, bool want_dir)
{
	struct vbuf *dib, *ib = NULL;
	uint64_t ino;
	uint8_t type;
	size_t len;
	int ret = check_name(name, &len);

	if (ret)
		return ret == -EINVAL && want_dir && !strcmp(name, "..") ? -ENOTEMPTY : ret;
	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs);
	if (!ret)
		ret = read_dir(fs, dir, &dib);
	if (ret)
		goto out;
	ret = dir_lookup(fs, dib, name, len, &ino, &type);
	if (!ret)
		ret = inode_read(fs, ino, &ib);
	if (!ret) {
		bool is_dir = S_ISDIR(le32_to_cpu(ib_inode(ib)->i_mode));
		if (want_dir && !is_dir)
			ret = -ENOTDIR;
		else if (!want_dir && is_dir)
			ret = -EISDIR;
		else if (is_dir && ib_inode(ib)->i_dir_count)
			ret = -ENOTEMPTY;
	}
	if (!ret)
		ret = meta_dirty(fs, dib);
	if (!ret)
		ret = meta_dirty(fs, ib);
	if (!ret)
		ret = dir_remove(fs, dib, name, len);
	if (!ret) {
		if (want_dir) {
			nlink_add(dib, -1);
			ib_inode(ib)->i_nlink = 0;
		} else {
			nlink_add(ib, -1);
		}
		inode_touch(ib, false, true);
		inode_touch(dib, true, true);
		ret = unlinked(fs, ib);
	}
	meta_put(fs, ib);
	meta_put(fs, dib);
out:
	return op_end(fs, ret);
}

int vmfs_unlink(struct vmfs *fs, uint64_t dir, const char *name)
{
	return remove_name(fs, dir, name, false);
}

int vmfs_rmdir(struct vmfs *fs, uint64_t dir, const char *name)
{
	return remove_name(fs, dir, name, true);
}

/* Is dir equal to anc or below it? Walks parents up to the root. */
static int is_within(struct vmfs *fs, uint64_t dir, uint64_t anc, bool *within)
{
	*within = false;
	for (int depth = 0; depth < 100000; depth++) {
		struct vbuf *b;
		uint64_t parent;
		int ret;

		if (dir == anc) {
			*within = true;
			return 0;
		}
		if (dir == fs->root_ino)
			return 0;
		ret = inode_read(fs, dir, &b);
		if (ret)
			return ret;
		parent = le64_to_cpu(ib_inode(b)->i_parent);
		meta_put(fs, b);
		dir = parent;
	}
	fs_err(fs, "directory %llu: parent chain does not reach the root", (unsigned long long)dir);
	return -EUCLEAN;
}

static void set_parent(struct vbuf *ib, uint64_t parent)
{
	ib_inode(ib)->i_parent = cpu_to_le64(parent);
}

int vmfs_rename(struct vmfs *fs, uint64_t dir, const char *name, uint64_t newdir, const char *newname,
		unsigned flags)
{
	struct vbuf *sd = NULL, *dd = NULL, *si = NULL, *di = NULL;
	uint64_t sino, dino = 0;
	uint8_t stype, dtype = 0;
	size_t slen, dlen;
	bool sdir, ddir = false, within;
	int ret;

	if (flags & ~(VMFS_RENAME_NOREPLACE | VMFS_RENAME_EXCHANGE) ||
	    (flags == (VMFS_RENAME_NOREPLACE | VMFS_RENAME_EXCHANGE)))
		return -EINVAL;
	if ((ret = check_name(name, &slen)) || (ret = check_name(newname, &dlen)))
		return ret == -EINVAL ? -EBUSY : ret;
	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs);
	if (!ret)
		ret = read_dir(fs, dir, &sd);
	if (!ret)
		ret = read_dir(fs, newdir, &dd);
	if (!ret)
		ret = dir_lookup(fs, sd, name, slen, &sino, &stype);
	if (!ret)
		ret = inode_read(fs, sino, &si);
	if (ret)
		goto out;
	sdir = S_ISDIR(le32_to_cpu(ib_inode(si)->i_mode));
	ret = dir_lookup(fs, dd, newname, dlen, &dino, &dtype);
	if (ret == -ENOENT) {
		dino = 0;
		ret = (flags & VMFS_RENAME_EXCHANGE) ? -ENOENT : 0;
	} else if (!ret && (flags & VMFS_RENAME_NOREPLACE)) {
		ret = -EEXIST;
	}
	if (ret)
		goto out;
	if (dino == sino)
		goto out; /* two names of one inode: nothing to do */
	if (dino) {
		ret = inode_read(fs, dino, &di);
		if (ret)
			goto out;
		ddir = S_ISDIR(le32_to_cpu(ib_inode(di)->i_mode));
	}
	/* a directory may not move below itself */
	if (sdir && dir != newdir && !(ret = is_within(fs, newdir, sino, &within)) && within)
		ret = -EINVAL;
	if (!ret && (flags & VMFS_RENAME_EXCHANGE) && ddir && dir != newdir &&
	    !(ret = is_within(fs, dir, dino, &within)) && within)
		ret = -EINVAL;
	if (!ret && dino && !(flags & VMFS_RENAME_EXCHANGE)) {
		if (sdir && !ddir)
			ret = -ENOTDIR;
		else if (!sdir && ddir)
			ret = -EISDIR;
		else if (ddir && ib_inode(di)->i_dir_count)
			ret = -ENOTEMPTY;
	}
	if (!ret)
		ret = meta_dirty(fs, sd);
	if (!ret)
		ret = meta_dirty(fs, dd);
	if (!ret)
		ret = meta_dirty(fs, si);
	if (!ret && di)
		ret = meta_dirty(fs, di);
	if (ret)
		goto out;

	if (flags & VMFS_RENAME_EXCHANGE) {
		ret = dir_set(fs, sd, name, slen, dino, dtype);
		if (!ret)
			ret = dir_set(fs, dd, newname, dlen, sino, stype);
		if (ret)
			goto out;
		if (dir != newdir) {
			if (sdir)
				set_parent(si, newdir);
			if (ddir)
				set_parent(di, dir);
			if (sdir != ddir) {
				nlink_add(sdir ? sd : dd, -1);
				nlink_add(sdir ? dd : sd, 1);
			}
		}
		inode_touch(di, false, true);
	} else {
		ret = dino ? dir_set(fs, dd, newname, dlen, sino, stype) : dir_insert(fs, dd, newname, dlen, sino, stype);
		if (!ret)
			ret = dir_remove(fs, sd, name, slen);
		if (ret)
			goto out;
		if (sdir) {
			set_parent(si, newdir);
			nlink_add(sd, -1);
			nlink_add(dd, 1);
		}
		if (di) {
			if (ddir) {
				ib_inode(di)->i_nlink = 0;
				nlink_add(dd, -1);
			} else {
				nlink_add(di, -1);
			}
			inode_touch(di, false, true);
			ret = unlinked(fs, di);
		}
	}
	inode_touch(si, false, true);
	inode_touch(sd, true, true);
	inode_touch(dd, true, true);
out:
	meta_put(fs, di);
	meta_put(fs, si);
	meta_put(fs, dd);
	meta_put(fs, sd);
	return op_end(fs, ret);
}

ssize_t vmfs_readlink(struct vmfs *fs, uint64_t ino, char *buf, size_t size)
{
	struct vmfs_stat st;
	int ret = vmfs_getattr(fs, ino, &st);

	if (ret)
		return ret;
	if (!S_ISLNK(st.mode))
		return -EINVAL;
	return vmfs_pread(fs, ino, buf, base_min(size, (size_t)st.size), 0);
}

struct rd_ctx {
	vmfs_filldir_fn fill;
	void *ctx;
};

static int rd_cb(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct rd_ctx *r = ctx;
	return r->fill(r->ctx, name, len, ino, type, key + 1) ? 1 : 0;
}

int vmfs_readdir(struct vmfs *fs, uint64_t dir, uint64_t cookie, vmfs_filldir_fn fill, void *ctx)
{
	struct rd_ctx r = { fill, ctx };
	struct vbuf *dib;
	uint64_t parent;
	int ret;

	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = read_dir(fs, dir, &dib);
	if (ret)
		goto out;
	parent = dir == fs->root_ino ? dir : le64_to_cpu(ib_inode(dib)->i_parent);
	if (cookie == 0 && fill(ctx, ".", 1, dir, DT_DIR, 1))
		goto put;
	if (cookie <= 1 && fill(ctx, "..", 2, parent, DT_DIR, 2))
		goto put;
	ret = dir_iterate(fs, dib, base_max(cookie, 2ull), rd_cb, &r);
	if (ret > 0)
		ret = 0;
put:
	meta_put(fs, dib);
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

int vmfs_setattr(struct vmfs *fs, uint64_t ino, const struct vmfs_stat *in, unsigned flags, struct vmfs_stat *out)
{
	struct vinode *vi = NULL;
	struct vmfs_inode_disk *d;
	struct vbuf *ib;
	le64 now = cpu_to_le64((uint64_t)base_real_ns());
	int ret;

	if (fs->ro)
		return -EROFS;
	if (flags & VMFS_SET_SIZE) {
		vi = vinode_pin(fs, ino);
		if (!vi)
			return -ENOMEM;
		pthread_rwlock_wrlock(&vi->iolock);
	}
	ret = op_begin(fs);
	if (!ret)
		ret = inode_read(fs, ino, &ib);
	if (ret)
		goto out;
	d = ib_inode(ib);
	ret = le32_to_cpu(d->i_flags) & VMFS_IF_SNAPSHOT ? -EROFS : meta_dirty(fs, ib); /* a snapshot never changes */
	if (!ret)
		times_apply(fs, ib); /* a deferred write time first: what is set here comes after it */
	if (!ret && (flags & VMFS_SET_SIZE)) {
		if (S_ISDIR(le32_to_cpu(d->i_mode)))
			ret = -EISDIR;
		else if (in->size > (64ull << 40) * 4)
			ret = -EFBIG;
		else
			ret = file_truncate(fs, ino, in->size);
	}
	if (!ret) {
		if (flags & VMFS_SET_MODE)
			d->i_mode = cpu_to_le32((le32_to_cpu(d->i_mode) & S_IFMT) | (in->mode & 07777));
		if (flags & VMFS_SET_UID)
			d->i_uid = cpu_to_le32(in->uid);
		if (flags & VMFS_SET_GID)
			d->i_gid = cpu_to_le32(in->gid);
		if (flags & VMFS_SET_ATIME_NOW)
			d->i_atime = now;
		else if (flags & VMFS_SET_ATIME)
			d->i_atime = cpu_to_le64((uint64_t)in->atime_ns);
		if (flags & VMFS_SET_MTIME_NOW)
			d->i_mtime = now;
		else if (flags & VMFS_SET_MTIME)
			d->i_mtime = cpu_to_le64((uint64_t)in->mtime_ns);
		d->i_ctime = flags & VMFS_SET_CTIME ? cpu_to_le64((uint64_t)in->ctime_ns) : now;
		if (out)
			inode_to_stat(fs, ib, out);
	}
	meta_put(fs, ib);
out:
	ret = op_end(fs, ret);
	if (vi) {
		pthread_rwlock_unlock(&vi->iolock);
		vinode_unpin(fs, vi);
	}
	return ret;
}

int vmfs_resolve(struct vmfs *fs, const char *path, uint64_t *ino)
{
	char comp[VMFS_NAME_MAX + 1];
	uint64_t cur = fs->root_ino;
	const char *p = path;

	if (!path || !*path)
		return -EINVAL;
	while (*p) {
		struct vmfs_stat st;
		size_t n;
		int ret;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (!n)
			break;
		if (n > VMFS_NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = 0;
		p += n;
		ret = vmfs_lookup(fs, cur, comp, &st);
		if (ret)
			return ret;
		vmfs_forget(fs, st.ino, 1);
		cur = st.ino;
	}
	*ino = cur;
	return 0;
}

/* ---- naming an inode (vmfsctl locks) ------------------------------------------------- */

struct name_find {
	uint64_t ino;
	char name[VMFS_NAME_MAX + 1];
	bool found;
};

static int name_find_fill(void *ctx, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
			  uint64_t next_cookie)
{
	struct name_find *f = ctx;

	(void)dtype;
	(void)next_cookie;
	if (ino != f->ino || (namelen <= 2 && name[0] == '.' && (namelen == 1 || name[1] == '.')))
		return 0;
	memcpy(f->name, name, namelen);
	f->name[namelen] = 0;
	f->found = true;
	return 1;
}

/* The directory an inode was created in or moved to (docs/FORMAT.md, i_parent). */
static int parent_of(struct vmfs *fs, uint64_t ino, uint64_t *parent)
{
	struct vbuf *ib;
	int ret = fs_enter(fs, false);

	if (ret)
		return ret;
	ret = inode_read(fs, ino, &ib);
	if (!ret) {
		*parent = le64_to_cpu(ib_inode(ib)->i_parent);
		meta_put(fs, ib);
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

int vmfs_path(struct vmfs *fs, uint64_t ino, char *buf, size_t len)
{
	char *end = buf + len, *p = end;

	if (len < 2)
		return -ENAMETOOLONG;
	*--p = 0;
	for (unsigned depth = 0; ino != fs->root_ino; depth++) {
		struct name_find f = { .ino = ino };
		uint64_t parent;
		size_t n;
		int ret = depth < 4096 ? parent_of(fs, ino, &parent) : -ELOOP;

		if (!ret)
			ret = vmfs_readdir(fs, parent, 0, name_find_fill, &f);
		if (ret)
			return ret;
		if (!f.found)
			return -ENOENT; /* unlinked, or its only name is elsewhere: a hard link moved away */
		n = strlen(f.name);
		if ((size_t)(p - buf) < n + 2)
			return -ENAMETOOLONG;
		p -= n;
		memcpy(p, f.name, n);
		*--p = '/';
		ino = parent;
	}
	if (p == end - 1)
		*--p = '/';
	memmove(buf, p, (size_t)(end - p));
	return 0;
}
