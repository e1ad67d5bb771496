/*
 * The power cuts (tests/unit/test_crash.c, case power_cuts): the workload
 * (workload.c) cut at many writes, each point checked (check.c).
 *
 * Every cut point runs in a child process of its own on a fresh datastore in
 * /dev/shm, up to one child per CPU. CRASH_POINTS=N changes how many points the
 * suite runs in all (make crash-long: further rounds use other workload seeds);
 * CRASH_ONLY=config[+round]:k runs one point and keeps its image; CRASH_VERBOSE=1
 * prints every point.
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

#define IMG_SIZE (128 * MIB)
#define DEFAULT_POINTS 540        /* cut points in all for make test (make crash-long: 20000) */

const struct config configs[] = {
	{ "c0-drop", 0, DEV_CRASH_DROP, 11, 30 },
	{ "c60k-drop", 60000, DEV_CRASH_DROP, 12, 30 },
	{ "c0-tear", 0, DEV_CRASH_TEAR, 13, 15 },
	{ "c60k-tear", 60000, DEV_CRASH_TEAR, 14, 15 },
	{ "c60k-prefix", 60000, DEV_CRASH_PREFIX, 15, 5 },
	{ "c0-reorder", 0, DEV_CRASH_REORDER, 16, 5 },
};

static const uint8_t test_uuid[16] = { 0xc4, 0xa5, 0x11, 0x0f, 0xf0, 0x0d, 0x42, 0x17,
				       0x9b, 0x3e, 0x55, 0x01, 0x7c, 0x66, 0x20, 0x26 };

static uint64_t baseline_free;        /* free units of a fresh datastore after its first open */
static struct space baseline_space;   /* and how it uses its space */

int make_image(const char *img, char *err, size_t errlen)
{
	struct vmfs_mkfs_opts o = { .size = IMG_SIZE, .force = true, .host_slots = 4, .uuid = test_uuid };

	unlink(img);
	return vmfs_mkfs(img, &o, err, errlen);
}

static uint64_t tear_seed(const struct config *cfg, uint64_t cut)
{
	return mix64(cfg->seed * 1000003ull + cut);
}

/*
 * After the cut: open (replay), check the tree against the model, grow every
 * file, close; fsck when asked; open again, remove everything and compare the
 * free space with a fresh datastore's; a read-only open then finds the journal
 * clean. Returns 0, or -1 with r->why filled.
 */
static int recover_and_check(struct run *r, const char *img, const char *log, bool fsck)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
	struct vmfs_statfs sf;
	struct vmfs_info info;
	struct space sp;
	char err[256] = "";
	int ret;

	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "open after the cut failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	if (check_tree(r) || check_growth(r)) {
		vmfs_close(r->fs);
		r->fs = NULL;
		return -1;
	}
	ret = vmfs_close(r->fs);
	r->fs = NULL;
	if (ret) {
		say(r, "close after the checks failed: %s", strerror(-ret));
		return -1;
	}
	if (fsck) {
		ret = run_fsck(img, log);
		if (ret != 0 && ret != -1) {
			say(r, "fsck.vmfs -n after the checks exited %d (its output is above)", ret);
			return -1;
		}
	}
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "second open failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	ret = remove_all(r->fs, vmfs_root_ino(r->fs), 0);
	if (!ret)
		ret = vmfs_statfs(r->fs, &sf);
	if (ret)
		say(r, "removing everything failed: %s", strerror(-ret));
	if (vmfs_close(r->fs) && !ret) {
		say(r, "second close failed");
		ret = -EIO;
	}
	r->fs = NULL;
	if (ret)
		return -1;
	/* nothing leaked: no file block, no sub-block beyond a fresh datastore's; pools may stay */
	if (scan_space(img, &sp, err, sizeof(err))) {
		say(r, "%s", err);
		return -1;
	}
	if (sp.data_blocks || sp.journal_blocks != baseline_space.journal_blocks ||
	    sp.pool_units_used != baseline_space.pool_units_used ||
	    sf.bfree + (sp.pools - baseline_space.pools) != baseline_free) {
		say(r, "space after removing every file: %llu data blocks, %llu journal blocks, %llu pools with "
		    "%llu sub-blocks used, %llu units free; a fresh datastore: 0, %llu, %llu, %llu, %llu",
		    (unsigned long long)sp.data_blocks, (unsigned long long)sp.journal_blocks,
		    (unsigned long long)sp.pools, (unsigned long long)sp.pool_units_used,
		    (unsigned long long)sf.bfree, (unsigned long long)baseline_space.journal_blocks,
		    (unsigned long long)baseline_space.pools, (unsigned long long)baseline_space.pool_units_used,
		    (unsigned long long)baseline_free);
		return -1;
	}
	oo.readonly = true;
	ret = vmfs_open(img, &oo, &r->fs, err, sizeof(err));
	if (ret) {
		say(r, "read-only open after the second close failed: %s (%s)", strerror(-ret), err);
		r->fs = NULL;
		return -1;
	}
	vmfs_get_info(r->fs, &info);
	if (strcmp(info.journal_state, "clean")) {
		say(r, "the journal is '%s' after a clean close", info.journal_state);
		ret = -1;
	}
	vmfs_close(r->fs);
	r->fs = NULL;
	return ret ? -1 : 0;
}

/*
 * One cut point, in a child: fresh datastore, the workload cut at write cut
 * (0: never), then the checks. Prints a report on stderr (the point's log);
 * returns 0 when everything held. *writes gets the device's write count.
 */
static int run_point(const struct config *cfg, uint64_t cut, const char *img, const char *log, bool fsck,
		     uint64_t *writes)
{
	struct dev_crash_stats st = { 0 };
	struct run r;
	char err[256] = "";
	int ret, bad = 0;
	bool crashed;

	run_init(&r, cfg);
	ret = make_image(img, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "FAIL %s:%llu: mkfs: %s\n", cfg->name, (unsigned long long)cut, err);
		run_release(&r);
		return -1;
	}
	ret = workload(&r, img, cut, tear_seed(cfg, cut));
	discard(&r);
	crashed = dev_crash_last_closed(&st) && st.crashed;
	*writes = st.writes;
	if (ret < 0 && !crashed) {
		say(&r, "%s failed (%s) without a power cut", r.op, strerror(-ret));
		bad = 1;
	} else if (ret >= 0 && crashed) {
		say(&r, "the cut at write %llu went unreported: every operation succeeded",
		    (unsigned long long)cut);
		bad = 1;
	}
	if (!bad && fsck) {
		int code = run_fsck(img, log);

		if (code != 0 && code != -1) {
			say(&r, "fsck.vmfs -n on the image as the cut left it exited %d (its output is above)", code);
			bad = 1;
		}
	}
	if (!bad)
		bad = recover_and_check(&r, img, log, fsck) < 0;
	if (bad || getenv("CRASH_VERBOSE"))
		fprintf(stderr, "%s %s:%llu (mode %d, tear seed %llu): %s; %u ops, durable through op %u; "
			"%llu writes, %llu flushes, at the cut %llu pending, %llu landed, %llu torn\n%s%s"
			"reproduce: CRASH_ONLY=%s:%llu %s\n",
			bad ? "FAIL" : "ok", cfg->name, (unsigned long long)cut, cfg->mode,
			(unsigned long long)tear_seed(cfg, cut), crashed ? r.op : "no cut", r.m.ops,
			r.m.durable_ops, (unsigned long long)st.writes, (unsigned long long)st.flushes,
			(unsigned long long)st.pending, (unsigned long long)st.landed,
			(unsigned long long)st.torn, r.why, r.why[0] ? "\n" : "", cfg->name,
			(unsigned long long)cut, "build/tests/test_crash");
	if (!cut && getenv("CRASH_VERBOSE")) {
		fprintf(stderr, "operations of the workload:");
		for (size_t i = 0; i < sizeof(r.hist) / sizeof(r.hist[0]) && r.hist[i].name[0]; i++)
			fprintf(stderr, " %s %u", r.hist[i].name, r.hist[i].n);
		fprintf(stderr, "\n");
	}
	run_release(&r);
	return bad ? -1 : 0;
}

struct job {
	pid_t pid;
	uint64_t cut;
	char img[PATH_MAX + 64], log[PATH_MAX + 64];
};

/* Starts one cut point in a child whose stderr is its log; the child sends its write count on fd. */
static pid_t spawn_point(const struct config *cfg, struct job *j, bool fsck, int fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	{
		uint64_t writes = 0;
		int lfd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644), ret;

		if (lfd >= 0) {
			dup2(lfd, 2);
			close(lfd);
		}
		ret = run_point(cfg, j->cut, j->img, j->log, fsck, &writes);
		if (fd >= 0 && write(fd, &writes, sizeof(writes)) != sizeof(writes))
			ret = -1;
		exit(ret ? 1 : 0);
	}
}

static void print_log(const char *log, int max_lines)
{
	FILE *f = fopen(log, "r");
	char line[1024];

	while (f && max_lines-- > 0 && fgets(line, sizeof(line), f))
		fputs(line, stdout);
	if (f)
		fclose(f);
	fflush(stdout);
}

static unsigned env_uint(const char *name, unsigned def)
{
	const char *s = getenv(name);

	return s && *s ? (unsigned)strtoul(s, NULL, 0) : def;
}

static unsigned jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return env_uint("CRASH_JOBS", n < 1 ? 1 : n > 8 ? 8 : (unsigned)n);
}

static void compute_baseline(void)
{
	struct vmfs_open_opts oo = { .standalone = true, .commit_ms = 0 };
	struct vmfs_statfs sf;
	char img[PATH_MAX + 32], err[256] = "";
	struct vmfs *fs;

	make_tmpdir();
	snprintf(img, sizeof(img), "%s/baseline.img", tmpdir);
	ck_assert_msg(make_image(img, err, sizeof(err)) == 0, "mkfs: %s", err);
	ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "open: %s", err);
	ck_assert_int_eq(vmfs_statfs(fs, &sf), 0);
	ck_assert_int_eq(vmfs_close(fs), 0);
	baseline_free = sf.bfree;
	ck_assert_msg(scan_space(img, &baseline_space, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(baseline_space.data_blocks, 0);
	unlink(img);
}

/* Runs cuts[0..n) of cfg, njobs at a time; returns how many failed. */
static unsigned run_points(const struct config *cfg, const uint64_t *cuts, unsigned n, unsigned fsck_every)
{
	unsigned njobs = jobs(), next = 0, running = 0, failed = 0;
	struct job *js = calloc(njobs, sizeof(*js));

	ck_assert_ptr_nonnull(js);
	while (next < n || running) {
		int status;
		pid_t pid;

		while (next < n && running < njobs) {
			struct job *j = NULL;

			for (unsigned i = 0; i < njobs && !j; i++)
				if (!js[i].pid)
					j = &js[i];
			j->cut = cuts[next];
			snprintf(j->img, sizeof(j->img), "%s/%s.%llu.img", tmpdir, cfg->name, (unsigned long long)j->cut);
			snprintf(j->log, sizeof(j->log), "%s/%s.%llu.log", tmpdir, cfg->name, (unsigned long long)j->cut);
			j->pid = spawn_point(cfg, j, fsck_every && next % fsck_every == 0, -1);
			ck_assert_int_gt(j->pid, 0);
			next++;
			running++;
		}
		pid = waitpid(-1, &status, 0);
		ck_assert_int_gt(pid, 0);
		for (unsigned i = 0; i < njobs; i++) {
			struct job *j = &js[i];

			if (j->pid != pid)
				continue;
			j->pid = 0;
			running--;
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				if (++failed <= 6) {
					printf("--- %s cut %llu: %s %d\n", cfg->name, (unsigned long long)j->cut,
					       WIFEXITED(status) ? "exit" : "signal",
					       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
					print_log(j->log, 40);
				}
			} else if (getenv("CRASH_VERBOSE")) {
				print_log(j->log, 5);
			}
			if (!getenv("CRASH_KEEP") || !WIFEXITED(status) || !WEXITSTATUS(status))
				unlink(j->img);
			unlink(j->log);
		}
	}
	free(js);
	return failed;
}

/* The uncut workload in a child: it must pass the checks, and tells how many writes it makes. */
static uint64_t count_writes(const struct config *cfg)
{
	struct job j = { .cut = 0 };
	uint64_t writes = 0;
	int pfd[2], status;

	snprintf(j.img, sizeof(j.img), "%s/%s.uncut.img", tmpdir, cfg->name);
	snprintf(j.log, sizeof(j.log), "%s/%s.uncut.log", tmpdir, cfg->name);
	ck_assert_int_eq(pipe(pfd), 0);
	j.pid = spawn_point(cfg, &j, true, pfd[1]);
	ck_assert_int_gt(j.pid, 0);
	close(pfd[1]);
	if (read(pfd[0], &writes, sizeof(writes)) != sizeof(writes))
		writes = 0;
	close(pfd[0]);
	ck_assert_int_eq(waitpid(j.pid, &status, 0), j.pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || getenv("CRASH_VERBOSE"))
		print_log(j.log, 60);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the uncut workload failed its checks",
		      cfg->name);
	unlink(j.img);
	unlink(j.log);
	return writes;
}

static unsigned total_weight(void)
{
	unsigned w = 0;

	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
		w += configs[i].weight;
	return w;
}

/* Config cfg with its workload seed moved for round (0: as listed), named "name+round". */
static void config_round(const struct config *cfg, unsigned round, struct config *out, char *name, size_t len)
{
	*out = *cfg;
	out->seed = cfg->seed + round * 7919ull;
	if (round) {
		snprintf(name, len, "%s+%u", cfg->name, round);
		out->name = name;
	}
}

/*
 * The cut points of one config: spread evenly over the writes of the uncut
 * workload, the last included. When asked for more points than it has writes,
 * further rounds run the workload with other seeds.
 */
START_TEST(t_power_cuts)
{
	const struct config *cfg = &configs[_i];
	const char *only = getenv("CRASH_ONLY");
	unsigned total = env_uint("CRASH_POINTS", DEFAULT_POINTS), want, done = 0, failed = 0, rounds = 0;
	unsigned fsck_every = env_uint("CRASH_FSCK_EVERY", 1);
	uint64_t writes_all = 0;
	double t0 = now_s();
	char name[64];
	struct config c;

	make_tmpdir();
	compute_baseline();
	if (only) {   /* CRASH_ONLY=name[+round]:cut */
		const char *colon = strchr(only, ':'), *slash = strchr(only, '+');
		size_t nlen = (size_t)((slash && slash < colon ? slash : colon) - only);
		uint64_t cut;

		if (!colon || nlen != strlen(cfg->name) || strncmp(only, cfg->name, nlen))
			return;
		config_round(cfg, slash && slash < colon ? (unsigned)atoi(slash + 1) : 0, &c, name, sizeof(name));
		cut = strtoull(colon + 1, NULL, 0);
		setenv("CRASH_VERBOSE", "1", 1);
		setenv("CRASH_KEEP", "1", 1);
		failed = run_points(&c, &cut, 1, 1);
		printf("%s cut %llu: %s; image %s/%s.%llu.img\n", c.name, (unsigned long long)cut,
		       failed ? "FAILED" : "ok", tmpdir, c.name, (unsigned long long)cut);
		tmpdir[0] = 0;   /* keep it */
		ck_assert_uint_eq(failed, 0);
		return;
	}
	want = (unsigned)((uint64_t)total * cfg->weight / total_weight());
	if (want < 1)
		want = 1;
	while (done < want) {
		uint64_t writes, *cuts;
		unsigned n;

		config_round(cfg, rounds++, &c, name, sizeof(name));
		writes = count_writes(&c);
		ck_assert_uint_gt(writes, 100);
		writes_all += writes;
		n = (unsigned)min_u64(want - done, writes);
		cuts = calloc(n, sizeof(*cuts));
		ck_assert_ptr_nonnull(cuts);
		for (unsigned i = 0; i < n; i++)
			cuts[i] = 1 + (uint64_t)i * (writes - 1) / (n > 1 ? n - 1 : 1);
		failed += run_points(&c, cuts, n, fsck_available() ? fsck_every : 0);
		done += n;
		free(cuts);
	}
	printf("power cuts %s: %u workload seed(s), %llu writes uncut, %u cut points, %u failed, "
	       "fsck.vmfs %s%u, %.1f s\n", cfg->name, rounds, (unsigned long long)writes_all, done, failed,
	       fsck_available() ? "on 1 point in " : "not built (hook idle) ", fsck_available() ? fsck_every : 0,
	       now_s() - t0);
	fflush(stdout);
	remove_tmpdir();
	ck_assert_msg(failed == 0, "%s: %u of %u cut points failed (reports above)", cfg->name, failed, done);
}
END_TEST

/* The "power_cuts" case (CK_RUN_CASE=power_cuts, make crash-long): one loop test per configuration. */
void crash_power_tests(TCase *tc)
{
	unsigned points = env_uint("CRASH_POINTS", DEFAULT_POINTS);

	tcase_set_timeout(tc, 600 + points);
	tcase_add_loop_test(tc, t_power_cuts, 0, (int)(sizeof(configs) / sizeof(configs[0])));
}
