/*
 * Locked memory for keys and secrets: whole pages from mmap, mlock'd so they
 * never reach swap, marked MADV_DONTDUMP so a core dump leaves them out, and
 * wiped with OPENSSL_cleanse (which the compiler may not drop) before they
 * are unmapped. A child of fork() keeps them (vmfs-mount reads its key, then
 * daemonizes) but not their lock: enc_secure_relock() takes it again. A key
 * program is exec'd at once, and exec leaves nothing of them. Allocations are rare (a handful of keys per handle), so a
 * page each costs nothing that matters.
 *
 * OpenSSL keeps what it derives from a key (a cipher context's key
 * schedule) in memory of its own. Its allocations go through the functions
 * below (CRYPTO_set_mem_functions, set before OpenSSL allocates anything):
 * between enc_key_setup_begin and _end on a thread they come from
 * OpenSSL's secure heap (CRYPTO_secure_malloc: one mlock'd, MADV_DONTDUMP
 * arena with guard pages, cleansed on free), made at the first key set-up;
 * all other allocations, and those the arena has no room for, from malloc.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "encrypt/encrypt_i.h"

/* The secure heap: contexts cached per thread (xts.c) take about 1.3 KiB each, a few per thread. */
#define KEY_HEAP (1u << 20)
#define KEY_HEAP_MIN 32u

static __thread unsigned key_setup;
static pthread_once_t key_heap_once = PTHREAD_ONCE_INIT;

static bool secure(void *p)
{
	return p && CRYPTO_secure_malloc_initialized() && CRYPTO_secure_allocated(p);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	void *p = NULL;

	(void)file;
	(void)line;
	if (key_setup && CRYPTO_secure_malloc_initialized())
		p = CRYPTO_secure_malloc(n, NULL, 0); /* NULL when the arena is full (no error queued) */
	return p ? p : malloc(n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (secure(p))
		CRYPTO_secure_free(p, NULL, 0); /* cleansed first */
	else
		free(p);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	size_t had;
	void *q;

	if (!p)
		return ossl_malloc(n, file, line);
	if (!secure(p))
		return realloc(p, n);
	if (!n) {
		ossl_free(p, file, line);
		return NULL;
	}
	q = ossl_malloc(n, file, line);
	if (q) {
		had = CRYPTO_secure_actual_size(p);
		memcpy(q, p, had < n ? had : n);
		ossl_free(p, file, line);
	}
	return q;
}

/* Before main, so before OpenSSL's first allocation (after it, OpenSSL refuses, and keeps to malloc). */
__attribute__((constructor)) static void key_mem_init(void)
{
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}

/*
 * Made at the first key set-up. OpenSSL's providers and the algorithms used
 * here are loaded first, outside it: they live as long as the process, and
 * hold no key.
 */
static void key_heap_init(void)
{
	static const char *const ciphers[] = { "AES-256-XTS", "AES-256-GCM" };

	for (unsigned i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		EVP_CIPHER_free(EVP_CIPHER_fetch(NULL, ciphers[i], NULL));
	EVP_MD_free(EVP_MD_fetch(NULL, "SHA256", NULL));
	EVP_KDF_free(EVP_KDF_fetch(NULL, "HKDF", NULL));
	EVP_MAC_free(EVP_MAC_fetch(NULL, "HMAC", NULL));
	(void)CRYPTO_secure_malloc_init(KEY_HEAP, KEY_HEAP_MIN); /* 2: not locked (RLIMIT_MEMLOCK), still used */
}

void enc_key_setup_begin(void)
{
	pthread_once(&key_heap_once, key_heap_init);
	key_setup++;
}

void enc_key_setup_end(void)
{
	key_setup--;
}

static size_t page_round(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) / pg * pg;
}

void *enc_secure_alloc(size_t len)
{
	size_t n = page_round(len ? len : 1);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int e;

	if (p == MAP_FAILED)
		return NULL;
	if (mlock(p, n) || madvise(p, n, MADV_DONTDUMP)) {
		e = errno == EPERM || errno == EAGAIN ? ENOMEM : errno;
		munmap(p, n);
		errno = e;
		return NULL;
	}
	return p;
}

int enc_secure_relock(void *p, size_t len)
{
	return p && mlock(p, page_round(len ? len : 1)) ? -errno : 0;
}

void enc_secure_free(void *p, size_t len)
{
	size_t n;

	if (!p)
		return;
	n = page_round(len ? len : 1);
	OPENSSL_cleanse(p, n);
	munlock(p, n);
	munmap(p, n);
}

void enc_key_free(struct enc_key *k)
{
	enc_secure_free(k, sizeof(*k));
}

void enc_secret_free(struct enc_secret *s)
{
	enc_secure_free(s, sizeof(*s));
}
