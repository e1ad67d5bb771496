/*
 * lockmgr on-disk format: the heartbeat slots and the lock region (header,
 * bucket leaders, double-buffered bucket tables, per-host Disk Paxos dblock
 * sectors). Every record opens with a magic and the format version, names its
 * own place (slot, bucket, copy, group) and closes with a crc32c over the bytes
 * before it; an all-zero record is the formatted empty state. The layout of the
 * lock region is a pure function of (nslots, sector_size, lock_len):
 * lk_layout_compute() below is that function, and docs/LOCKING.md draws it.
 */
#ifndef VMFS_LOCKMGR_FORMAT_H
#define VMFS_LOCKMGR_FORMAT_H

#include <assert.h>
#include <errno.h>
#include <stdint.h>

#include "base/base.h"

#define LK_FORMAT_VERSION 1

/* magics: four ASCII bytes read as a little-endian le32 */
#define LK_MAGIC_HB     0x42484b4cu     /* "LKHB" heartbeat slot */
#define LK_MAGIC_REGION 0x47524b4cu     /* "LKRG" lock region header */
#define LK_MAGIC_LEADER 0x444c4b4cu     /* "LKLD" bucket leader */
#define LK_MAGIC_TABLE  0x42544b4cu     /* "LKTB" bucket table copy */
#define LK_MAGIC_DBLOCK 0x42444b4cu     /* "LKDB" one host's dblock sector */

/*
 * Heartbeat slot i: the first 512 bytes of hb_off + i * slot_size, written in
 * one sector write (the rest of a larger slot stays zero). Written by its host
 * (claim, renewal, leave) and, for a dead host, by the one live host holding
 * the slot's recovery lock (RECOVERING, then FREE). All zero = FREE, gen 0.
 */
struct lk_hb_disk {
	le32 hb_magic;                  /* 0x000 LK_MAGIC_HB */
	le16 hb_version;                /* 0x004 LK_FORMAT_VERSION */
	le16 hb_state;                  /* 0x006 enum lk_slot_state */
	le32 hb_slot;                   /* 0x008 own index: a record read from the wrong place is caught */
	le32 hb_reserved0;              /* 0x00c zero */
	le64 hb_gen;                    /* 0x010 +1 at each claim, kept when freed, never reused */
	uint8_t hb_uuid[16];            /* 0x018 fresh random per join */
	le64 hb_counter;                /* 0x028 renewal counter: changes at every renewal */
	le64 hb_reserved1;              /* 0x030 zero */
	char hb_hostname[64];           /* 0x038 NUL-padded */
	uint8_t hb_reserved2[388];      /* 0x078 zero */
	le32 hb_crc;                    /* 0x1fc crc32c of 0x000..0x1fb */
};
static_assert(sizeof(struct lk_hb_disk) == 512, "");

/*
 * Lock region header: the first 512 bytes of the region's first 4 KiB. Written
 * once by lk_format(); lk_join() and lk_check() compare it with the geometry.
 */
struct lk_region_disk {
	le32 rg_magic;                  /* 0x000 LK_MAGIC_REGION */
	le16 rg_version;                /* 0x004 */
	le16 rg_reserved0;              /* 0x006 zero */
	le32 rg_sector_size;            /* 0x008 */
	le32 rg_nslots;                 /* 0x00c */
	le32 rg_nbuckets;               /* 0x010 */
	le32 rg_table_bytes;            /* 0x014 LK_TABLE_BYTES */
	le64 rg_lock_len;               /* 0x018 */
	uint8_t rg_reserved1[476];      /* 0x020 zero */
	le32 rg_crc;                    /* 0x1fc crc32c of 0x000..0x1fb */
};
static_assert(sizeof(struct lk_region_disk) == 512, "");

/*
 * Bucket leader: the first 512 bytes of the bucket's own sector. Written only
 * by the winner of Paxos instance ld_lver (commit, then release), so leader
 * writes are ordered by lver (docs/LOCKING.md, M3). All zero = lver 0, released.
 */
enum lk_leader_flags { LK_LEADER_RELEASED = 1u << 0 };
struct lk_leader_disk {
	le32 ld_magic;                  /* 0x000 LK_MAGIC_LEADER */
	le16 ld_version;                /* 0x004 */
	le16 ld_flags;                  /* 0x006 enum lk_leader_flags */
	le32 ld_bucket;                 /* 0x008 own index */
	le32 ld_owner_slot;             /* 0x00c winner of instance ld_lver */
	le64 ld_lver;                   /* 0x010 Paxos instance (lease version) */
	le64 ld_owner_gen;              /* 0x018 */
	uint8_t ld_reserved[476];       /* 0x020 zero */
	le32 ld_crc;                    /* 0x1fc crc32c of 0x000..0x1fb */
};
static_assert(sizeof(struct lk_leader_disk) == 512, "");

/*
 * Disk Paxos dblock of one host for one bucket (sanlock's paxos_dblock): the
 * highest ballot it joined (mbal), the ballot of its last vote (bal) and that
 * vote (inp = owner slot + gen), all for instance db_lver. A dblock of an
 * older lver counts as empty in instance lver.
 */
enum lk_dblock_flags { LK_DBLOCK_INP = 1u << 0 };       /* db_inp_* hold a vote */
struct lk_dblock_disk {
	le64 db_mbal;                   /* 0x00 */
	le64 db_bal;                    /* 0x08 */
	le64 db_lver;                   /* 0x10 */
	le64 db_inp_gen;                /* 0x18 */
	le32 db_inp_slot;               /* 0x20 */
	le32 db_flags;                  /* 0x24 enum lk_dblock_flags */
	le64 db_reserved;               /* 0x28 zero */
};
static_assert(sizeof(struct lk_dblock_disk) == 48, "");

/*
 * One sector per (host slot, bucket group) holds that host's dblocks of the
 * group's buckets: a 24-byte header, LK_DBLOCKS_PER_SECTOR(sector_size)
 * dblocks, zero, and a crc32c of the whole sector before its last 4 bytes.
 * Written only by the host holding the slot. All zero = every dblock empty.
 */
struct lk_dsect_head {
	le32 ds_magic;                  /* 0x00 LK_MAGIC_DBLOCK */
	le16 ds_version;                /* 0x04 */
	le16 ds_count;                  /* 0x06 dblocks in this sector */
	le32 ds_slot;                   /* 0x08 own slot */
	le32 ds_group;                  /* 0x0c own group */
	le64 ds_gen;                    /* 0x10 generation of the slot's host that wrote it last */
};
static_assert(sizeof(struct lk_dsect_head) == 24, "");
#define LK_DBLOCKS_PER_SECTOR(ss) (((ss) - sizeof(struct lk_dsect_head) - 4) / sizeof(struct lk_dblock_disk))
static_assert(LK_DBLOCKS_PER_SECTOR(512) == 10, "");
static_assert(LK_DBLOCKS_PER_SECTOR(4096) == 84, "");

/*
 * Bucket table: two copies of LK_TABLE_BYTES each; a writer (holding the
 * bucket mutex) writes the copy not holding the newest valid table, with
 * tb_seq one higher, so a torn write never loses the committed table. An
 * entry with te_mode 0 holds no lock: it keeps the resource's version until
 * garbage-collected. tb_next_version hands out every new version of the
 * bucket's resources, so a version never repeats.
 */
enum lk_entry_flags {
	LK_ENTRY_WANT = 1u << 0,        /* not a holder: the owner waits to take te_mode (docs/LOCKING.md, W1-W3) */
};
struct lk_entry_disk {
	le64 te_res;                    /* 0x00 resource id */
	le64 te_version;                /* 0x08 the resource's version (same in all its entries) */
	le64 te_owner_gen;              /* 0x10 */
	le32 te_owner_slot;             /* 0x18 */
	uint8_t te_mode;                /* 0x1c enum lk_mode, 0 = version record only */
	uint8_t te_flags;               /* 0x1d enum lk_entry_flags */
	uint8_t te_reserved[2];         /* 0x1e zero */
};
static_assert(sizeof(struct lk_entry_disk) == 32, "");

#define LK_TABLE_BYTES 4096u
#define LK_TABLE_ENTRIES 125u
struct lk_table_disk {
	le32 tb_magic;                  /* 0x000 LK_MAGIC_TABLE */
	le16 tb_version;                /* 0x004 */
	le16 tb_nentries;               /* 0x006 entries in use, dense from 0 */
	le32 tb_bucket;                 /* 0x008 own bucket */
	le32 tb_copy;                   /* 0x00c own copy, 0 or 1 */
	le64 tb_seq;                    /* 0x010 +1 per update: the newest valid copy wins */
	le64 tb_next_version;           /* 0x018 next version to hand out (starts at 1) */
	le32 tb_writer_slot;            /* 0x020 who wrote it (for vmfsctl and fsck) */
	le32 tb_reserved0;              /* 0x024 zero */
	le64 tb_writer_gen;             /* 0x028 */
	uint8_t tb_reserved1[16];       /* 0x030 zero */
	struct lk_entry_disk tb_entries[LK_TABLE_ENTRIES];     /* 0x040 */
	uint8_t tb_reserved2[28];       /* 0xfe0 zero */
	le32 tb_crc;                    /* 0xffc crc32c of 0x000..0xffb */
};
static_assert(sizeof(struct lk_table_disk) == LK_TABLE_BYTES, "");

/*
 * Lock region layout, offsets from lock_off, every part 4 KiB aligned:
 *
 *   0                     region header (4 KiB)
 *   leader_off  = 4 KiB   nbuckets leader sectors, rounded up to 4 KiB
 *   table_off             nbuckets * 2 table copies; bucket b copy c at
 *                         table_off + (2b + c) * LK_TABLE_BYTES
 *   dblock_off            ngroups groups of nslots sectors; group k holds the
 *                         dblocks of buckets k*per .. k*per+per-1, slot s's
 *                         sector at dblock_off + (k * nslots + s) * sector_size,
 *                         so one read of nslots sectors gets every host's
 *                         dblocks of a bucket (Disk Paxos reads them all)
 *   size                  dblock_off + ngroups * nslots * sector_size
 *
 * nbuckets is the largest count (up to LK_MAX_BUCKETS) whose size fits lock_len.
 */
#define LK_REGION_HDR_BYTES 4096u
#define LK_MAX_BUCKETS 65536u

struct lk_layout {
	uint32_t sector_size;
	uint32_t nslots;
	uint32_t nbuckets;
	uint32_t per_sector;            /* dblocks per sector = buckets per group */
	uint32_t ngroups;
	uint64_t leader_off;
	uint64_t table_off;
	uint64_t dblock_off;
	uint64_t size;
};

static inline void lk_layout_fill(uint32_t nslots, uint32_t ss, uint32_t nbuckets, struct lk_layout *l)
{
	l->sector_size = ss;
	l->nslots = nslots;
	l->nbuckets = nbuckets;
	l->per_sector = (uint32_t)LK_DBLOCKS_PER_SECTOR(ss);
	l->ngroups = (uint32_t)base_div_round_up(nbuckets, l->per_sector);
	l->leader_off = LK_REGION_HDR_BYTES;
	l->table_off = l->leader_off + base_round_up((uint64_t)nbuckets * ss, 4096);
	l->dblock_off = l->table_off + (uint64_t)nbuckets * 2 * LK_TABLE_BYTES;
	l->size = l->dblock_off + (uint64_t)l->ngroups * nslots * ss;
}

static inline bool lk_sector_size_ok(uint32_t ss)
{
	return ss >= 512 && ss <= 4096 && base_is_pow2(ss);
}

/* The layout for lock_len bytes: 0, or -EINVAL if not even one bucket fits. */
static inline int lk_layout_compute(uint32_t nslots, uint32_t ss, uint64_t lock_len, struct lk_layout *l)
{
	uint32_t lo = 1, hi = LK_MAX_BUCKETS;

	if (!nslots || !lk_sector_size_ok(ss))
		return -EINVAL;
	lk_layout_fill(nslots, ss, 1, l);
	if (l->size > lock_len)
		return -EINVAL;
	while (lo < hi) {               /* size grows with nbuckets: largest that fits */
		uint32_t mid = lo + (hi - lo + 1) / 2;

		lk_layout_fill(nslots, ss, mid, l);
		if (l->size <= lock_len)
			lo = mid;
		else
			hi = mid - 1;
	}
	lk_layout_fill(nslots, ss, lo, l);
	return 0;
}

static inline uint64_t lk_layout_leader(const struct lk_layout *l, uint32_t b)
{
	return l->leader_off + (uint64_t)b * l->sector_size;
}

static inline uint64_t lk_layout_table(const struct lk_layout *l, uint32_t b)
{
	return l->table_off + (uint64_t)b * 2 * LK_TABLE_BYTES;
}

static inline uint64_t lk_layout_group(const struct lk_layout *l, uint32_t group)
{
	return l->dblock_off + (uint64_t)group * l->nslots * l->sector_size;
}

/* The bucket of a resource: splitmix64's finalizer, then modulo (part of the format). */
static inline uint32_t lk_bucket_of(uint64_t res, uint32_t nbuckets)
{
	res ^= res >> 30;
	res *= 0xbf58476d1ce4e5b9ull;
	res ^= res >> 27;
	res *= 0x94d049bb133111ebull;
	res ^= res >> 31;
	return (uint32_t)(res % nbuckets);
}

#endif
