/*
 * Writes the seed corpus of every harness (tests/fuzz/corpus/NAME/) from a
 * freshly built seed image: each seed is a harness input that lays a block's own
 * bytes back over it, one per kind of block the harness can reach, so fuzzing
 * starts from valid structures instead of noise. Usage: fuzz-mkseeds DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_common.h"

static const char *top;

static int save(const char *harness, const char *name, uint8_t mode, uint8_t idx, const void *bytes,
		size_t len)
{
	char path[512];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", top, harness);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", top, harness, name);
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	ok = fputc(mode, f) != EOF && (!strcmp(harness, "superblock") || fputc(idx, f) != EOF) &&
	     fwrite(bytes, 1, len, f) == len;
	ok &= fclose(f) == 0;
	return ok ? 0 : -EIO;
}

static int read_at(int fd, uint64_t off, void *buf, size_t len)
{
	return pread(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static size_t count(const struct fz_layout *l, uint32_t magic, bool (*pred)(const struct fz_meta *))
{
	size_t n = 0;
	for (size_t i = 0; i < l->nmeta; i++)
		n += l->meta[i].magic == magic && (!pred || pred(&l->meta[i]));
	return n;
}

/* One seed per (type, layout) of inode: the harness index is the inode's rank among inodes. */
static int inode_seeds(int fd, const struct fz_layout *l)
{
	uint32_t seen[16];
	size_t nseen = 0, n = count(l, VMFS_MAGIC_INODE, NULL);
	uint8_t u[VMFS_UNIT];
	char name[64];
	int ret = 0;

	for (size_t i = 0; i < n && i < 256 && !ret; i++) {
		uint64_t unit = fz_layout_pick(l, VMFS_MAGIC_INODE, NULL, (unsigned)i)->unit;
		uint32_t kind = 0;
		bool dup = false;

		for (size_t j = 0; j < l->nmeta; j++)
			if (l->meta[j].unit == unit)
				kind = (l->meta[j].mode & 0170000) | (l->meta[j].flags & VMFS_IF_LAYOUT);
		for (size_t j = 0; j < nseen; j++)
			dup |= seen[j] == kind;
		if (dup || nseen == base_array_size(seen))
			continue;
		seen[nseen++] = kind;
		snprintf(name, sizeof(name), "inode-%03zu", i);
		ret = read_at(fd, unit * VMFS_UNIT, u, sizeof(u));
		if (!ret)
			ret = save("inode", name, 1, (uint8_t)i, u, sizeof(u));
	}
	return ret;
}

static int unit_seeds(int fd, const struct fz_layout *l, const char *harness, uint32_t magic,
		      bool (*pred)(const struct fz_meta *), uint8_t mode, size_t at, size_t len, size_t max)
{
	size_t n = base_min(count(l, magic, pred), max);
	uint8_t u[VMFS_UNIT];
	char name[64];
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		uint64_t unit = fz_layout_pick(l, magic, pred, (unsigned)i)->unit;
		snprintf(name, sizeof(name), "%s-%u-%02zu", harness, mode, i);
		ret = read_at(fd, unit * VMFS_UNIT, u, sizeof(u));
		if (!ret)
			ret = save(harness, name, mode, (uint8_t)i, u + at, len);
	}
	return ret;
}

static int journal_seeds(int fd, const struct fz_layout *l)
{
	uint64_t j = l->journal_unit, logu = l->journal_units - VMFS_JOURNAL_LOG_START, tail;
	uint8_t rec[sizeof(struct vmfs_hostrec_disk)], *buf = malloc(16 * VMFS_UNIT);
	struct vmfs_jsb_disk js;
	char name[64];
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = read_at(fd, l->hostrec_off, rec, sizeof(rec));
	if (!ret)
		ret = save("journal", "hostrec", 1, 255, rec, sizeof(rec));
	for (unsigned u = 0; u < 2 && !ret; u++) {
		ret = read_at(fd, (j + u) * VMFS_UNIT, buf, VMFS_UNIT);
		snprintf(name, sizeof(name), "unit-%u", u);
		if (!ret)
			ret = save("journal", name, 1, (uint8_t)u, buf, VMFS_UNIT);
	}
	if (!ret)
		ret = read_at(fd, j * VMFS_UNIT, &js, sizeof(js));
	tail = le64_to_cpu(js.js_tail_pos);
	for (unsigned t = 0, pos = 0; !ret && t < 8; t++) {
		struct vmfs_jdesc_disk *jd = (void *)buf;
		uint32_t n;

		ret = read_at(fd, (j + VMFS_JOURNAL_LOG_START + (tail + pos) % logu) * VMFS_UNIT, buf, VMFS_UNIT);
		if (ret || le32_to_cpu(jd->jd_hdr.mh_magic) != VMFS_MAGIC_JDESC)
			break;
		n = le32_to_cpu(jd->jd_count);
		if (n + 2 > 16 || pos + VMFS_JOURNAL_LOG_START > 254)
			break; /* the harness lays up to 16 units from a start byte below 255 */
		for (uint32_t i = 0; i < n + 2 && !ret; i++)
			ret = read_at(fd, (j + VMFS_JOURNAL_LOG_START + (tail + pos + i) % logu) * VMFS_UNIT,
				      buf + i * VMFS_UNIT, VMFS_UNIT);
		snprintf(name, sizeof(name), "txn-%u", t);
		if (!ret)
			ret = save("journal", name, 3, (uint8_t)(pos + VMFS_JOURNAL_LOG_START), buf,
				   (n + 2) * VMFS_UNIT);
		pos += n + 2;
	}
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	static struct fz_layout lay;
	struct fz_image img;
	uint8_t u[VMFS_UNIT];
	char err[256] = "";
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-mkseeds DIR\n");
		return 2;
	}
	top = argv[1];
	mkdir(top, 0755);
	ret = fz_image_build(FZ_IMAGE_CLEAN, NULL, &img, err, sizeof(err));
	if (!ret)
		ret = fz_layout_scan(img.fd, &lay);
	if (!ret)
		ret = read_at(img.fd, 0, u, sizeof(u));
	if (!ret)
		ret = save("superblock", "sb-sealed", 1, 0, u, sizeof(u));
	if (!ret)
		ret = save("superblock", "sb-both", 3, 0, u, sizeof(u));
	if (!ret)
		ret = inode_seeds(img.fd, &lay);
	if (!ret)
		ret = unit_seeds(img.fd, &lay, "dir", VMFS_MAGIC_DIR, NULL, 1, 0, VMFS_UNIT, 8);
	if (!ret)
		ret = unit_seeds(img.fd, &lay, "dir", VMFS_MAGIC_INODE, fz_is_inline_dir, 3,
				 offsetof(struct vmfs_inode_disk, i_root), VMFS_INLINE_MAX, 4);
	if (!ret)
		ret = unit_seeds(img.fd, &lay, "bmap", VMFS_MAGIC_PTR, NULL, 1, 0, VMFS_UNIT, 8);
	if (!ret)
		ret = unit_seeds(img.fd, &lay, "bmap", VMFS_MAGIC_INODE, fz_is_mapped_file, 3,
				 offsetof(struct vmfs_inode_disk, i_root), VMFS_INLINE_MAX, 8);
	if (!ret) {
		fz_image_release(&img);
		ret = fz_image_build(FZ_IMAGE_CRASHED, NULL, &img, err, sizeof(err));
		if (!ret)
			ret = fz_layout_scan(img.fd, &lay);
		if (!ret)
			ret = journal_seeds(img.fd, &lay);
	}
	fz_image_release(&img);
	if (ret) {
		fprintf(stderr, "fuzz-mkseeds: %s\n", err[0] ? err : strerror(-ret));
		return 1;
	}
	return 0;
}
