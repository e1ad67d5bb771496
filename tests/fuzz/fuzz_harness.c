/*
 * What every libFuzzer harness shares (see fuzz_common.h): LLVMFuzzerInitialize
 * builds and scans the seed image the harness asks for, fz_overlay_unit lays
 * fuzzed bytes over a unit through the patch log, and fz_harness_run walks the
 * result and puts the image back, so each input starts from the same image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_common.h"

struct fz_harness fz_h = { .img = { .fd = -1 } };

__attribute__((weak)) void fz_harness_ready(void)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256] = "";
	int ret;

	(void)argc;
	(void)argv;
	setenv("VMFS_IO_ENGINE", "sync", 0); /* the parsers are under test, not the engines */
	ret = fz_image_build(fz_harness_kind, NULL, &fz_h.img, err, sizeof(err));
	if (!ret)
		ret = fz_layout_scan(fz_h.img.fd, &fz_h.lay);
	if (ret) {
		fprintf(stderr, "fuzz: %s\n", err[0] ? err : strerror(-ret));
		exit(1);
	}
	fz_harness_ready();
	return 0;
}

int fz_overlay_unit(uint64_t unit, size_t at, const uint8_t *data, size_t len, bool seal)
{
	uint8_t u[VMFS_UNIT];

	if (at >= VMFS_UNIT)
		return -EINVAL;
	if (pread(fz_h.img.fd, u, VMFS_UNIT, (off_t)(unit * VMFS_UNIT)) != VMFS_UNIT)
		return -EIO;
	memcpy(u + at, data, base_min(len, VMFS_UNIT - at));
	if (seal)
		fz_seal_unit(u);
	return fz_patch(fz_h.img.fd, unit * VMFS_UNIT, u, VMFS_UNIT);
}

void fz_harness_run(uint64_t focus)
{
	struct fz_walk_stats st;

	fz_walk(fz_h.img.path, &FZ_WALK_FUZZ(focus), &st);
	fz_patch_undo(fz_h.img.fd);
}
