/*
 * Power cuts through snapshots (tests/unit/test_crash.c, case snap_cuts):
 * issue 16, point 9. A VM folder (a sparse disk whose map has pointer blocks,
 * a small disk, an inline vm.conf) lives through a seeded mix of snapshots of
 * the folder, deletes of any snapshot, reverts, clones of the disk and of its
 * snapshots, writes into shared blocks of every shape, truncates and unlinks.
 * The power is cut at SNAP_POINTS writes spread over the workload (drop and
 * tear); after each cut the datastore is opened again and:
 *  - every file, clone and snapshot holds exactly the state before or after
 *    the operation in flight (for a write in flight, each written byte old or
 *    new), the same choice for all of them (a group is one transaction), and
 *    the snapshot names are that state's;
 *  - fsck.vmfs -n finds nothing;
 *  - once every file is unlinked (their snapshots go with them) the free
 *    space is a fresh datastore's: nothing leaked.
 * The model shares buffers as the datastore shares blocks: a state is a set of
 * references, and an operation copies only the buffer it changes. The
 * starting image is made once per case (mkfs and populate(): a template)
 * and copied for each cut point.
 *
 * Case enc_cuts (issue 17, point 8) runs the same workload on an encrypted
 * datastore (every open passes the key) with a deep rekey running through
 * it (a quarter of the steps are rekey steps of one of the files: begun,
 * moved on by up to 64 blocks, finished and begun again; or of /vm, which
 * holds NPAD more names, a tree of 9 leaves, moved on by a leaf or
 * two; or of the root), ENC_POINTS cut points, and after each cut also
 * scans the whole image for a marker the files hold in plaintext from the
 * start: it must not be there. After a cut, the rekeys under way resume and
 * finish, and every name of /vm is still found.
 */
#include "vmfs/vmfs.h"
#include "tests/unit/crash/crash.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SNAP_POINTS 390          /* cut points in make test (both modes together; make crash-long: 5000) */
#define ENC_POINTS 224           /* the encrypted workload's (case enc_cuts; make crash-long: 3000) */
#define MARKER "VMFS-ENC-PLAINTEXT-MARKER"
#define MARKER_AT 1000           /* where populate() writes it in disk0 and disk1 (vm.conf: at 10) */

/* The encrypted run's key (case enc_cuts); NULL for a plain datastore. */
static struct enc_secret *snap_secret;
#define SNAP_STEPS 36
#define NGROUP 3                 /* /vm/disk0, /vm/disk1, /vm/vm.conf */
#define NFILES 7                 /* the group, then clones /c3../c6 */
#define NSNAPS 6
#define BS (64u << 10)           /* small blocks: the disk's map gets pointer blocks */
#define NPAD 400                 /* the encrypted run's further names in /vm: a tree of 9 leaves */
#define NREKEY (NFILES + 2)      /* what a rekey step takes: a file, or /vm, or / */

static const char *const fname[NFILES] = { "/vm/disk0", "/vm/disk1", "/vm/vm.conf", "/c3", "/c4", "/c5", "/c6" };
static const size_t fcap[NFILES] = { 18u << 20, 512u << 10, 8192, 18u << 20, 18u << 20, 18u << 20, 18u << 20 };
static const char *const rname[NREKEY] = { "/vm/disk0", "/vm/disk1", "/vm/vm.conf", "/c3", "/c4", "/c5", "/c6",
					   "/vm", "/" };

/* Pad name i of /vm (the encrypted run). */
static void pad_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "pad-%03d-a-name-that-takes-some-room", i);
}

/* A file's bytes as 64 KiB chunks, shared between states as the datastore shares blocks (NULL: zeros). */
#define CH BS
#define MAXCH ((18u << 20) / CH)
struct chunk {
	unsigned refs;
	uint8_t b[CH];
};

struct mbuf {
	unsigned refs;
	size_t size;
	struct chunk *c[MAXCH];
};

struct mstate {
	struct mbuf *f[NFILES];          /* NULL: the file does not exist */
	int nsnap;
	struct {
		char name[12];
		struct mbuf *b[NGROUP];
	} s[NSNAPS];
};

struct srun {
	enum dev_crash_mode mode;
	struct rng rng;
	struct vmfs *fs;
	struct mstate cur, prev;         /* after and before the operation in flight */
	int wfile;                       /* the write in flight: file, range; -1 none */
	uint64_t wa, wb;
	unsigned names;
	char op[160], why[1024];
	uint8_t *buf;
};

static struct mbuf *mb_new(const struct mbuf *from)
{
	struct mbuf *m = calloc(1, sizeof(*m));

	must(m != NULL, "model buffer");
	m->refs = 1;
	if (from) {
		*m = *from;
		m->refs = 1;
		for (unsigned i = 0; i < MAXCH; i++)
			if (m->c[i])
				m->c[i]->refs++;
	}
	return m;
}

static struct mbuf *mb_get(struct mbuf *m)
{
	if (m)
		m->refs++;
	return m;
}

static void mb_put(struct mbuf *m)
{
	if (m && !--m->refs) {
		for (unsigned i = 0; i < MAXCH; i++)
			if (m->c[i] && !--m->c[i]->refs)
				free(m->c[i]);
		free(m);
	}
}

/* The buffer of file i, made private to the state before it is changed (its chunks stay shared). */
static struct mbuf *mb_own(struct mstate *st, int i)
{
	struct mbuf *m = st->f[i], *c;

	if (m->refs == 1)
		return m;
	c = mb_new(m);
	mb_put(m);
	st->f[i] = c;
	return c;
}

static uint8_t mb_byte(const struct mbuf *m, uint64_t off)
{
	const struct chunk *c = m->c[off / CH];
	return c ? c->b[off % CH] : 0;
}

/* Sets a byte in a private buffer, copying its chunk when another state shares it. */
static void mb_set(struct mbuf *m, uint64_t off, uint8_t v)
{
	struct chunk **c = &m->c[off / CH];

	if (!*c) {
		if (!v)
			return;
		*c = calloc(1, sizeof(**c));
		must(*c != NULL, "chunk");
		(*c)->refs = 1;
	} else if ((*c)->refs > 1) {
		struct chunk *n = xmalloc(sizeof(*n));
		memcpy(n->b, (*c)->b, CH);
		n->refs = 1;
		(*c)->refs--;
		*c = n;
	}
	(*c)->b[off % CH] = v;
}

/* Compares buf (size bytes) with m: true when equal. */
static bool mb_equal(const struct mbuf *m, const uint8_t *buf, uint64_t size)
{
	static const uint8_t zeros[CH];

	for (uint64_t off = 0; off < size; off += CH) {
		size_t n = (size_t)min_u64(CH, size - off);
		const struct chunk *c = m->c[off / CH];
		if (memcmp(buf + off, c ? c->b : zeros, n))
			return false;
	}
	return true;
}

static void st_copy(struct mstate *dst, const struct mstate *src)
{
	*dst = *src;
	for (int i = 0; i < NFILES; i++)
		mb_get(dst->f[i]);
	for (int k = 0; k < dst->nsnap; k++)
		for (int i = 0; i < NGROUP; i++)
			mb_get(dst->s[k].b[i]);
}

static void st_release(struct mstate *st)
{
	for (int i = 0; i < NFILES; i++)
		mb_put(st->f[i]);
	for (int k = 0; k < st->nsnap; k++)
		for (int i = 0; i < NGROUP; i++)
			mb_put(st->s[k].b[i]);
	memset(st, 0, sizeof(*st));
}

static void sayf(struct srun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sayf(struct srun *r, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(r->why);

	va_start(ap, fmt);
	vsnprintf(r->why + n, sizeof(r->why) - n, fmt, ap);
	va_end(ap);
}

static int resolve(struct vmfs *fs, const char *path, uint64_t *ino)
{
	return vmfs_resolve(fs, path, ino);
}

/* Starts an operation: the state before it is kept for the check after a cut. */
static void begin(struct srun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void begin(struct srun *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->op, sizeof(r->op), fmt, ap);
	va_end(ap);
	st_release(&r->prev);
	st_copy(&r->prev, &r->cur);
	r->wfile = -1;
}

static uint8_t pattern(unsigned seed, uint64_t off)
{
	return (uint8_t)(mix64(seed * 0x9E3779B97F4A7C15ull + off / 8) >> ((off % 8) * 8));
}

static int op_write(struct srun *r, int i)
{
	struct mbuf *m;
	uint64_t off, len, cap = fcap[i];
	unsigned seed = (unsigned)below(&r->rng, 1u << 30);
	uint64_t ino;
	int ret;

	switch (below(&r->rng, 3)) {
	case 0: /* whole blocks */
		len = BS * between(&r->rng, 1, 4);
		off = below(&r->rng, cap / BS) * BS;
		break;
	case 1: /* aligned 4 KiB pieces */
		len = 4096 * between(&r->rng, 1, 8);
		off = below(&r->rng, cap / 4096) * 4096;
		break;
	default: /* anything */
		len = between(&r->rng, 1, 70000);
		off = below(&r->rng, cap);
		break;
	}
	if (i == 2) { /* vm.conf: inline, now and then a little more */
		len = between(&r->rng, 1, 600);
		off = below(&r->rng, 2600);
	}
	len = min_u64(len, cap - min_u64(off, cap));
	if (!len)
		return 0;
	begin(r, "write %s %llu+%llu", fname[i], (unsigned long long)off, (unsigned long long)len);
	m = mb_own(&r->cur, i);
	for (uint64_t k = 0; k < len; k++) {
		r->buf[k] = pattern(seed, off + k);
		mb_set(m, off + k, r->buf[k]);
	}
	m->size = max_u64(m->size, off + len);
	r->wfile = i;
	r->wa = off;
	r->wb = off + len;
	ret = resolve(r->fs, fname[i], &ino);
	if (!ret) {
		ssize_t n = vmfs_pwrite(r->fs, ino, r->buf, len, off);
		ret = n < 0 ? (int)n : n == (ssize_t)len ? 0 : -EIO;
	}
	return ret;
}

static int group_inos(struct srun *r, uint64_t *inos)
{
	for (int i = 0; i < NGROUP; i++) {
		int ret = resolve(r->fs, fname[i], &inos[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int op_snapshot(struct srun *r)
{
	uint64_t inos[NGROUP];
	int k = r->cur.nsnap, ret;

	snprintf(r->cur.s[k].name, sizeof(r->cur.s[k].name), "s%u", r->names++);
	begin(r, "snapshot %s", r->cur.s[k].name);
	for (int i = 0; i < NGROUP; i++)
		r->cur.s[k].b[i] = mb_get(r->cur.f[i]);
	r->cur.nsnap++;
	ret = group_inos(r, inos);
	return ret ? ret : vmfs_snap_create(r->fs, inos, NGROUP, r->cur.s[k].name, NULL);
}

static int find_snaps(struct srun *r, const uint64_t *inos, const char *name, uint64_t *snaps)
{
	for (int i = 0; i < NGROUP; i++) {
		int ret = vmfs_snap_find(r->fs, inos[i], name, &snaps[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* A snapshot of the group leaves one file at a time (as vmfsctl deletes it): each file's delete is an operation. */
static int op_delete(struct srun *r)
{
	int k = (int)below(&r->rng, (uint64_t)r->cur.nsnap), ret = 0;
	uint64_t inos[NGROUP], snap;
	char name[12];

	memcpy(name, r->cur.s[k].name, sizeof(name));
	for (int i = 0; i < NGROUP && !ret; i++) {
		if (!r->cur.s[k].b[i])
			continue;
		begin(r, "delete %s of %s", name, fname[i]);
		mb_put(r->cur.s[k].b[i]);
		r->cur.s[k].b[i] = NULL;
		ret = group_inos(r, inos);
		if (!ret)
			ret = vmfs_snap_find(r->fs, inos[i], name, &snap);
		if (!ret)
			ret = vmfs_snap_delete(r->fs, inos[i], snap);
	}
	if (!ret)
		r->cur.s[k] = r->cur.s[--r->cur.nsnap];
	return ret;
}

static int op_revert(struct srun *r)
{
	int k = (int)below(&r->rng, (uint64_t)r->cur.nsnap), ret;
	uint64_t inos[NGROUP], snaps[NGROUP];

	begin(r, "revert to %s", r->cur.s[k].name);
	for (int i = 0; i < NGROUP; i++) {
		mb_put(r->cur.f[i]);
		r->cur.f[i] = mb_get(r->cur.s[k].b[i]);
	}
	ret = group_inos(r, inos);
	if (!ret)
		ret = find_snaps(r, inos, r->cur.s[k].name, snaps);
	return ret ? ret : vmfs_snap_revert(r->fs, inos, snaps, NGROUP);
}

static int op_clone(struct srun *r, int slot)
{
	int k = r->cur.nsnap ? (int)below(&r->rng, (uint64_t)r->cur.nsnap + 1) - 1 : -1, ret;
	uint64_t src, snap, dir = vmfs_root_ino(r->fs);
	struct vmfs_stat st;

	begin(r, "clone %s%s%s to %s", fname[0], k >= 0 ? "@" : "", k >= 0 ? r->cur.s[k].name : "", fname[slot]);
	r->cur.f[slot] = mb_get(k >= 0 ? r->cur.s[k].b[0] : r->cur.f[0]);
	ret = resolve(r->fs, fname[0], &src);
	if (!ret && k >= 0) {
		ret = vmfs_snap_find(r->fs, src, r->cur.s[k].name, &snap);
		src = snap;
	}
	if (!ret)
		ret = vmfs_clone(r->fs, src, dir, fname[slot] + 1, 0644, 0, 0, &st);
	if (!ret)
		vmfs_forget(r->fs, st.ino, 1);
	return ret;
}

static int op_unlink(struct srun *r, int slot)
{
	begin(r, "unlink %s", fname[slot]);
	mb_put(r->cur.f[slot]);
	r->cur.f[slot] = NULL;
	return vmfs_unlink(r->fs, vmfs_root_ino(r->fs), fname[slot] + 1);
}

static int op_truncate(struct srun *r, int i)
{
	uint64_t size = below(&r->rng, fcap[i] + 1), ino;
	struct mbuf *m;
	int ret;

	begin(r, "truncate %s to %llu", fname[i], (unsigned long long)size);
	m = mb_own(&r->cur, i);
	for (uint64_t k = size; k < m->size; k++)
		mb_set(m, k, 0);
	m->size = size;
	ret = resolve(r->fs, fname[i], &ino);
	return ret ? ret : vmfs_setattr(r->fs, ino, &(struct vmfs_stat){ .size = size }, VMFS_SET_SIZE, NULL);
}

/*
 * The encrypted run: a step of a deep rekey of rname[i] (begun by the first,
 * finished by the one that reaches its end), up to 64 blocks at a time, or
 * for a directory a leaf or two. The content does not change: before and
 * after are the same state.
 */
static int op_rekey(struct srun *r, int i)
{
	uint64_t max = (i < NFILES ? BS * between(&r->rng, 1, 64) : 4096 * between(&r->rng, 1, 2)), ino;
	struct vmfs_rekey_progress pr;
	int ret;

	begin(r, "rekey %s (%llu KiB)", rname[i], (unsigned long long)(max >> 10));
	ret = resolve(r->fs, rname[i], &ino);
	return ret ? ret : vmfs_rekey_step(r->fs, ino, max, &pr);
}

static int step(struct srun *r)
{
	unsigned c = (unsigned)below(&r->rng, 100);
	int clones[NFILES], nc = 0, free_slot = -1;

	for (int i = NGROUP; i < NFILES; i++) {
		if (r->cur.f[i])
			clones[nc++] = i;
		else if (free_slot < 0)
			free_slot = i;
	}
	if (snap_secret && c < 25) { /* a deep rekey runs through the workload: a quarter of the steps */
		int i = (int)below(&r->rng, NGROUP + (uint64_t)nc);

		if (below(&r->rng, 3) == 0) /* a third of them of a directory, /vm three times as often as / */
			return op_rekey(r, below(&r->rng, 4) ? NFILES : NFILES + 1);
		return op_rekey(r, i < NGROUP ? i : clones[i - NGROUP]);
	}
	if (snap_secret)
		c = (unsigned)below(&r->rng, 100);
	if (c < 40) {
		int i = (int)below(&r->rng, NGROUP + (uint64_t)nc);
		return op_write(r, i < NGROUP ? i : clones[i - NGROUP]);
	}
	if (c < 58 && r->cur.nsnap < NSNAPS)
		return op_snapshot(r);
	if (c < 70 && r->cur.nsnap)
		return op_delete(r);
	if (c < 80 && r->cur.nsnap)
		return op_revert(r);
	if (c < 90 && free_slot >= 0)
		return op_clone(r, free_slot);
	if (c < 95 && nc)
		return op_unlink(r, clones[below(&r->rng, (uint64_t)nc)]);
	return op_truncate(r, nc && below(&r->rng, 2) ? clones[0] : 0);
}

/*
 * The starting point, written without a crash device: the folder, its files,
 * in the model (r->cur) and, unless img is NULL (the model of a copy of the
 * template), on the device.
 */
static int populate(const char *img, char *err, size_t errlen, struct srun *r)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0, .secret = snap_secret };
	struct vmfs_stat st, dst;
	struct vmfs *fs = NULL;
	int ret = img ? vmfs_open(img, &oo, &fs, err, errlen) : 0;
	static const uint64_t start[NGROUP][2] = { { 0, 2u << 20 }, { 0, 300u << 10 }, { 0, 200 } };

	if (ret)
		return ret;
	if (fs)
		ret = vmfs_mkdir(fs, vmfs_root_ino(fs), "vm", 0755, 0, 0, &dst);
	for (int i = 0; i < NGROUP && !ret; i++) {
		struct mbuf *m = mb_new(NULL);

		r->cur.f[i] = m;
		if (fs)
			ret = vmfs_mknod(fs, dst.ino, fname[i] + 4, S_IFREG | 0644, 0, 0, &st);
		for (uint64_t k = start[i][0]; k < start[i][1]; k++)
			mb_set(m, k, r->buf[k] = pattern(i + 1, k));
		for (uint64_t k = 0, at = i == 2 ? 10 : MARKER_AT; k < sizeof(MARKER) - 1; k++)
			mb_set(m, at + k, r->buf[at + k] = (uint8_t)MARKER[k]); /* vm.conf: inline */
		m->size = start[i][1];
		if (!ret && fs && vmfs_pwrite(fs, st.ino, r->buf, m->size, 0) != (ssize_t)m->size)
			ret = -EIO;
		if (!ret && i == 0) { /* past 256 blocks of 64 KiB: a map of height 2 */
			for (uint64_t k = 0; k < 200000; k++)
				mb_set(m, (17u << 20) + k, r->buf[k] = pattern(9, (17u << 20) + k));
			m->size = (17u << 20) + 200000;
			if (fs && vmfs_pwrite(fs, st.ino, r->buf, 200000, 17u << 20) != 200000)
				ret = -EIO;
		}
	}
	if (!fs)
		return ret;
	vmfs_close(fs);
	if (!ret && snap_secret) { /* NPAD more names in /vm, made in one transaction */
		oo.commit_ms = 60000;
		fs = NULL;
		ret = vmfs_open(img, &oo, &fs, err, errlen);
		for (int i = 0; i < NPAD && !ret; i++) {
			char name[64];

			pad_name(name, sizeof(name), i);
			ret = vmfs_mknod(fs, dst.ino, name, S_IFREG | 0644, 0, 0, &st);
		}
		if (fs)
			vmfs_close(fs);
	}
	return ret;
}

/* The pad names of /vm, each found (all true) or each removed (all false). */
static bool pads(struct vmfs *fs, bool find)
{
	uint64_t dir;
	struct vmfs_stat st;

	if (!snap_secret)
		return true;
	if (resolve(fs, "/vm", &dir))
		return false;
	for (int i = 0; i < NPAD; i++) {
		char name[64];

		pad_name(name, sizeof(name), i);
		if (find ? vmfs_lookup(fs, dir, name, &st) : vmfs_unlink(fs, dir, name))
			return false;
	}
	return true;
}

/* Does the file at path hold m (NULL: it does not exist)? tol: a write in flight on it. */
static bool file_matches(struct srun *r, uint64_t ino, bool exists, const struct mbuf *m, const struct mbuf *old,
			 bool tol, uint64_t wa, uint64_t wb, const char *what)
{
	struct vmfs_stat st;
	uint64_t size;

	if (!m)
		return !exists;
	if (!exists || vmfs_getattr(r->fs, ino, &st))
		return false;
	size = st.size;
	if (size != m->size && !(tol && old && size == old->size))
		return false;
	if (vmfs_pread(r->fs, ino, r->buf, size, 0) != (ssize_t)size)
		return false;
	if (size <= m->size && mb_equal(m, r->buf, size))
		return true;
	for (uint64_t k = 0; k < size; k++) {
		uint8_t want = k < m->size ? mb_byte(m, k) : 0;
		if (r->buf[k] == want)
			continue;
		if (tol && old && k >= wa && k < wb && r->buf[k] == (k < old->size ? mb_byte(old, k) : 0))
			continue; /* a write in flight: each byte old or new */
		(void)what;
		return false;
	}
	return true;
}

/* Does the datastore hold state st (with the write in flight tolerated)? */
static bool state_matches(struct srun *r, const struct mstate *st, const struct mstate *other, char *why,
			  size_t len)
{
	uint64_t inos[NFILES];
	bool exists[NFILES];

	for (int i = 0; i < NFILES; i++)
		exists[i] = !resolve(r->fs, fname[i], &inos[i]);
	for (int i = 0; i < NFILES; i++) {
		bool tol = r->wfile == i;
		if (!file_matches(r, inos[i], exists[i], st->f[i], other->f[i], tol, r->wa, r->wb, fname[i])) {
			snprintf(why, len, "%s does not hold its content", fname[i]);
			return false;
		}
	}
	for (int i = 0; i < NGROUP; i++) {
		struct vmfs_snap_info *list;
		size_t n;

		if (!exists[i] || vmfs_snap_list(r->fs, inos[i], &list, &n, NULL)) {
			snprintf(why, len, "%s: cannot list its snapshots", fname[i]);
			return false;
		}
		int want = 0;
		for (int k = 0; k < st->nsnap; k++)
			want += st->s[k].b[i] != NULL;
		if ((int)n != want) {
			snprintf(why, len, "%s has %zu snapshots, the state %d", fname[i], n, want);
			free(list);
			return false;
		}
		for (int k = 0; k < st->nsnap; k++) {
			size_t j;
			if (!st->s[k].b[i])
				continue;
			for (j = 0; j < n && strcmp(list[j].name, st->s[k].name); j++)
				;
			if (j == n || !file_matches(r, list[j].ino, true, st->s[k].b[i], NULL, false, 0, 0, "snap")) {
				snprintf(why, len, "%s: snapshot %s %s", fname[i], st->s[k].name,
					 j == n ? "is missing" : "does not hold its content");
				free(list);
				return false;
			}
		}
		free(list);
	}
	return true;
}

static uint64_t free_units(struct vmfs *fs)
{
	struct vmfs_info in;

	vmfs_get_info(fs, &in);
	return in.free_blocks * (in.block_size / 4096) + in.pool_free_units + in.pools;
}

static int make_snap_image(const char *img, char *err, size_t errlen)
{
	struct vmfs_mkfs_opts o = { .size = 256 * MIB, .block_size = BS, .force = true, .host_slots = 4,
				    .secret = snap_secret, .key_kind = ENC_SECRET_KEYFILE };

	unlink(img);
	return vmfs_mkfs(img, &o, err, errlen);
}

/* Does the image hold the marker anywhere (data extents, holes skipped)? */
static bool image_has_marker(const char *img)
{
	int fd = open(img, O_RDONLY);
	off_t size, off = 0;
	uint8_t *b = xmalloc((1u << 20) + 64);
	bool found = false;

	must(fd >= 0, "open the image");
	size = lseek(fd, 0, SEEK_END);
	while (!found && off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), end;
		if (data < 0)
			break;
		end = lseek(fd, data, SEEK_HOLE);
		for (off = data; !found && off < end; off += 1 << 20) {
			ssize_t n = pread(fd, b, (1u << 20) + sizeof(MARKER), off);
			found = n > 0 && memmem(b, (size_t)n, MARKER, sizeof(MARKER) - 1);
		}
		off = end;
	}
	close(fd);
	free(b);
	return found;
}

/* The populated image every cut point starts from (made once per case: cuts_run). */
static char snap_tpl[PATH_MAX + 32];

/* dst becomes a copy of src, its holes kept. 0 or -errno. */
static int copy_image(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;
	off_t size = in >= 0 ? lseek(in, 0, SEEK_END) : -1, off = 0;

	if (in < 0 || out < 0 || size < 0)
		ret = -errno;
	while (!ret && off < size) {
		loff_t a = lseek(in, off, SEEK_DATA), b, end;

		if (a < 0)
			break; /* no data past off */
		end = lseek(in, a, SEEK_HOLE);
		for (b = a; !ret && a < end;)
			if (copy_file_range(in, &a, out, &b, (size_t)(end - a), 0) <= 0)
				ret = -EIO;
		off = end;
	}
	if (!ret && ftruncate(out, size))
		ret = -errno;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

/* The template: mkfs and populate() once. */
static void make_template(void)
{
	struct srun r = { .wfile = -1 };
	char err[256] = "";

	snprintf(snap_tpl, sizeof(snap_tpl), "%s/snap-template.img", tmpdir);
	r.buf = xmalloc(fcap[0] + 4096);
	ck_assert_msg(make_snap_image(snap_tpl, err, sizeof(err)) == 0 && populate(snap_tpl, err, sizeof(err), &r) == 0,
		      "the template: %s", err);
	st_release(&r.cur);
	free(r.buf);
}

/* One cut point in this (child) process; 0 when every check held. *writes: the device's count. */
static int snap_point(enum dev_crash_mode mode, uint64_t seed, uint64_t cut, const char *img, const char *log,
		      uint64_t baseline, uint64_t *writes)
{
	static const char *const modes[] = { "drop", "tear", "prefix", "reorder" };
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0, .secret = snap_secret };
	struct dev_crash_stats cs = { 0 };
	struct srun r = { .mode = mode, .rng = { seed }, .wfile = -1 };
	char err[256] = "", num[32], why_a[256] = "", why_b[256] = "";
	const struct mstate *held = NULL; /* the state found after the cut */
	int ret, bad = 0;
	bool crashed;

	r.buf = xmalloc(fcap[0] + 4096);
	ret = copy_image(snap_tpl, img);
	if (ret)
		snprintf(err, sizeof(err), "copying the template image");
	else
		ret = populate(NULL, err, sizeof(err), &r);
	if (ret) {
		fprintf(stderr, "FAIL snap %s:%llu: setup: %s (%s)\n", modes[mode], (unsigned long long)cut, err,
			strerror(-ret));
		return -1;
	}
	setenv("VMFS_IO_ENGINE", "crash", 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cut);
	setenv("VMFS_CRASH_AFTER_WRITES", num, 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)mix64(seed + cut));
	setenv("VMFS_CRASH_SEED", num, 1);
	setenv("VMFS_CRASH_MODE", modes[mode], 1);
	ret = vmfs_open(img, &oo, &r.fs, err, sizeof(err));
	unsetenv("VMFS_IO_ENGINE");
	unsetenv("VMFS_CRASH_AFTER_WRITES");
	unsetenv("VMFS_CRASH_SEED");
	unsetenv("VMFS_CRASH_MODE");
	snprintf(r.op, sizeof(r.op), "open");
	st_copy(&r.prev, &r.cur);
	for (unsigned i = 0; i < SNAP_STEPS && !ret; i++)
		ret = step(&r);
	if (!ret) {
		snprintf(r.op, sizeof(r.op), "close");
		st_release(&r.prev);
		st_copy(&r.prev, &r.cur);
		r.wfile = -1;
	}
	if (r.fs)
		vmfs_close(r.fs);
	r.fs = NULL;
	crashed = dev_crash_last_closed(&cs) && cs.crashed;
	*writes = cs.writes;
	if (ret && !crashed) {
		sayf(&r, "%s failed (%s) without a power cut", r.op, strerror(-ret));
		bad = 1;
	}
	if (!bad && (ret = vmfs_open(img, &oo, &r.fs, err, sizeof(err)))) {
		sayf(&r, "open after the cut failed: %s", err);
		r.fs = NULL;
		bad = 1;
	}
	if (!bad && !(held = state_matches(&r, &r.cur, &r.prev, why_a, sizeof(why_a)) ? &r.cur : NULL) &&
	    !(held = state_matches(&r, &r.prev, &r.cur, why_b, sizeof(why_b)) ? &r.prev : NULL)) {
		sayf(&r, "after '%s' the datastore holds neither state: after it, %s; before it, %s", r.op, why_a, why_b);
		bad = 1;
	}
	if (!bad && snap_secret) { /* a deep rekey the cut stopped resumes from its mark and finishes */
		unsigned resumed = 0;

		if (!pads(r.fs, true)) {
			sayf(&r, "a name of /vm is not found after the cut");
			bad = 1;
		}
		for (int i = 0; i < NREKEY && !bad; i++) {
			struct vmfs_rekey_progress pr;
			uint64_t ino;

			if (resolve(r.fs, rname[i], &ino) || vmfs_rekey_state(r.fs, ino, &pr))
				continue;
			resumed += !pr.finished;
			while (!pr.finished && !bad)
				if ((ret = vmfs_rekey_step(r.fs, ino, 0, &pr))) {
					sayf(&r, "resuming the rekey of %s failed: %s", rname[i], strerror(-ret));
					bad = 1;
				}
		}
		if (resumed)
			sayf(&r, "%u rekeys resumed and finished; ", resumed);
		if (!bad && resumed && !state_matches(&r, held, held == &r.cur ? &r.prev : &r.cur, why_a, sizeof(why_a))) {
			sayf(&r, "after %u rekeys were resumed and finished: %s", resumed, why_a);
			bad = 1;
		}
		if (!bad && resumed && !pads(r.fs, true)) {
			sayf(&r, "a name of /vm is not found after the rekeys were resumed and finished");
			bad = 1;
		}
	}
	if (r.fs)
		vmfs_close(r.fs);
	r.fs = NULL;
	if (!bad && snap_secret && image_has_marker(img)) {
		sayf(&r, "the marker written into the files is on the device in plaintext");
		bad = 1;
	}
	if (!bad && fsck_available()) {
		int code = run_fsck(img, log);
		if (code != 0) {
			sayf(&r, "fsck.vmfs -n exited %d (its output is above)", code);
			bad = 1;
		}
	}
	if (!bad && !(ret = vmfs_open(img, &oo, &r.fs, err, sizeof(err)))) {
		uint64_t dir;
		for (int i = 0; i < NFILES; i++) {
			const char *slash = strrchr(fname[i], '/');
			uint64_t ino;
			if (resolve(r.fs, fname[i], &ino))
				continue;
			if (resolve(r.fs, i < NGROUP ? "/vm" : "/", &dir) ||
			    vmfs_unlink(r.fs, dir, slash + 1))
				bad = 1;
		}
		if (!bad && (!pads(r.fs, false) || vmfs_rmdir(r.fs, vmfs_root_ino(r.fs), "vm")))
			bad = 1;
		if (bad)
			sayf(&r, "removing the files failed");
		else if (free_units(r.fs) != baseline) {
			sayf(&r, "%llu units free once everything is removed, a fresh datastore has %llu",
			     (unsigned long long)free_units(r.fs), (unsigned long long)baseline);
			bad = 1;
		}
		vmfs_close(r.fs);
	} else if (!bad) {
		sayf(&r, "the third open failed: %s", err);
		bad = 1;
	}
	if (bad || getenv("CRASH_VERBOSE"))
		fprintf(stderr, "%s %s-%s:%llu (seed %llu): cut in '%s'; %llu writes; %s\nreproduce: "
			"%s=%s+ROUND:%llu CK_RUN_CASE=%s build/tests/test_crash (ROUND: (seed - %llu) / 7919)\n",
			bad ? "FAIL" : "ok", snap_secret ? "enc" : "snap", modes[mode], (unsigned long long)cut,
			(unsigned long long)seed, crashed ? r.op : "no cut", (unsigned long long)cs.writes, r.why,
			snap_secret ? "CRASH_ENC_ONLY" : "CRASH_SNAP_ONLY", modes[mode], (unsigned long long)cut,
			snap_secret ? "enc_cuts" : "snap_cuts",
			(unsigned long long)((snap_secret ? 2701 : 1601) + (mode == DEV_CRASH_TEAR)));
	st_release(&r.cur);
	st_release(&r.prev);
	free(r.buf);
	return bad ? -1 : 0;
}

static uint64_t snap_baseline(const char *img)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0, .secret = snap_secret };
	char err[256] = "";
	struct vmfs *fs;
	uint64_t f;

	ck_assert_msg(make_snap_image(img, err, sizeof(err)) == 0, "mkfs: %s", err);
	ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "open: %s", err);
	f = free_units(fs);
	vmfs_close(fs);
	unlink(img);
	return f;
}

/* Runs the points cuts[0..n) two at a time in children; returns how many failed. */
static unsigned snap_points(enum dev_crash_mode mode, uint64_t seed, const uint64_t *cuts, unsigned n,
			    uint64_t baseline, uint64_t *uncut_writes)
{
	pid_t pids[2] = { 0, 0 };
	uint64_t pcut[2] = { 0, 0 };
	unsigned next = 0, failed = 0, running = 0;
	int pfd[2] = { -1, -1 };

	if (uncut_writes)
		must(pipe(pfd) == 0, "pipe");
	while (next < n || running) {
		int status;
		pid_t pid;

		while (next < n && running < 2) {
			int s = pids[0] ? 1 : 0;
			char img[PATH_MAX + 32], log[PATH_MAX + 32];

			pcut[s] = cuts[next++];
			snprintf(img, sizeof(img), "%s/snap.%d.%llu.img", tmpdir, (int)mode, (unsigned long long)pcut[s]);
			snprintf(log, sizeof(log), "%s/snap.%d.%llu.log", tmpdir, (int)mode, (unsigned long long)pcut[s]);
			pids[s] = fork();
			must(pids[s] >= 0, "fork");
			if (!pids[s]) {
				uint64_t w = 0;
				int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644), rc;
				if (fd >= 0) {
					dup2(fd, 2);
					close(fd);
				}
				rc = snap_point(mode, seed, pcut[s], img, log, baseline, &w);
				if (pfd[1] >= 0 && write(pfd[1], &w, sizeof(w)) != sizeof(w))
					rc = -1;
				if (!rc && !getenv("CRASH_KEEP"))
					unlink(img);
				_exit(rc ? 1 : 0);
			}
			running++;
		}
		pid = waitpid(-1, &status, 0);
		must(pid > 0, "waitpid");
		for (int s = 0; s < 2; s++) {
			char log[PATH_MAX + 32];
			FILE *f;
			char line[1024];
			int lines = 0;

			if (pids[s] != pid)
				continue;
			pids[s] = 0;
			running--;
			snprintf(log, sizeof(log), "%s/snap.%d.%llu.log", tmpdir, (int)mode, (unsigned long long)pcut[s]);
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				if (++failed <= 5 && (f = fopen(log, "r"))) {
					while (lines++ < 30 && fgets(line, sizeof(line), f))
						fputs(line, stdout);
					fclose(f);
				}
			} else if (getenv("CRASH_VERBOSE") && (f = fopen(log, "r"))) {
				while (lines++ < 3 && fgets(line, sizeof(line), f))
					fputs(line, stdout);
				fclose(f);
			}
			unlink(log);
		}
	}
	if (uncut_writes) {
		close(pfd[1]);
		if (read(pfd[0], uncut_writes, sizeof(*uncut_writes)) != sizeof(*uncut_writes))
			*uncut_writes = 0;
		close(pfd[0]);
	}
	fflush(stdout);
	return failed;
}

/*
 * One mode's cut points (_i 0 drop, 1 tear): points_env sets how many (both
 * modes), only_env names one point to rerun; seeds from seed0.
 */
static void cuts_run(int _i, uint64_t seed0, unsigned points, const char *points_env, const char *only_env,
		     const char *label)
{
	enum dev_crash_mode mode = _i ? DEV_CRASH_TEAR : DEV_CRASH_DROP;
	const char *only = getenv(only_env);
	uint64_t seed = seed0 + (uint64_t)_i, writes = 0, baseline, *cuts, zero = 0;
	unsigned want = points / 2, failed;
	char img[PATH_MAX + 32];
	double t0 = now_s();

	if (getenv(points_env))
		want = (unsigned)strtoul(getenv(points_env), NULL, 0) / 2;
	make_tmpdir();
	snprintf(img, sizeof(img), "%s/snap-baseline.img", tmpdir);
	baseline = snap_baseline(img);
	make_template();
	if (only) { /* CRASH_SNAP_ONLY=drop:CUT, tear:CUT, or drop+ROUND:CUT for a later round's seed */
		uint64_t cut = strtoull(strchr(only, ':') ? strchr(only, ':') + 1 : only, NULL, 0);
		unsigned round = only[4] == '+' ? (unsigned)atoi(only + 5) : 0;
		if (!strncmp(only, _i ? "tear" : "drop", 4)) {
			setenv("CRASH_VERBOSE", "1", 1);
			setenv("CRASH_KEEP", "1", 1);
			ck_assert_uint_eq(snap_points(mode, seed + round * 7919ull, &cut, 1, baseline, NULL), 0);
		}
		return;
	}
	/* more points than the workload has writes: further rounds on other seeds (make crash-long) */
	failed = 0;
	for (unsigned done = 0, round = 0; done < want; round++) {
		uint64_t rseed = seed + round * 7919ull;
		unsigned n;

		ck_assert_msg(snap_points(mode, rseed, &zero, 1, baseline, &writes) == 0,
			      "the uncut %s workload (seed %llu) failed its checks", label, (unsigned long long)rseed);
		ck_assert_uint_gt(writes, 100);
		n = (unsigned)min_u64(want - done, writes);
		cuts = xmalloc(n * sizeof(*cuts));
		for (unsigned i = 0; i < n; i++)
			cuts[i] = 1 + (uint64_t)i * (writes - 1) / (n > 1 ? n - 1 : 1);
		failed += snap_points(mode, rseed, cuts, n, baseline, NULL);
		free(cuts);
		done += n;
		printf("%s power cuts (%s, seed %llu): %llu writes uncut, %u cut points\n", label, _i ? "tear" : "drop",
		       (unsigned long long)rseed, (unsigned long long)writes, n);
	}
	printf("%s power cuts (%s): %u cut points, %u failed, %.1f s\n", label, _i ? "tear" : "drop", want, failed,
	       now_s() - t0);
	fflush(stdout);
	remove_tmpdir();
	ck_assert_msg(failed == 0, "%u of %u %s cut points failed (reports above)", failed, want, label);
}

START_TEST(t_snap_cuts)
{
	cuts_run(_i, 1601, SNAP_POINTS, "CRASH_SNAP_POINTS", "CRASH_SNAP_ONLY", "snapshot");
}
END_TEST

START_TEST(t_enc_cuts)
{
	static const char key[] = "power cuts on an encrypted store";
	struct srun r = { .wfile = -1 };
	char img[PATH_MAX + 32], err[256] = "";

	/* the control: on a plain datastore the scan finds the marker populate() writes */
	make_tmpdir();
	snprintf(img, sizeof(img), "%s/enc-control.img", tmpdir);
	r.buf = xmalloc(fcap[0] + 4096);
	ck_assert_msg(make_snap_image(img, err, sizeof(err)) == 0 && populate(img, err, sizeof(err), &r) == 0, "%s", err);
	ck_assert_msg(image_has_marker(img), "the scan misses the marker on a plain datastore");
	st_release(&r.cur);
	free(r.buf);
	unlink(img);
	ck_assert_int_eq(enc_secret_from_buf(key, sizeof(key) - 1, &snap_secret), 0);
	cuts_run(_i, 2701, ENC_POINTS, "CRASH_ENC_POINTS", "CRASH_ENC_ONLY", "encrypted snapshot");
	enc_secret_free(snap_secret);
	snap_secret = NULL;
}
END_TEST

/* The "snap_cuts" case: drop and tear, SNAP_POINTS cut points between them. */
void crash_snap_tests(TCase *tc)
{
	tcase_set_timeout(tc, 900);
	tcase_add_loop_test(tc, t_snap_cuts, 0, 2);
}

/* The "enc_cuts" case: the same on an encrypted datastore, ENC_POINTS cut points, no marker on the device. */
void crash_enc_tests(TCase *tc)
{
	tcase_set_timeout(tc, 900);
	tcase_add_loop_test(tc, t_enc_cuts, 0, 2);
}
