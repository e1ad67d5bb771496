/*
 * fsck: checks every invariant of docs/FORMAT.md and repairs what it may. This
 * file is the driver: it opens the device (read-only for a check), refuses to
 * repair while another host's heartbeat is alive, skips a clean datastore for
 * -p, and runs the passes in order (pass1.c .. pass5.c; their problems are in
 * problems.h). Repairs are written directly (no journal), as e2fsck does, once
 * every pass is done; a crash during that write is mended by running fsck again.
 */
#include "vmfs/fsck/fsck_i.h"

static int fsck_open(struct fsck *c, const char *path, char *errbuf, size_t errlen)
{
	struct vmfs *fs = c->fs;
	struct vmfs_sb_disk *p = dev_alloc_buf(VMFS_UNIT), *b = dev_alloc_buf(VMFS_UNIT);
	bool pok, bok;
	int r;

	if (!p || !b) {
		r = -ENOMEM;
		goto out;
	}
	r = dev_open(path, fsck_repairing(c) ? 0 : DEV_RDONLY, NULL, &fs->dev);
	if (r) {
		snprintf(errbuf, errlen, "%s: %s", path, dev_strerror(r));
		goto out;
	}
	if (dev_size(fs->dev) < VMFS_SB_BACKUP_OFF + VMFS_UNIT) {
		snprintf(errbuf, errlen, "%s: not a vmfs datastore (too small)", path);
		r = -EINVAL;
		goto out;
	}
	pok = !dev_pread(fs->dev, p, VMFS_UNIT, 0) && !sb_check(p);
	bok = !dev_pread(fs->dev, b, VMFS_UNIT, VMFS_SB_BACKUP_OFF) && !sb_check(b);
	if (!pok && !bok) {
		snprintf(errbuf, errlen, "%s: no valid superblock (primary or backup): %s", path,
			 le32_to_cpu(p->sb_hdr.mh_magic) == VMFS_MAGIC_SB ? "damaged" : "not a vmfs datastore");
		r = -EINVAL;
		goto out;
	}
	memcpy(&fs->sb, pok ? p : b, sizeof(fs->sb));
	if (le64_to_cpu(fs->sb.sb_size) > dev_size(fs->dev)) {
		snprintf(errbuf, errlen, "%s: device is smaller than the datastore (truncated?)", path);
		r = -EUCLEAN;
		goto out;
	}
	if (le64_to_cpu(fs->sb.sb_incompat) & ~VMFS_FEATURE_INCOMPAT_SUPP) {
		snprintf(errbuf, errlen, "%s: unknown incompatible features 0x%llx", path,
			 (unsigned long long)le64_to_cpu(fs->sb.sb_incompat));
		r = -EPROTONOSUPPORT;
		goto out;
	}
	super_geometry(fs);
	r = cache_init(fs);
	if (!r)
		r = itab_init(fs);
	if (!r && !pok) /* replay reads unit 0: until judged, it is the backup */
		r = meta_overlay(fs, 0, b);
	if (r)
		goto out;
	c->sb_p = p;
	c->sb_b = b;
	c->sb_pok = pok;
	c->sb_bok = bok;
	return 0;
out:
	free(p);
	free(b);
	return r;
}

/*
 * No repair while a host uses the datastore: a slot that is not free is
 * watched, long enough when repairing to tell a dead host from a live one
 * (dead_ms), two heartbeats for a check. Read-only; joins nothing.
 */
static int check_hosts(struct fsck *c, char *errbuf, size_t errlen)
{
	struct vmfs *fs = c->fs;
	struct lk_slot_info *s = NULL;
	struct lk_geometry g;
	struct lk_timing t;
	struct lk_io io;
	uint32_t watch;
	size_t n = 0;
	bool used = false;
	int r;

	vmfs_cluster_io(fs, &io, &g, &t);
	fs->lkio = io;
	r = lk_read_slots(&fs->lkio, &g, &s, &n);
	if (r) {
		snprintf(errbuf, errlen, "cannot read the heartbeat region: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++)
		used |= s[i].state != LK_SLOT_FREE;
	free(s);
	s = NULL;
	if (!used)
		return 0;
	watch = fsck_repairing(c) ? t.dead_ms + t.interval_ms : 2 * t.interval_ms + 100;
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, "Watching host heartbeats", 0, 1);
	r = lk_watch_slots(&fs->lkio, &g, watch, &s, &n);
	if (c->o->progress)
		c->o->progress(c->o->progress_ctx, "Watching host heartbeats", 1, 1);
	if (r) {
		snprintf(errbuf, errlen, "cannot read the heartbeat region: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i].state == LK_SLOT_FREE || !s[i].alive)
			continue;
		if (!c->r->live_hosts++ && fsck_repairing(c) && !c->o->ignore_live_hosts) {
			snprintf(errbuf, errlen, "host slot %u (%s) is alive: the datastore is in use; unmount it on "
				 "every host first", s[i].slot, s[i].hostname[0] ? s[i].hostname : "unknown host");
			r = -EBUSY;
		}
	}
	free(s);
	return r;
}

static bool all_clean(struct fsck *c)
{
	unsigned slots = le32_to_cpu(c->fs->sb.sb_host_slots);
	uint8_t *js = dev_alloc_buf(VMFS_UNIT);
	bool clean = js && !(le32_to_cpu(c->fs->sb.sb_state) & VMFS_STATE_ERRORS) && c->r->found == 0;

	for (unsigned s = 0; s < slots && clean; s++) {
		struct vmfs_hostrec_disk rec;
		int r = hostrec_read(c->fs, s, &rec);
		if (r == -ENOENT)
			continue;
		clean = !r && !dev_pread(c->fs->dev, js, VMFS_UNIT, le64_to_cpu(rec.hr_journal) * VMFS_UNIT) &&
			!meta_check(c->fs, js, le64_to_cpu(rec.hr_journal), VMFS_MAGIC_JSB) &&
			(le32_to_cpu(((struct vmfs_jsb_disk *)js)->js_flags) & VMFS_JSB_CLEAN);
	}
	free(js);
	return clean;
}

int vmfs_fsck(const char *path, const struct vmfs_fsck_opts *o, struct vmfs_fsck_result *res, char *errbuf,
	      size_t errlen)
{
	struct fsck c = { .o = o, .r = res, .hsize = 1 << 16 };
	struct vmfs *fs;
	int r;

	memset(res, 0, sizeof(*res));
	r = fs_new(&fs);
	if (r)
		return r;
	c.fs = fs;
	fs->errbuf = c.quiet; /* fsck says what is wrong itself, in order */
	fs->ro = !fsck_repairing(&c);
	fs->no_journal = true; /* repairs are written directly, at the end */
	fs->commit_ms = ~0u;
	r = fsck_open(&c, path, errbuf, errlen);
	if (!r)
		r = check_hosts(&c, errbuf, errlen);
	if (r)
		goto out_fs;
	if (!o->force && all_clean(&c) && c.sb_pok && c.sb_bok && !memcmp(c.sb_p, c.sb_b, VMFS_UNIT)) {
		res->skipped_clean = true;
		goto out_fs;
	}
	r = fsck_counts_init(&c);
	if (r)
		goto out;
	pthread_mutex_lock(&fs->lock);
	fs->op_active = true;
	fsck_start_pass(&c, "Pass 1: host records, journals, orphans", le32_to_cpu(fs->sb.sb_host_slots));
	r = fsck_pass1(&c);
	if (r)
		goto out_unlock;
	fsck_start_pass(&c, "Pass 2: inodes, block maps, directories", fs->nblocks);
	r = fsck_pass2(&c);
	if (r) {
		if (c.root_damaged)
			snprintf(errbuf, errlen, "%s: the root directory is damaged; only -y or -n can go on", path);
		goto out_unlock;
	}
	fsck_start_pass(&c, "Pass 3: connectivity", le64_to_cpu(fs->sb.sb_rc_inited));
	r = fsck_pass3(&c);
	if (r)
		goto out_unlock;
	fsck_start_pass(&c, "Pass 4: link counts", 1);
	r = fsck_pass4(&c);
	if (r)
		goto out_unlock;
	fsck_start_pass(&c, "Pass 5: space accounting", fs->rc_count);
	r = fsck_pass5(&c);
	if (!r)
		r = fsck_pass3_reconnect(&c);
	if (!r && fsck_repairing(&c) && fs->ndirty) {
		fs->op_active = false;
		r = meta_write_direct(fs);
		if (r)
			snprintf(errbuf, errlen, "%s: writing the repairs failed: %s", path, strerror(-r));
	}
out_unlock:
	fs->op_active = false;
	pthread_mutex_unlock(&fs->lock);
out:
	fsck_counts_release(&c);
	if (r && errbuf && !errbuf[0])
		snprintf(errbuf, errlen, "%s: %s", path, strerror(-r));
out_fs: /* also after the live-host refusal and the -p skip of a clean datastore */
	free(c.sb_p);
	free(c.sb_b);
	fs_free(fs);
	return r;
}
