/*
 * fsck.vmfs: checks a vmfs datastore and repairs it.
 * Exit codes as fsck(8): 0 no errors, 1 errors corrected, 4 errors left
 * uncorrected, 8 operational error, 16 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "vmfs/vmfs.h"

static struct tool_progress bar;
static const char *bar_pass;

static void on_progress(void *ctx, const char *pass, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (pass != bar_pass) {
		if (bar_pass)
			tool_progress_done(&bar);
		bar_pass = pass;
		tool_progress_init(&bar, pass, total);
	}
	tool_progress_update(&bar, done);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fsck.vmfs [-n|-p|-y] [-f] [-v] [--ignore-live-hosts] DEVICE\n"
		   "  -n  check only: open read-only and change nothing\n"
		   "  -p  repair what is safe without asking (preen; -a is the same)\n"
		   "  -y  repair everything\n"
		   "  -f  with -p: check even when the datastore is marked clean (-n and -y always check)\n"
		   "  -v  name each pass\n"
		   "  --ignore-live-hosts  repair even while another host's heartbeat advances (dangerous)\n"
		   "  -h, --help  print this help and exit\n"
		   "  --version   print the version and exit\n"
		   "exit: 0 clean, 1 errors corrected, 4 errors left, 8 operational error, 16 usage\n");
}

int main(int argc, char **argv)
{
	struct vmfs_fsck_opts o = { .mode = VMFS_FSCK_CHECK, .out = stdout };
	struct vmfs_fsck_result res;
	char err[512] = "";
	int c, modes = 0, ret;

	tool_name = "fsck.vmfs";
	static const struct option longopts[] = {
		{ "ignore-live-hosts", no_argument, NULL, 'I' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },           { NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "npyfvah", longopts, NULL)) != -1) {
		switch (c) {
		case 'I': o.ignore_live_hosts = true; break;
		case 'n': o.mode = VMFS_FSCK_CHECK; modes++; break;
		case 'p': case 'a': o.mode = VMFS_FSCK_PREEN; modes++; break;
		case 'y': o.mode = VMFS_FSCK_YES; modes++; break;
		case 'f': o.force = true; break;
		case 'v': o.verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': tool_version(); return 0;
		default: usage(stderr); return 16;
		}
	}
	if (optind != argc - 1 || modes > 1) {
		if (modes > 1)
			tool_err("only one of -n, -p and -y");
		usage(stderr);
		return 16;
	}
	/*
	 * Nothing marks a datastore whose blocks rot while it is closed: its
	 * journals stay clean. Only preen (the boot-time pass) trusts that mark;
	 * a check or a full repair reads everything.
	 */
	if (o.mode != VMFS_FSCK_PREEN)
		o.force = true;
	if (isatty(STDERR_FILENO))
		o.progress = on_progress;
	ret = vmfs_fsck(argv[optind], &o, &res, err, sizeof(err));
	if (bar_pass)
		tool_progress_done(&bar);
	if (ret) {
		tool_err("%s", err[0] ? err : strerror(-ret));
		return 8;
	}
	if (res.live_hosts)
		tool_err("warning: %u host%s alive: what %s meanwhile may show as errors", res.live_hosts,
			 res.live_hosts > 1 ? "s are" : " is", res.live_hosts > 1 ? "they change" : "it changes");
	if (res.skipped_clean) {
		printf("%s: clean\n", argv[optind]);
		return 0;
	}
	printf("%s: %llu files, %llu directories, %llu blocks in use; %u problems, %u fixed, %u left\n", argv[optind],
	       (unsigned long long)res.files, (unsigned long long)res.dirs, (unsigned long long)res.blocks_used,
	       res.found, res.fixed, res.left);
	if (res.left)
		return 4;
	return res.fixed ? 1 : 0;
}
