/*
 * vmfs-mount: serves a vmfs datastore through the FUSE low-level API. FUSE inode
 * numbers are vmfs inode numbers, except that FUSE_ROOT_ID stands for the root
 * directory both ways (vmfs inode numbers are block addresses and never 1). Every
 * entry the kernel is told about holds one libvmfs reference, dropped by forget,
 * so an unlinked open file lives until the kernel lets go of it. Permissions are
 * checked by the kernel (default_permissions); the page cache is write-through.
 */
#define FUSE_USE_VERSION 314

#include "base/cli.h"
#include "tools/mount_ring.h"
#include "tools/mount_pid.h"
#include "tools/mount_ctl.h"
#include "tools/mount_snap.h"
#include "snapshot/snapshot.h"
#include "vmfs/vmfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-daemon.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

/* Exit codes of mount(8). */
enum {
	EXIT_USAGE = 1,
	EXIT_SYSTEM = 2,
	EXIT_KEY = 3,             /* the key or passphrase opens no keyslot (vmfsctl's too) */
	EXIT_MOUNT = 32,
};

#define TIMEOUT 0.5 /* other hosts' changes show within this plus a lock hand-over */
#define MAX_WRITE (1u << 20)

struct vmount {
	struct fuse_session *se;
	struct vmfs *fs;
	uint64_t root;
	struct fuse_ring *ring;   /* FUSE over io_uring, when the kernel has it */
	const struct mount_opts *mo;
};

struct mount_opts;
static void report_at(const struct mount_opts *mo, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct vmount *vm_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static uint64_t to_vmfs(struct vmount *vm, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? vm->root : ino;
}

static fuse_ino_t to_fuse(struct vmount *vm, uint64_t ino)
{
	return ino == vm->root ? FUSE_ROOT_ID : ino;
}

/* DIR/.snapshots (tools/mount_snap.h) is read-only: a change in or to it gets EROFS. True when it replied. */
static bool refuse_snapdir(fuse_req_t req, fuse_ino_t a, fuse_ino_t b)
{
	if (!mount_is_snapdir(a) && !mount_is_snapdir(b))
		return false;
	fuse_reply_err(req, EROFS);
	return true;
}

static struct timespec ns_to_ts(int64_t ns)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;

	if (rem < 0) {
		sec--;
		rem += 1000000000;
	}
	return (struct timespec){ .tv_sec = sec, .tv_nsec = rem };
}

/* libvmfs keeps int64 nanoseconds, years 1677 to 2262: clamp what lies beyond. */
static int64_t ts_to_ns(struct timespec ts)
{
	if (ts.tv_sec >= INT64_MAX / 1000000000)
		return INT64_MAX;
	if (ts.tv_sec <= INT64_MIN / 1000000000)
		return INT64_MIN;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stat_fill(struct vmount *vm, const struct vmfs_stat *vs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = to_fuse(vm, vs->ino);
	st->st_mode = vs->mode;
	st->st_nlink = vs->nlink;
	st->st_uid = vs->uid;
	st->st_gid = vs->gid;
	st->st_size = vs->size;
	st->st_blocks = vs->blocks;
	st->st_blksize = vs->blksize;
	st->st_atim = ns_to_ts(vs->atime_ns);
	st->st_mtim = ns_to_ts(vs->mtime_ns);
	st->st_ctim = ns_to_ts(vs->ctime_ns);
	st->st_rdev = makedev(vs->rdev_major, vs->rdev_minor);
}

static void entry_fill(struct vmount *vm, const struct vmfs_stat *vs, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = to_fuse(vm, vs->ino);
	e->generation = vs->gen;
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	stat_fill(vm, vs, &e->attr);
}

/* Replies to a call that took a reference; drops it if the kernel never got it. */
static void reply_entry(fuse_req_t req, int ret, const struct vmfs_stat *vs)
{
	struct vmount *vm = vm_of(req);
	struct fuse_entry_param e;

	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	entry_fill(vm, vs, &e);
	if (fuse_reply_entry(req, &e))
		vmfs_forget(vm->fs, vs->ino, 1);
}

static void reply_attr(fuse_req_t req, int ret, const struct vmfs_stat *vs)
{
	struct stat st;

	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	stat_fill(vm_of(req), vs, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

/*
 * Owner of a new inode in dir: the caller's fsuid and fsgid, except that a
 * set-group-ID directory hands down its group, and to new directories its bit.
 */
static int new_owner(fuse_req_t req, uint64_t dir, uint32_t *mode, uint32_t *uid, uint32_t *gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vmfs_stat ds;
	int ret;

	ret = vmfs_getattr(vm_of(req)->fs, dir, &ds);
	if (ret < 0)
		return ret;
	*uid = ctx->uid;
	*gid = ctx->gid;
	if (ds.mode & S_ISGID) {
		*gid = ds.gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	return 0;
}

/* ---- session ----------------------------------------------------------------- */

static void vm_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vmount *vm = userdata;

	if (vm->ring)
		fuse_ring_init_pending();
	if (conn->max_write > MAX_WRITE)
		conn->max_write = MAX_WRITE;
	/*
	 * libfuse turns these on by default. Off: O_TRUNC then arrives as a
	 * setattr, the kernel clears set-user-ID bits itself through setattr,
	 * and every write reaches libvmfs before write(2) returns.
	 */
	conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV |
			FUSE_CAP_WRITEBACK_CACHE);
	/*
	 * The kernel keeps at most max_background asynchronous requests (a VM's
	 * O_DIRECT aio) in flight to us, 12 by default: room for a queue depth of 64.
	 */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void vm_destroy(void *userdata)
{
	struct vmount *vm = userdata;

	vmfs_sync(vm->fs);
}

/* ---- names ------------------------------------------------------------------- */

static void vm_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmount *vm = vm_of(req);
	struct vmfs_stat vs;
	int ret;

	if (mount_is_snapdir(parent)) { /* FILE@NAME */
		reply_entry(req, snapdir_lookup(vm->fs, parent & ~MOUNT_SNAPDIR, name, &vs), &vs);
		return;
	}
	ret = vmfs_lookup(vm->fs, to_vmfs(vm, parent), name, &vs);
	if (ret == -ENOENT && !strcmp(name, MOUNT_SNAPDIR_NAME)) { /* a real .snapshots hides the view */
		struct fuse_entry_param e;

		ret = snapdir_stat(vm->fs, to_vmfs(vm, parent), &vs);
		if (ret) {
			fuse_reply_err(req, ret == -ENOTDIR ? ENOENT : -ret);
			return;
		}
		entry_fill(vm, &vs, &e); /* no reference to take: the view is made on each request */
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, ret, &vs);
}

static void vm_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct vmount *vm = vm_of(req);

	if (!mount_is_snapdir(ino))
		vmfs_forget(vm->fs, to_vmfs(vm, ino), nlookup);
	fuse_reply_none(req);
}

static void vm_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vmount *vm = vm_of(req);

	for (size_t i = 0; i < count; i++)
		if (!mount_is_snapdir(forgets[i].ino))
			vmfs_forget(vm->fs, to_vmfs(vm, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void vm_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	struct vmfs_stat vs;

	(void)fi;
	if (mount_is_snapdir(ino))
		reply_attr(req, snapdir_stat(vm->fs, ino & ~MOUNT_SNAPDIR, &vs), &vs);
	else
		reply_attr(req, vmfs_getattr(vm->fs, to_vmfs(vm, ino), &vs), &vs);
}

static void vm_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	static const struct {
		int fuse;
		unsigned vmfs;
	} map[] = {
		{ FUSE_SET_ATTR_MODE, VMFS_SET_MODE },	   { FUSE_SET_ATTR_UID, VMFS_SET_UID },
		{ FUSE_SET_ATTR_GID, VMFS_SET_GID },	   { FUSE_SET_ATTR_SIZE, VMFS_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, VMFS_SET_ATIME },   { FUSE_SET_ATTR_MTIME, VMFS_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, VMFS_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, VMFS_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, VMFS_SET_CTIME },
	};
	struct vmount *vm = vm_of(req);
	struct vmfs_stat in = {
		.mode = attr->st_mode,
		.uid = attr->st_uid,
		.gid = attr->st_gid,
		.size = attr->st_size,
		.atime_ns = ts_to_ns(attr->st_atim),
		.mtime_ns = ts_to_ns(attr->st_mtim),
		.ctime_ns = ts_to_ns(attr->st_ctim),
	}, out;
	unsigned flags = 0;

	if (refuse_snapdir(req, ino, ino))
		return;

	(void)fi;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (to_set & map[i].fuse)
			flags |= map[i].vmfs;
	/* The kernel sends ATIME with ATIME_NOW: "now" wins. */
	if (flags & VMFS_SET_ATIME_NOW)
		flags &= ~VMFS_SET_ATIME;
	if (flags & VMFS_SET_MTIME_NOW)
		flags &= ~VMFS_SET_MTIME;
	reply_attr(req, vmfs_setattr(vm->fs, to_vmfs(vm, ino), &in, flags, &out), &out);
}

static void vm_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vmount *vm = vm_of(req);
	char buf[PATH_MAX + 1];
	ssize_t n;

	n = vmfs_readlink(vm->fs, to_vmfs(vm, ino), buf, sizeof(buf) - 1);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	buf[n] = 0;
	fuse_reply_readlink(req, buf);
}

static void vm_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct vmount *vm = vm_of(req);
	uint64_t dir = to_vmfs(vm, parent);
	uint32_t m = mode, uid, gid;
	struct vmfs_stat vs;
	int ret;

	if (refuse_snapdir(req, parent, parent))
		return;

	ret = new_owner(req, dir, &m, &uid, &gid);
	if (!ret)
		ret = vmfs_mknod_dev(vm->fs, dir, name, m, major(rdev), minor(rdev), uid, gid, &vs);
	reply_entry(req, ret, &vs);
}

static void vm_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vmount *vm = vm_of(req);
	uint64_t dir = to_vmfs(vm, parent);
	uint32_t m = S_IFDIR | (mode & 07777), uid, gid;
	struct vmfs_stat vs;
	int ret;

	if (refuse_snapdir(req, parent, parent))
		return;

	ret = new_owner(req, dir, &m, &uid, &gid);
	if (!ret)
		ret = vmfs_mkdir(vm->fs, dir, name, m, uid, gid, &vs);
	reply_entry(req, ret, &vs);
}

static void vm_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct vmount *vm = vm_of(req);
	uint64_t dir = to_vmfs(vm, parent);
	uint32_t m = S_IFLNK | 0777, uid, gid;
	struct vmfs_stat vs;
	int ret;

	if (refuse_snapdir(req, parent, parent))
		return;

	ret = new_owner(req, dir, &m, &uid, &gid);
	if (!ret)
		ret = vmfs_symlink(vm->fs, dir, name, target, uid, gid, &vs);
	reply_entry(req, ret, &vs);
}

static void vm_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vmount *vm = vm_of(req);
	struct vmfs_stat vs;
	int ret;

	if (refuse_snapdir(req, ino, newparent))
		return;

	ret = vmfs_link(vm->fs, to_vmfs(vm, ino), to_vmfs(vm, newparent), newname, &vs);
	reply_entry(req, ret, &vs);
}

static void vm_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmount *vm = vm_of(req);

	if (refuse_snapdir(req, parent, parent))
		return;
	fuse_reply_err(req, -vmfs_unlink(vm->fs, to_vmfs(vm, parent), name));
}

static void vm_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmount *vm = vm_of(req);

	if (refuse_snapdir(req, parent, parent))
		return;
	fuse_reply_err(req, -vmfs_rmdir(vm->fs, to_vmfs(vm, parent), name));
}

static void vm_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct vmount *vm = vm_of(req);
	unsigned vflags = 0;

	if (refuse_snapdir(req, parent, newparent))
		return;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		vflags |= VMFS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		vflags |= VMFS_RENAME_EXCHANGE;
	fuse_reply_err(req, -vmfs_rename(vm->fs, to_vmfs(vm, parent), name,
					 to_vmfs(vm, newparent), newname, vflags));
}

/* ---- files ------------------------------------------------------------------- */

/*
 * A file open for writing holds its cluster lock exclusive, for reading shared
 * (vmfs_file_lock: per host, counted); another host in the way gives EBUSY and
 * the daemon says who. fi->fh remembers that release must let go.
 */
static int open_lock(struct vmount *vm, uint64_t ino, struct fuse_file_info *fi)
{
	char who[200] = "";
	int ret = vmfs_file_lock(vm->fs, ino, (fi->flags & O_ACCMODE) == O_RDONLY ? VMFS_LOCK_SH : VMFS_LOCK_EX,
				 who, sizeof(who));

	if (ret == -EBUSY) /* to syslog once daemonized: stderr is /dev/null then */
		report_at(vm->mo, LOG_WARNING, "inode %llu: locked by %s", (unsigned long long)ino, who);
	fi->fh = ret ? 0 : 1;
	return ret;
}

/*
 * fuse_reply_open() plus FOPEN_PARALLEL_DIRECT_WRITES: without it the kernel
 * holds the inode lock across each O_DIRECT write, so a VM disk's writes reach
 * us one at a time whatever the queue depth (libvmfs orders them itself: the
 * iolock is shared only for overwrites that change no metadata). libfuse 3.14
 * (Debian 12) has no field for the flag, so the reply is built as libfuse
 * builds it, from the protocol's struct; kernels before 6.2 ignore the flag
 * and extending writes stay serialized by the kernel either way.
 */
static int reply_open_parallel(fuse_req_t req, const struct fuse_file_info *fi)
{
	struct fuse_open_out out = { .fh = fi->fh, .open_flags = FOPEN_PARALLEL_DIRECT_WRITES };

	if (fi->direct_io)
		out.open_flags |= FOPEN_DIRECT_IO;
	if (fi->keep_cache)
		out.open_flags |= FOPEN_KEEP_CACHE;
	if (fi->nonseekable)
		out.open_flags |= FOPEN_NONSEEKABLE;
	return fuse_reply_buf(req, (const char *)&out, sizeof(out));
}

static void vm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	struct vmfs_stat vs;
	int ret = 0;

	if ((fi->flags & O_ACCMODE) != O_RDONLY && !vmfs_getattr(vm->fs, to_vmfs(vm, ino), &vs) && vs.snapshot)
		ret = -EROFS; /* FILE@NAME in DIR/.snapshots */
	if (!ret)
		ret = open_lock(vm, to_vmfs(vm, ino), fi);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	/* libvmfs takes any alignment, O_DIRECT included */
	fi->keep_cache = 0;
	if (reply_open_parallel(req, fi))
		vmfs_file_unlock(vm->fs, to_vmfs(vm, ino));
}

static void vm_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void vm_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	uint64_t dir = to_vmfs(vm, parent);
	uint32_t m = S_IFREG | (mode & 07777), uid, gid;
	struct fuse_entry_param e;
	struct vmfs_stat vs;
	int ret;

	if (refuse_snapdir(req, parent, parent))
		return;

	ret = new_owner(req, dir, &m, &uid, &gid);
	if (!ret)
		ret = vmfs_mknod(vm->fs, dir, name, m, uid, gid, &vs);
	/* The name may have appeared since the kernel looked (another host). */
	if (ret == -EEXIST && !(fi->flags & O_EXCL)) {
		ret = vmfs_lookup(vm->fs, dir, name, &vs);
		if (!ret && !S_ISREG(vs.mode)) {
			vmfs_forget(vm->fs, vs.ino, 1);
			ret = S_ISDIR(vs.mode) ? -EISDIR : -EEXIST;
		}
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = open_lock(vm, vs.ino, fi);
	if (ret) {
		vmfs_forget(vm->fs, vs.ino, 1);
		fuse_reply_err(req, -ret);
		return;
	}
	entry_fill(vm, &vs, &e);
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi)) {
		vmfs_file_unlock(vm->fs, vs.ino);
		vmfs_forget(vm->fs, vs.ino, 1);
	}
}

static void vm_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	void *buf;
	ssize_t n;

	(void)fi;
	if (posix_memalign(&buf, 4096, size ? size : 1)) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = vmfs_pread(vm->fs, to_vmfs(vm, ino), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void vm_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	ssize_t n;

	(void)fi;
	n = vmfs_pwrite(vm->fs, to_vmfs(vm, ino), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, n);
}

/* copy_file_range (cp within the datastore): whole blocks are shared, not copied (vmfs_copy_range). */
static void vm_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct vmount *vm = vm_of(req);
	ssize_t n;

	if (refuse_snapdir(req, ino_out, ino_out))
		return;

	(void)fi_in;
	(void)fi_out;
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = vmfs_copy_range(vm->fs, to_vmfs(vm, ino_in), (uint64_t)off_in, to_vmfs(vm, ino_out), (uint64_t)off_out, len);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/*
 * After a change made here: a revert drops the kernel's cached pages of the
 * file; a snapshot made or deleted drops DIR/.snapshots/FILE@NAME from its
 * dentry cache. (Another host's changes show after the attribute timeout.)
 */
static void snap_forget_cached(struct vmount *vm, const char *path, uint64_t ino, const char *snap)
{
	const char *slash = strrchr(path, '/');
	char dir[1024], entry[600];
	uint64_t dino;

	if (!snap) {
		fuse_lowlevel_notify_inval_inode(vm->se, to_fuse(vm, ino), 0, 0);
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	if (vmfs_resolve(vm->fs, dir[0] ? dir : "/", &dino))
		return;
	snprintf(entry, sizeof(entry), "%s@%s", slash ? slash + 1 : path, snap);
	fuse_lowlevel_notify_inval_entry(vm->se, dino | MOUNT_SNAPDIR, entry, strlen(entry));
}

/* vmfsctl rekey --deep through the mount: one snap_rekey call with this daemon's handle and locks. */
static void mount_rekey(fuse_req_t req, struct vmfs *fs, const void *in)
{
	struct vmfs_mount_rekey r;
	struct snap_rekey_progress p;
	size_t cursor;

	memcpy(&r, in, sizeof(r));
	r.path[sizeof(r.path) - 1] = 0;
	r.err[0] = 0;
	cursor = (size_t)r.cursor;
	r.result = snap_rekey(fs, r.path, r.all != 0, r.max_bytes, &cursor, &p, r.err, sizeof(r.err));
	r.cursor = cursor;
	r.files = p.files;
	r.file = p.file;
	r.done = p.done;
	r.size = p.size;
	r.all_done = p.all_done;
	r.dirs = (uint32_t)p.dirs;
	snprintf(r.name, sizeof(r.name), "%s", p.name);
	fuse_reply_ioctl(req, 0, &r, sizeof(r));
}

/*
 * vmfsctl snapshot/clone through the mount (tools/mount_ctl.h): run with this
 * daemon's own handle, which holds the locks of the files it has open. After
 * a change the kernel's cached pages or view entries of the files are dropped.
 */
static void vm_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct vmount *vm = vm_of(req);
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct vmfs_mount_ctl c;
	char *e = c.err;
	size_t el = sizeof(c.err);

	(void)ino;
	(void)arg;
	(void)fi;
	(void)flags;
	if (who->uid != 0 && (cmd == VMFS_IOC_SNAP || cmd == VMFS_IOC_REKEY)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (cmd == VMFS_IOC_REKEY && in_bufsz >= sizeof(struct vmfs_mount_rekey) &&
	    out_bufsz >= sizeof(struct vmfs_mount_rekey)) {
		mount_rekey(req, vm->fs, in_buf);
		return;
	}
	if (cmd != VMFS_IOC_SNAP || in_bufsz < sizeof(c) || out_bufsz < sizeof(c)) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	memcpy(&c, in_buf, sizeof(c));
	c.path[sizeof(c.path) - 1] = c.name[sizeof(c.name) - 1] = c.dst[sizeof(c.dst) - 1] = 0;
	c.err[0] = 0;
	c.result = snap_run(vm->fs, (enum snap_op)c.op, c.path, c.name, c.dst, e, el); /* durable on return */
	if (!c.result && c.op != SNAP_CLONE) { /* what the kernel cached of the old content or the view goes */
		struct snap_files f;
		char ignore[8];

		if (!snap_files_get(vm->fs, c.path, &f, ignore, sizeof(ignore))) {
			for (size_t i = 0; i < f.n; i++)
				snap_forget_cached(vm, f.name[i], f.ino[i], c.op == SNAP_REVERT ? NULL : c.name);
			snap_files_release(&f);
		}
	}
	fuse_reply_ioctl(req, 0, &c, sizeof(c));
}

/* flush: nothing is buffered here. */
static void vm_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* release: the open's file lock goes (the last one on this host lets the cluster lock go). */
static void vm_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);

	if (fi->fh)
		vmfs_file_unlock(vm->fs, to_vmfs(vm, ino));
	fuse_reply_err(req, 0);
}

static void vm_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);

	(void)fi;
	fuse_reply_err(req, -vmfs_fsync(vm->fs, to_vmfs(vm, ino), datasync));
}

static void vm_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);

	if (refuse_snapdir(req, ino, ino))
		return;

	(void)fi;
	fuse_reply_err(req, -vmfs_fallocate(vm->fs, to_vmfs(vm, ino), mode, off, len));
}

static void vm_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	uint64_t pos;
	int ret;

	(void)fi;
	/* The kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself. */
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ret = vmfs_lseek(vm->fs, to_vmfs(vm, ino), off, whence, &pos);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_lseek(req, pos);
}

/* ---- directories ---------------------------------------------------------------- */

struct dir_fill {
	fuse_req_t req;
	struct vmount *vm;
	char *buf;
	size_t size, used;
	int err;
};

/* Adds one entry; stops, without it, when it does not fit. Its cookie resumes after it. */
static int dir_fill_one(void *ctx, const char *name, size_t namelen, uint64_t ino,
			uint32_t dtype, uint64_t next_cookie)
{
	struct dir_fill *d = ctx;
	struct stat st = { .st_ino = to_fuse(d->vm, ino), .st_mode = DTTOIF(dtype) };
	char cname[NAME_MAX + 1];
	size_t len;

	if (namelen > NAME_MAX) {
		d->err = -ENAMETOOLONG;
		return 1;
	}
	memcpy(cname, name, namelen);
	cname[namelen] = 0;
	len = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, cname, &st,
				next_cookie);
	if (len > d->size - d->used)
		return 1;
	d->used += len;
	return 0;
}

/* DIR/.snapshots: ".", "..", then each FILE@NAME; entry i's cookie is i + 1 (the list is made again each time). */
static int snapdir_fill(struct dir_fill *d, uint64_t dir, off_t off)
{
	char **names;
	uint64_t *inos;
	size_t n;
	int ret = snapdir_list(d->vm->fs, dir, &names, &inos, &n);

	if (ret)
		return ret;
	for (size_t i = (size_t)off; i < n + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." : names[i - 2];
		uint64_t ino = i == 0 ? dir | MOUNT_SNAPDIR : i == 1 ? dir : inos[i - 2];

		if (dir_fill_one(d, name, strlen(name), ino, i < 2 ? DT_DIR : DT_REG, i + 1))
			break;
	}
	snapdir_list_free(names, inos, n);
	return 0;
}

static void vm_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct vmount *vm = vm_of(req);
	struct dir_fill d = { .req = req, .vm = vm, .size = size };
	int ret;

	(void)fi;
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (mount_is_snapdir(ino))
		ret = snapdir_fill(&d, ino & ~MOUNT_SNAPDIR, off);
	else
		ret = vmfs_readdir(vm->fs, to_vmfs(vm, ino), off, dir_fill_one, &d);
	if (ret >= 0)
		ret = d.err;
	/* Entries already gathered are worth more than the error after them. */
	if (ret < 0 && !d.used)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void vm_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	vm_fsync(req, ino, datasync, fi);
}

static void vm_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vmount *vm = vm_of(req);
	struct vmfs_statfs vst;
	struct statvfs st = { 0 };
	int ret;

	(void)ino;
	ret = vmfs_statfs(vm->fs, &vst);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	st.f_bsize = vst.bsize;
	st.f_frsize = vst.bsize;
	st.f_blocks = vst.blocks;
	st.f_bfree = vst.bfree;
	st.f_bavail = vst.bavail;
	st.f_files = vst.files;
	st.f_ffree = vst.ffree;
	st.f_favail = vst.ffree;
	st.f_namemax = vst.namemax;
	fuse_reply_statfs(req, &st);
}

/* opendir, releasedir: no per-open state. */
static const struct fuse_lowlevel_ops vm_ops = {
	.init = vm_init,
	.destroy = vm_destroy,
	.lookup = vm_lookup,
	.forget = vm_forget,
	.forget_multi = vm_forget_multi,
	.getattr = vm_getattr,
	.setattr = vm_setattr,
	.readlink = vm_readlink,
	.mknod = vm_mknod,
	.mkdir = vm_mkdir,
	.unlink = vm_unlink,
	.rmdir = vm_rmdir,
	.symlink = vm_symlink,
	.rename = vm_rename,
	.link = vm_link,
	.open = vm_open,
	.read = vm_read,
	.write = vm_write,
	.copy_file_range = vm_copy_file_range,
	.ioctl = vm_ioctl,
	.flush = vm_flush,
	.release = vm_release,
	.fsync = vm_fsync,
	.opendir = vm_opendir,
	.readdir = vm_readdir,
	.releasedir = vm_flush,
	.fsyncdir = vm_fsyncdir,
	.statfs = vm_statfs,
	.create = vm_create,
	.fallocate = vm_fallocate,
	.lseek = vm_lseek,
};

/* ---- startup ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [-f] [-d] [-o OPT[,OPT...]] DEVICE MOUNTPOINT\n"
		   "       %s -u MOUNTPOINT\n", tool_name, tool_name);
}

static void help(void)
{
	usage(stdout);
	printf("\n"
	       "  -f            stay in the foreground\n"
	       "  -d            print FUSE requests (implies -f)\n"
	       "  -u            unmount MOUNTPOINT and wait until its daemon has written\n"
	       "                everything, left the cluster and exited\n"
	       "  -o ro         mount read-only; nothing is written to DEVICE\n"
	       "  -o allow_other  let other users in (POSIX permissions still apply)\n"
	       "  -o commit=MS  commit metadata at most MS milliseconds late (default 1000)\n"
	       "  -o watchdog=DEV  pet watchdog DEV (e.g. /dev/watchdog) at each heartbeat: a host\n"
	       "                that cannot renew its heartbeat is reset before others take over\n"
	       "  -o no_uring   serve through /dev/fuse reads and writes even where the kernel\n"
	       "                offers FUSE over io_uring (fuse module parameter enable_uring=Y)\n"
	       "  -o key-file=F, -o passphrase-file=F, -o keycmd=PROG\n"
	       "                unlock an encrypted datastore with a key file, a passphrase file\n"
	       "                or what PROG prints (a KMS or TPM client); without one, the\n"
	       "                passphrase is asked on the terminal\n"
	       "  -o OPT        any other option goes to FUSE\n"
	       "  -h, --help    print this help and exit\n"
	       "  --version     print the version and exit\n"
	       "\n"
	       "exit: 0 mounted, 1 bad usage, 2 system error, 3 the key or passphrase opens no\n"
	       "keyslot, 32 mount failure\n");
}

struct mount_opts {
	bool foreground, debug, readonly, no_uring, unmount;
	unsigned commit_ms;
	char *watchdog;           /* -o watchdog=DEV, or NULL */
	char *key_file, *passphrase_file, *keycmd; /* -o key-file= ... */
	struct enc_secret *secret;/* read before daemonizing (a prompt needs the terminal) */
	char *fuse_opts;          /* comma-separated, for fuse_session_new() */
	char *device;             /* absolute: the daemon runs in / */
	const char *mountpoint;
	struct mount_pid pidf;    /* the run file, held from before the open until exit */
};

/* Splits one -o list: ours are taken out (ro and allow_other go to FUSE too). */
static int opts_parse_list(struct mount_opts *mo, const char *list)
{
	char *copy = strdup(list), *save = NULL, *opt;
	uint64_t ms;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (!strncmp(opt, "commit=", 7)) {
			if (!tool_parse_u64(opt + 7, &ms) || ms > UINT_MAX) {
				tool_err("bad commit interval '%s': expected milliseconds", opt + 7);
				ret = -EINVAL;
				break;
			}
			mo->commit_ms = ms;
			continue;
		}
		if (!strncmp(opt, "watchdog=", 9)) {
			free(mo->watchdog);
			mo->watchdog = strdup(opt + 9);
			if (!mo->watchdog || !mo->watchdog[0]) {
				tool_err("watchdog= needs a device path");
				ret = -EINVAL;
				break;
			}
			continue;
		}
		if (!strncmp(opt, "key-file=", 9) || !strncmp(opt, "passphrase-file=", 16) ||
		    !strncmp(opt, "keycmd=", 7)) {
			char **dst = opt[0] == 'k' && opt[3] == '-' ? &mo->key_file
				     : opt[0] == 'p'		    ? &mo->passphrase_file
								    : &mo->keycmd;
			free(*dst);
			*dst = strdup(strchr(opt, '=') + 1);
			if (!*dst || !**dst) {
				tool_err("%.*s needs a value", (int)(strchr(opt, '=') - opt + 1), opt);
				ret = -EINVAL;
				break;
			}
			continue;
		}
		if (!strcmp(opt, "no_uring")) {
			mo->no_uring = true;
			continue;
		}
		if (!strcmp(opt, "ro"))
			mo->readonly = true;
		else if (!strcmp(opt, "rw"))
			mo->readonly = false;
		if (fuse_opt_add_opt(&mo->fuse_opts, opt)) {
			ret = -ENOMEM;
			break;
		}
	}
	free(copy);
	return ret;
}

/* Returns 0, or an exit code with the reason printed. */
static int opts_parse(struct mount_opts *mo, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *fsname;
	int c;

	mo->commit_ms = 1000;
	while ((c = getopt_long(argc, argv, "fdo:hu", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			mo->unmount = true;
			break;
		case 'f':
			mo->foreground = true;
			break;
		case 'd':
			mo->debug = mo->foreground = true;
			break;
		case 'o':
			if (opts_parse_list(mo, optarg))
				return EXIT_USAGE;
			break;
		case 'h':
			help();
			return -1;
		case 'V':
			tool_version();
			return -1;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (mo->unmount) {
		if (argc - optind != 1) {
			tool_err("-u: want MOUNTPOINT only");
			usage(stderr);
			return EXIT_USAGE;
		}
		mo->mountpoint = argv[optind];
		return 0;
	}
	if (argc - optind != 2) {
		tool_err(argc - optind < 2 ? "missing DEVICE or MOUNTPOINT" : "too many arguments");
		usage(stderr);
		return EXIT_USAGE;
	}
	/* A device that cannot be resolved fails later, in vmfs_open(). */
	mo->device = realpath(argv[optind], NULL);
	if (!mo->device)
		mo->device = strdup(argv[optind]);
	if (!mo->device)
		return EXIT_SYSTEM;
	mo->mountpoint = argv[optind + 1];
	if (asprintf(&fsname, "fsname=%s", mo->device) < 0)
		return EXIT_SYSTEM;
	c = fuse_opt_add_opt(&mo->fuse_opts, "default_permissions") ||
	    fuse_opt_add_opt(&mo->fuse_opts, "subtype=vmfs") ||
	    fuse_opt_add_opt_escaped(&mo->fuse_opts, fsname);
	free(fsname);
	return c ? EXIT_SYSTEM : 0;
}

/*
 * What can be checked before the datastore is opened (a read-write open joins
 * the cluster: it writes a heartbeat claim): the mountpoint is a directory and
 * not the datastore itself, and the watchdog device exists and is writable.
 * The watchdog is not opened here: opening one arms it. Then it takes the
 * run file (mount_pid.c), which refuses a mountpoint another live vmfs-mount
 * serves. Returns 0, or an exit code with the reason printed.
 */
static int mount_preflight(struct mount_opts *mo)
{
	struct stat mst, dst, wst;

	if (stat(mo->mountpoint, &mst)) {
		tool_err("%s: %s (want a directory to mount on)", mo->mountpoint, strerror(errno));
		return EXIT_MOUNT;
	}
	if (!stat(mo->device, &dst) && dst.st_dev == mst.st_dev && dst.st_ino == mst.st_ino) {
		tool_err("%s: the mountpoint is the datastore itself (want a directory)", mo->mountpoint);
		return EXIT_MOUNT;
	}
	if (!S_ISDIR(mst.st_mode)) {
		tool_err("%s: not a directory", mo->mountpoint);
		return EXIT_MOUNT;
	}
	if (mo->watchdog && (stat(mo->watchdog, &wst) || access(mo->watchdog, W_OK))) {
		tool_err("watchdog %s: %s", mo->watchdog, strerror(errno));
		return EXIT_MOUNT;
	}
	if (mo->watchdog && S_ISDIR(wst.st_mode)) {
		tool_err("watchdog %s: is a directory (want a watchdog device)", mo->watchdog);
		return EXIT_MOUNT;
	}
	return mount_pid_claim(mo->mountpoint, &mo->pidf) ? EXIT_MOUNT : 0;
}

/*
 * The key of an encrypted datastore, before daemonizing: a prompt needs the
 * terminal, which the daemon leaves. A datastore the options give no key
 * for is probed (a read-only open: nothing written, no cluster join); an
 * encrypted one then asks on the terminal, or is refused: a host without the
 * key does not mount it. Returns 0 or an exit code with the reason printed.
 */
static int get_key(struct mount_opts *mo)
{
	struct enc_secret_src src = { mo->key_file, mo->passphrase_file, mo->keycmd };
	struct vmfs_open_opts oo = { .readonly = true };
	enum enc_secret_kind kind;
	struct vmfs_info info;
	struct vmfs *fs;
	char err[320];

	if (!enc_secret_src_set(&src)) {
		if (vmfs_open(mo->device, &oo, &fs, err, sizeof(err)))
			return 0; /* the real open says why */
		vmfs_get_info(fs, &info);
		vmfs_close(fs);
		if (!info.encrypted)
			return 0;
		if (!isatty(STDIN_FILENO)) {
			tool_err("%s is encrypted: give -o key-file=F, -o passphrase-file=F or -o keycmd=PROG", mo->device);
			return EXIT_MOUNT;
		}
	}
	if (enc_secret_get(&src, "Passphrase: ", false, &mo->secret, &kind, err, sizeof(err))) {
		tool_err("%s", err);
		return EXIT_MOUNT;
	}
	return 0;
}

/*
 * Forks into the background before anything starts a thread: libvmfs starts
 * its commit thread in vmfs_open(), and threads do not survive fork(), which
 * rules out fuse_daemonize() after the open. The parent waits for one status
 * byte from the child and returns it as its exit code (0 once mounted; an
 * error was already printed by the child, whose stderr is still ours). The
 * child gets -1 and the pipe's write end in *notify_fd.
 */
static int daemon_fork(int *notify_fd)
{
	unsigned char code = EXIT_MOUNT;
	int pfd[2];
	pid_t pid;

	if (pipe(pfd)) {
		tool_err("pipe: %s", strerror(errno));
		return EXIT_SYSTEM;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		tool_err("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return EXIT_SYSTEM;
	}
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &code, 1) != 1)
			code = EXIT_MOUNT;
		close(pfd[0]);
		return code;
	}
	close(pfd[0]);
	setsid();
	*notify_fd = pfd[1];
	return -1;
}

/* Tells the waiting parent how it went; once mounted, also lets go of the terminal. */
static void daemon_notify(int *notify_fd, unsigned char code)
{
	int null;

	if (*notify_fd < 0)
		return;
	if (!code) {
		if (chdir("/"))
			code = EXIT_SYSTEM;
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
	}
	if (write(*notify_fd, &code, 1) != 1)
		code = EXIT_SYSTEM;
	close(*notify_fd);
	*notify_fd = -1;
}

/*
 * What goes wrong after the mount (a damaged block, the lost heartbeat lease):
 * to stderr in the foreground, else to syslog, naming the device either way.
 */
static void report_at(const struct mount_opts *mo, int prio, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (mo->foreground)
		fprintf(stderr, "vmfs-mount: %s: %s\n", mo->device, line);
	else
		syslog(prio, "%s: %s", mo->device, line);
}

static void report_line(void *ctx, const char *line)
{
	report_at(ctx, LOG_ERR, "%s", line);
}

/* Opens, mounts and serves until unmounted or signalled; returns the exit code. */
static int serve(struct vmount *vm, const struct mount_opts *mo, int *notify_fd)
{
	struct vmfs_open_opts oo = { .readonly = mo->readonly, .commit_ms = mo->commit_ms, .watchdog = mo->watchdog,
				     .secret = mo->secret };
	struct fuse_loop_config *lc;
	char errbuf[256] = "", name[64], peer[64];
	unsigned peer_slot;
	int ret, code = 0;

	char *where = realpath(mo->mountpoint, NULL);

	mount_pid_write(&mo->pidf);
	vmfs_host_name(name, sizeof(name), where ? where : mo->mountpoint); /* tells it from other mounts here */
	free(where);
	oo.hostname = name;
	enc_secure_relock(mo->secret, sizeof(*mo->secret)); /* a daemon's lock was not inherited */
	ret = vmfs_open(mo->device, &oo, &vm->fs, errbuf, sizeof(errbuf));
	if (ret < 0) {
		/* libvmfs's reason names the device already. */
		if (errbuf[0])
			tool_err("%s", errbuf);
		else
			tool_err("%s: %s", mo->device, strerror(-ret));
		fuse_session_destroy(vm->se);
		vm->se = NULL;
		return ret == -EKEYREJECTED ? EXIT_KEY : EXIT_MOUNT;
	}
	vm->root = vmfs_root_ino(vm->fs);
	if (!mo->readonly && vmfs_peers_here(vm->fs, &peer_slot, peer, sizeof(peer)) > 0)
		tool_err("warning: %s is already open on this machine (slot %u: %s); this mount is another host of "
			 "the cluster, with its own journal and locks", mo->device, peer_slot, peer);
	if (!mo->foreground)
		openlog("vmfs-mount", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	vmfs_set_report(vm->fs, report_line, (void *)mo);
	if (fuse_session_mount(vm->se, mo->mountpoint)) {
		code = EXIT_MOUNT;
		goto err_close;
	}
	if (fuse_set_signal_handlers(vm->se)) {
		code = EXIT_SYSTEM;
		goto err_unmount;
	}
	if (!mo->no_uring && fuse_ring_available()) {
		vm->ring = fuse_ring_attach(vm->se, vm->fs, vm->root, report_line, (void *)mo);
		if (vm->ring)
			report_at(mo, LOG_INFO, "FUSE over io_uring");
	}
	lc = fuse_loop_cfg_create();
	if (!lc) {
		code = EXIT_SYSTEM;
		goto err_signals;
	}
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, getenv("VMFS_FUSE_THREADS") ? atoi(getenv("VMFS_FUSE_THREADS")) : 64);
	daemon_notify(notify_fd, 0);
	/* Under systemd (Type=notify, vmfs-mount -f): mounted and serving. A no-op elsewhere. */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s", mo->device, mo->mountpoint);

	/* 0 after fusermount3 -u, the signal number after SIGTERM and friends. */
	ret = fuse_session_loop_mt(vm->se, lc);
	sd_notify(0, "STOPPING=1");
	if (ret < 0) {
		report_at(mo, LOG_ERR, "%s: %s", mo->mountpoint, strerror(-ret));
		code = EXIT_SYSTEM;
	}
	fuse_loop_cfg_destroy(lc);
err_signals:
	fuse_remove_signal_handlers(vm->se);
err_unmount:
	fuse_session_unmount(vm->se);
	if (vm->ring) {
		report_at(mo, LOG_INFO, "FUSE over io_uring served %llu requests",
			  (unsigned long long)fuse_ring_stop(vm->ring));
		vm->ring = NULL;
	}
err_close:
	/* Destroying the session here runs vm_destroy() while fs is still open. */
	fuse_session_destroy(vm->se);
	vm->se = NULL;
	ret = vmfs_close(vm->fs);
	if (ret < 0) {
		report_at(mo, LOG_ERR, "close: %s", strerror(-ret));
		if (!code)
			code = EXIT_SYSTEM;
	}
	return code;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct mount_opts mo = { 0 };
	struct vmount vm = { 0 };
	int notify_fd = -1, code;

	tool_name = "vmfs-mount";
	mo.pidf.fd = -1;
	code = opts_parse(&mo, argc, argv);
	if (code)
		goto out_opts;
	if (mo.unmount) {
		code = mount_pid_unmount(mo.mountpoint);
		goto out_opts;
	}

	/* The session checks the FUSE options; it starts nothing yet. */
	if (fuse_opt_add_arg(&args, argv[0]) ||
	    (mo.debug && fuse_opt_add_arg(&args, "-d")) ||
	    fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, mo.fuse_opts)) {
		code = EXIT_SYSTEM;
		goto out_args;
	}
	vm.se = fuse_session_new(&args, &vm_ops, sizeof(vm_ops), &vm);
	if (!vm.se) {
		usage(stderr);
		code = EXIT_USAGE;
		goto out_args;
	}
	code = mount_preflight(&mo);
	if (!code)
		code = get_key(&mo);
	if (code) {
		fuse_session_destroy(vm.se);
		goto out_args;
	}
	if (!mo.foreground) {
		code = daemon_fork(&notify_fd);
		if (code >= 0) {
			/* The parent: the child serves, with its own copy. */
			fuse_session_destroy(vm.se);
			goto out_args;
		}
	}
	vm.mo = &mo;
	code = serve(&vm, &mo, &notify_fd);
	/* after vmfs_close: `vmfs-mount -u`, waiting on the run file's lock, returns now (P1) */
	mount_pid_release(&mo.pidf);
	daemon_notify(&notify_fd, code);
out_args:
	fuse_opt_free_args(&args);
out_opts:
	free(mo.fuse_opts);
	free(mo.device);
	free(mo.watchdog);
	free(mo.key_file);
	free(mo.passphrase_file);
	free(mo.keycmd);
	enc_secret_free(mo.secret);
	return code < 0 ? 0 : code;
}
