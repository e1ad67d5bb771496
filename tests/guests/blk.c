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
#include "virtio.h"

void guest_main(const uint8_t *zp);

static struct { uint32_t type, reserved; uint64_t sector; } hdr;
static uint8_t wbuf[512], rbuf[512];
static volatile uint8_t status;

/* One request: header, optional 512-byte data buffer, status. Returns the status byte. */
static uint8_t request(uint32_t type, uint64_t sector, uint8_t *data, int device_writes)
{
	unsigned n = 0;

	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)&hdr, 16, 0, 0 };
	if (data)
		ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)data, 512, (uint16_t)(device_writes ? 2 : 0), 0 };
	status = 0xff;
	ring_desc[n++] = (struct desc){ (uint64_t)(uintptr_t)&status, 1, 2, 0 };
	virtq_run(n);
	return status;
}

void guest_main(const uint8_t *zp)
{
	uint64_t capacity;
	unsigned i;

	(void)zp;
	virtio_setup(2, 0);
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
