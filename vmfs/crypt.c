/*
 * The keys of an encrypted datastore, on the device: the key area in units
 * 8..47 of the header MiB (encrypt/encrypt_format.h), read at open to unlock
 * the datastore key, written by mkfs and by the keyslot commands. encrypt/
 * parses and seals the records; this file does their I/O, in the order that
 * keeps each record whole in one copy across a crash (K5 of
 * encrypt/keyslot.c): changed primaries, flush, changed backups, flush.
 * Changes run under the cluster's metadata lock (op_begin), so two hosts
 * never interleave their writes of the area; each starts from a fresh read.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "vmfs/vmfs_i.h"

bool crypt_enabled(const struct vmfs *fs)
{
	return le64_to_cpu(fs->sb.sb_incompat) & VMFS_INCOMPAT_ENCRYPTED;
}

/* Reads and parses the key area. */
static int area_read(struct vmfs *fs, struct enc_area **out, char *errbuf, size_t errlen)
{
	uint8_t *buf = dev_alloc_buf(ENC_AREA_LEN);
	int ret;

	if (!buf)
		return base_set_err(errbuf, errlen, -ENOMEM, "out of memory");
	ret = dev_pread(fs->dev, buf, ENC_AREA_LEN, ENC_AREA_OFF);
	if (ret)
		base_set_err(errbuf, errlen, ret, "cannot read the key area: %s", strerror(-ret));
	else
		ret = enc_area_load(buf, fs->sb.sb_uuid, out, errbuf, errlen);
	free(buf);
	return ret;
}

/* Writes what changed in a (K5): primaries, flush, backups, flush. */
static int area_write(struct vmfs *fs, struct enc_area *a)
{
	uint8_t *buf = dev_alloc_buf(ENC_AREA_LEN);
	uint32_t prim[ENC_SLOTS + 1], back[ENC_SLOTS + 1];
	unsigned n;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	n = enc_area_units(a, prim, back);
	enc_area_store(a, buf);
	for (int pass = 0; pass < 2 && !ret; pass++) {
		const uint32_t *u = pass ? back : prim;
		for (unsigned i = 0; i < n && !ret; i++)
			ret = dev_pwrite(fs->dev, buf + (size_t)(u[i] - ENC_AREA_FIRST_UNIT) * ENC_UNIT, ENC_UNIT,
					 (uint64_t)u[i] * ENC_UNIT);
		if (!ret)
			ret = dev_flush(fs->dev);
	}
	if (!ret)
		enc_area_written(a);
	/* the area is not journaled: scrub the secrets-free copy anyway, it held wrapped keys */
	memset(buf, 0, ENC_AREA_LEN);
	free(buf);
	return ret;
}

/* Writes every record of a, both copies (fsck's repair: the good copies everywhere), in K5's order. */
static int area_write_all(struct vmfs *fs, struct enc_area *a)
{
	uint8_t *buf = dev_alloc_buf(ENC_AREA_LEN);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	enc_area_store(a, buf);
	for (int pass = 0; pass < 2 && !ret; pass++) {
		uint32_t h = pass ? ENC_HDR_BACKUP_UNIT : ENC_HDR_UNIT, s0 = pass ? ENC_SLOT_BACKUP_UNIT(0) : ENC_SLOT_UNIT(0);
		ret = dev_pwrite(fs->dev, buf + (size_t)(h - ENC_AREA_FIRST_UNIT) * ENC_UNIT, ENC_UNIT, (uint64_t)h * ENC_UNIT);
		if (!ret)
			ret = dev_pwrite(fs->dev, buf + (size_t)(s0 - ENC_AREA_FIRST_UNIT) * ENC_UNIT, (size_t)ENC_SLOTS * ENC_UNIT,
					 (uint64_t)s0 * ENC_UNIT);
		if (!ret)
			ret = dev_flush(fs->dev);
	}
	free(buf);
	return ret;
}

int crypt_mkfs(struct vmfs *fs, const struct vmfs_mkfs_opts *o, char *errbuf, size_t errlen)
{
	struct enc_kdf_params def;
	struct enc_area *a;
	struct enc_key *key;
	int ret;

	if (!o->kdf)
		enc_kdf_default(o->key_kind, &def);
	ret = enc_area_create(fs->sb.sb_uuid, &a, &key);
	if (ret)
		return base_set_err(errbuf, errlen, ret, "cannot make a datastore key: %s", strerror(-ret));
	ret = enc_area_add(a, key, o->secret, o->kdf ? o->kdf : &def, o->key_label, 0, NULL, errbuf, errlen);
	if (!ret) {
		ret = area_write(fs, a);
		if (ret)
			base_set_err(errbuf, errlen, ret, "cannot write the key area: %s", strerror(-ret));
	}
	enc_area_free(a);
	if (ret) {
		enc_key_free(key);
		return ret;
	}
	fs->key = key;
	return 0;
}

int crypt_open(struct vmfs *fs, const struct enc_secret *secret, uint32_t max_kib, char *errbuf, size_t errlen)
{
	struct enc_area *a;
	int ret;

	if (!crypt_enabled(fs) || !secret)
		return 0;
	ret = area_read(fs, &a, errbuf, errlen);
	if (ret)
		return ret;
	ret = enc_area_unlock(a, secret, -1, max_kib, &fs->key, NULL, errbuf, errlen);
	enc_area_free(a);
	return ret;
}

static void fkeys_release(struct vmfs *fs);

void crypt_release(struct vmfs *fs)
{
	fkeys_release(fs);
	enc_key_free(fs->key);
	enc_key_free(fs->key_prev);
	fs->key = fs->key_prev = NULL;
}

/* Runs fn on a fresh copy of the area under the metadata lock and writes what it changed. */
static int area_change(struct vmfs *fs, int (*fn)(struct enc_area *a, void *arg, char *errbuf, size_t errlen),
		       void *arg, char *errbuf, size_t errlen)
{
	struct enc_area *a = NULL;
	int ret;

	if (!crypt_enabled(fs))
		return base_set_err(errbuf, errlen, -EINVAL, "the datastore is not encrypted");
	if (fs->ro)
		return base_set_err(errbuf, errlen, -EROFS, "the datastore is open read-only");
	if (!fs->key)
		return base_set_err(errbuf, errlen, -ENOKEY, "the datastore is locked: give its key");
	ret = op_begin(fs);
	if (!ret)
		ret = area_read(fs, &a, errbuf, errlen);
	if (!ret)
		ret = fn(a, arg, errbuf, errlen);
	if (!ret) {
		ret = area_write(fs, a);
		if (ret)
			base_set_err(errbuf, errlen, ret, "cannot write the key area: %s", strerror(-ret));
	}
	enc_area_free(a);
	return op_end(fs, ret);
}

struct add_args {
	struct vmfs *fs;
	const struct enc_secret *secret;
	const struct enc_kdf_params *kdf;
	const char *label;
	int want, *slot;
};

static int do_add(struct enc_area *a, void *arg, char *errbuf, size_t errlen)
{
	struct add_args *x = arg;

	return enc_area_add(a, x->fs->key, x->secret, x->kdf, x->label, x->want, x->slot, errbuf, errlen);
}

int vmfs_key_add(struct vmfs *fs, const struct enc_secret *secret, enum enc_secret_kind kind,
		 const struct enc_kdf_params *kdf, const char *label, int want, int *slot, char *errbuf, size_t errlen)
{
	struct enc_kdf_params def;
	struct add_args x = { fs, secret, kdf, label, want, slot };

	if (!kdf) {
		enc_kdf_default(kind, &def);
		x.kdf = &def;
	}
	return area_change(fs, do_add, &x, errbuf, errlen);
}

static int do_remove(struct enc_area *a, void *arg, char *errbuf, size_t errlen)
{
	return enc_area_remove(a, *(int *)arg, errbuf, errlen);
}

int vmfs_key_remove(struct vmfs *fs, int slot, char *errbuf, size_t errlen)
{
	return area_change(fs, do_remove, &slot, errbuf, errlen);
}

int vmfs_key_list(struct vmfs *fs, struct enc_slot_info *info, char *errbuf, size_t errlen)
{
	struct enc_area *a;
	int ret;

	if (!crypt_enabled(fs))
		return base_set_err(errbuf, errlen, -EINVAL, "the datastore is not encrypted");
	ret = area_read(fs, &a, errbuf, errlen);
	if (ret)
		return ret;
	for (int i = 0; i < (int)ENC_SLOTS; i++)
		enc_area_slot_info(a, i, &info[i]);
	enc_area_free(a);
	return 0;
}

void crypt_info(struct vmfs *fs, struct vmfs_info *in)
{
	struct enc_area *a;

	in->encrypted = crypt_enabled(fs);
	in->unlocked = fs->key != NULL;
	if (!in->encrypted || area_read(fs, &a, NULL, 0))
		return;
	in->key_epoch = enc_area_epoch(a);
	in->keyslots = enc_area_active(a);
	enc_area_free(a);
}

/* ---- file keys ---- */

/*
 * A small cache of opened file keys, by inode, so the data path does not
 * unwrap a key per I/O. An entry is valid only while the inode's i_crypt
 * bytes are the ones it was opened from (a revert or a rekey changes them).
 * Entries hold one reference; users hold one each (crypt_file_get/put).
 */
#define FKEY_SLOTS 64

struct fkey_ent {
	uint64_t ino;
	uint8_t crypt[128];
	struct enc_file *f;
};

static pthread_mutex_t fkey_lock = PTHREAD_MUTEX_INITIALIZER;

static void fkey_unref(struct enc_file *f)
{
	if (f && !--f->refs)
		enc_file_free(f);
}

/* The key of this epoch (low 16 bits, as i_crypt has it) this host holds, or NULL. Under fkey_lock. */
static struct enc_key *key_for(struct vmfs *fs, uint16_t epoch)
{
	if (fs->key && (uint16_t)fs->key->epoch == epoch)
		return fs->key;
	if (fs->key_prev && (uint16_t)fs->key_prev->epoch == epoch)
		return fs->key_prev;
	return NULL;
}

static void crypt_refresh(struct vmfs *fs);

int crypt_file_get(struct vmfs *fs, uint64_t ino, const struct vmfs_inode_disk *di, struct enc_file **out)
{
	struct fkey_ent *e;
	struct enc_file *f;
	struct enc_key *key;
	int ret;

	*out = NULL;
	if (!crypt_enabled(fs) || !enc_crypt_present(di->i_crypt)) /* stray bytes without the feature: fsck clears them */
		return 0;
	if (!fs->key)
		return -ENOKEY;
	pthread_mutex_lock(&fkey_lock);
	if (!fs->fkeys) {
		fs->fkeys = calloc(FKEY_SLOTS, sizeof(struct fkey_ent));
		if (!fs->fkeys) {
			pthread_mutex_unlock(&fkey_lock);
			return -ENOMEM;
		}
	}
	e = &((struct fkey_ent *)fs->fkeys)[ino % FKEY_SLOTS];
	if (e->f && e->ino == ino && !memcmp(e->crypt, di->i_crypt, sizeof(e->crypt))) {
		e->f->mark = le64_to_cpu(di->i_crypt_mark); /* changes only under the iolock exclusive */
		e->f->refs++;
		*out = e->f;
		pthread_mutex_unlock(&fkey_lock);
		return 0;
	}
	key = key_for(fs, enc_crypt_epoch(di->i_crypt));
	if (!key) { /* sealed under a key this host has not learned: a change another host began */
		pthread_mutex_unlock(&fkey_lock);
		crypt_refresh(fs);
		pthread_mutex_lock(&fkey_lock);
		key = key_for(fs, enc_crypt_epoch(di->i_crypt));
	}
	ret = key ? enc_file_open(key, fs->sb.sb_uuid, di->i_crypt, &f) : -ESTALE;
	if (ret) {
		pthread_mutex_unlock(&fkey_lock);
		fs_err(fs, "inode %llu: its file key %s", (unsigned long long)ino,
		       ret == -EBADMSG	  ? "fails its tag (damaged or changed): not used"
		       : ret == -ESTALE ? "is sealed under another datastore key"
					: "cannot be opened");
		return ret == -ENOMEM ? ret : -EIO;
	}
	fkey_unref(e->f);
	e->ino = ino;
	memcpy(e->crypt, di->i_crypt, sizeof(e->crypt));
	e->f = f;
	f->mark = le64_to_cpu(di->i_crypt_mark);
	f->refs = 2;
	*out = f;
	pthread_mutex_unlock(&fkey_lock);
	return 0;
}

void crypt_file_put(struct vmfs *fs, struct enc_file *f)
{
	(void)fs;
	if (!f)
		return;
	pthread_mutex_lock(&fkey_lock);
	fkey_unref(f);
	pthread_mutex_unlock(&fkey_lock);
}

int crypt_file_new(struct vmfs *fs, struct vmfs_inode_disk *di)
{
	uint32_t mode = le32_to_cpu(di->i_mode);

	if (!crypt_enabled(fs) || !(S_ISREG(mode) || S_ISLNK(mode) || S_ISDIR(mode)))
		return 0;
	{
	int ret = -ENOKEY;

	pthread_mutex_lock(&fkey_lock);
	if (fs->key)
		ret = enc_file_new(fs->key, fs->sb.sb_uuid, di->i_crypt);
	pthread_mutex_unlock(&fkey_lock);
	return ret;
	}
}

static void fkeys_release(struct vmfs *fs)
{
	struct fkey_ent *e = fs->fkeys;

	if (!e)
		return;
	pthread_mutex_lock(&fkey_lock);
	for (unsigned i = 0; i < FKEY_SLOTS; i++)
		fkey_unref(e[i].f);
	pthread_mutex_unlock(&fkey_lock);
	free(e);
	fs->fkeys = NULL;
}

int crypt_run_serial(const struct enc_file *f, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len)
{
	size_t n = 0; /* a deep rekey under way: the first n bytes are units below the mark, under key 1 */
	int ret = 0;

	if ((f->flags & ENC_CR_K1) && tweak < f->mark)
		n = len <= VMFS_UNIT ? len : (size_t)base_min(len / VMFS_UNIT, f->mark - tweak) * VMFS_UNIT;
	if (n)
		ret = enc_xts_cached(f, 1, encrypt, tweak, in, out, n);
	if (!ret && n < len)
		ret = enc_xts_cached(f, 0, encrypt, tweak + n / VMFS_UNIT, (const uint8_t *)in + n, (uint8_t *)out + n,
				     len - n);
	return ret;
}

int crypt_run_key(const struct enc_file *f, unsigned which, bool encrypt, uint64_t tweak, const void *in, void *out,
		  size_t len)
{
	return enc_xts_cached(f, which, encrypt, tweak, in, out, len);
}

int crypt_file_rekey(struct vmfs *fs, struct vmfs_inode_disk *di, bool end)
{
	struct enc_key *key;
	int ret;

	pthread_mutex_lock(&fkey_lock);
	key = key_for(fs, enc_crypt_epoch(di->i_crypt));
	ret = key ? enc_file_rekey(key, fs->sb.sb_uuid, di->i_crypt, end) : -ENOKEY;
	pthread_mutex_unlock(&fkey_lock);
	return ret == -EINVAL || ret == -ENOKEY || ret == -ENOMEM ? ret : ret ? -EIO : 0;
}

/* A snapshot name's tweak: one fixed value (a name is found by encrypting it and comparing). */
#define SNAPNAME_TWEAK (~0ull)

int crypt_snapname(struct vmfs *fs, uint64_t file, const struct vmfs_inode_disk *fdi, bool encrypt, const void *in,
		   void *out)
{
	struct enc_file *f;
	int ret = crypt_file_get(fs, file, fdi, &f);

	if (ret)
		return ret;
	if (!f) {
		memcpy(out, in, VMFS_SNAP_NAME_MAX + 1);
		return 0;
	}
	ret = crypt_run_key(f, ENC_XTS_SNAPNAME, encrypt, SNAPNAME_TWEAK, in, out, VMFS_SNAP_NAME_MAX + 1);
	crypt_file_put(fs, f);
	return ret ? -EIO : 0;
}

int crypt_inline(struct vmfs *fs, uint64_t ino, struct vmfs_inode_disk *di, bool encrypt, uint8_t *plain)
{
	struct enc_file *f;
	int ret = crypt_file_get(fs, ino, di, &f);

	if (ret)
		return ret;
	if (!f) {
		if (encrypt)
			memcpy(di->i_root, plain, VMFS_INLINE_MAX);
		else
			memcpy(plain, di->i_root, VMFS_INLINE_MAX);
		return 0;
	}
	/* a zero inline area is an empty file's, never a ciphertext: it reads as zeros */
	if (!encrypt && base_all_zero(di->i_root, VMFS_INLINE_MAX))
		memset(plain, 0, VMFS_INLINE_MAX);
	else
		ret = encrypt ? crypt_run(f, true, 0, plain, di->i_root, VMFS_INLINE_MAX)
			      : crypt_run(f, false, 0, di->i_root, plain, VMFS_INLINE_MAX);
	crypt_file_put(fs, f);
	return ret;
}

int crypt_fsck_area(struct vmfs *fs, bool (*problem)(void *ctx, int rec, int which, int state), void *ctx,
		    uint32_t *epoch, uint32_t *prev)
{
	struct enc_area *a;
	bool fix = false;
	int ret = area_read(fs, &a, NULL, 0);

	if (ret)
		return ret;
	*epoch = enc_area_epoch(a);
	*prev = enc_area_prev_epoch(a);
	for (int rec = -1; rec < (int)ENC_SLOTS; rec++) {
		enum enc_copy_state st[2];
		enc_area_copy_state(a, rec, &st[0], &st[1]);
		if (st[0] == ENC_COPY_BAD && st[1] == ENC_COPY_BAD) {
			/* mkfs writes every record, empty slots too: neither copy good is damage */
			fix |= problem(ctx, rec, 0, 2);
			continue;
		}
		for (int w = 0; w < 2; w++)
			if (st[w] != ENC_COPY_OK)
				fix |= problem(ctx, rec, w, st[w] == ENC_COPY_STALE ? 1 : 0);
	}
	if (fix && !fs->ro)
		ret = area_write_all(fs, a);
	enc_area_free(a);
	return ret;
}

/* ---- changing the datastore key (shallow rekey) ---- */

/*
 * Learns what the key header says about a key change: a newer key (another
 * host began a change: this host's key becomes the previous one) or the
 * previous key (this host unlocked with a rewrapped slot and meets a file
 * key not yet resealed). Reads the key area.
 */
static void crypt_refresh(struct vmfs *fs)
{
	struct enc_area *a;
	struct enc_key *other;

	if (area_read(fs, &a, NULL, 0))
		return;
	pthread_mutex_lock(&fkey_lock);
	if (fs->key && !enc_area_other_key(a, fs->key, &other)) {
		if (other->epoch > fs->key->epoch) {
			enc_key_free(fs->key_prev);
			fs->key_prev = fs->key;
			fs->key = other;
		} else if (!fs->key_prev || fs->key_prev->epoch != other->epoch) {
			enc_key_free(fs->key_prev);
			fs->key_prev = other;
		} else {
			enc_key_free(other);
		}
	}
	pthread_mutex_unlock(&fkey_lock);
	enc_area_free(a);
}

static uint32_t crypt_epoch(struct vmfs *fs)
{
	uint32_t e;

	pthread_mutex_lock(&fkey_lock);
	e = fs->key ? fs->key->epoch : 0;
	pthread_mutex_unlock(&fkey_lock);
	return e;
}

void crypt_poll(struct vmfs *fs)
{
	uint64_t now = base_mono_ns(), every = (uint64_t)le32_to_cpu(fs->sb.sb_hb_interval_ms) * 1000000;
	struct enc_area *a;
	uint32_t epoch;

	if (fs->ro || now - fs->key_poll_ns < every)
		return;
	fs->key_poll_ns = now;
	if (area_read(fs, &a, NULL, 0))
		return;
	epoch = enc_area_epoch(a);
	enc_area_free(a);
	if (epoch != crypt_epoch(fs))
		crypt_refresh(fs);
	if (crypt_epoch(fs) == epoch)
		hostrec_set_key_epoch(fs, epoch); /* a failed write is tried again at the next poll */
}

struct begin_args {
	struct vmfs *fs;
	const struct enc_secret *secret, *new_secret;
	enum enc_secret_kind new_kind;
	bool drop_others;
	struct enc_key *new_key;
};

/* Step 1 (under the metadata lock): the new key, the slots rewrapped or dropped, both links. */
static int do_begin(struct enc_area *a, void *arg, char *errbuf, size_t errlen)
{
	struct begin_args *x = arg;
	struct enc_kdf_params def;
	bool mine[ENC_SLOTS] = { false };
	unsigned nmine = 0;
	int ret;

	if (enc_area_prev_epoch(a))
		return 1; /* a change is open: finish it */
	ret = enc_area_change_begin(a, x->fs->key, &x->new_key);
	if (ret)
		return base_set_err(errbuf, errlen, ret, "cannot begin the key change: %s",
				    ret == -ESTALE ? "this host's key is not the current one" : strerror(-ret));
	for (int i = 0; i < (int)ENC_SLOTS; i++) {
		struct enc_slot_info in;
		enc_area_slot_info(a, i, &in);
		if (!in.active)
			continue;
		ret = enc_area_rekey_slot(a, i, x->secret, x->new_key, errbuf, errlen);
		if (!ret) {
			mine[i] = true;
			nmine++;
			continue;
		}
		if (ret != -EKEYREJECTED)
			return ret;
		if (!x->drop_others)
			return base_set_err(errbuf, errlen, -EPERM,
					    "keyslot %d does not open with the key given: the new datastore key cannot be "
					    "wrapped for it (remove it, or give --drop-others to drop every such slot)", i);
	}
	if (!nmine)
		return base_set_err(errbuf, errlen, -EKEYREJECTED, "no keyslot opens with the key given");
	for (int i = 0; i < (int)ENC_SLOTS; i++) { /* the others go once one of ours stands */
		struct enc_slot_info in;
		enc_area_slot_info(a, i, &in);
		if (in.active && !mine[i] && (ret = enc_area_remove(a, i, errbuf, errlen)))
			return ret;
	}
	if (x->new_secret) { /* our slots give way to one for the new secret */
		enc_kdf_default(x->new_kind, &def);
		ret = enc_area_add(a, x->new_key, x->new_secret, &def, "changed", -1, NULL, errbuf, errlen);
		for (int i = 0; !ret && i < (int)ENC_SLOTS; i++)
			if (mine[i])
				ret = enc_area_remove(a, i, errbuf, errlen);
	}
	return ret;
}

static int do_end(struct enc_area *a, void *arg, char *errbuf, size_t errlen)
{
	(void)arg;
	(void)errbuf;
	(void)errlen;
	enc_area_change_end(a);
	return 0;
}

/* Step 2: every live host says it holds epoch (its host record), within 30 s. */
static int wait_hosts(struct vmfs *fs, uint32_t epoch, char *errbuf, size_t errlen)
{
	struct vmfs_host *h = NULL;
	uint64_t end = base_mono_ns() + 30000000000ull;
	size_t n = 0;
	int ret = vmfs_hosts(fs, &h, &n);

	if (ret)
		return base_set_err(errbuf, errlen, ret, "cannot read the heartbeats: %s", strerror(-ret));
	for (size_t i = 0; i < n && !ret; i++) {
		struct vmfs_hostrec_disk rec;
		if (!h[i].alive || h[i].state != VMFS_HOST_LIVE || h[i].slot == fs->slot)
			continue;
		for (;;) {
			int r = hostrec_read(fs, h[i].slot, &rec);
			if (!r && le32_to_cpu(rec.hr_key_epoch) >= epoch)
				break;
			if (r == -ENOENT) /* no record yet: it writes one with its epoch when it first journals */
				break;
			if (base_mono_ns() > end) {
				ret = base_set_err(errbuf, errlen, -ETIMEDOUT,
						   "host '%s' (slot %u) has not learned the new key in 30 s: the change stays "
						   "open (the old key can still be derived from the new); run it again",
						   h[i].hostname, h[i].slot);
				break;
			}
			base_sleep_ns(100000000);
		}
	}
	free(h);
	return ret;
}

/* Step 3: reseals one inode's file key if it is of the old epoch. 1 when it did, 0 when nothing to do. */
static int reseal_one(struct vmfs *fs, uint64_t ino, uint64_t *snap_head, uint32_t *mode)
{
	struct vbuf *ib;
	int ret = op_begin(fs), done = 0;

	if (!ret)
		ret = inode_read(fs, ino, &ib);
	if (!ret) {
		struct vmfs_inode_disk *di = ib_inode(ib);
		struct vmfs_snap_disk sn;

		memcpy(&sn, di->i_snap, sizeof(sn));
		*snap_head = le32_to_cpu(di->i_flags) & VMFS_IF_SNAPSHOT ? le64_to_cpu(sn.sn_next) : le64_to_cpu(sn.sn_head);
		*mode = le32_to_cpu(di->i_mode);
		pthread_mutex_lock(&fkey_lock);
		if (enc_crypt_present(di->i_crypt) && fs->key_prev &&
		    enc_crypt_epoch(di->i_crypt) == (uint16_t)fs->key_prev->epoch) {
			ret = meta_dirty(fs, ib);
			if (!ret)
				ret = enc_file_reseal(fs->key_prev, fs->key, fs->sb.sb_uuid, di->i_crypt);
			done = !ret;
		}
		pthread_mutex_unlock(&fkey_lock);
		meta_put(fs, ib);
	}
	ret = op_end(fs, ret);
	return ret ? ret : done;
}

struct walk {
	uint64_t *q;
	size_t n, cap;
};

static int walk_cb(void *ctx, uint64_t key, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct walk *w = ctx;

	(void)key;
	(void)name;
	(void)len;
	(void)type;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		uint64_t *q = realloc(w->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		w->q = q;
		w->cap = cap;
	}
	w->q[w->n++] = ino;
	return 0;
}

/* Every inode the tree names, its snapshots with each file: resealed. */
static int reseal_tree(struct vmfs *fs, void (*progress)(void *ctx, uint64_t files), void *ctx, uint64_t *failed)
{
	struct walk w = { 0 };
	uint64_t done = 0;
	int ret = walk_cb(&w, 0, NULL, 0, fs->root_ino, 0);

	for (size_t i = 0; !ret && i < w.n; i++) {
		uint64_t ino = w.q[i], snap = 0;
		uint32_t mode = 0;
		int r = reseal_one(fs, ino, &snap, &mode);

		if (r < 0 && r != -EIO && r != -EBADMSG && r != -EUCLEAN) {
			ret = r;
			break;
		}
		*failed += r < 0;
		done += r > 0;
		if (progress && r > 0)
			progress(ctx, done);
		if (snap) /* a file's snapshots, one after another (each names the next) */
			ret = walk_cb(&w, 0, NULL, 0, snap, 0);
		if (!ret && S_ISDIR(mode)) {
			struct vbuf *dib;
			ret = fs_enter(fs, false);
			if (!ret) {
				ret = inode_read(fs, ino, &dib);
				if (!ret) {
					ret = dir_iterate(fs, dib, 2, walk_cb, &w);
					meta_put(fs, dib);
				}
				fs_leave(fs);
			}
		}
	}
	free(w.q);
	return ret;
}

int vmfs_key_change(struct vmfs *fs, const struct enc_secret *secret, const struct enc_secret *new_secret,
		    enum enc_secret_kind new_kind, bool drop_others, void (*progress)(void *ctx, uint64_t files),
		    void *ctx, char *errbuf, size_t errlen)
{
	struct begin_args x = { fs, secret, new_secret, new_kind, drop_others, NULL };
	uint64_t failed = 0;
	int ret = area_change(fs, do_begin, &x, errbuf, errlen);

	if (ret < 0) {
		enc_key_free(x.new_key);
		return ret;
	}
	if (x.new_key) { /* begun here: this handle holds both keys now */
		pthread_mutex_lock(&fkey_lock);
		enc_key_free(fs->key_prev);
		fs->key_prev = fs->key;
		fs->key = x.new_key;
		pthread_mutex_unlock(&fkey_lock);
	} else { /* an open change: learn the key this handle lacks */
		crypt_refresh(fs);
		if (!fs->key_prev)
			return base_set_err(errbuf, errlen, -EKEYREJECTED, "the key change in progress cannot be finished "
					    "with this key");
	}
	ret = hostrec_set_key_epoch(fs, crypt_epoch(fs));
	if (!ret)
		ret = wait_hosts(fs, crypt_epoch(fs), errbuf, errlen);
	if (ret)
		return ret;
	ret = reseal_tree(fs, progress, ctx, &failed);
	if (ret)
		return base_set_err(errbuf, errlen, ret, "resealing the file keys: %s (the change stays open: run it "
				    "again)", strerror(-ret));
	if (failed)
		fs_err(fs, "%llu file keys could not be resealed (damaged: fsck reports them)", (unsigned long long)failed);
	/* the journals' images of keys sealed under the old key go before the old key does */
	ret = journal_scrub(fs);
	if (ret)
		return base_set_err(errbuf, errlen, ret, "zeroing the journals: %s (the change stays open: run it again)",
				    strerror(-ret));
	return area_change(fs, do_end, NULL, errbuf, errlen);
}
