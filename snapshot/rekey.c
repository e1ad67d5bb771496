/*
 * Deep rekey of the files a PATH stands for (snapshot/snapshot.h, snap_rekey):
 * vmfs_rekey_step over each file in turn, under its file lock.
 */
#include "snapshot/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"

static const char *why(int ret)
{
	switch (ret) {
	case -EOPNOTSUPP: return "the datastore is not encrypted";
	case -ENOKEY: return "the datastore is locked (no key given)";
	case -EROFS: return "read-only";
	case -EINVAL: return "not a regular file, symlink or directory with keys";
	case -ENOSPC: return "no space left for the new copies of its blocks";
	default: return strerror(-ret);
	}
}

/*
 * Every file done: the journals' images of their old names and inline data
 * are zeroed (vmfs_journal_scrub), and a run of all is closed.
 */
static int finish(struct vmfs *fs, const char *path, bool all, uint64_t run, char *err, size_t errlen)
{
	int ret = vmfs_journal_scrub(fs);

	if (!ret && all)
		ret = vmfs_rekey_run(fs, true, &run);
	return ret ? base_set_err(err, errlen, ret, "%s: cannot end the rekey: %s", path, why(ret)) : 0;
}

int snap_rekey(struct vmfs *fs, const char *path, bool all, uint64_t max_bytes, size_t *cursor,
	       struct snap_rekey_progress *p, char *err, size_t errlen)
{
	struct snap_files f;
	struct vmfs_rekey_progress pr = { 0 }, was;
	struct vmfs_stat st;
	uint64_t run = 0;
	char who[160];
	bool locked = false;
	int ret = snap_files_rekey(fs, path, all, &f, err, errlen);

	memset(p, 0, sizeof(*p));
	if (ret)
		return ret;
	p->files = f.n;
	p->dirs = f.dirs;
	/* --all is a run an interruption does not restart: the files it renewed before are skipped */
	if (all && (ret = vmfs_rekey_run(fs, false, &run)))
		base_set_err(err, errlen, ret, "%s: cannot begin the rekey: %s", path, why(ret));
	while (!ret && all && *cursor < f.n && !vmfs_rekey_state(fs, f.ino[*cursor], &was) && was.finished &&
	       was.run == run)
		++*cursor;
	if (!ret && *cursor >= f.n) {
		p->file = f.n;
		p->all_done = true;
		ret = finish(fs, path, all, run, err, errlen);
	}
	if (ret || p->all_done) {
		snap_files_release(&f);
		return ret;
	}
	p->file = *cursor;
	snprintf(p->name, sizeof(p->name), "%s", f.name[*cursor]);
	ret = vmfs_getattr(fs, f.ino[*cursor], &st);
	p->dir = !ret && S_ISDIR(st.mode);
	if (!ret && !p->dir) { /* a directory's names change in operations alone: no lock */
		ret = vmfs_file_lock(fs, f.ino[*cursor], VMFS_LOCK_EX, who, sizeof(who));
		locked = !ret;
	}
	if (ret == -EBUSY) {
		base_set_err(err, errlen, ret, "%s: in use by %s", f.name[*cursor], who);
	} else if (ret) {
		base_set_err(err, errlen, ret, "%s: cannot lock: %s", f.name[*cursor], strerror(-ret));
	} else {
		/* steps of 8 MiB (I/O waits for one at a time) up to max_bytes */
		for (uint64_t moved = 0; !ret && !pr.finished && moved < max_bytes; moved += 8u << 20)
			ret = vmfs_rekey_step(fs, f.ino[*cursor], 8u << 20, &pr);
		if (locked)
			vmfs_file_unlock(fs, f.ino[*cursor]);
		if (!ret)
			ret = vmfs_sync(fs); /* durable when the call returns */
		if (ret)
			base_set_err(err, errlen, ret, "%s: rekey: %s", f.name[*cursor], why(ret));
	}
	if (!ret) {
		p->done = pr.done;
		p->size = pr.size;
		if (pr.finished) {
			p->done = pr.size;
			++*cursor;
		}
		p->all_done = *cursor >= f.n;
		if (p->all_done)
			ret = finish(fs, path, all, run, err, errlen);
	}
	snap_files_release(&f);
	return ret;
}
