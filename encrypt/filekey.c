/*
 * File keys (enc_crypt_disk in an inode's i_crypt): made at create time from
 * the CSPRNG, sealed under the datastore key with AES-256-GCM, and opened to
 * the AES-256-XTS keys the data path uses (HKDF-SHA256 of each file key, so
 * the 32 bytes stored are never used as a cipher key themselves). Bytes
 * read from an inode are untrusted: only a sealed blob whose tag matches is
 * opened, and its flags must name the keys it holds.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "encrypt/encrypt_i.h"

static void crypt_aad(const uint8_t uuid[16], const struct enc_crypt_disk *c, uint8_t aad[20])
{
	memcpy(aad, uuid, 16);
	memcpy(aad + 16, c, 4);
}

bool enc_crypt_present(const void *crypt)
{
	return ((const struct enc_crypt_disk *)crypt)->cr_version != 0;
}

bool enc_crypt_known(const void *crypt)
{
	const struct enc_crypt_disk *c = crypt;

	return c->cr_version == ENC_CRYPT_VERSION && !(c->cr_flags & ~ENC_CR_FLAGS_KNOWN) && (c->cr_flags & ENC_CR_K0);
}

bool enc_crypt_rekeying(const void *crypt)
{
	return enc_crypt_known(crypt) && (((const struct enc_crypt_disk *)crypt)->cr_flags & ENC_CR_K1);
}

int enc_file_new(const struct enc_key *key, const uint8_t uuid[16], void *crypt)
{
	struct enc_crypt_disk *c = crypt;
	uint8_t *keys = enc_secure_alloc(3 * ENC_KEY_LEN), aad[20];
	int ret;

	if (!keys)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->cr_version = ENC_CRYPT_VERSION;
	c->cr_flags = ENC_CR_K0;
	c->cr_epoch = cpu_to_le16((uint16_t)key->epoch);
	ret = RAND_priv_bytes(keys, ENC_KEY_LEN) == 1 &&
			      RAND_priv_bytes(keys + 2 * ENC_KEY_LEN, ENC_KEY_LEN) == 1
		      ? 0
		      : -EIO;
	if (!ret) {
		crypt_aad(uuid, c, aad);
		ret = enc_wrap(key->k, aad, sizeof(aad), keys, 3 * ENC_KEY_LEN, c->cr_iv, c->cr_keys, c->cr_tag);
	}
	enc_secure_free(keys, 3 * ENC_KEY_LEN);
	if (ret)
		memset(c, 0, sizeof(*c));
	return ret;
}

static uint64_t next_id;

int enc_file_open(const struct enc_key *key, const uint8_t uuid[16], const void *crypt, struct enc_file **out)
{
	const struct enc_crypt_disk *c = crypt;
	struct enc_file *f;
	uint8_t *keys, aad[20];
	int ret;

	if (!enc_crypt_known(c))
		return -EUCLEAN;
	if (le16_to_cpu(c->cr_epoch) != (uint16_t)key->epoch)
		return -ESTALE;
	keys = enc_secure_alloc(3 * ENC_KEY_LEN);
	f = enc_secure_alloc(sizeof(*f));
	if (!keys || !f) {
		ret = -ENOMEM;
		goto err;
	}
	crypt_aad(uuid, c, aad);
	ret = enc_unwrap(key->k, aad, sizeof(aad), c->cr_keys, 3 * ENC_KEY_LEN, c->cr_iv, c->cr_tag, keys);
	if (ret)
		goto err;
	static const uint8_t zero_salt[32]; /* RFC 5869: no salt is HashLen zeros */
	for (unsigned i = 0; i < 2 && !ret; i++)
		if (c->cr_flags & (i ? ENC_CR_K1 : ENC_CR_K0))
			ret = enc_hkdf(keys + i * ENC_KEY_LEN, ENC_KEY_LEN, zero_salt, sizeof(zero_salt), "vmfs xts",
				       f->xts[i], 64);
	if (!ret)
		ret = enc_hkdf(keys + 2 * ENC_KEY_LEN, ENC_KEY_LEN, zero_salt, sizeof(zero_salt), "vmfs snapname",
			       f->xts[ENC_XTS_SNAPNAME], 64);
	if (ret)
		goto err;
	memcpy(f->hash, keys + 2 * ENC_KEY_LEN, ENC_KEY_LEN);
	f->flags = c->cr_flags;
	f->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	enc_secure_free(keys, 3 * ENC_KEY_LEN);
	*out = f;
	return 0;
err:
	enc_secure_free(keys, 3 * ENC_KEY_LEN);
	enc_secure_free(f, sizeof(*f));
	return ret;
}

void enc_file_free(struct enc_file *f)
{
	enc_secure_free(f, sizeof(*f));
}

int enc_name_hash(const struct enc_file *f, const void *name, size_t len, uint64_t *out)
{
	uint8_t mac[32];
	le64 v;

	if (enc_hmac(f->hash, name, len, mac))
		return -EIO;
	memcpy(&v, mac, 8);
	*out = le64_to_cpu(v);
	return 0;
}

uint16_t enc_crypt_epoch(const void *crypt)
{
	return le16_to_cpu(((const struct enc_crypt_disk *)crypt)->cr_epoch);
}

enum crypt_change { CH_RESEAL, CH_BEGIN, CH_END };

/*
 * Opens crypt with from, changes what it holds (how), seals it again under
 * to with a new IV. Returns 0, or enc_file_open's errors (crypt unchanged).
 */
static int crypt_change(const struct enc_key *from, const struct enc_key *to, const uint8_t uuid[16], void *crypt,
			enum crypt_change how)
{
	struct enc_crypt_disk *c = crypt, n;
	uint8_t *keys, aad[20];
	int ret;

	if (!enc_crypt_known(c))
		return -EUCLEAN;
	if (le16_to_cpu(c->cr_epoch) != (uint16_t)from->epoch)
		return -ESTALE;
	if ((how == CH_BEGIN && (c->cr_flags & ENC_CR_K1)) || (how == CH_END && !(c->cr_flags & ENC_CR_K1)))
		return -EINVAL;
	keys = enc_secure_alloc(3 * ENC_KEY_LEN);
	if (!keys)
		return -ENOMEM;
	crypt_aad(uuid, c, aad);
	ret = enc_unwrap(from->k, aad, sizeof(aad), c->cr_keys, 3 * ENC_KEY_LEN, c->cr_iv, c->cr_tag, keys);
	if (!ret) {
		n = *c;
		n.cr_epoch = cpu_to_le16((uint16_t)to->epoch);
		if (how == CH_BEGIN) { /* a new key 1 from the CSPRNG */
			n.cr_flags |= ENC_CR_K1;
			if (RAND_priv_bytes(keys + ENC_KEY_LEN, ENC_KEY_LEN) != 1)
				ret = -EIO;
		} else if (how == CH_END) { /* key 1 becomes key 0; the old key 0 is gone */
			n.cr_flags &= (uint8_t)~ENC_CR_K1;
			memcpy(keys, keys + ENC_KEY_LEN, ENC_KEY_LEN);
			OPENSSL_cleanse(keys + ENC_KEY_LEN, ENC_KEY_LEN);
		}
		crypt_aad(uuid, &n, aad);
		if (!ret)
			ret = enc_wrap(to->k, aad, sizeof(aad), keys, 3 * ENC_KEY_LEN, n.cr_iv, n.cr_keys, n.cr_tag);
		if (!ret)
			*c = n;
	}
	enc_secure_free(keys, 3 * ENC_KEY_LEN);
	return ret;
}

int enc_file_reseal(const struct enc_key *from, const struct enc_key *to, const uint8_t uuid[16], void *crypt)
{
	return crypt_change(from, to, uuid, crypt, CH_RESEAL);
}

int enc_file_rekey(const struct enc_key *key, const uint8_t uuid[16], void *crypt, bool end)
{
	return crypt_change(key, key, uuid, crypt, end ? CH_END : CH_BEGIN);
}
