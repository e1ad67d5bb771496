/*
 * Space allocation. File blocks are grouped in resource clusters (RCs) of
 * sb_rc_blocks blocks; each RC has one descriptor block holding a 16-bit
 * reference count per block (0 free, VMFS_REF_POOL for a sub-block pool,
 * VMFS_REF_JOURNAL for a journal extent). RC descriptors are created lazily, in
 * order: RCs [0, sb_rc_inited) have one, later RCs are wholly free and cost
 * nothing on disk, which keeps mkfs of a huge LUN down to a few MiB.
 *
 * 4 KiB sub-blocks (inodes, pointer blocks, directory nodes, small-file data)
 * come from pools: a file block whose first sub-block is a header with a
 * reference count per sub-block.
 *
 * Invariants: rc_nfree equals the number of zero entries in rc_ref; the
 * in-memory counters (rc_free, rc_mine, pools, free_blocks) equal what the
 * cached blocks say (alloc_undo_hook keeps them so when an operation is
 * undone); nothing freed in the running transaction is handed out again (see
 * meta.c, J5).
 *
 * Placement among hosts: a host allocates from the RCs whose owner record
 * names it (slot and generation), then claims one whose owner is no longer a
 * member (or the next fresh one), and only when every RC with room belongs to
 * a living host does it take space from theirs. Safety does not rest on this:
 * every allocation runs under META exclusive (cluster.c, C1), so two hosts
 * never hand out one block; owning keeps each host's files and sub-block pools
 * apart, as VMFS does, so that they do not interleave on disk.
 */
#include "vmfs/vmfs_i.h"

static uint64_t rc_unit(struct vmfs *fs, uint64_t rc) { return fs->rc_table_unit + rc; }

static uint32_t rc_len(struct vmfs *fs, uint64_t rc)
{
	uint64_t first = rc * fs->rc_blocks;
	return (uint32_t)base_min((uint64_t)fs->rc_blocks, fs->nblocks - first);
}

static uint64_t sb_rc_inited(struct vmfs *fs)
{
	return le64_to_cpu(fs->sb.sb_rc_inited);
}

#define CLAIM_RETRY_NS 1000000000ull /* after a claim pass found nothing, skip it this long */

static bool owner_is_self(struct vmfs *fs, const struct vmfs_lockrec_disk *r)
{
	return fs->lk && le32_to_cpu(r->lr_slot1) == lk_host_slot(fs->lk) + 1 &&
	       le64_to_cpu(r->lr_gen) == lk_host_gen(fs->lk);
}

/* Whether this host allocates from rc before any other: it owns it, or it is alone (no cluster). */
static bool rc_is_mine(struct vmfs *fs, uint64_t rc)
{
	return !fs->lk || fs->rc_mine[rc];
}

bool addr_in_data(struct vmfs *fs, uint64_t unit)
{
	return unit >= fs->data_unit && unit < fs->data_unit + fs->nblocks * fs->upb;
}

bool unit_is_block(struct vmfs *fs, uint64_t unit)
{
	return addr_in_data(fs, unit) && (unit - fs->data_unit) % fs->upb == 0;
}

static bool pending(struct vmfs *fs, uint64_t unit)
{
	for (size_t i = 0; i < fs->npending; i++)
		if (fs->pending[i] == unit)
			return true;
	return false;
}

static int list_add(uint64_t **list, size_t *n, size_t *cap, uint64_t unit)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		uint64_t *p = realloc(*list, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*list = p;
		*cap = c;
	}
	(*list)[(*n)++] = unit;
	return 0;
}

/* A unit freed in the running transaction; with fs->wipe_freed, to be zeroed once it commits (meta.c). */
static int pending_add(struct vmfs *fs, uint64_t unit)
{
	int ret = list_add(&fs->pending, &fs->npending, &fs->pending_cap, unit);

	return ret || !fs->wipe_freed ? ret : list_add(&fs->wipe, &fs->nwipe, &fs->wipe_cap, unit);
}

static int rc_read(struct vmfs *fs, uint64_t rc, struct vbuf **out)
{
	struct vmfs_rc_disk *d;
	int ret = meta_read(fs, rc_unit(fs, rc), VMFS_MAGIC_RC, out);

	if (ret)
		return ret;
	d = (struct vmfs_rc_disk *)(*out)->data;
	if (le64_to_cpu(d->rc_first) != rc * fs->rc_blocks || le32_to_cpu(d->rc_nblocks) != rc_len(fs, rc) ||
	    le32_to_cpu(d->rc_nfree) > rc_len(fs, rc)) {
		fs_err(fs, "resource cluster %llu: descriptor does not match the geometry",
		       (unsigned long long)rc);
		meta_put(fs, *out);
		return -EUCLEAN;
	}
	return 0;
}

static int pool_add(struct vmfs *fs, uint64_t block, uint32_t nfree)
{
	if (fs->npools == fs->pools_cap) {
		size_t cap = fs->pools_cap ? fs->pools_cap * 2 : 64;
		struct pool_info *p = realloc(fs->pools, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		fs->pools = p;
		fs->pools_cap = cap;
	}
	fs->pools[fs->npools++] = (struct pool_info){ .block = block, .nfree = nfree };
	fs->free_units_in_pools += nfree;
	return 0;
}

static struct pool_info *pool_find(struct vmfs *fs, uint64_t block)
{
	if (fs->pool_cur < fs->npools && fs->pools[fs->pool_cur].block == block)
		return &fs->pools[fs->pool_cur];
	for (size_t i = 0; i < fs->npools; i++)
		if (fs->pools[i].block == block)
			return &fs->pools[i];
	return NULL;
}

int alloc_init(struct vmfs *fs)
{
	uint64_t inited = sb_rc_inited(fs);
	int ret = 0;

	if (inited > fs->rc_count) {
		fs_err(fs, "superblock: %llu resource clusters initialized, only %llu exist",
		       (unsigned long long)inited, (unsigned long long)fs->rc_count);
		return -EUCLEAN;
	}
	fs->rc_free = calloc(fs->rc_count, sizeof(*fs->rc_free));
	fs->rc_mine = calloc(fs->rc_count, 1);
	if (!fs->rc_free || !fs->rc_mine)
		return -ENOMEM;
	fs->free_blocks = 0;
	for (uint64_t rc = 0; rc < fs->rc_count; rc++) {
		struct vmfs_rc_disk *d;
		struct vbuf *b;
		uint32_t n = rc_len(fs, rc), nfree = 0;

		if (rc >= inited) {
			fs->rc_free[rc] = n;
			fs->free_blocks += n;
			continue;
		}
		ret = rc_read(fs, rc, &b);
		if (ret)
			return ret;
		d = (struct vmfs_rc_disk *)b->data;
		fs->rc_mine[rc] = owner_is_self(fs, &d->rc_lock);
		for (uint32_t i = 0; i < n && !ret; i++) {
			uint16_t ref = le16_to_cpu(d->rc_ref[i]);
			uint64_t blk = rc * fs->rc_blocks + i;
			struct vbuf *pb;

			if (ref == VMFS_REF_FREE) {
				nfree++;
			} else if (ref == VMFS_REF_POOL) {
				ret = meta_read(fs, fs_block_unit(fs, blk), VMFS_MAGIC_POOL, &pb);
				if (ret)
					break;
				ret = pool_add(fs, blk, le32_to_cpu(((struct vmfs_pool_disk *)pb->data)->pl_nfree));
				meta_put(fs, pb);
			}
		}
		if (!ret && nfree != le32_to_cpu(d->rc_nfree)) {
			fs_err(fs, "resource cluster %llu: free count %u, but %u blocks are free",
			       (unsigned long long)rc, le32_to_cpu(d->rc_nfree), nfree);
			ret = -EUCLEAN;
		}
		meta_put(fs, b);
		if (ret)
			return ret;
		fs->rc_free[rc] = nfree;
		fs->free_blocks += nfree;
	}
	fs->rc_cur = 0;
	return 0;
}

/* Frees the allocator's memory; alloc_init() may load it again (cluster.c, C3). */
void alloc_release(struct vmfs *fs)
{
	free(fs->rc_free);
	free(fs->rc_mine);
	free(fs->pools);
	free(fs->pending);
	free(fs->wipe);
	fs->rc_free = NULL;
	fs->rc_mine = NULL;
	fs->pools = NULL;
	fs->pending = NULL;
	fs->wipe = NULL;
	fs->nwipe = fs->wipe_cap = 0;
	fs->npools = fs->pools_cap = fs->pool_cur = 0;
	fs->npending = fs->pending_cap = 0;
	fs->free_units_in_pools = fs->free_blocks = 0;
}

/* Keeps the in-memory counters in step when a block's newer image is undone. */
void alloc_undo_hook(struct vmfs *fs, struct vbuf *b, const uint8_t *older)
{
	uint32_t magic = le32_to_cpu(((struct vmfs_mhdr *)b->data)->mh_magic);

	if (magic == VMFS_MAGIC_RC) {
		const struct vmfs_rc_disk *now = (const void *)b->data, *was = (const void *)older;
		uint64_t rc = le64_to_cpu(now->rc_hdr.mh_owner);
		int64_t before = was ? le32_to_cpu(was->rc_nfree) : rc_len(fs, rc);
		int64_t delta = before - (int64_t)le32_to_cpu(now->rc_nfree);

		fs->rc_free[rc] = (uint32_t)((int64_t)fs->rc_free[rc] + delta);
		fs->free_blocks = (uint64_t)((int64_t)fs->free_blocks + delta);
		fs->rc_mine[rc] = was && owner_is_self(fs, &was->rc_lock);
	} else if (magic == VMFS_MAGIC_POOL) {
		const struct vmfs_pool_disk *now = (const void *)b->data, *was = (const void *)older;
		uint64_t blk = fs_unit_block(fs, b->addr);
		struct pool_info *p = pool_find(fs, blk);

		if (!p)
			return;
		if (!was) { /* the pool itself is undone */
			fs->free_units_in_pools -= p->nfree;
			*p = fs->pools[--fs->npools];
			fs->pool_cur = 0;
			return;
		}
		fs->free_units_in_pools += le32_to_cpu(was->pl_nfree);
		fs->free_units_in_pools -= le32_to_cpu(now->pl_nfree);
		p->nfree = le32_to_cpu(was->pl_nfree);
	} else if (magic == VMFS_MAGIC_SB && older) {
		memcpy(&fs->sb, older, sizeof(fs->sb));
	}
}

/* Creates the descriptor of RC number sb_rc_inited (all free) in the running operation. */
static int rc_init_next(struct vmfs *fs)
{
	uint64_t rc = sb_rc_inited(fs);
	struct vmfs_rc_disk *d;
	struct vbuf *b, *sbb;
	int ret;

	if (rc >= fs->rc_count)
		return -ENOSPC;
	ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret)
		return ret;
	ret = meta_dirty(fs, sbb);
	if (!ret)
		ret = meta_new(fs, rc_unit(fs, rc), VMFS_MAGIC_RC, rc, &b);
	if (ret) {
		meta_put(fs, sbb);
		return ret;
	}
	d = (struct vmfs_rc_disk *)b->data;
	d->rc_first = cpu_to_le64(rc * fs->rc_blocks);
	d->rc_nblocks = cpu_to_le32(rc_len(fs, rc));
	d->rc_nfree = cpu_to_le32(rc_len(fs, rc));
	((struct vmfs_sb_disk *)sbb->data)->sb_rc_inited = cpu_to_le64(rc + 1);
	fs->sb.sb_rc_inited = cpu_to_le64(rc + 1);
	meta_put(fs, b);
	meta_put(fs, sbb);
	return 0;
}

/*
 * Finds n consecutive free blocks (not freed in the running transaction) in
 * RC rc, sets their count to ref and returns the first block's unit address;
 * -ENOSPC if rc has no such run.
 */
static int rc_take(struct vmfs *fs, uint64_t rc, uint64_t n, uint16_t ref, uint64_t *unit)
{
	uint32_t len = rc_len(fs, rc), run = 0, start = 0;
	struct vmfs_rc_disk *d;
	struct vbuf *b;
	int ret = rc_read(fs, rc, &b);

	if (ret)
		return ret;
	d = (struct vmfs_rc_disk *)b->data;
	for (uint32_t k = 0; k < len; k++) {
		uint32_t i = n == 1 ? (fs->rc_rotor + k) % len : k;
		uint64_t u = fs_block_unit(fs, rc * fs->rc_blocks + i);

		if (d->rc_ref[i] != 0 || pending(fs, u)) {
			run = 0;
			continue;
		}
		if (run++ == 0)
			start = i;
		if (n == 1)
			start = i;
		if (run < n || (n > 1 && start + n - 1 != i))
			continue;
		ret = meta_dirty(fs, b);
		if (ret) {
			meta_put(fs, b);
			return ret;
		}
		for (uint32_t j = start; j < start + n; j++)
			d->rc_ref[j] = cpu_to_le16(ref);
		d->rc_nfree = cpu_to_le32(le32_to_cpu(d->rc_nfree) - (uint32_t)n);
		fs->rc_free[rc] -= (uint32_t)n;
		fs->free_blocks -= n;
		fs->rc_cur = rc;
		if (n == 1)
			fs->rc_rotor = start + 1;
		*unit = fs_block_unit(fs, rc * fs->rc_blocks + start);
		meta_put(fs, b);
		return 0;
	}
	meta_put(fs, b);
	return -ENOSPC;
}

/*
 * Writes this host's owner record into rc in the running operation, unless a
 * host that may still live owns it (-EBUSY). Its last owner's blocks stay
 * where they are: only where new ones come from changes.
 */
static int rc_claim(struct vmfs *fs, uint64_t rc)
{
	struct vmfs_rc_disk *d;
	struct vbuf *b;
	int ret = rc_read(fs, rc, &b);

	if (ret)
		return ret;
	d = (struct vmfs_rc_disk *)b->data;
	if (le32_to_cpu(d->rc_lock.lr_slot1)) {
		ret = lk_owner_stale(fs->lk, le32_to_cpu(d->rc_lock.lr_slot1) - 1, le64_to_cpu(d->rc_lock.lr_gen));
		if (ret <= 0) {
			meta_put(fs, b);
			return ret ? ret : -EBUSY;
		}
	}
	ret = meta_dirty(fs, b);
	if (!ret) {
		memset(&d->rc_lock, 0, sizeof(d->rc_lock));
		d->rc_lock.lr_slot1 = cpu_to_le32(lk_host_slot(fs->lk) + 1);
		d->rc_lock.lr_gen = cpu_to_le64(lk_host_gen(fs->lk));
		fs->rc_mine[rc] = 1;
	}
	meta_put(fs, b);
	return ret;
}

/* Units of metadata (inodes, directory nodes, pointer blocks) the reserve keeps for deletes and renames. */
#define RESERVE_META_UNITS 64u

uint64_t alloc_reserve(struct vmfs *fs, enum alloc_kind kind)
{
	uint64_t journal = base_div_round_up(le64_to_cpu(fs->sb.sb_journal_len), fs->block_size);
	uint64_t meta = base_div_round_up(RESERVE_META_UNITS, fs->upb);

	return kind == ALLOC_JOURNAL ? 0 : kind == ALLOC_META ? journal : journal + meta;
}

/*
 * Finds n consecutive free blocks in one RC (see the placement rule above),
 * sets their count to ref and returns the first block's unit address. Passes:
 * this host's RCs; RCs it may claim (the next fresh one is created then);
 * anybody's. Without a cluster the first pass covers every RC. The reserve
 * for kind stays free (-ENOSPC).
 */
static int extent_take(struct vmfs *fs, uint64_t n, uint16_t ref, enum alloc_kind kind, uint64_t *unit)
{
	enum { PASS_MINE, PASS_CLAIM, PASS_ANY };

	if (fs->fatal)
		return -EIO;
	if (n == 0 || n > fs->rc_blocks || fs->free_blocks < n + alloc_reserve(fs, kind))
		return -ENOSPC;
	for (int pass = PASS_MINE; pass <= PASS_ANY; pass++) {
		bool claimed = false;

		if (pass == PASS_CLAIM && base_mono_ns() < fs->claim_after_ns)
			continue;
		for (uint64_t tried = 0; tried < fs->rc_count; tried++) {
			uint64_t rc = (fs->rc_cur + tried) % fs->rc_count;
			bool fresh = rc >= sb_rc_inited(fs);
			int ret;

			if (fs->rc_free[rc] < n || (fresh && rc != sb_rc_inited(fs)))
				continue; /* descriptors are created in order */
			if (pass == PASS_MINE ? !rc_is_mine(fs, rc) || (fresh && fs->lk)
					      : rc_is_mine(fs, rc) || (fresh && pass == PASS_ANY))
				continue;
			if (fresh) {
				ret = rc_init_next(fs);
				if (ret)
					return ret;
			}
			if (pass == PASS_CLAIM) {
				ret = rc_claim(fs, rc);
				if (ret == -EBUSY)
					continue;
				if (ret)
					return ret;
				claimed = true;
			}
			ret = rc_take(fs, rc, n, ref, unit);
			if (ret != -ENOSPC)
				return ret;
		}
		if (!fs->lk)
			break;
		if (pass == PASS_CLAIM && !claimed)
			fs->claim_after_ns = base_mono_ns() + CLAIM_RETRY_NS;
	}
	return -ENOSPC;
}

int alloc_extent(struct vmfs *fs, uint64_t n, uint16_t ref, uint64_t *unit)
{
	return extent_take(fs, n, ref, ref == VMFS_REF_JOURNAL ? ALLOC_JOURNAL : ALLOC_DATA, unit);
}

int alloc_block(struct vmfs *fs, uint64_t *unit)
{
	return extent_take(fs, 1, 1, ALLOC_DATA, unit);
}

static int pool_new(struct vmfs *fs, enum alloc_kind kind)
{
	struct vmfs_pool_disk *p;
	struct vbuf *b;
	uint64_t unit;
	int ret = extent_take(fs, 1, VMFS_REF_POOL, kind, &unit);

	if (ret)
		return ret;
	ret = meta_new(fs, unit, VMFS_MAGIC_POOL, fs_unit_block(fs, unit), &b);
	if (ret)
		return ret;
	p = (struct vmfs_pool_disk *)b->data;
	p->pl_units = cpu_to_le32(fs->upb);
	p->pl_nfree = cpu_to_le32(fs->upb - 1);
	p->pl_ref[0] = cpu_to_le16(VMFS_REF_POOL);
	meta_put(fs, b);
	ret = pool_add(fs, fs_unit_block(fs, unit), fs->upb - 1);
	if (!ret)
		fs->pool_cur = fs->npools - 1;
	return ret;
}

static int pool_read(struct vmfs *fs, uint64_t block, struct vbuf **out)
{
	int ret = meta_read(fs, fs_block_unit(fs, block), VMFS_MAGIC_POOL, out);
	struct vmfs_pool_disk *p;

	if (ret)
		return ret;
	p = (struct vmfs_pool_disk *)(*out)->data;
	if (le32_to_cpu(p->pl_units) != fs->upb || le32_to_cpu(p->pl_nfree) >= fs->upb) {
		fs_err(fs, "sub-block pool %llu: header does not match the block size",
		       (unsigned long long)block);
		meta_put(fs, *out);
		return -EUCLEAN;
	}
	return 0;
}

/* Takes a free sub-block of pool pools[idx]: 0, -ENOSPC when every free one is pending (J6), -errno. */
static int pool_take(struct vmfs *fs, size_t idx, uint64_t *unit)
{
	struct pool_info *pi = &fs->pools[idx];
	struct vmfs_pool_disk *p;
	struct vbuf *b;
	int ret = pool_read(fs, pi->block, &b);

	if (ret)
		return ret;
	p = (struct vmfs_pool_disk *)b->data;
	for (uint32_t i = 1; i < fs->upb; i++) {
		uint64_t u = fs_block_unit(fs, pi->block) + i;
		if (p->pl_ref[i] != 0 || pending(fs, u))
			continue;
		ret = meta_dirty(fs, b);
		if (!ret) {
			p->pl_ref[i] = cpu_to_le16(1);
			p->pl_nfree = cpu_to_le32(le32_to_cpu(p->pl_nfree) - 1);
			pi->nfree--;
			fs->free_units_in_pools--;
			fs->pool_cur = idx;
			*unit = u;
		}
		meta_put(fs, b);
		return ret;
	}
	meta_put(fs, b);
	return -ENOSPC;
}

/*
 * A sub-block, from (in this order) a pool in this host's RCs; a pool in an
 * RC this host may claim (its owner is gone: the pools of hosts that came and
 * went are filled before new ones are cut, or every short-lived host would
 * leave a pool behind); a new pool; any pool.
 */
int alloc_unit(struct vmfs *fs, enum alloc_kind kind, uint64_t *unit)
{
	enum { ROUND_MINE, ROUND_CLAIM, ROUND_ANY };

	if (fs->fatal)
		return -EIO;
	for (int round = ROUND_MINE; round <= ROUND_ANY; round++) {
		bool skip = round == ROUND_CLAIM && (!fs->lk || base_mono_ns() < fs->pool_claim_after_ns), claimed = false;

		for (size_t k = 0; k < fs->npools && !skip; k++) {
			size_t idx = (fs->pool_cur + k) % fs->npools;
			uint64_t rc = fs->pools[idx].block / fs->rc_blocks;
			int ret;

			if (!fs->pools[idx].nfree || (round != ROUND_ANY && rc_is_mine(fs, rc) != (round == ROUND_MINE)))
				continue;
			if (round == ROUND_CLAIM) {
				ret = rc_claim(fs, rc);
				if (ret == -EBUSY)
					continue;
				if (ret)
					return ret;
				claimed = true;
			}
			ret = pool_take(fs, idx, unit);
			if (ret != -ENOSPC)
				return ret;
		}
		if (round == ROUND_CLAIM && !skip && !claimed) /* every other pool's host lives: do not ask again at once */
			fs->pool_claim_after_ns = base_mono_ns() + CLAIM_RETRY_NS;
		if (round == ROUND_CLAIM) {
			int ret = pool_new(fs, kind);
			if (ret && ret != -ENOSPC)
				return ret;
			if (!ret)
				return pool_take(fs, fs->npools - 1, unit);
		}
	}
	return -ENOSPC;
}

/*
 * Drops one reference in *ref (of block b, which holds the free count *nfree).
 * Returns 1 when that was the last one (unit is now free, pending until the
 * transaction commits: J5), 0, or -errno.
 */
static int ref_drop(struct vmfs *fs, struct vbuf *b, le16 *ref, le32 *nfree, uint64_t unit, const char *what)
{
	uint16_t r = le16_to_cpu(*ref);
	int ret;

	if (r == 0 || r > VMFS_REF_MAX) {
		fs_err(fs, "%s at unit %llu: freeing it, but its count is 0x%x", what, (unsigned long long)unit, r);
		return -EUCLEAN;
	}
	ret = meta_dirty(fs, b);
	if (!ret && r == 1)
		ret = pending_add(fs, unit);
	if (ret)
		return ret;
	*ref = cpu_to_le16(r - 1);
	if (r > 1)
		return 0;
	*nfree = cpu_to_le32(le32_to_cpu(*nfree) + 1);
	return 1;
}

int free_unit(struct vmfs *fs, uint64_t unit)
{
	uint64_t blk = fs_unit_block(fs, unit);
	uint32_t i = (uint32_t)((unit - fs->data_unit) % fs->upb);
	struct pool_info *pi = pool_find(fs, blk);
	struct vmfs_pool_disk *p;
	struct vbuf *b;
	int ret;

	if (!addr_in_data(fs, unit) || i == 0 || !pi) {
		fs_err(fs, "freeing sub-block %llu that is not in a pool", (unsigned long long)unit);
		return -EUCLEAN;
	}
	ret = pool_read(fs, blk, &b);
	if (ret)
		return ret;
	p = (struct vmfs_pool_disk *)b->data;
	ret = ref_drop(fs, b, &p->pl_ref[i], &p->pl_nfree, unit, "sub-block");
	meta_put(fs, b);
	if (ret == 1) {
		pi->nfree++;
		fs->free_units_in_pools++;
		meta_forget(fs, unit);
		ret = 0;
	}
	return ret;
}

int free_block(struct vmfs *fs, uint64_t unit)
{
	uint64_t blk, rc;
	struct vmfs_rc_disk *d;
	struct vbuf *b;
	uint32_t i;
	int ret;

	if (!unit_is_block(fs, unit)) {
		fs_err(fs, "freeing block at unit %llu, which is not a file block", (unsigned long long)unit);
		return -EUCLEAN;
	}
	blk = fs_unit_block(fs, unit);
	rc = blk / fs->rc_blocks;
	i = (uint32_t)(blk % fs->rc_blocks);
	if (rc >= sb_rc_inited(fs)) {
		fs_err(fs, "freeing block %llu in an unused resource cluster", (unsigned long long)blk);
		return -EUCLEAN;
	}
	ret = rc_read(fs, rc, &b);
	if (ret)
		return ret;
	d = (struct vmfs_rc_disk *)b->data;
	ret = ref_drop(fs, b, &d->rc_ref[i], &d->rc_nfree, unit, "block");
	if (ret == 1) {
		fs->rc_free[rc]++;
		fs->free_blocks++;
		ret = 0;
	}
	meta_put(fs, b);
	return ret;
}

/*
 * The count of a file block (unit on a block boundary: rc_ref) or a sub-block
 * (pl_ref) that a pointer names. A data-area unit on a block boundary is never a
 * sub-block, because sub-block 0 of a pool is the pool's header.
 */
static int ref_slot(struct vmfs *fs, uint64_t unit, struct vbuf **b, le16 **ref)
{
	uint64_t blk = fs_unit_block(fs, unit);
	int ret;

	if (!addr_in_data(fs, unit))
		return -EUCLEAN;
	if (unit_is_block(fs, unit)) {
		if (blk / fs->rc_blocks >= sb_rc_inited(fs))
			return -EUCLEAN;
		ret = rc_read(fs, blk / fs->rc_blocks, b);
		if (!ret)
			*ref = &((struct vmfs_rc_disk *)(*b)->data)->rc_ref[blk % fs->rc_blocks];
		return ret;
	}
	if (!pool_find(fs, blk))
		return -EUCLEAN;
	ret = pool_read(fs, blk, b);
	if (!ret)
		*ref = &((struct vmfs_pool_disk *)(*b)->data)->pl_ref[(unit - fs->data_unit) % fs->upb];
	return ret;
}

int ref_get(struct vmfs *fs, uint64_t unit, uint16_t *ref)
{
	struct vbuf *b;
	le16 *r;
	int ret = ref_slot(fs, unit, &b, &r);

	if (ret) {
		if (ret == -EUCLEAN)
			fs_err(fs, "unit %llu: a pointer to space that is not a block or a sub-block",
			       (unsigned long long)unit);
		return ret;
	}
	*ref = le16_to_cpu(*r);
	meta_put(fs, b);
	return 0;
}

int ref_add(struct vmfs *fs, uint64_t unit)
{
	struct vbuf *b;
	le16 *r;
	uint16_t v;
	int ret = ref_slot(fs, unit, &b, &r);

	if (ret) {
		if (ret == -EUCLEAN)
			fs_err(fs, "unit %llu: sharing space that is not a block or a sub-block", (unsigned long long)unit);
		return ret;
	}
	v = le16_to_cpu(*r);
	if (v == 0 || v > VMFS_REF_MAX) {
		fs_err(fs, "unit %llu: sharing it, but its count is 0x%x", (unsigned long long)unit, v);
		ret = -EUCLEAN;
	} else if (v == VMFS_REF_MAX) {
		ret = -EMLINK; /* the caller copies instead, or refuses: never a wrap */
	} else {
		ret = meta_dirty(fs, b);
		if (!ret)
			*r = cpu_to_le16(v + 1);
	}
	meta_put(fs, b);
	return ret;
}
