/*
 * Writes the seed corpus of fuzz_vmstate (tests/fuzz/corpus/vmstate/): small
 * vm.state files of the VM of vmstate_seed.h (1 MiB of memory, 1 or 2 vCPUs),
 * written by vmm's own writer, with a few runs of pages that are not zero.
 * The same bytes every time (fixed time, host and page contents). Usage:
 * fuzz-mkseeds-vmstate DIR (make fuzz-seeds).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/vmstate_seed.h"

struct seed {
	const char *name;
	uint32_t ncpus;
	unsigned npages;
	uint32_t pages[8];        /* the pages that are not zero */
};

static const struct seed seeds[] = {
	{ "cpu1-two-runs", 1, 3, { 0, 5, 6 } },
	{ "cpu2-three-runs", 2, 4, { 0, 1, 100, VMSTATE_SEED_MEM / VMSTATE_SEED_PAGE - 1 } },
	{ "cpu2-no-ram", 2, 0, { 0 } },
	{ "cpu1-single-pages", 1, 5, { 2, 4, 8, 16, 32 } },
};

static int fd_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	int fd = *(const int *)ctx;

	return pwrite(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static int write_seed(const char *dir, const struct seed *sd, uint8_t *mem)
{
	struct vmm_state_io io = { .write = fd_write };
	struct vmm_state_writer w;
	struct vmm_state_id id;
	char path[512];
	int fd, ret;

	memset(mem, 0, VMSTATE_SEED_MEM);
	for (unsigned i = 0; i < sd->npages; i++)
		vmstate_seed_fill(VMM_ST_RAM, sd->pages[i], mem + (size_t)sd->pages[i] * VMSTATE_SEED_PAGE,
				  VMSTATE_SEED_PAGE);
	snprintf(path, sizeof(path), "%s/%s", dir, sd->name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	io.ctx = &fd;
	vmstate_seed_id(&id, sd->ncpus);
	ret = vmstate_seed_write(&w, &io, &id, mem);
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

int main(int argc, char **argv)
{
	static uint8_t mem[VMSTATE_SEED_MEM];
	int ret = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-mkseeds-vmstate DIR\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]) && !ret; i++) {
		ret = write_seed(argv[1], &seeds[i], mem);
		if (ret)
			fprintf(stderr, "fuzz-mkseeds-vmstate: %s/%s: %s\n", argv[1], seeds[i].name, strerror(-ret));
	}
	return ret ? 1 : 0;
}
