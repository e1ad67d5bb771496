/*
 * libFuzzer harness: the superblock checks of vmfs_open. Input: a mode byte
 * (bit 0: recompute the crc, so the geometry checks are reached; bit 1: write
 * the same bytes over the backup copy too), then bytes laid over unit 0 of a
 * populated datastore. Whatever opens is walked read-only.
 */
#include "tests/fuzz/fuzz_common.h"

const enum fz_image_kind fz_harness_kind = FZ_IMAGE_CLEAN;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool seal;

	if (size < 1)
		return 0;
	seal = data[0] & 1;
	if (fz_overlay_unit(0, 0, data + 1, size - 1, seal) == 0 &&
	    (!(data[0] & 2) || fz_overlay_unit(VMFS_SB_BACKUP_OFF / VMFS_UNIT, 0, data + 1, size - 1, seal) == 0))
		fz_harness_run(0);
	else
		fz_patch_undo(fz_h.img.fd);
	return 0;
}
