/*
 * Part 3 of the power-cut tests (tests/unit/test_crash.c, case regressions):
 * each library bug the cuts found, reduced to a few calls, and a check that
 * the checks catch injected damage.
 */
#include "vmfs/dev_i.h"
#include "vmfs/dev_crash.h"
#include "vmfs/vmfs.h"
#include "vmfs/vmfs_format.h"
#include "tests/unit/crash/crash.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Each library bug the power cuts found, reduced to a few calls. A child that
 * ends without vmfs_close stands for a power cut after every write landed
 * (the sync engine leaves nothing in memory); the parent opens the image again.
 */
static char rimg[PATH_MAX + 32];

static void regress_setup(void)
{
	char err[256] = "";

	make_tmpdir();
	snprintf(rimg, sizeof(rimg), "%s/regress.img", tmpdir);
	ck_assert_msg(make_image(rimg, err, sizeof(err)) == 0, "mkfs: %s", err);
}

static void regress_teardown(void)
{
	unlink(rimg);
	remove_tmpdir();
}

static struct vmfs *ropen(unsigned commit_ms)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = commit_ms };
	char err[256] = "";
	struct vmfs *fs = NULL;
	int ret = vmfs_open(rimg, &oo, &fs, err, sizeof(err));

	ck_assert_msg(ret == 0, "open: %s", err);
	return fs;
}

/* Runs body in a child that stops without closing: the cut. Its exit status must be 0. */
static void cut_after(void (*body)(uint64_t *), uint64_t *shared)
{
	int pfd[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t v[4] = { 0 };

		body(v);
		_exit(write(pfd[1], v, sizeof(v)) == sizeof(v) ? 0 : 3);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], shared, 4 * sizeof(*shared)), 4 * (ssize_t)sizeof(*shared));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (%d)", status);
}

static struct vmfs *child_open(unsigned commit_ms)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = commit_ms };
	char err[256];
	struct vmfs *fs;

	if (vmfs_open(rimg, &oo, &fs, err, sizeof(err)))
		_exit(2);
	return fs;
}

static void reuse_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	struct vmfs_stat a, b;
	static uint8_t buf[8192];

	memset(buf, 0x11, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "b", S_IFREG | 0644, 0, 0, &b) ||
	    vmfs_mknod(fs, vmfs_root_ino(fs), "a", S_IFREG | 0644, 0, 0, &a))
		_exit(2);
	vmfs_forget(fs, a.ino, 1);
	vmfs_forget(fs, b.ino, 1);
	if (vmfs_unlink(fs, vmfs_root_ino(fs), "a") ||     /* a's inode unit is free once committed */
	    vmfs_pwrite(fs, b.ino, buf, sizeof(buf), 0) != sizeof(buf) ||  /* and comes back as b's data */
	    vmfs_fsync(fs, b.ino, false))
		_exit(2);
	v[0] = b.ino;
}

/* J6: replay must not write a freed inode's old image over data that reused its unit. */
START_TEST(t_regress_replay_over_reused_unit)
{
	uint64_t v[4];
	static uint8_t got[8192];
	struct vmfs *fs;

	cut_after(reuse_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), 0), (ssize_t)sizeof(got));
	for (size_t i = 0; i < sizeof(got); i++)
		ck_assert_msg(got[i] == 0x11, "byte %zu of fsync'd data is 0x%02x after replay", i, got[i]);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

static void orphan_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	struct vmfs_stat st, in = { .size = 0 };
	static uint8_t buf[3 << 20];

	if (vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st))  /* keeps a reference */
		_exit(2);
	memset(buf, 1, sizeof(buf));
	if (vmfs_pwrite(fs, st.ino, buf, sizeof(buf), 0) != sizeof(buf) ||
	    vmfs_unlink(fs, vmfs_root_ino(fs), "f") ||     /* held: on the orphan list */
	    vmfs_setattr(fs, st.ino, &in, VMFS_SET_SIZE, NULL) || vmfs_sync(fs))
		_exit(2);
	v[0] = st.ino;
}

/* O1: truncating an unlinked file that is still held keeps it on the orphan list. */
START_TEST(t_regress_orphan_truncate)
{
	struct vmfs_stat st;
	uint64_t v[4];
	struct vmfs *fs;

	cut_after(orphan_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), -ESTALE);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

static void growth_body(uint64_t *v)
{
	struct vmfs *fs = child_open(60000);
	struct vmfs_stat st;
	static uint8_t buf[5000];

	memset(buf, 0x22, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st) ||
	    vmfs_pwrite(fs, st.ino, buf, 5000, 0) != 5000 || vmfs_fsync(fs, st.ino, false) ||
	    vmfs_pwrite(fs, st.ino, buf, 1000, 5000) != 1000)   /* in place; its size is not committed */
		_exit(2);
	v[0] = st.ino;
}

/* Growing a file after a cut shows zeros, not what a lost write left past its end. */
START_TEST(t_regress_growth_after_cut)
{
	struct vmfs_stat st, in = { .size = 3 * MIB };
	static uint8_t got[8192];
	uint64_t v[4];
	struct vmfs *fs;
	uint64_t out;

	cut_after(growth_body, v);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), 0);
	ck_assert_uint_eq(st.size, 5000);
	/* each way of growing: a write past the end, fallocate, truncate */
	ck_assert_int_eq(vmfs_pwrite(fs, v[0], "x", 1, 5500), 1);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, 5501, 0), 5501);
	for (size_t i = 5000; i < 5500; i++)
		ck_assert_msg(got[i] == 0, "write past the end: byte %zu is 0x%02x", i, got[i]);
	ck_assert_int_eq(vmfs_fallocate(fs, v[0], 0, 5501, 600), 0);
	ck_assert_int_eq(vmfs_setattr(fs, v[0], &in, VMFS_SET_SIZE, NULL), 0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), 0), (ssize_t)sizeof(got));
	for (size_t i = 5000; i < sizeof(got); i++)
		ck_assert_msg(got[i] == (i == 5500 ? 'x' : 0), "byte %zu is 0x%02x", i, got[i]);
	ck_assert_int_eq(vmfs_lseek(fs, v[0], 0, SEEK_DATA, &out), 0);
	ck_assert_int_eq(vmfs_close(fs), 0);
}
END_TEST

/* A power cut tearing the journal superblock (the last write of a close) leaves an openable datastore. */
START_TEST(t_regress_torn_journal_superblock)
{
	struct dev_crash_stats cs;
	unsigned torn = 0;
	uint64_t last;

	for (uint64_t seed = 0; seed <= 12; seed++) {
		struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
		char err[256] = "", num[32];
		struct vmfs *fs;
		struct vmfs_stat st;
		int ret;

		if (seed) {
			ck_assert_int_eq(make_image(rimg, err, sizeof(err)), 0);
			snprintf(num, sizeof(num), "%llu", (unsigned long long)last);
			setenv("VMFS_CRASH_AFTER_WRITES", num, 1);
			snprintf(num, sizeof(num), "%llu", (unsigned long long)seed);
			setenv("VMFS_CRASH_SEED", num, 1);
			setenv("VMFS_CRASH_MODE", "tear", 1);
		}
		setenv("VMFS_IO_ENGINE", "crash", 1);
		ret = vmfs_open(rimg, &oo, &fs, err, sizeof(err));
		unsetenv("VMFS_IO_ENGINE");
		unsetenv("VMFS_CRASH_AFTER_WRITES");
		unsetenv("VMFS_CRASH_SEED");
		unsetenv("VMFS_CRASH_MODE");
		ck_assert_msg(ret == 0, "open: %s", err);
		ck_assert_int_eq(vmfs_mknod(fs, vmfs_root_ino(fs), "f", S_IFREG | 0644, 0, 0, &st), 0);
		ck_assert_int_eq(vmfs_pwrite(fs, st.ino, "data", 4, 0), 4);
		ret = vmfs_close(fs);
		ck_assert(dev_crash_last_closed(&cs));
		if (!seed) {   /* the uncut run: how many writes, the last being the journal superblock */
			ck_assert_int_eq(ret, 0);
			last = cs.writes;
			continue;
		}
		ck_assert(cs.crashed && cs.torn == 1 && ret < 0);
		torn++;
		fs = ropen(0);
		ck_assert_int_eq(vmfs_lookup(fs, vmfs_root_ino(fs), "f", &st), 0);
		ck_assert_uint_eq(st.size, 4);
		ck_assert_int_eq(vmfs_close(fs), 0);
	}
	ck_assert_uint_eq(torn, 12);
}
END_TEST

static uint64_t raw_rc_inited(void)
{
	struct vmfs_sb_disk sb;
	int fd = open(rimg, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, &sb, sizeof(sb), 0);

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)sizeof(sb) ? le64_to_cpu(sb.sb_rc_inited) : 0;
}

static void rc_init_body(uint64_t *v)
{
	struct vmfs *fs = child_open(0);
	uint64_t before = raw_rc_inited();
	struct vmfs_stat st;
	static uint8_t buf[1 << 20];

	memset(buf, 0x33, sizeof(buf));
	if (vmfs_mknod(fs, vmfs_root_ino(fs), "big", S_IFREG | 0644, 0, 0, &st))
		_exit(2);
	/* grow until a resource cluster is initialised: a transaction that changes unit 0 */
	for (uint64_t off = 0; raw_rc_inited() == before; off += sizeof(buf))
		if (off > 100 * MIB || vmfs_pwrite(fs, st.ino, buf, sizeof(buf), off) != sizeof(buf) ||
		    vmfs_fsync(fs, st.ino, false))
			_exit(2);
	v[0] = st.ino;
}

/* A power cut tearing the primary superblock's in-place write: open uses the backup, replay fixes unit 0. */
START_TEST(t_regress_torn_primary_superblock)
{
	struct vmfs_sb_disk sb;
	struct vmfs_stat st;
	uint64_t v[4];
	uint8_t byte = 0x5a, got[16];
	struct vmfs *fs;
	int fd;

	fs = ropen(0);   /* the first open allocates the journal; a clean close checkpoints it */
	ck_assert_int_eq(vmfs_close(fs), 0);
	cut_after(rc_init_body, v);
	fd = open(rimg, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &byte, 1, VMFS_UNIT - 512), 1);   /* the last sector did not land */
	close(fd);
	fs = ropen(0);
	ck_assert_int_eq(vmfs_getattr(fs, v[0], &st), 0);
	ck_assert_int_eq(vmfs_pread(fs, v[0], got, sizeof(got), st.size - sizeof(got)), (ssize_t)sizeof(got));
	ck_assert(got[0] == 0x33 && got[15] == 0x33);
	ck_assert_int_eq(vmfs_close(fs), 0);
	fd = open(rimg, O_RDONLY);
	ck_assert_int_eq(pread(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
	close(fd);
	ck_assert_uint_eq(base_crc32c(0, &sb, VMFS_CRC_OFF), le32_to_cpu(sb.sb_crc));   /* rewritten by replay */
}
END_TEST

/* The checks must catch damage: each kind of injected loss fails check_tree. */
START_TEST(t_checker_catches_damage)
{
	static const char *const kinds[] = { "flipped byte", "lost name", "lost size" };

	for (unsigned kind = 0; kind < 3; kind++) {
		struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
		char err[256] = "";
		struct run r;
		int victim = -1, d;

		run_init(&r, &configs[0]);
		ck_assert_int_eq(make_image(rimg, err, sizeof(err)), 0);
		ck_assert_int_eq(workload(&r, rimg, 0, 0), 0);   /* uncut: everything is durable */
		discard(&r);
		ck_assert_int_eq(vmfs_open(rimg, &oo, &r.fs, err, sizeof(err)), 0);
		for (int i = 2; i < r.m.nobj && victim < 0; i++)
			if (r.m.o[i].type == T_FILE && r.m.o[i].names && r.m.o[i].size > 100)
				victim = i;
		ck_assert_int_ge(victim, 0);
		if (kind == 0) {
			uint8_t b;

			ck_assert_int_eq(vmfs_pread(r.fs, r.m.o[victim].ino, &b, 1, 77), 1);
			b ^= 0x40;
			ck_assert_int_eq(vmfs_pwrite(r.fs, r.m.o[victim].ino, &b, 1, 77), 1);
		} else if (kind == 1) {
			for (d = 0; r.m.d[d].obj != victim; d++)
				;
			ck_assert_int_eq(vmfs_unlink(r.fs, ino_of(&r, r.m.d[d].dir), r.m.d[d].name), 0);
		} else {
			struct vmfs_stat in = { .size = r.m.o[victim].size - 1 };

			ck_assert_int_eq(vmfs_setattr(r.fs, r.m.o[victim].ino, &in, VMFS_SET_SIZE, NULL), 0);
		}
		ck_assert_msg(check_tree(&r) < 0, "a %s went unnoticed", kinds[kind]);
		ck_assert_msg(r.why[0], "no reason given for the %s", kinds[kind]);
		vmfs_close(r.fs);
		r.fs = NULL;
		run_release(&r);
	}
}
END_TEST

/* The "regressions" case: its fixture, timeout and tests, in this order. */
void crash_regress_tests(TCase *tc)
{
	tcase_add_checked_fixture(tc, regress_setup, regress_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_regress_replay_over_reused_unit);
	tcase_add_test(tc, t_regress_orphan_truncate);
	tcase_add_test(tc, t_regress_growth_after_cut);
	tcase_add_test(tc, t_regress_torn_journal_superblock);
	tcase_add_test(tc, t_regress_torn_primary_superblock);
	tcase_add_test(tc, t_checker_catches_damage);
}
