/*
 * What x86 firmware would do before a kernel runs (vmm/x86/): check and load a
 * bzImage through the 64-bit boot protocol, write the e820 map, MP table and
 * ACPI tables that describe vm's vCPUs and PCI devices, and put vCPU 0 at the
 * kernel's 64-bit entry. Kernel images are untrusted: every offset and size
 * they give is checked before use.
 */
#ifndef VMM_X86_X86_H
#define VMM_X86_X86_H

#include <stddef.h>
#include <stdint.h>

struct vmm_state;
struct vmm_state_writer;
struct vmm_vm;

/*
 * Checks a kernel before anything is written for it: a bzImage (boot flag and
 * "HdrS" at 0x202), boot protocol 2.12 or later with XLF_KERNEL_64, a setup
 * that leaves a kernel in its klen bytes, and a command line it takes. head
 * holds the file's first hlen bytes (VMM_BZ_HEADER_LEN are enough). Returns 0
 * or -EINVAL with a one-line reason in err. vmm_x86_boot checks the same.
 */
#define VMM_BZ_HEADER_LEN 0x290
int vmm_x86_check_kernel(const void *head, size_t hlen, uint64_t klen, const char *cmdline, char *err,
			 size_t errlen);

/*
 * Loads a bzImage (64-bit boot protocol, version 2.12 or later with
 * XLF_KERNEL_64) and an optional initrd into guest memory, writes the zero
 * page, command line, e820 map, MP table, GDT and identity page tables, and sets vCPU
 * 0's registers to the 64-bit entry point. Returns 0, or -EINVAL / -E2BIG with
 * a one-line reason in err. The kernel and initrd buffers are borrowed.
 */
int vmm_x86_boot(struct vmm_vm *vm, const void *kernel, size_t klen, const void *initrd, size_t ilen,
		 const char *cmdline, char *err, size_t errlen);

/*
 * Writes the MP table (floating pointer at 0xF0000, reserved in e820) for
 * vm's vCPUs and the PCI devices on vm->pci: add the devices first. Returns 0
 * or -E2BIG with err saying why. Called by vmm_x86_boot.
 */
int vmm_x86_mptable(struct vmm_vm *vm, char *err, size_t errlen);

/*
 * Writes the ACPI tables (RSDP at 0xE0000, reserved in e820; XSDT, RSDT, FADT,
 * FACS, MADT, DSDT) for vm's vCPUs and PCI devices: add the devices first.
 * Returns 0 or -E2BIG with err saying why. Called by vmm_x86_boot.
 */
int vmm_x86_acpi(struct vmm_vm *vm, char *err, size_t errlen);

/*
 * Suspend and resume (vmm/x86/state.c): every vCPU's state (registers, FPU
 * and vector state, LAPIC, MSRs, pending events, CPUID, TSC rate) and the
 * VM's interrupt controllers, PIT and clock, as vm.state sections. Save with
 * the vCPUs parked; load into a VM whose vCPUs have not run, from a parsed
 * file (vmm_state_parse: every section is there, of its size). A host whose
 * CPU lacks a feature the guest was started with is refused (-ENOTSUP).
 * Both return 0 or -errno with a one-line reason in err.
 */
int vmm_x86_save_state(struct vmm_vm *vm, struct vmm_state_writer *w, char *err, size_t errlen);
int vmm_x86_load_state(struct vmm_vm *vm, const struct vmm_state *st, char *err, size_t errlen);

#endif
