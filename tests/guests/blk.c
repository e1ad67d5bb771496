/*
 * A vmm test guest that drives virtio-blk the way a driver does: finds the
 * device on PCI bus 0 through ports 0xCF8/0xCFC, walks its virtio
 * capabilities to the common, notify and device configuration in BAR0,
 * negotiates VIRTIO_F_VERSION_1, sets up queue 0 (split ring, polled), then
 * prints the first 16 bytes of sector 0, writes sector 7, flushes, reads it back and compares, and checks that a
 * read past the end fails with IOERR. It prints "blk: capacity N sectors",
 * one line per step and "blk ok", or "FAIL: ..."; then powers off. The e2e
 * test reads sector 7 back from the image through libvmfs.
 */
#include "guest.h"

void guest_main(const uint8_t *zp);

#define QSZ 8
struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };

static struct desc ring_desc[QSZ] __attribute__((aligned(4096)));
static struct { uint16_t flags, idx, ring[QSZ]; } avail __attribute__((aligned(4096)));
static volatile struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSZ]; } used __attribute__((aligned(4096)));
static struct { uint32_t type, reserved; uint64_t sector; } hdr;
static uint8_t wbuf[512], rbuf[512];
static volatile uint8_t status;

static volatile uint8_t *common, *notify, *devcfg;

static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static uint32_t cfg_read(unsigned slot, unsigned off)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	return inl(0xcfc);
}
static void cfg_write(unsigned slot, unsigned off, uint32_t v)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	outl(0xcfc, v);
}

static void put_dec(uint64_t v)
{
	char b[24];
	int i = 23;

	b[i] = 0;
	do
		b[--i] = (char)('0' + v % 10);
	while ((v /= 10) && i > 0);
	puts_serial(b + i);
}

static __attribute__((noreturn)) void fail(const char *why)
{
	puts_serial("FAIL: ");
	puts_serial(why);
	puts_serial("\n");
	poweroff();
}

#define W8(p, o, v) (*(volatile uint8_t *)((p) + (o)) = (v))
#define W16(p, o, v) (*(volatile uint16_t *)((p) + (o)) = (v))
#define W32(p, o, v) (*(volatile uint32_t *)((p) + (o)) = (v))
#define R8(p, o) (*(volatile uint8_t *)((p) + (o)))
#define R16(p, o) (*(volatile uint16_t *)((p) + (o)))
#define R32(p, o) (*(volatile uint32_t *)((p) + (o)))

/* One request: header, optional data buffer, status. Returns the status byte. */
static uint8_t request(uint32_t type, uint64_t sector, uint8_t *data, int device_writes)
{
	uint16_t n = 0, idx = used.idx;

	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	ring_desc[n] = (struct desc){ (uint64_t)(uintptr_t)&hdr, 16, 1, (uint16_t)(n + 1) };
	n++;
	if (data) {
		ring_desc[n] = (struct desc){ (uint64_t)(uintptr_t)data, 512, (uint16_t)(1 | (device_writes ? 2 : 0)),
					      (uint16_t)(n + 1) };
		n++;
	}
	status = 0xff;
	ring_desc[n] = (struct desc){ (uint64_t)(uintptr_t)&status, 1, 2, 0 };
	avail.ring[avail.idx % QSZ] = 0;
	__sync_synchronize();
	avail.idx++;
	__sync_synchronize();
	W16(notify, 0, 0);
	while (used.idx == idx)
		;	/* vmm completes the request inside the notify exit */
	return status;
}

void guest_main(const uint8_t *zp)
{
	unsigned slot, i, cap;
	uint32_t bar = 0;
	uint64_t capacity;

	(void)zp;
	for (slot = 1; slot < 32; slot++)
		if (cfg_read(slot, 0) == (0x1042u << 16 | 0x1af4))
			break;
	if (slot == 32)
		fail("no virtio-blk on PCI bus 0");
	bar = cfg_read(slot, 0x10) & ~0xfu;
	cfg_write(slot, 0x04, cfg_read(slot, 0x04) | 0x6);	/* memory space, bus master */
	for (cap = cfg_read(slot, 0x34) & 0xff; cap; cap = (cfg_read(slot, cap) >> 8) & 0xff) {
		uint32_t head = cfg_read(slot, cap), off = cfg_read(slot, cap + 8);
		volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)(bar + off);

		if ((head & 0xff) != 0x09)
			continue;
		switch ((head >> 24) & 0xff) {
		case 1: common = p; break;
		case 2: notify = p; break;	/* notify_off_multiplier is 0 here; queue 0 anyway */
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
	W32(common, 0x08, 0);
	W32(common, 0x0c, 0);
	W32(common, 0x08, 1);
	W32(common, 0x0c, 1);
	W8(common, 0x14, 11);			/* FEATURES_OK */
	if (!(R8(common, 0x14) & 8))
		fail("FEATURES_OK not kept");
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

	capacity = R32(devcfg, 0) | (uint64_t)R32(devcfg, 4) << 32;
	puts_serial("blk: capacity ");
	put_dec(capacity);
	puts_serial(" sectors\n");

	if (request(0, 0, rbuf, 1) != 0)
		fail("read of sector 0");
	puts_serial("blk: sector 0: ");
	for (i = 0; i < 16 && rbuf[i] >= 0x20 && rbuf[i] < 0x7f; i++)
		putc_serial((char)rbuf[i]);
	puts_serial("\n");
	for (i = 0; i < 512; i++)
		wbuf[i] = (uint8_t)"vmm-blk-sector-7"[i % 16];
	if (request(1, 7, wbuf, 0) != 0)
		fail("write of sector 7");
	puts_serial("blk: wrote sector 7\n");
	if (request(4, 0, 0, 0) != 0)
		fail("flush");
	puts_serial("blk: flushed\n");
	if (request(0, 7, rbuf, 1) != 0)
		fail("read of sector 7");
	for (i = 0; i < 512; i++)
		if (rbuf[i] != wbuf[i])
			fail("sector 7 read back differs");
	puts_serial("blk: read back sector 7\n");
	if (request(0, capacity, rbuf, 1) != 1)
		fail("a read past the end did not fail with IOERR");
	puts_serial("blk: read past the end fails\n");
	puts_serial("blk ok\n");
	poweroff();
}
