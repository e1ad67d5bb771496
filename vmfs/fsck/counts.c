/*
 * What fsck found, in memory: per inode, how it was reached (names, parent,
 * units); per block, the expected reference count; per pool, each sub-block's.
 * A claim counts one reference and says when the space was claimed already,
 * so a block used twice is caught by whichever reference comes second. Pass 5
 * compares these counts with the ones on disk.
 */
#include "vmfs/fsck/fsck_i.h"

static size_t hidx(struct fsck *c, uint64_t v)
{
	return (size_t)((v * 0x9E3779B97F4A7C15ull) >> 32) % c->hsize;
}

struct ino_info *fsck_ino_get(struct fsck *c, uint64_t ino)
{
	struct ino_info **pp = &c->ihash[hidx(c, ino)], *i;

	for (i = *pp; i; i = i->next)
		if (i->ino == ino)
			return i;
	i = calloc(1, sizeof(*i));
	if (!i)
		return NULL;
	i->ino = ino;
	i->next = *pp;
	*pp = i;
	return i;
}

struct ino_info *fsck_ino_find(struct fsck *c, uint64_t ino)
{
	for (struct ino_info *i = c->ihash[hidx(c, ino)]; i; i = i->next)
		if (i->ino == ino)
			return i;
	return NULL;
}

uint16_t *fsck_rc_slot(struct fsck *c, uint64_t blk)
{
	struct vmfs *fs = c->fs;
	uint64_t rc = blk / fs->rc_blocks;

	if (!c->rcexp[rc]) {
		c->rcexp[rc] = calloc(fs->rc_blocks, sizeof(uint16_t));
		if (!c->rcexp[rc])
			return NULL;
	}
	return &c->rcexp[rc][blk % fs->rc_blocks];
}

struct pool_exp *fsck_pool_get(struct fsck *c, uint64_t blk, bool create)
{
	struct pool_exp **pp = &c->phash[hidx(c, blk)], *p;

	for (p = *pp; p; p = p->next)
		if (p->block == blk)
			return p;
	if (!create)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->ref = calloc(c->fs->upb, sizeof(uint16_t)))) {
		free(p);
		return NULL;
	}
	p->block = blk;
	p->ref[0] = VMFS_REF_POOL;
	p->next = *pp;
	*pp = p;
	return p;
}

/*
 * Counts one reference to a file block (kind 1 = data, JOURNAL) or to a
 * sub-block (unit). Returns 0; 2 when the same kind of space was claimed
 * already (counted again: a shared map may do that, nothing else may); 1 when
 * it is claimed as something else (not counted); -1 when the address is not a
 * valid place for it.
 */
int fsck_claim_block(struct fsck *c, uint64_t unit, uint16_t kind)
{
	uint64_t blk;
	uint16_t *s;

	if (!unit_is_block(c->fs, unit))
		return -1;
	blk = fs_unit_block(c->fs, unit);
	s = fsck_rc_slot(c, blk);
	if (!s)
		return -1;
	if (*s) {
		if (*s == VMFS_REF_POOL || kind != 1 || *s == VMFS_REF_JOURNAL)
			return 1;
	}
	*s = kind == 1 ? (uint16_t)(*s + 1) : kind;
	return *s > 1 && kind == 1 ? 2 : 0;
}

int fsck_claim_unit(struct fsck *c, uint64_t unit)
{
	struct vmfs *fs = c->fs;
	uint64_t blk;
	uint32_t i;
	uint16_t *s;
	struct pool_exp *p;

	if (!addr_in_data(fs, unit) || unit_is_block(fs, unit))
		return -1;
	blk = fs_unit_block(fs, unit);
	i = (uint32_t)((unit - fs->data_unit) % fs->upb);
	s = fsck_rc_slot(c, blk);
	if (!s || (*s && *s != VMFS_REF_POOL))
		return 1; /* the block is someone's data or a journal */
	*s = VMFS_REF_POOL;
	p = fsck_pool_get(c, blk, true);
	if (!p)
		return -1;
	if (p->ref[i]++)
		return 2;
	return 0;
}

void fsck_unclaim_unit(struct fsck *c, uint64_t unit)
{
	struct pool_exp *p = fsck_pool_get(c, fs_unit_block(c->fs, unit), false);
	uint32_t i = (uint32_t)((unit - c->fs->data_unit) % c->fs->upb);
	if (p && p->ref[i])
		p->ref[i]--;
}

int fsck_push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		uint64_t *p = realloc(*v, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = ncap;
	}
	(*v)[(*n)++] = x;
	return 0;
}

int fsck_note_lost(struct fsck *c, uint64_t ino)
{
	return fsck_push_u64(&c->lost, &c->nlost, &c->lostcap, ino);
}

/*
 * Units a shared pointer block's subtree holds, noted at its first visit, so
 * every later map that shares it counts them without walking it again.
 */
struct ptr_memo {
	uint64_t addr, units;
	struct ptr_memo *next;
};

int fsck_memo_set(struct fsck *c, uint64_t addr, uint64_t units)
{
	struct ptr_memo *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->addr = addr;
	m->units = units;
	m->next = c->pmemo[hidx(c, addr)];
	c->pmemo[hidx(c, addr)] = m;
	return 0;
}

bool fsck_memo_get(struct fsck *c, uint64_t addr, uint64_t *units)
{
	for (struct ptr_memo *m = c->pmemo[hidx(c, addr)]; m; m = m->next)
		if (m->addr == addr) {
			*units = m->units;
			return true;
		}
	return false;
}

struct redir_exp *fsck_redir_get(struct fsck *c, uint64_t unit, bool *created)
{
	struct redir_exp **pp = &c->rhash[hidx(c, unit)], *t;

	*created = false;
	for (t = *pp; t; t = t->next)
		if (t->unit == unit)
			return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->unit = unit;
	t->next = *pp;
	*pp = t;
	*created = true;
	return t;
}

int fsck_counts_init(struct fsck *c)
{
	c->rcexp = calloc(c->fs->rc_count, sizeof(*c->rcexp));
	c->phash = calloc(c->hsize, sizeof(*c->phash));
	c->ihash = calloc(c->hsize, sizeof(*c->ihash));
	c->pmemo = calloc(c->hsize, sizeof(*c->pmemo));
	c->rhash = calloc(c->hsize, sizeof(*c->rhash));
	return c->rcexp && c->phash && c->ihash && c->pmemo && c->rhash ? 0 : -ENOMEM;
}

void fsck_counts_release(struct fsck *c)
{
	for (size_t h = 0; h < c->hsize && c->ihash; h++)
		while (c->ihash[h]) {
			struct ino_info *i = c->ihash[h];
			c->ihash[h] = i->next;
			free(i->name);
			free(i);
		}
	for (size_t h = 0; h < c->hsize && c->phash; h++)
		while (c->phash[h]) {
			struct pool_exp *p = c->phash[h];
			c->phash[h] = p->next;
			free(p->ref);
			free(p);
		}
	for (size_t h = 0; h < c->hsize && c->pmemo; h++)
		while (c->pmemo[h]) {
			struct ptr_memo *m = c->pmemo[h];
			c->pmemo[h] = m->next;
			free(m);
		}
	free(c->pmemo);
	for (size_t h = 0; h < c->hsize && c->rhash; h++)
		while (c->rhash[h]) {
			struct redir_exp *t = c->rhash[h];
			c->rhash[h] = t->next;
			free(t);
		}
	free(c->rhash);
	for (uint64_t i = 0; c->rcexp && i < c->fs->rc_count; i++)
		free(c->rcexp[i]);
	free(c->rcexp);
	free(c->phash);
	free(c->ihash);
	free(c->queue);
	free(c->lost);
}
