/*
 * Unit tests for base/: crc32c against the RFC 3720 vectors, the SSE4.2 and
 * table paths against each other, size parsing and formatting, UUID text and the
 * small arithmetic helpers. Every expected value is written out, not computed
 * by the code under test.
 */
#include "base/base.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* xorshift64*: deterministic bytes so a failure can be reproduced */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

START_TEST(crc_known_vectors)
{
	uint8_t zeros[32] = { 0 }, ones[32], inc[32];

	for (int i = 0; i < 32; i++) {
		ones[i] = 0xff;
		inc[i] = (uint8_t)i;
	}
	ck_assert_uint_eq(base_crc32c(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(base_crc32c(0, zeros, 32), 0x8A9136AAu);
	ck_assert_uint_eq(base_crc32c(0, ones, 32), 0x62A8AB43u);
	ck_assert_uint_eq(base_crc32c(0, inc, 32), 0x46DD794Eu);
	ck_assert_uint_eq(base_crc32c(0, "", 0), 0);

	ck_assert_uint_eq(base_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(base_crc32c_sw(0, zeros, 32), 0x8A9136AAu);
	ck_assert_uint_eq(base_crc32c_sw(0, ones, 32), 0x62A8AB43u);
	ck_assert_uint_eq(base_crc32c_sw(0, inc, 32), 0x46DD794Eu);
}
END_TEST

START_TEST(crc_incremental)
{
	static uint8_t buf[4099];
	uint64_t seed = 0x1234567;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&seed);
	for (size_t split = 0; split <= sizeof(buf); split += 97) {
		uint32_t whole = base_crc32c(0, buf, sizeof(buf));
		uint32_t part = base_crc32c(base_crc32c(0, buf, split), buf + split, sizeof(buf) - split);
		uint32_t part_sw = base_crc32c_sw(base_crc32c_sw(0, buf, split), buf + split,
						  sizeof(buf) - split);

		ck_assert_uint_eq(part, whole);
		ck_assert_uint_eq(part_sw, whole);
	}
	/* three pieces, one of them empty */
	ck_assert_uint_eq(base_crc32c(base_crc32c(base_crc32c(0, "1234", 4), "", 0), "56789", 5),
			  0xE3069283u);
}
END_TEST

START_TEST(crc_hw_matches_sw)
{
	static uint8_t buf[8192 + 16];
	uint64_t seed = 0xfeedfacecafebeefull;

	if (getenv("VMFS_CRC_SW"))
		fprintf(stderr, "test_base: VMFS_CRC_SW is set: both paths are the table path\n");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&seed);
	for (size_t len = 0; len <= 8192; len = len < 80 ? len + 1 : len * 3 / 2 + 1) {
		for (size_t align = 0; align < 8; align++) {
			uint32_t start = (uint32_t)rng_next(&seed);

			ck_assert_msg(base_crc32c(start, buf + align, len) ==
				      base_crc32c_sw(start, buf + align, len),
				      "len %zu align %zu start 0x%08x", len, align, start);
		}
	}
	/* a flipped bit must change the checksum */
	{
		uint32_t before = base_crc32c(0, buf, 4096);

		buf[1000] ^= 0x10;
		ck_assert_uint_ne(base_crc32c(0, buf, 4096), before);
		ck_assert_uint_ne(base_crc32c_sw(0, buf, 4096), before);
	}
}
END_TEST

static const struct size_case {
	const char *s;
	int r;
	uint64_t v;
} size_cases[] = {
	{ "0", 0, 0 },
	{ "4096", 0, 4096 },
	{ "256M", 0, 256ull << 20 },
	{ "1.5G", 0, 3ull << 29 },
	{ "16TiB", 0, 16ull << 40 },
	{ "1P", 0, 1ull << 50 },
	{ "1k", 0, 1024 },
	{ "2KB", 0, 2048 },
	{ "0.5K", 0, 512 },
	{ "15E", 0, 15ull << 60 },
	/* near the top; exact in a double too, as valgrind computes long double in 64 bits */
	{ "9223372036854775808", 0, 1ull << 63 },
	{ "17179869183G", 0, UINT64_MAX - (1ull << 30) + 1 },
	{ "", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ "+1", -EINVAL, 0 },
	{ "12X", -EINVAL, 0 },
	{ "1.5", -EINVAL, 0 },          /* not a whole number of bytes */
	{ "1.0001K", -EINVAL, 0 },
	{ "M", -EINVAL, 0 },
	{ "1Gx", -EINVAL, 0 },
	{ "1GiBB", -EINVAL, 0 },
	{ "nan", -EINVAL, 0 },
	{ "99999E", -ERANGE, 0 },
	{ "16E", -ERANGE, 0 },
	{ "18446744073709551616", -ERANGE, 0 },
};

START_TEST(parse_size)
{
	const struct size_case *c = &size_cases[_i];
	uint64_t v = 0xdeadbeef;
	int r = base_parse_size(c->s, &v);

	ck_assert_msg(r == c->r, "parse '%s': returned %d, expected %d", c->s, r, c->r);
	if (c->r == 0)
		ck_assert_msg(v == c->v, "parse '%s': %llu, expected %llu", c->s,
			      (unsigned long long)v, (unsigned long long)c->v);
	else
		ck_assert_msg(v == 0xdeadbeef, "parse '%s' failed but wrote its output", c->s);
}
END_TEST

START_TEST(parse_size_null)
{
	uint64_t v;

	ck_assert_int_eq(base_parse_size(NULL, &v), -EINVAL);
}
END_TEST

START_TEST(fmt_size)
{
	char buf[32];

	ck_assert_str_eq(base_fmt_size(0, buf, sizeof(buf)), "0 B");
	ck_assert_str_eq(base_fmt_size(1023, buf, sizeof(buf)), "1023 B");
	ck_assert_str_eq(base_fmt_size(1024, buf, sizeof(buf)), "1.0 KiB");
	ck_assert_str_eq(base_fmt_size(1536, buf, sizeof(buf)), "1.5 KiB");
	ck_assert_str_eq(base_fmt_size(3ull << 29, buf, sizeof(buf)), "1.5 GiB");
	ck_assert_str_eq(base_fmt_size(16ull << 40, buf, sizeof(buf)), "16.0 TiB");
	ck_assert_str_eq(base_fmt_size(UINT64_MAX, buf, sizeof(buf)), "16.0 EiB");
	/* a short buffer is truncated, never overrun */
	memset(buf, 'x', sizeof(buf));
	ck_assert_str_eq(base_fmt_size(1536, buf, 4), "1.5");
	ck_assert_int_eq(buf[4], 'x');
	/* exact: the largest unit that divides, as a user types it */
	ck_assert_str_eq(base_fmt_size_exact(0, buf, sizeof(buf)), "0 B");
	ck_assert_str_eq(base_fmt_size_exact(4097, buf, sizeof(buf)), "4097 B");
	ck_assert_str_eq(base_fmt_size_exact(1536, buf, sizeof(buf)), "1536 B");
	ck_assert_str_eq(base_fmt_size_exact(10ull << 20, buf, sizeof(buf)), "10 MiB");
	ck_assert_str_eq(base_fmt_size_exact(3000ull << 20, buf, sizeof(buf)), "3000 MiB");
	ck_assert_str_eq(base_fmt_size_exact(3ull << 29, buf, sizeof(buf)), "1536 MiB");
	ck_assert_str_eq(base_fmt_size_exact(100ull << 50, buf, sizeof(buf)), "100 PiB");
	ck_assert_str_eq(base_fmt_size_exact(1ull << 63, buf, sizeof(buf)), "8 EiB");
}
END_TEST

START_TEST(uuid_fmt)
{
	uint8_t u[16];
	char out[37];

	for (int i = 0; i < 16; i++)
		u[i] = (uint8_t)(i * 0x11);
	memset(out, 'x', sizeof(out));
	base_uuid_fmt(u, out);
	ck_assert_str_eq(out, "00112233-4455-6677-8899-aabbccddeeff");
	memset(u, 0xff, sizeof(u));
	base_uuid_fmt(u, out);
	ck_assert_str_eq(out, "ffffffff-ffff-ffff-ffff-ffffffffffff");
}
END_TEST

START_TEST(helpers)
{
	uint8_t a[64] = { 0 }, b[64] = { 0 };
	le32 v32 = cpu_to_le32(0x11223344);
	uint8_t raw[4];
	uint64_t t0, t1;

	memcpy(raw, &v32, 4);
	ck_assert_uint_eq(raw[0], 0x44);
	ck_assert_uint_eq(raw[3], 0x11);
	ck_assert_uint_eq(le32_to_cpu(v32), 0x11223344);
	ck_assert_uint_eq(le64_to_cpu(cpu_to_le64(0x0102030405060708ull)), 0x0102030405060708ull);
	ck_assert_uint_eq(le16_to_cpu(cpu_to_le16(0xbeef)), 0xbeef);

	ck_assert(base_is_pow2(4096));
	ck_assert(!base_is_pow2(0));
	ck_assert(!base_is_pow2(4095));
	ck_assert_uint_eq(base_round_up(1, 4096), 4096);
	ck_assert_uint_eq(base_round_up(4096, 4096), 4096);
	ck_assert_uint_eq(base_div_round_up(4097, 4096), 2);
	ck_assert_uint_eq(base_ilog2(1), 0);
	ck_assert_uint_eq(base_ilog2(4096), 12);
	ck_assert_uint_eq(base_ilog2(UINT64_MAX), 63);

	ck_assert_int_eq(base_random(a, sizeof(a)), 0);
	ck_assert_int_eq(base_random(b, sizeof(b)), 0);
	ck_assert_mem_ne(a, b, sizeof(a));

	t0 = base_mono_ns();
	t1 = base_mono_ns();
	ck_assert_uint_ge(t1, t0);
	ck_assert_int_gt(base_real_ns(), 1500000000ll * 1000000000ll);
}
END_TEST

static Suite *base_suite(void)
{
	Suite *s = suite_create("base");
	TCase *tc = tcase_create("crc32c");

	tcase_add_test(tc, crc_known_vectors);
	tcase_add_test(tc, crc_incremental);
	tcase_add_test(tc, crc_hw_matches_sw);
	suite_add_tcase(s, tc);

	tc = tcase_create("sizes");
	tcase_add_loop_test(tc, parse_size, 0, (int)base_array_size(size_cases));
	tcase_add_test(tc, parse_size_null);
	tcase_add_test(tc, fmt_size);
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, uuid_fmt);
	tcase_add_test(tc, helpers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(base_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
