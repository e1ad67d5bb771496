/*
 * libFuzzer harness: vm.state (vmm/vmstate.c), which vmm run reads back to
 * resume a suspended VM and which any host may have written or a disk
 * damaged. Input: the file's bytes. They are parsed for the seeds' VM
 * (vmstate_seed.h) with 1 and with 2 vCPUs, into its 1 MiB of memory and
 * again without memory (through the parser's own buffer), then for no VM at
 * all (check only). A refusal must say why; with and without memory the
 * answer must be the same; a file that parses for a VM must parse for none;
 * what parses must hold every section a resume needs, and its header must
 * peek the same. A file that is refused is tried again with its checksums
 * made right, so that mutations reach what lies behind them; one that parses
 * must have had them right already. Needs no image, so it does not use
 * fuzz_harness.c.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "tests/fuzz/vmstate_seed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *data;
	size_t size;
};

static int input_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct input *in = ctx;

	if (off > in->size || len > in->size - off)
		return -ENODATA;
	memcpy(buf, in->data + off, len);
	return 0;
}

/* st holds every section a resume of its VM needs, and only the header's VM and time. */
static void check_parsed(const struct vmm_state_io *io, const struct vmm_state *st)
{
	static struct vmstate_seed_sec s[VMSTATE_SEED_SECS(VMM_MAX_CPUS)];
	struct vmm_state peek;
	char err[256] = "";
	unsigned n;
	size_t len;

	if (st->id.ncpus > VMM_MAX_CPUS || st->ram_bytes > st->id.mem_size)
		abort();
	n = vmstate_seed_sections(s, st->id.ncpus);
	for (unsigned i = 0; i < n; i++)
		if (s[i].required && (!vmm_state_find(st, s[i].tag, s[i].index, &len) || !len))
			abort();	/* parsed without a section a resume needs */
	if (vmm_state_peek(io, &peek, err, sizeof(err)) || memcmp(&peek.id, &st->id, sizeof(peek.id)) ||
	    peek.created_ns != st->created_ns || peek.ram_bytes != st->ram_bytes || strcmp(peek.host, st->host))
		abort();
}

/* A refusal says why. */
static int said(int ret, const char *err)
{
	if (ret && !err[0])
		abort();
	return ret;
}

/* Parses the file every way; returns whether it parsed for any of them. */
static bool run(const uint8_t *data, size_t size)
{
	static uint8_t mem[VMSTATE_SEED_MEM];
	struct input in = { data, size };
	struct vmm_state_io io = { .ctx = &in, .size = size, .read = input_read };
	struct vmm_state_id id;
	struct vmm_state st;
	char err[256], err2[256];
	int ret, ret2;
	bool parsed = false;

	for (uint32_t ncpus = 1; ncpus <= 2; ncpus++) {
		vmstate_seed_id(&id, ncpus);
		err[0] = err2[0] = 0;
		ret = said(vmm_state_parse(&io, &id, mem, &st, err, sizeof(err)), err);
		ret2 = said(vmm_state_parse(&io, &id, NULL, NULL, err2, sizeof(err2)), err2);
		if (ret != ret2 || strcmp(err, err2))
			abort();	/* memory or not, the same bytes get the same answer */
		if (ret)
			continue;
		if (st.id.ncpus != ncpus || st.id.mem_size != VMSTATE_SEED_MEM)
			abort();
		check_parsed(&io, &st);
		vmm_state_free(&st);
		parsed = true;
	}
	err[0] = 0;
	ret = said(vmm_state_parse(&io, NULL, NULL, &st, err, sizeof(err)), err);
	if (parsed && ret)
		abort();	/* fits the VM, but not no VM at all */
	if (!ret) {
		check_parsed(&io, &st);
		vmm_state_free(&st);
	}
	return parsed || !ret;
}

/*
 * data with every checksum made right (the header's in its last 4 bytes,
 * each section head's crc32c of its payload at 16 and of its first 20 bytes
 * at 20, vmm/vmstate.h), so that mutations get past them to what they guard.
 */
static void reseal(uint8_t *data, size_t size)
{
	uint64_t off = VMM_STATE_HEADER, len;
	uint32_t crc;

	while (size >= 24 && off <= size - 24) {
		memcpy(&len, data + off + 8, 8);
		if (len > size - off - 24)
			break;
		crc = base_crc32c(0, data + off + 24, len);
		memcpy(data + off + 16, &crc, 4);
		crc = base_crc32c(0, data + off, 20);
		memcpy(data + off + 20, &crc, 4);
		off += 24 + len;
	}
	if (size >= VMM_STATE_HEADER) {
		crc = base_crc32c(0, data, VMM_STATE_HEADER - 4);
		memcpy(data + VMM_STATE_HEADER - 4, &crc, 4);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	bool parsed;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	reseal(copy, size);
	parsed = run(data, size);
	if (parsed && memcmp(copy, data, size))
		abort();	/* parsed with a checksum that is wrong */
	if (!parsed)
		run(copy, size);
	free(copy);
	return 0;
}
