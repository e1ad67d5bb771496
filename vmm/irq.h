/*
 * Interrupt routing and KVM's event file descriptors (vmm/irq.c): what the
 * kernel can do for the devices without a trip through user space.
 *   - The GSI routing table: GSIs 0..23 keep the wiring KVM_CREATE_IRQCHIP
 *     gives them (0..15 to the PIC and the IOAPIC, 16..23 to the IOAPIC),
 *     and every MSI a device sends through an irqfd gets a GSI of its own
 *     above them, rewritten when the guest reprograms the message.
 *   - irqfd (KVM_IRQFD): a write to an eventfd raises that GSI in the kernel.
 *   - ioeventfd (KVM_IOEVENTFD): a guest write to an MMIO address signals an
 *     eventfd in the kernel; the vCPU goes straight back into the guest.
 * vmm_irq_probe fills vm->caps; VMM_NO_EVENTFD=1 in the environment clears
 * both bits, so every notify is an MMIO exit and every interrupt an ioctl,
 * the path a kernel without them takes (tests run both).
 */
#ifndef VMM_IRQ_H
#define VMM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct vmm_vm;

#define VMM_CAP_IOEVENTFD 1u      /* KVM_IOEVENTFD on MMIO addresses */
#define VMM_CAP_IRQFD 2u          /* KVM_IRQFD with KVM_SET_GSI_ROUTING for MSI routes */

/* Probes KVM's capabilities into vm->caps and sets up the routing table (GSIs 0..23). */
int vmm_irq_probe(struct vmm_vm *vm);
void vmm_irq_release(struct vmm_vm *vm);

/*
 * An MSI route: a GSI of its own, bound to the eventfd fd (KVM_IRQFD), that
 * delivers the message (addr, data). vmm_irq_msi_set rewrites the message.
 * Returns the GSI or -errno. Any thread.
 */
int vmm_irq_msi_new(struct vmm_vm *vm, int fd, uint64_t addr, uint32_t data);
int vmm_irq_msi_set(struct vmm_vm *vm, int gsi, uint64_t addr, uint32_t data);

/* Binds (or unbinds) eventfd fd to a guest write of len bytes at gpa (KVM_IOEVENTFD). */
int vmm_ioeventfd(struct vmm_vm *vm, uint64_t gpa, unsigned len, int fd, bool assign);

#endif
