/*
 * libFuzzer harness: inodes (inode_read, inode_to_stat and every path that
 * follows an inode: the map walk, inline data, symlink targets, directory
 * roots). Input: a mode byte (bit 0: recompute the crc), an index choosing one
 * of the image's inodes, then bytes laid over that inode's unit.
 */
#include "tests/fuzz/fuzz_common.h"

const enum fz_image_kind fz_harness_kind = FZ_IMAGE_CLEAN;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fz_meta *m;

	if (size < 2)
		return 0;
	m = fz_layout_pick(&fz_h.lay, VMFS_MAGIC_INODE, NULL, data[1]);
	if (m && fz_overlay_unit(m->unit, 0, data + 2, size - 2, data[0] & 1) == 0)
		fz_harness_run(m->unit);
	else
		fz_patch_undo(fz_h.img.fd);
	return 0;
}
