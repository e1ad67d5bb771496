/*
 * Unit tests of vmfs as a cluster member (vmfs/cluster.c): two hosts in one
 * process, each a vmfs_open of the same image with its own heartbeat slot.
 * They check that changes cross over through the metadata lock (C1-C3), that
 * file locks exclude (C5), that a host that leaves frees its slot, and that a
 * host whose device refuses writes fails with EIO and leaves its file to the
 * other host. Fast cluster timings keep it short.
 */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lockmgr/lockmgr.h"
#include "vmfs/vmfs_i.h" /* vmfs_cluster_io: the slots as lockmgr reads them */
#include "vmfs/vmfs.h"

static char img[64];

static void mk(uint32_t slots)
{
	struct vmfs_mkfs_opts o = { .size = 512ull << 20, .force = true, .host_slots = slots,
				    .hb_interval_ms = 200, .hb_dead_ms = 2000, .fence_ms = 1200,
				    .io_timeout_ms = 400 };
	char err[256] = "";
	int fd;

	/* named after the runner (the parent), whose unchecked teardown removes what a failed test left */
	snprintf(img, sizeof(img), "/var/tmp/vmfs-cluster-%d-XXXXXX", (int)getppid());
	fd = mkstemp(img);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(vmfs_mkfs(img, &o, err, sizeof(err)) == 0, "mkfs: %s", err);
}

static struct vmfs *host(const char *name)
{
	struct vmfs_open_opts o = { .commit_ms = 0, .hostname = name };
	struct vmfs *fs = NULL;
	char err[256] = "";
	int ret = vmfs_open(img, &o, &fs, err, sizeof(err));

	ck_assert_msg(ret == 0, "open as %s: %d %s", name, ret, err);
	return fs;
}

static void teardown(void)
{
	unlink(img);
}

/* Runs in the runner after the tests: a failed check ends its forked test before teardown(). */
static void remove_leftovers(void)
{
	char pat[64];
	glob_t g;

	snprintf(pat, sizeof(pat), "/var/tmp/vmfs-cluster-%d-*", (int)getpid());
	if (glob(pat, 0, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			unlink(g.gl_pathv[i]);
	globfree(&g);
}

static uint64_t root(struct vmfs *fs)
{
	uint64_t ino;
	ck_assert_int_eq(vmfs_resolve(fs, "/", &ino), 0);
	return ino;
}

static size_t used_slots(bool alive_only)
{
	struct vmfs_open_opts o = { .readonly = true };
	struct lk_slot_info *s = NULL;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	struct vmfs *fs;
	char err[256];
	size_t n = 0, used = 0;

	ck_assert_int_eq(vmfs_open(img, &o, &fs, err, sizeof(err)), 0);
	vmfs_cluster_io(fs, &io, &g, &t);
	ck_assert_int_eq(alive_only ? lk_watch_slots(&io, &g, t.dead_ms, &s, &n)
				    : lk_read_slots(&io, &g, &s, &n), 0);
	for (size_t i = 0; i < n; i++)
		used += alive_only ? s[i].alive : s[i].state != LK_SLOT_FREE;
	free(s);
	vmfs_close(fs);
	return used;
}

/* Names, data and sizes cross from one host to the other, both ways. */
START_TEST(t_coherence)
{
	struct vmfs *a, *b;
	struct vmfs_stat st;
	char buf[16] = "";
	uint64_t ino;

	mk(8);
	a = host("host-a");
	b = host("host-b");
	ck_assert_uint_eq(used_slots(true), 2);
	ck_assert_int_eq(vmfs_mknod(a, root(a), "f", S_IFREG | 0644, 0, 0, &st), 0);
	ino = st.ino;
	ck_assert_int_eq(vmfs_pwrite(a, ino, "hello", 5, 0), 5);
	ck_assert_int_eq(vmfs_fsync(a, ino, false), 0);
	ck_assert_int_eq(vmfs_lookup(b, root(b), "f", &st), 0);
	ck_assert_uint_eq(st.ino, ino);
	ck_assert_uint_eq(st.size, 5);
	ck_assert_int_eq(vmfs_pread(b, ino, buf, sizeof(buf), 0), 5);
	ck_assert_str_eq(buf, "hello");
	vmfs_forget(b, ino, 1);
	ck_assert_int_eq(vmfs_rename(b, root(b), "f", root(b), "g", 0), 0);
	ck_assert_int_eq(vmfs_lookup(a, root(a), "f", &st), -ENOENT);
	ck_assert_int_eq(vmfs_lookup(a, root(a), "g", &st), 0);
	vmfs_forget(a, st.ino, 1);
	ck_assert_int_eq(vmfs_mkdir(a, root(a), "d", 0755, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_unlink(b, root(b), "g"), 0);
	ck_assert_int_eq(vmfs_lookup(a, root(a), "g", &st), -ENOENT);
	ck_assert_int_eq(vmfs_lookup(b, root(b), "d", &st), 0);
	ck_assert(S_ISDIR(st.mode));
	vmfs_forget(b, st.ino, 1);
	ck_assert_int_eq(vmfs_close(a), 0);
	ck_assert_int_eq(vmfs_close(b), 0);
	ck_assert_uint_eq(used_slots(false), 0); /* both left: their slots are free */
}
END_TEST

/* An exclusive file lock keeps the other host out until it is let go; shared locks share. */
START_TEST(t_file_locks)
{
	struct vmfs *a, *b;
	struct vmfs_stat st;
	char who[200] = "";

	mk(8);
	a = host("host-a");
	b = host("host-b");
	ck_assert_int_eq(vmfs_mknod(a, root(a), "disk", S_IFREG | 0644, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_EX, NULL, 0), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_SH, NULL, 0), 0); /* same host: counted */
	ck_assert_int_eq(vmfs_file_lock(b, st.ino, VMFS_LOCK_EX, who, sizeof(who)), -EBUSY);
	ck_assert_msg(strstr(who, "host-a") && strstr(who, "exclusive"), "holder named as '%s'", who);
	ck_assert_int_eq(vmfs_file_lock(b, st.ino, VMFS_LOCK_SH, NULL, 0), -EBUSY);
	/* C6: its last name stays while a lives with it locked */
	ck_assert_int_eq(vmfs_unlink(b, root(b), "disk"), -EBUSY);
	{
		struct vmfs_stat o;
		ck_assert_int_eq(vmfs_mknod(b, root(b), "other", S_IFREG | 0644, 0, 0, &o), 0);
		vmfs_forget(b, o.ino, 1);
	}
	ck_assert_int_eq(vmfs_rename(b, root(b), "other", root(b), "disk", 0), -EBUSY);
	ck_assert_int_eq(vmfs_lookup(a, root(a), "disk", &st), 0);
	vmfs_forget(a, st.ino, 1);
	ck_assert_int_eq(vmfs_file_unlock(a, st.ino), 0);
	ck_assert_int_eq(vmfs_file_lock(b, st.ino, VMFS_LOCK_SH, NULL, 0), -EBUSY); /* one reference left */
	ck_assert_int_eq(vmfs_file_unlock(a, st.ino), 0);
	ck_assert_int_eq(vmfs_file_lock(b, st.ino, VMFS_LOCK_SH, NULL, 0), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_SH, NULL, 0), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_EX, NULL, 0), -EBUSY); /* b reads it */
	ck_assert_int_eq(vmfs_file_unlock(a, st.ino), 0);
	ck_assert_int_eq(vmfs_file_unlock(b, st.ino), 0);
	ck_assert_int_eq(vmfs_file_lock(b, st.ino, VMFS_LOCK_MW, NULL, 0), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_MW, NULL, 0), 0);
	ck_assert_int_eq(vmfs_file_lock(a, st.ino, VMFS_LOCK_SH, NULL, 0), -EBUSY);
	ck_assert_int_eq(vmfs_file_unlock(a, st.ino), 0);
	ck_assert_int_eq(vmfs_file_unlock(b, st.ino), 0);
	ck_assert_int_eq(vmfs_rename(b, root(b), "other", root(b), "disk", 0), 0); /* nobody holds it now */
	vmfs_forget(a, st.ino, 1);
	ck_assert_int_eq(vmfs_close(a), 0);
	ck_assert_int_eq(vmfs_close(b), 0);
}
END_TEST

/* Writes one byte at each MiB of a new file: one file block per MiB. Returns the inode. */
static uint64_t spread_file(struct vmfs *fs, const char *name, unsigned mib)
{
	struct vmfs_stat st;

	ck_assert_int_eq(vmfs_mknod(fs, root(fs), name, S_IFREG | 0644, 0, 0, &st), 0);
	for (unsigned i = 0; i < mib; i++)
		ck_assert_int_eq(vmfs_pwrite(fs, st.ino, "x", 1, (uint64_t)i << 20), 1);
	vmfs_forget(fs, st.ino, 1);
	return st.ino;
}

/* Marks in rcs[] the resource clusters that hold the file's blocks, checking each one's owner. */
static void file_rcs(struct vmfs *fs, uint64_t ino, unsigned mib, uint32_t owner_slot1, bool *rcs, size_t nrc)
{
	for (unsigned i = 0; i < mib; i++) {
		struct vmfs_bmap_info bi;

		ck_assert_int_eq(vmfs_bmap(fs, ino, (uint64_t)i << 20, &bi), 0);
		ck_assert(!bi.hole);
		ck_assert_uint_lt(bi.rc, nrc);
		ck_assert_msg(bi.rc_owner_slot1 == owner_slot1, "block %u of inode %llu: RC %llu is owned by slot+1 %u, not %u",
			      i, (unsigned long long)ino, (unsigned long long)bi.rc, bi.rc_owner_slot1, owner_slot1);
		rcs[bi.rc] = true;
	}
}

/*
 * Hosts allocate from resource clusters of their own (the owner record in the
 * RC), a host that fills one claims another, and the RCs of a host that left
 * are claimed again; fsck finds every count right afterwards.
 */
START_TEST(t_placement)
{
	struct vmfs_fsck_opts fo = { .mode = VMFS_FSCK_CHECK, .force = true };
	struct vmfs_info ia, ib, ic;
	struct vmfs_fsck_result res;
	bool ra[64] = { 0 }, rb[64] = { 0 }, rcc[64] = { 0 };
	struct vmfs *a, *b, *c;
	uint64_t fa, fb, fc, small;
	unsigned nb = 0;
	char err[256] = "";

	mk(8);
	a = host("host-a");
	b = host("host-b");
	ck_assert_int_eq(vmfs_get_info(a, &ia), 0);
	ck_assert_int_eq(vmfs_get_info(b, &ib), 0);
	ck_assert_uint_le(ia.rc_count, 64);
	fa = spread_file(a, "fa", 8);
	fb = spread_file(b, "fb", 100); /* more than one RC of 64 blocks */
	file_rcs(a, fa, 8, ia.slot + 1, ra, 64);
	file_rcs(b, fb, 100, ib.slot + 1, rb, 64);
	for (unsigned i = 0; i < 64; i++) {
		ck_assert_msg(!(ra[i] && rb[i]), "RC %u holds blocks of both hosts", i);
		nb += rb[i];
	}
	ck_assert_uint_ge(nb, 2);
	/* sub-blocks (a small file's data) come from a pool in the writer's own RCs */
	{
		struct vmfs_bmap_info bi;
		struct vmfs_stat st;
		char data[6000];

		memset(data, 's', sizeof(data));
		ck_assert_int_eq(vmfs_mknod(b, root(b), "small", S_IFREG | 0644, 0, 0, &st), 0);
		small = st.ino;
		ck_assert_int_eq(vmfs_pwrite(b, small, data, sizeof(data), 0), (ssize_t)sizeof(data));
		ck_assert_int_eq(vmfs_bmap(b, small, 0, &bi), 0);
		ck_assert(!bi.hole && bi.rc_owner_slot1 == ib.slot + 1 && rb[bi.rc]);
		vmfs_forget(b, small, 1);
	}
	ck_assert_int_eq(vmfs_close(a), 0);
	/* a's owner records are void now: a new host claims its RCs again before fresh ones */
	c = host("host-c");
	ck_assert_int_eq(vmfs_get_info(c, &ic), 0);
	fc = spread_file(c, "fc", 4);
	file_rcs(c, fc, 4, ic.slot + 1, rcc, 64);
	nb = 0;
	for (unsigned i = 0; i < 64; i++) {
		ck_assert_msg(!(rcc[i] && rb[i]), "RC %u holds blocks of b and c", i);
		nb += rcc[i] && ra[i];
	}
	ck_assert_msg(nb > 0, "c claimed none of the RCs a left");
	ck_assert_int_eq(vmfs_close(b), 0);
	ck_assert_int_eq(vmfs_close(c), 0);
	ck_assert_msg(vmfs_fsck(img, &fo, &res, err, sizeof(err)) == 0 && res.found == 0, "fsck: %u found: %s",
		      res.found, err);
}
END_TEST

/*
 * An idle host costs next to no CPU: it renews its heartbeat every interval and
 * looks for waiting hosts every 20 ms. (The poller once took its monotonic
 * deadlines on a CLOCK_REALTIME condition variable and spun.) A bound on CPU
 * time, not on wall time: a loaded machine only lowers it.
 */
START_TEST(t_idle_host)
{
	struct timespec c0, c1, nap = { .tv_sec = 2 };
	struct vmfs_stat st;
	struct vmfs *a;
	double used;

	mk(8);
	a = host("idle");
	ck_assert_int_eq(vmfs_mkdir(a, root(a), "d", 0755, 0, 0, &st), 0); /* holds META now */
	vmfs_forget(a, st.ino, 1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	while (nanosleep(&nap, &nap))
		;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	used = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	ck_assert_msg(used < 0.25, "an idle host used %.2f s of CPU in 2 s", used);
	ck_assert_int_eq(vmfs_close(a), 0);
}
END_TEST

/*
 * Deferred times: an overwrite of written blocks maps under META shared and
 * keeps its mtime in memory (vmfs/inode.c). stat on the writer shows it at
 * once, another host sees it after fsync, and a time set explicitly afterwards
 * is not overwritten by the deferred one.
 */
START_TEST(t_deferred_times)
{
	struct vmfs_open_opts o = { .commit_ms = 60000 };
	struct vmfs_stat st, sa, sb, set = { .mtime_ns = 1234567890 };
	struct vmfs *a, *b;
	static char buf[1 << 20];
	char err[256] = "";
	int64_t m0;

	mk(8);
	o.hostname = "writer";
	ck_assert_msg(vmfs_open(img, &o, &a, err, sizeof(err)) == 0, "%s", err);
	o.hostname = "reader";
	ck_assert_msg(vmfs_open(img, &o, &b, err, sizeof(err)) == 0, "%s", err);
	memset(buf, 'v', sizeof(buf));
	ck_assert_int_eq(vmfs_mknod(a, root(a), "disk", S_IFREG | 0644, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_pwrite(a, st.ino, buf, sizeof(buf), 0), (ssize_t)sizeof(buf)); /* allocates */
	ck_assert_int_eq(vmfs_fsync(a, st.ino, false), 0);
	ck_assert_int_eq(vmfs_getattr(a, st.ino, &sa), 0);
	m0 = sa.mtime_ns;
	memcpy(buf, "in place", 8);
	ck_assert_int_eq(vmfs_pwrite(a, st.ino, buf, 4096, 4096), 4096); /* whole sectors: the deferred path */
	ck_assert_int_eq(vmfs_getattr(a, st.ino, &sa), 0);
	ck_assert_msg(sa.mtime_ns > m0 && sa.ctime_ns >= sa.mtime_ns, "the writer's stat: mtime %lld, was %lld",
		      (long long)sa.mtime_ns, (long long)m0);
	ck_assert_int_eq(vmfs_fsync(a, st.ino, false), 0);
	ck_assert_int_eq(vmfs_getattr(b, st.ino, &sb), 0);
	ck_assert_int_eq(sb.mtime_ns, sa.mtime_ns);
	ck_assert_int_eq(vmfs_pread(b, st.ino, buf, 8, 4096), 8);
	ck_assert(!memcmp(buf, "in place", 8));
	ck_assert_int_eq(vmfs_pwrite(a, st.ino, buf, 4096, 8192), 4096);
	ck_assert_int_eq(vmfs_setattr(a, st.ino, &set, VMFS_SET_MTIME, NULL), 0);
	ck_assert_int_eq(vmfs_fsync(a, st.ino, false), 0);
	ck_assert_int_eq(vmfs_getattr(a, st.ino, &sa), 0);
	ck_assert_int_eq(sa.mtime_ns, 1234567890);
	ck_assert_int_eq(vmfs_getattr(b, st.ino, &sb), 0);
	ck_assert_int_eq(sb.mtime_ns, 1234567890);
	vmfs_forget(a, st.ino, 1);
	ck_assert_int_eq(vmfs_close(a), 0);
	ck_assert_int_eq(vmfs_close(b), 0);
}
END_TEST

/* A read-write open needs a free slot: with one slot, a second host is refused in one line. */
START_TEST(t_no_free_slot)
{
	struct vmfs_open_opts o = { .hostname = "second" };
	struct vmfs *a, *b = NULL;
	char err[256] = "";

	mk(1);
	a = host("first");
	ck_assert_int_eq(vmfs_open(img, &o, &b, err, sizeof(err)), -ENOSPC);
	ck_assert_msg(strstr(err, "cluster") && !strchr(err, '\n'), "message '%s'", err);
	ck_assert_int_eq(vmfs_close(a), 0);
	ck_assert_int_eq(vmfs_open(img, &o, &b, err, sizeof(err)), 0); /* the slot was freed */
	ck_assert_int_eq(vmfs_close(b), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("cluster");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_unchecked_fixture(tc, NULL, remove_leftovers);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_coherence);
	tcase_add_test(tc, t_file_locks);
	tcase_add_test(tc, t_no_free_slot);
	tcase_add_test(tc, t_placement);
	tcase_add_test(tc, t_idle_host);
	tcase_add_test(tc, t_deferred_times);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
