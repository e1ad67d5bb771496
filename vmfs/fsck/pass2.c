/*
 * Pass 2: inodes, block maps and directories, walked from the root (made
 * again, empty, when damaged), then the orphan lists (O1). Every reference is
 * claimed in counts.c; what is bad or claimed twice is cleared when fixing.
 * Directories are walked from a queue, files as their entries are met, and
 * each directory keeps the name it was reached under, so what is cleared is
 * reported by path.
 */
#include "vmfs/fsck/fsck_i.h"

#include <dirent.h>
#include <sys/stat.h>

static int queue_dir(struct fsck *c, uint64_t ino)
{
	return fsck_push_u64(&c->queue, &c->qn, &c->qcap, ino);
}

static void unclaim_block(struct fsck *c, uint64_t unit)
{
	uint16_t *s = fsck_rc_slot(c, fs_unit_block(c->fs, unit));

	if (s && *s > 0 && *s < VMFS_REF_MAX)
		(*s)--;
}

/*
 * A REDIRECT data entry of a LARGE map (docs/FORMAT.md, "Redirects"): its
 * table is claimed once, when first met; each pointer to a slot is counted
 * for pass 5 (a slot's count); a slot's blocks are claimed at its first
 * pointer: backing (shared, so claimed again) and new (claimed once: no other
 * pointer may name it). Returns true when the pointer is to be cleared.
 */
static bool walk_redirect(struct fsck *c, struct vbuf *ib, uint64_t p, uint64_t lblk, bool shared, bool large,
			  struct ino_info *ii)
{
	struct vmfs *fs = c->fs;
	uint64_t a = p & VMFS_PTR_ADDR_MASK;
	unsigned s = (unsigned)((p & VMFS_PTR_SLOT_MASK) >> VMFS_PTR_SLOT_SHIFT);
	struct redir_exp *t = NULL;
	struct redir r;
	bool created;

	if (large && !(p & VMFS_PTR_TBZ) && (le64_to_cpu(fs->sb.sb_incompat) & VMFS_INCOMPAT_SHARED) &&
	    addr_in_data(fs, a) && !unit_is_block(fs, a))
		t = fsck_redir_get(c, a, &created);
	if (t && created) { /* the table: a sub-block of its own, intact */
		int cl = fsck_claim_unit(c, a);
		struct vbuf *tb = NULL;

		t->bad = cl != 0 || redir_table_read(fs, a, &tb) != 0;
		meta_put(fs, tb);
		if (t->bad && (cl == 0 || cl == 2))
			fsck_unclaim_unit(c, a);
	}
	if (t && !t->bad && s < VMFS_REDIR_MAX_SLOTS && !redir_get(fs, p, &r)) {
		bool ok = !t->count[s] || shared; /* named again only from a shared map */

		if (ok && !t->count[s]) {
			int rback = fsck_claim_block(c, redir_backing(&r), 1), rnew = fsck_claim_block(c, redir_new(&r), 1);

			ok = (rback == 0 || rback == 2) && rnew == 0;
			if (!ok && (rback == 0 || rback == 2))
				unclaim_block(c, redir_backing(&r));
			if (!ok && (rnew == 0 || rnew == 2))
				unclaim_block(c, redir_new(&r));
		}
		redir_put(fs, &r);
		if (ok) {
			t->count[s]++;
			ii->units += fs->upb;
			return false;
		}
	}
	return fsck_problem(c, PR_REDIR_BAD, (unsigned long long)ib->addr, c->where, (unsigned long long)lblk,
			    (unsigned long long)a);
}

/* Walks a block map subtree; clears pointers that are bad or already claimed (when fixing). */
static int walk_map(struct fsck *c, struct vbuf *ib, struct vbuf *owner, le64 *ptrs, unsigned n, unsigned level,
		    uint64_t base, uint64_t bb, bool large, struct ino_info *ii)
{
	struct vmfs *fs = c->fs;
	uint64_t span = 1;
	bool shared = le32_to_cpu(ib_inode(ib)->i_flags) & VMFS_IF_SHARED;
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
		if (level == 0 && (p & VMFS_PTR_REDIRECT) && (le64_to_cpu(fs->sb.sb_incompat) & VMFS_INCOMPAT_SHARED)) {
			clear = walk_redirect(c, ib, p, lblk, shared, large, ii);
		} else if (level == 0) {
			r = (p & VMFS_PTR_RESERVED) ? -1 : large ? fsck_claim_block(c, a, 1) : fsck_claim_unit(c, a);
			if (r == 2 && shared)
				r = 0; /* counted once more: pass 5 checks the count (A2) */
			if (r < 0)
				clear = fsck_problem(c, PR_PTR_BAD,
						(unsigned long long)ib->addr, c->where, (unsigned long long)lblk,
						(unsigned long long)p);
			else if (r > 0)
				clear = fsck_problem(c, PR_PTR_SHARED,
						(unsigned long long)ib->addr, c->where, (unsigned long long)lblk,
						(unsigned long long)a);
			else
				ii->units += large ? fs->upb : 1;
			if (r > 0 && !clear && large)
				ii->units += fs->upb;
			if (r && clear) {
				if (r > 0 && !large)
					fsck_unclaim_unit(c, a);
				else if (r > 0)
					unclaim_block(c, a);
			}
		} else {
			uint64_t below;

			r = (p & ~VMFS_PTR_ADDR_MASK) ? -1 : fsck_claim_unit(c, a);
			if (r == 2 && shared && fsck_memo_get(c, a, &below)) {
				ii->units += below; /* a shared subtree, walked (and its children counted) once */
				continue;
			}
			if (r == 0) {
				r = meta_read(fs, a, VMFS_MAGIC_PTR, &b);
				if (!r && le16_to_cpu(((struct vmfs_mhdr *)b->data)->mh_flags) != level) {
					meta_put(fs, b);
					r = -EUCLEAN;
				}
				if (r) {
					fsck_unclaim_unit(c, a);
					clear = fsck_problem(c, PR_PTRBLOCK_BAD,
							(unsigned long long)ib->addr, c->where, (unsigned long long)a);
				} else {
					le64 *child = ((struct vmfs_ptr_disk *)b->data)->pb_ptr;
					uint64_t before = ii->units;

					ii->units++;
					ret = walk_map(c, ib, b, child, VMFS_PTRS_PER_BLOCK, level - 1, lblk, bb, large, ii);
					if (!ret && shared)
						ret = fsck_memo_set(c, a, ii->units - before);
					/* the library refuses a pointer block that maps nothing (bmap.c) */
					if (!ret && base_all_zero(child, VMFS_PTRS_PER_BLOCK * sizeof(*child)) &&
					    fsck_problem(c, PR_PTRBLOCK_EMPTY,
						    (unsigned long long)ib->addr, c->where, (unsigned long long)a)) {
						fsck_unclaim_unit(c, a);
						ii->units--;
						clear = true;
					}
					meta_put(fs, b);
				}
			} else {
				clear = fsck_problem(c, PR_PTRBLOCK_ADDR_BAD,
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
		uint8_t namelen;        /* an encrypted name's bytes may hold zeros */
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

static int note_node(struct dir_walk *w, uint64_t unit)
{
	return fsck_push_u64(&w->nodes, &w->nnodes, &w->nodecap, unit);
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
	w->bad[w->nbad].namelen = (uint8_t)len;
	w->bad[w->nbad].key = key;
	w->bad[w->nbad].ino = ino;
	w->bad[w->nbad++].retype = false;
	return 0;
}

uint32_t fsck_mode_of(struct fsck *c, uint64_t ino)
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
	bool enc;
	int r;

	if (w->level > 0) {
		if (w->nchildren < base_array_size(w->children))
			w->children[w->nchildren++] = ino;
		return 0;
	}
	w->count++;
	/* an encrypted name (fsck has no key) is shown as "#INODE", as /lost+found names, and checked by its key only */
	enc = dir_names_encrypted(fs, w->dib);
	if (enc) {
		snprintf(shown, sizeof(shown), "#%llu", (unsigned long long)ino);
	} else {
		memcpy(shown, name, len);
		shown[len] = 0;
	}
	if ((!enc && (key & ~15ull) != dir_key_prefix(fs, name, len)) || key < w->last_key) {
		if (fsck_problem(c, PR_ENTRY_WRONG_KEY,
			    (unsigned long long)w->dib->addr, w->where, shown))
			return note_bad(w, key, name, len, ino);
	}
	w->last_key = key;
	r = inode_read(fs, ino, &ib);
	if (r) {
		if (fsck_problem(c, PR_ENTRY_NO_INODE,
			    (unsigned long long)w->dib->addr, w->where, shown, r == -ESTALE ? "freed inode" : "a damaged or missing inode",
			    (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		return 0;
	}
	ii = fsck_ino_get(c, ino);
	if (!ii) {
		meta_put(fs, ib);
		return -ENOMEM;
	}
	if (mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)) != type &&
	    fsck_problem(c, PR_ENTRY_TYPE,
		    (unsigned long long)w->dib->addr, w->where, shown, type, (unsigned long long)ino,
		    (unsigned)mode_dtype(le32_to_cpu(ib_inode(ib)->i_mode)))) {
		/* rewrite the entry's type */
		r = note_bad(w, key, name, len, ino);
		if (!r)
			w->bad[w->nbad - 1].retype = true;
	}
	if (S_ISDIR(le32_to_cpu(ib_inode(ib)->i_mode)) && (ii->reached || ino == fs->root_ino)) {
		meta_put(fs, ib);
		if (fsck_problem(c, PR_ENTRY_DIR_LINK,
			    (unsigned long long)w->dib->addr, w->where, shown, (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		ii->links++;
		return fsck_push_u64(&w->named, &w->nnamed, &w->namedcap, ino);
	}
	meta_put(fs, ib);
	ii->links++;
	if (fsck_push_u64(&w->named, &w->nnamed, &w->namedcap, ino))
		return -ENOMEM;
	if (ii->reached)
		return 0; /* another name of a file already checked */
	ii->reached = true;
	ii->parent = w->dib->addr;
	if (ii->lost) { /* found earlier as unreachable, and checked then */
		ii->lost = false;
		if (ii->is_dir)
			fsck_ino_get(c, w->dib->addr)->subdirs++;
		return 0;
	}
	if (fsck_claim_unit(c, ino)) {
		ii->links--;
		ii->reached = false;
		w->nnamed--;
		if (fsck_problem(c, PR_ENTRY_INODE_SHARED,
			    (unsigned long long)w->dib->addr, w->where, shown, (unsigned long long)ino))
			return note_bad(w, key, name, len, ino);
		return 0;
	}
	if (S_ISDIR(fsck_mode_of(c, ino))) { /* the inode says what it is, not the entry */
		ii->is_dir = true;
		fsck_ino_get(c, w->dib->addr)->subdirs++;
		ii->name = strdup(shown);
		return ii->name ? queue_dir(c, ino) : -ENOMEM;
	}
	fsck_path_of(c, w->dib->addr, shown, c->where, sizeof(c->where));
	r = fsck_check_inode(c, ino, ii);
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
		int cl = fsck_claim_unit(c, kids[i]);

		if (cl)
			return 1;
		if (meta_read(fs, kids[i], VMFS_MAGIC_DIR, &b)) {
			fsck_unclaim_unit(c, kids[i]);
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

/*
 * The entries a damaged directory's walk had already counted are gone with its
 * tree: an inode they were the only names of is checked already and goes to
 * /lost+found (unless another directory names it later in the walk).
 */
static int unname(struct fsck *c, struct dir_walk *w, struct ino_info *dir)
{
	int r = 0;

	for (size_t k = 0; k < w->nnamed && !r; k++) {
		struct ino_info *ii = fsck_ino_find(c, w->named[k]);

		if (!ii || ii->ino == c->fs->root_ino || !ii->links || --ii->links || !ii->reached)
			continue;
		ii->reached = false;
		ii->lost = true;
		if (ii->is_dir && dir->subdirs)
			dir->subdirs--;
		r = fsck_note_lost(c, ii->ino);
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
	fsck_path_of(c, ib->addr, NULL, w->where, sizeof(w->where));
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		r = walk_dir_node(c, w, NULL, 0, ii);
	} else {
		uint64_t a = le64_to_cpu(((le64 *)di->i_root)[0]);
		if (!(le32_to_cpu(di->i_flags) & VMFS_IF_SMALL) || !di->i_height || di->i_height > VMFS_MAX_HEIGHT ||
		    fsck_claim_unit(c, a)) {
			r = 1;
		} else if (meta_read(fs, a, VMFS_MAGIC_DIR, &root)) {
			fsck_unclaim_unit(c, a);
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
		if (fsck_problem(c, PR_DIR_TREE_BAD,
			    (unsigned long long)ib->addr, w->where)) {
			r = fsck_dirty(c, ib);
			dir_init_inline(di);
			di->i_dir_count = 0;
			w->count = 0;
			w->nbad = 0;
			/* its nodes are no longer referenced: pass 5 frees them */
			for (size_t k = 0; k < w->nnodes; k++)
				fsck_unclaim_unit(c, w->nodes[k]);
			ii->units = 1;
			r = unname(c, w, ii);
		}
	}
	for (unsigned i = 0; i < w->nbad && !r; i++) {
		const struct bad_entry *e = &w->bad[i];
		if (e->retype) {
			struct vbuf *cb;
			if (!inode_read(fs, e->ino, &cb)) {
				r = dir_set_at(fs, ib, e->key, e->name, e->namelen, e->ino,
					       (uint8_t)mode_dtype(le32_to_cpu(ib_inode(cb)->i_mode)));
				meta_put(fs, cb);
			}
			continue;
		}
		r = dir_remove_at(fs, ib, e->key, e->name, e->namelen);
		if (!r)
			w->count--;
	}
	if (!r && le64_to_cpu(di->i_dir_count) != w->count &&
	    fsck_problem(c, PR_DIR_COUNT, (unsigned long long)ib->addr,
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

static struct vmfs_snap_disk *snap_links(struct vbuf *ib)
{
	return (struct vmfs_snap_disk *)ib_inode(ib)->i_snap;
}

/* A file's snapshots as check_snaps found them: their inodes and parents, and (ino, position) sorted for lookup. */
struct snap_pos {
	uint64_t ino;
	size_t pos;
};

struct snap_set {
	uint64_t *ino, *par;
	struct snap_pos *sorted;
	size_t n, cap, pcap;
};

static int cmp_pos(const void *a, const void *b)
{
	uint64_t x = ((const struct snap_pos *)a)->ino, y = ((const struct snap_pos *)b)->ino;
	return x < y ? -1 : x > y;
}

/* The position on the list of snapshot ino, or -1 (0 and inodes off the list). */
static long snap_pos(const struct snap_set *ss, uint64_t ino)
{
	struct snap_pos key = { .ino = ino };
	const struct snap_pos *k = ino ? bsearch(&key, ss->sorted, ss->n, sizeof(key), cmp_pos) : NULL;

	return k ? (long)k->pos : -1;
}

/* Gives snapshot i of the list (i == n: the file ib) no parent: -y's repair of N2. */
static int cut_parent(struct fsck *c, struct vbuf *ib, struct snap_set *ss, size_t i)
{
	struct vbuf *sb = ib;
	int r = i < ss->n ? inode_read(c->fs, ss->ino[i], &sb) : 0;

	if (!r)
		r = fsck_dirty(c, sb);
	if (!r) {
		snap_links(sb)->sn_parent = 0;
		if (i < ss->n)
			ss->par[i] = 0;
	}
	if (sb != ib)
		meta_put(c->fs, sb);
	return r;
}

/* N2: a parent is 0 or a snapshot on the list, and following parents ends (at most n steps). */
static int check_snap_parents(struct fsck *c, struct vbuf *ib, struct snap_set *ss)
{
	size_t n = ss->n;
	int r = 0;

	ss->sorted = malloc((n ? n : 1) * sizeof(*ss->sorted));
	if (!ss->sorted)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ss->sorted[i] = (struct snap_pos){ ss->ino[i], i };
	qsort(ss->sorted, n, sizeof(*ss->sorted), cmp_pos);
	for (size_t i = 0; i <= n && !r; i++) { /* the snapshots, then the file */
		uint64_t who = i < n ? ss->ino[i] : ib->addr;
		uint64_t p = i < n ? ss->par[i] : le64_to_cpu(snap_links(ib)->sn_parent), q = p;
		size_t steps = 0;
		long k;

		if (p && snap_pos(ss, p) < 0) {
			if (fsck_problem(c, PR_SNAP_PARENT_BAD, (unsigned long long)who, c->where, (unsigned long long)p))
				r = cut_parent(c, ib, ss, i);
			continue;
		}
		while (q && steps++ <= n && (k = snap_pos(ss, q)) >= 0) /* an off-list parent is reported at its child */
			q = ss->par[k];
		if (q && steps > n &&
		    fsck_problem(c, PR_SNAP_PARENT_CYCLE, (unsigned long long)ib->addr, c->where, (unsigned long long)who))
			r = cut_parent(c, ib, ss, i);
	}
	return r;
}

/*
 * A file's snapshots (N1 of vmfs/share.c): each is claimed, reached and
 * checked as an inode of its own; the list is cut at a link to anything else
 * (a freed inode, another file's snapshot, a second visit: a cycle).
 */
static int check_snaps(struct fsck *c, struct vbuf *ib)
{
	struct vmfs *fs = c->fs;
	struct vbuf *owner = ib, *sb = NULL;
	le64 *link = &snap_links(ib)->sn_head;
	struct snap_set ss = { 0 };
	size_t n = 0;
	int r = 0;

	while (le64_to_cpu(*link) && !r) {
		uint64_t s = le64_to_cpu(*link);
		int cl = fsck_claim_unit(c, s);
		struct ino_info *si;
		bool bad = cl != 0;

		if (!bad && inode_read(fs, s, &sb))
			bad = true;
		else if (!bad && (!(le32_to_cpu(ib_inode(sb)->i_flags) & VMFS_IF_SNAPSHOT) ||
				  le64_to_cpu(snap_links(sb)->sn_file) != ib->addr || !ib_inode(sb)->i_nlink ||
				  S_ISDIR(le32_to_cpu(ib_inode(sb)->i_mode)))) {
			meta_put(fs, sb);
			bad = true;
		}
		if (bad) {
			if (cl == 0 || cl == 2)
				fsck_unclaim_unit(c, s);
			if (fsck_problem(c, PR_SNAP_LINK_BAD, (unsigned long long)ib->addr, c->where, (unsigned long long)s)) {
				r = fsck_dirty(c, owner);
				*link = 0;
			}
			break;
		}
		si = fsck_ino_get(c, s);
		r = si ? fsck_push_u64(&ss.ino, &n, &ss.cap, s) : -ENOMEM;
		ss.n = n - 1;
		if (!r)
			r = fsck_push_u64(&ss.par, &ss.n, &ss.pcap, le64_to_cpu(snap_links(sb)->sn_parent));
		if (!r) {
			si->reached = true;
			si->links = 1; /* its place on the list */
			si->parent = ib->addr;
			r = fsck_check_inode(c, s, si);
		}
		if (owner != ib)
			meta_put(fs, owner);
		owner = sb;
		link = &snap_links(sb)->sn_next;
	}
	if (!r && n != le32_to_cpu(snap_links(ib)->sn_count) &&
	    fsck_problem(c, PR_SNAP_COUNT, (unsigned long long)ib->addr, c->where, (unsigned long long)n,
			 le32_to_cpu(snap_links(ib)->sn_count))) {
		r = fsck_dirty(c, ib);
		snap_links(ib)->sn_count = cpu_to_le32((uint32_t)n);
	}
	ss.n = n;
	if (!r)
		r = check_snap_parents(c, ib, &ss);
	if (owner != ib)
		meta_put(fs, owner);
	free(ss.ino);
	free(ss.par);
	free(ss.sorted);
	return r;
}

/*
 * i_crypt (docs/FORMAT.md, "Encryption"): without the key fsck checks what
 * it can, the version, the flags and the epoch; the sealed keys are checked
 * when a host opens them. A file whose keys cannot be opened is emptied by
 * -y (its bytes could never be read again), a directory loses its keys (its
 * names no longer decode, and what they named goes to /lost+found). Key
 * bytes on a datastore without encryption, or on an inode that takes none,
 * are cleared. *emptied: the map is gone, do not walk it.
 */
static int check_crypt(struct fsck *c, uint64_t ino, struct vbuf *ib, bool *emptied)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	const struct enc_crypt_disk *cr = (const void *)di->i_crypt;
	uint32_t mode = le32_to_cpu(di->i_mode);
	int r;

	*emptied = false;
	/* the mark splits a file between its two keys only during a deep rekey */
	if (di->i_crypt_mark && !enc_crypt_rekeying(di->i_crypt)) {
		if (fsck_problem(c, PR_CRYPT_MARK, (unsigned long long)ino, c->where,
				 (unsigned long long)le64_to_cpu(di->i_crypt_mark))) {
			r = fsck_dirty(c, ib);
			if (r)
				return r;
			di->i_crypt_mark = 0;
		}
	}
	if (base_all_zero(di->i_crypt, sizeof(di->i_crypt)))
		return 0;
	if (!crypt_enabled(c->fs) || !(S_ISREG(mode) || S_ISLNK(mode) || S_ISDIR(mode))) {
		if (!fsck_problem(c, PR_CRYPT_STRAY, (unsigned long long)ino, c->where))
			return 0;
		r = fsck_dirty(c, ib);
		if (!r)
			memset(di->i_crypt, 0, sizeof(di->i_crypt));
		return r;
	}
	if (enc_crypt_known(cr) && /* key 1 too: a deep rekey under way, of a file, a symlink or a directory */
	    (!c->key_epoch || le16_to_cpu(cr->cr_epoch) == (uint16_t)c->key_epoch ||
	     (c->key_prev_epoch && le16_to_cpu(cr->cr_epoch) == (uint16_t)c->key_prev_epoch)))
		return 0;
	if (!fsck_problem(c, PR_CRYPT_BAD, (unsigned long long)ino, c->where, cr->cr_version, cr->cr_flags,
			  le16_to_cpu(cr->cr_epoch), c->key_epoch & 0xffffu, S_ISDIR(mode) ? "names" : "contents"))
		return 0;
	r = fsck_dirty(c, ib);
	if (r)
		return r;
	memset(di->i_crypt, 0, sizeof(di->i_crypt));
	if (S_ISDIR(mode))
		return 0;
	/* its blocks are no longer reached: pass 5 frees them */
	memset(di->i_root, 0, sizeof(di->i_root));
	di->i_height = 0;
	di->i_size = 0;
	di->i_units = cpu_to_le64(1);
	di->i_flags = cpu_to_le32((le32_to_cpu(di->i_flags) & ~(VMFS_IF_LAYOUT | VMFS_IF_SHARED)) | VMFS_IF_INLINE);
	*emptied = true;
	return 0;
}

/* Checks one inode (already claimed) and everything it owns. */
int fsck_check_inode(struct fsck *c, uint64_t ino, struct ino_info *ii)
{
	bool emptied;
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
	r = check_crypt(c, ino, ib, &emptied);
	flags = le32_to_cpu(di->i_flags);
	if (r || emptied) {
	} else if (S_ISDIR(mode)) {
		r = check_dir(c, ib, ii);
	} else if (!(flags & VMFS_IF_INLINE)) {
		bool large = flags & VMFS_IF_LARGE;
		r = walk_map(c, ib, ib, (le64 *)di->i_root, VMFS_ROOT_PTRS, di->i_height ? di->i_height - 1u : 0, 0,
			     large ? fs->block_size : VMFS_UNIT, large, ii);
	}
	if (!r && le64_to_cpu(di->i_units) != ii->units &&
	    fsck_problem(c, PR_INODE_UNITS, (unsigned long long)ino, c->where,
		    (unsigned long long)ii->units, (unsigned long long)le64_to_cpu(di->i_units))) {
		r = fsck_dirty(c, ib);
		di->i_units = cpu_to_le64(ii->units);
	}
	if (!r && S_ISREG(mode) && !(flags & VMFS_IF_SNAPSHOT) &&
	    (snap_links(ib)->sn_head || snap_links(ib)->sn_count || snap_links(ib)->sn_parent))
		r = check_snaps(c, ib);
	meta_put(fs, ib);
	return r;
}

int fsck_walk_queue(struct fsck *c)
{
	int r = 0;

	while (c->qn && !r) {
		uint64_t ino = c->queue[--c->qn];
		r = fsck_check_inode(c, ino, fsck_ino_get(c, ino));
		fsck_progress(c, 1);
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
			if (fsck_problem(c, PR_HSTATE_BAD, s)) {
				r = meta_new(fs, le64_to_cpu(rec.hr_journal) + 1, VMFS_MAGIC_HSTATE, s, &hb);
				if (!r)
					meta_put(fs, hb);
			}
			continue;
		}
		ino = le64_to_cpu(((struct vmfs_hstate_disk *)hb->data)->hs_orphan_head);
		while (ino && !r) {
			struct ino_info *ii = fsck_ino_get(c, ino);
			struct vbuf *ib;

			if (ii)
				ii->orphan = true;
			if (!ii || ++guard > 1000000 || ii->reached || fsck_claim_unit(c, ino) || inode_read(fs, ino, &ib)) {
				if (fsck_problem(c, PR_ORPHAN_LIST_BAD, s,
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
			r = fsck_check_inode(c, ii->ino, ii);
			if (!r)
				r = fsck_walk_queue(c);
		}
		meta_put(fs, hb);
	}
	return r;
}

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

	if (!fsck_problem(c, PR_ROOT_BAD,
		     (unsigned long long)fs->root_ino) && fsck_repairing(c))
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
	r = fsck_repairing(c) ? meta_overlay_dirty(fs, fs->root_ino, u) : meta_overlay(fs, fs->root_ino, u);
	free(u);
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

int fsck_pass2(struct fsck *c)
{
	struct vmfs *fs = c->fs;
	struct ino_info *root;
	int r = 0;

	prefetch_pools(c);
	root = fsck_ino_get(c, fs->root_ino);
	if (!root || fsck_claim_unit(c, fs->root_ino) ||
	    (!S_ISDIR(fsck_mode_of(c, fs->root_ino)) && (r = remake_root(c)) != 0)) {
		c->root_damaged = r != -ENOMEM;
		return r ? r : -EUCLEAN;
	}
	root->reached = true;
	root->is_dir = true;
	root->parent = fs->root_ino;
	r = queue_dir(c, fs->root_ino);
	if (!r)
		r = fsck_walk_queue(c);
	if (!r)
		r = check_orphans(c);
	return r;
}
