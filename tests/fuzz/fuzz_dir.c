/*
 * libFuzzer harness: directory nodes (decode, dir_iterate, dir_lookup). Input:
 * a mode byte (bit 0: recompute the crc; bit 1: fuzz the inline leaf in the
 * i_root of a small directory's inode instead of a tree node), an index
 * choosing the node or the directory, then the bytes: over the whole node
 * block, or over i_root for an inline leaf.
 */
#include "tests/fuzz/fuzz_common.h"

const enum fz_image_kind fz_harness_kind = FZ_IMAGE_CLEAN;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fz_meta *m;
	bool inl;
	int ret;

	if (size < 2)
		return 0;
	inl = data[0] & 2;
	m = inl ? fz_layout_pick(&fz_h.lay, VMFS_MAGIC_INODE, fz_is_inline_dir, data[1])
		: fz_layout_pick(&fz_h.lay, VMFS_MAGIC_DIR, NULL, data[1]);
	ret = m ? fz_overlay_unit(m->unit, inl ? offsetof(struct vmfs_inode_disk, i_root) : 0, data + 2,
				  base_min(size - 2, inl ? (size_t)VMFS_INLINE_MAX : (size_t)VMFS_UNIT), data[0] & 1)
		: -ENOENT;
	if (!ret)
		fz_harness_run(inl ? m->unit : m->owner);
	else
		fz_patch_undo(fz_h.img.fd);
	return 0;
}
