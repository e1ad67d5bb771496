/*
 * vmfs-flip: byte-flip robustness driver (tests/e2e/flip.sh). Builds the seed
 * datastore in WORKDIR, finds its metadata (every unit whose header names it,
 * the backup superblock, slot 0's host record), then for each iteration flips
 * 1..8 random bytes in random metadata blocks, with the checksums recomputed in
 * half of the iterations so the checksum is not the only defence, and runs the
 * read-only walk of fuzz_common.c in a child with a time limit. A child that
 * dies of a signal, hits the limit or trips a sanitizer is a failure; one that
 * opens and walks, or is refused with an error, is not.
 *
 * With -f FSCK, each checked iteration also runs FSCK -f -n, -f -y, -f -n on a
 * copy (-f: the image was closed cleanly, so check it anyway): every exit must be one of 0, 1, 2, 4, 8 (never a signal) and the second
 * -n must exit 0 unless -y gave up (8). Two more checks are counted and shown,
 * and fail only with -S: fsck -n calling an image clean that the walk found
 * errors in, and a repaired image (second -n clean) that does not walk cleanly.
 *
 * Iteration i draws from a generator seeded by (seed, i) alone, so -s SEED -i I
 * -n 1 replays iteration I of a failed run, and -k keeps its image.
 *
 * -c runs the crafted cases instead: damage no random flip finds, such as a
 * block map whose pointers all lead to one block, each walked the same way.
 *
 * -P (with -f FSCK) tests fsck's promise instead (issue 14; property_trial()):
 * bits flipped in allocated units, fsck -y, fsck -n, a read-write open and a
 * read of every file to its end, fsck -n again; FSCK is run as a user runs it,
 * without -f. Trials are replayed the same way (-P -s SEED -i I -n 1). -I
 * IMAGE flips a copy of IMAGE instead of the seed images; -M CMD runs CMD
 * IMAGE (mount through FUSE, read everything, unmount) after the walk of every
 * EVERY-th trial (-e, 10).
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "tests/fuzz/fuzz_common.h"
#include "vmfs/vmfs.h"

enum { EXIT_WALKED = 10, EXIT_WALK_ERRORS = 11, EXIT_REFUSED = 12 };
#define MAX_FLIPS 8
#define HOSTREC_SIZE ((unsigned)sizeof(struct vmfs_hostrec_disk))

struct target {
	uint64_t off;           /* byte offset in the image */
	unsigned len;           /* 4096, or 512 for a host record */
};

struct flip {
	const struct target *t;
	unsigned at;
	uint8_t mask;           /* the bits to flip */
	uint8_t old, new;
};

struct opts {
	const char *workdir, *fsck;
	const char *image, *mount_cmd;  /* -P: a datastore to use instead of the seeds; a FUSE read */
	unsigned iterations, first, timeout, fsck_every, max_failures, mount_every;
	uint64_t seed;
	bool keep, verbose, strict, crafted, property;
};

struct counts {
	unsigned iterations, sealed, walked, walk_errors, refused, failures;
	unsigned fsck_runs, fsck_n[9], fsck_y[9], fsck_clean_after, fsck_gave_up;
	unsigned missed_before, missed_after, notes;
	unsigned flips[3], crashed, mounted, gave_up4, gave_up8, held;  /* -P */
};

static struct target targets[FZ_MAX_META + 2];
static size_t ntargets;
/* -P: a seed image and its allocated units; data (large files' blocks, stale log) are picked 1 time in 8 */
struct pimage {
	const char *name;
	struct fz_image img;
	struct target *meta, *data;
	size_t nmeta, ndata;
	uint64_t nlive;         /* units of the live log, among meta */
};
static char logpath[512], fscklog[512];

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void find_targets(const struct fz_layout *l)
{
	targets[ntargets++] = (struct target){ VMFS_SB_BACKUP_OFF, VMFS_UNIT };
	targets[ntargets++] = (struct target){ l->hostrec_off, HOSTREC_SIZE };
	for (size_t i = 0; i < l->nmeta; i++)
		targets[ntargets++] = (struct target){ l->meta[i].unit * VMFS_UNIT, VMFS_UNIT };
}

/* Runs fn in a child with a time limit; returns the wait status. */
static int in_child(const struct opts *o, int (*fn)(const void *), const void *arg)
{
	int status, fd;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("vmfs-flip: fork");
		exit(2);
	}
	if (pid == 0) {
		fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		alarm(o->timeout); /* kept across exec: a hang ends as SIGALRM */
		_exit(fn(arg));
	}
	while (waitpid(pid, &status, 0) < 0)
		;
	return status;
}

static int walk_as(const char *path, const struct fz_walk_opts *wo)
{
	struct fz_walk_stats st;

	if (fz_walk(path, wo, &st))
		return EXIT_REFUSED;
	fprintf(stderr, "walk: %u dirs, %u entries, %u files, %u links, %llu bytes, %u errors\n", st.dirs,
		st.entries, st.files, st.links, (unsigned long long)st.bytes, st.errors);
	return st.errors ? EXIT_WALK_ERRORS : EXIT_WALKED;
}

static int walk_child(const void *arg)
{
	return walk_as(arg, &FZ_WALK_FULL);
}

struct exec_args {
	const char *cmd, *img;
};

/* -M: CMD IMAGE mounts the image, reads every file and unmounts; 0 when all went well. */
static int exec_child(const void *arg)
{
	const struct exec_args *a = arg;

	execl(a->cmd, a->cmd, a->img, (char *)NULL);
	perror("vmfs-flip: exec");
	return 127;
}

/* The walk of a repaired image: read-write open, every file read whole; every error shown. */
static int walk_repaired_child(const void *arg)
{
	setenv("FZ_WALK_DEBUG", "1", 1);
	return walk_as(arg, &FZ_WALK_REPAIRED);
}

struct fsck_args {
	const char *fsck, *mode, *img;
	bool property;
};

static int fsck_child(const void *arg)
{
	const struct fsck_args *a = arg;

	/* -P runs fsck as a user would (-n and -y check a clean datastore too); -f: check it anyway */
	if (a->property)
		execl(a->fsck, a->fsck, a->mode, a->img, (char *)NULL);
	else
		execl(a->fsck, a->fsck, "-f", a->mode, a->img, (char *)NULL);
	perror("vmfs-flip: exec fsck");
	return 127;
}

/* FSCK -f MODE on img in a child; returns the wait status, *rc the exit code (-1 for a signal). */
static int run_fsck(const struct opts *o, const char *mode, const char *img, int *rc)
{
	struct fsck_args a = { o->fsck, mode, img, o->property };
	int st = in_child(o, fsck_child, &a);

	*rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return st;
}

/* An exit fsck.vmfs documents (0 clean, 1 corrected, 4 left, 8 operational error), not a crash. */
static bool fsck_exit_ok(int rc)
{
	return rc == 0 || rc == 1 || rc == 2 || rc == 4 || rc == 8;
}

static void show_log_of(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	unsigned n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n++ < 60)
		fprintf(stderr, "    | %s", line);
	fclose(f);
}

static void show_log(void)
{
	show_log_of(logpath);
}

static const char *status_str(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WTERMSIG(status) == SIGALRM ? ": a hang" : "");
	else
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	return buf;
}

/* A failure, or (fatal false) a note: shown, counted, never more than a few of them. */
static void report_as(const struct opts *o, struct counts *c, bool fatal, unsigned it, const struct flip *f,
		      unsigned n, bool sealed, const char *what, int status, int img_fd)
{
	char buf[128], path[600];

	if (fatal)
		c->failures++;
	else if (c->notes++ >= 3)
		return;
	fprintf(stderr, "%s: iteration %u (replay: vmfs-flip%s%s%s -s %llu -i %u -n 1%s -k DIR): %s: %s\n",
		fatal ? "FAIL" : "NOTE", it, o->property ? " -P" : "", o->image ? " -I IMAGE" : "",
		o->mount_cmd ? " -M MOUNT_CMD" : "", (unsigned long long)o->seed, it, o->fsck ? " -f FSCK" : "", what,
		status_str(status, buf, sizeof(buf)));
	for (unsigned i = 0; i < n; i++)
		fprintf(stderr, "    flip byte 0x%llx (unit %llu + 0x%x): 0x%02x -> 0x%02x\n",
			(unsigned long long)(f[i].t->off + f[i].at), (unsigned long long)(f[i].t->off / VMFS_UNIT),
			(unsigned)(f[i].t->off % VMFS_UNIT) + f[i].at, f[i].old, f[i].new);
	fprintf(stderr, "    checksums %s\n", sealed ? "recomputed" : "left stale");
	if (o->property && strcmp(what, "fsck -y")) {
		fprintf(stderr, "    fsck -y said:\n");
		show_log_of(fscklog);
		fprintf(stderr, "    then:\n");
	}
	show_log();
	snprintf(path, sizeof(path), "%s/fail-%u.img", o->workdir, it);
	if (fatal && !fz_copy_file(img_fd, path))
		fprintf(stderr, "    image kept: %s\n", path);
}

static void report(const struct opts *o, struct counts *c, unsigned it, const struct flip *f, unsigned n,
		   bool sealed, const char *what, int status, int img_fd)
{
	report_as(o, c, true, it, f, n, sealed, what, status, img_fd);
}

/* FSCK -n, -y, -n on a copy of the flipped image; then the library must walk it cleanly. */
static void check_fsck(const struct opts *o, struct counts *c, unsigned it, const struct flip *f, unsigned n,
		       bool sealed, int walk_status, int img_fd)
{
	static const char *const modes[] = { "-n", "-y", "-n" };
	char img[600];
	int st[3], rc[3];

	snprintf(img, sizeof(img), "%s/fsck.img", o->workdir);
	if (fz_copy_file(img_fd, img)) {
		perror("vmfs-flip: copying the image for fsck");
		exit(2);
	}
	c->fsck_runs++;
	for (int i = 0; i < 3; i++) {
		char what[64];

		st[i] = run_fsck(o, modes[i], img, &rc[i]);
		if (!fsck_exit_ok(rc[i])) {
			snprintf(what, sizeof(what), "fsck %s (run %d of 3)", modes[i], i + 1);
			report(o, c, it, f, n, sealed, what, st[i], img_fd);
			goto out;
		}
	}
	c->fsck_n[rc[0]]++;
	c->fsck_y[rc[1]]++;
	if (rc[0] == 0 && WIFEXITED(walk_status) && WEXITSTATUS(walk_status) != EXIT_WALKED) {
		c->missed_before++;
		report_as(o, c, o->strict, it, f, n, sealed, "fsck -n called it clean, but the walk found errors",
			  walk_status, img_fd);
	}
	if (rc[1] == 8) {
		c->fsck_gave_up++;
	} else if (rc[2] != 0) {
		report(o, c, it, f, n, sealed, "fsck -n after fsck -y is not clean", st[2], img_fd);
	} else {
		int ws = in_child(o, walk_child, img), code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
		c->fsck_clean_after++;
		if (code == EXIT_WALK_ERRORS || code == EXIT_REFUSED) {
			c->missed_after++;
			report_as(o, c, o->strict, it, f, n, sealed,
				  "after fsck -y (and a clean fsck -n) the walk finds errors", ws, img_fd);
		} else if (code != EXIT_WALKED) {
			report(o, c, it, f, n, sealed, "walk of the image fsck -y repaired", ws, img_fd);
		}
	}
out:
	unlink(img);
}

/* Writes the flips (fz_patch_undo() puts the bytes back); sealed: then recomputes their blocks' checksums. */
static void apply_flips(struct fz_image *img, struct flip *f, unsigned n, bool sealed)
{
	for (unsigned i = 0; i < n; i++) {
		if (pread(img->fd, &f[i].old, 1, (off_t)(f[i].t->off + f[i].at)) != 1) {
			perror("vmfs-flip: pread");
			exit(2);
		}
		f[i].new = f[i].old ^ f[i].mask;
		if (fz_patch(img->fd, f[i].t->off + f[i].at, &f[i].new, 1)) {
			perror("vmfs-flip: pwrite");
			exit(2);
		}
	}
	for (unsigned i = 0; sealed && i < n; i++) {
		uint8_t u[VMFS_UNIT];
		if (pread(img->fd, u, f[i].t->len, (off_t)f[i].t->off) != (ssize_t)f[i].t->len)
			exit(2);
		if (f[i].t->len == VMFS_UNIT)
			fz_seal_unit(u);
		else
			fz_seal_hostrec(u);
		if (fz_patch(img->fd, f[i].t->off, u, f[i].t->len))
			exit(2);
	}
}

static void iteration(const struct opts *o, struct counts *c, struct fz_image *img, unsigned it)
{
	uint64_t s = o->seed * 0x100000001b3ull + it, r = rng_next(&s);
	unsigned n = 1 + (unsigned)(r % MAX_FLIPS);
	bool sealed = (r >> 8) & 1;
	struct flip f[MAX_FLIPS];
	int status, code;

	for (unsigned i = 0; i < n; i++) {
		const struct target *t = &targets[rng_next(&s) % ntargets];
		unsigned span = t->len - 4;

		r = rng_next(&s);
		/* half in the header and fields */
		f[i] = (struct flip){ .t = t, .at = (unsigned)(r & 1 ? (r >> 8) % span : (r >> 8) % base_min(span, 0x140u)),
				      .mask = (uint8_t)(1 + (r >> 32) % 255) };
	}
	apply_flips(img, f, n, sealed);
	c->iterations++;
	c->sealed += sealed;
	status = in_child(o, walk_child, img->path);
	code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (code == EXIT_WALKED)
		c->walked++;
	else if (code == EXIT_WALK_ERRORS)
		c->walk_errors++;
	else if (code == EXIT_REFUSED)
		c->refused++;
	else
		report(o, c, it, f, n, sealed, "read-only walk", status, img->fd);
	if (o->verbose)
		fprintf(stderr, "iteration %u: %u flips, crc %s, walk %d\n", it, n, sealed ? "fixed" : "stale", code);
	if (o->fsck && it % o->fsck_every == 0)
		check_fsck(o, c, it, f, n, sealed, status, img->fd);
	fz_patch_undo(img->fd);
}

/* ---- the fsck property (-P) --------------------------------------------------------------- */

static int add_target(struct target **v, size_t *n, uint64_t off, unsigned len)
{
	if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
		struct target *p = realloc(*v, (*n ? 2 * *n : 1) * sizeof(**v));
		if (!p)
			return -ENOMEM;
		*v = p;
	}
	(*v)[(*n)++] = (struct target){ off, len };
	return 0;
}

/*
 * Every allocated unit of the image, read from its RC descriptors and pool
 * headers: both superblocks, the host records, the RC descriptors, every
 * sub-block a pool gives out (inodes, pointer blocks, directory nodes, small
 * files' data) and its header, slot 0's journal superblock, host state block
 * and the live part of its log (metadata); the blocks of large files and the
 * rest of the journals (data).
 */
/* Slot 0's live log: from the tail, each transaction whose descriptor has the next sequence. */
struct live_log {
	uint64_t log0, nlog;    /* the log's first unit and its length */
	uint64_t tail, n;       /* live: n units from the tail, circular */
};

static void find_live_log(int fd, const struct fz_layout *l, struct live_log *ll)
{
	struct vmfs_jsb_disk js;
	struct vmfs_jdesc_disk jd;
	uint64_t seq, pos;

	*ll = (struct live_log){ .log0 = l->journal_unit + VMFS_JOURNAL_LOG_START, .nlog = 1 };
	if (!l->journal_unit || l->journal_units <= VMFS_JOURNAL_LOG_START ||
	    pread(fd, &js, sizeof(js), (off_t)(l->journal_unit * VMFS_UNIT)) != sizeof(js))
		return;
	ll->nlog = l->journal_units - VMFS_JOURNAL_LOG_START;
	seq = le64_to_cpu(js.js_tail_seq);
	ll->tail = pos = le64_to_cpu(js.js_tail_pos) % ll->nlog;
	while (ll->n < ll->nlog) {
		if (pread(fd, &jd, sizeof(jd), (off_t)((ll->log0 + pos) * VMFS_UNIT)) != sizeof(jd) ||
		    le32_to_cpu(jd.jd_hdr.mh_magic) != VMFS_MAGIC_JDESC || le64_to_cpu(jd.jd_seq) != seq++)
			break;
		ll->n = base_min(ll->n + le32_to_cpu(jd.jd_count) + 2, ll->nlog);
		pos = (pos + le32_to_cpu(jd.jd_count) + 2) % ll->nlog;
	}
}

static bool in_live_log(const struct live_log *ll, uint64_t unit)
{
	return unit >= ll->log0 && unit < ll->log0 + ll->nlog && (unit - ll->log0 + ll->nlog - ll->tail) % ll->nlog < ll->n;
}

static int find_allocated(struct pimage *pi, const struct fz_layout *l)
{
	const struct vmfs_sb_disk *sb = &l->sb;
	uint64_t upb = (1ull << le32_to_cpu(sb->sb_block_shift)) / VMFS_UNIT, rcb = le32_to_cpu(sb->sb_rc_blocks);
	uint64_t data_unit = le64_to_cpu(sb->sb_data_off) / VMFS_UNIT, nblocks = le64_to_cpu(sb->sb_nblocks);
	static struct vmfs_rc_disk rc;
	static struct vmfs_pool_disk pool;
	int fd = pi->img.fd, ret = add_target(&pi->meta, &pi->nmeta, 0, VMFS_UNIT);
	struct live_log ll;

	find_live_log(fd, l, &ll);
	pi->nlive = ll.n;
	ret = ret ? ret : add_target(&pi->meta, &pi->nmeta, VMFS_SB_BACKUP_OFF, VMFS_UNIT);
	for (uint32_t s = 0; !ret && s < le32_to_cpu(sb->sb_host_slots); s++)
		ret = add_target(&pi->meta, &pi->nmeta, le64_to_cpu(sb->sb_hosttab_off) + s * le32_to_cpu(sb->sb_slot_size),
				 HOSTREC_SIZE);
	for (uint64_t r = 0; !ret && r < le64_to_cpu(sb->sb_rc_inited); r++) {
		uint64_t off = le64_to_cpu(sb->sb_rc_table_off) + r * VMFS_UNIT;
		if (pread(fd, &rc, sizeof(rc), (off_t)off) != sizeof(rc))
			return -EIO;
		ret = add_target(&pi->meta, &pi->nmeta, off, VMFS_UNIT);
		for (uint64_t i = 0; !ret && i < rcb && r * rcb + i < nblocks; i++) {
			uint16_t ref = le16_to_cpu(rc.rc_ref[i]);
			uint64_t unit = data_unit + (r * rcb + i) * upb;

			if (ref == VMFS_REF_POOL && pread(fd, &pool, sizeof(pool), (off_t)(unit * VMFS_UNIT)) != sizeof(pool))
				return -EIO;
			for (uint64_t u = 0; ref && !ret && u < upb; u++) {
				bool meta = ref == VMFS_REF_POOL || (ref == VMFS_REF_JOURNAL &&
								     (unit + u < l->journal_unit + VMFS_JOURNAL_LOG_START ||
								      in_live_log(&ll, unit + u)));
				if (ref == VMFS_REF_POOL && !pool.pl_ref[u])
					continue;
				if (meta)
					ret = add_target(&pi->meta, &pi->nmeta, (unit + u) * VMFS_UNIT, VMFS_UNIT);
				else
					ret = add_target(&pi->data, &pi->ndata, (unit + u) * VMFS_UNIT, VMFS_UNIT);
			}
		}
	}
	return ret;
}

/*
 * One trial: 1, 4 or 16 bits flipped in random allocated units (their checksums
 * recomputed in one trial of four), then on a copy fsck -y, which must exit 0
 * or 1 (8, an image fsck cannot work on, is counted and shown, not a failure;
 * 4, problems -y left, is one), fsck -n, which must find nothing, an open as a mount opens it and
 * a read of every directory, link and file to its end, which must not meet a
 * single error, and fsck -n again.
 */
static void property_trial(const struct opts *o, struct counts *c, struct pimage *pis, unsigned it)
{
	static const unsigned nflips[] = { 1, 4, 16 };
	uint64_t s = o->seed * 0x100000001b3ull + it, r = rng_next(&s);
	unsigned kind = (unsigned)(r % 3), n = nflips[kind];
	bool sealed = (r >> 8) % 4 == 0;
	/* one trial in four: the image with a journal to replay (none with -I) */
	struct pimage *pi = &pis[!o->image && (r >> 16) % 4 == 0];
	struct fz_image *img = &pi->img;
	struct flip f[16];
	char path[600];
	bool held = false;
	int st, rc, code;

	for (unsigned i = 0; i < n; i++) {
		const struct target *t;

		r = rng_next(&s);
		t = pi->ndata && r % 8 == 0 ? &pi->data[(r >> 8) % pi->ndata] : &pi->meta[(r >> 8) % pi->nmeta];
		r = rng_next(&s) % (t->len * 8u);
		f[i] = (struct flip){ .t = t, .at = (unsigned)(r / 8), .mask = (uint8_t)(1u << (r % 8)) };
	}
	apply_flips(img, f, n, sealed);
	c->iterations++;
	c->sealed += sealed;
	c->flips[kind]++;
	c->crashed += pi != pis;
	snprintf(path, sizeof(path), "%s/fsck.img", o->workdir);
	if (fz_copy_file(img->fd, path)) {
		perror("vmfs-flip: copying the image for fsck");
		exit(2);
	}
	st = run_fsck(o, "-y", path, &rc);
	rename(logpath, fscklog);
	if (!fsck_exit_ok(rc) || rc == 2) {
		report(o, c, it, f, n, sealed, "fsck -y", st, img->fd);
		goto out;
	}
	if (rc == 4) {
		/* -y fixes everything it finds: a problem left is one it does not know how to fix */
		c->gave_up4++;
		report(o, c, it, f, n, sealed, "fsck -y left problems", st, img->fd);
		goto out;
	}
	if (rc == 8) {
		/* it could not work on the image (both superblocks gone, say): the rule binds only after 0 or 1 */
		c->gave_up8++;
		report_as(o, c, false, it, f, n, sealed, "fsck -y gave up", st, img->fd);
		goto out;
	}
	st = run_fsck(o, "-n", path, &rc);
	if (rc != 0) {
		report(o, c, it, f, n, sealed, "fsck -n after fsck -y exit 0/1 is not clean", st, img->fd);
		goto out;
	}
	st = in_child(o, walk_repaired_child, path);
	code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (code != EXIT_WALKED) {
		report(o, c, it, f, n, sealed, code == EXIT_REFUSED ? "open (read-write) after fsck" :
			     "reading the repaired image (errors)", st, img->fd);
		goto out;
	}
	if (o->mount_cmd && it % o->mount_every == 0) {
		struct exec_args a = { o->mount_cmd, path };
		c->mounted++;
		st = in_child(o, exec_child, &a);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			report(o, c, it, f, n, sealed, "mount (FUSE) and read", st, img->fd);
			goto out;
		}
	}
	st = run_fsck(o, "-n", path, &rc);
	if (rc != 0) {
		report(o, c, it, f, n, sealed, "fsck -n after the read-write open and the read is not clean", st,
		       img->fd);
		goto out;
	}
	c->held++;
	held = true;
out:
	if (o->verbose)
		fprintf(stderr, "trial %u: %s image, %u flips, crc %s: %s\n", it, pi->name, n,
			sealed ? "recomputed" : "stale", held ? "held" : "did not hold");
	unlink(path);
	fz_patch_undo(img->fd);
}

/* ---- crafted damage ---------------------------------------------------------------------- */

static int rewrite_unit(int fd, uint64_t unit, void (*edit)(uint8_t *u, const void *arg), const void *arg)
{
	uint8_t u[VMFS_UNIT];

	if (pread(fd, u, VMFS_UNIT, (off_t)(unit * VMFS_UNIT)) != VMFS_UNIT)
		return -EIO;
	edit(u, arg);
	fz_seal_unit(u);
	return pwrite(fd, u, VMFS_UNIT, (off_t)(unit * VMFS_UNIT)) == VMFS_UNIT ? 0 : -EIO;
}

struct shared_map {
	uint64_t next;          /* what every entry names */
	bool fill;              /* level 1: name the file's data block everywhere (else: nothing) */
};

static void edit_root(uint8_t *u, const void *arg)
{
	const struct shared_map *m = arg;
	struct vmfs_inode_disk *di = (void *)u;

	di->i_size = cpu_to_le64(1ull << 63);
	for (unsigned i = 0; i < VMFS_ROOT_PTRS; i++)
		((le64 *)di->i_root)[i] = cpu_to_le64(m->next);
}

static void edit_ptrs(uint8_t *u, const void *arg)
{
	const struct shared_map *m = arg;
	struct vmfs_ptr_disk *pb = (void *)u;
	uint64_t data = 0;

	for (unsigned i = 0; i < VMFS_PTRS_PER_BLOCK; i++)
		data = pb->pb_ptr[i] ? le64_to_cpu(pb->pb_ptr[i]) : data;
	for (unsigned i = 0; i < VMFS_PTRS_PER_BLOCK; i++)
		pb->pb_ptr[i] = cpu_to_le64(m->next ? m->next : m->fill ? data : 0);
}

/*
 * A file of map height 4 (one block written at 200 TiB) whose root pointers
 * all name its level-3 block, whose entries all name its level-2 block, and so
 * on; level 1 names the one data block everywhere (fill) or nothing. A walk
 * of 256 * 496^3 entries unless the map is checked against what it can hold.
 */
static int craft_shared_map(struct fz_image *img, bool fill)
{
	struct vmfs_open_opts oo = { .standalone = true };
	static struct fz_layout lay;
	uint64_t level[4] = { 0 };
	struct vmfs_stat st;
	struct vmfs *fs;
	char err[256], buf[4096] = "x";
	int ret = vmfs_open(img->path, &oo, &fs, err, sizeof(err));

	if (ret)
		return ret;
	ret = vmfs_mknod(fs, vmfs_root_ino(fs), "shared-map", S_IFREG | 0644, 0, 0, &st);
	if (!ret)
		ret = vmfs_pwrite(fs, st.ino, buf, sizeof(buf), 200ull << 40) == sizeof(buf) ? 0 : -EIO;
	vmfs_close(fs);
	if (!ret)
		ret = fz_layout_scan(img->fd, &lay);
	for (size_t i = 0; !ret && i < lay.nmeta; i++)
		if (lay.meta[i].magic == VMFS_MAGIC_PTR && lay.meta[i].owner == st.ino && lay.meta[i].flags < 4)
			level[lay.meta[i].flags] = lay.meta[i].unit;
	if (!ret && (!level[1] || !level[2] || !level[3]))
		ret = -ENOENT; /* the map did not come out at height 4 */
	if (!ret)
		ret = rewrite_unit(img->fd, st.ino, edit_root, &(struct shared_map){ level[3], fill });
	for (unsigned l = 3; !ret && l >= 1; l--)
		ret = rewrite_unit(img->fd, level[l], edit_ptrs, &(struct shared_map){ l > 1 ? level[l - 1] : 0, fill });
	return ret;
}

/* An interior directory node of 200 items, all naming child; item i > 0 has key 2^63 + i. */
static int write_interior(int fd, uint64_t unit, uint64_t owner, const uint8_t *uuid, unsigned level,
			  uint64_t child)
{
	uint8_t u[VMFS_UNIT] = { 0 };
	struct vmfs_dirnode_disk *dn = (void *)u;
	const unsigned n = 200;

	dn->dn_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_DIR);
	dn->dn_hdr.mh_version = cpu_to_le16(VMFS_VERSION_MAJOR);
	dn->dn_hdr.mh_addr = cpu_to_le64(unit);
	dn->dn_hdr.mh_owner = cpu_to_le64(owner);
	memcpy(dn->dn_hdr.mh_uuid, uuid, 16);
	for (unsigned i = 0; i < n; i++) {
		/* above every real key (< 2^63): all of them sort under item 0 */
		struct vmfs_dirent_disk de = { .de_key = cpu_to_le64(i ? (1ull << 63) + i : 0),
					       .de_val = cpu_to_le64(child) };
		memcpy(dn->dn_items + i * sizeof(de), &de, sizeof(de));
	}
	dn->dn_dh.dh_count = cpu_to_le16(n);
	dn->dn_dh.dh_used = cpu_to_le16(n * sizeof(struct vmfs_dirent_disk));
	dn->dn_dh.dh_level = (uint8_t)level;
	fz_seal_unit(u);
	return pwrite(fd, u, VMFS_UNIT, (off_t)(unit * VMFS_UNIT)) == VMFS_UNIT ? 0 : -EIO;
}

/*
 * The 320-entry directory turned into a tree of height 5 whose four interior
 * nodes (its root node and three of its files' inode units) have 200 items
 * each, all naming the next node, down to one real leaf: readdir past the
 * leaf's keys visits the leaf 200^4 times unless a child's keys must lie in the
 * range its parent gives it (FORMAT.md, D2).
 */
static int craft_shared_dir(struct fz_image *img)
{
	struct vmfs_open_opts oo = { .readonly = true };
	static const char *const spare[] = { "/many/f317", "/many/f318", "/many/f319" };
	struct vmfs_dirnode_disk root;
	struct vmfs_dirent_disk de;
	struct vmfs_inode_disk di;
	uint64_t dir, node[5];
	struct vmfs *fs;
	char err[256];
	int ret = vmfs_open(img->path, &oo, &fs, err, sizeof(err));

	if (ret)
		return ret;
	ret = vmfs_resolve(fs, "/many", &dir);
	for (unsigned i = 0; i < 3 && !ret; i++)
		ret = vmfs_resolve(fs, spare[i], &node[i + 1]);
	vmfs_close(fs);
	if (!ret && pread(img->fd, &di, sizeof(di), (off_t)(dir * VMFS_UNIT)) != sizeof(di))
		ret = -EIO;
	if (ret)
		return ret;
	node[0] = le64_to_cpu(((le64 *)di.i_root)[0]);
	if (pread(img->fd, &root, sizeof(root), (off_t)(node[0] * VMFS_UNIT)) != sizeof(root))
		return -EIO;
	memcpy(&de, root.dn_items, sizeof(de));
	node[4] = le64_to_cpu(de.de_val); /* the first leaf */
	for (unsigned l = 0; l < 4 && !ret; l++)
		ret = write_interior(img->fd, node[l], dir, root.dn_hdr.mh_uuid, 4 - l, node[l + 1]);
	di.i_height = 5;
	fz_seal_unit((uint8_t *)&di);
	if (!ret && pwrite(img->fd, &di, sizeof(di), (off_t)(dir * VMFS_UNIT)) != sizeof(di))
		ret = -EIO;
	return ret;
}

static int craft_empty_shared(struct fz_image *img) { return craft_shared_map(img, false); }
static int craft_full_shared(struct fz_image *img) { return craft_shared_map(img, true); }

static int run_crafted(const struct opts *o)
{
	static const struct {
		const char *name;
		int (*craft)(struct fz_image *img);
	} cases[] = {
		{ "map: every pointer leads to one empty pointer block (SEEK_DATA)", craft_empty_shared },
		{ "map: every pointer leads to one full pointer block (SEEK_HOLE)", craft_full_shared },
		{ "directory: every interior item leads to one node, four levels (readdir)", craft_shared_dir },
	};
	unsigned failures = 0;

	for (size_t i = 0; i < base_array_size(cases); i++) {
		struct fz_image img;
		char err[256] = "", buf[128];
		int ret = fz_image_build(FZ_IMAGE_CLEAN, o->workdir, &img, err, sizeof(err)), status, code;

		if (!ret)
			ret = cases[i].craft(&img);
		if (ret) {
			fprintf(stderr, "vmfs-flip: crafted case %zu: %s\n", i, err[0] ? err : strerror(-ret));
			fz_image_release(&img);
			return 2;
		}
		status = in_child(o, walk_child, img.path);
		code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (code != EXIT_WALKED && code != EXIT_WALK_ERRORS && code != EXIT_REFUSED) {
			failures++;
			fprintf(stderr, "FAIL: crafted: %s: %s\n", cases[i].name, status_str(status, buf, sizeof(buf)));
			show_log();
		} else {
			printf("vmfs-flip: crafted: %s: ok (%s)\n", cases[i].name,
			       code == EXIT_WALKED ? "walked" : code == EXIT_REFUSED ? "refused" : "walked with errors");
		}
		fz_image_release(&img);
	}
	unlink(logpath);
	return failures ? 1 : 0;
}

/* -I: a copy of the given datastore in the work directory, flipped and put back as the seeds are. */
static int given_image(const struct opts *o, struct fz_image *img, char *err, size_t errlen)
{
	int src = open(o->image, O_RDONLY | O_CLOEXEC), ret;

	img->fd = -1;
	snprintf(img->path, sizeof(img->path), "%s/given.img", o->workdir);
	ret = src < 0 ? -errno : fz_copy_file(src, img->path);
	if (src >= 0)
		close(src);
	if (!ret && (img->fd = open(img->path, O_RDWR | O_CLOEXEC)) < 0)
		ret = -errno;
	if (ret)
		snprintf(err, errlen, "%s: %s", o->image, strerror(-ret));
	return ret;
}

/* Builds the image, lists its allocated units and checks that the property holds without a flip. */
static int pimage_init(const struct opts *o, struct pimage *pi, enum fz_image_kind kind)
{
	static struct fz_layout lay;
	char err[256] = "", path[600];
	int st, rc;

	if ((o->image ? given_image(o, &pi->img, err, sizeof(err)) : fz_image_build(kind, o->workdir, &pi->img, err, sizeof(err))) ||
	    fz_layout_scan(pi->img.fd, &lay) || find_allocated(pi, &lay) || !pi->nmeta) {
		fprintf(stderr, "vmfs-flip: %s image: %s\n", pi->name, err[0] ? err : "cannot list its allocated units");
		return 2;
	}
	printf("vmfs-flip: %s image %s: %zu allocated metadata units (%llu of them the live log), %zu data units\n",
	       pi->name, pi->img.path, pi->nmeta, (unsigned long long)pi->nlive, pi->ndata);
	snprintf(path, sizeof(path), "%s/fsck.img", o->workdir);
	if (fz_copy_file(pi->img.fd, path))
		return 2;
	st = run_fsck(o, "-n", path, &rc);
	if (rc == 0)
		st = in_child(o, walk_repaired_child, path);
	unlink(path);
	if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != EXIT_WALKED) {
		fprintf(stderr, "vmfs-flip: the undamaged %s image is not clean or does not read (fsck -n exit %d)\n",
			pi->name, rc);
		show_log();
		return 1;
	}
	return 0;
}

static void pimage_release(const struct opts *o, struct pimage *pi)
{
	if (!o->keep)
		fz_image_release(&pi->img);
	free(pi->meta);
	free(pi->data);
}

static int run_property(const struct opts *o)
{
	struct pimage pis[2] = { { .name = "clean", .img.fd = -1 }, { .name = "crashed", .img.fd = -1 } };
	struct counts c = { 0 };
	uint64_t t0;
	int ret = o->fsck ? 0 : 2;

	if (!o->fsck)
		fprintf(stderr, "vmfs-flip: -P needs -f FSCK\n");
	if (o->image)
		pis[0].name = "given";
	for (unsigned i = 0; i < (o->image ? 1u : 2u) && !ret; i++)
		ret = pimage_init(o, &pis[i], i ? FZ_IMAGE_CRASHED : FZ_IMAGE_CLEAN);
	t0 = base_mono_ns();
	for (unsigned it = o->first; !ret && it < o->first + o->iterations && c.failures < o->max_failures; it++)
		property_trial(o, &c, pis, it);
	if (!ret)
		printf("vmfs-flip -P: %u trials (1/4/16 flips: %u/%u/%u; %u with checksums recomputed; %u on the crashed "
		       "image; %u also read through a mount) in %.1f s: %u held, %u fsck -y exit 4, %u exit 8, "
		       "%u failures\n", c.iterations, c.flips[0], c.flips[1], c.flips[2], c.sealed, c.crashed,
		       c.mounted, (double)(base_mono_ns() - t0) / 1e9, c.held, c.gave_up4, c.gave_up8, c.failures);
	unlink(logpath);
	unlink(fscklog);
	for (unsigned i = 0; i < 2; i++)
		pimage_release(o, &pis[i]);
	return ret ? ret : c.failures ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: vmfs-flip [-n ITERATIONS] [-s SEED] [-i FIRST] [-t TIMEOUT_S] [-m MAX_FAILURES] [-f FSCK [-F EVERY] [-S]] [-k] [-v] WORKDIR\n"
			"       vmfs-flip -P -f FSCK [-I IMAGE] [-M MOUNT_CMD [-e EVERY]] [-n TRIALS] [-s SEED] [-i FIRST] [-t TIMEOUT_S] [-m MAX_FAILURES] [-k] [-v] WORKDIR\n"
			"       vmfs-flip -c [-t TIMEOUT_S] WORKDIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .iterations = 1000, .timeout = 20, .fsck_every = 1, .seed = 1, .max_failures = 5,
			  .mount_every = 10 };
	static struct fz_layout lay;
	struct counts c = { 0 };
	struct fz_image img;
	char err[256] = "";
	uint64_t t0;
	int opt, status;

	while ((opt = getopt(argc, argv, "n:s:i:t:f:F:m:SPI:M:e:ckv")) != -1) {
		switch (opt) {
		case 'n': o.iterations = (unsigned)strtoul(optarg, NULL, 0); break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'i': o.first = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': o.timeout = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'f': o.fsck = optarg; break;
		case 'F': o.fsck_every = base_max(1u, (unsigned)strtoul(optarg, NULL, 0)); break;
		case 'm': o.max_failures = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': o.strict = true; break;
		case 'c': o.crafted = true; break;
		case 'P': o.property = true; break;
		case 'I': o.image = optarg; break;
		case 'M': o.mount_cmd = optarg; break;
		case 'e': o.mount_every = base_max(1u, (unsigned)strtoul(optarg, NULL, 0)); break;
		case 'k': o.keep = true; break;
		case 'v': o.verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	o.workdir = argv[optind];
	snprintf(logpath, sizeof(logpath), "%s/child.log", o.workdir);
	snprintf(fscklog, sizeof(fscklog), "%s/fsck-y.log", o.workdir);
	setenv("VMFS_IO_ENGINE", "sync", 0);
	if (o.crafted)
		return run_crafted(&o);
	if (o.property)
		return run_property(&o);
	if (fz_image_build(FZ_IMAGE_CLEAN, o.workdir, &img, err, sizeof(err)) ||
	    fz_layout_scan(img.fd, &lay)) {
		fprintf(stderr, "vmfs-flip: %s\n", err[0] ? err : "cannot scan the seed image");
		return 2;
	}
	find_targets(&lay);
	printf("vmfs-flip: seed image %s: %zu metadata blocks to flip in\n", img.path, ntargets);
	status = in_child(&o, walk_child, img.path);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != EXIT_WALKED) {
		fprintf(stderr, "vmfs-flip: the undamaged image does not walk cleanly\n");
		show_log();
		fz_image_release(&img);
		return 1;
	}
	show_log();
	t0 = base_mono_ns();
	for (unsigned it = o.first; it < o.first + o.iterations && c.failures < o.max_failures; it++)
		iteration(&o, &c, &img, it);
	printf("vmfs-flip: %u iterations (%u with checksums recomputed) in %.1f s: %u walked, %u walked with errors, %u refused at open, %u failures\n",
	       c.iterations, c.sealed, (double)(base_mono_ns() - t0) / 1e9, c.walked, c.walk_errors, c.refused,
	       c.failures);
	if (o.fsck)
		printf("vmfs-flip: fsck on %u images: first -n exit 0/1/2/4/8: %u/%u/%u/%u/%u; -y exit 0/1/2/4/8: %u/%u/%u/%u/%u; clean after -y: %u; -y gave up: %u\n",
		       c.fsck_runs, c.fsck_n[0], c.fsck_n[1], c.fsck_n[2], c.fsck_n[4], c.fsck_n[8], c.fsck_y[0],
		       c.fsck_y[1], c.fsck_y[2], c.fsck_y[4], c.fsck_y[8], c.fsck_clean_after, c.fsck_gave_up);
	if (o.fsck)
		printf("vmfs-flip: fsck -n called clean %u images the walk found errors in; %u repaired images still walk with errors%s\n",
		       c.missed_before, c.missed_after, o.strict ? "" : " (failures only with -S)");
	else
		printf("vmfs-flip: fsck not run (no -f)\n");
	unlink(logpath);
	if (!o.keep)
		fz_image_release(&img);
	return c.failures ? 1 : 0;
}
