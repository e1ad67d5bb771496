/*
 * ACPI tables (ACPI 6.0), so a kernel with ACPI finds the CPUs, the IOAPIC,
 * the PCI root bridge with its INTx routing, and a way to power off: the RSDP
 * at 0xE0000 (in the BIOS area the e820 map reserves, where Linux scans for
 * it), then the XSDT and the RSDT (both list the FADT and the MADT), the
 * FADT, the FACS, the MADT and the DSDT. The MADT describes exactly what the
 * MP table does (x86/mptable.c): one enabled LAPIC per vCPU (ID = index), the
 * IOAPIC (ID = number of vCPUs) at 0xFEC00000 with GSI base 0 and ISA IRQ n
 * on GSI n. The DSDT holds \_S5 (SLP_TYP 5) and \_SB.PCI0, a PNP0A03 root
 * bridge for bus 0 whose _PRT puts each slot's INTA# on the GSI vmm_pci_add
 * gave it. The FADT's PM1a blocks and its RESET_REG are ports of
 * devices/acpi_pm.c. Every table's checksum makes its bytes sum to zero.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/pci.h"
#include "vmm/kvm.h"
#include "vmm/x86/x86.h"

#define ACPI_BASE 0xe0000ull
#define ACPI_END 0xf0000ull	/* the MP table starts here */
#define ACPI_AREA (ACPI_END - ACPI_BASE)
#define IOAPIC_ADDR 0xfec00000u
#define LAPIC_ADDR 0xfee00000u


#define HDR_LEN 36
#define RSDP_LEN 36
#define FADT_LEN 276
#define FACS_LEN 64

/* FADT (ACPI 6.0, table 5-33) offsets and flags */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_P_LVL2_LAT 96
#define FADT_P_LVL3_LAT 98
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR 131
#define FADT_X_DSDT 140
#define FADT_HYPERVISOR_ID 268
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4)	/* no fixed-feature power button */
#define FADT_SLP_BUTTON (1u << 5)	/* no fixed-feature sleep button */
#define FADT_RESET_REG_SUP (1u << 10)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)	/* and no 8042 (bit 1 clear) */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* MADT (ACPI 6.0, 5.2.12) */
#define MADT_PCAT_COMPAT 1u
enum madt_type { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4 };
#define MPS_INTI_LEVEL_HIGH 0x000d	/* active high (01), level (11 << 2) */

/* AML opcodes (ACPI 6.0, 20.3) */
enum {
	AML_ZERO = 0x00, AML_ONE = 0x01, AML_NAME = 0x08, AML_BYTE = 0x0a, AML_WORD = 0x0b, AML_DWORD = 0x0c,
	AML_QWORD = 0x0e, AML_SCOPE = 0x10, AML_BUFFER = 0x11, AML_PACKAGE = 0x12, AML_EXT = 0x5b,
	AML_DEVICE = 0x82, AML_ROOT = 0x5c,
};

static void put16(uint8_t *p, uint16_t v) { v = cpu_to_le16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = cpu_to_le32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = cpu_to_le64(v); memcpy(p, &v, 8); }

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

/* The 36-byte header every table but the RSDP and the FACS opens with; the checksum comes last. */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "VMFS  ", 6);		/* OEM ID */
	memcpy(t + 16, "VMM     ", 8);		/* OEM table ID */
	put32(t + 24, 1);			/* OEM revision */
	memcpy(t + 28, "VMFS", 4);		/* creator ID */
	put32(t + 32, 1);			/* creator revision */
}

static void finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = checksum(t, len);
}

/* A generic address structure (12 bytes) in system I/O space. */
static void gas_io(uint8_t *g, uint16_t port, uint8_t bits, uint8_t access)
{
	memset(g, 0, 12);
	g[0] = GAS_SYSTEM_IO;
	g[1] = bits;
	g[3] = access;
	put64(g + 4, port);
}

/*
 * A small AML writer. Package-shaped terms (Scope, Device, Package, Buffer)
 * open with aml_open, which notes where the body starts, and end with
 * aml_close, which inserts the PkgLength (1 to 3 bytes, the shortest that
 * fits) in front of the body. Running out of room sets full; the caller
 * checks it once at the end.
 */
struct aml {
	uint8_t *p;
	size_t len, cap;
	bool full;
};

static void aml_bytes(struct aml *a, const void *src, size_t n)
{
	if (a->full || n > a->cap - a->len) {
		a->full = true;
		return;
	}
	memcpy(a->p + a->len, src, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[8];

	if (v <= 1) {
		aml_byte(a, v ? AML_ONE : AML_ZERO);
		return;
	}
	put64(b, v);
	if (v <= 0xff)
		aml_byte(a, AML_BYTE), aml_bytes(a, b, 1);
	else if (v <= 0xffff)
		aml_byte(a, AML_WORD), aml_bytes(a, b, 2);
	else if (v <= 0xffffffffu)
		aml_byte(a, AML_DWORD), aml_bytes(a, b, 4);
	else
		aml_byte(a, AML_QWORD), aml_bytes(a, b, 8);
}

/* Name(NAME, ...): the caller writes the object after it. name is a 4-character NameSeg. */
static void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, name, 4);
}

static size_t aml_open(struct aml *a)
{
	return a->len;
}

static void aml_close(struct aml *a, size_t start)
{
	size_t body = a->len - start, total;
	uint8_t pl[3];
	unsigned n;

	if (a->full)
		return;
	/* PkgLength counts its own bytes: one byte up to 63, then 4 + 8 bits, then 4 + 16 bits. */
	if (body + 1 <= 0x3f) {
		n = 1;
		pl[0] = (uint8_t)(body + 1);
	} else if (body + 2 <= 0xfff) {
		n = 2;
		total = body + 2;
		pl[0] = (uint8_t)(0x40 | (total & 0xf));
		pl[1] = (uint8_t)(total >> 4);
	} else {
		n = 3;
		total = body + 3;
		pl[0] = (uint8_t)(0x80 | (total & 0xf));
		pl[1] = (uint8_t)(total >> 4);
		pl[2] = (uint8_t)(total >> 12);
	}
	if (n > a->cap - a->len) {
		a->full = true;
		return;
	}
	memmove(a->p + start + n, a->p + start, body);
	memcpy(a->p + start, pl, n);
	a->len += n;
}

/* Word address space descriptor (ACPI 6.0, 6.4.3.5.3): a producer's fixed range min..max. */
static void res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max)
{
	uint8_t d[16] = { 0x88, 13, 0, type, 0x0c /* min, max fixed; producer */, type_flags };

	put16(d + 8, min);
	put16(d + 10, max);
	put16(d + 14, (uint16_t)(max - min + 1));
	aml_bytes(a, d, sizeof(d));
}

/* The DSDT's body: \_S5 and the PCI root bridge. */
static void dsdt_body(struct aml *a, struct vmm_vm *vm)
{
	uint8_t mem[26] = { 0x87, 23, 0, 0 /* memory */, 0x0c, 0x01 /* read-write, non-cacheable */ };
	size_t scope, dev, crs, prt, pkg;
	unsigned i;

	/* Name(\_S5, Package() { SLP_TYPa, SLP_TYPb, 0, 0 }) */
	aml_name(a, "_S5_");
	aml_byte(a, AML_PACKAGE);
	pkg = aml_open(a);
	aml_byte(a, 4);
	aml_int(a, VMM_PM_SLP_TYP_S5);
	aml_int(a, VMM_PM_SLP_TYP_S5);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a, pkg);

	aml_byte(a, AML_SCOPE);
	scope = aml_open(a);
	aml_byte(a, AML_ROOT);
	aml_bytes(a, "_SB_", 4);
	aml_byte(a, AML_EXT);
	aml_byte(a, AML_DEVICE);
	dev = aml_open(a);
	aml_bytes(a, "PCI0", 4);
	aml_name(a, "_HID");
	aml_int(a, 0x030ad041);			/* EisaId("PNP0A03"), a PCI host bridge */
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_BBN");
	aml_int(a, 0);

	/* _CRS: bus 0, the I/O ports around 0xCF8..0xCFF, the BARs' window up to the IOAPIC. */
	aml_name(a, "_CRS");
	aml_byte(a, AML_BUFFER);
	crs = aml_open(a);
	aml_int(a, 3 * 16 + sizeof(mem) + 2);
	res_word(a, 2, 0, 0, 0);			/* bus numbers */
	res_word(a, 1, 3, 0x0000, 0x0cf7);		/* I/O, ISA and non-ISA ranges */
	res_word(a, 1, 3, 0x0d00, 0xffff);
	put32(mem + 10, VMM_PCI_MMIO_BASE);
	put32(mem + 14, IOAPIC_ADDR - 1);
	put32(mem + 22, IOAPIC_ADDR - VMM_PCI_MMIO_BASE);
	aml_bytes(a, mem, sizeof(mem));
	aml_byte(a, 0x79);				/* end tag */
	aml_byte(a, 0);
	aml_close(a, crs);

	/* _PRT: Package() { Package() { slot << 16 | 0xFFFF, 0 (INTA#), 0 (a GSI, no link), GSI }, ... } */
	aml_name(a, "_PRT");
	aml_byte(a, AML_PACKAGE);
	prt = aml_open(a);
	aml_byte(a, (uint8_t)vm->pci.ndev);
	for (i = 0; i < vm->pci.ndev; i++) {
		aml_byte(a, AML_PACKAGE);
		pkg = aml_open(a);
		aml_byte(a, 4);
		aml_int(a, (uint64_t)vm->pci.dev[i]->slot << 16 | 0xffff);
		aml_int(a, 0);
		aml_int(a, 0);
		aml_int(a, vm->pci.dev[i]->gsi);
		aml_close(a, pkg);
	}
	aml_close(a, prt);
	aml_close(a, dev);
	aml_close(a, scope);
}

static uint32_t madt(uint8_t *t, struct vmm_vm *vm)
{
	uint8_t *e = t + 44;
	unsigned i;

	put32(t + 36, LAPIC_ADDR);
	put32(t + 40, MADT_PCAT_COMPAT);		/* there are 8259 PICs (KVM's) */
	for (i = 0; i < vm->ncpus; i++, e += 8) {
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;			/* ACPI processor UID */
		e[3] = (uint8_t)i;			/* APIC ID */
		put32(e + 4, 1);			/* enabled */
	}
	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = (uint8_t)vm->ncpus;			/* IOAPIC ID, as in the MP table */
	e[3] = 0;
	put32(e + 4, IOAPIC_ADDR);
	put32(e + 8, 0);				/* GSI base */
	e += 12;
	/* The SCI: ISA IRQ 9 on GSI 9, level, active high (nothing raises it). */
	e[0] = MADT_ISO;
	e[1] = 10;
	e[2] = 0;					/* bus: ISA */
	e[3] = VMM_PM_SCI_IRQ;
	put32(e + 4, VMM_PM_SCI_IRQ);
	put16(e + 8, MPS_INTI_LEVEL_HIGH);
	e += 10;
	/* LINT1 of every processor is the NMI, as in the MP table. */
	e[0] = MADT_LAPIC_NMI;
	e[1] = 6;
	e[2] = 0xff;					/* all processors */
	put16(e + 3, 0);
	e[5] = 1;					/* LINT1 */
	e += 6;
	return (uint32_t)(e - t);
}

static void fadt(uint8_t *t, uint32_t facs, uint32_t dsdt)
{
	put32(t + FADT_FIRMWARE_CTRL, facs);
	put32(t + FADT_DSDT, dsdt);
	put16(t + FADT_SCI_INT, VMM_PM_SCI_IRQ);
	/* SMI_CMD 0: no ACPI mode transition, the machine is always in ACPI mode. */
	put32(t + FADT_PM1A_EVT_BLK, VMM_PM1A_EVT);
	put32(t + FADT_PM1A_CNT_BLK, VMM_PM1A_CNT);
	t[FADT_PM1_EVT_LEN] = 4;
	t[FADT_PM1_CNT_LEN] = 2;
	put16(t + FADT_P_LVL2_LAT, 101);		/* > 100: no C2 */
	put16(t + FADT_P_LVL3_LAT, 1001);		/* > 1000: no C3 */
	t[FADT_CENTURY] = 0x32;				/* the CMOS century byte (devices/rtc.c) */
	put16(t + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_VGA_NOT_PRESENT);
	put32(t + FADT_FLAGS, FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP);
	gas_io(t + FADT_RESET_REG, VMM_PM_RESET_PORT, 8, GAS_ACCESS_BYTE);
	t[FADT_RESET_VALUE] = VMM_PM_RESET_VALUE;
	t[FADT_MINOR] = 0;
	put64(t + FADT_X_DSDT, dsdt);
	memcpy(t + FADT_HYPERVISOR_ID, "VMFS-VMM", 8);
}

int vmm_x86_acpi(struct vmm_vm *vm, char *err, size_t errlen)
{
	uint8_t *area = vmm_gpa(vm, ACPI_BASE, ACPI_AREA), *rsdp, *t;
	/* Offsets from ACPI_BASE; the MADT and the DSDT vary in size and come last. */
	const uint32_t o_rsdp = 0, o_facs = 0x40, o_xsdt = 0x80, o_rsdt = 0xc0, o_fadt = 0x100, o_madt = 0x240;
	uint32_t madt_len, o_dsdt;
	struct aml a;

	if (!area) {
		snprintf(err, errlen, "no room for the ACPI tables at 0x%llx", (unsigned long long)ACPI_BASE);
		return -E2BIG;
	}
	memset(area, 0, ACPI_AREA);

	t = area + o_madt;
	madt_len = madt(t, vm);
	header(t, "APIC", madt_len, 4);
	finish(t, madt_len);
	o_dsdt = (o_madt + madt_len + 15) & ~15u;

	t = area + o_dsdt;
	a = (struct aml){ .p = t + HDR_LEN, .cap = ACPI_AREA - o_dsdt - HDR_LEN };
	dsdt_body(&a, vm);
	if (a.full) {
		snprintf(err, errlen, "the DSDT does not fit below 0x%llx", (unsigned long long)ACPI_END);
		return -E2BIG;
	}
	header(t, "DSDT", (uint32_t)(HDR_LEN + a.len), 2);
	finish(t, (uint32_t)(HDR_LEN + a.len));

	t = area + o_facs;
	memcpy(t, "FACS", 4);
	put32(t + 4, FACS_LEN);
	t[32] = 2;					/* version; no global lock, no waking vector */

	t = area + o_fadt;
	fadt(t, (uint32_t)(ACPI_BASE + o_facs), (uint32_t)(ACPI_BASE + o_dsdt));
	header(t, "FACP", FADT_LEN, 6);
	finish(t, FADT_LEN);

	t = area + o_xsdt;
	put64(t + HDR_LEN, ACPI_BASE + o_fadt);
	put64(t + HDR_LEN + 8, ACPI_BASE + o_madt);
	header(t, "XSDT", HDR_LEN + 16, 1);
	finish(t, HDR_LEN + 16);

	t = area + o_rsdt;
	put32(t + HDR_LEN, (uint32_t)(ACPI_BASE + o_fadt));
	put32(t + HDR_LEN + 4, (uint32_t)(ACPI_BASE + o_madt));
	header(t, "RSDT", HDR_LEN + 8, 1);
	finish(t, HDR_LEN + 8);

	/* RSDP (ACPI 6.0, 5.2.5.3): the first checksum covers 20 bytes, the extended one all 36. */
	rsdp = area + o_rsdp;
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "VMFS  ", 6);
	rsdp[15] = 2;					/* revision: ACPI 2.0+ */
	put32(rsdp + 16, (uint32_t)(ACPI_BASE + o_rsdt));
	put32(rsdp + 20, RSDP_LEN);
	put64(rsdp + 24, ACPI_BASE + o_xsdt);
	rsdp[8] = checksum(rsdp, 20);
	rsdp[32] = checksum(rsdp, RSDP_LEN);
	return 0;
}
