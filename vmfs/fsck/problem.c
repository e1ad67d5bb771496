/*
 * What fsck says: problems reported through the table of problems.h (and
 * whether each is fixed now, by the mode: -n none, -p the PREEN_FIX ones, -y
 * all), the path of what is reported, and progress by pass. Messages come in
 * pass order and, within a pass, in address or key order: two runs on the
 * same image print the same lines.
 */
#include "vmfs/fsck/fsck_i.h"

#include <assert.h>
#include <stdarg.h>

/*
 * " (/PATH)" of name in directory dir, or of dir itself (name NULL), by the
 * names the walk first reached each directory under; "" when one on the way
 * was reached by no name (lost, or on an orphan list). Messages about what
 * fsck clears name it by path; the inode number stays for the rest.
 */
const char *fsck_path_of(struct fsck *c, uint64_t dir, const char *name, char *buf, size_t len)
{
	const char *part[64];
	unsigned n = 0;
	size_t at = 0;

	if (name)
		part[n++] = name;
	while (dir != c->fs->root_ino) {
		struct ino_info *d = fsck_ino_find(c, dir);
		if (!d || !d->name || n == base_array_size(part)) {
			buf[0] = 0;
			return buf;
		}
		part[n++] = d->name;
		dir = d->parent;
	}
	at = (size_t)snprintf(buf, len, " (%s", n ? "" : "/");
	while (n && at < len)
		at += (size_t)snprintf(buf + at, len - at, "/%s", part[--n]);
	if (at < len)
		snprintf(buf + at, len - at, ")");
	return buf;
}

static const struct {
	enum fsck_preen preen;
	const char *msg;
} problems[] = {
#define X(code, preen, msg) [code] = { preen, msg },
	FSCK_PROBLEMS(X)
#undef X
};

bool fsck_report(struct fsck *c, enum fsck_code code, const char *fmt, ...)
{
	bool fix = c->o->mode == VMFS_FSCK_YES || (c->o->mode == VMFS_FSCK_PREEN && problems[code].preen == PREEN_FIX);
	va_list ap;

	assert(!strcmp(fmt, problems[code].msg));
	c->r->found++;
	if (c->o->out) {
		va_start(ap, fmt);
		vfprintf(c->o->out, fmt, ap);
		va_end(ap);
		fprintf(c->o->out, ". %s\n", fix ? "Fixed" : c->o->mode == VMFS_FSCK_PREEN ? "NOT fixed (run fsck.vmfs -y)" : "Not fixed");
	}
	if (fix)
		c->r->fixed++;
	else
		c->r->left++;
	return fix;
}

void fsck_progress(struct fsck *c, uint64_t step)
{
	c->done += step;
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, c->pass, c->done, c->total);
}

void fsck_start_pass(struct fsck *c, const char *name, uint64_t total)
{
	c->pass = name;
	c->done = 0;
	c->total = total ? total : 1;
	if (c->o->out && c->o->verbose)
		fprintf(c->o->out, "%s\n", name);
	fsck_progress(c, 0);
}
