/*
 * vmm agent DEVICE: HA restart from the disk alone (vmm/ha.h). One agent runs
 * on every host; it joins the datastore's cluster as a host of its own.
 * Every WALK_S it walks the VM folders for those whose vm.conf says
 * ha=restart (a walk reads metadata, under the cluster's metadata lock);
 * every interval it reads only the lock table (lockmgr's region: no
 * metadata lock, so running VMs' writes never wait for an agent), and it
 * reads a VM's ha.state only when a lock on one of its disks went away,
 * when it should run and does not, or at a walk. Then for each such VM:
 *   - ha.state says it should run, no host holds a lock on any of its disks
 *     (its host died and the cluster recovered it: every joined host sweeps
 *     for dead ones, this agent included), this host has the memory, and it
 *     did not just fail to start here: the agent takes the lock on the VM's
 *     ha.state, and the one agent that wins starts `vmm run DEVICE PATH` as
 *     a child, holding that lock while the child runs;
 *   - an agent that loses says who won; one without the memory says so and
 *     leaves the VM to another host; a child that fails (a missing kernel,
 *     a bad vm.conf) is logged with vmm's reason and the VM left to the
 *     others for BACKOFF_S before this host tries again.
 * No network, no coordinator: the locks decide. Each decision is logged to
 * syslog and to stderr, or as JSON lines on stdout with --json. The
 * children's console and errors go to the agent's stderr, each line prefixed
 * with the VM's path. A fenced agent (its host lost its lease) says so, stops
 * its children (fenced as well, they can no longer write) and exits 1.
 * SIGTERM or SIGINT stops the children (each VM ends as asked: ha.state
 * "stopped") and ends the agent with exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "encrypt/encrypt.h"
#include "vmfs/vmfs.h"
#include "vmm/cmd.h"
#include "vmm/config.h"
#include "vmm/ha.h"
#include "vmm/store.h"

#define MAX_VMS 64
#define BACKOFF_S 30
#define WALK_S 30
#define STOP_WAIT_S 20

/* One of a child's output pipes, forwarded line by line: kept apart so console and messages never share a line. */
struct child_out {
	int fd;                   /* -1: closed */
	bool eof;                 /* at its end: the child exited, not yet reaped */
	char line[512];           /* a partial line */
	size_t len;
};

struct vm_slot {
	char path[4096];
	uint64_t dir, ha_ino, mem_mib;
	uint64_t disk[VMM_MAX_DISKS];  /* its disks' inodes, 0: not found */
	unsigned ndisks;
	bool ha;                  /* vm.conf says ha=restart */
	bool was_held;            /* a lock on one of its disks at the last look */
	bool pending;             /* it should run, and ran nowhere at the last look: look each interval */
	pid_t pid;                /* the vmm run child, 0: none */
	bool locked;              /* this agent holds ha.state's lock */
	struct child_out out[2];  /* the child's stdout (the guest console) and stderr (vmm's messages) */
	char why[512];            /* its last "vmm: " line */
	uint64_t backoff_until;   /* base_mono_ns() */
	char said[64];            /* the last decision logged for it, so each is said once */
	bool seen;                /* found by this scan */
};

struct agent {
	struct vmfs *fs;
	const char *dev;
	bool json;
	uint64_t mem_limit_mib;   /* 0: none but the host's own */
	struct vm_slot vm[MAX_VMS];
	unsigned nvm;
	uint64_t *held;           /* inodes a host holds a lock on, this scan */
	size_t nheld, capheld;
	bool said_full;           /* "more than MAX_VMS" was said */
};

/* One decision or happening: syslog, and a JSON line on stdout or a line on stderr. */
static void __attribute__((format(printf, 4, 5)))
event(struct agent *a, const char *kind, const char *vm, const char *fmt, ...)
{
	char msg[1024];
	struct timespec ts;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	syslog(LOG_NOTICE, "%s%s%s", vm ? vm : "", vm ? ": " : "", msg);
	if (!a->json) {
		fprintf(stderr, "vmm agent: %s%s%s\n", vm ? vm : "", vm ? ": " : "", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("{\"time\":%lld.%03ld,\"event\":\"%s\"", (long long)ts.tv_sec, ts.tv_nsec / 1000000, kind);
	if (vm) {
		printf(",\"vm\":");
		tool_json_str(vm);
	}
	printf(",\"message\":");
	tool_json_str(msg);
	printf("}\n");
	fflush(stdout);
}

/* Logs a decision about vm once, until it changes. */
static void decided(struct agent *a, struct vm_slot *v, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void decided(struct agent *a, struct vm_slot *v, const char *kind, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!strcmp(v->said, kind))
		return;
	snprintf(v->said, sizeof(v->said), "%s", kind);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	event(a, kind, v->path, "%s", msg);
}

static int note_lock(void *arg, const struct vmfs_lock *l)
{
	struct agent *a = arg;

	if (l->kind != VMFS_LOCK_INODE)
		return 0;
	if (a->nheld == a->capheld) {
		size_t cap = a->capheld ? 2 * a->capheld : 64;
		uint64_t *h = realloc(a->held, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		a->held = h;
		a->capheld = cap;
	}
	a->held[a->nheld++] = l->id;
	return 0;
}

static bool held(const struct agent *a, uint64_t ino)
{
	for (size_t i = 0; i < a->nheld; i++)
		if (a->held[i] == ino)
			return true;
	return false;
}

/* Reads the lock table: which inodes some host holds. */
static int scan_locks(struct agent *a)
{
	a->nheld = 0;
	return vmfs_locks(a->fs, note_lock, a) < 0 ? -EIO : 0;
}

/* MemAvailable in MiB, less what this agent's children use, within --mem-limit. */
static uint64_t free_mib(const struct agent *a)
{
	uint64_t avail = UINT64_MAX, used = 0, kb;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "MemAvailable: %llu kB", (unsigned long long *)&kb) == 1)
				avail = kb >> 10;
		fclose(f);
	}
	for (unsigned i = 0; i < a->nvm; i++)
		if (a->vm[i].pid)
			used += a->vm[i].mem_mib;
	if (a->mem_limit_mib)
		avail = base_min(avail, a->mem_limit_mib > used ? a->mem_limit_mib - used : 0);
	return avail;
}

static struct vm_slot *slot_of(struct agent *a, const char *path)
{
	for (unsigned i = 0; i < a->nvm; i++)
		if (!strcmp(a->vm[i].path, path))
			return &a->vm[i];
	if (a->nvm == MAX_VMS)
		return NULL;
	memset(&a->vm[a->nvm], 0, sizeof(a->vm[0]));
	snprintf(a->vm[a->nvm].path, sizeof(a->vm[0].path), "%s", path);
	a->vm[a->nvm].out[0].fd = a->vm[a->nvm].out[1].fd = -1;
	return &a->vm[a->nvm++];
}

/* Starts `vmm run DEVICE PATH` (with this agent's key options) as a child. */
static int spawn(struct agent *a, struct vm_slot *v)
{
	char *argv[12];
	int n = 0, fds[2][2], devnull;
	pid_t pid;

	argv[n++] = "vmm";
	argv[n++] = "run";
	argv[n++] = (char *)a->dev;
	argv[n++] = v->path;
	if (vmm_key_src.key_file)
		argv[n++] = "--key-file", argv[n++] = (char *)vmm_key_src.key_file;
	if (vmm_key_src.passphrase_file)
		argv[n++] = "--passphrase-file", argv[n++] = (char *)vmm_key_src.passphrase_file;
	if (vmm_key_src.keycmd)
		argv[n++] = "--keycmd", argv[n++] = (char *)vmm_key_src.keycmd;
	argv[n] = NULL;
	if (pipe2(fds[0], O_CLOEXEC))
		return -errno;
	if (pipe2(fds[1], O_CLOEXEC)) {
		n = -errno;
		close(fds[0][0]);
		close(fds[0][1]);
		return n;
	}
	pid = fork();
	if (pid < 0) {
		n = -errno;
		for (int k = 0; k < 4; k++)
			close(fds[k / 2][k % 2]);
		return n;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(fds[0][1], STDOUT_FILENO);
		dup2(fds[1][1], STDERR_FILENO);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	v->pid = pid;
	for (int k = 0; k < 2; k++) {
		close(fds[k][1]);
		fcntl(fds[k][0], F_SETFL, O_NONBLOCK);
		v->out[k] = (struct child_out){ .fd = fds[k][0] };
	}
	v->why[0] = 0;
	return 0;
}

/* One VM of the walk: its folder, memory and disks; the decisions come after the lock table is read. */
static int gather(void *arg, const char *path, uint64_t dir, const struct vmm_conf *c, const char *bad)
{
	struct agent *a = arg;
	struct vm_slot *v;
	unsigned i;

	if (bad || !c->ha_restart)
		return 0;
	v = slot_of(a, path);
	if (!v) {
		if (!a->said_full)
			event(a, "too_many", path, "more than %d ha=restart VMs: this one and any after it are not "
			      "watched by this agent", MAX_VMS);
		a->said_full = true;
		return 0;
	}
	v->seen = v->ha = true;
	v->dir = dir;
	v->mem_mib = c->mem_mib;
	v->ndisks = c->ndisks;
	for (i = 0; i < c->ndisks; i++) {
		char p[4200];

		snprintf(p, sizeof(p), "%s/%s", path, c->disks[i].file);
		if (vmfs_resolve(a->fs, p, &v->disk[i]))
			v->disk[i] = 0;
	}
	return 0;
}

static bool disks_held(const struct agent *a, const struct vm_slot *v)
{
	for (unsigned i = 0; i < v->ndisks; i++)
		if (v->disk[i] && held(a, v->disk[i]))
			return true;
	return false;
}

/* What to do about one VM, the lock table just read: walked is set right after a walk. */
static void decide_vm(struct agent *a, struct vm_slot *v, bool walked)
{
	struct vmm_ha_view view = { .mine = v->pid != 0 };
	struct vmfs_stat st;
	char who[200] = "";
	bool gone;
	int ret;

	view.disks_held = disks_held(a, v);
	gone = v->was_held && !view.disks_held;
	v->was_held = view.disks_held;
	if (view.mine || view.disks_held) {
		v->pending = false;
		if (!view.mine && strcmp(v->said, "running") && strcmp(v->said, "restart"))
			decided(a, v, "running", "runs on another host");
		return;
	}
	view.backing_off = base_mono_ns() < v->backoff_until;
	/* ha.state costs a metadata read: only when something changed, or it should run and does not */
	if (!walked && !gone && !v->pending)
		return;
	if (vmm_ha_read(a->fs, v->dir, &view.state))
		return;
	view.need_mib = v->mem_mib;
	view.free_mib = free_mib(a);
	/* should run and runs nowhere: look each interval (a backoff's end looks again by itself) */
	v->pending = view.state == VMM_HA_RUNNING && !view.backing_off;
	switch (vmm_ha_decide(&view)) {
	case VMM_HA_LEAVE:
		if (view.state == VMM_HA_STOPPED)
			decided(a, v, "stopped", "stopped (ha.state)");
		return;
	case VMM_HA_NO_MEMORY:
		/* looked at again at the next walk, not each interval */
		v->pending = false;
		decided(a, v, "no_memory", "should run but cannot here: it needs %llu MiB, this host has %llu MiB free; "
			"left to another host", (unsigned long long)view.need_mib, (unsigned long long)view.free_mib);
		return;
	case VMM_HA_TRY:
		break;
	}
	ret = vmfs_lookup(a->fs, v->dir, VMM_HA_FILE, &st);
	if (ret)
		return;
	vmfs_forget(a->fs, st.ino, 1);
	ret = vmfs_file_lock(a->fs, st.ino, VMFS_LOCK_EX, who, sizeof(who));
	if (ret == -EBUSY) {
		decided(a, v, "busy", "another agent restarts it: %s", who[0] ? who : "another host");
		return;
	}
	if (ret) {
		decided(a, v, "lock_failed", "cannot take the lock on %s: %s", VMM_HA_FILE, strerror(-ret));
		return;
	}
	/* Won: look again under the lock, the state and the disks may have moved meanwhile. */
	v->ha_ino = st.ino;
	v->locked = true;
	if (scan_locks(a) || disks_held(a, v) || vmm_ha_read(a->fs, v->dir, &view.state) ||
	    view.state != VMM_HA_RUNNING) {
		vmfs_file_unlock(a->fs, st.ino);
		v->locked = false;
		return;
	}
	ret = spawn(a, v);
	if (ret) {
		event(a, "failed", v->path, "cannot start vmm run: %s", strerror(-ret));
		vmfs_file_unlock(a->fs, st.ino);
		v->locked = false;
		v->backoff_until = base_mono_ns() + BACKOFF_S * 1000000000ull;
		return;
	}
	v->pending = false;
	snprintf(v->said, sizeof(v->said), "restart");
	event(a, "restart", v->path, "restarting it here (vmm run pid %d): ha.state says running and no host holds "
	      "its disks", (int)v->pid);
}

/* One look: the VM folders when a walk is due, then the lock table, then each VM. */
static void look(struct agent *a, uint64_t *next_walk)
{
	bool walked = base_mono_ns() >= *next_walk;
	unsigned i;

	if (walked) {
		for (i = 0; i < a->nvm; i++)
			a->vm[i].seen = false;
		if (vmm_store_walk(a->fs, gather, a))
			return;
		for (i = 0; i < a->nvm; i++)
			a->vm[i].ha = a->vm[i].seen || a->vm[i].pid;	/* gone from the datastore (or no longer ha=restart) */
		*next_walk = base_mono_ns() + WALK_S * 1000000000ull;
	}
	if (scan_locks(a))
		return;
	for (i = 0; i < a->nvm; i++) {
		struct vm_slot *v = &a->vm[i];

		/* a backoff that just ended is a reason to look again */
		if (v->backoff_until && base_mono_ns() >= v->backoff_until) {
			v->backoff_until = 0;
			v->pending = true;
		}
		if (v->ha)
			decide_vm(a, v, walked);
	}
}

/* Forwards one of a child's pipes, line by line; from stderr it keeps the last "vmm: " line (why it failed). */
static void drain_pipe(struct vm_slot *v, struct child_out *o, bool all)
{
	char buf[4096];
	ssize_t n = -1;

	while (o->fd >= 0 && (n = read(o->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n' && o->len + 1 < sizeof(o->line)) {
				o->line[o->len++] = buf[i];
				continue;
			}
			o->line[o->len] = 0;
			fprintf(stderr, "%s: %s\n", v->path, o->line);
			if (o == &v->out[1] && !strncmp(o->line, "vmm: ", 5))
				snprintf(v->why, sizeof(v->why), "%s", o->line + 5);
			o->len = 0;
		}
	}
	if (n == 0)
		o->eof = true;
	if (all && o->fd >= 0) {
		if (o->len) {
			o->line[o->len] = 0;
			fprintf(stderr, "%s: %s\n", v->path, o->line);
			o->len = 0;
		}
		close(o->fd);
		o->fd = -1;
	}
}

static void drain_output(struct vm_slot *v, bool all)
{
	drain_pipe(v, &v->out[0], all);
	drain_pipe(v, &v->out[1], all);
}

/* A child ended: log how, let the lock go; a failure leaves the VM to the other hosts for a while. */
static void ended(struct agent *a, struct vm_slot *v, int status)
{
	drain_output(v, true);
	/* 0: the guest powered off or was stopped; 128 + SIGTERM, SIGINT, SIGHUP: vmm run was asked to stop it */
	if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 128 + SIGTERM ||
				  WEXITSTATUS(status) == 128 + SIGINT || WEXITSTATUS(status) == 128 + SIGHUP)) {
		event(a, "stopped", v->path, "vmm run ended (exit %d): the VM stopped as asked", WEXITSTATUS(status));
		snprintf(v->said, sizeof(v->said), "stopped");
	} else {
		char how[64];

		if (WIFEXITED(status))
			snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(status));
		else
			snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
		event(a, "failed", v->path, "vmm run failed (%s): %s; left to the other hosts for %d s", how,
		      v->why[0] ? v->why : "no reason given", BACKOFF_S);
		snprintf(v->said, sizeof(v->said), "failed");
		v->backoff_until = base_mono_ns() + BACKOFF_S * 1000000000ull;
	}
	v->pid = 0;
	if (v->locked)
		vmfs_file_unlock(a->fs, v->ha_ino);
	v->locked = false;
}

static void reap(struct agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < a->nvm; i++)
			if (a->vm[i].pid == pid)
				ended(a, &a->vm[i], status);
}

/*
 * Waits for every child on sfd's SIGCHLD, at most STOP_WAIT_S, then SIGKILL.
 * With term it first sends each SIGTERM (a stop as asked); a fenced agent
 * does not: its children are fenced too and stop their VMs themselves,
 * saying so, which a stop as asked would hide.
 */
static void stop_children(struct agent *a, int sfd, bool term)
{
	uint64_t end = base_mono_ns() + STOP_WAIT_S * 1000000000ull;
	bool any;

	for (unsigned i = 0; i < a->nvm && term; i++)
		if (a->vm[i].pid)
			kill(a->vm[i].pid, SIGTERM);
	do {
		struct pollfd pf = { .fd = sfd, .events = POLLIN };
		struct signalfd_siginfo si;

		reap(a);
		for (unsigned i = 0; i < a->nvm; i++)
			drain_output(&a->vm[i], false);
		any = false;
		for (unsigned i = 0; i < a->nvm; i++)
			any |= a->vm[i].pid != 0;
		if (any && base_mono_ns() > end)
			for (unsigned i = 0; i < a->nvm; i++)
				if (a->vm[i].pid)
					kill(a->vm[i].pid, SIGKILL);
		if (any && poll(&pf, 1, 1000) > 0)
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
	} while (any);
}

int vmm_cmd_agent(int argc, char **argv)
{
	static const struct option lo[] = { { "json", no_argument, NULL, 'j' },
					    { "mem-limit", required_argument, NULL, 'm' },
					    { "interval", required_argument, NULL, 'i' },
					    { NULL, 0, NULL, 0 } };
	struct agent a = { 0 };
	uint64_t interval_ms = 1000, next_walk = 0;
	sigset_t sigs;
	int opt, sfd, rc = 0;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 'j') {
			a.json = true;
		} else if (opt == 'm') {
			if (!tool_parse_u64(optarg, &a.mem_limit_mib) || !a.mem_limit_mib) {
				tool_err("--mem-limit '%s': want MiB, at least 1", optarg);
				return 2;
			}
		} else if (opt == 'i') {
			if (!tool_parse_u64(optarg, &interval_ms) || interval_ms < 100 || interval_ms > 60000) {
				tool_err("--interval '%s': want ms, 100..60000", optarg);
				return 2;
			}
		} else {
			vmm_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		vmm_usage(stderr);
		return 2;
	}
	a.dev = argv[optind];
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		tool_err("signalfd: %s", strerror(errno));
		return 1;
	}
	openlog("vmm-agent", LOG_PID, LOG_DAEMON);
	if (vmm_cmd_open_store(a.dev, false, &a.fs)) {
		close(sfd);
		return 1;
	}
	event(&a, "start", NULL, "watching %s for ha=restart VMs: the lock table every %llu ms, the folders every %d s",
	      a.dev, (unsigned long long)interval_ms, WALK_S);
	for (;;) {
		struct pollfd pf[1 + 2 * MAX_VMS];
		struct signalfd_siginfo si;
		uint64_t end, now;
		unsigned n, i;
		bool stop = false;

		if (vmfs_fenced(a.fs)) {
			event(&a, "fenced", NULL, "this host lost its lease on %s: its VMs are stopped, the agent ends", a.dev);
			stop_children(&a, sfd, false);
			rc = 1;
			break;
		}
		look(&a, &next_walk);
		/* The interval is the scan's pace: the loop sleeps in poll, woken by a signal or a child's output. */
		end = base_mono_ns() + interval_ms * 1000000ull;
		while ((now = base_mono_ns()) < end && !stop) {
			/* built afresh each time: a reaped child's pipe is closed, its number may be reused */
			n = 1;
			pf[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
			for (i = 0; i < a.nvm; i++)
				for (int k = 0; k < 2; k++)
					if (a.vm[i].out[k].fd >= 0 && !a.vm[i].out[k].eof)
						pf[n++] = (struct pollfd){ .fd = a.vm[i].out[k].fd, .events = POLLIN };
			if (poll(pf, n, (int)((end - now) / 1000000ull) + 1) < 0 && errno != EINTR)
				break;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					stop = true;
			for (i = 0; i < a.nvm; i++)
				drain_output(&a.vm[i], false);
			reap(&a);
		}
		if (stop) {
			event(&a, "exit", NULL, "stopping: its VMs are stopped as asked");
			stop_children(&a, sfd, true);
			break;
		}
	}
	for (unsigned i = 0; i < a.nvm; i++)
		if (a.vm[i].locked)
			vmfs_file_unlock(a.fs, a.vm[i].ha_ino);
	free(a.held);
	if (vmfs_close(a.fs) && !rc) {
		tool_err("%s: close failed", a.dev);
		rc = 1;
	}
	close(sfd);
	closelog();
	return rc;
}
