/*
 * A PCI bus 0 reached through configuration mechanism #1 (address at port
 * 0xCF8, data at 0xCFC..0xCFF), as on a PC and in kvmtool. Each device has a
 * 256-byte type-0 header that vmm fills in; the guest may write only the
 * command register and BAR0 (one 32-bit memory BAR, sized by writing all ones).
 * Memory accesses inside an enabled BAR0 go to the device's mmio handler with
 * the offset into the BAR; everything else on the bus reads all ones. Slot 0
 * is a host bridge with no BAR (Linux's check of mechanism #1 wants a host
 * bridge or an Intel device). INTA# of each device is a level-triggered line
 * into the IOAPIC; devices that share a pin are ORed (irq_lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/pci.h"
#include "vmm/kvm.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_BAR0 0x10
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

/* The host bridge in slot 0: an Intel 440FX's IDs, class 06 00 00, nothing writable. */
static const uint8_t host_bridge[64] = {
	[0x00] = 0x86, [0x01] = 0x80, [0x02] = 0x37, [0x03] = 0x12,	/* 8086:1237 */
	[0x0a] = 0x00, [0x0b] = 0x06,					/* host bridge */
};

void vmm_pci_init(struct vmm_pci *bus, struct vmm_vm *vm)
{
	memset(bus, 0, sizeof(*bus));
	bus->vm = vm;
	pthread_mutex_init(&bus->irq_lock, NULL);
}

int vmm_pci_add(struct vmm_pci *bus, struct vmm_pci_dev *d)
{
	if (bus->ndev == VMM_PCI_MAX_DEV)
		return -ENOSPC;
	/* Slot n + 1 (slot 0 is the host bridge); BARs 16 KiB apart from 0xd0000000. */
	d->slot = bus->ndev + 1;
	d->bar_addr = VMM_PCI_MMIO_BASE + bus->ndev * VMM_PCI_BAR_SIZE;
	d->gsi = (uint8_t)(VMM_PCI_GSI_BASE + bus->ndev % VMM_PCI_NGSI);
	d->irq_level = false;
	d->cfg[PCI_INTERRUPT_LINE] = d->gsi;
	d->cfg[PCI_INTERRUPT_PIN] = 1;	/* INTA# */
	bus->dev[bus->ndev++] = d;
	return 0;
}

void vmm_pci_set_irq(struct vmm_pci *bus, struct vmm_pci_dev *d, bool level)
{
	bool any = false;
	unsigned i;

	pthread_mutex_lock(&bus->irq_lock);
	if (d->irq_level != level) {
		d->irq_level = level;
		for (i = 0; i < bus->ndev; i++)
			any |= bus->dev[i]->gsi == d->gsi && bus->dev[i]->irq_level;
		vmm_vm_irq_line(bus->vm, d->gsi, any);
	}
	pthread_mutex_unlock(&bus->irq_lock);
}

/* The addressed function: *d is NULL for the host bridge (slot 0). False when nothing is there. */
static bool addressed(struct vmm_pci *bus, struct vmm_pci_dev **d)
{
	uint32_t a = bus->addr;
	unsigned slot = (a >> 11) & 0x1f;

	*d = NULL;
	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) || ((a >> 8) & 7) || slot > bus->ndev)
		return false;
	if (slot)
		*d = bus->dev[slot - 1];
	return true;
}

bool vmm_pci_decodes(const struct vmm_pci_dev *d)
{
	return d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY;
}

static void cfg_write(struct vmm_pci_dev *d, unsigned off, const uint8_t *data, unsigned size)
{
	uint32_t was = d->bar_addr;
	bool decodes = vmm_pci_decodes(d);
	unsigned i;

	for (i = 0; i < size; i++) {
		unsigned o = off + i;

		if (o == PCI_COMMAND)
			d->cfg[o] = data[i] & 0x07;	/* I/O, memory, bus master */
		else if (o == PCI_INTERRUPT_LINE)
			d->cfg[o] = data[i];		/* a scratch byte for software; routing stays */
	}
	if (off >= 0x40 && d->cfg_write) {
		d->cfg_write(d, off, data, size);
		return;
	}
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 4) {
		uint8_t bar[4];
		uint32_t v;

		memcpy(bar, &d->bar_addr, 4);
		memcpy(bar + (off - PCI_BAR0), data, size < 4 - (off - PCI_BAR0) ? size : 4 - (off - PCI_BAR0));
		memcpy(&v, bar, 4);
		d->bar_addr = v & ~(uint32_t)(VMM_PCI_BAR_SIZE - 1);
	}
	if (d->decode_changed && (was != d->bar_addr || decodes != vmm_pci_decodes(d)))
		d->decode_changed(d);
}

void vmm_pci_io(struct vmm_pci *bus, uint16_t port, bool write, uint8_t *data, unsigned size)
{
	struct vmm_pci_dev *d;
	unsigned off, i;

	if (port == 0xcf8) {
		if (size != 4) {
			if (!write)
				memset(data, 0xff, size);
			return;
		}
		if (write)
			memcpy(&bus->addr, data, 4);
		else
			memcpy(data, &bus->addr, 4);
		return;
	}
	off = (bus->addr & 0xfc) + (port - 0xcfc);
	if (!addressed(bus, &d) || off + size > 256) {
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	if (!d) {
		if (!write)
			for (i = 0; i < size; i++)
				data[i] = off + i < sizeof(host_bridge) ? host_bridge[off + i] : 0;
		return;
	}
	if (write) {
		cfg_write(d, off, data, size);
		return;
	}
	for (i = 0; i < size; i++) {
		unsigned o = off + i;

		if (o >= PCI_BAR0 && o < PCI_BAR0 + 4)
			data[i] = (uint8_t)(d->bar_addr >> (8 * (o - PCI_BAR0)));
		else
			data[i] = d->cfg[o];
	}
}

bool vmm_pci_mmio(struct vmm_pci *bus, uint64_t gpa, bool write, uint8_t *data, unsigned len)
{
	unsigned i;

	for (i = 0; i < bus->ndev; i++) {
		struct vmm_pci_dev *d = bus->dev[i];

		if (!(d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY) || gpa < d->bar_addr ||
		    gpa + len > (uint64_t)d->bar_addr + VMM_PCI_BAR_SIZE)
			continue;
		d->mmio(d, gpa - d->bar_addr, write, data, len);
		return true;
	}
	return false;
}

/*
 * Suspend and resume: slot 0 is the bus (the address latch at 0xCF8), any
 * other a device's header and BAR0. What the guest cannot write must read
 * back as saved, or the slot holds another device than it did.
 */
struct pci_dev_state {
	uint8_t cfg[256];
	uint32_t bar_addr;
};

size_t vmm_pci_save(struct vmm_pci *bus, unsigned slot, void *buf)
{
	struct pci_dev_state st;

	if (!slot) {
		memcpy(buf, &bus->addr, 4);
		return 4;
	}
	memcpy(st.cfg, bus->dev[slot - 1]->cfg, sizeof(st.cfg));
	st.bar_addr = bus->dev[slot - 1]->bar_addr;
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

int vmm_pci_load(struct vmm_pci *bus, unsigned slot, const void *buf, size_t len)
{
	struct pci_dev_state st;
	struct vmm_pci_dev *d;

	if (!slot) {
		if (len != 4)
			return -EINVAL;
		memcpy(&bus->addr, buf, 4);
		return 0;
	}
	if (slot > bus->ndev || len != sizeof(st))
		return -EINVAL;
	d = bus->dev[slot - 1];
	memcpy(&st, buf, sizeof(st));
	/* The header up to the capabilities, but for the command and interrupt line bytes; BAR0 is bar_addr. */
	for (unsigned o = 0; o < 0x40; o++)
		if (o != PCI_COMMAND && o != PCI_INTERRUPT_LINE && st.cfg[o] != d->cfg[o])
			return -EINVAL;
	if ((st.cfg[PCI_COMMAND] & ~7u) || st.bar_addr % VMM_PCI_BAR_SIZE)
		return -EINVAL;
	d->cfg[PCI_COMMAND] = st.cfg[PCI_COMMAND];
	d->cfg[PCI_INTERRUPT_LINE] = st.cfg[PCI_INTERRUPT_LINE];
	d->bar_addr = st.bar_addr;
	if (d->decode_changed)
		d->decode_changed(d);
	return 0;
}
