/*
 * Redirects (docs/FORMAT.md, "Redirects"): how a LARGE map writes into a file
 * block that another map shares without copying the block. The map's entry
 * becomes a REDIRECT pointer naming a 4 KiB sub-block that holds the shared
 * block (backing), a block of this map's own (new) and a bitmap of 4 KiB
 * grains: a set grain reads from new, a clear one from backing.
 *
 * A first write is two short operations with the data between them, as TBZ
 * is (F2): redir_create() makes the redirect with no bit set (no data I/O
 * under fs->lock), the grains are written into new like any overwrite, and
 * redir_commit() sets their bits once that data is on the device. A crash in
 * between shows the old grains. When every bit is set the redirect collapses:
 * the entry names new directly, the redirect is freed and backing loses the
 * count the redirect held.
 *
 * A redirect is shared the way a pointer block is (S1, S2): a snapshot of a
 * map that has one counts the redirect again. A shared redirect is never
 * changed; a write through it first makes the block plain and exclusive
 * (file.c, cow_block), so new is always written by one map.
 */
#include "vmfs/vmfs_i.h"

static unsigned grains_of(struct vmfs *fs)
{
	return fs->block_size / VMFS_GRAIN;
}

static struct vmfs_redir_disk *rd(struct vbuf *rb)
{
	return (struct vmfs_redir_disk *)rb->data;
}

bool redir_bit(struct vbuf *rb, unsigned g)
{
	return rd(rb)->rd_bits[g / 8] & (1u << (g % 8));
}

static bool bad_block(struct vmfs *fs, uint64_t p)
{
	return !p || (p & ~VMFS_PTR_ADDR_MASK) || !addr_in_data(fs, p) || !unit_is_block(fs, p);
}

int redir_read(struct vmfs *fs, uint64_t p, struct vbuf **out)
{
	uint64_t a = p & VMFS_PTR_ADDR_MASK;
	struct vmfs_redir_disk *d;
	unsigned n = grains_of(fs);
	int ret = meta_read(fs, a, VMFS_MAGIC_REDIR, out);

	if (ret)
		return ret;
	d = rd(*out);
	ret = bad_block(fs, le64_to_cpu(d->rd_backing)) || bad_block(fs, le64_to_cpu(d->rd_new)) ||
	      le64_to_cpu(d->rd_backing) == le64_to_cpu(d->rd_new) || le32_to_cpu(d->rd_grains) != n ||
	      !base_all_zero(d->rd_pad, sizeof(d->rd_pad));
	ret = ret || !base_all_zero(d->rd_bits + n / 8, sizeof(d->rd_bits) - n / 8); /* n is a multiple of 16 */
	if (ret) {
		fs_err(fs, "redirect sub-block %llu is damaged", (unsigned long long)a);
		meta_put(fs, *out);
		*out = NULL;
		return -EUCLEAN;
	}
	return 0;
}

uint64_t redir_backing(struct vbuf *rb)
{
	return le64_to_cpu(rd(rb)->rd_backing);
}

uint64_t redir_new(struct vbuf *rb)
{
	return le64_to_cpu(rd(rb)->rd_new);
}

uint64_t redir_locate(struct vbuf *rb, uint64_t in, uint64_t n, uint64_t *run)
{
	unsigned g = (unsigned)(in / VMFS_GRAIN);
	bool set = redir_bit(rb, g);
	uint64_t end = (uint64_t)(g + 1) * VMFS_GRAIN;

	while (end < in + n && redir_bit(rb, (unsigned)(end / VMFS_GRAIN)) == set)
		end += VMFS_GRAIN;
	*run = base_min(end, in + n) - in;
	return (set ? redir_new(rb) : redir_backing(rb)) * VMFS_UNIT + in;
}

bool redir_all_set(struct vmfs *fs, struct vbuf *rb, unsigned first, unsigned count)
{
	for (unsigned g = first; g < first + count && g < grains_of(fs); g++)
		if (!redir_bit(rb, g))
			return false;
	return true;
}

int redir_read_block(struct vmfs *fs, uint64_t p, uint8_t *blk)
{
	struct vbuf *rb;
	int ret = redir_read(fs, p, &rb);

	if (ret)
		return ret;
	for (uint64_t in = 0, run; !ret && in < fs->block_size; in += run) {
		uint64_t dev = redir_locate(rb, in, fs->block_size - in, &run);
		ret = dev_pread(fs->dev, blk + in, run, dev);
	}
	meta_put(fs, rb);
	return ret;
}

int redir_create(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t backing, uint64_t *out)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct vmfs_redir_disk *d;
	uint64_t q, r;
	struct vbuf *rb;
	int ret = alloc_block(fs, &q);

	if (ret)
		return ret;
	ret = alloc_unit(fs, ALLOC_DATA, &r);
	if (ret)
		return ret; /* the operation rolls back: q is not lost */
	ret = meta_new(fs, r, VMFS_MAGIC_REDIR, ib->addr, &rb);
	if (ret)
		return ret;
	d = rd(rb);
	d->rd_backing = cpu_to_le64(backing);
	d->rd_new = cpu_to_le64(q);
	d->rd_grains = cpu_to_le32(grains_of(fs));
	meta_put(fs, rb);
	/* the map named backing (block units); it now names r and q, and r names backing */
	ret = bmap_set(fs, ib, lblk, r | VMFS_PTR_REDIRECT);
	if (!ret)
		di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) + 1);
	if (!ret)
		*out = r | VMFS_PTR_REDIRECT;
	return ret;
}

int redir_commit(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, unsigned first, unsigned count, bool may_free)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t p, backing;
	uint16_t ref;
	struct vbuf *rb;
	bool shared;
	int ret = bmap_get_shared(fs, di, lblk, &p, &shared);

	if (ret || !(p & VMFS_PTR_REDIRECT))
		return ret; /* collapsed by another write that finished first */
	if (shared) {
		fs_err(fs, "inode %llu: redirect %llu is shared while a write through it finishes",
		       (unsigned long long)ib->addr, (unsigned long long)(p & VMFS_PTR_ADDR_MASK));
		return -EUCLEAN;
	}
	ret = redir_read(fs, p, &rb);
	if (ret)
		return ret;
	if (first + count > grains_of(fs))
		ret = -EINVAL;
	if (!ret && !redir_all_set(fs, rb, first, count)) {
		ret = meta_dirty(fs, rb);
		for (unsigned g = first; !ret && g < first + count; g++)
			rd(rb)->rd_bits[g / 8] |= (uint8_t)(1u << (g % 8));
	}
	backing = redir_backing(rb);
	if (ret || !redir_all_set(fs, rb, 0, grains_of(fs))) {
		meta_put(fs, rb);
		return ret;
	}
	/*
	 * Every grain is in new: the entry names it alone. A reader may still
	 * have backing's place in flight (it planned before the last bit was
	 * set), so backing is let go only when the caller holds the iolock
	 * exclusive or another map keeps it.
	 */
	ret = ref_get(fs, backing, &ref);
	if (!ret && (may_free || ref > 1)) {
		ret = bmap_set(fs, ib, lblk, redir_new(rb));
		if (!ret)
			ret = free_unit(fs, p & VMFS_PTR_ADDR_MASK);
		if (!ret)
			ret = free_block(fs, backing);
		if (!ret)
			di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) - 1);
	}
	meta_put(fs, rb);
	return ret;
}

int redir_drop(struct vmfs *fs, uint64_t p)
{
	uint64_t a = p & VMFS_PTR_ADDR_MASK;
	struct vbuf *rb;
	uint16_t ref;
	int ret = ref_get(fs, a, &ref);

	if (ret)
		return ret;
	if (ref > 1)
		return free_unit(fs, a); /* another map keeps it, and what it names */
	ret = redir_read(fs, p, &rb);
	if (ret)
		return ret;
	ret = free_block(fs, redir_new(rb));
	if (!ret)
		ret = free_block(fs, redir_backing(rb));
	meta_put(fs, rb);
	if (!ret)
		ret = free_unit(fs, a);
	return ret;
}
