/*
 * File data: read, write, truncate, fallocate and SEEK_DATA/SEEK_HOLE.
 *
 * A file starts inline (up to 2 KiB in its inode), moves to 4 KiB sub-blocks
 * while it is at most 1 MiB, and to file blocks beyond that; it never moves back
 * except to inline when truncated to zero.
 *
 * Data path: the range is mapped under fs->lock, the device I/O runs without it
 * (holding the inode's iolock), then size and times are updated under fs->lock.
 * Invariants that keep old data of other files out of a file after a crash:
 *  F1. a newly allocated block that a write covers only in part is zeroed on the
 *      device before its pointer can be committed;
 *  F2. a newly allocated block that a write covers wholly is mapped "to be
 *      zeroed" (reads return zeros) until its data is written, and only then is
 *      the flag cleared, in a later operation;
 *  F3. data is written (completed, not only queued) before the operation that
 *      makes it reachable (size, TBZ clear, a redirect's grain bits) begins, so
 *      the commit's flush covers it.
 * A write into a block another map shares goes through a redirect (redirect.c):
 * the same two phases, grain by grain, so the shared block is never copied.
 */
#include "vmfs/vmfs_i.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#define BOUNCE_MAX (1u << 20)

static uint64_t blk_bytes(struct vmfs *fs, struct vmfs_inode_disk *di)
{
	return (uint64_t)inode_layout_blkunits(fs, di) * VMFS_UNIT;
}

static uint64_t ptr_dev(uint64_t p)
{
	return (p & VMFS_PTR_ADDR_MASK) * VMFS_UNIT;
}

/* ---- device I/O at any alignment ------------------------------------------------- */

static int io_span(struct vmfs *fs, bool write, uint64_t off, uint8_t *buf, size_t len)
{
	unsigned ss = dev_sector_size(fs->dev);
	uint64_t a0 = off / ss * ss, a1 = base_round_up(off + len, ss);
	uint8_t *bounce;
	int ret = 0;

	if (!((off | len | (uintptr_t)buf) % ss))
		return write ? dev_pwrite(fs->dev, buf, len, off) : dev_pread(fs->dev, buf, len, off);
	bounce = dev_alloc_buf(a1 - a0);
	if (!bounce)
		return -ENOMEM;
	if (!write) {
		ret = dev_pread(fs->dev, bounce, a1 - a0, a0);
		if (!ret)
			memcpy(buf, bounce + (off - a0), len);
	} else {
		if (off != a0)
			ret = dev_pread(fs->dev, bounce, ss, a0);
		if (!ret && off + len != a1 && (a1 - ss != a0 || off == a0))
			ret = dev_pread(fs->dev, bounce + (a1 - a0 - ss), ss, a1 - ss);
		if (!ret) {
			memcpy(bounce + (off - a0), buf, len);
			ret = dev_pwrite(fs->dev, bounce, a1 - a0, a0);
		}
	}
	free(bounce);
	return ret;
}

/* Splits large unaligned transfers so a bounce buffer stays small. */
static int dev_io(struct vmfs *fs, bool write, uint64_t off, uint8_t *buf, size_t len)
{
	unsigned ss = dev_sector_size(fs->dev);

	if (!((off | len | (uintptr_t)buf) % ss))
		return io_span(fs, write, off, buf, len);
	while (len) {
		size_t n = base_min(len, (size_t)BOUNCE_MAX - (off % ss));
		int ret = io_span(fs, write, off, buf, n);
		if (ret)
			return ret;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

static int write_zeros(struct vmfs *fs, uint64_t off, size_t len)
{
	unsigned ss = dev_sector_size(fs->dev);
	uint64_t a0 = base_round_up(off, ss), a1 = (off + len) / ss * ss;
	uint8_t *z;
	int ret = 0;

	if (a1 > a0 && a1 - a0 >= 64 * 1024) {
		ret = dev_zero_range(fs->dev, a0, a1 - a0);
		if (!ret && a0 > off)
			ret = write_zeros(fs, off, a0 - off);
		if (!ret && off + len > a1)
			ret = write_zeros(fs, a1, off + len - a1);
		return ret;
	}
	z = calloc(1, len);
	if (!z)
		return -ENOMEM;
	ret = dev_io(fs, true, off, z, len);
	free(z);
	return ret;
}

/*
 * File bytes on the device (encrypt/, docs/ENCRYPTION.md): plain for a file
 * without keys; else whole 4 KiB units through the data cipher, the tweak
 * being a unit's number in the file (loff: the file offset of buf[0], which
 * is dev's offset within its unit too). A write that covers a unit in part
 * reads, decrypts and merges it first: the caller holds the inode's iolock
 * exclusive for such a write (do_write), as for one not sector-aligned.
 */
/* This thread's ciphertext buffer for data_io (BOUNCE_MAX + a unit), kept until the thread ends. */
static pthread_key_t tb_key;
static pthread_once_t tb_once = PTHREAD_ONCE_INIT;

static void tb_exit(void) /* the exiting thread's (others' go with them) */
{
	void *b = pthread_getspecific(tb_key);

	pthread_setspecific(tb_key, NULL);
	free(b);
}

static void tb_init(void)
{
	if (pthread_key_create(&tb_key, free))
		abort();
	atexit(tb_exit);
}

static uint8_t *thread_bounce(void)
{
	uint8_t *b;

	pthread_once(&tb_once, tb_init);
	b = pthread_getspecific(tb_key);
	if (!b && (b = dev_alloc_big_buf(BOUNCE_MAX + VMFS_UNIT)) && pthread_setspecific(tb_key, b)) {
		free(b);
		b = NULL;
	}
	return b;
}

static int data_io(struct vmfs *fs, const struct enc_file *key, bool write, uint64_t dev, uint64_t loff,
		   uint8_t *buf, size_t len)
{
	unsigned ss = dev_sector_size(fs->dev);

	if (!key)
		return dev_io(fs, write, dev, buf, len);
	/* whole units into a buffer the device can read into: in place, no copy (ciphertext is not kept) */
	if (!write && !((dev | len) % VMFS_UNIT) && !((uintptr_t)buf % ss)) {
		int ret = dev_pread(fs->dev, buf, len, dev);

		return ret ? ret : crypt_run(key, false, (loff - dev % VMFS_UNIT) / VMFS_UNIT, buf, buf, len);
	}
	while (len) {
		uint64_t head = dev % VMFS_UNIT, a0 = dev - head, tw = (loff - head) / VMFS_UNIT;
		size_t span = (size_t)base_min((uint64_t)len, BOUNCE_MAX - head);
		uint64_t a1 = base_round_up(dev + span, VMFS_UNIT);
		size_t n = (size_t)(a1 - a0);
		uint8_t *b = thread_bounce();
		int ret = 0;

		if (!b)
			return -ENOMEM;
		if (write && !head && !(span % VMFS_UNIT)) { /* whole units: encrypted straight into the buffer */
			ret = crypt_run(key, true, tw, buf, b, n);
			if (!ret)
				ret = dev_pwrite(fs->dev, b, n, a0);
		} else if (!write) {
			ret = dev_pread(fs->dev, b, n, a0);
			if (!ret)
				ret = crypt_run(key, false, tw, b, b, n);
			if (!ret)
				memcpy(buf, b + head, span);
			OPENSSL_cleanse(b, n); /* the buffer stays with the thread: no plaintext in it */
		} else {
			if (head)
				ret = dev_pread(fs->dev, b, VMFS_UNIT, a0);
			if (!ret && head)
				ret = crypt_run(key, false, tw, b, b, VMFS_UNIT);
			if (!ret && (dev + span) % VMFS_UNIT && (n > VMFS_UNIT || !head)) {
				ret = dev_pread(fs->dev, b + n - VMFS_UNIT, VMFS_UNIT, a1 - VMFS_UNIT);
				if (!ret)
					ret = crypt_run(key, false, tw + n / VMFS_UNIT - 1, b + n - VMFS_UNIT,
							b + n - VMFS_UNIT, VMFS_UNIT);
			}
			if (!ret) {
				memcpy(b + head, buf, span);
				ret = crypt_run(key, true, tw, b, b, n);
			}
			if (!ret)
				ret = dev_pwrite(fs->dev, b, n, a0);
			else
				OPENSSL_cleanse(b, n); /* the merged plaintext, not encrypted over */
		}
		if (ret)
			return ret;
		dev += span;
		loff += span;
		buf += span;
		len -= span;
	}
	return 0;
}

/* Zeroes file bytes on the device: whole units as zeros (they read as zeros), a part of one through the cipher. */
static int data_zero(struct vmfs *fs, const struct enc_file *key, uint64_t dev, uint64_t loff, size_t len)
{
	uint64_t a0 = base_round_up(dev, VMFS_UNIT), a1 = (dev + len) / VMFS_UNIT * VMFS_UNIT;
	uint8_t *z;
	int ret = 0;

	if (!key)
		return write_zeros(fs, dev, len);
	if (a1 <= a0) { /* within one unit */
		z = calloc(1, len);
		if (!z)
			return -ENOMEM;
		ret = data_io(fs, key, true, dev, loff, z, len);
		free(z);
		return ret;
	}
	if (a0 > dev)
		ret = data_zero(fs, key, dev, loff, (size_t)(a0 - dev));
	if (!ret)
		ret = write_zeros(fs, a0, (size_t)(a1 - a0));
	if (!ret && dev + len > a1)
		ret = data_zero(fs, key, a1, loff + (a1 - dev), (size_t)(dev + len - a1));
	return ret;
}

/* The keys of the inode in ib, as data_io wants them (NULL: none). */
static int ib_key(struct vmfs *fs, struct vbuf *ib, struct enc_file **key)
{
	return crypt_file_get(fs, ib->addr, ib_inode(ib), key);
}

/* Changes [off, off + len) of inline bytes to buf's, or to zeros (buf NULL), through the file's keys. */
static int inline_set(struct vmfs *fs, struct vbuf *ib, uint64_t off, const void *buf, size_t len)
{
	uint8_t plain[VMFS_INLINE_MAX];
	int ret = crypt_inline(fs, ib->addr, ib_inode(ib), false, plain);

	if (ret)
		return ret;
	if (buf)
		memcpy(plain + off, buf, len);
	else
		memset(plain + off, 0, len);
	ret = crypt_inline(fs, ib->addr, ib_inode(ib), true, plain);
	OPENSSL_cleanse(plain, sizeof(plain));
	return ret;
}

/* ---- layout changes ---------------------------------------------------------------- */

static int alloc_for(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t *unit)
{
	int ret;
	if (le32_to_cpu(di->i_flags) & VMFS_IF_LARGE)
		ret = alloc_block(fs, unit);
	else
		ret = alloc_unit(fs, ALLOC_DATA, unit);
	if (!ret)
		di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) + (uint64_t)inode_layout_blkunits(fs, di));
	return ret;
}

static void set_layout(struct vmfs_inode_disk *di, uint32_t layout)
{
	di->i_flags = cpu_to_le32((le32_to_cpu(di->i_flags) & ~VMFS_IF_LAYOUT) | layout);
	di->i_height = 0;
}

/* Moves the data of an inline file into block 0 of its new layout. */
static int from_inline(struct vmfs *fs, struct vbuf *ib, uint32_t layout)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t size = le64_to_cpu(di->i_size), unit;
	uint8_t *blk = dev_alloc_buf(VMFS_UNIT);
	struct enc_file *key = NULL;
	int ret = meta_dirty(fs, ib);

	if (!blk)
		return -ENOMEM;
	if (ret)
		goto out;
	memset(blk, 0, VMFS_UNIT);
	ret = crypt_inline(fs, ib->addr, di, false, blk);
	if (ret)
		goto out;
	memset(blk + base_min(size, (uint64_t)VMFS_INLINE_MAX), 0, VMFS_UNIT - base_min(size, (uint64_t)VMFS_INLINE_MAX));
	memset(di->i_root, 0, VMFS_INLINE_MAX);
	set_layout(di, layout);
	if (!size)
		goto out;
	ret = alloc_for(fs, di, &unit);
	if (!ret && layout == VMFS_IF_LARGE)
		ret = dev_zero_range(fs->dev, unit * VMFS_UNIT, fs->block_size);
	if (!ret)
		ret = ib_key(fs, ib, &key);
	if (!ret)
		ret = data_io(fs, key, true, unit * VMFS_UNIT, 0, blk, VMFS_UNIT);
	if (!ret)
		ret = bmap_set(fs, ib, 0, unit);
out:
	crypt_file_put(fs, key);
	OPENSSL_cleanse(blk, VMFS_UNIT);
	free(blk);
	return ret;
}

/* Copies a small file's sub-blocks into file blocks. */
static int small_to_large(struct vmfs *fs, struct vbuf *ib)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t lblks[VMFS_ROOT_PTRS], ptrs[VMFS_ROOT_PTRS], lb = 0, found, p;
	uint8_t *data = dev_alloc_buf(VMFS_SMALL_MAX);
	unsigned n = 0;
	bool done;
	int ret;

	if (!data)
		return -ENOMEM;
	while ((ret = bmap_next(fs, di, lb, &found, &p)) == 1 && n < VMFS_ROOT_PTRS) {
		lblks[n] = found;
		ptrs[n++] = p;
		lb = found + 1;
	}
	for (unsigned i = 0; !ret && i < n; i++)
		if (!(ptrs[i] & VMFS_PTR_TBZ))
			ret = dev_pread(fs->dev, data + i * VMFS_UNIT, VMFS_UNIT, ptr_dev(ptrs[i]));
	if (!ret)
		ret = bmap_free_range(fs, ib, 0, UINT64_MAX, UINT64_MAX, &done);
	if (ret)
		goto out;
	set_layout(di, VMFS_IF_LARGE);
	for (unsigned i = 0; !ret && i < n; i++) {
		uint64_t byte = lblks[i] * VMFS_UNIT, big = byte / fs->block_size, bp;

		if (ptrs[i] & VMFS_PTR_TBZ)
			continue;
		ret = bmap_get(fs, di, big, &bp);
		if (!ret && !bp) {
			ret = alloc_for(fs, di, &bp);
			if (!ret)
				ret = dev_zero_range(fs->dev, ptr_dev(bp), fs->block_size);
			if (!ret)
				ret = bmap_set(fs, ib, big, bp);
		}
		if (!ret)
			ret = dev_pwrite(fs->dev, data + i * VMFS_UNIT, VMFS_UNIT,
					 ptr_dev(bp) + byte % fs->block_size);
	}
out:
	free(data);
	return ret;
}

/* Makes the layout able to hold bytes up to end. */
static int ensure_layout(struct vmfs *fs, struct vbuf *ib, uint64_t end)
{
	uint32_t flags = le32_to_cpu(ib_inode(ib)->i_flags);
	int ret = 0;

	if ((flags & VMFS_IF_INLINE) && end > VMFS_INLINE_MAX)
		ret = from_inline(fs, ib, end > VMFS_SMALL_MAX ? VMFS_IF_LARGE : VMFS_IF_SMALL);
	flags = le32_to_cpu(ib_inode(ib)->i_flags);
	if (!ret && (flags & VMFS_IF_SMALL) && end > VMFS_SMALL_MAX)
		ret = small_to_large(fs, ib);
	return ret;
}

/* ---- read and write --------------------------------------------------------------------- */

struct extent {
	uint64_t dev_off;
	size_t buf_off, len;
};

struct grain_run {
	uint64_t lblk;
	uint32_t first, count;
};

struct plan {
	struct extent *ext;
	size_t n, cap;
	uint64_t *tbz;                  /* blocks whose TBZ flag clears after the write (F2) */
	size_t ntbz;
	struct grain_run *gr;           /* redirect grains whose bits are set after the write */
	size_t ngr;
	struct enc_file *key;           /* the file's keys (a reference), NULL: none */
	uint64_t loff;                  /* the file offset of the caller's buffer */
};

static int plan_grain(struct plan *pl, uint64_t lblk, unsigned g)
{
	struct grain_run *t;

	if (pl->ngr && pl->gr[pl->ngr - 1].lblk == lblk && pl->gr[pl->ngr - 1].first + pl->gr[pl->ngr - 1].count == g) {
		pl->gr[pl->ngr - 1].count++;
		return 0;
	}
	t = realloc(pl->gr, (pl->ngr + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	pl->gr = t;
	pl->gr[pl->ngr++] = (struct grain_run){ lblk, g, 1 };
	return 0;
}

static int plan_add(struct plan *pl, uint64_t dev_off, size_t buf_off, size_t len)
{
	if (pl->n && pl->ext[pl->n - 1].dev_off + pl->ext[pl->n - 1].len == dev_off &&
	    pl->ext[pl->n - 1].buf_off + pl->ext[pl->n - 1].len == buf_off) {
		pl->ext[pl->n - 1].len += len;
		return 0;
	}
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 16;
		struct extent *e = realloc(pl->ext, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		pl->ext = e;
		pl->cap = cap;
	}
	pl->ext[pl->n++] = (struct extent){ dev_off, buf_off, len };
	return 0;
}

static void plan_release(struct plan *pl)
{
	free(pl->ext);
	free(pl->tbz);
	free(pl->gr);
	crypt_file_put(NULL, pl->key);
	*pl = (struct plan){ 0 };
}

/* Plans [in, in + n) of the block mapped at p (data, not TBZ) at buffer offset at: a redirect's grains by run. */
static int plan_block(struct vmfs *fs, struct plan *pl, uint64_t p, uint64_t in, size_t n, size_t at)
{
	struct redir r = { 0 };
	int ret;

	if (!(p & VMFS_PTR_REDIRECT))
		return plan_add(pl, ptr_dev(p) + in, at, n);
	ret = redir_get(fs, p, &r);
	for (uint64_t run, dev; !ret && n; in += run, at += run, n -= run) {
		dev = redir_locate(&r, in, n, &run);
		ret = plan_add(pl, dev, at, run);
	}
	meta_put(fs, r.b);
	return ret;
}

static int plan_run(struct vmfs *fs, struct plan *pl, bool write, uint8_t *buf)
{
	for (size_t i = 0; i < pl->n; i++) {
		int ret = data_io(fs, pl->key, write, pl->ext[i].dev_off, pl->loff + pl->ext[i].buf_off,
				  buf + pl->ext[i].buf_off, pl->ext[i].len);
		if (ret)
			return ret;
	}
	return 0;
}

static int get_regular(struct vmfs *fs, uint64_t ino, struct vbuf **ib, unsigned how)
{
	int ret = inode_read(fs, ino, ib);
	uint32_t mode;

	if (ret)
		return ret;
	mode = le32_to_cpu(ib_inode(*ib)->i_mode);
	if ((how & GET_WRITE) && (le32_to_cpu(ib_inode(*ib)->i_flags) & VMFS_IF_SNAPSHOT))
		ret = -EROFS;
	else if (S_ISREG(mode) || ((how & GET_LINK_OK) && S_ISLNK(mode)) || ((how & GET_DIR_OK) && S_ISDIR(mode)))
		return 0;
	else
		ret = S_ISDIR(mode) ? -EISDIR : -EINVAL;
	meta_put(fs, *ib);
	return ret;
}

ssize_t vmfs_pread(struct vmfs *fs, uint64_t ino, void *buf, size_t len, uint64_t off)
{
	struct plan pl = { 0 };
	struct vinode *vi;
	struct vbuf *ib;
	uint64_t size, bb;
	int ret;

	vi = vinode_pin(fs, ino);
	if (!vi)
		return -ENOMEM;
	pthread_rwlock_rdlock(&vi->iolock);
	ret = fs_enter(fs, false);
	if (ret)
		goto out;
	ret = get_regular(fs, ino, &ib, GET_LINK_OK);
	if (ret)
		goto err_unlock;
	size = le64_to_cpu(ib_inode(ib)->i_size);
	if (off >= size || !len) {
		len = 0;
		goto done;
	}
	len = (size_t)base_min((uint64_t)len, size - off);
	if (le32_to_cpu(ib_inode(ib)->i_flags) & VMFS_IF_INLINE) {
		uint8_t plain[VMFS_INLINE_MAX];
		ret = crypt_inline(fs, ino, ib_inode(ib), false, plain);
		if (ret)
			goto err_put;
		memcpy(buf, plain + off, len);
		OPENSSL_cleanse(plain, sizeof(plain));
		goto done;
	}
	ret = ib_key(fs, ib, &pl.key);
	if (ret)
		goto err_put;
	pl.loff = off;
	bb = blk_bytes(fs, ib_inode(ib));
	for (size_t done = 0; done < len;) {
		uint64_t pos = off + done, lblk = pos / bb, in = pos % bb, p;
		size_t n = (size_t)base_min((uint64_t)(len - done), bb - in);

		ret = bmap_get(fs, ib_inode(ib), lblk, &p);
		if (ret)
			goto err_put;
		if (!p || (p & VMFS_PTR_TBZ))
			memset((uint8_t *)buf + done, 0, n);
		else if ((ret = plan_block(fs, &pl, p, in, n, done)))
			goto err_put;
		done += n;
	}
done:
	meta_put(fs, ib);
	pthread_mutex_unlock(&fs->lock);
	ret = plan_run(fs, &pl, false, buf);
	goto out;
err_put:
	meta_put(fs, ib);
err_unlock:
	pthread_mutex_unlock(&fs->lock);
out:
	pthread_rwlock_unlock(&vi->iolock);
	vinode_unpin(fs, vi);
	plan_release(&pl);
	return ret ? ret : (ssize_t)len;
}

/* Does the range need allocation, a TBZ change or a layout change? (under fs->lock) */
static int needs_alloc(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t off, size_t len, bool *need)
{
	uint64_t end = off + len, bb;
	uint32_t flags = le32_to_cpu(di->i_flags);

	*need = true;
	if ((flags & VMFS_IF_INLINE) || ((flags & VMFS_IF_SMALL) && end > VMFS_SMALL_MAX) ||
	    off > le64_to_cpu(di->i_size))   /* a gap past the end is cleared first (zero_past_eof) */
		return 0;
	bb = blk_bytes(fs, di);
	for (uint64_t lblk = off / bb; lblk * bb < end; lblk++) {
		uint64_t p;
		bool shared;
		int ret = bmap_get_shared(fs, di, lblk, &p, &shared);
		if (ret)
			return ret;
		if (!p || (p & VMFS_PTR_TBZ) || shared)
			return 0;
		if (p & VMFS_PTR_REDIRECT) { /* grains not yet in its own block need their bits set */
			uint64_t a = base_max(off, lblk * bb) - lblk * bb, b = base_min(end, (lblk + 1) * bb) - lblk * bb;
			bool all;

			ret = redir_covers(fs, p, a, b - a, &all);
			if (ret || !all)
				return ret;
		}
	}
	*need = false;
	return 0;
}

/*
 * Copy on write (docs/FORMAT.md, "Shared blocks", S3): block lblk, mapped at p
 * (a sub-block or a TBZ block another map shares, any redirect), is replaced by
 * a plain new block holding p's bytes (zeros for a hole or a TBZ block) with
 * [in, in + n) taken from src, or zeroed when src is NULL. Shared plain blocks
 * of a LARGE map take the cheaper way, a redirect (map_for_write). The new block is written here, inside the operation that
 * maps it, so the commit that makes it reachable follows its data (F3) and a
 * crash shows the old block or the new one, never zeros. Under fs->lock, in an
 * operation, with the inode's iolock exclusive.
 */
static int cow_block(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t p, const void *src, size_t in,
		     size_t n)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bb = blk_bytes(fs, di), q;
	struct enc_file *key = NULL;
	uint8_t *blk = NULL;
	int ret = ib_key(fs, ib, &key);

	if (!ret)
		ret = alloc_for(fs, di, &q);
	if (ret)
		goto out;
	if (src && in == 0 && n == bb) {
		ret = data_io(fs, key, true, ptr_dev(q), lblk * bb, (uint8_t *)src, n);
	} else {
		blk = dev_alloc_buf(bb);
		if (!blk) {
			ret = -ENOMEM;
			goto out;
		}
		/* the old bytes as the map reads them (a redirect's grains each from their block) */
		if (p & VMFS_PTR_REDIRECT)
			ret = redir_read_block(fs, p, blk);
		else if (p && !(p & VMFS_PTR_TBZ))
			ret = dev_pread(fs->dev, blk, bb, ptr_dev(p));
		else
			memset(blk, 0, bb);
		if (!ret && key && p && !(p & VMFS_PTR_TBZ))
			ret = crypt_run(key, false, lblk * bb / VMFS_UNIT, blk, blk, bb);
		if (src)
			memcpy(blk + in, src, n);
		else
			memset(blk + in, 0, n);
		if (!ret)
			ret = data_io(fs, key, true, ptr_dev(q), lblk * bb, blk, bb);
		if (key)
			OPENSSL_cleanse(blk, bb);
		free(blk);
	}
	if (!ret)
		ret = bmap_set(fs, ib, lblk, q);
	if (!ret && p)
		ret = bmap_drop_data(fs, di, p);
out:
	crypt_file_put(fs, key);
	return ret;
}

int file_rekey_block(struct vmfs *fs, struct vbuf *ib, const struct enc_file *key, uint64_t lblk, uint64_t mark)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bb = blk_bytes(fs, di), u0 = lblk * bb / VMFS_UNIT, p, q;
	uint8_t *blk;
	int ret = bmap_get(fs, di, lblk, &p);

	if (ret || !p || (p & VMFS_PTR_TBZ))
		return ret;
	blk = dev_alloc_buf(bb);
	if (!blk)
		return -ENOMEM;
	/* the old bytes as the map reads them (a redirect's grains each from their block), in the clear */
	ret = (p & VMFS_PTR_REDIRECT) ? redir_read_block(fs, p, blk) : dev_pread(fs->dev, blk, bb, ptr_dev(p));
	if (!ret)
		ret = crypt_run(key, false, u0, blk, blk, bb);
	for (uint64_t i = 0; !ret && i < bb / VMFS_UNIT; i++) {
		uint8_t *u = blk + i * VMFS_UNIT;

		if (!base_all_zero(u, VMFS_UNIT)) /* zeros stay zeros: they read as zeros under any key */
			ret = crypt_run_key(key, u0 + i < mark ? 1 : 0, true, u0 + i, u, u, VMFS_UNIT);
	}
	if (!ret)
		ret = alloc_for(fs, di, &q);
	if (!ret)
		ret = dev_pwrite(fs->dev, blk, bb, ptr_dev(q)); /* F3: before the commit that maps it */
	OPENSSL_cleanse(blk, bb);
	free(blk);
	if (!ret)
		ret = bmap_set(fs, ib, lblk, q);
	if (!ret)
		ret = bmap_drop_data(fs, di, p);
	return ret;
}

enum map_how {
	MAP_ANY = 0,
	MAP_NO_IO = 1u << 0,            /* the iolock is shared: no hole filled, no data I/O here, else -EAGAIN */
};

/*
 * Plans [in, in + n) of block lblk, mapped at p, an exclusive redirect: a set
 * grain is overwritten in its own block; a clear one is written there too and
 * recorded for redir_commit(); a clear grain written in part is filled from
 * the backing block here first (not with MAP_NO_IO). src and at: where the
 * bytes at `in` are in the caller's buffer.
 */
static int write_redirected(struct vmfs *fs, uint64_t lblk, uint64_t p, const uint8_t *src, uint64_t in, size_t n,
			    size_t at, struct plan *pl, unsigned how, uint64_t bb)
{
	uint8_t *gbuf = NULL;
	struct redir r;
	uint64_t dev;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	dev = redir_new(&r) * VMFS_UNIT;
	for (uint64_t pos = in, end = in + n; !ret && pos < end;) {
		unsigned g = (unsigned)(pos / VMFS_GRAIN);
		uint64_t gs = (uint64_t)g * VMFS_GRAIN, e = base_min(gs + VMFS_GRAIN, end);
		bool set = redir_bit(&r, g);

		if (set || (pos == gs && e == gs + VMFS_GRAIN)) {
			ret = plan_add(pl, dev + pos, at + (pos - in), (size_t)(e - pos));
		} else if (how & MAP_NO_IO) {
			ret = -EAGAIN;
		} else {
			if (!gbuf && !(gbuf = dev_alloc_buf(VMFS_GRAIN)))
				ret = -ENOMEM;
			if (!ret)
				ret = data_io(fs, pl->key, false, redir_backing(&r) * VMFS_UNIT + gs, lblk * bb + gs,
					      gbuf, VMFS_GRAIN);
			if (!ret) {
				memcpy(gbuf + (pos - gs), src + (pos - in), (size_t)(e - pos));
				ret = data_io(fs, pl->key, true, dev + gs, lblk * bb + gs, gbuf, VMFS_GRAIN);
			}
		}
		if (!ret && !set)
			ret = plan_grain(pl, lblk, g);
		pos = e;
	}
	free(gbuf);
	redir_put(fs, &r);
	return ret;
}

/*
 * Maps [off, off+len) for writing, allocating as F1/F2 say. A shared plain
 * block of a LARGE map gets a redirect and the write goes to its own block
 * (write_redirected); other shared blocks get buf's bytes through cow_block()
 * at once and no plan entry. Under fs->lock, in an operation.
 */
static int map_for_write(struct vmfs *fs, struct vbuf *ib, const uint8_t *buf, uint64_t off, size_t len,
			 struct plan *pl, unsigned how)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bb = blk_bytes(fs, di);
	bool large = le32_to_cpu(di->i_flags) & VMFS_IF_LARGE;
	int ret = pl->key ? 0 : ib_key(fs, ib, &pl->key);

	pl->loff = off;

	for (size_t done = 0; done < len && !ret;) {
		uint64_t pos = off + done, lblk = pos / bb, in = pos % bb, p;
		size_t n = (size_t)base_min((uint64_t)(len - done), bb - in);
		bool whole = in == 0 && n == bb, shared;

		ret = bmap_get_shared(fs, di, lblk, &p, &shared);
		if (ret)
			break;
		if (shared && large && p && !(p & (VMFS_PTR_TBZ | VMFS_PTR_REDIRECT))) {
			ret = redir_create(fs, ib, lblk, p, &p); /* S3: the shared block is never written */
			shared = false;
		}
		if (!ret && (p & VMFS_PTR_REDIRECT) && !shared) {
			ret = write_redirected(fs, lblk, p, buf + done, in, n, done, pl, how, bb);
			done += n;
			continue;
		}
		if (!ret && shared) {
			ret = (how & MAP_NO_IO) ? -EAGAIN : cow_block(fs, ib, lblk, p, buf + done, (size_t)in, n);
			done += n;
			continue;
		}
		if (!ret && (how & MAP_NO_IO) && (!p || (p & VMFS_PTR_TBZ)))
			ret = -EAGAIN;
		if (ret)
			break;
		if (!p) {
			ret = alloc_for(fs, di, &p);
			if (ret)
				break;
			p |= VMFS_PTR_TBZ;
		}
		if (p & VMFS_PTR_TBZ) {
			if (whole) { /* F2 */
				uint64_t *t = realloc(pl->tbz, (pl->ntbz + 1) * sizeof(*t));
				if (!t) {
					ret = -ENOMEM;
					break;
				}
				pl->tbz = t;
				pl->tbz[pl->ntbz++] = lblk;
			} else { /* F1 */
				ret = dev_zero_range(fs->dev, ptr_dev(p), bb);
				p &= ~VMFS_PTR_TBZ;
			}
			if (!ret)
				ret = bmap_set(fs, ib, lblk, p);
		}
		if (!ret)
			ret = plan_add(pl, ptr_dev(p) + in, done, n);
		done += n;
	}
	return ret;
}

static int zero_past_eof(struct vmfs *fs, struct vbuf *ib, uint64_t old, uint64_t new);

/*
 * A write that lands wholly on allocated, written blocks below the end of the
 * file changes no metadata but the times: it maps under META shared, as a read
 * does, and defers the times (inode.c). Under vi's iolock, shared. Returns 1 if
 * it wrote everything, 0 if the write needs the full path, or -errno. Not with
 * commit_ms = 0, where every write is durable when it returns (the full path
 * commits, and so flushes, each one).
 */
static int write_in_place(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	struct plan pl = { 0 };
	struct vbuf *ib;
	uint64_t igen = 0;
	bool need = true;
	int ret;

	if (!fs->commit_ms)
		return 0;
	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = get_regular(fs, ino, &ib, GET_WRITE);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(ib);

		if (off + len <= le64_to_cpu(di->i_size))
			ret = needs_alloc(fs, di, off, len, &need);
		if (!ret && !need)
			ret = map_for_write(fs, ib, buf, off, len, &pl, MAP_NO_IO); /* nothing to allocate: changes nothing */
		igen = le64_to_cpu(di->i_igen);
		meta_put(fs, ib);
	}
	fs_leave(fs);
	if (!ret && !need)
		ret = plan_run(fs, &pl, true, (uint8_t *)buf);
	plan_release(&pl);
	if (ret || need)
		return ret;
	pthread_mutex_lock(&fs->lock);
	need = !times_defer(fs, ino, igen);
	pthread_mutex_unlock(&fs->lock);
	if (need) { /* no room to defer: write this inode's times now */
		ret = op_begin(fs);
		if (!ret)
			ret = inode_read(fs, ino, &ib);
		if (!ret) {
			ret = meta_dirty(fs, ib);
			if (!ret)
				inode_touch(ib, true, true);
			meta_put(fs, ib);
		}
		ret = op_end(fs, ret);
	}
	return ret ? ret : 1;
}

static ssize_t do_write(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off, bool internal)
{
	/* a write that covers a sector (an encrypted file: a unit) in part merges it: exclusive */
	unsigned ss = crypt_enabled(fs) ? VMFS_UNIT : dev_sector_size(fs->dev);
	bool excl = (off % ss) || ((off + len) % ss), need = false;
	struct plan pl = { 0 };
	struct vinode *vi;
	struct vbuf *ib;
	int ret;

	if (fs->ro)
		return -EROFS;
	if (!len)
		return 0;
	if (off + len < off || off + len > (64ull << 40) * 4)
		return -EFBIG;
	vi = vinode_pin(fs, ino);
	if (!vi)
		return -ENOMEM;
again:
	if (excl)
		pthread_rwlock_wrlock(&vi->iolock);
	else
		pthread_rwlock_rdlock(&vi->iolock);
	if (!excl && !internal) {
		ret = write_in_place(fs, ino, buf, len, off);
		if (ret) {
			ret = ret < 0 ? ret : 0;
			goto out;
		}
	}
	ret = op_begin(fs);
	if (!ret)
		ret = get_regular(fs, ino, &ib, GET_WRITE | (internal ? GET_LINK_OK : 0));
	if (ret)
		goto err_op;
	if (!excl) {
		ret = needs_alloc(fs, ib_inode(ib), off, len, &need);
		if (!ret && need) {
			meta_put(fs, ib);
			op_end(fs, 0);
			pthread_rwlock_unlock(&vi->iolock);
			excl = true;
			goto again;
		}
	}
	if (!ret)
		ret = ensure_layout(fs, ib, off + len);
	if (!ret && off > le64_to_cpu(ib_inode(ib)->i_size))
		ret = zero_past_eof(fs, ib, le64_to_cpu(ib_inode(ib)->i_size), off);
	if (ret)
		goto err_put;
	if (le32_to_cpu(ib_inode(ib)->i_flags) & VMFS_IF_INLINE) {
		struct vmfs_inode_disk *di = ib_inode(ib);
		ret = meta_dirty(fs, ib);
		if (!ret)
			ret = inline_set(fs, ib, off, buf, len);
		if (ret)
			goto err_put;
		if (off + len > le64_to_cpu(di->i_size))
			di->i_size = cpu_to_le64(off + len);
		inode_touch(ib, true, true);
		meta_put(fs, ib);
		ret = op_end(fs, 0);
		goto out;
	}
	ret = map_for_write(fs, ib, buf, off, len, &pl, MAP_ANY);
	meta_put(fs, ib);
	ret = op_end(fs, ret);
	if (ret)
		goto out;

	ret = plan_run(fs, &pl, true, (uint8_t *)buf); /* F3: complete before it becomes reachable */
	if (ret)
		goto out;

	ret = op_begin(fs);
	if (!ret)
		ret = inode_read(fs, ino, &ib);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(ib);
		ret = meta_dirty(fs, ib);
		for (size_t i = 0; !ret && i < pl.ntbz; i++) {
			uint64_t p;
			ret = bmap_get(fs, di, pl.tbz[i], &p);
			if (!ret && (p & VMFS_PTR_TBZ))
				ret = bmap_set(fs, ib, pl.tbz[i], p & ~VMFS_PTR_TBZ);
		}
		for (size_t i = 0; !ret && i < pl.ngr; i++)
			ret = redir_commit(fs, ib, pl.gr[i].lblk, pl.gr[i].first, pl.gr[i].count, excl);
		if (!ret && off + len > le64_to_cpu(di->i_size))
			di->i_size = cpu_to_le64(off + len);
		if (!ret)
			inode_touch(ib, true, true);
		meta_put(fs, ib);
	}
	ret = op_end(fs, ret);
	goto out;
err_put:
	meta_put(fs, ib);
err_op:
	op_end(fs, ret);
out:
	pthread_rwlock_unlock(&vi->iolock);
	vinode_unpin(fs, vi);
	plan_release(&pl);
	return ret ? ret : (ssize_t)len;
}

ssize_t vmfs_pwrite(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	return do_write(fs, ino, buf, len, off, false);
}

int file_write_internal(struct vmfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = do_write(fs, ino, buf, len, off, true);
	return n < 0 ? (int)n : 0;
}

int vmfs_fsync(struct vmfs *fs, uint64_t ino, bool datasync)
{
	int ret;

	(void)ino;
	(void)datasync;
	if (fs->ro)
		return 0;
	ret = times_flush(fs);
	if (ret)
		return ret;
	pthread_mutex_lock(&fs->lock);
	ret = fs->ndirty ? journal_commit(fs) : fs->fatal ? -EIO : dev_flush(fs->dev);
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

/* ---- truncate, fallocate ---------------------------------------------------------------- */

/* Zeroes [from, to) wherever it has data (holes and TBZ blocks read as zeros already). */
static int zero_in_block(struct vmfs *fs, struct vbuf *ib, uint64_t from, uint64_t to)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bb = blk_bytes(fs, di);

	while (from < to) {
		uint64_t end = base_min(to, (from / bb + 1) * bb), p;
		bool shared;
		int ret = bmap_get_shared(fs, di, from / bb, &p, &shared);

		if (ret)
			return ret;
		if (p && !(p & VMFS_PTR_TBZ) && (shared || (p & VMFS_PTR_REDIRECT))) { /* made plain and its own */
			ret = cow_block(fs, ib, from / bb, p, NULL, (size_t)(from % bb), (size_t)(end - from));
			if (ret)
				return ret;
		} else if (p && !(p & VMFS_PTR_TBZ)) {
			struct enc_file *key;
			ret = ib_key(fs, ib, &key);
			if (!ret)
				ret = data_zero(fs, key, ptr_dev(p) + from % bb, from, end - from);
			crypt_file_put(fs, key);
			if (ret)
				return ret;
		}
		from = end;
	}
	return 0;
}

/*
 * The file grows from old to new: whatever the device holds past old must read
 * as zeros. A power cut can leave data there (a write that reached the device
 * whose size update did not), and truncating down clears only the block it
 * cuts, so every growth clears the allocated, not-TBZ blocks in [old, new).
 */
static int zero_past_eof(struct vmfs *fs, struct vbuf *ib, uint64_t old, uint64_t new)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t bb, lblk, found, p;
	int ret;

	if ((le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) || new <= old)
		return 0;
	bb = blk_bytes(fs, di);
	for (lblk = old / bb; lblk * bb < new; lblk = found + 1) {
		ret = bmap_next(fs, di, lblk, &found, &p);
		if (ret <= 0 || found * bb >= new)
			return ret < 0 ? ret : 0;
		ret = zero_in_block(fs, ib, base_max(old, found * bb), base_min(new, (found + 1) * bb));
		if (ret)
			return ret;
	}
	return 0;
}

/* Under the exclusive iolock and in an operation. */
static int truncate_locked(struct vmfs *fs, struct vbuf *ib, uint64_t size)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t old = le64_to_cpu(di->i_size), bb;
	int ret = meta_dirty(fs, ib);

	if (ret)
		return ret;
	if (size > old) {
		ret = ensure_layout(fs, ib, size);
		if (!ret)
			ret = zero_past_eof(fs, ib, old, size);
		if (!ret)
			di->i_size = cpu_to_le64(size);
		return ret;
	}
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		ret = size ? inline_set(fs, ib, size, NULL, VMFS_INLINE_MAX - size) : 0;
		if (!size)
			memset(di->i_root, 0, VMFS_INLINE_MAX);
		if (!ret)
			di->i_size = cpu_to_le64(size);
		return ret;
	}
	bb = blk_bytes(fs, di);
	ret = zero_in_block(fs, ib, size, base_min(base_round_up(size, bb), old));
	if (ret)
		return ret;
	di->i_size = cpu_to_le64(size);
	ret = orphan_add(fs, ib); /* O2: blocks past the size may outlive a crash */
	if (!ret)
		ret = inode_release_space(fs, ib, size);
	if (!ret && di->i_nlink) /* O1: an unlinked inode still held stays on the list */
		ret = orphan_remove(fs, ib);
	if (!ret && size == 0) {
		memset(di->i_root, 0, VMFS_INLINE_MAX);
		set_layout(di, VMFS_IF_INLINE);
	}
	return ret;
}

/* Under the inode's exclusive iolock, in an operation. */
int file_truncate(struct vmfs *fs, uint64_t ino, uint64_t size)
{
	struct vbuf *ib;
	int ret = get_regular(fs, ino, &ib, GET_WRITE);

	if (ret)
		return ret;
	ret = truncate_locked(fs, ib, size);
	if (!ret)
		inode_touch(ib, true, true);
	meta_put(fs, ib);
	return ret;
}

static int count_holes(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t first, uint64_t last, uint64_t *n)
{
	*n = 0;
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		*n = last - first + 1;
		return 0;
	}
	for (uint64_t l = first; l <= last; l++) {
		uint64_t p;
		int ret = bmap_get(fs, di, l, &p);
		if (ret)
			return ret;
		*n += !p;
	}
	return 0;
}

static int falloc_locked(struct vmfs *fs, struct vbuf *ib, int mode, uint64_t off, uint64_t len)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t end = off + len, size = le64_to_cpu(di->i_size), bb, first, last;
	bool keep = mode & FALLOC_FL_KEEP_SIZE, zero = mode & FALLOC_FL_ZERO_RANGE;
	int ret = meta_dirty(fs, ib);

	if (ret)
		return ret;
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		end = base_min(end, size);
		if (off >= end)
			return 0;
		if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE)
			return inline_set(fs, ib, off, NULL, end - off);
		bb = blk_bytes(fs, di);
		first = base_div_round_up(off, bb);
		last = end / bb; /* whole blocks [first, last) */
		if (first >= last)
			return zero_in_block(fs, ib, off, end);
		ret = zero_in_block(fs, ib, off, first * bb);
		if (!ret)
			ret = zero_in_block(fs, ib, last * bb, end);
		for (bool done = false; !ret && !done;) {
			ret = bmap_free_range(fs, ib, first, last, 128, &done);
			if (!ret)
				ret = op_maybe_commit(fs);
		}
		return ret;
	}
	ret = ensure_layout(fs, ib, base_max(end, keep ? 0 : size));
	if (ret)
		return ret;
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		if (zero && base_min(end, size) > off)
			ret = inline_set(fs, ib, off, NULL, base_min(end, size) - off);
		goto size;
	}
	bb = blk_bytes(fs, di);
	first = off / bb;
	last = (end - 1) / bb;
	if (zero) {
		uint64_t f = base_div_round_up(off, bb), l = end / bb;
		if (f >= l) {
			ret = zero_in_block(fs, ib, off, end);
			goto size;
		}
		ret = zero_in_block(fs, ib, off, f * bb);
		if (!ret)
			ret = zero_in_block(fs, ib, l * bb, end);
		first = f;
		last = l - 1;
	}
	if (!ret) {
		uint64_t holes, avail = (fs->free_blocks - base_min(fs->free_blocks, alloc_reserve(fs, ALLOC_DATA))) * fs->upb +
					 fs->free_units_in_pools;
		ret = count_holes(fs, di, first, last, &holes);
		if (!ret && holes * (uint64_t)inode_layout_blkunits(fs, di) > avail)
			ret = -ENOSPC;
	}
	for (uint64_t l = first; !ret && l <= last; l++) {
		uint64_t p;
		bool shared;
		ret = bmap_get_shared(fs, di, l, &p, &shared);
		if (ret || (p && !zero))
			continue;
		if (p && (shared || (p & VMFS_PTR_REDIRECT))) { /* S3: another map's data is not marked to be zeroed: this map lets it go */
			ret = bmap_drop_data(fs, di, p);
			p = 0;
		}
		if (!ret && !p)
			ret = alloc_for(fs, di, &p);
		if (!ret)
			ret = bmap_set(fs, ib, l, p | VMFS_PTR_TBZ);
		if (!ret)
			ret = op_maybe_commit(fs);
	}
size:
	if (!ret && !keep && end > size)
		ret = zero_past_eof(fs, ib, size, end);
	if (!ret && !keep && end > size)
		di->i_size = cpu_to_le64(end);
	return ret;
}

int file_exclusive(struct vmfs *fs, uint64_t ino, unsigned kinds, int (*fn)(struct vmfs *fs, struct vbuf *ib, void *ctx),
		   void *ctx)
{
	struct vinode *vi;
	struct vbuf *ib;
	int ret;

	if (fs->ro)
		return -EROFS;
	vi = vinode_pin(fs, ino);
	if (!vi)
		return -ENOMEM;
	pthread_rwlock_wrlock(&vi->iolock);
	ret = op_begin(fs);
	if (!ret)
		ret = get_regular(fs, ino, &ib, GET_WRITE | kinds);
	if (!ret) {
		ret = fn(fs, ib, ctx);
		meta_put(fs, ib);
	}
	ret = op_end(fs, ret);
	pthread_rwlock_unlock(&vi->iolock);
	vinode_unpin(fs, vi);
	return ret;
}

struct falloc_args {
	int mode;
	uint64_t off, len;
};

static int falloc_fn(struct vmfs *fs, struct vbuf *ib, void *ctx)
{
	const struct falloc_args *a = ctx;
	int ret = falloc_locked(fs, ib, a->mode, a->off, a->len);

	if (!ret)
		inode_touch(ib, !(a->mode == 0 || a->mode == FALLOC_FL_KEEP_SIZE), true);
	return ret;
}

int vmfs_fallocate(struct vmfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	struct falloc_args a = { .mode = mode, .off = off, .len = len };

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)))
		return -EOPNOTSUPP;
	if (!len || off + len < off)
		return -EINVAL;
	if (off + len > (64ull << 40) * 4)
		return -EFBIG;
	return file_exclusive(fs, ino, 0, falloc_fn, &a);
}

int vmfs_lseek(struct vmfs *fs, uint64_t ino, uint64_t off, int whence, uint64_t *out)
{
	struct vmfs_inode_disk *di;
	struct vbuf *ib;
	uint64_t size, bb, lblk, limit, steps = 0;
	int ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = get_regular(fs, ino, &ib, 0);
	if (ret)
		goto out;
	di = ib_inode(ib);
	size = le64_to_cpu(di->i_size);
	if (off >= size) {
		ret = -ENXIO;
		goto put;
	}
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		*out = whence == SEEK_DATA ? off : size;
		goto put;
	}
	bb = blk_bytes(fs, di);
	lblk = off / bb;
	/* a map that leads to more blocks than the data area holds names some twice */
	limit = fs->nblocks * fs->upb / (uint64_t)inode_layout_blkunits(fs, di);
	if (whence == SEEK_DATA) {
		for (;; steps++) {
			uint64_t found, p;
			if (steps > limit)
				goto corrupt;
			ret = bmap_next(fs, di, lblk, &found, &p);
			if (ret < 0)
				goto put;
			if (ret == 0 || found * bb >= size) {
				ret = -ENXIO;
				goto put;
			}
			ret = 0;
			if (!(p & VMFS_PTR_TBZ)) {
				*out = base_max(off, found * bb);
				goto put;
			}
			lblk = found + 1;
		}
	}
	for (; lblk * bb < size; lblk++, steps++) {
		uint64_t p;
		if (steps > limit)
			goto corrupt;
		ret = bmap_get(fs, di, lblk, &p);
		if (ret)
			goto put;
		if (!p || (p & VMFS_PTR_TBZ))
			break;
	}
	*out = base_min(size, base_max(off, lblk * bb));
	goto put;
corrupt:
	fs_err(fs, "inode %llu: the map names more blocks than the datastore holds", (unsigned long long)ino);
	ret = -EUCLEAN;
put:
	meta_put(fs, ib);
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

int vmfs_bmap(struct vmfs *fs, uint64_t ino, uint64_t off, struct vmfs_bmap_info *out)
{
	struct vmfs_inode_disk *di;
	struct vbuf *ib, *rb;
	uint64_t p = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = get_regular(fs, ino, &ib, GET_LINK_OK);
	if (ret)
		goto out;
	di = ib_inode(ib);
	if (off >= le64_to_cpu(di->i_size))
		ret = -ENXIO;
	else if (!(le32_to_cpu(di->i_flags) & VMFS_IF_INLINE))
		ret = bmap_get(fs, di, off / blk_bytes(fs, di), &p);
	meta_put(fs, ib);
	if (!ret && (p & VMFS_PTR_REDIRECT)) { /* the block this map writes */
		struct redir r;
		ret = redir_get(fs, p, &r);
		if (!ret) {
			p = redir_new(&r);
			redir_put(fs, &r);
		}
	}
	p &= VMFS_PTR_ADDR_MASK;
	out->hole = !p;
	if (ret || !p)
		goto out;
	if (!addr_in_data(fs, p)) {
		ret = -EUCLEAN;
		goto out;
	}
	out->dev_off = p * VMFS_UNIT;
	out->rc = fs_unit_block(fs, p) / fs->rc_blocks;
	ret = meta_read(fs, fs->rc_table_unit + out->rc, VMFS_MAGIC_RC, &rb);
	if (ret)
		goto out;
	out->rc_owner_slot1 = le32_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_lock.lr_slot1);
	out->rc_owner_gen = le64_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_lock.lr_gen);
	meta_put(fs, rb);
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

/* ---- asynchronous I/O -------------------------------------------------------------------- */

struct aio_sub {
	struct dev_req dr;              /* first: the device hands back &dr */
	struct vmfs_aio_req *req;
	struct aio_sub *next;
};

/* A bounce buffer's header: the buffer is the rest of its aligned allocation. */
struct bounce {
	struct bounce *next;
	size_t cap;
};
#define BOUNCE_HDR 4096u                /* the buffer stays 4 KiB-aligned */

struct vmfs_aio {
	struct vmfs *fs;
	struct dev_queue *dq;
	unsigned depth, inflight;
	bool batch;                     /* vmfs_aio_set_batch */
	struct aio_sub *free_subs;
	struct bounce *free_bounces;    /* encrypted files' ciphertext buffers, kept for reuse */
	unsigned nfree_bounces;
	struct vmfs_aio_req *done_head, *done_tail;
	struct dev_req **reaped;
};

int vmfs_aio_new(struct vmfs *fs, unsigned depth, struct vmfs_aio **out)
{
	struct vmfs_aio *q = calloc(1, sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	q->fs = fs;
	q->depth = depth ? depth : 32;
	q->reaped = calloc(q->depth * 4, sizeof(*q->reaped));
	ret = q->reaped ? dev_queue_new(fs->dev, q->depth * 4, &q->dq) : -ENOMEM;
	if (ret) {
		free(q->reaped);
		free(q);
		return ret;
	}
	*out = q;
	return 0;
}

/* The second phase of a write through redirects (F3: its data is on the device): their grains' bits. */
static int aio_commit(struct vmfs *fs, struct vmfs_aio_req *r)
{
	const struct grain_run *gr = r->grains;
	struct vbuf *ib;
	int ret = op_begin(fs);

	if (!ret)
		ret = inode_read(fs, r->ino, &ib);
	if (!ret) {
		for (size_t i = 0; !ret && i < r->ngrains; i++)
			ret = redir_commit(fs, ib, gr[i].lblk, gr[i].first, gr[i].count, false); /* iolock shared */
		meta_put(fs, ib);
	}
	return op_end(fs, ret);
}

/*
 * A ciphertext buffer of at least len bytes for an encrypted file's request:
 * one the queue kept, else a new one. Ciphertext is not secret: it is not
 * wiped between uses (a read's plaintext goes straight to the caller's buffer).
 */
static void *bounce_get(struct vmfs_aio *q, size_t len)
{
	struct bounce **pp = &q->free_bounces, *b;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->cap >= len) {
			b = *pp;
			*pp = b->next;
			q->nfree_bounces--;
			return (uint8_t *)b + BOUNCE_HDR;
		}
	b = dev_alloc_big_buf(BOUNCE_HDR + len); /* not zeroed: a write encrypts over all of it */
	if (!b)
		return NULL;
	b->cap = len;
	return (uint8_t *)b + BOUNCE_HDR;
}

static void bounce_put(struct vmfs_aio *q, void *p)
{
	struct bounce *b = (struct bounce *)((uint8_t *)p - BOUNCE_HDR);

	if (q->nfree_bounces >= q->depth) { /* as many as can be in flight */
		free(b);
		return;
	}
	b->next = q->free_bounces;
	q->free_bounces = b;
	q->nfree_bounces++;
}

/* The end of a request: its ciphertext buffer, its key and its file's I/O lock let go. */
static void aio_release(struct vmfs_aio *q, struct vmfs_aio_req *r)
{
	struct vinode *vi = r->vi;

	if (r->bounce) {
		bounce_put(q, r->bounce);
		r->bounce = NULL;
	}
	crypt_file_put(q->fs, r->key);
	r->key = NULL;
	if (vi) {
		pthread_rwlock_unlock(&vi->iolock);
		vinode_unpin(q->fs, vi);
		r->vi = NULL;
	}
	if (r->res >= 0 && r->err)
		r->res = r->err;
}

/*
 * The device is done with r. An encrypted file's read keeps its key and its
 * file's I/O lock until it is reaped: its ciphertext is deciphered in the
 * caller's buffer then (aio_decipher), holes read as zeros and decipher to
 * zeros. So a done request that still holds a key is one to decipher.
 */
static void aio_done(struct vmfs_aio *q, struct vmfs_aio_req *r)
{
	if (r->grains) {
		if (r->res >= 0 && !r->err) {
			int ret = aio_commit(q->fs, r);
			if (ret)
				r->err = ret;
		}
		free(r->grains);
		r->grains = NULL;
		r->ngrains = 0;
	}
	if (!r->key || r->write || r->res < 0 || r->err)
		aio_release(q, r); /* the key goes: nothing to decipher */
	r->next = NULL;
	if (q->done_tail)
		q->done_tail->next = r;
	else
		q->done_head = r;
	q->done_tail = r;
}

static void aio_decipher(struct vmfs_aio *q, struct vmfs_aio_req *r)
{
	if (crypt_run(r->key, false, r->off / VMFS_UNIT, r->buf, r->buf, r->len))
		r->err = -EIO;
	aio_release(q, r);
}

enum aio_how {
	AIO_SYNC,                       /* the synchronous path */
	AIO_READY,                      /* planned */
	AIO_SETUP,                      /* a write through redirects: aio_setup() plans it */
};

/*
 * Maps a read, or an overwrite of allocated blocks, into the plan. A write
 * into blocks another map shares, or into a redirect's clear grains, needs
 * the redirects set up first (AIO_SETUP), when it is grain-aligned. An
 * overwrite defers the file's times as write_in_place() does, and goes the
 * synchronous way with commit_ms = 0 (every write durable on return) or when
 * there is no room to defer them.
 */
static enum aio_how aio_map(struct vmfs *fs, struct vmfs_aio_req *r, struct plan *pl, size_t *len)
{
	unsigned ss = dev_sector_size(fs->dev);
	enum aio_how how = AIO_SYNC;
	struct vmfs_inode_disk *di;
	struct vbuf *ib;
	uint64_t size, bb;
	bool setup = false, large;

	if ((r->off | r->len | (uintptr_t)r->buf) % ss || (r->write && !fs->commit_ms) ||
	    get_regular(fs, r->ino, &ib, r->write ? GET_WRITE : 0))
		return AIO_SYNC;
	di = ib_inode(ib);
	size = le64_to_cpu(di->i_size);
	if ((le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) || r->off + r->len > size)
		goto out; /* short reads and extending writes take the synchronous path */
	if (crypt_enabled(fs) && enc_crypt_present(di->i_crypt)) {
		/* an encrypted file: whole units through a bounce buffer (vmfs_aio_submit), else the synchronous path */
		if ((r->off | r->len) % VMFS_UNIT || ib_key(fs, ib, &pl->key))
			goto out;
		pl->loff = r->off;
	}
	bb = blk_bytes(fs, di);
	large = le32_to_cpu(di->i_flags) & VMFS_IF_LARGE;
	*len = r->len;
	for (size_t done = 0; done < r->len;) {
		uint64_t pos = r->off + done, in = pos % bb, p;
		size_t n = (size_t)base_min((uint64_t)(r->len - done), bb - in);
		bool shared = false, zero;

		if (bmap_get_shared(fs, di, pos / bb, &p, r->write ? &shared : NULL))
			goto out;
		zero = !p || (p & VMFS_PTR_TBZ);
		if (!r->write && zero) {
			memset((uint8_t *)r->buf + done, 0, n); /* a hole reads as zeros */
		} else if (r->write && (zero || (shared && (!large || (p & VMFS_PTR_REDIRECT))))) {
			goto out; /* allocation, or a copy (cow_block) */
		} else if (r->write && shared) {
			setup = true; /* a redirect to make */
		} else if (r->write && (p & VMFS_PTR_REDIRECT)) {
			bool all;

			if (redir_covers(fs, p, in, n, &all))
				goto out;
			if (!all)
				setup = true;
			else if (plan_block(fs, pl, p, in, n, done))
				goto out;
		} else if (plan_block(fs, pl, p, in, n, done)) {
			goto out;
		}
		done += n;
	}
	if (setup) {
		how = (r->off | r->len) % VMFS_GRAIN ? AIO_SYNC : AIO_SETUP;
		goto out;
	}
	how = AIO_READY;
	if (r->write && !times_defer(fs, r->ino, le64_to_cpu(di->i_igen))) /* under fs->lock (fs_enter) */
		how = AIO_SYNC;
out:
	meta_put(fs, ib);
	return how;
}

/*
 * A grain-aligned write into shared blocks or a redirect's clear grains, the
 * iolock held shared: one short operation makes the redirects and plans the
 * data into their own blocks; aio_commit() sets the grains' bits once the data
 * is written. Nothing here waits for data I/O.
 */
static int aio_setup(struct vmfs *fs, struct vmfs_aio_req *r, struct plan *pl)
{
	struct vbuf *ib;
	int ret = op_begin(fs);

	if (!ret)
		ret = get_regular(fs, r->ino, &ib, GET_WRITE);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(ib);

		if ((le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) || r->off + r->len > le64_to_cpu(di->i_size))
			ret = -EAGAIN;
		if (!ret)
			ret = map_for_write(fs, ib, r->buf, r->off, r->len, pl, MAP_NO_IO);
		if (!ret)
			inode_touch(ib, true, true);
		meta_put(fs, ib);
	}
	return op_end(fs, ret);
}

/* Collects what the device finished: at least one request, or with wait = false whatever has. */
static int aio_complete_some(struct vmfs_aio *q, bool wait)
{
	int got = dev_queue_reap(q->dq, wait, q->depth * 4, q->reaped);

	for (int i = 0; i < got; i++) {
		struct aio_sub *s = (struct aio_sub *)q->reaped[i];
		struct vmfs_aio_req *r = s->req;

		q->inflight--;
		if (s->dr.res && !r->err)
			r->err = s->dr.res;
		s->next = q->free_subs;
		q->free_subs = s;
		if (--r->pending == 0)
			aio_done(q, r);
	}
	return got < 0 ? got : 0;
}

int vmfs_aio_submit(struct vmfs_aio *q, struct vmfs_aio_req *r)
{
	struct vmfs *fs = q->fs;
	struct plan pl = { 0 };
	struct vinode *vi;
	size_t len = 0;
	enum aio_how how;
	bool async;

	if (r->write && fs->ro)
		return -EROFS;
	r->err = 0;
	r->res = 0;
	r->pending = 0;
	r->vi = NULL;
	r->grains = NULL;
	r->ngrains = 0;
	r->bounce = r->key = NULL;
	vi = vinode_pin(fs, r->ino);
	if (!vi)
		return -ENOMEM;
	pthread_rwlock_rdlock(&vi->iolock);
	how = AIO_SYNC;
	if (!fs_enter(fs, false)) { /* refused: the synchronous path below reports it */
		how = aio_map(fs, r, &pl, &len);
		fs_leave(fs);
	}
	if (how == AIO_SETUP) {
		plan_release(&pl);
		how = aio_setup(fs, r, &pl) ? AIO_SYNC : AIO_READY;
		if (how == AIO_SYNC)
			plan_release(&pl);
		r->grains = pl.gr; /* aio_done() sets their bits */
		r->ngrains = pl.ngr;
		pl.gr = NULL;
		pl.ngr = 0;
	}
	async = how == AIO_READY;
	if (!async || pl.n == 0) {
		pthread_rwlock_unlock(&vi->iolock);
		/*
		 * The synchronous path may need the iolock exclusive, which this
		 * queue's own requests in flight hold shared: finish them first.
		 */
		while (!async && q->inflight) {
			int ret = aio_complete_some(q, true);
			if (ret) {
				vinode_unpin(fs, vi);
				plan_release(&pl);
				return ret;
			}
		}
		vinode_unpin(fs, vi);
		if (async) /* all holes */
			r->res = (ssize_t)len;
		else
			r->res = r->write ? vmfs_pwrite(fs, r->ino, r->buf, r->len, r->off)
					  : vmfs_pread(fs, r->ino, r->buf, r->len, r->off);
		plan_release(&pl);
		aio_done(q, r);
		return 0;
	}
	r->vi = vi;
	r->res = (ssize_t)len;
	if (pl.key) {
		/*
		 * The device sees ciphertext: a write's units are encrypted into a
		 * bounce buffer; a read reads straight into the caller's buffer,
		 * deciphered there when it is reaped (aio_decipher), its holes
		 * already zeros (aio_map), which decipher to zeros.
		 */
		if (r->write) {
			r->bounce = bounce_get(q, r->len);
			if (!r->bounce || crypt_run(pl.key, true, r->off / VMFS_UNIT, r->buf, r->bounce, r->len))
				r->err = r->bounce ? -EIO : -ENOMEM;
		}
		r->key = pl.key;
		pl.key = NULL;
	}
	for (size_t i = 0; i < pl.n && !r->err; i++) {
		struct aio_sub *s = q->free_subs;
		int ret;

		if (s)
			q->free_subs = s->next;
		else if (!(s = calloc(1, sizeof(*s)))) {
			r->err = -ENOMEM;
			break;
		}
		s->req = r;
		s->dr = (struct dev_req){ .op = r->write ? DEV_OP_WRITE : DEV_OP_READ,
					  .buf = (uint8_t *)(r->bounce ? r->bounce : r->buf) + pl.ext[i].buf_off,
					  .len = pl.ext[i].len, .off = pl.ext[i].dev_off };
		ret = dev_queue_submit(q->dq, &s->dr);
		if (ret) {
			s->next = q->free_subs;
			q->free_subs = s;
			r->err = ret;
			break;
		}
		r->pending++;
		q->inflight++;
	}
	plan_release(&pl);
	if (!r->pending)
		aio_done(q, r);
	else if (!q->batch)
		dev_queue_kick(q->dq);   /* start it now: see vmfs.h */
	return 0;
}

int vmfs_aio_reap(struct vmfs_aio *q, unsigned min, struct vmfs_aio_req **out, unsigned max)
{
	unsigned n = 0;

	if (!min && q->inflight) {
		int ret = aio_complete_some(q, false);
		if (ret)
			return ret;
	}
	for (;;) {
		while (q->done_head && n < max) {
			struct vmfs_aio_req *r = q->done_head;

			/*
			 * A waiting reaper that has its min deciphers no more large
			 * reads: the rest waits for its next reaps, and it refills
			 * the device in between instead of letting it idle while it
			 * deciphers a whole burst of completions. Small ones are
			 * deciphered at once (a reap each would cost more).
			 */
			if (r->key && r->len >= DEV_BIG_BUF && min && n >= min) /* a key: to decipher (aio_done) */
				return (int)n;
			q->done_head = r->next;
			if (!q->done_head)
				q->done_tail = NULL;
			if (r->key)
				aio_decipher(q, r);
			out[n++] = r;
		}
		if (n >= min || n == max || !q->inflight)
			return (int)n;
		int ret = aio_complete_some(q, true);
		if (ret)
			return ret;
	}
}

void vmfs_aio_set_batch(struct vmfs_aio *q, bool batch)
{
	q->batch = batch;
}

int vmfs_aio_eventfd(struct vmfs_aio *q)
{
	return dev_queue_eventfd(q->dq);
}

void vmfs_aio_free(struct vmfs_aio *q)
{
	struct vmfs_aio_req *tmp[64];

	if (!q)
		return;
	while (q->inflight || q->done_head)
		if (vmfs_aio_reap(q, 1, tmp, 64) < 0)
			break;
	while (q->free_bounces) {
		struct bounce *b = q->free_bounces;
		q->free_bounces = b->next;
		free(b);
	}
	while (q->free_subs) {
		struct aio_sub *s = q->free_subs;
		q->free_subs = s->next;
		free(s);
	}
	dev_queue_free(q->dq);
	free(q->reaped);
	free(q);
}
