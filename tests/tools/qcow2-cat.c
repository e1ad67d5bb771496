/*
 * qcow2-cat: the qcow2 reader of vmfsctl import (tools/vmfsctl_qcow2.c) from
 * the command line, for tests/e2e/qcow2.sh, which holds its output against
 * qemu-img's.
 *
 *   qcow2-cat IMAGE          the guest bytes, to stdout
 *   qcow2-cat --map IMAGE    one line per run, adjacent runs of a kind merged:
 *                            "OFFSET LENGTH data|zero" (decimal bytes)
 *   qcow2-cat --info IMAGE   "size BYTES chain FILES"
 *
 * Exit 0 on success, 1 on any failure with one line on stderr that says why.
 */
#include "tools/vmfsctl_qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cat(struct qcow2 *q, char *err, size_t errlen)
{
	uint64_t size = qcow2_size(q), off, n;
	char *buf = malloc(CHUNK);
	int ret = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (off = 0; off < size && !ret; off += n) {
		n = size - off < CHUNK ? size - off : CHUNK;
		ret = qcow2_read(q, buf, n, off, err, errlen);
		if (!ret) {
			ret = write_all(STDOUT_FILENO, buf, n);
			if (ret)
				snprintf(err, errlen, "stdout: %s", strerror(-ret));
		}
	}
	free(buf);
	return ret;
}

static int map(struct qcow2 *q, char *err, size_t errlen)
{
	uint64_t size = qcow2_size(q), off, len, start = 0;
	bool data, kind = false;
	int ret;

	for (off = 0; off < size; off += len) {
		ret = qcow2_map(q, off, &len, &data, err, errlen);
		if (ret)
			return ret;
		if (!len || len > size - off) {
			snprintf(err, errlen, "map at %" PRIu64 ": run of %" PRIu64 " bytes", off, len);
			return -EPROTO;
		}
		if (off && data != kind) {
			printf("%" PRIu64 " %" PRIu64 " %s\n", start, off - start, kind ? "data" : "zero");
			start = off;
		}
		kind = data;
	}
	if (size)
		printf("%" PRIu64 " %" PRIu64 " %s\n", start, size - start, kind ? "data" : "zero");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc == 3 ? argv[1] : "", *path = argv[argc - 1];
	char err[512] = "";
	struct qcow2 *q;
	int fd, ret;

	if ((argc != 2 && argc != 3) || (argc == 3 && strcmp(mode, "--map") && strcmp(mode, "--info"))) {
		fprintf(stderr, "usage: qcow2-cat [--map|--info] IMAGE\n");
		return 1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "qcow2-cat: %s: %s\n", path, strerror(errno));
		return 1;
	}
	ret = qcow2_open(fd, path, &q, err, sizeof(err));
	if (!ret) {
		if (!strcmp(mode, "--info"))
			printf("size %" PRIu64 " chain %u\n", qcow2_size(q), qcow2_chain_length(q));
		else if (!strcmp(mode, "--map"))
			ret = map(q, err, sizeof(err));
		else
			ret = cat(q, err, sizeof(err));
		qcow2_close(q);
	}
	close(fd);
	if (!ret && fflush(stdout)) {
		snprintf(err, sizeof(err), "stdout: %s", strerror(errno));
		ret = -EIO;
	}
	if (ret) {
		fprintf(stderr, "qcow2-cat: %s\n", err);
		return 1;
	}
	return 0;
}
