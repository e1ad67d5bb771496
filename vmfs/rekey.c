/*
 * Deep rekey of a file (docs/ENCRYPTION.md, "Rekey"): a new file key, and
 * every block of the file copied to a new block under it, online.
 *
 * The file's i_crypt holds both keys while it runs (key 1 the new one), and
 * the inode's i_crypt_mark splits the file: its 4 KiB units below the mark
 * are under key 1, the rest under key 0 (crypt_run). Each step, one
 * operation under the file's iolock exclusive (I/O in flight ends first,
 * new I/O waits, for the time one batch of blocks takes to copy), moves the
 * blocks from the mark on to new blocks under key 1 (file_rekey_block) and
 * the mark past them, in the same transaction: a power cut shows the step
 * done or not done, and the next step resumes from the mark. When the mark
 * reaches the end of the file, the same transaction makes key 1 the file's
 * only key and clears the mark: the old key is no longer on the device.
 * Writes between steps go under the key their unit's side of the mark says.
 * The old blocks a step frees are zeroed right after the commit that frees
 * them, before anything can be allocated there (meta.c, the wipe list):
 * their old ciphertext does not stay in free space.
 *
 * A snapshot or a clone made meanwhile copies i_crypt and the mark with the
 * map, so its blocks read under the keys they were written with; it keeps
 * both keys (a snapshot is never written). Blocks a snapshot or clone shares
 * with the file stay theirs, under the old key: the file gets its copies.
 *
 * A directory's names are its content: the same begin, steps and end, with
 * the mark an item key (dir_rekey): the names of the hash groups below it
 * are under key 1. A step rewrites names in place in the tree's nodes, so
 * the tree keeps its shape and readdir cookies; every name operation runs
 * under fs->lock (and the cluster's META), so one step is atomic to them.
 */
#include "vmfs/vmfs_i.h"

#include <errno.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "encrypt/encrypt.h"

/* A step's batch: this many bytes of blocks at least (one block when larger), 8 MiB by default. */
#define REKEY_BATCH (8ull << 20)
/* A directory's step: a leaf per 4 KiB of max_bytes, this many at most (a transaction's journal room). */
#define REKEY_DIR_LEAVES 64u

/* A rekey's end (di dirty): i_crypt_run takes the number of the latest whole-datastore run (FORMAT.md). */
static int rekey_end(struct vmfs *fs, struct vmfs_inode_disk *di)
{
	struct vbuf *sbb;
	int ret = crypt_file_rekey(fs, di, true);

	if (!ret)
		ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret)
		return ret;
	di->i_crypt_mark = 0;
	di->i_crypt_run = ((const struct vmfs_sb_disk *)sbb->data)->sb_rekey_run;
	meta_put(fs, sbb);
	return 0;
}

/*
 * Where a rekey stands at mark: bytes of the file below it, or for a
 * directory its entries and the share of them below it (keys are below
 * 2^63, and a name's hash spreads them evenly).
 */
static void progress(const struct vmfs_inode_disk *di, uint64_t mark, struct vmfs_rekey_progress *pr)
{
	uint64_t n = le64_to_cpu(di->i_dir_count);

	if (S_ISDIR(le32_to_cpu(di->i_mode))) {
		pr->size = n;
		pr->done = base_min(n, (uint64_t)(((unsigned __int128)n * mark) >> 63));
	} else {
		pr->size = le64_to_cpu(di->i_size);
		pr->done = base_min(mark * VMFS_UNIT, pr->size);
	}
}

/*
 * A file's step: its blocks from the mark on (max_bytes of them, at least
 * one; inline data at once) copied under key 1, the mark moved past them.
 * *mark: where it is now; UINT64_MAX once the whole file is under key 1.
 */
static int step_blocks(struct vmfs *fs, struct vbuf *ib, const struct enc_file *key, uint64_t max_bytes,
		       uint64_t *mark)
{
	struct vmfs_inode_disk *di = ib_inode(ib);
	uint64_t size = le64_to_cpu(di->i_size), units = base_div_round_up(size, VMFS_UNIT);
	uint64_t bb = (uint64_t)inode_layout_blkunits(fs, di) * VMFS_UNIT, lblk, done = 0;
	int ret = 0;

	if (*mark >= units) {
		*mark = UINT64_MAX;
		return 0;
	}
	if (le32_to_cpu(di->i_flags) & VMFS_IF_INLINE) {
		uint8_t plain[VMFS_INLINE_MAX];

		ret = crypt_inline(fs, ib->addr, di, false, plain);
		if (!ret) {
			di->i_crypt_mark = cpu_to_le64(units);
			ret = crypt_inline(fs, ib->addr, di, true, plain); /* now below the mark: key 1 */
		}
		OPENSSL_cleanse(plain, sizeof(plain));
		*mark = UINT64_MAX;
		return ret;
	}
	fs->wipe_freed = true; /* the old blocks it frees are zeroed once the step commits */
	for (lblk = *mark * VMFS_UNIT / bb; !ret && lblk * bb < size && (done == 0 || done < max_bytes); lblk++) {
		ret = file_rekey_block(fs, ib, key, lblk, (lblk + 1) * bb / VMFS_UNIT);
		done += bb;
	}
	fs->wipe_freed = false;
	*mark = lblk * bb / VMFS_UNIT >= units ? UINT64_MAX : lblk * bb / VMFS_UNIT;
	return ret;
}

/*
 * One step on the file or directory in ib (under its iolock, in one
 * operation): begin when no rekey is under way, move the mark on, and end
 * in the same transaction as the step that reaches the end.
 */
struct rekey_args {
	uint64_t max_bytes;
	struct vmfs_rekey_progress *pr;
};

static int rekey_locked(struct vmfs *fs, struct vbuf *ib, void *ctx)
{
	const struct rekey_args *a = ctx;
	uint64_t max_bytes = a->max_bytes;
	struct vmfs_rekey_progress *pr = a->pr;
	struct vmfs_inode_disk *di = ib_inode(ib);
	bool dir = S_ISDIR(le32_to_cpu(di->i_mode));
	struct enc_file *key = NULL;
	uint64_t mark;
	int ret;

	if (!enc_crypt_present(di->i_crypt)) {
		if (!dir)
			return -EINVAL;
		progress(di, UINT64_MAX, pr); /* names fsck filed without the key (/lost+found): none to renew */
		pr->finished = true;
		return 0;
	}
	ret = meta_dirty(fs, ib);
	if (!ret && !enc_crypt_rekeying(di->i_crypt)) { /* begin: a new key 1, nothing under it yet */
		ret = crypt_file_rekey(fs, di, false);
		di->i_crypt_mark = 0;
	}
	if (!ret)
		ret = crypt_file_get(fs, ib->addr, di, &key); /* key->mark: the mark as it is */
	mark = le64_to_cpu(di->i_crypt_mark);
	if (!ret && dir) /* a leaf of names per 4 KiB of max_bytes */
		ret = dir_rekey(fs, ib, key,
				(unsigned)base_min(max_bytes ? max_bytes / VMFS_UNIT : REKEY_DIR_LEAVES,
						   (uint64_t)REKEY_DIR_LEAVES),
				&mark);
	else if (!ret)
		ret = step_blocks(fs, ib, key, max_bytes ? max_bytes : REKEY_BATCH, &mark);
	crypt_file_put(fs, key);
	if (ret)
		return ret;
	progress(di, mark, pr);
	pr->finished = mark == UINT64_MAX;
	if (!pr->finished) {
		di->i_crypt_mark = cpu_to_le64(mark);
		return 0;
	}
	return rekey_end(fs, di); /* the old key goes, in the same transaction as the last blocks or names */
}

int vmfs_rekey_step(struct vmfs *fs, uint64_t ino, uint64_t max_bytes, struct vmfs_rekey_progress *pr)
{
	struct rekey_args a = { .max_bytes = max_bytes, .pr = pr };

	*pr = (struct vmfs_rekey_progress){ 0 };
	if (!crypt_enabled(fs))
		return -EOPNOTSUPP;
	if (!fs->key)
		return -ENOKEY;
	/* a symlink's target is its data; a directory's names are its content */
	return file_exclusive(fs, ino, GET_LINK_OK | GET_DIR_OK, rekey_locked, &a);
}

int vmfs_rekey_state(struct vmfs *fs, uint64_t ino, struct vmfs_rekey_progress *pr)
{
	struct vbuf *ib;
	int ret;

	*pr = (struct vmfs_rekey_progress){ 0 };
	ret = fs_enter(fs, false);
	if (ret)
		return ret;
	ret = inode_read(fs, ino, &ib);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(ib);

		pr->finished = !enc_crypt_rekeying(di->i_crypt);
		pr->run = le64_to_cpu(di->i_crypt_run);
		progress(di, pr->finished ? 0 : le64_to_cpu(di->i_crypt_mark), pr);
		meta_put(fs, ib);
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

int vmfs_rekey_run(struct vmfs *fs, bool end, uint64_t *run)
{
	struct vmfs_sb_disk *sb;
	struct vbuf *sbb;
	int ret;

	if (!crypt_enabled(fs))
		return -EOPNOTSUPP;
	if (fs->ro)
		return -EROFS;
	ret = op_begin(fs);
	if (!ret)
		ret = meta_read(fs, 0, VMFS_MAGIC_SB, &sbb);
	if (ret)
		return op_end(fs, ret);
	sb = (struct vmfs_sb_disk *)sbb->data;
	if (!end && !sb->sb_rekey_open) { /* a new run */
		ret = meta_dirty(fs, sbb);
		if (!ret) {
			sb->sb_rekey_run = cpu_to_le64(le64_to_cpu(sb->sb_rekey_run) + 1);
			sb->sb_rekey_open = cpu_to_le32(1);
		}
	} else if (end && sb->sb_rekey_open && le64_to_cpu(sb->sb_rekey_run) == *run) {
		ret = meta_dirty(fs, sbb);
		if (!ret)
			sb->sb_rekey_open = 0;
	}
	if (!ret && !end)
		*run = le64_to_cpu(sb->sb_rekey_run);
	meta_put(fs, sbb);
	return op_end(fs, ret);
}
