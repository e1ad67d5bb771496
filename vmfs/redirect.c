/*
 * Redirects (docs/FORMAT.md, "Redirects"): how a LARGE map writes into a file
 * block that another map shares without copying the block. The map's entry
 * becomes a REDIRECT pointer naming a slot of a redirect table (a 4 KiB
 * sub-block of up to 64 slots); the slot holds the shared block (backing), a
 * block of this map's own (new) and a bitmap of 4 KiB grains: a set grain
 * reads from new, a clear one from backing.
 *
 * A first write is two short operations with the data between them, as TBZ
 * is (F2): redir_create() fills a free slot with no bit set (no data I/O
 * under fs->lock), the grains are written into new like any overwrite, and
 * redir_commit() sets their bits once that data is on the device. A crash in
 * between shows the old grains. When every bit is set the slot collapses: the
 * entry names new directly, the slot is freed and backing loses the count the
 * slot held. Packing 64 redirects into one sub-block keeps the journal from
 * filling with one new block per first write.
 *
 * A slot is counted like a pointer block (S1, S2), in its own rs_ref: a
 * snapshot of a map that has one counts the slot again. A shared slot is never
 * changed; a write through it first makes the block plain and exclusive
 * (file.c, cow_block), so new is always written by one map.
 */
#include "vmfs/vmfs_i.h"

static unsigned grains_of(struct vmfs *fs)
{
	return fs->block_size / VMFS_GRAIN;
}

static struct vmfs_redir_disk *rt(struct vbuf *b)
{
	return (struct vmfs_redir_disk *)b->data;
}

struct vmfs_redir_slot *redir_slot(struct vmfs *fs, struct vbuf *b, unsigned s)
{
	return (struct vmfs_redir_slot *)(rt(b)->rd_slot + (size_t)s * vmfs_redir_slot_size(grains_of(fs)));
}

static unsigned slot_of(uint64_t p)
{
	return (unsigned)((p & VMFS_PTR_SLOT_MASK) >> VMFS_PTR_SLOT_SHIFT);
}

bool redir_bit(const struct redir *r, unsigned g)
{
	return r->s->rs_bits[g / 8] & (1u << (g % 8));
}

static bool bad_block(struct vmfs *fs, uint64_t p)
{
	return !p || (p & ~VMFS_PTR_ADDR_MASK) || !addr_in_data(fs, p) || !unit_is_block(fs, p);
}

/* The table at unit, checked as a whole; slots in use are checked when read. */
int redir_table_read(struct vmfs *fs, uint64_t unit, struct vbuf **out)
{
	unsigned n = grains_of(fs), size = vmfs_redir_slot_size(n), slots = vmfs_redir_slots(n);
	struct vmfs_redir_disk *d;
	int ret = meta_read(fs, unit, VMFS_MAGIC_REDIR, out);

	if (ret)
		return ret;
	d = rt(*out);
	if (le32_to_cpu(d->rd_grains) != n || le16_to_cpu(d->rd_slots) != slots ||
	    le16_to_cpu(d->rd_used) > slots || !base_all_zero(d->rd_pad, sizeof(d->rd_pad)) ||
	    !base_all_zero(d->rd_slot + (size_t)slots * size, sizeof(d->rd_slot) - (size_t)slots * size)) {
		fs_err(fs, "redirect table %llu is damaged", (unsigned long long)unit);
		meta_put(fs, *out);
		*out = NULL;
		return -EUCLEAN;
	}
	return 0;
}

/* Whether slot s of table b (in use) is well formed. */
static bool slot_ok(struct vmfs *fs, struct vbuf *b, unsigned s)
{
	struct vmfs_redir_slot *sl = redir_slot(fs, b, s);
	unsigned n = grains_of(fs), bytes = vmfs_redir_slot_size(n) - (unsigned)sizeof(*sl);
	uint64_t back = le64_to_cpu(sl->rs_backing), nw = le64_to_cpu(sl->rs_new);

	return le16_to_cpu(sl->rs_ref) && le16_to_cpu(sl->rs_ref) <= VMFS_REF_MAX &&
	       base_all_zero(sl->rs_pad, sizeof(sl->rs_pad)) && !bad_block(fs, back) && !bad_block(fs, nw) &&
	       back != nw && base_all_zero(sl->rs_bits + n / 8, bytes - n / 8);
}

int redir_get(struct vmfs *fs, uint64_t p, struct redir *r)
{
	uint64_t a = p & VMFS_PTR_ADDR_MASK;
	unsigned s = slot_of(p);
	int ret = redir_table_read(fs, a, &r->b);

	if (ret)
		return ret;
	if (s >= le16_to_cpu(rt(r->b)->rd_slots) || !slot_ok(fs, r->b, s)) {
		fs_err(fs, "redirect %llu slot %u is damaged or free", (unsigned long long)a, s);
		meta_put(fs, r->b);
		r->b = NULL;
		return -EUCLEAN;
	}
	r->s = redir_slot(fs, r->b, s);
	return 0;
}

void redir_put(struct vmfs *fs, struct redir *r)
{
	meta_put(fs, r->b);
	r->b = NULL;
}

uint64_t redir_backing(const struct redir *r)
{
	return le64_to_cpu(r->s->rs_backing);
}

uint64_t redir_new(const struct redir *r)
{
	return le64_to_cpu(r->s->rs_new);
}

uint64_t redir_locate(const struct redir *r, uint64_t in, uint64_t n, uint64_t *run)
{
	unsigned g = (unsigned)(in / VMFS_GRAIN);
	bool set = redir_bit(r, g);
	uint64_t end = (uint64_t)(g + 1) * VMFS_GRAIN;

	while (end < in + n && redir_bit(r, (unsigned)(end / VMFS_GRAIN)) == set)
		end += VMFS_GRAIN;
	*run = base_min(end, in + n) - in;
	return (set ? redir_new(r) : redir_backing(r)) * VMFS_UNIT + in;
}

static bool redir_all_set(struct vmfs *fs, const struct redir *r, unsigned first, unsigned count)
{
	for (unsigned g = first; g < first + count && g < grains_of(fs); g++)
		if (!redir_bit(r, g))
			return false;
	return true;
}

int redir_covers(struct vmfs *fs, uint64_t p, uint64_t in, uint64_t n, bool *all)
{
	struct redir r;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	*all = redir_all_set(fs, &r, (unsigned)(in / VMFS_GRAIN),
			     (unsigned)((in + n - 1) / VMFS_GRAIN - in / VMFS_GRAIN + 1));
	redir_put(fs, &r);
	return 0;
}

int redir_read_block(struct vmfs *fs, uint64_t p, uint8_t *blk)
{
	struct redir r;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	for (uint64_t in = 0, run; !ret && in < fs->block_size; in += run) {
		uint64_t dev = redir_locate(&r, in, fs->block_size - in, &run);
		ret = dev_pread(fs->dev, blk + in, run, dev);
	}
	redir_put(fs, &r);
	return ret;
}

int redir_ref_get(struct vmfs *fs, uint64_t p, uint16_t *ref)
{
	struct redir r;
	int ret = redir_get(fs, p, &r);

	if (!ret) {
		*ref = le16_to_cpu(r.s->rs_ref);
		redir_put(fs, &r);
	}
	return ret;
}

int redir_ref_add(struct vmfs *fs, uint64_t p)
{
	struct redir r;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	if (le16_to_cpu(r.s->rs_ref) >= VMFS_REF_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = meta_dirty(fs, r.b);
	if (!ret)
		r.s->rs_ref = cpu_to_le16(le16_to_cpu(r.s->rs_ref) + 1);
	redir_put(fs, &r);
	return ret;
}

/* A table with a free slot: the one last used when it still has room, else a new one. */
static int table_with_room(struct vmfs *fs, uint64_t owner, struct vbuf **out, unsigned *slot)
{
	unsigned n = grains_of(fs), slots = vmfs_redir_slots(n);
	uint64_t unit = fs->redir_hint;
	uint16_t ref;
	int ret;

	/*
	 * The hint names a table this host gave a slot in a committed or
	 * running operation, dropped when the table is freed here and when
	 * another host's changes invalidate the cache (cluster.c); the count
	 * is checked anyway.
	 */
	if (unit && !ref_get(fs, unit, &ref) && ref == 1 && !redir_table_read(fs, unit, out)) {
		if (le16_to_cpu(rt(*out)->rd_used) < slots) {
			for (unsigned s = 0; s < slots; s++) {
				if (!le16_to_cpu(redir_slot(fs, *out, s)->rs_ref)) {
					*slot = s;
					ret = meta_dirty(fs, *out);
					if (ret)
						meta_put(fs, *out);
					return ret;
				}
			}
		}
		meta_put(fs, *out);
	}
	ret = alloc_unit(fs, ALLOC_DATA, &unit);
	if (!ret)
		ret = meta_new(fs, unit, VMFS_MAGIC_REDIR, owner, out);
	if (ret)
		return ret; /* the operation rolls back */
	rt(*out)->rd_grains = cpu_to_le32(n);
	rt(*out)->rd_slots = cpu_to_le16((uint16_t)slots);
	*slot = 0;
	return 0;
}

int redir_create(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t backing, uint64_t *out)
{
	struct vmfs_redir_slot *sl;
	struct vbuf *b;
	unsigned s;
	uint64_t q, p;
	int ret = alloc_block(fs, &q);

	if (ret)
		return ret;
	ret = table_with_room(fs, ib->addr, &b, &s);
	if (ret)
		return ret;
	sl = redir_slot(fs, b, s);
	memset(sl, 0, vmfs_redir_slot_size(grains_of(fs)));
	sl->rs_ref = cpu_to_le16(1);
	sl->rs_backing = cpu_to_le64(backing);
	sl->rs_new = cpu_to_le64(q);
	rt(b)->rd_used = cpu_to_le16(le16_to_cpu(rt(b)->rd_used) + 1);
	p = b->addr | VMFS_PTR_REDIRECT | ((uint64_t)s << VMFS_PTR_SLOT_SHIFT);
	meta_put(fs, b);
	/* the map named backing; it now names the slot, which names backing (its count moves) and q */
	ret = bmap_set(fs, ib, lblk, p);
	if (!ret) {
		fs->redir_hint = p & VMFS_PTR_ADDR_MASK; /* not before: a rolled-back table is freed again */
		*out = p;
	}
	return ret;
}

/* Slot p's count is 0 now: the slot is free, and the table with it when it was the last. */
static int slot_free(struct vmfs *fs, struct redir *r, uint64_t p)
{
	uint16_t used = le16_to_cpu(rt(r->b)->rd_used);

	memset(r->s, 0, vmfs_redir_slot_size(grains_of(fs)));
	rt(r->b)->rd_used = cpu_to_le16(used ? used - 1 : 0);
	if (used > 1)
		return 0;
	if (fs->redir_hint == (p & VMFS_PTR_ADDR_MASK))
		fs->redir_hint = 0;
	return free_unit(fs, p & VMFS_PTR_ADDR_MASK);
}

int redir_commit(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, unsigned first, unsigned count, bool may_free)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t p, backing, q;
	struct redir r;
	uint16_t ref;
	bool shared;
	int ret = bmap_get_shared(fs, di, lblk, &p, &shared);

	if (ret || !(p & VMFS_PTR_REDIRECT))
		return ret; /* collapsed by another write that finished first */
	if (shared) {
		fs_err(fs, "inode %llu: redirect %llu is shared while a write through it finishes",
		       (unsigned long long)ib->addr, (unsigned long long)(p & VMFS_PTR_ADDR_MASK));
		return -EUCLEAN;
	}
	if (first + count > grains_of(fs))
		return -EINVAL;
	ret = redir_get(fs, p, &r);
	if (ret)
		return ret;
	if (!redir_all_set(fs, &r, first, count)) {
		ret = meta_dirty(fs, r.b);
		for (unsigned g = first; !ret && g < first + count; g++)
			r.s->rs_bits[g / 8] |= (uint8_t)(1u << (g % 8));
	}
	backing = redir_backing(&r);
	q = redir_new(&r);
	if (!ret && redir_all_set(fs, &r, 0, grains_of(fs))) {
		/*
		 * Every grain is in new: the entry names it alone. A reader may
		 * still have backing's place in flight (it planned before the last
		 * bit was set), so backing is let go only when the caller holds the
		 * iolock exclusive or another map keeps it.
		 */
		ret = ref_get(fs, backing, &ref);
		if (!ret && (may_free || ref > 1)) {
			ret = meta_dirty(fs, r.b);
			if (!ret)
				ret = slot_free(fs, &r, p);
			if (!ret)
				ret = bmap_set(fs, ib, lblk, q);
			if (!ret)
				ret = free_block(fs, backing);
		}
	}
	redir_put(fs, &r);
	return ret;
}

int redir_drop(struct vmfs *fs, uint64_t p)
{
	uint64_t backing, q;
	struct redir r;
	int ret = redir_get(fs, p, &r);

	if (ret)
		return ret;
	ret = meta_dirty(fs, r.b);
	if (!ret && le16_to_cpu(r.s->rs_ref) > 1) { /* another map keeps it, and what it names */
		r.s->rs_ref = cpu_to_le16(le16_to_cpu(r.s->rs_ref) - 1);
		redir_put(fs, &r);
		return 0;
	}
	backing = redir_backing(&r);
	q = redir_new(&r);
	if (!ret)
		ret = slot_free(fs, &r, p);
	redir_put(fs, &r);
	if (!ret)
		ret = free_block(fs, q);
	if (!ret)
		ret = free_block(fs, backing);
	return ret;
}
