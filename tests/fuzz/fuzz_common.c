/*
 * The seed datastore, the metadata scan, the patch log and the read-only walk
 * shared by the fuzz harnesses, the seed maker and the flip driver (see
 * fuzz_common.h). Nothing here trusts the image: the walk bounds its depth,
 * entries, bytes and seeks, so a damaged image can slow it down by a constant
 * at most, and every hang or crash left is libvmfs's.
 */
#include "tests/fuzz/fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/base.h"
#include "vmfs/vmfs.h"

#define FZ_HASH_SEED 0x5eed5eed5eed5eedull
#define FZ_MANY 320

static const uint8_t fz_uuid[16] = { 0xf2, 0x22, 0x00, 0x0d, 0x5e, 0xed, 0x4a, 0x11,
				     0x9c, 0x01, 0xb0, 0x0b, 0x1e, 0xca, 0xfe, 0x01 };

/* ---- building the image ------------------------------------------------------------- */

static void pattern(uint8_t *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 9));
}

struct builder {
	struct vmfs *fs;
	char *err;
	size_t errlen;
	int ret;
};

/* Records the first failure: every step after it is skipped. */
static bool step(struct builder *b, int ret, const char *what)
{
	if (b->ret)
		return false;
	if (ret < 0) {
		snprintf(b->err, b->errlen, "building the seed image: %s: %s", what, strerror(-ret));
		b->ret = ret;
		return false;
	}
	return true;
}

static uint64_t mk(struct builder *b, uint64_t dir, const char *name, uint32_t mode)
{
	struct vmfs_stat st = { 0 };
	int ret;

	if (b->ret)
		return 0;
	if (S_ISDIR(mode))
		ret = vmfs_mkdir(b->fs, dir, name, mode & 07777, 0, 0, &st);
	else
		ret = vmfs_mknod(b->fs, dir, name, mode, 0, 0, &st);
	if (step(b, ret, name))
		vmfs_forget(b->fs, st.ino, 1);
	return st.ino;
}

static void put(struct builder *b, uint64_t ino, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *buf;
	ssize_t n;

	if (b->ret)
		return;
	buf = malloc(len);
	if (!buf) {
		step(b, -ENOMEM, "write buffer");
		return;
	}
	pattern(buf, len, seed);
	n = vmfs_pwrite(b->fs, ino, buf, len, off);
	step(b, n < 0 ? (int)n : n == (ssize_t)len ? 0 : -EIO, "write");
	free(buf);
}

static void symlink_to(struct builder *b, uint64_t dir, const char *name, const char *target)
{
	struct vmfs_stat st;

	if (!b->ret && step(b, vmfs_symlink(b->fs, dir, name, target, 0, 0, &st), name))
		vmfs_forget(b->fs, st.ino, 1);
}

static void populate(struct builder *b)
{
	uint64_t root = vmfs_root_ino(b->fs), ino, dir, many, mid;
	struct vmfs_stat st;
	char name[32], longtarget[3001];

	ino = mk(b, root, "small.txt", S_IFREG | 0644);
	put(b, ino, 0, 100, 1);
	if (!b->ret && step(b, vmfs_link(b->fs, ino, root, "small-link", &st), "link"))
		vmfs_forget(b->fs, st.ino, 1);
	ino = mk(b, root, "medium.bin", S_IFREG | 0600);
	put(b, ino, 0, 20000, 2);
	ino = mk(b, root, "large.bin", S_IFREG | 0644);
	put(b, ino, 0, 3 * FZ_BLOCK_SIZE / 2 + (1u << 20), 3);
	ino = mk(b, root, "sparse.bin", S_IFREG | 0644);
	put(b, ino, 0, FZ_BLOCK_SIZE, 4);
	put(b, ino, 1ull << 30, 4096, 5);
	put(b, ino, 40ull << 30, 4096, 6);
	ino = mk(b, root, "prealloc.bin", S_IFREG | 0644);
	if (!b->ret)
		step(b, vmfs_fallocate(b->fs, ino, 0, 0, 2u << 20), "fallocate");
	put(b, ino, 100000, 5000, 7);
	mk(b, root, "empty", S_IFREG | 0644);
	mk(b, root, "fifo", S_IFIFO | 0644);
	symlink_to(b, root, "link", "small.txt");
	memset(longtarget, 'x', sizeof(longtarget) - 1);
	longtarget[sizeof(longtarget) - 1] = 0;
	for (size_t i = 0; i < sizeof(longtarget) - 1; i += 10)
		longtarget[i] = '/';
	symlink_to(b, root, "longlink", longtarget);

	dir = mk(b, root, "dir", S_IFDIR | 0755);
	ino = mk(b, dir, "a", S_IFDIR | 0755);
	ino = mk(b, ino, "b", S_IFDIR | 0700);
	ino = mk(b, ino, "c", S_IFDIR | 0755);
	ino = mk(b, ino, "deep.txt", S_IFREG | 0644);
	put(b, ino, 0, 3000, 8);
	symlink_to(b, dir, "up", "../small.txt");

	mid = mk(b, root, "mid", S_IFDIR | 0755);
	for (unsigned i = 0; i < 40 && !b->ret; i++) {
		snprintf(name, sizeof(name), "entry-%02u", i);
		ino = mk(b, mid, name, S_IFREG | 0644);
		if (i % 8 == 0)
			put(b, ino, 0, 64 + i, 100 + i);
	}

	many = mk(b, root, "many", S_IFDIR | 0755);
	for (unsigned i = 0; i < FZ_MANY && !b->ret; i++) {
		snprintf(name, sizeof(name), "f%03u", i);
		ino = mk(b, many, name, S_IFREG | 0644);
		if (i % 50 == 0)
			put(b, ino, 0, 10 + i, 200 + i);
	}
	ino = mk(b, many, "sub", S_IFDIR | 0755);
	mk(b, ino, "leaf", S_IFREG | 0644);
}

/* Changes made after the clean close: they stay in the journal of the crashed copy. */
static void more_changes(struct builder *b)
{
	uint64_t root = vmfs_root_ino(b->fs), ino, dir;
	struct vmfs_stat st = { .mode = 0640 };

	ino = mk(b, root, "new.txt", S_IFREG | 0644);
	put(b, ino, 0, 5000, 9);
	dir = mk(b, root, "newdir", S_IFDIR | 0755);
	symlink_to(b, dir, "back", "../new.txt");
	if (!b->ret) {
		uint64_t d;
		step(b, vmfs_resolve(b->fs, "/dir", &d), "resolve /dir");
		if (!b->ret)
			step(b, vmfs_rename(b->fs, d, "a", dir, "moved", 0), "rename");
	}
	if (!b->ret) {
		uint64_t d;
		step(b, vmfs_resolve(b->fs, "/many", &d), "resolve /many");
		if (!b->ret)
			step(b, vmfs_unlink(b->fs, d, "f007"), "unlink");
	}
	if (!b->ret && step(b, vmfs_resolve(b->fs, "/medium.bin", &ino), "resolve /medium.bin"))
		step(b, vmfs_setattr(b->fs, ino, &st, VMFS_SET_MODE, NULL), "chmod");
	if (!b->ret && step(b, vmfs_resolve(b->fs, "/large.bin", &ino), "resolve /large.bin")) {
		st.size = 100000;
		step(b, vmfs_setattr(b->fs, ino, &st, VMFS_SET_SIZE, NULL), "truncate");
	}
}

/*
 * Replaces mkfs's random name-hash seed with a fixed one, so directory keys are
 * the same in every build of the image, and rekeys the one entry mkfs made
 * (lost+found, inline in the root) to match (docs/FORMAT.md, Directories).
 */
static int seed_name_hash(int fd)
{
	struct vmfs_sb_disk sb;
	struct vmfs_inode_disk root;
	struct vmfs_dirhdr_disk dh;
	struct vmfs_dirent_disk de;
	uint64_t key, root_off;

	if (pread(fd, &sb, sizeof(sb), 0) != sizeof(sb))
		return -EIO;
	root_off = le64_to_cpu(sb.sb_root_ino) * VMFS_UNIT;
	if (pread(fd, &root, sizeof(root), (off_t)root_off) != sizeof(root))
		return -EIO;
	memcpy(&dh, root.i_root, sizeof(dh));
	memcpy(&de, root.i_root + sizeof(dh), sizeof(de));
	if (le16_to_cpu(dh.dh_count) != 1 || de.de_namelen != 10 ||
	    memcmp(root.i_root + sizeof(dh) + sizeof(de), "lost+found", 10))
		return -EUCLEAN; /* mkfs made something else: this needs updating */
	key = XXH3_64bits_withSeed("lost+found", 10, FZ_HASH_SEED) & ((1ull << 59) - 1);
	de.de_key = cpu_to_le64(base_max(key, 1ull) << 4);
	memcpy(root.i_root + sizeof(dh), &de, sizeof(de));
	fz_seal_unit((uint8_t *)&root);
	sb.sb_hash_seed = cpu_to_le64(FZ_HASH_SEED);
	fz_seal_unit((uint8_t *)&sb);
	if (pwrite(fd, &root, sizeof(root), (off_t)root_off) != sizeof(root) ||
	    pwrite(fd, &sb, sizeof(sb), 0) != sizeof(sb) ||
	    pwrite(fd, &sb, sizeof(sb), VMFS_SB_BACKUP_OFF) != sizeof(sb))
		return -EIO;
	return 0;
}

static int image_open(const char *dir, struct fz_image *img)
{
	if (!dir) {
		img->fd = memfd_create("vmfs-fuzz", MFD_CLOEXEC);
		if (img->fd < 0)
			return -errno;
		snprintf(img->path, sizeof(img->path), "/proc/self/fd/%d", img->fd);
		return 0;
	}
	if (snprintf(img->path, sizeof(img->path), "%s/seed-XXXXXX", dir) >= (int)sizeof(img->path))
		return -ENAMETOOLONG;
	img->fd = mkstemp(img->path);
	return img->fd < 0 ? -errno : 0;
}

int fz_image_build(enum fz_image_kind kind, const char *dir, struct fz_image *img, char *err, size_t errlen)
{
	struct vmfs_mkfs_opts mo = { .size = FZ_IMAGE_SIZE, .block_size = FZ_BLOCK_SIZE, .host_slots = 4,
				     .force = true, .uuid = fz_uuid, .label = "fuzz-seed" };
	struct vmfs_open_opts oo = { .standalone = true };
	struct builder b = { .err = err, .errlen = errlen };
	int ret;

	img->fd = -1;
	ret = image_open(dir, img);
	if (ret) {
		snprintf(err, errlen, "seed image: %s", strerror(-ret));
		return ret;
	}
	ret = vmfs_mkfs(img->path, &mo, err, errlen);
	if (!ret)
		ret = seed_name_hash(img->fd);
	if (!ret)
		ret = vmfs_open(img->path, &oo, &b.fs, err, errlen);
	if (ret)
		goto err_release;
	populate(&b);
	ret = vmfs_close(b.fs);
	if (b.ret || ret)
		goto err_built;
	if (kind == FZ_IMAGE_CLEAN)
		return 0;

	ret = vmfs_open(img->path, &oo, &b.fs, err, errlen);
	if (ret)
		goto err_release;
	more_changes(&b);
	if (!b.ret) {
		/* the crash: a copy of the device before the journal is checkpointed */
		struct fz_image copy;
		b.ret = image_open(dir, &copy);
		if (!b.ret) {
			b.ret = fz_copy_file(img->fd, copy.path);
			if (!b.ret) {
				vmfs_close(b.fs);
				fz_image_release(img);
				*img = copy;
				return 0;
			}
			fz_image_release(&copy);
		}
		step(&b, b.ret, "copying the crashed image");
	}
	vmfs_close(b.fs);
err_built:
	ret = b.ret ? b.ret : ret;
	if (!b.ret)
		snprintf(err, errlen, "building the seed image: close: %s", strerror(-ret));
err_release:
	fz_image_release(img);
	return ret;
}

void fz_image_release(struct fz_image *img)
{
	if (img->fd < 0)
		return;
	close(img->fd);
	if (strncmp(img->path, "/proc/", 6))
		unlink(img->path);
	img->fd = -1;
}

int fz_copy_file(int src, const char *path)
{
	struct stat st;
	uint8_t *buf = malloc(1u << 20);
	int dst = -1, ret = 0;
	off_t pos = 0;

	if (!buf)
		return -ENOMEM;
	if (fstat(src, &st) < 0) {
		ret = -errno;
		goto out;
	}
	dst = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (dst < 0 || ftruncate(dst, st.st_size) < 0) {
		ret = -errno;
		goto out;
	}
	while (pos < st.st_size) {
		off_t data = lseek(src, pos, SEEK_DATA), hole;
		if (data < 0)
			break; /* ENXIO: only a hole is left */
		hole = lseek(src, data, SEEK_HOLE);
		for (pos = data; pos < hole;) {
			size_t n = (size_t)base_min((off_t)(1u << 20), hole - pos);
			ssize_t r = pread(src, buf, n, pos);
			if (r <= 0 || pwrite(dst, buf, (size_t)r, pos) != r) {
				ret = r < 0 ? -errno : -EIO;
				goto out;
			}
			pos += r;
		}
	}
out:
	if (dst >= 0)
		close(dst);
	free(buf);
	return ret;
}

/* ---- finding the metadata --------------------------------------------------------------- */

void fz_seal_unit(uint8_t *unit)
{
	le32 crc = cpu_to_le32(base_crc32c(0, unit, VMFS_CRC_OFF));
	memcpy(unit + VMFS_CRC_OFF, &crc, 4);
}

void fz_seal_hostrec(uint8_t *rec)
{
	le32 crc = cpu_to_le32(base_crc32c(0, rec, 0x1fc));
	memcpy(rec + 0x1fc, &crc, 4);
}

static bool known_magic(uint32_t m)
{
	switch (m) {
	case VMFS_MAGIC_SB: case VMFS_MAGIC_RC: case VMFS_MAGIC_POOL: case VMFS_MAGIC_INODE:
	case VMFS_MAGIC_PTR: case VMFS_MAGIC_DIR: case VMFS_MAGIC_JSB: case VMFS_MAGIC_HSTATE:
	case VMFS_MAGIC_JDESC: case VMFS_MAGIC_JCOMMIT: case VMFS_MAGIC_FREED:
		return true;
	default:
		return false;
	}
}

static void scan_unit(struct fz_layout *l, uint64_t unit, const uint8_t *u)
{
	const struct vmfs_mhdr *h = (const void *)u;
	uint32_t magic = le32_to_cpu(h->mh_magic);
	struct fz_meta *m;
	le32 crc;

	memcpy(&crc, u + VMFS_CRC_OFF, 4);
	if (!known_magic(magic) || le64_to_cpu(h->mh_addr) != unit || memcmp(h->mh_uuid, l->sb.sb_uuid, 16) ||
	    le32_to_cpu(crc) != base_crc32c(0, u, VMFS_CRC_OFF) || l->nmeta == FZ_MAX_META)
		return;
	m = &l->meta[l->nmeta++];
	*m = (struct fz_meta){ .unit = unit, .magic = magic };
	if (magic == VMFS_MAGIC_INODE) {
		const struct vmfs_inode_disk *di = (const void *)u;
		m->mode = le32_to_cpu(di->i_mode);
		m->flags = le32_to_cpu(di->i_flags);
	} else if (magic == VMFS_MAGIC_PTR) {
		m->owner = le64_to_cpu(h->mh_owner);
		m->flags = le16_to_cpu(h->mh_flags);
	} else if (magic == VMFS_MAGIC_DIR) {
		m->owner = le64_to_cpu(h->mh_owner);
		m->flags = ((const struct vmfs_dirnode_disk *)u)->dn_dh.dh_level;
	}
}

int fz_layout_scan(int fd, struct fz_layout *l)
{
	const size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk);
	struct vmfs_hostrec_disk rec;
	struct stat st;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	memset(l, 0, sizeof(*l));
	if (fstat(fd, &st) < 0 || pread(fd, &l->sb, sizeof(l->sb), 0) != sizeof(l->sb)) {
		ret = -EIO;
		goto out;
	}
	for (uint64_t off = 0; off + chunk <= (uint64_t)st.st_size; off += chunk) {
		if (pread(fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
			ret = -EIO;
			goto out;
		}
		for (size_t u = 0; u < chunk; u += VMFS_UNIT)
			if (memcmp(buf + u, "VM", 2) == 0)
				scan_unit(l, (off + u) / VMFS_UNIT, buf + u);
	}
	l->hostrec_off = le64_to_cpu(l->sb.sb_hosttab_off);
	if (pread(fd, &rec, sizeof(rec), (off_t)l->hostrec_off) == sizeof(rec) &&
	    le32_to_cpu(rec.hr_magic) == VMFS_MAGIC_HOSTREC) {
		l->journal_unit = le64_to_cpu(rec.hr_journal);
		l->journal_units = le64_to_cpu(rec.hr_journal_units);
	}
out:
	free(buf);
	return ret;
}

const struct fz_meta *fz_layout_pick(const struct fz_layout *l, uint32_t magic,
				     bool (*pred)(const struct fz_meta *), unsigned i)
{
	size_t n = 0, k;

	for (size_t j = 0; j < l->nmeta; j++)
		n += l->meta[j].magic == magic && (!pred || pred(&l->meta[j]));
	if (!n)
		return NULL;
	k = i % n;
	for (size_t j = 0; j < l->nmeta; j++)
		if (l->meta[j].magic == magic && (!pred || pred(&l->meta[j])) && k-- == 0)
			return &l->meta[j];
	return NULL;
}

bool fz_is_inline_dir(const struct fz_meta *m)
{
	return S_ISDIR(m->mode) && (m->flags & VMFS_IF_INLINE);
}

bool fz_is_mapped_file(const struct fz_meta *m)
{
	return !S_ISDIR(m->mode) && (m->flags & (VMFS_IF_SMALL | VMFS_IF_LARGE));
}

/* ---- the patch log ----------------------------------------------------------------------- */

struct patch {
	uint64_t off;
	size_t len;
	uint8_t *old;
};

static struct patch *patches;
static size_t npatches, patches_cap;

int fz_patch(int fd, uint64_t off, const void *buf, size_t len)
{
	struct patch *p;

	if (npatches == patches_cap) {
		size_t cap = patches_cap ? 2 * patches_cap : 16;
		p = realloc(patches, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		patches = p;
		patches_cap = cap;
	}
	p = &patches[npatches];
	p->old = malloc(len);
	if (!p->old)
		return -ENOMEM;
	if (pread(fd, p->old, len, (off_t)off) != (ssize_t)len || pwrite(fd, buf, len, (off_t)off) != (ssize_t)len) {
		free(p->old);
		return -EIO;
	}
	p->off = off;
	p->len = len;
	npatches++;
	return 0;
}

void fz_patch_undo(int fd)
{
	while (npatches) {
		struct patch *p = &patches[--npatches];
		if (pwrite(fd, p->old, p->len, (off_t)p->off) != (ssize_t)p->len)
			abort(); /* the harness's own file: the next input would see a wrong image */
		free(p->old);
	}
}

/* ---- the walk ----------------------------------------------------------------------------- */

#define WALK_MAX_DIRS 2048
#define WALK_MAX_ENTRIES 20000       /* readdir entries of one directory */
#define WALK_MAX_TOTAL 60000         /* names looked at in the whole walk */
#define WALK_TOTAL_BYTES (48u << 20) /* read in the whole walk */
#define WALK_CHUNK (256u << 10)
#define WALK_BATCH 32
#define WALK_MAX_EXTENTS 100000      /* data extents of one file read by a whole walk */

struct walk_ent {
	char name[VMFS_NAME_MAX + 1];
	uint64_t ino, next;
	uint32_t type;
};

struct walk {
	struct vmfs *fs;
	const struct fz_walk_opts *o;
	struct fz_walk_stats *st;
	uint64_t dirs[WALK_MAX_DIRS];
	size_t ndirs;
	unsigned total;
	uint8_t *buf;
	struct walk_ent batch[WALK_BATCH];
	unsigned nbatch;
};

static int fill(void *ctx, const char *name, size_t len, uint64_t ino, uint32_t type, uint64_t next)
{
	struct walk *w = ctx;
	struct walk_ent *e = &w->batch[w->nbatch];

	if (w->nbatch == WALK_BATCH)
		return 1;
	len = base_min(len, (size_t)VMFS_NAME_MAX);
	memcpy(e->name, name, len);
	e->name[len] = 0;
	e->ino = ino;
	e->type = type;
	e->next = next;
	w->nbatch++;
	return 0;
}

#define count(w, ret) count_at((w), (ret), __LINE__)
static void count_at(struct walk *w, long long ret, int line)
{
	if (ret >= 0)
		return;
	w->st->errors++;
	if (getenv("FZ_WALK_DEBUG"))
		fprintf(stderr, "walk: fuzz_common.c:%d: %s\n", line, strerror((int)-ret));
}

/*
 * Data and holes from the start, as cp --sparse and qemu-img map do: the first
 * 16 extents; with whole, every extent, each read to its end (holes read as
 * zeros), and the file's last byte.
 */
static void walk_extents(struct walk *w, uint64_t ino, uint64_t size, bool whole)
{
	uint64_t pos = 0, data, hole;

	for (unsigned i = 0; i < (whole ? WALK_MAX_EXTENTS : 16) && pos < size; i++) {
		int ret = vmfs_lseek(w->fs, ino, pos, SEEK_DATA, &data);
		if (ret) {
			if (ret != -ENXIO)
				count(w, ret);
			break;
		}
		ret = vmfs_lseek(w->fs, ino, data, SEEK_HOLE, &hole);
		count(w, ret);
		if (ret || hole <= data)
			break;
		for (pos = data; whole && pos < hole;) {
			ssize_t n = vmfs_pread(w->fs, ino, w->buf, (size_t)base_min((uint64_t)WALK_CHUNK, hole - pos), pos);
			count(w, n);
			if (n <= 0)
				return;
			pos += (uint64_t)n;
		}
		pos = hole;
	}
	if (whole && size) /* the last byte, whatever the map says */
		count(w, vmfs_pread(w->fs, ino, w->buf, 1, size - 1));
}

static void walk_file(struct walk *w, uint64_t ino, uint64_t size)
{
	uint64_t want = base_min(size, (uint64_t)w->o->file_bytes), off;
	ssize_t n;

	w->st->files++;
	for (off = 0; off < want && w->st->bytes < WALK_TOTAL_BYTES; off += WALK_CHUNK) {
		n = vmfs_pread(w->fs, ino, w->buf, WALK_CHUNK, off);
		count(w, n);
		if (n <= 0)
			break;
		w->st->bytes += (uint64_t)n;
	}
	count(w, vmfs_pread(w->fs, ino, w->buf + 1, 5000, 3));
	if (size > w->o->file_bytes) /* the far end of a big or sparse file */
		count(w, vmfs_pread(w->fs, ino, w->buf, 70000, size - 65536));
	walk_extents(w, ino, size, w->o->whole);
	if (size > 1) {
		uint64_t out;
		count(w, vmfs_lseek(w->fs, ino, size / 2, SEEK_HOLE, &out));
		vmfs_lseek(w->fs, ino, size - 1, SEEK_DATA, &out);
	}
}

static void walk_dir(struct walk *w, uint64_t dir, unsigned depth);

/* Whatever the inode's type allows; st from a lookup or getattr of it. */
static void walk_inode(struct walk *w, const struct vmfs_stat *st, unsigned depth)
{
	if (S_ISDIR(st->mode)) {
		walk_dir(w, st->ino, depth + 1);
	} else if (S_ISREG(st->mode)) {
		walk_file(w, st->ino, st->size);
	} else if (S_ISLNK(st->mode)) {
		w->st->links++;
		count(w, vmfs_readlink(w->fs, st->ino, (char *)w->buf, 4096));
		count(w, vmfs_readlink(w->fs, st->ino, (char *)w->buf, 7));
	}
}

static void walk_entry(struct walk *w, uint64_t dir, const struct walk_ent *e, unsigned depth)
{
	struct vmfs_stat st, st2;
	int ret;

	w->st->entries++;
	if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
		return;
	ret = vmfs_lookup(w->fs, dir, e->name, &st);
	count(w, ret);
	if (ret)
		return;
	vmfs_forget(w->fs, st.ino, 1);
	count(w, vmfs_getattr(w->fs, st.ino, &st2));
	walk_inode(w, &st, depth);
	if (e->ino != st.ino) /* what readdir named, whatever lookup found */
		count(w, vmfs_getattr(w->fs, e->ino, &st2));
}

static void walk_dir(struct walk *w, uint64_t dir, unsigned depth)
{
	struct walk_ent *ents;
	uint64_t cookie = 0;
	unsigned seen = 0;
	struct vmfs_stat st;

	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i] == dir)
			return; /* a loop, or a second name of a directory */
	if (depth > w->o->max_depth || w->ndirs == WALK_MAX_DIRS)
		return;
	w->dirs[w->ndirs++] = dir;
	w->st->dirs++;
	if (vmfs_lookup(w->fs, dir, "no such name", &st) != -ENOENT)
		w->st->errors++;
	if (!vmfs_lookup(w->fs, dir, "..", &st))
		vmfs_forget(w->fs, st.ino, 1);
	ents = malloc(sizeof(w->batch));
	if (!ents)
		return;
	for (;;) {
		int ret;
		unsigned n;

		w->nbatch = 0;
		ret = vmfs_readdir(w->fs, dir, cookie, fill, w);
		count(w, ret);
		n = w->nbatch;
		if (ret || !n)
			break;
		memcpy(ents, w->batch, n * sizeof(*ents));
		for (unsigned i = 0; i < n && (seen + i < w->o->names_per_dir || dir == w->o->focus); i++) {
			if (w->total++ >= WALK_MAX_TOTAL)
				goto out;
			walk_entry(w, dir, &ents[i], depth);
		}
		if (ents[n - 1].next <= cookie || (seen += n) >= WALK_MAX_ENTRIES)
			break; /* a cookie that does not move on would repeat forever */
		cookie = ents[n - 1].next;
	}
out:
	free(ents);
}

int fz_walk(const char *path, const struct fz_walk_opts *o, struct fz_walk_stats *st)
{
	static const char *const paths[] = { "/dir/a/b/c/deep.txt", "/many/f100", "/many/sub/leaf",
					     "/sparse.bin", "/newdir/moved/b", "/small.txt/x", "/nonexistent" };
	struct vmfs_open_opts oo = { .readonly = !o->readwrite, .standalone = o->readwrite };
	struct walk *w = calloc(1, sizeof(*w));
	struct vmfs_statfs sf;
	struct vmfs_info info;
	char err[256] = "";
	uint64_t ino;
	int ret;

	memset(st, 0, sizeof(*st));
	if (!w)
		return -ENOMEM;
	w->st = st;
	w->o = o;
	w->buf = malloc(WALK_CHUNK + 8);
	ret = w->buf ? vmfs_open(path, &oo, &w->fs, err, sizeof(err)) : -ENOMEM;
	st->open_ret = ret;
	if (ret && getenv("FZ_WALK_DEBUG"))
		fprintf(stderr, "walk: open: %s\n", err[0] ? err : strerror(-ret));
	if (ret)
		goto out;
	vmfs_get_info(w->fs, &info);
	vmfs_statfs(w->fs, &sf);
	for (size_t i = 0; i < base_array_size(paths); i++)
		if (!vmfs_resolve(w->fs, paths[i], &ino))
			count(w, vmfs_getattr(w->fs, ino, &(struct vmfs_stat){ 0 }));
	if (o->focus) {
		struct vmfs_stat fst;
		ret = vmfs_getattr(w->fs, o->focus, &fst);
		if (!ret)
			walk_inode(w, &fst, o->max_depth - 1);
		ret = 0;
	}
	walk_dir(w, vmfs_root_ino(w->fs), 0);
	count(w, vmfs_close(w->fs));
out:
	free(w->buf);
	free(w);
	return ret;
}
