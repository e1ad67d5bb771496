/*
 * A read-only qcow2 reader for vmfsctl import (tools/vmfsctl_qcow2.c): the
 * guest bytes of a qcow2 image (version 2 or 3) and of its backing chain, and
 * a map of where they are data and where zero, so that an import keeps holes.
 * A qcow2 file is untrusted input: every offset in it is checked before use, a
 * damaged or hostile image gives a one-line error, and memory and time stay
 * bounded (tables are read on demand through a cache of at most a few MiB).
 */
#ifndef VMFS_TOOLS_VMFSCTL_QCOW2_H
#define VMFS_TOOLS_VMFSCTL_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Files in a chain at most: the image and 15 backing files. */
#define QCOW2_MAX_CHAIN 16
/* The largest virtual size accepted: 1 PiB. */
#define QCOW2_MAX_SIZE (UINT64_C(1) << 50)

/* An open image and its backing chain. */
struct qcow2;

/* True when the len bytes at head begin with the qcow2 magic "QFI\xfb". */
bool qcow2_probe(const void *head, size_t len);

/*
 * Opens the qcow2 image on fd (a regular file or a block device, read with
 * pread only: its file offset is not moved) and its backing chain. path names
 * the image in messages and resolves a relative backing file name (relative
 * to the image's directory, as qemu does). Backing files, raw or qcow2 (their
 * header extension says which, else their magic), are opened read-only by this
 * function and closed by qcow2_close(); a chain is at most QCOW2_MAX_CHAIN
 * files, and one that comes back to a file already in it is refused.
 *
 * Supported: versions 2 and 3, cluster_bits 9..21, standard, zero and
 * compressed clusters (deflate, zstd), the dirty bit (only refcounts may be
 * stale, and nothing here reads them). Refused: encryption, an external data
 * file, extended L2 entries, the corrupt bit, unknown incompatible features,
 * and any structure that does not fit the file or overlaps another.
 *
 * Returns 0 and the object in *out, or a negative errno and one line in err
 * (errlen bytes, always NUL-terminated when errlen > 0): -EINVAL not qcow2 or
 * not a file, -ENOTSUP a feature not supported, -EUCLEAN a damaged structure,
 * -EFBIG an absurd size, -ELOOP a backing loop or a chain too long, -ENOENT
 * and other open errors for a backing file, -EIO and the like for reads,
 * -ENOMEM. fd is borrowed: the caller keeps it open until qcow2_close() and
 * closes it after. Blocks on file reads; not thread-safe (one caller at a time
 * per object).
 */
int qcow2_open(int fd, const char *path, struct qcow2 **out, char *err, size_t errlen);

/* The image's virtual size in bytes (a multiple of 512, at most QCOW2_MAX_SIZE). */
uint64_t qcow2_size(const struct qcow2 *q);

/* The number of files in the chain: 1 for an image without a backing file. */
unsigned qcow2_chain_length(const struct qcow2 *q);

/*
 * Reads len guest bytes at off (off + len <= qcow2_size()) into buf.
 * Unallocated clusters read from the backing file, and as zeros past its end
 * or without one. Returns 0, or a negative errno and one line in err: -EINVAL
 * past the end, -EUCLEAN a damaged table entry or compressed cluster met on
 * the way (the image stays open: other ranges may still read), -EIO etc.
 */
int qcow2_read(struct qcow2 *q, void *buf, size_t len, uint64_t off, char *err, size_t errlen);

/*
 * From off (< qcow2_size()): the length *len (at least 1 byte, at most to the
 * end of the image) of a run that is all data (*data true: allocated in the
 * image or in a backing file) or all zero (*data false: zero clusters,
 * clusters unallocated in every file of the chain, bytes past the end of a
 * shorter backing file: such a run reads as zeros). A run need not be the
 * longest one: each call does a bounded amount of work, so a caller loops to
 * the end. A data run may still read as zeros. Returns 0, or a negative errno
 * and one line in err as qcow2_read() does.
 */
int qcow2_map(struct qcow2 *q, uint64_t off, uint64_t *len, bool *data, char *err, size_t errlen);

/* Closes the backing files it opened and frees q (not the caller's fd); NULL is a no-op. */
void qcow2_close(struct qcow2 *q);

#endif
