/*
 * The file map: logical block -> unit address, a radix tree whose 256 root
 * pointers live in the inode and whose pointer blocks hold 496 each. A map of
 * height h covers 256 * 496^(h-1) blocks; height 3 with 1 MiB blocks is 60 TiB,
 * height 4 far beyond 64 TiB. Small files map 4 KiB sub-blocks, large files map
 * file blocks; the inode's layout flag says which.
 *
 * Invariants: a zero pointer is a hole at every level; a pointer block's level
 * (mh_flags) is one less than its parent's; a pointer block with no non-zero
 * entry is freed; every pointer is checked (reserved bits, range, alignment)
 * before it is followed.
 *
 * Shared maps (VMFS_IF_SHARED, docs/FORMAT.md "Shared blocks"): a pointer
 * block whose count is above 1 belongs to several maps and is never changed in
 * place. S1: bmap_set() and bmap_free_range() copy it first (own_ptr: a new
 * pointer block with the same entries, each child counted once more, the old
 * one counted once less), so a change reaches only the map it was made in.
 * S2: a shared subtree that a free covers wholly is not entered: its root's
 * count drops by one, which frees it only when this map was its last user.
 * A data entry of a LARGE map may be a REDIRECT pointer (redirect.c): a slot
 * of a redirect table, counted in the slot, that names two blocks.
 */
#include "vmfs/vmfs_i.h"

uint64_t bmap_capacity(unsigned height)
{
	uint64_t cap = height ? VMFS_ROOT_PTRS : 0;
	for (unsigned i = 1; i < height; i++)
		cap *= VMFS_PTRS_PER_BLOCK;
	return cap;
}

static uint64_t span_of(unsigned level) /* blocks covered by one entry of a level-`level` node */
{
	uint64_t s = 1;
	for (unsigned i = 1; i < level; i++)
		s *= VMFS_PTRS_PER_BLOCK;
	return s;
}

int inode_layout_blkunits(struct vmfs *fs, struct vmfs_inode_disk *di)
{
	return le32_to_cpu(di->i_flags) & VMFS_IF_LARGE ? (int)fs->upb : 1;
}

static bool map_shared(struct vmfs_inode_disk *di)
{
	return le32_to_cpu(di->i_flags) & VMFS_IF_SHARED;
}

int ptr_ref_get(struct vmfs *fs, uint64_t p, uint16_t *ref)
{
	return p & VMFS_PTR_REDIRECT ? redir_ref_get(fs, p, ref) : ref_get(fs, p & VMFS_PTR_ADDR_MASK, ref);
}

int ptr_ref_add(struct vmfs *fs, uint64_t p)
{
	return p & VMFS_PTR_REDIRECT ? redir_ref_add(fs, p) : ref_add(fs, p & VMFS_PTR_ADDR_MASK);
}

/* Whether the block or pointer block at p has users besides this map: never for a map that shares nothing. */
static int ptr_shared(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p, bool *shared)
{
	uint16_t ref = 1;
	int ret = map_shared(di) ? ptr_ref_get(fs, p, &ref) : 0;

	*shared = ref > 1;
	return ret;
}

static le64 *root_ptrs(struct vmfs_inode_disk *di)
{
	return (le64 *)di->i_root;
}

static int check_ptr(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p, bool data)
{
	uint64_t a = p & VMFS_PTR_ADDR_MASK;

	if (!p)
		return 0;
	bool large = le32_to_cpu(di->i_flags) & VMFS_IF_LARGE, redir = p & VMFS_PTR_REDIRECT;

	if (((p & VMFS_PTR_RESERVED) && !redir) || !addr_in_data(fs, a) ||
	    (!data && (p & (VMFS_PTR_TBZ | VMFS_PTR_REDIRECT))) ||
	    (redir && ((p & VMFS_PTR_TBZ) || !large || unit_is_block(fs, a) ||
		       !(le64_to_cpu(fs->sb.sb_incompat) & VMFS_INCOMPAT_SHARED))) ||
	    (data && large && !redir && !unit_is_block(fs, a))) {
		fs_err(fs, "inode %llu: bad block pointer 0x%llx", (unsigned long long)le64_to_cpu(di->i_hdr.mh_addr),
		       (unsigned long long)p);
		return -EUCLEAN;
	}
	return 0;
}

static int ptr_read(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t addr, unsigned level, struct vbuf **out)
{
	int ret = meta_read(fs, addr, VMFS_MAGIC_PTR, out);

	if (ret)
		return ret;
	if (le16_to_cpu(((struct vmfs_mhdr *)(*out)->data)->mh_flags) != level) {
		fs_err(fs, "inode %llu: pointer block %llu has level %u, expected %u",
		       (unsigned long long)le64_to_cpu(di->i_hdr.mh_addr), (unsigned long long)addr,
		       le16_to_cpu(((struct vmfs_mhdr *)(*out)->data)->mh_flags), level);
		meta_put(fs, *out);
		return -EUCLEAN;
	}
	return 0;
}

/* With shared not NULL, also tells whether any block on the way (or the data block) has other users. */
static int get_rec(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *ptr, bool *shared)
{
	unsigned h = di->i_height, level;
	uint64_t span, p;
	int ret;

	*ptr = 0;
	if (shared)
		*shared = false;
	if (h > VMFS_MAX_HEIGHT)
		return -EUCLEAN;
	if (lblk >= bmap_capacity(h))
		return 0;
	span = span_of(h);
	p = le64_to_cpu(root_ptrs(di)[lblk / span]);
	lblk %= span;
	for (level = h - 1; level > 0; level--) {
		struct vbuf *b;
		ret = check_ptr(fs, di, p, false);
		if (ret || !p)
			return ret;
		if (shared && !*shared && (ret = ptr_shared(fs, di, p, shared)))
			return ret;
		ret = ptr_read(fs, di, p, level, &b);
		if (ret)
			return ret;
		span /= VMFS_PTRS_PER_BLOCK;
		p = le64_to_cpu(((struct vmfs_ptr_disk *)b->data)->pb_ptr[lblk / span]);
		lblk %= span;
		meta_put(fs, b);
	}
	ret = check_ptr(fs, di, p, true);
	if (!ret && p && shared && !*shared)
		ret = ptr_shared(fs, di, p, shared);
	if (!ret)
		*ptr = p;
	return ret;
}

int bmap_get(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *ptr)
{
	return get_rec(fs, di, lblk, ptr, NULL);
}

int bmap_get_shared(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *ptr, bool *shared)
{
	return get_rec(fs, di, lblk, ptr, shared);
}

static int new_ptr_block(struct vmfs *fs, struct vbuf *ib, unsigned level, struct vbuf **out)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t unit;
	int ret = alloc_unit(fs, ALLOC_DATA, &unit);

	if (ret)
		return ret;
	ret = meta_new(fs, unit, VMFS_MAGIC_PTR, ib->addr, out);
	if (ret)
		return ret;
	((struct vmfs_mhdr *)(*out)->data)->mh_flags = cpu_to_le16(level);
	di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) + 1);
	return 0;
}

/*
 * S1: the pointer block *slot names (level `level`, read into *b), made this
 * map's own. If other maps share it, a copy replaces it: each non-zero entry
 * gains a reference, the old block loses one, and *slot (in a block the caller
 * has dirtied) names the copy. Returns the block to change, dirtied.
 */
static int own_ptr(struct vmfs *fs, struct vbuf *ib, le64 *slot, unsigned level, struct vbuf **b)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t p = le64_to_cpu(*slot);
	struct vbuf *nb;
	bool shared;
	int ret = ptr_shared(fs, di, p, &shared);

	if (ret)
		return ret;
	if (!shared)
		return meta_dirty(fs, *b);
	ret = new_ptr_block(fs, ib, level, &nb);
	if (ret)
		return ret;
	memcpy(((struct vmfs_ptr_disk *)nb->data)->pb_ptr, ((struct vmfs_ptr_disk *)(*b)->data)->pb_ptr,
	       sizeof(((struct vmfs_ptr_disk *)nb->data)->pb_ptr));
	for (unsigned i = 0; i < VMFS_PTRS_PER_BLOCK && !ret; i++) {
		uint64_t c = le64_to_cpu(((struct vmfs_ptr_disk *)nb->data)->pb_ptr[i]);
		if (c)
			ret = ptr_ref_add(fs, c);
	}
	if (!ret)
		ret = free_unit(fs, p); /* shared: only its count drops */
	if (ret) {
		meta_put(fs, nb);
		return ret;
	}
	di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) - 1); /* the copy replaces it in this map */
	*slot = cpu_to_le64(nb->addr);
	meta_put(fs, *b);
	*b = nb;
	return 0;
}

/* Sets the pointer of lblk, growing the tree and adding pointer blocks as needed. */
int bmap_set(struct vmfs *fs, struct vbuf *ib, uint64_t lblk, uint64_t ptr)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct vbuf *cur = NULL;
	le64 *slot;
	uint64_t span;
	unsigned level;
	int ret = meta_dirty(fs, ib);

	if (ret)
		return ret;
	while (lblk >= bmap_capacity(di->i_height)) {
		bool empty = true;
		struct vbuf *nb;

		if (di->i_height >= VMFS_MAX_HEIGHT)
			return -EFBIG;
		for (unsigned i = 0; i < VMFS_ROOT_PTRS && di->i_height; i++)
			empty &= root_ptrs(di)[i] == 0;
		if (!empty) {
			ret = new_ptr_block(fs, ib, di->i_height, &nb);
			if (ret)
				return ret;
			memcpy(((struct vmfs_ptr_disk *)nb->data)->pb_ptr, root_ptrs(di), VMFS_ROOT_PTRS * 8);
			memset(root_ptrs(di), 0, VMFS_ROOT_PTRS * 8);
			root_ptrs(di)[0] = cpu_to_le64(nb->addr);
			meta_put(fs, nb);
		}
		di->i_height++;
	}
	span = span_of(di->i_height);
	slot = &root_ptrs(di)[lblk / span];
	lblk %= span;
	for (level = di->i_height - 1; level > 0; level--) {
		uint64_t p = le64_to_cpu(*slot);
		struct vbuf *next;

		ret = check_ptr(fs, di, p, false);
		if (ret)
			goto out;
		if (p) {
			ret = ptr_read(fs, di, p, level, &next);
			if (!ret) {
				ret = own_ptr(fs, ib, slot, level, &next); /* S1 */
				if (ret)
					meta_put(fs, next);
			}
		} else {
			if (!ptr)
				goto out; /* clearing a hole: nothing to do */
			ret = new_ptr_block(fs, ib, level, &next);
			if (!ret)
				*slot = cpu_to_le64(next->addr); /* meta_new's block is dirty already */
		}
		if (ret)
			goto out;
		meta_put(fs, cur);
		cur = next;
		if (ret)
			goto out;
		span /= VMFS_PTRS_PER_BLOCK;
		slot = &((struct vmfs_ptr_disk *)cur->data)->pb_ptr[lblk / span];
		lblk %= span;
	}
	*slot = cpu_to_le64(ptr);
out:
	meta_put(fs, cur);
	return ret;
}

/* Finds the first mapped block at or after lblk below the entries ptrs[0..n). */
static int next_rec(struct vmfs *fs, struct vmfs_inode_disk *di, const le64 *ptrs, unsigned n,
		    unsigned level, uint64_t base, uint64_t lblk, uint64_t *found, uint64_t *ptr)
{
	uint64_t span = span_of(level + 1);
	unsigned i = lblk > base ? (unsigned)((lblk - base) / span) : 0;

	for (; i < n; i++) {
		uint64_t p = le64_to_cpu(ptrs[i]), b0 = base + i * span;
		struct vbuf *b;
		int ret;

		if (!p)
			continue;
		ret = check_ptr(fs, di, p, level == 0);
		if (ret)
			return ret;
		if (level == 0) {
			*found = b0;
			*ptr = p;
			return 1;
		}
		ret = ptr_read(fs, di, p, level, &b);
		if (ret)
			return ret;
		ret = next_rec(fs, di, ((struct vmfs_ptr_disk *)b->data)->pb_ptr, VMFS_PTRS_PER_BLOCK,
			       level - 1, b0, base_max(lblk, b0), found, ptr);
		meta_put(fs, b);
		if (ret)
			return ret;
		/*
		 * Searched from its start, a pointer block always maps something
		 * (no empty pointer block exists). Without this, blocks whose
		 * entries all lead to one empty block are searched 496^levels times.
		 */
		if (lblk <= b0) {
			fs_err(fs, "inode %llu: pointer block %llu maps nothing",
			       (unsigned long long)le64_to_cpu(di->i_hdr.mh_addr), (unsigned long long)p);
			return -EUCLEAN;
		}
	}
	return 0;
}

/* Returns 1 with *found and *ptr set, 0 when nothing is mapped at or after lblk, or -errno. */
int bmap_next(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t lblk, uint64_t *found, uint64_t *ptr)
{
	if (!di->i_height || lblk >= bmap_capacity(di->i_height))
		return 0;
	if (di->i_height > VMFS_MAX_HEIGHT)
		return -EUCLEAN;
	return next_rec(fs, di, root_ptrs(di), VMFS_ROOT_PTRS, di->i_height - 1, 0, lblk, found, ptr);
}

uint64_t bmap_ptr_units(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p)
{
	(void)p; /* a redirect counts its new block; its table belongs to no map */
	return (uint64_t)inode_layout_blkunits(fs, di);
}

/* Units a map counts for the subtree under pointer p of a level-`level` entry (S2). */
static int subtree_units(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p, unsigned level, uint64_t *units)
{
	struct vbuf *b;
	int ret;

	if (level == 0) {
		*units = bmap_ptr_units(fs, di, p);
		return 0;
	}
	ret = ptr_read(fs, di, p, level, &b);
	if (ret)
		return ret;
	*units = 1;
	for (unsigned i = 0; i < VMFS_PTRS_PER_BLOCK && !ret; i++) {
		uint64_t c = le64_to_cpu(((struct vmfs_ptr_disk *)b->data)->pb_ptr[i]), u;
		if (!c)
			continue;
		ret = check_ptr(fs, di, c, level == 1);
		if (!ret)
			ret = subtree_units(fs, di, level == 1 ? c : c & VMFS_PTR_ADDR_MASK, level - 1, &u);
		if (!ret)
			*units += u;
	}
	meta_put(fs, b);
	return ret;
}

struct free_ctx {
	struct vbuf *ib;
	uint64_t start, end, budget;
};

int bmap_drop_data(struct vmfs *fs, struct vmfs_inode_disk *di, uint64_t p)
{
	uint64_t a = p & VMFS_PTR_ADDR_MASK;
	int ret = p & VMFS_PTR_REDIRECT ? redir_drop(fs, p)
		  : le32_to_cpu(di->i_flags) & VMFS_IF_LARGE ? free_block(fs, a) : free_unit(fs, a);

	if (!ret)
		di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) - bmap_ptr_units(fs, di, p));
	return ret;
}

/*
 * Frees mapped blocks of [start, end) under ptrs[0..n) (owned by buffer owner),
 * prunes pointer blocks left empty. Returns 1 when the node is now all zero.
 */
static int free_rec(struct vmfs *fs, struct free_ctx *c, struct vbuf *owner, le64 *ptrs, unsigned n,
		    unsigned level, uint64_t base)
{
	uint64_t span = span_of(level + 1);
	bool empty = true;
	int ret;

	for (unsigned i = 0; i < n; i++) {
		uint64_t p = le64_to_cpu(ptrs[i]), b0 = base + i * span;
		bool clear = false;

		if (!p)
			continue;
		if (b0 + span <= c->start || b0 >= c->end || !c->budget) {
			empty = false;
			continue;
		}
		ret = check_ptr(fs, ib_inode(c->ib), p, level == 0);
		if (ret)
			return ret;
		if (level == 0) {
			ret = bmap_drop_data(fs, ib_inode(c->ib), p);
			if (ret)
				return ret;
			c->budget--;
			clear = true;
		} else {
			struct vbuf *b;
			bool shared;

			ret = ptr_shared(fs, ib_inode(c->ib), p, &shared);
			if (ret)
				return ret;
			if (shared && b0 >= c->start && b0 + span <= c->end) { /* S2 */
				uint64_t units;
				ret = subtree_units(fs, ib_inode(c->ib), p, level, &units);
				if (!ret)
					ret = free_unit(fs, p);
				if (ret)
					return ret;
				ib_inode(c->ib)->i_units = cpu_to_le64(le64_to_cpu(ib_inode(c->ib)->i_units) - units);
				c->budget--;
				ret = meta_dirty(fs, owner);
				if (ret)
					return ret;
				ptrs[i] = 0;
				continue;
			}
			ret = ptr_read(fs, ib_inode(c->ib), p, level, &b);
			if (ret)
				return ret;
			ret = meta_dirty(fs, owner);
			if (!ret)
				ret = own_ptr(fs, c->ib, &ptrs[i], level, &b); /* S1: a part of it changes */
			if (!ret)
				ret = free_rec(fs, c, b, ((struct vmfs_ptr_disk *)b->data)->pb_ptr,
					       VMFS_PTRS_PER_BLOCK, level - 1, b0);
			p = le64_to_cpu(ptrs[i]);
			meta_put(fs, b);
			if (ret < 0)
				return ret;
			if (ret == 1) {
				ret = free_unit(fs, p);
				if (ret)
					return ret;
				ib_inode(c->ib)->i_units = cpu_to_le64(le64_to_cpu(ib_inode(c->ib)->i_units) - 1);
				clear = true;
			}
		}
		if (clear) {
			ret = meta_dirty(fs, owner);
			if (ret)
				return ret;
			ptrs[i] = 0;
		} else {
			empty = false;
		}
	}
	return empty;
}

/*
 * Frees the blocks mapped in [start, end), at most budget of them; *done tells
 * whether the range is now empty. Pointer blocks left empty are freed; a map
 * left empty drops to height 0.
 */
int bmap_free_range(struct vmfs *fs, struct vbuf *ib, uint64_t start, uint64_t end, uint64_t budget, bool *done)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct free_ctx c = { .ib = ib, .start = start, .end = end, .budget = budget };
	int ret;

	*done = true;
	if (!di->i_height)
		return 0;
	ret = meta_dirty(fs, ib);
	if (ret)
		return ret;
	ret = free_rec(fs, &c, ib, root_ptrs(di), VMFS_ROOT_PTRS, di->i_height - 1, 0);
	if (ret < 0)
		return ret;
	if (ret == 1)
		di->i_height = 0;
	*done = c.budget > 0;
	return 0;
}
