/*
 * Unit tests for the parts of vmm that need no /dev/kvm: the token buckets
 * (vmm/ratelimit.h) on a fake clock (the first second's burst, waits computed
 * to the nanosecond, refill capped at one second's worth, a request larger
 * than the bucket going into debt, both buckets taken or neither, unlimited
 * buckets, slow rates that keep the time of partial tokens) and the control
 * socket's line parser (vmm/jsonline.h: what it takes, and the hostile lines
 * it refuses). Every expected value is written out.
 */
#include "vmm/jsonline.h"
#include "vmm/ratelimit.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define S 1000000000ull

START_TEST(bytes_burst_then_wait)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1000, 0);	/* 1000 bytes/s */
	ck_assert_uint_eq(vmm_limiter_take(&l, 600, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 400, 0), 0);
	/* empty: one byte takes 1 ms */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 0), 1 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 0), 100 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 40 * MS), 60 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 100 * MS), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 100 * MS), 1 * MS);
	/* a long idle time refills one second's worth, no more */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1000, 100 * S), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 100 * S), 1 * MS);
}
END_TEST

START_TEST(large_request_borrows)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1000, 0);
	/* 5000 bytes need a full bucket, then leave 4000 of debt */
	ck_assert_uint_eq(vmm_limiter_take(&l, 500, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 5000, 0), 500 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 5000, 500 * MS), 0);
	ck_assert_int_eq(l.bytes.tokens, -4000);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 500 * MS), 4001 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 4501 * MS), 0);
}
END_TEST

START_TEST(ops_and_bytes_together)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1 << 20, 0);
	vmm_bucket_set(&l.ops, 2, 0);	/* 2 operations/s */
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 0);
	/* out of operations: nothing is taken from the byte bucket */
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 500 * MS);
	ck_assert_int_eq(l.bytes.tokens, (1 << 20) - 8192);
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 500 * MS), 0);
	/* out of bytes (and operations): the longer wait wins */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1 << 20, 500 * MS), 500 * MS);
}
END_TEST

START_TEST(unlimited)
{
	struct vmm_limiter l = { 0 };
	int i;

	for (i = 0; i < 1000; i++)
		ck_assert_uint_eq(vmm_limiter_take(&l, 1ull << 40, 0), 0);
	vmm_bucket_set(&l.ops, 1, 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1ull << 40, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 1 * S);
	vmm_bucket_set(&l.ops, 0, 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
}
END_TEST

START_TEST(slow_rate_keeps_partial_time)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.ops, 3, 0);	/* a token every 333.33 ms */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 333333334);
	/* polling early adds nothing and does not lose the elapsed time */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 200 * MS), 133333334);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 333333334), 0);
	/* the next token came 333333333 ns after the first: none lost to rounding */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 666666667), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 666666667), 333333333);
}
END_TEST

START_TEST(json_takes_flat_objects)
{
	struct vmm_json_kv kv[VMM_JSON_MAX_KEYS];
	unsigned n;

	ck_assert_int_eq(vmm_json_parse("{\"cmd\":\"rate\",\"disk\":0,\"bytes_per_s\":18446744073709551615}", kv, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(vmm_json_find(kv, n, "cmd")->str, "rate");
	ck_assert(!vmm_json_find(kv, n, "cmd")->is_num);
	ck_assert(vmm_json_find(kv, n, "disk")->is_num);
	ck_assert_uint_eq(vmm_json_find(kv, n, "disk")->num, 0);
	ck_assert_uint_eq(vmm_json_find(kv, n, "bytes_per_s")->num, UINT64_MAX);
	ck_assert_ptr_null(vmm_json_find(kv, n, "ops_per_s"));
	ck_assert_int_eq(vmm_json_parse("  { \"cmd\" : \"status\" }\r", kv, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(vmm_json_parse("{}", kv, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(json_refuses_the_rest)
{
	static const char *const bad[] = {
		"", "{", "}", "[]", "\"cmd\"", "{\"cmd\"}", "{\"cmd\":}", "{\"cmd\":\"a\",}", "{,}",
		"{\"cmd\":\"a\"} x", "{\"cmd\":\"a\"}{}", "{\"a\":-1}", "{\"a\":1.5}", "{\"a\":1e3}",
		"{\"a\":18446744073709551616}", "{\"a\":true}", "{\"a\":null}", "{\"a\":{\"b\":1}}",
		"{\"a\":[1]}", "{\"a\":\"x\\\"y\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"open}",
		"{\"0123456789012345678901234567890123\":1}",
		"{\"a\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
		"{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}",
	};
	struct vmm_json_kv kv[VMM_JSON_MAX_KEYS];
	unsigned i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(vmm_json_parse(bad[i], kv, &n) == -EINVAL, "took %s", bad[i]);
	/* exactly VMM_JSON_MAX_KEYS pairs still go */
	ck_assert_int_eq(vmm_json_parse("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}", kv, &n), 0);
	ck_assert_uint_eq(n, 8);
}
END_TEST

static Suite *vmm_suite(void)
{
	Suite *s = suite_create("vmm");
	TCase *tc = tcase_create("bucket");
	TCase *tj = tcase_create("jsonline");

	tcase_add_test(tc, bytes_burst_then_wait);
	tcase_add_test(tc, large_request_borrows);
	tcase_add_test(tc, ops_and_bytes_together);
	tcase_add_test(tc, unlimited);
	tcase_add_test(tc, slow_rate_keeps_partial_time);
	suite_add_tcase(s, tc);
	tcase_add_test(tj, json_takes_flat_objects);
	tcase_add_test(tj, json_refuses_the_rest);
	suite_add_tcase(s, tj);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vmm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
