/*
 * Keys wrapped by keys: AES-256-GCM through OpenSSL's EVP interface, a fresh
 * random 96-bit IV for every seal (a key never seals two messages under one
 * IV: NIST SP 800-38D's random-IV construction, far below its 2^32 limit per
 * key), a 128-bit tag checked before a single unwrapped byte is used. Also
 * the HMAC and constant-time comparison the key check value needs.
 */
#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "encrypt/encrypt_i.h"

int enc_wrap(const uint8_t key[ENC_KEY_LEN], const void *aad, size_t aadlen, const void *plain, size_t len,
	     uint8_t iv[ENC_IV_LEN], void *sealed, uint8_t tag[ENC_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	int n, ret = -EIO;

	if (len > INT32_MAX || aadlen > INT32_MAX || RAND_bytes(iv, ENC_IV_LEN) != 1)
		return -EIO;
	enc_key_setup_begin();
	ctx = EVP_CIPHER_CTX_new();
	if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENC_IV_LEN, NULL) == 1 &&
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) == 1 &&
	    (!aadlen || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) == 1) &&
	    EVP_EncryptUpdate(ctx, sealed, &n, plain, (int)len) == 1 && (size_t)n == len &&
	    EVP_EncryptFinal_ex(ctx, (uint8_t *)sealed + n, &n) == 1 && n == 0 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ENC_TAG_LEN, tag) == 1)
		ret = 0;
	EVP_CIPHER_CTX_free(ctx);
	enc_key_setup_end();
	return ctx ? ret : -ENOMEM;
}

int enc_unwrap(const uint8_t key[ENC_KEY_LEN], const void *aad, size_t aadlen, const void *sealed, size_t len,
	       const uint8_t iv[ENC_IV_LEN], const uint8_t tag[ENC_TAG_LEN], void *plain)
{
	EVP_CIPHER_CTX *ctx;
	uint8_t *tmp;
	int n, fin, ret = -EIO;

	if (len > INT32_MAX || aadlen > INT32_MAX)
		return -EIO;
	/* decrypt into locked memory, and copy out only once the tag matched */
	tmp = enc_secure_alloc(len);
	enc_key_setup_begin();
	ctx = EVP_CIPHER_CTX_new();
	if (!tmp || !ctx) {
		ret = -ENOMEM;
		goto out;
	}
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENC_IV_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) != 1 ||
	    (aadlen && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) ||
	    EVP_DecryptUpdate(ctx, tmp, &n, sealed, (int)len) != 1 || (size_t)n != len ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ENC_TAG_LEN, (void *)tag) != 1)
		goto out;
	fin = EVP_DecryptFinal_ex(ctx, tmp + n, &n);
	if (fin != 1) {
		ret = -EBADMSG;
		goto out;
	}
	memcpy(plain, tmp, len);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	enc_key_setup_end();
	enc_secure_free(tmp, len);
	return ret;
}

int enc_hmac(const uint8_t key[ENC_KEY_LEN], const void *data, size_t len, uint8_t mac[32])
{
	unsigned n = 0;
	bool ok;

	enc_key_setup_begin();
	ok = HMAC(EVP_sha256(), key, ENC_KEY_LEN, data, len, mac, &n) && n == 32;
	enc_key_setup_end();
	return ok ? 0 : -EIO;
}

bool enc_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
