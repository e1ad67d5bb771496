/*
 * libFuzzer harness: vm.conf (vmm/config.c), which vmm reads from the
 * datastore, where any host may have written it. Input: the file's bytes. A
 * text that is refused must say why; one that parses must format (within
 * vm.conf's 64 KiB limit) and parse back to the very same configuration.
 * Needs no image, so it does not use fuzz_harness.c.
 */
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The same configuration: a repeated key leaves old bytes past a string's NUL, so no memcmp. */
static bool same(const struct vmm_conf *a, const struct vmm_conf *b)
{
	unsigned i;

	if (strcmp(a->name, b->name) || a->mem_mib != b->mem_mib || a->cpus != b->cpus ||
	    strcmp(a->kernel, b->kernel) || strcmp(a->initrd, b->initrd) || strcmp(a->cmdline, b->cmdline) ||
	    a->ndisks != b->ndisks || a->rng != b->rng || a->balloon != b->balloon || strcmp(a->ctl, b->ctl))
		return false;
	for (i = 0; i < a->ndisks; i++)
		if (strcmp(a->disks[i].file, b->disks[i].file) || a->disks[i].readonly != b->disks[i].readonly)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[65536];
	static struct vmm_conf c, again;
	char err[256] = "";
	int len;

	if (vmm_conf_parse(&c, (const char *)data, size, err, sizeof(err))) {
		if (!err[0])
			abort();	/* refused without a reason */
		return 0;
	}
	len = vmm_conf_format(&c, text, sizeof(text));
	if (len < 0)
		abort();
	if (vmm_conf_parse(&again, text, (size_t)len, err, sizeof(err)) || !same(&c, &again))
		abort();		/* what vmm writes, it must read back */
	return 0;
}
