/*
 * Shared by the fuzz harnesses, the seed maker and the flip driver: a small
 * seed datastore built through libvmfs (inline, small, large, sparse and
 * preallocated files, symlinks, a nested tree and a directory of 320 entries in
 * B+tree form), a scan that finds its metadata blocks by their headers, a patch
 * log that puts overwritten bytes back after each input, and a read-only walk
 * that drives every read path of the public API over whatever the image holds.
 *
 * The image is deterministic apart from timestamps and inode generations: fixed
 * UUID, fixed name-hash seed, same calls in the same order, so the blocks a seed
 * was cut from sit at the same addresses in the image the harness rebuilds.
 */
#ifndef VMFS_FUZZ_COMMON_H
#define VMFS_FUZZ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs_format.h"

#define FZ_IMAGE_SIZE (64ull << 20)
#define FZ_BLOCK_SIZE (64u << 10)
#define FZ_MAX_META 4096

enum fz_image_kind {
	FZ_IMAGE_CLEAN,         /* populated, then closed: the journal is clean */
	FZ_IMAGE_CRASHED,       /* then more changes, copied before the close: replay has work */
};

/* An open image: the fd and the path libvmfs opens it by. */
struct fz_image {
	int fd;
	char path[64];
};

/*
 * Builds the seed datastore. dir NULL: in a memfd, opened through
 * /proc/self/fd; else in a file under dir. Returns 0 or -errno; err gets a line.
 */
int fz_image_build(enum fz_image_kind kind, const char *dir, struct fz_image *img, char *err, size_t errlen);
void fz_image_release(struct fz_image *img);
/* Copies src into a new file at path (sparse: holes stay holes). Returns 0 or -errno. */
int fz_copy_file(int src, const char *path);

/* A metadata block found in the image: a unit whose header names it. */
struct fz_meta {
	uint64_t unit;
	uint32_t magic;
	uint32_t mode;          /* inodes: i_mode */
	uint32_t flags;         /* inodes: i_flags; pointer blocks and directory nodes: level */
	uint64_t owner;         /* mh_owner: for pointer blocks and directory nodes, their inode */
};

struct fz_layout {
	struct vmfs_sb_disk sb;
	struct fz_meta meta[FZ_MAX_META];
	size_t nmeta;
	uint64_t hostrec_off;   /* byte offset of slot 0's host record */
	uint64_t journal_unit, journal_units;
};

/* Reads the superblock and finds every metadata block with a valid header. */
int fz_layout_scan(int fd, struct fz_layout *l);
/* The i-th block (wrapping) of the given magic that pred accepts, or NULL when there is none. */
const struct fz_meta *fz_layout_pick(const struct fz_layout *l, uint32_t magic,
				     bool (*pred)(const struct fz_meta *), unsigned i);

/* crc32c of a 4 KiB metadata block (or a 512-byte host record) into its last 4 bytes. */
void fz_seal_unit(uint8_t *unit);
void fz_seal_hostrec(uint8_t *rec);

/*
 * Writes len bytes at off of fd, keeping what was there so fz_patch_undo() can
 * put it back (in reverse order). Returns 0 or -errno.
 */
int fz_patch(int fd, uint64_t off, const void *buf, size_t len);
void fz_patch_undo(int fd);

struct fz_walk_opts {
	uint64_t focus;         /* an inode to visit first, as if a directory named it; 0: none */
	unsigned max_depth;     /* directories below the root to descend into */
	unsigned names_per_dir; /* names of one directory that are looked up and visited (all in focus) */
	uint32_t file_bytes;    /* read from the start of each file */
	bool readwrite;         /* open read-write (standalone), as a mount does; else read-only */
	bool whole;             /* also read every data extent of each file, to its end */
};
/* Everything, as the flip test walks; and the cheaper walk the harnesses use around a focus. */
#define FZ_WALK_FULL ((struct fz_walk_opts){ .max_depth = 24, .names_per_dir = 20000, .file_bytes = 1u << 20 })
/* A repaired image (flip -P): opened as a mount opens it, every byte of every file read. */
#define FZ_WALK_REPAIRED ((struct fz_walk_opts){ .max_depth = 24, .names_per_dir = 20000, .file_bytes = 1u << 20, \
						 .readwrite = true, .whole = true })
#define FZ_WALK_FUZZ(ino) ((struct fz_walk_opts){ .focus = (ino), .max_depth = 1, .names_per_dir = 16, \
						  .file_bytes = 256u << 10 })

struct fz_walk_stats {
	int open_ret;           /* 0, or vmfs_open's error */
	unsigned dirs, entries, files, links, errors;
	uint64_t bytes;
};

/*
 * Opens path (read-only unless o->readwrite) and walks it: info and statfs, every directory in
 * readdir batches (as FUSE does), lookup and getattr of every name, bounded reads
 * of every file, SEEK_DATA/SEEK_HOLE, readlink, a few path resolutions. Errors
 * are counted, never fatal. Returns 0 when it opened, else the open error.
 */
int fz_walk(const char *path, const struct fz_walk_opts *o, struct fz_walk_stats *st);

/* Predicates for fz_layout_pick: directories whose leaf is inline; files with a block map. */
bool fz_is_inline_dir(const struct fz_meta *m);
bool fz_is_mapped_file(const struct fz_meta *m);

/*
 * For the libFuzzer harnesses (fuzz_harness.c, linked into each): one seed
 * image per process, of the kind the harness names in fz_harness_kind, scanned
 * once; fz_harness_ready() (optional) runs after that. LLVMFuzzerInitialize()
 * exits on failure: there is nothing to fuzz without an image.
 */
struct fz_harness {
	struct fz_image img;
	struct fz_layout lay;
};
extern struct fz_harness fz_h;
extern const enum fz_image_kind fz_harness_kind;
void fz_harness_ready(void);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Copies len bytes of data over unit at byte at (clipped to the unit), seals it if asked, patches. */
int fz_overlay_unit(uint64_t unit, size_t at, const uint8_t *data, size_t len, bool seal);
/* Runs the walk (FZ_WALK_FUZZ(focus)) over the patched image, then puts the image back. */
void fz_harness_run(uint64_t focus);

#endif
