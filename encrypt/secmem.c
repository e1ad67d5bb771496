/*
 * Locked memory for keys and secrets: whole pages from mmap, mlock'd so they
 * never reach swap, marked MADV_DONTDUMP so a core dump leaves them out, and
 * wiped with OPENSSL_cleanse (which the compiler may not drop) before they
 * are unmapped. A child of fork() keeps them (vmfs-mount reads its key, then
 * daemonizes) but not their lock: enc_secure_relock() takes it again. A key
 * program is exec'd at once, and exec leaves nothing of them. Allocations are rare (a handful of keys per handle), so a
 * page each costs nothing that matters.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "encrypt/encrypt.h"

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
