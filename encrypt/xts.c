/*
 * The data cipher: AES-256-XTS (IEEE 1619, OpenSSL's EVP_aes_256_xts) over
 * 4 KiB units, the 128-bit tweak the unit's number within its file,
 * little-endian, as fscrypt and dm-crypt's plain64 do. A context is set up
 * with the key once per I/O; each unit then only sets its tweak. A 512-byte
 * sector of zero bytes on the device decrypts to zeros (enc_xts_run).
 */
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "encrypt/encrypt_i.h"

struct enc_xts {
	EVP_CIPHER_CTX *enc, *dec;
	uint8_t key[64];
};

int enc_xts_new(const struct enc_file *f, unsigned which, struct enc_xts **out)
{
	struct enc_xts *x;

	if (which > ENC_XTS_SNAPNAME)
		return -EINVAL;
	x = enc_secure_alloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	memcpy(x->key, f->xts[which], 64);
	x->enc = x->dec = NULL;
	*out = x;
	return 0;
}

void enc_xts_free(struct enc_xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->enc); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(x->dec);
	enc_secure_free(x, sizeof(*x));
}

static EVP_CIPHER_CTX *ctx_get(struct enc_xts *x, bool encrypt)
{
	EVP_CIPHER_CTX **c = encrypt ? &x->enc : &x->dec;

	if (*c)
		return *c;
	enc_key_setup_begin(); /* the context and its key schedule in OpenSSL's secure heap */
	*c = EVP_CIPHER_CTX_new();
	if (*c && EVP_CipherInit_ex(*c, EVP_aes_256_xts(), NULL, x->key, NULL, encrypt) != 1) {
		EVP_CIPHER_CTX_free(*c);
		*c = NULL;
	}
	enc_key_setup_end();
	return *c;
}

int enc_xts_run(struct enc_xts *x, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len)
{
	EVP_CIPHER_CTX *c = ctx_get(x, encrypt);
	const uint8_t *src = in;
	uint8_t *dst = out;

	if (!c || len < 16)
		return -EIO;
	while (len) {
		size_t n = len < ENC_DATA_UNIT ? len : ENC_DATA_UNIT;
		uint8_t iv[16] = { 0 };
		le64 t = cpu_to_le64(tweak);
		int outl;

		unsigned zero = 0; /* bit i: sector i of the unit is all zero bytes on the device */

		if (!encrypt && n == ENC_DATA_UNIT)
			for (unsigned i = 0; i < ENC_DATA_UNIT / ENC_ZERO_SECTOR; i++)
				if (base_all_zero(src + i * ENC_ZERO_SECTOR, ENC_ZERO_SECTOR))
					zero |= 1u << i;
		if (zero != (1u << (ENC_DATA_UNIT / ENC_ZERO_SECTOR)) - 1 || n != ENC_DATA_UNIT) {
			memcpy(iv, &t, 8);
			if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, encrypt) != 1 ||
			    EVP_CipherUpdate(c, dst, &outl, src, (int)n) != 1 || (size_t)outl != n)
				return -EIO;
		}
		/* XTS enciphers each 16-byte block on its own under the unit's
		 * tweak, so a unit whose write was torn between sectors decrypts
		 * sector by sector to old or new bytes; a sector that was still
		 * zeros (never written) must read as zeros too, not as the
		 * decryption of zeros. */
		for (unsigned i = 0; zero && i < ENC_DATA_UNIT / ENC_ZERO_SECTOR; i++)
			if (zero & (1u << i))
				memset(dst + i * ENC_ZERO_SECTOR, 0, ENC_ZERO_SECTOR);
		src += n;
		dst += n;
		len -= n;
		tweak++;
	}
	return 0;
}

/* ---- per-thread contexts ---- */

#define XTS_CACHE 4

struct xts_cache {
	struct {
		uint64_t id;            /* enc_file id * 3 + which; 0 = empty */
		struct enc_xts *x;
	} e[XTS_CACHE];
	unsigned next;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
	struct xts_cache *c = p;

	for (unsigned i = 0; i < XTS_CACHE; i++)
		enc_xts_free(c->e[i].x);
	free(c);
}

/* At exit: the exiting thread's cache (other threads' go with them, through the key's destructor). */
static void cache_exit(void)
{
	void *c = pthread_getspecific(cache_key);

	if (c) {
		pthread_setspecific(cache_key, NULL);
		cache_free(c);
	}
}

static void cache_init(void)
{
	if (pthread_key_create(&cache_key, cache_free))
		abort();
	atexit(cache_exit);
}

int enc_xts_cached(const struct enc_file *f, unsigned which, bool encrypt, uint64_t tweak, const void *in, void *out,
		   size_t len)
{
	struct xts_cache *c;
	uint64_t id = f->id * 3 + which;
	unsigned i;
	int ret;

	pthread_once(&cache_once, cache_init);
	c = pthread_getspecific(cache_key);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c || pthread_setspecific(cache_key, c)) {
			free(c);
			return -ENOMEM;
		}
	}
	for (i = 0; i < XTS_CACHE && c->e[i].id != id; i++)
		;
	if (i == XTS_CACHE) {
		i = c->next++ % XTS_CACHE;
		enc_xts_free(c->e[i].x);
		c->e[i].id = 0;
		ret = enc_xts_new(f, which, &c->e[i].x);
		if (ret) {
			c->e[i].x = NULL;
			return ret;
		}
		c->e[i].id = id;
	}
	return enc_xts_run(c->e[i].x, encrypt, tweak, in, out, len);
}
