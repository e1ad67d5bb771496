/*
 * encrypt: the keys of an encrypted datastore and the ciphers that use them
 * (docs/ENCRYPTION.md). Every primitive is OpenSSL's EVP (AES-256-GCM to wrap
 * keys, AES-256-XTS for data, HKDF and HMAC with SHA-256) or libargon2
 * (argon2id for passphrases); nothing here is a cipher of its own.
 *
 * Secrets and keys live only in locked memory (enc_secure_alloc: mlock'd,
 * left out of core dumps, wiped with OPENSSL_cleanse when freed). This module
 * does no device I/O: it reads and writes the key area as bytes
 * (encrypt_format.h), and vmfs/ puts them on the device.
 */
#ifndef ENC_ENCRYPT_H
#define ENC_ENCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encrypt/encrypt_format.h"

/* ---- locked memory ---- */

/*
 * Returns len zeroed bytes that are mlock'd and excluded from core dumps, or
 * NULL (errno set: ENOMEM when RLIMIT_MEMLOCK is too small). Free with
 * enc_secure_free(p, len), which wipes them first; enc_secure_free(NULL, n)
 * is a no-op.
 */
void *enc_secure_alloc(size_t len);
void enc_secure_free(void *p, size_t len);
/* Locks p again in a child of fork() (locks are not inherited). 0 or -errno. */
int enc_secure_relock(void *p, size_t len);

/* ---- secrets: what unlocks a keyslot ---- */

#define ENC_SECRET_MAX 8192u            /* bytes of a key file, a passphrase or a program's output */

struct enc_secret {
	size_t len;
	uint8_t buf[ENC_SECRET_MAX];
};

enum enc_secret_kind {
	ENC_SECRET_KEYFILE,             /* bytes used as they are; at least ENC_KEY_LEN of them */
	ENC_SECRET_PASSPHRASE,          /* one line: a trailing newline is dropped */
};

/*
 * Each returns 0 with a new secret in *out (free with enc_secret_free), or a
 * negative errno with a one-line message in errbuf. A secret never passes
 * through argv or the environment.
 *
 * enc_secret_from_file: reads path whole ("-" is stdin). A passphrase loses
 *   one trailing "\n"; a key file must hold at least ENC_KEY_LEN bytes
 *   (-EINVAL: use a passphrase for a shorter secret). Empty: -EINVAL.
 * enc_secret_prompt: reads a passphrase from the controlling terminal with
 *   echo off (-ENOTTY when there is none); confirm asks twice (-EINVAL when
 *   they differ).
 * enc_secret_from_cmd: runs prog (through /bin/sh -c, with stdin from
 *   /dev/null and the caller's environment) and takes its standard output as
 *   a key file's bytes. It must exit 0 within 30 s (-EIO otherwise, -ETIME
 *   on timeout). May block for that long.
 * enc_secret_from_buf: copies len bytes (tests, tools that hold a secret).
 */
int enc_secret_from_file(const char *path, enum enc_secret_kind kind, struct enc_secret **out, char *errbuf,
			 size_t errlen);
int enc_secret_prompt(const char *prompt, bool confirm, struct enc_secret **out, char *errbuf, size_t errlen);
int enc_secret_from_cmd(const char *prog, struct enc_secret **out, char *errbuf, size_t errlen);
int enc_secret_from_buf(const void *buf, size_t len, struct enc_secret **out);
void enc_secret_free(struct enc_secret *s);

/* Where a tool was told to find a secret: at most one of the three is set. */
struct enc_secret_src {
	const char *key_file;           /* --key-file, -o key-file= */
	const char *passphrase_file;    /* --passphrase-file, -o passphrase-file= */
	const char *keycmd;             /* --keycmd, -o keycmd= */
};
/*
 * Takes --key-file F, --passphrase-file F and --keycmd PROG (or --opt=VALUE)
 * out of argv (from argv[1] on), into src: the tools that open a datastore
 * accept them after any subcommand. Returns 0, or -EINVAL when one lacks
 * its value (named in errbuf). *argc is updated; argv stays NULL-terminated.
 */
int enc_secret_src_take(int *argc, char **argv, struct enc_secret_src *src, char *errbuf, size_t errlen);
/* True when src names a secret. */
bool enc_secret_src_set(const struct enc_secret_src *src);
/*
 * Gets the secret src names, or, when it names none and prompt is not
 * NULL, asks on the terminal (twice when confirm). *kind says what it is.
 * Returns 0, -ENOKEY when src names none and prompt is NULL, or an error of
 * the functions above (errbuf says why).
 */
int enc_secret_get(const struct enc_secret_src *src, const char *prompt, bool confirm, struct enc_secret **out,
		   enum enc_secret_kind *kind, char *errbuf, size_t errlen);

/* ---- key derivation ---- */

struct enc_kdf_params {
	enum enc_kdf_id kdf;
	uint32_t t_cost;                /* argon2id: passes */
	uint32_t m_kib;                 /* argon2id: memory, KiB */
	uint32_t parallel;              /* argon2id: lanes */
};

/* The defaults a new keyslot gets for a passphrase (argon2id) and for a key file (HKDF). */
void enc_kdf_default(enum enc_secret_kind kind, struct enc_kdf_params *p);

/*
 * Parses a --kdf option: "hkdf-sha256", or "argon2id" optionally followed by
 * ":t=PASSES,m=MEMORY,p=LANES" in any order and subset (MEMORY a size such
 * as 64M; the rest stay at the defaults). Returns 0 or -EINVAL with a message.
 */
int enc_kdf_parse(const char *spec, struct enc_kdf_params *p, char *errbuf, size_t errlen);

/*
 * Checks p against the limits of encrypt_format.h (a keyslot is untrusted).
 * Returns 0 or -EINVAL with a message.
 */
int enc_kdf_check(const struct enc_kdf_params *p, char *errbuf, size_t errlen);

/*
 * Derives a key-encryption key from s with p and salt into kek (locked memory
 * of ENC_KEY_LEN bytes). Returns 0, -EINVAL (bad parameters; HKDF on a
 * secret shorter than ENC_KEY_LEN), -ENOMEM, or -EIO (the library failed).
 * argon2id may take seconds and p->m_kib of memory.
 */
int enc_kdf_derive(const struct enc_kdf_params *p, const uint8_t salt[ENC_SALT_LEN], const struct enc_secret *s,
		   uint8_t kek[ENC_KEY_LEN], char *errbuf, size_t errlen);

/* ---- wrapping keys with keys ---- */

/*
 * AES-256-GCM with a fresh random 96-bit IV: seals len bytes of plain into
 * sealed under key, authenticating aad too. enc_unwrap returns -EBADMSG when
 * the tag does not match (a wrong key or changed bytes: the two cannot be
 * told apart) and writes nothing to plain then. Both return -EIO when
 * OpenSSL fails.
 */
int enc_wrap(const uint8_t key[ENC_KEY_LEN], const void *aad, size_t aadlen, const void *plain, size_t len,
	     uint8_t iv[ENC_IV_LEN], void *sealed, uint8_t tag[ENC_TAG_LEN]);
int enc_unwrap(const uint8_t key[ENC_KEY_LEN], const void *aad, size_t aadlen, const void *sealed, size_t len,
	       const uint8_t iv[ENC_IV_LEN], const uint8_t tag[ENC_TAG_LEN], void *plain);

/* ---- the datastore key and the key area ---- */

/* The datastore key: in locked memory, with the epoch it belongs to. */
struct enc_key {
	uint8_t k[ENC_KEY_LEN];
	uint32_t epoch;
};
void enc_key_free(struct enc_key *k);

/* The key area, parsed: one struct per datastore handle or tool. */
struct enc_area;

/* What enc_area_load found wrong in one copy of a record (for fsck). */
enum enc_copy_state {
	ENC_COPY_OK,
	ENC_COPY_BAD,                   /* checksum, magic, version, address or UUID wrong */
	ENC_COPY_STALE,                 /* valid but older (lower generation) than the other copy */
};

/*
 * Builds a new key area for the datastore uuid with a fresh datastore key
 * (epoch 1) and no keyslot: *key gets the key (caller frees). Returns 0 or
 * -ENOMEM, -EIO.
 */
int enc_area_create(const uint8_t uuid[16], struct enc_area **out, struct enc_key **key);

/*
 * Parses ENC_AREA_LEN bytes read from ENC_AREA_OFF of a datastore whose UUID
 * is uuid. Each record is taken from its primary copy, or from its backup
 * when the primary fails its checks or is older. Returns 0, or -EUCLEAN with
 * a message when the header has no valid copy (a slot with none reads as
 * empty and is reported by enc_area_copy_state), -ENOMEM.
 */
int enc_area_load(const void *buf, const uint8_t uuid[16], struct enc_area **out, char *errbuf, size_t errlen);
void enc_area_free(struct enc_area *a);

/*
 * Serialises the area into ENC_AREA_LEN bytes (every record, both copies,
 * generations bumped for records changed since load or create). The
 * caller writes the units in *primary first (header then slots), flushes,
 * then the backups: enc_area_units() lists them.
 */
void enc_area_store(struct enc_area *a, void *buf);
/*
 * The units (absolute unit numbers) to write after enc_area_store, changed
 * records only: primaries into prim[], backups into back[] (each up to
 * 1 + ENC_SLOTS). Returns how many of each.
 */
unsigned enc_area_units(const struct enc_area *a, uint32_t *prim, uint32_t *back);
/* Marks every record clean (after the caller wrote them). */
void enc_area_written(struct enc_area *a);

/* How each copy of each record looked at load: rec -1 is the header, else a slot. */
void enc_area_copy_state(const struct enc_area *a, int rec, enum enc_copy_state *primary, enum enc_copy_state *backup);

/*
 * Opens the datastore key with s: tries every active keyslot whose KDF
 * memory is at most max_kib (0: no limit), or only slot `only` when it is
 * >= 0. On success *key gets the key (caller frees) and *slot the slot that
 * opened it. Returns -EKEYREJECTED when no slot opens with s (wrong key or
 * passphrase, or slots changed on purpose), -ENOKEY when the area has no
 * active slot, -EINVAL (a bad slot index, an absurd KDF), -ENOMEM, -EIO.
 * May take a KDF's time per slot tried.
 */
int enc_area_unlock(const struct enc_area *a, const struct enc_secret *s, int only, uint32_t max_kib,
		    struct enc_key **key, int *slot, char *errbuf, size_t errlen);

/*
 * Adds a keyslot for s wrapping key, in slot `want` (-1: the first empty
 * one), with p and an optional label. Returns 0 with the slot in *slot,
 * -ENOSPC (all slots used), -EEXIST (want is in use), -ESTALE (key is not
 * this area's current key), -EINVAL, -ENOMEM, -EIO.
 */
int enc_area_add(struct enc_area *a, const struct enc_key *key, const struct enc_secret *s,
		 const struct enc_kdf_params *p, const char *label, int want, int *slot, char *errbuf, size_t errlen);

/*
 * Removes keyslot i (its record is zeroed past the header). Returns 0,
 * -ENOENT (empty), -EBUSY (it is the last active slot: the datastore would
 * be locked for good), -EINVAL.
 */
int enc_area_remove(struct enc_area *a, int i, char *errbuf, size_t errlen);

/* One keyslot, as `vmfsctl key list` shows it. */
struct enc_slot_info {
	bool active;
	struct enc_kdf_params kdf;
	uint32_t epoch;
	int64_t created_ns;
	char label[65];
};
int enc_area_slot_info(const struct enc_area *a, int i, struct enc_slot_info *info);

/*
 * A change of the datastore key (shallow rekey), in the area:
 * enc_area_change_begin makes a new key (epoch + 1) from old, the area's
 * current key, and records both links; -EBUSY when a change is in progress
 * (finish it first), -ESTALE when old is not the current key.
 * enc_area_rekey_slot rewraps slot i, which s opens, under the new key
 * (with fresh salt and IV, the slot's KDF); -EKEYREJECTED when s does not
 * open it. enc_area_change_end drops the links (the change is over: every
 * file key is resealed and every host knows the new key).
 * enc_area_other_key: given a key of either epoch of a change in progress,
 * the other one (from the links); -ENOENT when no change is in progress or
 * key is of neither epoch; -EBADMSG when a link fails its tag.
 */
int enc_area_change_begin(struct enc_area *a, const struct enc_key *old, struct enc_key **new_key);
int enc_area_rekey_slot(struct enc_area *a, int i, const struct enc_secret *s, const struct enc_key *new_key,
			char *errbuf, size_t errlen);
void enc_area_change_end(struct enc_area *a);
int enc_area_other_key(const struct enc_area *a, const struct enc_key *key, struct enc_key **other);
/* The epoch of the key being replaced, 0 when no change is in progress. */
uint32_t enc_area_prev_epoch(const struct enc_area *a);
uint32_t enc_area_epoch(const struct enc_area *a);
unsigned enc_area_active(const struct enc_area *a);

/* ---- file keys and the data cipher ---- */

/*
 * A file's keys, unwrapped, in locked memory: the AES-256-XTS key (64
 * bytes, from HKDF-SHA256 of the file key) of each live data key, the
 * name-hash key, and the flags of its enc_crypt_disk.
 */
struct enc_file {
	uint8_t xts[3][64];             /* data keys 0 and 1; [ENC_XTS_SNAPNAME]: snapshot names' */
	uint8_t hash[ENC_KEY_LEN];
	uint8_t flags;                  /* enum enc_crypt_flags */
	uint64_t mark;                  /* with ENC_CR_K1: units below it are under key 1 (the caller sets it) */
	unsigned refs;                  /* for the caller's cache; 0 from enc_file_open */
	uint64_t id;                    /* unique per enc_file_open in this process (enc_xts_cached) */
};

/*
 * Makes a new file's keys: a random key 0 and name-hash key, sealed under
 * key into crypt (128 bytes, an enc_crypt_disk). Returns 0, -EIO, -ENOMEM.
 */
int enc_file_new(const struct enc_key *key, const uint8_t uuid[16], void *crypt);
/*
 * Opens crypt (untrusted) with the datastore key: 0 with *out (free with
 * enc_file_free); -ESTALE when it was sealed under another epoch;
 * -EBADMSG when it fails its tag (damaged or changed: never used); -EUCLEAN
 * for a version or flags it does not know; -ENOMEM, -EIO.
 */
int enc_file_open(const struct enc_key *key, const uint8_t uuid[16], const void *crypt, struct enc_file **out);
void enc_file_free(struct enc_file *f);
/*
 * Reseals crypt (opened with from, the key of its epoch) under to: the same
 * file keys, a new IV, to's epoch. Returns 0, or enc_file_open's errors
 * (crypt unchanged then).
 */
int enc_file_reseal(const struct enc_key *from, const struct enc_key *to, const uint8_t uuid[16], void *crypt);
/* The epoch (low 16 bits) a file key is sealed under. */
uint16_t enc_crypt_epoch(const void *crypt);
/* True when crypt holds keys (version not 0). */
bool enc_crypt_present(const void *crypt);
/* True when crypt's version and flags are ones this code knows (key 0 always live). */
bool enc_crypt_known(const void *crypt);
/* True when crypt is known and a deep rekey is under way (key 1 live). */
bool enc_crypt_rekeying(const void *crypt);
/*
 * A deep rekey's two steps on crypt (sealed under key, resealed under it with
 * a new IV): begin (end false) adds a new random key 1; end makes key 1 key 0
 * and forgets the old key 0. Returns 0; -EINVAL when a rekey is already
 * under way (begin) or none is (end); or enc_file_open's errors. crypt is
 * unchanged on error.
 */
int enc_file_rekey(const struct enc_key *key, const uint8_t uuid[16], void *crypt, bool end);

/*
 * A directory's name hash: the first 8 bytes of HMAC-SHA256 under f's
 * name-hash key, little-endian. Returns 0 or -EIO.
 */
int enc_name_hash(const struct enc_file *f, const void *name, size_t len, uint64_t *out);

/* The data cipher: AES-256-XTS over 4 KiB units, the tweak a unit's number in the file. */
#define ENC_DATA_UNIT 4096u
/*
 * The XTS key of a file's snapshot names: HKDF-SHA256 of its name-hash key
 * ("vmfs snapname"), which a snapshot, a clone and every rekey keep, so a
 * file and all its snapshots share it.
 */
#define ENC_XTS_SNAPNAME 2u
#define ENC_ZERO_SECTOR 512u    /* the zeros rule's granule: the smallest sector a device tears at */
struct enc_xts;
/* A context for one thread's I/O with one of f's keys (which: 0, 1 or ENC_XTS_SNAPNAME). 0, -ENOMEM, -EIO. */
int enc_xts_new(const struct enc_file *f, unsigned which, struct enc_xts **out);
void enc_xts_free(struct enc_xts *x);
/*
 * Encrypts (or decrypts) len bytes from in to out (they may be the same),
 * as len / ENC_DATA_UNIT units numbered from tweak (a len below a unit is one
 * unit of that length, at least 16 bytes: inline data, names). Decrypting
 * a unit of ENC_DATA_UNIT bytes, each ENC_ZERO_SECTOR of it that is all
 * zero bytes gives zeros: the device's zeros (a hole punched, a block
 * zeroed, the sectors a torn write never reached) read as zeros, and a real
 * ciphertext sector is never all zero (odds 2^-4096). Returns 0 or -EIO.
 */
int enc_xts_run(struct enc_xts *x, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len);
/*
 * enc_xts_run with a context of this thread's own, kept between calls for
 * the last few (file, key) pairs it used (by f->id, never reused in the
 * process), so an I/O sets up no key schedule; freed when the thread exits.
 */
int enc_xts_cached(const struct enc_file *f, unsigned which, bool encrypt, uint64_t tweak, const void *in, void *out,
		   size_t len);

#endif
