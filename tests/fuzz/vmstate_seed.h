/*
 * The VM whose vm.state files the tests write (vmm/vmstate.h): its identity,
 * the sections such a VM has (each with its length, and whether a resume
 * needs it), the bytes each one holds and a whole file written through vmm's
 * own writer. fuzz_vmstate.c expects this VM and mkseeds_vmstate.c writes its
 * seeds for it; the unit tests (tests/unit/test_vmm.c) write theirs from the
 * same table, so what a resume needs is said once for all of them.
 */
#ifndef TESTS_FUZZ_VMSTATE_SEED_H
#define TESTS_FUZZ_VMSTATE_SEED_H

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/vmstate.h"

#define VMSTATE_SEED_MEM (1u << 20)               /* the seeds' guest memory */
#define VMSTATE_SEED_NS 1700000000123456789ll     /* their created_ns */
#define VMSTATE_SEED_HOST "seed-host"
#define VMSTATE_SEED_PAGE 4096u
/* How many sections vmstate_seed_sections gives for ncpus vCPUs, at most. */
#define VMSTATE_SEED_SECS(ncpus) ((ncpus) * VMM_ST_CPU_LAST + 11)

struct vmstate_seed_sec {
	uint32_t tag, index;
	size_t len;
	bool required;            /* a resume needs it: a file without it is refused */
};

/* The VM: 1 MiB of memory, ncpus vCPUs, two disks and a RNG. */
static inline void vmstate_seed_id(struct vmm_state_id *id, uint32_t ncpus)
{
	static const uint8_t uuid[16] = { 0x76, 0x6d, 0x73, 0x74, 0x61, 0x74, 0x65, 1, 2, 3, 4, 5, 6, 7, 8, 9 };

	memset(id, 0, sizeof(*id));
	memcpy(id->uuid, uuid, sizeof(uuid));
	id->dir_ino = 4711;
	id->dir_gen = 3;
	id->mem_size = VMSTATE_SEED_MEM;
	id->ncpus = ncpus;
	id->ndisks = 2;
	id->devices = VMM_STATE_DEV_RNG;
	for (unsigned i = 0; i < id->ndisks; i++) {
		id->disk_ino[i] = 100 + i;
		id->disk_gen[i] = 7 + i;
		id->disk_size[i] = (64ull << 20) << i;
	}
}

/*
 * Every section of that VM with ncpus vCPUs into s (VMSTATE_SEED_SECS(ncpus)
 * of them at most), in the order vmm writes them: each vCPU's, the VM's, the
 * devices' (the PCI bus, and a virtio device in slot 1). Returns how many.
 */
static inline unsigned vmstate_seed_sections(struct vmstate_seed_sec *s, uint32_t ncpus)
{
	static const struct vmstate_seed_sec cpu[] = {
		{ VMM_ST_MPSTATE, 0, sizeof(struct kvm_mp_state), true },
		{ VMM_ST_REGS, 0, sizeof(struct kvm_regs), true },
		{ VMM_ST_SREGS, 0, sizeof(struct kvm_sregs), true },
		{ VMM_ST_XSAVE, 0, sizeof(struct kvm_xsave), true },
		{ VMM_ST_XCRS, 0, sizeof(struct kvm_xcrs), true },
		{ VMM_ST_DEBUGREGS, 0, sizeof(struct kvm_debugregs), true },
		{ VMM_ST_LAPIC, 0, sizeof(struct kvm_lapic_state), true },
		{ VMM_ST_MSRS, 0, 5 * sizeof(struct kvm_msr_entry), true },
		{ VMM_ST_EVENTS, 0, sizeof(struct kvm_vcpu_events), true },
		{ VMM_ST_CPUID, 0, 3 * sizeof(struct kvm_cpuid_entry2), true },
		{ VMM_ST_TSC_KHZ, 0, 8, true },
	};
	static const struct vmstate_seed_sec vm[] = {
		{ VMM_ST_IRQCHIP, 0, sizeof(struct kvm_irqchip), true },
		{ VMM_ST_IRQCHIP, 1, sizeof(struct kvm_irqchip), true },
		{ VMM_ST_IRQCHIP, 2, sizeof(struct kvm_irqchip), true },
		{ VMM_ST_PIT, 0, sizeof(struct kvm_pit_state2), true },
		{ VMM_ST_CLOCK, 0, sizeof(struct kvm_clock_data), true },
		{ VMM_ST_SERIAL, 0, 12, true },
		{ VMM_ST_RTC, 0, 130, true },
		{ VMM_ST_PM, 0, 10, true },
		{ VMM_ST_PCI, 0, 28, true },
		{ VMM_ST_PCI, 1, 300, false },
		{ VMM_ST_VIRTIO, 1, 211, false },
	};
	_Static_assert(sizeof(cpu) / sizeof(cpu[0]) == VMM_ST_CPU_LAST, "every per-vCPU tag");
	_Static_assert(sizeof(vm) / sizeof(vm[0]) == 11, "VMSTATE_SEED_SECS");
	unsigned n = 0;

	for (uint32_t c = 0; c < ncpus; c++)
		for (unsigned i = 0; i < sizeof(cpu) / sizeof(cpu[0]); i++) {
			s[n] = cpu[i];
			s[n++].index = c;
		}
	for (unsigned i = 0; i < sizeof(vm) / sizeof(vm[0]); i++)
		s[n++] = vm[i];
	return n;
}

/* The bytes section (tag, index) holds (for RAM, index: the page), different for each. */
static inline void vmstate_seed_fill(uint32_t tag, uint32_t index, uint8_t *buf, size_t len)
{
	uint32_t v = tag * 2654435761u ^ index * 40503u ^ 0x5eed;

	for (size_t i = 0; i < len; i++) {
		v = v * 1103515245u + 12345u;
		buf[i] = (uint8_t)(v >> 16);
	}
}

/* Puts section s with its bytes. Returns 0 or -errno. */
static inline int vmstate_seed_put(struct vmm_state_writer *w, const struct vmstate_seed_sec *s)
{
	static uint8_t buf[2 * VMM_STATE_DEV_MAX];

	if (s->len > sizeof(buf))
		return -EINVAL;
	vmstate_seed_fill(s->tag, s->index, buf, s->len);
	return vmm_state_put(w, s->tag, s->index, buf, s->len);
}

/*
 * A whole file through io: every section of vmstate_seed_sections for
 * id->ncpus, the RAM of mem (id->mem_size bytes), the header of id, written
 * at VMSTATE_SEED_NS by VMSTATE_SEED_HOST. w is left as the writer ended.
 */
static inline int vmstate_seed_write(struct vmm_state_writer *w, const struct vmm_state_io *io,
				     const struct vmm_state_id *id, const uint8_t *mem)
{
	struct vmstate_seed_sec s[VMSTATE_SEED_SECS(VMM_MAX_CPUS)];
	unsigned n = vmstate_seed_sections(s, id->ncpus);
	int ret = 0;

	vmm_state_write_begin(w, io);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = vmstate_seed_put(w, &s[i]);
	if (!ret)
		ret = vmm_state_put_ram(w, mem, id->mem_size);
	if (!ret)
		ret = vmm_state_write_end(w, id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST);
	return ret;
}

#endif
