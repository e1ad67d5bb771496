/*
 * The key area (encrypt_format.h, docs/FORMAT.md "Encryption"): a key header
 * and 16 keyslots, each a 4 KiB record with a backup copy. This file parses
 * it, opens the datastore key with a secret, and adds and removes keyslots;
 * it works on bytes only, and its caller writes what enc_area_units() names.
 *
 * Invariants:
 *  K1. A record is used only when its crc, magic, version, own address and
 *      UUID are right; of two good copies the higher generation wins.
 *  K2. A keyslot's wrapped key is authenticated together with the UUID, the
 *      slot index, its state, KDF, parameters, epoch, salt and label
 *      (slot_aad): none of them changes without the GCM tag failing.
 *  K3. An unwrapped key is used only when it also matches the header's key
 *      check value for the current epoch; a slot of another epoch is never
 *      tried.
 *  K4. The last active keyslot is never removed.
 *  K5. Write order (the caller's): every changed primary, flush, every
 *      changed backup, flush. A crash leaves each record whole in one copy.
 *  K6. During a change of the datastore key (kh_prev_epoch != 0) the header
 *      holds each key sealed under the other; only slots of the new epoch
 *      are tried, and a key of either epoch yields the other.
 *
 * A key change, by the caller (vmfs/crypt.c):
 *
 *   idle --enc_area_change_begin--> changing --(files resealed, hosts told)
 *        --enc_area_change_end--> idle
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encrypt/encrypt_i.h"

struct enc_rec {
	uint8_t b[ENC_UNIT];            /* the record as it will be written (crc filled by store) */
	uint64_t gen;
	bool dirty;
	enum enc_copy_state prim, back;
};

struct enc_area {
	uint8_t uuid[16];
	struct enc_rec hdr;
	struct enc_rec slot[ENC_SLOTS];
};

static struct enc_hdr_disk *area_hdr(const struct enc_area *a)
{
	return (struct enc_hdr_disk *)a->hdr.b;
}

static struct enc_slot_disk *area_slot(const struct enc_area *a, unsigned i)
{
	return (struct enc_slot_disk *)a->slot[i].b;
}

/* K1: one copy's checks. Returns its generation, or -1 when bad. */
static int64_t copy_check(const uint8_t *b, uint32_t magic, uint32_t unit, uint64_t owner, const uint8_t uuid[16])
{
	const struct enc_rhdr_disk *h = (const void *)b;
	uint32_t crc;

	memcpy(&crc, b + ENC_UNIT - 4, 4);
	if (le32_to_cpu(crc) != base_crc32c(0, b, ENC_UNIT - 4) || le32_to_cpu(h->eh_magic) != magic ||
	    le16_to_cpu(h->eh_version) != ENC_VERSION || le64_to_cpu(h->eh_addr) != unit ||
	    memcmp(h->eh_uuid, uuid, 16) || le64_to_cpu(h->eh_owner) != owner)
		return -1;
	return (int64_t)(le64_to_cpu(h->eh_gen) & INT64_MAX);
}

/* Picks the copy of one record; false when neither is good. */
static bool rec_load(struct enc_rec *r, const uint8_t *area, uint32_t magic, uint32_t unit, uint32_t bunit,
		     uint64_t owner, const uint8_t uuid[16])
{
	const uint8_t *p = area + (size_t)(unit - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	const uint8_t *q = area + (size_t)(bunit - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	int64_t gp = copy_check(p, magic, unit, owner, uuid), gq = copy_check(q, magic, bunit, owner, uuid);
	const uint8_t *src;

	r->prim = gp < 0 ? ENC_COPY_BAD : gq > gp ? ENC_COPY_STALE : ENC_COPY_OK;
	r->back = gq < 0 ? ENC_COPY_BAD : gp > gq ? ENC_COPY_STALE : ENC_COPY_OK;
	r->dirty = false;
	if (gp < 0 && gq < 0) {
		memset(r->b, 0, sizeof(r->b));
		r->gen = 0;
		return false;
	}
	src = gp >= gq ? p : q;
	memcpy(r->b, src, ENC_UNIT);
	r->gen = (uint64_t)(gp >= gq ? gp : gq);
	return true;
}

/* Sets up a record's header fields (address and generation are set by store). */
static void rec_init(struct enc_rec *r, uint32_t magic, uint64_t owner, const uint8_t uuid[16])
{
	struct enc_rhdr_disk *h = (void *)r->b;

	memset(r->b, 0, sizeof(r->b));
	h->eh_magic = cpu_to_le32(magic);
	h->eh_version = cpu_to_le16(ENC_VERSION);
	h->eh_owner = cpu_to_le64(owner);
	memcpy(h->eh_uuid, uuid, 16);
	r->dirty = true;
}

/* The key check value of key for this datastore (K3). */
static int key_check(const struct enc_area *a, const uint8_t key[ENC_KEY_LEN], uint32_t epoch, uint8_t out[32])
{
	uint8_t msg[14 + 16 + 4];
	le32 e = cpu_to_le32(epoch);

	memcpy(msg, "vmfs key check", 14);
	memcpy(msg + 14, a->uuid, 16);
	memcpy(msg + 30, &e, 4);
	return enc_hmac(key, msg, sizeof(msg), out);
}

/* K2: the bytes a keyslot's tag covers besides its wrapped key. */
#define SLOT_AAD_LEN (16 + 4 + (0x68 - 0x30) + 64)
static void slot_aad(const struct enc_area *a, unsigned i, uint8_t aad[SLOT_AAD_LEN])
{
	const uint8_t *b = a->slot[i].b;
	le32 idx = cpu_to_le32(i);

	memcpy(aad, a->uuid, 16);
	memcpy(aad + 16, &idx, 4);
	memcpy(aad + 20, b + 0x30, 0x68 - 0x30);
	memcpy(aad + 20 + 0x38, b + 0xb0, 64);
}

int enc_area_create(const uint8_t uuid[16], struct enc_area **out, struct enc_key **keyp)
{
	struct enc_area *a = calloc(1, sizeof(*a));
	struct enc_key *key = enc_secure_alloc(sizeof(*key));
	struct enc_hdr_disk *h;
	int ret = -ENOMEM;

	if (!a || !key)
		goto err;
	memcpy(a->uuid, uuid, 16);
	rec_init(&a->hdr, ENC_MAGIC_HDR, 0, uuid);
	for (unsigned i = 0; i < ENC_SLOTS; i++)
		rec_init(&a->slot[i], ENC_MAGIC_SLOT, i, uuid);
	ret = base_random(key->k, sizeof(key->k));
	if (ret)
		goto err;
	key->epoch = 1;
	h = area_hdr(a);
	h->kh_data_cipher = cpu_to_le32(ENC_DATA_AES256_XTS);
	h->kh_wrap_cipher = cpu_to_le32(ENC_WRAP_AES256_GCM);
	h->kh_epoch = cpu_to_le32(1);
	h->kh_slots = cpu_to_le32(ENC_SLOTS);
	ret = key_check(a, key->k, 1, h->kh_check);
	if (ret)
		goto err;
	*out = a;
	*keyp = key;
	return 0;
err:
	enc_key_free(key);
	free(a);
	return ret;
}

int enc_area_load(const void *buf, const uint8_t uuid[16], struct enc_area **out, char *errbuf, size_t errlen)
{
	struct enc_area *a = calloc(1, sizeof(*a));
	const struct enc_hdr_disk *h;

	if (!a)
		return base_set_err(errbuf, errlen, -ENOMEM, "out of memory");
	memcpy(a->uuid, uuid, 16);
	if (!rec_load(&a->hdr, buf, ENC_MAGIC_HDR, ENC_HDR_UNIT, ENC_HDR_BACKUP_UNIT, 0, uuid)) {
		free(a);
		return base_set_err(errbuf, errlen, -EUCLEAN,
				    "key header: both copies damaged (units %u and %u): the datastore cannot be unlocked",
				    ENC_HDR_UNIT, ENC_HDR_BACKUP_UNIT);
	}
	h = area_hdr(a);
	if (le32_to_cpu(h->kh_data_cipher) != ENC_DATA_AES256_XTS ||
	    le32_to_cpu(h->kh_wrap_cipher) != ENC_WRAP_AES256_GCM || le32_to_cpu(h->kh_slots) != ENC_SLOTS ||
	    !le32_to_cpu(h->kh_epoch)) {
		int ret = base_set_err(errbuf, errlen, -EUCLEAN,
				       "key header: unknown ciphers %u/%u, %u slots or epoch 0",
				       le32_to_cpu(h->kh_data_cipher), le32_to_cpu(h->kh_wrap_cipher),
				       le32_to_cpu(h->kh_slots));
		free(a);
		return ret;
	}
	for (unsigned i = 0; i < ENC_SLOTS; i++)
		if (!rec_load(&a->slot[i], buf, ENC_MAGIC_SLOT, ENC_SLOT_UNIT(i), ENC_SLOT_BACKUP_UNIT(i), i, uuid))
			rec_init(&a->slot[i], ENC_MAGIC_SLOT, i, uuid), a->slot[i].dirty = false;
	*out = a;
	return 0;
}

void enc_area_free(struct enc_area *a)
{
	free(a);
}

static void rec_store(struct enc_rec *r, uint8_t *area, uint32_t unit, uint32_t bunit)
{
	struct enc_rhdr_disk *h = (void *)r->b;
	uint8_t *p = area + (size_t)(unit - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	uint8_t *q = area + (size_t)(bunit - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	le32 crc;

	if (r->dirty)
		r->gen++;
	h->eh_gen = cpu_to_le64(r->gen);
	h->eh_addr = cpu_to_le64(unit);
	crc = cpu_to_le32(base_crc32c(0, r->b, ENC_UNIT - 4));
	memcpy(r->b + ENC_UNIT - 4, &crc, 4);
	memcpy(p, r->b, ENC_UNIT);
	h->eh_addr = cpu_to_le64(bunit);
	crc = cpu_to_le32(base_crc32c(0, r->b, ENC_UNIT - 4));
	memcpy(r->b + ENC_UNIT - 4, &crc, 4);
	memcpy(q, r->b, ENC_UNIT);
}

void enc_area_store(struct enc_area *a, void *buf)
{
	rec_store(&a->hdr, buf, ENC_HDR_UNIT, ENC_HDR_BACKUP_UNIT);
	for (unsigned i = 0; i < ENC_SLOTS; i++)
		rec_store(&a->slot[i], buf, ENC_SLOT_UNIT(i), ENC_SLOT_BACKUP_UNIT(i));
}

unsigned enc_area_units(const struct enc_area *a, uint32_t *prim, uint32_t *back)
{
	unsigned n = 0;

	if (a->hdr.dirty) {
		prim[n] = ENC_HDR_UNIT;
		back[n++] = ENC_HDR_BACKUP_UNIT;
	}
	for (unsigned i = 0; i < ENC_SLOTS; i++)
		if (a->slot[i].dirty) {
			prim[n] = ENC_SLOT_UNIT(i);
			back[n++] = ENC_SLOT_BACKUP_UNIT(i);
		}
	return n;
}

void enc_area_written(struct enc_area *a)
{
	a->hdr.dirty = false;
	a->hdr.prim = a->hdr.back = ENC_COPY_OK;
	for (unsigned i = 0; i < ENC_SLOTS; i++) {
		a->slot[i].dirty = false;
		a->slot[i].prim = a->slot[i].back = ENC_COPY_OK;
	}
}

void enc_area_copy_state(const struct enc_area *a, int rec, enum enc_copy_state *primary, enum enc_copy_state *backup)
{
	const struct enc_rec *r = rec < 0 ? &a->hdr : &a->slot[rec];

	*primary = r->prim;
	*backup = r->back;
}

uint32_t enc_area_epoch(const struct enc_area *a)
{
	return le32_to_cpu(area_hdr(a)->kh_epoch);
}

static bool slot_active(const struct enc_area *a, unsigned i)
{
	return le32_to_cpu(area_slot(a, i)->ks_state) == ENC_SLOT_ACTIVE;
}

unsigned enc_area_active(const struct enc_area *a)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ENC_SLOTS; i++)
		n += slot_active(a, i);
	return n;
}

static void slot_params(const struct enc_slot_disk *s, struct enc_kdf_params *p)
{
	p->kdf = (enum enc_kdf_id)le32_to_cpu(s->ks_kdf);
	p->t_cost = le32_to_cpu(s->ks_t_cost);
	p->m_kib = le32_to_cpu(s->ks_m_kib);
	p->parallel = le32_to_cpu(s->ks_parallel);
}

int enc_area_slot_info(const struct enc_area *a, int i, struct enc_slot_info *info)
{
	const struct enc_slot_disk *s;

	if (i < 0 || i >= (int)ENC_SLOTS)
		return -EINVAL;
	s = area_slot(a, (unsigned)i);
	memset(info, 0, sizeof(*info));
	info->active = slot_active(a, (unsigned)i);
	if (!info->active)
		return 0;
	slot_params(s, &info->kdf);
	info->epoch = le32_to_cpu(s->ks_epoch);
	info->created_ns = (int64_t)le64_to_cpu(s->ks_created);
	memcpy(info->label, s->ks_label, sizeof(s->ks_label));
	info->label[64] = 0;
	for (char *c = info->label; *c; c++)    /* a label is shown on terminals: printable only */
		if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
			*c = '?';
	return 0;
}

/*
 * Tries one slot: 0 with the key in *key; -EKEYREJECTED (not this secret);
 * -ESTALE (it opened, but to a key that fails the check); another error.
 */
static int slot_try(const struct enc_area *a, unsigned i, const struct enc_secret *sec, uint32_t max_kib,
		    struct enc_key *key, char *errbuf, size_t errlen)
{
	const struct enc_slot_disk *s = area_slot(a, i);
	uint8_t *kek = enc_secure_alloc(ENC_KEY_LEN), aad[SLOT_AAD_LEN], check[32];
	struct enc_kdf_params p;
	char why[160];
	int ret;

	if (!kek)
		return base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
	slot_params(s, &p);
	ret = enc_kdf_check(&p, why, sizeof(why));
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "keyslot %u: %s", i, why);
		goto out;
	}
	if (max_kib && p.kdf == ENC_KDF_ARGON2ID && p.m_kib > max_kib) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "keyslot %u: argon2id memory %u KiB above this host's %u KiB",
				   i, p.m_kib, max_kib);
		goto out;
	}
	/* a key-file slot with a short secret cannot be it (and is not an error) */
	if (p.kdf == ENC_KDF_HKDF_SHA256 && sec->len < ENC_KEY_LEN) {
		ret = -EKEYREJECTED;
		goto out;
	}
	ret = enc_kdf_derive(&p, s->ks_salt, sec, kek, why, sizeof(why));
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "keyslot %u: %s", i, why);
		goto out;
	}
	slot_aad(a, i, aad);
	ret = enc_unwrap(kek, aad, sizeof(aad), s->ks_wrapped, ENC_KEY_LEN, s->ks_iv, s->ks_tag, key->k);
	if (ret == -EBADMSG) {
		ret = -EKEYREJECTED;
		goto out;
	}
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "keyslot %u: unwrap failed", i);
		goto out;
	}
	key->epoch = le32_to_cpu(s->ks_epoch);
	ret = key_check(a, key->k, key->epoch, check);
	if (!ret && !enc_equal(check, area_hdr(a)->kh_check, 32))
		ret = base_set_err(errbuf, errlen, -ESTALE,
				   "keyslot %u opens, but its key fails the key check (a slot of another key)", i);
out:
	enc_secure_free(kek, ENC_KEY_LEN);
	return ret;
}

int enc_area_unlock(const struct enc_area *a, const struct enc_secret *sec, int only, uint32_t max_kib,
		    struct enc_key **keyp, int *slotp, char *errbuf, size_t errlen)
{
	struct enc_key *key;
	uint32_t epoch = enc_area_epoch(a);
	unsigned tried = 0;
	int ret = -EKEYREJECTED, first_err = 0;
	char why[256] = "";

	if (only >= (int)ENC_SLOTS || only < -1)
		return base_set_err(errbuf, errlen, -EINVAL, "no keyslot %d (0..%u)", only, ENC_SLOTS - 1);
	if (!enc_area_active(a))
		return base_set_err(errbuf, errlen, -ENOKEY, "the datastore has no active keyslot");
	key = enc_secure_alloc(sizeof(*key));
	if (!key)
		return base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
	for (unsigned i = 0; i < ENC_SLOTS; i++) {
		if ((only >= 0 && i != (unsigned)only) || !slot_active(a, i) ||
		    le32_to_cpu(area_slot(a, i)->ks_epoch) != epoch)
			continue;
		tried++;
		ret = slot_try(a, i, sec, max_kib, key, why, sizeof(why));
		if (!ret) {
			*keyp = key;
			if (slotp)
				*slotp = (int)i;
			return 0;
		}
		if (ret != -EKEYREJECTED && !first_err)
			first_err = ret;
		if (ret == -ENOMEM)
			break;
	}
	enc_key_free(key);
	if (only >= 0 && !tried)
		return base_set_err(errbuf, errlen, -ENOENT, "keyslot %d is empty", only);
	/* a slot that cannot be tried here, or one that opened to the wrong key, is still a refusal */
	if (first_err && first_err != -EINVAL && first_err != -ESTALE)
		return base_set_err(errbuf, errlen, first_err, "%s", why);
	return base_set_err(errbuf, errlen, -EKEYREJECTED, "no keyslot opens with this key or passphrase%s%s",
			    first_err ? " (" : "", first_err ? why : "");
}

int enc_area_add(struct enc_area *a, const struct enc_key *key, const struct enc_secret *sec,
		 const struct enc_kdf_params *p, const char *label, int want, int *slotp, char *errbuf, size_t errlen)
{
	struct enc_hdr_disk *h = area_hdr(a);
	struct enc_slot_disk *s;
	struct enc_rec save;
	uint8_t check[32], aad[SLOT_AAD_LEN], *kek;
	unsigned i;
	int ret;

	if (want >= (int)ENC_SLOTS || want < -1)
		return base_set_err(errbuf, errlen, -EINVAL, "no keyslot %d (0..%u)", want, ENC_SLOTS - 1);
	if (label && strlen(label) > 64)
		return base_set_err(errbuf, errlen, -EINVAL, "keyslot label longer than 64 bytes");
	ret = enc_kdf_check(p, errbuf, errlen);
	if (ret)
		return ret;
	if (p->kdf == ENC_KDF_HKDF_SHA256 && sec->len < ENC_KEY_LEN)
		return base_set_err(errbuf, errlen, -EINVAL,
				    "a key of %zu bytes is too short for a key-file slot (at least %u; use a passphrase)",
				    sec->len, ENC_KEY_LEN);
	if (key->epoch != le32_to_cpu(h->kh_epoch) || key_check(a, key->k, key->epoch, check) ||
	    !enc_equal(check, h->kh_check, 32))
		return base_set_err(errbuf, errlen, -ESTALE, "the key given is not this datastore's current key");
	if (want >= 0) {
		if (slot_active(a, (unsigned)want))
			return base_set_err(errbuf, errlen, -EEXIST, "keyslot %d is in use", want);
		i = (unsigned)want;
	} else {
		for (i = 0; i < ENC_SLOTS && slot_active(a, i); i++)
			;
		if (i == ENC_SLOTS)
			return base_set_err(errbuf, errlen, -ENOSPC, "all %u keyslots are in use", ENC_SLOTS);
	}
	kek = enc_secure_alloc(ENC_KEY_LEN);
	if (!kek)
		return base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
	save = a->slot[i];
	rec_init(&a->slot[i], ENC_MAGIC_SLOT, i, a->uuid);
	a->slot[i].gen = save.gen;
	a->slot[i].prim = save.prim;
	a->slot[i].back = save.back;
	s = area_slot(a, i);
	s->ks_state = cpu_to_le32(ENC_SLOT_ACTIVE);
	s->ks_kdf = cpu_to_le32(p->kdf);
	s->ks_t_cost = cpu_to_le32(p->t_cost);
	s->ks_m_kib = cpu_to_le32(p->m_kib);
	s->ks_parallel = cpu_to_le32(p->parallel);
	s->ks_epoch = cpu_to_le32(key->epoch);
	s->ks_created = cpu_to_le64((uint64_t)base_real_ns());
	if (label)
		memcpy(s->ks_label, label, strlen(label));      /* at most 64: checked above */
	ret = base_random(s->ks_salt, sizeof(s->ks_salt));
	if (!ret)
		ret = enc_kdf_derive(p, s->ks_salt, sec, kek, errbuf, errlen);
	if (!ret) {
		slot_aad(a, i, aad);
		ret = enc_wrap(kek, aad, sizeof(aad), key->k, ENC_KEY_LEN, s->ks_iv, s->ks_wrapped, s->ks_tag);
		if (ret)
			base_set_err(errbuf, errlen, ret, "wrapping the key failed");
	}
	enc_secure_free(kek, ENC_KEY_LEN);
	if (ret) {
		a->slot[i] = save;
		return ret;
	}
	if (slotp)
		*slotp = (int)i;
	return 0;
}

int enc_area_remove(struct enc_area *a, int i, char *errbuf, size_t errlen)
{
	struct enc_rec *r;
	uint64_t gen;

	if (i < 0 || i >= (int)ENC_SLOTS)
		return base_set_err(errbuf, errlen, -EINVAL, "no keyslot %d (0..%u)", i, ENC_SLOTS - 1);
	if (!slot_active(a, (unsigned)i))
		return base_set_err(errbuf, errlen, -ENOENT, "keyslot %d is empty", i);
	if (enc_area_active(a) == 1)
		return base_set_err(errbuf, errlen, -EBUSY,
				    "keyslot %d is the last one: removing it would lock the datastore for good", i);
	r = &a->slot[i];
	gen = r->gen;
	rec_init(r, ENC_MAGIC_SLOT, (uint64_t)i, a->uuid);
	r->gen = gen;
	return 0;
}

/* ---- changing the datastore key ---- */

static void link_aad(const struct enc_area *a, uint32_t prev, uint32_t cur, uint8_t aad[24])
{
	le32 p = cpu_to_le32(prev), c = cpu_to_le32(cur);

	memcpy(aad, a->uuid, 16);
	memcpy(aad + 16, &p, 4);
	memcpy(aad + 20, &c, 4);
}

uint32_t enc_area_prev_epoch(const struct enc_area *a)
{
	return le32_to_cpu(area_hdr(a)->kh_prev_epoch);
}

int enc_area_change_begin(struct enc_area *a, const struct enc_key *old, struct enc_key **new_key)
{
	struct enc_hdr_disk *h = area_hdr(a);
	struct enc_key *k;
	uint8_t check[32], aad[24];
	int ret;

	if (enc_area_prev_epoch(a))
		return -EBUSY;
	if (old->epoch != enc_area_epoch(a) || key_check(a, old->k, old->epoch, check) || !enc_equal(check, h->kh_check, 32))
		return -ESTALE;
	k = enc_secure_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->epoch = old->epoch + 1;
	ret = base_random(k->k, sizeof(k->k));
	if (!ret)
		ret = key_check(a, k->k, k->epoch, check);
	link_aad(a, old->epoch, k->epoch, aad);
	if (!ret)
		ret = enc_wrap(old->k, aad, sizeof(aad), k->k, ENC_KEY_LEN, h->kh_next_iv, h->kh_next_key, h->kh_next_tag);
	if (!ret)
		ret = enc_wrap(k->k, aad, sizeof(aad), old->k, ENC_KEY_LEN, h->kh_prev_iv, h->kh_prev_key, h->kh_prev_tag);
	if (ret) {
		enc_key_free(k);
		memset(h->kh_next_iv, 0, 0xe0 - 0x68);
		return ret;
	}
	h->kh_prev_epoch = cpu_to_le32(old->epoch);
	h->kh_epoch = cpu_to_le32(k->epoch);
	memcpy(h->kh_check, check, 32);
	a->hdr.dirty = true;
	*new_key = k;
	return 0;
}

int enc_area_rekey_slot(struct enc_area *a, int i, const struct enc_secret *s, const struct enc_key *new_key,
			char *errbuf, size_t errlen)
{
	struct enc_slot_disk *sd;
	struct enc_key *old;
	struct enc_kdf_params p;
	uint8_t *kek, aad[SLOT_AAD_LEN];
	uint32_t prev = enc_area_prev_epoch(a);
	int ret;

	if (i < 0 || i >= (int)ENC_SLOTS || !slot_active(a, (unsigned)i))
		return base_set_err(errbuf, errlen, -ENOENT, "keyslot %d is empty", i);
	sd = area_slot(a, (unsigned)i);
	if (le32_to_cpu(sd->ks_epoch) != prev || new_key->epoch != enc_area_epoch(a))
		return base_set_err(errbuf, errlen, -ESTALE, "keyslot %d is not of the key being replaced", i);
	/* the slot must open with s (to the old key): a slot is never rewritten by a host that could not open it */
	old = enc_secure_alloc(sizeof(*old));
	kek = enc_secure_alloc(ENC_KEY_LEN);
	if (!old || !kek) {
		ret = base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
		goto out;
	}
	slot_params(sd, &p);
	ret = enc_kdf_derive(&p, sd->ks_salt, s, kek, errbuf, errlen);
	if (ret)
		goto out;
	slot_aad(a, (unsigned)i, aad);
	if (enc_unwrap(kek, aad, sizeof(aad), sd->ks_wrapped, ENC_KEY_LEN, sd->ks_iv, sd->ks_tag, old->k)) {
		ret = base_set_err(errbuf, errlen, -EKEYREJECTED, "keyslot %d does not open with this key", i);
		goto out;
	}
	/* a fresh salt: the new wrapping shares nothing with the old one */
	ret = base_random(sd->ks_salt, sizeof(sd->ks_salt));
	if (!ret)
		ret = enc_kdf_derive(&p, sd->ks_salt, s, kek, errbuf, errlen);
	if (ret)
		goto out;
	sd->ks_epoch = cpu_to_le32(new_key->epoch);
	slot_aad(a, (unsigned)i, aad);
	ret = enc_wrap(kek, aad, sizeof(aad), new_key->k, ENC_KEY_LEN, sd->ks_iv, sd->ks_wrapped, sd->ks_tag);
	if (ret)
		base_set_err(errbuf, errlen, ret, "wrapping the key failed");
	a->slot[i].dirty = true;
out:
	enc_key_free(old);
	enc_secure_free(kek, ENC_KEY_LEN);
	return ret;
}

void enc_area_change_end(struct enc_area *a)
{
	struct enc_hdr_disk *h = area_hdr(a);

	h->kh_prev_epoch = 0;
	memset(h->kh_next_iv, 0, 0xe0 - 0x68);
	a->hdr.dirty = true;
}

int enc_area_other_key(const struct enc_area *a, const struct enc_key *key, struct enc_key **other)
{
	const struct enc_hdr_disk *h = area_hdr(a);
	uint32_t prev = enc_area_prev_epoch(a), cur = enc_area_epoch(a);
	uint8_t aad[24], check[32];
	struct enc_key *k;
	int ret;

	if (!prev || (key->epoch != prev && key->epoch != cur))
		return -ENOENT;
	k = enc_secure_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	link_aad(a, prev, cur, aad);
	if (key->epoch == prev) {
		ret = enc_unwrap(key->k, aad, sizeof(aad), h->kh_next_key, ENC_KEY_LEN, h->kh_next_iv, h->kh_next_tag, k->k);
		k->epoch = cur;
		/* the key check value is the new key's: a link that opens to another key is refused */
		if (!ret && (key_check(a, k->k, cur, check) || !enc_equal(check, h->kh_check, 32)))
			ret = -EBADMSG;
	} else {
		ret = enc_unwrap(key->k, aad, sizeof(aad), h->kh_prev_key, ENC_KEY_LEN, h->kh_prev_iv, h->kh_prev_tag, k->k);
		k->epoch = prev;
	}
	if (ret) {
		enc_key_free(k);
		return ret;
	}
	*other = k;
	return 0;
}
