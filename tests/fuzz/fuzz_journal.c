/*
 * libFuzzer harness: journal replay (journal_open: host record, journal
 * superblock, the scan of the log, the read-only overlay of the images) on a
 * datastore copied before its journal was checkpointed, then the walk over the
 * replayed state. Input: a mode byte (bit 0: recompute each unit's crc; bit 1:
 * then also make every transaction's commit block agree with its descriptor and
 * images, so the images are applied), a start byte (255: slot 0's host record;
 * 0: the journal superblock; 1: the host state block; k >= 2: log position
 * tail + k - 2, where replay starts), then consecutive units of bytes laid over
 * the image from there (the log wraps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_common.h"

#define MAX_UNITS 16u
#define MAX_TXNS 32u

static uint64_t tail; /* the seed image's log tail: where replay starts */

const enum fz_image_kind fz_harness_kind = FZ_IMAGE_CRASHED;

void fz_harness_ready(void)
{
	struct vmfs_jsb_disk js;

	if (!fz_h.lay.journal_unit) {
		fprintf(stderr, "fuzz: the seed image has no journal\n");
		exit(1);
	}
	if (pread(fz_h.img.fd, &js, sizeof(js), (off_t)(fz_h.lay.journal_unit * VMFS_UNIT)) != sizeof(js)) {
		fprintf(stderr, "fuzz: cannot read the journal superblock\n");
		exit(1);
	}
	tail = le64_to_cpu(js.js_tail_pos);
}

static int read_unit(uint64_t unit, void *buf)
{
	return pread(fz_h.img.fd, buf, VMFS_UNIT, (off_t)(unit * VMFS_UNIT)) == VMFS_UNIT ? 0 : -EIO;
}

/* What a writer would have put in each commit block after the (fuzzed) descriptor and images. */
static int fix_commits(void)
{
	uint64_t j = fz_h.lay.journal_unit, logu = fz_h.lay.journal_units - VMFS_JOURNAL_LOG_START;
	static uint8_t blk[VMFS_UNIT];
	struct vmfs_jsb_disk js;
	uint64_t pos;

	if (read_unit(j, &js))
		return -EIO;
	pos = le64_to_cpu(js.js_tail_pos) % logu;
	for (unsigned t = 0; t < MAX_TXNS; t++) {
		struct vmfs_jdesc_disk *jd = (void *)blk;
		struct vmfs_jcommit_disk *jc = (void *)blk;
		uint64_t seq;
		uint32_t n, crc;

		if (read_unit(j + VMFS_JOURNAL_LOG_START + pos, blk) ||
		    le32_to_cpu(jd->jd_hdr.mh_magic) != VMFS_MAGIC_JDESC)
			break;
		n = le32_to_cpu(jd->jd_count);
		seq = le64_to_cpu(jd->jd_seq);
		if (n == 0 || n > VMFS_JDESC_MAX || n + 2 > logu)
			break;
		crc = base_crc32c(0, blk, VMFS_UNIT);
		for (uint32_t i = 0; i < n; i++) {
			if (read_unit(j + VMFS_JOURNAL_LOG_START + (pos + 1 + i) % logu, blk))
				return -EIO;
			crc = base_crc32c(crc, blk, VMFS_UNIT);
		}
		if (read_unit(j + VMFS_JOURNAL_LOG_START + (pos + 1 + n) % logu, blk) ||
		    le32_to_cpu(jc->jc_hdr.mh_magic) != VMFS_MAGIC_JCOMMIT)
			break;
		jc->jc_seq = cpu_to_le64(seq);
		jc->jc_count = cpu_to_le32(n);
		jc->jc_data_crc = cpu_to_le32(crc);
		fz_seal_unit(blk);
		if (fz_patch(fz_h.img.fd, (j + VMFS_JOURNAL_LOG_START + (pos + 1 + n) % logu) * VMFS_UNIT, blk,
			     VMFS_UNIT))
			return -EIO;
		pos = (pos + n + 2) % logu;
	}
	return 0;
}

static int overlay_hostrec(const uint8_t *data, size_t len, bool seal)
{
	uint8_t rec[sizeof(struct vmfs_hostrec_disk)];

	if (pread(fz_h.img.fd, rec, sizeof(rec), (off_t)fz_h.lay.hostrec_off) != sizeof(rec))
		return -EIO;
	memcpy(rec, data, base_min(len, sizeof(rec)));
	if (seal)
		fz_seal_hostrec(rec);
	return fz_patch(fz_h.img.fd, fz_h.lay.hostrec_off, rec, sizeof(rec));
}

/* Unit k of the input's numbering (see the top of the file). */
static uint64_t unit_of(uint64_t k)
{
	uint64_t logu = fz_h.lay.journal_units - VMFS_JOURNAL_LOG_START;

	if (k < VMFS_JOURNAL_LOG_START)
		return fz_h.lay.journal_unit + k;
	return fz_h.lay.journal_unit + VMFS_JOURNAL_LOG_START + (tail + k - VMFS_JOURNAL_LOG_START) % logu;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool seal;
	int ret = 0;

	if (size < 2)
		return 0;
	seal = data[0] & 1;
	if (data[1] == 255) {
		ret = overlay_hostrec(data + 2, size - 2, seal);
	} else {
		for (size_t off = 2, u = 0; off < size && u < MAX_UNITS && !ret; off += VMFS_UNIT, u++)
			ret = fz_overlay_unit(unit_of(data[1] + u), 0, data + off, size - off, seal);
	}
	if (!ret && (data[0] & 2))
		ret = fix_commits();
	if (!ret)
		fz_harness_run(0);
	else
		fz_patch_undo(fz_h.img.fd);
	return 0;
}
