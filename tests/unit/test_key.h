/*
 * The unit suites that run twice in make test, the second time on an
 * encrypted datastore (VMFS_TEST_ENCRYPT=1, tests/run-all.sh), take the key
 * from here: their mkfs and every open pass test_key().
 */
#ifndef VMFS_TEST_KEY_H
#define VMFS_TEST_KEY_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "encrypt/encrypt.h"

/* The key of an encrypted run, or NULL for a plain one. */
static inline struct enc_secret *test_key(void)
{
	static struct enc_secret *k;
	static const char bytes[] = "0123456789abcdef0123456789abcdef";

	if (!getenv("VMFS_TEST_ENCRYPT") || strcmp(getenv("VMFS_TEST_ENCRYPT"), "1"))
		return NULL;
	if (!k)
		ck_assert_int_eq(enc_secret_from_buf(bytes, 32, &k), 0);
	return k;
}

#endif
