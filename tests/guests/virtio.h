/*
 * A minimal polled virtio-pci driver for vmm's test guests (one device, queue
 * 0, 8 entries; polled, or interrupt-driven by a guest that sets up its own
 * IDT and APICs, as irq.c does): finds a device on PCI bus 0 by device ID
 * through ports 0xCF8/0xCFC, walks its virtio capabilities, negotiates
 * VIRTIO_F_VERSION_1 plus what the guest asks for, and submits one chain at a
 * time, spinning on the used ring (vmm completes requests inside the notify
 * exit). virtio_find alone is the discovery and negotiation, for a guest
 * with rings of its own (mq.c). Include it from exactly one file per guest.
 */
#ifndef TESTS_GUESTS_VIRTIO_H
#define TESTS_GUESTS_VIRTIO_H

#include "guest.h"

#define QSZ 8
struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };

static struct desc ring_desc[QSZ] __attribute__((aligned(4096)));
static struct { uint16_t flags, idx, ring[QSZ]; } avail __attribute__((aligned(4096)));
static volatile struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSZ]; } used __attribute__((aligned(4096)));
static volatile uint8_t *common, *notify, *devcfg, *isr;
static unsigned virtio_slot;	/* the device's PCI slot, once found */
static uint32_t notify_mult;	/* the notify capability's notify_off_multiplier */

#define W8(p, o, v) (*(volatile uint8_t *)((p) + (o)) = (v))
#define W16(p, o, v) (*(volatile uint16_t *)((p) + (o)) = (v))
#define W32(p, o, v) (*(volatile uint32_t *)((p) + (o)) = (v))
#define R8(p, o) (*(volatile uint8_t *)((p) + (o)))
#define R16(p, o) (*(volatile uint16_t *)((p) + (o)))
#define R32(p, o) (*(volatile uint32_t *)((p) + (o)))

/* Submits the n descriptors at ring_desc[0..n) as one chain and rings the doorbell. */
static void virtq_submit(unsigned n)
{
	unsigned i;

	for (i = 0; i + 1 < n; i++) {
		ring_desc[i].flags |= 1;	/* NEXT */
		ring_desc[i].next = (uint16_t)(i + 1);
	}
	avail.ring[avail.idx % QSZ] = 0;
	__sync_synchronize();
	avail.idx++;
	__sync_synchronize();
	W16(notify, 0, 0);
}

/* Submits like virtq_submit and spins on the used ring; returns the bytes written. */
static __attribute__((unused)) uint32_t virtq_run(unsigned n)
{
	uint16_t idx = used.idx;

	virtq_submit(n);
	while (used.idx == idx)
		;
	return used.ring[idx % QSZ].len;
}

/* virtio-blk: header, an optional 512-byte buffer and the status byte as ring_desc[0..n); returns n. */
static struct { uint32_t type, reserved; uint64_t sector; } blk_hdr;
static volatile uint8_t blk_status;
static __attribute__((unused)) unsigned blk_desc(uint32_t type, uint64_t sector, uint8_t *data, int device_writes)
{
	unsigned n = 0;

	blk_hdr.type = type;
	blk_hdr.reserved = 0;
	blk_hdr.sector = sector;
	ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)&blk_hdr, 16, 0, 0 };
	if (data)
		ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)data, 512, (uint16_t)(device_writes ? 2 : 0), 0 };
	blk_status = 0xff;
	ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)&blk_status, 1, 2, 0 };
	return n;
}

/*
 * Finds device 0x1040 + type, enables its BAR and bus mastering, and maps its
 * common, notify, ISR and device configuration; then resets it and
 * negotiates VIRTIO_F_VERSION_1 and features (bits 0..31) up to FEATURES_OK.
 */
static void virtio_find(unsigned type, uint32_t features)
{
	unsigned slot, cap;
	uint32_t bar;

	for (slot = 1; slot < 32; slot++)
		if (cfg_read(slot, 0) == ((0x1040u + type) << 16 | 0x1af4))
			break;
	if (slot == 32)
		fail("no such virtio device on PCI bus 0");
	virtio_slot = slot;
	bar = cfg_read(slot, 0x10) & ~0xfu;
	cfg_write(slot, 0x04, cfg_read(slot, 0x04) | 0x6);	/* memory space, bus master */
	for (cap = cfg_read(slot, 0x34) & 0xff; cap; cap = (cfg_read(slot, cap) >> 8) & 0xff) {
		uint32_t head = cfg_read(slot, cap), off = cfg_read(slot, cap + 8);
		volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)(bar + off);

		if ((head & 0xff) != 0x09)
			continue;
		switch ((head >> 24) & 0xff) {
		case 1: common = p; break;
		case 2: notify = p; notify_mult = cfg_read(slot, cap + 16); break;
		case 3: isr = p; break;
		case 4: devcfg = p; break;
		}
	}
	if (!common || !notify || !devcfg)
		fail("virtio capabilities missing");

	W8(common, 0x14, 0);			/* reset */
	W8(common, 0x14, 1);			/* ACKNOWLEDGE */
	W8(common, 0x14, 3);			/* DRIVER */
	W32(common, 0x00, 1);
	if (!(R32(common, 0x04) & 1))
		fail("no VIRTIO_F_VERSION_1");
	W32(common, 0x00, 0);
	if ((R32(common, 0x04) & features) != features)
		fail("a feature the guest wants is not offered");
	W32(common, 0x08, 0);
	W32(common, 0x0c, features);
	W32(common, 0x08, 1);
	W32(common, 0x0c, 1);
	W8(common, 0x14, 11);			/* FEATURES_OK */
	if (!(R8(common, 0x14) & 8))
		fail("FEATURES_OK not kept");
}

/* virtio_find, then queue 0 (its doorbell is at notify + 0) and DRIVER_OK. */
static __attribute__((unused)) void virtio_setup(unsigned type, uint32_t features)
{
	virtio_find(type, features);
	W16(common, 0x16, 0);
	if (R16(common, 0x18) < QSZ)
		fail("queue 0 too small");
	W16(common, 0x18, QSZ);
	W32(common, 0x20, (uint32_t)(uintptr_t)ring_desc);
	W32(common, 0x24, 0);
	W32(common, 0x28, (uint32_t)(uintptr_t)&avail);
	W32(common, 0x2c, 0);
	W32(common, 0x30, (uint32_t)(uintptr_t)&used);
	W32(common, 0x34, 0);
	W16(common, 0x1c, 1);
	W8(common, 0x14, 15);			/* DRIVER_OK */
}

#endif
