/*
 * Loads a Linux bzImage through the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"): the protected-mode
 * kernel at 1 MiB, the "zero page" (struct boot_params) with the kernel's setup
 * header, the command line, the initrd and the e820 map, then a GDT with
 * __BOOT_CS = 0x10 and __BOOT_DS = 0x18, identity-mapped page tables for the
 * first 4 GiB, and vCPU 0 in long mode at the kernel's 64-bit entry (load
 * address + 0x200) with RSI pointing at the zero page. The image is untrusted:
 * every offset and size it gives is checked before use.
 *
 * Guest physical layout below 1 MiB:
 *   0x00500  GDT                0x07000  zero page
 *   0x09000  PML4               0x0a000  PDPT
 *   0x0b000  4 page directories (2 MiB pages, 4 GiB identity map)
 *   0x20000  command line       0x9fc00 .. 0x100000  reserved (EBDA, BIOS)
 *   0xe0000  ACPI tables (x86/acpi.c), inside the reserved BIOS area
 *   0xf0000  MP table (x86/mptable.c), likewise
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "base/base.h"
#include "vmm/config.h"
#include "vmm/kvm.h"
#include "vmm/x86/x86.h"

#define GDT_ADDR 0x500ull
#define ZERO_PAGE 0x7000ull
#define PML4_ADDR 0x9000ull
#define PDPT_ADDR 0xa000ull
#define PD_ADDR 0xb000ull
#define CMDLINE_ADDR 0x20000ull
#define EBDA_START 0x9fc00ull
#define HIGH_MEM 0x100000ull
#define KERNEL_ADDR HIGH_MEM

/* boot_params offsets (boot.rst, "The Real-Mode Kernel Header" and zero-page.rst) */
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_SECTS 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_JUMP 0x200
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_XLOADFLAGS 0x236
#define BP_CMDLINE_SIZE 0x238
#define BP_INIT_SIZE 0x260
#define BP_HEADER_MAX 0x290
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01
#define E820_RAM 1
#define E820_RESERVED 2

/* memcpy: e820 entries are 20 bytes, so their fields are not aligned. */
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32_to_cpu(v); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16_to_cpu(v); }
static void put32(uint8_t *p, uint32_t v) { v = cpu_to_le32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = cpu_to_le64(v); memcpy(p, &v, 8); }

static void e820_add(uint8_t *zp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t *e = zp + BP_E820_TABLE + 20 * zp[BP_E820_ENTRIES];

	put64(e, addr);
	put64(e + 8, size);
	put32(e + 16, type);
	zp[BP_E820_ENTRIES]++;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	*s = (struct kvm_segment){ .base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
				   .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1 };
}

static int enter_long_mode(struct vmm_vm *vm, uint64_t entry, char *err, size_t errlen)
{
	/* null, null, __BOOT_CS (64-bit code), __BOOT_DS (flat data) */
	static const uint64_t gdt[] = { 0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull };
	uint64_t *pml4 = vmm_gpa(vm, PML4_ADDR, 4096), *pdpt = vmm_gpa(vm, PDPT_ADDR, 4096);
	uint64_t *pd = vmm_gpa(vm, PD_ADDR, 4 * 4096);
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };
	unsigned i;

	memcpy(vmm_gpa(vm, GDT_ADDR, sizeof(gdt)), gdt, sizeof(gdt));
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | 0x3;	/* present, writable */
	for (i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096ull) | 0x3;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;	/* present, writable, 2 MiB page */

	if (ioctl(vm->cpu_fd[0], KVM_GET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -errno;
	}
	sregs.gdt.base = GDT_ADDR;
	sregs.gdt.limit = sizeof(gdt) - 1;
	seg(&sregs.cs, 0x10, 0xb, true);	/* execute/read, accessed */
	seg(&sregs.ds, 0x18, 0x3, false);	/* read/write, accessed */
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr3 = PML4_ADDR;
	sregs.cr4 = 1u << 5;			/* PAE */
	sregs.cr0 = (1u << 0) | (1u << 4) | (1u << 31);	/* PE, ET, PG */
	sregs.efer = (1u << 8) | (1u << 10);	/* LME, LMA */
	if (ioctl(vm->cpu_fd[0], KVM_SET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -errno;
	}
	regs.rip = entry;
	regs.rsi = ZERO_PAGE;
	regs.rflags = 0x2;
	if (ioctl(vm->cpu_fd[0], KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int vmm_x86_check_kernel(const void *head, size_t hlen, uint64_t klen, const char *cmdline, char *err,
			 size_t errlen)
{
	const uint8_t *k = head;
	uint32_t cmdline_size;
	uint64_t setup_len;
	uint16_t version;
	size_t cl = strlen(cmdline);

	if (hlen < BP_HEADER_MAX || klen < BP_HEADER_MAX || get16(k + BP_BOOT_FLAG) != 0xaa55 ||
	    memcmp(k + BP_HEADER, "HdrS", 4)) {
		snprintf(err, errlen, "not a bzImage (no boot flag 0xaa55 and \"HdrS\" header)");
		return -EINVAL;
	}
	version = get16(k + BP_VERSION);
	if (version < 0x020c || !(get16(k + BP_XLOADFLAGS) & XLF_KERNEL_64) || !(k[BP_LOADFLAGS] & LOADED_HIGH)) {
		snprintf(err, errlen, "boot protocol %u.%02u without a 64-bit entry (want 2.12+, XLF_KERNEL_64)",
			 version >> 8, version & 0xff);
		return -EINVAL;
	}
	setup_len = ((uint64_t)(k[BP_SETUP_SECTS] ? k[BP_SETUP_SECTS] : 4) + 1) * 512;
	if (setup_len >= klen) {
		snprintf(err, errlen, "setup of %llu bytes leaves no kernel in %llu bytes",
			 (unsigned long long)setup_len, (unsigned long long)klen);
		return -EINVAL;
	}
	cmdline_size = get32(k + BP_CMDLINE_SIZE);
	if (cl >= VMM_CMDLINE_MAX || (version >= 0x0206 && cl > cmdline_size)) {
		snprintf(err, errlen, "command line of %zu bytes is longer than the kernel takes (%u)", cl,
			 cmdline_size);
		return -EINVAL;
	}
	return 0;
}

int vmm_x86_boot(struct vmm_vm *vm, const void *kernel, size_t klen, const void *initrd, size_t ilen,
		 const char *cmdline, char *err, size_t errlen)
{
	const uint8_t *k = kernel;
	uint8_t *zp, *dst;
	uint64_t setup_len, pm_len, need, hdr_end, top;
	uint32_t initrd_max;
	size_t cl = strlen(cmdline);
	int ret;

	ret = vmm_x86_check_kernel(kernel, klen, klen, cmdline, err, errlen);
	if (ret)
		return ret;
	setup_len = ((uint64_t)(k[BP_SETUP_SECTS] ? k[BP_SETUP_SECTS] : 4) + 1) * 512;
	pm_len = klen - setup_len;
	need = pm_len > get32(k + BP_INIT_SIZE) ? pm_len : get32(k + BP_INIT_SIZE);
	if (!vmm_gpa(vm, KERNEL_ADDR, need)) {
		snprintf(err, errlen, "kernel needs %llu MiB past 1 MiB; the VM has %llu MiB",
			 (unsigned long long)(need >> 20) + 1, (unsigned long long)(vm->mem_size >> 20));
		return -E2BIG;
	}

	dst = vmm_gpa(vm, KERNEL_ADDR, pm_len);
	memcpy(dst, k + setup_len, pm_len);
	zp = vmm_gpa(vm, ZERO_PAGE, 4096);
	memset(zp, 0, 4096);
	hdr_end = BP_HEADER + (uint64_t)k[BP_JUMP + 1];
	if (hdr_end > BP_HEADER_MAX)
		hdr_end = BP_HEADER_MAX;
	memcpy(zp + BP_SETUP_SECTS, k + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);
	zp[BP_TYPE_OF_LOADER] = 0xff;
	zp[BP_LOADFLAGS] |= CAN_USE_HEAP;
	zp[BP_HEAP_END_PTR] = 0x00;	/* heap_end_ptr 0xfe00, little-endian */
	zp[BP_HEAP_END_PTR + 1] = 0xfe;
	memcpy(vmm_gpa(vm, CMDLINE_ADDR, cl + 1), cmdline, cl + 1);
	put32(zp + BP_CMD_LINE_PTR, (uint32_t)CMDLINE_ADDR);

	if (ilen) {
		initrd_max = get32(k + BP_INITRD_ADDR_MAX);
		top = vm->mem_size < (uint64_t)initrd_max + 1 ? vm->mem_size : (uint64_t)initrd_max + 1;
		if (ilen > top || ((top - ilen) & ~0xfffull) < KERNEL_ADDR + ((need + 0xfffff) & ~0xfffffull)) {
			snprintf(err, errlen, "initrd of %zu bytes does not fit below %llu MiB above the kernel", ilen,
				 (unsigned long long)(top >> 20));
			return -E2BIG;
		}
		top = (top - ilen) & ~0xfffull;
		memcpy(vmm_gpa(vm, top, ilen), initrd, ilen);
		put32(zp + BP_RAMDISK_IMAGE, (uint32_t)top);
		put32(zp + BP_RAMDISK_SIZE, (uint32_t)ilen);
	}

	e820_add(zp, 0, EBDA_START, E820_RAM);
	e820_add(zp, EBDA_START, HIGH_MEM - EBDA_START, E820_RESERVED);
	e820_add(zp, HIGH_MEM, vm->mem_size - HIGH_MEM, E820_RAM);
	ret = vmm_x86_mptable(vm, err, errlen);
	if (!ret)
		ret = vmm_x86_acpi(vm, err, errlen);
	if (ret)
		return ret;
	return enter_long_mode(vm, KERNEL_ADDR + 0x200, err, errlen);
}
