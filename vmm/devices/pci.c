/*
 * A PCI bus 0 reached through configuration mechanism #1 (address at port
 * 0xCF8, data at 0xCFC..0xCFF), as on a PC and in kvmtool. Each device has a
 * 256-byte type-0 header that vmm fills in; the guest may write only the
 * command register and BAR0 (one 32-bit memory BAR, sized by writing all ones).
 * Memory accesses inside an enabled BAR0 go to the device's mmio handler with
 * the offset into the BAR; everything else on the bus reads all ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm_i.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_BAR0 0x10

int vmm_pci_add(struct vmm_pci *bus, struct vmm_pci_dev *d)
{
	if (bus->ndev == VMM_PCI_MAX_DEV)
		return -ENOSPC;
	/* Slot n + 1 (slot 0 is left empty); BARs 16 KiB apart from 0xd0000000. */
	d->bar_addr = VMM_PCI_MMIO_BASE + bus->ndev * VMM_PCI_BAR_SIZE;
	bus->dev[bus->ndev++] = d;
	return 0;
}

static struct vmm_pci_dev *addressed(struct vmm_pci *bus)
{
	uint32_t a = bus->addr;
	unsigned slot = (a >> 11) & 0x1f;

	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) || ((a >> 8) & 7) || slot == 0 || slot > bus->ndev)
		return NULL;
	return bus->dev[slot - 1];
}

static void cfg_write(struct vmm_pci_dev *d, unsigned off, const uint8_t *data, unsigned size)
{
	unsigned i;

	for (i = 0; i < size; i++) {
		unsigned o = off + i;

		if (o == PCI_COMMAND)
			d->cfg[o] = data[i] & 0x07;	/* I/O, memory, bus master */
	}
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 4) {
		uint8_t bar[4];
		uint32_t v;

		memcpy(bar, &d->bar_addr, 4);
		memcpy(bar + (off - PCI_BAR0), data, size < 4 - (off - PCI_BAR0) ? size : 4 - (off - PCI_BAR0));
		memcpy(&v, bar, 4);
		d->bar_addr = v & ~(uint32_t)(VMM_PCI_BAR_SIZE - 1);
	}
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
	d = addressed(bus);
	off = (bus->addr & 0xfc) + (port - 0xcfc);
	if (!d || off + size > 256) {
		if (!write)
			memset(data, 0xff, size);
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
