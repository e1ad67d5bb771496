/*
 * Unit tests for vmm's token buckets (vmm/ratelimit.h) on a fake clock: the
 * first second's burst, waits computed to the nanosecond, refill capped at one
 * second's worth, a request larger than the bucket going into debt, both
 * buckets taken or neither, unlimited buckets, and slow rates that keep the
 * time of partial tokens. Every expected value is written out.
 */
#include "vmm/ratelimit.h"

#include <check.h>
#include <stdlib.h>

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

static Suite *ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("bucket");

	tcase_add_test(tc, bytes_burst_then_wait);
	tcase_add_test(tc, large_request_borrows);
	tcase_add_test(tc, ops_and_bytes_together);
	tcase_add_test(tc, unlimited);
	tcase_add_test(tc, slow_rate_keeps_partial_time);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ratelimit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
