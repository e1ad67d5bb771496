/*
 * The control socket of `vmm run --ctl SOCKET`, and `vmm ctl`, its client.
 * A Unix stream socket speaking JSON lines: each request is one flat object
 * on one line, {"cmd":"NAME", ...} with string or unsigned integer values,
 * and each gets one object back, {"ok":true, ...} or {"ok":false,"error":
 * "..."}. Commands: status, pause, resume, stop, suspend (vm.state, then the
 * VM ends: vmm/suspend.h), balloon (pages), rate (disk,
 * bytes_per_s, ops_per_s), snapshot (name: the VM's folder, its disks and
 * vm.conf, in one transaction) and revert (refused while the VM runs). Requests are untrusted: a line is at most
 * CTL_LINE_MAX bytes and the parser (jsonline.c) takes exactly that grammar.
 * One thread serves one connection at a time; vmm_ctl_free stops it through
 * a pipe and removes the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/ctl.h"
#include "vmm/devices/devices.h"
#include "vmm/jsonline.h"
#include "vmm/kvm.h"
#include "base/base.h"
#include "snapshot/snapshot.h"
#include "vmm/suspend.h"
#include "vmm/vmstate.h"

#define CTL_LINE_MAX 1024
#define CTL_REPLY_MAX 8192

struct vmm_ctl {
	struct vmm_ctl_target t;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd, stop_pipe[2];
	pthread_t thread;
};

void vmm_ctl_set_fs(struct vmm_ctl *c, struct vmfs *fs)
{
	if (c)
		__atomic_store_n(&c->t.fs, fs, __ATOMIC_RELEASE);
}

/* ---- the commands ------------------------------------------------------------------ */

struct reply {
	char buf[CTL_REPLY_MAX];
	size_t len;
};

static void add(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len >= sizeof(r->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n;
}

static void status(struct vmm_ctl *c, struct reply *r)
{
	struct vmm_ctl_target *t = &c->t;
	unsigned i;

	add(r, "{\"ok\":true,\"name\":\"%s\",\"state\":\"%s\",\"vcpus\":%u,\"memory_mib\":%llu", t->conf->name,
	    vmm_vm_paused(t->vm) ? "paused" : "running", t->vm->ncpus, (unsigned long long)t->conf->mem_mib);
	if (t->balloon) {
		uint32_t target, actual;

		vmm_balloon_get(t->balloon, &target, &actual);
		add(r, ",\"balloon\":{\"target_pages\":%u,\"actual_pages\":%u}", target, actual);
	}
	add(r, ",\"disks\":[");
	for (i = 0; i < t->nblk; i++) {
		struct vmm_blk_stats st;

		vmm_blk_get_stats(t->blk[i], &st);
		add(r, "%s{\"file\":\"%s\",\"readonly\":%s,\"bytes_per_s\":%llu,\"ops_per_s\":%llu,"
		       "\"reads\":%llu,\"writes\":%llu,\"read_bytes\":%llu,\"written_bytes\":%llu,\"throttled\":%llu,"
		       "\"queues\":%llu,\"max_inflight\":%llu,\"exit_notifies\":%llu,\"irqfd_irqs\":%llu,\"ioctl_irqs\":%llu}",
		    i ? "," : "", t->conf->disks[i].file, t->conf->disks[i].readonly ? "true" : "false",
		    (unsigned long long)st.bytes_per_s, (unsigned long long)st.ops_per_s,
		    (unsigned long long)st.reads, (unsigned long long)st.writes, (unsigned long long)st.read_bytes,
		    (unsigned long long)st.written_bytes, (unsigned long long)st.throttled,
		    (unsigned long long)st.queues, (unsigned long long)st.max_inflight,
		    (unsigned long long)st.exit_notifies, (unsigned long long)st.irqfd_irqs,
		    (unsigned long long)st.ioctl_irqs);
	}
	add(r, "]}");
}

static void reply_error(struct reply *r, const char *why)
{
	add(r, "{\"ok\":false,\"error\":\"");
	for (; *why; why++) /* a message may quote a path or a name */
		add(r, *why == '"' || *why == '\\' ? "\\%c" : (unsigned char)*why < 0x20 ? "?" : "%c", *why);
	add(r, "\"}");
}

/*
 * The VM's folder (its disks, vm.conf, kernel) in one transaction, through
 * snapshot/ with this host's handle, which holds the disks' locks: the guest's
 * disk I/O waits from the files' I/O locks to the commit (io_pause_us).
 */
static void snapshot(struct vmm_ctl *c, const struct vmm_json_kv *name, struct reply *r)
{
	char err[512];
	uint64_t pause_ns = 0, t0 = base_mono_ns();

	struct vmfs *fs = __atomic_load_n(&c->t.fs, __ATOMIC_ACQUIRE);

	if (!fs) {
		reply_error(r, "this VM has not joined the cluster yet: no snapshot");
		return;
	}
	if (!name || name->is_num) {
		reply_error(r, "want \"name\": the snapshot's name");
		return;
	}
	if (snap_create_timed(fs, c->t.vm_path, name->str, &pause_ns, err, sizeof(err))) {
		reply_error(r, err);
		return;
	}
	add(r, "{\"ok\":true,\"snapshot\":\"%s\",\"io_pause_us\":%llu,\"total_us\":%llu}", name->str,
	    (unsigned long long)(pause_ns / 1000), (unsigned long long)((base_mono_ns() - t0) / 1000));
}

/*
 * A deep rekey of the VM's folder (its disks, vm.conf, kernel) while the
 * guest runs, through snapshot/ with this host's handle, which holds the
 * disks' locks: the guest's disk I/O waits only while a batch of blocks is
 * copied. Answers when every file is done (this socket serves nothing else
 * meanwhile; the guest goes on).
 */
static void rekey(struct vmm_ctl *c, struct reply *r)
{
	struct snap_rekey_progress p;
	uint64_t t0 = base_mono_ns(), bytes = 0;
	size_t cursor = 0;
	char err[512];
	struct vmfs *fs = __atomic_load_n(&c->t.fs, __ATOMIC_ACQUIRE);

	if (!fs) {
		reply_error(r, "this VM has not joined the cluster yet: no rekey");
		return;
	}
	do {
		if (snap_rekey(fs, c->t.vm_path, false, 64ull << 20, &cursor, &p, err, sizeof(err))) {
			reply_error(r, err);
			return;
		}
		if (p.done == p.size && !p.dir)
			bytes += p.size;
	} while (!p.all_done);
	add(r, "{\"ok\":true,\"rekeyed\":%zu,\"directories\":%zu,\"bytes\":%llu,\"total_us\":%llu}",
	    p.files - p.dirs, p.dirs, (unsigned long long)bytes, (unsigned long long)((base_mono_ns() - t0) / 1000));
}

/*
 * The VM into its folder's vm.state (vmm/suspend.h), then ended after the
 * reply; a failed suspend leaves the VM running and the folder as it was.
 */
static void suspend(struct vmm_ctl *c, struct reply *r, bool *stop)
{
	struct vmm_suspend_result res;
	char err[512];
	struct vmfs *fs = __atomic_load_n(&c->t.fs, __ATOMIC_ACQUIRE);

	if (!fs || !c->t.suspend) {
		reply_error(r, "this VM has not joined the cluster yet: no suspend");
		return;
	}
	if (vmm_suspend(c->t.suspend, fs, &res, err, sizeof(err))) {
		reply_error(r, err);
		return;
	}
	*stop = true;
	add(r, "{\"ok\":true,\"state\":\"suspended\",\"file\":\"%s/%s\",\"bytes\":%llu,\"ram_bytes\":%llu,"
	    "\"total_us\":%llu}", c->t.vm_path, VMM_STATE_FILE, (unsigned long long)res.bytes,
	    (unsigned long long)res.ram_bytes, (unsigned long long)res.us);
}

/* Handles one request line; sets *stop when the VM is to end after the reply. */
static void handle(struct vmm_ctl *c, const char *line, struct reply *r, bool *stop)
{
	struct vmm_json_kv kv[VMM_JSON_MAX_KEYS];
	const struct vmm_json_kv *cmd, *a, *b, *d;
	unsigned n;

	if (vmm_json_parse(line, kv, &n)) {
		reply_error(r, "want one flat JSON object of strings and unsigned integers per line");
		return;
	}
	cmd = vmm_json_find(kv, n, "cmd");
	if (!cmd || cmd->is_num) {
		reply_error(r, "no \\\"cmd\\\"");
		return;
	}
	if (!strcmp(cmd->str, "status")) {
		status(c, r);
	} else if (!strcmp(cmd->str, "pause")) {
		vmm_vm_pause(c->t.vm);
		add(r, "{\"ok\":true,\"state\":\"paused\"}");
	} else if (!strcmp(cmd->str, "resume")) {
		vmm_vm_resume(c->t.vm);
		add(r, "{\"ok\":true,\"state\":\"running\"}");
	} else if (!strcmp(cmd->str, "stop")) {
		*stop = true;
		add(r, "{\"ok\":true,\"state\":\"stopping\"}");
	} else if (!strcmp(cmd->str, "suspend")) {
		suspend(c, r, stop);
	} else if (!strcmp(cmd->str, "balloon")) {
		a = vmm_json_find(kv, n, "pages");
		if (!c->t.balloon)
			reply_error(r, "this VM has no virtio-balloon");
		else if (!a || !a->is_num || a->num > c->t.vm->mem_size / 4096)
			reply_error(r, "want \\\"pages\\\": 4 KiB pages, at most the VM's memory");
		else {
			vmm_balloon_set_target(c->t.balloon, (uint32_t)a->num);
			add(r, "{\"ok\":true,\"target_pages\":%llu}", (unsigned long long)a->num);
		}
	} else if (!strcmp(cmd->str, "rate")) {
		d = vmm_json_find(kv, n, "disk");
		a = vmm_json_find(kv, n, "bytes_per_s");
		b = vmm_json_find(kv, n, "ops_per_s");
		if (!d || !d->is_num || d->num >= c->t.nblk)
			reply_error(r, "want \\\"disk\\\": a disk index of this VM");
		else if ((a && !a->is_num) || (b && !b->is_num))
			reply_error(r, "want \\\"bytes_per_s\\\" and \\\"ops_per_s\\\" as unsigned integers (0: unlimited)");
		else {
			vmm_blk_set_limit(c->t.blk[d->num], a ? a->num : 0, b ? b->num : 0);
			add(r, "{\"ok\":true}");
		}
	} else if (!strcmp(cmd->str, "snapshot")) {
		snapshot(c, vmm_json_find(kv, n, "name"), r);
	} else if (!strcmp(cmd->str, "rekey")) {
		rekey(c, r);
	} else if (!strcmp(cmd->str, "revert")) {
		reply_error(r, "the VM is running: stop it, then vmfsctl snapshot revert DEVICE PATH NAME");
	} else {
		reply_error(r, "unknown cmd (want status, pause, resume, stop, suspend, balloon, rate, snapshot, rekey or revert)");
	}
}

/* Waits for fd or the stop pipe; false when stopping or on error. */
static bool wait_fd(struct vmm_ctl *c, int fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = c->stop_pipe[0], .events = POLLIN } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		return !p[1].revents;
	}
}

static void serve(struct vmm_ctl *c, int fd)
{
	char line[CTL_LINE_MAX + 1];
	size_t have = 0;
	ssize_t n;

	while (wait_fd(c, fd)) {
		char *nl;

		n = read(fd, line + have, sizeof(line) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
		line[have] = 0;
		while ((nl = memchr(line, '\n', have))) {
			struct reply r = { .len = 0 };
			bool stop = false;

			*nl = 0;
			handle(c, line, &r, &stop);
			add(&r, "\n");
			if (write(fd, r.buf, r.len) != (ssize_t)r.len)
				return;
			if (stop)
				vmm_vm_stop(c->t.vm);
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have);
			line[have] = 0;
		}
		if (have == sizeof(line) - 1) {
			const char *e = "{\"ok\":false,\"error\":\"line longer than 1024 bytes\"}\n";

			if (write(fd, e, strlen(e)) < 0)
				return;
			return;
		}
	}
}

static void *ctl_thread(void *arg)
{
	struct vmm_ctl *c = arg;
	int fd;

	while (wait_fd(c, c->listen_fd)) {
		fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(c, fd);
		close(fd);
	}
	return NULL;
}

/*
 * bind(2), replacing a stale socket: a socket file that refuses connections
 * was left by a vmm that died (kill -9) and is removed; a live vmm's socket
 * (it answers) and anything that is not a socket are left alone (EADDRINUSE).
 */
static int bind_replacing_stale(int fd, const struct sockaddr_un *sa)
{
	struct stat st;
	int probe, rc, e;

	if (!bind(fd, (const struct sockaddr *)sa, sizeof(*sa)))
		return 0;
	if (errno != EADDRINUSE || lstat(sa->sun_path, &st) || !S_ISSOCK(st.st_mode)) {
		errno = errno == ENOENT ? EADDRINUSE : errno;
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -1;
	rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(probe);
	if (!rc || e != ECONNREFUSED) {
		errno = EADDRINUSE;
		return -1;
	}
	if (unlink(sa->sun_path) && errno != ENOENT)
		return -1;
	return bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
}

int vmm_ctl_new(const char *path, const struct vmm_ctl_target *t, struct vmm_ctl **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vmm_ctl *c;
	sigset_t all, old;
	int ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	c->t = *t;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	strcpy(c->path, path);
	strcpy(sa.sun_path, path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0 || bind_replacing_stale(c->listen_fd, &sa) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto err_free;
	}
	if (listen(c->listen_fd, 4) < 0 || pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto err_unlink;
	}
	/* The control thread takes no signals: they are vCPU 0's (see kvm.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&c->thread, NULL, ctl_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		snprintf(err, errlen, "%s: cannot start its thread", path);
		goto err_unlink;
	}
	*out = c;
	return 0;

err_unlink:
	unlink(c->path);
err_free:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->stop_pipe[0] >= 0)
		close(c->stop_pipe[0]);
	if (c->stop_pipe[1] >= 0)
		close(c->stop_pipe[1]);
	free(c);
	return ret;
}

void vmm_ctl_free(struct vmm_ctl *c)
{
	if (!c)
		return;
	while (write(c->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(c->thread, NULL);
	unlink(c->path);
	close(c->listen_fd);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	free(c);
}

int vmm_ctl_request(const char *path, const char *request, char *reply, size_t len, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 30 };
	size_t have = 0, rl = strlen(request);
	ssize_t n;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* A vmm that stops answering is reported, not waited for forever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, request, rl) != (ssize_t)rl || write(fd, "\n", 1) != 1) {
		ret = -EIO;
		snprintf(err, errlen, "%s: sending the request: %s", path, strerror(errno));
		goto out;
	}
	while (have + 1 < len) {
		n = read(fd, reply + have, len - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EPIPE;
			snprintf(err, errlen, "%s: no reply (%s)", path, n < 0 ? strerror(errno) : "connection closed");
			goto out;
		}
		have += (size_t)n;
		reply[have] = 0;
		if (memchr(reply, '\n', have)) {
			*strchr(reply, '\n') = 0;
			goto out;
		}
	}
	ret = -E2BIG;
	snprintf(err, errlen, "%s: reply longer than %zu bytes", path, len - 1);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}
