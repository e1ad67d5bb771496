/*
 * Unit tests for encrypt/, the key layer: the primitives against published
 * vectors (GCM test case 16 of McGrew and Viega, HKDF test case 1 of RFC
 * 5869, argon2id from the reference implementation's test.c), wrap and
 * unwrap with every byte tampered, the key area (create, add, unlock, remove,
 * the last-slot refusal, torn and tampered records, copies), every KDF
 * parameter error, and the secret sources (files, key programs).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/crypto.h>

#include "encrypt/encrypt.h"
#include "encrypt/encrypt_i.h"

static void unhex(const char *h, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static const uint8_t UUID[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* Cheap argon2id parameters so the tests run in milliseconds. */
static const struct enc_kdf_params CHEAP = { .kdf = ENC_KDF_ARGON2ID, .t_cost = 1, .m_kib = 64, .parallel = 1 };

static struct enc_secret *secret(const char *s)
{
	struct enc_secret *out = NULL;

	ck_assert_int_eq(enc_secret_from_buf(s, strlen(s), &out), 0);
	return out;
}

START_TEST(gcm_vector)
{
	uint8_t k[32], p[60], a[20], iv[12], c[60], t[16], out[60];

	unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", k, 32);
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", p, 60);
	unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", a, 20);
	unhex("cafebabefacedbaddecaf888", iv, 12);
	unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", c, 60);
	unhex("76fc6ece0f4e1768cddf8853bb2d551b", t, 16);
	ck_assert_int_eq(enc_unwrap(k, a, 20, c, 60, iv, t, out), 0);
	ck_assert(memcmp(out, p, 60) == 0);
	/* the tag covers the additional data */
	a[0] ^= 1;
	memset(out, 0xaa, sizeof(out));
	ck_assert_int_eq(enc_unwrap(k, a, 20, c, 60, iv, t, out), -EBADMSG);
	ck_assert_int_eq(out[0], 0xaa); /* nothing written on failure */
}
END_TEST

START_TEST(hkdf_vector)
{
	uint8_t ikm[22], salt[13], okm[42], want[42];
	char info[11];

	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (char)(0xf0 + i);
	info[10] = 0;
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", want, 42);
	ck_assert_int_eq(enc_hkdf(ikm, sizeof(ikm), salt, sizeof(salt), info, okm, sizeof(okm)), 0);
	ck_assert(memcmp(okm, want, 42) == 0);
}
END_TEST

START_TEST(argon2id_vector)
{
	/*
	 * The library against the reference vector (phc-winner-argon2 test.c:
	 * argon2id v1.3, t=2, m=64 MiB, p=1, "password", "somesalt"), then
	 * enc_kdf_derive against the library with our 32-byte salt.
	 */
	struct enc_kdf_params p = { .kdf = ENC_KDF_ARGON2ID, .t_cost = 2, .m_kib = 65536, .parallel = 1 };
	uint8_t salt[ENC_SALT_LEN], kek[32], want[32], direct[32], again[32];
	struct enc_secret *s = secret("password");
	char err[128];

	unhex("09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7", want, 32);
	ck_assert_int_eq(argon2id_hash_raw(2, 65536, 1, "password", 8, "somesalt", 8, direct, 32), ARGON2_OK);
	ck_assert(memcmp(direct, want, 32) == 0);
	for (int i = 0; i < (int)ENC_SALT_LEN; i++)
		salt[i] = (uint8_t)(0xa0 + i);
	ck_assert_int_eq(enc_kdf_derive(&p, salt, s, kek, err, sizeof(err)), 0);
	ck_assert_int_eq(argon2id_hash_raw(2, 65536, 1, "password", 8, salt, ENC_SALT_LEN, direct, 32), ARGON2_OK);
	ck_assert(memcmp(kek, direct, 32) == 0);
	/* another salt, another key */
	salt[31] ^= 1;
	ck_assert_int_eq(enc_kdf_derive(&p, salt, s, again, err, sizeof(err)), 0);
	ck_assert(memcmp(kek, again, 32) != 0);
	enc_secret_free(s);
}
END_TEST

START_TEST(kdf_errors)
{
	struct enc_kdf_params p;
	struct enc_secret *s = secret("a passphrase"), *shortkey = secret("0123456789");
	uint8_t salt[ENC_SALT_LEN] = { 0 }, kek[32];
	char err[160];

	p = CHEAP;
	p.t_cost = 0;
	ck_assert_int_eq(enc_kdf_derive(&p, salt, s, kek, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "passes"));
	p.t_cost = ENC_ARGON2_MAX_T + 1;
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	p = CHEAP;
	p.parallel = 0;
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "lanes"));
	p.parallel = ENC_ARGON2_MAX_LANES + 1;
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	p = CHEAP;
	p.m_kib = ENC_ARGON2_MIN_KIB - 1;
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "memory"));
	p.m_kib = ENC_ARGON2_MAX_KIB + 1;
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	p.m_kib = 64;
	p.parallel = 16; /* 8 KiB per lane: 128 KiB needed */
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	p = (struct enc_kdf_params){ .kdf = 7 };
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "unknown"));
	p = (struct enc_kdf_params){ .kdf = ENC_KDF_HKDF_SHA256, .t_cost = 1 };
	ck_assert_int_eq(enc_kdf_check(&p, err, sizeof(err)), -EINVAL);
	p.t_cost = 0;
	ck_assert_int_eq(enc_kdf_derive(&p, salt, shortkey, kek, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too short"));
	/* argon2id refuses memory it cannot have: the library's error comes back as -ENOMEM */
	enc_secret_free(s);
	enc_secret_free(shortkey);
}
END_TEST

START_TEST(wrap_tamper)
{
	uint8_t k[32], k2[32], plain[64], sealed[64], iv[12], tag[16], out[64], aad[40];

	ck_assert_int_eq(base_random(k, 32), 0);
	memcpy(k2, k, 32);
	k2[31] ^= 0x80;
	for (int i = 0; i < 64; i++)
		plain[i] = (uint8_t)i;
	memset(aad, 7, sizeof(aad));
	ck_assert_int_eq(enc_wrap(k, aad, sizeof(aad), plain, 64, iv, sealed, tag), 0);
	ck_assert(memcmp(sealed, plain, 64) != 0);
	ck_assert_int_eq(enc_unwrap(k, aad, sizeof(aad), sealed, 64, iv, tag, out), 0);
	ck_assert(memcmp(out, plain, 64) == 0);
	/* wrong key */
	ck_assert_int_eq(enc_unwrap(k2, aad, sizeof(aad), sealed, 64, iv, tag, out), -EBADMSG);
	/* every bit of the sealed bytes, the IV, the tag and the additional data is covered */
	for (int b = 0; b < (64 + 12 + 16 + 40) * 8; b++) {
		uint8_t s2[64], iv2[12], t2[16], a2[40];
		int byte = b / 8;
		memcpy(s2, sealed, 64);
		memcpy(iv2, iv, 12);
		memcpy(t2, tag, 16);
		memcpy(a2, aad, 40);
		if (byte < 64)
			s2[byte] ^= (uint8_t)(1 << (b % 8));
		else if (byte < 76)
			iv2[byte - 64] ^= (uint8_t)(1 << (b % 8));
		else if (byte < 92)
			t2[byte - 76] ^= (uint8_t)(1 << (b % 8));
		else
			a2[byte - 92] ^= (uint8_t)(1 << (b % 8));
		ck_assert_int_eq(enc_unwrap(k, a2, 40, s2, 64, iv2, t2, out), -EBADMSG);
	}
	/* two seals of the same key never share an IV */
	uint8_t iv3[12], s3[64], t3[16];
	ck_assert_int_eq(enc_wrap(k, aad, sizeof(aad), plain, 64, iv3, s3, t3), 0);
	ck_assert(memcmp(iv, iv3, 12) != 0);
}
END_TEST

/* An area with one passphrase slot, stored into buf; *key gets the datastore key. */
static struct enc_area *area_with_slot(uint8_t *buf, struct enc_key **key, const char *pass)
{
	struct enc_area *a;
	struct enc_secret *s = secret(pass);
	char err[160];
	int slot = -1;

	ck_assert_int_eq(enc_area_create(UUID, &a, key), 0);
	ck_assert_int_eq(enc_area_add(a, *key, s, &CHEAP, "first", -1, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 0);
	enc_area_store(a, buf);
	enc_area_written(a);
	enc_secret_free(s);
	return a;
}

START_TEST(area_unlock)
{
	uint8_t *buf = calloc(1, ENC_AREA_LEN);
	struct enc_area *a, *b;
	struct enc_key *key, *got = NULL;
	struct enc_secret *right = secret("correct horse"), *wrong = secret("correct hors");
	char err[256];
	int slot = -1;

	a = area_with_slot(buf, &key, "correct horse");
	ck_assert_uint_eq(key->epoch, 1);
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_unlock(b, right, -1, 0, &got, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 0);
	ck_assert(memcmp(got->k, key->k, 32) == 0);
	ck_assert_uint_eq(got->epoch, 1);
	enc_key_free(got);
	ck_assert_int_eq(enc_area_unlock(b, wrong, -1, 0, &got, &slot, err, sizeof(err)), -EKEYREJECTED);
	ck_assert_ptr_nonnull(strstr(err, "no keyslot opens"));
	ck_assert_int_eq(enc_area_unlock(b, right, 3, 0, &got, &slot, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(enc_area_unlock(b, right, 16, 0, &got, &slot, err, sizeof(err)), -EINVAL);
	/* a host that allows less KDF memory than the slot asks for says so */
	struct enc_kdf_params big = CHEAP;
	struct enc_secret *s2 = secret("second");
	big.m_kib = 1024;
	ck_assert_int_eq(enc_area_add(b, key, s2, &big, NULL, -1, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 1);
	ck_assert_int_eq(enc_area_unlock(b, s2, -1, 512, &got, &slot, err, sizeof(err)), -EKEYREJECTED);
	ck_assert_ptr_nonnull(strstr(err, "above this host"));
	ck_assert_int_eq(enc_area_unlock(b, s2, -1, 0, &got, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 1);
	enc_key_free(got);
	enc_secret_free(s2);
	enc_area_free(a);
	enc_area_free(b);
	enc_key_free(key);
	enc_secret_free(right);
	enc_secret_free(wrong);
	free(buf);
}
END_TEST

START_TEST(area_slots)
{
	uint8_t *buf = calloc(1, ENC_AREA_LEN), *buf2 = calloc(1, ENC_AREA_LEN);
	struct enc_area *a, *b;
	struct enc_key *key, *got, *other;
	struct enc_area *oa;
	char err[256], name[32];
	int slot;
	uint32_t prim[ENC_SLOTS + 1], back[ENC_SLOTS + 1];

	a = area_with_slot(buf, &key, "pass 0");
	ck_assert_uint_eq(enc_area_units(a, prim, back), 0);
	/* fill all 16 slots, each with its own passphrase; the 17th is refused */
	for (int i = 1; i < (int)ENC_SLOTS; i++) {
		struct enc_secret *s;
		snprintf(name, sizeof(name), "pass %d", i);
		s = secret(name);
		ck_assert_int_eq(enc_area_add(a, key, s, &CHEAP, name, -1, &slot, err, sizeof(err)), 0);
		ck_assert_int_eq(slot, i);
		enc_secret_free(s);
	}
	struct enc_secret *extra = secret("pass 16");
	ck_assert_int_eq(enc_area_add(a, key, extra, &CHEAP, NULL, -1, &slot, err, sizeof(err)), -ENOSPC);
	ck_assert_int_eq(enc_area_add(a, key, extra, &CHEAP, NULL, 5, &slot, err, sizeof(err)), -EEXIST);
	ck_assert_uint_eq(enc_area_units(a, prim, back), 15);
	ck_assert_uint_eq(prim[0], ENC_SLOT_UNIT(1));
	ck_assert_uint_eq(back[0], ENC_SLOT_BACKUP_UNIT(1));
	/* a key that is not this area's is refused */
	ck_assert_int_eq(enc_area_create(UUID, &oa, &other), 0);
	ck_assert_int_eq(enc_area_remove(a, 4, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_add(a, other, extra, &CHEAP, NULL, -1, &slot, err, sizeof(err)), -ESTALE);
	ck_assert_int_eq(enc_area_add(a, key, extra, &CHEAP, NULL, -1, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 4);
	ck_assert_int_eq(enc_area_remove(a, 4, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_remove(a, 4, err, sizeof(err)), -ENOENT);
	enc_area_store(a, buf);
	enc_area_written(a);
	/* removed slots no longer open; the others do */
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_uint_eq(enc_area_active(b), 15);
	ck_assert_int_eq(enc_area_unlock(b, extra, -1, 0, &got, &slot, err, sizeof(err)), -EKEYREJECTED);
	struct enc_secret *s7 = secret("pass 7");
	ck_assert_int_eq(enc_area_unlock(b, s7, -1, 0, &got, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 7);
	enc_key_free(got);
	struct enc_slot_info info;
	ck_assert_int_eq(enc_area_slot_info(b, 7, &info), 0);
	ck_assert(info.active);
	ck_assert_str_eq(info.label, "pass 7");
	ck_assert_uint_eq(info.kdf.m_kib, 64);
	ck_assert_int_eq(enc_area_slot_info(b, 4, &info), 0);
	ck_assert(!info.active);
	/* remove down to one: the last is refused */
	for (int i = 0; i < (int)ENC_SLOTS - 1; i++)
		if (i != 4)
			ck_assert_int_eq(enc_area_remove(b, i, err, sizeof(err)), 0);
	ck_assert_uint_eq(enc_area_active(b), 1);
	ck_assert_int_eq(enc_area_remove(b, 15, err, sizeof(err)), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "last"));
	/* a second area's bytes (another datastore key) do not open with this one's slots */
	enc_area_store(oa, buf2);
	struct enc_area *c;
	ck_assert_int_eq(enc_area_load(buf2, UUID, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_unlock(c, s7, -1, 0, &got, &slot, err, sizeof(err)), -ENOKEY);
	enc_area_free(c);
	enc_area_free(oa);
	enc_key_free(other);
	enc_secret_free(s7);
	enc_secret_free(extra);
	enc_area_free(a);
	enc_area_free(b);
	enc_key_free(key);
	free(buf);
	free(buf2);
}
END_TEST

static uint8_t *unit_at(uint8_t *buf, uint32_t unit)
{
	return buf + (size_t)(unit - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
}

static void reseal(uint8_t *u)
{
	le32 crc = cpu_to_le32(base_crc32c(0, u, ENC_UNIT - 4));
	memcpy(u + ENC_UNIT - 4, &crc, 4);
}

START_TEST(area_damage)
{
	uint8_t *buf = calloc(1, ENC_AREA_LEN), *copy = malloc(ENC_AREA_LEN);
	struct enc_area *a, *b;
	struct enc_key *key, *got;
	struct enc_secret *s = secret("pw");
	enum enc_copy_state p, q;
	char err[256];
	int slot;

	a = area_with_slot(buf, &key, "pw");
	memcpy(copy, buf, ENC_AREA_LEN);
	/* a torn primary keyslot: the backup opens, and the state says so */
	unit_at(buf, ENC_SLOT_UNIT(0))[100] ^= 1;
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	enc_area_copy_state(b, 0, &p, &q);
	ck_assert_int_eq(p, ENC_COPY_BAD);
	ck_assert_int_eq(q, ENC_COPY_OK);
	ck_assert_int_eq(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)), 0);
	enc_key_free(got);
	enc_area_free(b);
	/* both copies torn: the slot is gone, the area has no active slot */
	unit_at(buf, ENC_SLOT_BACKUP_UNIT(0))[100] ^= 1;
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)), -ENOKEY);
	enc_area_free(b);
	/* a header with neither copy: a clear error */
	memcpy(buf, copy, ENC_AREA_LEN);
	unit_at(buf, ENC_HDR_UNIT)[0x40] ^= 1;
	unit_at(buf, ENC_HDR_BACKUP_UNIT)[0x40] ^= 1;
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(err, "key header"));
	/* another datastore's UUID, or a copy at the wrong unit, is not trusted */
	memcpy(buf, copy, ENC_AREA_LEN);
	uint8_t other[16] = { 9 };
	ck_assert_int_eq(enc_area_load(buf, other, &b, err, sizeof(err)), -EUCLEAN);
	memcpy(unit_at(buf, ENC_SLOT_UNIT(3)), unit_at(buf, ENC_SLOT_UNIT(0)), ENC_UNIT);
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	enc_area_copy_state(b, 3, &p, &q);
	ck_assert_int_eq(p, ENC_COPY_BAD);
	enc_area_free(b);
	/*
	 * Tampering with the crc recomputed: every authenticated field of the
	 * active slot (state..salt, IV, wrapped key, tag, label) makes it refuse.
	 */
	static const unsigned offs[] = { 0x34, 0x38, 0x3c, 0x40, 0x48, 0x67, 0x68, 0x78, 0x97, 0x98, 0xa7, 0xb0 };
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(buf, copy, ENC_AREA_LEN);
		for (uint32_t u = ENC_SLOT_UNIT(0); u <= ENC_SLOT_BACKUP_UNIT(0); u += ENC_SLOTS) {
			unit_at(buf, u)[offs[i]] ^= 0x01;
			reseal(unit_at(buf, u));
		}
		ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
		ck_assert_msg(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)) == -EKEYREJECTED,
			      "tampered byte 0x%x accepted", offs[i]);
		enc_area_free(b);
	}
	/* the epoch moved: a slot of the old epoch is not tried */
	memcpy(buf, copy, ENC_AREA_LEN);
	for (uint32_t u = ENC_SLOT_UNIT(0); u <= ENC_SLOT_BACKUP_UNIT(0); u += ENC_SLOTS) {
		unit_at(buf, u)[0x44] = 2;
		reseal(unit_at(buf, u));
	}
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)), -EKEYREJECTED);
	enc_area_free(b);
	/* the key check value: a changed header refuses the right key */
	memcpy(buf, copy, ENC_AREA_LEN);
	for (uint32_t u = ENC_HDR_UNIT; u <= ENC_HDR_BACKUP_UNIT; u++) {
		unit_at(buf, u)[0x50] ^= 1;
		reseal(unit_at(buf, u));
	}
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)), -EKEYREJECTED);
	ck_assert_ptr_nonnull(strstr(err, "key check"));
	enc_area_free(b);
	/* a stale backup (older generation) loses to the primary */
	memcpy(buf, copy, ENC_AREA_LEN);
	struct enc_secret *s2 = secret("pw2");
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_add(b, key, s2, &CHEAP, NULL, 0 + 1, &slot, err, sizeof(err)), 0);
	enc_area_store(b, buf);
	memcpy(unit_at(buf, ENC_SLOT_BACKUP_UNIT(1)), unit_at(copy, ENC_SLOT_BACKUP_UNIT(1)), ENC_UNIT);
	enc_area_free(b);
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	enc_area_copy_state(b, 1, &p, &q);
	ck_assert_int_eq(p, ENC_COPY_OK);
	ck_assert_int_eq(q, ENC_COPY_STALE);
	ck_assert_int_eq(enc_area_unlock(b, s2, -1, 0, &got, &slot, err, sizeof(err)), 0);
	ck_assert_int_eq(slot, 1);
	enc_key_free(got);
	enc_area_free(b);
	enc_secret_free(s2);
	enc_area_free(a);
	enc_key_free(key);
	enc_secret_free(s);
	free(buf);
	free(copy);
}
END_TEST

START_TEST(area_change)
{
	uint8_t *buf = calloc(1, ENC_AREA_LEN), crypt[128], kept[128];
	struct enc_area *a, *b;
	struct enc_key *old, *nk, *got, *other, *again;
	struct enc_secret *s = secret("the passphrase");
	struct enc_file *f, *g;
	char err[256];
	int slot;

	a = area_with_slot(buf, &old, "the passphrase");
	ck_assert_int_eq(enc_file_new(old, UUID, crypt), 0);
	ck_assert_int_eq(enc_file_open(old, UUID, crypt, &f), 0);
	memcpy(kept, crypt, sizeof(kept));
	/* begin: a new key of the next epoch; the old slot is rewrapped with its own secret only */
	ck_assert_int_eq(enc_area_change_begin(a, old, &nk), 0);
	ck_assert_uint_eq(nk->epoch, 2);
	ck_assert(memcmp(nk->k, old->k, 32) != 0);
	ck_assert_int_eq(enc_area_change_begin(a, old, &other), -EBUSY);
	struct enc_secret *wrong = secret("not it");
	ck_assert_int_eq(enc_area_rekey_slot(a, 0, wrong, nk, err, sizeof(err)), -EKEYREJECTED);
	ck_assert_int_eq(enc_area_rekey_slot(a, 0, s, nk, err, sizeof(err)), 0);
	enc_area_store(a, buf);
	enc_area_written(a);
	ck_assert_int_eq(enc_area_load(buf, UUID, &b, err, sizeof(err)), 0);
	ck_assert_uint_eq(enc_area_epoch(b), 2);
	ck_assert_uint_eq(enc_area_prev_epoch(b), 1);
	/* the slot opens to the new key; each key yields the other through the links */
	ck_assert_int_eq(enc_area_unlock(b, s, -1, 0, &got, &slot, err, sizeof(err)), 0);
	ck_assert(got->epoch == 2 && !memcmp(got->k, nk->k, 32));
	ck_assert_int_eq(enc_area_other_key(b, got, &other), 0);
	ck_assert(other->epoch == 1 && !memcmp(other->k, old->k, 32));
	ck_assert_int_eq(enc_area_other_key(b, old, &again), 0);
	ck_assert(again->epoch == 2 && !memcmp(again->k, nk->k, 32));
	enc_key_free(again);
	enc_key_free(other);
	/* a file key: sealed under the old key, resealed under the new, the same keys inside */
	ck_assert_int_eq(enc_file_open(nk, UUID, crypt, &g), -ESTALE);
	ck_assert_int_eq(enc_file_reseal(nk, old, UUID, crypt), -ESTALE);
	ck_assert_int_eq(enc_file_reseal(old, nk, UUID, crypt), 0);
	ck_assert_uint_eq(enc_crypt_epoch(crypt), 2);
	ck_assert_int_eq(enc_file_open(nk, UUID, crypt, &g), 0);
	ck_assert(!memcmp(g->xts[0], f->xts[0], 64) && !memcmp(g->hash, f->hash, 32));
	enc_file_free(g);
	ck_assert_int_eq(enc_file_open(old, UUID, crypt, &g), -ESTALE);
	/* the old epoch's copy, changed to claim the new epoch, fails its tag */
	((struct enc_crypt_disk *)kept)->cr_epoch = cpu_to_le16(2);
	ck_assert_int_eq(enc_file_open(nk, UUID, kept, &g), -EBADMSG);
	/* a changed link is refused */
	uint8_t *hdr = buf + (ENC_HDR_UNIT - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	uint8_t *bak = buf + (ENC_HDR_BACKUP_UNIT - ENC_AREA_FIRST_UNIT) * ENC_UNIT;
	hdr[0x80] ^= 1;
	reseal(hdr);
	bak[0x80] ^= 1;
	reseal(bak);
	struct enc_area *c;
	ck_assert_int_eq(enc_area_load(buf, UUID, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(enc_area_other_key(c, old, &other), -EBADMSG);
	enc_area_free(c);
	/* end: no links, no other key */
	enc_area_change_end(b);
	ck_assert_uint_eq(enc_area_prev_epoch(b), 0);
	ck_assert_int_eq(enc_area_other_key(b, got, &other), -ENOENT);
	enc_key_free(got);
	enc_file_free(f);
	enc_secret_free(wrong);
	enc_secret_free(s);
	enc_key_free(old);
	enc_key_free(nk);
	enc_area_free(a);
	enc_area_free(b);
	free(buf);
}
END_TEST

/*
 * The data cipher: IEEE 1619-2007 XTS-AES-256 vector 10 (a 512-byte unit,
 * data unit number 0xff); a 4 KiB unit round trip, the tweak counted per
 * unit; and the zeros rule per 512-byte sector, for a unit torn between
 * sectors: old sectors, new sectors and never-written (zero) sectors each
 * decrypt to what they were.
 */
START_TEST(xts_units)
{
	static const char k1[] = "2718281828459045235360287471352662497757247093699959574966967627";
	static const char k2[] = "3141592653589793238462643383279502884197169399375105820974944592";
	static const char ct0[] = "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
				  "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd";
	struct enc_file f = { .id = 0x7e57 };
	uint8_t pt[512], ct[512], want[64], *a, *b, *u, *out;
	const unsigned S = ENC_ZERO_SECTOR, N = ENC_DATA_UNIT / ENC_ZERO_SECTOR;

	unhex(k1, f.xts[0], 32);
	unhex(k2, f.xts[0] + 32, 32);
	for (unsigned i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	ck_assert_int_eq(enc_xts_cached(&f, 0, true, 0xff, pt, ct, sizeof(pt)), 0);
	unhex(ct0, want, sizeof(want));
	ck_assert(!memcmp(ct, want, sizeof(want)));
	ck_assert_int_eq(enc_xts_cached(&f, 0, false, 0xff, ct, ct, sizeof(ct)), 0);
	ck_assert(!memcmp(ct, pt, sizeof(pt)));

	a = malloc(2 * ENC_DATA_UNIT);
	b = malloc(2 * ENC_DATA_UNIT);
	u = malloc(ENC_DATA_UNIT);
	out = malloc(ENC_DATA_UNIT);
	for (unsigned i = 0; i < 2 * ENC_DATA_UNIT; i++)
		a[i] = (uint8_t)(i * 7), b[i] = (uint8_t)(i * 13 + 1);
	/* two units from tweak 5 are unit 5 then unit 6 */
	uint8_t *c2 = malloc(2 * ENC_DATA_UNIT), *c1 = malloc(ENC_DATA_UNIT);
	ck_assert_int_eq(enc_xts_cached(&f, 0, true, 5, a, c2, 2 * ENC_DATA_UNIT), 0);
	ck_assert_int_eq(enc_xts_cached(&f, 0, true, 6, a + ENC_DATA_UNIT, c1, ENC_DATA_UNIT), 0);
	ck_assert(!memcmp(c2 + ENC_DATA_UNIT, c1, ENC_DATA_UNIT));
	ck_assert(memcmp(c2, c1, ENC_DATA_UNIT) != 0);
	ck_assert(!base_all_zero(c1, ENC_DATA_UNIT) && memcmp(c1, a + ENC_DATA_UNIT, 64) != 0);
	ck_assert_int_eq(enc_xts_cached(&f, 0, false, 5, c2, c2, 2 * ENC_DATA_UNIT), 0);
	ck_assert(!memcmp(c2, a, 2 * ENC_DATA_UNIT));
	/* a unit of zeros on the device reads as zeros */
	memset(u, 0, ENC_DATA_UNIT);
	ck_assert_int_eq(enc_xts_cached(&f, 0, false, 9, u, out, ENC_DATA_UNIT), 0);
	ck_assert(base_all_zero(out, ENC_DATA_UNIT));
	/* torn: sector i old (a), new (b) or never written (zero) by i % 3 */
	ck_assert_int_eq(enc_xts_cached(&f, 0, true, 9, a, c1, ENC_DATA_UNIT), 0);
	ck_assert_int_eq(enc_xts_cached(&f, 0, true, 9, b, c2, ENC_DATA_UNIT), 0);
	for (unsigned i = 0; i < N; i++)
		memcpy(u + i * S, i % 3 == 0 ? c1 + i * S : i % 3 == 1 ? c2 + i * S : out, S);
	ck_assert_int_eq(enc_xts_cached(&f, 0, false, 9, u, u, ENC_DATA_UNIT), 0);
	for (unsigned i = 0; i < N; i++) {
		const uint8_t *w = i % 3 == 0 ? a + i * S : i % 3 == 1 ? b + i * S : out;

		ck_assert_msg(!memcmp(u + i * S, w, S), "sector %u of a torn unit", i);
	}
	free(a), free(b), free(u), free(out), free(c1), free(c2);
}
END_TEST

/* The kB this process has locked (VmLck). */
static long locked_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	ck_assert(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * OpenSSL's own copies of a key (a cipher context's key schedule, a MAC's, a
 * KDF's) live in its secure heap (encrypt/secmem.c): locked, left out of core
 * dumps, cleansed when freed. A context takes room there while it lives
 * and gives it back; a one-shot MAC or KDF leaves nothing there.
 */
START_TEST(key_schedules_locked)
{
	struct enc_file f = { .id = 0x5ec };
	struct enc_xts *x;
	uint8_t buf[ENC_DATA_UNIT], out[64];
	size_t with;

	for (unsigned i = 0; i < 64; i++)
		f.xts[0][i] = (uint8_t)(i * 29 + 3);
	memset(buf, 0x5a, sizeof(buf));
	ck_assert_int_eq(enc_xts_new(&f, 0, &x), 0);
	ck_assert_int_eq(enc_xts_run(x, true, 0, buf, buf, sizeof(buf)), 0);
	ck_assert(CRYPTO_secure_malloc_initialized());
	with = CRYPTO_secure_used();
	ck_assert_msg(with > 0, "the cipher context is not in OpenSSL's secure heap");
	if (geteuid() == 0) /* root: no RLIMIT_MEMLOCK stops the arena's mlock */
		ck_assert_int_ge(locked_kb(), 1024);
	enc_xts_free(x);
	ck_assert_uint_lt(CRYPTO_secure_used(), with);
	with = CRYPTO_secure_used();
	ck_assert_int_eq(enc_hmac(f.xts[0], buf, 64, out), 0);
	ck_assert_int_eq(enc_hkdf(f.xts[0], 32, buf, 16, "test", out, sizeof(out)), 0);
	ck_assert_uint_eq(CRYPTO_secure_used(), with);
}
END_TEST

static void write_file(const char *path, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

START_TEST(secrets)
{
	char dir[] = "/tmp/vmfs-enc-XXXXXX", path[64], cmd[160], err[256];
	struct enc_secret *s = NULL;
	uint8_t key[48];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	/* a passphrase file loses its newline; a key file keeps every byte */
	write_file(path, "hunter2\n", 8);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_PASSPHRASE, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s->len, 7);
	ck_assert(memcmp(s->buf, "hunter2", 7) == 0);
	enc_secret_free(s);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_KEYFILE, &s, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "at least 32"));
	for (int i = 0; i < 48; i++)
		key[i] = (uint8_t)(i * 37 + 1);
	key[10] = '\n';
	write_file(path, key, 48);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_KEYFILE, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s->len, 48);
	ck_assert(memcmp(s->buf, key, 48) == 0);
	enc_secret_free(s);
	write_file(path, "", 0);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_PASSPHRASE, &s, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	ck_assert_int_eq(enc_secret_from_file("/nonexistent/key", ENC_SECRET_KEYFILE, &s, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/key"));
	/* larger than 8 KiB */
	char *big = calloc(1, ENC_SECRET_MAX + 1);
	memset(big, 'x', ENC_SECRET_MAX + 1);
	write_file(path, big, ENC_SECRET_MAX + 1);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_KEYFILE, &s, err, sizeof(err)), -EFBIG);
	write_file(path, big, ENC_SECRET_MAX);
	ck_assert_int_eq(enc_secret_from_file(path, ENC_SECRET_KEYFILE, &s, err, sizeof(err)), 0);
	enc_secret_free(s);
	free(big);
	/* a key program: its stdout is the key; a failure, a short key or silence is an error */
	write_file(path, key, 48);
	snprintf(cmd, sizeof(cmd), "cat %s", path);
	ck_assert_int_eq(enc_secret_from_cmd(cmd, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s->len, 48);
	ck_assert(memcmp(s->buf, key, 48) == 0);
	enc_secret_free(s);
	ck_assert_int_eq(enc_secret_from_cmd("cat /nonexistent/key", &s, err, sizeof(err)), -EIO);
	ck_assert_ptr_nonnull(strstr(err, "exit 1"));
	ck_assert_int_eq(enc_secret_from_cmd("echo short", &s, err, sizeof(err)), -EINVAL);
	/* a child of fork() keeps the secret (vmfs-mount daemonizes with it) and can lock it again */
	ck_assert_int_eq(enc_secret_from_buf(key, 48, &s), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(s->len == 48 && !memcmp(s->buf, key, 48) && !enc_secure_relock(s, sizeof(*s)) ? 0 : 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	enc_secret_free(s);
	/* the sources: one at most */
	struct enc_secret_src src = { .key_file = path, .keycmd = "true" };
	enum enc_secret_kind kind;
	ck_assert_int_eq(enc_secret_get(&src, NULL, false, &s, &kind, err, sizeof(err)), -EINVAL);
	src.keycmd = NULL;
	ck_assert_int_eq(enc_secret_get(&src, NULL, false, &s, &kind, err, sizeof(err)), 0);
	ck_assert_int_eq(kind, ENC_SECRET_KEYFILE);
	enc_secret_free(s);
	src = (struct enc_secret_src){ 0 };
	ck_assert_int_eq(enc_secret_get(&src, NULL, false, &s, &kind, err, sizeof(err)), -ENOKEY);
	/* no terminal: the prompt says what to give instead */
	if (open("/dev/tty", O_RDWR) < 0) {
		ck_assert_int_eq(enc_secret_prompt("Passphrase: ", false, &s, err, sizeof(err)), -ENOTTY);
		ck_assert_ptr_nonnull(strstr(err, "key file"));
	}
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *encrypt_suite(void)
{
	Suite *s = suite_create("encrypt");
	TCase *tc = tcase_create("primitives");

	/*
	 * Check's default 4 s is a hang guard too tight for the memory-hard KDF
	 * on a loaded machine: argon2id_vector (four hashes of 64 MiB, 0.6 s
	 * alone) ran out of it in a CI rehearsal beside two other suites.
	 */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, gcm_vector);
	tcase_add_test(tc, hkdf_vector);
	tcase_add_test(tc, argon2id_vector);
	tcase_add_test(tc, kdf_errors);
	tcase_add_test(tc, wrap_tamper);
	tcase_add_test(tc, xts_units);
	tcase_add_test(tc, key_schedules_locked);
	suite_add_tcase(s, tc);
	tc = tcase_create("area");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, area_unlock);
	tcase_add_test(tc, area_slots);
	tcase_add_test(tc, area_damage);
	tcase_add_test(tc, area_change);
	suite_add_tcase(s, tc);
	tc = tcase_create("secrets");
	tcase_add_test(tc, secrets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(encrypt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
