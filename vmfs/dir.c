/*
 * Directories: a B+tree keyed by name hash. A small directory keeps one leaf
 * inline in its inode (i_root, no extra block); when that overflows the leaf
 * moves to a 4 KiB node and the tree grows by splits. Lookup, insert and remove
 * cost O(log n) node reads; 100k entries need three levels.
 *
 * Keys double as readdir cookies: key = hash60(name) << 4 | seq, where seq
 * (0..15) tells names with the same 60-bit hash apart and is fixed when the
 * entry is made, so a cookie stays valid however the tree splits or shrinks.
 * Keys below 16 are never used (cookies 0 and 1 are "." and "..").
 *
 * Invariants: D1. items in a node are sorted by key, strictly; D2. an interior
 * item's child holds keys >= its key and < the next item's key (item 0 covers
 * everything below item 1); D3. every node's level is its parent's minus one and
 * its owner is the directory; D4. no node is empty except an inline root;
 * D5. i_dir_count is the number of leaf items.
 *
 * Encrypted directories (docs/ENCRYPTION.md) store each name as AES-256-XTS
 * under the directory's key, zero-padded to a multiple of 16 bytes (at least
 * 16, at most 255), tweak 0: the same name always gives the same bytes, so
 * lookups compare stored names as before. The hash is HMAC-SHA256 under the
 * directory's name-hash key instead of XXH3. Names go in and out of that
 * form at this file's edges (dir_lookup, dir_insert, dir_remove, dir_set,
 * dir_iterate); the _at calls and dir_node_items (fsck) work on stored names.
 * During a deep rekey of the directory (dir_rekey), the names of the hash
 * groups below the mark are under its key 1, the rest under key 0.
 */
#include "vmfs/vmfs_i.h"

#include <dirent.h>
#include <sys/stat.h>
#include <xxhash.h>

#define DIR_MAX_ITEMS 256

struct ditem {
	uint64_t key, val;
	uint8_t type, namelen;
	const char *name;
};

struct dnode {
	unsigned count, level;
	size_t used;
	struct ditem it[DIR_MAX_ITEMS + 2];
	char names[VMFS_UNIT + 512];
	size_t names_used;
};

/* Where a node lives: the inline root in the inode, or a node block. */
struct nref {
	struct vbuf *b;
	bool inl;
};

static struct vmfs_dirhdr_disk *nref_hdr(struct nref *n)
{
	return n->inl ? (struct vmfs_dirhdr_disk *)ib_inode(n->b)->i_root
		      : &((struct vmfs_dirnode_disk *)n->b->data)->dn_dh;
}

static uint8_t *nref_items(struct nref *n)
{
	return n->inl ? ib_inode(n->b)->i_root + sizeof(struct vmfs_dirhdr_disk)
		      : ((struct vmfs_dirnode_disk *)n->b->data)->dn_items;
}

static size_t nref_cap(struct nref *n)
{
	return n->inl ? VMFS_DIRINLINE_SPACE : VMFS_DIRNODE_SPACE;
}

static size_t item_size(const struct ditem *it)
{
	return sizeof(struct vmfs_dirent_disk) + it->namelen;
}

void dir_init_inline(struct vmfs_inode_disk *di)
{
	memset(di->i_root, 0, sizeof(di->i_root));
	di->i_flags = cpu_to_le32((le32_to_cpu(di->i_flags) & ~VMFS_IF_LAYOUT) | VMFS_IF_INLINE);
	di->i_height = 0;
}

bool dir_names_encrypted(struct vmfs *fs, struct vbuf *dib)
{
	return crypt_enabled(fs) && enc_crypt_present(ib_inode(dib)->i_crypt);
}

static int corrupt(struct vmfs *fs, struct vbuf *dib, struct nref *n, const char *why)
{
	fs_err(fs, "directory %llu: node %llu: %s", (unsigned long long)dib->addr,
	       (unsigned long long)(n->inl ? dib->addr : n->b->addr), why);
	return -EUCLEAN;
}

static int decode(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned level, struct dnode *d)
{
	struct vmfs_dirhdr_disk *h = nref_hdr(n);
	const uint8_t *p = nref_items(n);
	size_t off = 0, used = le16_to_cpu(h->dh_used);
	bool plain = !dir_names_encrypted(fs, dib); /* a stored name is checked for '/' and NUL only in plaintext */

	d->count = le16_to_cpu(h->dh_count);
	d->level = h->dh_level;
	d->used = used;
	d->names_used = 0;
	if (used > nref_cap(n) || d->count > DIR_MAX_ITEMS || d->level != level)
		return corrupt(fs, dib, n, "bad header");
	if (!n->inl && le64_to_cpu(((struct vmfs_mhdr *)n->b->data)->mh_owner) != dib->addr)
		return corrupt(fs, dib, n, "belongs to another directory");
	for (unsigned i = 0; i < d->count; i++) {
		struct vmfs_dirent_disk de;
		struct ditem *it = &d->it[i];

		if (off + sizeof(de) > used)
			return corrupt(fs, dib, n, "item runs past the end");
		memcpy(&de, p + off, sizeof(de));
		it->key = le64_to_cpu(de.de_key);
		it->val = le64_to_cpu(de.de_val);
		it->type = de.de_type;
		it->namelen = de.de_namelen;
		it->name = d->names + d->names_used;
		off += sizeof(de);
		if (off + it->namelen > used || (level == 0) != (it->namelen > 0) ||
		    (i > 0 && it->key <= d->it[i - 1].key) || (level == 0 && it->key < 16) ||
		    (plain && level == 0 && (memchr(p + off, '/', it->namelen) || memchr(p + off, 0, it->namelen))))
			return corrupt(fs, dib, n, "bad or unsorted item");
		memcpy(d->names + d->names_used, p + off, it->namelen);
		d->names_used += it->namelen;
		off += it->namelen;
	}
	if (off != used)
		return corrupt(fs, dib, n, "used bytes do not add up");
	return 0;
}

static size_t dnode_size(struct dnode *d, unsigned from, unsigned to)
{
	size_t s = 0;
	for (unsigned i = from; i < to; i++)
		s += item_size(&d->it[i]);
	return s;
}

static int encode(struct vmfs *fs, struct dnode *d, unsigned from, unsigned to, struct nref *n)
{
	struct vmfs_dirhdr_disk *h = nref_hdr(n);
	uint8_t *p = nref_items(n);
	size_t off = 0;
	int ret = meta_dirty(fs, n->b);

	if (ret)
		return ret;
	for (unsigned i = from; i < to; i++) {
		struct vmfs_dirent_disk de = {
			.de_key = cpu_to_le64(d->it[i].key), .de_val = cpu_to_le64(d->it[i].val),
			.de_type = d->it[i].type, .de_namelen = d->it[i].namelen,
		};
		memcpy(p + off, &de, sizeof(de));
		if (d->it[i].namelen)
			memcpy(p + off + sizeof(de), d->it[i].name, d->it[i].namelen);
		off += sizeof(de) + d->it[i].namelen;
	}
	memset(p + off, 0, nref_cap(n) - off);
	h->dh_count = cpu_to_le16((uint16_t)(to - from));
	h->dh_used = cpu_to_le16((uint16_t)off);
	h->dh_level = (uint8_t)d->level;
	return 0;
}

static int node_read(struct vmfs *fs, struct vbuf *dib, uint64_t addr, struct nref *n)
{
	n->inl = false;
	if (!addr_in_data(fs, addr) || unit_is_block(fs, addr)) {
		fs_err(fs, "directory %llu: bad node address %llu", (unsigned long long)dib->addr,
		       (unsigned long long)addr);
		return -EUCLEAN;
	}
	return meta_read(fs, addr, VMFS_MAGIC_DIR, &n->b);
}

static int node_new(struct vmfs *fs, struct vbuf *dib, struct nref *n)
{
	uint64_t unit;
	int ret = alloc_unit(fs, ALLOC_META, &unit);

	if (ret)
		return ret;
	n->inl = false;
	ret = meta_new(fs, unit, VMFS_MAGIC_DIR, dib->addr, &n->b);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(dib);
		di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) + 1);
	}
	return ret;
}

static void nref_put(struct vmfs *fs, struct nref *n)
{
	if (!n->inl)
		meta_put(fs, n->b);
}

/* The root: inline in the inode, or ptr[0] of a directory in tree mode. */
static int root_get(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned *level)
{
	struct vmfs_inode_disk *di = ib_inode(dib);

	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		n->inl = true;
		n->b = dib;
		*level = 0;
		return 0;
	}
	if (di->i_height == 0 || di->i_height > VMFS_MAX_HEIGHT) {
		fs_err(fs, "directory %llu: bad tree height %u", (unsigned long long)dib->addr, di->i_height);
		return -EUCLEAN;
	}
	*level = di->i_height - 1u;
	return node_read(fs, dib, le64_to_cpu(((le64 *)di->i_root)[0]), n);
}

static uint64_t name_prefix(struct vmfs *fs, const char *name, size_t len)
{
	uint64_t h = XXH3_64bits_withSeed(name, len, fs->hash_seed) & ((1ull << 59) - 1);
	return base_max(h, 1ull) << 4;
}

/* A name as the directory stores it, and its key's hash prefix. */
struct dname {
	char s[VMFS_NAME_MAX];
	size_t len;
	uint64_t prefix;
};

static size_t stored_len(size_t len)
{
	return base_min((size_t)VMFS_NAME_MAX, base_max((size_t)16, (size_t)base_round_up(len, 16)));
}

/*
 * Which of f's keys names with this key (or hash prefix) are under: key 1
 * below a deep rekey's mark (f->mark, set from i_crypt_mark: for a directory
 * an item key, always the start of a hash group, so the up to 16 names of
 * one group are on one side of it), else key 0.
 */
static unsigned name_keyno(const struct enc_file *f, uint64_t key)
{
	return (f->flags & ENC_CR_K1) && key < f->mark ? 1u : 0u;
}

static int name_store(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, struct dname *d)
{
	struct enc_file *f;
	uint64_t h;
	int ret;

	if (len == 0 || len > VMFS_NAME_MAX)
		return len ? -ENAMETOOLONG : -EINVAL;
	ret = crypt_file_get(fs, dib->addr, ib_inode(dib), &f);
	if (ret)
		return ret;
	if (!f) {
		memcpy(d->s, name, len);
		d->len = len;
		d->prefix = name_prefix(fs, name, len);
		return 0;
	}
	memset(d->s, 0, sizeof(d->s));
	memcpy(d->s, name, len);
	d->len = stored_len(len);
	ret = enc_name_hash(f, name, len, &h);
	d->prefix = base_max(h & ((1ull << 59) - 1), 1ull) << 4;
	if (!ret)
		ret = crypt_run_key(f, name_keyno(f, d->prefix), true, 0, d->s, d->s, d->len);
	crypt_file_put(fs, f);
	return ret;
}

/* A stored name (of the item with this key) back to the name; -EUCLEAN when it decrypts to no valid name. */
static int name_load(struct vmfs *fs, struct vbuf *dib, const struct enc_file *f, uint64_t key, const char *stored,
		     size_t slen, char *out, size_t *len)
{
	size_t n = slen;

	if (!f) {
		memcpy(out, stored, slen);
		*len = slen;
		return 0;
	}
	if (slen < 16 || crypt_run_key(f, name_keyno(f, key), false, 0, stored, out, slen))
		return -EUCLEAN;
	while (n && !out[n - 1])
		n--;
	if (!n || memchr(out, 0, n) || memchr(out, '/', n) || stored_len(n) != slen) {
		fs_err(fs, "directory %llu: a name that decrypts to no name", (unsigned long long)dib->addr);
		return -EUCLEAN;
	}
	*len = n;
	return 0;
}

static unsigned child_index(struct dnode *d, uint64_t key)
{
	unsigned i = 0;
	while (i + 1 < d->count && d->it[i + 1].key <= key)
		i++;
	return i;
}

/* ---- iteration ------------------------------------------------------------------ */

/*
 * Visits the node's entries with keys >= from. [lo, hi) is the key range the
 * parent gives the node (D2), checked on the way down along with D4: a node
 * that two items name cannot pass for both, so interior nodes whose items all
 * name one child end in -EUCLEAN instead of 256^levels visits of its leaves.
 * An interior node's item 0 covers everything below item 1: its key is not
 * checked (removal sets it to 0).
 */
static int iter_rec(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned level, uint64_t from,
		    uint64_t lo, uint64_t hi, dir_iter_fn fn, void *ctx)
{
	struct dnode *d = malloc(sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	ret = decode(fs, dib, n, level, d);
	if (!ret && !n->inl && !d->count)
		ret = corrupt(fs, dib, n, "empty node");
	for (unsigned i = 0; !ret && i < d->count; i++) {
		struct ditem *it = &d->it[i];
		uint64_t next = i + 1 < d->count ? d->it[i + 1].key : hi;
		struct nref c;

		if ((level == 0 || i > 0) && (it->key < lo || it->key >= hi)) {
			ret = corrupt(fs, dib, n, "key outside the range its parent gives it");
			break;
		}
		if (level == 0) {
			if (it->key >= from)
				ret = fn(ctx, it->key, it->name, it->namelen, it->val, it->type);
			continue;
		}
		if (next <= from)
			continue;
		ret = node_read(fs, dib, it->val, &c);
		if (ret)
			break;
		ret = iter_rec(fs, dib, &c, level - 1, from, i ? it->key : lo, next, fn, ctx);
		nref_put(fs, &c);
	}
	free(d);
	return ret;
}

/* Calls fn for each entry with key >= from, in key order, with its stored name. */
static int stored_iterate(struct vmfs *fs, struct vbuf *dib, uint64_t from, dir_iter_fn fn, void *ctx)
{
	struct nref root;
	unsigned level;
	int ret = root_get(fs, dib, &root, &level);

	if (ret)
		return ret;
	ret = iter_rec(fs, dib, &root, level, from, 0, UINT64_MAX, fn, ctx);
	nref_put(fs, &root);
	return ret;
}

struct plain_ctx {
	struct vmfs *fs;
	struct vbuf *dib;
	const struct enc_file *f;
	dir_iter_fn fn;
	void *ctx;
};

static int plain_cb(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct plain_ctx *p = ctx;
	char plain[VMFS_NAME_MAX];
	size_t n;
	int ret = name_load(p->fs, p->dib, p->f, key, name, len, plain, &n);

	return ret ? ret : p->fn(p->ctx, key, plain, n, ino, type);
}

/* Calls fn for each entry with key >= from, in key order, until fn returns non-zero (returned). */
int dir_iterate(struct vmfs *fs, struct vbuf *dib, uint64_t from, dir_iter_fn fn, void *ctx)
{
	struct plain_ctx p = { fs, dib, NULL, fn, ctx };
	struct enc_file *f;
	int ret = crypt_file_get(fs, dib->addr, ib_inode(dib), &f);

	if (ret)
		return ret;
	if (!f)
		return stored_iterate(fs, dib, from, fn, ctx);
	p.f = f;
	ret = stored_iterate(fs, dib, from, plain_cb, &p);
	crypt_file_put(fs, f);
	return ret;
}

struct find_ctx {
	const char *name;
	size_t len;
	uint64_t last, key, ino;
	uint8_t type;
	uint16_t used_seq;
};

static int find_cb(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct find_ctx *f = ctx;

	if (key > f->last)
		return 2;
	f->used_seq |= (uint16_t)(1u << (key & 15));
	if (len == f->len && !memcmp(name, f->name, len)) {
		f->key = key;
		f->ino = ino;
		f->type = type;
		return 1;
	}
	return 0;
}

static int stored_iterate(struct vmfs *fs, struct vbuf *dib, uint64_t from, dir_iter_fn fn, void *ctx);

static int find(struct vmfs *fs, struct vbuf *dib, const struct dname *dn, struct find_ctx *f)
{
	int ret;

	*f = (struct find_ctx){ .name = dn->s, .len = dn->len, .last = dn->prefix | 15 };
	ret = stored_iterate(fs, dib, dn->prefix, find_cb, f);
	return ret < 0 ? ret : ret == 1 ? 0 : -ENOENT;
}

int dir_lookup(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t *ino, uint8_t *type)
{
	struct find_ctx f;
	struct dname dn;
	int ret = name_store(fs, dib, name, len, &dn);

	if (!ret)
		ret = find(fs, dib, &dn, &f);

	if (!ret) {
		*ino = f.ino;
		*type = f.type;
	}
	return ret;
}

/* ---- insertion ------------------------------------------------------------------ */

static void dnode_insert_at(struct dnode *d, unsigned pos, const struct ditem *it)
{
	memmove(&d->it[pos + 1], &d->it[pos], (d->count - pos) * sizeof(d->it[0]));
	d->it[pos] = *it;
	if (it->namelen) {
		memcpy(d->names + d->names_used, it->name, it->namelen);
		d->it[pos].name = d->names + d->names_used;
		d->names_used += it->namelen;
	}
	d->count++;
}

/* Splits d (too big for one node) into n (left half) and a new node (right half). */
static int split(struct vmfs *fs, struct vbuf *dib, struct dnode *d, struct nref *n, uint64_t *skey,
		 uint64_t *saddr)
{
	size_t total = dnode_size(d, 0, d->count), acc = 0;
	unsigned mid = 0;
	struct nref r;
	int ret;

	while (mid < d->count - 1 && acc + item_size(&d->it[mid]) <= total / 2)
		acc += item_size(&d->it[mid++]);
	if (mid == 0)
		mid = 1;
	ret = node_new(fs, dib, &r);
	if (ret)
		return ret;
	ret = encode(fs, d, 0, mid, n);
	if (!ret)
		ret = encode(fs, d, mid, d->count, &r);
	*skey = d->it[mid].key;
	*saddr = r.b->addr;
	nref_put(fs, &r);
	return ret;
}

/* Returns 1 with *skey and *saddr set when the node split, 0, or -errno. */
static int insert_rec(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned level,
		      const struct ditem *item, uint64_t *skey, uint64_t *saddr)
{
	struct dnode *d = malloc(sizeof(*d));
	unsigned pos;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = decode(fs, dib, n, level, d);
	if (ret)
		goto out;
	if (level == 0) {
		for (pos = 0; pos < d->count && d->it[pos].key < item->key; pos++)
			;
		dnode_insert_at(d, pos, item);
	} else {
		unsigned ci = child_index(d, item->key);
		uint64_t ck, ca;
		struct nref c;

		ret = node_read(fs, dib, d->it[ci].val, &c);
		if (ret)
			goto out;
		ret = insert_rec(fs, dib, &c, level - 1, item, &ck, &ca);
		nref_put(fs, &c);
		if (ret <= 0)
			goto out;
		dnode_insert_at(d, ci + 1, &(struct ditem){ .key = ck, .val = ca });
	}
	if (dnode_size(d, 0, d->count) <= nref_cap(n) && d->count <= DIR_MAX_ITEMS) {
		ret = encode(fs, d, 0, d->count, n);
		goto out;
	}
	if (n->inl) {
		/* the inline leaf overflows: it becomes the first node block */
		struct vmfs_inode_disk *di = ib_inode(dib);
		struct nref r;

		if (dnode_size(d, 0, d->count) > VMFS_DIRNODE_SPACE) {
			ret = -EUCLEAN;
			goto out;
		}
		ret = node_new(fs, dib, &r);
		if (!ret)
			ret = encode(fs, d, 0, d->count, &r);
		if (!ret) {
			ret = meta_dirty(fs, dib);
			memset(di->i_root, 0, sizeof(di->i_root));
			((le64 *)di->i_root)[0] = cpu_to_le64(r.b->addr);
			di->i_flags = cpu_to_le32((le32_to_cpu(di->i_flags) & ~VMFS_IF_LAYOUT) | VMFS_IF_SMALL);
			di->i_height = 1;
		}
		nref_put(fs, &r);
		goto out;
	}
	ret = split(fs, dib, d, n, skey, saddr);
	if (!ret)
		ret = 1;
out:
	free(d);
	return ret;
}

int dir_insert(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct vmfs_inode_disk *di = ib_inode(dib);
	struct find_ctx f;
	struct dname dn;
	struct ditem item = { .val = ino, .type = type };
	struct nref root;
	unsigned level, seq;
	uint64_t skey, saddr;
	int ret = name_store(fs, dib, name, len, &dn);

	if (ret)
		return ret;
	item.namelen = (uint8_t)dn.len;
	item.name = dn.s;
	ret = find(fs, dib, &dn, &f);
	if (ret != -ENOENT)
		return ret ? ret : -EEXIST;
	for (seq = 0; seq < 16 && (f.used_seq & (1u << seq)); seq++)
		;
	if (seq == 16)
		return -ENOSPC; /* 16 names with one 60-bit hash */
	item.key = (f.last & ~15ull) | seq;
	ret = root_get(fs, dib, &root, &level);
	if (ret)
		return ret;
	ret = insert_rec(fs, dib, &root, level, &item, &skey, &saddr);
	if (ret == 1) {
		/* the root split: a new root above it */
		struct dnode *d = calloc(1, sizeof(*d));
		struct nref nr;

		ret = d ? node_new(fs, dib, &nr) : -ENOMEM;
		if (!ret) {
			d->level = level + 1;
			d->count = 2;
			d->it[0] = (struct ditem){ .key = 0, .val = root.b->addr };
			d->it[1] = (struct ditem){ .key = skey, .val = saddr };
			ret = encode(fs, d, 0, 2, &nr);
			if (!ret && di->i_height >= VMFS_MAX_HEIGHT)
				ret = -ENOSPC;
			if (!ret) {
				ret = meta_dirty(fs, dib);
				((le64 *)di->i_root)[0] = cpu_to_le64(nr.b->addr);
				di->i_height++;
			}
			nref_put(fs, &nr);
		}
		free(d);
	}
	nref_put(fs, &root);
	if (!ret)
		ret = meta_dirty(fs, dib);
	if (!ret)
		di->i_dir_count = cpu_to_le64(le64_to_cpu(di->i_dir_count) + 1);
	return ret;
}

/* ---- removal and update ------------------------------------------------------------ */

/* Returns 1 when the node is left empty (the caller frees it), 0, or -errno. */
static int remove_rec(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned level, uint64_t key,
		      const char *name, size_t len, const struct ditem *set)
{
	struct dnode *d = malloc(sizeof(*d));
	unsigned i;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = decode(fs, dib, n, level, d);
	if (ret)
		goto out;
	if (level == 0) {
		for (i = 0; i < d->count && (d->it[i].key != key || d->it[i].namelen != len ||
					     memcmp(d->it[i].name, name, len)); i++)
			;
		if (i == d->count) {
			ret = -ENOENT;
			goto out;
		}
		if (set) {
			d->it[i].val = set->val;
			d->it[i].type = set->type;
		} else {
			memmove(&d->it[i], &d->it[i + 1], (d->count - i - 1) * sizeof(d->it[0]));
			d->count--;
		}
	} else {
		struct nref c;
		i = child_index(d, key);
		ret = node_read(fs, dib, d->it[i].val, &c);
		if (ret)
			goto out;
		ret = remove_rec(fs, dib, &c, level - 1, key, name, len, set);
		nref_put(fs, &c);
		if (ret <= 0)
			goto out;
		ret = free_unit(fs, d->it[i].val);
		if (ret)
			goto out;
		ib_inode(dib)->i_units = cpu_to_le64(le64_to_cpu(ib_inode(dib)->i_units) - 1);
		memmove(&d->it[i], &d->it[i + 1], (d->count - i - 1) * sizeof(d->it[0]));
		d->count--;
		if (d->count)
			d->it[0].key = 0;
	}
	ret = encode(fs, d, 0, d->count, n);
	if (!ret)
		ret = d->count == 0 && !n->inl;
out:
	free(d);
	return ret;
}

/* Removes (set NULL) or rewrites the item with this key and name. */
static int change_at(struct vmfs *fs, struct vbuf *dib, uint64_t key, const char *name, size_t len,
		     const struct ditem *set)
{
	struct vmfs_inode_disk *di = ib_inode(dib);
	struct nref root;
	unsigned level;
	int ret = meta_dirty(fs, dib);

	if (!ret)
		ret = root_get(fs, dib, &root, &level);
	if (ret)
		return ret;
	ret = remove_rec(fs, dib, &root, level, key, name, len, set);
	if (ret == 1) {
		/* the whole tree is empty: back to an inline leaf */
		ret = free_unit(fs, root.b->addr);
		if (!ret) {
			di->i_units = cpu_to_le64(le64_to_cpu(di->i_units) - 1);
			dir_init_inline(di);
		}
	}
	nref_put(fs, &root);
	if (!ret && !set)
		di->i_dir_count = cpu_to_le64(le64_to_cpu(di->i_dir_count) - 1);
	return ret;
}

static int change(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, const struct ditem *set)
{
	struct find_ctx f;
	struct dname dn;
	int ret = name_store(fs, dib, name, len, &dn);

	if (!ret)
		ret = find(fs, dib, &dn, &f);
	return ret ? ret : change_at(fs, dib, f.key, dn.s, dn.len, set);
}

int dir_remove(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len)
{
	return change(fs, dib, name, len, NULL);
}

int dir_set(struct vmfs *fs, struct vbuf *dib, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	return change(fs, dib, name, len, &(struct ditem){ .val = ino, .type = type });
}

int dir_remove_at(struct vmfs *fs, struct vbuf *dib, uint64_t key, const char *name, size_t len)
{
	return change_at(fs, dib, key, name, len, NULL);
}

int dir_set_at(struct vmfs *fs, struct vbuf *dib, uint64_t key, const char *name, size_t len, uint64_t ino,
	       uint8_t type)
{
	return change_at(fs, dib, key, name, len, &(struct ditem){ .val = ino, .type = type });
}

/* ---- deep rekey ------------------------------------------------------------------ */

struct rekey_walk {
	const struct enc_file *f;
	uint64_t from;          /* the mark: names from this key on are under key 0 */
	uint64_t stop;          /* once the budget is spent: the last key of the group it ran out in */
	unsigned leaves;        /* the budget: leaves still to rewrite */
	bool more;              /* a name past stop is left */
};

/* The names of node n's subtree ([.., hi)) from w->from to w->stop, from key 0 to key 1, in place. */
static int rekey_rec(struct vmfs *fs, struct vbuf *dib, struct nref *n, unsigned level, uint64_t hi,
		     struct rekey_walk *w)
{
	struct dnode *d = malloc(sizeof(*d));
	uint64_t last = 0;
	bool changed = false;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = decode(fs, dib, n, level, d);
	for (unsigned i = 0; !ret && !w->more && i < d->count; i++) {
		struct ditem *it = &d->it[i];
		uint64_t next = i + 1 < d->count ? d->it[i + 1].key : hi;
		char plain[VMFS_NAME_MAX], *stored = d->names + (it->name - d->names);
		struct nref c;

		if (level > 0) {
			if (next <= w->from)
				continue;
			ret = node_read(fs, dib, it->val, &c);
			if (!ret) {
				ret = rekey_rec(fs, dib, &c, level - 1, next, w);
				nref_put(fs, &c);
			}
			continue;
		}
		if (it->key < w->from)
			continue;
		if (it->key > w->stop) {
			w->more = true;
			break;
		}
		if (it->namelen < 16 || crypt_run_key(w->f, 0, false, 0, stored, plain, it->namelen) ||
		    crypt_run_key(w->f, 1, true, 0, plain, stored, it->namelen))
			ret = corrupt(fs, dib, n, "a name that cannot be rekeyed");
		changed = true;
		last = it->key;
	}
	if (!ret && changed) {
		ret = encode(fs, d, 0, d->count, n);
		if (w->leaves && !--w->leaves)
			w->stop = last | 15; /* the rest of its group, maybe in the next leaf, goes too */
	}
	free(d);
	return ret;
}

int dir_rekey(struct vmfs *fs, struct vbuf *dib, const struct enc_file *f, unsigned leaves, uint64_t *mark)
{
	struct rekey_walk w = { .f = f, .from = *mark, .stop = UINT64_MAX, .leaves = base_max(leaves, 1u) };
	struct nref root;
	unsigned level;
	int ret = root_get(fs, dib, &root, &level);

	if (ret)
		return ret;
	ret = rekey_rec(fs, dib, &root, level, UINT64_MAX, &w);
	nref_put(fs, &root);
	if (!ret)
		*mark = w.more ? w.stop + 1 : UINT64_MAX;
	return ret;
}

static int release_rec(struct vmfs *fs, struct vbuf *dib, uint64_t addr, unsigned level)
{
	struct dnode *d = malloc(sizeof(*d));
	struct nref n;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = node_read(fs, dib, addr, &n);
	if (!ret) {
		ret = decode(fs, dib, &n, level, d);
		nref_put(fs, &n);
	}
	for (unsigned i = 0; !ret && level > 0 && i < d->count; i++)
		ret = release_rec(fs, dib, d->it[i].val, level - 1);
	free(d);
	return ret ? ret : free_unit(fs, addr);
}

/* Frees every node of a directory that is being deleted. */
int dir_release(struct vmfs *fs, struct vbuf *dib);
int dir_release(struct vmfs *fs, struct vbuf *dib)
{
	struct vmfs_inode_disk *di = ib_inode(dib);
	int ret;

	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE)
		return 0;
	ret = meta_dirty(fs, dib);
	if (!ret)
		ret = release_rec(fs, dib, le64_to_cpu(((le64 *)di->i_root)[0]), di->i_height - 1u);
	if (!ret)
		dir_init_inline(di);
	return ret;
}

/*
 * For fsck: decodes one node (the inline root when node is NULL) at the given
 * level and calls fn for each item; returns -EUCLEAN for a damaged node.
 */
int dir_node_items(struct vmfs *fs, struct vbuf *dib, struct vbuf *node, unsigned level, dir_iter_fn fn, void *ctx)
{
	struct nref n = { .b = node ? node : dib, .inl = !node };
	struct dnode *d = malloc(sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	ret = decode(fs, dib, &n, level, d);
	for (unsigned i = 0; !ret && i < d->count; i++)
		ret = fn(ctx, d->it[i].key, d->it[i].name, d->it[i].namelen, d->it[i].val, d->it[i].type);
	free(d);
	return ret;
}

/* For fsck: the name-hash prefix a key must carry for this name (a directory whose names are not encrypted). */
uint64_t dir_key_prefix(struct vmfs *fs, const char *name, size_t len)
{
	return name_prefix(fs, name, len);
}
