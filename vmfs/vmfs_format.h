/*
 * The vmfs on-disk format (normative text: docs/FORMAT.md). Every structure is
 * little-endian with explicit padding and a size check under it. Every metadata
 * block is 4 KiB, opens with struct vmfs_mhdr (magic, format version, its own
 * address, a write generation, the datastore UUID, its owner) and ends with a
 * crc32c of the bytes before it, so a block read from the wrong place, a block of
 * an older mkfs or a torn write is detected instead of trusted.
 *
 * Addresses ("units") count 4 KiB from the start of the device.
 */
#ifndef VMFS_FORMAT_H
#define VMFS_FORMAT_H

#include <assert.h>
#include "base/base.h"

#define VMFS_UNIT 4096u                 /* metadata block, sub-block, address unit */
#define VMFS_UNIT_SHIFT 12
#define VMFS_VERSION_MAJOR 1
#define VMFS_VERSION_MINOR 0

#define VMFS_SB_OFF 0x0ull              /* primary superblock */
#define VMFS_SB_BACKUP_OFF 0xFF000ull   /* backup superblock: last 4 KiB of the first MiB */
#define VMFS_REGION_ALIGN (1ull << 20)  /* every region starts on a MiB */

#define VMFS_MIN_BLOCK_SIZE (64u << 10)
#define VMFS_MAX_BLOCK_SIZE (4u << 20)
#define VMFS_MAX_HOSTS 2048u
#define VMFS_MIN_SIZE (64ull << 20)
#define VMFS_MAX_SIZE (1ull << 56)      /* 64 PiB: units fit in VMFS_PTR_ADDR_MASK */
#define VMFS_NAME_MAX 255u

/* Magics (le32 at offset 0 of each metadata block). */
enum vmfs_magic {
	VMFS_MAGIC_SB = 0x42534d56,     /* "VMSB" superblock */
	VMFS_MAGIC_RC = 0x43524d56,     /* "VMRC" resource-cluster descriptor */
	VMFS_MAGIC_POOL = 0x4c504d56,   /* "VMPL" sub-block pool header */
	VMFS_MAGIC_INODE = 0x4e494d56,  /* "VMIN" inode */
	VMFS_MAGIC_PTR = 0x54504d56,    /* "VMPT" pointer block */
	VMFS_MAGIC_DIR = 0x52444d56,    /* "VMDR" directory tree node */
	VMFS_MAGIC_JSB = 0x534a4d56,    /* "VMJS" journal superblock */
	VMFS_MAGIC_HSTATE = 0x53484d56, /* "VMHS" per-host state block */
	VMFS_MAGIC_JDESC = 0x444a4d56,  /* "VMJD" journal descriptor */
	VMFS_MAGIC_JCOMMIT = 0x434a4d56,/* "VMJC" journal commit */
	VMFS_MAGIC_HOSTREC = 0x54484d56,/* "VMHT" host-table record */
	VMFS_MAGIC_FREED = 0x45524d56,  /* "VMRE" a freed inode (its last image) */
	VMFS_MAGIC_REDIR = 0x44524d56,  /* "VMRD" redirect sub-block (shared_blocks) */
};

/* Common header of every 4 KiB metadata block. */
struct vmfs_mhdr {
	le32 mh_magic;          /* 0x00 enum vmfs_magic */
	le16 mh_version;        /* 0x04 VMFS_VERSION_MAJOR */
	le16 mh_flags;          /* 0x06 per type */
	le64 mh_addr;           /* 0x08 this block's own unit address */
	le64 mh_gen;            /* 0x10 bumped on every write of the block */
	uint8_t mh_uuid[16];    /* 0x18 datastore UUID */
	le64 mh_owner;          /* 0x28 inode / RC / slot it belongs to (fsck hint) */
};                              /* 0x30 */
static_assert(sizeof(struct vmfs_mhdr) == 0x30, "");

#define VMFS_CRC_OFF (VMFS_UNIT - 4)    /* le32 crc32c of bytes [0, 0xFFC) */

/* Feature words. Unknown incompat: refuse. Unknown ro_compat: read-only only. */
enum vmfs_incompat {
	/*
	 * Blocks may be shared between files (snapshots, clones, shared copies):
	 * a reader that does not know this would write a shared block in place.
	 * Set by the first transaction that shares a block; never cleared.
	 */
	VMFS_INCOMPAT_SHARED = 1u << 0,
	/*
	 * Encrypted (docs/ENCRYPTION.md): units 8..47 hold the key area
	 * (encrypt/encrypt_format.h). Set by mkfs; never cleared.
	 */
	VMFS_INCOMPAT_ENCRYPTED = 1u << 1,
};
#define VMFS_FEATURE_COMPAT_SUPP 0ull
#define VMFS_FEATURE_RO_COMPAT_SUPP 0ull
#define VMFS_FEATURE_INCOMPAT_SUPP ((uint64_t)(VMFS_INCOMPAT_SHARED | VMFS_INCOMPAT_ENCRYPTED))

enum vmfs_sb_state {
	VMFS_STATE_ERRORS = 1u << 0,    /* a host found corruption: run fsck */
};

/* Superblock: unit 0, copied to VMFS_SB_BACKUP_OFF. */
struct vmfs_sb_disk {
	struct vmfs_mhdr sb_hdr;        /* 0x000 magic VMSB, owner 0 */
	le16 sb_version_minor;          /* 0x030 */
	le16 sb_pad0;                   /* 0x032 */
	le32 sb_sector_size;            /* 0x034 logical sector size at mkfs */
	le64 sb_compat;                 /* 0x038 (the e2e tests patch the next word) */
	le64 sb_ro_compat;              /* 0x040 */
	le64 sb_incompat;               /* 0x048 */
	uint8_t sb_uuid[16];            /* 0x050 same as mh_uuid */
	char sb_label[64];              /* 0x060 NUL-padded */
	le64 sb_size;                   /* 0x0a0 bytes formatted */
	le32 sb_block_shift;            /* 0x0a8 log2(file block size) */
	le32 sb_rc_blocks;              /* 0x0ac file blocks per resource cluster */
	le64 sb_nblocks;                /* 0x0b0 file blocks in the data area */
	le64 sb_data_off;               /* 0x0b8 byte offset of file block 0 */
	le64 sb_rc_count;               /* 0x0c0 resource clusters */
	le64 sb_rc_inited;              /* 0x0c8 RCs [0, rc_inited) have descriptors */
	le64 sb_rc_table_off;           /* 0x0d0 byte offset of RC descriptor i = off + i*4K */
	le64 sb_hb_off;                 /* 0x0d8 heartbeat region (lockmgr) */
	le32 sb_host_slots;             /* 0x0e0 */
	le32 sb_slot_size;              /* 0x0e4 bytes per heartbeat / host-table slot */
	le64 sb_hosttab_off;            /* 0x0e8 host table: host_slots records */
	le64 sb_lock_off;               /* 0x0f0 lock region (lockmgr) */
	le64 sb_lock_len;               /* 0x0f8 */
	le64 sb_journal_len;            /* 0x100 bytes per host journal, allocated at first join */
	le64 sb_root_ino;               /* 0x108 */
	le64 sb_hash_seed;              /* 0x110 directory name-hash seed */
	le32 sb_hb_interval_ms;         /* 0x118 cluster timings, agreed by all hosts */
	le32 sb_hb_dead_ms;             /* 0x11c */
	le32 sb_fence_ms;               /* 0x120 */
	le32 sb_io_timeout_ms;          /* 0x124 */
	le64 sb_mkfs_time;              /* 0x128 ns since the epoch */
	le32 sb_state;                  /* 0x130 enum vmfs_sb_state */
	le32 sb_pad1;                   /* 0x134 */
	le64 sb_lostfound_ino;          /* 0x138 */
	le64 sb_rekey_run;              /* 0x140 the latest deep rekey of the whole datastore begun (0: none) */
	le32 sb_rekey_open;             /* 0x148 1 while that run is not finished, else 0 */
	le32 sb_pad2;                   /* 0x14c */
	uint8_t sb_reserved[0xFFC - 0x150];
	le32 sb_crc;                    /* 0xffc */
};
static_assert(sizeof(struct vmfs_sb_disk) == 4096, "");
static_assert(__builtin_offsetof(struct vmfs_sb_disk, sb_incompat) == 0x48, "");

/*
 * Owner record embedded in RC descriptors and inodes. In an RC descriptor it
 * names the host that allocates from the cluster (placement only: every
 * allocation runs under the cluster's metadata lock, docs/LOCKING.md); a record
 * whose host is no longer a member (its slot is free or holds another
 * generation) is void. Inodes keep it zero: file locks live in lockmgr's tables.
 */
struct vmfs_lockrec_disk {
	le32 lr_slot1;                  /* 0x00 owner's heartbeat slot + 1; 0: no owner */
	le32 lr_reserved0;              /* 0x04 zero */
	le64 lr_gen;                    /* 0x08 owner's heartbeat generation */
	uint8_t lr_reserved[48];        /* 0x10 zero */
};
static_assert(sizeof(struct vmfs_lockrec_disk) == 64, "");

/* Reference count values of a file block (RC descriptor) or a sub-block (pool). */
#define VMFS_REF_FREE 0
#define VMFS_REF_MAX 0xFFF0u            /* a block shared this many times is copied instead */
#define VMFS_REF_JOURNAL 0xFFFEu        /* file block: part of a host journal */
#define VMFS_REF_POOL 0xFFFFu           /* file block: a sub-block pool; sub-block: pool header */
#define VMFS_RC_MAX_BLOCKS 1024u

/* Resource-cluster descriptor: unit sb_rc_table_off/4K + rc index. */
struct vmfs_rc_disk {
	struct vmfs_mhdr rc_hdr;        /* 0x000 magic VMRC, owner = RC index */
	struct vmfs_lockrec_disk rc_lock; /* 0x030 */
	le64 rc_first;                  /* 0x070 first file block covered */
	le32 rc_nblocks;                /* 0x078 blocks covered (the last RC may be short) */
	le32 rc_nfree;                  /* 0x07c entries equal to VMFS_REF_FREE */
	uint8_t rc_pad[0x100 - 0x80];
	le16 rc_ref[VMFS_RC_MAX_BLOCKS];/* 0x100 per-block reference count */
	uint8_t rc_reserved[0xFFC - 0x900];
	le32 rc_crc;
};
static_assert(sizeof(struct vmfs_rc_disk) == 4096, "");

/* Sub-block pool: a file block cut into 4 KiB sub-blocks; this header is sub-block 0. */
#define VMFS_POOL_MAX_UNITS (VMFS_MAX_BLOCK_SIZE / VMFS_UNIT)
struct vmfs_pool_disk {
	struct vmfs_mhdr pl_hdr;        /* 0x000 magic VMPL, owner = file block number */
	le32 pl_units;                  /* 0x030 sub-blocks in the pool (block size / 4K) */
	le32 pl_nfree;                  /* 0x034 */
	uint8_t pl_pad[0x100 - 0x38];
	le16 pl_ref[VMFS_POOL_MAX_UNITS];/* 0x100 ref[0] = VMFS_REF_POOL (this header) */
	uint8_t pl_reserved[0xFFC - 0x900];
	le32 pl_crc;
};
static_assert(sizeof(struct vmfs_pool_disk) == 4096, "");

/*
 * Block pointer: unit address in the low 56 bits; 0 is a hole. TBZ ("to be
 * zeroed", as VMFS names it): the block is allocated but reads as zeros, and the
 * first write zeroes it. REDIRECT (shared_blocks, data pointers of LARGE maps
 * only, never with TBZ): the address is a redirect table and bits 56..61 are
 * a slot in it, below. Other high bits are reserved and must be zero.
 */
#define VMFS_PTR_ADDR_MASK ((1ull << 56) - 1)
#define VMFS_PTR_TBZ (1ull << 63)
#define VMFS_PTR_REDIRECT (1ull << 62)
#define VMFS_PTR_SLOT_SHIFT 56
#define VMFS_PTR_SLOT_MASK (63ull << VMFS_PTR_SLOT_SHIFT)
#define VMFS_PTR_RESERVED (~(VMFS_PTR_ADDR_MASK | VMFS_PTR_TBZ | VMFS_PTR_REDIRECT)) /* the slot of a REDIRECT */

/*
 * Redirect table (docs/FORMAT.md, "Redirects"): a sub-block of up to 64
 * redirects, each a file block being replaced 4 KiB grain by grain. Grain g
 * of a slot reads from rs_new when bit g of its bitmap is set, else from
 * rs_backing. A slot keeps its own count (the pointers naming it); the table
 * itself is counted once while any slot is in use.
 */
#define VMFS_GRAIN VMFS_UNIT
#define VMFS_REDIR_MAX_SLOTS 64u
#define VMFS_REDIR_SLOTS_OFF 0x40u
struct vmfs_redir_slot {
	le16 rs_ref;                    /* 0x00 pointers naming this slot; 0 = free */
	uint8_t rs_pad[6];              /* 0x02 zero */
	le64 rs_backing;                /* 0x08 the block it replaces: a file block, no flag */
	le64 rs_new;                    /* 0x10 its own block, counted 1 */
	uint8_t rs_bits[];              /* 0x18 bit g (byte g / 8, bit g % 8), rounded up to 8 bytes */
};
struct vmfs_redir_disk {
	struct vmfs_mhdr rd_hdr;        /* 0x000 magic VMRD, owner = the inode that made it */
	le32 rd_grains;                 /* 0x030 grains per block: block size / 4 KiB */
	le16 rd_slots;                  /* 0x034 slots in this table (vmfs_redir_slots()) */
	le16 rd_used;                   /* 0x036 slots whose count is not 0 */
	uint8_t rd_pad[VMFS_REDIR_SLOTS_OFF - 0x38]; /* 0x038 zero */
	uint8_t rd_slot[0xFFC - VMFS_REDIR_SLOTS_OFF]; /* 0x040 rd_slots slots of vmfs_redir_slot_size() bytes, then zero */
	le32 rd_crc;
};
static_assert(sizeof(struct vmfs_redir_disk) == 4096, "");

static inline unsigned vmfs_redir_slot_size(unsigned grains)
{
	return (unsigned)sizeof(struct vmfs_redir_slot) + (grains / 8 + 7) / 8 * 8;
}

static inline unsigned vmfs_redir_slots(unsigned grains)
{
	unsigned n = (unsigned)(0xFFC - VMFS_REDIR_SLOTS_OFF) / vmfs_redir_slot_size(grains);
	return n < VMFS_REDIR_MAX_SLOTS ? n : VMFS_REDIR_MAX_SLOTS;
}

#define VMFS_PTRS_PER_BLOCK 496u
struct vmfs_ptr_disk {
	struct vmfs_mhdr pb_hdr;        /* 0x000 magic VMPT, owner = inode; mh_flags = level (1 = points at data) */
	uint8_t pb_pad[0x40 - 0x30];
	le64 pb_ptr[VMFS_PTRS_PER_BLOCK];/* 0x040 */
	uint8_t pb_reserved[0xFFC - 0xFC0];
	le32 pb_crc;
};
static_assert(sizeof(struct vmfs_ptr_disk) == 4096, "");

/* Inode flags. Exactly one of INLINE, SMALL, LARGE describes where the data is. */
enum vmfs_inode_flags {
	VMFS_IF_INLINE = 1u << 0,       /* data (or directory entries) in i_root */
	VMFS_IF_SMALL = 1u << 1,        /* map of 4 KiB sub-blocks, size <= VMFS_SMALL_MAX */
	VMFS_IF_LARGE = 1u << 2,        /* map of file blocks */
	VMFS_IF_ORPHAN = 1u << 3,       /* on the host's orphan list (unlinked or truncating) */
	VMFS_IF_SHARED = 1u << 4,       /* the map may point at shared blocks: check counts before writing */
	VMFS_IF_SNAPSHOT = 1u << 5,     /* a snapshot: read-only, named by its file's catalog, not by a directory */
};
#define VMFS_IF_LAYOUT (VMFS_IF_INLINE | VMFS_IF_SMALL | VMFS_IF_LARGE)

#define VMFS_ROOT_PTRS 256u
#define VMFS_INLINE_MAX (VMFS_ROOT_PTRS * 8u)         /* 2048 bytes */
#define VMFS_SMALL_MAX ((uint64_t)VMFS_ROOT_PTRS * VMFS_UNIT) /* 1 MiB */
#define VMFS_MAX_HEIGHT 5u

struct vmfs_inode_disk {
	struct vmfs_mhdr i_hdr;         /* 0x000 magic VMIN, addr = inode number */
	struct vmfs_lockrec_disk i_lock;/* 0x030 */
	le32 i_mode;                    /* 0x070 */
	le32 i_uid;                     /* 0x074 */
	le32 i_gid;                     /* 0x078 */
	le32 i_nlink;                   /* 0x07c */
	le64 i_size;                    /* 0x080 */
	le64 i_units;                   /* 0x088 4 KiB units allocated (data and map) */
	le64 i_atime;                   /* 0x090 ns since the epoch, signed */
	le64 i_mtime;                   /* 0x098 */
	le64 i_ctime;                   /* 0x0a0 */
	le64 i_btime;                   /* 0x0a8 */
	le64 i_igen;                    /* 0x0b0 inode generation (handles) */
	le32 i_flags;                   /* 0x0b8 enum vmfs_inode_flags */
	uint8_t i_height;               /* 0x0bc map height (0 for inline) */
	uint8_t i_pad0[3];              /* 0x0bd */
	le64 i_orphan_next;             /* 0x0c0 next inode on the orphan list, 0 = end */
	le64 i_parent;                  /* 0x0c8 directory holding it (fsck hint; exact for dirs) */
	le64 i_dir_count;               /* 0x0d0 directories: entries; else 0 */
	le64 i_crypt_mark;              /* 0x0d8 a deep rekey under way (i_crypt key 1 live): the */
					/*       file's 4 KiB units below it are under key 1; else 0 */
	le64 i_crypt_run;               /* 0x0e0 sb_rekey_run when a deep rekey last renewed i_crypt */
	le64 i_rdev;                    /* 0x0e8 character and block devices: major << 32 | minor; else 0 */
	uint8_t i_pad1[0x100 - 0xf0];
	uint8_t i_crypt[128];           /* 0x100 per-file key material (encrypt/) */
	uint8_t i_snap[64];             /* 0x180 struct vmfs_snap_disk: snapshot catalog links */
	char i_snapname[256];           /* 0x1c0 a snapshot's name, NUL-padded; zero in other inodes */
	uint8_t i_reserved[0x7f0 - 0x2c0];
	uint8_t i_root[VMFS_INLINE_MAX];/* 0x7f0 le64 ptr[256], inline data or a directory leaf */
	uint8_t i_reserved2[0xFFC - 0xFF0];
	le32 i_crc;                     /* 0xffc */
};
static_assert(sizeof(struct vmfs_inode_disk) == 4096, "");
static_assert(__builtin_offsetof(struct vmfs_inode_disk, i_root) == 0x7f0, "");

/*
 * Snapshot catalog links, in i_snap (docs/FORMAT.md, "Snapshots"). A file's
 * snapshots are hidden inodes on a list that starts at the file (sn_head,
 * newest first) and goes on through sn_next; sn_parent makes them a tree.
 */
struct vmfs_snap_disk {
	le64 sn_head;                   /* 0x00 file: its newest snapshot, 0 = none */
	le64 sn_next;                   /* 0x08 snapshot: the next older snapshot of the same file */
	le64 sn_parent;                 /* 0x10 file: the snapshot it was last taken as or reverted to; */
					/*      snapshot: the one it descends from; 0 = none */
	le64 sn_file;                   /* 0x18 snapshot: its file; file: 0 */
	le64 sn_id;                     /* 0x20 snapshot: number within its file (from 1); file: the next one */
	le32 sn_count;                  /* 0x28 file: snapshots on its list */
	le32 sn_reserved0;              /* 0x2c */
	uint8_t sn_reserved[16];        /* 0x30 */
};
static_assert(sizeof(struct vmfs_snap_disk) == 64, "");
#define VMFS_SNAP_NAME_MAX 255u
#define VMFS_SNAP_MAX 65000u            /* snapshots of one file */

/*
 * Directory tree node (and the inline leaf in i_root). Items are sorted by key;
 * a leaf item is {key, ino, type, namelen, name}, an interior item {key, child, 0, 0}
 * where child covers keys >= key. Keys are cookies: (hash60 << 4 | seq), never < 16.
 */
struct vmfs_dirhdr_disk {
	le16 dh_count;                  /* items */
	le16 dh_used;                   /* bytes of items after this header */
	uint8_t dh_level;               /* 0 = leaf */
	uint8_t dh_pad[3];
};
static_assert(sizeof(struct vmfs_dirhdr_disk) == 8, "");
struct vmfs_dirent_disk {
	le64 de_key;
	le64 de_val;                    /* leaf: inode number; interior: child unit address */
	uint8_t de_type;                /* DT_* for leaves */
	uint8_t de_namelen;
	char de_name[];                 /* not NUL-terminated */
} __attribute__((packed));
static_assert(sizeof(struct vmfs_dirent_disk) == 18, "");

struct vmfs_dirnode_disk {
	struct vmfs_mhdr dn_hdr;        /* 0x000 magic VMDR, owner = directory inode */
	struct vmfs_dirhdr_disk dn_dh;  /* 0x030 */
	uint8_t dn_items[0xFFC - 0x38]; /* 0x038 */
	le32 dn_crc;
};
static_assert(sizeof(struct vmfs_dirnode_disk) == 4096, "");
#define VMFS_DIRNODE_SPACE (0xFFC - 0x38)
#define VMFS_DIRINLINE_SPACE (VMFS_INLINE_MAX - sizeof(struct vmfs_dirhdr_disk))

/*
 * Host table: host_slots records of slot_size bytes (512, or the sector size if
 * larger), each written only by the host holding the slot, with one sector write.
 */
struct vmfs_hostrec_disk {
	le32 hr_magic;                  /* 0x00 VMHT */
	le16 hr_version;                /* 0x04 */
	le16 hr_pad;                    /* 0x06 */
	le64 hr_slot;                   /* 0x08 */
	uint8_t hr_uuid[16];            /* 0x10 datastore UUID */
	le64 hr_journal;                /* 0x20 unit address of the journal extent, 0 = none */
	le64 hr_journal_units;          /* 0x28 */
	le64 hr_gen;                    /* 0x30 */
	le32 hr_key_epoch;              /* 0x38 encrypted: the datastore key epoch this host holds (0: none said) */
	uint8_t hr_reserved[0x1fc - 0x3c];
	le32 hr_crc;                    /* 0x1fc crc32c of bytes [0, 0x1fc) */
};
static_assert(sizeof(struct vmfs_hostrec_disk) == 512, "");

/*
 * Journal extent (per host): unit 0 journal superblock, unit 1 host state (a
 * normal journaled block: orphan list), units 2.. the circular log. A transaction
 * is a descriptor, the block images it lists, then a commit block.
 */
#define VMFS_JOURNAL_LOG_START 2u
#define VMFS_JOURNAL_MIN (4ull << 20) /* bytes: a log that holds the largest transaction twice */
enum vmfs_jsb_flags { VMFS_JSB_CLEAN = 1u << 0 };
struct vmfs_jsb_disk {
	struct vmfs_mhdr js_hdr;        /* 0x000 magic VMJS, owner = slot */
	le64 js_units;                  /* 0x030 size of the extent */
	le64 js_tail_seq;               /* 0x038 sequence of the oldest live transaction */
	le64 js_tail_pos;               /* 0x040 its position in the log (units from log start) */
	le32 js_flags;                  /* 0x048 enum vmfs_jsb_flags */
	uint8_t js_reserved[0xFFC - 0x4c];
	le32 js_crc;
};
static_assert(sizeof(struct vmfs_jsb_disk) == 4096, "");

struct vmfs_hstate_disk {
	struct vmfs_mhdr hs_hdr;        /* 0x000 magic VMHS, owner = slot */
	le64 hs_orphan_head;            /* 0x030 first orphan inode, 0 = none */
	uint8_t hs_reserved[0xFFC - 0x38];
	le32 hs_crc;
};
static_assert(sizeof(struct vmfs_hstate_disk) == 4096, "");

#define VMFS_JDESC_MAX 480u
struct vmfs_jdesc_disk {
	struct vmfs_mhdr jd_hdr;        /* 0x000 magic VMJD, mh_gen = sequence, owner = slot */
	le64 jd_seq;                    /* 0x030 */
	le32 jd_count;                  /* 0x038 block images that follow */
	le32 jd_pad;                    /* 0x03c */
	le64 jd_addr[VMFS_JDESC_MAX];   /* 0x040 home address of each image */
	uint8_t jd_reserved[0xFFC - 0xF40];
	le32 jd_crc;
};
static_assert(sizeof(struct vmfs_jdesc_disk) == 4096, "");

struct vmfs_jcommit_disk {
	struct vmfs_mhdr jc_hdr;        /* 0x000 magic VMJC, mh_gen = sequence, owner = slot */
	le64 jc_seq;                    /* 0x030 */
	le32 jc_count;                  /* 0x038 */
	le32 jc_data_crc;               /* 0x03c crc32c over the descriptor and every image, in order */
	uint8_t jc_reserved[0xFFC - 0x40];
	le32 jc_crc;
};
static_assert(sizeof(struct vmfs_jcommit_disk) == 4096, "");

#endif
