/*
 * Metadata blocks: the buffer cache, validation of every block read, operations
 * that can be undone, and the host journal that makes each transaction atomic.
 *
 * Journal protocol (docs/FORMAT.md, "Journal"). Invariants:
 *  J1. A metadata block is written in place only after the transaction holding
 *      its new image has a durable commit block.
 *  J2. A commit block is written only after its descriptor and every image it
 *      covers are durable (flush between them).
 *  J3. Sequence numbers grow by one per transaction, across mounts; replay starts
 *      at (js_tail_seq, js_tail_pos) and stops at the first position whose
 *      descriptor or commit does not match the expected sequence, UUID and crcs.
 *  J4. The tail moves (journal superblock rewritten) only after the in-place
 *      writes of every transaction before the new tail are durable.
 *  J5. A block freed in the running transaction is not handed out again until
 *      that transaction has committed (the pending list), so a crash can never
 *      leave a committed pointer to a block that was already reused.
 *  J6. A sub-block freed by a transaction is not handed out again until the
 *      tail has moved past that transaction: it may come back as file data,
 *      which no transaction covers, and replay must not write an older
 *      metadata image over it. journal_commit() checkpoints (flush, tail =
 *      head) after in-place writing a transaction that freed a sub-block.
 *
 *   running --journal_commit()--> [desc+images] --flush--> [commit] --flush-->
 *   in place (no flush) --journal_tail_advance()--> flush, jsb.tail = head
 *   (at once when the transaction freed a sub-block, J6; else when the log is full)
 */
#include "vmfs/vmfs_i.h"

#include <stdarg.h>

void vmfs_report(struct vmfs *fs, const char *fmt, ...)
{
	va_list ap;
	char line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (fs && fs->errbuf)
		memcpy(fs->errbuf, line, base_min(strlen(line) + 1, (size_t)256)), fs->errbuf[255] = 0;
	else if (fs && fs->report)
		fs->report(fs->report_ctx, line);
	else
		fprintf(stderr, "vmfs: %s\n", line);
}

void vmfs_set_report(struct vmfs *fs, void (*fn)(void *ctx, const char *line), void *ctx)
{
	pthread_mutex_lock(&fs->lock);
	fs->report = fn;
	fs->report_ctx = ctx;
	pthread_mutex_unlock(&fs->lock);
}

/* ---- validation ---------------------------------------------------------- */

void meta_seal(struct vmfs *fs, void *block)
{
	struct vmfs_mhdr *h = block;
	uint32_t crc;

	h->mh_version = cpu_to_le16(VMFS_VERSION_MAJOR);
	memcpy(h->mh_uuid, fs->sb.sb_uuid, 16);
	crc = base_crc32c(0, block, VMFS_CRC_OFF);
	memcpy((uint8_t *)block + VMFS_CRC_OFF, &(le32){ cpu_to_le32(crc) }, 4);
}

static uint32_t block_crc(const void *block)
{
	le32 v;
	memcpy(&v, (const uint8_t *)block + VMFS_CRC_OFF, 4);
	return le32_to_cpu(v);
}

/* Returns 0, -EBADMSG (checksum) or -EUCLEAN (a good block that is not the one expected). */
int meta_check(struct vmfs *fs, const void *block, uint64_t addr, uint32_t magic)
{
	const struct vmfs_mhdr *h = block;
	uint32_t crc = base_crc32c(0, block, VMFS_CRC_OFF);

	if (crc != block_crc(block))
		return -EBADMSG;
	if (le32_to_cpu(h->mh_magic) != magic || le16_to_cpu(h->mh_version) != VMFS_VERSION_MAJOR ||
	    le64_to_cpu(h->mh_addr) != addr || memcmp(h->mh_uuid, fs->sb.sb_uuid, 16))
		return -EUCLEAN;
	return 0;
}

static const char *magic_name(uint32_t magic)
{
	switch (magic) {
	case VMFS_MAGIC_SB: return "superblock";
	case VMFS_MAGIC_RC: return "resource cluster";
	case VMFS_MAGIC_POOL: return "sub-block pool";
	case VMFS_MAGIC_INODE: return "inode";
	case VMFS_MAGIC_PTR: return "pointer block";
	case VMFS_MAGIC_REDIR: return "redirect sub-block";
	case VMFS_MAGIC_DIR: return "directory block";
	case VMFS_MAGIC_JSB: return "journal superblock";
	case VMFS_MAGIC_HSTATE: return "host state block";
	default: return "metadata block";
	}
}

/* ---- cache --------------------------------------------------------------- */

int cache_init(struct vmfs *fs)
{
	fs->bhash_size = 1 << 16;
	fs->bhash = calloc(fs->bhash_size, sizeof(*fs->bhash));
	if (!fs->bhash)
		return -ENOMEM;
	fs->max_bufs = 32768; /* 128 MiB of clean metadata */
	fs->lru.lru_next = fs->lru.lru_prev = &fs->lru;
	return 0;
}

static size_t bhash_idx(struct vmfs *fs, uint64_t addr)
{
	return (size_t)((addr * 0x9E3779B97F4A7C15ull) >> 40) & (fs->bhash_size - 1);
}

static void lru_unlink(struct vbuf *b)
{
	if (b->lru_next) {
		b->lru_prev->lru_next = b->lru_next;
		b->lru_next->lru_prev = b->lru_prev;
		b->lru_next = b->lru_prev = NULL;
	}
}

static void lru_add(struct vmfs *fs, struct vbuf *b)
{
	b->lru_next = &fs->lru;
	b->lru_prev = fs->lru.lru_prev;
	fs->lru.lru_prev->lru_next = b;
	fs->lru.lru_prev = b;
}

static void buf_unhash_free(struct vmfs *fs, struct vbuf *b)
{
	struct vbuf **pp = &fs->bhash[bhash_idx(fs, b->addr)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	lru_unlink(b);
	free(b->data);
	free(b->undo);
	free(b);
	fs->nbufs--;
}

static void cache_trim(struct vmfs *fs)
{
	while (fs->nbufs > fs->max_bufs && fs->lru.lru_next != &fs->lru)
		buf_unhash_free(fs, fs->lru.lru_next);
}

static struct vbuf *cache_find(struct vmfs *fs, uint64_t addr)
{
	for (struct vbuf *b = fs->bhash[bhash_idx(fs, addr)]; b; b = b->hnext)
		if (b->addr == addr)
			return b;
	return NULL;
}

static struct vbuf *cache_add(struct vmfs *fs, uint64_t addr)
{
	struct vbuf *b = calloc(1, sizeof(*b));
	size_t i = bhash_idx(fs, addr);

	if (!b)
		return NULL;
	b->data = dev_alloc_buf(VMFS_UNIT);
	if (!b->data) {
		free(b);
		return NULL;
	}
	b->addr = addr;
	b->hnext = fs->bhash[i];
	fs->bhash[i] = b;
	fs->nbufs++;
	return b;
}

/* Forgets every cached block (another host may have changed them). None may be in use. */
int cache_drop_all(struct vmfs *fs)
{
	for (size_t i = 0; i < fs->bhash_size; i++) {
		for (struct vbuf *b = fs->bhash[i], *next; b; b = next) {
			next = b->hnext;
			if (b->refs || b->dirty || b->in_undo) {
				fs_err(fs, "internal: block %llu is in use while the cache is dropped",
				       (unsigned long long)b->addr);
				return -EIO;
			}
			buf_unhash_free(fs, b);
		}
	}
	return 0;
}

void cache_release(struct vmfs *fs)
{
	for (size_t i = 0; fs->bhash && i < fs->bhash_size; i++) {
		while (fs->bhash[i]) {
			struct vbuf *b = fs->bhash[i];
			fs->bhash[i] = b->hnext;
			free(b->data);
			free(b->undo);
			free(b);
		}
	}
	free(fs->bhash);
	fs->bhash = NULL;
}

static void buf_hold(struct vbuf *b)
{
	if (b->refs++ == 0)
		lru_unlink(b);
}

void meta_put(struct vmfs *fs, struct vbuf *b)
{
	if (!b)
		return;
	if (--b->refs == 0 && b->stale && !b->dirty && !b->in_undo) {
		buf_unhash_free(fs, b);
		return;
	}
	if (b->refs == 0 && !b->dirty && !b->in_undo && !b->overlay) {
		lru_add(fs, b);
		cache_trim(fs);
	}
}

/* Drops a clean, unreferenced block from the cache (after it was freed). */
void meta_forget(struct vmfs *fs, uint64_t addr)
{
	struct vbuf *b = cache_find(fs, addr);
	if (b && !b->refs && !b->dirty && !b->in_undo && !b->overlay)
		buf_unhash_free(fs, b);
}

/*
 * Reads and validates the block at addr. Another host may be rewriting it, so a
 * checksum failure is retried a few times before it is called corruption.
 */
int meta_read(struct vmfs *fs, uint64_t addr, uint32_t magic, struct vbuf **out)
{
	struct vbuf *b = cache_find(fs, addr);
	int ret = 0;

	if (b) {
		/* cached blocks may be dirty (crc not yet sealed): check the type only */
		if (le32_to_cpu(((struct vmfs_mhdr *)b->data)->mh_magic) != magic) {
			fs_err(fs, "%s %llu: cached block has the wrong type", magic_name(magic),
			       (unsigned long long)addr);
			return -EUCLEAN;
		}
		buf_hold(b);
		*out = b;
		return 0;
	}
	if (addr * VMFS_UNIT + VMFS_UNIT > le64_to_cpu(fs->sb.sb_size) || (addr == 0) != (magic == VMFS_MAGIC_SB)) {
		fs_err(fs, "%s %llu: address outside the datastore", magic_name(magic),
		       (unsigned long long)addr);
		return -EUCLEAN;
	}
	b = cache_add(fs, addr);
	if (!b)
		return -ENOMEM;
	for (int tries = 0; tries < 3; tries++) {
		ret = dev_pread(fs->dev, b->data, VMFS_UNIT, addr * VMFS_UNIT);
		if (ret)
			break;
		ret = meta_check(fs, b->data, addr, magic);
		if (ret != -EBADMSG)
			break;
	}
	if (ret) {
		if (ret == -EBADMSG)
			fs_err(fs, "%s %llu: bad checksum (stored 0x%08x, computed 0x%08x)",
			       magic_name(magic), (unsigned long long)addr, block_crc(b->data),
			       base_crc32c(0, b->data, VMFS_CRC_OFF));
		else if (ret == -EUCLEAN)
			fs_err(fs, "%s %llu: not a %s (magic 0x%08x, address %llu)", magic_name(magic),
			       (unsigned long long)addr, magic_name(magic),
			       le32_to_cpu(((struct vmfs_mhdr *)b->data)->mh_magic),
			       (unsigned long long)le64_to_cpu(((struct vmfs_mhdr *)b->data)->mh_addr));
		else
			fs_err(fs, "%s %llu: read failed: %s", magic_name(magic),
			       (unsigned long long)addr, strerror(-ret));
		buf_unhash_free(fs, b);
		return ret;
	}
	buf_hold(b);
	*out = b;
	return 0;
}

static int save_undo(struct vmfs *fs, struct vbuf *b, bool is_new)
{
	if (b->in_undo)
		return 0;
	if (!is_new) {
		b->undo = malloc(VMFS_UNIT);
		if (!b->undo)
			return -ENOMEM;
		memcpy(b->undo, b->data, VMFS_UNIT);
	}
	b->is_new = is_new;
	b->in_undo = true;
	b->undo_next = fs->undo_list;
	fs->undo_list = b;
	return 0;
}

int meta_dirty(struct vmfs *fs, struct vbuf *b)
{
	int ret;

	if (fs->ro)
		return -EROFS;
	ret = save_undo(fs, b, false);
	if (ret)
		return ret;
	if (!b->dirty) {
		b->dirty = true;
		b->dirty_next = fs->dirty_list;
		fs->dirty_list = b;
		fs->ndirty++;
	}
	return 0;
}

/* A fresh block at addr (just allocated): zeroed, header filled, dirty. */
int meta_new(struct vmfs *fs, uint64_t addr, uint32_t magic, uint64_t owner, struct vbuf **out)
{
	struct vbuf *b = cache_find(fs, addr);
	struct vmfs_mhdr *h;
	bool existed = b != NULL;
	int ret;

	if (fs->ro)
		return -EROFS;
	if (!b) {
		b = cache_add(fs, addr);
		if (!b)
			return -ENOMEM;
	}
	buf_hold(b);
	ret = save_undo(fs, b, !existed);
	if (ret) {
		meta_put(fs, b);
		return ret;
	}
	memset(b->data, 0, VMFS_UNIT);
	h = (struct vmfs_mhdr *)b->data;
	h->mh_magic = cpu_to_le32(magic);
	h->mh_addr = cpu_to_le64(addr);
	h->mh_owner = cpu_to_le64(owner);
	meta_seal(fs, b->data);
	if (!b->dirty) {
		b->dirty = true;
		b->dirty_next = fs->dirty_list;
		fs->dirty_list = b;
		fs->ndirty++;
	}
	*out = b;
	return 0;
}

/* ---- operations ------------------------------------------------------------ */

/*
 * Takes fs->lock and makes sure this host may read (write: change) metadata:
 * in a cluster, that it holds META in a good mode (cluster.c, C1). On failure
 * fs->lock is not held.
 */
int fs_enter(struct vmfs *fs, bool write)
{
	int ret;

	pthread_mutex_lock(&fs->lock);
	ret = cluster_meta(fs, write);
	if (ret)
		pthread_mutex_unlock(&fs->lock);
	return ret;
}

void fs_leave(struct vmfs *fs)
{
	pthread_mutex_unlock(&fs->lock);
}

/*
 * Starts an operation that may change metadata. fs->lock is taken even when
 * this fails (the cluster refused META): the caller treats the result as the
 * operation's error and ends it with op_end() as always.
 */
int op_begin(struct vmfs *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->op_active = true;
	fs->op_nwipe = fs->nwipe;
	return cluster_meta(fs, true);
}

static void dirty_list_remove(struct vmfs *fs, struct vbuf *b)
{
	struct vbuf **pp = &fs->dirty_list;
	while (*pp && *pp != b)
		pp = &(*pp)->dirty_next;
	if (*pp) {
		*pp = b->dirty_next;
		fs->ndirty--;
	}
	b->dirty = false;
}

/* Undoes every block change of the running operation. */
static void op_rollback(struct vmfs *fs)
{
	struct vbuf *b, *next;

	fs->redir_hint = 0; /* it may name a table this operation made (redirect.c) */
	fs->nwipe = fs->op_nwipe; /* what it freed is in use again: not to be zeroed */
	for (b = fs->undo_list; b; b = next) {
		next = b->undo_next;
		b->in_undo = false;
		if (b->is_new) {
			alloc_undo_hook(fs, b, NULL);
			dirty_list_remove(fs, b);
			if (!b->refs)
				buf_unhash_free(fs, b);
			else {
				memset(b->data, 0, VMFS_UNIT); /* a holder will not trust it: no magic */
				b->stale = true;
			}
			continue;
		}
		alloc_undo_hook(fs, b, b->undo);
		memcpy(b->data, b->undo, VMFS_UNIT);
		free(b->undo);
		b->undo = NULL;
		/* it may have been dirty from an earlier operation; keep it then (same image is harmless) */
		if (!b->refs && !b->dirty)
			lru_add(fs, b);
	}
	fs->undo_list = NULL;
}

static void op_accept(struct vmfs *fs)
{
	struct vbuf *b, *next;
	for (b = fs->undo_list; b; b = next) {
		next = b->undo_next;
		b->in_undo = false;
		b->is_new = false;
		free(b->undo);
		b->undo = NULL;
		if (!b->refs && !b->dirty && !b->overlay)
			lru_add(fs, b);
	}
	fs->undo_list = NULL;
}

/*
 * Ends an operation: on error, undo it; else keep it and commit when due
 * (always when commit_ms is 0, else when the transaction grew large). Unlocks.
 */
int op_end(struct vmfs *fs, int err)
{
	if (err < 0)
		op_rollback(fs);
	else
		op_accept(fs);
	fs->op_active = false;
	if (err >= 0 && fs->ndirty && !fs->no_journal && (fs->commit_ms == 0 || fs->ndirty > VMFS_JDESC_MAX / 2)) {
		int ret = journal_commit(fs);
		if (ret < 0)
			err = ret;
	}
	pthread_mutex_unlock(&fs->lock);
	return err;
}

/* Inside a long operation (truncating a huge file): make what is done so far permanent. */
int op_maybe_commit(struct vmfs *fs)
{
	if (fs->ndirty < VMFS_JDESC_MAX / 2 || fs->no_journal)
		return 0;
	op_accept(fs);
	return journal_commit(fs);
}

/* ---- host table ------------------------------------------------------------ */

/* 0, -ENOENT for a record never written (no journal yet), -EUCLEAN for a damaged one. */
static int hostrec_check(struct vmfs *fs, unsigned slot, const struct vmfs_hostrec_disk *rec)
{
	if (le32_to_cpu(rec->hr_magic) != VMFS_MAGIC_HOSTREC)
		return -ENOENT;
	if (base_crc32c(0, rec, 0x1fc) != le32_to_cpu(rec->hr_crc) || memcmp(rec->hr_uuid, fs->sb.sb_uuid, 16) ||
	    le64_to_cpu(rec->hr_slot) != slot)
		return -EUCLEAN;
	return 0;
}

int hostrec_read(struct vmfs *fs, unsigned slot, struct vmfs_hostrec_disk *rec)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size);
	uint8_t *buf = dev_alloc_buf(ss);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = dev_pread(fs->dev, buf, ss, le64_to_cpu(fs->sb.sb_hosttab_off) + (uint64_t)slot * ss);
	if (!ret) {
		memcpy(rec, buf, sizeof(*rec));
		ret = hostrec_check(fs, slot, rec);
	}
	free(buf);
	return ret;
}

/* The whole host table in one read; *tab is the caller's to free (also on error: NULL then). */
static int hosttab_read(struct vmfs *fs, uint8_t **tab)
{
	size_t len = (size_t)le32_to_cpu(fs->sb.sb_host_slots) * le32_to_cpu(fs->sb.sb_slot_size);
	int ret;

	*tab = dev_alloc_buf(len);
	if (!*tab)
		return -ENOMEM;
	ret = dev_pread(fs->dev, *tab, len, le64_to_cpu(fs->sb.sb_hosttab_off));
	if (ret) {
		free(*tab);
		*tab = NULL;
	}
	return ret;
}

/*
 * The journals the host table points at: sets bit s of bits (when not NULL,
 * host_slots bits, cleared first) for each slot whose record is intact and has
 * a journal, and counts them and their units (count, units: NULL when not
 * wanted). A damaged record counts as none (fsck reports it).
 */
int journal_slots(struct vmfs *fs, uint8_t *bits, uint64_t *count, uint64_t *units)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size), slots = le32_to_cpu(fs->sb.sb_host_slots);
	uint64_t n = 0, u = 0;
	uint8_t *tab;
	int ret = hosttab_read(fs, &tab);

	if (bits)
		memset(bits, 0, (slots + 7) / 8);
	for (unsigned s = 0; s < slots && !ret; s++) {
		const struct vmfs_hostrec_disk *rec = (const void *)(tab + (size_t)s * ss);

		if (hostrec_check(fs, s, rec) || !rec->hr_journal)
			continue;
		if (bits)
			bits[s / 8] |= (uint8_t)(1u << (s % 8));
		n++;
		u += le64_to_cpu(rec->hr_journal_units);
	}
	free(tab);
	if (count)
		*count = n;
	if (units)
		*units = u;
	return ret;
}

static int hostrec_write(struct vmfs *fs, unsigned slot, struct vmfs_hostrec_disk *rec)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size);
	uint8_t *buf = dev_alloc_buf(ss);
	int ret;

	if (!buf)
		return -ENOMEM;
	rec->hr_magic = cpu_to_le32(VMFS_MAGIC_HOSTREC);
	rec->hr_version = cpu_to_le16(VMFS_VERSION_MAJOR);
	rec->hr_slot = cpu_to_le64(slot);
	memcpy(rec->hr_uuid, fs->sb.sb_uuid, 16);
	rec->hr_gen = cpu_to_le64(le64_to_cpu(rec->hr_gen) + 1);
	rec->hr_crc = cpu_to_le32(base_crc32c(0, rec, 0x1fc));
	memcpy(buf, rec, sizeof(*rec));
	ret = dev_pwrite(fs->dev, buf, ss, le64_to_cpu(fs->sb.sb_hosttab_off) + (uint64_t)slot * ss);
	if (!ret)
		ret = dev_flush(fs->dev);
	free(buf);
	return ret;
}

/*
 * This host says, in its own record, which datastore key epoch it holds (a
 * key change waits for every live host to say the new one). One sector
 * write. A slot without a record (no journal yet) has nothing to say it in:
 * the journal's first write makes one, with the epoch (journal_create).
 */
int hostrec_set_key_epoch(struct vmfs *fs, uint32_t epoch)
{
	struct vmfs_hostrec_disk rec;
	int ret = hostrec_read(fs, fs->slot, &rec);

	if (ret == -ENOENT)
		return 0;
	if (ret || le32_to_cpu(rec.hr_key_epoch) == epoch)
		return ret;
	rec.hr_key_epoch = cpu_to_le32(epoch);
	return hostrec_write(fs, fs->slot, &rec);
}

/* ---- journal ------------------------------------------------------------------ */

static uint64_t log_units(struct vmfs *fs)
{
	return fs->j_units - VMFS_JOURNAL_LOG_START;
}

static uint64_t log_addr(struct vmfs *fs, uint64_t pos)
{
	return fs->j_unit + VMFS_JOURNAL_LOG_START + pos % log_units(fs);
}

/* Writes n consecutive units of data starting at log position pos (wrapping). */
static int log_write(struct vmfs *fs, uint64_t pos, const uint8_t *data, uint64_t n)
{
	pos %= log_units(fs);
	while (n) {
		uint64_t run = base_min(n, log_units(fs) - pos);
		int ret = dev_pwrite(fs->dev, data, run * VMFS_UNIT, log_addr(fs, pos) * VMFS_UNIT);
		if (ret)
			return ret;
		data += run * VMFS_UNIT;
		n -= run;
		pos = 0;
	}
	return 0;
}

static int jsb_write(struct vmfs *fs, bool clean)
{
	struct vmfs_jsb_disk *js = dev_alloc_buf(VMFS_UNIT);
	int ret;

	if (!js)
		return -ENOMEM;
	js->js_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_JSB);
	js->js_hdr.mh_addr = cpu_to_le64(fs->j_unit);
	js->js_hdr.mh_gen = cpu_to_le64(fs->j_seq);
	js->js_hdr.mh_owner = cpu_to_le64(fs->slot);
	js->js_units = cpu_to_le64(fs->j_units);
	js->js_tail_seq = cpu_to_le64(fs->j_tail_seq);
	js->js_tail_pos = cpu_to_le64(fs->j_tail);
	js->js_flags = cpu_to_le32(clean ? VMFS_JSB_CLEAN : 0);
	meta_seal(fs, js);
	ret = dev_pwrite(fs->dev, js, VMFS_UNIT, fs->j_unit * VMFS_UNIT);
	if (!ret)
		ret = dev_flush(fs->dev);
	free(js);
	return ret;
}

/* J4: everything before head is in place once flushed; the tail may move there. */
static int journal_tail_advance(struct vmfs *fs, bool clean)
{
	int ret = dev_flush(fs->dev);
	if (ret)
		return ret;
	fs->j_tail = fs->j_head % log_units(fs);
	fs->j_head = fs->j_tail;
	fs->j_tail_seq = fs->j_seq;
	return jsb_write(fs, clean);
}

static void fatal(struct vmfs *fs, int err, const char *what)
{
	if (!fs->fatal) {
		if (vmfs_fenced(fs)) /* the device's write gate refused it (cluster.c, C4) */
			fs_err(fs, "%s refused: this host lost its heartbeat lease (fenced): the datastore is unavailable here until it is mounted again",
			       what);
		else
			fs_err(fs, "%s failed (%s): the datastore is now read-only for this host", what,
			       strerror(-err));
		fs->fence_reported = vmfs_fenced(fs);
		fs->fatal = err;
	}
}

/* Commits the running transaction (J1, J2, J5, J6). Called with fs->lock held. */
int journal_commit(struct vmfs *fs)
{
	uint64_t n = fs->ndirty, need, i;
	struct vmfs_jdesc_disk *jd;
	struct vmfs_jcommit_disk *jc;
	struct vbuf *b, **list;
	struct dev_req *reqs;
	uint8_t *log;
	uint32_t crc;
	int ret;

	if (fs->fatal)
		return -EIO;
	if (!n)
		return 0;
	fs->meta_changed = true; /* META goes with a version bump (cluster.c, C3) */
	if (n > VMFS_JDESC_MAX || n + 2 > log_units(fs)) {
		fatal(fs, -E2BIG, "journal commit (transaction too large)");
		return -EIO;
	}
	need = n + 2;
	if (fs->j_head - fs->j_tail + need > log_units(fs)) {
		ret = journal_tail_advance(fs, false);
		if (ret) {
			fatal(fs, ret, "journal checkpoint");
			return -EIO;
		}
	}
	log = dev_alloc_buf((n + 1) * VMFS_UNIT);
	jc = dev_alloc_buf(VMFS_UNIT);
	list = calloc(n, sizeof(*list));
	reqs = calloc(n, sizeof(*reqs));
	if (!log || !jc || !list || !reqs) {
		ret = -ENOMEM;
		goto err_free;
	}
	jd = (struct vmfs_jdesc_disk *)log;
	for (b = fs->dirty_list, i = n; b; b = b->dirty_next) {
		struct vmfs_mhdr *h = (struct vmfs_mhdr *)b->data;
		list[--i] = b;
		h->mh_gen = cpu_to_le64(le64_to_cpu(h->mh_gen) + 1);
		meta_seal(fs, b->data);
	}
	jd->jd_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_JDESC);
	jd->jd_hdr.mh_addr = cpu_to_le64(log_addr(fs, fs->j_head));
	jd->jd_hdr.mh_gen = cpu_to_le64(fs->j_seq);
	jd->jd_hdr.mh_owner = cpu_to_le64(fs->slot);
	jd->jd_seq = cpu_to_le64(fs->j_seq);
	jd->jd_count = cpu_to_le32((uint32_t)n);
	for (i = 0; i < n; i++) {
		jd->jd_addr[i] = cpu_to_le64(list[i]->addr);
		memcpy(log + (i + 1) * VMFS_UNIT, list[i]->data, VMFS_UNIT);
	}
	meta_seal(fs, jd);
	crc = base_crc32c(0, log, (n + 1) * VMFS_UNIT);

	jc->jc_hdr.mh_magic = cpu_to_le32(VMFS_MAGIC_JCOMMIT);
	jc->jc_hdr.mh_addr = cpu_to_le64(log_addr(fs, fs->j_head + n + 1));
	jc->jc_hdr.mh_gen = cpu_to_le64(fs->j_seq);
	jc->jc_hdr.mh_owner = cpu_to_le64(fs->slot);
	jc->jc_seq = cpu_to_le64(fs->j_seq);
	jc->jc_count = cpu_to_le32((uint32_t)n);
	jc->jc_data_crc = cpu_to_le32(crc);
	meta_seal(fs, jc);

	/* J2: descriptor and images, flush, then the commit block, flush. */
	ret = log_write(fs, fs->j_head, log, n + 1);
	if (!ret)
		ret = dev_flush(fs->dev);
	if (!ret)
		ret = log_write(fs, fs->j_head + n + 1, (uint8_t *)jc, 1);
	if (!ret)
		ret = dev_flush(fs->dev);
	if (ret) {
		fatal(fs, ret, "journal write");
		ret = -EIO;
		goto err_free;
	}
	/* J1: now in place; durable at the next flush, before the tail moves (J4). */
	for (i = 0; i < n && !fs->j_no_inplace; i++)
		reqs[i] = (struct dev_req){ .op = DEV_OP_WRITE, .buf = list[i]->data,
					    .len = VMFS_UNIT, .off = list[i]->addr * VMFS_UNIT };
	ret = fs->j_no_inplace ? 0 : dev_submit_wait(fs->dev, reqs, (unsigned)n);
	if (ret) {
		fatal(fs, ret, "in-place metadata write");
		ret = -EIO;
		goto err_free;
	}
	for (i = 0; i < n && !fs->j_no_inplace && !ret; i++)
		if (list[i]->addr == 0) /* the superblock keeps its backup in step */
			ret = dev_pwrite(fs->dev, list[i]->data, VMFS_UNIT, VMFS_SB_BACKUP_OFF);
	if (ret) {
		fatal(fs, ret, "backup superblock write");
		ret = -EIO;
		goto err_free;
	}
	fs->j_head += need;
	fs->j_seq++;
	for (i = 0; i < n; i++) {
		list[i]->dirty = false;
		list[i]->dirty_next = NULL;
		if (!list[i]->refs && !list[i]->in_undo)
			lru_add(fs, list[i]);
	}
	fs->dirty_list = NULL;
	fs->ndirty = 0;
	/* J6: no sub-block this transaction freed is reused while the log holds an image of it */
	for (i = 0; i < fs->npending && !fs->j_no_inplace; i++) {
		if (unit_is_block(fs, fs->pending[i]))
			continue;
		ret = journal_tail_advance(fs, false);
		if (ret) {
			fatal(fs, ret, "journal checkpoint");
			ret = -EIO;
			goto err_free;
		}
		break;
	}
	for (i = 0; i < fs->npending; i++)
		meta_forget(fs, fs->pending[i]); /* a freed block's old image must not be found again */
	/* a deep rekey's old blocks lose their old ciphertext before anything can use them again */
	for (i = 0; i < fs->nwipe && !ret; i++)
		ret = dev_zero_range(fs->dev, fs->wipe[i] * VMFS_UNIT,
				     unit_is_block(fs, fs->wipe[i]) ? fs->block_size : VMFS_UNIT);
	fs->nwipe = fs->op_nwipe = 0;
	if (ret) {
		fatal(fs, ret, "zeroing freed blocks");
		ret = -EIO;
		goto err_free;
	}
	fs->npending = 0; /* J5: what was freed is free for good now */
	fs->last_commit_ns = base_mono_ns();
	cache_trim(fs);
err_free:
	free(reqs);
	free(list);
	free(jc);
	free(log);
	return ret;
}

/*
 * Scans the log from the tail and hands each complete transaction to apply.
 * Returns the number of transactions found, or -errno.
 */
static int journal_scan(struct vmfs *fs, int (*apply)(struct vmfs *, uint64_t, const uint8_t *))
{
	uint8_t *blk = dev_alloc_buf(VMFS_UNIT), *images = NULL;
	uint64_t pos = fs->j_tail, seq = fs->j_tail_seq;
	int found = 0, ret = 0;

	if (!blk)
		return -ENOMEM;
	images = dev_alloc_buf(VMFS_JDESC_MAX * VMFS_UNIT);
	if (!images) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t scanned = 0; scanned < log_units(fs);) {
		struct vmfs_jdesc_disk *jd = (struct vmfs_jdesc_disk *)blk;
		struct vmfs_jcommit_disk *jc = (struct vmfs_jcommit_disk *)blk;
		le64 addrs[VMFS_JDESC_MAX];
		uint32_t n, crc;

		ret = dev_pread(fs->dev, blk, VMFS_UNIT, log_addr(fs, pos) * VMFS_UNIT);
		if (ret)
			goto out;
		if (meta_check(fs, blk, log_addr(fs, pos), VMFS_MAGIC_JDESC) ||
		    le64_to_cpu(jd->jd_seq) != seq)
			break;
		n = le32_to_cpu(jd->jd_count);
		if (n == 0 || n > VMFS_JDESC_MAX || n + 2 > log_units(fs) - scanned)
			break;
		memcpy(addrs, jd->jd_addr, sizeof(addrs));
		crc = base_crc32c(0, blk, VMFS_UNIT);
		for (uint32_t i = 0; i < n; i++) {
			ret = dev_pread(fs->dev, images + (size_t)i * VMFS_UNIT, VMFS_UNIT,
					log_addr(fs, pos + 1 + i) * VMFS_UNIT);
			if (ret)
				goto out;
		}
		crc = base_crc32c(crc, images, (size_t)n * VMFS_UNIT);
		ret = dev_pread(fs->dev, blk, VMFS_UNIT, log_addr(fs, pos + 1 + n) * VMFS_UNIT);
		if (ret)
			goto out;
		if (meta_check(fs, blk, log_addr(fs, pos + 1 + n), VMFS_MAGIC_JCOMMIT) ||
		    le64_to_cpu(jc->jc_seq) != seq || le32_to_cpu(jc->jc_count) != n ||
		    le32_to_cpu(jc->jc_data_crc) != crc)
			break; /* torn or never committed: the transaction did not happen */
		for (uint32_t i = 0; i < n; i++) {
			uint64_t a = le64_to_cpu(addrs[i]);
			/* unit 0 is the superblock, journaled like any block (sb_rc_inited) */
			if (a >= le64_to_cpu(fs->sb.sb_size) / VMFS_UNIT) {
				fs_err(fs, "journal: transaction %llu names block %llu outside the datastore",
				       (unsigned long long)seq, (unsigned long long)a);
				ret = -EUCLEAN;
				goto out;
			}
			ret = apply(fs, a, images + (size_t)i * VMFS_UNIT);
			if (ret)
				goto out;
			if (a == 0) /* both superblock copies are rewritten by this replay */
				fs->j_sb_replayed = true;
		}
		found++;
		seq++;
		pos = (pos + n + 2) % log_units(fs);
		scanned += n + 2;
	}
	fs->j_seq = seq;
	fs->j_head = pos;
	ret = found;
out:
	free(images);
	free(blk);
	return ret;
}

static int apply_in_place(struct vmfs *fs, uint64_t addr, const uint8_t *image)
{
	struct vbuf *b = cache_find(fs, addr);
	int ret = dev_pwrite(fs->dev, image, VMFS_UNIT, addr * VMFS_UNIT);

	if (!ret && addr == 0) { /* the superblock keeps its backup in step */
		ret = dev_pwrite(fs->dev, image, VMFS_UNIT, VMFS_SB_BACKUP_OFF);
	}
	if (!ret && b && !b->dirty && !b->in_undo) /* a cached copy (fsck's overlay) follows the disk */
		memcpy(b->data, image, VMFS_UNIT);
	return ret;
}

static int apply_overlay(struct vmfs *fs, uint64_t addr, const uint8_t *image)
{
	struct vbuf *b = cache_find(fs, addr);

	if (!b) {
		b = cache_add(fs, addr);
		if (!b)
			return -ENOMEM;
	}
	lru_unlink(b);
	b->overlay = true;
	memcpy(b->data, image, VMFS_UNIT);
	return 0;
}

/*
 * A journal superblock torn by a power cut. It is written only after a flush
 * and flushed at once (journal_tail_advance), so a torn one was the last write
 * before the cut: on a device whose sector is smaller than a unit, its first
 * sector, which holds every field, is wholly the old or the new version, both
 * valid tails (J4), and only the checksum in its last sector may not match.
 * Such a block is accepted when its header is the expected one and the rest
 * is zero, as written; anything else is corruption.
 */
static bool jsb_torn(struct vmfs *fs, const struct vmfs_jsb_disk *js, uint64_t unit)
{
	const uint8_t *p = (const uint8_t *)js;

	if (dev_sector_size(fs->dev) >= VMFS_UNIT || le32_to_cpu(js->js_hdr.mh_magic) != VMFS_MAGIC_JSB ||
	    le16_to_cpu(js->js_hdr.mh_version) != VMFS_VERSION_MAJOR ||
	    le64_to_cpu(js->js_hdr.mh_addr) != unit || memcmp(js->js_hdr.mh_uuid, fs->sb.sb_uuid, 16))
		return false;
	return base_all_zero(p + offsetof(struct vmfs_jsb_disk, js_reserved),
			     VMFS_CRC_OFF - offsetof(struct vmfs_jsb_disk, js_reserved));
}

static int jsb_read(struct vmfs *fs, uint64_t unit, struct vmfs_jsb_disk *js)
{
	int ret = dev_pread(fs->dev, js, VMFS_UNIT, unit * VMFS_UNIT);
	if (ret)
		return ret;
	ret = meta_check(fs, js, unit, VMFS_MAGIC_JSB);
	if (ret == -EBADMSG && jsb_torn(fs, js, unit))
		return 0;
	if (ret)
		fs_err(fs, "journal superblock %llu: %s", (unsigned long long)unit,
		       ret == -EBADMSG ? "bad checksum" : "not a journal superblock");
	return ret;
}

static int journal_load(struct vmfs *fs, const struct vmfs_hostrec_disk *rec, bool *clean)
{
	struct vmfs_jsb_disk *js = dev_alloc_buf(VMFS_UNIT);
	int ret;

	if (!js)
		return -ENOMEM;
	fs->j_unit = le64_to_cpu(rec->hr_journal);
	fs->j_units = le64_to_cpu(rec->hr_journal_units);
	if (!addr_in_data(fs, fs->j_unit) || fs->j_units < 16 ||
	    !addr_in_data(fs, fs->j_unit + fs->j_units - 1)) {
		fs_err(fs, "host slot %u: journal extent %llu+%llu is outside the data area", fs->slot,
		       (unsigned long long)fs->j_unit, (unsigned long long)fs->j_units);
		ret = -EUCLEAN;
		goto out;
	}
	ret = jsb_read(fs, fs->j_unit, js);
	if (ret)
		goto out;
	fs->j_tail_seq = le64_to_cpu(js->js_tail_seq);
	fs->j_tail = le64_to_cpu(js->js_tail_pos);
	if (le64_to_cpu(js->js_units) != fs->j_units || fs->j_tail >= log_units(fs)) {
		fs_err(fs, "journal superblock %llu: inconsistent with the host table",
		       (unsigned long long)fs->j_unit);
		ret = -EUCLEAN;
		goto out;
	}
	*clean = le32_to_cpu(js->js_flags) & VMFS_JSB_CLEAN;
out:
	free(js);
	return ret;
}

static int journal_scan(struct vmfs *fs, int (*apply)(struct vmfs *, uint64_t, const uint8_t *));
static int apply_in_place(struct vmfs *fs, uint64_t addr, const uint8_t *image);

/*
 * The sequence a log that starts over at position 0 begins with: one above
 * every descriptor and commit the log still holds. Starting at 1 again would
 * let replay take the old transactions still at positions 0, n, ... for new
 * ones (J3): on a journal fsck reset (its superblock was damaged), or on an
 * extent that held a journal before.
 */
static int log_first_seq(struct vmfs *fs, uint64_t *seq)
{
	uint8_t *blk = dev_alloc_buf(VMFS_UNIT);
	int ret = blk ? 0 : -ENOMEM;

	*seq = 1;
	for (uint64_t pos = 0; !ret && pos < log_units(fs); pos++) {
		const struct vmfs_mhdr *h = (const void *)blk;
		ret = dev_pread(fs->dev, blk, VMFS_UNIT, log_addr(fs, pos) * VMFS_UNIT);
		if (!ret && (!meta_check(fs, blk, log_addr(fs, pos), VMFS_MAGIC_JDESC) ||
			     !meta_check(fs, blk, log_addr(fs, pos), VMFS_MAGIC_JCOMMIT)))
			*seq = base_max(*seq, le64_to_cpu(h->mh_gen) + 1);
	}
	free(blk);
	return ret;
}

/*
 * First join of a slot: allocate its journal extent. The allocation itself is
 * the journal's first transaction, written into the new extent before the host
 * record points at it: until that one sector write, nothing has changed.
 */
static int journal_create(struct vmfs *fs, struct vmfs_hostrec_disk *rec)
{
	uint64_t len = le64_to_cpu(fs->sb.sb_journal_len);
	uint64_t nblk = base_div_round_up(len, fs->block_size), unit;
	uint64_t least = base_div_round_up(VMFS_JOURNAL_MIN, fs->block_size);
	struct vbuf *hs;
	int ret;

	ret = op_begin(fs);
	/*
	 * The reserve keeps a journal's worth of blocks free, not one extent: on a
	 * full, fragmented datastore take a shorter journal (down to the least a
	 * journal may be) rather than leave the host out.
	 */
	while (!ret) {
		ret = alloc_extent(fs, nblk, VMFS_REF_JOURNAL, &unit);
		if (ret != -ENOSPC || nblk <= least)
			break;
		nblk = base_max(least, nblk / 2);
		ret = 0;
	}
	if (ret) {
		fs_err(fs, "cannot allocate a %llu-block journal for host slot %u: %s",
		       (unsigned long long)nblk, fs->slot, strerror(-ret));
		op_end(fs, ret);
		return ret;
	}
	fs->j_unit = unit;
	fs->j_units = nblk * fs->upb;
	fs->j_head = fs->j_tail = 0;
	ret = log_first_seq(fs, &fs->j_seq);
	fs->j_tail_seq = fs->j_seq;
	if (!ret)
		ret = meta_new(fs, unit + 1, VMFS_MAGIC_HSTATE, fs->slot, &hs);
	if (!ret) {
		meta_put(fs, hs);
		ret = jsb_write(fs, false);
	}
	if (!ret) {
		/* the first transaction goes to the new log only ... */
		op_accept(fs);
		fs->j_no_inplace = true;
		ret = journal_commit(fs);
		fs->j_no_inplace = false;
	}
	if (ret) {
		op_rollback(fs);
		fs->op_active = false;
		pthread_mutex_unlock(&fs->lock);
		fs->j_unit = 0;
		return ret;
	}
	fs->op_active = false;
	pthread_mutex_unlock(&fs->lock);
	rec->hr_journal = cpu_to_le64(unit);
	rec->hr_journal_units = cpu_to_le64(fs->j_units);
	rec->hr_key_epoch = cpu_to_le32(fs->key ? fs->key->epoch : 0);
	ret = hostrec_write(fs, fs->slot, rec);
	if (ret)
		return ret;
	/* ... and reaches its home blocks by replay, exactly as after a crash here. */
	ret = journal_scan(fs, apply_in_place);
	return ret < 0 ? ret : journal_tail_advance(fs, false);
}

/* Loads the slot's journal and replays it (in place, or into the cache when read-only). */
int journal_open(struct vmfs *fs)
{
	struct vmfs_hostrec_disk rec;
	bool clean = false;
	int ret;

	ret = hostrec_read(fs, fs->slot, &rec);
	if (ret == -ENOENT) {
		fs->journal_state = "not allocated";
		return 0;
	}
	if (ret) {
		fs_err(fs, "host slot %u: host record is damaged", fs->slot);
		return ret;
	}
	ret = journal_load(fs, &rec, &clean);
	if (ret)
		return ret;
	fs->journal_state = clean ? "clean" : "needs recovery";
	ret = journal_scan(fs, fs->ro ? apply_overlay : apply_in_place);
	if (ret < 0)
		return ret;
	fs->j_replayed = ret > 0;
	if (fs->ro && !clean && !ret)
		fs->journal_state = "in use"; /* nothing to replay: a live host's, or one that died idle */
	if (fs->ro)
		return 0;
	/* the replayed images are written; make them durable, then start a fresh log */
	fs->journal_state = "in use";
	return journal_tail_advance(fs, false);
}

/* First read-write open on this slot: allocate its journal (the allocator is loaded). */
int journal_join(struct vmfs *fs)
{
	struct vmfs_hostrec_disk rec;
	int ret;

	if (fs->j_unit || fs->ro)
		return 0;
	memset(&rec, 0, sizeof(rec));
	ret = journal_create(fs, &rec);
	if (!ret)
		fs->journal_state = "in use";
	return ret;
}

/*
 * Everything this host changed reaches its home blocks and leaves the journal
 * (cluster.c, C2): commit, write in place, flush, tail = head. A no-op when the
 * journal is already empty.
 */
int journal_checkpoint(struct vmfs *fs)
{
	int ret;

	if (fs->ro || !fs->j_unit)
		return 0;
	ret = journal_commit(fs);
	if (ret)
		return ret;
	if (fs->j_head == fs->j_tail) /* empty: tail and head are the same position */
		return 0;
	ret = journal_tail_advance(fs, false);
	if (ret) {
		fatal(fs, ret, "journal checkpoint");
		return -EIO;
	}
	return 0;
}

/*
 * journal_scrub: under META exclusive every other host's journal is empty
 * (C2; a dead holder's was replayed on the way in) and no host writes its
 * log, so the logs can go: this host's own is checkpointed first. The
 * journal superblocks (tail, sequence) and host states stay: a log of
 * zeros reads as empty, and a host goes on writing at its head.
 */
int journal_scrub(struct vmfs *fs)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size), slots = le32_to_cpu(fs->sb.sb_host_slots);
	uint64_t end = le64_to_cpu(fs->sb.sb_size) / VMFS_UNIT;
	uint8_t *tab = NULL;
	int ret;

	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs);
	if (!ret)
		ret = journal_checkpoint(fs);
	if (!ret)
		ret = hosttab_read(fs, &tab);
	for (unsigned s = 0; s < slots && !ret; s++) {
		const struct vmfs_hostrec_disk *rec = (const void *)(tab + (size_t)s * ss);
		uint64_t unit = le64_to_cpu(rec->hr_journal), units = le64_to_cpu(rec->hr_journal_units);

		if (hostrec_check(fs, s, rec) || !unit || units <= VMFS_JOURNAL_LOG_START || unit >= end ||
		    units > end - unit)
			continue; /* no journal, or a damaged record: fsck reports it */
		ret = dev_zero_range(fs->dev, (unit + VMFS_JOURNAL_LOG_START) * VMFS_UNIT,
				     (units - VMFS_JOURNAL_LOG_START) * VMFS_UNIT);
	}
	if (!ret)
		ret = dev_flush(fs->dev);
	free(tab);
	return op_end(fs, ret);
}

int vmfs_journal_scrub(struct vmfs *fs)
{
	return journal_scrub(fs);
}

/* The state to report for several journals: the one that needs the most attention. */
static const char *journal_state_worse(const char *a, const char *b)
{
	static const char *const order[] = { "not allocated", "clean", "in use", "needs recovery" };
	int ra = -1, rb = -1;

	for (int i = 0; i < 4; i++) {
		if (a && !strcmp(a, order[i]))
			ra = i;
		if (b && !strcmp(b, order[i]))
			rb = i;
	}
	return ra > rb ? a : b;
}

/*
 * Replays the journal of a dead host's slot in place (cluster.c: called by
 * lockmgr while this host holds that slot's recovery lock and the dead host's
 * locks still stand). This host's own journal is empty (C2) and set aside.
 */
int journal_recover(struct vmfs *fs, unsigned slot)
{
	unsigned my_slot = fs->slot;
	uint64_t save[6] = { fs->j_unit, fs->j_units, fs->j_seq, fs->j_head, fs->j_tail_seq, fs->j_tail };
	const char *state = fs->journal_state;
	bool replayed = fs->j_replayed;
	int ret;

	fs->slot = slot;
	fs->j_unit = 0;
	ret = journal_open(fs);
	fs->slot = my_slot;
	fs->j_unit = save[0];
	fs->j_units = save[1];
	fs->j_seq = save[2];
	fs->j_head = save[3];
	fs->j_tail_seq = save[4];
	fs->j_tail = save[5];
	fs->journal_state = journal_state_worse(fs->journal_state, state);
	fs->j_replayed = replayed;
	return ret;
}

/*
 * Read-only opens: every other slot's unfinished journal, applied in memory.
 * By C2 (cluster.c) at most one host at a time has a non-empty journal: the
 * last holder of META, if it died holding it.
 */
int journal_overlay_others(struct vmfs *fs)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size), slots = le32_to_cpu(fs->sb.sb_host_slots);
	uint8_t *tab;
	int ret = hosttab_read(fs, &tab);

	for (unsigned s = 0; s < slots && !ret; s++) {
		const struct vmfs_hostrec_disk *rec = (const void *)(tab + (size_t)s * ss);
		if (s == fs->slot || le32_to_cpu(rec->hr_magic) != VMFS_MAGIC_HOSTREC || !rec->hr_journal)
			continue;
		ret = journal_recover(fs, s);
		if (ret == -EUCLEAN || ret == -EBADMSG)
			ret = 0; /* a damaged journal of another host: fsck reports it; the rest still reads */
	}
	free(tab);
	return ret;
}

int journal_close(struct vmfs *fs)
{
	if (fs->ro || !fs->j_unit || fs->fatal)
		return 0;
	return journal_tail_advance(fs, true);
}

/* Writes every dirty block in place without a journal (mkfs, fsck): all else, flush, then the superblock. */
int meta_write_direct(struct vmfs *fs)
{
	struct vbuf *sbb = NULL;
	int ret = 0;

	for (struct vbuf *b = fs->dirty_list; b && !ret; b = b->dirty_next) {
		if (b->addr == 0) {
			sbb = b;
			continue;
		}
		meta_seal(fs, b->data);
		ret = dev_pwrite(fs->dev, b->data, VMFS_UNIT, b->addr * VMFS_UNIT);
	}
	if (!ret)
		ret = dev_flush(fs->dev);
	if (!ret && sbb) {
		meta_seal(fs, sbb->data);
		ret = dev_pwrite(fs->dev, sbb->data, VMFS_UNIT, VMFS_SB_BACKUP_OFF);
		if (!ret)
			ret = dev_pwrite(fs->dev, sbb->data, VMFS_UNIT, 0);
	}
	if (!ret)
		ret = dev_flush(fs->dev);
	return ret;
}

/* Puts image into the cache at addr as if read from there (read-only repairs). */
int meta_overlay(struct vmfs *fs, uint64_t addr, const void *image)
{
	return apply_overlay(fs, addr, image);
}

/* Puts image into the cache at addr, dirty, to be written. */
int meta_overlay_dirty(struct vmfs *fs, uint64_t addr, const void *image)
{
	struct vbuf *b;
	int ret = meta_new(fs, addr, le32_to_cpu(((const struct vmfs_mhdr *)image)->mh_magic), 0, &b);

	if (ret)
		return ret;
	memcpy(b->data, image, VMFS_UNIT);
	meta_put(fs, b);
	return 0;
}

/* fsck: forgets slot's host record (its journal becomes free space). */
int hostrec_clear(struct vmfs *fs, unsigned slot)
{
	uint32_t ss = le32_to_cpu(fs->sb.sb_slot_size);
	uint8_t *buf = dev_alloc_buf(ss);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = dev_pwrite(fs->dev, buf, ss, le64_to_cpu(fs->sb.sb_hosttab_off) + (uint64_t)slot * ss);
	free(buf);
	return ret;
}

/* fsck: an empty, clean journal and host state for slot (its old transactions are lost). */
int journal_reset(struct vmfs *fs, unsigned slot, uint64_t unit, uint64_t units)
{
	struct vbuf *hs;
	int ret;

	fs->slot = slot;
	fs->j_unit = unit;
	fs->j_units = units;
	fs->j_head = fs->j_tail = 0;
	ret = log_first_seq(fs, &fs->j_seq);
	fs->j_tail_seq = fs->j_seq;
	if (!ret)
		ret = jsb_write(fs, true);
	if (!ret)
		ret = meta_new(fs, unit + 1, VMFS_MAGIC_HSTATE, slot, &hs);
	if (!ret)
		meta_put(fs, hs);
	return ret;
}

/*
 * Reads n units from unit on with one I/O and caches each one that is a valid
 * metadata block of a known type (checked in full here, since cache hits only
 * check the type). For fsck, which reads whole pools at a time.
 */
int meta_prefetch(struct vmfs *fs, uint64_t unit, unsigned n)
{
	static const uint32_t known[] = { VMFS_MAGIC_INODE, VMFS_MAGIC_PTR, VMFS_MAGIC_REDIR, VMFS_MAGIC_DIR, VMFS_MAGIC_POOL,
					  VMFS_MAGIC_FREED, VMFS_MAGIC_HSTATE };
	uint8_t *buf = dev_alloc_buf((size_t)n * VMFS_UNIT);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = dev_pread(fs->dev, buf, (size_t)n * VMFS_UNIT, unit * VMFS_UNIT);
	for (unsigned i = 0; !ret && i < n; i++) {
		uint8_t *blk = buf + (size_t)i * VMFS_UNIT;
		uint32_t magic = le32_to_cpu(((struct vmfs_mhdr *)blk)->mh_magic);
		struct vbuf *b;
		bool ok = false;

		for (unsigned k = 0; k < base_array_size(known) && !ok; k++)
			ok = magic == known[k] && !meta_check(fs, blk, unit + i, magic);
		if (!ok || cache_find(fs, unit + i))
			continue;
		b = cache_add(fs, unit + i);
		if (!b) {
			ret = -ENOMEM;
			break;
		}
		memcpy(b->data, blk, VMFS_UNIT);
		lru_add(fs, b);
	}
	free(buf);
	cache_trim(fs);
	return ret;
}
