/*
 * fsck: checks every invariant of docs/FORMAT.md and repairs what it may.
 *
 * Passes (messages come in this order, and within a pass in address or key
 * order, so the output of two runs on the same image is the same):
 *   1 superblock, host records, journals (replayed: in memory with -n, on disk
 *     otherwise), orphan lists
 *   2 inodes, block maps and directories, walked from the root (made again,
 *     empty, when damaged); every reference is counted in memory (expected
 *     reference counts); each directory keeps the name it was reached under,
 *     so what is cleared is reported by path
 *   3 connectivity: inodes allocated but unreachable go to /lost+found;
 *     directory loops and wrong parents
 *   4 link counts, entry counts, allocated-unit counts
 *   5 space: RC descriptors and pool headers against the expected counts
 * Repairs are written directly (no journal), as e2fsck does; a crash during a
 * repair is mended by running fsck again. Check mode opens the device
 * read-only and writes nothing.
 */
#include "vmfs/vmfs_i.h"

#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>

#define WHERE_MAX 1024         /* " (/PATH)" shown in messages, cut there */

struct ino_info {
	uint64_t ino;
	uint32_t links;                 /* directory entries naming it */
	uint32_t subdirs;               /* for directories: subdirectories found */
	uint64_t parent;                /* directory it was first found in */
	uint64_t units;                 /* units counted for it */
	char *name;                     /* directories: the name it was first found under */
	bool reached, is_dir, bad, lost, orphan;
	struct ino_info *next;
};

struct pool_exp {
	uint64_t block;
	uint16_t *ref;
	struct pool_exp *next;
};

struct fsck {
	struct vmfs *fs;
	const struct vmfs_fsck_opts *o;
	struct vmfs_fsck_result *r;
	uint16_t **rcexp;               /* per RC, expected count of each block */
	struct pool_exp **phash;
	struct ino_info **ihash;
	size_t hsize;
	uint64_t *queue;                /* directories still to walk */
	size_t qn, qcap;
	uint64_t *lost;                 /* unreachable inodes to reconnect */
	size_t nlost, lostcap;
	const char *pass;
	uint64_t done, total;
	char quiet[256];
	struct vmfs_sb_disk *sb_p, *sb_b; /* both superblock copies as read, judged after replay */
	bool sb_pok, sb_bok;
	/* the file being checked, as reported: " (PATH)", or "" when no name reached it */
	char where[WHERE_MAX];
	bool alloc_ready;               /* the allocator is loaded (pass 5 repairs that allocate) */
};

static bool repairing(struct fsck *c) { return c->o->mode != VMFS_FSCK_CHECK; }

static struct ino_info *ino_find(struct fsck *c, uint64_t ino);

/*
 * " (/PATH)" of name in directory dir, or of dir itself (name NULL), by the
 * names the walk first reached each directory under; "" when one on the way
 * was reached by no name (lost, or on an orphan list). Messages about what
 * fsck clears name it by path (issue 14), the inode number stays for the rest.
 */
static const char *path_of(struct fsck *c, uint64_t dir, const char *name, char *buf, size_t len)
{
	const char *part[64];
	unsigned n = 0;
	size_t at = 0;

	if (name)
		part[n++] = name;
	while (dir != c->fs->root_ino) {
		struct ino_info *d = ino_find(c, dir);
		if (!d || !d->name || n == base_array_size(part)) {
			buf[0] = 0;
			return buf;
		}
		part[n++] = d->name;
		dir = d->parent;
	}
	at = (size_t)snprintf(buf, len, " (%s", n ? "" : "/");
	while (n && at < len)
		at += (size_t)snprintf(buf + at, len - at, "/%s", part[--n]);
	if (at < len)
		snprintf(buf + at, len - at, ")");
	return buf;
}

/* Reports a problem; returns true when it is to be fixed now. */
static bool problem(struct fsck *c, bool safe, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool problem(struct fsck *c, bool safe, const char *fmt, ...)
{
	bool fix = c->o->mode == VMFS_FSCK_YES || (c->o->mode == VMFS_FSCK_PREEN && safe);
	va_list ap;

	c->r->found++;
	if (c->o->out) {
		va_start(ap, fmt);
		vfprintf(c->o->out, fmt, ap);
		va_end(ap);
		fprintf(c->o->out, ". %s\n", fix ? "Fixed" : c->o->mode == VMFS_FSCK_PREEN ? "NOT fixed (run fsck.vmfs -y)" : "Not fixed");
	}
	if (fix)
		c->r->fixed++;
	else
		c->r->left++;
	return fix;
}

/* An RC's owner record: empty, or a slot that exists; the reserved bytes zero. */
static bool rc_owner_ok(struct vmfs *fs, const struct vmfs_lockrec_disk *r)
{
	uint32_t slot1 = le32_to_cpu(r->lr_slot1);

	if (slot1 > le32_to_cpu(fs->sb.sb_host_slots) || r->lr_reserved0 || (!slot1 && r->lr_gen))
		return false;
	for (size_t i = 0; i < sizeof(r->lr_reserved); i++)
		if (r->lr_reserved[i])
			return false;
	return true;
}

static void progress(struct fsck *c, uint64_t step)
{
	c->done += step;
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, c->pass, c->done, c->total);
}

static void start_pass(struct fsck *c, const char *name, uint64_t total)
{
	c->pass = name;
	c->done = 0;
	c->total = total ? total : 1;
	if (c->o->out && c->o->verbose)
		fprintf(c->o->out, "%s\n", name);
	progress(c, 0);
}

static size_t hidx(struct fsck *c, uint64_t v)
{
	return (size_t)((v * 0x9E3779B97F4A7C15ull) >> 32) % c->hsize;
}

static struct ino_info *ino_get(struct fsck *c, uint64_t ino)
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

static struct ino_info *ino_find(struct fsck *c, uint64_t ino)
{
	for (struct ino_info *i = c->ihash[hidx(c, ino)]; i; i = i->next)
		if (i->ino == ino)
			return i;
	return NULL;
}

static uint16_t *rc_slot(struct fsck *c, uint64_t blk)
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

static struct pool_exp *pool_get(struct fsck *c, uint64_t blk, bool create)
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
 * sub-block (unit). Returns 0, 1 when the space was already claimed, or -1
 * when the address is not a valid place for it.
 */
static int claim_block(struct fsck *c, uint64_t unit, uint16_t kind)
{
	uint64_t blk;
	uint16_t *s;

	if (!unit_is_block(c->fs, unit))
		return -1;
	blk = fs_unit_block(c->fs, unit);
	s = rc_slot(c, blk);
	if (!s)
		return -1;
	if (*s) {
		if (*s == VMFS_REF_POOL || kind != 1 || *s == VMFS_REF_JOURNAL)
			return 1;
	}
	*s = kind == 1 ? (uint16_t)(*s + 1) : kind;
	return *s > 1 && kind == 1 ? 1 : 0;
}

static int claim_unit(struct fsck *c, uint64_t unit)
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
	s = rc_slot(c, blk);
	if (!s || (*s && *s != VMFS_REF_POOL))
		return 1; /* the block is someone's data or a journal */
	*s = VMFS_REF_POOL;
	p = pool_get(c, blk, true);
	if (!p)
		return -1;
	if (p->ref[i]++)
		return 1;
	return 0;
}

static void unclaim_unit(struct fsck *c, uint64_t unit)
{
	struct pool_exp *p = pool_get(c, fs_unit_block(c->fs, unit), false);
	uint32_t i = (uint32_t)((unit - c->fs->data_unit) % c->fs->upb);
	if (p && p->ref[i])
		p->ref[i]--;
}

static int fsck_dirty(struct fsck *c, struct vbuf *b)
{
	return meta_dirty(c->fs, b);
}

/* ---- pass 1: superblock, journals, orphans ---------------------------------------------- */

static int check_journals(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	unsigned slots = le32_to_cpu(fs->sb.sb_host_slots);
	int ret = 0;

	for (unsigned s = 0; s < slots && !ret; s++) {
		struct vmfs_hostrec_disk rec;
		uint64_t unit, units;
		int r = hostrec_read(fs, s, &rec);

		if (r == -ENOENT)
			continue;
		if (r) {
			if (problem(c, true, "host slot %u: damaged host record", s)) {
				/* without a record the slot's journal is unreferenced: it becomes free space */
				ret = hostrec_clear(fs, s);
			}
			continue;
		}
		unit = le64_to_cpu(rec.hr_journal);
		units = le64_to_cpu(rec.hr_journal_units);
		if (!unit_is_block(fs, unit) || units < 16 || units % fs->upb ||
		    units / fs->upb > fs->rc_blocks || !addr_in_data(fs, unit + units - 1)) {
			if (problem(c, false, "host slot %u: journal extent %llu+%llu is out of range", s,
				    (unsigned long long)unit, (unsigned long long)units))
				ret = hostrec_clear(fs, s);
			continue;
		}
		for (uint64_t b = 0; b < units / fs->upb; b++)
			if (claim_block(c, unit + b * fs->upb, VMFS_REF_JOURNAL))
				problem(c, false, "host slot %u: journal block %llu is also used elsewhere", s,
					(unsigned long long)fs_unit_block(fs, unit) + b);
		fs->slot = s;
		r = journal_open(fs);
		if (r == -EUCLEAN || r == -EBADMSG) {
			if (problem(c, false, "host slot %u: journal superblock is damaged; its transactions are lost", s))
				r = journal_reset(fs, s, unit, units);
			else
				r = 0;
		} else if (r == 0 && fs->j_replayed && c->o->out) {
			fprintf(c->o->out, "host slot %u: journal replayed%s\n", s, repairing(c) ? "" : " (in memory)");
		}
		if (r == 0 && repairing(c))
			r = journal_close(fs);
		ret = r;
		fs->j_unit = 0;
	}
	return ret;
}

/* ---- pass 2: inodes, maps, directories ---------------------------------------------- */

static int queue_dir(struct fsck *c, uint64_t ino)
{
	if (c->qn == c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 1024;
		uint64_t *q = realloc(c->queue, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		c->queue = q;
		c->qcap = cap;
	}
	c->queue[c->qn++] = ino;
	return 0;
}

static bool ptrs_empty(const le64 *ptrs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ptrs[i])
			return false;
	return true;
}

/* Walks a block map subtree; clears pointers that are bad or already claimed (when fixing). */
static int walk_map(struct fsck *c, struct vbuf *ib, struct vbuf *owner, le64 *ptrs, unsigned n, unsigned level,
		    uint64_t base, uint64_t bb, bool large, struct ino_info *ii)
{
	struct vmfs *fs = c->fs;
	uint64_t span = 1;
	int ret = 0;

	for (unsigned l = 0; l < level; l++)
		span *= VMFS_PTRS_PER_BLOCK;
	for (unsigned i = 0; i < n && !ret; i++) {
		uint64_t p = le64_to_cpu(ptrs[i]), a = p & VMFS_PTR_ADDR_MASK, lblk = base + i * span;
		bool clear = false;
		struct vbuf *b;
		int r;

		if (!p)
			continue;
		if (level == 0) {
			r = (p & VMFS_PTR_RESERVED) ? -1 : large ? claim_block(c, a, 1) : claim_unit(c, a);
			if (r < 0)
				clear = problem(c, false, "inode %llu%s: block %llu has a bad pointer 0x%llx",
						(unsigned long long)ib->addr, c->where, (unsigned long long)lblk,
						(unsigned long long)p);
			else if (r > 0)
				clear = problem(c, false, "inode %llu%s: block %llu at %llu is also used elsewhere",
						(unsigned long long)ib->addr, c->where, (unsigned long long)lblk,
						(unsigned long long)a);
			else
				ii->units += large ? fs->upb : 1;
			if (r > 0 && !clear && large)
				ii->units += fs->upb;
			if (r && clear) {
				if (r > 0 && !large)
					unclaim_unit(c, a);
				else if (r > 0) {
					uint16_t *s = rc_slot(c, fs_unit_block(fs, a));
					if (s && *s > 0 && *s < VMFS_REF_MAX)
						(*s)--;
				}
			}
		} else {
			r = (p & ~VMFS_PTR_ADDR_MASK) ? -1 : claim_unit(c, a);
			if (r == 0) {
				r = meta_read(fs, a, VMFS_MAGIC_PTR, &b);
				if (!r && le16_to_cpu(((struct vmfs_mhdr *)b->data)->mh_flags) != level) {
					meta_put(fs, b);
					r = -EUCLEAN;
				}
				if (r) {
					unclaim_unit(c, a);
					clear = problem(c, false, "inode %llu%s: pointer block %llu is damaged",
							(unsigned long long)ib->addr, c->where, (unsigned long long)a);
				} else {
					le64 *child = ((struct vmfs_ptr_disk *)b->data)->pb_ptr;
					ii->units++;
					ret = walk_map(c, ib, b, child, VMFS_PTRS_PER_BLOCK, level - 1, lblk, bb, large, ii);
					/* the library refuses a pointer block that maps nothing (bmap.c) */
					if (!ret && ptrs_empty(child, VMFS_PTRS_PER_BLOCK) &&
					    problem(c, false, "inode %llu%s: pointer block %llu maps nothing",
						    (unsigned long long)ib->addr, c->where, (unsigned long long)a)) {
						unclaim_unit(c, a);
						ii->units--;
						clear = true;
					}
					meta_put(fs, b);
				}
			} else {
				clear = problem(c, false, "inode %llu%s: bad pointer-block address 0x%llx",
						(unsigned long long)ib->addr, c->where, (unsigned long long)p);
			}
		}
		if (clear) {
			ret = fsck_dirty(c, owner);
			ptrs[i] = 0;
		}
	}
	return ret;
}

struct dir_walk {
	struct fsck *c;
	struct vbuf *dib;
	unsigned level;
	uint64_t children[VMFS_DIRNODE_SPACE / 18 + 2];
	unsigned nchildren;
	uint64_t last_key;
	/* entries to remove (or retype), found in this directory */
	struct bad_entry {
		char name[VMFS_NAME_MAX + 1];
		uint64_t key, ino;      /* the item as found: removed or retyped by key and name */
		bool retype;
	} *bad;
	unsigned nbad, badcap;
	uint64_t count;
	char where[WHERE_MAX];          /* the directory's " (/PATH)" */
	uint64_t *nodes;                /* node units claimed for this directory */
	size_t nnodes, nodecap;
	uint64_t *named;                /* inodes whose link count its entries raised */
	size_t nnamed, namedcap;
};

static int push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
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

static int note_node(struct dir_walk *w, uint64_t unit)
{
	return push_u64(&w->nodes, &w->nnodes, &w->nodecap, unit);
}

static int note_bad(struct dir_walk *w, uint64_t key, const char *name, size_t len, uint64_t ino)
{
	if (w->nbad == w->badcap) {
		unsigned cap = w->badcap ? w->badcap * 2 : 16;
		void *p = realloc(w->bad, cap * sizeof(*w->bad));
		if (!p)
			return -ENOMEM;
		w->bad = p;
		w->badcap = cap;
	}
	memcpy(w->bad[w->nbad].name, name, len);
	w->bad[w->nbad].name[len] = 0;
	w->bad[w->nbad].key = key;
	w->bad[w->nbad].ino = ino;
	w->bad[w->nbad++].retype = false;
	return 0;
}

static int check_inode(struct fsck *c, uint64_t ino, struct ino_info *ii);

static uint32_t mode_of(struct fsck *c, uint64_t ino)
{
	struct vbuf *b;
	uint32_t m = 0;
	if (!inode_read(c->fs, ino, &b)) {
		m = le32_to_cpu(ib_inode(b)->i_mode);
		meta_put(c->fs, b);
	}
	return m;
}

static int entry_cb(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct dir_walk *w = ctx;
	struct fsck *c = w->c;
	struct vmfs *fs = c->fs;
	struct ino_info *ii;
	struct vbuf *ib;
	char shown[VMFS_NAME_MAX + 1];
	int r;

	if (w->level > 0) {
		if (w->nchildren < base_array_size(w->children))
			w->children[w->nchildren++] = ino;
		return 0;
	}
	w->count++;
	memcpy(shown, name, len);
	shown[len] = 0;
	if ((key & ~15ull) != dir_key_prefix(fs, name, len) || key < w->last_key) {
		if (problem(c, false, "directory %llu%s: entry '%s' is filed under the wrong key",
			    (unsigned long long)w->dib->addr, w->where, shown))
			return note_bad(w, key, name, len, ino);
	}
	w->last_key = key;
	r = inode_read(fs, ino, &ib);
	if (r) {
		if (problem(c, false, "directory %llu%s: entry '%s' points at %s %llu",
			    (unsigned long long)w->dib->addr, w->where, shown, r == -ESTALE ? "freed inode" : "a damaged or missing inode",
			    (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		return 0;
	}
	ii = ino_get(c, ino);
	if (!ii) {
		meta_put(fs, ib);
		return -ENOMEM;
	}
	if (mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)) != type &&
	    problem(c, true, "directory %llu%s: entry '%s' has type %u, inode %llu is type %u",
		    (unsigned long long)w->dib->addr, w->where, shown, type, (unsigned long long)ino,
		    (unsigned)mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)))) {
		/* rewrite the entry's type */
		r = note_bad(w, key, name, len, ino);
		if (!r)
			w->bad[w->nbad - 1].retype = true;
	}
	if (S_ISDIR(le32_to_cpu(ib_inode(ib)->i_mode)) && (ii->reached || ino == fs->root_ino)) {
		meta_put(fs, ib);
		if (problem(c, false, "directory %llu%s: entry '%s' is a second link to directory %llu",
			    (unsigned long long)w->dib->addr, w->where, shown, (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		ii->links++;
		return push_u64(&w->named, &w->nnamed, &w->namedcap, ino);
	}
	meta_put(fs, ib);
	ii->links++;
	if (push_u64(&w->named, &w->nnamed, &w->namedcap, ino))
		return -ENOMEM;
	if (ii->reached)
		return 0; /* another name of a file already checked */
	ii->reached = true;
	ii->parent = w->dib->addr;
	if (ii->lost) { /* found earlier as unreachable, and checked then */
		ii->lost = false;
		if (ii->is_dir)
			ino_get(c, w->dib->addr)->subdirs++;
		return 0;
	}
	if (claim_unit(c, ino)) {
		ii->links--;
		ii->reached = false;
		w->nnamed--;
		if (problem(c, false, "directory %llu%s: entry '%s' names inode %llu, whose block is used for something else",
			    (unsigned long long)w->dib->addr, w->where, shown, (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		return 0;
	}
	if (S_ISDIR(mode_of(c, ino))) { /* the inode says what it is, not the entry */
		ii->is_dir = true;
		ino_get(c, w->dib->addr)->subdirs++;
		ii->name = strdup(shown);
		return ii->name ? queue_dir(c, ino) : -ENOMEM;
	}
	path_of(c, w->dib->addr, shown, c->where, sizeof(c->where));
	r = check_inode(c, ino, ii);
	c->where[0] = 0;
	return r;
}

static int walk_dir_node(struct fsck *c, struct dir_walk *w, struct vbuf *node, unsigned level, struct ino_info *di)
{
	struct vmfs *fs = c->fs;
	uint64_t kids[base_array_size(w->children)];
	unsigned nk;
	int r;

	w->level = level;
	w->nchildren = 0;
	r = dir_node_items(fs, w->dib, node, level, entry_cb, w);
	if (r == -ENOMEM)
		return r;
	if (r)
		return 1; /* damaged node */
	nk = w->nchildren;
	memcpy(kids, w->children, nk * sizeof(kids[0]));
	for (unsigned i = 0; i < nk; i++) {
		struct vbuf *b;
		int cl = claim_unit(c, kids[i]);

		if (cl)
			return 1;
		if (meta_read(fs, kids[i], VMFS_MAGIC_DIR, &b)) {
			unclaim_unit(c, kids[i]);
			return 1;
		}
		if (note_node(w, kids[i]))
			return -ENOMEM;
		di->units++;
		r = walk_dir_node(c, w, b, level - 1, di);
		meta_put(fs, b);
		if (r)
			return r;
	}
	return 0;
}

static int note_lost(struct fsck *c, uint64_t ino)
{
	return push_u64(&c->lost, &c->nlost, &c->lostcap, ino);
}

/*
 * The entries a damaged directory's walk had already counted are gone with its
 * tree: an inode they were the only names of is checked already and goes to
 * /lost+found (unless another directory names it later in the walk).
 */
static int unname(struct fsck *c, struct dir_walk *w, struct ino_info *dir)
{
	int r = 0;

	for (size_t k = 0; k < w->nnamed && !r; k++) {
		struct ino_info *ii = ino_find(c, w->named[k]);

		if (!ii || ii->ino == c->fs->root_ino || !ii->links || --ii->links || !ii->reached)
			continue;
		ii->reached = false;
		ii->lost = true;
		if (ii->is_dir && dir->subdirs)
			dir->subdirs--;
		r = note_lost(c, ii->ino);
	}
	return r;
}

static int check_dir(struct fsck *c, struct vbuf *ib, struct ino_info *ii)
{
	struct vmfs *fs = c->fs;
	struct vmfs_inode_disk *di = ib_inode(ib);
	struct dir_walk *w = calloc(1, sizeof(*w));
	struct vbuf *root = NULL;
	int r = 0;

	if (!w)
		return -ENOMEM;
	w->c = c;
	w->dib = ib;
	w->last_key = 0;
	path_of(c, ib->addr, NULL, w->where, sizeof(w->where));
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		r = walk_dir_node(c, w, NULL, 0, ii);
	} else {
		uint64_t a = le64_to_cpu(((le64 *)di->i_root)[0]);
		if (!(le32_to_cpu(di->i_flags) & VMFS_IF_SMALL) || !di->i_height || di->i_height > VMFS_MAX_HEIGHT ||
		    claim_unit(c, a)) {
			r = 1;
		} else if (meta_read(fs, a, VMFS_MAGIC_DIR, &root)) {
			unclaim_unit(c, a);
			r = 1;
		} else {
			r = note_node(w, a);
			ii->units++;
			if (!r)
				r = walk_dir_node(c, w, root, di->i_height - 1u, ii);
			meta_put(fs, root);
		}
	}
	if (r < 0)
		goto out;
	if (r > 0) {
		/* a damaged tree: what it named is found again in pass 3 and goes to lost+found */
		r = 0;
		if (problem(c, false, "directory %llu%s: its tree is damaged; entries are moved to lost+found",
			    (unsigned long long)ib->addr, w->where)) {
			r = fsck_dirty(c, ib);
			dir_init_inline(di);
			di->i_dir_count = 0;
			w->count = 0;
			w->nbad = 0;
			/* its nodes are no longer referenced: pass 5 frees them */
			for (size_t k = 0; k < w->nnodes; k++)
				unclaim_unit(c, w->nodes[k]);
			ii->units = 1;
			r = unname(c, w, ii);
		}
	}
	for (unsigned i = 0; i < w->nbad && !r; i++) {
		const struct bad_entry *e = &w->bad[i];
		if (e->retype) {
			struct vbuf *cb;
			if (!inode_read(fs, e->ino, &cb)) {
				r = dir_set_at(fs, ib, e->key, e->name, strlen(e->name), e->ino,
					       (uint8_t)mode_dtype(le32_to_cpu(ib_inode(cb)->i_mode)));
				meta_put(fs, cb);
			}
			continue;
		}
		r = dir_remove_at(fs, ib, e->key, e->name, strlen(e->name));
		if (!r)
			w->count--;
	}
	if (!r && le64_to_cpu(di->i_dir_count) != w->count &&
	    problem(c, true, "directory %llu%s: entry count %llu, should be %llu", (unsigned long long)ib->addr,
		    w->where, (unsigned long long)le64_to_cpu(di->i_dir_count), (unsigned long long)w->count)) {
		r = fsck_dirty(c, ib);
		di->i_dir_count = cpu_to_le64(w->count);
	}
out:
	free(w->nodes);
	free(w->named);
	free(w->bad);
	free(w);
	return r;
}

/* Checks one inode (already claimed) and everything it owns. */
static int check_inode(struct fsck *c, uint64_t ino, struct ino_info *ii)
{
	struct vmfs *fs = c->fs;
	struct vmfs_inode_disk *di;
	struct vbuf *ib;
	uint32_t flags, mode;
	int r = inode_read(fs, ino, &ib);

	if (r) {
		ii->bad = true;
		return 0;
	}
	di = ib_inode(ib);
	flags = le32_to_cpu(di->i_flags);
	mode = le32_to_cpu(di->i_mode);
	ii->units = 1;
	c->r->files += !S_ISDIR(mode);
	c->r->dirs += S_ISDIR(mode) != 0;
	if (S_ISDIR(mode)) {
		r = check_dir(c, ib, ii);
	} else if (!(flags & VMFS_IF_INLINE)) {
		bool large = flags & VMFS_IF_LARGE;
		r = walk_map(c, ib, ib, (le64 *)di->i_root, VMFS_ROOT_PTRS, di->i_height ? di->i_height - 1u : 0, 0,
			     large ? fs->block_size : VMFS_UNIT, large, ii);
	}
	if (!r && le64_to_cpu(di->i_units) != ii->units &&
	    problem(c, true, "inode %llu%s: %llu units counted, %llu recorded", (unsigned long long)ino, c->where,
		    (unsigned long long)ii->units, (unsigned long long)le64_to_cpu(di->i_units))) {
		r = fsck_dirty(c, ib);
		di->i_units = cpu_to_le64(ii->units);
	}
	meta_put(fs, ib);
	return r;
}

static int walk_queue(struct fsck *c)
{
	int r = 0;

	while (c->qn && !r) {
		uint64_t ino = c->queue[--c->qn];
		r = check_inode(c, ino, ino_get(c, ino));
		progress(c, 1);
	}
	return r;
}

/* Orphan lists: inodes with no names that still exist legitimately (O1). */
static int check_orphans(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	unsigned slots = le32_to_cpu(fs->sb.sb_host_slots);
	int r = 0;

	for (unsigned s = 0; s < slots && !r; s++) {
		struct vmfs_hostrec_disk rec;
		struct vbuf *hb;
		uint64_t ino;
		unsigned guard = 0;

		if (hostrec_read(fs, s, &rec))
			continue;
		if (meta_read(fs, le64_to_cpu(rec.hr_journal) + 1, VMFS_MAGIC_HSTATE, &hb)) {
			if (problem(c, false, "host slot %u: host state block is damaged", s)) {
				r = meta_new(fs, le64_to_cpu(rec.hr_journal) + 1, VMFS_MAGIC_HSTATE, s, &hb);
				if (!r)
					meta_put(fs, hb);
			}
			continue;
		}
		ino = le64_to_cpu(((struct vmfs_hstate_disk *)hb->data)->hs_orphan_head);
		while (ino && !r) {
			struct ino_info *ii = ino_get(c, ino);
			struct vbuf *ib;

			if (ii)
				ii->orphan = true;
			if (!ii || ++guard > 1000000 || ii->reached || claim_unit(c, ino) || inode_read(fs, ino, &ib)) {
				if (problem(c, false, "host slot %u: orphan list is damaged at inode %llu", s,
					    (unsigned long long)ino)) {
					r = fsck_dirty(c, hb);
					((struct vmfs_hstate_disk *)hb->data)->hs_orphan_head = 0;
				}
				break;
			}
			ii->reached = true;
			ii->bad = false;
			ii->links = le32_to_cpu(ib_inode(ib)->i_nlink); /* not checked: an orphan may have none */
			ii->parent = 0;
			ino = le64_to_cpu(ib_inode(ib)->i_orphan_next);
			meta_put(fs, ib);
			r = check_inode(c, ii->ino, ii);
			if (!r)
				r = walk_queue(c);
		}
		meta_put(fs, hb);
	}
	return r;
}

/* Pass 3: allocated sub-blocks that hold inodes nothing reaches. */
static int find_lost(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t inited = le64_to_cpu(fs->sb.sb_rc_inited);
	int r = 0;

	for (uint64_t rc = 0; rc < inited && !r; rc++) {
		struct vbuf *rb = NULL;
		struct vmfs_rc_disk *d = NULL;

		/* a damaged descriptor (rebuilt in pass 5): every block with a pool header is a pool */
		if (!meta_read(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, &rb))
			d = (struct vmfs_rc_disk *)rb->data;
		for (uint32_t i = 0; i < fs->rc_blocks && rc * fs->rc_blocks + i < fs->nblocks && !r; i++) {
			uint64_t blk = rc * fs->rc_blocks + i;
			uint16_t *s;
			struct vbuf *pb = NULL;
			struct vmfs_pool_disk *p = NULL;

			if (d && le16_to_cpu(d->rc_ref[i]) != VMFS_REF_POOL)
				continue;
			s = rc_slot(c, blk);
			if (!s || (*s && *s != VMFS_REF_POOL))
				continue; /* claimed as data: pass 5 says so */
			/*
			 * A damaged header (rebuilt in pass 5 from what is claimed) says
			 * nothing of what is in use: every sub-block that holds an inode
			 * is looked at, or the lost ones would be freed with it.
			 */
			if (!meta_read(fs, fs_block_unit(fs, blk), VMFS_MAGIC_POOL, &pb)) {
				*s = VMFS_REF_POOL; /* an empty pool is legitimate */
				p = (struct vmfs_pool_disk *)pb->data;
				if (!pool_get(c, blk, true)) {
					meta_put(fs, pb);
					r = -ENOMEM;
					break;
				}
			} else if (!d) {
				continue; /* neither the descriptor nor a header says it is a pool */
			}
			for (uint32_t u = 1; u < fs->upb && u < VMFS_POOL_MAX_UNITS && !r; u++) {
				uint64_t unit = fs_block_unit(fs, blk) + u;
				struct pool_exp *pe = pool_get(c, blk, false);
				struct ino_info *ii;
				struct vbuf *ib;

				if ((p && !p->pl_ref[u]) || (pe && pe->ref[u]))
					continue;
				if (inode_read(fs, unit, &ib))
					continue; /* a leaked or damaged sub-block: pass 5 frees it */
				meta_put(fs, ib);
				ii = ino_get(c, unit);
				if (!ii || ii->reached || ii->lost)
					continue; /* named, or lost already (its directory was damaged) */
				claim_unit(c, unit);
				ii->lost = true;
				ii->is_dir = S_ISDIR(mode_of(c, unit));
				r = check_inode(c, unit, ii);
				if (!r)
					r = walk_queue(c);
				if (!r)
					r = note_lost(c, unit);
			}
			meta_put(fs, pb);
		}
		meta_put(fs, rb);
	}
	return r;
}

/* Pass 4: link counts and parents. */
static int check_links(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	int r = 0;

	for (size_t h = 0; h < c->hsize && !r; h++) {
		for (struct ino_info *ii = c->ihash[h]; ii && !r; ii = ii->next) {
			struct vbuf *ib;
			uint32_t want, have;

			if (ii->bad || ii->lost || !ii->reached || (!ii->parent && ii->ino != fs->root_ino))
				continue; /* damaged, lost (pass 3) or an orphan */
			if (inode_read(fs, ii->ino, &ib))
				continue;
			want = ii->is_dir ? 2 + ii->subdirs : ii->links;
			have = le32_to_cpu(ib_inode(ib)->i_nlink);
			if (want != have && problem(c, true, "inode %llu: link count %u, should be %u",
						    (unsigned long long)ii->ino, have, want)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_nlink = cpu_to_le32(want);
			}
			/* the library looks for it on the list when it is unlinked or truncated (inode.c) */
			if (!r && !ii->orphan && (le32_to_cpu(ib_inode(ib)->i_flags) & VMFS_IF_ORPHAN) &&
			    problem(c, true, "inode %llu: marked orphan but on no orphan list", (unsigned long long)ii->ino)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_flags = cpu_to_le32(le32_to_cpu(ib_inode(ib)->i_flags) & ~VMFS_IF_ORPHAN);
			}
			if (!r && ii->is_dir && ii->ino != fs->root_ino &&
			    le64_to_cpu(ib_inode(ib)->i_parent) != ii->parent &&
			    problem(c, true, "directory %llu: parent %llu, should be %llu", (unsigned long long)ii->ino,
				    (unsigned long long)le64_to_cpu(ib_inode(ib)->i_parent), (unsigned long long)ii->parent)) {
				r = fsck_dirty(c, ib);
				ib_inode(ib)->i_parent = cpu_to_le64(ii->parent);
			}
			meta_put(fs, ib);
		}
	}
	return r;
}

/* Pass 5: reference counts on disk against what was found. */
static int check_space(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t inited = le64_to_cpu(fs->sb.sb_rc_inited), need = inited;
	int r = 0;

	for (uint64_t rc = inited; rc < fs->rc_count; rc++)
		for (uint32_t i = 0; c->rcexp[rc] && i < fs->rc_blocks; i++)
			if (c->rcexp[rc][i])
				need = rc + 1;
	if (need > inited && problem(c, false, "resource clusters %llu..%llu are in use but not initialised",
				     (unsigned long long)inited, (unsigned long long)need - 1)) {
		struct vbuf *sbb;
		r = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
		if (!r) {
			r = fsck_dirty(c, sbb);
			((struct vmfs_sb_disk *)sbb->data)->sb_rc_inited = cpu_to_le64(need);
			fs->sb.sb_rc_inited = cpu_to_le64(need);
			meta_put(fs, sbb);
		}
		inited = need;
	}
	for (uint64_t rc = 0; rc < inited && !r; rc++) {
		uint32_t len = (uint32_t)base_min((uint64_t)fs->rc_blocks, fs->nblocks - rc * fs->rc_blocks), nfree = 0;
		struct vbuf *rb;
		struct vmfs_rc_disk *d;

		progress(c, 1);
		if (meta_read(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, &rb) ||
		    le64_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_first) != rc * fs->rc_blocks ||
		    le32_to_cpu(((struct vmfs_rc_disk *)rb->data)->rc_nblocks) != len) {
			if (!problem(c, false, "resource cluster %llu: descriptor is damaged; rebuilt from the blocks in use",
				     (unsigned long long)rc))
				continue;
			r = meta_new(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, rc, &rb);
			if (r)
				break;
			d = (struct vmfs_rc_disk *)rb->data;
			d->rc_first = cpu_to_le64(rc * fs->rc_blocks);
			d->rc_nblocks = cpu_to_le32(len);
			for (uint32_t i = 0; i < len; i++)
				d->rc_ref[i] = cpu_to_le16(c->rcexp[rc] ? c->rcexp[rc][i] : 0);
		}
		d = (struct vmfs_rc_disk *)rb->data;
		for (uint32_t i = 0; i < len && !r; i++) {
			uint16_t have = le16_to_cpu(d->rc_ref[i]), want = c->rcexp[rc] ? c->rcexp[rc][i] : 0;
			uint64_t blk = rc * fs->rc_blocks + i;

			if (have != want) {
				bool fix;
				if (!want)
					fix = problem(c, true, "block %llu: marked in use (0x%x) but nothing uses it",
						      (unsigned long long)blk, have);
				else if (!have)
					fix = problem(c, true, "block %llu: in use but marked free", (unsigned long long)blk);
				else
					fix = problem(c, true, "block %llu: count 0x%x, should be 0x%x",
						      (unsigned long long)blk, have, want);
				if (fix) {
					r = fsck_dirty(c, rb);
					d->rc_ref[i] = cpu_to_le16(want);
					have = want;
				}
			}
			nfree += have == 0;
		}
		if (!r && le32_to_cpu(d->rc_nfree) != nfree &&
		    problem(c, true, "resource cluster %llu: free count %u, should be %u", (unsigned long long)rc,
			    le32_to_cpu(d->rc_nfree), nfree)) {
			r = fsck_dirty(c, rb);
			d->rc_nfree = cpu_to_le32(nfree);
		}
		if (!r && !rc_owner_ok(fs, &d->rc_lock) &&
		    problem(c, true, "resource cluster %llu: owner record is malformed (slot+1 %u of %u)",
			    (unsigned long long)rc, le32_to_cpu(d->rc_lock.lr_slot1), le32_to_cpu(fs->sb.sb_host_slots))) {
			r = fsck_dirty(c, rb); /* placement only (docs/FORMAT.md): no owner loses nothing */
			memset(&d->rc_lock, 0, sizeof(d->rc_lock));
		}
		meta_put(fs, rb);
		c->r->blocks_used += len - nfree;
	}
	/* pool headers */
	for (size_t h = 0; h < c->hsize && !r; h++) {
		for (struct pool_exp *pe = c->phash[h]; pe && !r; pe = pe->next) {
			uint16_t *s = rc_slot(c, pe->block);
			struct vmfs_pool_disk *p;
			struct vbuf *pb;
			uint32_t nfree = 0;

			if (!s || *s != VMFS_REF_POOL)
				continue; /* the block went to data: its claim was refused */
			if (meta_read(fs, fs_block_unit(fs, pe->block), VMFS_MAGIC_POOL, &pb) ||
			    le32_to_cpu(((struct vmfs_pool_disk *)pb->data)->pl_units) != fs->upb) {
				if (!problem(c, false, "pool %llu: header is damaged; rebuilt from the sub-blocks in use",
					     (unsigned long long)pe->block))
					continue;
				r = meta_new(fs, fs_block_unit(fs, pe->block), VMFS_MAGIC_POOL, pe->block, &pb);
				if (r)
					break;
				p = (struct vmfs_pool_disk *)pb->data;
				p->pl_units = cpu_to_le32(fs->upb);
				for (uint32_t u = 0; u < fs->upb; u++)
					p->pl_ref[u] = cpu_to_le16(pe->ref[u]);
			}
			p = (struct vmfs_pool_disk *)pb->data;
			for (uint32_t u = 0; u < fs->upb && !r; u++) {
				uint16_t have = le16_to_cpu(p->pl_ref[u]), want = pe->ref[u];
				if (have != want && problem(c, true, "sub-block %llu: count %u, should be %u",
							    (unsigned long long)fs_block_unit(fs, pe->block) + u, have, want)) {
					r = fsck_dirty(c, pb);
					p->pl_ref[u] = cpu_to_le16(want);
					have = want;
				}
				nfree += have == 0;
			}
			if (!r && le32_to_cpu(p->pl_nfree) != nfree &&
			    problem(c, true, "pool %llu: free count %u, should be %u", (unsigned long long)pe->block,
				    le32_to_cpu(p->pl_nfree), nfree)) {
				r = fsck_dirty(c, pb);
				p->pl_nfree = cpu_to_le32(nfree);
			}
			meta_put(fs, pb);
		}
	}
	return r;
}

/* Loads the allocator once, after the space is right again. */
static int alloc_ready(struct fsck *c)
{
	int r = c->alloc_ready ? 0 : alloc_init(c->fs);

	c->alloc_ready = !r;
	return r;
}

/*
 * /lost+found itself is named by no directory (its entry or the root was
 * damaged): it is linked into the root again before anything goes into it.
 */
static int relink_lost_found(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t lf = le64_to_cpu(fs->sb.sb_lostfound_ino);
	struct ino_info *li = ino_find(c, lf);
	struct vbuf *rb = NULL, *lfb = NULL;
	int r;

	if (!li || !li->lost || li->bad || !li->is_dir ||
	    !problem(c, false, "directory %llu: /lost+found is named by no directory; linked into / again",
		     (unsigned long long)lf))
		return 0;
	r = alloc_ready(c);
	if (!r)
		r = meta_read(fs, fs->root_ino, VMFS_MAGIC_INODE, &rb);
	if (!r)
		r = inode_read(fs, lf, &lfb);
	if (!r)
		r = fsck_dirty(c, lfb);
	if (!r)
		r = dir_insert(fs, rb, "lost+found", 10, lf, DT_DIR);
	if (!r) {
		ib_inode(rb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(rb)->i_nlink) + 1);
		ib_inode(lfb)->i_nlink = cpu_to_le32(2 + li->subdirs);
		ib_inode(lfb)->i_parent = cpu_to_le64(fs->root_ino);
		li->lost = false;
	}
	meta_put(fs, lfb);
	meta_put(fs, rb);
	return r == -EEXIST ? 0 : r; /* another 'lost+found' took the name: then nothing goes into this one */
}

/* Links unreachable inodes into /lost+found as "#INO" (after the space is right again). */
static int reconnect(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t lf = le64_to_cpu(fs->sb.sb_lostfound_ino);
	struct vbuf *lfb = NULL, *rb;
	int r = relink_lost_found(c);

	for (size_t i = 0; i < c->nlost && !r; i++) {
		struct ino_info *ii = ino_find(c, c->lost[i]);
		struct vbuf *ib;
		char name[32];

		if (!ii || !ii->lost || ii->bad || ii->ino == lf)
			continue; /* a lost directory named it (it came along), it is damaged, or it is /lost+found */
		if (!problem(c, false, "inode %llu: no directory names it; moved to /lost+found", (unsigned long long)ii->ino))
			continue;
		if (!lfb) {
			r = alloc_ready(c);
			if (r)
				break;
			if (inode_read(fs, lf, &lfb) || !S_ISDIR(le32_to_cpu(ib_inode(lfb)->i_mode))) {
				meta_put(fs, lfb);
				lfb = NULL;
				r = meta_read(fs, fs->root_ino, VMFS_MAGIC_INODE, &rb);
				if (!r)
					r = inode_new(fs, S_IFDIR | 0700, 0, 0, fs->root_ino, &lfb);
				if (!r)
					r = dir_insert(fs, rb, "lost+found", 10, lfb->addr, DT_DIR);
				if (!r) {
					struct vbuf *sbb;
					ib_inode(rb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(rb)->i_nlink) + 1);
					if (!meta_read(fs, 0, VMFS_MAGIC_SB, &sbb)) {
						fsck_dirty(c, sbb);
						((struct vmfs_sb_disk *)sbb->data)->sb_lostfound_ino = cpu_to_le64(lfb->addr);
						meta_put(fs, sbb);
					}
				}
				meta_put(fs, rb);
				if (r)
					break;
			}
			r = fsck_dirty(c, lfb);
		}
		snprintf(name, sizeof(name), "#%llu", (unsigned long long)ii->ino);
		r = r ? r : inode_read(fs, ii->ino, &ib);
		if (r)
			break;
		r = fsck_dirty(c, ib);
		if (!r)
			r = dir_insert(fs, lfb, name, strlen(name), ii->ino,
				       (uint8_t)mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)));
		if (!r) {
			if (ii->is_dir) {
				ib_inode(ib)->i_nlink = cpu_to_le32(2 + ii->subdirs);
				ib_inode(ib)->i_parent = cpu_to_le64(lfb->addr);
				ib_inode(lfb)->i_nlink = cpu_to_le32(le32_to_cpu(ib_inode(lfb)->i_nlink) + 1);
			} else {
				ib_inode(ib)->i_nlink = cpu_to_le32(ii->links + 1);
			}
		}
		meta_put(fs, ib);
	}
	meta_put(fs, lfb);
	return r;
}

/* ---- the whole check ------------------------------------------------------------------ */

/*
 * The root inode is unreadable or not a directory: made again in place, empty
 * (with -n in memory only, so the check goes on as -y would). What it named is
 * found unreachable in pass 3 and goes to /lost+found, which is linked into
 * the new root first (relink_lost_found()). -EUCLEAN with -p, which does not
 * fix it: nothing can be checked without a root, and what -p fixes would then
 * be judged against an empty one.
 */
static int remake_root(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint8_t *u;
	struct vbuf rb = { .addr = fs->root_ino };
	struct vmfs_mhdr *h;
	int r;

	if (!problem(c, false, "root directory %llu is damaged; made again, empty: what it named goes to /lost+found",
		     (unsigned long long)fs->root_ino) && repairing(c))
		return -EUCLEAN;
	u = dev_alloc_buf(VMFS_UNIT);
	if (!u)
		return -ENOMEM;
	memset(u, 0, VMFS_UNIT);
	h = (struct vmfs_mhdr *)u;
	h->mh_magic = cpu_to_le32(VMFS_MAGIC_INODE);
	h->mh_addr = cpu_to_le64(fs->root_ino);
	h->mh_owner = cpu_to_le64(fs->root_ino);
	rb.data = u;
	inode_init(&rb, S_IFDIR | 0755, 0, 0, fs->root_ino);
	meta_seal(fs, u);
	r = repairing(c) ? meta_overlay_dirty(fs, fs->root_ino, u) : meta_overlay(fs, fs->root_ino, u);
	free(u);
	return r;
}

static int fsck_open(struct fsck *c, const char *path, char *errbuf, size_t errlen)
{
	struct vmfs *fs = c->fs;
	struct vmfs_sb_disk *p = dev_alloc_buf(VMFS_UNIT), *b = dev_alloc_buf(VMFS_UNIT);
	bool pok, bok;
	int r;

	if (!p || !b) {
		r = -ENOMEM;
		goto out;
	}
	r = dev_open(path, repairing(c) ? 0 : DEV_RDONLY, NULL, &fs->dev);
	if (r) {
		snprintf(errbuf, errlen, "%s: %s", path, dev_strerror(r));
		goto out;
	}
	if (dev_size(fs->dev) < VMFS_SB_BACKUP_OFF + VMFS_UNIT) {
		snprintf(errbuf, errlen, "%s: not a vmfs datastore (too small)", path);
		r = -EINVAL;
		goto out;
	}
	pok = !dev_pread(fs->dev, p, VMFS_UNIT, 0) && !sb_check(p);
	bok = !dev_pread(fs->dev, b, VMFS_UNIT, VMFS_SB_BACKUP_OFF) && !sb_check(b);
	if (!pok && !bok) {
		snprintf(errbuf, errlen, "%s: no valid superblock (primary or backup): %s", path,
			 le32_to_cpu(p->sb_hdr.mh_magic) == VMFS_MAGIC_SB ? "damaged" : "not a vmfs datastore");
		r = -EINVAL;
		goto out;
	}
	memcpy(&fs->sb, pok ? p : b, sizeof(fs->sb));
	if (le64_to_cpu(fs->sb.sb_size) > dev_size(fs->dev)) {
		snprintf(errbuf, errlen, "%s: device is smaller than the datastore (truncated?)", path);
		r = -EUCLEAN;
		goto out;
	}
	if (le64_to_cpu(fs->sb.sb_incompat) & ~VMFS_FEATURE_INCOMPAT_SUPP) {
		snprintf(errbuf, errlen, "%s: unknown incompatible features 0x%llx", path,
			 (unsigned long long)le64_to_cpu(fs->sb.sb_incompat));
		r = -EPROTONOSUPPORT;
		goto out;
	}
	super_geometry(fs);
	r = cache_init(fs);
	if (!r)
		r = itab_init(fs);
	if (!r && !pok) /* replay reads unit 0: until judged, it is the backup */
		r = meta_overlay(fs, 0, b);
	if (r)
		goto out;
	c->sb_p = p;
	c->sb_b = b;
	c->sb_pok = pok;
	c->sb_bok = bok;
	return 0;
out:
	free(p);
	free(b);
	return r;
}

/*
 * The two superblock copies, judged after journal replay: a transaction that
 * holds unit 0 rewrites both (in place, or in memory with -n), so a copy torn
 * by a power cut during that transaction's in-place write is no problem.
 */
static int check_superblocks(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	struct vbuf *sbb;
	int r = 0;

	if (fs->j_sb_replayed)
		return 0;
	if (!c->sb_pok) {
		if (problem(c, true, "primary superblock is damaged; the backup is intact"))
			r = meta_overlay_dirty(fs, 0, c->sb_b);
	} else if (!c->sb_bok || memcmp(c->sb_p, c->sb_b, VMFS_UNIT)) {
		if (problem(c, true, "backup superblock differs from the primary")) {
			r = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
			if (!r) {
				r = fsck_dirty(c, sbb);
				meta_put(fs, sbb);
			}
		}
	}
	return r;
}

/*
 * No repair while a host uses the datastore: a slot that is not free is
 * watched, long enough when repairing to tell a dead host from a live one
 * (dead_ms), two heartbeats for a check. Read-only; joins nothing.
 */
static int check_hosts(struct fsck *c, char *errbuf, size_t errlen)
{
	struct vmfs *fs = c->fs;
	struct lk_slot_info *s = NULL;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	uint32_t watch;
	size_t n = 0;
	bool used = false;
	int r;

	vmfs_cluster_io(fs, &io, &g, &t);
	fs->lkio = io;
	r = lk_read_slots(&fs->lkio, &g, &s, &n);
	if (r) {
		snprintf(errbuf, errlen, "cannot read the heartbeat region: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++)
		used |= s[i].state != LK_SLOT_FREE;
	free(s);
	s = NULL;
	if (!used)
		return 0;
	watch = repairing(c) ? t.dead_ms + t.interval_ms : 2 * t.interval_ms + 100;
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, "Watching host heartbeats", 0, 1);
	r = lk_watch_slots(&fs->lkio, &g, watch, &s, &n);
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, "Watching host heartbeats", 1, 1);
	if (r) {
		snprintf(errbuf, errlen, "cannot read the heartbeat region: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i].state == LK_SLOT_FREE || !s[i].alive)
			continue;
		if (!c->r->live_hosts++ && repairing(c) && !c->o->ignore_live_hosts) {
			snprintf(errbuf, errlen, "host slot %u (%s) is alive: the datastore is in use; unmount it on "
				 "every host first", s[i].slot, s[i].hostname[0] ? s[i].hostname : "unknown host");
			r = -EBUSY;
		}
	}
	free(s);
	return r;
}

/* Reads every pool with one I/O each, so pass 2 finds its inodes and nodes cached. */
static void prefetch_pools(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	uint64_t inited = le64_to_cpu(fs->sb.sb_rc_inited);

	fs->max_bufs = base_max(fs->max_bufs, (size_t)1 << 19); /* up to 2 GiB of metadata */
	for (uint64_t rc = 0; rc < inited; rc++) {
		struct vmfs_rc_disk *d;
		struct vbuf *rb;

		if (meta_read(fs, fs->rc_table_unit + rc, VMFS_MAGIC_RC, &rb))
			continue;
		d = (struct vmfs_rc_disk *)rb->data;
		for (uint32_t i = 0; i < fs->rc_blocks && rc * fs->rc_blocks + i < fs->nblocks; i++)
			if (le16_to_cpu(d->rc_ref[i]) == VMFS_REF_POOL && fs->nbufs + fs->upb < fs->max_bufs)
				meta_prefetch(fs, fs_block_unit(fs, rc * fs->rc_blocks + i), fs->upb);
		meta_put(fs, rb);
	}
}

static bool all_clean(struct fsck *c)
{
	unsigned slots = le32_to_cpu(c->fs->sb.sb_host_slots);
	uint8_t *js = dev_alloc_buf(VMFS_UNIT);
	bool clean = js && !(le32_to_cpu(c->fs->sb.sb_state) & VMFS_STATE_ERRORS) && c->r->found == 0;

	for (unsigned s = 0; s < slots && clean; s++) {
		struct vmfs_hostrec_disk rec;
		int r = hostrec_read(c->fs, s, &rec);
		if (r == -ENOENT)
			continue;
		clean = !r && !dev_pread(c->fs->dev, js, VMFS_UNIT, le64_to_cpu(rec.hr_journal) * VMFS_UNIT) &&
			!meta_check(c->fs, js, le64_to_cpu(rec.hr_journal), VMFS_MAGIC_JSB) &&
			(le32_to_cpu(((struct vmfs_jsb_disk *)js)->js_flags) & VMFS_JSB_CLEAN);
	}
	free(js);
	return clean;
}

int vmfs_fsck(const char *path, const struct vmfs_fsck_opts *o, struct vmfs_fsck_result *res, char *errbuf,
	      size_t errlen)
{
	struct fsck c = { .o = o, .r = res, .hsize = 1 << 16 };
	struct vmfs *fs;
	struct ino_info *root;
	int r;

	memset(res, 0, sizeof(*res));
	r = fs_new(&fs);
	if (r)
		return r;
	c.fs = fs;
	fs->errbuf = c.quiet; /* fsck says what is wrong itself, in order */
	fs->ro = !repairing(&c);
	fs->no_journal = true; /* repairs are written directly, at the end */
	fs->commit_ms = ~0u;
	r = fsck_open(&c, path, errbuf, errlen);
	if (!r)
		r = check_hosts(&c, errbuf, errlen);
	if (r)
		goto out_fs;
	if (!o->force && all_clean(&c) && c.sb_pok && c.sb_bok && !memcmp(c.sb_p, c.sb_b, VMFS_UNIT)) {
		res->skipped_clean = true;
		goto out_fs;
	}
	c.rcexp = calloc(fs->rc_count, sizeof(*c.rcexp));
	c.phash = calloc(c.hsize, sizeof(*c.phash));
	c.ihash = calloc(c.hsize, sizeof(*c.ihash));
	if (!c.rcexp || !c.phash || !c.ihash) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&fs->lock);
	fs->op_active = true;

	start_pass(&c, "Pass 1: host records, journals, orphans", le32_to_cpu(fs->sb.sb_host_slots));
	r = check_journals(&c);
	if (!r)
		r = check_superblocks(&c);
	if (!r) { /* the journal may have changed the superblock */
		struct vbuf *sbb;
		r = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
		if (!r) {
			memcpy(&fs->sb, sbb->data, sizeof(fs->sb));
			meta_put(fs, sbb);
		}
	}
	if (r)
		goto out_unlock;

	start_pass(&c, "Pass 2: inodes, block maps, directories", fs->nblocks);
	prefetch_pools(&c);
	root = ino_get(&c, fs->root_ino);
	if (!root || claim_unit(&c, fs->root_ino) ||
	    (!S_ISDIR(mode_of(&c, fs->root_ino)) && (r = remake_root(&c)) != 0)) {
		if (r != -ENOMEM)
			snprintf(errbuf, errlen, "%s: the root directory is damaged; only -y or -n can go on", path);
		r = r ? r : -EUCLEAN;
		goto out_unlock;
	}
	root->reached = true;
	root->is_dir = true;
	root->parent = fs->root_ino;
	r = queue_dir(&c, fs->root_ino);
	if (!r)
		r = walk_queue(&c);
	if (!r)
		r = check_orphans(&c);
	if (r)
		goto out_unlock;

	start_pass(&c, "Pass 3: connectivity", le64_to_cpu(fs->sb.sb_rc_inited));
	r = find_lost(&c);
	if (r)
		goto out_unlock;
	start_pass(&c, "Pass 4: link counts", 1);
	r = check_links(&c);
	if (r)
		goto out_unlock;
	start_pass(&c, "Pass 5: space accounting", fs->rc_count);
	r = check_space(&c);
	if (!r)
		r = reconnect(&c);
	if (!r && repairing(&c) && fs->ndirty) {
		fs->op_active = false;
		r = meta_write_direct(fs);
		if (r)
			snprintf(errbuf, errlen, "%s: writing the repairs failed: %s", path, strerror(-r));
	}
out_unlock:
	fs->op_active = false;
	pthread_mutex_unlock(&fs->lock);
out:
	for (size_t h = 0; h < c.hsize && c.ihash; h++)
		while (c.ihash[h]) {
			struct ino_info *i = c.ihash[h];
			c.ihash[h] = i->next;
			free(i->name);
			free(i);
		}
	for (size_t h = 0; h < c.hsize && c.phash; h++)
		while (c.phash[h]) {
			struct pool_exp *p = c.phash[h];
			c.phash[h] = p->next;
			free(p->ref);
			free(p);
		}
	for (uint64_t i = 0; c.rcexp && i < fs->rc_count; i++)
		free(c.rcexp[i]);
	free(c.rcexp);
	free(c.phash);
	free(c.ihash);
	free(c.queue);
	free(c.lost);
	free(c.sb_p);
	free(c.sb_b);
	if (r && errbuf && !errbuf[0])
		snprintf(errbuf, errlen, "%s: %s", path, strerror(-r));
out_fs:
	fs_free(fs);
	return r;
}
