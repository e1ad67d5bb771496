/*
 * PCI bus 0 (vmm/devices/pci.c): configuration mechanism #1 at ports 0xCF8 and
 * 0xCFC..0xCFF, one 32-bit memory BAR0 per device inside the MMIO window at
 * VMM_PCI_MMIO_BASE, and INTA# lines into the IOAPIC. A device is a struct
 * vmm_pci_dev its driver embeds and fills in; the bus only borrows it, so it
 * must outlive the bus.
 */
#ifndef VMM_DEVICES_PCI_H
#define VMM_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmm_vm;

#define VMM_PCI_MAX_DEV 16
#define VMM_PCI_MMIO_BASE 0xd0000000u
#define VMM_PCI_BAR_SIZE 0x4000u

struct vmm_pci_dev {
	uint8_t cfg[256];         /* the type-0 header and capabilities, little-endian */
	uint32_t bar_addr;        /* BAR0: 32-bit memory, VMM_PCI_BAR_SIZE bytes */
	unsigned slot;            /* set by vmm_pci_add */
	uint8_t gsi;              /* the IOAPIC pin its INTA# is wired to (VMM_PCI_GSI_BASE..) */
	bool irq_level;           /* INTA# asserted; under the bus's irq_lock */
	/* An access of len (1..8) bytes at off < VMM_PCI_BAR_SIZE, off + len inside the BAR. */
	void (*mmio)(struct vmm_pci_dev *d, uint64_t off, bool write, uint8_t *data, unsigned len);
	/* A configuration write of size bytes at off >= 0x40 (the capabilities); NULL: read-only. */
	void (*cfg_write)(struct vmm_pci_dev *d, unsigned off, const uint8_t *data, unsigned size);
	/* BAR0 moved, or memory decoding turned on or off (PCI_COMMAND); NULL: nothing to do. */
	void (*decode_changed)(struct vmm_pci_dev *d);
	void *priv;
};

/*
 * Slot 0 holds a host bridge (Linux's conf1 probe looks for one); devices sit
 * in slots 1..VMM_PCI_MAX_DEV, INTA# of slot s wired to IOAPIC pin
 * VMM_PCI_GSI_BASE + (s - 1) % 8, level-triggered, active high (the MP table
 * says so). Devices on one pin share it: the pin is the OR of their lines.
 */
#define VMM_PCI_GSI_BASE 16
#define VMM_PCI_NGSI 8

struct vmm_pci {
	struct vmm_vm *vm;        /* for KVM_IRQ_LINE */
	pthread_mutex_t irq_lock;
	uint32_t addr;            /* the last value written to 0xCF8 */
	unsigned ndev;
	struct vmm_pci_dev *dev[VMM_PCI_MAX_DEV];
};

/* Sets up the bus of vm (no devices yet). */
void vmm_pci_init(struct vmm_pci *bus, struct vmm_vm *vm);
/* Puts d (borrowed: it must outlive the bus) in the next free slot and gives BAR0 and INTA# their places. */
int vmm_pci_add(struct vmm_pci *bus, struct vmm_pci_dev *d);
/* Asserts or deasserts d's INTA#; the IOAPIC pin follows the OR of the devices on it. Any thread. */
void vmm_pci_set_irq(struct vmm_pci *bus, struct vmm_pci_dev *d, bool level);
/* Port 0xCF8 (4 bytes) and 0xCFC..0xCFF (1, 2 or 4 bytes). */
void vmm_pci_io(struct vmm_pci *bus, uint16_t port, bool write, uint8_t *data, unsigned size);
/* True when d decodes its BAR (PCI_COMMAND's memory bit). */
bool vmm_pci_decodes(const struct vmm_pci_dev *d);
/* An MMIO access: false when no enabled BAR holds it. */
bool vmm_pci_mmio(struct vmm_pci *bus, uint64_t gpa, bool write, uint8_t *data, unsigned len);

/*
 * Suspend and resume (a vm.state section per slot; slot 0: the bus's
 * address latch): save returns the bytes put in buf (at most 260); load
 * refuses (-EINVAL) a wrong length or a header that is not this slot's
 * device, then sets what the guest had written (command, interrupt line,
 * BAR0). The capabilities (MSI-X) are the device's to restore.
 */
size_t vmm_pci_save(struct vmm_pci *bus, unsigned slot, void *buf);
int vmm_pci_load(struct vmm_pci *bus, unsigned slot, const void *buf, size_t len);

#endif
