/*
 * The VM folder on a datastore, through libvmfs only: creating the folder and
 * its files (vm.conf, the kernel and initrd copied in, thin disk images) and
 * reading them back. A VM folder is /PARENT/NAME holding vm.conf and the files
 * vm.conf names; nothing outside the folder is ever referred to. Every name
 * lookup takes a reference that is dropped before returning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "vmfs/vmfs.h"
#include "vmm/config.h"
#include "vmm/store.h"

#define CONF_MAX (64u << 10)
#define COPY_CHUNK (1u << 20)

int vmm_store_lookup(struct vmfs *fs, uint64_t dir, const char *name, struct vmfs_stat *st)
{
	int ret = vmfs_lookup(fs, dir, name, st);

	if (!ret)
		vmfs_forget(fs, st->ino, 1);
	return ret;
}

int vmm_store_read_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t max, void **buf,
			size_t *len)
{
	struct vmfs_stat st;
	uint8_t *p;
	size_t done = 0;
	int ret;

	ret = vmm_store_lookup(fs, dir, name, &st);
	if (ret)
		return ret;
	if (!S_ISREG(st.mode))
		return -EISDIR;
	if (st.size > max)
		return -EFBIG;
	p = malloc(st.size ? st.size : 1);
	if (!p)
		return -ENOMEM;
	while (done < st.size) {
		ssize_t n = vmfs_pread(fs, st.ino, p + done, st.size - done, done);
		if (n < 0) {
			free(p);
			return (int)n;
		}
		if (n == 0)
			break;	/* truncated under us: take what is there */
		done += (size_t)n;
	}
	*buf = p;
	*len = done;
	return 0;
}

int vmm_store_read_conf(struct vmfs *fs, uint64_t dir, struct vmm_conf *c, char *err, size_t errlen)
{
	void *text;
	size_t len;
	int ret;

	ret = vmm_store_read_file(fs, dir, "vm.conf", CONF_MAX, &text, &len);
	if (ret)
		return ret;
	ret = vmm_conf_parse(c, text, len, err, errlen);
	free(text);
	return ret;
}

int vmm_store_mkdirs(struct vmfs *fs, const char *path, bool last_new, uint64_t *ino, unsigned *made)
{
	char buf[4096], *p, *slash;
	uint64_t dir = vmfs_root_ino(fs);
	struct vmfs_stat st;
	int ret = 0;

	*made = 0;
	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, path);
	for (p = buf + 1; *p; p = slash + 1) {
		bool last;

		slash = strchr(p, '/');
		if (slash)
			*slash = 0;
		last = !slash || !slash[1];
		if (*p) {
			ret = vmm_store_lookup(fs, dir, p, &st);
			if (ret == -ENOENT) {
				ret = vmfs_mkdir(fs, dir, p, 0755, 0, 0, &st);
				if (!ret) {
					vmfs_forget(fs, st.ino, 1);
					(*made)++;
				}
			} else if (!ret && last && last_new) {
				ret = -EEXIST;
			} else if (!ret && !S_ISDIR(st.mode)) {
				ret = -ENOTDIR;
			}
			if (ret)
				goto err_undo;
			dir = st.ino;
		}
		if (!slash)
			break;
	}
	*ino = dir;
	return 0;

err_undo:	/* the directories made so far are the last *made components of path before p */
	if (*made) {
		size_t len = (size_t)(p - 1 - buf);

		memcpy(buf, path, len);
		buf[len] = 0;
		if (!vmm_store_rmdirs(fs, buf, *made))
			*made = 0;
	}
	return ret;
}

int vmm_store_rmdirs(struct vmfs *fs, const char *path, unsigned n)
{
	char buf[4096], *slash;
	uint64_t parent;
	int ret;

	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, path);
	for (; n; n--) {
		slash = strrchr(buf, '/');
		if (!slash || !slash[1])
			return -EINVAL;
		*slash = 0;
		ret = vmfs_resolve(fs, buf[0] ? buf : "/", &parent);
		if (!ret)
			ret = vmfs_rmdir(fs, parent, slash + 1);
		if (ret)
			return ret;
	}
	return 0;
}

int vmm_store_new_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t *ino)
{
	struct vmfs_stat st;
	int ret = vmfs_mknod(fs, dir, name, S_IFREG | 0644, 0, 0, &st);

	if (ret)
		return ret;
	vmfs_forget(fs, st.ino, 1);
	*ino = st.ino;
	return 0;
}

int vmm_store_set_size(struct vmfs *fs, uint64_t ino, uint64_t size)
{
	struct vmfs_stat st = { .size = size };

	return vmfs_setattr(fs, ino, &st, VMFS_SET_SIZE, NULL);
}

int vmm_store_write(struct vmfs *fs, uint64_t dir, const char *name, const void *buf, size_t len)
{
	uint64_t ino;
	ssize_t n;
	int ret;

	ret = vmm_store_new_file(fs, dir, name, &ino);
	if (ret)
		return ret;
	n = vmfs_pwrite(fs, ino, buf, len, 0);
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

int vmm_store_copy_in(struct vmfs *fs, uint64_t dir, const char *name, int src_fd, bool sparse)
{
	uint8_t *buf;
	uint64_t ino, off = 0;
	int ret;

	ret = vmm_store_new_file(fs, dir, name, &ino);
	if (ret)
		return ret;
	buf = malloc(COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = pread(src_fd, buf, COPY_CHUNK, (off_t)off), w;

		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		if (!sparse || !base_all_zero(buf, (size_t)n)) {
			w = vmfs_pwrite(fs, ino, buf, (size_t)n, off);
			if (w != n) {
				ret = w < 0 ? (int)w : -EIO;
				break;
			}
		}
		off += (uint64_t)n;
	}
	free(buf);
	if (!ret)
		ret = vmm_store_set_size(fs, ino, off);
	return ret;
}

/* The subdirectories of one directory, gathered first: libvmfs calls may not nest in a readdir callback. */
struct subdirs {
	size_t n, cap;
	uint64_t *ino;
	char (*name)[256];
};

static int collect_dir(void *arg, const char *name, size_t namelen, uint64_t ino, uint32_t dtype,
		       uint64_t next_cookie)
{
	struct subdirs *sd = arg;

	(void)next_cookie;
	if (dtype != DT_DIR || namelen >= 256 || (namelen == 1 && name[0] == '.') ||
	    (namelen == 2 && !memcmp(name, "..", 2)))
		return 0;
	if (sd->n == sd->cap) {
		size_t cap = sd->cap ? sd->cap * 2 : 16;
		uint64_t *ino2 = realloc(sd->ino, cap * sizeof(*ino2));
		char(*name2)[256];

		if (!ino2)
			return -ENOMEM;
		sd->ino = ino2;
		name2 = realloc(sd->name, cap * sizeof(*name2));
		if (!name2)
			return -ENOMEM;
		sd->name = name2;
		sd->cap = cap;
	}
	memcpy(sd->name[sd->n], name, namelen);
	sd->name[sd->n][namelen] = 0;
	sd->ino[sd->n++] = ino;
	return 0;
}

static int walk_dir(struct vmfs *fs, uint64_t dir, const char *parent, int depth, vmm_store_walk_fn fn, void *arg)
{
	struct subdirs sd = { 0 };
	char path[4096], err[200];
	struct vmm_conf c;
	size_t i;
	int ret;

	ret = vmfs_readdir(fs, dir, 0, collect_dir, &sd);
	for (i = 0; !ret && i < sd.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", parent, sd.name[i]);
		ret = vmm_store_read_conf(fs, sd.ino[i], &c, err, sizeof(err));
		if (!ret)
			ret = fn(arg, path, sd.ino[i], &c, NULL);
		else if (ret == -EINVAL)
			ret = fn(arg, path, sd.ino[i], NULL, err);
		else if (ret == -ENOENT)
			ret = depth < 2 ? walk_dir(fs, sd.ino[i], path, depth + 1, fn, arg) : 0;
	}
	free(sd.ino);
	free(sd.name);
	return ret;
}

int vmm_store_walk(struct vmfs *fs, vmm_store_walk_fn fn, void *arg)
{
	return walk_dir(fs, vmfs_root_ino(fs), "", 1, fn, arg);
}
