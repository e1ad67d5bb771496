/*
 * libFuzzer harness: the block map (bmap_get, bmap_next: reads, SEEK_DATA,
 * SEEK_HOLE). Input: a mode byte (bit 0: recompute the crc; bit 1: fuzz the
 * 256 root pointers in the i_root of a mapped file instead of a pointer block;
 * bit 2 with bit 1: the next byte is the map height), an index choosing the
 * block or the file, then the bytes.
 */
#include "tests/fuzz/fuzz_common.h"

const enum fz_image_kind fz_harness_kind = FZ_IMAGE_CLEAN;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fz_meta *m;
	bool seal, root;
	int ret;

	if (size < 2)
		return 0;
	seal = data[0] & 1;
	root = data[0] & 2;
	if (!root) {
		m = fz_layout_pick(&fz_h.lay, VMFS_MAGIC_PTR, NULL, data[1]);
		ret = m ? fz_overlay_unit(m->unit, 0, data + 2, size - 2, seal) : -ENOENT;
	} else {
		size_t skip = 2;
		m = fz_layout_pick(&fz_h.lay, VMFS_MAGIC_INODE, fz_is_mapped_file, data[1]);
		ret = m ? 0 : -ENOENT;
		if (!ret && (data[0] & 4) && size > 2) {
			ret = fz_overlay_unit(m->unit, offsetof(struct vmfs_inode_disk, i_height), data + 2, 1, seal);
			skip = 3;
		}
		if (!ret)
			ret = fz_overlay_unit(m->unit, offsetof(struct vmfs_inode_disk, i_root), data + skip,
					      base_min(size - skip, (size_t)VMFS_INLINE_MAX), seal);
	}
	if (!ret)
		fz_harness_run(root ? m->unit : m->owner);
	else
		fz_patch_undo(fz_h.img.fd);
	return 0;
}
