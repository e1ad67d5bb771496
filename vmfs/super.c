/*
 * The datastore as a whole: mkfs, open (superblock checks, journal replay,
 * allocator load, orphan cleanup), close, statfs, info and the background
 * committer.
 *
 * Open refuses, with one line and without writing a byte: a device that holds
 * no vmfs, a superblock with a bad checksum, a device shorter than the
 * datastore, geometry that does not add up, an unknown incompat feature (and an
 * unknown ro_compat feature unless read-only). One exception: a primary with a
 * bad checksum and an intact backup, as a power cut during the primary's
 * in-place write leaves it, is opened on the backup's geometry and replay
 * rewrites the primary from the journal; if replay does not, open refuses
 * after the replay.
 */
#include "vmfs/vmfs_i.h"

#include <blkid/blkid.h>
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>

#define DEFAULT_BLOCK_SIZE (1u << 20)

int fs_new(struct vmfs **out)
{
	struct vmfs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	if (base_cond_init_mono(&fs->commit_cond)) {
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->flock, NULL);
	*out = fs;
	return 0;
}

void fs_free(struct vmfs *fs)
{
	if (!fs)
		return;
	alloc_release(fs);
	itab_release(fs);
	cache_release(fs);
	crypt_release(fs);
	dev_close(fs->dev);
	pthread_cond_destroy(&fs->commit_cond);
	pthread_mutex_destroy(&fs->flock);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

/* ---- geometry shared by mkfs and open ------------------------------------------------ */

void super_geometry(struct vmfs *fs)
{
	const struct vmfs_sb_disk *sb = &fs->sb;

	fs->block_shift = le32_to_cpu(sb->sb_block_shift);
	fs->block_size = 1u << fs->block_shift;
	fs->upb = fs->block_size / VMFS_UNIT;
	fs->nblocks = le64_to_cpu(sb->sb_nblocks);
	fs->data_unit = le64_to_cpu(sb->sb_data_off) / VMFS_UNIT;
	fs->rc_table_unit = le64_to_cpu(sb->sb_rc_table_off) / VMFS_UNIT;
	fs->rc_blocks = le32_to_cpu(sb->sb_rc_blocks);
	fs->rc_count = le64_to_cpu(sb->sb_rc_count);
	fs->root_ino = le64_to_cpu(sb->sb_root_ino);
	fs->hash_seed = le64_to_cpu(sb->sb_hash_seed);
}

static bool region_ok(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
	return off % VMFS_REGION_ALIGN == 0 && off >= lo && len <= hi && off <= hi - len;
}

/* Every geometry rule of docs/FORMAT.md; on failure, why. */
const char *sb_geometry_error(const struct vmfs_sb_disk *sb)
{
	uint32_t shift = le32_to_cpu(sb->sb_block_shift), slots = le32_to_cpu(sb->sb_host_slots);
	uint32_t ss = le32_to_cpu(sb->sb_slot_size), rcb = le32_to_cpu(sb->sb_rc_blocks);
	uint64_t size = le64_to_cpu(sb->sb_size), data = le64_to_cpu(sb->sb_data_off);
	uint64_t nblocks = le64_to_cpu(sb->sb_nblocks), rcc = le64_to_cpu(sb->sb_rc_count);
	uint64_t slotbytes = (uint64_t)slots * ss;

	if (size < VMFS_MIN_SIZE || size > VMFS_MAX_SIZE || size % VMFS_UNIT)
		return "datastore size out of range";
	if (shift < 16 || shift > 22)
		return "file block size out of range";
	if (!slots || slots > VMFS_MAX_HOSTS || (ss != 512 && ss != 4096))
		return "host slot geometry out of range";
	if (!base_is_pow2(rcb) || rcb < 16 || rcb > VMFS_RC_MAX_BLOCKS)
		return "resource cluster size out of range";
	if (!region_ok(le64_to_cpu(sb->sb_hb_off), slotbytes, VMFS_REGION_ALIGN, data) ||
	    !region_ok(le64_to_cpu(sb->sb_hosttab_off), slotbytes, VMFS_REGION_ALIGN, data) ||
	    !region_ok(le64_to_cpu(sb->sb_lock_off), le64_to_cpu(sb->sb_lock_len), VMFS_REGION_ALIGN, data) ||
	    !region_ok(le64_to_cpu(sb->sb_rc_table_off), rcc * VMFS_UNIT, VMFS_REGION_ALIGN, data))
		return "a metadata region lies outside the header area";
	if (data % (1ull << shift) || data >= size || nblocks != (size - data) >> shift || !nblocks)
		return "data area does not match the size";
	if (rcc != base_div_round_up(nblocks, rcb) || le64_to_cpu(sb->sb_rc_inited) > rcc)
		return "resource cluster count does not match";
	if (le64_to_cpu(sb->sb_journal_len) < VMFS_JOURNAL_MIN || le64_to_cpu(sb->sb_journal_len) > (uint64_t)rcb << shift)
		return "journal size out of range";
	return NULL;
}

/* ---- mkfs ------------------------------------------------------------------------------- */

static int probe_signature(const char *path, char *what, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(path);
	const char *type = NULL;
	int found = 0;

	if (!pr)
		return 0; /* unreadable as a whole: the open below reports it */
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr, 1);
	if (blkid_do_safeprobe(pr) == 0) {
		if (!blkid_probe_lookup_value(pr, "TYPE", &type, NULL) ||
		    !blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL)) {
			snprintf(what, len, "%s", type);
			found = 1;
		}
	}
	blkid_free_probe(pr);
	return found;
}

static int mkfs_tree(struct vmfs *fs)
{
	struct vbuf *root, *lf;
	int ret;

	ret = op_begin(fs);
	if (!ret)
		ret = inode_new(fs, S_IFDIR | 0755, 0, 0, 0, &root);
	if (ret)
		goto out;
	ret = crypt_file_new(fs, ib_inode(root)); /* its names are encrypted; /lost+found's are not (fsck has no key) */
	if (ret) {
		meta_put(fs, root);
		goto out;
	}
	ib_inode(root)->i_parent = cpu_to_le64(root->addr);
	fs->root_ino = root->addr;
	fs->sb.sb_root_ino = cpu_to_le64(root->addr);
	ret = inode_new(fs, S_IFDIR | 0700, 0, 0, root->addr, &lf);
	if (!ret) {
		ret = dir_insert(fs, root, "lost+found", 10, lf->addr, DT_DIR);
		ib_inode(root)->i_nlink = cpu_to_le32(3);
		fs->sb.sb_lostfound_ino = cpu_to_le64(lf->addr);
		meta_put(fs, lf);
	}
	meta_put(fs, root);
out:
	return op_end(fs, ret);
}

int vmfs_mkfs(const char *path, const struct vmfs_mkfs_opts *o, char *errbuf, size_t errlen)
{
	struct vmfs_mkfs_opts def = { 0 };
	struct vmfs *fs;
	struct vmfs_sb_disk *sb;
	struct vbuf *sbb;
	uint64_t size, off, slotbytes, est, data, nblocks, jlen, seed, locklen;
	uint32_t bs, slots, slot_size, rcb, nbuckets;
	struct lk_timing timing;
	char what[128], sz[32], sz2[32];
	uint8_t *head = NULL;
	int ret;

	if (!o)
		o = &def;
	bs = o->block_size ? o->block_size : DEFAULT_BLOCK_SIZE;
	slots = o->host_slots ? o->host_slots : VMFS_MAX_HOSTS;
	if (!base_is_pow2(bs) || bs < VMFS_MIN_BLOCK_SIZE || bs > VMFS_MAX_BLOCK_SIZE)
		return base_set_err(errbuf, errlen, -EINVAL, "block size %s: must be a power of two from 64 KiB to 4 MiB",
			       base_fmt_size_exact(bs, sz, sizeof(sz)));
	if (slots > VMFS_MAX_HOSTS)
		return base_set_err(errbuf, errlen, -EINVAL, "host slots %u: at most %u", slots, VMFS_MAX_HOSTS);
	if (o->label && strlen(o->label) > 63)
		return base_set_err(errbuf, errlen, -EINVAL, "label is longer than 63 bytes");
	if (o->size && (o->size < VMFS_MIN_SIZE || o->size > VMFS_MAX_SIZE))
		return base_set_err(errbuf, errlen, -EINVAL, "size %s: must be from 64 MiB to 64 PiB",
			       base_fmt_size_exact(o->size, sz, sizeof(sz)));

	ret = fs_new(&fs);
	if (ret)
		return ret;
	fs->errbuf = errbuf;
	ret = dev_open(path, o->size ? DEV_CREATE : 0, NULL, &fs->dev);
	if (ret) {
		base_set_err(errbuf, errlen, ret, "%s: %s", path, dev_strerror(ret));
		goto err_free;
	}
	if (!o->force) {
		head = dev_alloc_buf(VMFS_UNIT);
		if (!head) {
			ret = -ENOMEM;
			goto err_free;
		}
		if (dev_size(fs->dev) >= VMFS_UNIT && !dev_pread(fs->dev, head, VMFS_UNIT, 0) &&
		    le32_to_cpu(((struct vmfs_mhdr *)head)->mh_magic) == VMFS_MAGIC_SB) {
			ret = base_set_err(errbuf, errlen, -EEXIST, "%s already holds a vmfs datastore (use -f to overwrite)", path);
			goto err_free;
		}
		if (dev_size(fs->dev) > 0 && probe_signature(path, what, sizeof(what))) {
			ret = base_set_err(errbuf, errlen, -EEXIST, "%s holds a %s signature (use -f to overwrite)", path, what);
			goto err_free;
		}
	}
	size = o->size ? o->size : dev_size(fs->dev);
	size = size / VMFS_REGION_ALIGN * VMFS_REGION_ALIGN;
	if (o->size && dev_size(fs->dev) < size) {
		ret = dev_set_size(fs->dev, size);
		if (ret) {
			base_set_err(errbuf, errlen, ret, "%s: cannot grow it to %s: %s", path,
				base_fmt_size_exact(size, sz, sizeof(sz)), ret == -ENOTTY ? "it is a block device smaller than that" : strerror(-ret));
			goto err_free;
		}
	}
	if (size < VMFS_MIN_SIZE || size > VMFS_MAX_SIZE) {
		ret = base_set_err(errbuf, errlen, -ENOSPC, "%s: its size, %s, is outside 64 MiB .. 64 PiB", path,
			      base_fmt_size_exact(size, sz, sizeof(sz)));
		goto err_free;
	}

	/* cluster timings: lockmgr's defaults unless chosen, and only safe ones */
	lk_timing_default(&timing);
	if (o->hb_interval_ms)
		timing.interval_ms = o->hb_interval_ms;
	if (o->hb_dead_ms)
		timing.dead_ms = o->hb_dead_ms;
	if (o->fence_ms)
		timing.fence_ms = o->fence_ms;
	if (o->io_timeout_ms)
		timing.io_timeout_ms = o->io_timeout_ms;
	if (lk_timing_check(&timing, what, sizeof(what))) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "cluster timings %u,%u,%u,%u ms: %s", timing.interval_ms,
			      timing.dead_ms, timing.fence_ms, timing.io_timeout_ms, what);
		goto err_free;
	}

	/* layout: header MiB, heartbeats, host table, locks, RC table, data */
	slot_size = base_max(512u, dev_sector_size(fs->dev));
	slotbytes = base_round_up((uint64_t)slots * slot_size, VMFS_REGION_ALIGN);
	/* lock-table buckets: 64, fewer on a datastore too small to spare the room */
	for (nbuckets = 64; nbuckets > 4 && lk_lock_region_size(slots, slot_size, nbuckets) > size / 32; nbuckets /= 2)
		;
	locklen = base_round_up(lk_lock_region_size(slots, slot_size, nbuckets), VMFS_REGION_ALIGN);
	sb = &fs->sb;
	sb->sb_hb_off = cpu_to_le64(VMFS_REGION_ALIGN);
	sb->sb_hosttab_off = cpu_to_le64(VMFS_REGION_ALIGN + slotbytes);
	sb->sb_lock_off = cpu_to_le64(VMFS_REGION_ALIGN + 2 * slotbytes);
	sb->sb_lock_len = cpu_to_le64(locklen);
	off = VMFS_REGION_ALIGN + 2 * slotbytes + locklen;
	est = (size - off) / bs;
	for (rcb = VMFS_RC_MAX_BLOCKS; rcb > 16 && est / rcb < 8; rcb /= 2)
		;
	sb->sb_rc_table_off = cpu_to_le64(off);
	off += base_round_up(base_div_round_up(est, rcb) * VMFS_UNIT, VMFS_REGION_ALIGN);
	data = base_round_up(off, base_max((uint64_t)bs, VMFS_REGION_ALIGN));
	nblocks = data < size ? (size - data) / bs : 0;
	jlen = o->journal_size ? o->journal_size : base_min(base_max(size / 64, VMFS_JOURNAL_MIN), 32ull << 20);
	jlen = base_round_up(jlen, bs);
	if (jlen < VMFS_JOURNAL_MIN || jlen > (uint64_t)rcb * bs) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "journal size %s: must be from 4 MiB to %s",
			      base_fmt_size_exact(jlen, sz, sizeof(sz)), base_fmt_size_exact((uint64_t)rcb * bs, sz2, sizeof(sz2)));
		goto err_free;
	}
	if (nblocks < jlen / bs + 4) {
		ret = base_set_err(errbuf, errlen, -ENOSPC, "%s: too small for this block size and journal", path);
		goto err_free;
	}

	sb->sb_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_SB);
	sb->sb_version_minor = cpu_to_le16(VMFS_VERSION_MINOR);
	sb->sb_sector_size = cpu_to_le32(dev_sector_size(fs->dev));
	if (o->uuid)
		memcpy(sb->sb_uuid, o->uuid, 16);
	else
		base_random(sb->sb_uuid, 16);
	memcpy(sb->sb_hdr.mh_uuid, sb->sb_uuid, 16);
	if (o->label)
		memcpy(sb->sb_label, o->label, strlen(o->label));
	sb->sb_size = cpu_to_le64(size);
	sb->sb_block_shift = cpu_to_le32(base_ilog2(bs));
	sb->sb_rc_blocks = cpu_to_le32(rcb);
	sb->sb_nblocks = cpu_to_le64(nblocks);
	sb->sb_data_off = cpu_to_le64(data);
	sb->sb_rc_count = cpu_to_le64(base_div_round_up(nblocks, rcb));
	sb->sb_host_slots = cpu_to_le32(slots);
	sb->sb_slot_size = cpu_to_le32(slot_size);
	sb->sb_journal_len = cpu_to_le64(jlen);
	if (o->uuid) /* a chosen UUID makes the whole layout reproducible (tests compare fsck output) */
		seed = base_crc32c(0, o->uuid, 16) | (uint64_t)base_crc32c(1, o->uuid, 16) << 32;
	else
		base_random(&seed, sizeof(seed));
	sb->sb_hash_seed = cpu_to_le64(seed);
	sb->sb_hb_interval_ms = cpu_to_le32(timing.interval_ms);
	sb->sb_hb_dead_ms = cpu_to_le32(timing.dead_ms);
	sb->sb_fence_ms = cpu_to_le32(timing.fence_ms);
	sb->sb_io_timeout_ms = cpu_to_le32(timing.io_timeout_ms);
	sb->sb_mkfs_time = cpu_to_le64((uint64_t)base_real_ns());
	if (o->secret)
		sb->sb_incompat = cpu_to_le64(VMFS_INCOMPAT_ENCRYPTED);
	super_geometry(fs);
	if (sb_geometry_error(sb)) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "internal: computed geometry is invalid: %s", sb_geometry_error(sb));
		goto err_free;
	}

	/* wipe the header area (old signatures, heartbeats, host records, locks) */
	ret = dev_zero_range(fs->dev, 0, le64_to_cpu(sb->sb_rc_table_off));
	if (!ret) {
		struct lk_io io;
		struct lk_geometry g;
		vmfs_cluster_io(fs, &io, &g, &timing);
		fs->lkio = io;
		ret = lk_format_header(&fs->lkio, &g); /* dev_zero_range made both regions zero */
	}
	if (ret) {
		base_set_err(errbuf, errlen, ret, "%s: cannot clear the header area: %s", path, strerror(-ret));
		goto err_free;
	}
	/* the key area before the superblock: a crash leaves no datastore rather than one without keys */
	if (o->secret) {
		ret = crypt_mkfs(fs, o, errbuf, errlen);
		if (ret)
			goto err_free;
	}
	fs->commit_ms = ~0u; /* nothing is committed through a journal: there is none yet */
	fs->no_journal = true;
	ret = cache_init(fs);
	if (!ret)
		ret = itab_init(fs);
	if (!ret)
		ret = alloc_init(fs);
	if (ret)
		goto err_free;
	ret = op_begin(fs); /* mkfs: no cluster, nothing to refuse */
	if (!ret)
		ret = meta_new(fs, 0, VMFS_MAGIC_SB, 0, &sbb);
	if (!ret) {
		memcpy(sbb->data, sb, sizeof(*sb));
		meta_seal(fs, sbb->data);
		meta_put(fs, sbb);
	}
	ret = op_end(fs, ret);
	if (!ret)
		ret = mkfs_tree(fs);
	if (!ret)
		ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (!ret) {
		struct vmfs_sb_disk *s = (struct vmfs_sb_disk *)sbb->data;
		s->sb_root_ino = fs->sb.sb_root_ino;
		s->sb_lostfound_ino = fs->sb.sb_lostfound_ino;
		meta_put(fs, sbb);
		ret = meta_write_direct(fs);
		if (ret)
			base_set_err(errbuf, errlen, ret, "%s: write failed: %s", path, strerror(-ret));
	} else {
		base_set_err(errbuf, errlen, ret, "%s: cannot create the root directory: %s", path, strerror(-ret));
	}
err_free:
	free(head);
	fs_free(fs);
	return ret;
}

/* ---- open and close ---------------------------------------------------------------------- */

/* Checks a superblock image; returns 0 or -errno with *why set. */
static int sb_verify(const struct vmfs_sb_disk *sb, const char **why)
{
	if (le32_to_cpu(sb->sb_hdr.mh_magic) != VMFS_MAGIC_SB) {
		*why = "not a vmfs datastore (no superblock magic)";
		return -EINVAL;
	}
	if (base_crc32c(0, sb, VMFS_CRC_OFF) != le32_to_cpu(sb->sb_crc)) {
		*why = "superblock checksum mismatch";
		return -EBADMSG;
	}
	if (le16_to_cpu(sb->sb_hdr.mh_version) != VMFS_VERSION_MAJOR) {
		*why = "unsupported format version";
		return -EPROTONOSUPPORT;
	}
	if (memcmp(sb->sb_hdr.mh_uuid, sb->sb_uuid, 16) || sb->sb_hdr.mh_addr) {
		*why = "superblock header is inconsistent";
		return -EUCLEAN;
	}
	if ((*why = sb_geometry_error(sb)))
		return -EUCLEAN;
	return 0;
}

int sb_check(const struct vmfs_sb_disk *sb)
{
	const char *why;
	return sb_verify(sb, &why);
}

static int read_sb(struct vmfs *fs, uint64_t off, struct vmfs_sb_disk *out, const char **why)
{
	struct vmfs_sb_disk *sb = dev_alloc_buf(VMFS_UNIT);
	int ret;

	if (!sb)
		return -ENOMEM;
	ret = dev_pread(fs->dev, sb, VMFS_UNIT, off);
	if (ret)
		*why = strerror(-ret);
	else
		ret = sb_verify(sb, why);
	memcpy(out, sb, sizeof(*out));
	free(sb);
	return ret;
}

/*
 * Stops one of fs's threads (the committer, the META poller): sets
 * fs->stopping, which both read, wakes the thread's condition and joins it.
 */
void fs_thread_stop(struct vmfs *fs, pthread_cond_t *wake, pthread_t thread, bool *running)
{
	if (!*running)
		return;
	pthread_mutex_lock(&fs->lock);
	fs->stopping = true;
	pthread_cond_broadcast(wake);
	pthread_mutex_unlock(&fs->lock);
	pthread_join(thread, NULL);
	*running = false;
}

static void committer_stop(struct vmfs *fs)
{
	fs_thread_stop(fs, &fs->commit_cond, fs->committer, &fs->committer_running);
}

static void *committer(void *arg)
{
	struct vmfs *fs = arg;
	struct timespec ts;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stopping) {
		ts = base_mono_deadline(fs->commit_ms);
		pthread_cond_timedwait(&fs->commit_cond, &fs->lock, &ts);
		if (fs->ntimes && !fs->fatal && !fs->stopping) {
			pthread_mutex_unlock(&fs->lock);
			times_flush(fs); /* errors: the next fsync or tick reports or retries */
			pthread_mutex_lock(&fs->lock);
		}
		if (fs->ndirty && !fs->fatal)
			journal_commit(fs);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

int vmfs_open(const char *path, const struct vmfs_open_opts *o, struct vmfs **out, char *errbuf, size_t errlen)
{
	struct vmfs_open_opts def = { 0 };
	struct vmfs *fs;
	struct vbuf *sbb, *rb;
	const char *why = NULL, *primary_bad = NULL;
	char ebuf[256] = "";
	uint64_t unknown;
	int ret;

	if (!o)
		o = &def;
	ret = fs_new(&fs);
	if (ret)
		return ret;
	fs->ro = o->readonly;
	fs->commit_ms = o->commit_ms;
	fs->errbuf = ebuf;
	ret = dev_open(path, fs->ro ? DEV_RDONLY : 0, NULL, &fs->dev);
	if (ret) {
		base_set_err(errbuf, errlen, ret, "%s: %s", path, dev_strerror(ret));
		goto err_free;
	}
	if (dev_size(fs->dev) < VMFS_UNIT) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "%s: not a vmfs datastore (too small)", path);
		goto err_free;
	}
	ret = read_sb(fs, VMFS_SB_OFF, &fs->sb, &why);
	if (ret) {
		struct vmfs_sb_disk bk;
		const char *bwhy;
		bool backup = dev_size(fs->dev) >= VMFS_SB_BACKUP_OFF + VMFS_UNIT &&
			      !read_sb(fs, VMFS_SB_BACKUP_OFF, &bk, &bwhy);
		/*
		 * A power cut that tears the primary's in-place write leaves a bad
		 * checksum while the journal holds the committed image: open on the
		 * backup, whose geometry is the same; replay rewrites unit 0, which
		 * is read again below (still bad: the open fails there).
		 */
		if (ret == -EBADMSG && backup) {
			memcpy(&fs->sb, &bk, sizeof(fs->sb));
			primary_bad = why;
		} else {
			if (ret == -EINVAL && !backup)
				base_set_err(errbuf, errlen, ret, "%s: %s", path, why);
			else
				base_set_err(errbuf, errlen, ret, "%s: %s%s", path, why,
					backup ? " (the backup superblock is intact: run fsck.vmfs)" : "");
			goto err_free;
		}
	}
	if (le64_to_cpu(fs->sb.sb_size) > dev_size(fs->dev)) {
		ret = base_set_err(errbuf, errlen, -EUCLEAN, "%s: device is %llu bytes but the datastore is %llu (truncated?)",
			      path, (unsigned long long)dev_size(fs->dev), (unsigned long long)le64_to_cpu(fs->sb.sb_size));
		goto err_free;
	}
	unknown = le64_to_cpu(fs->sb.sb_incompat) & ~VMFS_FEATURE_INCOMPAT_SUPP;
	if (unknown) {
		ret = base_set_err(errbuf, errlen, -EPROTONOSUPPORT, "%s: unknown incompatible features 0x%llx: refusing to open",
			      path, (unsigned long long)unknown);
		goto err_free;
	}
	unknown = le64_to_cpu(fs->sb.sb_ro_compat) & ~VMFS_FEATURE_RO_COMPAT_SUPP;
	if (unknown && !fs->ro) {
		ret = base_set_err(errbuf, errlen, -EROFS, "%s: unknown read-only-compatible features 0x%llx: open it read-only",
			      path, (unsigned long long)unknown);
		goto err_free;
	}
	/* unlock before anything is written or the cluster joined: a wrong key changes nothing */
	ret = crypt_open(fs, o->secret, o->kdf_max_kib, ebuf, sizeof(ebuf));
	if (ret) {
		base_set_err(errbuf, errlen, ret, "%s: %s", path, ebuf);
		goto err_free;
	}
	if (o->slot >= le32_to_cpu(fs->sb.sb_host_slots)) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "%s: host slot %u: the datastore has %u", path, o->slot,
			      le32_to_cpu(fs->sb.sb_host_slots));
		goto err_free;
	}
	fs->slot = o->slot;
	super_geometry(fs);
	ret = cache_init(fs);
	if (!ret)
		ret = itab_init(fs);
	if (ret)
		goto err_free;
	if (!fs->ro && !o->standalone && primary_bad) {
		/*
		 * Joining writes (heartbeats, locks): only worth it when some host's
		 * journal holds unit 0, so that recovering that host rewrites the
		 * primary. Otherwise refuse now, having written nothing.
		 */
		unsigned slot = fs->slot;
		fs->ro = true;
		fs->slot = ~0u;
		fs->j_sb_replayed = false;
		ret = journal_overlay_others(fs);
		fs->ro = false;
		fs->slot = slot;
		if (!ret)
			ret = cache_drop_all(fs);
		if (!ret && !fs->j_sb_replayed)
			ret = -EBADMSG;
		if (ret) {
			base_set_err(errbuf, errlen, ret, "%s: %s (the backup superblock is intact: run fsck.vmfs)", path,
				primary_bad);
			goto err_free;
		}
	}
	if (!fs->ro && !o->standalone) {
		/* a host: a heartbeat slot (its journal is ours), then META until the open is done */
		char jwhy[200] = "";
		ret = cluster_join(fs, o->hostname, o->watchdog, jwhy, sizeof(jwhy));
		if (ret) {
			base_set_err(errbuf, errlen, ret, "%s: cannot join the cluster: %s", path, jwhy[0] ? jwhy : strerror(-ret));
			goto err_free;
		}
		pthread_mutex_lock(&fs->lock);
		ret = cluster_meta(fs, true);
		pthread_mutex_unlock(&fs->lock);
		if (ret) {
			base_set_err(errbuf, errlen, ret, "%s: %s", path, ebuf[0] ? ebuf : strerror(-ret));
			goto err_alloc;
		}
	}
	ret = journal_open(fs);
	if (!ret && fs->ro)
		ret = journal_overlay_others(fs);
	if (!ret) /* the journal may have changed the superblock */
		ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret == -EBADMSG && primary_bad) { /* replay did not restore it */
		ret = base_set_err(errbuf, errlen, ret, "%s: %s (the backup superblock is intact: run fsck.vmfs)",
			      path, primary_bad);
		goto err_free;
	}
	if (!ret) {
		memcpy(&fs->sb, sbb->data, sizeof(fs->sb));
		meta_put(fs, sbb);
		if (sb_geometry_error(&fs->sb)) {
			fs_err(fs, "superblock after journal replay: %s", sb_geometry_error(&fs->sb));
			ret = -EUCLEAN;
		}
	}
	if (!ret) {
		alloc_release(fs); /* the cluster may have loaded it before replay */
		ret = alloc_init(fs);
	}
	if (!ret)
		ret = journal_join(fs);
	if (!ret)
		ret = inode_read(fs, fs->root_ino, &rb);
	if (!ret) {
		if (!S_ISDIR(le32_to_cpu(ib_inode(rb)->i_mode))) {
			fs_err(fs, "root inode %llu is not a directory", (unsigned long long)fs->root_ino);
			ret = -EUCLEAN;
		}
		meta_put(fs, rb);
	}
	if (!ret && !fs->ro)
		ret = orphans_process(fs);
	if (ret) {
		base_set_err(errbuf, errlen, ret, "%s: %s", path, ebuf[0] ? ebuf : strerror(-ret));
		goto err_alloc;
	}
	fs->errbuf = NULL;
	if (!fs->ro && fs->commit_ms) {
		ret = pthread_create(&fs->committer, NULL, committer, fs);
		if (ret) {
			ret = base_set_err(errbuf, errlen, -ret, "%s: cannot start the commit thread", path);
			goto err_alloc;
		}
		fs->committer_running = true;
	}
	ret = cluster_start(fs);
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "%s: cannot start the lock poller", path);
		goto err_alloc;
	}
	*out = fs;
	return 0;

err_alloc:
	committer_stop(fs);
	cluster_leave(fs);
err_free:
	fs_free(fs);
	return ret;
}

int vmfs_close(struct vmfs *fs)
{
	int ret = 0;

	if (!fs)
		return 0;
	committer_stop(fs);
	if (!fs->ro) {
		times_flush(fs);
		/* names removed while held: nobody holds them any more */
		for (size_t i = 0; i < fs->ihash_size; i++)
			for (struct vinode *vi = fs->ihash[i]; vi; vi = vi->hnext)
				if (vi->lookups) {
					struct vbuf *ib;
					int r = op_begin(fs);
					if (!r)
						r = inode_read(fs, vi->ino, &ib);
					if (!r) {
						bool gone = !ib_inode(ib)->i_nlink;
						meta_put(fs, ib);
						r = gone ? inode_drop(fs, vi->ino) : 0;
					}
					op_end(fs, r);
				}
		pthread_mutex_lock(&fs->lock);
		ret = journal_commit(fs);
		if (!ret)
			ret = journal_close(fs);
		if (!ret && fs->fatal)
			ret = -EIO;
		pthread_mutex_unlock(&fs->lock);
	}
	cluster_leave(fs); /* META goes (nothing left to write back), then the heartbeat slot */
	fs_free(fs);
	return ret;
}

int vmfs_sync(struct vmfs *fs)
{
	return vmfs_fsync(fs, fs->root_ino, false);
}

int vmfs_statfs(struct vmfs *fs, struct vmfs_statfs *st)
{
	pthread_mutex_lock(&fs->lock);
	st->bsize = VMFS_UNIT;
	st->blocks = fs->nblocks * fs->upb;
	st->bfree = fs->free_blocks * fs->upb + fs->free_units_in_pools;
	st->bavail = st->bfree - base_min(fs->free_blocks, alloc_reserve(fs, ALLOC_DATA)) * fs->upb;
	st->ffree = st->bavail;
	st->files = st->blocks;
	st->namemax = VMFS_NAME_MAX;
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

void vmfs_feature_names(int word, uint64_t bits, char *buf, size_t len)
{
	size_t used = 0;

	if (!bits) {
		snprintf(buf, len, "none");
		return;
	}
	buf[0] = 0;
	if (word == 2 && (bits & VMFS_INCOMPAT_SHARED)) { /* 0 compat, 1 ro_compat, 2 incompat */
		used += (size_t)snprintf(buf + used, len - base_min(used, len), "shared_blocks");
		bits &= ~(uint64_t)VMFS_INCOMPAT_SHARED;
	}
	if (word == 2 && (bits & VMFS_INCOMPAT_ENCRYPTED) && used < len) {
		used += (size_t)snprintf(buf + used, len - used, "%sencrypted", used ? "," : "");
		bits &= ~(uint64_t)VMFS_INCOMPAT_ENCRYPTED;
	}
	if (bits && used < len)
		snprintf(buf + used, len - used, "%sunknown(0x%llx)", used ? "," : "", (unsigned long long)bits);
}

int vmfs_get_info(struct vmfs *fs, struct vmfs_info *in)
{
	const struct vmfs_sb_disk *sb = &fs->sb;

	memset(in, 0, sizeof(*in));
	pthread_mutex_lock(&fs->lock);
	memcpy(in->label, sb->sb_label, sizeof(in->label) - 1);
	memcpy(in->uuid, sb->sb_uuid, 16);
	in->version_major = le16_to_cpu(sb->sb_hdr.mh_version);
	in->version_minor = le16_to_cpu(sb->sb_version_minor);
	in->compat = le64_to_cpu(sb->sb_compat);
	in->ro_compat = le64_to_cpu(sb->sb_ro_compat);
	in->incompat = le64_to_cpu(sb->sb_incompat);
	in->size = le64_to_cpu(sb->sb_size);
	in->block_size = fs->block_size;
	in->sector_size = le32_to_cpu(sb->sb_sector_size);
	in->data_blocks = fs->nblocks;
	in->free_blocks = fs->free_blocks;
	in->free_bytes = fs->free_blocks * fs->block_size + fs->free_units_in_pools * VMFS_UNIT;
	in->host_slots = le32_to_cpu(sb->sb_host_slots);
	in->slot = fs->slot;
	in->journal_size = le64_to_cpu(sb->sb_journal_len);
	in->reserved_blocks = base_min(fs->free_blocks, alloc_reserve(fs, ALLOC_DATA));
	in->pools = fs->npools;
	in->pool_free_units = fs->free_units_in_pools;
	if (!journal_slots(fs, NULL, &in->journals, &in->journal_bytes))
		in->journal_bytes *= VMFS_UNIT;
	in->journal_state = fs->journal_state ? fs->journal_state : "unknown";
	in->rc_count = fs->rc_count;
	in->rc_inited = le64_to_cpu(sb->sb_rc_inited);
	in->io_engine = dev_engine_name(fs->dev);
	in->mkfs_time_ns = (int64_t)le64_to_cpu(sb->sb_mkfs_time);
	pthread_mutex_unlock(&fs->lock);
	crypt_info(fs, in);
	return 0;
}
