/*
 * A vmm test guest that drives virtio-blk the way a driver does: finds the
 * device on PCI bus 0 through ports 0xCF8/0xCFC, walks its virtio
 * capabilities to the common, notify and device configuration in BAR0,
 * negotiates VIRTIO_F_VERSION_1 and VIRTIO_BLK_F_DISCARD, sets up queue 0
 * (split ring, polled), then prints the first 16 bytes of sector 0, writes
 * sector 7, flushes, reads it back and compares, checks that a read past the
 * end fails with IOERR, and discards a whole 1 MiB it wrote into, which must
 * then read as zeros. It prints one line per step and "blk ok", or
 * "FAIL: ..."; then powers off. The e2e test checks sector 7 and the freed
 * space from the host through libvmfs. With "blk=ro" on the command line it
 * expects a read-only disk instead: VIRTIO_BLK_F_RO, writes failing with
 * IOERR, reads working; it then prints "blk ro ok".
 */
#include "virtio.h"

void guest_main(const uint8_t *zp);

static uint8_t wbuf[512], rbuf[512];
static struct { uint64_t sector; uint32_t count, flags; } seg;

/* One request: header, optional 512-byte data buffer, status. Returns the status byte. */
static uint8_t request(uint32_t type, uint64_t sector, uint8_t *data, int device_writes)
{
	virtq_run(blk_desc(type, sector, data, device_writes));
	return blk_status;
}

void guest_main(const uint8_t *zp)
{
	uint64_t capacity;
	unsigned i;

	if (cmdline_has(zp, "blk=ro")) {
		/* A read-only disk: VIRTIO_BLK_F_RO offered, no discard, writes fail. */
		virtio_setup(2, 1u << 5);
		if (request(1, 7, wbuf, 0) != 1)
			fail("a write to a read-only disk did not fail with IOERR");
		if (request(0, 7, rbuf, 1) != 0)
			fail("a read from a read-only disk failed");
		puts_serial("blk ro ok\n");
		poweroff();
	}
	virtio_setup(2, 1u << 13);	/* VIRTIO_BLK_F_DISCARD */
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

	/* Discard: sector 2048 (file block 1 at 1 MiB blocks) written, then all of that block discarded. */
	if (!(R32(common, 0x04) & (1u << 13)))	/* dfselect is still 0 */
		fail("no VIRTIO_BLK_F_DISCARD");
	if (request(1, 2048, wbuf, 0) != 0)
		fail("write of sector 2048");
	seg.sector = 2048;
	seg.count = 2048;
	seg.flags = 0;
	blk_desc(11, 0, 0, 0);
	ring_desc[2] = ring_desc[1];	/* status last, the segment between */
	ring_desc[1] = (struct desc){ (uint64_t)(uintptr_t)&seg, 16, 0, 0 };
	virtq_run(3);
	if (blk_status != 0)
		fail("discard");
	if (request(0, 2048, rbuf, 1) != 0)
		fail("read of sector 2048");
	for (i = 0; i < 512; i++)
		if (rbuf[i])
			fail("a discarded sector does not read as zeros");
	puts_serial("blk: discarded sectors 2048-4095\n");
	puts_serial("blk ok\n");
	poweroff();
}
