/*
 * The on-disk key area of an encrypted vmfs datastore (normative text:
 * docs/FORMAT.md, "Encryption"). It lives in the header MiB, between the
 * primary superblock (unit 0) and its backup (unit 255): a key header and 16
 * keyslots, each one 4 KiB record with a backup copy. A record opens with the
 * same 0x30-byte header as every vmfs metadata block (magic, version, its own
 * unit address, a write generation, the datastore UUID, an owner) and ends
 * with a crc32c of the bytes before it, so a torn or misplaced copy is caught
 * before anything in it is used; the secrets in it are protected by
 * AES-256-GCM, whose tag catches a record that was changed on purpose.
 */
#ifndef ENC_FORMAT_H
#define ENC_FORMAT_H

#include <assert.h>
#include "base/base.h"

#define ENC_UNIT 4096u
#define ENC_SLOTS 16u                   /* keyslots */
#define ENC_AREA_FIRST_UNIT 8u          /* the area: units 8..47 of the device */
#define ENC_AREA_UNITS 40u
#define ENC_AREA_OFF ((uint64_t)ENC_AREA_FIRST_UNIT * ENC_UNIT)
#define ENC_AREA_LEN ((size_t)ENC_AREA_UNITS * ENC_UNIT)
/* Units (absolute) of each record and of its backup copy. */
#define ENC_HDR_UNIT 8u
#define ENC_HDR_BACKUP_UNIT 9u
#define ENC_SLOT_UNIT(i) (16u + (i))
#define ENC_SLOT_BACKUP_UNIT(i) (32u + (i))

enum enc_magic {
	ENC_MAGIC_HDR = 0x484b4d56,     /* "VMKH" key header */
	ENC_MAGIC_SLOT = 0x534b4d56,    /* "VMKS" keyslot */
};
#define ENC_VERSION 1u

/* The common record header: the layout of struct vmfs_mhdr. */
struct enc_rhdr_disk {
	le32 eh_magic;                  /* 0x00 enum enc_magic */
	le16 eh_version;                /* 0x04 ENC_VERSION */
	le16 eh_flags;                  /* 0x06 zero */
	le64 eh_addr;                   /* 0x08 this copy's own unit address */
	le64 eh_gen;                    /* 0x10 bumped on every write of the record */
	uint8_t eh_uuid[16];            /* 0x18 datastore UUID */
	le64 eh_owner;                  /* 0x28 keyslot index; 0 for the header */
};
static_assert(sizeof(struct enc_rhdr_disk) == 0x30, "");

enum enc_cipher_id {
	ENC_DATA_AES256_XTS = 1,        /* file contents and names: AES-256-XTS */
	ENC_WRAP_AES256_GCM = 1,        /* keys wrapped by keys: AES-256-GCM, 96-bit random IV */
};

#define ENC_KEY_LEN 32u                 /* datastore key, key-encryption keys, file-key seeds */
#define ENC_IV_LEN 12u
#define ENC_TAG_LEN 16u
#define ENC_SALT_LEN 32u

/*
 * Key header: which ciphers the datastore uses and which datastore key is
 * current. kh_check lets an unwrapped key be recognised (HMAC-SHA256 keyed by
 * the datastore key over "vmfs key check", the UUID and the epoch), so a
 * keyslot that wraps another key, or another datastore's key, is refused.
 */
struct enc_hdr_disk {
	struct enc_rhdr_disk kh_hdr;    /* 0x000 magic VMKH */
	le32 kh_data_cipher;            /* 0x030 enum enc_cipher_id */
	le32 kh_wrap_cipher;            /* 0x034 enum enc_cipher_id */
	le32 kh_epoch;                  /* 0x038 generation of the datastore key, from 1 */
	le32 kh_slots;                  /* 0x03c ENC_SLOTS */
	uint8_t kh_check[32];           /* 0x040 key check value of the current key */
	/*
	 * A datastore key change in progress (shallow rekey, docs/ENCRYPTION.md):
	 * kh_prev_epoch is the old key's epoch (0: none in progress); the new key
	 * sealed under the old one (for hosts that hold the old key) and the old
	 * one under the new (for hosts that unlock with a rewrapped keyslot and
	 * meet a file key not yet resealed). The additional data of both is the
	 * UUID and both epochs.
	 */
	le32 kh_prev_epoch;             /* 0x060 */
	le32 kh_pad0;                   /* 0x064 zero */
	uint8_t kh_next_iv[ENC_IV_LEN]; /* 0x068 the new key under the old */
	uint8_t kh_next_key[ENC_KEY_LEN];/* 0x074 */
	uint8_t kh_next_tag[ENC_TAG_LEN];/* 0x094 */
	uint8_t kh_prev_iv[ENC_IV_LEN]; /* 0x0a4 the old key under the new */
	uint8_t kh_prev_key[ENC_KEY_LEN];/* 0x0b0 */
	uint8_t kh_prev_tag[ENC_TAG_LEN];/* 0x0d0 */
	uint8_t kh_reserved[0xFFC - 0xe0];
	le32 kh_crc;                    /* 0xffc crc32c of bytes [0, 0xffc) */
};
static_assert(__builtin_offsetof(struct enc_hdr_disk, kh_prev_tag) == 0xd0, "");
static_assert(sizeof(struct enc_hdr_disk) == 4096, "");

enum enc_slot_state {
	ENC_SLOT_EMPTY = 0,
	ENC_SLOT_ACTIVE = 1,
};

enum enc_kdf_id {
	ENC_KDF_ARGON2ID = 1,           /* passphrases: argon2id (RFC 9106) */
	ENC_KDF_HKDF_SHA256 = 2,        /* key files of at least 32 bytes: HKDF-SHA256 (RFC 5869) */
};

/*
 * Keyslot: the datastore key wrapped by a key-encryption key derived from one
 * secret (a passphrase, a key file, what a key program prints). The GCM
 * additional data is the UUID, the slot's index and bytes 0x30..0x68 and
 * 0xb0..0xf0 (state, KDF, its parameters, the epoch, the salt, the label), so
 * none of them can be changed without the tag failing. An empty slot is zero
 * past its header.
 */
struct enc_slot_disk {
	struct enc_rhdr_disk ks_hdr;    /* 0x000 magic VMKS, owner = slot index */
	le32 ks_state;                  /* 0x030 enum enc_slot_state */
	le32 ks_kdf;                    /* 0x034 enum enc_kdf_id */
	le32 ks_t_cost;                 /* 0x038 argon2id passes (0 for HKDF) */
	le32 ks_m_kib;                  /* 0x03c argon2id memory in KiB (0 for HKDF) */
	le32 ks_parallel;               /* 0x040 argon2id lanes (0 for HKDF) */
	le32 ks_epoch;                  /* 0x044 the epoch of the datastore key it wraps */
	uint8_t ks_salt[ENC_SALT_LEN];  /* 0x048 */
	uint8_t ks_iv[ENC_IV_LEN];      /* 0x068 */
	uint8_t ks_pad0[4];             /* 0x074 zero */
	uint8_t ks_wrapped[ENC_KEY_LEN];/* 0x078 the datastore key, AES-256-GCM */
	uint8_t ks_tag[ENC_TAG_LEN];    /* 0x098 */
	le64 ks_created;                /* 0x0a8 ns since the epoch (not authenticated) */
	char ks_label[64];              /* 0x0b0 NUL-padded description, e.g. "host-a key file" */
	uint8_t ks_reserved[0xFFC - 0xf0];
	le32 ks_crc;                    /* 0xffc */
};
static_assert(sizeof(struct enc_slot_disk) == 4096, "");
static_assert(__builtin_offsetof(struct enc_slot_disk, ks_label) == 0xb0, "");

/*
 * A file's keys, in the 128 bytes of its inode's i_crypt: two data keys (a
 * deep rekey moves the file from one to the other) and a name-hash key (for
 * directories; stable across rekeys, so cookies stay valid), sealed with
 * AES-256-GCM under the datastore key of epoch cr_epoch (its low 16 bits).
 * The additional data is the datastore UUID and bytes 0..3. A snapshot or a
 * clone copies the bytes as they are: it shares the file's blocks and so
 * its keys. cr_version 0 (all zero): the inode has no keys (an unencrypted
 * datastore, /lost+found, devices and FIFOs).
 */
enum enc_crypt_flags {
	ENC_CR_K0 = 1u << 0,            /* key 0 is live: always set */
	ENC_CR_K1 = 1u << 1,            /* key 1 is live: a deep rekey is under way; the */
					/* units below the inode's i_crypt_mark are under key 1 */
};
#define ENC_CR_FLAGS_KNOWN 0x03u
#define ENC_CRYPT_VERSION 1u
struct enc_crypt_disk {
	uint8_t cr_version;             /* 0x00 ENC_CRYPT_VERSION; 0: no keys */
	uint8_t cr_flags;               /* 0x01 enum enc_crypt_flags */
	le16 cr_epoch;                  /* 0x02 low 16 bits of the datastore key's epoch */
	uint8_t cr_iv[ENC_IV_LEN];      /* 0x04 */
	uint8_t cr_keys[3 * ENC_KEY_LEN];/* 0x10 key 0, key 1 (zero unless live), name-hash key */
	uint8_t cr_tag[ENC_TAG_LEN];    /* 0x70 */
};
static_assert(sizeof(struct enc_crypt_disk) == 128, "");

/* Limits a keyslot's KDF parameters are held to (a record is untrusted). */
#define ENC_ARGON2_MAX_T 64u
#define ENC_ARGON2_MIN_KIB 64u
#define ENC_ARGON2_MAX_KIB (4u << 20)   /* 4 GiB */
#define ENC_ARGON2_MAX_LANES 16u

#endif
