/* encrypt/ private helpers shared by its files. */
#ifndef ENC_ENCRYPT_I_H
#define ENC_ENCRYPT_I_H

#include "encrypt/encrypt.h"

/* HKDF-SHA256 (RFC 5869) of ikm with salt and info into out. 0 or -EIO. */
int enc_hkdf(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const char *info, void *out,
	     size_t outlen);

/* HMAC-SHA256 of data under key into mac. 0 or -EIO. */
int enc_hmac(const uint8_t key[ENC_KEY_LEN], const void *data, size_t len, uint8_t mac[32]);

/* Constant-time comparison of n bytes. */
bool enc_equal(const void *a, const void *b, size_t n);

/*
 * Brackets a call into OpenSSL that takes a key (a cipher context's set-up,
 * a one-shot MAC or KDF): what OpenSSL allocates on this thread meanwhile,
 * the key schedule with it, comes from its secure heap (secmem.c). Nests.
 */
void enc_key_setup_begin(void);
void enc_key_setup_end(void);

#endif
