/*
 * Key derivation for keyslots: a secret and a keyslot's salt and parameters
 * give the key-encryption key that unwraps the datastore key. Passphrases go
 * through argon2id (libargon2, RFC 9106), whose memory cost is what makes a
 * guessed passphrase expensive; a key file of at least 32 bytes is already a
 * key and goes through HKDF-SHA256 (OpenSSL's EVP_KDF), which only binds it
 * to the slot's salt. Parameters come from disk, so they are held to the
 * limits of encrypt_format.h before any memory is committed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "encrypt/encrypt_i.h"

void enc_kdf_default(enum enc_secret_kind kind, struct enc_kdf_params *p)
{
	memset(p, 0, sizeof(*p));
	if (kind == ENC_SECRET_KEYFILE) {
		p->kdf = ENC_KDF_HKDF_SHA256;
		return;
	}
	/* 0.77 s on the lab machines (2 cores); cryptsetup aims at 2 s and up to 1 GiB */
	p->kdf = ENC_KDF_ARGON2ID;
	p->t_cost = 3;
	p->m_kib = 256u << 10;
	p->parallel = 2;
}

int enc_kdf_parse(const char *spec, struct enc_kdf_params *p, char *errbuf, size_t errlen)
{
	char buf[128], *save = NULL, *item;
	const char *rest;

	if (!strcmp(spec, "hkdf-sha256")) {
		enc_kdf_default(ENC_SECRET_KEYFILE, p);
		return 0;
	}
	if (strncmp(spec, "argon2id", 8) || (spec[8] && spec[8] != ':') || strlen(spec) >= sizeof(buf))
		return base_set_err(errbuf, errlen, -EINVAL, "unknown KDF '%s' (argon2id[:t=N,m=SIZE,p=N] or hkdf-sha256)",
				    spec);
	enc_kdf_default(ENC_SECRET_PASSPHRASE, p);
	rest = spec[8] ? spec + 9 : "";
	strcpy(buf, rest);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		char *end;
		if (!strncmp(item, "m=", 2)) {
			if (base_parse_size(item + 2, &v) || v / 1024 > UINT32_MAX)
				return base_set_err(errbuf, errlen, -EINVAL, "argon2id memory '%s': not a size", item + 2);
			p->m_kib = (uint32_t)(v / 1024);
			continue;
		}
		if ((item[0] != 't' && item[0] != 'p') || item[1] != '=')
			return base_set_err(errbuf, errlen, -EINVAL, "argon2id parameter '%s' (want t=, m= or p=)", item);
		errno = 0;
		v = strtoull(item + 2, &end, 10);
		if (errno || end == item + 2 || *end || v > UINT32_MAX)
			return base_set_err(errbuf, errlen, -EINVAL, "argon2id parameter '%s': not a number", item);
		if (item[0] == 't')
			p->t_cost = (uint32_t)v;
		else
			p->parallel = (uint32_t)v;
	}
	return enc_kdf_check(p, errbuf, errlen);
}

int enc_kdf_check(const struct enc_kdf_params *p, char *errbuf, size_t errlen)
{
	switch (p->kdf) {
	case ENC_KDF_HKDF_SHA256:
		if (p->t_cost || p->m_kib || p->parallel)
			return base_set_err(errbuf, errlen, -EINVAL, "hkdf-sha256 takes no cost parameters");
		return 0;
	case ENC_KDF_ARGON2ID:
		if (p->t_cost < 1 || p->t_cost > ENC_ARGON2_MAX_T)
			return base_set_err(errbuf, errlen, -EINVAL, "argon2id passes %u outside 1..%u", p->t_cost,
					    ENC_ARGON2_MAX_T);
		if (p->parallel < 1 || p->parallel > ENC_ARGON2_MAX_LANES)
			return base_set_err(errbuf, errlen, -EINVAL, "argon2id lanes %u outside 1..%u", p->parallel,
					    ENC_ARGON2_MAX_LANES);
		if (p->m_kib < ENC_ARGON2_MIN_KIB || p->m_kib > ENC_ARGON2_MAX_KIB || p->m_kib < 8 * p->parallel)
			return base_set_err(errbuf, errlen, -EINVAL, "argon2id memory %u KiB outside %u..%u KiB",
					    p->m_kib, base_max(ENC_ARGON2_MIN_KIB, 8 * p->parallel),
					    ENC_ARGON2_MAX_KIB);
		return 0;
	}
	return base_set_err(errbuf, errlen, -EINVAL, "unknown key derivation function %u", (unsigned)p->kdf);
}

int enc_hkdf(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const char *info, void *out,
	     size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[5], *q = params;
	int ret = -EIO;

	enc_key_setup_begin(); /* the context's copy of the key in OpenSSL's secure heap */
	ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!ctx)
		goto out;
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) == 1)
		ret = 0;
out:
	EVP_KDF_CTX_free(ctx);
	enc_key_setup_end();
	EVP_KDF_free(kdf);
	return ret;
}

int enc_kdf_derive(const struct enc_kdf_params *p, const uint8_t salt[ENC_SALT_LEN], const struct enc_secret *s,
		   uint8_t kek[ENC_KEY_LEN], char *errbuf, size_t errlen)
{
	int ret = enc_kdf_check(p, errbuf, errlen);

	if (ret)
		return ret;
	if (!s->len || s->len > ENC_SECRET_MAX)
		return base_set_err(errbuf, errlen, -EINVAL, "empty secret");
	if (p->kdf == ENC_KDF_HKDF_SHA256) {
		if (s->len < ENC_KEY_LEN)
			return base_set_err(errbuf, errlen, -EINVAL,
					    "key of %zu bytes is too short for hkdf-sha256 (at least %u)", s->len,
					    ENC_KEY_LEN);
		if (enc_hkdf(s->buf, s->len, salt, ENC_SALT_LEN, "vmfs keyslot", kek, ENC_KEY_LEN))
			return base_set_err(errbuf, errlen, -EIO, "hkdf-sha256 failed");
		return 0;
	}
	ret = argon2id_hash_raw(p->t_cost, p->m_kib, p->parallel, s->buf, s->len, salt, ENC_SALT_LEN, kek, ENC_KEY_LEN);
	if (ret == ARGON2_MEMORY_ALLOCATION_ERROR)
		return base_set_err(errbuf, errlen, -ENOMEM, "argon2id: cannot allocate %u KiB", p->m_kib);
	if (ret != ARGON2_OK)
		return base_set_err(errbuf, errlen, -EIO, "argon2id: %s", argon2_error_message(ret));
	return 0;
}
