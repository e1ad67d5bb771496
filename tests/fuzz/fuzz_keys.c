/*
 * libFuzzer harness: the key area (encrypt/keyslot.c) and wrapped file keys
 * (encrypt/filekey.c), both read from a device anyone with the raw LUN may
 * have written. Input: a mode byte, then records of {le16 offset, u8 length,
 * bytes} laid over a valid key area (a key-file slot and a cheap argon2id
 * slot) and a valid i_crypt. Mode bit 0 recomputes the crc of every record
 * touched (so the contents are reached), bit 1 overlays i_crypt instead of
 * the area. The area is loaded, listed and unlocked with the right secrets
 * (argon2id capped at 256 KiB: a huge cost is refused, not run); i_crypt is
 * opened with the right key. Whatever opens must open to the right key:
 * a change the tag does not catch is a crash here.
 * Needs no image, so it does not use fuzz_harness.c.
 */
#include <stdlib.h>
#include <string.h>

#include "encrypt/encrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t UUID[16] = { 0x76, 0x6d, 0x66, 0x73, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static uint8_t area[ENC_AREA_LEN], crypt_ok[128];
static struct enc_key *key;
static struct enc_secret *kf, *pw;
static struct enc_file *file_ok;

static void setup(void)
{
	static const char keybytes[] = "fuzzing key file, 32 bytes or mo";
	struct enc_kdf_params cheap = { .kdf = ENC_KDF_ARGON2ID, .t_cost = 1, .m_kib = 64, .parallel = 1 };
	struct enc_kdf_params hk;
	struct enc_area *a;

	enc_kdf_default(ENC_SECRET_KEYFILE, &hk);
	if (enc_secret_from_buf(keybytes, 32, &kf) || enc_secret_from_buf("passphrase", 10, &pw) ||
	    enc_area_create(UUID, &a, &key) || enc_area_add(a, key, kf, &hk, "key file", 0, NULL, NULL, 0) ||
	    enc_area_add(a, key, pw, &cheap, "passphrase", 3, NULL, NULL, 0) ||
	    enc_file_new(key, UUID, crypt_ok) || enc_file_open(key, UUID, crypt_ok, &file_ok))
		abort();
	enc_area_store(a, area);
	enc_area_free(a);
}

static void reseal(uint8_t *unit)
{
	le32 crc = cpu_to_le32(base_crc32c(0, unit, ENC_UNIT - 4));
	memcpy(unit + ENC_UNIT - 4, &crc, 4);
}

static void check_key(const struct enc_key *k)
{
	if (memcmp(k->k, key->k, ENC_KEY_LEN) || k->epoch != key->epoch)
		abort(); /* opened to a key that is not the datastore's */
}

static void run_area(const uint8_t *buf)
{
	struct enc_slot_info info;
	struct enc_area *a;
	struct enc_key *k;
	int slot;

	if (enc_area_load(buf, UUID, &a, NULL, 0))
		return;
	for (int i = 0; i < (int)ENC_SLOTS; i++)
		enc_area_slot_info(a, i, &info);
	if (!enc_area_unlock(a, kf, -1, 256, &k, &slot, NULL, 0)) {
		check_key(k);
		enc_key_free(k);
	}
	if (!enc_area_unlock(a, pw, -1, 256, &k, &slot, NULL, 0)) {
		check_key(k);
		enc_key_free(k);
	}
	enc_area_free(a);
}

static void run_crypt(const uint8_t *c)
{
	struct enc_file *f;
	uint8_t unit[ENC_DATA_UNIT] = { 1 };
	struct enc_xts *x;

	if (enc_file_open(key, UUID, c, &f))
		return;
	/* the tag covers all 128 bytes (additional data, IV, keys, tag): only the bytes made open */
	if (memcmp(c, crypt_ok, 128) || memcmp(f->xts[0], file_ok->xts[0], 64))
		abort();
	if (!enc_xts_new(f, 0, &x)) {
		enc_xts_run(x, true, 7, unit, unit, sizeof(unit));
		enc_xts_run(x, false, 7, unit, unit, sizeof(unit));
		enc_xts_free(x);
	}
	enc_file_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t work[ENC_AREA_LEN];
	uint8_t c[128];
	bool touched[ENC_AREA_UNITS] = { false };
	uint8_t mode;

	if (!key)
		setup();
	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	memcpy(work, area, sizeof(work));
	memcpy(c, crypt_ok, sizeof(c));
	while (size >= 3) {
		size_t off = (size_t)(data[0] | data[1] << 8), len = data[2];
		data += 3;
		size -= 3;
		len = len < size ? len : size;
		if (mode & 2) {
			off %= sizeof(c);
			len = len < sizeof(c) - off ? len : sizeof(c) - off;
			memcpy(c + off, data, len);
		} else {
			off = (off * 8) % ENC_AREA_LEN; /* any record, any byte */
			len = len < ENC_AREA_LEN - off ? len : ENC_AREA_LEN - off;
			memcpy(work + off, data, len);
			for (size_t u = off / ENC_UNIT; u <= (off + len - (len ? 1 : 0)) / ENC_UNIT && u < ENC_AREA_UNITS; u++)
				touched[u] = true;
		}
		data += len;
		size -= len;
	}
	if (mode & 2) {
		run_crypt(c);
		return 0;
	}
	if (mode & 1)
		for (unsigned u = 0; u < ENC_AREA_UNITS; u++)
			if (touched[u])
				reseal(work + (size_t)u * ENC_UNIT);
	run_area(work);
	return 0;
}
