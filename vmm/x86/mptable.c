/*
 * The Intel MultiProcessor table (MP spec 1.4, chapter 4), so a kernel without
 * ACPI finds the CPUs, the IOAPIC and the interrupt routing (Linux reads it in
 * arch/x86/kernel/mpparse.c). The floating pointer sits at 0xF0000, in the
 * BIOS area the e820 map reserves, with the configuration table right after
 * it: one processor entry per vCPU (LAPIC ID = vCPU index, vCPU 0 the boot
 * processor), the PCI bus (ID 0: Linux takes the ID as the PCI bus number)
 * and an ISA bus (ID 1), the IOAPIC (ID = number of vCPUs) at
 * 0xFEC00000, ISA IRQs 0..15 on IOAPIC pins 0..15 (KVM's default routing:
 * GSI n is pin n), INTA# of each PCI slot on its pin (level, active high; see
 * vmm_pci_add), and LINT0 as ExtINT, LINT1 as NMI. Both checksums make their
 * structure's bytes sum to zero.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "vmm/devices/pci.h"
#include "vmm/kvm.h"
#include "vmm/x86/x86.h"

#define MP_FLOAT_ADDR 0xf0000ull
#define MP_FLOAT_LEN 16
#define MP_CONFIG_ADDR (MP_FLOAT_ADDR + MP_FLOAT_LEN)
#define MP_CONFIG_HDR 44
#define MP_AREA_END 0x100000ull
#define LAPIC_ADDR 0xfee00000u
#define IOAPIC_ADDR 0xfec00000u
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11

enum mp_entry { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum mp_irq_type { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_IRQ_CONFORMS 0x0000		/* polarity and trigger of the bus */
#define MP_IRQ_LEVEL_HIGH 0x000d	/* active high (01), level (11 << 2) */
/* Linux takes a PCI bus's MP bus ID as its PCI bus number
 * (IO_APIC_get_PCI_irq_vector compares them), so the PCI bus must be ID 0. */
#define BUS_PCI 0
#define BUS_ISA 1

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

/* One 8-byte I/O or local interrupt entry. */
static uint8_t *intsrc(uint8_t *e, uint8_t entry, uint8_t type, uint16_t flags, uint8_t bus, uint8_t bus_irq,
		       uint8_t dst, uint8_t dst_pin)
{
	e[0] = entry;
	e[1] = type;
	e[2] = (uint8_t)flags;
	e[3] = (uint8_t)(flags >> 8);
	e[4] = bus;
	e[5] = bus_irq;
	e[6] = dst;
	e[7] = dst_pin;
	return e + 8;
}

int vmm_x86_mptable(struct vmm_vm *vm, char *err, size_t errlen)
{
	size_t max = 20 * vm->ncpus + 2 * 8 + 8 + 16 * 8 + vm->pci.ndev * 8 + 2 * 8;
	uint8_t *mpf = vmm_gpa(vm, MP_FLOAT_ADDR, MP_FLOAT_LEN), *hdr, *e;
	uint8_t ioapic_id = (uint8_t)vm->ncpus;
	uint32_t v32;
	unsigned i, n = 0;

	hdr = vmm_gpa(vm, MP_CONFIG_ADDR, MP_CONFIG_HDR + max);
	if (!mpf || !hdr || MP_CONFIG_ADDR + MP_CONFIG_HDR + max > MP_AREA_END) {
		snprintf(err, errlen, "no room for the MP table at 0x%llx", (unsigned long long)MP_FLOAT_ADDR);
		return -E2BIG;
	}
	memset(hdr, 0, MP_CONFIG_HDR + max);
	e = hdr + MP_CONFIG_HDR;

	for (i = 0; i < vm->ncpus; i++, n++) {
		e[0] = MP_PROCESSOR;
		e[1] = (uint8_t)i;			/* LAPIC ID */
		e[2] = APIC_VERSION;
		e[3] = (uint8_t)(1 | (i == 0 ? 2 : 0));	/* enabled, boot processor */
		v32 = cpu_to_le32(0x600);		/* signature: family 6 */
		memcpy(e + 4, &v32, 4);
		v32 = cpu_to_le32(0x201);		/* features: FPU, APIC */
		memcpy(e + 8, &v32, 4);
		e += 20;
	}
	e[0] = MP_BUS, e[1] = BUS_ISA, memcpy(e + 2, "ISA   ", 6), e += 8, n++;
	e[0] = MP_BUS, e[1] = BUS_PCI, memcpy(e + 2, "PCI   ", 6), e += 8, n++;
	e[0] = MP_IOAPIC;
	e[1] = ioapic_id;
	e[2] = IOAPIC_VERSION;
	e[3] = 1;					/* usable */
	v32 = cpu_to_le32(IOAPIC_ADDR);
	memcpy(e + 4, &v32, 4);
	e += 8, n++;
	for (i = 0; i < 16; i++, n++)
		e = intsrc(e, MP_INTSRC, MP_INT, MP_IRQ_CONFORMS, BUS_ISA, (uint8_t)i, ioapic_id, (uint8_t)i);
	/* PCI source IRQ: slot in bits 2..6, INTA# (0) in bits 0..1. */
	for (i = 0; i < vm->pci.ndev; i++, n++)
		e = intsrc(e, MP_INTSRC, MP_INT, MP_IRQ_LEVEL_HIGH, BUS_PCI, (uint8_t)(vm->pci.dev[i]->slot << 2),
			   ioapic_id, vm->pci.dev[i]->gsi);
	e = intsrc(e, MP_LINTSRC, MP_EXTINT, MP_IRQ_CONFORMS, BUS_ISA, 0, 0xff, 0), n++;
	e = intsrc(e, MP_LINTSRC, MP_NMI, MP_IRQ_CONFORMS, BUS_ISA, 0, 0xff, 1), n++;

	memcpy(hdr, "PCMP", 4);
	hdr[4] = (uint8_t)(e - hdr);			/* base table length */
	hdr[5] = (uint8_t)((e - hdr) >> 8);
	hdr[6] = 4;					/* spec revision 1.4 */
	memcpy(hdr + 8, "VMFS    ", 8);		/* OEM ID */
	memcpy(hdr + 16, "VMM         ", 12);	/* product ID */
	hdr[34] = (uint8_t)n;				/* entry count */
	hdr[35] = (uint8_t)(n >> 8);
	v32 = cpu_to_le32(LAPIC_ADDR);
	memcpy(hdr + 36, &v32, 4);
	hdr[7] = checksum(hdr, (size_t)(e - hdr));

	memset(mpf, 0, MP_FLOAT_LEN);
	memcpy(mpf, "_MP_", 4);
	v32 = cpu_to_le32((uint32_t)MP_CONFIG_ADDR);
	memcpy(mpf + 4, &v32, 4);
	mpf[8] = 1;					/* length in 16-byte units */
	mpf[9] = 4;					/* spec revision 1.4 */
	/* feature bytes 0: the configuration table is present, no IMCR */
	mpf[10] = checksum(mpf, MP_FLOAT_LEN);
	return 0;
}
