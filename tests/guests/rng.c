/*
 * A vmm test guest for virtio-rng: fills a 64-byte buffer twice through the
 * device and checks that every byte was written (the buffer starts as all
 * 0xAA and a count of 64 comes back) and that the two draws differ. Prints
 * "rng ok" or "FAIL: ...", then powers off.
 */
#include "virtio.h"

void guest_main(const uint8_t *zp);

static uint8_t a[64], b[64];

static void draw(uint8_t *buf)
{
	unsigned i;

	for (i = 0; i < 64; i++)
		buf[i] = 0xaa;
	ring_desc[0] = (struct desc){ (uint64_t)(uintptr_t)buf, 64, 2, 0 };
	if (virtq_run(1) != 64)
		fail("virtio-rng did not fill 64 bytes");
}

void guest_main(const uint8_t *zp)
{
	unsigned i, same = 0;

	(void)zp;
	virtio_setup(4, 0);
	draw(a);
	draw(b);
	for (i = 0; i < 64; i++)
		same += a[i] == b[i];
	if (same == 64)
		fail("two draws from virtio-rng are equal");
	puts_serial("rng ok\n");
	poweroff();
}
